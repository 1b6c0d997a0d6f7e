"""The relay picks each record's partition itself, and it is the one kafka-python would pick.

Per-key order rests on every record of an aggregate going to one partition, and consumers
(or another producer of the same topic) expect kafka-python's (and Java's) murmur2 choice.
The relay remembers each key's hash instead of computing the pure-Python murmur2 per record;
these tests pin its choice to ``DefaultPartitioner`` and check it on a real broker.
"""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import pytest
from kafka.cluster import ClusterMetadata
from kafka.partitioner import DefaultPartitioner, StickyPartitioner
from kafkatools import read_topic, seed_crm, unique

from adapters.kafka import KafkaRelay, RelaySettings, default_routing
from adapters.kafka.relay import _KeyPartitions
from crm_domain.application import CRM


class _Producer:
    """What ``_KeyPartitions`` reads of a producer: its config and a topic's partitions."""

    def __init__(self, partitions: int, partitioner: Any = None) -> None:
        self.config = {"partitioner": partitioner or DefaultPartitioner()}
        self.partitions = partitions
        self.asked = 0

    def partitions_for(self, topic: str) -> set[int]:
        self.asked += 1
        return set(range(self.partitions))


def _default_choice(key: bytes, partitions: int) -> int:
    """What kafka-python's DefaultPartitioner picks for ``key`` (all partitions available)."""
    all_partitions = list(range(partitions))
    cluster = ClusterMetadata()
    cluster.topics = lambda exclude_internal_topics=True: {"t"}  # type: ignore[method-assign]
    cluster.partitions_for_topic = lambda topic: set(all_partitions)  # type: ignore[method-assign]
    cluster.available_partitions_for_topic = lambda topic: set(all_partitions)  # type: ignore[method-assign]
    choice: int = DefaultPartitioner().partition("t", key, key, b"v", b"v", cluster)
    return choice


@pytest.mark.parametrize("partitions", [1, 2, 3, 6, 7, 64])
def test_the_key_partition_is_the_default_partitioners(partitions: int) -> None:
    chooser = _KeyPartitions(_Producer(partitions))  # type: ignore[arg-type]
    keys = [str(uuid4()).encode() for _ in range(300)] + [b"", b"a", "Grüße".encode()]
    for key in keys:
        expected = _default_choice(key, partitions)
        assert chooser.of("t", key) == expected  # hashed
        assert chooser.of("t", key) == expected  # remembered


def test_the_partitions_are_read_again_after_a_refresh() -> None:
    producer = _Producer(3)
    chooser = _KeyPartitions(producer)  # type: ignore[arg-type]
    keys = [str(uuid4()).encode() for _ in range(100)]
    for key in keys:
        chooser.of("t", key)
    assert producer.asked == 1  # once per topic, not per record
    producer.partitions = 12  # the topic gained partitions
    chooser.refresh()
    assert [chooser.of("t", k) for k in keys] == [_default_choice(k, 12) for k in keys]
    assert producer.asked == 2


def test_the_remembered_hashes_stay_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_KeyPartitions, "MAX_KEYS", 10)
    chooser = _KeyPartitions(_Producer(6))  # type: ignore[arg-type]
    keys = [str(uuid4()).encode() for _ in range(35)]
    assert [chooser.of("t", k) for k in keys] == [_default_choice(k, 6) for k in keys]
    assert len(chooser._hashes) <= 10


def test_a_sticky_partitioner_hashes_keys_alike_and_another_partitioner_chooses_itself() -> None:
    assert _KeyPartitions(_Producer(6, StickyPartitioner())).enabled  # type: ignore[arg-type]

    class RoundRobin(DefaultPartitioner):
        pass

    other = _KeyPartitions(_Producer(6, RoundRobin()))  # type: ignore[arg-type]
    assert other.of("t", b"key") is None  # the producer's own partitioner decides


@pytest.mark.kafka
def test_relayed_records_land_where_kafka_python_would_put_them(kafka_bootstrap: str) -> None:
    erp, mkt = unique("crm.erp"), unique("crm.mkt")
    crm = CRM("memory://")
    seed_crm(crm, customers=12)
    stats = KafkaRelay(
        crm.app,
        RelaySettings(bootstrap=kafka_bootstrap, create_topics=True, broker_timeout=15),
        default_routing(erp, mkt, partitions=5),
    ).run(until_caught_up=True, timeout=60)
    records = read_topic(kafka_bootstrap, erp, idle=0.5) + read_topic(
        kafka_bootstrap, mkt, idle=0.5
    )
    assert len(records) == stats.messages_acked > 0
    for record in records:
        assert record.key is not None
        assert record.partition == _default_choice(record.key, 5)
    crm.close()


@pytest.mark.kafka
def test_each_key_keeps_one_partition_and_its_order_across_pages(
    kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The partitions are read again with every page: small pages must not move a key."""
    monkeypatch.setattr("adapters.kafka.relay._PAGE", 7)
    erp, mkt = unique("crm.erp"), unique("crm.mkt")
    crm = CRM("memory://")
    seed_crm(crm, customers=10, events_per_customer=6)
    stats = KafkaRelay(
        crm.app,
        RelaySettings(
            bootstrap=kafka_bootstrap, create_topics=True, broker_timeout=15, max_pending=5
        ),
        default_routing(erp, mkt, partitions=4),
    ).run(until_caught_up=True, timeout=60)
    records = read_topic(kafka_bootstrap, erp, idle=0.5) + read_topic(
        kafka_bootstrap, mkt, idle=0.5
    )
    assert len(records) == stats.messages_acked > 7 * 4
    partitions: dict[tuple[str, bytes], set[int]] = {}
    versions: dict[tuple[str, bytes], list[int]] = {}
    for record in records:  # in offset order per partition
        assert record.key is not None
        key = (record.topic, record.key)
        partitions.setdefault(key, set()).add(record.partition)
        versions.setdefault(key, []).append(int(record.headers["ce_aggregateversion"]))
    assert all(len(p) == 1 for p in partitions.values())
    assert all(v == sorted(v) and len(set(v)) == len(v) for v in versions.values())
    crm.close()
