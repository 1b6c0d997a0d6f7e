"""A rebuild killed hard (SIGKILL: no ``finally`` runs) leaves its claim on the read models.

Its token names its process, so the claim is seen to be stale once that process is gone
from this host: ``status`` says ``interrupted`` (by whom, since when), and a live runner or
a report's catch-up releases it and carries on from the positions the killed rebuild left,
which are consistent with the rows on both rebuild paths. The fast path (the fold) drops and
recreates the tables in its own transaction, so a kill leaves the old rows and positions as
they were. A claim whose holder lives, is on another host, or is unknown (a token from
before holders were recorded) is respected.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from projection_history import read_model_rows
from sqlalchemy import text, update

from adapters.cli import main
from adapters.cli.reports import current_read_models
from adapters.demo import run_demo
from crm_domain.application import CRM
from crm_domain.infrastructure.storage import StoreURL
from projections import control
from projections.control import (
    claim_for_rebuild,
    claim_holder,
    claim_is_stale,
    host_tag,
    new_claim_token,
    process_gone,
    release_from_rebuild,
)
from projections.parking import catch_up
from projections.rebuild import rebuild
from projections.runner import follow, open_view
from projections.status import status
from projections.views import ReadModelView

SRC = str(Path(__file__).resolve().parents[2] / "src")

#: A child process that rebuilds every read model of the store (argv[1]) in one process,
#: fast (the fold) or with the runner in small batches (argv[2] == "runner"). The fold
#: writes its rows in chunks (a small row budget: the tables are replaced at the first)
#: and, half-way, says so on stdout and waits there, in its transaction, to be killed.
REBUILD = """
import sys, time
from projections.rebuild import rebuild

def halfway(done, total):
    if done >= total // 2:
        print("folding", flush=True)
        time.sleep(600)

if sys.argv[2] == "fast":
    rebuild(sys.argv[1], workers=1, batch_size=200, row_budget=500, on_progress=halfway)
else:
    rebuild(sys.argv[1], workers=1, fast=False, batch_size=100)
"""


def _store(store_url: str) -> tuple[str, int]:
    """A store with a few thousand events and read models current with it."""
    app = CRM(store_url)
    run_demo(app, customers=120, seed=11)
    name, head = app.app.name, int(app.app.recorder.max_notification_id() or 0)
    app.close()
    with follow(store_url) as runner:
        runner.wait_until_current(timeout=120)
    return name, head


def _claims(view: ReadModelView, app_name: str) -> dict[str, tuple[str | None, int]]:
    """Each read model's claim token and position, as another process sees them."""
    positions = view.positions(app_name)
    return {n: (s.rebuild_token, positions[n] or 0) for n, s in view.control_states().items()}


