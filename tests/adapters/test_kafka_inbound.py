"""Inbound ERP and marketing messages: parsing, commands, dead letters, redelivery."""

from __future__ import annotations

import threading
import time
from typing import Any
from uuid import UUID, uuid4

import orjson
import pytest
from eventsourcing.persistence import DataError, OperationalError
from kafka import KafkaProducer
from kafkatools import read_topic, unique

from adapters.kafka.cloudevents import Headers
from adapters.kafka.inbound import (
    COMMANDS,
    ConsumerSettings,
    InboundConsumer,
    apply_command,
    is_transient,
    parse_message,
)
from adapters.kafka.messages import INBOUND_PAYLOADS
from crm_domain.application import CRM
from crm_domain.errors import (
    BrokerUnavailableError,
    CorruptHistoryError,
    InboundMessageError,
    InvalidCommandError,
    StoreUnavailableError,
)
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
    prepaid = crm.issue_invoice(account, amount=Money.of(300, "CNY"), order_id=orders[2])
    crm.receive_payment(account, amount=Money.of(300, "CNY"), invoice_id=prepaid)
    credit_note = uuid4()
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
        "erp.order_cancelled.v1": {
            "account_id": account,
            "order_id": orders[2],
            "reason": "customer withdrew",
        },
        "erp.credit_note_issued.v1": {
            "account_id": account,
            "invoice_id": prepaid,
            "credit_note_id": credit_note,
            "amount": {"amount": "300", "currency": "CNY"},
            "reason": "order cancelled",
            "reference": "CN-1",
        },
        "erp.refund_issued.v1": {
            "account_id": account,
            "invoice_id": prepaid,
            "amount": {"amount": "300", "currency": "CNY"},
            "reason": "order cancelled",
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
    handled: list[str] = []

    def watch(command: Any, next_step: Any) -> Any:
        handled.append(command.command_name)
        return next_step(command)

    crm.middleware.append(watch)  # every message goes through CRM.handle, as a command value
    for type_, data in messages.items():
        command = parse_message(cloudevent(type_, orjson.loads(orjson.dumps(data))), STRUCTURED)
        apply_command(crm, command)
    acc = crm.account(account)
    assert acc.orders[orders[0]].status is OrderStatus.SHIPPED
    assert acc.orders[orders[1]].status is OrderStatus.REJECTED
    assert acc.orders[orders[2]].status is OrderStatus.CANCELLED
    assert acc.credit_notes == {credit_note: prepaid}
    assert (acc.invoices[prepaid].credited, acc.invoices[prepaid].refunded) == (300, 300)
    assert acc.invoices[invoice].is_paid
    assert acc.credit_limit == Money.of(50000, "CNY")
    cust = crm.customer(customer)
    assert not cust.has_consent("marketing", "email")
    last = crm.history(customer)[-1]
    assert last.metadata["source_system"] == "marketing"
    assert last.metadata["correlation_id"] == "corr-erp-1"
    assert last.metadata["command_id"].startswith("kafka:urn:erp:test:msg-")
    assert handled == [
        "confirm_order",
        "reject_order",
        "ship_order",
        "cancel_order",
        "issue_credit_note",
        "issue_refund",
        "receive_payment",
        "set_credit_limit",
        "record_campaign_response",
        "withdraw_consent",
    ]


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
    assert (stats.applied, stats.duplicates, stats.dead_lettered) == (0, len(values), 0)
    assert (
        crm.app.recorder.max_notification_id(),
        crm.account(account).version,
        crm.customer(customer).version,
    ) == state_once
    assert crm.account(account).invoices[invoice].paid == paid_once


def test_every_message_type_has_exactly_one_command() -> None:
    assert set(COMMANDS) == set(INBOUND_PAYLOADS.values())


def _binary(type_: str, data: dict[str, Any], id_: str, **extra: bytes) -> tuple[bytes, Headers]:
    headers: Headers = [
        ("ce_specversion", b"1.0"),
        ("ce_id", id_.encode()),
        ("ce_source", b"urn:erp:test"),
        ("ce_type", type_.encode()),
        ("content-type", b"application/json"),
    ]
    headers.extend((f"ce_{name}", value) for name, value in extra.items())
    return orjson.dumps(data), headers


def _produce_records(bootstrap: str, topic: str, records: list[tuple[bytes, Headers]]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    for i, (value, headers) in enumerate(records):
        producer.send(topic, key=f"k{i}".encode(), value=value, headers=headers)
    producer.flush()
    producer.close()


def _campaigns(crm: CRM, customer: UUID) -> list[str]:
    """The campaigns the customer's stored responses name."""
    return [
        str(event.campaign_id) for event in crm.history(customer) if hasattr(event, "campaign_id")
    ]


def _campaign(customer: UUID, n: int) -> dict[str, Any]:
    return {
        "customer_id": str(customer),
        "campaign_id": f"c{n}",
        "response": "clicked",
        "channel": "email",
    }


@pytest.mark.kafka
def test_undecodable_headers_are_dead_lettered_once_and_the_rest_is_applied(
    kafka_bootstrap: str,
) -> None:
    """Issue 8: a non-UTF-8 header value crashed the consumer on every restart; the
    messages behind it were never applied and the bad ones were dead-lettered again."""
    crm, customer, _, _ = _crm_with_orders()
    topic, dlq = unique("mkt.in"), unique("crm.dlq")
    records = []
    bad_offsets = []
    for n in range(12):
        value, headers = _binary("marketing.campaign_response.v1", _campaign(customer, n), f"m{n}")
        if n % 4 == 1:
            headers.append(("ce_actor", b"j\xf6rg"))  # Latin-1, not UTF-8
            bad_offsets.append(n)
        records.append((value, headers))
    settings = _settings(kafka_bootstrap, topic, dlq, unique("g"))
    InboundConsumer(crm, settings).prepare_topics()
    _produce_records(kafka_bootstrap, topic, records)
    stats = InboundConsumer(crm, settings).run(max_messages=len(records), timeout=30)
    assert (stats.applied, stats.dead_lettered) == (9, 3)
    assert sorted(_campaigns(crm, customer)) == sorted(
        f"c{n}" for n in range(12) if n not in bad_offsets
    )
    # a restart finds nothing left: the offsets of the dead letters were committed
    again = InboundConsumer(crm, settings).run(idle_timeout=0.5, timeout=20)
    assert again.handled == 0
    dead = read_topic(kafka_bootstrap, dlq, idle=0.5)
    assert [int(d.headers["dlq.original.offset"]) for d in dead] == bad_offsets
    assert {d.headers["dlq.error.type"] for d in dead} == {b"InboundMessageError"}
    assert b"'ce_actor' is not UTF-8" in dead[0].headers["dlq.error.message"]
    assert dead[0].headers["ce_actor"] == b"j\xf6rg"  # the original headers, as they were


class _StoreGoesAway(CRM):
    """A CRM whose store fails (as if the database went away) for one campaign."""

    fail_campaign = "c5"

    def handle(self, command: Any) -> Any:
        if getattr(command, "campaign_id", None) == self.fail_campaign:
            raise OperationalError("connection to the database lost")
        return super().handle(command)


@pytest.mark.kafka
def test_a_store_failure_stops_the_consumer_without_repeating_earlier_dead_letters(
    kafka_bootstrap: str,
) -> None:
    crm = _StoreGoesAway("memory://")
    customer = crm.register_customer(kind="individual", name="Ana Lima", code=unique("AL"))
    topic, dlq = unique("mkt.in"), unique("crm.dlq")
    records = [
        _binary("marketing.campaign_response.v1", _campaign(customer, n), f"m{n}") for n in range(8)
    ]
    records[2] = (b"{not json", records[2][1])
    settings = _settings(kafka_bootstrap, topic, dlq, unique("g"))
    InboundConsumer(crm, settings).prepare_topics()
    _produce_records(kafka_bootstrap, topic, records)
    with pytest.raises(StoreUnavailableError, match="connection to the database lost"):
        InboundConsumer(crm, settings).run(max_messages=len(records), timeout=30)
    assert len(_campaigns(crm, customer)) == 4  # c0 c1 c3 c4
    crm.fail_campaign = ""  # the database is back: the restart applies the rest
    stats = InboundConsumer(crm, settings).run(max_messages=3, timeout=30)
    assert (stats.applied, stats.dead_lettered, stats.duplicates) == (3, 0, 0)
    assert len(_campaigns(crm, customer)) == 7
    dead = read_topic(kafka_bootstrap, dlq, idle=0.5)
    assert [d.headers["dlq.original.offset"] for d in dead] == [b"2"]  # once, not per restart


@pytest.mark.kafka
def test_a_reused_message_id_with_other_data_is_dead_lettered_not_applied(
    kafka_bootstrap: str,
) -> None:
    crm, _, account, orders = _crm_with_orders()
    topic, dlq = unique("erp.in"), unique("crm.dlq")
    shipped = {"account_id": str(account), "order_id": str(orders[0])}
    confirmed = cloudevent("erp.order_confirmed.v1", shipped, id_="erp-1")
    repeat = orjson.dumps(orjson.loads(confirmed), option=orjson.OPT_SORT_KEYS)  # same data
    reused = cloudevent("erp.order_confirmed.v1", {**shipped, "order_id": str(orders[1])}, "erp-1")
    consumer = InboundConsumer(crm, _settings(kafka_bootstrap, topic, dlq, unique("g")))
    consumer.prepare_topics()
    _produce(kafka_bootstrap, topic, [confirmed, repeat, reused])
    stats = consumer.run(max_messages=3, timeout=30)
    assert (stats.applied, stats.duplicates, stats.dead_lettered) == (1, 1, 1)
    acc = crm.account(account)
    assert acc.orders[orders[0]].status is OrderStatus.CONFIRMED
    assert acc.orders[orders[1]].status is OrderStatus.CONFIRMATION_REQUESTED
    (dead,) = read_topic(kafka_bootstrap, dlq, expect=1)
    assert dead.value == reused
    assert dead.headers["dlq.error.type"] == b"IdempotencyKeyReusedError"
    assert b"kafka:urn:erp:test:erp-1" in dead.headers["dlq.error.message"]
    assert b"other data" in dead.headers["dlq.error.message"]


@pytest.mark.kafka
@pytest.mark.parametrize(
    ("extension", "value", "field"),
    [("time", b"0001-01-01T00:00:00Z", b"occurred_at"), ("actor", b"a" * 150, b"actor")],
)
def test_metadata_the_store_cannot_hold_is_dead_lettered_with_a_typed_reason(
    kafka_bootstrap: str, extension: str, value: bytes, field: bytes
) -> None:
    """Issue 9: a CloudEvent time of year 1 or a 150-character actor must not be stored.

    The bounds are the domain's (``crm_domain.context``); the consumer's part is to turn the
    refusal into one dead-letter record."""
    crm, customer, _, _ = _crm_with_orders()
    before = crm.app.recorder.max_notification_id()
    topic, dlq = unique("mkt.in"), unique("crm.dlq")
    record = _binary(
        "marketing.campaign_response.v1", _campaign(customer, 1), "odd-1", **{extension: value}
    )
    consumer = InboundConsumer(crm, _settings(kafka_bootstrap, topic, dlq, unique("g")))
    consumer.prepare_topics()
    _produce_records(kafka_bootstrap, topic, [record])
    stats = consumer.run(max_messages=1, timeout=30)
    assert (stats.applied, stats.dead_lettered) == (0, 1)
    assert _campaigns(crm, customer) == []
    (dead,) = read_topic(kafka_bootstrap, dlq, expect=1)
    assert dead.headers["dlq.error.type"] == b"InvalidCommandError"
    assert field in dead.headers["dlq.error.message"]
    # nothing but the inbox record of the message id was stored
    assert crm.app.recorder.max_notification_id() == (before or 0) + 1


@pytest.mark.kafka
def test_stop_while_joining_the_group_returns_at_once(kafka_bootstrap: str) -> None:
    """Issue 8: SIGINT took ~20 s while the consumer was joining its group (the default,
    long rebalance timeout kept the join, and the leave request behind it, open)."""
    topic, dlq = unique("erp.in"), unique("crm.dlq")
    settings = ConsumerSettings(
        bootstrap=kafka_bootstrap,
        topics=(topic,),
        dead_letter_topic=dlq,
        group_id=unique("g"),
        create_topics=True,
        partitions=1,
    )  # the production defaults: max_poll_interval_ms=300000, session_timeout_ms=45000
    consumer = InboundConsumer(CRM("memory://"), settings)
    consumer.prepare_topics()
    threading.Timer(0.5, consumer.stop).start()
    started = time.monotonic()
    consumer.run(timeout=60)
    assert time.monotonic() - started < 5


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (OperationalError("server closed the connection"), True),
        (ConnectionRefusedError("refused"), True),
        (StoreUnavailableError("store down"), True),
        (BrokerUnavailableError("k:9092", 1.0), True),
        (DataError("invalid byte sequence"), False),  # this message's data: dead-letter
        (CorruptHistoryError(uuid4(), 3, "gap"), False),  # one aggregate: dead-letter
        (InvalidCommandError("invalid actor"), False),
        (TypeError("a bug met by one message"), False),
    ],
)
def test_only_failures_of_the_store_or_broker_stop_the_consumer(
    error: Exception, transient: bool
) -> None:
    assert is_transient(error) is transient
