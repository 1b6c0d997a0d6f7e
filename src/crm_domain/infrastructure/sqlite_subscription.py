"""Let ``ProjectionRunner`` and the Kafka relay follow a SQLite store; chain what it stores.

eventsourcing 9.5's SQLite application recorder has no ``subscribe()``. SQLite has no
LISTEN/NOTIFY, so the subscription is the library's own :class:`ListenNotifySubscription`
woken on a short interval: each wake-up pulls whatever was committed since the last
notification id. Selected with the factory's ``APPLICATION_RECORDER_TOPIC`` setting, so the
stock runner works unchanged on every backend.
"""

from __future__ import annotations

from collections.abc import Sequence
from threading import Event, Thread
from typing import Any

from eventsourcing.persistence import (
    ApplicationRecorder,
    ListenNotifySubscription,
    StoredEvent,
    Subscription,
)
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteCursor, SQLiteDatastore

from crm_domain.infrastructure.compat import cache_sqlite_statements, wake_subscription
from crm_domain.infrastructure.hashchain import ChainTable, chain_sqlite

#: Seconds between polls of the SQLite events table while a subscription waits.
POLL_INTERVAL = 0.05


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
        positions = super()._insert_events(c, stored_events, **kwargs)
        if positions:
            chain_sqlite(c.sqlite_cursor, self.chain_table.name, stored_events, positions)
        return positions

    def subscribe(
        self, gt: int | None = None, topics: Sequence[str] = ()
    ) -> Subscription[ApplicationRecorder]:
        return PollingSQLiteSubscription(recorder=self, gt=gt, topics=topics)
