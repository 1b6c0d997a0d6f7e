"""The event store under the CRM: eventsourcing's ``Application``, configured for crm-core.

:class:`~crm_domain.CRM` composes one (``crm.app``) rather than being one, so the CRM's
own API stays about customers and accounts. Projections and the Kafka relay use
``crm.app`` directly: its ``recorder`` (the notification log), ``mapper`` (stored events
to domain events) and ``events`` / ``repository``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, ClassVar, cast
from uuid import UUID

from eventsourcing.application import Application, ProcessingEvent
from eventsourcing.domain import DomainEventProtocol, MutableOrImmutableAggregate
from eventsourcing.persistence import EventStore, Notification, Recording
from eventsourcing.sqlite import SQLiteAggregateRecorder
from eventsourcing.utils import EnvType, get_topic, resolve_topic, strtobool

from crm_domain.account import Account
from crm_domain.customer import Customer
from crm_domain.eventmodel import Snapshot
from crm_domain.infrastructure.compat import before_inserting_events
from crm_domain.infrastructure.keystore import KeyStore, SQLKeyStore, key_store_for
from crm_domain.infrastructure.persistence import OrjsonTranscoder, PydanticMapper
from crm_domain.infrastructure.schema_lock import event_store_lock
from crm_domain.infrastructure.sealing import PersonalDataSealer
from crm_domain.infrastructure.storage import StoreURL

log = logging.getLogger(__name__)

#: The eventsourcing setting naming a key-store factory (see ``CRMEventStore._key_store``).
KEY_STORE_TOPIC = "KEY_STORE_TOPIC"


class CurrentSnapshots(EventStore[UUID]):
    """The snapshot store: gives only snapshots taken in today's state shape
    (:meth:`Snapshot.is_current`). An older one is passed over, so the repository folds the
    aggregate from its events instead of trusting a state that lacks later fields."""

    def get(
        self,
        originator_id: UUID,
        *,
        gt: int | None = None,
        lte: int | None = None,
        desc: bool = False,
        limit: int | None = None,
    ) -> Iterator[DomainEventProtocol[UUID]]:
        """Snapshots of ``originator_id`` as eventsourcing's ``EventStore.get``, less those of
        another shape."""
        found = super().get(originator_id, gt=gt, lte=lte, desc=desc, limit=limit)
        return (s for s in found if cast(Snapshot, s).is_current())


class CRMEventStore(Application[UUID]):
    """Customers' and accounts' events as stored (pydantic events as JSON via orjson).

    Named ``"CRM"``: eventsourcing names PostgreSQL tables after the application, and every
    reader (projections, relay) must find the same ``crm_events``.
    """

    name = "CRM"
    env: ClassVar[dict[str, str]] = {
        "TRANSCODER_TOPIC": get_topic(OrjsonTranscoder),
        "MAPPER_TOPIC": get_topic(PydanticMapper),
    }
    snapshot_class = Snapshot
    #: Where the events live; None in a subclass that skips ``__init__`` (a projection
    #: runner's application sharing an open store's recorder).
    store: StoreURL | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # Keep the store's name in subclasses (e.g. a runner's) unless they name another.
        if "name" not in cls.__dict__:
            cls.name = CRMEventStore.name
        super().__init_subclass__(**kwargs)

    def __init__(
        self,
        env: EnvType | None = None,
        *,
        name: str | None = None,
        snapshot_interval: int | None = None,
        store: StoreURL | None = None,
        key_store: KeyStore | None = None,
        key_cache_seconds: float = 60.0,
        encrypt_personal_data: bool = True,
    ) -> None:
        #: Where the events live (followers keep their positions in the same database).
        self.store = store
        if name is not None:
            self.name = name
        if snapshot_interval:
            self.snapshotting_intervals = {  # type: ignore[misc]
                Customer: snapshot_interval,
                Account: snapshot_interval,
            }
        #: Encrypts customers' personal fields with their own keys (None: switched off,
        #: personal fields stored and read in clear).
        self.sealer: PersonalDataSealer | None = None
        # Creating the tables (events, snapshots, chain, keys) takes turns with other
        # processes opening the same PostgreSQL database (see schema_lock).
        with event_store_lock(self.construct_env(self.name, env)):
            super().__init__(env)
            if encrypt_personal_data and isinstance(self.mapper, PydanticMapper):
                keys = key_store or self._key_store()
                self.sealer = PersonalDataSealer(keys, cache_seconds=key_cache_seconds)
                self.mapper.sealer = self.sealer
                if isinstance(keys, SQLKeyStore):
                    self._store_keys_with_events(keys, self.sealer)

    def _key_store(self) -> KeyStore:
        """``KEY_STORE_TOPIC`` (a ``module:factory`` taking this event store and returning
        a :class:`~crm_domain.infrastructure.keystore.KeyStore`, e.g. a KMS's), read like
        every eventsourcing setting (also from the process environment, so the CRM, the
        read-model runner and the relay all find it); else the table beside the events."""
        topic = self.env.get(KEY_STORE_TOPIC)
        if topic:
            factory = resolve_topic(topic)
            keys: KeyStore = factory(self)
            return keys
        create = strtobool(self.env.get("CREATE_TABLE", "y"))
        return key_store_for(self.recorder, self.name, create_table=create)

    def _store_keys_with_events(self, keys: SQLKeyStore, sealer: PersonalDataSealer) -> None:
        """New customers' keys are inserted in the transaction that stores their first
        sealed events (the recorder's ``_insert_events`` hook, which runs inside it): no
        extra transaction on the write path, and no key without its events or vice versa."""

        def insert_keys(cursor: Any, stored_events: Sequence[Any]) -> None:
            pending = sealer.pending_keys({e.originator_id for e in stored_events})
            if pending:
                keys.insert_keys(cursor, pending)

        if not before_inserting_events(self.recorder, insert_keys):
            return
        sealer.staged = True

    def save(
        self,
        *objs: MutableOrImmutableAggregate[UUID] | Any,
        **kwargs: Any,
    ) -> list[Recording[UUID]]:
        """Store the aggregates' new events; a stored ``PersonalDataErased`` then destroys
        its customer's key (after the commit: the erasure is on record before it is done,
        and running it again finishes a destruction that failed)."""
        sealer = self.sealer
        try:
            recordings = super().save(*objs, **kwargs)
        except BaseException:
            if sealer is not None and sealer.staged:
                ids = (getattr(o, "id", None) or getattr(o, "originator_id", None) for o in objs)
                sealer.not_stored({i for i in ids if isinstance(i, UUID)})
            raise
        if sealer is not None and sealer.staged:
            sealer.stored({r.domain_event.originator_id for r in recordings})
        if self.sealer is not None:
            for recording in recordings:
                if isinstance(recording.domain_event, Customer.PersonalDataErased):
                    self.sealer.forget(recording.domain_event.originator_id)
        return recordings

    def notifications_of(
        self, *event_classes: type[Any], page: int = 5000, start: int = 1
    ) -> Iterator[Notification]:
        """The stored events of these classes, in log order from position ``start``, read in
        pages filtered by topic in the database (the scans for SLA breaches, lapsed quotes,
        the lifecycle and a handover's portfolio look at a few event types of a large log;
        an order import brings its customer directory up to date from where it left off)."""
        topics = [get_topic(c) for c in event_classes]
        while True:
            found = self.recorder.select_notifications(start, page, topics=topics)
            yield from found
            if len(found) < page:
                return
            start = found[-1].id + 1

    def originators_of(self, *event_classes: type[Any], page: int = 5000) -> list[UUID]:
        """The aggregates that stored an event of these classes, in order of the first one."""
        found = self.notifications_of(*event_classes, page=page)
        return list(dict.fromkeys(UUID(str(n.originator_id)) for n in found))

    def stored_originators(self, originator_ids: Iterable[UUID], *, page: int = 500) -> set[UUID]:
        """Which of these aggregates have stored events: one query per ``page`` ids on SQLite
        and PostgreSQL (a query each on another recorder). For checks of many ids at once,
        e.g. the customer codes of an import's batch (``CRM.look_up_codes``)."""
        ids = list(dict.fromkeys(originator_ids))
        recorder = self.recorder
        found: set[UUID] = set()
        if isinstance(recorder, SQLiteAggregateRecorder):
            with recorder.datastore.transaction(commit=False) as cursor:
                for start in range(0, len(ids), page):
                    chunk = ids[start : start + page]
                    cursor.execute(
                        f"SELECT DISTINCT originator_id FROM {recorder.events_table_name} "
                        f"WHERE originator_id IN ({','.join('?' * len(chunk))})",
                        [i.hex for i in chunk],
                    )
                    found.update(UUID(row[0]) for row in cursor.fetchall())
        elif self.store is not None and self.store.backend == "postgres":
            # Imported here: psycopg is an optional dependency (the postgres extra).
            from eventsourcing.postgres import PostgresAggregateRecorder
            from psycopg.sql import SQL, Identifier

            assert isinstance(recorder, PostgresAggregateRecorder)
            statement = SQL(
                "SELECT DISTINCT originator_id FROM {schema}.{table} "
                "WHERE originator_id = ANY(%b::uuid[])"
            ).format(
                schema=Identifier(recorder.datastore.schema),
                table=Identifier(recorder.events_table_name),
            )
            with recorder.datastore.transaction(commit=False) as curs:
                for start in range(0, len(ids), page):
                    curs.execute(statement, (ids[start : start + page],))
                    found.update(row["originator_id"] for row in curs.fetchall())
        else:
            found = {i for i in ids if recorder.select_events(i, limit=1)}
        return found

    def construct_snapshot_store(self) -> EventStore[UUID]:
        """Snapshots through :class:`CurrentSnapshots` (eventsourcing's store otherwise)."""
        recorder = self.factory.aggregate_recorder(purpose="snapshots")
        if self.store is not None and self.store.backend == "postgres":
            # Imported here: psycopg is an optional dependency (the postgres extra).
            from crm_domain.infrastructure.postgres_recorder import (
                BinaryPostgresAggregateRecorder,
            )

            recorder = BinaryPostgresAggregateRecorder(
                recorder.datastore,  # type: ignore[attr-defined]
                events_table_name=recorder.events_table_name,  # type: ignore[attr-defined]
            )
        return CurrentSnapshots(mapper=self.mapper, recorder=recorder)

    def _take_snapshots(self, processing_event: ProcessingEvent[UUID]) -> None:
        """Snapshots are taken after the events committed: a failure to write one must not
        turn a stored command into a reported failure. Log it; the next one will do.

        Per aggregate that the saved events take past a snapshot point, one snapshot is
        taken (a bulk save passes many; loading needs the latest), of the saved aggregate
        itself at its version, rather than replayed from the store (what the library does,
        and what made bulk imports spend a fifth of their time here); all of them in one
        write (a snapshot that cannot be written leaves the save's others unwritten too:
        the aggregates load from their events, and their next snapshot point takes one)."""
        try:
            self._take_latest_snapshots(processing_event)
        except Exception:
            log.warning(
                "snapshot not stored (the events were): aggregates %s",
                ", ".join(str(i) for i in processing_event.aggregates),
                exc_info=True,
            )

    def _take_latest_snapshots(self, processing_event: ProcessingEvent[UUID]) -> None:
        if not self.snapshots or not self.snapshotting_intervals:
            return
        latest: dict[UUID, int] = {}
        for event in processing_event.events:
            aggregate = processing_event.aggregates.get(event.originator_id)
            if aggregate is None:
                continue
            interval = self.snapshotting_intervals.get(type(aggregate))
            if interval is not None and event.originator_version % interval == 0:
                latest[event.originator_id] = event.originator_version
        snapshots = []
        for aggregate_id in latest:
            # The saved aggregate at its version (at or after the point): a load reads the
            # latest snapshot at or before the version it wants, so one a few events later
            # than the interval's multiple only saves replaying them.
            aggregate = processing_event.aggregates[aggregate_id]
            snapshot_class = getattr(type(aggregate), "Snapshot", type(self).snapshot_class)
            assert snapshot_class is not None
            snapshots.append(snapshot_class.take(aggregate))
        if snapshots:
            # One write for all of them: a bulk save (an import's block of thousands of
            # customers) took one transaction, and one commit, per snapshot.
            self.snapshots.put(snapshots)
