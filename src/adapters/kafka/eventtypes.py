"""Names of the published event types: ``crm.<aggregate>.<event>.v<class_version>``.

A consumer on the bus never sees Python class paths. Each stored event class gets a
stable, versioned CloudEvents ``type`` (``crm.customer.contact_logged.v1``) built from the
aggregate and event class names and the event's ``class_version``; routing matches on the
name without the version, so bumping a schema does not silently re-route it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache, cached_property

from eventsourcing.utils import get_topic

from crm_domain.eventmodel import Aggregate, DomainEvent, event_classes

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def snake(name: str) -> str:
    """``OrderConfirmationRequested`` -> ``order_confirmation_requested``."""
    return _CAMEL.sub("_", name).lower()


#: An event class (a name, because ``EventType.type`` shadows the builtin in its body).
EventClass = type[DomainEvent]


@dataclass(frozen=True)
class EventType:
    """One published event type: its class, aggregate, and names."""

    cls: EventClass
    aggregate: str  # "customer", "account"
    name: str  # "crm.customer.contact_logged" (unversioned: what routing matches)
    version: int

    @cached_property
    def type(self) -> str:
        """The CloudEvents ``type``, with version: ``crm.customer.contact_logged.v1``."""
        return f"{self.name}.v{self.version}"

    @property
    def topic(self) -> str:
        """The eventsourcing topic (class path) the event is stored under."""
        return get_topic(self.cls)


def event_version(cls: type[DomainEvent]) -> int:
    """The payload version of an event class (eventsourcing's ``class_version`` convention)."""
    return int(getattr(cls, "class_version", 1))


class EventTypeRegistry:
    """Every event class of the given aggregates, by class, by type and by stored topic."""

    def __init__(self, aggregates: Iterable[type[Aggregate]], prefix: str = "crm") -> None:
        self._by_cls: dict[type[DomainEvent], EventType] = {}
        self._by_type: dict[str, EventType] = {}
        self._by_topic: dict[str, EventType] = {}
        for aggregate_cls in aggregates:
            aggregate = snake(aggregate_cls.__name__)
            for cls in event_classes(aggregate_cls):
                et = EventType(
                    cls=cls,
                    aggregate=aggregate,
                    name=f"{prefix}.{aggregate}.{snake(cls.__name__)}",
                    version=event_version(cls),
                )
                self._by_cls[cls] = et
                self._by_type[et.type] = et
                self._by_topic[et.topic] = et

    def __iter__(self) -> Iterator[EventType]:
        return iter(sorted(self._by_type.values(), key=lambda et: et.type))

    def __len__(self) -> int:
        return len(self._by_type)

    def of(self, event: DomainEvent | type[DomainEvent]) -> EventType | None:
        """The published type of an event (or event class); None for unpublished ones."""
        cls = event if isinstance(event, type) else type(event)
        return self._by_cls.get(cls)

    def by_type(self, type_: str) -> EventType | None:
        """The event type of a CloudEvents ``type`` (``crm.customer.contact_logged.v1``), if
        known."""
        return self._by_type.get(type_)

    @property
    def by_topic(self) -> Mapping[str, EventType]:
        """Published event types by the eventsourcing topic their events are stored under."""
        return self._by_topic


@cache
def crm_event_types() -> EventTypeRegistry:
    """The registry of the CRM's own aggregates (``Customer`` and ``Account``)."""
    from crm_domain.account import Account
    from crm_domain.customer import Customer

    return EventTypeRegistry([Customer, Account])
