"""The read models as they stood at a past time, rebuilt into a database of their own.

``crm audit replay --until T --into URL`` ("the pipeline at quarter end"): the read
models' tables are created in the database at ``URL`` and fed the notification log from
its start up to T, in batches, by the same read-model code as a live runner or a
rebuild (:meth:`ReadModelView.record`); the live read models and the event store are only
read. Afterwards ``crm report ... --store URL`` prints them: the target holds an empty
event store (so it opens like any store) and a ``crm_replay`` row saying what it is, which
tells the reports not to catch it up.

"Up to T" is a prefix of the log, in notification (commit) order: every event up to the
first one recorded after T. Read models only make sense on a prefix; an event recorded
at or before T but committed after a later-recorded one (two writers racing at T) counts
from the next replay whose T covers both.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine, create_engine, inspect, text

from crm_domain.errors import ConfigurationError, InvalidCommandError
from crm_domain.infrastructure.storage import StoreURL
from projections.control import claim_for_rebuild, release_from_rebuild
from projections.readmodel import LoggedEvent, ReadModel
from projections.registry import select_read_models
from projections.runner import ProjectionTarget, crm_application_class, open_view
from projections.views import ReadModelView, view_class_for

#: The table in the target database that says it holds a replay, and of what.
MARKER_TABLE = "crm_replay"
#: The event tables of an SQLite and a PostgreSQL store.
EVENT_TABLES = frozenset({"stored_events", "crm_events"})
#: Notifications read per batch (one transaction of the target per batch).
REPLAY_BATCH_SIZE = 5000


@dataclass(frozen=True)
class ReplayResult:
    """What a replay built: from which store, up to which time and log position."""

    source: str
    until: datetime
    #: The last notification id applied (0: nothing was recorded by then).
    position: int
    #: Notifications applied.
    events: int
    replayed_at: datetime
    read_models: tuple[str, ...] = ()

    @property
    def complete(self) -> bool:
        """False while the replay runs, or if it was interrupted (replay again)."""
        return self.events >= 0


def _same_database(a: StoreURL, b: StoreURL) -> bool:
    if a.backend != b.backend:
        return False
    if a.backend == "sqlite":
        return Path(a.sqlite_path).resolve() == Path(b.sqlite_path).resolve()
    return (a.pg_host, a.pg_port, a.pg_dbname) == (b.pg_host, b.pg_port, b.pg_dbname)


def _check_target(store: StoreURL, into: StoreURL) -> None:
    if into.in_memory:
        raise ConfigurationError(
            f"replay into {into.url}: the target must outlive this command (an SQLite file "
            "or a PostgreSQL database)"
        )
    if _same_database(store, into):
        raise ConfigurationError(
            f"replay into {into.display}: that is the event store's own database; name "
            "another, so the live read models stay untouched"
        )
    engine = create_engine(into.sqlalchemy_url)
    try:
        tables = set(inspect(engine).get_table_names())
        holds_events = None
        for events_table in EVENT_TABLES & tables:
            with engine.connect() as conn:
                found = conn.execute(text(f"SELECT 1 FROM {events_table} LIMIT 1")).first()
                holds_events = holds_events or found
        if holds_events is not None or (tables and MARKER_TABLE not in tables):
            raise ConfigurationError(
                f"replay into {into.display}: it holds an event store (or its read models); "
                "name an empty database or an earlier replay's"
            )
    finally:
        engine.dispose()


def replay(
    store_url: str,
    into: str,
    *,
    until: datetime,
    read_models: Sequence[str | type[ReadModel]] | None = None,
    batch_size: int = REPLAY_BATCH_SIZE,
    on_progress: Callable[[int], None] | None = None,
) -> ReplayResult:
    """Build the read models (all by default) as they stood at ``until`` (record time,
    timezone-aware) into the database ``into`` (not the store's); an earlier replay there
    is replaced. Returns what was built; see the module docstring."""
    if until.tzinfo is None:
        raise InvalidCommandError("'until' must be timezone-aware")
    store, target = StoreURL.parse(store_url), StoreURL.parse(into)
    store.check(must_exist=True)
    target.check()
    _check_target(store, target)
    models = select_read_models(read_models)
    names = [m.name for m in models]
    _create_empty_store(into)
    setup = open_view(store_url, read_models=models, views_url=into, creates_indexes=False)
    token = claim_for_rebuild(setup.engine, names)
    _mark(setup.engine, ReplayResult(store.display, until, 0, -1, datetime.now(UTC)))
    source = crm_application_class(store_url)()
    position = events = 0
    try:
        for name in names:
            setup.drop_read_model(name, defer_indexes=True)
        view = _view(store_url, into, models, token)
        recorder, mapper = source.recorder, source.mapper
        done = False
        while not done:
            found = recorder.select_notifications(start=position + 1, limit=batch_size)
            if not found:
                break
            batch = []
            for notification in found:
                logged = LoggedEvent(notification, mapper=mapper)
                if logged.event.timestamp > until:  # decoded through the mapper's seam
                    done = True
                    break
                batch.append(logged)
            if batch:
                view.record(source.name, batch)
                position = batch[-1].position
                events += len(batch)
                if on_progress is not None:
                    on_progress(events)
            if len(found) < batch_size:
                break
        for name in names:
            setup.create_indexes(name)
        view.engine.dispose()
        result = ReplayResult(
            source=store.display,
            until=until,
            position=position,
            events=events,
            replayed_at=datetime.now(UTC),
            read_models=tuple(names),
        )
        _mark(setup.engine, result)
    finally:
        source.close()
        try:
            release_from_rebuild(setup.engine, names, token)
        finally:
            setup.engine.dispose()
    return result


def _view(
    store_url: str, into: str, models: Sequence[type[ReadModel]], token: str
) -> ReadModelView:
    """A view on ``into`` that writes for the replay's claim (raising, never parking)."""
    from eventsourcing.persistence import InfrastructureFactory
    from eventsourcing.utils import Environment

    from projections.projection import ReadModelProjection

    env = Environment(ReadModelProjection.name, ProjectionTarget(store_url, into).env())
    factory = InfrastructureFactory[ReadModelView].construct(env=env)
    view_class = view_class_for(models, creates_indexes=False, rebuild_token=token)
    return factory.tracking_recorder(view_class)


def _create_empty_store(url: str) -> None:
    """An empty event store at ``url``, so it opens as a store (``--store URL``)."""
    from crm_domain.infrastructure.eventstore import CRMEventStore

    CRMEventStore(StoreURL.parse(url).eventsourcing_env()).close()


def _mark(engine: Engine, result: ReplayResult) -> None:
    """Say what the target holds (``events`` -1: a replay under way, or interrupted)."""
    with engine.begin() as conn:
        conn.execute(text(f"DROP TABLE IF EXISTS {MARKER_TABLE}"))
        conn.execute(
            text(
                f"CREATE TABLE {MARKER_TABLE} (source TEXT NOT NULL, until TEXT NOT NULL, "
                "position BIGINT NOT NULL, events BIGINT NOT NULL, replayed_at TEXT NOT NULL, "
                "read_models TEXT NOT NULL)"
            )
        )
        conn.execute(
            text(
                f"INSERT INTO {MARKER_TABLE} VALUES (:source, :until, :position, :events, "
                ":replayed_at, :read_models)"
            ),
            {
                "source": result.source,
                "until": result.until.isoformat(),
                "position": result.position,
                "events": result.events,
                "replayed_at": result.replayed_at.isoformat(),
                "read_models": ",".join(result.read_models),
            },
        )


def replay_info(url: str) -> ReplayResult | None:
    """What the database at ``url`` holds if it is a replay's target, else None."""
    parsed = StoreURL.parse(url)
    if parsed.in_memory or (parsed.backend == "sqlite" and not Path(parsed.sqlite_path).is_file()):
        return None
    engine = create_engine(parsed.sqlalchemy_url)
    try:
        if not inspect(engine).has_table(MARKER_TABLE):
            return None
        with engine.connect() as conn:
            row = conn.execute(text(f"SELECT * FROM {MARKER_TABLE}")).first()
    finally:
        engine.dispose()
    if row is None:
        return None
    return ReplayResult(
        source=row[0],
        until=datetime.fromisoformat(row[1]),
        position=int(row[2]),
        events=int(row[3]),
        replayed_at=datetime.fromisoformat(row[4]),
        read_models=tuple(x for x in str(row[5]).split(",") if x),
    )
