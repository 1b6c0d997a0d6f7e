"""Schema evolution: events and snapshots as stored by an earlier release load with today's
code (through the mapper, where upcasters run), give today's model, and rebuild the read
models to that release's own figures.

The fixture (tests/fixtures/schema_evolution/events-44b4860.json.gz) is the stored history
of release 44b4860's demo (40 customers), written by that release; generate.py beside it
says how. Should an event or an aggregate's snapshot state change shape, this test fails
until the change brings its upcaster (``class_version`` and ``upcast_vN_vM``, see
:mod:`crm_domain.infrastructure.persistence`) or a default for the new field.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.persistence import StoredEvent
from sqlalchemy import text

from crm_domain import CRM
from crm_domain.account import Account
from crm_domain.customer import Customer
from crm_domain.eventmodel import DomainEvent
from crm_domain.timetravel import fold, state_of
from projections.rebuild import rebuild
from projections.runner import open_view

FIXTURE = (
    Path(__file__).resolve().parents[1] / "fixtures" / "schema_evolution" / "events-44b4860.json.gz"
)


@pytest.fixture(scope="module")
def stored() -> dict[str, Any]:
    with gzip.open(FIXTURE, "rt", encoding="utf-8") as f:
        document: dict[str, Any] = json.load(f)
    return document


def _stored_event(row: dict[str, Any]) -> StoredEvent:
    return StoredEvent(
        originator_id=UUID(row["originator_id"]),
        originator_version=row["originator_version"],
        topic=row["topic"],
        state=json.dumps(row["state"]).encode(),
    )


def _load(url: str, stored: dict[str, Any]) -> CRM:
    """A store holding the old release's events and snapshots, byte for byte as JSON."""
    crm = CRM(url)
    crm.app.recorder.insert_events([_stored_event(e) for e in stored["events"]])
    assert crm.app.snapshots is not None
    crm.app.snapshots.recorder.insert_events([_stored_event(s) for s in stored["snapshots"]])
    return crm


def test_the_fixture_is_small_and_as_described(stored: dict[str, Any]) -> None:
    assert FIXTURE.stat().st_size < 1_000_000
    assert len(stored["events"]) == 1136
    assert len(stored["snapshots"]) == 169
    assert [e["id"] for e in stored["events"]] == list(range(1, 1137))


def test_every_old_event_and_snapshot_decodes_into_todays_classes(
    stored: dict[str, Any],
) -> None:
    crm = _load("memory://", stored)
    mapper = crm.app.mapper
    for row in stored["events"]:
        event = mapper.to_domain_event(_stored_event(row))
        assert isinstance(event, DomainEvent)
        # the path projections take (stored JSON upcast, not validated) agrees
        cls, state = mapper.to_event_state(_stored_event(row))  # type: ignore[attr-defined]
        assert cls is type(event)
        assert state["originator_version"] == row["originator_version"]
    for row in stored["snapshots"]:
        snapshot = mapper.to_domain_event(_stored_event(row))
        assert isinstance(snapshot.mutate(None), Customer | Account)


def test_old_aggregates_load_as_todays_model_from_snapshots_and_from_events(
    store_url: str, stored: dict[str, Any]
) -> None:
    crm = _load(store_url, stored)
    try:
        ids = {UUID(e["originator_id"]) for e in stored["events"] if "CodeClaim" not in e["topic"]}
        kinds = set()
        for aggregate_id in ids:
            loaded = crm._get(aggregate_id)  # the latest snapshot plus the events after it
            assert isinstance(loaded, Customer | Account)
            kinds.add(type(loaded))
            assert state_of(loaded) == state_of(fold(crm.history(aggregate_id)))
        assert kinds == {Customer, Account}
        # and the CRM works on them today: a lookup by code, a command, a change list
        first = next(e for e in stored["events"] if e["topic"].endswith("Customer.Registered"))
        code = first["state"]["code"]
        customer = crm.customer_by_code(code)
        crm.log_contact(customer.id, channel="phone", direction="inbound", summary="still here")
        assert crm.changes(customer.id)[-1].event_type == "Customer.ContactLogged"
        assert crm.audit_history(customer.id)[0].event_type == "Customer.Registered"
    finally:
        crm.close()


def test_the_read_models_rebuild_from_the_old_history_to_the_old_figures(
    sqlite_url: str, stored: dict[str, Any]
) -> None:
    _load(sqlite_url, stored).close()
    result = rebuild(sqlite_url)
    assert result.events == 1136
    view = open_view(sqlite_url)
    try:
        with view.engine.connect() as conn:
            pipeline = conn.execute(
                text(
                    "SELECT stage, status, count(*) FROM pipeline_opportunities "
                    "GROUP BY stage, status ORDER BY stage, status"
                )
            ).all()
            lifecycle = conn.execute(
                text(
                    "SELECT lifecycle_stage, count(*) FROM customer360 "
                    "GROUP BY lifecycle_stage ORDER BY lifecycle_stage"
                )
            ).all()
    finally:
        view.engine.dispose()
    figures = stored["read_model_figures"]
    assert [list(r) for r in pipeline] == figures["pipeline"]
    assert [list(r) for r in lifecycle] == figures["customer360"]


def test_old_events_go_through_the_upcasters_of_a_newer_class_version(
    stored: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Were Customer.Registered at class version 2 today, its old (version 1) events would be
    upcast on read, by the aggregate and by the read models' path alike."""
    calls: list[str] = []

    def upcast_v1_v2(state: dict[str, Any]) -> None:
        calls.append(state["code"])
        state["name"] = state["name"].upper()

    monkeypatch.setattr(Customer.Registered, "class_version", 2, raising=False)
    monkeypatch.setattr(
        Customer.Registered, "upcast_v1_v2", staticmethod(upcast_v1_v2), raising=False
    )
    crm = _load("memory://", stored)
    registered = [e for e in stored["events"] if e["topic"].endswith("Customer.Registered")]
    first = registered[0]
    event = crm.history(UUID(first["originator_id"]))[0]
    assert isinstance(event, Customer.Registered)
    assert event.name == first["state"]["name"].upper()
    _, state = crm.app.mapper.to_event_state(_stored_event(first))  # type: ignore[attr-defined]
    assert state["name"] == first["state"]["name"].upper()
    assert first["state"]["code"] in calls
