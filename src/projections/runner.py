"""Catch-up: follow the CRM's notification log and keep the read models current.

One runner for every backend: eventsourcing's :class:`ProjectionRunner`, subscribed to the
application's recorder (PostgreSQL LISTEN/NOTIFY, the polling SQLite subscription from
:mod:`crm_domain.infrastructure.sqlite_subscription`, or the in-memory recorder). The only
change is the
loop that feeds the projection: it hands over raw notifications and commits a batch when
the subscription has nothing more buffered or the batch is full (see
:mod:`projections.projection`). Use :func:`follow` in-process, or ``crm projections run``.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import FrameType, TracebackType
from typing import Any, cast

from eventsourcing.application import Application
from eventsourcing.persistence import Mapper
from eventsourcing.projection import ApplicationSubscription, Projection, ProjectionRunner
from eventsourcing.utils import EnvType

from crm_domain.infrastructure.compat import has_buffered_notifications, with_events_loop
from crm_domain.infrastructure.storage import StoreURL
from projections.projection import DEFAULT_BATCH_SIZE, ReadModelProjection
from projections.readmodel import LoggedEvent, ReadModel
from projections.registry import select_read_models
from projections.views import LogReader, ReadModelView, view_class_for

#: Environment prefix of the view's settings (the projection's name, upper-cased).
VIEW_ENV_PREFIX = ReadModelProjection.name.upper()


@dataclass(frozen=True)
class ProjectionTarget:
    """Where the events come from and where the read models go (by default: the same DB)."""

    store_url: str
    views_url: str | None = None

    @property
    def views_sqlalchemy_url(self) -> str:
        """The SQLAlchemy URL of the read models' database (the store's unless set apart)."""
        if self.views_url:
            return StoreURL.parse(self.views_url).sqlalchemy_url
        return StoreURL.parse(self.store_url).sqlalchemy_url

    def env(self) -> dict[str, str]:
        """Settings for the application (events) and, prefixed, for the view (read models)."""
        env = dict(StoreURL.parse(self.store_url).eventsourcing_env())
        env[f"{VIEW_ENV_PREFIX}_PERSISTENCE_MODULE"] = "eventsourcing_sqlalchemy"
        env[f"{VIEW_ENV_PREFIX}_SQLALCHEMY_URL"] = self.views_sqlalchemy_url
        return env


def crm_application_class(store_url: str) -> type[Application[Any]]:
    """The CRM application on ``store_url``, constructible as ``cls(env)`` like the runner
    expects (imported late so the projections load without the domain's application)."""
    from crm_domain.infrastructure.eventstore import CRMEventStore

    class FollowedCRM(CRMEventStore):
        def __init__(self, env: EnvType | None = None) -> None:
            super().__init__({**StoreURL.parse(store_url).eventsourcing_env(), **dict(env or {})})

    return cast(type[Application[Any]], FollowedCRM)


def sharing(app: Application[Any]) -> type[Application[Any]]:
    """An application class whose instances read ``app``'s own recorder and mapper.

    Lets a runner follow an application already open in this process, which is the only
    way to follow an in-memory (``memory://``) store.
    """

    class SharedApplication(type(app)):  # type: ignore[misc]
        name = app.name

        def __init__(self, env: EnvType | None = None) -> None:
            Application.__init__(self, env)  # only reads: skip the subclass's set-up

        def construct_mapper(self) -> Any:
            return app.mapper

        def construct_recorder(self) -> Any:
            return app.recorder

    return cast(type[Application[Any]], SharedApplication)


def log_reader(recorder: Any, mapper: Mapper[Any]) -> LogReader:
    """Reads events from the application's log for a view catching a read model up."""

    def fetch(after: int, through: int, limit: int) -> list[LoggedEvent]:
        found = recorder.select_notifications(start=after + 1, limit=limit, stop=through)
        return [LoggedEvent(n, mapper=mapper) for n in found]

    return fetch


def _process_in_batches(
    subscription: ApplicationSubscription[Any], projection: Projection[Any]
) -> None:
    """Collect notifications; commit a batch whenever the subscription runs dry."""
    assert isinstance(projection, ReadModelProjection)
    projection.view.log_reader = log_reader(subscription.recorder, subscription.mapper)
    notifications = subscription.subscription
    for notification in notifications:
        projection.collect(subscription.name, notification, subscription.mapper)
        if projection.batch_is_full or not has_buffered_notifications(notifications):
            projection.flush()
    projection.flush()


@with_events_loop(_process_in_batches)
class ReadModelRunner(ProjectionRunner[Application[Any], ReadModelView]):
    """eventsourcing's ``ProjectionRunner`` with a batching event loop."""

    projection: ReadModelProjection

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        """Stop, close the application (the library's part), and return the view's pooled
        connections: the library closes no tracking recorder, so each runner would otherwise
        leave its pool of open connections (and SQLite file handles) behind. The engine
        stays usable for queries. An in-memory SQLite view keeps its one connection, which
        is its database."""
        try:
            super().__exit__(exc_type, exc_val, exc_tb)
        finally:
            if not self.view.datastore.is_sqlite_in_memory_db:
                self.view.engine.dispose()

    @property
    def positions(self) -> dict[str, int | None]:
        """The last notification id each read model has applied."""
        return self.view.positions(self.app_name)

    def head(self) -> int:
        """The id of the last notification in the application's log (0 if empty)."""
        return int(self.app.recorder.max_notification_id() or 0)

    def wait_until_current(self, timeout: float = 10.0) -> None:
        """Block until every read model has applied the log as it was when called."""
        head = self.head()
        if head:
            self.wait(head, timeout=timeout)


def follow(
    source: str | Application[Any],
    *,
    read_models: Sequence[str | type[ReadModel]] | None = None,
    views_url: str | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    env: EnvType | None = None,
    creates_indexes: bool = True,
    rebuild_token: str | None = None,
) -> ReadModelRunner:
    """Start a runner that keeps read models current; use it as a context manager.

    ``source`` is a store URL, or the event store of a CRM open in this process
    (``crm.app``; needed for ``memory://``). ``views_url`` puts the read models in another
    database (default: the event store's database; for an in-memory store, an in-memory
    SQLite database).
    ``creates_indexes=False`` leaves missing secondary indexes to the caller (a rebuild
    builds them once, after loading the rows). ``rebuild_token`` makes it a rebuild's
    runner: it writes only the read models that rebuild holds, and raises errors instead of
    parking (see :mod:`projections.control`).
    """
    models = select_read_models(read_models)
    if isinstance(source, Application):
        app_class = sharing(source)
        store_url = "memory://"
        target = ProjectionTarget(store_url, views_url or "sqlite:///:memory:")
        full_env = {**target.env(), **dict(source.env)}
        full_env[f"{VIEW_ENV_PREFIX}_PERSISTENCE_MODULE"] = "eventsourcing_sqlalchemy"
        full_env[f"{VIEW_ENV_PREFIX}_SQLALCHEMY_URL"] = target.views_sqlalchemy_url
    else:
        app_class = crm_application_class(source)
        target = ProjectionTarget(source, views_url)
        full_env = target.env()
    full_env.update(env or {})
    projection_class = type(
        "CRMReadModelProjection",
        (ReadModelProjection,),
        {"name": ReadModelProjection.name, "batch_size": batch_size},
    )
    return ReadModelRunner(
        application_class=app_class,
        projection_class=projection_class,
        view_class=view_class_for(
            models, creates_indexes=creates_indexes, rebuild_token=rebuild_token
        ),
        env=full_env,
    )


def run(
    store_url: str,
    *,
    read_models: Sequence[str] | None = None,
    views_url: str | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    on_start: Callable[[ReadModelRunner], None] | None = None,
) -> None:
    """Follow the log until SIGINT or SIGTERM (``crm projections run``); re-raise errors."""
    stop = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {s: signal.signal(s, _stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with follow(
            store_url, read_models=read_models, views_url=views_url, batch_size=batch_size
        ) as runner:
            if on_start is not None:
                on_start(runner)
            while not stop.is_set() and not runner.is_interrupted.is_set():
                stop.wait(0.2)
            runner.stop()
            runner.run_forever(timeout=0)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def open_view(
    store_url: str,
    *,
    read_models: Sequence[str | type[ReadModel]] | None = None,
    views_url: str | None = None,
    creates_indexes: bool = True,
    creates_tables: bool = True,
) -> ReadModelView:
    """The read models' view on its own (no runner): for status, rebuild and queries.

    ``creates_tables=False`` leaves the schema alone (a rebuild's worker process: its
    parent created every table, and concurrent DDL fails on PostgreSQL)."""
    from eventsourcing.persistence import InfrastructureFactory
    from eventsourcing.utils import Environment

    models = select_read_models(read_models)
    settings = ProjectionTarget(store_url, views_url).env()
    if not creates_tables:
        settings[f"{VIEW_ENV_PREFIX}_CREATE_TABLE"] = "n"
    env = Environment(ReadModelProjection.name, settings)
    factory = InfrastructureFactory[ReadModelView].construct(env=env)
    return factory.tracking_recorder(view_class_for(models, creates_indexes=creates_indexes))


def log_head(store_url: str) -> tuple[str, int]:
    """The application's name and the id of the last notification in its log."""
    app = crm_application_class(store_url)()
    try:
        return app.name, int(app.recorder.max_notification_id() or 0)
    finally:
        app.close()
