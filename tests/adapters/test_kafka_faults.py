"""Faults: the broker vanishes mid-run (TCP cut and blocked), the relay process is killed.

Each test has its own tansu broker that advertises a :class:`FaultProxy`'s address, so every
client connection (bootstrap and partition leader) runs through the proxy the test cuts.
That needs control of the broker's advertised listener, so these tests always use a
private tansu, also when ``CRM_TEST_KAFKA_BOOTSTRAP`` names an external broker.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from eventsourcing.popo import POPOTrackingRecorder
from kafkatools import FaultProxy, TansuBroker, read_topic, seed_crm, tansu_behind_proxy, unique
from test_kafka_relay import assert_per_key_order, decode_all, routed_events

from adapters.kafka import BrokerUnavailableError, KafkaRelay, RelaySettings, default_routing
from adapters.kafka.tracking import sqlalchemy_tracking_recorder
from crm_domain.application import CRM
from crm_domain.infrastructure.storage import StoreURL

pytestmark = pytest.mark.kafka


@pytest.fixture
def proxied_broker(
    service_missing: Callable[[str], None],
) -> Iterator[tuple[TansuBroker, FaultProxy]]:
    try:
        with tansu_behind_proxy() as pair:
            yield pair
    except (OSError, TimeoutError, RuntimeError) as exc:
        service_missing(f"cannot start a private tansu broker behind a proxy: {exc}")


def assert_all_delivered_in_order(bootstrap: str, crm: CRM, erp: str, mkt: str) -> None:
    for topic, short in ((erp, "erp"), (mkt, "mkt")):
        expected = routed_events(crm, short)
        events = decode_all(read_topic(bootstrap, topic, timeout=30, idle=2.0))
        delivered = {ce.id for ce in events}
        missing = [str(e.event_id) for e in expected if str(e.event_id) not in delivered]
        assert not missing, f"{len(missing)} events never reached {topic}"
        assert len(events) >= len(expected)
        assert_per_key_order(events)


def test_broker_outage_mid_run(
    proxied_broker: tuple[TansuBroker, FaultProxy], sqlite_url: str
) -> None:
    broker, proxy = proxied_broker
    erp, mkt = unique("crm.erp"), unique("crm.mkt")
    crm = CRM(sqlite_url)
    relay = KafkaRelay(
        crm.app,
        RelaySettings(
            bootstrap=broker.bootstrap,
            create_topics=True,
            broker_timeout=30,
            checkpoint_interval=0.05,
        ),
        default_routing(erp, mkt, partitions=3),
    )
    errors: list[BaseException] = []

    def run() -> None:
        try:
            relay.run()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    seed_crm(crm, customers=10)
    thread = threading.Thread(target=run)
    thread.start()
    _wait_until(lambda: (relay.position or 0) > 0, 20, "relay never published")
    seed_crm(crm, customers=10)  # events stored while the relay is busy...
    proxy.cut()  # ...and the broker vanishes mid-run: connections cut, new ones refused
    position_at_cut = relay.position
    seed_crm(crm, customers=10)  # more events during the outage
    time.sleep(2.0)
    assert proxy.connections_refused > 0, "the relay did not try to reconnect"
    assert thread.is_alive()
    assert not errors
    # nothing new can be acknowledged while the broker is unreachable
    assert (relay.position or 0) <= (position_at_cut or 0) + 600
    proxy.restore()
    target = crm.app.recorder.max_notification_id()
    _wait_until(
        lambda: routed_caught_up(crm, relay, target), 40, "relay did not catch up after outage"
    )
    relay.stop()
    thread.join(timeout=30)
    assert not errors, errors
    assert_all_delivered_in_order(broker.bootstrap, crm, erp, mkt)
    crm.close()


def test_outage_longer_than_allowed_stops_with_a_clear_error_and_loses_nothing(
    proxied_broker: tuple[TansuBroker, FaultProxy], sqlite_url: str
) -> None:
    broker, proxy = proxied_broker
    erp, mkt = unique("crm.erp"), unique("crm.mkt")
    crm = CRM(sqlite_url)
    routing = default_routing(erp, mkt, partitions=2)
    KafkaRelay(crm.app, RelaySettings(bootstrap=broker.bootstrap, create_topics=True), routing).run(
        until_caught_up=True
    )
    seed_crm(crm, customers=3)
    proxy.cut()
    relay = KafkaRelay(
        crm.app, RelaySettings(bootstrap=broker.bootstrap, broker_timeout=2), routing
    )
    before = relay.position
    with pytest.raises(BrokerUnavailableError):
        relay.run(until_caught_up=True, timeout=30)
    assert relay.position == before  # nothing recorded that the broker did not acknowledge
    proxy.restore()
    KafkaRelay(crm.app, RelaySettings(bootstrap=broker.bootstrap), routing).run(
        until_caught_up=True, timeout=30
    )
    assert_all_delivered_in_order(broker.bootstrap, crm, erp, mkt)
    crm.close()


def routed_caught_up(crm: CRM, relay: KafkaRelay, target: int | None) -> bool:
    position = relay.position or 0
    remaining = crm.app.recorder.select_notifications(
        start=position,
        limit=1,
        stop=target,
        topics=relay.followed_topics,
        inclusive_of_start=False,
    )
    return not remaining


def _wait_until(condition: Callable[[], bool], timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(message)


def _relay_process(store: str, bootstrap: str, erp: str, mkt: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "adapters.kafka",
            "relay",
            "kafka",
            "--store",
            store,
            "--bootstrap",
            bootstrap,
            "--erp-topic",
            erp,
            "--marketing-topic",
            mkt,
            "--create-topics",
            "--partitions",
            "3",
            "--max-pending",
            "8",
            "--checkpoint-interval",
            "0",
            "--linger-ms",
            "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def test_relay_process_killed_mid_batch_and_restarted(
    kafka_bootstrap: str, sqlite_url: str
) -> None:
    erp, mkt = unique("crm.erp"), unique("crm.mkt")
    crm = CRM(sqlite_url)
    seed_crm(crm, customers=60)
    target = crm.app.recorder.max_notification_id()
    tracking = sqlalchemy_tracking_recorder(
        StoreURL.parse(sqlite_url).sqlalchemy_url, "kafka_relay_tracking"
    )

    def position() -> int:
        return tracking.max_tracking_id("CRM") or 0

    process = _relay_process(sqlite_url, kafka_bootstrap, erp, mkt)
    try:
        _wait_until(lambda: position() > 0 or process.poll() is not None, 30, "no progress")
        process.send_signal(signal.SIGKILL)  # no flush, no goodbye
        process.wait(timeout=10)
    finally:
        if process.poll() is None:  # pragma: no cover
            process.kill()
    killed_at = position()
    assert 0 < killed_at < (target or 0), f"not killed mid-run: position {killed_at}/{target}"
    # the restarted relay picks up from the tracking record and finishes
    restarted = _relay_process(sqlite_url, kafka_bootstrap, erp, mkt)
    try:
        _wait_until(lambda: position() >= _last_routed(crm, target), 60, "restart did not finish")
    finally:
        restarted.send_signal(signal.SIGTERM)
        out, err = restarted.communicate(timeout=30)
    assert restarted.returncode == 0, err.decode()
    assert b"relay stopped at notification" in out
    assert_all_delivered_in_order(kafka_bootstrap, crm, erp, mkt)
    crm.close()


def _last_routed(crm: CRM, target: int | None) -> int:
    relay_topics = KafkaRelay(
        crm.app, RelaySettings(bootstrap="unused:1"), tracking=POPOTrackingRecorder()
    ).followed_topics
    last = 0
    start = 0
    while True:
        page = crm.app.recorder.select_notifications(
            start=start, limit=1000, stop=target, topics=relay_topics, inclusive_of_start=False
        )
        if page:
            last = page[-1].id
            start = last
        if len(page) < 1000:
            return last
