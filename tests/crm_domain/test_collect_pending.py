"""``collect_pending`` collects a save's events as eventsourcing's ``ProcessingEvent``
does (same events, same order, same aggregates and keyword arguments), without the
library's runtime protocol checks per aggregate."""

from __future__ import annotations

from typing import Any

from eventsourcing.application import ProcessingEvent

from crm_domain import Account, Customer
from crm_domain.bookkeeping import CommandProcessed
from crm_domain.infrastructure.eventstore import collect_pending


def _objects() -> list[Any]:
    customer = Customer.register(kind="individual", name="Chen", code="P-1")
    customer.assign_grade(grade="B")
    account = Account.open(customer_id=customer.id, name="Chen's")
    record = CommandProcessed(command_id="c-1", command="x", result={}, request_hash="")
    loose = Customer.register(kind="individual", name="Wu", code="P-2")
    event = loose.collect_events()[0]  # an event given by itself, between aggregates
    return [customer, None, event, account, record]


def _shape(pe: ProcessingEvent[Any], objs: list[Any]) -> tuple[Any, ...]:
    position = {id(o): n for n, o in enumerate(objs)}
    events = [(type(e).__qualname__, e.originator_version) for e in pe.events]
    return events, [position[id(a)] for a in pe.aggregates.values()], pe.saved_kwargs


def test_the_same_events_in_the_same_order_as_the_library() -> None:
    theirs, ours = _objects(), _objects()
    library: ProcessingEvent[Any] = ProcessingEvent()
    library.collect_events(*theirs, note=1)
    collected = collect_pending(ours, {"note": 1})
    assert _shape(collected, ours) == _shape(library, theirs)
    assert _shape(collected, ours) == (
        [
            ("Customer.Registered", 1),
            ("Customer.GradeAssigned", 2),
            ("Customer.Registered", 1),  # the loose event, in its place
            ("Account.Opened", 1),
            ("CommandProcessed.Recorded", 1),
        ],
        [0, 3, 4],
        {"note": 1},
    )
    assert collected.events[0].originator_id == ours[0].id
    assert all(not o.collect_events() for o in ours if hasattr(o, "collect_events"))
