"""The outbox relay: the event store is the outbox, Kafka is where it is delivered.

There are no dual writes: a command stores its events and nothing else. The relay follows
the application's notification log with eventsourcing's subscription (``recorder.subscribe``,
what ``ApplicationSubscription`` wraps: one mechanism for memory, SQLite and PostgreSQL) and
the application's mapper (which upcasts old event versions), routes each event, applies the consent
rule, encodes it (CloudEvents or Debezium layout) and hands it to an idempotent kafka-python
producer. Events that need no upcasting are encoded straight from their stored JSON, without
building the pydantic model (see ``_Session._publish_stored``); the record is the same.
Its position is a tracking record (``<name>_tracking`` table, in the same database as the
events), written only for a notification id whose messages - and those
of every earlier notification - the broker has acknowledged with ``acks=all``. A crash, a
kill or a broker outage therefore never skips an event; it can only resend some
(at-least-once; consumers deduplicate on the CloudEvents ``id``).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.persistence import Notification, Tracking, TrackingRecorder
from kafka import KafkaProducer
from kafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError
from kafka.partitioner import DefaultPartitioner, StickyPartitioner, murmur2

from adapters.kafka.cloudevents import EventEncoder, Headers, stored_field_order
from adapters.kafka.consent import (
    CONSENT_GRANTED,
    CONSENT_WITHDRAWN,
    PUBLISH,
    ConsentLedger,
    ConsentRule,
)
from adapters.kafka.eventtypes import EventType, EventTypeRegistry, crm_event_types
from adapters.kafka.routing import Route, RoutingTable, default_routing
from adapters.kafka.settings import RelaySettings
from adapters.kafka.topics import TopicSpec, ensure_topics
from adapters.kafka.tracking import tracking_recorder_for
from crm_domain.customer import Customer
from crm_domain.errors import BrokerUnavailableError, ConfigurationError, PublishError
from crm_domain.eventmodel import DomainEvent
from crm_domain.infrastructure.compat import force_close_sender, has_buffered_notifications

log = logging.getLogger(__name__)

T = TypeVar("T")
ProducerFactory = Callable[[dict[str, Any]], KafkaProducer]


@dataclass
class RelayStats:
    """What one run of the relay did."""

    events_read: int = 0
    #: Of those, published straight from their stored JSON (no model built, see the fast path).
    events_from_stored_json: int = 0
    messages_sent: int = 0
    messages_acked: int = 0
    dropped_for_consent: int = 0
    redacted_for_consent: int = 0
    position: int | None = None
    started_at: float = field(default_factory=time.monotonic)

    @property
    def seconds(self) -> float:
        """Time taken so far, by the monotonic clock (a wall-clock change cannot skew it)."""
        return time.monotonic() - self.started_at


@dataclass(slots=True)
class _Pending:
    """The messages sent for one notification, not yet all acknowledged."""

    notification_id: int
    futures: list[Any]
    sent_at: float
    event_type: str
    event_id: object  # a UUID or its text; only ever shown in error messages
    topics: list[str]


class _KeyPartitions:
    """The partition kafka-python's default partitioner gives a key (murmur2 of the key over
    the topic's partitions in order), with each key's hash remembered.

    An aggregate's events share a key, and the pure-Python murmur2 (with the partition lists
    the partitioner builds for every record) was a tenth of the relay's CPU per message.
    The partition is the one ``DefaultPartitioner`` picks (a test compares them), so per-key
    order and the partition a consumer or another producer expects are unchanged. A producer
    configured with another partitioner (``client_options``) is left to choose itself.
    """

    __slots__ = ("_hashes", "_partitions", "_producer", "enabled")
    #: Keys whose hash is kept; the map starts afresh when full (memory stays bounded).
    MAX_KEYS = 100_000

    def __init__(self, producer: KafkaProducer) -> None:
        self._producer = producer
        self._hashes: dict[bytes, int] = {}
        self._partitions: dict[str, list[int]] = {}
        config = getattr(producer, "config", None)
        partitioner = config.get("partitioner") if isinstance(config, dict) else None
        self.enabled = type(partitioner) in (DefaultPartitioner, StickyPartitioner)

    def refresh(self) -> None:
        """Read the topics' partitions from the producer's metadata again at the next send
        (once a page: a topic that gained partitions is seen as soon as the producer is)."""
        self._partitions.clear()

    def of(self, topic: str, key: bytes) -> int | None:
        """The key's partition of ``topic``; None if the producer chooses (see the class)."""
        if not self.enabled:
            return None
        partitions = self._partitions.get(topic)
        if partitions is None:
            partitions = sorted(self._producer.partitions_for(topic))
            self._partitions[topic] = partitions
        hashes = self._hashes
        hashed = hashes.get(key)
        if hashed is None:
            if len(hashes) >= self.MAX_KEYS:
                hashes.clear()
            hashed = hashes[key] = murmur2(key) & 0x7FFFFFFF
        return partitions[hashed % len(partitions)]


