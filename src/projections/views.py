"""The materialised view: read-model tables and their tracking, committed together.

:class:`ReadModelView` is eventsourcing-sqlalchemy's ``SQLAlchemyTrackingRecorder`` for a
*set* of read models in one database. Each read model keeps its own position in its own
tracking table (``<name>_tracking``, the table the library would create for a projection of
that name), so one can be rebuilt while the others stay current, yet one pass over the
log feeds them all. Every batch is one transaction: the read models' row changes and their
new positions commit together or not at all, which is what makes the projection exactly
once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from eventsourcing.persistence import IntegrityError, Tracking
from eventsourcing_sqlalchemy.datastore import SQLAlchemyDatastore
from eventsourcing_sqlalchemy.recorders import SQLAlchemyTrackingRecorder
from sqlalchemy import Engine, String, Table, insert, literal, select, union_all, update
from sqlalchemy.orm import Session
from sqlalchemy.schema import CreateTable

from crm_domain.errors import ProjectionError, UnhandledEventError
from projections.readmodel import LoggedEvent, ReadModel

#: A read model whose batch was applied in memory: its class, tracking table, the position
#: it started from, the instance holding its changed rows, and the events it handled.
_Applied = tuple[type[ReadModel], Table, int | None, ReadModel, list[LoggedEvent]]


class ReadModelView(SQLAlchemyTrackingRecorder):
    """A set of read models (the class attribute ``read_models``) in one SQL database."""

    read_models: ClassVar[tuple[type[ReadModel], ...]] = ()
    #: Whether opening the view creates missing secondary indexes (not while rebuilding:
    #: :func:`~projections.rebuild.rebuild` builds them once, at the end).
    creates_indexes: ClassVar[bool] = True

    def __init__(
        self,
        datastore: SQLAlchemyDatastore,
        *,
        tracking_table_name: str = "projections_tracking",
        schema_name: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            datastore, tracking_table_name=tracking_table_name, schema_name=schema_name, **kwargs
        )
        if not self.read_models:
            raise ProjectionError(f"{type(self).__name__} names no read models")
        self.tracking_tables: dict[str, Table] = {}
        for model in self.read_models:
            record_cls = datastore.define_record_class(
                cls_name=f"{model.name.title().replace('_', '')}TrackingRecord",
                table_name=f"{model.name}_tracking",
                schema_name=schema_name,
                base_cls=datastore.base_notification_tracking_record_cls,
            )
            self.tracking_tables[model.name] = record_cls.__table__

    @property
    def engine(self) -> Engine:
        """The engine the read models live on (pass it to their query classes)."""
        engine = self.datastore.engine
        assert isinstance(engine, Engine)
        return engine

    @property
    def names(self) -> list[str]:
        """The names of the read models this view holds."""
        return [m.name for m in self.read_models]

    # -- schema ------------------------------------------------------------------------

    def create_table(self) -> None:
        """Create each read model's tables, indexes and tracking table (where missing).

        Indexes are checked one by one, so a rebuild interrupted before it could index
        (see :meth:`drop_read_model`) gets them back from the next runner that opens it.
        """
        engine = self.engine
        for model in self.read_models:
            for table in (*model.tables, self.tracking_tables[model.name]):
                table.create(engine, checkfirst=True)
            if self.creates_indexes:
                self.create_indexes(model.name)

    def drop_read_model(self, name: str, *, defer_indexes: bool = False) -> None:
        """Drop one read model's tables and its tracking, then create them empty.

        Both happen in one transaction where the database allows DDL in transactions
        (PostgreSQL, SQLite), so a failed drop leaves the old read model in place. With
        ``defer_indexes``, secondary indexes (not unique ones) are left out until
        :meth:`create_indexes`: building an index once over the loaded rows is cheaper
        than keeping it up to date row by row, which is how databases bulk-load.
        """
        model = self._model(name)
        tables = (*model.tables, self.tracking_tables[name])
        with self.engine.begin() as conn:
            for table in reversed(tables):
                table.drop(conn, checkfirst=True)
            for table in tables:
                conn.execute(CreateTable(table))
                for index in table.indexes:
                    if index.unique or not defer_indexes:
                        index.create(conn)

    def create_indexes(self, name: str) -> None:
        """Create the named read model's missing indexes (after a rebuild deferred them)."""
        model = self._model(name)
        with self.engine.begin() as conn:
            for table in (*model.tables, self.tracking_tables[name]):
                for index in table.indexes:
                    index.create(conn, checkfirst=True)

    def _model(self, name: str) -> type[ReadModel]:
        for model in self.read_models:
            if model.name == name:
                return model
        raise ProjectionError(f"read model {name!r} is not in this view ({self.names})")

    # -- positions ---------------------------------------------------------------------

    def position(self, name: str, application_name: str) -> int | None:
        """Notification id of the last event the named read model has applied."""
        table = self.tracking_tables[name]
        with self.transaction(commit=False) as session:
            return self._read_position(session, table, application_name)

    def positions(self, application_name: str) -> dict[str, int | None]:
        """Each read model's position (None where it has applied nothing)."""
        with self.transaction(commit=False) as session:
            return self._read_positions(session, application_name)

    def _read_positions(self, session: Session, application_name: str) -> dict[str, int | None]:
        """Every read model's position in one query (one round trip per batch, not six)."""
        query = union_all(
            *(
                select(literal(name, String).label("name"), table.c.notification_id).where(
                    table.c.application_name == application_name
                )
                for name, table in self.tracking_tables.items()
            )
        )
        found = {name: int(value) for name, value in session.execute(query)}
        return {name: found.get(name) for name in self.names}

    def max_tracking_id(self, application_name: str) -> int | None:
        """The position every read model here has reached (the least of them).

        The runner subscribes after this id; each read model then skips what it already
        has, so read models at different positions are fed by one subscription.
        """
        positions = list(self.positions(application_name).values())
        if any(p is None for p in positions):
            return None
        return min(p for p in positions if p is not None)

    def insert_tracking(self, tracking: Tracking) -> None:
        with self.transaction(commit=True) as session:
            self._insert_tracking(session, tracking)

    def _insert_tracking(self, session: Session, tracking: Tracking) -> None:
        """Record that every read model here has reached ``tracking``, in ``session``."""
        positions = self._read_positions(session, tracking.application_name)
        for name in self.names:
            position = positions[name]
            if position is not None and position >= tracking.notification_id:
                raise IntegrityError(
                    f"read model {name!r} is already at {position}, "
                    f"not before {tracking.notification_id}"
                )
            self._advance_position(session, self.tracking_tables[name], name, position, tracking)

    @staticmethod
    def _read_position(session: Session, table: Table, application_name: str) -> int | None:
        value = session.execute(
            select(table.c.notification_id).where(table.c.application_name == application_name)
        ).scalar()
        return int(value) if value is not None else None

    @staticmethod
    def _advance_position(
        session: Session, table: Table, name: str, expected: int | None, tracking: Tracking
    ) -> None:
        """Move a read model's position from ``expected`` to ``tracking`` (compare and set).

        The one statement takes the write lock (SQLite's database lock, PostgreSQL's row
        lock, or the primary key of a first position), checks that no other runner moved
        the position since the batch was read, and writes the new one; the batch's rows
        follow in the same transaction.
        """
        if expected is None:
            session.execute(
                insert(table).values(
                    application_name=tracking.application_name,
                    notification_id=tracking.notification_id,
                )
            )
            return
        moved: Any = session.execute(
            update(table)
            .where(
                table.c.application_name == tracking.application_name,
                table.c.notification_id == expected,
            )
            .values(notification_id=tracking.notification_id)
        )
        if moved.rowcount != 1:
            raise IntegrityError(
                f"read model {name!r} moved from {expected} while this batch was applied: "
                "is another runner projecting it?"
            )

    # -- applying events ---------------------------------------------------------------

    def record(self, application_name: str, batch: Sequence[LoggedEvent]) -> None:
        """Apply a batch of events to every read model that has not seen them, and move
        each one's position to the batch's last event, in one transaction.

        If an event cannot be applied, the events before it are committed, and the error
        (naming the event, its position and the read model) is raised; nothing from the
        failing event on is stored.
        """
        if not batch:
            return
        try:
            self._record(application_name, batch)
        except Exception:
            if len(batch) == 1:
                raise
            # Find the culprit: replay one event per transaction; the failing one raises
            # with its name and position, and those before it stay committed.
            for logged in batch:
                self._record(application_name, [logged])

    def _record(self, application_name: str, batch: Sequence[LoggedEvent]) -> None:
        """Apply the batch in memory first, then take the write locks and write.

        The positions are read, the rows prefetched and the handlers run before anything
        is written, so the write lock (all of SQLite, a tracking row on PostgreSQL) is held
        only while rows are written: the application's commands and other runners (a
        parallel rebuild's workers) wait for writes, not for the batch's Python work. Each
        position moves by compare-and-set from the one the batch started at; if another
        runner moved it meanwhile, the transaction is rolled back and nothing is written.
        """
        last = Tracking(application_name, batch[-1].position)
        batch_topics = {e.topic for e in batch}
        with self.transaction(commit=True) as session:
            applied: list[_Applied] = []
            positions = self._read_positions(session, application_name)
            for model_class in self.read_models:
                table = self.tracking_tables[model_class.name]
                position = positions[model_class.name]
                todo = batch
                topics = batch_topics
                if position is not None and batch[0].position <= position:
                    todo = [e for e in batch if e.position > position]
                    if not todo:
                        continue
                    topics = {e.topic for e in todo}
                self._check_topics(model_class, todo, topics)
                handled_topics = model_class.handled_topics()
                handled = [e for e in todo if e.topic in handled_topics]
                model = model_class(session)
                if handled:
                    model.prepare(handled)
                    handlers = model.handlers()
                    for logged in handled:
                        try:
                            handlers[logged.topic](logged.event, logged.position)
                        except Exception as exc:
                            raise self._explain(exc, logged, model_class.name) from exc
                applied.append((model_class, table, position, model, handled))
            for model_class, table, position, model, handled in applied:
                self._advance_position(session, table, model_class.name, position, last)
                try:
                    model.finish()
                except Exception as exc:
                    if len(handled) == 1:
                        raise self._explain(exc, handled[0], model_class.name) from exc
                    raise

    @staticmethod
    def _check_topics(
        model_class: type[ReadModel], todo: Sequence[LoggedEvent], topics: set[str]
    ) -> None:
        """Stop at the first event the read model neither handles nor ignores."""
        unknown = topics - model_class.handled_topics() - model_class.ignored_topics()
        if not unknown:
            return
        logged = next(e for e in todo if e.topic in unknown)
        raise UnhandledEventError(
            read_model=model_class.name,
            topic=logged.topic,
            position=logged.position,
            originator_id=logged.originator_id,
            reason="no handler for this event type, and it is not listed as ignored",
        )

    @staticmethod
    def _explain(exc: Exception, logged: LoggedEvent, read_model: str | None) -> Exception:
        if isinstance(exc, UnhandledEventError):
            return exc
        return UnhandledEventError(
            read_model=read_model or "?",
            topic=logged.topic,
            position=logged.position,
            originator_id=logged.originator_id,
            reason=f"{type(exc).__name__}: {exc}",
        )


def view_class_for(
    read_models: Sequence[type[ReadModel]], *, creates_indexes: bool = True
) -> type[ReadModelView]:
    """A :class:`ReadModelView` subclass holding exactly these read models."""
    names = "_".join(m.name for m in read_models)
    attrs = {"read_models": tuple(read_models), "creates_indexes": creates_indexes}
    return type(f"ReadModelView_{names}", (ReadModelView,), attrs)
