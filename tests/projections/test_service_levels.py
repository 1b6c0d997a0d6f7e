"""The service desk read model shows the response and the resolution level of each ticket
apart (issue 10, "Service clocks"), breaches of tickets no longer open included, the
waiting-on-customer status and completed field visits; events from SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from projection_history import project

from crm_domain.application import CRM
from crm_domain.sla import SlaClock
from projections.service_desk import ServiceDeskQueries

MON = datetime(2031, 3, 3, tzinfo=UTC)  # a Monday; the default calendar, Mon-Fri 09-17 UTC


def at(hours: float, days: int = 0) -> datetime:
    return MON + timedelta(days=days, hours=hours)


@pytest.fixture
def crm(store_url: str) -> Iterator[CRM]:
    app = CRM(store_url)
    yield app
    app.close()


def test_response_and_resolution_levels_apart(crm: CRM) -> None:
    cid = crm.register_customer(kind="individual", name="Wang Fang", code="WF-1")
    with crm.context(occurred_at=at(10)):
        on_time = crm.open_ticket(cid, kind="inquiry", subject="on time", channel="phone")
        late_answer = crm.open_ticket(cid, kind="inquiry", subject="late answer", channel="web")
        late_fix = crm.open_ticket(cid, kind="complaint", subject="late fix", channel="phone")
        waiting = crm.open_ticket(cid, kind="complaint", subject="waiting", channel="email")
        visit = crm.open_ticket(cid, kind="incident", subject="visit", channel="phone")
    with crm.context(occurred_at=at(10.05)):
        crm.respond_to_ticket(cid, on_time, message="here you are")
        crm.respond_to_ticket(cid, late_fix, message="on it")
        crm.respond_to_ticket(cid, waiting, message="photo please")
        crm.respond_to_ticket(cid, visit, message="engineer coming")
        crm.wait_on_customer(cid, waiting, reason="photo")
        crm.schedule_field_visit(cid, visit, visit_at=at(11), engineer="engineer.ma")
    with crm.context(occurred_at=at(10.5)):
        crm.respond_to_ticket(cid, late_answer, message="sorry for the wait")
    with crm.context(occurred_at=at(11.5)):
        crm.complete_field_visit(cid, visit, outcome="fixed", result="fan replaced")
    with crm.context(occurred_at=at(16)):
        crm.resolve_ticket(cid, late_fix, answer="re-delivered")  # due 14:00: late

    view = project(crm, ["service_desk"])
    q = ServiceDeskQueries(view.engine)
    lines = {t.subject: t for t in q.open_tickets().items}
    resolved = q.breached(open_only=False, clock=SlaClock.RESOLUTION).items
    assert [t.subject for t in resolved] == ["late fix"]  # a breach of a resolved ticket
    assert (resolved[0].status, resolved[0].response_level, resolved[0].resolution_level) == (
        "resolved",
        "met",
        "breached",
    )
    answer = lines["late answer"]
    assert (answer.response_level, answer.resolution_level) == ("breached", "running")
    assert answer.response_breached
    assert not answer.breached
    assert (lines["on time"].response_level, lines["on time"].resolution_level) == (
        "met",
        "running",
    )
    assert lines["waiting"].waiting_on_customer
    assert lines["waiting"].resolution_level == "paused"
    assert lines["visit"].visits_completed == 1
    assert [t.subject for t in q.breached(clock="response").items] == ["late answer"]
    assert {t.subject for t in q.breached(open_only=False).items} == {"late answer", "late fix"}

    levels = q.service_levels()
    assert levels.response["met"] == 4
    assert levels.response["breached"] == 1
    assert levels.resolution["breached"] == 1
    assert levels.resolution["paused"] == 1
    assert levels.resolution["running"] == 3
    assert levels.model_dump()["response"]["met"] == 4

    # The customer replies: the ticket runs again, due later by the time it waited.
    with crm.context(occurred_at=at(11, days=1)):
        crm.record_customer_reply(cid, waiting, message="photo attached")
    view = project(crm, ["service_desk"], view=view)
    line = next(t for t in q.open_tickets().items if t.subject == "waiting")
    assert not line.waiting_on_customer
    assert line.resolution_level == "running"
    assert line.due_at == crm.customer(cid).ticket(waiting).due_at
    assert line.due_at > at(14)
    assert "response_level" in line.model_dump()  # the JSON of a report carries both levels
