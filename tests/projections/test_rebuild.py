"""Rebuilding read models: worker processes, deferred indexes, racing runners, GC setting."""

from __future__ import annotations

import gc
import pickle
from pathlib import Path
from typing import Any, ClassVar

import pytest
from eventsourcing.utils import get_topic
from projection_history import known_history, read_model_rows
from sqlalchemy import create_engine, func, inspect, select

from adapters.demo import run_demo
from crm_domain.application import CRM
from crm_domain.customer import Customer
from crm_domain.errors import UnhandledEventError, UnknownReadModelError
from crm_domain.infrastructure.storage import StoreURL
from projections.events import ALL_EVENTS, BOOKKEEPING_EVENTS
from projections.readmodel import LoggedEvent, ReadModel, handles
from projections.rebuild import (
    REBUILD_GC_THRESHOLD,
    default_workers,
    fewer_gc_passes,
    plan_workers,
    rebuild,
)
from projections.registry import all_read_models
from projections.runner import open_view
from projections.timeline import ActivityTimeline, entries


def _index_names(url: str) -> dict[str, set[str]]:
    engine = create_engine(StoreURL.parse(url).sqlalchemy_url)
    try:
        found = inspect(engine)
        existing = set(found.get_table_names())
        return {
            table.name: {i["name"] for i in found.get_indexes(table.name) if i["name"]}
            for model in all_read_models().values()
            for table in model.tables
            if table.name in existing
        }
    finally:
        engine.dispose()


def _declared_indexes() -> dict[str, set[str]]:
    return {
        table.name: {i.name for i in table.indexes if i.name}
        for model in all_read_models().values()
        for table in model.tables
    }


def test_workers_are_planned_by_weight_and_keep_the_given_order() -> None:
    models = list(all_read_models().values())
    groups = plan_workers(models, 2)
    assert len(groups) == 2
    assert sorted(m.name for g in groups for m in g) == sorted(m.name for m in models)
    loads = [sum(m.rebuild_weight for m in g) for g in groups]
    assert max(loads) - min(loads) <= max(m.rebuild_weight for m in models)
    for group in groups:
        assert group == sorted(group, key=models.index)
    assert plan_workers(models, 1) == [models]
    assert sorted(plan_workers(models[:2], 8), key=str) == sorted(
        [[m] for m in models[:2]], key=str
    )
    with pytest.raises(ValueError, match="at least 1"):
        plan_workers(models, 0)
    assert default_workers() >= 1


def test_a_parallel_rebuild_equals_a_rebuild_in_one_process(store_url: str) -> None:
    app = CRM(store_url)
    run_demo(app, customers=40, seed=5)
    head = app.app.recorder.max_notification_id()
    app.close()
    one = rebuild(store_url, workers=1, batch_size=97)
    assert (one.workers, one.events) == (1, head)
    in_one_process = read_model_rows(store_url)
    assert sum(len(rows) for rows in in_one_process.values()) > head
    seen: list[tuple[int, int]] = []
    # folding workers on PostgreSQL; on SQLite (one writer) the runner's parallel path
    fast = not store_url.startswith("sqlite")
    two = rebuild(
        store_url, workers=2, batch_size=89, fast=fast, on_progress=lambda d, t: seen.append((d, t))
    )
    assert (two.workers, two.events) == (2, head)
    assert seen[-1] == (head, head)
    assert read_model_rows(store_url) == in_one_process
    assert _index_names(store_url) == _declared_indexes()
    view = open_view(store_url)
    try:
        assert set(view.positions(app.app.name).values()) == {head}
    finally:
        view.engine.dispose()


class PickyCustomers(ReadModel):
    """Refuses a customer called "Mallory" (a read model with a bug, for the tests)."""

    name = "picky"
    ignores = tuple(c for c in ALL_EVENTS if c is not Customer.Registered)

    @handles(Customer.Registered)
    def registered(self, e: Customer.Registered, position: int) -> None:
        if e.name == "Mallory":
            raise ValueError("no Mallory here")


def test_a_worker_that_fails_stops_the_rebuild_with_its_error(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'crm.sqlite'}"
    app = CRM(store)
    app.register_customer(kind="individual", name="Alice", code="A")
    mallory = app.register_customer(kind="individual", name="Mallory", code="M")
    head = app.app.recorder.max_notification_id()
    app.close()
    with pytest.raises(UnhandledEventError, match="no Mallory here") as info:
        rebuild(store, read_models=["customer_value", PickyCustomers], workers=2, fast=False)
    assert (info.value.read_model, info.value.originator_id) == ("picky", mallory)
    assert info.value.topic.endswith("Customer.Registered")
    # nothing from the failing event on was stored; the other worker was stopped
    view = open_view(store, read_models=[PickyCustomers])
    try:
        assert (view.position("picky", app.app.name) or 0) < info.value.position <= head
    finally:
        view.engine.dispose()


def test_projection_errors_survive_pickling_between_processes() -> None:
    error = UnhandledEventError(
        read_model="timeline", topic="x:Y", position=7, originator_id=None, reason="boom"
    )
    again = pickle.loads(pickle.dumps(error))
    assert (again.read_model, again.topic, again.position, again.reason, str(again)) == (
        "timeline",
        "x:Y",
        7,
        "boom",
        str(error),
    )
    unknown = pickle.loads(pickle.dumps(UnknownReadModelError("nope", ["timeline"])))
    assert (unknown.name, unknown.known, str(unknown)) == ("nope", ["timeline"], str(unknown))


