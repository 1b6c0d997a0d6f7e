"""Kafka adapters: publish the CRM's events (outbox relay) and take ERP/marketing events in.

See docs/adapters.md for how a platform team wires them.
"""

from __future__ import annotations

from adapters.kafka.cloudevents import CloudEvent, EventEncoder, MessageFormat, decode_cloudevent
from adapters.kafka.consent import ConsentLedger, ConsentRule
from adapters.kafka.eventtypes import EventType, EventTypeRegistry, crm_event_types
from adapters.kafka.relay import KafkaRelay, RelayStats
from adapters.kafka.routing import Route, RoutingTable, WithoutConsent, default_routing
from adapters.kafka.settings import RelaySettings
from adapters.kafka.topics import TopicSpec, ensure_topics
from crm_domain.errors import (
    BrokerUnavailableError,
    ConfigurationError,
    InboundMessageError,
    MissingTopicError,
    PublishError,
)

__all__ = [
    "BrokerUnavailableError",
    "CloudEvent",
    "ConfigurationError",
    "ConsentLedger",
    "ConsentRule",
    "EventEncoder",
    "EventType",
    "EventTypeRegistry",
    "InboundMessageError",
    "KafkaRelay",
    "MessageFormat",
    "MissingTopicError",
    "PublishError",
    "RelaySettings",
    "RelayStats",
    "Route",
    "RoutingTable",
    "TopicSpec",
    "WithoutConsent",
    "crm_event_types",
    "decode_cloudevent",
    "default_routing",
    "ensure_topics",
]
