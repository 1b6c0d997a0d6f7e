"""``crm relay kafka`` and ``crm consume kafka``: the adapters as long-running processes.

Both stop cleanly on SIGTERM/SIGINT (the relay flushes and records its position first) and
exit with the code of the error that stopped them: 2 for configuration (bad routing file,
missing topic), 3 when the broker stayed unreachable past ``--broker-timeout``, so a
supervisor (systemd, Kubernetes) can restart the one and alert on the other.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any

from adapters.exit_codes import exit_code_for
from adapters.kafka.cloudevents import MessageFormat
from adapters.kafka.routing import (
    DEFAULT_ERP_TOPIC,
    DEFAULT_MARKETING_TOPIC,
    RoutingTable,
    WithoutConsent,
    default_routing,
)
from crm_domain.errors import CRMError

BOOTSTRAP_ENV = "CRM_KAFKA_BOOTSTRAP"
STORE_ENV = "CRM_STORE_URL"


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--store",
        default=os.environ.get(STORE_ENV, ""),
        help=f"store URL (default ${STORE_ENV}, else sqlite:///crm.sqlite)",
    )
    parser.add_argument(
        "--bootstrap",
        default=os.environ.get(BOOTSTRAP_ENV, ""),
        metavar="HOST:PORT",
        help=f"Kafka bootstrap servers, comma-separated (default ${BOOTSTRAP_ENV})",
    )
    parser.add_argument(
        "--create-topics",
        action="store_true",
        help="create missing topics on start (else a missing topic is an error)",
    )
    parser.add_argument("--partitions", type=int, default=6, help="for created topics (6)")
    parser.add_argument("--replication-factor", type=int, default=1, help="for created topics (1)")
    parser.add_argument(
        "--broker-timeout",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="give up (exit code 3) when the broker is unreachable this long (60)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``relay kafka`` and ``consume kafka`` to the ``crm`` command."""
    relay = subparsers.add_parser(
        "relay", help="publish stored events to a message bus (outbox relay)"
    )
    relay_sub = relay.add_subparsers(dest="relay_target", required=True, metavar="BUS")
    kafka = relay_sub.add_parser(
        "kafka",
        help="publish every stored event to Kafka as CloudEvents, at least once",
        description="Follow the event store and publish each routed event to Kafka. "
        "Records its position only after the broker acknowledged (acks=all).",
    )
    _common(kafka)
    kafka.add_argument(
        "--format",
        choices=[m.value for m in MessageFormat],
        default=MessageFormat.BINARY.value,
        help="binary CloudEvents (ce_ headers, default), structured CloudEvents, "
        "or the Debezium outbox layout",
    )
    kafka.add_argument("--routing", default="", metavar="FILE", help="routing table (.toml/.yaml)")
    kafka.add_argument("--erp-topic", default=DEFAULT_ERP_TOPIC)
    kafka.add_argument("--marketing-topic", default=DEFAULT_MARKETING_TOPIC)
    kafka.add_argument(
        "--without-consent",
        choices=[w.value for w in WithoutConsent],
        default=WithoutConsent.STRIP.value,
        help="marketing events with personal data of a customer without consent: "
        "strip the personal fields (default) or drop the event",
    )
    kafka.add_argument("--source", default="", help="CloudEvents source (urn:crm-core:CRM)")
    kafka.add_argument("--name", default="kafka_relay", help="relay name (tracking table prefix)")
    kafka.add_argument("--linger-ms", type=int, default=5)
    kafka.add_argument("--max-pending", type=int, default=20_000, help=argparse.SUPPRESS)
    kafka.add_argument(
        "--checkpoint-interval",
        type=float,
        default=0.5,
        metavar="SECONDS",
        help="how often the position is recorded while events flow (0.5)",
    )
    kafka.add_argument(
        "--until-caught-up",
        action="store_true",
        help="exit once every event stored at start is published (batch mode)",
    )
    kafka.set_defaults(func=run_relay)

    consume = subparsers.add_parser("consume", help="apply messages from a bus as CRM commands")
    consume_sub = consume.add_subparsers(dest="consume_source", required=True, metavar="BUS")
    ck = consume_sub.add_parser(
        "kafka",
        help="apply ERP and marketing messages from Kafka; dead-letter the bad ones",
        description="Consume ERP and marketing messages (CloudEvents JSON, see docs/adapters.md) "
        "in a consumer group and apply each as an idempotent CRM command.",
    )
    _common(ck)
    ck.add_argument(
        "--topic",
        action="append",
        default=[],
        help="inbound topic (repeatable; default erp.crm.commands and marketing.crm.commands)",
    )
    ck.add_argument("--dead-letter-topic", default="crm.inbound.dlq")
    ck.add_argument("--group", default="crm-core-inbound", help="consumer group id")
    ck.add_argument("--max-messages", type=int, default=None, help="exit after N messages")
    ck.add_argument("--idle-timeout", type=float, default=None, help="exit after N idle seconds")
    ck.set_defaults(func=run_consumer)


