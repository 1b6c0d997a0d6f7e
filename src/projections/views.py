"""The materialised view: read-model tables and their tracking, committed together.

:class:`ReadModelView` is eventsourcing-sqlalchemy's ``SQLAlchemyTrackingRecorder`` for a
*set* of read models in one database. Each read model keeps its own position in its own
tracking table (``<name>_tracking``, the table the library would create for a projection of
that name), so one can be rebuilt while the others stay current, yet one pass over the
log feeds them all. Every batch is one transaction: the read models' row changes and their
new positions commit together or not at all, which is what makes the projection exactly
once.

A read model that cannot apply an event is *parked* (its position kept; the event, the
error and the time recorded in :mod:`projections.control`) and the others go on. A read
model held by a rebuild is left alone until the rebuild hands it back; a read model whose
position is behind what the runner has been fed (rebuilt, retried, or skipped meanwhile) is
first caught up from the log, so no event is ever left out. A rebuild that was killed (its
process gone from this host) holds nothing any more: a live runner releases its claim
(:func:`~projections.control.release_stale_claims`) and carries on from the position stored.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import Any, ClassVar

from eventsourcing.persistence import IntegrityError, Tracking
from eventsourcing_sqlalchemy.datastore import SQLAlchemyDatastore
from eventsourcing_sqlalchemy.recorders import SQLAlchemyTrackingRecorder
from sqlalchemy import (
    Connection,
    Engine,
    String,
    Table,
    insert,
    literal,
    select,
    union_all,
    update,
)
from sqlalchemy.orm import Session
from sqlalchemy.schema import CreateTable

from crm_domain.errors import (
    CRMError,
    NotFoundError,
    ProjectionError,
    StoreFullError,
    UnhandledEventError,
)
from crm_domain.infrastructure.schema_lock import schema_change
from projections import control
from projections.control import ControlState, lock_states, read_states
from projections.readmodel import LoggedEvent, ReadModel

#: A read model whose batch was applied in memory: its class, tracking table, the position
#: it started from, the instance holding its changed rows, and the events it handled.
_Applied = tuple[type[ReadModel], Table, int | None, ReadModel, list[LoggedEvent]]

#: Reads the log: ``fetch(after, through, limit)`` gives the notifications with ids above
#: ``after`` and up to ``through`` (at most ``limit``), as :class:`LoggedEvent` objects.
LogReader = Callable[[int, int, int], list[LoggedEvent]]

#: Events per transaction when a read model is caught up from the log by a live runner.
CATCH_UP_BATCH = 1000


class _ControlChangedError(Exception):
    """A read model was parked, unparked or claimed by a rebuild while a batch was applied."""


class _StaleClaimError(Exception):
    """Read models are held by a rebuild that was killed: release them, then apply."""


class ReadModelView(SQLAlchemyTrackingRecorder):
    """A set of read models (the class attribute ``read_models``) in one SQL database."""

    read_models: ClassVar[tuple[type[ReadModel], ...]] = ()
    #: Whether opening the view creates missing secondary indexes (not while rebuilding:
    #: :func:`~projections.rebuild.rebuild` builds them once, at the end).
    creates_indexes: ClassVar[bool] = True
    #: Whether a read model that fails on an event is parked (a live runner) rather than
    #: the error raised (a rebuild, which reports it to whoever asked for the rebuild).
    parks: ClassVar[bool] = True
    #: The rebuild this view writes for (its claim on the read models), None for a runner.
    rebuild_token: ClassVar[str | None] = None

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
        #: The last position the runner fed this view (its subscription started after the
        #: ``max_tracking_id`` it asked for); None until known.
        self._fed_through: int | None = None
        self._subscribed = False
        #: How to read events from the log (set by the runner): catches up read models
        #: found behind what the runner has been fed. Without it they are left alone.
        self.log_reader: LogReader | None = None
        self._states_seen: dict[str, ControlState] = {}

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
        with schema_change(engine) as conn:
            for model in self.read_models:
                for table in (*model.tables, self.tracking_tables[model.name]):
                    table.create(conn, checkfirst=True)
                if self.creates_indexes:
                    self._create_indexes(conn, model.name)
            control.create_control_tables(conn)
        control.ensure_rows(engine, self.names)

    def drop_read_model(self, name: str, *, defer_indexes: bool = False) -> None:
        """Drop one read model's tables and its tracking, then create them empty.

        Both happen in one transaction (see :meth:`replace_tables`), so a failed drop
        leaves the old read model in place. With ``defer_indexes``, secondary indexes (not
        unique ones) are left out until :meth:`create_indexes`: building an index once
        over the loaded rows is cheaper than keeping it up to date row by row, which is
        how databases bulk-load.
        """
        with self.engine.begin() as conn:
            self.replace_tables(conn, name, defer_indexes=defer_indexes)

    def replace_tables(self, conn: Connection, name: str, *, defer_indexes: bool = False) -> None:
        """Drop one read model's tables and tracking and create them empty, in ``conn``'s
        transaction: nothing of it is seen by others, or kept, unless that commits.

        On SQLite, Python's ``sqlite3`` begins a transaction only before an ``INSERT``,
        ``UPDATE``, ``DELETE`` or ``REPLACE``, so a ``DROP`` run first would commit on its
        own: an explicit ``BEGIN IMMEDIATE`` is sent first (:func:`begin_for_ddl`). On PostgreSQL
        the dropped tables stay locked (``ACCESS EXCLUSIVE``) until the transaction ends;
        readers keep off them by the read model's control row (a rebuild holds it).
        """
        begin_for_ddl(conn)
        model = self._model(name)
        tables = (*model.tables, self.tracking_tables[name])
        for table in reversed(tables):
            table.drop(conn, checkfirst=True)
        for table in tables:
            conn.execute(CreateTable(table))
            for index in table.indexes:
                if index.unique or not defer_indexes:
                    index.create(conn)

    def create_indexes(self, name: str) -> None:
        """Create the named read model's missing indexes (after a rebuild deferred them)."""
        with schema_change(self.engine) as conn:
            self._create_indexes(conn, name)

    def _create_indexes(self, conn: Connection, name: str) -> None:
        model = self._model(name)
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
        """Each read model's position (None where it has applied nothing).

        Never waits for a rebuild: the tracking table of a read model another rebuild
        holds is read only if it is not locked (PostgreSQL: ``LOCK TABLE ... NOWAIT``; a
        fast rebuild holds its replaced tables locked until it commits), else its
        position reads as None (its control row says a rebuild holds it). SQLite's
        readers never wait for its writer.
        """
        held: set[str] = set()
        if self.engine.dialect.name == "postgresql":
            held = {
                name
                for name, state in self.control_states().items()
                if state.rebuilding and state.rebuild_token != self.rebuild_token
            }
        with self.transaction(commit=False) as session:
            found = self._read_positions(
                session, application_name, [n for n in self.names if n not in held]
            )
        for name in held:
            found[name] = self._position_unless_locked(name, application_name)
        return {name: found[name] for name in self.names}

    def _position_unless_locked(self, name: str, application_name: str) -> int | None:
        """The read model's position, or None if its tracking table is locked (PostgreSQL)."""
        import sqlalchemy.exc

        table = self.tracking_tables[name]
        with self.engine.connect() as conn, conn.begin():
            quoted = conn.dialect.identifier_preparer.format_table(table)
            try:
                conn.exec_driver_sql(f"LOCK TABLE {quoted} IN ACCESS SHARE MODE NOWAIT")
            except sqlalchemy.exc.OperationalError as exc:
                if getattr(exc.orig, "sqlstate", None) == "55P03":  # lock_not_available
                    return None
                raise
            value = conn.execute(
                select(table.c.notification_id).where(table.c.application_name == application_name)
            ).scalar()
        return int(value) if value is not None else None

    def _read_positions(
        self, session: Session, application_name: str, names: Collection[str] | None = None
    ) -> dict[str, int | None]:
        """Every read model's (or the named ones') position in one query (one round trip
        per batch, not six)."""
        wanted = self.names if names is None else [n for n in self.names if n in names]
        if not wanted:
            return {}
        query = union_all(
            *(
                select(literal(name, String).label("name"), table.c.notification_id).where(
                    table.c.application_name == application_name
                )
                for name, table in self.tracking_tables.items()
                if name in wanted
            )
        )
        found = {name: int(value) for name, value in session.execute(query)}
        return {name: found.get(name) for name in wanted}

    def control_states(self) -> dict[str, ControlState]:
        """Each read model's generation, rebuild claim and parked event."""
        with self.transaction(commit=False) as session:
            return read_states(session, self.names)

    def rebuilding(self) -> dict[str, ControlState]:
        """The read models held by a rebuild that is running (or may be: its holder is on
        another host, or unknown), other than this view's own: readers keep off their
        tables (a fast rebuild on PostgreSQL holds them locked until it commits)."""
        return {
            name: state
            for name, state in self.control_states().items()
            if state.rebuilding
            and state.rebuild_token != self.rebuild_token
            and not state.interrupted
        }

    def release_stale_claims(self) -> list[str]:
        """Release the read models held by a killed rebuild (see
        :func:`~projections.control.release_stale_claims`); returns their names. Only a
        live view does this (a rebuild's view keeps to its own claim)."""
        if self.rebuild_token is not None:
            return []
        if not any(s.interrupted for s in self.control_states().values()):
            return []  # the usual case: read without taking the control locks
        with self.transaction(commit=True) as session:
            return control.release_stale_claims(session, self.names)

    def max_tracking_id(self, application_name: str) -> int | None:
        """The position every read model here that it may write has reached (the least).

        The runner subscribes after this id; each read model then skips what it already
        has, so read models at different positions are fed by one subscription. Parked
        read models and those a rebuild holds do not hold the others back: they are
        caught up from the log when they are writable again.
        """
        if not self._subscribed:  # a runner starting: take back what a killed rebuild held
            self.release_stale_claims()
        positions = self.positions(application_name)
        states = self.control_states()
        writable = [positions[n] for n in self.names if states[n].writable_by(self.rebuild_token)]
        values = writable or list(positions.values())
        result = None if any(p is None for p in values) else min(p for p in values if p)
        if not self._subscribed:  # the runner's one call, before it subscribes
            self._subscribed = True
            self._fed_through = result or 0
        return result

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

        If an event cannot be applied by a read model, the events before it are
        committed; a live view parks that read model at the event (see
        :mod:`projections.control`) and the others go on, a rebuild's view raises the
        error (naming the event, its position and the read model). Nothing from the
        failing event on is stored for that read model. A full database raises
        :class:`~crm_domain.errors.StoreFullError`.
        """
        if not batch:
            return
        since = self._fed_through
        self._apply(application_name, batch, since, None)
        self._fed_through = batch[-1].position

    def _apply(
        self,
        application_name: str,
        batch: Sequence[LoggedEvent],
        since: int | None,
        only: Collection[str] | None,
    ) -> None:
        """:meth:`_record`, then catch up read models found behind, park those that fail."""
        while True:
            try:
                behind = self._record(application_name, batch, since, only)
            except _ControlChangedError:
                continue  # read the new state; the claimed or parked read model is left out
            except _StaleClaimError:
                self.release_stale_claims()
                continue  # the released read models are caught up from their positions
            except Exception as exc:
                full = _full_database_error(exc)
                if full is not None:
                    raise full from exc
                if len(batch) > 1:
                    # Find the culprit: replay one event per transaction; the ones before
                    # it stay committed.
                    previous = since
                    for logged in batch:
                        self._apply(application_name, [logged], previous, only)
                        previous = logged.position
                    return
                if self._control_moved():
                    continue  # e.g. a table dropped by a rebuild that now holds it
                if (
                    self.parks
                    and isinstance(exc, UnhandledEventError)
                    and exc.read_model in self.names
                ):
                    self._park(exc)
                    continue  # the same event, for the read models still going
                raise
            if not behind or since is None or self.log_reader is None:
                return
            caught_up = [
                n for n, p in behind.items() if self._catch_up(application_name, n, p, since)
            ]
            if not caught_up:
                return
            only = caught_up

    def _catch_up(self, application_name: str, name: str, after: int, through: int) -> bool:
        """Apply the log's events after ``after`` up to ``through`` to one read model (one
        transaction per chunk); False if it was parked or claimed on the way."""
        assert self.log_reader is not None
        while after < through:
            chunk = self.log_reader(after, through, CATCH_UP_BATCH)
            if not chunk:
                break
            self._apply(application_name, chunk, after, [name])
            try:
                reached = self.position(name, application_name) or 0
            except Exception:
                # A rebuild may have claimed it (and dropped its tables) since the chunk
                # was applied: it is the rebuild's now, and this runner leaves it alone.
                if not self.control_states()[name].writable_by(self.rebuild_token):
                    return False
                raise
            if reached < chunk[-1].position:
                return False
            after = reached
        return True

    def _control_moved(self) -> bool:
        """Whether a read model was claimed, parked or unparked since the last batch began."""
        return bool(self._states_seen) and self.control_states() != self._states_seen

    def _park(self, error: UnhandledEventError) -> None:
        """Park ``error.read_model`` at ``error``'s event, unless something else holds it."""
        with self.transaction(commit=True) as session:
            state = lock_states(session, [error.read_model])[error.read_model]
            if state.writable_by(self.rebuild_token):
                control.park(session, error)

    def _record(
        self,
        application_name: str,
        batch: Sequence[LoggedEvent],
        since: int | None = None,
        only: Collection[str] | None = None,
    ) -> dict[str, int]:
        """Apply the batch in memory first, then take the write locks and write.

        The positions are read, the rows prefetched and the handlers run before anything
        is written, so the write lock (all of SQLite, a tracking row on PostgreSQL) is held
        only while rows are written: the application's commands and other runners (a
        parallel rebuild's workers) wait for writes, not for the batch's Python work. Each
        position moves by compare-and-set from the one the batch started at; if another
        runner moved it meanwhile, the transaction is rolled back and nothing is written.

        The read models' control rows are locked first when writing (:func:`lock_states`)
        and must be as they were when the batch began: a rebuild's claim, a park or an
        unpark in between rolls the batch back (``_ControlChangedError``) to be applied again.
        Read models parked, held by a rebuild (other than this view's), or behind
        ``since`` (the last position fed before this batch) are left out; the latter are
        returned with their positions, to be caught up from the log. A read model held by a
        killed rebuild stops a live view's batch before anything is written
        (``_StaleClaimError``): it is released, then the batch applied again.
        """
        last = Tracking(application_name, batch[-1].position)
        batch_topics = {e.topic for e in batch}
        behind: dict[str, int] = {}
        with self.transaction(commit=True) as session:
            applied: list[_Applied] = []
            states = self._states_seen = read_states(session, self.names)
            writable = []
            for name in self.names:
                if only is not None and name not in only:
                    continue
                if not states[name].writable_by(self.rebuild_token):
                    if self.rebuild_token is None and states[name].interrupted:
                        raise _StaleClaimError  # nothing written yet: rolled back
                    if self.rebuild_token is not None:
                        raise ProjectionError(
                            f"read model {name!r} was taken over by another rebuild "
                            f"(generation {states[name].generation}); this rebuild stops"
                        )
                    continue  # parked, or a rebuild holds it (and its tables): left alone
                writable.append(name)
            positions = self._read_positions(session, application_name, writable)
            for model_class in self.read_models:
                name = model_class.name
                if name not in positions:
                    continue
                table = self.tracking_tables[name]
                position = positions[name]
                if since is not None and (position or 0) < since:
                    behind[name] = position or 0
                    continue
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
                    try:
                        model.prepare(handled)
                    except Exception as exc:
                        if len(handled) == 1:
                            raise self._explain(exc, handled[0], name) from exc
                        raise
                    handlers = model.handlers()
                    for logged in handled:
                        try:
                            handlers[logged.topic](logged.event, logged.position)
                        except Exception as exc:
                            raise self._explain(exc, logged, model_class.name) from exc
                applied.append((model_class, table, position, model, handled))
            if not applied:
                return behind
            locked = lock_states(session, [m.name for m, *_ in applied])
            if any(locked[name] != states[name] for name in locked):
                raise _ControlChangedError
            for model_class, table, position, model, handled in applied:
                self._advance_position(session, table, model_class.name, position, last)
                try:
                    model.finish()
                except Exception as exc:
                    if len(handled) == 1 and _full_database_error(exc) is None:
                        raise self._explain(exc, handled[0], model_class.name) from exc
                    raise
        return behind

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
        """The error naming the read model and the event, unless it is not the event's
        fault (the database unreachable or full): that one is raised as it is."""
        if isinstance(exc, UnhandledEventError) or _is_database_outage(exc):
            return exc
        reason = str(exc) if isinstance(exc, CRMError) else f"{type(exc).__name__}: {exc}"
        if isinstance(exc, NotFoundError):  # a row the history says exists is not there
            reason += (
                f" in the read model's rows (deleted or edited by hand?); "
                f"`crm projections verify {read_model} --repair` restores them, "
                f"then `crm projections retry {read_model}`"
            )
        return UnhandledEventError(
            read_model=read_model or "?",
            topic=logged.topic,
            position=logged.position,
            originator_id=logged.originator_id,
            reason=reason,
        )


