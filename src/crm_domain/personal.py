"""Which fields of an event hold a person's data, declared once on the event class.

Personal data (names, contact details, free text about the person) may leave the CRM only
as the customer allows: the Kafka relay strips or drops it on consent-guarded topics (see
:mod:`adapters.kafka.consent`) and the published JSON Schemas mark it
(``"x-personal-data": true``). Both read the declaration made here, on the event model::

    @personal_data("participants", "summary")
    class ContactLogged(Aggregate.Event): ...

``@personal_data()`` with no fields says "reviewed: nothing personal here". An event class
without a declaration is *undeclared*, and whoever guards personal data must treat all of it
as personal: a new event type cannot leak by default. Subclasses inherit a declaration
only while they add no field (eventsourcing redefines each event class of an aggregate as
such a subclass); a subclass with a new field is undeclared until it declares again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from enum import Enum
from functools import cache
from typing import Annotated, Any, TypeVar
from uuid import UUID

from pydantic import BaseModel, TypeAdapter, ValidationError

_DECLARATION = "__personal_data__"


@dataclass(frozen=True)
class _Declaration:
    personal: frozenset[str]
    #: Every field of the class when it was declared: a subclass with more is not covered.
    reviewed: frozenset[str]


TEvent = TypeVar("TEvent", bound=BaseModel)


def personal_data(*fields: str) -> Callable[[type[TEvent]], type[TEvent]]:
    """Class decorator: declare the fields of an event that hold personal data.

    Raises ``TypeError`` at import time when a name is not a field of the class, so a
    renamed field cannot silently stop being treated as personal.
    """

    def declare(event_class: type[TEvent]) -> type[TEvent]:
        unknown = sorted(set(fields) - set(event_class.model_fields))
        if unknown:
            raise TypeError(
                f"{event_class.__qualname__} declares personal data in {unknown}, "
                "which are not among its fields"
            )
        declaration = _Declaration(frozenset(fields), frozenset(event_class.model_fields))
        setattr(event_class, _DECLARATION, declaration)
        return event_class

    return declare


def personal_fields(event_class: type[BaseModel]) -> frozenset[str] | None:
    """The fields ``event_class`` declares personal (empty: nothing personal), or ``None``
    when it declares nothing, in which case treat the whole event as personal."""
    declared = getattr(event_class, _DECLARATION, None)
    if not isinstance(declared, _Declaration):
        return None
    if not set(event_class.model_fields) <= declared.reviewed:
        return None
    return declared.personal


#: What an erased personal text reads as, everywhere (aggregates, snapshots, history, read
#: models, published events). Personal values the marker would not fit (an e-mail address,
#: a phone number) read as ``None``; numbers, dates, ids and enumerations are kept.
REDACTED = "[redacted]"

_PRESERVED = (bool, int, float, Decimal, datetime, date, time, UUID, Enum)


def payload_personal_fields(
    model_class: type[BaseModel], envelope: frozenset[str]
) -> frozenset[str]:
    """The fields to protect in ``model_class``: its declared personal fields, or, when it
    declares nothing, every field outside ``envelope`` (undeclared means all personal)."""
    declared = personal_fields(model_class)
    if declared is None:
        return frozenset(model_class.model_fields) - envelope
    return declared


@cache
def _marker_fits(model_class: type[BaseModel], name: str) -> bool:
    field = model_class.model_fields[name]
    annotation: Any = field.annotation
    if field.metadata:
        annotation = Annotated[(annotation, *field.metadata)]
    try:
        TypeAdapter(annotation).validate_python(REDACTED, context={"stored_event": True})
    except ValidationError:
        return False
    return True


def redacted_json(value: Any, dumped: Any, marker: Any = REDACTED) -> Any:
    """The redacted form of one value (``dumped`` is its JSON form): the same shape, with
    personal text replaced by :data:`REDACTED` and everything else kept.

    Inside a nested model that declares its personal fields (``@personal_data`` on an
    entity or value class), only those are redacted; an undeclared model is all personal.
    """
    if value is None or isinstance(value, _PRESERVED):
        return dumped
    if isinstance(value, str):
        return marker if value else value
    if isinstance(value, BaseModel):
        cls = type(value)
        declared = personal_fields(cls)
        out = {}
        for name, item in dumped.items():
            if declared is not None and name not in declared:
                out[name] = item
            else:
                fits = _marker_fits(cls, name) if name in cls.model_fields else True
                out[name] = redacted_json(
                    getattr(value, name, None), item, REDACTED if fits else None
                )
        return out
    if isinstance(value, (list, tuple)):
        return [redacted_json(v, d) for v, d in zip(value, dumped, strict=False)]
    if isinstance(value, dict):
        # The JSON form keeps the keys' order (its keys are strings: ids, codes).
        return {
            json_key: redacted_json(item, json_item)
            for item, (json_key, json_item) in zip(value.values(), dumped.items(), strict=False)
        }
    return marker


def redact_fields(model: BaseModel, dumped: dict[str, Any], fields: frozenset[str]) -> None:
    """Replace ``fields`` of ``dumped`` (``model``'s JSON form) by their redacted form."""
    cls = type(model)
    for name in fields:
        if name in dumped:
            marker = REDACTED if _marker_fits(cls, name) else None
            dumped[name] = redacted_json(getattr(model, name), dumped[name], marker)


TModel = TypeVar("TModel", bound=BaseModel)


def redacted(model: TModel) -> TModel:
    """A copy of ``model`` with its personal fields redacted (all fields if it declares none)."""
    cls = type(model)
    dumped = model.model_dump(mode="json")
    redact_fields(model, dumped, payload_personal_fields(cls, frozenset()))
    return cls.model_validate(dumped, context={"stored_event": True})
