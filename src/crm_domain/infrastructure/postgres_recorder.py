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

The recorder also writes the hash chain (:mod:`crm_domain.infrastructure.hashchain`) in the
events' transaction, at no round trip of its own. A single event (one command's) is linked
by the server: the chain ``INSERT`` sent with the ``COMMIT`` computes its links with
``sha256()`` from the last link and the aggregate's previous one, read under the table
lock. For a batch, the query for those links is queued in the same pipeline after the
``LOCK TABLE`` and before the events' ``INSERT`` (so the server runs it under the lock, and
its reply comes back with the notification ids, in the one ``sync()``); the chain rows
computed from both are inserted by one statement sent with the ``COMMIT``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from eventsourcing.persistence import InterfaceError, OperationalError, StoredEvent
from eventsourcing.postgres import (
    PostgresAggregateRecorder,
    PostgresApplicationRecorder,
    PostgresDatastore,
)
from eventsourcing.utils import retry
from psycopg import Cursor
from psycopg.generators import send
from psycopg.rows import DictRow
from psycopg.sql import SQL, Composed, Identifier

from crm_domain.audit.verifier import GENESIS
from crm_domain.errors import ConfigurationError
from crm_domain.infrastructure.hashchain import (
    ChainTable,
    EventKey,
    link_batch,
    originator_hex,
    predecessors,
    stored_event_hash,
)


def _binary_insert(datastore: PostgresDatastore, table: str, returning: SQL) -> Composed:
    """The library's INSERT of stored events (an array of its composite type, which
    psycopg writes as text: every state's bytes hex-escaped inside a quoted record), as
    four arrays sent in binary (:func:`_columns`). Same rows, in the same order (unnest's)."""
    return SQL(
        "INSERT INTO {schema}.{table} (originator_id, originator_version, topic, state) "
        "SELECT * FROM unnest(%b::uuid[], %b::bigint[], %b::text[], %b::bytea[]){returning}"
    ).format(schema=Identifier(datastore.schema), table=Identifier(table), returning=returning)


def _columns(stored_events: Sequence[StoredEvent]) -> tuple[list[Any], ...]:
    """The stored events as the four arrays of :func:`_binary_insert`."""
    return (
        [
            e.originator_id if isinstance(e.originator_id, UUID) else UUID(e.originator_id)
            for e in stored_events
        ],
        [e.originator_version for e in stored_events],
        [e.topic for e in stored_events],
        [e.state for e in stored_events],
    )


class BinaryPostgresAggregateRecorder(PostgresAggregateRecorder):
    """The library's aggregate recorder (the snapshots' store), its rows sent as binary
    arrays (:func:`_binary_insert`), as the events' are."""

    def __init__(
        self, datastore: PostgresDatastore, *, events_table_name: str = "stored_events"
    ) -> None:
        super().__init__(datastore, events_table_name=events_table_name)
        self._insert_binary = _binary_insert(datastore, events_table_name, SQL(""))

    def _insert_stored_events(
        self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent], **_: Any
    ) -> None:
        curs.execute(self._insert_binary, _columns(stored_events))


