"""The outbox relay against a real Kafka-protocol broker: format, keys, order, routing, consent."""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.popo import POPOTrackingRecorder
from kafka import KafkaProducer
from kafkatools import ReadRecord, free_port, read_topic, seed_crm, unique

from adapters.cli import main as kafka_cli
from adapters.exit_codes import exit_code_for
from adapters.kafka import (
    BrokerUnavailableError,
    KafkaRelay,
    MessageFormat,
    MissingTopicError,
    RelaySettings,
    default_routing,
)
from adapters.kafka.cloudevents import CloudEvent, decode_cloudevent, decode_debezium
from adapters.kafka.eventtypes import crm_event_types
from crm_domain.application import CRM

pytestmark = pytest.mark.kafka


def routed_events(crm: CRM, topic_filter: str) -> list[Any]:
    """Every stored event the default routing sends to the ERP or marketing topic."""
    table = default_routing("erp", "mkt")
    registry = crm_event_types()
    out = []
    for n in crm.app.recorder.select_notifications(start=1, limit=100_000):
        event = crm.app.mapper.to_domain_event(n)
        et = registry.of(event)
        if et is not None and topic_filter in [r.topic for r in table.routes_for(et)]:
            out.append(event)
    return out


def decode_all(records: list[ReadRecord]) -> list[CloudEvent]:
    events = []
    for r in records:
        ce = decode_cloudevent(r.value, r.headers.items())
        assert r.key is not None
        assert r.key.decode() == ce.subject
        events.append(ce)
    return events


def assert_per_key_order(events: list[CloudEvent]) -> None:
    """First deliveries of each aggregate's events come in aggregate-version order."""
    seen: set[str] = set()
    last: dict[str, int] = defaultdict(int)
    for ce in events:
        if ce.id in seen:
            continue
        seen.add(ce.id)
        version = int(ce.extensions["aggregateversion"])
        assert ce.subject is not None
        assert version > last[ce.subject], f"{ce.subject}: v{version} after v{last[ce.subject]}"
        last[ce.subject] = version


@pytest.fixture
def topics() -> tuple[str, str]:
    return unique("crm.erp"), unique("crm.mkt")


def test_round_trip_binary_mode(
    kafka_bootstrap: str, sqlite_url: str, topics: tuple[str, str]
) -> None:
    erp, mkt = topics
    crm = CRM(sqlite_url)
    ids = seed_crm(crm, customers=6)
    relay = KafkaRelay(
        crm.app,
        RelaySettings(bootstrap=kafka_bootstrap, create_topics=True, broker_timeout=15),
        default_routing(erp, mkt, partitions=3),
    )
    stats = relay.run(until_caught_up=True, timeout=60)

    expected_erp = routed_events(crm, "erp")
    expected_mkt = routed_events(crm, "mkt")
    erp_events = decode_all(read_topic(kafka_bootstrap, erp, expect=len(expected_erp)))
    mkt_events = decode_all(read_topic(kafka_bootstrap, mkt, expect=len(expected_mkt)))
    # a clean run publishes each routed event exactly once
    assert sorted(ce.id for ce in erp_events) == sorted(str(e.event_id) for e in expected_erp)
    assert sorted(ce.id for ce in mkt_events) == sorted(str(e.event_id) for e in expected_mkt)
    assert stats.messages_acked == len(expected_erp) + len(expected_mkt)
    assert relay.position == stats.position is not None
    assert_per_key_order(erp_events)
    assert_per_key_order(mkt_events)
    for ce in erp_events + mkt_events:
        assert ce.source == "urn:crm-core:CRM"
        assert ce.type.endswith(".v1")
        assert ce.extensions["actor"]
        assert ce.extensions["correlationid"]
    assert {ce.type.split(".")[1] for ce in erp_events} == {"account"}
    assert {ce.type.split(".")[1] for ce in mkt_events} == {"customer"}

    # consent: marketing sees a customer's personal data only while the customer consents
    consenting = {str(c) for c in ids["consenting"]}
    contacts = [ce for ce in mkt_events if ce.type == "crm.customer.contact_logged.v1"]
    assert len(contacts) == 6 * 4
    granted_at: dict[str, int] = {
        ce.subject: int(ce.extensions["aggregateversion"])
        for ce in mkt_events
        if ce.type == "crm.customer.consent_granted.v1" and ce.subject
    }
    for ce in contacts:
        assert ce.subject is not None
        version = int(ce.extensions["aggregateversion"])
        with_consent = ce.subject in consenting and version > granted_at[ce.subject]
        if with_consent:
            assert "summary" in ce.data
            assert "redacted" not in ce.extensions
        else:
            assert "summary" not in ce.data
            assert "participants" not in ce.data
            assert ce.extensions["redacted"] == "participants,summary"
    assert stats.redacted_for_consent == sum(1 for ce in contacts if "redacted" in ce.extensions)
    assert stats.redacted_for_consent == 6 + 3 * 3  # before-consent calls + non-consenting mails
    crm.close()


