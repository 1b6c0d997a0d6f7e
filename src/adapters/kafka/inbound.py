"""Inbound: ERP and marketing messages become CRM commands, exactly once in effect.

A consumer in a consumer group reads the ERP and marketing topics. Each message (format:
:mod:`adapters.kafka.messages`) is parsed, validated, recorded in the inbox
(:mod:`adapters.kafka.inbox`: its id with a hash of its data) and applied as one command
inside ``crm.context(command_id=...)``; the command id is derived from the message's own
CloudEvents ``source`` and ``id``, so a redelivered message (after a crash, a rebalance,
or a replay from an earlier offset) stores nothing twice, and another message reusing the
id is refused. Offsets are committed after each polled batch, once its commands are stored
and its dead letters acknowledged.

Anything that cannot be read or applied (malformed, undecodable, refused by the domain, or
failing in any other way for that one message) goes to the dead-letter topic once, with
the original key, value and headers plus ``dlq.*`` headers naming the error; consumption
goes on. A transient failure (:func:`is_transient`: the store is down) is *not*
dead-lettered: the consumer commits what it finished and stops, and the message is
applied after restart. So no message makes the consumer crash-loop.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from eventsourcing.persistence import DataError, IntegrityError, PersistenceError
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import CommitFailedError, KafkaError
from kafka.structs import OffsetAndMetadata
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from adapters.kafka.cloudevents import CloudEvent, decode_cloudevent
from adapters.kafka.inbox import Receipt, data_hash, receive
from adapters.kafka.messages import (
    INBOUND_PAYLOADS,
    CampaignResponse,
    CreditLimitChanged,
    CreditNoteIssued,
    InboundPayload,
    InvoicePaid,
    OrderCancelled,
    OrderConfirmed,
    OrderRejected,
    OrderShipped,
    RefundIssued,
    Unsubscribed,
)
from adapters.kafka.topics import TopicSpec, ensure_topics
from crm_domain.application import CRM
from crm_domain.commands.account import (
    CancelOrder,
    ConfirmOrder,
    IssueCreditNote,
    IssueRefund,
    ReceivePayment,
    RejectOrder,
    SetCreditLimit,
    ShipOrder,
)
from crm_domain.commands.base import Command
from crm_domain.commands.customer import RecordCampaignResponse, WithdrawConsent
from crm_domain.errors import (
    BrokerUnavailableError,
    ConcurrencyConflictError,
    CorruptHistoryError,
    CRMError,
    InboundMessageError,
    InfrastructureError,
    StoreUnavailableError,
    invalid,
)

log = logging.getLogger(__name__)

DEFAULT_ERP_INBOUND_TOPIC = "erp.crm.commands"
DEFAULT_MARKETING_INBOUND_TOPIC = "marketing.crm.commands"
DEFAULT_DEAD_LETTER_TOPIC = "crm.inbound.dlq"


class ConsumerSettings(BaseModel):
    """Where the consumer reads, where it dead-letters, and how it joins its group."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    bootstrap: str = Field(min_length=1)
    topics: tuple[str, ...] = (DEFAULT_ERP_INBOUND_TOPIC, DEFAULT_MARKETING_INBOUND_TOPIC)
    dead_letter_topic: str = DEFAULT_DEAD_LETTER_TOPIC
    group_id: str = "crm-core-inbound"
    create_topics: bool = False
    partitions: int = Field(default=6, ge=1)
    replication_factor: int = Field(default=1, ge=1)
    #: Seconds the broker may stay unreachable before the consumer gives up.
    broker_timeout: float = Field(default=60.0, gt=0)
    max_poll_records: int = Field(default=500, gt=0)
    max_poll_interval_ms: int = Field(default=300_000, gt=0)
    session_timeout_ms: int = Field(default=45_000, gt=0)
    heartbeat_interval_ms: int = Field(default=3_000, gt=0)
    #: Times a command that collided with a concurrent write is retried before dead-lettering.
    conflict_retries: int = Field(default=3, ge=0)
    #: Seconds :meth:`InboundConsumer.run` may spend leaving the group and flushing on exit.
    close_timeout: float = Field(default=2.0, gt=0)
    client_options: dict[str, Any] = Field(default_factory=dict)

    def consumer_config(self) -> dict[str, Any]:
        """kafka-python ``KafkaConsumer`` settings: manual commits, from the earliest offset."""
        config: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap.split(","),
            "group_id": self.group_id,
            "client_id": "crm-inbound",
            "enable_auto_commit": False,
            "auto_offset_reset": "earliest",
            "max_poll_records": self.max_poll_records,
            "max_poll_interval_ms": self.max_poll_interval_ms,
            "session_timeout_ms": self.session_timeout_ms,
            "heartbeat_interval_ms": self.heartbeat_interval_ms,
            "request_timeout_ms": max(self.session_timeout_ms + 5000, 30_000),
        }
        config.update(self.client_options)
        return config

    def dead_letter_producer_config(self) -> dict[str, Any]:
        """kafka-python ``KafkaProducer`` settings of the dead-letter producer (idempotent, all
        acks)."""
        budget_ms = int(self.broker_timeout * 1000)
        config: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap.split(","),
            "client_id": "crm-inbound-dlq",
            "acks": "all",
            "enable_idempotence": True,
            "max_block_ms": budget_ms,
            "delivery_timeout_ms": max(budget_ms, 31_000),
        }
        config.update(self.client_options)
        return config