_STOP = object()
#: The most notifications the reader hands to the main loop at once (one queue item).
_PAGE = 1000


class KafkaRelay:
    """Publishes a CRM application's events to Kafka, at least once, in order per aggregate.

    >>> relay = KafkaRelay(crm.app, RelaySettings(bootstrap="127.0.0.1:9092", create_topics=True))
    >>> relay.run(until_caught_up=True)  # or relay.run() until relay.stop()
    """

    def __init__(
        self,
        app: Application[UUID],
        settings: RelaySettings,
        routing: RoutingTable | None = None,
        *,
        tracking: TrackingRecorder | None = None,
        registry: EventTypeRegistry | None = None,
        consent_rule: ConsentRule | None = None,
        producer_factory: ProducerFactory | None = None,
    ) -> None:
        self.app = app
        self.settings = settings
        self.routing = routing or default_routing()
        self.registry = registry or crm_event_types()
        self.routing.check_against(self.registry)
        self.consent_rule = consent_rule or ConsentRule()
        self.tracking = tracking or tracking_recorder_for(app, settings.name)
        self.encoder = EventEncoder(
            source=settings.source_for(app.name),
            message_format=settings.message_format,
            schema_base_uri=settings.schema_base_uri,
        )
        self._producer_factory: ProducerFactory = producer_factory or (
            lambda config: KafkaProducer(**config)
        )
        self._routes: dict[EventType, list[Route]] = {
            et: self.routing.routes_for(et) for et in self.registry
        }
        consent_names = (CONSENT_GRANTED, CONSENT_WITHDRAWN)
        #: Compacted topics keyed by customer: an erasure sends each a tombstone.
        self.tombstone_topics = sorted(
            {
                r.topic
                for r in self.routing.routes
                if r.compacted and any(r.matches(et) for et in self.registry if _of_customer(et))
            }
        )
        followed = {et.topic for et, routes in self._routes.items() if routes}
        followed |= {et.topic for et in self.registry if et.name in consent_names}
        if self.tombstone_topics:
            followed |= {et.topic for et in self.registry if et.cls is Customer.PersonalDataErased}
        self.followed_topics = sorted(followed)
        # The fast path (see _Session._publish_stored): routed types other than consent
        # changes and with nothing to upcast (class_version 1), by stored topic, with the
        # key order their stored JSON must have. It needs the CRM's PydanticMapper, whose
        # ``to_event_state`` gives the stored JSON state without building the model.
        self._event_state: Callable[[Notification], tuple[type[Any], dict[str, Any]]] | None = (
            getattr(app.mapper, "to_event_state", None)
        )
        self._stored_plans: dict[str, tuple[EventType, tuple[str, ...]]] = {
            et.topic: (et, stored_field_order(et.cls))
            for et, routes in self._routes.items()
            if routes
            and et.name not in consent_names
            and getattr(et.cls, "class_version", 1) == 1
            and self._event_state is not None
        }
        self._stopping = threading.Event()
        self.stats = RelayStats()

    # ----- public -------------------------------------------------------------------
    @property
    def position(self) -> int | None:
        """The last notification id whose messages the broker acknowledged."""
        return self.tracking.max_tracking_id(self.app.name)

    def stop(self) -> None:
        """Ask a running :meth:`run` to flush, record its position and return."""
        self._stopping.set()

    def prepare_topics(self) -> list[str]:
        """Check the routed topics exist; create them if settings allow. Returns created ones."""
        specs = [
            TopicSpec(r.topic, r.partitions, r.replication_factor, r.compacted)
            for r in self.routing.routes
        ]
        return self._with_broker_retry(
            lambda: ensure_topics(
                self.settings.bootstrap,
                specs,
                create=self.settings.create_topics,
                timeout=min(10.0, self.settings.broker_timeout),
                client_options=self.settings.client_options,
            ),
            what="checking topics",
        )

    def run(
        self,
        *,
        until_caught_up: bool = False,
        timeout: float | None = None,
    ) -> RelayStats:
        """Publish events until stopped (or, with ``until_caught_up``, until every event
        stored before the call is acknowledged). ``timeout`` bounds the run in seconds.

        Raises :class:`BrokerUnavailableError` when the broker stays unreachable longer than
        ``settings.broker_timeout``, :class:`PublishError` when it refuses a message.
        """
        self._stopping.clear()
        self.stats = RelayStats()
        deadline = None if timeout is None else time.monotonic() + timeout
        self.prepare_topics()
        position = self.position
        ledger = ConsentLedger.rebuild(self.app, self.registry, position)
        target = (self.app.recorder.max_notification_id() or 0) if until_caught_up else None
        producer = self._with_broker_retry(self._connect, what="connecting")
        session = _Session(self, producer, ledger, position)
        try:
            session.run(target=target, deadline=deadline)
        except BaseException:
            session.abort()
            raise
        session.close()
        self.stats.position = self.position
        return self.stats

    # ----- internals ----------------------------------------------------------------
    def _connect(self) -> KafkaProducer:
        try:
            return self._producer_factory(self.settings.producer_config())
        except TypeError as exc:
            raise ConfigurationError(f"invalid Kafka producer option: {exc}") from exc

    def _with_broker_retry(self, attempt: Callable[[], T], what: str) -> T:
        """Retry ``attempt`` with exponential back-off while the broker is unreachable,
        for at most ``broker_timeout`` seconds."""
        budget = self.settings.broker_timeout
        give_up = time.monotonic() + budget
        delay = 0.2
        failures = 0
        while True:
            try:
                result = attempt()
            except (KafkaConnectionError, KafkaTimeoutError, BrokerUnavailableError) as exc:
                if time.monotonic() + delay > give_up or self._stopping.is_set():
                    raise BrokerUnavailableError(
                        self.settings.bootstrap, budget, f"{what}: {exc}"
                    ) from exc
                # Once per outage, not once per retry: the retries are the expected state.
                log.log(
                    logging.DEBUG if failures else logging.WARNING,
                    "Kafka broker %s unavailable (%s: %s); retrying for up to %gs",
                    self.settings.bootstrap,
                    what,
                    exc,
                    budget,
                )
                failures += 1
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            if failures:
                log.info("Kafka broker %s reachable again (%s)", self.settings.bootstrap, what)
            return result


