"""The view's guarantees: exactly once per read model, independent positions, and a
clear stop at an event a read model cannot handle, with nothing after it stored."""

from __future__ import annotations

import time
from typing import Any

import pytest
from eventsourcing.persistence import IntegrityError, Tracking
from projection_history import Known, project
from sqlalchemy import func, select

from crm_domain.application import CRM
from crm_domain.customer import Customer
from crm_domain.errors import UnknownReadModelError
from projections.customer360 import Customer360, Customer360Queries
from projections.events import ALL_EVENTS, BOOKKEEPING_EVENTS
from projections.readmodel import LoggedEvent, ReadModel, handles
from projections.registry import all_read_models, select_read_models
from projections.runner import follow, open_view
from projections.timeline import ActivityTimeline, entries


@pytest.mark.parametrize("model", list(all_read_models().values()), ids=lambda m: m.name)
def test_every_stored_event_is_handled_or_deliberately_ignored(model: type[ReadModel]) -> None:
    from eventsourcing.utils import get_topic

    topics = {get_topic(c) for c in ALL_EVENTS}
    handled, ignored = model.handled_topics(), model.ignored_topics()
    assert not handled & ignored, "a topic is both handled and ignored"
    assert topics - handled - ignored == set()
    assert handled | ignored <= topics


def test_unknown_read_model_names_are_refused() -> None:
    with pytest.raises(UnknownReadModelError, match="known: customer360"):
        select_read_models(["customer306"])


def _timeline_rows(view: Any) -> int:
    with view.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(entries)).scalar_one())


def test_a_batch_applied_twice_is_applied_once(crm: CRM, known: Known) -> None:
    view = project(crm, ["timeline"])
    before = _timeline_rows(view)
    page = crm.app.recorder.select_notifications(start=1, limit=1000)
    view.record(crm.app.name, [LoggedEvent(n, mapper=crm.app.mapper) for n in page])  # replayed
    facts = [n for n in page if "bookkeeping" not in n.topic]
    assert _timeline_rows(view) == before == len(facts) == len(page) - 2
    assert view.position("timeline", crm.app.name) == page[-1].id


def test_tracking_only_moves_forward(crm: CRM) -> None:
    """The stock runner's ``insert_tracking``: a position moves every read model forward,
    never back or to where it already is."""
    view = open_view("memory://", read_models=[Customer360, ActivityTimeline])
    view.insert_tracking(Tracking(crm.app.name, 5))
    view.insert_tracking(Tracking(crm.app.name, 9))
    assert view.positions(crm.app.name) == {"customer360": 9, "timeline": 9}
    for stale in (9, 4):
        with pytest.raises(IntegrityError, match="already at 9"):
            view.insert_tracking(Tracking(crm.app.name, stale))
    assert view.positions(crm.app.name) == {"customer360": 9, "timeline": 9}


def test_read_models_keep_their_own_positions(crm: CRM, known: Known) -> None:
    view = open_view("memory://", read_models=[Customer360, ActivityTimeline])
    head = crm.app.recorder.max_notification_id()
    first = crm.app.recorder.select_notifications(start=1, limit=10)
    # timeline alone has seen the first ten notifications
    only_timeline = open_view("memory://", read_models=[ActivityTimeline])
    assert only_timeline is not view
    view.record(crm.app.name, [LoggedEvent(n, mapper=crm.app.mapper) for n in first])
    view.drop_read_model("customer360")
    assert view.positions(crm.app.name) == {"customer360": None, "timeline": 10}
    assert view.max_tracking_id(crm.app.name) is None
    project(crm, view=view)  # one pass: customer360 from the start, timeline from 11
    assert view.positions(crm.app.name) == {"customer360": head, "timeline": head}
    assert _timeline_rows(view) == head - 2  # all but the two customer-code claims
    assert Customer360Queries(view.engine).get(known.acme).contacts_logged == 3


class PickyCustomers(ReadModel):
    """Handles registrations, refuses a customer called "Mallory", ignores only bookkeeping."""

    name = "picky"
    tables = Customer360.tables
    ignores = BOOKKEEPING_EVENTS

    @handles(Customer.Registered)
    def registered(self, e: Customer.Registered, position: int) -> None:
        if e.name == "Mallory":
            raise ValueError("no Mallory here")
        Customer360(self.session).registered(e, position)
        self.session.flush()

    def finish(self) -> None:
        super().finish()


