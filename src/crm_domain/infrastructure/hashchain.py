"""The hash chain over the stored events, computed by the recorders as they write.

Each stored event gets one row in a table of its own beside the events table
(``<events table>_chain``: ``stored_events_chain`` in SQLite, ``crm_events_chain`` in
PostgreSQL), keyed by the event's notification position: the event's hash, its aggregate's
chain hash and the log's chain hash (definitions in :mod:`crm_domain.audit.verifier`). The
recorders insert the rows in the same transaction as the events, after the events have
their positions and while the writer holds the store's write lock (SQLite's single writer;
PostgreSQL's ``LOCK TABLE ... IN EXCLUSIVE MODE``, which makes notification ids follow
commit order), so the previous link read is the one just before. eventsourcing's own tables
and contracts are unchanged: a reader that knows nothing of the chain reads as before.

The recorders hook into eventsourcing 9.5's internals: SQLite's
``SQLiteApplicationRecorder._insert_events`` (which returns the new rowids); on PostgreSQL,
:mod:`.postgres_recorder` runs the library's ``insert_events`` body itself (pipeline, lock,
``_insert_stored_events``, ``_fetch_ids_after_insert_events``) so the chain's statements
share its round trips. If a release moves them, ``tests/audit/test_tampering.py`` fails on
each backend (an untouched log no longer verifies intact).
"""

from __future__ import annotations

import hashlib
import sqlite3
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from uuid import UUID

from eventsourcing.persistence import StoredEvent

from crm_domain.audit.verifier import GENESIS, aggregate_link, chain_link, event_hash
from crm_domain.errors import TamperDetectedError

#: Suffix of the chain table's name (after the events table's).
CHAIN_SUFFIX = "_chain"

#: A chain row as stored: position, originator id (32 hex digits), version, event hash,
#: aggregate chain hash, log chain hash.
ChainRow = tuple[int, str, int, bytes, bytes, bytes]

#: (originator id as hex, version) of an event.
EventKey = tuple[str, int]


def originator_hex(originator_id: UUID | str) -> str:
    """The originator id as the chain hashes it: 32 lowercase hex digits."""
    if isinstance(originator_id, UUID):
        return originator_id.hex
    return UUID(originator_id).hex


def stored_event_hash(stored: StoredEvent) -> bytes:
    """The hash of one stored event's bytes (topic, originator, version, state)."""
    return event_hash(
        stored.topic, originator_hex(stored.originator_id), stored.originator_version, stored.state
    )


def predecessors(stored_events: Sequence[StoredEvent]) -> list[EventKey]:
    """The events (by key) whose aggregate links these events need from the table: each
    aggregate's previous version, unless it is in the same batch or there is none."""
    keys: dict[str, int] = {}
    for stored in stored_events:
        oid = originator_hex(stored.originator_id)
        if oid not in keys:
            keys[oid] = stored.originator_version
    return [(oid, version - 1) for oid, version in keys.items() if version > 1]


def link_batch(
    stored_events: Sequence[StoredEvent],
    positions: Sequence[int],
    previous_link: bytes | None,
    aggregate_links: Mapping[EventKey, bytes],
) -> list[ChainRow]:
    """The chain rows of a batch of events just inserted at ``positions``, given the log's
    last link (None: no chained event yet) and the aggregates' previous links."""
    link = previous_link or GENESIS
    last_of: dict[str, bytes] = {}
    rows: list[ChainRow] = []
    for stored, position in zip(stored_events, positions, strict=True):
        oid = originator_hex(stored.originator_id)
        version = stored.originator_version
        digest = event_hash(stored.topic, oid, version, stored.state)
        previous = last_of.get(oid)
        if previous is None:
            previous = aggregate_links.get((oid, version - 1), GENESIS)
        aggregate = aggregate_link(previous, digest)
        last_of[oid] = aggregate
        link = chain_link(link, position, digest)
        rows.append((position, oid, version, digest, aggregate, link))
    return rows


@dataclass(frozen=True)
class ChainTable:
    """The chain table's name and its DDL for one backend."""

    name: str

    @classmethod
    def beside(cls, events_table: str) -> ChainTable:
        """The chain table kept beside ``events_table``."""
        return cls(events_table + CHAIN_SUFFIX)

    def sqlite_create(self) -> list[str]:
        """SQLite statements creating the table and its per-aggregate index."""
        return [
            f"CREATE TABLE IF NOT EXISTS {self.name} ("
            "position INTEGER PRIMARY KEY, originator_id TEXT NOT NULL, "
            "originator_version INTEGER NOT NULL, event_hash BLOB NOT NULL, "
            "aggregate_hash BLOB NOT NULL, chain_hash BLOB NOT NULL)",
            f"CREATE UNIQUE INDEX IF NOT EXISTS {self.name}_aggregate "
            f"ON {self.name} (originator_id, originator_version)",
        ]


