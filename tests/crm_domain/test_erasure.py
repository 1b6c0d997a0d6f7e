"""Erasure without breaking history: personal fields sealed per customer, the key destroyed.

Every rule of docs/audit.md's "Erasure" section has a test here (SQLite and PostgreSQL
where the store matters); the raw-byte search over database files, read models and Kafka
is in tests/adapters/test_erasure_raw_bytes.py.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import pytest
from cryptography.exceptions import InvalidTag
from eventsourcing.persistence import StoredEvent

from crm_domain.application import CRM
from crm_domain.customer import Customer, CustomerState
from crm_domain.eventmodel import Snapshot, event_classes
from crm_domain.infrastructure.keystore import KeyStore, MemoryKeyStore, SQLKeyStore
from crm_domain.infrastructure.persistence import PydanticMapper
from crm_domain.personal import REDACTED, payload_personal_fields, redacted
from crm_domain.settings import CRMSettings
from crm_domain.values import ContactDetails

NAME = "Ouyang Xiaoming"
EMAIL = "ouyang.xm@example.org"
PHONE = "+86 21 5555 0199"
STREET = "88 Wisteria Lane"
SUMMARY = "Worried about her mother's hospital bills"
PROMISE = "Call back about the installment plan"
TICKET = "Refund to card ending 4417"
PERSONAL = (NAME, EMAIL, PHONE, STREET, SUMMARY, PROMISE, TICKET)


def seed(crm: CRM, code: str = "P-1") -> UUID:
    customer_id = crm.register_customer(
        kind="individual",
        name=NAME,
        code=code,
        contact={"email": EMAIL, "phone": PHONE, "address": {"line1": STREET, "city": "Xi'an"}},
    )
    crm.log_contact(
        customer_id,
        channel="phone",
        direction="inbound",
        summary=SUMMARY,
        participants=["li.wei"],
        commitments=[{"description": PROMISE, "owner": "li.wei"}],
    )
    crm.open_ticket(customer_id, kind="complaint", subject=TICKET, channel="phone")
    return customer_id


def stored_bytes(crm: CRM) -> bytes:
    return b"\n".join(n.state for n in crm.app.recorder.select_notifications(start=1, limit=10_000))


def test_personal_fields_are_stored_encrypted_and_read_back(store_url: str) -> None:
    crm = CRM(store_url)
    customer_id = seed(crm)
    raw = stored_bytes(crm)
    for value in PERSONAL:
        assert value.encode() not in raw
    assert b"__sealed__" in raw
    assert b"P-1" in raw  # the customer code is not personal: it stays searchable
    again = CRM(store_url)  # another process: the key comes from the key store
    customer = again.customer(customer_id)
    assert customer.name == NAME
    assert customer.contact.email == EMAIL
    assert customer.contact.address is not None
    assert customer.contact.address.line1 == STREET
    assert [c.description for c in customer.open_commitments.values()] == [PROMISE]
    assert [t.subject for t in customer.tickets.values()] == [TICKET]
    crm.close()
    again.close()


def test_forget_redacts_aggregate_history_and_keeps_every_rule(store_url: str) -> None:
    crm = CRM(store_url)
    customer_id = seed(crm)
    with crm.context(actor="dpo.chen"):
        assert crm.forget_customer(customer_id, reason="request DSR-17", legal_basis="PIPL art. 47")
    for reader in (crm, CRM(store_url)):
        customer = reader.customer(customer_id)
        assert customer.forgotten
        assert customer.name == REDACTED
        assert customer.contact == ContactDetails(
            address={"line1": REDACTED, "city": REDACTED}  # type: ignore[arg-type]
        )
        assert [c.description for c in customer.open_commitments.values()] == [REDACTED]
        assert [c.owner for c in customer.open_commitments.values()] == ["li.wei"]
        (ticket,) = customer.tickets.values()
        assert ticket.subject == REDACTED
        assert ticket.kind == "complaint"
        assert customer.code == "P-1"
        history = reader.changes(customer_id)
        text = repr([c.payload for c in history])
        for value in PERSONAL:
            assert value not in text
        erased = history[-1]
        assert erased.event_type == "Customer.PersonalDataErased"
        assert erased.actor == "dpo.chen"
        assert erased.payload == {"reason": "request DSR-17", "legal_basis": "PIPL art. 47"}
    # Rules still work on the redacted history: the open complaint still blocks marketing,
    # tickets still resolve, the customer can still be contacted and deactivated.
    (ticket_id,) = crm.customer(customer_id).tickets
    crm.resolve_ticket(customer_id, ticket_id, answer="refunded")
    crm.log_contact(customer_id, channel="email", direction="outbound", summary="refund confirmed")
    crm.deactivate_customer(customer_id, reason="erased on request")
    assert not crm.customer(customer_id).active
    # Erasing again records nothing new and still reports it.
    version = crm.customer(customer_id).version
    assert crm.forget_customer(customer_id, reason="twice") is False
    assert crm.customer(customer_id).version == version
    crm.close()


def test_personal_data_written_after_the_erasure_is_stored_redacted(sqlite_url: str) -> None:
    crm = CRM(sqlite_url)
    customer_id = seed(crm)
    crm.forget_customer(customer_id, reason="request")
    crm.log_contact(
        customer_id, channel="phone", direction="inbound", summary="She called again: Lin Yu"
    )
    assert b"Lin Yu" not in stored_bytes(crm)
    contact = crm.changes(customer_id)[-1]
    assert contact.payload["summary"] == REDACTED
    assert crm.app.sealer is not None
    found = crm.app.sealer.keys.get(customer_id)
    assert found is not None
    assert found.destroyed


def test_snapshots_hold_personal_state_sealed_and_read_redacted(store_url: str) -> None:
    crm = CRM(store_url, snapshot_interval=2)
    customer_id = seed(crm)
    snapshots = list(crm.app.snapshots.get(customer_id)) if crm.app.snapshots else []
    assert snapshots, "a snapshot was taken"
    raw = b"".join(
        s.state
        for s in crm.app.snapshots.recorder.select_events(customer_id)  # type: ignore[union-attr]
    )
    for value in PERSONAL:
        assert value.encode() not in raw
    assert isinstance(snapshots[-1], Snapshot)
    assert snapshots[-1].state["name"] == NAME
    crm.forget_customer(customer_id, reason="request")
    again = CRM(store_url, snapshot_interval=2)
    for snapshot in again.app.snapshots.get(customer_id):  # type: ignore[union-attr]
        assert isinstance(snapshot, Snapshot)
        assert snapshot.state["name"] == REDACTED
        assert PROMISE not in repr(snapshot.state)
    # The state restored from a (redacted) snapshot equals the state replayed from events.
    from_snapshot = again.customer(customer_id)
    replayed = CRM(store_url, snapshot_interval=0).customer(customer_id)
    assert Snapshot.take(from_snapshot).state == Snapshot.take(replayed).state


def test_read_model_seam_to_event_state_is_consistent_with_to_domain_event(
    sqlite_url: str,
) -> None:
    crm = CRM(sqlite_url)
    customer_id = seed(crm)
    mapper = crm.app.mapper
    assert isinstance(mapper, PydanticMapper)
    notifications = list(crm.app.recorder.select_notifications(start=1, limit=100))

    def both() -> list[tuple[Any, Any]]:
        out = []
        for n in notifications:
            event = mapper.to_domain_event(n)
            cls, state = mapper.to_event_state(n)
            assert type(event) is cls
            out.append((event, cls.model_validate(state)))
        return out

    for event, from_state in both():
        assert event == from_state
    assert any(getattr(e, "name", None) == NAME for e, _ in both())
    crm.forget_customer(customer_id, reason="request")
    for event, from_state in both():
        assert event == from_state
        assert NAME not in repr(event)


def test_old_stores_with_plaintext_personal_fields_still_load(sqlite_url: str) -> None:
    plain = CRM(settings=CRMSettings.load(store_url=sqlite_url, erasure={"encrypt": False}))
    customer_id = seed(plain)
    assert NAME.encode() in stored_bytes(plain)
    plain.close()
    crm = CRM(sqlite_url)
    assert crm.customer(customer_id).name == NAME  # no key: plaintext as stored
    crm.forget_customer(customer_id, reason="request")
    # Events stored in clear cannot be shredded, but the state after the erasure is redacted.
    customer = crm.customer(customer_id)
    assert customer.name == REDACTED
    assert customer.contact.email is None


def test_a_ciphertext_moved_to_another_event_does_not_decrypt(sqlite_url: str) -> None:
    crm = CRM(sqlite_url)
    seed(crm)
    first, _, second = list(crm.app.recorder.select_notifications(start=1, limit=3))
    mapper = crm.app.mapper
    import orjson

    one, two = orjson.loads(first.state), orjson.loads(second.state)
    two["__sealed__"] = one["__sealed__"]
    moved = StoredEvent(
        originator_id=second.originator_id,
        originator_version=second.originator_version,
        topic=second.topic,
        state=orjson.dumps(two),
    )
    with pytest.raises(InvalidTag):
        mapper.to_domain_event(moved)


def test_another_process_forgets_its_cached_key_on_reading_the_erasure(sqlite_url: str) -> None:
    writer = CRM(sqlite_url)
    customer_id = seed(writer)
    follower = CRM(sqlite_url)
    follower.customer(customer_id)  # caches the key
    writer.forget_customer(customer_id, reason="request")
    mapper = follower.app.mapper
    names = [
        getattr(mapper.to_domain_event(n), "name", None)
        for n in follower.app.recorder.select_notifications(start=1, limit=100)
    ]
    assert NAME in names  # still cached: read before the erasure event was seen...
    after = follower.customer(customer_id)  # ...but not after it
    assert after.name == REDACTED


@pytest.mark.parametrize("kind", ["memory", "sql"])
def test_key_store_get_create_destroy(kind: str, sqlite_url: str) -> None:
    keys: KeyStore
    crm = CRM(sqlite_url)  # keeps the key store's connections open
    if kind == "memory":
        keys = MemoryKeyStore()
    else:
        store = crm.app.sealer
        assert store is not None
        keys = store.keys
        assert isinstance(keys, SQLKeyStore)
    assert isinstance(keys, KeyStore)
    subject = uuid4()
    assert keys.get(subject) is None
    created = keys.create(subject)
    assert created.key is not None
    assert len(created.key) == 32
    assert keys.create(subject) == created  # the same key for every caller
    assert keys.get(subject) == created
    keys.destroy(subject)
    gone = keys.get(subject)
    assert gone is not None
    assert gone.destroyed
    assert gone.destroyed_at is not None
    assert keys.create(subject).destroyed  # never a fresh key after destruction
    keys.destroy(subject)  # idempotent
    never = uuid4()
    keys.destroy(never)  # a tombstone for a subject without a key
    assert keys.create(never).destroyed


def test_the_destroyed_key_leaves_the_sqlite_file(tmp_path: Any) -> None:
    path = tmp_path / "crm.sqlite"
    crm = CRM(f"sqlite:///{path}")
    customer_id = seed(crm)
    assert crm.app.sealer is not None
    found = crm.app.sealer.keys.get(customer_id)
    assert found is not None
    assert found.key is not None
    crm.forget_customer(customer_id, reason="request")
    crm.close()
    files = [p for p in tmp_path.iterdir() if p.name.startswith("crm.sqlite")]
    raw = b"".join(p.read_bytes() for p in files)
    assert found.key not in raw


def test_every_customer_event_and_the_snapshot_state_redact_to_valid_models() -> None:
    # The redacted form of each personal field must still validate (history stays loadable).
    assert payload_personal_fields(CustomerState, frozenset()) == {
        "name",
        "contact",
        "open_commitments",
        "tickets",
    }
    for cls in event_classes(Customer):
        assert payload_personal_fields(cls, frozenset()) is not None
    contact = ContactDetails.model_validate(
        {"email": EMAIL, "phone": PHONE, "mobile": PHONE, "address": {"line1": STREET}}
    )
    assert redacted(contact) == ContactDetails.model_validate({"address": {"line1": REDACTED}})


def test_erasure_event_names_who_when_why_and_legal_basis(sqlite_url: str) -> None:
    crm = CRM(sqlite_url)
    customer_id = seed(crm)
    before = datetime.now(UTC)
    with crm.context(actor="dpo.chen"):
        crm.forget_customer(customer_id, reason="request DSR-9")
    event = crm.history(customer_id)[-1]
    assert isinstance(event, Customer.PersonalDataErased)
    assert event.metadata["actor"] == "dpo.chen"
    assert event.timestamp >= before
    assert event.reason == "request DSR-9"
    assert event.legal_basis == "GDPR art. 17"


def test_a_key_stored_first_by_another_process_fails_the_write_which_then_retries(
    store_url: str,
) -> None:
    plain = CRM(settings=CRMSettings.load(store_url=store_url, erasure={"encrypt": False}))
    customer_id = seed(plain)  # a customer from before encryption: no key yet
    plain.close()
    crm = CRM(store_url)
    assert crm.app.sealer is not None
    keys: Any = crm.app.sealer.keys
    real_get = keys.get

    def racing_get(subject: UUID) -> Any:
        keys.get = real_get
        keys.create(subject)  # another process stores its key for the customer first
        return None

    keys.get = racing_get
    # The write fails on the other process's key, and the command's retry uses that key.
    crm.log_contact(customer_id, channel="phone", direction="inbound", summary=SUMMARY + "!")
    assert keys.get == real_get  # the race happened
    summaries = [c.payload.get("summary") for c in CRM(store_url).changes(customer_id)]
    assert summaries.count(SUMMARY + "!") == 1


def test_events_written_straight_to_the_recorder_store_their_key_too(store_url: str) -> None:
    # A bulk import may write through the mapper and the recorder without Application.save.
    crm = CRM(store_url)
    customer = Customer.register(kind="individual", name=NAME, code="IMP-1")
    mapper, recorder = crm.app.mapper, crm.app.recorder
    recorder.insert_events([mapper.to_stored_event(e) for e in customer.collect_events()])
    customer.correct_profile(reason="typo", name=NAME + " Jr")
    recorder.insert_events([mapper.to_stored_event(e) for e in customer.collect_events()])
    assert NAME.encode() not in stored_bytes(crm)
    assert CRM(store_url).customer(customer.id).name == NAME + " Jr"


def test_every_snapshot_still_equals_the_fold_of_its_events_after_the_erasure(
    store_url: str,
) -> None:
    # What the hash chain's snapshot check does: decoded snapshot == fold of decoded events.
    from functools import reduce

    crm = CRM(store_url, snapshot_interval=2)
    customer_id = seed(crm)
    crm.log_contact(
        customer_id, channel="visit", direction="outbound", summary=SUMMARY, next_step=PROMISE
    )
    crm.forget_customer(customer_id, reason="request")
    crm.log_contact(customer_id, channel="phone", direction="inbound", summary="after")
    reader = CRM(store_url, snapshot_interval=2)
    assert reader.app.snapshots is not None
    snapshots = list(reader.app.snapshots.get(customer_id))
    assert len(snapshots) >= 2  # before and after the erasure
    for snapshot in snapshots:
        assert isinstance(snapshot, Snapshot)
        events = list(reader.app.events.get(customer_id, lte=snapshot.originator_version))
        folded = reduce(lambda agg, ev: ev.mutate(agg), events, None)
        assert Snapshot.take(folded).state == snapshot.state


def test_a_key_store_of_ones_own_through_the_crm_or_key_store_topic(sqlite_url: str) -> None:
    kms = MemoryKeyStore()
    crm = CRM(sqlite_url, key_store=kms)
    customer_id = seed(crm)
    found = kms.get(customer_id)
    assert found is not None
    assert found.key is not None
    assert crm.app.sealer is not None
    assert not isinstance(crm.app.sealer.keys, SQLKeyStore)
    # Another process without that key store cannot read the person.
    assert CRM(sqlite_url).customer(customer_id).name == REDACTED
    # KEY_STORE_TOPIC names a factory (also read from the process environment).
    topic = "crm_domain.infrastructure.keystore:memory_key_store"
    other = CRM(sqlite_url, env={"KEY_STORE_TOPIC": topic})
    assert other.app.sealer is not None
    assert isinstance(other.app.sealer.keys, MemoryKeyStore)