def _start_rebuild(store_url: str, mode: str) -> subprocess.Popen[str]:
    """A real rebuild in a child process (see :data:`REBUILD`); a fast one is returned
    once it waits half-way, its tables replaced and chunks of rows written in its one
    transaction (seen by its lock on the database)."""
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen(
        [sys.executable, "-c", REBUILD, store_url, mode],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    if mode == "fast":
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            assert line == "folding\n", f"the rebuild ended first: {proc.communicate()}"
            assert _holds_write_locks(store_url, proc.pid)
        except BaseException:
            proc.kill()
            proc.wait(timeout=30)
            raise
    return proc


def _kill_rebuild_midway(store_url: str, app_name: str, mode: str, head: int) -> int:
    """Start a real rebuild in a child process and SIGKILL it mid-way; returns its pid.

    The fold: killed half-way, its tables replaced and chunks of rows written in its one
    transaction. The runner path: once some batches are committed (a read model part way,
    none done).
    """
    proc = _start_rebuild(store_url, mode)
    view = open_view(store_url)
    try:
        if mode == "runner":
            _wait_for_committed_batches(view, app_name, head, proc)
        proc.send_signal(signal.SIGKILL)
    finally:
        view.engine.dispose()
        proc.kill()
        proc.wait(timeout=30)  # reaped, as its parent (a shell, systemd) would
    assert proc.returncode == -signal.SIGKILL
    return proc.pid


def _wait_for_committed_batches(
    view: ReadModelView, app_name: str, head: int, proc: subprocess.Popen[str]
) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the rebuild ended before it could be killed"
        try:
            rows = _claims(view, app_name)
        except Exception:  # a table being dropped and created again: look again
            continue
        claimed = [p for t, p in rows.values() if t is not None]
        if claimed and 0 < max(claimed) < head:
            return  # batches committed, the rebuild not done
        time.sleep(0.002)
    pytest.fail("the rebuild never got under way")


def _holds_write_locks(store_url: str, pid: int) -> bool:
    """Whether the rebuild in process ``pid`` has written in its open transaction: on
    PostgreSQL it holds the replaced tables' ACCESS EXCLUSIVE locks, on SQLite the
    database's write lock (a ``BEGIN IMMEDIATE`` elsewhere is refused at once)."""
    if store_url.startswith("sqlite"):
        import sqlite3

        conn = sqlite3.connect(StoreURL.parse(store_url).sqlite_path, timeout=0)
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            return "locked" in str(exc)
        finally:
            conn.close()
        return False
    view = open_view(store_url)
    try:
        with view.engine.connect() as conn:
            locked = conn.execute(
                text(
                    "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                    "WHERE c.relname = 'timeline_entries' AND l.mode = 'AccessExclusiveLock' "
                    "AND l.granted AND l.pid <> pg_backend_pid()"
                )
            ).scalar_one()
    finally:
        view.engine.dispose()
    return bool(locked)


@pytest.mark.parametrize("mode", ["fast", "runner"])
def test_a_killed_rebuild_is_released_and_carried_on(
    store_url: str, tmp_path: Path, mode: str, capsys: pytest.CaptureFixture[str]
) -> None:
    app_name, head = _store(store_url)
    before = read_model_rows(store_url)
    pid = _kill_rebuild_midway(store_url, app_name, mode, head)

    # The killed rebuild's claim stays (no finally ran): every read model is held.
    view = open_view(store_url)
    try:
        rows = _claims(view, app_name)
    finally:
        view.engine.dispose()
    assert all(token is not None for token, _ in rows.values()), rows
    states = status(store_url)
    assert {s.state for s in states} == {"interrupted"}
    assert all(str(s.rebuilt_by) == f"process {pid} on {host_tag()}" for s in states)
    if mode == "fast":  # the fold's transaction rolled back: the old rows and positions
        assert all(s.position == head for s in states), states
        assert read_model_rows(store_url) == before
    else:  # what the killed batches committed, rows and positions together
        assert all(s.position is None or s.position < head for s in states)
        assert any(0 < (s.position or 0) < head for s in states)
    assert f"rebuild by process {pid}" in states[0].rebuild_note
    assert "releases it and carries on" in states[0].rebuild_advice
    assert main(["projections", "status", "--store", store_url, "-f", "json"]) == 0
    sections = {s["title"]: s["rows"] for s in json.loads(capsys.readouterr().out)}
    held = {r["read_model"]: r for r in sections["Rebuilds"]}
    assert held.keys() == {s.name for s in states}
    assert all(r["state"] == "interrupted" and str(pid) in r["held_by"] for r in held.values())

    # A report's catch-up releases the stale claim and carries on from the positions stored.
    with current_read_models(store_url, None, timeout=120):
        pass
    states = status(store_url)
    assert {s.state for s in states} == {"current"}, states
    assert all(s.rebuilding_since is None and s.position == head for s in states)
    recovered = read_model_rows(store_url)
    clean = f"sqlite:///{tmp_path / 'clean.sqlite'}"
    rebuild(store_url, views_url=clean)
    assert recovered == read_model_rows(store_url, views_url=clean)
    assert sum(len(r) for r in recovered.values()) > head


def test_readers_do_not_wait_for_a_fast_rebuild(
    store_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """While a fast rebuild folds (on PostgreSQL its replaced tables are locked until it
    commits), status, a starting runner, verify and reports answer at once: from the
    control rows (a report whose read models are held says they are being rebuilt, exit
    code 3), never by waiting on the rebuild's tables."""
    _, head = _store(store_url)
    # a reader that did touch a locked table would fail here, rather than wait
    monkeypatch.setenv("PGOPTIONS", "-c lock_timeout=20s")
    proc = _start_rebuild(store_url, "fast")
    try:
        states = status(store_url)
        assert {s.state for s in states} == {"rebuilding"}
        # SQLite's readers see the committed rows (and positions); PostgreSQL's do not
        # read the locked tracking tables
        expected = {head} if store_url.startswith("sqlite") else {None}
        assert {s.position for s in states} == expected
        assert main(["projections", "status", "--store", store_url]) == 0
        with follow(store_url) as runner:  # starts, feeds what no rebuild holds
            runner.run_forever(timeout=0.1)
            assert set(runner.positions.values()) == expected
        assert catch_up(store_url, "timeline", timeout=30).state == "rebuilding"
        assert main(["projections", "verify", "pipeline", "--store", store_url]) == 0
        capsys.readouterr()
        for catching_up in ([], ["--no-catch-up"]):
            code = main(["report", "pipeline", "--store", store_url, *catching_up])
            assert code == 3
            err = capsys.readouterr().err
            assert "being rebuilt: read model 'pipeline'" in err
            assert f"by process {proc.pid}" in err
    finally:
        proc.kill()
        proc.wait(timeout=30)
    monkeypatch.delenv("PGOPTIONS")
    with current_read_models(store_url, None, timeout=120):
        pass  # releases the killed rebuild's claim
    assert {s.state for s in status(store_url)} == {"current"}


def test_a_live_runner_releases_a_killed_rebuilds_claim_and_goes_on(store_url: str) -> None:
    """The live runner (already running when the rebuild was killed) releases the claim
    at its next batch and catches the read model up from the position the rebuild left."""
    app = CRM(store_url)
    run_demo(app, customers=4, seed=2)
    customer = app.register_customer(kind="individual", name="Caller", code="CALL-1")
    with follow(store_url) as runner:
        runner.wait_until_current(timeout=60)
        _claim_as_dead_process(store_url, ["timeline"])
        assert status(store_url, read_models=["timeline"])[0].state == "interrupted"
        app.log_contact(customer, channel="phone", direction="inbound", summary="after")
        runner.wait_until_current(timeout=60)
        runner.run_forever(timeout=0.01)  # re-raises a runner error, if any
    (found,) = status(store_url, read_models=["timeline"])
    assert found.state == "current"
    assert found.rebuilding_since is None
    assert found.generation == 1
    app.close()


def _claim_as_dead_process(store_url: str, names: list[str]) -> str:
    """Claim the read models as a process of this host that has exited (and was reaped)."""
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    dead = int(done.stdout)
    view = open_view(store_url, read_models=names)
    try:
        token = claim_for_rebuild(view.engine, names)
        stale = token.rsplit(":", 1)[0] + f":{dead}"
        with view.engine.begin() as conn:
            conn.execute(
                update(control.control)
                .where(control.control.c.read_model.in_(names))
                .values(rebuild_token=stale)
            )
    finally:
        view.engine.dispose()
    assert claim_is_stale(stale)
    return stale


@pytest.mark.parametrize("holder", ["this process", "another host", "unknown (plain token)"])
def test_a_claim_whose_holder_may_live_is_respected(store_url: str, holder: str) -> None:
    app = CRM(store_url)
    run_demo(app, customers=3, seed=4)
    customer = app.register_customer(kind="individual", name="Caller", code="CALL-2")
    app_name = app.app.name
    with follow(store_url) as runner:
        runner.wait_until_current(timeout=60)
    view = open_view(store_url, read_models=["timeline"])
    try:
        token = claim_for_rebuild(view.engine, ["timeline"])
        if holder != "this process":
            token = {
                "another host": f"{'a' * 32}@elsewhere-{host_tag()}"[:50] + ":999999999",
                "unknown (plain token)": "b" * 32,
            }[holder]
            with view.engine.begin() as conn:
                conn.execute(
                    update(control.control)
                    .where(control.control.c.read_model == "timeline")
                    .values(rebuild_token=token)
                )
        before = view.position("timeline", app_name)
        app.log_contact(customer, channel="phone", direction="inbound", summary="while held")
        assert view.release_stale_claims() == []
        found = catch_up(store_url, "timeline", timeout=30)  # stops: a rebuild holds it
        assert found.state == "rebuilding"
        assert found.position == before
        assert not found.interrupted
        assert view.control_states()["timeline"].rebuild_token == token
        if holder == "this process":
            assert str(found.rebuilt_by) == f"process {os.getpid()} on {host_tag()}"
        elif holder == "unknown (plain token)":
            assert found.rebuilt_by is not None
            assert not found.rebuilt_by.known
            assert "holder unknown" in found.rebuild_note
        release_from_rebuild(view.engine, ["timeline"], token)
        assert catch_up(store_url, "timeline", timeout=60).state == "current"
    finally:
        view.engine.dispose()
        app.close()


def test_a_stale_claim_taken_over_by_a_new_rebuild_is_not_released(tmp_path: Path) -> None:
    """Released only if the token is still the stale one (checked under the claim's lock)."""
    store = f"sqlite:///{tmp_path / 'crm.sqlite'}"
    app = CRM(store)
    run_demo(app, customers=2, seed=1)
    app.close()
    _claim_as_dead_process(store, ["timeline"])
    view = open_view(store, read_models=["timeline"])
    try:
        token = claim_for_rebuild(view.engine, ["timeline"])  # a new rebuild, alive
        assert view.release_stale_claims() == []
        assert view.control_states()["timeline"].rebuild_token == token
    finally:
        view.engine.dispose()


def test_claim_tokens_name_their_holder_within_the_column(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    token = new_claim_token()
    assert claim_holder(token).pid == os.getpid()
    assert claim_holder(token).on_this_host
    assert not claim_is_stale(token)  # this process lives
    long_a, long_b = "crm-worker-production-eu-west-1a", "crm-worker-production-eu-west-1b"
    assert host_tag(long_a) != host_tag(long_b)
    assert len(host_tag(long_a)) == control.HOST_TAG_LENGTH
    monkeypatch.setattr(control.socket, "gethostname", lambda: long_a)
    token = new_claim_token()
    assert len(token) <= control.control.c.rebuild_token.type.length
    assert claim_holder(token).host == host_tag(long_a)
    assert not claim_holder(uuid_hex := "c" * 32).known  # a token from an older version
    assert not claim_is_stale(uuid_hex)
    assert not claim_is_stale(f"{'d' * 32}@{host_tag(long_b)}:999999999")  # another host


def test_a_killed_unreaped_process_counts_as_gone() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert not process_gone(child.pid)
        child.send_signal(signal.SIGKILL)
        deadline = time.monotonic() + 10
        while not process_gone(child.pid):  # a zombie until reaped: gone all the same
            assert time.monotonic() < deadline
            time.sleep(0.01)
    finally:
        child.kill()
        child.wait()
    assert process_gone(child.pid)
    assert not process_gone(os.getpid())


def test_verify_releases_a_killed_rebuilds_claim_and_verifies(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``crm projections verify`` releases a stale claim as a runner or a report would
    (its positions stand), then verifies the read model; a live claim is left alone."""
    store = f"sqlite:///{tmp_path / 'crm.sqlite'}"
    app = CRM(store)
    run_demo(app, customers=3, seed=6)
    app.close()
    with follow(store) as runner:
        runner.wait_until_current(timeout=60)
    _claim_as_dead_process(store, ["timeline", "pipeline"])
    view = open_view(store, read_models=["handover"])
    try:
        live = claim_for_rebuild(view.engine, ["handover"])  # this process: alive
    finally:
        view.engine.dispose()
    assert {s.name: s.state for s in status(store)}["timeline"] == "interrupted"

    assert main(["projections", "verify", "timeline", "handover", "--store", store]) == 0
    out = capsys.readouterr().out
    assert "timeline: released the claim of a killed rebuild" in out
    assert re.search(r"^timeline at position \d+: ok$", out, re.MULTILINE), out
    assert "handover: not verified (a rebuild holds it)" in out
    states = {s.name: s for s in status(store)}
    assert states["timeline"].state == "current"
    assert states["pipeline"].state == "interrupted"  # not asked for: left to a runner
    assert states["handover"].state == "rebuilding"
    view = open_view(store, read_models=["handover"])
    try:
        assert view.control_states()["handover"].rebuild_token == live
    finally:
        view.engine.dispose()


def test_a_second_rebuild_on_sqlite_says_which_rebuild_holds_the_lock(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A rebuild folding in chunks holds SQLite's write lock until it commits: a second
    rebuild cannot claim the read models meanwhile, and says which rebuild holds them
    (not the driver's "database is locked"), with nothing changed."""
    _store(sqlite_url)
    proc = _start_rebuild(sqlite_url, "fast")
    try:
        before = {s.name: s.generation for s in status(sqlite_url)}
        capsys.readouterr()
        code = main(["projections", "rebuild", "--all", "--store", sqlite_url])
        err = capsys.readouterr().err
        assert code == 3, err
        assert "being rebuilt: read model 'customer360'" in err
        assert f"by process {proc.pid}" in err
        assert "database is locked" not in err
        assert {s.name: s.generation for s in status(sqlite_url)} == before
    finally:
        proc.kill()
        proc.wait(timeout=30)