#: Aggregates' links read per query (SQLite allows 500 terms in a compound SELECT).
_LINKS_PER_QUERY = 400
_LAST_LINK = (
    "SELECT NULL, NULL, chain_hash FROM "
    "(SELECT chain_hash FROM {table} ORDER BY position DESC LIMIT 1)"
)
_AGGREGATE_LINK = (
    "SELECT originator_id, originator_version, aggregate_hash FROM {table} "
    "WHERE originator_id=? AND originator_version=?"
)


#: The SQL function the single-event chain INSERT hashes with (registered per connection).
SQLITE_SHA256 = "crm_chain_sha256"
#: A position as the log's link hashes it (the verifier's ``chain_link``: 8 bytes, big-endian).
_POSITION = struct.Struct(">Q")
_ONE_LINK = (
    "INSERT INTO {table} VALUES (?1, ?2, ?3, ?4, "
    + SQLITE_SHA256
    + "(COALESCE(CASE WHEN ?3 > 1 THEN (SELECT aggregate_hash FROM {table} "
    "WHERE originator_id = ?2 AND originator_version = ?3 - 1) END, ?5), ?4), "
    + SQLITE_SHA256
    + "(COALESCE((SELECT chain_hash FROM {table} ORDER BY position DESC LIMIT 1), ?5), ?6, ?4))"
)


def _sqlite_sha256(*parts: bytes) -> bytes:
    """SHA-256 of the blobs given, one after the other (the verifier's links, in SQL)."""
    return hashlib.sha256(b"".join(parts)).digest()


def _execute_linking(cursor: sqlite3.Cursor, statement: str, params: Sequence[object]) -> None:
    """Run the single-event chain INSERT, registering its hash function on the connection
    the first time it meets one without it (a statement that fails to prepare changes
    nothing, so the transaction goes on)."""
    try:
        cursor.execute(statement, params)
    except sqlite3.OperationalError as error:
        if SQLITE_SHA256 not in str(error):
            raise
        cursor.connection.create_function(SQLITE_SHA256, -1, _sqlite_sha256, deterministic=True)
        cursor.execute(statement, params)


def chain_sqlite(
    cursor: sqlite3.Cursor,
    table: str,
    stored_events: Sequence[StoredEvent],
    positions: Sequence[int],
) -> None:
    """Write the chain rows of events just inserted at ``positions``, through the
    writing transaction's cursor (which holds SQLite's one write lock)."""
    try:
        if len(stored_events) == 1:
            # One event (every single command but register): one statement reads both
            # previous links and inserts the row, hashing the links in SQLite.
            stored, position = stored_events[0], positions[0]
            oid = originator_hex(stored.originator_id)
            version = stored.originator_version
            digest = event_hash(stored.topic, oid, version, stored.state)
            params = (position, oid, version, digest, GENESIS, _POSITION.pack(position))
            _execute_linking(cursor, _ONE_LINK.format(table=table), params)
        else:
            rows = _link_rows(cursor, table, stored_events, positions)
            cursor.executemany(f"INSERT INTO {table} VALUES (?,?,?,?,?,?)", rows)
    except sqlite3.IntegrityError:
        # SQLite reuses the position of a deleted last event: the chain remembers it. The
        # whole write is rolled back (nothing stored), and says why rather than looking
        # like a concurrent write to retry.
        raise TamperDetectedError(
            "deleted",
            positions[0],
            "this position is already chained: the event stored there was deleted "
            "(or the chain table edited); nothing was stored, run `crm audit verify`",
        ) from None


def _link_rows(
    cursor: sqlite3.Cursor,
    table: str,
    stored_events: Sequence[StoredEvent],
    positions: Sequence[int],
) -> list[ChainRow]:
    """The chain rows of a batch, its links read in one query (more only past SQLite's
    limit on a compound SELECT's terms) and hashed here."""
    keys = predecessors(stored_events)
    previous: bytes | None = None
    links: dict[EventKey, bytes] = {}
    for start in range(0, max(len(keys), 1), _LINKS_PER_QUERY):
        chunk = keys[start : start + _LINKS_PER_QUERY]
        terms = [_LAST_LINK.format(table=table)] if start == 0 else []
        terms += [_AGGREGATE_LINK.format(table=table)] * len(chunk)
        params = [part for key in chunk for part in key]
        for oid, version, link in cursor.execute(" UNION ALL ".join(terms), params):
            if oid is None:
                previous = bytes(link)
            else:
                links[(oid, version)] = bytes(link)
    return link_batch(stored_events, positions, previous, links)
