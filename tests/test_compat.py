"""The library internals crm-core relies on (``crm_domain.infrastructure.compat``) are still there.

Fails when an installed library leaves the release line the wrappers were checked against
(re-read the library, then update ``CHECKED_AGAINST``), and exercises every wrapper against
the real library, so a changed internal fails here rather than in production.
"""

from __future__ import annotations

import threading
import tomllib
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import ListenNotifySubscription, Notification
from eventsourcing.popo import POPOTrackingRecorder
from eventsourcing.projection import ApplicationSubscription, Projection, ProjectionRunner
from eventsourcing.sqlite import SQLiteApplicationRecorder
from kafka import KafkaProducer
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from sqlalchemy import Column, Integer, MetaData, Table, insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.compiler import SQLCompiler

from crm_domain.infrastructure.compat import (
    CHECKED_AGAINST,
    bind_names_in_order,
    force_close_sender,
    has_buffered_notifications,
    wake_subscription,
    with_events_loop,
)

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


@pytest.mark.parametrize("package", sorted(CHECKED_AGAINST))
def test_installed_versions_are_on_the_checked_release_lines(package: str) -> None:
    checked = CHECKED_AGAINST[package]
    installed = version(package)
    assert installed in SpecifierSet(f"~={checked}"), (
        f"{package} {installed} is installed; crm_domain.infrastructure.compat was checked against "
        f"{checked}: re-check its wrappers and update CHECKED_AGAINST"
    )


def test_declared_ranges_take_the_checked_versions_and_bound_eventsourcing() -> None:
    dependencies = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    declared = {(req := Requirement(d)).name.lower(): req.specifier for d in dependencies}
    for package, checked in CHECKED_AGAINST.items():
        assert checked in declared[package.lower()], package
    # eventsourcing-sqlalchemy follows eventsourcing's internals: it needs an upper bound
    upper = declared["eventsourcing-sqlalchemy"]
    assert any(spec.operator == "<" for spec in upper), upper
    assert not upper.contains("1.1.0")
    assert not declared["eventsourcing"].contains("9.6.0")


# ----- eventsourcing ------------------------------------------------------------------
class Dot(Aggregate):
    @event("Created")
    def __init__(self) -> None:
        pass