def _setup(args: argparse.Namespace) -> None:
    if not args.bootstrap:
        raise SystemExit(f"crm: --bootstrap HOST:PORT (or ${BOOTSTRAP_ENV}) is required")
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def _on_signals(stop: Callable[[], None]) -> None:
    def handler(signum: int, _frame: Any) -> None:
        stop()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, handler)


def run_relay(args: argparse.Namespace) -> int:
    from adapters.kafka.relay import KafkaRelay
    from adapters.kafka.settings import RelaySettings
    from crm_domain.application import CRM

    _setup(args)
    try:
        routing = (
            RoutingTable.load(args.routing)
            if args.routing
            else default_routing(
                args.erp_topic,
                args.marketing_topic,
                without_consent=WithoutConsent(args.without_consent),
                partitions=args.partitions,
                replication_factor=args.replication_factor,
            )
        )
        settings = RelaySettings(
            bootstrap=args.bootstrap,
            message_format=MessageFormat(args.format),
            source=args.source or None,
            create_topics=args.create_topics,
            broker_timeout=args.broker_timeout,
            linger_ms=args.linger_ms,
            max_pending=args.max_pending,
            checkpoint_interval=args.checkpoint_interval,
            name=args.name,
        )
        crm = CRM(args.store or None)
        try:
            relay = KafkaRelay(crm.app, settings, routing)
            _on_signals(relay.stop)
            stats = relay.run(until_caught_up=args.until_caught_up)
        finally:
            crm.close()
    except CRMError as exc:
        print(f"crm relay kafka: {exc}", file=sys.stderr)
        return exit_code_for(exc)
    print(
        f"relay stopped at notification {stats.position}: {stats.events_read} events read, "
        f"{stats.messages_acked} messages acknowledged, "
        f"{stats.redacted_for_consent} redacted and {stats.dropped_for_consent} dropped "
        "for missing consent"
    )
    return 0


def run_consumer(args: argparse.Namespace) -> int:
    from adapters.kafka.inbound import (
        DEFAULT_ERP_INBOUND_TOPIC,
        DEFAULT_MARKETING_INBOUND_TOPIC,
        ConsumerSettings,
        InboundConsumer,
    )
    from crm_domain.application import CRM

    _setup(args)
    topics = tuple(args.topic) or (DEFAULT_ERP_INBOUND_TOPIC, DEFAULT_MARKETING_INBOUND_TOPIC)
    try:
        settings = ConsumerSettings(
            bootstrap=args.bootstrap,
            topics=topics,
            dead_letter_topic=args.dead_letter_topic,
            group_id=args.group,
            create_topics=args.create_topics,
            partitions=args.partitions,
            replication_factor=args.replication_factor,
            broker_timeout=args.broker_timeout,
        )
        crm = CRM(args.store or None)
        try:
            consumer = InboundConsumer(crm, settings)
            _on_signals(consumer.stop)
            stats = consumer.run(max_messages=args.max_messages, idle_timeout=args.idle_timeout)
        finally:
            crm.close()
    except CRMError as exc:
        print(f"crm consume kafka: {exc}", file=sys.stderr)
        return exit_code_for(exc)
    print(f"consumer stopped: {stats.applied} applied, {stats.dead_lettered} dead-lettered")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m adapters.kafka relay kafka ...``: the same commands without ``crm``."""
    parser = argparse.ArgumentParser(prog="python -m adapters.kafka")
    register(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code
