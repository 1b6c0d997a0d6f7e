"""Exactly once: kill a real ``crm projections run`` process mid-run, more than once, start
it again, and the read models equal a clean rebuild of the same history."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from projection_history import read_model_rows

from adapters.demo import run_demo
from crm_domain.application import CRM
from projections.rebuild import rebuild
from projections.runner import open_view

SRC = str(Path(__file__).resolve().parents[2] / "src")


def _start(store_url: str, batch_size: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from adapters.cli import main; raise SystemExit(main())",
            "projections",
            "run",
            "--store",
            store_url,
            "--batch-size",
            str(batch_size),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _positions(store_url: str, app_name: str) -> list[int]:
    view = open_view(store_url)
    try:
        return [p or 0 for p in view.positions(app_name).values()]
    finally:
        view.engine.dispose()


def test_killed_runner_resumes_exactly_once(store_url: str, tmp_path: Path) -> None:
    app = CRM(store_url)
    run_demo(app, customers=70, seed=3)
    head = app.app.recorder.max_notification_id()
    app_name = app.app.name
    app.close()
    kills = 0
    for _ in range(2):
        proc = _start(store_url, batch_size=7)  # small batches: killed between many commits
        deadline = time.monotonic() + 60
        try:
            while time.monotonic() < deadline:
                positions = _positions(store_url, app_name)
                if min(positions) >= head:
                    break
                if any(p > 0 for p in positions) and min(positions) > kills * 50:
                    proc.send_signal(signal.SIGKILL)
                    kills += 1
                    break
                time.sleep(0.005)
        finally:
            proc.kill()
            proc.wait(timeout=10)
    assert kills == 2, "the runner finished before it could be killed twice"
    assert min(_positions(store_url, app_name)) < head
    proc = _start(store_url, batch_size=500)  # resumes where each read model stopped
    try:
        deadline = time.monotonic() + 120
        while min(_positions(store_url, app_name)) < head:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "the restarted runner did not catch up"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        proc.kill()
    resumed = read_model_rows(store_url)
    clean = f"sqlite:///{tmp_path / 'clean.sqlite'}"
    rebuild(store_url, views_url=clean)
    assert resumed == read_model_rows(store_url, views_url=clean)
    assert sum(len(rows) for rows in resumed.values()) > head
