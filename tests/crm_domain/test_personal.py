"""Personal data is declared once, on the event classes, and read from there."""

from __future__ import annotations

import pytest

from adapters.kafka.eventtypes import crm_event_types
from adapters.kafka.schemas import event_schema
from crm_domain.customer import Customer
from crm_domain.eventmodel import Aggregate
from crm_domain.personal import personal_data, personal_fields


def test_a_declaration_names_fields_of_the_event() -> None:
    with pytest.raises(TypeError, match=r"declares personal data in \['nmae'\]"):

        @personal_data("nmae")
        class Misspelt(Aggregate.Event):
            name: str


def test_undeclared_reviewed_and_declared_events_differ() -> None:
    @personal_data("note")
    class Noted(Aggregate.Event):
        note: str
        score: int

    @personal_data()
    class Scored(Aggregate.Event):
        score: int

    class Unreviewed(Aggregate.Event):
        note: str

    assert personal_fields(Noted) == {"note"}
    assert personal_fields(Scored) == frozenset()
    assert personal_fields(Unreviewed) is None


def test_a_subclass_adding_a_field_is_undeclared_until_it_declares() -> None:
    @personal_data("note")
    class Noted(Aggregate.Event):
        note: str

    class Same(Noted):
        pass

    class Wider(Noted):
        comment: str

    @personal_data("note", "comment")
    class Declared(Noted):
        comment: str

    assert personal_fields(Same) == {"note"}  # as eventsourcing's redefinition of an event
    assert personal_fields(Wider) is None
    assert personal_fields(Declared) == {"note", "comment"}


def test_published_schemas_mark_exactly_the_declared_fields() -> None:
    marked_somewhere = False
    for et in crm_event_types():
        properties = event_schema(et)["properties"]
        marked = {name for name, prop in properties.items() if prop.get("x-personal-data")}
        assert marked == (personal_fields(et.cls) or set()), et.type
        marked_somewhere |= bool(marked)
    assert marked_somewhere
    assert personal_fields(Customer.Registered) == {"name", "contact"}
