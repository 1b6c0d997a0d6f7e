"""The PostgreSQL event recorder, with every event sent before the writer waits for replies.

eventsourcing's recorder writes in psycopg's pipeline mode: it queues ``LOCK TABLE ... IN
EXCLUSIVE MODE`` (which keeps notification ids in commit order), ``NOTIFY`` and the
``INSERT`` of the events, then calls ``Pipeline.sync()``. psycopg's ``sync()`` flushes the
connection's output buffer only once per queued command and then waits to *read* the
replies. An ``INSERT`` larger than the socket buffers can take at once (a few megabytes
on Linux, far less elsewhere) is left partly unsent: the server waits for the rest of it
(``ClientRead``) while it already holds the table lock, the client waits for a reply that
cannot come, and every other writer queues behind the lock. psycopg's own pipeline exit
path flushes fully (``generators.send``, psycopg#685); ``sync()`` does not.

:class:`FlushingPostgresApplicationRecorder` sends the whole ``INSERT`` (reading replies as
they come, so neither side's buffer can fill up) before ``sync()``. ``sync()`` then only
adds its five-byte Sync message to an empty buffer. Selected through the factory's
``APPLICATION_RECORDER_TOPIC`` (see :mod:`crm_domain.infrastructure.storage`); see
``docs/limits.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder
from psycopg import Cursor
from psycopg.generators import send
from psycopg.rows import DictRow


class FlushingPostgresApplicationRecorder(PostgresApplicationRecorder):
    """The library's application recorder, with the event INSERT flushed before the sync."""

    def _insert_stored_events(
        self,
        curs: Cursor[DictRow],
        stored_events: Sequence[StoredEvent],
        **kwargs: Any,
    ) -> None:
        super()._insert_stored_events(curs, stored_events, **kwargs)
        # Outside pipeline mode the buffer is already empty and this returns at once.
        conn = curs.connection
        conn.wait(send(conn.pgconn))