def _sqlite_recorder(tmp_path: Path) -> tuple[Application[Any], SQLiteApplicationRecorder]:
    app = Application[Any](
        env={"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(tmp_path / "db")}
    )
    recorder = app.recorder
    assert isinstance(recorder, SQLiteApplicationRecorder)
    return app, recorder


class _Reader(threading.Thread):
    """Reads one notification from a subscription, in the background."""

    def __init__(self, subscription: ListenNotifySubscription[Any]) -> None:
        super().__init__(daemon=True)
        self.subscription = subscription
        self.got: list[Notification] = []
        self.start()

    def run(self) -> None:
        self.got.append(next(self.subscription))

    def within(self, seconds: float) -> Notification | None:
        self.join(seconds)
        return self.got[0] if self.got else None


def test_buffered_notifications_are_seen_and_a_drained_subscription_is_empty(
    tmp_path: Path,
) -> None:
    app, recorder = _sqlite_recorder(tmp_path)
    app.save(*(Dot() for _ in range(3)))
    with ListenNotifySubscription(recorder=recorder, gt=0) as subscription:
        assert _Reader(subscription).within(5) is not None
        assert has_buffered_notifications(subscription)  # the other two came in the same page
        next(subscription)
        next(subscription)
        assert not has_buffered_notifications(subscription)
    assert not has_buffered_notifications(object())  # not a ListenNotifySubscription


def test_waking_a_subscription_makes_it_pull_new_notifications(tmp_path: Path) -> None:
    app, recorder = _sqlite_recorder(tmp_path)
    with ListenNotifySubscription(recorder=recorder, gt=0) as subscription:
        app.save(Dot())  # SQLite notifies no one: the subscription does not know
        reader = _Reader(subscription)
        assert reader.within(0.3) is None
        wake_subscription(subscription)
        assert reader.within(5) is not None


class _Nothing(Projection[POPOTrackingRecorder]):
    def process_event(self, domain_event: Any, tracking: Any) -> None:
        pass


def _fail(subscription: ApplicationSubscription[Any], projection: Projection[Any]) -> None:
    raise LookupError(f"{projection.name} failed on {subscription.name}")


def _return_at_once(
    subscription: ApplicationSubscription[Any], projection: Projection[Any]
) -> None:
    assert isinstance(projection, _Nothing)


@with_events_loop(_fail)
class _FailingRunner(ProjectionRunner[Application[Any], POPOTrackingRecorder]):
    pass


@with_events_loop(_return_at_once)
class _ReturningRunner(ProjectionRunner[Application[Any], POPOTrackingRecorder]):
    pass


def test_an_events_loop_error_reaches_the_runners_caller() -> None:
    with _FailingRunner(
        application_class=Application, projection_class=_Nothing, view_class=POPOTrackingRecorder
    ) as runner:
        with pytest.raises(LookupError, match="_Nothing failed on Application"):
            runner.run_forever(timeout=10)
        assert runner.is_interrupted.is_set()


def test_an_events_loop_that_returns_stops_the_runner() -> None:
    with _ReturningRunner(
        application_class=Application, projection_class=_Nothing, view_class=POPOTrackingRecorder
    ) as runner:
        runner.run_forever(timeout=10)
        assert runner.is_interrupted.is_set()


# ----- kafka-python -------------------------------------------------------------------
def test_force_closing_the_sender_stops_the_producer_sending() -> None:
    # No broker is needed: the producer connects lazily, in its sender thread.
    producer = KafkaProducer(bootstrap_servers="127.0.0.1:9", api_version=(2, 6), max_block_ms=200)
    sender: threading.Thread = producer._sender
    assert sender.is_alive()
    assert force_close_sender(producer)
    sender.join(5)
    assert not sender.is_alive()
    with pytest.raises(Exception):  # noqa: B017, PT011 - kafka-python raises a bare error
        producer.send("crm.test", b"must not be sent").get(timeout=2)
    producer.close(timeout=1)


# ----- SQLAlchemy ---------------------------------------------------------------------
def test_bind_names_come_in_the_order_of_a_positional_statement() -> None:
    table = Table("t", MetaData(), Column("a", Integer), Column("b", Integer), Column("c", Integer))
    stmt = insert(table)
    positional = stmt.compile(dialect=sqlite.dialect(), column_keys=["c", "a", "b"])
    assert isinstance(positional, SQLCompiler)
    assert list(bind_names_in_order(positional) or ()) == ["a", "b", "c"]
    named = stmt.compile(dialect=postgresql.dialect(), column_keys=["a"])  # pyformat: named
    assert isinstance(named, SQLCompiler)
    assert bind_names_in_order(named) is None


def test_a_step_before_inserting_events_runs_in_their_transaction(tmp_path: Path) -> None:
    from crm_domain.application import CRM
    from crm_domain.infrastructure.compat import before_inserting_events

    crm = CRM(f"sqlite:///{tmp_path / 'crm.sqlite'}", source_system="test")
    seen: list[int] = []

    def step(cursor: Any, stored_events: Any) -> None:
        seen.append(len(stored_events))
        cursor.execute("CREATE TABLE IF NOT EXISTS marks (n INTEGER)")
        cursor.execute("INSERT INTO marks VALUES (1)")
        if len(seen) > 1:
            raise RuntimeError("the step fails: the events must not be stored either")

    assert before_inserting_events(crm.app.recorder, step)
    crm.register_customer(kind="enterprise", name="Acme", code="ACME")
    assert seen == [2]  # the customer and its code claim, in one insert
    head = crm.app.recorder.max_notification_id()
    with pytest.raises(RuntimeError):
        crm.register_customer(kind="enterprise", name="Beta", code="BETA")
    assert crm.app.recorder.max_notification_id() == head
    with crm.app.recorder.datastore.transaction(commit=False) as c:
        c.execute("SELECT COUNT(*) FROM marks")
        assert c.fetchone()[0] == 1
    assert not before_inserting_events(CRM("memory://").app.recorder, step)


def test_random_uuids_are_uuid4s_as_the_standard_library_makes_them() -> None:
    import os
    import pickle
    import uuid

    from crm_domain.infrastructure.compat import random_uuid

    made = [random_uuid() for _ in range(1000)]  # more than one 4 KiB block
    assert len(set(made)) == 1000
    for value in made[:5] + made[-5:]:
        same = uuid.UUID(str(value))
        assert value == same
        assert hash(value) == hash(same)
        assert (value.version, value.variant, value.is_safe) == (4, uuid.RFC_4122, same.is_safe)
        assert pickle.loads(pickle.dumps(value)) == value
        assert value.hex == same.hex
    # a forked child draws its own ids, not the rest of its parent's block
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.write(write, random_uuid().bytes)
        os._exit(0)
    os.waitpid(pid, 0)
    child = uuid.UUID(bytes=os.read(read, 16))
    assert child != random_uuid()
