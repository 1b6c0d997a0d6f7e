"""One lock for crm-core's schema changes on PostgreSQL.

Every process that opens a store creates what is missing (event, chain and key tables, the
access log with its trigger function, read-model and control tables). Processes opening one
PostgreSQL database at the same moment (rebuild workers, a relay started beside the CLI)
would race on PostgreSQL's catalogs: ``CREATE ... IF NOT EXISTS``, ``CREATE TYPE`` and
``CREATE OR REPLACE FUNCTION`` are not safe against each other and fail with "tuple
concurrently updated" or a duplicate key in ``pg_type``. So they take turns:

- the event store (events, snapshots, their types, the hash chain, the key table) is
  created in several transactions by eventsourcing's recorders, so the process holds a
  session advisory lock on a connection of its own meanwhile (:func:`event_store_lock`);
- the read models' and the access log's tables are created in one transaction each, which
  takes an advisory transaction lock first (:func:`schema_change`).

The two locks have different keys (they guard different tables), so neither waits on the
other. SQLite serialises writers by itself.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from sqlalchemy import Connection, Engine, text

#: The read models' and access log's lock ("crm-core" in ASCII, as a positive bigint).
SCHEMA_LOCK_KEY = 0x63726D2D636F7265 & 0x7FFFFFFFFFFFFFFF
#: Taken first in every transaction that creates read-model or access-log tables.
SCHEMA_LOCK_SQL = f"SELECT pg_advisory_xact_lock({SCHEMA_LOCK_KEY})"
#: The event store's lock (held by a session while its recorders create their tables).
EVENT_STORE_LOCK_KEY = SCHEMA_LOCK_KEY - 1


@contextmanager
def event_store_lock(env: Mapping[str, str]) -> Iterator[None]:
    """While the event store on eventsourcing's settings ``env`` creates its tables: on
    PostgreSQL, hold the event store's advisory lock on a connection of its own (other
    processes opening the same database wait here); elsewhere, nothing."""
    if env.get("PERSISTENCE_MODULE") != "eventsourcing.postgres" or env.get(
        "CREATE_TABLE", "y"
    ).lower() in ("n", "no", "f", "false", "off", "0"):
        yield
        return
    import psycopg

    with psycopg.connect(
        host=env.get("POSTGRES_HOST", "127.0.0.1"),
        port=int(env.get("POSTGRES_PORT", "5432")),
        user=env.get("POSTGRES_USER"),
        password=env.get("POSTGRES_PASSWORD") or None,
        dbname=env.get("POSTGRES_DBNAME"),
        autocommit=True,
    ) as conn:
        conn.execute(f"SELECT pg_advisory_lock({EVENT_STORE_LOCK_KEY})")
        try:
            yield
        finally:
            conn.execute(f"SELECT pg_advisory_unlock({EVENT_STORE_LOCK_KEY})")


@contextmanager
def schema_change(engine: Engine) -> Iterator[Connection]:
    """A transaction on ``engine`` for creating tables, holding the schema lock on
    PostgreSQL until it commits."""
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text(SCHEMA_LOCK_SQL))
        yield conn
