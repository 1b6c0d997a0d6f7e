"""Pydantic domain events on ``eventsourcing``'s declarative aggregates.

This follows the pattern of the eventsourcing project's pydantic examples (aggregate7/8):
events are frozen pydantic models, so every payload is validated when the event is
created (before it can mutate an aggregate or be stored), and JSON Schema for
published events comes straight from the models. Aggregates keep ``@event`` methods.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from functools import cache
from typing import Any, ClassVar, TypeVar, cast
from uuid import UUID

from eventsourcing.domain import (
    BaseAggregate,
    CanInitAggregate,
    CanMutateAggregate,
    CanSnapshotAggregate,
    OriginatorIDError,
    OriginatorVersionError,
    datetime_now_with_tzinfo,
)
from eventsourcing.utils import get_topic, resolve_topic
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from crm_domain.context import current_metadata, current_occurred_at
from crm_domain.errors import invalid
from crm_domain.infrastructure.compat import event_method, install_event_methods, random_uuid

#: Pydantic validation context under which stored events and snapshots are read: the
#: bounds of :mod:`crm_domain.values` apply to what is written now, history is read as it
#: was written (a later, tighter bound must not make an aggregate unloadable).
STORED_EVENT_CONTEXT: dict[str, bool] = {"stored_event": True}


class Immutable(BaseModel):
    """A validated value: unknown fields are rejected, nothing changes after creation."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Entity(BaseModel):
    """State of an entity inside an aggregate (an opportunity, a ticket): validated, mutable."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DomainEvent(Immutable):
    """Base of every stored event.

    ``metadata`` holds actor, correlation id, causation id and source system, taken from
    the :class:`~crm_domain.context.CommandContext` in force when the event was created.
    ``event_id`` is the event's stable identity, used as the CloudEvents ``id``.
    """

    originator_id: UUID
    originator_version: int
    timestamp: AwareDatetime = Field(default_factory=datetime_now_with_tzinfo)
    metadata: dict[str, str] = Field(default_factory=current_metadata)
    event_id: UUID = Field(default_factory=random_uuid)
    #: Business time: when it happened (``timestamp`` is when it was recorded).
    occurred_at: AwareDatetime = Field(default_factory=current_occurred_at)

    #: Version of the payload shape. Bump it and add a static ``upcast_v1_v2(state)`` (and so
    #: on) when a field changes: stored events are upcast on read, as in eventsourcing.
    class_version: ClassVar[int] = 1


class Aggregate(BaseAggregate[UUID]):
    """Base class of the CRM aggregates (pydantic events, UUID ids).

    An event whose payload fails validation raises :class:`InvalidCommandError` before it
    touches the aggregate, so a rejected command leaves no trace.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # After eventsourcing has made the class's event classes: its @event methods
        # trigger them without the library's per-call argument handling.
        install_event_methods(cls)

    @staticmethod
    def create_id(*_: Any, **__: Any) -> UUID:
        return random_uuid()

    @classmethod
    def _create(cls, event_class: Any, *, id: Any = None, **kwargs: Any) -> Any:
        try:
            return super()._create(event_class, id=id, **kwargs)
        except ValidationError as exc:
            raise invalid(exc) from exc

    def trigger_event(self, event_class: Any, **kwargs: Any) -> None:
        """eventsourcing's ``trigger_event`` (the next event in the sequence, validated,
        applied, pending), written out: it runs for every event of every command, and the
        library's copies the arguments and looks up a topic the CRM never declares."""
        try:
            if getattr(type(self), "TOPIC", None):  # pragma: no cover - never declared here
                super().trigger_event(event_class, **kwargs)
                return
            state = self.__dict__
            kwargs["originator_id"] = state["_id"]
            kwargs["originator_version"] = state["_version"] + 1
            if kwargs.get("timestamp") is None:
                kwargs["timestamp"] = event_class.create_timestamp()
            try:
                new_event = event_class(**kwargs)
            except TypeError as e:
                raise TypeError(f"Can't construct event {event_class}: {e}") from None
            new_event.mutate(self)
            state["_pending_events"].append(new_event)
        except ValidationError as exc:
            raise invalid(exc) from exc

    class Event(DomainEvent, CanMutateAggregate[UUID]):
        def mutate(self, aggregate: Any) -> Any:
            # Let @event method bodies read the business time of the event being applied.
            if aggregate is None:
                aggregate = super().mutate(aggregate)
                aggregate.__dict__["_occurred_at"] = self.occurred_at
                return aggregate
            state = aggregate.__dict__
            state["_occurred_at"] = self.occurred_at
            apply = event_method(type(self))
            if apply is None:
                return super().mutate(aggregate)
            # eventsourcing's CanMutateAggregate.mutate and DecoratedFuncCaller.apply, with
            # the @event method's parameters looked up once per class (the library filters
            # every field of every event against the method's signature each time).
            if self.originator_id != state["_id"]:
                raise OriginatorIDError(self.originator_id, state["_id"])
            next_version = state["_version"] + 1
            if self.originator_version != next_version:
                raise OriginatorVersionError(self.originator_version, next_version)
            method, names = apply
            values = self.__dict__
            method(aggregate, **{name: values[name] for name in names if name in values})
            state["_version"] = self.originator_version
            state["_modified_on"] = self.timestamp
            return aggregate

    class Created(Event, CanInitAggregate[UUID]):
        originator_topic: str

    @property
    def occurred_on(self) -> datetime:
        """Business time of the last event applied (``modified_on`` is its record time)."""
        value: datetime = self.__dict__.get("_occurred_at", self.modified_on)
        return value


