"""Reading the event log, its hash chain and its snapshots straight from the database.

The audit reads the tables as stored (not through the application, which would trust
them): the events in notification order, the chain rows, the snapshots. One read-only
transaction (SQLite's read transaction, PostgreSQL's ``REPEATABLE READ``) gives every query
the same view while writers carry on.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol
from uuid import UUID

from crm_domain.errors import ConfigurationError
from crm_domain.infrastructure.hashchain import CHAIN_SUFFIX
from crm_domain.infrastructure.storage import StoreURL, _require_psycopg

#: An event as stored: position, originator id (hex), version, topic, state bytes.
EventRow = tuple[int, str, int, str, bytes]
#: A chain row: position, originator id (hex), version, event, aggregate and chain hashes.
LinkRow = tuple[int, str, int, bytes, bytes, bytes]
#: A snapshot as stored: originator id (hex), version, topic, state bytes.
SnapshotRow = tuple[str, int, str, bytes]

#: Rows fetched per round trip when streaming from PostgreSQL.
BATCH = 5000


class LogSource(Protocol):
    """What the audit reads; one implementation per backend."""

    def events(self, start: int) -> Iterator[EventRow]:
        """Events from position ``start`` on, in notification order."""
        ...

    def links(self, start: int) -> Iterator[LinkRow]:
        """Chain rows from position ``start`` on, in order."""
        ...

    def link_before(self, position: int) -> bytes | None:
        """The chain hash of the last chained event before ``position`` (None: none)."""
        ...

    def chained_position(self, originator_id: str, version: int) -> int | None:
        """Where the chain put this event (None: not chained)."""
        ...

    def snapshots(self) -> Iterator[SnapshotRow]:
        """Every stored snapshot."""
        ...

    def replace_chain(self, rows: Iterable[LinkRow]) -> int:
        """Replace every chain row with ``rows`` (in a writing transaction); return how many."""
        ...


def _batches(rows: Iterable[LinkRow]) -> Iterator[list[LinkRow]]:
    batch: list[LinkRow] = []
    for row in rows:
        batch.append(row)
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def _bytes(value: Any) -> bytes:
    """A BLOB as bytes (an edit by hand may have left TEXT in its place)."""
    return value.encode() if isinstance(value, str) else bytes(value)


def _hex(value: Any) -> str:
    return value.hex if isinstance(value, UUID) else str(value).replace("-", "").lower()


class SQLiteSource:
    """The log of an SQLite store (``stored_events``, its ``_chain``, ``stored_snapshots``)."""

    events_table = "stored_events"
    snapshots_table = "stored_snapshots"

    def __init__(self, connection: sqlite3.Connection) -> None:
        self.connection = connection
        self.chain_table = self.events_table + CHAIN_SUFFIX

    def events(self, start: int) -> Iterator[EventRow]:
        """Events from position ``start`` on, in notification order."""
        cursor = self.connection.execute(
            "SELECT rowid, originator_id, originator_version, topic, state "
            f"FROM {self.events_table} WHERE rowid >= ? ORDER BY rowid",
            (start,),
        )
        for row in cursor:
            yield row[0], _hex(row[1]), row[2], row[3], _bytes(row[4])

    def links(self, start: int) -> Iterator[LinkRow]:
        """Chain rows from position ``start`` on, in order."""
        for row in self.connection.execute(
            f"SELECT * FROM {self.chain_table} WHERE position >= ? ORDER BY position", (start,)
        ):
            yield row[0], row[1], row[2], _bytes(row[3]), _bytes(row[4]), _bytes(row[5])

    def link_before(self, position: int) -> bytes | None:
        """The chain hash of the last chained event before ``position``."""
        row = self.connection.execute(
            f"SELECT chain_hash FROM {self.chain_table} WHERE position < ? "
            "ORDER BY position DESC LIMIT 1",
            (position,),
        ).fetchone()
        return None if row is None else bytes(row[0])

    def chained_position(self, originator_id: str, version: int) -> int | None:
        """Where the chain put this event."""
        row = self.connection.execute(
            f"SELECT position FROM {self.chain_table} "
            "WHERE originator_id = ? AND originator_version = ?",
            (originator_id, version),
        ).fetchone()
        return None if row is None else int(row[0])

    def snapshots(self) -> Iterator[SnapshotRow]:
        """Every stored snapshot."""
        exists = self.connection.execute(
            "SELECT 1 FROM sqlite_master WHERE name = ?", (self.snapshots_table,)
        ).fetchone()
        if exists is None:
            return
        for row in self.connection.execute(
            f"SELECT originator_id, originator_version, topic, state FROM {self.snapshots_table}"
        ):
            yield _hex(row[0]), row[1], row[2], _bytes(row[3])

    def replace_chain(self, rows: Iterable[LinkRow]) -> int:
        """Replace every chain row with ``rows``; return how many."""
        self.connection.execute(f"DELETE FROM {self.chain_table}")
        count = 0
        insert = f"INSERT INTO {self.chain_table} VALUES (?,?,?,?,?,?)"
        for batch in _batches(rows):
            self.connection.executemany(insert, batch)
            count += len(batch)
        return count


class PostgresSource:
    """The log of a PostgreSQL store (``crm_events``, ``crm_events_chain``, ``crm_snapshots``)."""

    def __init__(self, connection: Any, schema: str) -> None:
        self.connection = connection
        self.schema = schema or "public"
        self.events_table = f'"{self.schema}".crm_events'
        self.chain_table = f'"{self.schema}".crm_events{CHAIN_SUFFIX}'
        self.snapshots_table = f'"{self.schema}".crm_snapshots'
        self._cursors = 0

    def _stream(self, query: str, params: tuple[Any, ...]) -> Iterator[tuple[Any, ...]]:
        self._cursors += 1
        with self.connection.cursor(name=f"crm_audit_{self._cursors}") as cursor:
            cursor.itersize = BATCH
            cursor.execute(query, params)
            yield from cursor

    def events(self, start: int) -> Iterator[EventRow]:
        """Events from position ``start`` on, in notification order."""
        for row in self._stream(
            "SELECT notification_id, originator_id, originator_version, topic, state "
            f"FROM {self.events_table} WHERE notification_id >= %s ORDER BY notification_id",
            (start,),
        ):
            yield row[0], row[1].hex, row[2], row[3], bytes(row[4])

    def links(self, start: int) -> Iterator[LinkRow]:
        """Chain rows from position ``start`` on, in order."""
        for row in self._stream(
            f"SELECT * FROM {self.chain_table} WHERE position >= %s ORDER BY position", (start,)
        ):
            yield row[0], row[1].hex, row[2], bytes(row[3]), bytes(row[4]), bytes(row[5])

    def link_before(self, position: int) -> bytes | None:
        """The chain hash of the last chained event before ``position``."""
        row = self.connection.execute(
            f"SELECT chain_hash FROM {self.chain_table} WHERE position < %s "
            "ORDER BY position DESC LIMIT 1",
            (position,),
        ).fetchone()
        return None if row is None else bytes(row[0])

    def chained_position(self, originator_id: str, version: int) -> int | None:
        """Where the chain put this event."""
        row = self.connection.execute(
            f"SELECT position FROM {self.chain_table} "
            "WHERE originator_id = %s AND originator_version = %s",
            (UUID(originator_id), version),
        ).fetchone()
        return None if row is None else int(row[0])

    def snapshots(self) -> Iterator[SnapshotRow]:
        """Every stored snapshot."""
        row = self.connection.execute("SELECT to_regclass(%s)", (self.snapshots_table,)).fetchone()
        if row is None or row[0] is None:
            return
        for snap in self._stream(
            f"SELECT originator_id, originator_version, topic, state FROM {self.snapshots_table}",
            (),
        ):
            yield snap[0].hex, snap[1], snap[2], bytes(snap[3])

    def replace_chain(self, rows: Iterable[LinkRow]) -> int:
        """Replace every chain row with ``rows``; return how many."""
        self.connection.execute(f"DELETE FROM {self.chain_table}")
        count = 0
        insert = (
            f"INSERT INTO {self.chain_table} SELECT * FROM unnest("
            "%s::bigint[], %s::uuid[], %s::bigint[], %s::bytea[], %s::bytea[], %s::bytea[])"
        )
        for batch in _batches(rows):
            self.connection.execute(
                insert,
                (
                    [r[0] for r in batch],
                    [UUID(r[1]) for r in batch],
                    [r[2] for r in batch],
                    [r[3] for r in batch],
                    [r[4] for r in batch],
                    [r[5] for r in batch],
                ),
            )
            count += len(batch)
        return count


@contextmanager
def open_source(store: StoreURL, *, write: bool = False) -> Iterator[LogSource]:
    """The store's log, read in one consistent read-only transaction; with ``write``, in a
    transaction that holds the store's write lock (SQLite ``BEGIN IMMEDIATE``, PostgreSQL
    the events table's ``EXCLUSIVE`` lock the recorder takes) and commits at the end."""
    if store.backend == "sqlite" and not store.in_memory:
        store.check(must_exist=True)
        connection = sqlite3.connect(store.sqlite_path, isolation_level=None, timeout=10)
        try:
            connection.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            yield SQLiteSource(connection)
            if write:
                connection.execute("COMMIT")
        finally:
            connection.close()
        return
    if store.backend == "postgres":
        store.check(must_exist=True)
        psycopg = _require_psycopg()
        with psycopg.connect(
            host=store.pg_host,
            port=int(store.pg_port),
            user=store.pg_user,
            password=store.pg_password or None,
            dbname=store.pg_dbname,
        ) as connection:
            source = PostgresSource(connection, store.pg_schema)
            if write:
                connection.execute(f"LOCK TABLE {source.events_table} IN EXCLUSIVE MODE")
                yield source
                connection.commit()
                return
            connection.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            connection.read_only = True
            try:
                yield source
            finally:
                connection.rollback()
        return
    raise ConfigurationError(
        f"the audit reads an SQLite or PostgreSQL store, not {store.display}: an in-memory "
        "store lives and dies with its process"
    )
