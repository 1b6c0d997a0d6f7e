"""Odd stored events and a full disk: typed errors that say what happened and where."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from projection_history import read_model_rows
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine

from crm_domain.application import CRM
from crm_domain.errors import StoreFullError, UnhandledEventError
from crm_domain.infrastructure.storage import StoreURL
from projections.rebuild import rebuild
from projections.runner import ReadModelRunner, follow, open_view


def _events_table(store_url: str) -> tuple[str, str]:
    """The stored events' table and its notification id column."""
    if store_url.startswith("sqlite"):
        return "stored_events", "rowid"
    return "crm_events", "notification_id"


def _rewrite(store_url: str, position: int, change: Any) -> None:
    """Change one stored event's JSON by hand (what a broken migration might do)."""
    engine = create_engine(StoreURL.parse(store_url).sqlalchemy_url)
    table, column = _events_table(store_url)
    try:
        with engine.begin() as conn:
            state = conn.execute(
                text(f"SELECT state FROM {table} WHERE {column} = :p"), {"p": position}
            ).scalar_one()
            data = json.loads(bytes(state))
            change(data)
            conn.execute(
                text(f"UPDATE {table} SET state = :s WHERE {column} = :p"),
                {"s": json.dumps(data).encode(), "p": position},
            )
    finally:
        engine.dispose()


def _position_of(app: CRM, topic_end: str, nth: int = 0) -> int:
    found = [
        n.id
        for n in app.app.recorder.select_notifications(start=1, limit=1000)
        if n.topic.endswith(topic_end)
    ]
    return found[nth]


def test_invalid_stored_json_gives_a_typed_error_naming_the_position(store_url: str) -> None:
    app = CRM(store_url)
    alice = app.register_customer(kind="individual", name="Alice", code="A")
    app.register_customer(kind="individual", name="Bob", code="B")
    app.open_account(customer_id=alice, name="Alice's")
    bob = _position_of(app, "Customer.Registered", 1)
    opened = _position_of(app, "Account.Opened")
    _rewrite(store_url, bob, lambda d: d.pop("name"))
    _rewrite(store_url, opened, lambda d: d.pop("customer_id"))

    with pytest.raises(UnhandledEventError) as info:
        rebuild(store_url, read_models=["customer360"])
    error = info.value
    assert error.position == bob
    assert "Customer.Registered" in str(error)
    assert f"at position {bob} is invalid: required field 'name' is missing" in str(error)
    assert "KeyError" not in str(error)

    _rewrite(store_url, bob, lambda d: d.update(name="Bob", occurred_at="yesterday"))
    with pytest.raises(UnhandledEventError, match=f"at position {bob} is invalid") as info:
        rebuild(store_url, read_models=["customer360"])
    assert "field 'occurred_at' = 'yesterday'" in str(info.value)
    assert "validation error for" not in str(info.value)  # no raw pydantic report

    # a field read while prefetching (before any handler runs) is named just the same
    _rewrite(store_url, bob, lambda d: d.update(occurred_at="2025-03-03T09:00:00Z"))
    with pytest.raises(UnhandledEventError) as info:
        rebuild(store_url, read_models=["customer360"])
    assert info.value.position == opened
    assert "required field 'customer_id' is missing" in str(info.value)
    app.close()


@pytest.fixture
def full_views(tmp_path: Path) -> Iterator[tuple[str, dict[str, int]]]:
    """A read-model database (beside a SQLite store) that can grow by a few pages only."""
    url = f"sqlite:///{tmp_path / 'views.sqlite'}"
    path = str(tmp_path / "views.sqlite")
    limit: dict[str, int] = {}

    def cap(dbapi_connection: Any, record: Any) -> None:
        if limit and dbapi_connection.execute("PRAGMA database_list").fetchone()[2] == path:
            dbapi_connection.execute(f"PRAGMA max_page_count = {limit['pages']}")

    event.listen(Engine, "connect", cap)
    try:
        open_view(f"sqlite:///{tmp_path / 'crm.sqlite'}", views_url=url).engine.dispose()
        engine = create_engine(url)
        with engine.connect() as conn:
            limit["pages"] = conn.exec_driver_sql("PRAGMA page_count").scalar_one() + 3
        engine.dispose()
        yield url, limit
    finally:
        event.remove(Engine, "connect", cap)


def _runner_error(runner: ReadModelRunner, seconds: float) -> BaseException | None:
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            runner.run_forever(timeout=0.1)
    except Exception as exc:
        return exc
    return None


def test_a_full_read_model_database_says_so(
    tmp_path: Path, full_views: tuple[str, dict[str, int]]
) -> None:
    views, limit = full_views
    store = f"sqlite:///{tmp_path / 'crm.sqlite'}"
    app = CRM(store)
    for i in range(150):
        customer = app.register_customer(kind="individual", name=f"Customer {i}", code=f"C{i}")
        app.log_contact(customer, channel="sms", direction="inbound", summary="x" * 200)
    with follow(store, views_url=views, batch_size=50) as runner:
        error = _runner_error(runner, 60)
    assert isinstance(error, StoreFullError)
    message = str(error)
    assert "read-model database is full" in message
    assert "database or disk is full" in message
    assert "unreachable" not in message

    limit.clear()  # space freed: the next runner carries on, nothing half-written
    with follow(store, views_url=views) as runner:
        runner.wait_until_current(timeout=60)
    clean = f"sqlite:///{tmp_path / 'clean.sqlite'}"
    rebuild(store, views_url=clean)
    assert read_model_rows(store, views_url=views) == read_model_rows(store, views_url=clean)
    app.close()
