"""What every read model is: tables, the events it handles or ignores, and a batch apply.

A read model never sees the database outside a batch: :class:`~projections.views.ReadModelView`
opens one transaction per batch of events, builds the read model on that session, applies
the batch and writes the read model's rows and its tracking position together.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, ClassVar, TypeVar
from uuid import UUID

from eventsourcing.persistence import Mapper, Notification
from eventsourcing.utils import get_topic
from sqlalchemy import Table
from sqlalchemy.orm import Session

from projections.rows import RowCache

Handler = Callable[[Any, Any, int], None]
F = TypeVar("F", bound=Callable[..., None])


def handles(*event_classes: type[Any]) -> Callable[[F], F]:
    """Mark a read-model method as the handler of these event classes.

    The method is called as ``method(event, position)``.
    """

    def mark(method: F) -> F:
        method.__dict__.setdefault("_handles", []).extend(event_classes)
        return method

    return mark


@dataclass(eq=False)
class LoggedEvent:
    """One notification from the application's log; decoded only if a read model needs it."""

    notification: Notification
    mapper: Mapper[Any] | None = field(default=None, repr=False)
    decoded: Any = field(default=None, repr=False)

    @property
    def position(self) -> int:
        return self.notification.id

    @property
    def topic(self) -> str:
        return self.notification.topic

    @property
    def originator_id(self) -> UUID | None:
        oid = self.notification.originator_id
        return oid if isinstance(oid, UUID) else None

    @cached_property
    def event(self) -> Any:
        """The domain event, decoded (upcast, validated) on first use."""
        if self.decoded is not None:
            return self.decoded
        assert self.mapper is not None
        return self.mapper.to_domain_event(self.notification)


class ReadModel:
    """Base class of one read model: subclasses name their tables and handlers.

    ``ignores`` lists event classes the read model deliberately has no interest in; an
    event whose topic is neither handled nor ignored stops the projection with
    :class:`~projections.errors.UnhandledEventError`, so a new domain event can never be
    silently left out of a read model.
    """

    name: ClassVar[str]
    #: One line saying what the read model answers (shown by ``crm projections status``).
    description: ClassVar[str] = ""
    tables: ClassVar[tuple[Table, ...]] = ()
    ignores: ClassVar[tuple[type[Any], ...]] = ()

    _handlers: ClassVar[dict[str, str]] = {}
    _ignored: ClassVar[frozenset[str]] = frozenset()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        handlers: dict[str, str] = {}
        for klass in reversed(cls.__mro__):
            for attr, value in vars(klass).items():
                for event_class in getattr(value, "_handles", ()):
                    handlers[get_topic(event_class)] = attr
        cls._handlers = handlers
        cls._ignored = frozenset(get_topic(c) for c in cls.ignores)

    @classmethod
    def handled_topics(cls) -> frozenset[str]:
        return frozenset(cls._handlers)

    @classmethod
    def ignored_topics(cls) -> frozenset[str]:
        return cls._ignored

    @classmethod
    def handles_topic(cls, topic: str) -> bool:
        return topic in cls._handlers

    @classmethod
    def ignores_topic(cls, topic: str) -> bool:
        return topic in cls._ignored

    def __init__(self, session: Session) -> None:
        self.session = session
        self._caches: list[RowCache] = []

    def cache(self, table: Table) -> RowCache:
        """A :class:`RowCache` on one of this read model's tables, written at :meth:`finish`."""
        rows = RowCache(self.session, table)
        self._caches.append(rows)
        return rows

    def prepare(self, events: Sequence[LoggedEvent]) -> None:
        """Hook: prefetch the rows this batch will touch (default: nothing)."""

    def apply(self, logged: LoggedEvent) -> None:
        """Apply one handled event."""
        getattr(self, self._handlers[logged.topic])(logged.event, logged.position)

    def finish(self) -> None:
        """Write every changed row of the batch (inside the batch's transaction)."""
        for rows in self._caches:
            rows.write()
