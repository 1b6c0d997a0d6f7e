"""The SQLite store's connections keep their statements prepared
(``crm_domain.infrastructure.compat.cache_sqlite_statements``): the library's connection
factory is replaced by the same body with a real statement cache, which must still open
WAL connections with rows by name, and be what the CRM's store uses."""

from __future__ import annotations

import inspect
import sqlite3
from pathlib import Path

from eventsourcing.sqlite import SQLiteConnectionPool, SQLiteDatastore

from crm_domain import CRM
from crm_domain.infrastructure.compat import cache_sqlite_statements


def test_the_library_still_opens_connections_with_a_one_statement_cache() -> None:
    # When a release changes this, re-read it: the wrapper may no longer be needed, or
    # its copy of the body may be out of date.
    source = inspect.getsource(SQLiteConnectionPool._create_connection)
    assert "cached_statements=True" in source
    assert "row_factory = sqlite3.Row" in source
    assert "journal_mode=WAL" in source


def test_a_caching_connection_is_what_the_library_opens(tmp_path: Path) -> None:
    datastore = SQLiteDatastore(str(tmp_path / "store.sqlite"))
    assert cache_sqlite_statements(datastore)
    with datastore.transaction(commit=True) as cursor:
        cursor.execute("PRAGMA journal_mode")
        row = cursor.fetchone()
        assert isinstance(row, sqlite3.Row)
        assert row[0] == "wal"
    assert datastore.pool.is_journal_mode_wal
    assert not cache_sqlite_statements(object())


def test_the_crm_store_uses_caching_connections(tmp_path: Path) -> None:
    crm = CRM(f"sqlite:///{tmp_path / 'crm.sqlite'}", source_system="test")
    pool = crm.app.recorder.datastore.pool
    assert "_create_connection" in vars(pool)  # replaced on the instance
    customer = crm.register_customer(kind="enterprise", name="Acme", code="ACME")
    crm.log_contact(customer, channel="phone", direction="inbound", summary="call")
    assert crm.app.repository.get(customer).version == 2
