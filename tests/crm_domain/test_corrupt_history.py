"""Stored histories that cannot be replayed, and ids that are not ids, fail with the
library's typed errors naming the aggregate (and the version), on SQLite and PostgreSQL:
never with eventsourcing's or pydantic's or the database driver's own exceptions."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any
from uuid import UUID, uuid4

import orjson
import pytest
from eventsourcing.persistence import StoredEvent

from crm_domain import CRM
from crm_domain.errors import (
    AccountNotFoundError,
    CorruptHistoryError,
    CustomerNotFoundError,
    NotFoundError,
)


@pytest.fixture
def crm(store_url: str) -> Iterator[CRM]:
    app = CRM(store_url, snapshot_interval=100)
    yield app
    app.close()


def _copy_history(
    crm: CRM, source: UUID, edit: Callable[[list[dict[str, Any]]], list[tuple[int, bytes]]]
) -> UUID:
    """Store a copy of ``source``'s history under a new id, as ``edit`` rewrites it:
    ``edit`` gets the events' JSON states and returns (row version, stored bytes)."""
    target = uuid4()
    stored = crm.app.recorder.select_events(source)
    states = []
    for s in stored:
        state = orjson.loads(s.state)
        state["originator_id"] = str(target)
        states.append(state)
    rows = edit(states)
    topics = {s.originator_version: s.topic for s in stored}
    crm.app.recorder.insert_events(
        [
            StoredEvent(
                originator_id=target,
                originator_version=version,
                topic=topics.get(version, stored[-1].topic),
                state=data,
            )
            for version, data in rows
        ]
    )
    return target


@pytest.fixture
def source(crm: CRM) -> UUID:
    cid = crm.register_customer(kind="individual", name="Hist", code="HIST-1")
    for i in range(3):
        crm.log_contact(cid, channel="phone", direction="inbound", summary=f"call {i}")
    return cid  # versions 1..4


def test_a_gap_in_a_history_is_corrupt_history(crm: CRM, source: UUID) -> None:
    broken = _copy_history(
        crm,
        source,
        lambda states: [
            (s["originator_version"], orjson.dumps(s))
            for s in states
            if s["originator_version"] != 3
        ],
    )
    with pytest.raises(CorruptHistoryError) as info:
        crm.customer(broken)
    assert (info.value.aggregate_id, info.value.position) == (broken, 3)
    assert str(broken) in str(info.value)
    with pytest.raises(CorruptHistoryError):
        crm.log_contact(broken, channel="sms", direction="inbound", summary="x")


def test_two_swapped_versions_are_corrupt_history(crm: CRM, source: UUID) -> None:
    def swap(states: list[dict[str, Any]]) -> list[tuple[int, bytes]]:
        rows = [(s["originator_version"], orjson.dumps(s)) for s in states]
        rows[1], rows[2] = (2, rows[2][1]), (3, rows[1][1])
        return rows

    broken = _copy_history(crm, source, swap)
    with pytest.raises(CorruptHistoryError) as info:
        crm.customer(broken)
    assert info.value.position == 2


def test_invalid_stored_json_is_corrupt_history(crm: CRM, source: UUID) -> None:
    def spoil(states: list[dict[str, Any]]) -> list[tuple[int, bytes]]:
        rows = [(s["originator_version"], orjson.dumps(s)) for s in states]
        bad = dict(states[1], channel="carrier-pigeon", summary=None)
        rows[1] = (2, orjson.dumps(bad))
        return rows

    broken = _copy_history(crm, source, spoil)
    for read in (crm.customer, crm.history):
        with pytest.raises(CorruptHistoryError) as info:
            read(broken)
        assert (info.value.aggregate_id, info.value.position) == (broken, 2)


@pytest.mark.parametrize("ref", ["not-a-uuid", "", "1234"])
def test_a_non_uuid_id_is_not_found(crm: CRM, ref: str) -> None:
    with pytest.raises(CustomerNotFoundError, match="no customer"):
        crm.customer(ref)  # type: ignore[arg-type]
    with pytest.raises(AccountNotFoundError):
        crm.account(ref)  # type: ignore[arg-type]
    with pytest.raises(NotFoundError):
        crm.history(ref)  # type: ignore[arg-type]
