"""Two clocks per ticket (issue 10, "Service clocks" and "Smaller holes seen"): the response
level and the resolution level, breaches recorded by the late command itself, waiting on the
customer pausing the resolution clock, the idempotent scan; the marketing block of open
requests and incidents; field visit completion. Storage tests run on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest

from crm_domain import CRM, SlaPolicy
from crm_domain.customer import Customer
from crm_domain.errors import OpenComplaintError, TicketStateError
from crm_domain.sla import SlaClock, SlaLevel
from crm_domain.values import TicketStatus, VisitOutcome

Rejects = Callable[..., BaseException]
MON = datetime(2031, 3, 3, tzinfo=UTC)  # a Monday; the default calendar: Mon-Fri 09-17 UTC


def at(hours: float, days: int = 0) -> datetime:
    return MON + timedelta(days=days, hours=hours)


def events(app: CRM, cid: UUID) -> list[str]:
    return [type(e).__name__ for e in app.history(cid)]


def breaches(app: CRM, cid: UUID) -> list[Customer.TicketSlaBreached]:
    return [e for e in app.history(cid) if isinstance(e, Customer.TicketSlaBreached)]


def open_ticket(app: CRM, cid: UUID, kind: str = "inquiry", hour: float = 10) -> UUID:
    with app.context(occurred_at=at(hour)):
        return app.open_ticket(cid, kind=kind, subject="Where is my order", channel="phone")


def count(app: CRM) -> int:
    return app.app.recorder.max_notification_id() or 0


@pytest.fixture
def stored(store_url: str) -> Iterator[CRM]:
    crm = CRM(store_url)
    yield crm
    crm.close()


@pytest.fixture
def cid(app: CRM) -> UUID:
    return app.register_customer(kind="individual", name="Wang Fang", code="WF-1")


# ----- the response clock ----------------------------------------------------------------------


def test_a_response_within_target_meets_the_response_level(app: CRM, cid: UUID) -> None:
    ticket = open_ticket(app, cid)  # inquiry: a clear answer within 10 minutes
    t = app.customer(cid).ticket(ticket)
    assert t.response_due_at == at(10, 0) + timedelta(minutes=10)
    assert t.due_at > t.response_due_at  # resolution runs on its own clock
    with app.context(occurred_at=at(10.08)):  # answered in 5 minutes
        app.respond_to_ticket(cid, ticket, message="It ships today")
    assert app.record_sla_breaches(cid, now=at(12)) == []  # the response stopped its clock
    t = app.customer(cid).ticket(ticket)
    assert t.response_level() is SlaLevel.MET
    assert t.resolution_level(at(12)) is SlaLevel.RUNNING
    assert not t.response_breached
    assert not t.breached
    assert breaches(app, cid) == []


def test_a_late_first_response_records_its_breach_in_the_same_command(app: CRM, cid: UUID) -> None:
    ticket = open_ticket(app, cid)
    before = count(app)
    with app.context(occurred_at=at(10.5), correlation_id="late-answer"):
        app.respond_to_ticket(cid, ticket, message="Sorry for the wait")
    assert count(app) == before + 2  # the breach and the response, in one command
    assert events(app, cid)[-2:] == ["TicketSlaBreached", "TicketResponded"]
    breach = breaches(app, cid)[0]
    assert breach.clock is SlaClock.RESPONSE
    assert breach.due_at == at(10) + timedelta(minutes=10)
    assert breach.detected_at == at(10.5)
    assert breach.metadata["correlation_id"] == "late-answer"
    t = app.customer(cid).ticket(ticket)
    assert t.response_breached
    assert t.response_level() is SlaLevel.BREACHED
    assert not t.breached  # the resolution level is apart
    # A second answer is not a first response: nothing more is recorded.
    with app.context(occurred_at=at(11)):
        app.respond_to_ticket(cid, ticket, message="Here is the tracking number")
    assert len(breaches(app, cid)) == 1


def test_a_late_resolution_records_its_breach_in_the_same_command(app: CRM, cid: UUID) -> None:
    ticket = open_ticket(app, cid, kind="complaint")  # half a working day: due 14:00
    with app.context(occurred_at=at(10.2)):
        app.respond_to_ticket(cid, ticket, message="We are on it")
    before = count(app)
    with app.context(occurred_at=at(16)):
        app.resolve_ticket(cid, ticket, answer="Re-delivered")
    assert count(app) == before + 2
    assert events(app, cid)[-2:] == ["TicketSlaBreached", "TicketResolved"]
    [breach] = breaches(app, cid)
    assert (breach.clock, breach.due_at) == (SlaClock.RESOLUTION, at(14))
    t = app.customer(cid).ticket(ticket)
    assert t.status is TicketStatus.RESOLVED
    assert t.breached
    assert t.resolution_level() is SlaLevel.BREACHED
    assert t.response_level() is SlaLevel.MET
    # The scan of open tickets has nothing left to record for it.
    assert app.record_sla_breaches(cid, now=at(20, days=5)) == []


def test_resolving_in_time_records_no_breach_and_stops_both_clocks(app: CRM, cid: UUID) -> None:
    ticket = open_ticket(app, cid)
    with app.context(occurred_at=at(10.1)):
        app.resolve_ticket(cid, ticket, answer="9 to 5")  # the answer is the response too
    assert breaches(app, cid) == []
    t = app.customer(cid).ticket(ticket)
    assert t.response_level() is SlaLevel.MET
    assert t.resolution_level() is SlaLevel.MET


def test_resolving_late_without_a_response_breaches_both_clocks(app: CRM, cid: UUID) -> None:
    ticket = open_ticket(app, cid)
    with app.context(occurred_at=at(10, days=2)):
        app.resolve_ticket(cid, ticket, answer="Found it")
    assert {b.clock for b in breaches(app, cid)} == {SlaClock.RESPONSE, SlaClock.RESOLUTION}


def test_a_breach_recorded_by_the_scan_is_not_recorded_again_by_the_late_command(
    app: CRM, cid: UUID
) -> None:
    ticket = open_ticket(app, cid)
    assert app.record_sla_breaches(cid, now=at(10.5)) == [ticket]
    with app.context(occurred_at=at(11)):
        app.respond_to_ticket(cid, ticket, message="late")
    assert [b.clock for b in breaches(app, cid)] == [SlaClock.RESPONSE]


# ----- waiting on the customer -------------------------------------------------------------


def test_waiting_on_the_customer_pauses_the_resolution_clock(app: CRM, cid: UUID) -> None:
    ticket = open_ticket(app, cid, kind="complaint")  # due Monday 14:00
    with app.context(occurred_at=at(10.1)):
        app.respond_to_ticket(cid, ticket, message="Please send a photo of the damage")
    with app.context(occurred_at=at(11)):
        app.wait_on_customer(cid, ticket, reason="photo of the damage")
    t = app.customer(cid).ticket(ticket)
    assert t.waiting_on_customer
    assert t.clock_paused
    assert t.status is TicketStatus.OPEN
    assert t.resolution_level(at(15)) is SlaLevel.PAUSED
    assert app.record_sla_breaches(cid, now=at(15, days=1)) == []  # paused: nothing due
    with app.context(occurred_at=at(11, days=1)):  # Tuesday 11:00: 8 working hours later
        app.record_customer_reply(cid, ticket, message="photo attached")
    t = app.customer(cid).ticket(ticket)
    assert not t.waiting_on_customer
    assert t.due_at == at(14, days=1)  # Monday 14:00 moved on by 8 working hours
    with app.context(occurred_at=at(13, days=1)):
        app.resolve_ticket(cid, ticket, answer="Replaced")
    assert breaches(app, cid) == []
    assert events(app, cid).count("TicketAwaitingCustomer") == 1
    assert events(app, cid).count("TicketCustomerReplied") == 1


def test_resolving_while_waiting_does_not_count_the_pause(app: CRM, cid: UUID) -> None:
    ticket = open_ticket(app, cid, kind="complaint")  # due Monday 14:00
    with app.context(occurred_at=at(11)):
        app.wait_on_customer(cid, ticket, reason="which address?")
    with app.context(occurred_at=at(12, days=1)):  # 3 working hours before the wait
        app.resolve_ticket(cid, ticket, answer="customer confirmed by phone; delivered")
    assert [b.clock for b in breaches(app, cid)] == [SlaClock.RESPONSE]  # never answered
    assert not app.customer(cid).ticket(ticket).breached


def test_a_policy_that_does_not_pause_keeps_the_clock_running(cid: UUID) -> None:
    app = CRM("memory://", sla=SlaPolicy(pause_when_waiting=False))
    cid = app.register_customer(kind="individual", name="Li Na", code="LN-1")
    ticket = open_ticket(app, cid, kind="complaint")
    with app.context(occurred_at=at(11)):
        app.wait_on_customer(cid, ticket, reason="photo")
    assert not app.customer(cid).ticket(ticket).clock_paused
    assert app.record_sla_breaches(cid, now=at(15)) == [ticket]
    assert SlaClock.RESOLUTION in {b.clock for b in breaches(app, cid)}


def test_waiting_rules(app: CRM, rejects: Rejects, cid: UUID) -> None:
    ticket = open_ticket(app, cid, kind="complaint")
    rejects(TicketStateError, app.record_customer_reply, cid, ticket, message="hello")
    app.wait_on_customer(cid, ticket, reason="photo")
    rejects(TicketStateError, app.wait_on_customer, cid, ticket, reason="again", match="already")
    # Waiting when the resolution is already overdue records that breach first.
    other = open_ticket(app, cid, kind="complaint")
    with app.context(occurred_at=at(15)):
        app.wait_on_customer(cid, other, reason="photo")
    assert app.customer(cid).ticket(other).breached


# ----- the scan --------------------------------------------------------------------------------


def test_the_scan_records_breaches_of_open_tickets_once(stored: CRM) -> None:
    crm = stored
    a = crm.register_customer(kind="individual", name="A", code="SCAN-A")
    b = crm.register_customer(kind="individual", name="B", code="SCAN-B")
    crm.register_customer(kind="individual", name="C (no tickets)", code="SCAN-C")
    late = open_ticket(crm, a)
    answered = open_ticket(crm, b)
    with crm.context(occurred_at=at(10.05)):
        crm.respond_to_ticket(b, answered, message="on it")
    resolved = open_ticket(crm, b, kind="request")
    with crm.context(occurred_at=at(10.1)):
        crm.resolve_ticket(b, resolved, answer="done")

    assert crm.scan_sla_breaches(as_of=at(10.1)) == []
    found = crm.scan_sla_breaches(as_of=at(10.5))
    assert [(x.customer_id, x.ticket_id, x.clock) for x in found] == [(a, late, SlaClock.RESPONSE)]
    stored_events = count(crm)
    assert crm.scan_sla_breaches(as_of=at(10.5)) == []  # idempotent: run it every minute
    assert count(crm) == stored_events
    found = crm.scan_sla_breaches(as_of=at(12, days=2))
    assert {(x.ticket_id, x.clock) for x in found} == {
        (late, SlaClock.RESOLUTION),
        (answered, SlaClock.RESOLUTION),
    }
    assert crm.scan_sla_breaches(as_of=at(12, days=3)) == []
    assert crm.scan_sla_breaches(as_of=at(12, days=3), customer_ids=[a]) == []
    reloaded = CRM(crm.store.url)
    try:
        t = reloaded.customer(a).ticket(late)
        assert t.response_breached
        assert t.breached
    finally:
        reloaded.close()


def test_an_old_breach_event_without_a_clock_is_a_resolution_breach() -> None:
    state = {
        "originator_id": "00000000-0000-0000-0000-000000000001",
        "originator_version": 3,
        "timestamp": "2026-01-01T00:00:00+00:00",
        "ticket_id": "00000000-0000-0000-0000-000000000002",
        "due_at": "2026-01-01T00:00:00+00:00",
        "detected_at": "2026-01-01T01:00:00+00:00",
    }
    event = Customer.TicketSlaBreached.model_validate(state)
    assert event.clock is SlaClock.RESOLUTION
    opened = Customer.TicketOpened.model_fields["response_due_at"]
    assert opened.default is None  # tickets opened before: no response clock


def test_a_ticket_from_before_the_response_clock_has_no_response_level() -> None:
    customer = Customer.register(kind="individual", name="Old", code="OLD-1")
    ticket = customer.open_ticket(
        kind="inquiry", priority="normal", channel="web", subject="s", due_at=at(11)
    )
    t = customer.ticket(ticket)
    assert t.response_level(at(12)) is SlaLevel.NONE
    assert customer.sla_breaches_due(at(12)) == [(ticket, SlaClock.RESOLUTION)]


# ----- smaller holes: marketing, field visits --------------------------------------------------

SEND = {
    "channel": "email",
    "direction": "outbound",
    "summary": "Discount offer",
    "marketing_purpose": "promotions",
}


@pytest.mark.parametrize("kind", ["request", "incident", "complaint"])
def test_an_open_repair_request_or_incident_blocks_marketing(
    app: CRM, rejects: Rejects, cid: UUID, kind: str
) -> None:
    app.grant_consent(cid, purpose="promotions", channel="email")
    ticket = app.open_ticket(cid, kind=kind, subject="Printer broken", channel="phone")
    rejects(OpenComplaintError, app.log_contact, cid, match=f"open {kind}", **SEND)
    app.resolve_ticket(cid, ticket, answer="Repaired")
    app.log_contact(cid, **SEND)  # type: ignore[arg-type]


def test_an_open_inquiry_does_not_block_marketing(app: CRM, cid: UUID) -> None:
    app.grant_consent(cid, purpose="promotions", channel="email")
    app.open_ticket(cid, kind="inquiry", subject="Opening hours", channel="web")
    app.log_contact(cid, **SEND)  # type: ignore[arg-type]


def test_a_field_visit_is_completed_with_its_result(app: CRM, rejects: Rejects, cid: UUID) -> None:
    ticket = app.open_ticket(cid, kind="incident", subject="Server down", channel="phone")
    rejects(
        TicketStateError,
        app.complete_field_visit,
        cid,
        ticket,
        outcome="fixed",
        result="x",
        match="no visit is scheduled",
    )
    app.schedule_field_visit(cid, ticket, visit_at=at(10, days=1), engineer="engineer.ma")
    with app.context(actor="engineer.ma"):
        app.complete_field_visit(
            cid, ticket, outcome="follow_up_needed", result="power supply ordered"
        )
    done = [e for e in app.history(cid) if isinstance(e, Customer.FieldVisitCompleted)]
    assert [(e.engineer, e.outcome, e.result) for e in done] == [
        ("engineer.ma", VisitOutcome.FOLLOW_UP_NEEDED, "power supply ordered")
    ]
    t = app.customer(cid).ticket(ticket)
    assert (t.visits_open, t.visits_completed) == (0, 1)
    rejects(
        TicketStateError, app.complete_field_visit, cid, ticket, outcome="fixed", result="again"
    )
    rejects(Exception, app.complete_field_visit, cid, ticket, outcome="teleported", result="x")
    app.schedule_field_visit(cid, ticket, visit_at=at(10, days=3), engineer="engineer.ma")
    app.resolve_ticket(cid, ticket, answer="power supply replaced")
    app.close_ticket(cid, ticket)
    rejects(
        TicketStateError,
        app.complete_field_visit,
        cid,
        ticket,
        outcome="fixed",
        result="x",
        match="closed",
    )