@pytest.mark.parametrize("message_format", [MessageFormat.STRUCTURED, MessageFormat.DEBEZIUM])
def test_other_formats(
    kafka_bootstrap: str, topics: tuple[str, str], message_format: MessageFormat
) -> None:
    erp, mkt = topics
    crm = CRM("memory://")
    seed_crm(crm, customers=2, events_per_customer=1)
    KafkaRelay(
        crm.app,
        RelaySettings(bootstrap=kafka_bootstrap, create_topics=True, message_format=message_format),
        default_routing(erp, mkt, partitions=2),
    ).run(until_caught_up=True, timeout=30)
    expected = routed_events(crm, "erp")
    records = read_topic(kafka_bootstrap, erp, expect=len(expected))
    assert len(records) == len(expected)
    by_id = {str(e.event_id): e for e in expected}
    for r in records:
        if message_format is MessageFormat.DEBEZIUM:
            headers, payload = decode_debezium(r.value, r.headers.items())
            event = by_id[headers["id"]]
            assert headers["aggregateid"] == str(event.originator_id) == r.key.decode()  # type: ignore[union-attr]
            assert headers["aggregatetype"] == "account"
            assert headers["type"].startswith("crm.account.")
            assert isinstance(payload, dict)
            assert "originator_id" not in payload
        else:
            assert r.headers["content-type"].startswith(b"application/cloudevents+json")
            ce = decode_cloudevent(r.value, r.headers.items())
            assert ce.id in by_id
            assert ce.subject == r.key.decode()  # type: ignore[union-attr]


def test_restarted_relay_resumes_from_its_tracking_record(
    kafka_bootstrap: str, sqlite_url: str, topics: tuple[str, str]
) -> None:
    erp, mkt = topics
    settings = RelaySettings(bootstrap=kafka_bootstrap, create_topics=True)
    crm = CRM(sqlite_url)
    seed_crm(crm, customers=3, events_per_customer=1)
    first = KafkaRelay(crm.app, settings, default_routing(erp, mkt)).run(until_caught_up=True)
    more = seed_crm(crm, customers=2, events_per_customer=1)
    crm.close()

    crm = CRM(sqlite_url)  # a new process would see the same store and tracking table
    relay = KafkaRelay(crm.app, settings, default_routing(erp, mkt))
    assert relay.position == first.position
    second = relay.run(until_caught_up=True)
    assert second.events_read < first.events_read + second.events_read  # did not start over
    expected = routed_events(crm, "erp")
    events = decode_all(read_topic(kafka_bootstrap, erp, expect=len(expected)))
    assert sorted(ce.id for ce in events) == sorted(str(e.event_id) for e in expected)
    assert {UUID(ce.subject) for ce in events if ce.subject} >= set(more["accounts"])
    crm.close()


def test_missing_topic_without_permission_to_create_names_it(kafka_bootstrap: str) -> None:
    missing = unique("crm.not-there")
    crm = CRM("memory://")
    relay = KafkaRelay(
        crm.app,
        RelaySettings(bootstrap=kafka_bootstrap, create_topics=False),
        default_routing(missing, unique("crm.mkt")),
    )
    with pytest.raises(MissingTopicError, match=missing) as info:
        relay.run(until_caught_up=True)
    assert missing in info.value.topics
    assert exit_code_for(info.value) == 2