def test_an_unhandled_event_parks_the_read_model_naming_event_position_and_error() -> None:
    app = CRM("memory://")
    first = app.register_customer(kind="individual", name="Alice", code="A")
    app.log_contact(first, channel="sms", direction="inbound", summary="hi")
    view = open_view("memory://", read_models=[PickyCustomers])
    logged = [
        LoggedEvent(n, mapper=app.app.mapper)
        for n in app.app.recorder.select_notifications(start=1, limit=100)
    ]
    contact = next(e for e in logged if e.topic.endswith("Customer.ContactLogged"))
    view.record(app.app.name, logged)  # parks, does not raise
    parked = view.control_states()["picky"].parked
    assert parked is not None
    assert (parked.position, parked.originator_id) == (contact.position, first)
    assert parked.topic.endswith("Customer.ContactLogged")
    assert "not listed as ignored" in parked.error
    # everything before the event is committed, nothing from it on
    assert view.position("picky", app.app.name) == contact.position - 1


def test_a_failing_handler_parks_its_read_model_and_the_runner_goes_on() -> None:
    app = CRM("memory://")
    app.register_customer(kind="individual", name="Alice", code="A")
    with follow(app.app, read_models=[PickyCustomers, ActivityTimeline]) as runner:
        runner.wait_until_current(timeout=5)
        good = runner.head()
        mallory = app.register_customer(kind="individual", name="Mallory", code="M")
        app.log_contact(mallory, channel="sms", direction="inbound", summary="hi")
        head = runner.head()
        deadline = time.monotonic() + 10
        while runner.view.position("timeline", app.app.name) != head:
            assert time.monotonic() < deadline, "the timeline did not reach the head"
            runner.run_forever(timeout=0.05)  # re-raises a runner error, if any
        assert not runner.is_interrupted.is_set()
        parked = runner.view.control_states()["picky"].parked
        assert parked is not None
        assert "no Mallory here" in parked.error
        assert parked.topic.endswith("Customer.Registered")
        assert parked.position == good + 1
        assert runner.view.position("picky", app.app.name) == good


def test_the_stock_runner_loop_also_works_one_event_per_transaction(crm: CRM, known: Known) -> None:
    from eventsourcing.projection import ProjectionRunner

    from projections.projection import ReadModelProjection
    from projections.runner import ProjectionTarget, sharing
    from projections.views import view_class_for

    env = {**ProjectionTarget("memory://", "sqlite:///:memory:").env(), **dict(crm.app.env)}
    env["PROJECTIONS_PERSISTENCE_MODULE"] = "eventsourcing_sqlalchemy"
    env["PROJECTIONS_SQLALCHEMY_URL"] = "sqlite:///:memory:"
    with ProjectionRunner(
        application_class=sharing(crm.app),
        projection_class=ReadModelProjection,
        view_class=view_class_for([Customer360]),
        env=env,
    ) as runner:
        runner.wait(crm.app.recorder.max_notification_id(), timeout=10)
        assert Customer360Queries(runner.view.engine).get(known.acme).open_tickets == 1


def test_replacing_tables_on_sqlite_takes_the_write_lock_before_it_reads(
    sqlite_url: str,
) -> None:
    """The DROP and CREATE run in one transaction (an explicit BEGIN: ``sqlite3`` opens
    none before DDL), which takes the write lock first: the drops' existence checks read,
    and a transaction that had read could not write any more (WAL: a stale snapshot, "database
    is locked" at once) had another connection committed in between, as a live runner or
    the application's commands do during a rebuild."""
    import sqlite3

    from sqlalchemy import event

    from crm_domain.infrastructure.storage import StoreURL

    view = open_view(sqlite_url, read_models=["timeline"])
    other = sqlite3.connect(StoreURL.parse(sqlite_url).sqlite_path, timeout=0)
    other.isolation_level = None
    other.execute("PRAGMA journal_mode=WAL")  # as a CRM store is
    other.execute("CREATE TABLE elsewhere (x INTEGER)")
    seen: list[str] = []

    def write_elsewhere(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().startswith("DROP TABLE") and not seen:
            try:
                other.execute("INSERT INTO elsewhere VALUES (1)")
                seen.append("committed elsewhere")
            except sqlite3.OperationalError as exc:
                seen.append(str(exc))

    event.listen(view.engine, "before_cursor_execute", write_elsewhere)
    try:
        view.drop_read_model("timeline")
    finally:
        event.remove(view.engine, "before_cursor_execute", write_elsewhere)
        other.close()
        view.engine.dispose()
    assert seen == ["database is locked"]  # the other writer waits for the replacement
