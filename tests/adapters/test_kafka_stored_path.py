"""The relay's fast path (records built from the stored JSON) sends what the typed path sends.

The relay publishes most events without building their pydantic model: the stored state is
the model's ``model_dump(mode="json")``, so the payload, ids and times can be taken from it.
These tests pin that shortcut to the typed path (decode + upcast + validate + dump): the same
key, value and headers, byte for byte, for every published event type, in every message
format, with and without consent redaction; the same consent decisions; and payloads that
conform to the committed schemas. Events whose stored keys differ from what the current class
writes (stored before a field was added) must take the typed path.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import orjson
import pytest
from eventsourcing.persistence import StoredEvent
from kafkatools import read_topic, unique

from adapters.demo import run_demo
from adapters.kafka import KafkaRelay, RelaySettings
from adapters.kafka.cloudevents import (
    EventEncoder,
    MessageFormat,
    decode_cloudevent,
    stored_field_order,
)
from adapters.kafka.consent import ConsentLedger, ConsentRule
from adapters.kafka.eventtypes import EventType, crm_event_types
from adapters.kafka.routing import Route, RoutingTable, WithoutConsent
from adapters.kafka.schemas import all_schemas
from crm_domain.account import Account
from crm_domain.application import CRM
from crm_domain.eventmodel import ENVELOPE_FIELDS, DomainEvent
from crm_domain.personal import personal_fields
from crm_domain.settings import CRMSettings
from crm_domain.values import Money


def _every_event_type() -> CRM:
    """A store holding at least one event of every published type.

    Personal fields are stored in clear here, so the stored JSON can be compared with what
    the relay reads (sealed fields are compared in tests/crm_domain/test_erasure.py).
    """
    crm = CRM(settings=CRMSettings.load(store_url="memory://", erasure={"encrypt": False}))
    with crm.context(actor="li.wei", correlation_id="corr-7", source_system="call-centre"):
        run_demo(crm, customers=40, seed=3, now=datetime(2026, 3, 1, 9, tzinfo=UTC))
        # what the demo scenario does not do
        parent = crm.register_customer(kind="enterprise", name="Group Ltd", code="GRP-1")
        cid = crm.register_customer(
            kind="individual", name="Ma Jun", code="MJ-1", contact={"email": "ma@example.com"}
        )
        crm.correct_customer_profile(cid, reason="typo in name", name="Ma Jun")
        crm.set_parent_organisation(cid, parent)
        contact = crm.log_contact(
            cid,
            channel="visit",
            direction="outbound",
            summary="site visit",
            commitments=[{"description": "send quote", "owner": "li.wei"}],
        )
        crm.fulfil_commitment(cid, contact_id=contact, index=0, note="quote sent")
        crm.record_campaign_response(
            cid, campaign_id="spring-26", response="clicked", channel="email"
        )
        crm.deactivate_customer(cid, reason="moved away")
        crm.reactivate_customer(cid, reason="back again")
        ticket = crm.open_ticket(cid, kind="complaint", subject="broken", channel="phone")
        crm.schedule_field_visit(
            cid, ticket, visit_at=datetime(2026, 3, 4, 10, tzinfo=UTC), engineer="zhang.min"
        )
        crm.complete_field_visit(cid, ticket, outcome="fixed", result="pump replaced")
        crm.resolve_ticket(cid, ticket, answer="fixed")
        crm.reopen_ticket(cid, ticket, reason="broke again")
        seat = crm.register_for_seminar(
            cid, campaign_id="expo-26", seminar="Cold chain", channel="email"
        )
        crm.confirm_seminar_registration(cid, registration_id=seat, channel="email")
        aid = crm.open_account(customer_id=parent, name="Group Ltd")
        crm.reclassify_account(aid, industry="retail")
        crm.designate_key_account(aid, criterion="strategic")
        crm.revoke_key_account(aid, reason="no longer strategic")
        crm.add_account_contact(aid, customer_id=cid, role="buyer")
        crm.remove_account_contact(aid, customer_id=cid, reason="left the company")
        crm.set_credit_limit(aid, limit=Money.of(1000, "EUR"))
        deal = crm.open_opportunity(
            aid, name="Racks", expected_close=date(2031, 6, 30), owner="li.wei",
            amount=Money.of(900, "EUR"),
        )  # fmt: skip
        crm.change_opportunity_currency(
            aid, deal, amount=Money.of(7000, "CNY"), reason="invoiced from the Shanghai office"
        )
        steep = crm.issue_quote(
            aid, deal, amount=Money.of(5000, "CNY"), valid_until=date(2031, 3, 31),
            discount_pct=40,
        )  # fmt: skip
        crm.reject_quote_discount(aid, steep, approver="sales.director", reason="too steep")
        crm.withdraw_quote(aid, steep, reason="discount refused")
        quote = crm.issue_quote(
            aid, deal, amount=Money.of(6800, "CNY"), valid_until=date(2031, 3, 31)
        )
        crm.send_quote(aid, quote, sent_to="buyer@group.example")
        crm.withdraw_quote(aid, quote, reason="the buyer chose another supplier")
        crm.lose_opportunity(aid, deal, reason="price", competitor="Rival Racks")
        crm.close_account(aid, reason="merged")
        crm.forget_customer(cid, reason="request DSR-3")
    return crm


@pytest.fixture(scope="module")
def history() -> list[tuple[StoredEvent, DomainEvent, EventType]]:
    crm = _every_event_type()
    registry = crm_event_types()
    out = []
    for notification in crm.app.recorder.select_notifications(start=1, limit=10**6):
        et = registry.by_topic.get(notification.topic)
        if et is None:
            continue
        event = crm.app.mapper.to_domain_event(notification)
        assert isinstance(event, DomainEvent)
        # what the relay reads on its fast path is the stored JSON, keys in stored order
        _, state = crm.app.mapper.to_event_state(notification)
        assert list(state.items()) == list(_state(notification).items())
        out.append((notification, event, et))
    seen = {et.name for _, _, et in out}
    missing = sorted(et.name for et in registry if et.name not in seen)
    assert not missing, f"add these event types to _every_event_type(): {missing}"
    return out


def _state(stored: StoredEvent) -> dict[str, Any]:
    state: dict[str, Any] = orjson.loads(stored.state)
    return state


@pytest.mark.parametrize("message_format", list(MessageFormat))
def test_stored_path_records_equal_typed_path_records(
    history: list[tuple[StoredEvent, DomainEvent, EventType]], message_format: MessageFormat
) -> None:
    encoder = EventEncoder("urn:crm-core:CRM", message_format, "https://schemas.example/crm")
    for stored, event, et in history:
        state = _state(stored)
        assert tuple(state) == stored_field_order(et.cls), et.type
        personal = tuple(sorted(personal_fields(et.cls) or ()))
        for redacted in {(), personal}:
            typed = encoder.encode(event, et, redacted)
            fast = encoder.encode_stored(state, et, redacted)
            assert fast == typed, (et.type, redacted)


def test_a_state_without_a_payload_field_is_encoded_from_the_keys_it_has(
    history: list[tuple[StoredEvent, DomainEvent, EventType]],
) -> None:
    """``stored_parts`` reads the payload by the class's key list; a state lacking one of
    those keys (not what the relay hands it, but a caller may) keeps what it has."""
    encoder = EventEncoder("urn:crm-core:CRM")
    checked = 0
    for stored, _, et in history:
        state = _state(stored)
        payload = [name for name in state if name not in ENVELOPE_FIELDS]
        if not payload:
            continue
        del state[payload[0]]
        record = encoder.encode_stored(state, et)
        assert orjson.loads(record.value or b"") == {name: state[name] for name in payload[1:]}
        checked += 1
    assert checked


def test_stored_path_payloads_conform_to_the_schemas(
    history: list[tuple[StoredEvent, DomainEvent, EventType]],
) -> None:
    schemas = all_schemas()
    encoder = EventEncoder("urn:crm-core:CRM")
    for stored, _, et in history:
        record = encoder.encode_stored(_state(stored), et)
        data = decode_cloudevent(record.value, record.headers).data
        schema = schemas[f"{et.type}.json"]
        assert set(data) <= set(schema["properties"]), et.type
        assert set(schema.get("required", [])) <= set(data), et.type


def test_stored_path_consent_decisions_equal_typed_ones(
    history: list[tuple[StoredEvent, DomainEvent, EventType]],
) -> None:
    rule = ConsentRule()
    routes = [
        Route(topic="strip", types=("crm.*",), consent_purpose="marketing"),
        Route(
            topic="drop",
            types=("crm.*",),
            consent_purpose="marketing",
            without_consent=WithoutConsent.DROP,
        ),
        Route(topic="open", types=("crm.*",)),
    ]
    ledger = ConsentLedger()
    decided = {"publish": 0, "redact": 0, "drop": 0}
    for stored, event, et in history:
        ledger.apply(event)  # consent in force at each event, as in the relay
        for route in routes:
            typed = rule.decide(route, event, et, ledger)
            fast = rule.decide_stored(route, event.originator_id, et, ledger, _state(stored))
            assert fast == typed, (et.type, route.topic)
            key = "drop" if not typed.publish else "redact" if typed.redact else "publish"
            decided[key] += 1
    assert all(decided.values()), decided  # every kind of decision was compared


def test_times_are_written_as_the_typed_path_writes_them() -> None:
    encoder = EventEncoder("urn:test")
    crm = CRM("memory://")
    registry = crm_event_types()
    moments = [
        datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        datetime(2026, 1, 2, 3, 4, 5, 120000, tzinfo=UTC),
        datetime(2026, 1, 2, 3, 4, 5, 7, tzinfo=UTC).astimezone(timezone(timedelta(hours=8))),
    ]
    for moment in moments:
        with crm.context(occurred_at=moment):
            cid = crm.register_customer(kind="individual", name="Li", code=f"T-{uuid4().hex[:6]}")
        stored = next(
            n
            for n in crm.app.recorder.select_notifications(start=1, limit=10**6)
            if n.originator_id == cid
        )
        event = crm.app.mapper.to_domain_event(stored)
        assert isinstance(event, DomainEvent)
        et = registry.of(event)
        assert et is not None
        _, state = crm.app.mapper.to_event_state(stored)  # the relay's read (decrypted)
        assert encoder.encode_stored(state, et) == encoder.encode(event, et)
        # a time not in pydantic's own form (e.g. written by an older serialiser) is normalised
        state["occurred_at"] = moment.isoformat()
        assert encoder.encode_stored(state, et) == encoder.encode(event, et)


@pytest.mark.kafka
def test_events_stored_before_a_field_was_added_take_the_typed_path(
    kafka_bootstrap: str,
) -> None:
    """``OpportunityOpened.forecast_category`` came later: an event stored without it is
    published with the default (None), exactly as the typed path reads it."""
    crm = CRM("memory://")
    cid = crm.register_customer(kind="enterprise", name="Acme", code="ACME-1")
    aid = crm.open_account(customer_id=cid, name="Acme")
    crm.open_opportunity(
        aid,
        name="Renewal",
        owner="li.wei",
        amount=Money.of(Decimal("5000"), "EUR"),
        expected_close=date(2026, 6, 30),
    )
    current = next(
        n
        for n in crm.app.recorder.select_notifications(start=1, limit=100)
        if n.topic.endswith("Account.OpportunityOpened")
    )
    old_state = _state(current)
    del old_state["forecast_category"]
    old_state["event_id"] = str(uuid4())
    old_state["originator_id"] = str(uuid4())
    crm.app.recorder.insert_events(
        [
            StoredEvent(
                originator_id=UUID(old_state["originator_id"]),
                originator_version=old_state["originator_version"],
                topic=current.topic,
                state=orjson.dumps(old_state),
            )
        ]
    )
    topic = unique("crm.opps")
    routing = RoutingTable(routes=(Route(topic=topic, types=("crm.account.opportunity_opened",)),))
    relay = KafkaRelay(
        crm.app, RelaySettings(bootstrap=kafka_bootstrap, create_topics=True), routing
    )
    stats = relay.run(until_caught_up=True, timeout=60)
    assert stats.messages_acked == 2
    assert stats.events_from_stored_json == 1  # the current one; the old one was decoded
    events = [
        decode_cloudevent(r.value, r.headers.items())
        for r in read_topic(kafka_bootstrap, topic, expect=2)
    ]
    by_id = {ce.id: ce.data for ce in events}
    assert set(by_id) == {_state(current)["event_id"], old_state["event_id"]}
    assert by_id[_state(current)["event_id"]]["forecast_category"] == "pipeline"
    old = by_id[old_state["event_id"]]
    assert "forecast_category" in old  # filled in by the model, as the schema has it
    assert old["forecast_category"] is None
    assert Account.OpportunityOpened.class_version == 1