class _Session:
    """One connected run: a subscription reader thread, a producer, the pending window."""

    def __init__(
        self,
        relay: KafkaRelay,
        producer: KafkaProducer,
        ledger: ConsentLedger,
        position: int | None,
    ) -> None:
        self.relay = relay
        self.producer = producer
        self.ledger = ledger
        self.acked_position = position
        self.recorded_position = position
        self.pending: deque[_Pending] = deque()
        # Lists of notifications (what the subscription had in memory at once, up to _PAGE),
        # then _STOP or the reader's exception: one queue hand-over per page, not per event.
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=10)  # <= 10,000 notifications
        #: Notifications taken from the queue, not yet published.
        self.buffer: deque[Notification] = deque()
        # The recorder's subscription (what ApplicationSubscription wraps): its own thread
        # pulls notifications in pages; mapping them to domain events happens in the main
        # loop, so the reader thread holds the GIL only briefly and the producer's network
        # thread is not starved (which would slow every acknowledgement).
        self.subscription = relay.app.recorder.subscribe(gt=position, topics=relay.followed_topics)
        self.reader_stop = threading.Event()
        self.reader = threading.Thread(target=self._read, name="kafka-relay-reader", daemon=True)
        self.last_checkpoint = time.monotonic()
        #: Notifications acknowledged since the tracking record was last written.
        self.unrecorded = 0
        self.partitions = _KeyPartitions(producer)
        self.reader.start()

    # -- the subscription reader (its own thread: the subscription blocks when idle) --
    def _read(self) -> None:
        try:
            subscription = self.subscription
            with subscription:
                for item in subscription:
                    page = [item]
                    # The rest of what the subscription already holds in memory (reading
                    # it does not wait), so a backlog crosses the queue a page at a time.
                    while len(page) < _PAGE and has_buffered_notifications(subscription):
                        try:
                            page.append(next(subscription))
                        except StopIteration:  # stopped meanwhile: the for loop ends next
                            break
                    while not self.reader_stop.is_set():
                        try:
                            self.queue.put(page, timeout=0.1)
                            break
                        except queue.Full:
                            continue
                    if self.reader_stop.is_set():
                        return
        except BaseException as exc:
            self._put_final(exc)
        else:
            self._put_final(_STOP)

    def _put_final(self, item: object) -> None:
        while not self.reader_stop.is_set():
            with contextlib.suppress(queue.Full):
                self.queue.put(item, timeout=0.1)
                return

    # -- the main loop -----------------------------------------------------------------
    def run(self, target: int | None, deadline: float | None) -> None:
        relay = self.relay
        settings = relay.settings
        while True:
            item = self._next(timeout=0.02)
            burst = 0
            while item is not None:
                if item is _STOP:
                    self._drain()
                    return
                if isinstance(item, BaseException):
                    raise item
                if not self._publish_stored(item):
                    event = self.relay.app.mapper.to_domain_event(item)
                    if isinstance(event, DomainEvent):
                        self._publish(event, item.id)
                    else:  # not a CRM event (nothing the routing could match): move on
                        self._skip(item.id)
                burst += 1
                # Bound one burst, so acknowledgements and checkpoints are looked at often.
                full = len(self.pending) >= settings.max_pending
                item = None if full or burst >= 2000 else self._next(timeout=0)
            self._collect_acks()
            self._wait_if_window_full(settings.max_pending)
            self._check_outage()
            self._checkpoint_if_due()
            now = time.monotonic()
            if relay._stopping.is_set():
                self._drain()
                return
            if target is not None and self._caught_up(target):
                self._drain()
                return
            if deadline is not None and now > deadline:
                self._drain()
                return

    def _next(self, timeout: float) -> Any:
        """The next notification (or _STOP, or the reader's exception); None if none came
        within ``timeout`` seconds."""
        buffer = self.buffer
        if buffer:
            return buffer.popleft()
        try:
            item = self.queue.get(timeout=timeout) if timeout > 0 else self.queue.get_nowait()
        except queue.Empty:
            return None
        if type(item) is not list:
            return item
        self.partitions.refresh()
        buffer.extend(item)
        return buffer.popleft()

    def _publish(self, event: DomainEvent, notification_id: int) -> None:
        """The typed path: the event as its model (upcast if it is an old version)."""
        relay = self.relay
        stats = relay.stats
        stats.events_read += 1
        event_type = relay.registry.of(event)
        futures: list[Any] = []
        topics: list[str] = []
        if event_type is not None:
            self.ledger.apply(event)
            for route in relay._routes[event_type]:
                decision = relay.consent_rule.decide(route, event, event_type, self.ledger)
                if not decision.publish:
                    stats.dropped_for_consent += 1
                    continue
                if decision.redact:
                    stats.redacted_for_consent += 1
                record = relay.encoder.encode(event, event_type, decision.redact)
                futures.append(
                    self._send(
                        route.topic,
                        record.key,
                        record.value,
                        record.headers,
                        event_type,
                        event.event_id,
                    )
                )
                topics.append(route.topic)
            if event_type.cls is Customer.PersonalDataErased:
                self._tombstones(event.originator_id, event_type, event.event_id, futures, topics)
        self._track(
            notification_id,
            futures,
            topics,
            event_type.type if event_type else type(event).__name__,
            event.event_id,
        )

    def _publish_stored(self, notification: Notification) -> bool:
        """The fast path: publish straight from the stored JSON, without building the model.

        Taken when the event needs no upcasting, is not a consent change (those feed the
        ledger, which reads the model) and its stored keys are exactly what the current class
        writes (an event stored before a field was added lacks it: the typed path fills in
        the default). The record is then the same as :meth:`_publish` would send (a test
        compares them for every event type). Returns False when the typed path must be used.
        """
        relay = self.relay
        plan = relay._stored_plans.get(notification.topic)
        if plan is None or relay._event_state is None:
            return False
        event_type, field_order = plan
        _, state = relay._event_state(notification)
        if tuple(state) != field_order:
            return False
        stats = relay.stats
        stats.events_read += 1
        stats.events_from_stored_json += 1
        aggregate_id = notification.originator_id
        if not isinstance(aggregate_id, UUID):
            aggregate_id = UUID(str(aggregate_id))
        futures: list[Any] = []
        topics: list[str] = []
        event_id: str = state["event_id"]
        encode = relay.encoder.stored_parts
        for route in relay._routes[event_type]:
            if route.consent_purpose is None:
                decision = PUBLISH
            else:
                decision = relay.consent_rule.decide_stored(
                    route, aggregate_id, event_type, self.ledger, state
                )
                if not decision.publish:
                    stats.dropped_for_consent += 1
                    continue
                if decision.redact:
                    stats.redacted_for_consent += 1
            key, value, headers = encode(state, event_type, decision.redact)
            topic = route.topic
            futures.append(self._send(topic, key, value, headers, event_type, event_id))
            topics.append(topic)
        if event_type.cls is Customer.PersonalDataErased:
            self._tombstones(aggregate_id, event_type, event_id, futures, topics)
        self._track(notification.id, futures, topics, event_type.type, event_id)
        return True

    def _tombstones(
        self,
        customer_id: UUID,
        event_type: EventType,
        event_id: object,
        futures: list[Any],
        topics: list[str],
    ) -> None:
        """A customer's personal data was erased: a tombstone (their key, a null value) on
        each compacted topic, so compaction drops what was published about them."""
        key = str(customer_id).encode()
        for topic in self.relay.tombstone_topics:
            futures.append(self._send(topic, key, None, [], event_type, event_id))
            topics.append(topic)

    def _send(
        self,
        topic: str,
        key: bytes,
        value: bytes | None,
        headers: Headers,
        event_type: EventType,
        event_id: object,
    ) -> Any:
        relay = self.relay
        try:
            future = self.producer.send(
                topic,
                key=key,
                value=value,
                headers=headers,
                partition=self.partitions.of(topic, key),
            )
        except KafkaTimeoutError as exc:
            raise BrokerUnavailableError(
                relay.settings.bootstrap,
                relay.settings.broker_timeout,
                f"no metadata for topic {topic}: {exc}",
            ) from exc
        except KafkaError as exc:
            raise PublishError(topic, event_type.type, str(event_id), exc) from exc
        relay.stats.messages_sent += 1
        return future

    def _track(
        self,
        notification_id: int,
        futures: list[Any],
        topics: list[str],
        event_type: str,
        event_id: object,
    ) -> None:
        """Remember what was sent for a notification, until the broker acknowledges it."""
        if not futures and not self.pending:
            self.acked_position = notification_id
            return
        self.pending.append(
            _Pending(
                notification_id=notification_id,
                futures=futures,
                sent_at=time.monotonic(),
                event_type=event_type,
                event_id=event_id,
                topics=topics,
            )
        )

    def _skip(self, notification_id: int) -> None:
        if not self.pending:
            self.acked_position = notification_id

    def _collect_acks(self) -> None:
        """Advance the acknowledged position over the contiguous acknowledged prefix."""
        while self.pending:
            head = self.pending[0]
            for i, future in enumerate(head.futures):
                if not future.is_done:
                    return
                if future.failed():
                    self._raise_for(head, head.topics[i], future.exception)
            self.relay.stats.messages_acked += len(head.futures)
            self.acked_position = head.notification_id
            self.unrecorded += 1
            self.pending.popleft()

    def _raise_for(self, head: _Pending, topic: str, exc: BaseException) -> None:
        settings = self.relay.settings
        if isinstance(exc, KafkaTimeoutError) or getattr(exc, "retriable", False):
            raise BrokerUnavailableError(
                settings.bootstrap,
                settings.broker_timeout,
                f"{head.event_type} {head.event_id} to {topic} not acknowledged: "
                f"{type(exc).__name__}: {exc}",
            ) from exc
        raise PublishError(topic, head.event_type, str(head.event_id), exc) from exc

    def _wait_if_window_full(self, max_pending: int) -> None:
        while len(self.pending) >= max_pending:
            head = self.pending[0]
            for future in head.futures:
                with contextlib.suppress(KafkaError):
                    future.get(timeout=0.5)
            self._collect_acks()
            self._checkpoint_if_due()
            self._check_outage()

    def _check_outage(self) -> None:
        """Stop when the oldest message waits longer than the broker may stay away.

        The producer itself fails a batch after the same time (``delivery_timeout_ms``);
        this is the guard for a broker that accepts connections but never answers.
        """
        if not self.pending:
            return
        settings = self.relay.settings
        head = self.pending[0]
        waited = time.monotonic() - head.sent_at
        if waited > settings.broker_timeout + 5.0:
            raise BrokerUnavailableError(
                settings.bootstrap,
                settings.broker_timeout,
                f"{head.event_type} {head.event_id} unacknowledged for {waited:.0f}s",
            )

    def _checkpoint_if_due(self) -> None:
        """Record the position every ``checkpoint_every`` acknowledged notifications (and
        every ``checkpoint_interval`` seconds): a backlog published at full speed used to
        be recorded only by time, so a kill repeated everything of the last interval."""
        settings = self.relay.settings
        if (
            self.unrecorded >= settings.checkpoint_every
            or time.monotonic() - self.last_checkpoint >= settings.checkpoint_interval
        ):
            self._checkpoint()

    def _checkpoint(self) -> None:
        position = self.acked_position
        if position is not None and (
            self.recorded_position is None or position > self.recorded_position
        ):
            self.relay.tracking.insert_tracking(Tracking(self.relay.app.name, position))
            self.recorded_position = position
        self.unrecorded = 0
        self.last_checkpoint = time.monotonic()

    def _caught_up(self, target: int) -> bool:
        if self.pending or self.buffer or not self.queue.empty():
            return False
        position = self.acked_position or 0
        if position >= target:
            return True
        remaining = self.relay.app.recorder.select_notifications(
            start=position,
            limit=1,
            stop=target,
            topics=self.relay.followed_topics,
            inclusive_of_start=False,
        )
        return not remaining

    def _drain(self) -> None:
        """Wait for every sent message to be acknowledged, then record the position."""
        settings = self.relay.settings
        try:
            self.producer.flush(timeout=settings.broker_timeout)
        except KafkaTimeoutError as exc:
            raise BrokerUnavailableError(
                settings.bootstrap, settings.broker_timeout, f"flushing: {exc}"
            ) from exc
        self._collect_acks()
        self._checkpoint()

    # -- shutdown ------------------------------------------------------------------------
    def _stop_reader(self) -> None:
        self.reader_stop.set()
        self.subscription.stop()
        self.reader.join(timeout=10)

    def close(self) -> None:
        self._stop_reader()
        self.producer.close(timeout=self.relay.settings.broker_timeout)

    def abort(self) -> None:
        """Stop at once: unsent messages are discarded (they will be resent after restart)."""
        self._stop_reader()
        with contextlib.suppress(Exception):
            self._collect_acks()
        with contextlib.suppress(Exception):
            self._checkpoint()
        abort_producer(self.producer)


def _of_customer(event_type: EventType) -> bool:
    """True for the event types of the ``Customer`` aggregate (keyed by customer id)."""
    return vars(Customer).get(event_type.cls.__name__) is event_type.cls


def abort_producer(producer: KafkaProducer) -> None:
    """Close a producer without sending what it still holds.

    kafka-python's ``close(timeout=0)`` flushes first (and raises when records are still
    pending), so the sender thread is force-closed before: it fails every incomplete batch
    instead of sending it, and no message of this run can reach the broker afterwards.
    """
    with contextlib.suppress(Exception):
        force_close_sender(producer)
    with contextlib.suppress(Exception):
        producer.close(timeout=1)
