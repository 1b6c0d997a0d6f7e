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
from typing import TypeVar

from pydantic import BaseModel

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
