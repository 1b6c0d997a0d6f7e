"""``crm demo``: the README's first command, end to end, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from crm_domain.application import CRM

CRM_SCRIPT = Path(sys.executable).with_name("crm")


def run_demo(cwd: Path, *args: str) -> str:
    env = {**os.environ, "COLUMNS": "160"}
    env.pop("CRM_STORE_URL", None)
    result = subprocess.run(
        [str(CRM_SCRIPT), "demo", "--customers", "15", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def events_stored(output: str) -> int:
    """Events this run stored, as the demo's summary says."""
    match = re.search(r"events stored\s+([\d,]+)", output)
    assert match, output
    return int(match.group(1).replace(",", ""))


def events_in_store(output: str) -> int:
    """Events in the whole store, which the summary adds on a reused store."""
    match = re.search(r"events in the store\s+([\d,]+)", output)
    assert match, output
    return int(match.group(1).replace(",", ""))


def test_demo_on_the_embedded_default(tmp_path: Path) -> None:
    output = run_demo(tmp_path)
    db = tmp_path / "crm-demo.sqlite"
    assert db.exists()
    assert f"database: sqlite:///{db}" in output.replace("\n", "")
    for heading in ("open pipeline value", "SLA breaches", "Sales pipeline", "Service desk"):
        assert heading in output
    crm = CRM(f"sqlite:///{db}")
    try:
        assert crm.app.recorder.max_notification_id() == events_stored(output)
    finally:
        crm.close()


def test_demo_starts_afresh_each_time(tmp_path: Path) -> None:
    first = events_stored(run_demo(tmp_path))
    second = events_stored(run_demo(tmp_path))
    assert first == second


@pytest.mark.postgres
def test_demo_on_postgres_can_be_replayed_into_the_same_store(
    tmp_path: Path, postgres_url: str
) -> None:
    first = events_stored(run_demo(tmp_path, "--store", postgres_url))
    output = run_demo(tmp_path, "--store", postgres_url)
    second, total = events_stored(output), events_in_store(output)
    crm = CRM(postgres_url)
    try:
        assert crm.app.recorder.max_notification_id() == total == first + second
    finally:
        crm.close()
    assert "whole store, earlier runs included" in output
    assert not (tmp_path / "crm-demo.sqlite").exists()


def test_an_unreachable_store_is_exit_code_3_with_a_clear_message(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            str(CRM_SCRIPT),
            "demo",
            "--store",
            "postgresql://postgres@127.0.0.1:1/none?connect_timeout=1",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 3
    assert "store is unreachable" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_bad_store_url_is_exit_code_2(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(CRM_SCRIPT), "demo", "--store", "mysql://nowhere/db"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "unsupported store URL" in result.stderr
    assert "Traceback" not in result.stderr
