"""Let ``ProjectionRunner`` and the Kafka relay follow a SQLite store; chain what it stores.

eventsourcing 9.5's SQLite application recorder has no ``subscribe()``. SQLite has no
LISTEN/NOTIFY, so the subscription is the library's own :class:`ListenNotifySubscription`
woken on a short interval: each wake-up pulls whatever was committed since the last
notification id. Selected with the factory's ``APPLICATION_RECORDER_TOPIC`` setting, so the
stock runner works unchanged on every backend.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from threading import Event, Thread
from typing import Any
from uuid import UUID

from eventsourcing.persistence import (
    ApplicationRecorder,
    ListenNotifySubscription,
    StoredEvent,
    Subscription,
)
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteCursor, SQLiteDatastore

from crm_domain.infrastructure.compat import cache_sqlite_statements, wake_subscription
from crm_domain.infrastructure.hashchain import ChainTable, chain_sqlite, originator_hex

#: Seconds between polls of the SQLite events table while a subscription waits.
POLL_INTERVAL = 0.05
#: SQLite's largest rowid; a table that holds it gets new rowids at random.
_MAX_ROWID = 2**63 - 1


class PollingSQLiteSubscription(ListenNotifySubscription[SQLiteApplicationRecorder]):
    """Wakes the library's pull loop every :data:`POLL_INTERVAL` seconds until stopped."""

    def __init__(
        self, recorder: SQLiteApplicationRecorder, gt: int | None = None, topics: Sequence[str] = ()
    ) -> None:
        self._stopping = Event()
        super().__init__(recorder=recorder, gt=gt, topics=topics)
        self._poll_thread = Thread(target=self._poll, name="sqlite-subscription-poll", daemon=True)
        self._poll_thread.start()

    def _poll(self) -> None:
        while not self._stopping.wait(POLL_INTERVAL):
            wake_subscription(self)

    def stop(self) -> None:
        self._stopping.set()
        super().stop()

    def __exit__(self, *args: Any, **kwargs: Any) -> None:
        try:
            super().__exit__(*args, **kwargs)
        finally:
            self._poll_thread.join()


class SubscribableSQLiteApplicationRecorder(SQLiteApplicationRecorder):
    """The stock SQLite application recorder, plus ``subscribe()`` and the hash chain
    (:mod:`crm_domain.infrastructure.hashchain`), written in the events' transaction."""

    def __init__(self, datastore: SQLiteDatastore, events_table_name: str = "stored_events"):
        #: The hash chain's table, beside the events table.
        self.chain_table = ChainTable.beside(events_table_name)
        # The store's connections keep their statements prepared (the library's keep one).
        cache_sqlite_statements(datastore)
        super().__init__(datastore, events_table_name)

    def construct_create_table_statements(self) -> list[str]:
        """The stock tables, plus the hash chain's table and index."""
        return super().construct_create_table_statements() + self.chain_table.sqlite_create()

    def _insert_events(
        self, c: SQLiteCursor, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        positions: Sequence[int] | None
        if len(stored_events) > 1:
            positions = self._insert_many(c.sqlite_cursor, stored_events)
        else:  # the library's: one INSERT, its rowid
            positions = super()._insert_events(c, stored_events, **kwargs)
        if positions:
            chain_sqlite(c.sqlite_cursor, self.chain_table.name, stored_events, positions)
        return positions

    def _insert_many(
        self, cursor: sqlite3.Cursor, stored_events: Sequence[StoredEvent]
    ) -> Sequence[int]:
        """Insert a batch's events with one ``executemany`` (the library runs an INSERT per
        event to read each rowid); their positions (rowids) follow from the last one.

        While the table's largest rowid is below SQLite's maximum, each new row gets the
        largest plus one; this transaction holds the write lock, so the batch's rows are
        the ``len(stored_events)`` rowids up to the largest after it. At the maximum SQLite
        picks rowids at random: then each is read back."""
        cursor.executemany(
            self.insert_events_statement,
            [
                (
                    e.originator_id.hex if isinstance(e.originator_id, UUID) else e.originator_id,
                    e.originator_version,
                    e.topic,
                    e.state,
                )
                for e in stored_events
            ],
        )
        cursor.execute(self.select_max_notification_id_statement)
        last = int(cursor.fetchone()[0])
        if last < _MAX_ROWID:
            return range(last - len(stored_events) + 1, last + 1)
        statement = (  # pragma: no cover - a table that reached the largest rowid
            f"SELECT rowid FROM {self.events_table_name} "
            "WHERE originator_id = ? AND originator_version = ?"
        )
        found = (  # pragma: no cover
            cursor.execute(statement, (originator_hex(e.originator_id), e.originator_version))
            for e in stored_events
        )
        return [int(row.fetchone()[0]) for row in found]  # pragma: no cover

    def subscribe(
        self, gt: int | None = None, topics: Sequence[str] = ()
    ) -> Subscription[ApplicationRecorder]:
        return PollingSQLiteSubscription(recorder=self, gt=gt, topics=topics)
