"""Where the data subjects' keys live: one AES-256 key per customer, destroyed to erase them.

Personal fields are stored encrypted with their data subject's key (see
:mod:`crm_domain.infrastructure.sealing`); destroying the key erases the person from every
stored event and snapshot at once, without rewriting history ("crypto-shredding").

The store is a small typed interface, :class:`KeyStore` (``get`` / ``create`` /
``destroy``), so a KMS or an HSM can hold the keys instead. The default,
:class:`SQLKeyStore`, is a table beside the events in the same database
(``crm_subject_keys``, created with the event tables); :class:`MemoryKeyStore` serves
``memory://`` stores. A destroyed key leaves a row with no key and the time it was
destroyed (a tombstone), so personal data written later for the same subject is never
encrypted under a fresh key by mistake: it is stored redacted.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable
from uuid import UUID

from eventsourcing.persistence import IntegrityError

log = logging.getLogger(__name__)

#: Bytes of a subject key (AES-256-GCM).
KEY_BYTES = 32


@dataclass(frozen=True)
class SubjectKey:
    """A data subject's key as the key store holds it: ``key`` is ``None`` once destroyed."""

    subject: UUID
    key: bytes | None
    destroyed_at: datetime | None = None

    @property
    def destroyed(self) -> bool:
        """True when the key was destroyed (the subject's personal data is erased)."""
        return self.key is None


@runtime_checkable
class KeyStore(Protocol):
    """Holds one key per data subject. Implement it to keep the keys in a KMS."""

    def get(self, subject: UUID) -> SubjectKey | None:
        """The subject's key (possibly destroyed), or ``None`` if it never had one."""

    def create(self, subject: UUID) -> SubjectKey:
        """The subject's key, created if it has none yet. Concurrent callers get the same
        key; a destroyed key stays destroyed (the result then has ``key=None``)."""

    def destroy(self, subject: UUID) -> None:
        """Destroy the subject's key for good (idempotent; a subject without a key gets a
        tombstone, so no key is ever created for it later)."""


def new_key() -> bytes:
    """A fresh random AES-256 key."""
    return os.urandom(KEY_BYTES)


class MemoryKeyStore:
    """Keys in a dict (for ``memory://`` stores and tests)."""

    def __init__(self) -> None:
        self._keys: dict[UUID, SubjectKey] = {}
        self._lock = threading.Lock()

    def get(self, subject: UUID) -> SubjectKey | None:
        """See :meth:`KeyStore.get`."""
        return self._keys.get(subject)

    def create(self, subject: UUID) -> SubjectKey:
        """See :meth:`KeyStore.create`."""
        with self._lock:
            found = self._keys.get(subject)
            if found is None:
                found = self._keys[subject] = SubjectKey(subject, new_key())
            return found

    def all_keys(self) -> dict[UUID, bytes | None]:
        """Every subject's key (None where destroyed): see :meth:`SQLKeyStore.all_keys`."""
        with self._lock:
            return {subject: found.key for subject, found in self._keys.items()}

    def destroy(self, subject: UUID) -> None:
        """See :meth:`KeyStore.destroy`."""
        with self._lock:
            found = self._keys.get(subject)
            if found is None or not found.destroyed:
                self._keys[subject] = SubjectKey(subject, None, datetime.now(UTC))


#: Keys read back per query (older SQLite builds take at most 999 parameters).
_KEYS_PER_QUERY = 500