@dataclass
class InboundStats:
    """Counts of one consumer run: messages applied, dead-lettered, and applied per type."""

    applied: int = 0
    dead_lettered: int = 0
    #: Messages seen before with the same id and data (redeliveries): nothing stored.
    duplicates: int = 0
    by_type: dict[str, int] = field(default_factory=dict)

    @property
    def handled(self) -> int:
        """Messages dealt with: applied, dead-lettered or recognised as redelivered."""
        return self.applied + self.dead_lettered + self.duplicates


@dataclass(frozen=True)
class InboundCommand:
    """A parsed, validated message, ready to apply."""

    message: CloudEvent
    payload: InboundPayload

    @property
    def command_id(self) -> str:
        """Stable across redeliveries: the sender's own id for the message."""
        return f"kafka:{self.message.source}:{self.message.id}"

    @property
    def data_hash(self) -> str:
        """What the message says (type and validated data), for telling a redelivery from
        another message that reuses its id."""
        return data_hash(self.message.type, self.payload.model_dump(mode="json"))


def parse_message(
    value: bytes | None, headers: Iterable[tuple[str, bytes | None]]
) -> InboundCommand:
    """Read one inbound message; raises :class:`InboundMessageError` when it is malformed."""
    if value is None:
        raise InboundMessageError("empty message (tombstone) on an inbound topic")
    message = decode_cloudevent(value, headers)
    payload_cls = INBOUND_PAYLOADS.get(message.type)
    if payload_cls is None:
        raise InboundMessageError(
            f"unknown message type {message.type!r}; known: {', '.join(sorted(INBOUND_PAYLOADS))}"
        )
    data = message.data
    if isinstance(data, bytes | str):
        try:
            data = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise InboundMessageError(f"{message.type}: data is not JSON: {exc}") from exc
    try:
        payload = payload_cls.model_validate(data)
    except ValidationError as exc:
        problem = invalid(exc, what=f"{message.type} data")
        raise InboundMessageError(str(problem), errors=problem.errors) from exc
    return InboundCommand(message=message, payload=payload)


def apply_command(crm: CRM, command: InboundCommand) -> None:
    """Run the CRM command for one inbound message, idempotently.

    ERP's messages run under the ERP source system the settings name first
    (``erp_sources``): only ERP confirms or rejects orders, and this consumer speaks for it.
    """
    message = command.message
    ext = message.extensions
    sender = type(command.payload).SENDER
    if sender == "erp":
        sender = crm.settings.erp_source
    with crm.context(
        actor=str(ext.get("actor") or message.source),
        source_system=sender,
        correlation_id=str(ext.get("correlationid") or message.id),
        causation_id=message.id,
        command_id=command.command_id,
        occurred_at=message.time,
    ):
        crm.handle(command_for(command.payload))


def _confirm_order(p: OrderConfirmed) -> Command[Any]:
    return ConfirmOrder(account_id=p.account_id, order_id=p.order_id, erp_reference=p.erp_reference)


