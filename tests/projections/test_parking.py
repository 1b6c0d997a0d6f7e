"""A read model that cannot apply an event parks (the others go on); retry and skip
resume it, and a skip is recorded for auditors. On SQLite and PostgreSQL."""

from __future__ import annotations

import time
from typing import Any

import pytest
from sqlalchemy import Column, MetaData, String, Table, Uuid, delete, select

from crm_domain.application import CRM
from crm_domain.customer import Customer
from crm_domain.errors import InvalidCommandError, ReadModelParkedError
from projections.customer360 import customers
from projections.events import ALL_EVENTS
from projections.parking import retry, skip, skips
from projections.readmodel import ReadModel, handles
from projections.runner import ReadModelRunner, follow, open_view
from projections.status import status

fussy_metadata = MetaData()
fussy_rows = Table(
    "fussy_customers",
    fussy_metadata,
    Column("customer_id", Uuid, primary_key=True),
    Column("name", String(100), nullable=False),
)

#: Names the fussy read model refuses (a bug the tests "deploy" and "fix").
REFUSED: set[str] = set()


class Fussy(ReadModel):
    """Keeps customers' names; refuses the names in ``REFUSED`` (a read model with a bug)."""

    name = "fussy"
    tables = (fussy_rows,)
    ignores = tuple(c for c in ALL_EVENTS if c is not Customer.Registered)

    def __init__(self, session: Any) -> None:
        super().__init__(session)
        self.rows = self.cache(fussy_rows)

    @handles(Customer.Registered)
    def registered(self, e: Customer.Registered, position: int) -> None:
        if e.name in REFUSED:
            raise ValueError(f"no {e.name} here")
        self.rows.put({"customer_id": e.originator_id, "name": e.name}, new=True)


@pytest.fixture(autouse=True)
def _nothing_refused() -> Any:
    REFUSED.clear()
    yield
    REFUSED.clear()


def _wait(runner: ReadModelRunner, name: str, position: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while (runner.view.position(name, runner.app_name) or 0) < position:
        assert time.monotonic() < deadline, f"{name} did not reach {position}"
        runner.run_forever(timeout=0.05)  # re-raises the runner's error: it must not die


def _fussy_names(store_url: str) -> list[str]:
    view = open_view(store_url, read_models=[Fussy])
    try:
        with view.engine.connect() as conn:
            return sorted(conn.execute(select(fussy_rows.c.name)).scalars())
    finally:
        view.engine.dispose()


def test_a_row_deleted_by_hand_parks_customer360_only_and_status_shows_it(
    store_url: str,
) -> None:
    app = CRM(store_url)
    alice = app.register_customer(kind="individual", name="Alice", code="A")
    with follow(store_url) as runner:
        runner.wait_until_current(timeout=20)
    view = open_view(store_url, read_models=["customer360"])
    with view.engine.begin() as conn:
        conn.execute(delete(customers).where(customers.c.customer_id == alice))
    view.engine.dispose()
    before = app.app.recorder.max_notification_id() or 0
    app.log_contact(alice, channel="sms", direction="inbound", summary="hi")
    head = app.app.recorder.max_notification_id() or 0
    with follow(store_url) as runner:
        for name in ("timeline", "pipeline", "service_desk", "customer_value", "handover"):
            _wait(runner, name, head)
        assert not runner.is_interrupted.is_set()
        assert runner.view.position("customer360", app.app.name) == before
    found = {s.name: s for s in status(store_url)}
    parked = found["customer360"].parked
    assert parked is not None
    assert found["customer360"].state == "parked"
    assert (parked.position, parked.originator_id) == (head, alice)
    assert parked.topic.endswith("Customer.ContactLogged")
    assert f"no customer {alice}" in parked.error
    assert "verify customer360 --repair" in parked.error
    assert found["customer360"].position == before
    assert not found["customer360"].current
    assert all(s.state == "current" for n, s in found.items() if n != "customer360")
    app.close()


def test_retry_after_a_fix_resumes_and_a_retry_before_it_parks_again(store_url: str) -> None:
    app = CRM(store_url)
    app.register_customer(kind="individual", name="Alice", code="A")
    REFUSED.add("Mallory")
    app.register_customer(kind="individual", name="Mallory", code="M")
    app.register_customer(kind="individual", name="Bob", code="B")
    head = app.app.recorder.max_notification_id() or 0
    with follow(store_url, read_models=[Fussy, "timeline"]) as runner:
        _wait(runner, "timeline", head)
        first = runner.view.control_states()["fussy"].parked
    assert first is not None
    assert "no Mallory here" in first.error
    assert _fussy_names(store_url) == ["Alice"]

    again = retry(store_url, Fussy)  # not fixed yet
    assert again.parked is not None
    assert again.parked.position == first.position
    assert again.parked.parked_at > first.parked_at
    assert again.position == first.position - 1

    REFUSED.clear()  # the fix is deployed
    resumed = retry(store_url, Fussy)
    assert (resumed.parked, resumed.position, resumed.state) == (None, head, "current")
    assert _fussy_names(store_url) == ["Alice", "Bob", "Mallory"]
    with pytest.raises(ReadModelParkedError, match="not parked"):
        retry(store_url, Fussy)
    app.close()


def test_skip_moves_past_the_event_and_is_recorded_for_auditors(store_url: str) -> None:
    app = CRM(store_url)
    REFUSED.add("Mallory")
    app.register_customer(kind="individual", name="Mallory", code="M")
    app.register_customer(kind="individual", name="Bob", code="B")
    head = app.app.recorder.max_notification_id() or 0
    with follow(store_url, read_models=[Fussy]) as runner:
        deadline = time.monotonic() + 20
        while runner.view.control_states()["fussy"].parked is None:
            assert time.monotonic() < deadline
            runner.run_forever(timeout=0.05)
        parked = runner.view.control_states()["fussy"].parked
    assert parked is not None
    with pytest.raises(ReadModelParkedError, match=f"parked at position {parked.position}"):
        skip(store_url, Fussy, position=parked.position + 1, reason="typo")
    with pytest.raises(InvalidCommandError, match="reason"):
        skip(store_url, Fussy, position=parked.position, reason="  ")
    assert skips(store_url, "fussy") == []

    done = skip(
        store_url, Fussy, position=parked.position, reason="test customer", actor="ops-anna"
    )
    assert (done.parked, done.position) == (None, head)
    assert _fussy_names(store_url) == ["Bob"]
    (audit,) = skips(store_url, "fussy")
    assert (audit.read_model, audit.position, audit.actor, audit.reason) == (
        "fussy",
        parked.position,
        "ops-anna",
        "test customer",
    )
    assert audit.topic == parked.topic
    assert audit.error == parked.error
    assert audit.originator_id == parked.originator_id
    assert audit.skipped_at is not None
    app.close()
