"""What every read model is: tables, the events it handles or ignores, and a batch apply.

A read model never sees the database outside a batch: :class:`~projections.views.ReadModelView`
opens one transaction per batch of events, builds the read model on that session, applies
the batch and writes the read model's rows and its tracking position together.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar, TypeVar
from uuid import UUID

from eventsourcing.persistence import Mapper, Notification
from eventsourcing.utils import get_topic
from pydantic import ValidationError
from sqlalchemy import Table
from sqlalchemy.orm import Session

from crm_domain.errors import InvalidStoredEventError, problems
from crm_domain.infrastructure.persistence import PydanticMapper
from projections.lazyevent import LazyEvent
from projections.rows import RowCache

#: A bound handler: ``handler(event, position)``.
Handler = Callable[[Any, int], None]
F = TypeVar("F", bound=Callable[..., None])


def handles(*event_classes: type[Any]) -> Callable[[F], F]:
    """Mark a read-model method as the handler of these event classes.

    The method is called as ``method(event, position)``. Without a docstring of its own,
    it is documented as applying the events it handles.
    """

    def mark(method: F) -> F:
        handled = method.__dict__.setdefault("_handles", [])
        handled.extend(event_classes)
        if method.__doc__ is None or method.__dict__.get("_generated_doc"):
            names = ", ".join(f"``{c.__qualname__}``" for c in handled)
            method.__doc__ = f"Applies {names} to the read model's rows."
            method.__dict__["_generated_doc"] = True
        return method

    return mark


class LoggedEvent:
    """One notification from the application's log; decoded only if a read model needs it."""

    __slots__ = ("_event", "mapper", "notification", "originator_id", "position", "topic")

    def __init__(
        self,
        notification: Notification,
        mapper: Mapper[Any] | None = None,
        decoded: Any = None,
    ) -> None:
        self.notification = notification
        self.mapper = mapper
        self.position: int = notification.id
        self.topic: str = notification.topic
        oid = notification.originator_id
        self.originator_id: UUID | None = oid if isinstance(oid, UUID) else None
        self._event = decoded

    def __repr__(self) -> str:
        return f"LoggedEvent({self.position}, {self.topic!r})"

    @property
    def event(self) -> Any:
        """The domain event, on first use: a :class:`~projections.lazyevent.LazyEvent` whose
        fields are validated as they are read (the CRM's pydantic mapper), else decoded."""
        event = self._event
        if event is None:
            mapper = self.mapper
            assert mapper is not None
            try:
                if isinstance(mapper, PydanticMapper):
                    event_class, state = mapper.to_event_state(self.notification)
                    event = LazyEvent(
                        event_class, state, originator_id=self.originator_id, position=self.position
                    )
                else:
                    event = mapper.to_domain_event(self.notification)
            except InvalidStoredEventError:
                raise
            except ValidationError as exc:  # the stock path: the whole model at once
                raise InvalidStoredEventError(
                    self.topic, self.position, self.originator_id, problems(exc)
                ) from exc
            except Exception as exc:  # unreadable JSON, unknown type, a failing upcaster
                raise InvalidStoredEventError(
                    self.topic, self.position, self.originator_id, f"{type(exc).__name__}: {exc}"
                ) from exc
            self._event = event
        return event


def topics_of(*event_classes: type[Any]) -> frozenset[str]:
    """The topics of these event classes (to pick events out of a batch)."""
    return frozenset(get_topic(c) for c in event_classes)


def originators(events: Sequence[LoggedEvent], topics: frozenset[str]) -> set[UUID]:
    """The aggregates that recorded the batch's events of these topics."""
    return {e.originator_id for e in events if e.topic in topics and e.originator_id is not None}


def field_values(events: Sequence[LoggedEvent], topics: frozenset[str], name: str) -> set[Any]:
    """The values (other than None) of one field of the batch's events of these topics."""
    values = {getattr(e.event, name) for e in events if e.topic in topics}
    values.discard(None)
    return values


class ReadModel:
    """Base class of one read model: subclasses name their tables and handlers.

    ``ignores`` lists event classes the read model deliberately has no interest in; an
    event whose topic is neither handled nor ignored stops the projection with
    :class:`~crm_domain.errors.UnhandledEventError`, so a new domain event can never be
    silently left out of a read model.
    """

    name: ClassVar[str]
    #: One line saying what the read model answers (shown by ``crm projections status``).
    description: ClassVar[str] = ""
    tables: ClassVar[tuple[Table, ...]] = ()
    ignores: ClassVar[tuple[type[Any], ...]] = ()
    #: Relative cost of applying the whole log (measured with ``benchmarks/projections.py``);
    #: a parallel rebuild balances its workers by it.
    rebuild_weight: ClassVar[float] = 1.0

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
        """The topics of the events this read model applies."""
        return frozenset(cls._handlers)

    @classmethod
    def ignored_topics(cls) -> frozenset[str]:
        """The topics of the events this read model deliberately skips."""
        return cls._ignored

    def __init__(self, session: Session) -> None:
        self.session = session
        self._caches: list[RowCache] = []

    def cache(self, table: Table) -> RowCache:
        """A :class:`RowCache` on one of this read model's tables, written at :meth:`finish`."""
        rows = RowCache(self.session, table)
        self._caches.append(rows)
        return rows

    @property
    def complete(self) -> bool:
        """Whether every row of the read model's tables is held in memory (see
        :meth:`hold_all_rows`): nothing to prefetch or read."""
        return all(rows.complete for rows in self._caches)

    def hold_all_rows(self, complete: bool = True) -> None:
        """Say that the tables are empty and every row is in memory (a rebuild's fold), or
        no longer (``complete=False``, after the rows were written): lookups of rows not
        held then read the database again, through :meth:`prepare`'s prefetch."""
        for rows in self._caches:
            rows.complete = complete

    def held_rows(self) -> int:
        """Rows the read model's caches hold in memory (a rebuild's row budget counts them)."""
        return sum(len(rows) for rows in self._caches)

    def prepare(self, events: Sequence[LoggedEvent]) -> None:
        """Hook: prefetch the rows this batch will touch (default: nothing).

        A row a handler asks for that was not prefetched is read on its own (correct, but
        one query per row): prefetch every row the batch's events touch, in a few queries.
        """

    def handlers(self) -> dict[str, Handler]:
        """This read model's handler of each topic, as ``handler(event, position)``."""
        return {topic: getattr(self, attr) for topic, attr in self._handlers.items()}

    def apply(self, logged: LoggedEvent) -> None:
        """Apply one handled event."""
        getattr(self, self._handlers[logged.topic])(logged.event, logged.position)

    def finish(self) -> None:
        """Write every changed row of the batch (inside the batch's transaction)."""
        for rows in self._caches:
            rows.write()
