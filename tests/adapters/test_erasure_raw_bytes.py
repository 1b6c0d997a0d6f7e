"""After ``forget_customer``, no personal value of that customer is readable anywhere.

Searched as raw bytes (and in base64 and hex): the SQLite files (database, WAL), every
table of a PostgreSQL store (``::text``), the snapshots, the read-model tables, kept
current by a live catch-up (not a rebuild), and every Kafka message published after the
erasure - on which compacted topics also get the customer's tombstone.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from kafkatools import read_topic, unique

from adapters.kafka import KafkaRelay, RelaySettings, default_routing
from adapters.kafka.routing import Route, RoutingTable
from crm_domain.application import CRM
from crm_domain.personal import REDACTED
from crm_domain.settings import CRMSettings
from projections.parking import catch_up
from projections.registry import all_read_models
from projections.verify import verify

NAME = "Ouyang Xiaoming"
EMAIL = "ouyang.xm@example.org"
PHONE = "+86 21 5555 0199"
STREET = "88 Wisteria Lane"
SUMMARY = "Worried about her mother's hospital bills"
PROMISE = "Call back about the installment plan"
NEXT_STEP = "Send the hardship form to her sister"
TICKET = "Refund to card ending 4417"
DESCRIPTION = "Card 4417 was charged twice at the Xi'an store"
COMMENT = "Rude agent, would not give my name back"
PERSONAL = (NAME, EMAIL, PHONE, STREET, SUMMARY, PROMISE, NEXT_STEP, TICKET, DESCRIPTION, COMMENT)


def forms(value: str) -> list[bytes]:
    """The value as stored text, and in base64 and hex (upper and lower case)."""
    raw = value.encode()
    return [
        raw,
        base64.b64encode(raw),
        base64.urlsafe_b64encode(raw),
        raw.hex().encode(),
        raw.hex().upper().encode(),
    ]


def assert_absent(blob: bytes, where: str) -> None:
    for value in PERSONAL:
        for form in forms(value):
            assert form not in blob, f"{value!r} found in {where} (as {form[:20]!r}...)"


def seed(crm: CRM, code: str) -> UUID:
    customer_id = crm.register_customer(
        kind="individual",
        name=NAME,
        code=code,
        contact={"email": EMAIL, "phone": PHONE, "address": {"line1": STREET}},
    )
    crm.grant_consent(customer_id, purpose="marketing", channel="email")
    crm.log_contact(
        customer_id,
        channel="phone",
        direction="inbound",
        summary=SUMMARY,
        participants=["li.wei"],
        commitments=[{"description": PROMISE, "owner": "li.wei"}],
        next_step=NEXT_STEP,
    )
    crm.open_ticket(
        customer_id, kind="complaint", subject=TICKET, channel="phone", description=DESCRIPTION
    )
    crm.record_satisfaction(customer_id, score=2, comment=COMMENT)
    account_id = crm.open_account(customer_id=customer_id, name="Household account 7")
    crm.add_account_contact(account_id, customer_id=customer_id, role="owner")
    return customer_id


def catch_up_read_models(store_url: str) -> None:
    """The live path: every read model catches up incrementally (no rebuild)."""
    for name in all_read_models():
        catch_up(store_url, name, timeout=60)


def read_model_text(crm: CRM) -> str:
    from sqlalchemy import create_engine, text

    from projections.readmodel import ReadModel

    engine = create_engine(crm.store.sqlalchemy_url)
    out = []
    with engine.connect() as conn:
        for model in all_read_models().values():
            assert issubclass(model, ReadModel)
            for table in model.tables:
                out.extend(repr(tuple(row)) for row in conn.execute(text(f"SELECT * FROM {table}")))
    engine.dispose()
    return "\n".join(out)


def database_bytes(crm: CRM, tmp_path: Path) -> bytes:
    """Every byte the store holds: the SQLite files, or every PostgreSQL table as text."""
    if crm.store.backend == "sqlite":
        files = sorted(tmp_path.glob("crm.sqlite*"))
        assert files
        return b"".join(p.read_bytes() for p in files)
    import psycopg

    s = crm.store
    blobs = []
    with psycopg.connect(
        host=s.pg_host, port=int(s.pg_port), user=s.pg_user, dbname=s.pg_dbname, autocommit=True
    ) as conn:
        tables = conn.execute(
            "SELECT quote_ident(table_schema) || '.' || quote_ident(table_name) "
            "FROM information_schema.tables WHERE table_schema NOT IN "
            "('pg_catalog', 'information_schema') AND table_type = 'BASE TABLE'"
        ).fetchall()
        assert tables
        for (table,) in tables:
            for (row,) in conn.execute(f"SELECT t::text FROM {table} AS t"):
                blobs.append(row.encode())
            # bytea columns: also their decoded bytes (the events' JSON)
            for (row,) in conn.execute(
                f"SELECT string_agg(encode(convert_to(t::text, 'UTF8'), 'escape'), '') "
                f"FROM {table} AS t"
            ):
                blobs.append((row or "").encode())
    return b"\n".join(blobs)


def stored_event_bytes(crm: CRM) -> bytes:
    return b"\n".join(n.state for n in crm.app.recorder.select_notifications(start=1, limit=10**6))


def snapshot_bytes(crm: CRM, customer_id: UUID) -> bytes:
    assert crm.app.snapshots is not None
    return b"\n".join(s.state for s in crm.app.snapshots.recorder.select_events(customer_id))


def test_no_personal_value_left_in_the_store_snapshots_or_read_models(
    store_url: str, tmp_path: Path
) -> None:
    settings = CRMSettings.load(store_url=store_url, snapshot_interval=2)
    crm = CRM(settings=settings)
    customer_id = seed(crm, "P-100")
    catch_up_read_models(store_url)
    # Before: the read models show the person (the search does find what is there).
    before = read_model_text(crm)
    assert NAME in before
    assert TICKET in before
    assert snapshot_bytes(crm, customer_id)

    with crm.context(actor="dpo.chen"):
        crm.forget_customer(customer_id, reason="request DSR-1", legal_basis="GDPR art. 17")
    catch_up_read_models(store_url)

    assert REDACTED in read_model_text(crm)
    # What the live read models did on the erasure equals a rebuild from the redacted log.
    report = verify(store_url)
    assert report.ok, report
    assert_absent(read_model_text(crm).encode(), "the read-model tables")
    assert_absent(stored_event_bytes(crm), "the stored events")
    assert_absent(snapshot_bytes(crm, customer_id), "the snapshots")
    assert_absent(database_bytes(crm, tmp_path), f"the {crm.store.backend} database")
    # The history still replays, with every personal field redacted.
    assert crm.customer(customer_id).name == REDACTED
    assert_absent(repr([c.payload for c in crm.changes(customer_id)]).encode(), "the history")
    crm.close()


@pytest.mark.kafka
def test_no_personal_value_published_after_the_erasure_and_a_tombstone(
    kafka_bootstrap: str, sqlite_url: str
) -> None:
    erp, mkt, compacted = unique("crm.erp"), unique("crm.mkt"), unique("crm.customers")
    routing = RoutingTable(
        routes=(
            *default_routing(erp, mkt, partitions=1).routes,
            Route(topic=compacted, types=("crm.customer.*",), partitions=1, compacted=True),
        )
    )
    crm = CRM(sqlite_url)
    customer_id = seed(crm, "P-200")
    settings = RelaySettings(bootstrap=kafka_bootstrap, create_topics=True, broker_timeout=15)
    KafkaRelay(crm.app, settings, routing).run(until_caught_up=True, timeout=60)
    published: dict[str, int] = {}
    for topic in (erp, mkt, compacted):
        records = read_topic(kafka_bootstrap, topic)
        published[topic] = len(records)
    # Before the erasure the person's data was published (with consent): the search works.
    marketing = b"".join(r.value or b"" for r in read_topic(kafka_bootstrap, mkt))
    assert SUMMARY.encode() in marketing

    crm.forget_customer(customer_id, reason="request DSR-2")
    # Republish everything from the start too (a relay reset), and a new contact.
    crm.log_contact(customer_id, channel="email", direction="inbound", summary=f"{NAME} again")
    relay = KafkaRelay(
        CRM(sqlite_url).app,
        RelaySettings(
            bootstrap=kafka_bootstrap, create_topics=True, broker_timeout=15, name="relay2"
        ),
        routing,
    )
    relay.run(until_caught_up=True, timeout=60)

    after: list[Any] = []
    for topic in (erp, mkt, compacted):
        records = read_topic(kafka_bootstrap, topic)
        after.extend(records[published[topic] :])
    assert after
    for record in after:
        assert_absent((record.key or b"") + (record.value or b""), f"a message on {record.topic}")
        assert_absent(b"".join(record.headers.values()), f"headers on {record.topic}")
    types = {r.headers.get("ce_type") for r in after}
    assert b"crm.customer.personal_data_erased.v1" in types
    tombstones = [r for r in after if r.topic == compacted and r.value is None]
    assert [r.key for r in tombstones] == [str(customer_id).encode()]