def _reject_order(p: OrderRejected) -> Command[Any]:
    return RejectOrder(
        account_id=p.account_id, order_id=p.order_id, reason=p.reason, detail=p.detail
    )


def _ship_order(p: OrderShipped) -> Command[Any]:
    return ShipOrder(account_id=p.account_id, order_id=p.order_id, shipment_ref=p.shipment_ref)


def _cancel_order(p: OrderCancelled) -> Command[Any]:
    return CancelOrder(account_id=p.account_id, order_id=p.order_id, reason=p.reason)


def _issue_credit_note(p: CreditNoteIssued) -> Command[Any]:
    return IssueCreditNote(
        account_id=p.account_id,
        invoice_id=p.invoice_id,
        credit_note_id=p.credit_note_id,
        amount=p.amount,
        reason=p.reason,
        reference=p.reference,
    )


def _issue_refund(p: RefundIssued) -> Command[Any]:
    return IssueRefund(
        account_id=p.account_id,
        invoice_id=p.invoice_id,
        amount=p.amount,
        reason=p.reason,
        reference=p.reference,
    )


def _receive_payment(p: InvoicePaid) -> Command[Any]:
    return ReceivePayment(
        account_id=p.account_id, amount=p.amount, invoice_id=p.invoice_id, reference=p.reference
    )


def _set_credit_limit(p: CreditLimitChanged) -> Command[Any]:
    return SetCreditLimit(account_id=p.account_id, limit=p.limit)


def _record_campaign_response(p: CampaignResponse) -> Command[Any]:
    return RecordCampaignResponse(
        customer_id=p.customer_id,
        campaign_id=p.campaign_id,
        response=p.response,
        channel=p.channel,
        registered=p.registered,
    )


def _withdraw_consent(p: Unsubscribed) -> Command[Any]:
    return WithdrawConsent(
        customer_id=p.customer_id, purpose=p.purpose, channel=p.channel, reason=p.reason
    )


#: THE dispatch table: the CRM command (a :class:`~crm_domain.commands.base.Command`
#: value) each inbound message becomes; :meth:`CRM.handle` runs it like any other caller's.
COMMANDS: dict[type[InboundPayload], Callable[[Any], Command[Any]]] = {
    OrderConfirmed: _confirm_order,
    OrderRejected: _reject_order,
    OrderShipped: _ship_order,
    OrderCancelled: _cancel_order,
    InvoicePaid: _receive_payment,
    CreditNoteIssued: _issue_credit_note,
    RefundIssued: _issue_refund,
    CreditLimitChanged: _set_credit_limit,
    CampaignResponse: _record_campaign_response,
    Unsubscribed: _withdraw_consent,
}


def command_for(payload: InboundPayload) -> Command[Any]:
    """The CRM command an inbound message's validated data asks for."""
    to_command = COMMANDS.get(type(payload))
    if to_command is None:  # pragma: no cover - a test keeps COMMANDS and INBOUND_PAYLOADS in step
        raise InboundMessageError(f"no CRM command for {type(payload).__name__}")
    return to_command(payload)


def is_transient(error: BaseException) -> bool:
    """True when ``error`` says the store, broker or setup is unwell, not the message: the
    consumer then stops without committing, and the message is applied after restart.
    Everything else (a rejected command, data a store cannot hold, a bug met by one
    message) is the message's problem: it is dead-lettered and consumption goes on."""
    if isinstance(error, CorruptHistoryError):
        return False  # one aggregate's history: other messages can still be applied
    if isinstance(error, InfrastructureError):
        return True
    if isinstance(error, PersistenceError):
        return not isinstance(error, DataError | IntegrityError)
    return isinstance(error, OSError)


def dead_letter_headers(
    record: Any, error: BaseException, group_id: str
) -> list[tuple[str, bytes]]:
    """The original headers, plus ``dlq.*`` headers saying where it came from and why."""
    headers: list[tuple[str, bytes]] = [
        (name, value) for name, value in (record.headers or []) if value is not None
    ]
    headers.extend(
        [
            ("dlq.error.type", type(error).__name__.encode()),
            ("dlq.error.message", str(error)[:4000].encode("utf-8", "backslashreplace")),
            ("dlq.original.topic", str(record.topic).encode()),
            ("dlq.original.partition", str(record.partition).encode()),
            ("dlq.original.offset", str(record.offset).encode()),
            ("dlq.original.timestamp", str(record.timestamp).encode()),
            ("dlq.consumer.group", group_id.encode()),
        ]
    )
    return headers


