"""The rebuild's shortcuts give what the general path gives: lazy fields read without
pydantic, rows written as DB-API tuples, complete caches written mid-fold."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from crm_domain.customer import Customer
from crm_domain.errors import InvalidStoredEventError
from projections.lazyevent import LazyEvent
from projections.rows import RowCache, execute_many
from projections.timeline import accounts, entries, metadata


def _contact_state(**changes: Any) -> dict[str, Any]:
    event = Customer.ContactLogged(
        originator_id=uuid.uuid4(),
        originator_version=2,
        timestamp=datetime.now(UTC),
        occurred_at=datetime(2026, 3, 1, 8, 0, tzinfo=timezone(timedelta(hours=8))),
        contact_id=uuid.uuid4(),
        channel="phone",
        direction="inbound",
        summary="call",
        logged_by="rep",
        participants=["Ann"],
        commitments=[],
    )
    state = event.model_dump(mode="json")
    state.update(changes)
    return state


def test_fast_fields_read_as_pydantic_reads_them() -> None:
    state = _contact_state()
    lazy: Any = LazyEvent(Customer.ContactLogged, dict(state))
    decoded = Customer.ContactLogged.model_validate(state)
    for name in ("originator_id", "timestamp", "occurred_at", "contact_id", "channel"):
        assert getattr(lazy, name) == getattr(decoded, name), name
        assert type(getattr(lazy, name)) is type(getattr(decoded, name)), name
    # an offset other than Z is left to pydantic
    offset: Any = LazyEvent(
        Customer.ContactLogged, _contact_state(occurred_at="2026-03-01T08:00:00+08:00")
    )
    assert offset.occurred_at == datetime(2026, 3, 1, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("contact_id", "not-a-uuid-but-thirty-six-chars-long"),
        ("timestamp", "2026-13-01T00:00:00.000000Z"),
        ("channel", "pigeon"),
        ("account_id", 12),
    ],
)
def test_a_value_the_fast_readers_refuse_is_named_as_pydantic_names_it(
    name: str, value: Any
) -> None:
    lazy: Any = LazyEvent(Customer.ContactLogged, _contact_state(**{name: value}), position=7)
    with pytest.raises(InvalidStoredEventError, match=f"{name}.*position 7|position 7.*{name}"):
        getattr(lazy, name)


def test_rows_written_as_tuples_read_back_as_written() -> None:
    engine = create_engine("sqlite://")
    metadata.create_all(engine)
    customer = uuid.uuid4()
    row = {
        "position": 1,
        "subject_kind": "customer",
        "customer_id": customer,
        "occurred_at": "2026-01-01T00:00:00.000000Z",
        "recorded_at": "2026-01-01T00:00:00.000000Z",
        "event_type": "Registered",
        "summary": "x",
        "actor": "",
    }
    with Session(engine) as session:
        execute_many(session, entries, "insert", [row])
        found = dict(session.execute(select(entries)).mappings().one())
    assert found == row | {"account_id": None, "channel": None}


def test_a_complete_cache_written_mid_fold_reads_the_database_after() -> None:
    engine = create_engine("sqlite://")
    metadata.create_all(engine)
    account, customer = uuid.uuid4(), uuid.uuid4()
    with Session(engine) as session:
        rows = RowCache(session, accounts)
        rows.complete = True
        assert rows.get(account) is None  # nothing stored, nothing read
        rows.put({"account_id": account, "customer_id": customer}, new=True)
        rows.write()  # as an erasure does in the middle of a fold
        assert not rows.complete
        assert rows.get(account) == {"account_id": account, "customer_id": customer}
        with pytest.raises(ValueError, match="complete from empty"):
            rows.complete = True
