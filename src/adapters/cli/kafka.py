"""``crm relay kafka`` and ``crm consume kafka``: the Kafka adapters as long-running processes.

The connection (bootstrap servers, SASL/SSL security, client id), the topics and the
routing file come from ``CRMSettings.kafka`` (``CRM_KAFKA__*``, ``[kafka]`` in
``crm.toml``), which these options override. Secrets come from the environment or a file,
never from the command line. Both commands stop cleanly on SIGTERM or SIGINT (the relay
flushes and records its position first) and exit 2 on a configuration error (bad routing
file, missing topic), 3 when the broker stayed unreachable past ``--broker-timeout``.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from adapters.cli.options import (
    Bootstrap,
    ClientId,
    SaslMechanism,
    SaslPasswordFile,
    SaslUsername,
    SecurityProtocol,
    SslCafile,
    SslCertfile,
    SslKeyfile,
    Store,
    load_settings,
    read_secret,
)
from crm_domain.settings import CRMSettings

#: Keys of ``CRMSettings.kafka.topics`` (``CRM_KAFKA__TOPICS__ERP=...``) the commands read.
ERP_TOPIC, MARKETING_TOPIC = "erp", "marketing"
ERP_INBOUND_TOPIC, MARKETING_INBOUND_TOPIC, DEAD_LETTER_TOPIC = (
    "erp_inbound",
    "marketing_inbound",
    "dead_letter",
)

TOPICS = "Topics"


class MessageFormat(StrEnum):
    """``--format``: the values of ``adapters.kafka.MessageFormat`` (the Kafka client is
    imported only when a Kafka command runs, so every other command starts without it)."""

    BINARY = "binary"
    STRUCTURED = "structured"
    DEBEZIUM = "debezium"


class WithoutConsent(StrEnum):
    """``--without-consent``: the values of ``adapters.kafka.WithoutConsent``."""

    STRIP = "strip"
    DROP = "drop"


relay_app = typer.Typer(
    name="relay",
    help="Publish stored events to a message bus (outbox relay).",
    no_args_is_help=True,
)
consume_app = typer.Typer(
    name="consume", help="Apply messages from a message bus as CRM commands.", no_args_is_help=True
)

CreateTopics = Annotated[
    bool,
    typer.Option(
        "--create-topics",
        help="create missing topics on start (else a missing topic is an error, exit 2)",
        rich_help_panel=TOPICS,
    ),
]
Partitions = Annotated[
    int, typer.Option("--partitions", min=1, help="for created topics", rich_help_panel=TOPICS)
]
ReplicationFactor = Annotated[
    int,
    typer.Option("--replication-factor", min=1, help="for created topics", rich_help_panel=TOPICS),
]
BrokerTimeout = Annotated[
    float,
    typer.Option(
        "--broker-timeout",
        metavar="SECONDS",
        min=0.1,
        help="give up (exit code 3) when the broker stays unreachable this long",
    ),
]


def kafka_settings(
    store: str | None,
    *,
    bootstrap: str | None,
    security_protocol: str | None,
    sasl_mechanism: str | None,
    sasl_username: str | None,
    sasl_password_file: Path | None,
    ssl_cafile: Path | None,
    ssl_certfile: Path | None,
    ssl_keyfile: Path | None,
    client_id: str | None,
    routing_file: Path | None = None,
) -> CRMSettings:
    """The settings with these Kafka options on top; the bootstrap servers are required."""
    settings = load_settings(
        store,
        bootstrap=bootstrap,
        security_protocol=security_protocol,
        sasl_mechanism=sasl_mechanism,
        sasl_username=sasl_username,
        sasl_password=read_secret(sasl_password_file),
        ssl_cafile=ssl_cafile,
        ssl_certfile=ssl_certfile,
        ssl_keyfile=ssl_keyfile,
        client_id=client_id,
        routing_file=routing_file,
    )
    if not settings.kafka.bootstrap:
        raise typer.BadParameter(
            "Kafka bootstrap servers are needed: --bootstrap HOST:PORT, or "
            "CRM_KAFKA__BOOTSTRAP, or bootstrap in the [kafka] table of crm.toml",
            param_hint="'--bootstrap'",
        )
    return settings


def on_stop_signals(stop: Callable[[], None]) -> None:
    """Call ``stop`` on SIGTERM or SIGINT: the adapter finishes its batch and returns."""

    def handler(signum: int, frame: Any) -> None:
        stop()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, handler)


@relay_app.command("kafka")
def relay_kafka(
    store: Store = None,
    bootstrap: Bootstrap = None,
    security_protocol: SecurityProtocol = None,
    sasl_mechanism: SaslMechanism = None,
    sasl_username: SaslUsername = None,
    sasl_password_file: SaslPasswordFile = None,
    ssl_cafile: SslCafile = None,
    ssl_certfile: SslCertfile = None,
    ssl_keyfile: SslKeyfile = None,
    client_id: ClientId = None,
    create_topics: CreateTopics = False,
    partitions: Partitions = 6,
    replication_factor: ReplicationFactor = 1,
    broker_timeout: BrokerTimeout = 60.0,
    message_format: Annotated[
        MessageFormat,
        typer.Option(
            "--format",
            help="binary CloudEvents (ce_ headers), structured CloudEvents, or the Debezium "
            "outbox layout",
        ),
    ] = MessageFormat.BINARY,
    routing: Annotated[
        Path | None,
        typer.Option(
            "--routing",
            metavar="FILE",
            exists=True,
            dir_okay=False,
            help="routing table (.toml/.yaml) [default: $CRM_KAFKA__ROUTING_FILE, else the "
            "ERP and marketing topics]",
            show_default=False,
            rich_help_panel=TOPICS,
        ),
    ] = None,
    erp_topic: Annotated[
        str | None,
        typer.Option(
            "--erp-topic",
            metavar="TOPIC",
            help="topic for ERP [default: $CRM_KAFKA__TOPICS__ERP, else crm.erp.events]",
            show_default=False,
            rich_help_panel=TOPICS,
        ),
    ] = None,
    marketing_topic: Annotated[
        str | None,
        typer.Option(
            "--marketing-topic",
            metavar="TOPIC",
            help="topic for marketing [default: $CRM_KAFKA__TOPICS__MARKETING, else "
            "crm.marketing.events]",
            show_default=False,
            rich_help_panel=TOPICS,
        ),
    ] = None,
    without_consent: Annotated[
        WithoutConsent,
        typer.Option(
            "--without-consent",
            help="marketing events with personal data of a customer without consent: strip "
            "the personal fields, or drop the event",
        ),
    ] = WithoutConsent.STRIP,
    source: Annotated[
        str | None,
        typer.Option(
            "--source",
            help="CloudEvents source [default: urn:crm-core:CRM]",
            show_default=False,
        ),
    ] = None,
    name: Annotated[
        str, typer.Option("--name", help="relay name (its tracking table's prefix)")
    ] = "kafka_relay",
    linger_ms: Annotated[
        int, typer.Option("--linger-ms", min=0, help="how long the producer waits to batch")
    ] = 20,
    max_pending: Annotated[int, typer.Option("--max-pending", min=1, hidden=True)] = 2_000,
    checkpoint_interval: Annotated[
        float,
        typer.Option(
            "--checkpoint-interval",
            metavar="SECONDS",
            min=0,
            help="how often the position is recorded while events flow",
        ),
    ] = 0.5,
    until_caught_up: Annotated[
        bool,
        typer.Option(
            "--until-caught-up",
            help="exit once every event stored at start is published (batch mode)",
        ),
    ] = False,
) -> None:
    """Publish every stored event to Kafka (CloudEvents or Debezium), at least once."""
    from adapters.kafka.cloudevents import MessageFormat as KafkaMessageFormat
    from adapters.kafka.relay import KafkaRelay
    from adapters.kafka.routing import (
        DEFAULT_ERP_TOPIC,
        DEFAULT_MARKETING_TOPIC,
        RoutingTable,
        default_routing,
    )
    from adapters.kafka.routing import WithoutConsent as KafkaWithoutConsent
    from adapters.kafka.settings import RelaySettings
    from crm_domain.application import CRM

    settings = kafka_settings(
        store,
        bootstrap=bootstrap,
        security_protocol=security_protocol,
        sasl_mechanism=sasl_mechanism,
        sasl_username=sasl_username,
        sasl_password_file=sasl_password_file,
        ssl_cafile=ssl_cafile,
        ssl_certfile=ssl_certfile,
        ssl_keyfile=ssl_keyfile,
        client_id=client_id,
        routing_file=routing,
    )
    settings.store.check()
    topics = settings.kafka.topics
    table = (
        RoutingTable.load(settings.kafka.routing_file)
        if settings.kafka.routing_file
        else default_routing(
            erp_topic or topics.get(ERP_TOPIC, DEFAULT_ERP_TOPIC),
            marketing_topic or topics.get(MARKETING_TOPIC, DEFAULT_MARKETING_TOPIC),
            without_consent=KafkaWithoutConsent(without_consent),
            partitions=partitions,
            replication_factor=replication_factor,
        )
    )
    relay_settings = RelaySettings.from_settings(
        settings.kafka,
        message_format=KafkaMessageFormat(message_format),
        source=source,
        create_topics=create_topics,
        broker_timeout=broker_timeout,
        linger_ms=linger_ms,
        max_pending=max_pending,
        checkpoint_interval=checkpoint_interval,
        name=name,
    )
    crm = CRM(settings=settings)
    try:
        relay = KafkaRelay(crm.app, relay_settings, table)
        on_stop_signals(relay.stop)
        stats = relay.run(until_caught_up=until_caught_up)
    finally:
        crm.close()
    typer.echo(
        f"relay stopped at notification {stats.position}: {stats.events_read} events read, "
        f"{stats.messages_acked} messages acknowledged, "
        f"{stats.redacted_for_consent} redacted and {stats.dropped_for_consent} dropped "
        "for missing consent"
    )


@consume_app.command("kafka")
def consume_kafka(
    store: Store = None,
    bootstrap: Bootstrap = None,
    security_protocol: SecurityProtocol = None,
    sasl_mechanism: SaslMechanism = None,
    sasl_username: SaslUsername = None,
    sasl_password_file: SaslPasswordFile = None,
    ssl_cafile: SslCafile = None,
    ssl_certfile: SslCertfile = None,
    ssl_keyfile: SslKeyfile = None,
    client_id: ClientId = None,
    create_topics: CreateTopics = False,
    partitions: Partitions = 6,
    replication_factor: ReplicationFactor = 1,
    broker_timeout: BrokerTimeout = 60.0,
    topic: Annotated[
        list[str] | None,
        typer.Option(
            "--topic",
            metavar="TOPIC",
            help="inbound topic (repeatable) [default: $CRM_KAFKA__TOPICS__ERP_INBOUND and "
            "..._MARKETING_INBOUND, else erp.crm.commands and marketing.crm.commands]",
            show_default=False,
            rich_help_panel=TOPICS,
        ),
    ] = None,
    dead_letter_topic: Annotated[
        str | None,
        typer.Option(
            "--dead-letter-topic",
            metavar="TOPIC",
            help="where bad messages go [default: $CRM_KAFKA__TOPICS__DEAD_LETTER, else "
            "crm.inbound.dlq]",
            show_default=False,
            rich_help_panel=TOPICS,
        ),
    ] = None,
    group: Annotated[str, typer.Option("--group", help="consumer group id")] = "crm-core-inbound",
    max_messages: Annotated[
        int | None,
        typer.Option("--max-messages", min=1, help="exit after N messages", show_default=False),
    ] = None,
    idle_timeout: Annotated[
        float | None,
        typer.Option(
            "--idle-timeout",
            metavar="SECONDS",
            min=0,
            help="exit after this long without messages",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Apply ERP and marketing messages from Kafka as CRM commands; dead-letter bad ones."""
    from adapters.kafka.inbound import (
        DEFAULT_DEAD_LETTER_TOPIC,
        DEFAULT_ERP_INBOUND_TOPIC,
        DEFAULT_MARKETING_INBOUND_TOPIC,
        ConsumerSettings,
        InboundConsumer,
    )
    from crm_domain.application import CRM

    settings = kafka_settings(
        store,
        bootstrap=bootstrap,
        security_protocol=security_protocol,
        sasl_mechanism=sasl_mechanism,
        sasl_username=sasl_username,
        sasl_password_file=sasl_password_file,
        ssl_cafile=ssl_cafile,
        ssl_certfile=ssl_certfile,
        ssl_keyfile=ssl_keyfile,
        client_id=client_id,
    )
    settings.store.check()
    named = settings.kafka.topics
    topics = tuple(topic or ()) or (
        named.get(ERP_INBOUND_TOPIC, DEFAULT_ERP_INBOUND_TOPIC),
        named.get(MARKETING_INBOUND_TOPIC, DEFAULT_MARKETING_INBOUND_TOPIC),
    )
    consumer_settings = ConsumerSettings(
        bootstrap=settings.kafka.bootstrap or "",
        topics=topics,
        dead_letter_topic=dead_letter_topic
        or named.get(DEAD_LETTER_TOPIC, DEFAULT_DEAD_LETTER_TOPIC),
        group_id=group,
        create_topics=create_topics,
        partitions=partitions,
        replication_factor=replication_factor,
        broker_timeout=broker_timeout,
        client_options=settings.kafka.client_options(),
    )
    crm = CRM(settings=settings)
    try:
        consumer = InboundConsumer(crm, consumer_settings)
        on_stop_signals(consumer.stop)
        stats = consumer.run(max_messages=max_messages, idle_timeout=idle_timeout)
    finally:
        crm.close()
    typer.echo(
        f"consumer stopped: {stats.applied} applied, {stats.duplicates} duplicates skipped, "
        f"{stats.dead_lettered} dead-lettered"
    )