class SQLKeyStore:
    """Keys in a table of the event store's own database (SQLite or PostgreSQL).

    Uses the event store's eventsourcing datastore (its connections, lock timeout and
    schema). Destroying a key overwrites it: SQLite with ``secure_delete`` and a WAL
    checkpoint, PostgreSQL with a ``VACUUM`` of the key table (old row versions may
    otherwise linger in the table's pages). Backups taken before the erasure still hold
    the key: keep them out of reach, or keep the keys in a KMS.
    """

    def __init__(self, datastore: Any, table: str) -> None:
        self.datastore = datastore
        self.table = table
        module = type(datastore).__module__
        self.postgres = "postgres" in module
        schema = getattr(datastore, "schema", "") if self.postgres else ""
        self.qualified = f"{schema}.{table}" if schema and schema != "public" else table
        self._param = "%s" if self.postgres else "?"

    def create_table(self) -> None:
        """Create the key table if it does not exist."""
        blob = "BYTEA" if self.postgres else "BLOB"
        stamp = "TIMESTAMPTZ" if self.postgres else "TEXT"
        with self.datastore.transaction(commit=True) as c:
            c.execute(
                f"CREATE TABLE IF NOT EXISTS {self.qualified} ("
                "subject TEXT PRIMARY KEY, "
                f"key {blob}, "
                f"created_at {stamp} NOT NULL, "
                f"destroyed_at {stamp})"
            )

    def _row(self, c: Any, subject: UUID) -> SubjectKey | None:
        p = self._param
        c.execute(
            f"SELECT key, destroyed_at FROM {self.qualified} WHERE subject = {p}", (str(subject),)
        )
        row = c.fetchone()
        if row is None:
            return None
        key, destroyed_at = (row["key"], row["destroyed_at"]) if isinstance(row, dict) else row
        if isinstance(destroyed_at, str):
            destroyed_at = datetime.fromisoformat(destroyed_at)
        return SubjectKey(subject, bytes(key) if key is not None else None, destroyed_at)

    def get(self, subject: UUID) -> SubjectKey | None:
        """See :meth:`KeyStore.get`."""
        with self.datastore.transaction(commit=False) as c:
            return self._row(c, subject)

    def all_keys(self) -> dict[UUID, bytes | None]:
        """Every subject's key (None where destroyed), in one query: a reader of the whole
        log (a rebuild) asks once rather than once per customer. Not part of
        :class:`KeyStore` (a KMS need not list its keys); readers check for it."""
        with self.datastore.transaction(commit=False) as c:
            c.execute(f"SELECT subject, key FROM {self.qualified}")
            rows = c.fetchall()
        found: dict[UUID, bytes | None] = {}
        for row in rows:
            subject, key = (row["subject"], row["key"]) if isinstance(row, dict) else row
            found[UUID(subject)] = bytes(key) if key is not None else None
        return found

    def create(self, subject: UUID) -> SubjectKey:
        """See :meth:`KeyStore.create`."""
        p = self._param
        now: Any = datetime.now(UTC) if self.postgres else datetime.now(UTC).isoformat()
        conflict = "ON CONFLICT (subject) DO NOTHING"
        with self.datastore.transaction(commit=True) as c:
            c.execute(
                f"INSERT INTO {self.qualified} (subject, key, created_at) "
                f"VALUES ({p}, {p}, {p}) {conflict}",
                (str(subject), new_key(), now),
            )
            found = self._row(c, subject)
        assert found is not None
        return found

    def insert_keys(self, cursor: Any, keys: dict[UUID, bytes]) -> None:
        """Store new keys with ``cursor``, in the transaction of their subjects' first
        sealed events (again is harmless). A different key another process stored first
        for the same subject fails the transaction with an ``IntegrityError``: the write
        is retried, and the retry uses that key.

        Two statements, whatever the number of keys (an import's batch brings thousands):
        on PostgreSQL a read per key was a round trip per key."""
        p = self._param
        now: Any = datetime.now(UTC) if self.postgres else datetime.now(UTC).isoformat()
        rows = [(str(subject), key, now) for subject, key in keys.items()]
        insert = f"INSERT INTO {self.qualified} (subject, key, created_at) "
        conflict = " ON CONFLICT (subject) DO NOTHING"
        if self.postgres:
            # One statement of arrays: the recorder's cursor is in pipeline mode, where a
            # read after an executemany gets the INSERT's (empty) result.
            cursor.execute(
                insert
                + "SELECT * FROM unnest(%s::text[], %s::bytea[], %s::timestamptz[])"
                + conflict,
                ([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]),
            )
        else:
            cursor.executemany(insert + f"VALUES ({p}, {p}, {p})" + conflict, rows)
        stored: dict[str, bytes | None] = {}
        for first in range(0, len(rows), _KEYS_PER_QUERY):
            subjects = [row[0] for row in rows[first : first + _KEYS_PER_QUERY]]
            if self.postgres:
                select = f"SELECT subject, key FROM {self.qualified} WHERE subject = ANY(%s)"
                cursor.execute(select, (subjects,))
            else:
                cursor.execute(
                    f"SELECT subject, key FROM {self.qualified} "
                    f"WHERE subject IN ({', '.join('?' * len(subjects))})",
                    subjects,
                )
            for row in cursor.fetchall():
                subject, key = (row["subject"], row["key"]) if isinstance(row, dict) else row
                stored[subject] = bytes(key) if key is not None else None
        for subject, key in keys.items():
            if stored.get(str(subject)) != key:
                raise IntegrityError(f"another process stored the key of subject {subject}")

    def destroy(self, subject: UUID) -> None:
        """See :meth:`KeyStore.destroy`."""
        p = self._param
        now: Any = datetime.now(UTC) if self.postgres else datetime.now(UTC).isoformat()
        with self.datastore.transaction(commit=True) as c:
            if not self.postgres:
                c.execute("PRAGMA secure_delete = ON")
            c.execute(
                f"INSERT INTO {self.qualified} (subject, key, created_at, destroyed_at) "
                f"VALUES ({p}, NULL, {p}, {p}) ON CONFLICT (subject) DO UPDATE SET "
                f"key = NULL, destroyed_at = COALESCE({self.qualified}.destroyed_at, {p})",
                (str(subject), now, now, now),
            )
        self._scrub()

    def _scrub(self) -> None:
        """Best effort: overwrite the destroyed key's old bytes in the database files."""
        try:
            if self.postgres:
                with self.datastore.get_connection() as conn:
                    conn.execute(f"VACUUM {self.qualified}")
            else:
                with self.datastore.get_connection(commit=True) as conn:
                    cursor = conn.cursor()
                    cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except Exception:  # a busy database: the pages are overwritten later
            log.warning("key destroyed; its old pages not yet overwritten", exc_info=True)


def memory_key_store(event_store: Any) -> MemoryKeyStore:
    """A ``KEY_STORE_TOPIC`` factory: keys in this process's memory (tests, demos; they
    die with the process, and every sealed field with them)."""
    return MemoryKeyStore()


def key_store_for(recorder: Any, name: str, *, create_table: bool = True) -> KeyStore:
    """The default key store beside ``recorder``'s events: a table named
    ``<name>_subject_keys`` in the same database (created with the event tables, unless
    eventsourcing's ``CREATE_TABLE`` is off), or memory for in-memory stores."""
    datastore = getattr(recorder, "datastore", None)
    if datastore is None:
        return MemoryKeyStore()
    store = SQLKeyStore(datastore, f"{name.lower()}_subject_keys")
    if create_table:
        store.create_table()
    return store