def test_unreachable_broker_gives_up_after_the_configured_time() -> None:
    crm = CRM("memory://")
    seed_crm(crm, customers=1, events_per_customer=1)
    dead = f"127.0.0.1:{free_port()}"
    relay = KafkaRelay(
        crm.app, RelaySettings(bootstrap=dead, broker_timeout=1.5), default_routing()
    )
    started = time.monotonic()
    with pytest.raises(BrokerUnavailableError, match=r"unavailable for more than 1\.5s"):
        relay.run(until_caught_up=True)
    assert time.monotonic() - started < 15
    assert relay.position is None  # nothing acknowledged, nothing recorded


def test_cli_exit_code_when_the_broker_stays_down(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    crm = CRM(sqlite_url)
    seed_crm(crm, customers=1, events_per_customer=1)
    crm.close()
    code = kafka_cli(
        [
            "relay",
            "kafka",
            "--store",
            sqlite_url,
            "--bootstrap",
            f"127.0.0.1:{free_port()}",
            "--broker-timeout",
            "1",
            "--until-caught-up",
        ]
    )
    assert code == 3
    assert "unavailable for more than 1s" in capsys.readouterr().err


class _DiesAt(POPOTrackingRecorder):
    """A tracking recorder that stops recording once the process 'died' (kill -9)."""

    dead = False

    def insert_tracking(self, tracking: Any) -> None:
        if not self.dead:
            super().insert_tracking(tracking)


def test_a_kill_in_the_middle_of_a_backlog_repeats_at_most_one_batch(
    kafka_bootstrap: str, topics: tuple[str, str]
) -> None:
    """Issue 9: after cuts in the middle of a large backlog 8-10 % of events came again.

    The position was recorded only every ``checkpoint_interval`` seconds, so a backlog
    sent at full speed repeated everything since (plus the whole unacknowledged window)."""
    erp, mkt = topics
    crm = CRM("memory://")
    seed_crm(crm, customers=30, events_per_customer=2)
    settings = RelaySettings(
        bootstrap=kafka_bootstrap,
        create_topics=True,
        max_pending=40,
        checkpoint_every=20,
        checkpoint_interval=600,  # never by time here: by count
        linger_ms=0,
    )
    tracking = _DiesAt()
    sent = 0
    kill_at = 100

    def producer(config: dict[str, Any]) -> KafkaProducer:
        real = KafkaProducer(**config)
        send = real.send

        def send_then_die(*args: Any, **kwargs: Any) -> Any:
            nonlocal sent
            if sent == kill_at:
                tracking.dead = True  # nothing recorded from now on, as after kill -9
                raise KeyboardInterrupt
            sent += 1
            return send(*args, **kwargs)

        real.send = send_then_die  # type: ignore[method-assign]
        return real

    routing = default_routing(erp, mkt, partitions=2)
    relay = KafkaRelay(crm.app, settings, routing, tracking=tracking, producer_factory=producer)
    with pytest.raises(KeyboardInterrupt):
        relay.run(until_caught_up=True, timeout=60)
    assert relay.position is not None  # recorded while the backlog was being sent
    tracking.dead = False
    KafkaRelay(crm.app, settings, routing, tracking=tracking).run(until_caught_up=True, timeout=60)

    expected = routed_events(crm, "erp") + routed_events(crm, "mkt")
    assert len(expected) > 2 * kill_at
    records = read_topic(kafka_bootstrap, erp, idle=0.5) + read_topic(
        kafka_bootstrap, mkt, idle=0.5
    )
    ids = [ce.id for ce in decode_all(records)]
    assert set(ids) == {str(e.event_id) for e in expected}  # nothing lost
    repeated = len(ids) - len(set(ids))
    assert repeated <= settings.repeat_bound, f"{repeated} repeated, bound {settings.repeat_bound}"
