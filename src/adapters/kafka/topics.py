"""Make sure the topics the adapters write to exist, before the first message is sent.

Many clusters forbid automatic topic creation, and a producer sending to a missing topic
only blocks and times out with a vague error. So the relay and the consumer check their
topics on start: create the missing ones (partitions, replication factor) when allowed,
otherwise stop with :class:`~crm_domain.errors.MissingTopicError` naming them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from kafka import KafkaAdminClient
from kafka.errors import KafkaError, TopicAlreadyExistsError

from crm_domain.errors import BrokerUnavailableError, ConfigurationError, MissingTopicError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TopicSpec:
    """A topic the adapter needs, and how to create it."""

    name: str
    partitions: int = 6
    replication_factor: int = 1
    #: Log-compacted (``cleanup.policy=compact``): the latest record per key is kept.
    compacted: bool = False


def ensure_topics(
    bootstrap: str,
    specs: Iterable[TopicSpec],
    *,
    create: bool,
    timeout: float = 30.0,
    client_options: dict[str, object] | None = None,
) -> list[str]:
    """Check (and when ``create`` is true, create) the topics; returns the names created."""
    wanted = {spec.name: spec for spec in specs}
    if not wanted:
        return []
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap,
            request_timeout_ms=int(timeout * 1000),
            bootstrap_timeout_ms=int(timeout * 1000),
            client_id="crm-topic-admin",
            **(client_options or {}),
        )
    except KafkaError as exc:
        raise BrokerUnavailableError(bootstrap, timeout, f"{type(exc).__name__}: {exc}") from exc
    try:
        existing = set(admin.list_topics())
        missing = [name for name in wanted if name not in existing]
        if not missing:
            return []
        if not create:
            raise MissingTopicError(missing, bootstrap)
        new_topics: dict[str, dict[str, object]] = {
            name: {
                "num_partitions": wanted[name].partitions,
                "replication_factor": wanted[name].replication_factor,
            }
            for name in missing
        }
        for name in missing:
            if wanted[name].compacted:
                new_topics[name]["configs"] = {"cleanup.policy": "compact"}
        try:
            admin.create_topics(new_topics, timeout_ms=int(timeout * 1000), wait_for_metadata=True)
        except TopicAlreadyExistsError:
            pass  # created concurrently by another relay or consumer: fine
        except KafkaError as exc:
            raise ConfigurationError(
                f"cannot create topic(s) {', '.join(missing)} on {bootstrap}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        log.info("created Kafka topic(s) %s on %s", ", ".join(missing), bootstrap)
        return missing
    except KafkaError as exc:
        raise BrokerUnavailableError(bootstrap, timeout, f"{type(exc).__name__}: {exc}") from exc
    finally:
        admin.close()