def begin_for_ddl(conn: Connection) -> None:
    """Make the DDL that follows part of ``conn``'s transaction on SQLite.

    Python's ``sqlite3`` (its legacy transaction control, which SQLAlchemy's pysqlite
    dialect keeps) sends ``BEGIN`` only before ``INSERT``, ``UPDATE``, ``DELETE`` or
    ``REPLACE``: a ``DROP TABLE`` or ``CREATE TABLE`` run with no transaction open would
    commit by itself. So a transaction is opened explicitly (``sqlite3`` then sees it
    open, and commits or rolls it back with the connection), and ``IMMEDIATE``: it takes
    the write lock at once, waiting for other writers as any write does. A deferred one
    would first read (the drops' existence checks) and then fail at once to write, with
    "database is locked", had another connection committed in between (WAL mode cannot
    upgrade a stale read snapshot). Other databases: nothing to do.
    """
    if conn.dialect.name != "sqlite":
        return
    dbapi: Any = conn.connection.dbapi_connection
    if not dbapi.in_transaction:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def _is_database_outage(exc: BaseException) -> bool:
    """Whether ``exc`` is the database failing (connection lost, locked, full), which no
    read model can be blamed for, rather than a statement it refused."""
    import sqlalchemy.exc
    from eventsourcing import persistence

    outage = (
        sqlalchemy.exc.OperationalError,
        sqlalchemy.exc.InterfaceError,
        persistence.OperationalError,
        persistence.InterfaceError,
    )
    if not isinstance(exc, outage):
        return False
    text = str(exc)
    # a table dropped by hand is the read model's problem (parked), not an outage
    return "no such table" not in text and "does not exist" not in text


