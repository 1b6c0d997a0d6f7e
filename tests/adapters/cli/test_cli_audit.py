"""``crm audit history|show|replay|denials``: what auditors ask, from the command line, on
SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from adapters.cli import main
from crm_domain import CRM, Money
from crm_domain.access import AccessPolicy, Grant
from crm_domain.errors import PermissionDeniedError


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _store(url: str) -> dict[str, Any]:
    """Two accounts; one deal staged before and after the cut-off time ``until``."""
    crm = CRM(url)
    try:
        with crm.context(actor="li.wei", source_system="crm-web", correlation_id="visit-1"):
            customer = crm.register_customer(kind="enterprise", name="Acme Ltd", code="ACME")
            account = crm.open_account(customer_id=customer, name="Acme Ltd")
            deal = crm.open_opportunity(
                account,
                name="40 workstations",
                owner="li.wei",
                expected_close=date(2027, 3, 31),
                amount=Money.of("92000", "CNY"),
            )
        with crm.context(actor="li.wei", command_id="stage-1"):
            crm.stage_opportunity(account, deal, stage="qualification")
        until = crm.history(account)[-1].timestamp
        with crm.context(actor="wang.fang"):
            crm.stage_opportunity(account, deal, stage="proposal")
            other = crm.open_account(customer_id=customer, name="Acme Services")
            crm.open_opportunity(
                other,
                name="support contract",
                owner="wang.fang",
                expected_close=date(2027, 6, 30),
                amount=Money.of("10000", "CNY"),
            )
    finally:
        crm.close()
    return {"customer": customer, "account": account, "deal": deal, "until": until}


def test_history_lists_every_event_with_metadata_and_field_changes(
    store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    s = _store(store_url)
    code, out, _ = run(
        ["audit", "history", str(s["account"]), "--store", store_url, "-f", "json"], capsys
    )
    assert code == 0
    entries = json.loads(out)
    assert [e["version"] for e in entries] == [1, 2, 3, 4]
    assert [e["event_type"] for e in entries] == [
        "Account.Opened",
        "Account.OpportunityOpened",
        "Account.OpportunityStaged",
        "Account.OpportunityStaged",
    ]
    staged = entries[2]
    assert (staged["actor"], staged["command_id"]) == ("li.wei", "stage-1")
    assert entries[0]["source_system"] == "crm-web"
    assert entries[0]["correlation_id"] == "visit-1"
    assert staged["recorded_at"]
    assert staged["occurred_at"]
    deal = s["deal"]
    assert {
        "field": f"opportunities.{deal}.stage",
        "before": "prospecting",
        "after": "qualification",
    } in staged["changes"]
    assert all(not c["field"].endswith("modified_on") for e in entries for c in e["changes"])
    # a customer by its code (in any case); a table for people
    code, out, _ = run(["audit", "history", "acme", "--store", store_url, "-f", "json"], capsys)
    assert code == 0
    assert json.loads(out)[0]["event_type"] == "Customer.Registered"
    code, out, _ = run(["audit", "history", "ACME", "--store", store_url], capsys)
    assert code == 0
    assert "History of ACME (1 events)" in out


def test_show_gives_the_state_as_of_a_time_or_a_version(
    store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    s = _store(store_url)
    account, deal = s["account"], s["deal"]
    until = s["until"].isoformat()
    code, out, _ = run(
        ["audit", "show", str(account), "--as-of", until, "--store", store_url, "-f", "json"],
        capsys,
    )
    assert code == 0
    shown = json.loads(out)
    assert shown["version"] == 3
    assert shown["state"]["opportunities"][str(deal)]["stage"] == "qualification"
    code, out, _ = run(
        ["audit", "show", str(account), "--version", "2", "--store", store_url, "-f", "json"],
        capsys,
    )
    assert json.loads(out)["state"]["opportunities"][str(deal)]["stage"] == "prospecting"
    code, out, _ = run(["audit", "show", str(account), "--store", store_url, "-f", "csv"], capsys)
    assert code == 0
    assert f"opportunities.{deal}.stage,proposal" in out
    # before the account existed; a time without an offset; a version it never had
    code, _, err = run(
        ["audit", "show", str(account), "--as-of", "2020-01-01T00:00+08:00", "--store", store_url],
        capsys,
    )
    assert (code, "no account" in err) == (1, True)
    code, _, err = run(
        ["audit", "show", "ACME", "--as-of", "2026-03-01T00:00", "--store", store_url], capsys
    )
    assert code == 1
    assert "offset" in err
    code, _, err = run(
        ["audit", "show", str(account), "--version", "9", "--store", store_url], capsys
    )
    assert code == 1
    assert "versions 1 to 4" in err
    code, _, err = run(["audit", "history", str(UUID(int=1)), "--store", store_url], capsys)
    assert code == 1
    assert "no customer or account" in err


def _open_deals(url: str, capsys: pytest.CaptureFixture[str], *extra: str) -> dict[str, int]:
    code, out, _ = run(["report", "pipeline", "--store", url, "-f", "json", *extra], capsys)
    assert code == 0, out
    stages = json.loads(out)[0]["rows"]
    return {row["stage"]: row["open"] for row in stages}


def test_replay_builds_the_read_models_as_of_a_time_apart_from_the_live_ones(
    store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    s = _store(store_url)
    live_before = _open_deals(store_url, capsys)
    assert live_before == {"prospecting": 1, "proposal": 1}
    into = f"sqlite:///{tmp_path / 'quarter-end.sqlite'}"
    code, out, _ = run(
        [
            "audit",
            "replay",
            "--until",
            s["until"].isoformat(),
            "--into",
            into,
            "--store",
            store_url,
        ],
        capsys,
    )
    assert code == 0, out
    assert "crm report ... --store" in out
    assert _open_deals(into, capsys) == {"qualification": 1}
    # the live read models are untouched, and still follow the store
    assert _open_deals(store_url, capsys) == live_before
    # a replay's read models are never caught up, even named as --views of the live store
    assert _open_deals(store_url, capsys, "--views", into) == {"qualification": 1}
    # replaying again replaces the earlier replay
    code, _, _ = run(
        ["audit", "replay", "--until", "2030-01-01T00:00Z", "--into", into, "--store", store_url],
        capsys,
    )
    assert code == 0
    assert _open_deals(into, capsys) == live_before


def test_replay_refuses_the_stores_own_database_and_another_store(
    sqlite_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _store(sqlite_url)
    other = f"sqlite:///{tmp_path / 'other.sqlite'}"
    _store(other)
    for into, words in ((sqlite_url, "the event store's own database"), (other, "holds an event")):
        code, _, err = run(
            [
                "audit",
                "replay",
                "--until",
                "2030-01-01T00:00Z",
                "--into",
                into,
                "--store",
                sqlite_url,
            ],
            capsys,
        )
        assert code == 2, err
        assert words in err
    code, _, err = run(
        ["audit", "replay", "--until", "yesterday", "--into", other, "--store", sqlite_url], capsys
    )
    assert code == 1
    assert "ISO 8601" in err


def test_denials_are_listed(sqlite_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    s = _store(sqlite_url)
    policy = AccessPolicy(
        grants=(Grant(commands=frozenset({"stage_opportunity"}), roles=frozenset({"sales"})),)
    )
    crm = CRM(sqlite_url, policy=policy)
    try:
        with crm.context(actor="intern", roles=["trainee"]), pytest.raises(PermissionDeniedError):
            crm.stage_opportunity(s["account"], s["deal"], stage="negotiation")
    finally:
        crm.close()
    code, out, _ = run(["audit", "denials", "--store", sqlite_url, "-f", "json"], capsys)
    assert code == 0
    (row,) = json.loads(out)[0]["rows"]
    assert (row["actor"], row["roles"], row["command"], row["target"]) == (
        "intern",
        "trainee",
        "stage_opportunity",
        str(s["account"]),
    )
    code, out, _ = run(["audit", "denials", "--store", sqlite_url, "--actor", "nobody"], capsys)
    assert code == 0
    assert "nothing was denied" in out


def test_replay_into_a_postgresql_database(
    sqlite_url: str, postgres_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    s = _store(sqlite_url)
    code, out, _ = run(
        [
            "audit",
            "replay",
            "--until",
            s["until"].isoformat(),
            "--into",
            postgres_url,
            "--store",
            sqlite_url,
        ],
        capsys,
    )
    assert code == 0, out
    assert _open_deals(postgres_url, capsys) == {"qualification": 1}
    assert _open_deals(sqlite_url, capsys) == {"prospecting": 1, "proposal": 1}


@pytest.mark.parametrize(
    "argv",
    [
        ["audit", "history", "ACME"],
        ["audit", "show", "ACME", "--version", "1"],
        ["audit", "denials"],
        ["audit", "replay", "--until", "2030-01-01T00:00Z", "--into", "sqlite:///{tmp}/q.sqlite"],
    ],
)
def test_audit_commands_refuse_a_missing_store(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    absent = f"sqlite:///{tmp_path / 'absent.sqlite'}"
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    code, _, err = run([*argv, "--store", absent], capsys)
    assert code == 2
    assert "no store at" in err
    assert not (tmp_path / "absent.sqlite").exists()