ConsumerFactory = Callable[[dict[str, Any]], KafkaConsumer]
ProducerFactory = Callable[[dict[str, Any]], KafkaProducer]


class InboundConsumer:
    """Applies ERP and marketing messages to the CRM; dead-letters the ones it cannot."""

    def __init__(
        self,
        crm: CRM,
        settings: ConsumerSettings,
        *,
        consumer_factory: ConsumerFactory | None = None,
        producer_factory: ProducerFactory | None = None,
    ) -> None:
        self.crm = crm
        self.settings = settings
        self._consumer_factory: ConsumerFactory = consumer_factory or (
            lambda config: KafkaConsumer(**config)
        )
        self._producer_factory: ProducerFactory = producer_factory or (
            lambda config: KafkaProducer(**config)
        )
        self._stopping = threading.Event()
        self.stats = InboundStats()

    def stop(self) -> None:
        """Ask a running :meth:`run` to return; safe from a signal handler or another thread.

        :meth:`run` notices within one poll (0.2 s), also while it is still joining the
        group, and then leaves the group waiting at most ``settings.close_timeout`` seconds
        (a broker still holding a join request open would otherwise keep it for the whole
        rebalance timeout).
        """
        self._stopping.set()

    def prepare_topics(self) -> list[str]:
        """Check the inbound and dead-letter topics exist (creating the missing ones when
        ``create_topics`` is set); the names created."""
        s = self.settings
        specs = [
            TopicSpec(name, s.partitions, s.replication_factor)
            for name in (*s.topics, s.dead_letter_topic)
        ]
        return ensure_topics(
            s.bootstrap,
            specs,
            create=s.create_topics,
            timeout=min(10.0, s.broker_timeout),
            client_options=s.client_options,
        )

    def run(
        self,
        *,
        max_messages: int | None = None,
        idle_timeout: float | None = None,
        timeout: float | None = None,
    ) -> InboundStats:
        """Consume until stopped, or until ``max_messages`` were handled, or ``idle_timeout``
        seconds passed with partitions assigned and nothing to read, or ``timeout``."""
        self._stopping.clear()
        self.stats = InboundStats()
        self.prepare_topics()
        started = time.monotonic()
        try:
            consumer = self._consumer_factory(self.settings.consumer_config())
            dlq = self._producer_factory(self.settings.dead_letter_producer_config())
        except KafkaError as exc:
            raise BrokerUnavailableError(
                self.settings.bootstrap, self.settings.broker_timeout, str(exc)
            ) from exc
        try:
            consumer.subscribe(list(self.settings.topics))
            last_activity: float | None = None
            while not self._stopping.is_set():
                batch: dict[TopicPartition, list[Any]] = consumer.poll(
                    timeout_ms=200, max_records=self.settings.max_poll_records
                )
                now = time.monotonic()
                if batch:
                    self._handle_batch(consumer, dlq, batch)
                    last_activity = now
                elif consumer.assignment() and last_activity is None:
                    last_activity = now
                if max_messages is not None and self.stats.handled >= max_messages:
                    break
                if (
                    idle_timeout is not None
                    and last_activity is not None
                    and now - last_activity > idle_timeout
                ):
                    break
                if timeout is not None and now - started > timeout:
                    break
        finally:
            close_ms = int(self.settings.close_timeout * 1000)
            with contextlib.suppress(Exception):
                consumer.close(autocommit=False, timeout_ms=close_ms)
            with contextlib.suppress(Exception):
                dlq.close(timeout=self.settings.close_timeout)
        return self.stats

    def _handle_batch(
        self,
        consumer: KafkaConsumer,
        dlq: KafkaProducer,
        batch: dict[TopicPartition, list[Any]],
    ) -> None:
        """Handle a polled batch, then commit its offsets once its dead letters are safe.

        When a transient failure (the store went away) stops the batch, the messages
        handled before it are still committed, so a restart neither applies nor
        dead-letters them again: every message is dead-lettered once.
        """
        done: dict[TopicPartition, OffsetAndMetadata] = {}
        dead_letters: list[Any] = []
        try:
            for tp, records in batch.items():
                for record in records:
                    future = self._handle(dlq, record)
                    if future is not None:
                        dead_letters.append(future)
                    done[tp] = OffsetAndMetadata(record.offset + 1, "", -1)
        finally:
            if dead_letters:
                self._wait_for_dead_letters(dlq, dead_letters)
            if done:
                self._commit(consumer, done)

    def _commit(
        self, consumer: KafkaConsumer, offsets: dict[TopicPartition, OffsetAndMetadata]
    ) -> None:
        try:
            consumer.commit(offsets)
        except CommitFailedError as exc:
            # The group rebalanced: another member will get these messages again; the
            # inbox and the command ids make the repeat harmless.
            log.warning("offset commit failed after a rebalance: %s", exc)

    def _wait_for_dead_letters(self, dlq: KafkaProducer, futures: Sequence[Any]) -> None:
        try:
            dlq.flush(timeout=self.settings.broker_timeout)
            for future in futures:
                future.get(timeout=1)
        except KafkaError as exc:
            raise BrokerUnavailableError(
                self.settings.bootstrap,
                self.settings.broker_timeout,
                f"dead-letter topic {self.settings.dead_letter_topic} not acknowledging: {exc}",
            ) from exc

    def _handle(self, dlq: KafkaProducer, record: Any) -> Any:
        """Apply one record; returns the dead-letter send future when it was dead-lettered.

        Raises only for a transient failure (:func:`is_transient`); anything else that
        stops a message from being read or applied sends it to the dead-letter topic.
        """
        try:
            command = parse_message(record.value, record.headers or [])
        except InboundMessageError as exc:
            return self._dead_letter(dlq, record, exc)
        except Exception as exc:  # a decoder bug must not stop the consumer for good
            return self._dead_letter(
                dlq,
                record,
                InboundMessageError(f"cannot read message: {type(exc).__name__}: {exc}"),
            )
        try:
            receipt = receive(self.crm, command.command_id, command.message.type, command.data_hash)
            if receipt is Receipt.DUPLICATE:
                self.stats.duplicates += 1
                return None
            self._apply(command)
        except CRMError as exc:
            if is_transient(exc):
                raise
            return self._dead_letter(dlq, record, exc)
        except Exception as exc:
            if is_transient(exc):
                raise StoreUnavailableError(
                    f"event store failed while applying {command.message.type} "
                    f"{command.message.id}: {type(exc).__name__}: {exc}"
                ) from exc
            log.exception("%s %s could not be applied", command.message.type, command.message.id)
            return self._dead_letter(dlq, record, _rejection(exc, command))
        self.stats.applied += 1
        kind = command.message.type
        self.stats.by_type[kind] = self.stats.by_type.get(kind, 0) + 1
        return None

    def _apply(self, command: InboundCommand) -> None:
        """Apply, retrying a command that collided with a concurrent write."""
        for attempt in range(self.settings.conflict_retries + 1):
            try:
                apply_command(self.crm, command)
                return
            except ConcurrencyConflictError:
                if attempt >= self.settings.conflict_retries:
                    raise
                time.sleep(0.05 * (attempt + 1))

    def _dead_letter(self, dlq: KafkaProducer, record: Any, error: BaseException) -> Any:
        log.warning(
            "dead-lettering %s[%s]@%s: %s: %s",
            record.topic,
            record.partition,
            record.offset,
            type(error).__name__,
            error,
        )
        self.stats.dead_lettered += 1
        return dlq.send(
            self.settings.dead_letter_topic,
            key=record.key,
            value=record.value,
            headers=dead_letter_headers(record, error, self.settings.group_id),
        )


def _rejection(error: Exception, command: InboundCommand) -> Exception:
    """The typed reason a message was not applied: a :class:`CRMError` as it is, pydantic's
    error as :class:`InvalidCommandError`, anything else as :class:`InboundMessageError`."""
    if isinstance(error, CRMError):
        return error
    if isinstance(error, ValidationError):
        return invalid(error, command.message.type)
    return InboundMessageError(
        f"{command.message.type} {command.message.id} could not be applied: "
        f"{type(error).__name__}: {error}"
    )
