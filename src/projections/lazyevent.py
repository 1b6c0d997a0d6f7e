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
from datetime import date, datetime
from enum import Enum
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin
from uuid import UUID

from annotated_types import BaseMetadata
from eventsourcing.utils import get_topic
from pydantic import AwareDatetime, BaseModel, TypeAdapter, ValidationError
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
    validate = TypeAdapter(annotation).validate_python
    if field.metadata:
        return validate
    fast = _fast_reader(field.annotation)
    return validate if fast is None else _or_validate(fast, validate)


#: Fast readers of the commonest field types, from the form pydantic writes them in
#: (anything else, or a value they refuse, is left to pydantic: same value, same errors).
def _uuid(value: Any) -> UUID:
    if type(value) is str and len(value) == 36:
        return UUID(value)
    raise ValueError(value)


def _utc_datetime(value: Any) -> datetime:
    # pydantic writes UTC times as "...Z"; another offset is left to pydantic.
    if type(value) is str and value[-1:] == "Z" and value[10:11] == "T":
        return datetime.fromisoformat(value)
    raise ValueError(value)


def _date(value: Any) -> date:
    if type(value) is str and len(value) == 10 and value[4] == "-":
        return date.fromisoformat(value)
    raise ValueError(value)


def _optional(fast: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def read(value: Any) -> Any:
        return None if value is None else fast(value)

    return read


def _enum(enum_class: type[Enum]) -> Callable[[Any], Any]:
    def read(value: Any) -> Any:
        if type(value) is str or type(value) is int:
            return enum_class(value)
        raise ValueError(value)

    return read


def _fast_reader(annotation: Any) -> Callable[[Any], Any] | None:
    args = get_args(annotation)
    if get_origin(annotation) in (Union, UnionType) and len(args) == 2 and type(None) in args:
        inner = _fast_reader(next(a for a in args if a is not type(None)))
        return None if inner is None else _optional(inner)
    if annotation is UUID:
        return _uuid
    if annotation is AwareDatetime:
        return _utc_datetime
    if annotation is date:
        return _date
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return _enum(annotation)
    return None


def _or_validate(fast: Callable[[Any], Any], validate: Callable[[Any], Any]) -> Reader:
    def read(value: Any) -> Any:
        try:
            return fast(value)
        except (ValueError, TypeError):
            return validate(value)

    return read


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
