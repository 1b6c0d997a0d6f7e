"""Settings of the outbox relay, and the producer configuration they imply.

Delivery guarantees live here, in one place, so they cannot drift apart:

* ``acks="all"``: a message counts as sent only when every in-sync replica has it; the
  relay records its position only after that acknowledgement.
* Per-key order: the producer is idempotent (``enable_idempotence``) *and* sends one
  request per connection at a time (``max_in_flight_requests_per_connection=1``). The
  idempotent producer makes the broker drop duplicates of a retried batch; one request in
  flight guarantees that a retried batch can never overtake a later one, even on a
  broker that does not enforce producer sequence numbers. Throughput comes from batching
  (``linger_ms``, ``batch_size``), not from parallel requests, and from the ``crc32c``
  accelerator (a dependency), which kafka-python uses for record checksums when installed.
* Bounded retries: the producer retries with exponential back-off (``retry_backoff_ms``,
  ``reconnect_backoff_ms`` .. ``reconnect_backoff_max_ms``) for at most ``broker_timeout``
  seconds (``delivery_timeout_ms``); then the relay stops with
  :class:`~crm_domain.errors.BrokerUnavailableError` (exit code 3).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from adapters.kafka.cloudevents import MessageFormat
from crm_domain.errors import ConfigurationError
from crm_domain.settings import KafkaSettings


class RelaySettings(BaseModel):
    """How the relay connects, formats, batches and gives up."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    bootstrap: str = Field(min_length=1, description="host:port[,host:port...] of the brokers")
    message_format: MessageFormat = MessageFormat.BINARY
    #: CloudEvents ``source``; default ``urn:crm-core:<application name>``.
    source: str | None = None
    create_topics: bool = False
    #: Seconds the broker may stay unreachable (or unacknowledging) before the relay gives up.
    broker_timeout: float = Field(default=60.0, gt=0)
    #: How long the producer waits to fill a batch. 20 ms rather than 5: with one request in
    #: flight, fuller batches mean fewer requests and wake-ups of kafka-python's sender
    #: thread, which shares the GIL with the relay (a backlog publishes about 10% faster);
    #: a live event waits at most this long more.
    linger_ms: int = Field(default=20, ge=0)
    batch_size: int = Field(default=256 * 1024, gt=0)
    compression_type: str | None = None
    #: Notifications sent but not yet acknowledged before the relay waits for the broker.
    max_pending: int = Field(default=2_000, gt=0)
    #: The tracking record is written once this many more notifications are acknowledged...
    checkpoint_every: int = Field(default=1_000, gt=0)
    #: ... or this many seconds after the last write, whichever comes first. So a kill or a
    #: cut makes a restarted relay repeat at most ``max_pending + checkpoint_every``
    #: notifications' messages (one batch), however large the backlog.
    checkpoint_interval: float = Field(default=0.5, ge=0)

    @property
    def repeat_bound(self) -> int:
        """The most notifications whose messages a restart after a kill can publish again."""
        return self.max_pending + self.checkpoint_every

    #: Name of the relay: its tracking table is ``<name>_tracking``.
    name: str = Field(default="kafka_relay", pattern=r"^[a-z][a-z0-9_]{0,40}$")
    #: If set, each CloudEvent gets ``dataschema = <schema_base_uri>/<type>.json``.
    schema_base_uri: str | None = None
    #: Extra kafka-python options (security_protocol, sasl_*, ssl_*, client_id, ...).
    client_options: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def from_settings(cls, kafka: KafkaSettings, **options: Any) -> RelaySettings:
        """Relay settings on the deployment's Kafka connection (``CRMSettings.kafka``):
        its bootstrap servers, security and client id, with ``options`` for the rest."""
        if not kafka.bootstrap:
            raise ConfigurationError(
                "the Kafka relay needs bootstrap servers: --bootstrap HOST:PORT, "
                "CRM_KAFKA__BOOTSTRAP, or [kafka] bootstrap in crm.toml"
            )
        return cls(bootstrap=kafka.bootstrap, client_options=kafka.client_options(), **options)

    def source_for(self, application_name: str) -> str:
        """The CloudEvents ``source`` of an application's events (configured, or a URN)."""
        return self.source or f"urn:crm-core:{application_name}"

    def producer_config(self) -> dict[str, Any]:
        """kafka-python ``KafkaProducer`` keyword arguments for these settings."""
        budget_ms = int(self.broker_timeout * 1000)
        request_timeout_ms = max(1000, min(30_000, budget_ms // 2))
        config: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap.split(","),
            "client_id": "crm-kafka-relay",
            "acks": "all",
            "enable_idempotence": True,
            "max_in_flight_requests_per_connection": 1,
            "retries": 2**31 - 1,
            "retry_backoff_ms": 100,
            "reconnect_backoff_ms": 50,
            "reconnect_backoff_max_ms": 2000,
            "request_timeout_ms": request_timeout_ms,
            "delivery_timeout_ms": max(budget_ms, request_timeout_ms + self.linger_ms),
            "max_block_ms": budget_ms,
            "bootstrap_timeout_ms": budget_ms,
            "linger_ms": self.linger_ms,
            "batch_size": self.batch_size,
            "compression_type": self.compression_type,
        }
        config.update(self.client_options)
        return config
