"""Stored events keep working when an event class changes shape (class_version + upcast)."""

from __future__ import annotations

from typing import Any, ClassVar
from uuid import uuid4

import orjson
from eventsourcing.persistence import StoredEvent
from eventsourcing.utils import get_topic

from crm_domain.application import CRM
from crm_domain.eventmodel import DomainEvent


class ConsentNoted(DomainEvent):
    """Version 2 added ``lawful_basis``; version 1 events did not have it."""

    class_version: ClassVar[int] = 2
    purpose: str
    lawful_basis: str

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        state["lawful_basis"] = "consent"


def _stored_v1(originator_id: Any) -> StoredEvent:
    state = {
        "originator_id": str(originator_id),
        "originator_version": 1,
        "timestamp": "2026-03-01T10:00:00Z",
        "occurred_at": "2026-03-01T10:00:00Z",
        "metadata": {"actor": "li.wei"},
        "event_id": str(uuid4()),
        "purpose": "newsletter",
    }
    return StoredEvent(
        originator_id=originator_id,
        originator_version=1,
        topic=get_topic(ConsentNoted),
        state=orjson.dumps(state),
    )


def test_old_events_are_upcast_on_read() -> None:
    app = CRM("memory://")
    event = app.app.mapper.to_domain_event(_stored_v1(uuid4()))
    assert isinstance(event, ConsentNoted)
    assert event.lawful_basis == "consent"
    assert event.purpose == "newsletter"


def test_new_events_record_their_class_version_and_read_back_unchanged() -> None:
    app = CRM("memory://")
    new = ConsentNoted(
        originator_id=uuid4(), originator_version=1, purpose="offers", lawful_basis="contract"
    )
    stored = app.app.mapper.to_stored_event(new)
    assert orjson.loads(stored.state)["class_version"] == 2
    assert app.app.mapper.to_domain_event(stored) == new