def test_an_interrupted_rebuild_gets_its_indexes_back_from_the_next_runner(
    sqlite_url: str,
) -> None:
    view = open_view(sqlite_url, read_models=["timeline"])
    view.drop_read_model("timeline", defer_indexes=True)
    view.engine.dispose()
    assert _index_names(sqlite_url)["timeline_entries"] == set()
    open_view(sqlite_url, read_models=["timeline"]).engine.dispose()
    assert _index_names(sqlite_url)["timeline_entries"] == {
        "timeline_customer_idx",
        "timeline_account_idx",
    }


class RacedTimeline(ActivityTimeline):
    """The timeline, plus another runner that moves its position mid-batch (once)."""

    name = "raced_timeline"
    moved_to: ClassVar[int | None] = None
    tracking: ClassVar[Any] = None
    application_name: ClassVar[str] = ""

    def customer_event(self, e: Any, position: int) -> None:
        cls = type(self)
        if cls.moved_to is None:
            cls.moved_to = position + 4
            # like another runner that committed events up to ``moved_to`` meanwhile
            with self.session.get_bind().connect() as other:  # type: ignore[union-attr]
                other.execute(
                    cls.tracking.insert().values(
                        application_name=cls.application_name, notification_id=cls.moved_to
                    )
                )
                other.commit()
        super().customer_event(e, position)


def test_a_batch_raced_by_another_runner_is_neither_lost_nor_applied_twice(
    tmp_path: Path,
) -> None:
    store = f"sqlite:///{tmp_path / 'crm.sqlite'}"
    app = CRM(store)
    known_history(app)
    head = app.app.recorder.max_notification_id()
    view = open_view(store, read_models=[RacedTimeline])
    RacedTimeline.tracking = view.tracking_tables["raced_timeline"]
    RacedTimeline.application_name = app.app.name
    logged = [
        LoggedEvent(n, mapper=app.app.mapper)
        for n in app.app.recorder.select_notifications(start=1, limit=1000)
    ]
    view.record(app.app.name, logged)
    moved_to = RacedTimeline.moved_to
    assert moved_to is not None
    assert view.position("raced_timeline", app.app.name) == head
    bookkeeping = {get_topic(c) for c in BOOKKEEPING_EVENTS}
    expected = [e.position for e in logged if e.position > moved_to and e.topic not in bookkeeping]
    with view.engine.connect() as conn:
        positions = [p for (p,) in conn.execute(select(entries.c.position).order_by("position"))]
    # what the other runner "did" (up to moved_to) is not applied again; the rest is applied
    assert positions == expected
    view.record(app.app.name, logged)  # all of it is there already: a no-op
    with view.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(entries)).scalar() == len(expected)
    view.engine.dispose()
    app.close()


def test_a_rebuild_sees_fewer_gc_passes_and_restores_the_setting(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'crm.sqlite'}"
    app = CRM(store)
    known_history(app)
    app.close()
    before = gc.get_threshold()
    during: list[int] = []
    rebuild(
        store,
        read_models=["pipeline"],
        on_progress=lambda d, t: during.append(gc.get_threshold()[0]),
    )
    assert during
    assert min(during) >= REBUILD_GC_THRESHOLD
    assert gc.get_threshold() == before
    during.clear()
    rebuild(
        store,
        read_models=["pipeline"],
        tune_gc=False,
        on_progress=lambda d, t: during.append(gc.get_threshold()[0]),
    )
    assert set(during) == {before[0]}
    with pytest.raises(RuntimeError), fewer_gc_passes():
        raise RuntimeError("the setting is restored on errors too")
    assert gc.get_threshold() == before


@pytest.mark.parametrize("row_budget", [250_000, 1], ids=["held", "chunked"])
def test_a_fast_rebuild_that_fails_leaves_the_read_models_as_they_were(
    store_url: str, row_budget: int
) -> None:
    """The fold replaces the tables in its own transaction: an error on a bad event (here
    after chunks of rows were written, with a budget of one row) rolls that back."""
    app = CRM(store_url)
    run_demo(app, customers=8, seed=3)
    models: list[str | type[ReadModel]] = ["customer360", "timeline", PickyCustomers]
    rebuild(store_url, read_models=models)
    before = read_model_rows(store_url)
    view = open_view(store_url, read_models=models)
    try:
        positions = view.positions(app.app.name)
        generation = view.control_states()["timeline"].generation
        app.register_customer(kind="individual", name="Mallory", code="M")
        with pytest.raises(UnhandledEventError, match="no Mallory here"):
            rebuild(store_url, read_models=models, row_budget=row_budget, batch_size=50)
        assert read_model_rows(store_url) == before
        assert view.positions(app.app.name) == positions
        states = view.control_states()
        assert states["timeline"].generation == generation + 1
        assert not any(s.rebuilding for s in states.values())  # handed back
    finally:
        view.engine.dispose()
        app.close()
    assert _index_names(store_url) == _declared_indexes()
