"""Inbound ERP and marketing messages: parsing, commands, dead letters, redelivery."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

import orjson
import pytest
from kafka import KafkaProducer
from kafkatools import read_topic, unique

from adapters.kafka.inbound import (
    ConsumerSettings,
    InboundConsumer,
    apply_command,
    parse_message,
)
from adapters.kafka.messages import INBOUND_PAYLOADS
from crm_domain.application import CRM
from crm_domain.errors import InboundMessageError
from crm_domain.values import Money, OrderStatus


def cloudevent(type_: str, data: dict[str, Any], id_: str | None = None) -> bytes:
    return orjson.dumps(
        {
            "specversion": "1.0",
            "id": id_ or f"msg-{uuid4().hex[:12]}",
            "source": "urn:erp:test",
            "type": type_,
            "time": "2024-05-02T09:30:00Z",
            "correlationid": "corr-erp-1",
            "data": data,
        }
    )


STRUCTURED = [("content-type", b"application/cloudevents+json")]


def _crm_with_orders() -> tuple[CRM, UUID, UUID, list[UUID]]:
    crm = CRM("memory://")
    customer = crm.register_customer(kind="enterprise", name="Baiyun Air Cargo", code="BAC-1")
    crm.grant_consent(customer, purpose="marketing", channel="email")
    account = crm.open_account(customer_id=customer, name="Baiyun Air Cargo")
    orders = []
    for qty in (1, 2, 3):
        order = crm.place_order(
            account,
            lines=[
                {"sku": "S", "quantity": qty, "unit_price": {"amount": "100", "currency": "CNY"}}
            ],
        )
        crm.request_order_confirmation(account, order)
        orders.append(order)
    return crm, customer, account, orders


def test_every_documented_message_type_becomes_its_command() -> None:
    crm, customer, account, orders = _crm_with_orders()
    invoice = crm.issue_invoice(account, amount=Money.of(100, "CNY"), order_id=orders[0])
    messages = {
        "erp.order_confirmed.v1": {
            "account_id": account,
            "order_id": orders[0],
            "erp_reference": "SO-1",
        },
        "erp.order_rejected.v1": {
            "account_id": account,
            "order_id": orders[1],
            "reason": "margin",
            "detail": "too cheap",
        },
        "erp.order_shipped.v1": {
            "account_id": account,
            "order_id": orders[0],
            "shipment_ref": "TRK",
        },
        "erp.invoice_paid.v1": {
            "account_id": account,
            "invoice_id": invoice,
            "amount": {"amount": "100", "currency": "CNY"},
        },
        "erp.credit_limit_changed.v1": {
            "account_id": account,
            "limit": {"amount": "50000", "currency": "CNY"},
        },
        "marketing.campaign_response.v1": {
            "customer_id": customer,
            "campaign_id": "spring-expo",
            "response": "registered",
            "channel": "email",
            "registered": True,
        },
        "marketing.unsubscribed.v1": {"customer_id": customer, "channel": "email"},
    }
    assert set(messages) == set(INBOUND_PAYLOADS)  # the documented list is covered
    for type_, data in messages.items():
        command = parse_message(cloudevent(type_, orjson.loads(orjson.dumps(data))), STRUCTURED)
        apply_command(crm, command)
    acc = crm.account(account)
    assert acc.orders[orders[0]].status is OrderStatus.SHIPPED
    assert acc.orders[orders[1]].status is OrderStatus.REJECTED
    assert acc.invoices[invoice].is_paid
    assert acc.credit_limit == Money.of(50000, "CNY")
    cust = crm.customer(customer)
    assert not cust.has_consent("marketing", "email")
    last = crm.history(customer)[-1]
    assert last.metadata["source_system"] == "marketing"
    assert last.metadata["correlation_id"] == "corr-erp-1"
    assert last.metadata["command_id"].startswith("kafka:urn:erp:test:msg-")


def test_binary_mode_messages_are_accepted_too() -> None:
    crm, _, account, orders = _crm_with_orders()
    headers = [
        ("ce_specversion", b"1.0"),
        ("ce_id", b"b-1"),
        ("ce_source", b"urn:erp:test"),
        ("ce_type", b"erp.order_confirmed.v1"),
        ("content-type", b"application/json"),
    ]
    value = orjson.dumps({"account_id": str(account), "order_id": str(orders[2])})
    apply_command(crm, parse_message(value, headers))
    assert crm.account(account).orders[orders[2]].status is OrderStatus.CONFIRMED


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (b"\xff\xfe garbage", "not valid JSON"),
        (cloudevent("erp.order_teleported.v1", {}), "unknown message type"),
        (cloudevent("erp.order_confirmed.v1", {"order_id": "nope"}), "account_id"),
        (
            cloudevent(
                "erp.order_rejected.v1",
                {"account_id": str(uuid4()), "order_id": str(uuid4()), "reason": "mood"},
            ),
            "reason",
        ),
        (
            cloudevent(
                "erp.order_shipped.v1",
                {"account_id": str(uuid4()), "order_id": str(uuid4()), "carrier": "x"},
            ),
            "Extra inputs",
        ),
    ],
)
def test_malformed_messages_raise_clear_errors(value: bytes, message: str) -> None:
    with pytest.raises(InboundMessageError, match=message):
        parse_message(value, STRUCTURED)


def _produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    for i, value in enumerate(values):
        producer.send(topic, key=f"k{i % 2}".encode(), value=value, headers=STRUCTURED)
    producer.flush()
    producer.close()


def _settings(bootstrap: str, topic: str, dlq: str, group: str) -> ConsumerSettings:
    return ConsumerSettings(
        bootstrap=bootstrap,
        topics=(topic,),
        dead_letter_topic=dlq,
        group_id=group,
        create_topics=True,
        partitions=1,
        max_poll_interval_ms=5000,
        session_timeout_ms=5000,
        heartbeat_interval_ms=1000,
    )


@pytest.mark.kafka
def test_poison_messages_are_dead_lettered_and_consumption_goes_on(kafka_bootstrap: str) -> None:
    crm, customer, account, orders = _crm_with_orders()
    topic, dlq = unique("erp.in"), unique("crm.dlq")
    poison = b"{this is not json"
    unknown_order = cloudevent(
        "erp.order_confirmed.v1", {"account_id": str(account), "order_id": str(uuid4())}
    )
    values = [
        cloudevent(
            "erp.order_confirmed.v1", {"account_id": str(account), "order_id": str(orders[0])}
        ),
        poison,
        unknown_order,  # well-formed, but the domain says no
        cloudevent(
            "erp.order_rejected.v1",
            {"account_id": str(account), "order_id": str(orders[1]), "reason": "credit"},
        ),
        cloudevent("marketing.unsubscribed.v1", {"customer_id": str(customer), "channel": "email"}),
    ]
    consumer = InboundConsumer(crm, _settings(kafka_bootstrap, topic, dlq, unique("g")))
    consumer.prepare_topics()
    _produce(kafka_bootstrap, topic, values)
    stats = consumer.run(max_messages=len(values), timeout=60)
    assert stats.applied == 3
    assert stats.dead_lettered == 2
    acc = crm.account(account)
    assert acc.orders[orders[0]].status is OrderStatus.CONFIRMED
    assert acc.orders[orders[1]].status is OrderStatus.REJECTED  # after the poison: processed
    assert not crm.customer(customer).has_consent("marketing", "email")

    dead = read_topic(kafka_bootstrap, dlq, expect=2)
    assert [d.value for d in dead] == [poison, unknown_order]  # original bytes, in order
    first, second = dead
    assert first.headers["dlq.error.type"] == b"InboundMessageError"
    assert b"not valid JSON" in first.headers["dlq.error.message"]
    assert first.headers["dlq.original.topic"] == topic.encode()
    assert first.headers["dlq.original.offset"] == b"1"
    assert first.headers["content-type"] == b"application/cloudevents+json"  # original kept
    assert second.headers["dlq.error.type"] == b"EntityNotFoundError"
    assert second.key == b"k0"

    # offsets were committed: the same group has nothing left to read
    again = InboundConsumer(crm, consumer.settings).run(idle_timeout=1.0, timeout=30)
    assert again.applied == 0
    assert again.dead_lettered == 0


@pytest.mark.kafka
def test_consuming_the_same_messages_twice_leaves_the_state_of_once(kafka_bootstrap: str) -> None:
    crm, customer, account, orders = _crm_with_orders()
    invoice = crm.issue_invoice(account, amount=Money.of(300, "CNY"))
    topic, dlq = unique("erp.in"), unique("crm.dlq")
    values = [
        cloudevent(
            "erp.order_confirmed.v1", {"account_id": str(account), "order_id": str(orders[0])}
        ),
        cloudevent(
            "erp.order_shipped.v1", {"account_id": str(account), "order_id": str(orders[0])}
        ),
        cloudevent(
            "erp.invoice_paid.v1",
            {
                "account_id": str(account),
                "invoice_id": str(invoice),
                "amount": {"amount": "100", "currency": "CNY"},
            },
        ),
        cloudevent(
            "erp.invoice_paid.v1",
            {  # a second, distinct part payment
                "account_id": str(account),
                "invoice_id": str(invoice),
                "amount": {"amount": "100", "currency": "CNY"},
            },
        ),
        cloudevent(
            "marketing.campaign_response.v1",
            {
                "customer_id": str(customer),
                "campaign_id": "c1",
                "response": "clicked",
                "channel": "email",
            },
        ),
    ]
    _produce(kafka_bootstrap, topic, values)
    first = InboundConsumer(crm, _settings(kafka_bootstrap, topic, dlq, unique("g")))
    assert first.run(max_messages=len(values), timeout=60).applied == len(values)
    state_once = (
        crm.app.recorder.max_notification_id(),
        crm.account(account).version,
        crm.customer(customer).version,
    )
    paid_once = crm.account(account).invoices[invoice].paid
    assert paid_once == 200

    # a new group reads everything again (as after a lost commit or a replay)
    second = InboundConsumer(crm, _settings(kafka_bootstrap, topic, dlq, unique("g")))
    stats = second.run(max_messages=len(values), timeout=60)
    assert stats.applied == len(values)
    assert stats.dead_lettered == 0
    assert (
        crm.app.recorder.max_notification_id(),
        crm.account(account).version,
        crm.customer(customer).version,
    ) == state_once
    assert crm.account(account).invoices[invoice].paid == paid_once
