"""Stored events for read models, validated one field at a time as handlers read them.

A read model reads a few fields of each event; building the whole pydantic model (every
UUID, time, amount and nested value of it) costs more than everything else a rebuild does.
:class:`LazyEvent` holds the stored JSON state (decrypted, decompressed and upcast by the
mapper, see
:meth:`crm_domain.infrastructure.persistence.PydanticMapper.to_event_state`) and validates a
field the first time it is read, with pydantic and the field's own annotation, so a handler
gets exactly the value the decoded event would have given it.

``isinstance(event, Customer.Reactivated)`` holds for a lazy ``Reactivated`` (``__class__``
is the event class, as with ``unittest.mock``'s ``spec``), so handlers are written against
the domain's event classes whether they receive a decoded event (the stock runner's path)
or a lazy one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any
from uuid import UUID

from annotated_types import BaseMetadata
from eventsourcing.utils import get_topic
from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo

from crm_domain.errors import InvalidStoredEventError, problems

#: Turns a field's JSON value into the model's value; None where they are the same.
Reader = Callable[[Any], Any] | None

#: JSON values that are already the Python value (constraints were checked when written).
_PLAIN = frozenset({str, int, bool, type(None), str | None, int | None, bool | None})


def _annotation(field: FieldInfo) -> Any:
    return field.annotation


def _reader(field: FieldInfo) -> Reader:
    """How to turn a field's stored JSON value into the value the model would hold."""
    if field.annotation in _PLAIN and all(isinstance(m, BaseMetadata) for m in field.metadata):
        return None
    annotation = _annotation(field)
    if field.metadata:
        annotation = Annotated[(annotation, *field.metadata)]
    return TypeAdapter(annotation).validate_python


class _Fields:
    """Per event class: a reader and the default of each field."""

    __slots__ = ("defaults", "readers", "serialise")

    def __init__(self, event_class: type[BaseModel]) -> None:
        fields = event_class.model_fields
        self.readers: dict[str, Reader] = {name: _reader(f) for name, f in fields.items()}
        self.defaults: dict[str, FieldInfo] = {
            name: f for name, f in fields.items() if not f.is_required()
        }
        self.serialise: dict[str, TypeAdapter[Any]] = {
            name: TypeAdapter(_annotation(f)) for name, f in self.defaults.items()
        }


_FIELDS: dict[type[Any], _Fields] = {}


def _fields_of(event_class: type[BaseModel]) -> _Fields:
    fields = _FIELDS.get(event_class)
    if fields is None:
        fields = _FIELDS[event_class] = _Fields(event_class)
    return fields


class LazyEvent:
    """One stored event: its class, its JSON state, and the fields read so far."""

    _event_class: type[BaseModel]
    _state: dict[str, Any]
    _fields: _Fields
    _readers: dict[str, Reader]

    def __init__(
        self,
        event_class: type[BaseModel],
        state: dict[str, Any],
        *,
        originator_id: UUID | None = None,
        position: int | None = None,
    ) -> None:
        fields = _FIELDS.get(event_class) or _fields_of(event_class)
        self.__dict__.update(
            _event_class=event_class,
            _state=state,
            _fields=fields,
            _readers=fields.readers,
            _position=position,
        )
        if originator_id is not None:  # already a UUID on the notification
            self.__dict__["originator_id"] = originator_id

    @property  # type: ignore[misc]
    def __class__(self) -> type[Any]:
        return self._event_class

    def __getattr__(self, name: str) -> Any:
        # Called only for attributes not read yet: validate the field, then keep it.
        attrs = self.__dict__
        try:
            reader = attrs["_readers"][name]
        except KeyError:
            raise AttributeError(name) from None
        state = attrs["_state"]
        if name not in state:  # stored before the field existed
            default = attrs["_fields"].defaults.get(name)
            if default is None:
                raise self._invalid(f"required field {name!r} is missing")
            value = default.get_default(call_default_factory=True)
        elif reader is None:
            value = state[name]
        else:
            try:
                value = reader(state[name])
            except ValidationError as exc:
                raise self._invalid(f"field {name!r} = {state[name]!r}: {problems(exc)}") from None
        attrs[name] = value
        return value

    def _invalid(self, detail: str) -> InvalidStoredEventError:
        attrs = self.__dict__
        return InvalidStoredEventError(
            get_topic(attrs["_event_class"]),
            attrs["_position"],
            attrs.get("originator_id"),
            detail,
        )

    def json_state(self) -> dict[str, Any]:
        """The event's fields as JSON values (what ``model_dump(mode="json")`` gives)."""
        state = self._state
        if len(state) == len(self._fields.readers):  # no unknown keys: the model forbids them
            return state
        missing = [name for name in self._fields.readers if name not in state]
        required = [name for name in missing if name not in self._fields.defaults]
        if required:
            raise self._invalid(f"required field {required[0]!r} is missing")
        full = dict(state)
        for name in missing:
            default = self._fields.defaults[name].get_default(call_default_factory=True)
            full[name] = self._fields.serialise[name].dump_python(default, mode="json")
        return {name: full[name] for name in self._fields.readers}

    def __repr__(self) -> str:
        return f"<lazy {self._event_class.__qualname__} {self._state!r}>"


def json_state(event: Any) -> dict[str, Any]:
    """A decoded or lazy event's fields as JSON values."""
    if type(event) is LazyEvent:  # before isinstance: a lazy event passes for its class
        return event.json_state()
    if isinstance(event, BaseModel):
        return event.model_dump(mode="json")
    raise TypeError(f"not an event: {event!r}")
