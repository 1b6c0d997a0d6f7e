"""The message formats: CloudEvents binary and structured, and the Debezium outbox layout."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

import orjson
import pytest

from adapters.kafka.cloudevents import (
    EventEncoder,
    MessageFormat,
    decode_cloudevent,
    decode_debezium,
)
from adapters.kafka.eventtypes import crm_event_types
from crm_domain.application import CRM
from crm_domain.customer import Customer
from crm_domain.errors import InboundMessageError


@pytest.fixture
def logged_contact() -> Customer.ContactLogged:
    crm = CRM("memory://")
    with crm.context(actor="li.wei", correlation_id="corr-1", source_system="call-centre"):
        cid = crm.register_customer(kind="individual", name="Wang Fang", code="WF-1")
        crm.log_contact(cid, channel="phone", direction="inbound", summary="asked for a quote")
    event = crm.history(cid)[-1]
    assert isinstance(event, Customer.ContactLogged)
    return event


def test_type_names_are_versioned_and_stable() -> None:
    registry = crm_event_types()
    et = registry.of(Customer.ContactLogged)
    assert et is not None
    assert et.type == "crm.customer.contact_logged.v1"
    assert et.name == "crm.customer.contact_logged"
    assert registry.by_type("crm.account.order_confirmation_requested.v1") is not None
    # eventsourcing's generated base classes are not published types
    assert registry.by_type("crm.customer.event.v1") is None
    assert registry.by_type("crm.customer.created.v1") is None


def test_binary_mode_puts_attributes_in_ce_headers(logged_contact: Customer.ContactLogged) -> None:
    et = crm_event_types().of(logged_contact)
    assert et is not None
    record = EventEncoder("urn:crm-core:CRM", MessageFormat.BINARY).encode(logged_contact, et)
    headers = {k: v.decode() for k, v in record.headers}
    assert record.key == str(logged_contact.originator_id).encode()
    assert headers["ce_specversion"] == "1.0"
    assert headers["ce_id"] == str(logged_contact.event_id)
    assert headers["ce_source"] == "urn:crm-core:CRM"
    assert headers["ce_type"] == "crm.customer.contact_logged.v1"
    assert headers["ce_subject"] == str(logged_contact.originator_id)
    assert headers["ce_actor"] == "li.wei"
    assert headers["ce_correlationid"] == "corr-1"
    assert headers["ce_sourcesystem"] == "call-centre"
    assert headers["ce_aggregateversion"] == str(logged_contact.originator_version)
    assert headers["content-type"] == "application/json"
    data = orjson.loads(record.value)
    assert data["summary"] == "asked for a quote"
    assert "originator_id" not in data
    assert "metadata" not in data
    ce = decode_cloudevent(record.value, record.headers)
    assert ce.id == str(logged_contact.event_id)
    assert ce.time == logged_contact.occurred_at
    assert ce.data == data


def test_structured_mode_is_one_json_document(logged_contact: Customer.ContactLogged) -> None:
    et = crm_event_types().of(logged_contact)
    assert et is not None
    encoder = EventEncoder("urn:test", MessageFormat.STRUCTURED, "https://schemas.example/crm")
    record = encoder.encode(logged_contact, et)
    assert dict(record.headers)["content-type"].startswith(b"application/cloudevents+json")
    document = orjson.loads(record.value)
    assert document["specversion"] == "1.0"
    assert document["type"] == "crm.customer.contact_logged.v1"
    assert document["dataschema"] == (
        "https://schemas.example/crm/crm.customer.contact_logged.v1.json"
    )
    assert document["data"]["channel"] == "phone"
    ce = decode_cloudevent(record.value, record.headers)
    assert ce.subject == str(logged_contact.originator_id)
    assert ce.extensions["correlationid"] == "corr-1"


def test_redacted_fields_are_left_out_and_named(logged_contact: Customer.ContactLogged) -> None:
    et = crm_event_types().of(logged_contact)
    assert et is not None
    record = EventEncoder("urn:test").encode(
        logged_contact, et, redacted=("summary", "participants")
    )
    data = orjson.loads(record.value)
    assert "summary" not in data
    assert "participants" not in data
    assert dict(record.headers)["ce_redacted"] == b"participants,summary"


def test_debezium_outbox_layout(logged_contact: Customer.ContactLogged) -> None:
    et = crm_event_types().of(logged_contact)
    assert et is not None
    record = EventEncoder("urn:test", MessageFormat.DEBEZIUM).encode(logged_contact, et)
    headers, payload = decode_debezium(record.value, record.headers)
    assert headers["id"] == str(logged_contact.event_id)
    assert headers["aggregatetype"] == "customer"
    assert headers["aggregateid"] == str(logged_contact.originator_id)
    assert headers["type"] == "crm.customer.contact_logged.v1"
    assert payload["summary"] == "asked for a quote"
    assert record.key == str(logged_contact.originator_id).encode()
    with pytest.raises(InboundMessageError, match="not a CloudEvent"):
        decode_cloudevent(b"\x00binary", record.headers)


@pytest.mark.parametrize(
    ("value", "headers", "message"),
    [
        (b"{not json", [("content-type", b"application/cloudevents+json")], "not valid JSON"),
        (b'{"id": "1"}', [("content-type", b"application/cloudevents+json")], "not a structured"),
        (
            b'{"specversion": "0.3", "id": "1", "source": "s", "type": "t"}',
            [],
            "specversion",
        ),
        (b"{}", [("ce_specversion", b"1.0"), ("ce_id", b"1")], "invalid CloudEvent"),
        (b"plain text", [], "not a CloudEvent"),
    ],
)
def test_decode_rejects_what_is_not_a_cloudevent(
    value: bytes, headers: list[tuple[str, bytes]], message: str
) -> None:
    with pytest.raises(InboundMessageError, match=message):
        decode_cloudevent(value, headers)


def test_time_is_business_time_when_it_differs(logged_contact: Customer.ContactLogged) -> None:
    crm = CRM("memory://")
    visit = datetime(2024, 3, 1, 9, 30, tzinfo=UTC)
    with crm.context(occurred_at=visit):
        cid = crm.register_customer(
            kind="individual", name="Zhao Lei", code=f"ZL-{uuid4().hex[:4]}"
        )
    event = crm.history(cid)[0]
    et = crm_event_types().of(event)
    assert et is not None
    ce = decode_cloudevent(*_value_headers(EventEncoder("urn:test").encode(event, et)))
    assert ce.time == visit
    assert ce.extensions["recordedtime"] != "2024-03-01T09:30:00Z"


def _value_headers(record: object) -> tuple[bytes, list[tuple[str, bytes]]]:
    return record.value, record.headers  # type: ignore[attr-defined]
