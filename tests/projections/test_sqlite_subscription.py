"""The polling SQLite subscription lets the stock eventsourcing runner follow SQLite.

Uses a throwaway aggregate and the library's own ``ProjectionRunner`` and
``SQLAlchemyTrackingRecorder``, so it tests the gap closed in
``crm_domain.infrastructure.sqlite_subscription`` and nothing of ours on top of it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import Tracking
from eventsourcing.projection import ApplicationSubscription, Projection, ProjectionRunner
from eventsourcing.utils import get_topic
from eventsourcing_sqlalchemy.recorders import SQLAlchemyTrackingRecorder
from sqlalchemy import Column, Integer, MetaData, String, Table, select, update

from crm_domain.infrastructure.sqlite_subscription import PollingSQLiteSubscription
from crm_domain.infrastructure.storage import StoreURL


class Counter(Aggregate):
    @event("Created")
    def __init__(self, name: str) -> None:
        self.name = name

    @event("Bumped")
    def bump(self) -> None:
        pass

    @event("Noted")
    def note(self) -> None:
        pass


class Counters(Application[Any]):
    name = "Counters"


_meta = MetaData()
bumps = Table(
    "bumps",
    _meta,
    Column("name", String(50), primary_key=True),
    Column("n", Integer, nullable=False),
)


class BumpView(SQLAlchemyTrackingRecorder):
    def create_table(self) -> None:
        super().create_table()
        bumps.create(self.datastore.engine, checkfirst=True)

    def bumped(self, name: str, tracking: Tracking) -> None:
        with self.transaction(commit=True) as session:
            done = session.execute(
                update(bumps).where(bumps.c.name == name).values(n=bumps.c.n + 1)
            ).rowcount
            if not done:
                session.execute(bumps.insert().values(name=name, n=1))
            self._insert_tracking(session, tracking)

    def counts(self) -> dict[str, int]:
        with self.transaction(commit=False) as session:
            return {r.name: r.n for r in session.execute(select(bumps))}


class BumpProjection(Projection[BumpView]):
    name = "bumps"
    topics = (get_topic(Counter.Created), get_topic(Counter.Bumped))

    def __init__(self, view: BumpView) -> None:
        super().__init__(view)
        self.names: dict[Any, str] = {}

    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        if isinstance(domain_event, Counter.Created):
            self.names[domain_event.originator_id] = domain_event.name
            self.view.insert_tracking(tracking)
        else:
            self.view.bumped(self.names.get(domain_event.originator_id, "?"), tracking)


def _env(path: Path) -> dict[str, str]:
    env = StoreURL.parse(f"sqlite:///{path}").eventsourcing_env()
    env["BUMPS_PERSISTENCE_MODULE"] = "eventsourcing_sqlalchemy"
    env["BUMPS_SQLALCHEMY_URL"] = f"sqlite:///{path}"
    return env


def test_subscription_yields_old_and_new_events_in_order(tmp_path: Path) -> None:
    app = Counters(env=_env(tmp_path / "c.sqlite"))
    counter = Counter("a")
    app.save(counter)
    with ApplicationSubscription(app, gt=None) as subscription:
        assert isinstance(subscription.subscription, PollingSQLiteSubscription)
        first, tracking = next(subscription)
        assert (first.originator_id, tracking.notification_id) == (counter.id, 1)
        started = time.monotonic()
        counter.bump()
        app.save(counter)  # recorded after the subscription started: found by polling
        second, tracking = next(subscription)
        assert isinstance(second, Counter.Bumped)
        assert tracking.notification_id == 2
        assert time.monotonic() - started < 2.0
    app.close()


def test_stock_projection_runner_follows_sqlite_exactly_once(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    app = Counters(env=_env(path))
    a, b = Counter("a"), Counter("b")
    for _ in range(3):
        a.bump()
        a.note()  # filtered out by topic in the database query
    b.bump()
    app.save(a, b)
    with ProjectionRunner(
        application_class=Counters,
        projection_class=BumpProjection,
        view_class=BumpView,
        env=_env(path),
    ) as runner:
        runner.wait(app.recorder.max_notification_id(), timeout=5)
        assert runner.view.counts() == {"a": 3, "b": 1}
    # restart: the runner resumes after its tracked position; nothing is counted twice
    a.bump()
    app.save(a)
    with ProjectionRunner(
        application_class=Counters,
        projection_class=BumpProjection,
        view_class=BumpView,
        env=_env(path),
    ) as runner:
        runner.wait(app.recorder.max_notification_id(), timeout=5)
        assert runner.view.counts() == {"a": 3, "b": 1, "?": 1}  # names live in memory
    app.close()


def test_stopping_the_subscription_ends_iteration_promptly(tmp_path: Path) -> None:
    app = Counters(env=_env(tmp_path / "c.sqlite"))
    subscription = app.recorder.subscribe(gt=None)
    assert isinstance(subscription, PollingSQLiteSubscription)
    with subscription:
        subscription.stop()
        started = time.monotonic()
        assert list(subscription) == []
    assert time.monotonic() - started < 1.0
    assert not subscription._poll_thread.is_alive()
    app.close()
