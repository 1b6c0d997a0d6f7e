"""``crm demo --kafka HOST:PORT``: publish the demo's events, so a team can look at them."""

from __future__ import annotations

from rich.console import Console

from adapters.kafka.relay import KafkaRelay
from adapters.kafka.routing import default_routing
from adapters.kafka.settings import RelaySettings
from crm_domain.application import CRM


def publish_demo_events(crm: CRM, bootstrap: str, console: Console) -> None:
    """Relay every stored event to the default ERP and marketing topics, then stop."""
    routing = default_routing()
    settings = RelaySettings(bootstrap=bootstrap, create_topics=True, broker_timeout=30.0)
    relay = KafkaRelay(crm.app, settings, routing)
    with console.status(f"Publishing to Kafka at {bootstrap}..."):
        stats = relay.run(until_caught_up=True)
    console.print(
        f"  kafka: {stats.messages_acked:,} messages to {', '.join(routing.topics)} "
        f"({stats.redacted_for_consent} redacted, {stats.dropped_for_consent} dropped "
        "for missing marketing consent)"
    )
