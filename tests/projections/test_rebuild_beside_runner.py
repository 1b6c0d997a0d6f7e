"""Rebuilding while a live runner runs: the runner leaves the read models alone while the
rebuild holds them, then follows the new generation; nothing dies, nothing is lost."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from projection_history import read_model_rows
from sqlalchemy import text

from adapters.demo import run_demo
from crm_domain.application import CRM
from projections.rebuild import rebuild
from projections.runner import follow
from projections.status import status


def test_rebuild_beside_a_live_runner_and_new_events(store_url: str, tmp_path: Path) -> None:
    app = CRM(store_url)
    run_demo(app, customers=25, seed=5)
    customer_ids = [
        app.register_customer(kind="individual", name=f"Caller {i}", code=f"CALL-{i}")
        for i in range(3)
    ]
    stop = threading.Event()
    written: list[int] = []
    errors: list[BaseException] = []

    def keep_writing() -> None:
        """Commands keep arriving while the read models are rebuilt."""
        try:
            i = 0
            while not stop.is_set():
                customer = customer_ids[i % len(customer_ids)]
                app.log_contact(customer, channel="phone", direction="inbound", summary=f"#{i}")
                written.append(i)
                i += 1
                time.sleep(0.01)
        except BaseException as exc:  # reported by the test
            errors.append(exc)

    with follow(store_url) as runner:
        runner.wait_until_current(timeout=60)
        writer = threading.Thread(target=keep_writing)
        writer.start()

        def wait_for_writes(count: int) -> None:
            # Commands before and after each rebuild, whatever the machine's load (a
            # count reached in time would depend on it); a dead writer fails below.
            deadline = time.monotonic() + 60
            while len(written) < count and not errors and time.monotonic() < deadline:
                time.sleep(0.01)

        try:
            # one process, then worker processes (`crm projections rebuild --workers 2`)
            for names, workers in ((None, 1), (["customer360", "timeline"], 2)):
                wait_for_writes(len(written) + 3)
                rebuild(store_url, read_models=names, workers=workers)
                assert not runner.is_interrupted.is_set()
                runner.run_forever(timeout=0.01)  # re-raises a runner error, if any
            wait_for_writes(len(written) + 3)
        finally:
            stop.set()
            writer.join()
        assert not errors, errors
        assert len(written) >= 9
        runner.wait_until_current(timeout=60)
        assert not runner.is_interrupted.is_set()
        runner.run_forever(timeout=0.01)
    states = status(store_url)
    assert all(s.state == "current" for s in states), states
    assert {s.name: s.generation for s in states}["customer360"] == 2
    live = read_model_rows(store_url)
    clean = f"sqlite:///{tmp_path / 'clean.sqlite'}"
    rebuild(store_url, views_url=clean)
    assert live == read_model_rows(store_url, views_url=clean)
    app.close()


def test_a_rebuild_claiming_a_read_model_during_its_catch_up_leaves_the_runner_alive(
    tmp_path: Path,
) -> None:
    """The race a CI run met: the runner catches a read model up, and between a chunk and
    its position read a rebuild claims it and drops its tables. The runner lets it go."""
    from projections.control import claim_for_rebuild
    from projections.runner import open_view

    store = f"sqlite:///{tmp_path / 'crm.sqlite'}"
    app = CRM(store)
    for i in range(5):
        app.register_customer(kind="individual", name=f"P{i}", code=f"P-{i}")
    with follow(store) as runner:
        runner.wait_until_current(timeout=20)
        view = runner.view
        head = runner.head()
        apply = view._apply

        def apply_then_rebuild_claims(*args: object, **kwargs: object) -> None:
            apply(*args, **kwargs)  # type: ignore[arg-type]
            claim_for_rebuild(view.engine, ["customer360"])
            with view.engine.begin() as conn:  # the moment between the drop and the create
                conn.execute(text("DROP TABLE customer360_tracking"))

        view._apply = apply_then_rebuild_claims  # type: ignore[method-assign]
        try:
            assert view._catch_up(runner.app_name, "customer360", 0, head) is False
        finally:
            view._apply = apply  # type: ignore[method-assign]
    other = open_view(store, read_models=["customer360"])
    try:
        assert other.control_states()["customer360"].rebuild_token is not None
    finally:
        other.engine.dispose()
    app.close()
