"""A rebuild reads every subject's key in one query and holds it for the fold; reading an
erasure drops the held key; erased customers stay erased in rebuilt read models. Rows are
written through faster bind processors that give the stock processors' values."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from projection_history import known_history, read_model_rows
from sqlalchemy.dialects import postgresql, sqlite

from crm_domain.application import CRM
from crm_domain.customer import Customer
from crm_domain.infrastructure.keystore import MemoryKeyStore, SQLKeyStore
from crm_domain.personal import REDACTED
from projections.rebuild import rebuild
from projections.rows import _faster_processor, _row_function
from projections.sqltypes import UTCDateTime

NAME = "Ouyang Xiaoming"
SUMMARY = "Worried about her mother's hospital bills"


def _seed(crm: CRM, code: str, name: str = NAME) -> Any:
    customer_id = crm.register_customer(kind="individual", name=name, code=code)
    crm.log_contact(customer_id, channel="phone", direction="inbound", summary=SUMMARY)
    return customer_id


def _text_of(rows: dict[str, list[Any]]) -> str:
    return repr(rows)


def test_all_keys_lists_every_subject_and_none_for_destroyed_ones(store_url: str) -> None:
    crm = CRM(store_url)
    try:
        sealer = crm.app.sealer
        assert sealer is not None
        assert isinstance(sealer.keys, SQLKeyStore)
        kept, erased = _seed(crm, "K"), _seed(crm, "E", "Someone Else")
        crm.forget_customer(erased, reason="request")
        found = sealer.keys.all_keys()
        assert set(found) == {kept, erased}
        assert found[erased] is None
        key = sealer.keys.get(kept)
        assert key is not None
        assert found[kept] == key.key
    finally:
        crm.close()
    memory = MemoryKeyStore()
    a, b = memory.create(kept).key, memory.create(erased)
    memory.destroy(erased)
    assert b.key is not None
    assert memory.all_keys() == {kept: a, erased: None}


def test_a_rebuild_asks_the_key_store_once_and_decrypts_as_the_runner_does(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = store_url
    app = CRM(store)
    known_history(app)
    customers = [_seed(app, f"S{i}", f"Person {i}") for i in range(5)]
    app.close()
    rebuild(store, fast=False)
    by_runner = read_model_rows(store)
    assert "Person 3" in _text_of(by_runner)  # decrypted
    single: list[Any] = []
    listed: list[int] = []
    real_get, real_all = SQLKeyStore.get, SQLKeyStore.all_keys

    def get(self: SQLKeyStore, subject: Any) -> Any:
        single.append(subject)
        return real_get(self, subject)

    def all_keys(self: SQLKeyStore) -> Any:
        listed.append(1)
        return real_all(self)

    monkeypatch.setattr(SQLKeyStore, "get", get)
    monkeypatch.setattr(SQLKeyStore, "all_keys", all_keys)
    rebuild(store)
    assert read_model_rows(store) == by_runner
    assert listed == [1]
    assert not set(single) & set(customers)  # no key read one customer at a time


def test_an_erased_customer_stays_erased_in_rebuilt_read_models(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'crm.sqlite'}"
    app = CRM(store)
    erased = _seed(app, "E")
    kept = _seed(app, "K", "Kept Person")
    app.forget_customer(erased, reason="request")
    app.close()
    for fast in (True, False):
        rebuild(store, fast=fast)
        text = _text_of(read_model_rows(store))
        assert NAME not in text
        assert "Kept Person" in text
        assert REDACTED in text
    assert kept != erased


def test_reading_the_erasure_drops_a_held_key(tmp_path: Path) -> None:
    """A key destroyed by another process after a rebuild read the keys: the erasure
    event (recorded before the key is destroyed) drops the held key, so the subject's later
    events are read with the key store's answer (destroyed: redacted)."""
    store = f"sqlite:///{tmp_path / 'crm.sqlite'}"
    writer = CRM(store)
    customer_id = _seed(writer, "E")
    reader = CRM(store)
    try:
        sealer = reader.app.sealer
        assert sealer is not None
        assert sealer.hold_all_keys()
        writer.forget_customer(customer_id, reason="request")  # destroys the key
        writer.log_contact(customer_id, channel="phone", direction="inbound", summary="later")
        mapper = reader.app.mapper
        before, erasure, after = [], False, []
        log = reader.app.recorder.select_notifications(start=1, limit=100)
        for n in log:
            cls, state = mapper.to_event_state(n)
            if cls is Customer.PersonalDataErased:
                erasure = True
            elif cls is Customer.ContactLogged:
                (after if erasure else before).append(state["summary"])
        assert before == [SUMMARY]  # still held: read before the erasure was seen
        assert after == [REDACTED]  # "later" was stored redacted; nothing decrypts it
        first_contact = next(n for n in log if n.topic.endswith("Customer.ContactLogged"))
        cls, state = mapper.to_event_state(first_contact)
        assert state["summary"] == REDACTED  # the held key is gone for good
        sealer.release_keys()
    finally:
        reader.close()
        writer.close()


def test_the_faster_sqlite_time_processor_writes_what_the_stock_one_writes() -> None:
    dialect = sqlite.dialect()
    column = UTCDateTime()
    fast = _faster_processor(column, dialect)
    stock = column.dialect_impl(dialect).bind_processor(dialect)
    assert fast is not None
    assert stock is not None
    rng = random.Random(7)
    values: list[Any] = [
        None,
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
        datetime(2026, 5, 5, 1, 2, 3, 4, tzinfo=timezone(timedelta(hours=8))),
        datetime.fromisoformat("2026-11-30T08:00:51.644956Z"),
    ]
    for _ in range(5_000):
        moment = datetime(1, 1, 1, tzinfo=UTC) + timedelta(microseconds=rng.randrange(10**17))
        values.append(moment.replace(microsecond=rng.choice([0, moment.microsecond])))
    assert [fast(v) for v in values] == [stock(v) for v in values]
    with pytest.raises(ValueError, match="naive datetime"):
        fast(datetime(2026, 1, 1))
    assert _faster_processor(column, postgresql.dialect()) is None


