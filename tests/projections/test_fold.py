"""The rebuild's fast path (projections.fold): the same read models as the live runner's
batches, unchunked or written in chunks under a tiny row budget, all or nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from projection_history import known_history, project, read_model_rows
from sqlalchemy import select

from crm_domain.application import CRM
from crm_domain.customer import Customer
from crm_domain.errors import UnhandledEventError
from projections.events import ALL_EVENTS
from projections.fold import fold_log
from projections.readmodel import ReadModel, handles
from projections.rebuild import rebuild
from projections.registry import all_read_models
from projections.runner import open_view
from projections.views import ReadModelView


def _rows(view: ReadModelView) -> dict[str, list[tuple[object, ...]]]:
    out = {}
    with view.engine.connect() as conn:
        for model in view.read_models:
            for table in model.tables:
                keys = list(table.primary_key.columns)
                out[table.name] = [tuple(r) for r in conn.execute(select(table).order_by(*keys))]
    return out


def test_a_fold_under_a_tiny_row_budget_equals_one_and_the_runners_batches() -> None:
    app = CRM("memory://")
    known_history(app)
    head = app.app.recorder.max_notification_id()
    one_by_one = project(app, batch_size=1)
    results = []
    for budget in (1_000_000, 1, 7):
        view = open_view("memory://", creates_indexes=False)
        done = fold_log(
            view, app.app.recorder, app.app.mapper, app.app.name, head, row_budget=budget
        )
        assert done == head
        assert view.positions(app.app.name) == dict.fromkeys(view.names, head)
        results.append(_rows(view))
    assert results[0] == _rows(one_by_one)
    assert results[1] == results[0]
    assert results[2] == results[0]


def test_fast_chunked_and_runner_rebuilds_of_a_store_agree(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'crm.sqlite'}"
    app = CRM(store)
    known_history(app)
    app.close()
    rebuild(store, fast=False, batch_size=5)
    by_runner = read_model_rows(store)
    rebuild(store)
    assert read_model_rows(store) == by_runner
    seen: list[tuple[int, int]] = []
    result = rebuild(
        store, row_budget=3, batch_size=6, on_progress=lambda d, t: seen.append((d, t))
    )
    assert read_model_rows(store) == by_runner
    assert seen
    assert seen[-1] == (result.events, result.events)
    # the live runner carries on from the positions the fold set
    view = open_view(store)
    try:
        assert set(view.positions(app.app.name).values()) == {result.events}
    finally:
        view.engine.dispose()
    assert set(all_read_models()) == set(view.names)


class PickyCustomers(ReadModel):
    """Refuses a customer called "Mallory" (a read model with a bug, for the tests)."""

    name = "picky_fold"
    ignores = tuple(c for c in ALL_EVENTS if c is not Customer.Registered)

    @handles(Customer.Registered)
    def registered(self, e: Customer.Registered, position: int) -> None:
        if e.name == "Mallory":
            raise ValueError("no Mallory here")


@pytest.mark.parametrize("budget", [1_000_000, 1])
def test_a_fold_that_fails_stores_nothing_and_names_the_event(tmp_path: Path, budget: int) -> None:
    store = f"sqlite:///{tmp_path / 'crm.sqlite'}"
    app = CRM(store)
    app.register_customer(kind="individual", name="Alice", code="A")
    mallory = app.register_customer(kind="individual", name="Mallory", code="M")
    app.close()
    with pytest.raises(UnhandledEventError, match="no Mallory here") as info:
        rebuild(store, read_models=["customer360", PickyCustomers], row_budget=budget, batch_size=1)
    assert (info.value.read_model, info.value.originator_id) == ("picky_fold", mallory)
    view = open_view(store, read_models=["customer360", PickyCustomers])
    try:
        assert view.positions(app.app.name) == {"customer360": None, "picky_fold": None}
        assert _rows(view)["customer360"] == []
    finally:
        view.engine.dispose()


def test_catching_up_far_behind_folds_from_nothing_and_from_a_position(tmp_path: Path) -> None:
    from projections.fold import catch_up

    store = f"sqlite:///{tmp_path / 'crm.sqlite'}"
    app = CRM(store)
    known = known_history(app)
    head = app.app.recorder.max_notification_id()
    assert catch_up(store, threshold=head + 1) == 0  # not far enough behind: left alone
    seen: list[tuple[int, int]] = []
    assert catch_up(store, threshold=1, on_progress=lambda d, t: seen.append((d, t))) == head
    assert seen[-1] == (head, head)  # every read model at nothing: one fold
    caught_up = read_model_rows(store)
    rebuild(store, fast=False)
    assert read_model_rows(store) == caught_up
    # more history, then catching up from the position every read model is at
    app.log_contact(known.acme, channel="phone", direction="inbound", summary="more")
    app.register_customer(kind="individual", name="Carol", code="C")
    added = app.app.recorder.max_notification_id() - head
    assert catch_up(store, threshold=1) == added
    app.close()
    from_position = read_model_rows(store)
    rebuild(store, fast=False)
    assert read_model_rows(store) == from_position


def test_a_catch_up_raced_by_a_runner_leaves_the_read_models_to_it(tmp_path: Path) -> None:
    from projections import fold

    store = f"sqlite:///{tmp_path / 'crm.sqlite'}"
    app = CRM(store)
    known_history(app)
    app.close()
    real_fold = fold.fold_log

    def runner_first(view: ReadModelView, *args: object, **kwargs: object) -> int:
        # a live runner projects the same read models just before the fold commits
        rebuild(store, read_models=view.read_models, fast=False)
        return real_fold(view, *args, **kwargs)  # type: ignore[arg-type]

    fold.fold_log = runner_first  # type: ignore[assignment]
    try:
        assert fold.catch_up(store, read_models=["customer360"], threshold=1) == 0
    finally:
        fold.fold_log = real_fold  # type: ignore[assignment]
    by_runner = read_model_rows(store)["customer360"]
    rebuild(store, read_models=["customer360"])
    assert read_model_rows(store)["customer360"] == by_runner


def test_a_fast_rebuild_of_sqlite_read_models_runs_in_one_process(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'crm.sqlite'}"
    app = CRM(store)
    known_history(app)
    app.close()
    # SQLite has one writer: folding workers would queue for (and time out on) its lock
    assert rebuild(store, workers=2, row_budget=3, batch_size=5).workers == 1