def _full_database_error(exc: BaseException) -> StoreFullError | None:
    """A :class:`StoreFullError` if ``exc`` (or what caused it) says the database is full.

    SQLite says "database or disk is full" (also at its ``max_page_count``); PostgreSQL
    "No space left on device" / "could not extend file" (SQLSTATE 53100, ``disk_full``).
    """
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, StoreFullError):
            return current
        text = str(current)
        sqlstate = getattr(current, "sqlstate", None) or getattr(current, "pgcode", None)
        if (
            sqlstate == "53100"
            or "database or disk is full" in text
            or "No space left on device" in text
            or "could not extend file" in text
        ):
            detail = text.strip().splitlines()[0] if text.strip() else type(current).__name__
            return StoreFullError("read-model database", detail)
        todo.extend([current.__cause__, current.__context__, getattr(current, "orig", None)])
        todo.extend(a for a in current.args if isinstance(a, BaseException))
    return None


def view_class_for(
    read_models: Sequence[type[ReadModel]],
    *,
    creates_indexes: bool = True,
    rebuild_token: str | None = None,
) -> type[ReadModelView]:
    """A :class:`ReadModelView` subclass holding exactly these read models (for the
    rebuild holding ``rebuild_token``, if given: it writes only while it holds them, and
    raises what a runner would park)."""
    names = "_".join(m.name for m in read_models)
    attrs = {
        "read_models": tuple(read_models),
        "creates_indexes": creates_indexes,
        "rebuild_token": rebuild_token,
        "parks": rebuild_token is None,
    }
    return type(f"ReadModelView_{names}", (ReadModelView,), attrs)