def test_a_row_missing_columns_is_written_with_nulls() -> None:
    import uuid

    subject = uuid.uuid4()
    values = _row_function([("a", None, False), ("b", str, False), ("c", None, True)])
    assert values({"a": 1, "b": 2, "c": subject}) == (1, "2", subject.hex)
    assert values({"b": 3}) == (None, "3", None)
    one = _row_function([("c", None, True)])
    assert one({"c": subject}) == (subject.hex,)
    assert one({}) == (None,)


def _promises(contacts: int) -> list[dict[str, Any]]:
    """Handover commitment rows: two promises (seq 1, then 0) for each of ``contacts``
    contacts of one customer, in no key order."""
    import uuid

    customer = uuid.uuid4()
    return [
        {
            "contact_id": uuid.uuid4(),
            "seq": seq,
            "position": i,
            "customer_id": customer,
            "description": f"promise {i}",
            "owner": "li.wei",
            "logged_by": "desk",
            "logged_at": datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=i),
        }
        for i in range(contacts)
        for seq in (1, 0)
    ]


def test_many_rows_are_inserted_in_key_order_and_read_back_as_written() -> None:

    from sqlalchemy import create_engine, select
    from sqlalchemy.orm import Session

    from projections.handover import commitments, metadata
    from projections.rows import KEY_ORDER_MIN_ROWS, execute_many

    engine = create_engine("sqlite://")
    metadata.create_all(engine)
    rows = _promises(KEY_ORDER_MIN_ROWS + 10)
    with Session(engine) as session:
        execute_many(session, commitments, "insert", rows)
        found = [dict(r) for r in session.execute(select(commitments)).mappings()]
        stored = [
            tuple(r)
            for r in session.connection().exec_driver_sql("SELECT * FROM " + commitments.name)
        ]
    expected = {(r["contact_id"], r["seq"]): r | {"account_id": None, "due": None} for r in rows}
    assert {(r["contact_id"], r["seq"]): r for r in found} == expected
    keys = [(r[0], r[1]) for r in stored]  # in insertion (rowid) order
    assert keys == sorted(keys)


def test_held_keys_expire_as_cached_keys_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A key destroyed by another process without its erasure event being read yet: held
    keys are read again after ``cache_seconds``, as a cached key would be."""
    import time

    store = f"sqlite:///{tmp_path / 'crm.sqlite'}"
    writer = CRM(store)
    customer_id = _seed(writer, "E")
    reader = CRM(store)
    try:
        sealer = reader.app.sealer
        assert sealer is not None
        assert writer.app.sealer is not None
        contact = next(
            n
            for n in reader.app.recorder.select_notifications(start=1, limit=100)
            if n.topic.endswith("Customer.ContactLogged")
        )
        assert sealer.hold_all_keys()
        writer.app.sealer.keys.destroy(customer_id)  # no erasure event read by the reader
        assert reader.app.mapper.to_event_state(contact)[1]["summary"] == SUMMARY  # held
        now = time.monotonic()
        monkeypatch.setattr(time, "monotonic", lambda: now + sealer.cache_seconds + 1)
        assert reader.app.mapper.to_event_state(contact)[1]["summary"] == REDACTED
        sealer.release_keys()
    finally:
        reader.close()
        writer.close()


def test_many_rows_are_sent_a_slice_at_a_time_in_key_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A rebuild's chunk of rows becomes parameters a slice at a time (not all rows twice
    over at once); the slices go in primary-key order, and updates and deletes of that many
    rows reach every row."""

    from sqlalchemy import create_engine, event, select
    from sqlalchemy.orm import Session

    from projections import rows as rows_module
    from projections.handover import commitments, metadata
    from projections.rows import execute_many

    monkeypatch.setattr(rows_module, "ROWS_PER_EXECUTE", 100)
    engine = create_engine("sqlite://")
    metadata.create_all(engine)
    sent: list[int] = []

    @event.listens_for(engine, "before_cursor_execute")
    def count(conn: Any, cursor: Any, sql: str, params: Any, context: Any, many: bool) -> None:
        if many:
            sent.append(len(params))

    rows = _promises(1_005)
    with Session(engine) as session:
        execute_many(session, commitments, "insert", rows)
        assert sent == [100] * 20 + [10]
        stored = [
            tuple(r)
            for r in session.connection().exec_driver_sql("SELECT * FROM " + commitments.name)
        ]
        keys = [(r[0], r[1]) for r in stored]  # in insertion (rowid) order
        assert keys == sorted(keys)
        assert len(keys) == len(rows)
        changed = [r | {"owner": "wang.fang"} for r in rows]
        execute_many(session, commitments, "update", changed)
        owners = {r.owner for r in session.execute(select(commitments.c.owner))}
        assert owners == {"wang.fang"}
        gone = [{"contact_id": r["contact_id"], "seq": r["seq"]} for r in rows[:1_501]]
        execute_many(session, commitments, "delete", gone)
        left = session.execute(select(commitments.c.contact_id, commitments.c.seq)).all()
        assert {tuple(r) for r in left} == {(r["contact_id"], r["seq"]) for r in rows[1_501:]}
