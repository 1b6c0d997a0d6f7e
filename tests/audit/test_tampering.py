"""Tampering done directly in the database, on SQLite and PostgreSQL, is caught by
``verify`` at the right position and kind, with the kind's exit code; an untouched log
(with concurrent writers on PostgreSQL) verifies intact."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from uuid import UUID

import pytest

from adapters.cli import main
from adapters.exit_codes import EVIDENCE_INVALID, TAMPERED, UNCHAINED
from crm_domain import CRM
from crm_domain.audit.seal import seal_log
from crm_domain.audit.verify import Finding, verify_log
from crm_domain.errors import TamperDetectedError


def history(url: str) -> tuple[CRM, UUID]:
    crm = CRM(url, snapshot_interval=3)
    with crm.bulk():
        ids = [
            crm.register_customer(kind="individual", name=f"C {i}", code=f"T-{i}") for i in range(3)
        ]
    for i in range(5):
        crm.log_contact(ids[0], channel="phone", direction="inbound", summary=f"call {i}")
    return crm, ids[0]


@contextmanager
def database(url: str) -> Iterator[tuple[Callable[..., Any], str, str]]:
    """An SQL executor on the store, the events table and its position column."""
    if url.startswith("sqlite"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///"))
        yield conn.execute, "stored_events", "rowid"
        conn.commit()
        conn.close()
    else:
        import psycopg

        with psycopg.connect(url.replace("postgresql://", "postgres://")) as pg:

            def run(sql: str, params: tuple[Any, ...] = ()) -> Any:
                return pg.execute(sql.replace("?", "%s"), params)

            yield run, "crm_events", "notification_id"


def tamper(url: str, kind: str) -> int:
    """Tamper one way; return the position that should be reported."""
    with database(url) as (sql, events, pos):
        if kind == "modified":
            state = bytes(sql(f"SELECT state FROM {events} WHERE {pos} = 9").fetchone()[0])
            # A field stored in clear (personal ones are sealed: docs/audit.md, "Erasure").
            changed = state.replace(b'"channel":"phone"', b'"channel":"email"')
            assert changed != state
            sql(f"UPDATE {events} SET state = ? WHERE {pos} = 9", (changed,))
            return 9
        if kind == "deleted":
            sql(f"DELETE FROM {events} WHERE {pos} = 5")
            return 5
        if kind == "inserted":
            sql(
                f"INSERT INTO {events} ({pos}, originator_id, originator_version, topic, state) "
                f"SELECT 100, originator_id, 99, topic, state FROM {events} WHERE {pos} = 7"
            )
            return 100
        if kind == "reordered":
            sql(f"UPDATE {events} SET {pos} = 1000 WHERE {pos} = 7")
            sql(f"UPDATE {events} SET {pos} = 7 WHERE {pos} = 8")
            sql(f"UPDATE {events} SET {pos} = 8 WHERE {pos} = 1000")
            return 7
        if kind == "snapshot":
            table = "stored_snapshots" if url.startswith("sqlite") else "crm_snapshots"
            rows = sql(f"SELECT originator_version, state FROM {table}").fetchall()
            version, state = min((r[0], bytes(r[1])) for r in rows)
            sql(
                f"UPDATE {table} SET state = ? WHERE originator_version = ?",
                (bytes(state).replace(b'"individual"', b'"government"'), version),
            )
            # The snapshot at version 3 summarises the customer's third event (position 8).
            return 8
        if kind == "chain":
            sql(f"UPDATE {events}_chain SET event_hash = ? WHERE position = 6", (bytes(32),))
            return 6
    raise AssertionError(kind)


def test_an_untouched_log_is_intact(store_url: str) -> None:
    crm, _ = history(store_url)
    report = verify_log(crm)
    assert report.intact, report.summary()
    assert (report.events, report.first_position, report.last_position) == (11, 1, 11)
    assert report.snapshots == 2
    assert main(["audit", "verify", "--store", store_url]) == 0


@pytest.mark.parametrize("kind", ["modified", "deleted", "inserted", "reordered", "snapshot"])
def test_tampering_is_caught_at_its_position_and_kind(
    store_url: str, kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    history(store_url)
    position = tamper(store_url, kind)
    report = verify_log(CRM(store_url))
    assert (report.finding, report.position) == (Finding(kind), position), report.summary()
    with pytest.raises(TamperDetectedError) as caught:
        report.raise_for_finding()
    assert (caught.value.kind, caught.value.position) == (kind, position)
    assert main(["audit", "verify", "--store", store_url]) == TAMPERED[kind]
    capsys.readouterr()
    assert main(["audit", "verify", "--json", "--store", store_url]) == TAMPERED[kind]
    printed = json.loads(capsys.readouterr().out)
    assert (printed["finding"], printed["position"]) == (kind, position)


def test_an_edited_chain_record_is_caught(store_url: str) -> None:
    history(store_url)
    position = tamper(store_url, "chain")
    report = verify_log(CRM(store_url))
    assert (report.finding, report.position) == (Finding.MODIFIED, position)


def test_verify_from_a_position_skips_what_is_before(store_url: str) -> None:
    history(store_url)
    tamper(store_url, "deleted")  # position 5
    assert verify_log(CRM(store_url), start=6, snapshots=False).intact
    assert verify_log(CRM(store_url), start=4, snapshots=False).finding is Finding.DELETED


def test_history_stored_before_the_chain_is_reported_unchained(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    history(url)
    with database(url) as (sql, _events, _pos):
        sql("DELETE FROM stored_events_chain")  # as if written by an earlier release
    crm = CRM(url)
    crm.register_customer(kind="individual", name="After", code="T-new")
    report = verify_log(crm)
    assert (report.finding, report.position) == (Finding.UNCHAINED, 12)
    assert main(["audit", "verify", "--store", url]) == UNCHAINED
    assert EVIDENCE_INVALID not in (UNCHAINED, *TAMPERED.values())


def test_the_chain_is_written_in_the_events_transaction(sqlite_url: str) -> None:
    """SQLite reuses a deleted last event's position: the chain row already there makes the
    next write fail whole (no event without its link), as a tamper error, not a conflict."""
    crm, customer = history(sqlite_url)
    with database(sqlite_url) as (sql, events, pos):
        sql(f"DELETE FROM {events} WHERE {pos} = 11")
    with pytest.raises(TamperDetectedError) as caught:
        crm.log_contact(customer, channel="phone", direction="inbound", summary="after")
    assert (caught.value.kind, caught.value.position) == ("deleted", 11)
    with database(sqlite_url) as (sql, events, _pos):
        assert sql(f"SELECT COUNT(*) FROM {events}").fetchone()[0] == 10
        assert sql(f"SELECT COUNT(*) FROM {events}_chain").fetchone()[0] == 11
    report = verify_log(CRM(sqlite_url))
    assert (report.finding, report.position) == (Finding.DELETED, 11)


def test_sealing_chains_history_stored_before_the_chain(store_url: str) -> None:
    _, customer = history(store_url)
    with database(store_url) as (sql, events, _pos):
        sql(f"DELETE FROM {events}_chain")  # as if written by an earlier release
    crm = CRM(store_url)  # upgraded: what it writes now is chained
    crm.log_contact(customer, channel="email", direction="outbound", summary="upgraded")
    assert verify_log(crm).finding is Finding.UNCHAINED
    assert main(["audit", "seal", "--store", store_url]) == 0
    report = verify_log(crm)
    assert report.intact, report.summary()
    assert report.events == 12
    assert seal_log(crm).sealed == 0  # once is enough
    crm.register_customer(kind="individual", name="After", code="T-after")
    assert verify_log(crm).intact


def test_a_tampered_log_is_not_sealed(store_url: str) -> None:
    _, customer = history(store_url)
    with database(store_url) as (sql, events, _pos):
        sql(f"DELETE FROM {events}_chain")
    crm = CRM(store_url)
    crm.log_contact(customer, channel="email", direction="outbound", summary="call 2")
    tamper_position = 12
    with database(store_url) as (sql, events, pos):
        state = bytes(sql(f"SELECT state FROM {events} WHERE {pos} = 12").fetchone()[0])
        edited = state.replace(b'"channel":"email"', b'"channel":"phone"')
        assert edited != state
        sql(f"UPDATE {events} SET state = ? WHERE {pos} = 12", (edited,))
    with pytest.raises(TamperDetectedError) as caught:
        seal_log(crm)
    assert (caught.value.kind, caught.value.position) == ("modified", tamper_position)


@pytest.mark.postgres
def test_concurrent_writers_leave_an_intact_chain(postgres_url: str) -> None:
    crm, _ = history(postgres_url)
    errors: list[BaseException] = []

    # Opened one after another: creating the tables is not what this test is about.
    crms = [CRM(postgres_url) for _ in range(4)]

    def writer(n: int) -> None:
        try:
            mine = crms[n]
            cid = mine.register_customer(kind="individual", name=f"W {n}", code=f"W-{n}")
            for i in range(10):
                mine.log_contact(cid, channel="email", direction="outbound", summary=f"{n}/{i}")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    report = verify_log(crm)
    assert report.intact, report.summary()
    assert report.events == 11 + 4 * 12
