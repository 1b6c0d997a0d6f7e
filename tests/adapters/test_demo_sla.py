"""The demo's service levels (issue 10): an Asia/Shanghai office calendar, printed, and
breaches counted both ways (recorded by the late command, and by the final scan)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from adapters.cli import main
from adapters.demo import demo_calendar, run_demo
from crm_domain.application import CRM


def test_the_demo_counts_breaches_both_ways() -> None:
    crm = CRM("memory://", calendar=demo_calendar())
    now = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
    summary = run_demo(crm, customers=25, seed=7, now=now)
    assert "Asia/Shanghai" in summary.calendar
    assert summary.sla_breaches_at_command > 0
    assert summary.sla_breaches_by_scan > 0
    recorded = sum(
        1
        for n in crm.app.recorder.select_notifications(1, 1_000_000)
        if n.topic.endswith("Customer.TicketSlaBreached")
    )
    assert recorded == summary.sla_breaches
    assert crm.scan_sla_breaches(as_of=now) == []  # the demo's scan left nothing to record


def test_crm_demo_prints_its_calendar_and_both_counts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "200")
    for name in ("CRM_CONFIG", "CRM_STORE_URL"):
        monkeypatch.delenv(name, raising=False)
    store = f"sqlite:///{tmp_path / 'demo.sqlite'}"
    assert main(["demo", "--customers", "12", "--store", store]) == 0
    out = capsys.readouterr().out
    assert "Guangzhou office: Asia/Shanghai" in out
    assert "recorded by the late response or resolution" in out
    assert "by the scan of open tickets" in out