class FlushingPostgresApplicationRecorder(PostgresApplicationRecorder):
    """The library's application recorder, with the event INSERT flushed before the sync
    and the hash chain written in the same transaction."""

    def __init__(
        self, datastore: PostgresDatastore, *, events_table_name: str = "stored_events"
    ) -> None:
        super().__init__(datastore, events_table_name=events_table_name)
        #: The hash chain's table, beside the events table.
        self.chain_table = ChainTable.beside(events_table_name)
        schema, table = Identifier(datastore.schema), Identifier(self.chain_table.name)
        self.sql_create_statements.append(
            SQL(
                "CREATE TABLE IF NOT EXISTS {schema}.{table} ("
                "position bigint PRIMARY KEY, originator_id uuid NOT NULL, "
                "originator_version bigint NOT NULL, event_hash bytea NOT NULL, "
                "aggregate_hash bytea NOT NULL, chain_hash bytea NOT NULL)"
            ).format(schema=schema, table=table)
        )
        self.sql_create_statements.append(
            SQL(
                "CREATE UNIQUE INDEX IF NOT EXISTS {index} ON {schema}.{table} "
                "(originator_id, originator_version)"
            ).format(
                index=Identifier(self.chain_table.name + "_aggregate"), schema=schema, table=table
            )
        )
        self._select_links = SQL(
            "(SELECT NULL::uuid AS oid, NULL::bigint AS ver, chain_hash AS link "
            "FROM {schema}.{table} ORDER BY position DESC LIMIT 1) UNION ALL "
            "(SELECT originator_id, originator_version, aggregate_hash FROM {schema}.{table} "
            "WHERE (originator_id, originator_version) IN "
            "(SELECT * FROM unnest(%s::uuid[], %s::bigint[])))"
        ).format(schema=schema, table=table)
        # The same hashes as hashchain.link_batch (crm_domain.audit.verifier's aggregate_link
        # and chain_link; int8send is the position as 8 big-endian bytes), for one event.
        self._insert_one_link = SQL(
            "INSERT INTO {schema}.{table} SELECT e.pos, e.oid, e.ver, e.digest, "
            "sha256(COALESCE((SELECT aggregate_hash FROM {schema}.{table} "
            "WHERE originator_id = e.oid AND originator_version = e.ver - 1), e.genesis) "
            "|| e.digest), "
            "sha256(COALESCE((SELECT chain_hash FROM {schema}.{table} "
            "ORDER BY position DESC LIMIT 1), e.genesis) || int8send(e.pos) || e.digest) "
            "FROM (SELECT %s::bigint AS pos, %s::uuid AS oid, %s::bigint AS ver, "
            "%s::bytea AS digest, %s::bytea AS genesis) AS e"
        ).format(schema=schema, table=table)
        self._insert_links = SQL(
            "INSERT INTO {schema}.{table} SELECT * FROM unnest("
            "%b::bigint[], %b::uuid[], %b::bigint[], %b::bytea[], %b::bytea[], %b::bytea[])"
        ).format(schema=schema, table=table)
        self._insert_events_binary = _binary_insert(
            datastore, events_table_name, SQL(" RETURNING notification_id")
        )

    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Any:
        """eventsourcing's ``PostgresApplicationRecorder.insert_events`` (pipeline mode,
        one transaction), with the chain's links read in the events' round trip and the
        chain rows inserted with the commit."""
        if self.datastore.enable_db_functions:
            raise ConfigurationError(
                "POSTGRES_ENABLE_DB_FUNCTIONS inserts events past the hash chain: leave it off"
            )
        return self._insert_chained(stored_events, **kwargs)

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def _insert_chained(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Any:
        exc: Exception | None = None
        positions: Sequence[int] | None = None
        keys = predecessors(stored_events)
        with self.datastore.get_connection() as conn:
            with conn.pipeline() as pipeline, conn.transaction():
                # Other things first (a new customer's key), pipelined too.
                with conn.cursor() as curs:
                    self._insert_events(curs, stored_events, **kwargs)
                if len(stored_events) > 0:
                    with conn.cursor() as curs, conn.cursor() as links_curs:
                        try:
                            # LOCK TABLE, NOTIFY, the chain's links (a batch of several
                            # events), INSERT ... RETURNING.
                            single = len(stored_events) == 1
                            self._insert_stored_events(
                                curs,
                                stored_events,
                                links=None if single else (links_curs, keys),
                                **kwargs,
                            )
                            # One round trip for all; a uniqueness violation is raised here.
                            pipeline.sync()
                            positions = self._fetch_ids_after_insert_events(
                                curs, stored_events, **kwargs
                            )
                            if positions and single:
                                self._chain_one(links_curs, stored_events[0], positions[0])
                            elif positions:
                                self._chain(links_curs, stored_events, positions)
                        except Exception as e:
                            # Avoid psycopg emitting a pipeline warning.
                            exc = e
            if exc:
                # Reraise exception after pipeline context manager has exited.
                raise exc
        return positions

    def _insert_stored_events(
        self,
        curs: Cursor[DictRow],
        stored_events: Sequence[StoredEvent],
        *,
        links: tuple[Cursor[DictRow], Sequence[EventKey]] | None = None,
        **kwargs: Any,
    ) -> None:
        # The library's order (PostgresApplicationRecorder._insert_stored_events): LOCK
        # TABLE and NOTIFY, then the events' INSERT.
        self._lock_table(curs)
        self._notify_channel(curs)
        if links is not None:
            # Queued behind the lock, so the server reads the links under it: the log's
            # last link and each aggregate's previous one, just before these events. Before
            # the INSERT, so a concurrent write's version conflict (the INSERT failing) does
            # not abort it: psycopg's prepared-statement cache then stays true.
            links_curs, keys = links
            links_curs.execute(
                self._select_links, ([UUID(k[0]) for k in keys], [k[1] for k in keys])
            )
        curs.execute(self._insert_events_binary, _columns(stored_events))
        # Outside pipeline mode the buffer is already empty and this returns at once.
        conn = curs.connection
        conn.wait(send(conn.pgconn))

    def _chain_one(self, curs: Cursor[DictRow], stored: StoredEvent, position: int) -> None:
        # One event (a single command's): the server links it, in the statement sent with
        # the COMMIT, still under the table lock, reading the log's last link and the
        # aggregate's previous one itself (no query of the links before, nothing to fetch).
        oid = originator_hex(stored.originator_id)
        digest = stored_event_hash(stored)
        curs.execute(
            self._insert_one_link, (position, oid, stored.originator_version, digest, GENESIS)
        )

    def _chain(
        self,
        links_curs: Cursor[DictRow],
        stored_events: Sequence[StoredEvent],
        positions: Sequence[int],
    ) -> None:
        # The links were read under the table lock (queued after it): the last link is the
        # one just before these positions.
        previous: bytes | None = None
        links: dict[EventKey, bytes] = {}
        for row in links_curs.fetchall():
            if row["oid"] is None:
                previous = bytes(row["link"])
            else:
                links[(row["oid"].hex, row["ver"])] = bytes(row["link"])
        rows = link_batch(stored_events, positions, previous, links)
        # Sent with the COMMIT (pipeline mode): no wait of its own.
        links_curs.execute(
            self._insert_links,
            (
                [r[0] for r in rows],
                [UUID(r[1]) for r in rows],
                [r[2] for r in rows],
                [r[3] for r in rows],
                [r[4] for r in rows],
                [r[5] for r in rows],
            ),
        )