#: The envelope: fields every stored event has, around its payload (who, when, which
#: aggregate and version, its id, and eventsourcing's class path of a created aggregate).
#: The rest of an event's fields is its payload: what a change list, a timeline summary,
#: a published ``data`` or its JSON Schema show.
ENVELOPE_FIELDS: frozenset[str] = frozenset(Aggregate.Created.model_fields)


def event_classes(aggregate: type[Aggregate]) -> tuple[type[Aggregate.Event], ...]:
    """The event classes an aggregate declares, in declaration order (not the bases)."""
    return tuple(
        value
        for name, value in vars(aggregate).items()
        if isinstance(value, type)
        and issubclass(value, Aggregate.Event)
        and name not in ("Event", "Created")
    )


def _without_text(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: _without_text(v) for k, v in schema.items() if k not in ("title", "description")}
    if isinstance(schema, list):
        return [_without_text(v) for v in schema]
    return schema


@cache
def state_shape(state_model: type[BaseModel]) -> str:
    """A fingerprint of a snapshot state model's shape: its fields and their types, nested
    entities included (the JSON Schema without titles and descriptions, hashed)."""
    schema = _without_text(state_model.model_json_schema())
    return hashlib.sha256(json.dumps(schema, sort_keys=True).encode()).hexdigest()[:16]


class Snapshot(DomainEvent, CanSnapshotAggregate[UUID]):
    """Snapshot of an aggregate: ``state`` is validated against the aggregate's
    ``snapshot_state`` model, so Decimals, UUIDs and datetimes come back typed.

    A snapshot is a cache of the fold of its events, valid only for the state shape it was
    taken in: when a release adds a field to an aggregate's state (a value the fold derives
    from events), a snapshot taken before would read it as a default, not as the events
    say. So each snapshot records its ``shape`` (:func:`state_shape`), and one of another
    shape, or taken before shapes were recorded, is not used (:meth:`is_current`): the
    aggregate is folded from its events and the next snapshot is taken in today's shape."""

    topic: str
    state: dict[str, Any]
    #: :func:`state_shape` of its state model when taken ("" if before shapes were recorded).
    shape: str = ""

    def is_current(self) -> bool:
        """True if taken in the shape of today's state model of its aggregate class."""
        agg_cls = cast(type[Any], resolve_topic(self.topic))
        return self.shape == state_shape(agg_cls.snapshot_state)

    @classmethod
    def take(cls, aggregate: Any) -> Snapshot:
        agg_cls = type(aggregate)
        state_model: type[BaseModel] = agg_cls.snapshot_state
        public = {k: v for k, v in vars(aggregate).items() if not k.startswith("_")}
        public["created_on"] = aggregate.created_on
        public["modified_on"] = aggregate.modified_on
        state = state_model.model_validate(public).model_dump(mode="json")
        return cls(
            originator_id=aggregate.id,
            originator_version=aggregate.version,
            timestamp=datetime_now_with_tzinfo(),
            topic=get_topic(agg_cls),
            state=state,
            shape=state_shape(state_model),
        )

    def mutate(self, _: Any) -> Any:
        agg_cls = cast(type[Any], resolve_topic(self.topic))
        state_model: type[BaseModel] = agg_cls.snapshot_state
        validated = state_model.model_validate(self.state, context=STORED_EVENT_CONTEXT)
        values = {name: getattr(validated, name) for name in type(validated).model_fields}
        created_on: datetime = values.pop("created_on")
        modified_on: datetime = values.pop("modified_on")
        aggregate = object.__new__(agg_cls)
        aggregate.__dict__.update(
            _id=self.originator_id,
            _version=self.originator_version,
            _created_on=created_on,
            _modified_on=modified_on,
            _pending_events=[],
            **values,
        )
        return aggregate


class SnapshotState(BaseModel):
    """Typed attributes of an aggregate, for snapshots (one subclass per aggregate)."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=False)

    created_on: AwareDatetime
    modified_on: AwareDatetime


TAggregate = TypeVar("TAggregate", bound=Aggregate)
