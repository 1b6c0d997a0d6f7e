"""``crm sla calendar|scan`` and the calendar shown beside deadlines (issue 10, "Service
clocks"), on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from adapters.cli import main
from crm_domain.application import CRM
from crm_domain.customer import Customer

OFFICE = """
[calendar]
name = "Beijing office"
timezone = "Asia/Shanghai"
country = "CN"

[calendar.hours]
mon-fri = ["09:00-12:00", "13:30-18:00"]
sat = ["09:00-12:00"]
"""
MON = datetime(2031, 3, 3, 2, 0, tzinfo=UTC)  # Monday 10:00 in Beijing


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def as_json(out: str) -> Any:
    return json.loads(out)


def test_sla_calendar_prints_zone_hours_holidays_and_make_up_days(
    clean_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (clean_env / "crm.toml").write_text(OFFICE)
    code, out, err = run(["sla", "calendar", "--year", "2025", "--format", "json"], capsys)
    assert code == 0, err
    text = json.dumps(as_json(out))
    for expected in (
        "Asia/Shanghai",
        "09:00-12:00, 13:30-18:00",
        "mon-fri",
        "2025-10-01",
        "National Day",
        "2025-09-28",
        "2025-10-11",
        "Beijing office",
    ):
        assert expected in text, expected
    code, out, _ = run(["sla", "calendar", "--year", "2025"], capsys)
    assert code == 0
    assert "Extra working days 2025" in out
    assert "2025-09-28" in out


def test_the_default_calendar_is_printed_as_the_default(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(["sla", "calendar", "--format", "json"], capsys)
    assert code == 0
    text = json.dumps(as_json(out))
    assert "UTC" in text
    assert "the default" in text
    assert "mon-fri" in text


def test_a_bad_calendar_is_a_configuration_error(
    clean_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (clean_env / "office.toml").write_text('[hours]\nmon-fri = ["09:00-17:00"]\n')
    (clean_env / "crm.toml").write_text('[calendar]\nfile = "office.toml"\n')
    code, _, err = run(["sla", "calendar"], capsys)
    assert code == 2
    assert "explicit zone" in err
    assert "Traceback" not in err


def _store_with_late_tickets(url: str) -> tuple[Any, Any]:
    crm = CRM(url)
    try:
        cid = crm.register_customer(kind="individual", name="Wang Fang", code="WF-1")
        with crm.context(occurred_at=MON):
            ticket = crm.open_ticket(cid, kind="inquiry", subject="Where?", channel="phone")
    finally:
        crm.close()
    return cid, ticket


def test_sla_scan_records_breaches_once(
    store_url: str, clean_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (clean_env / "crm.toml").write_text(OFFICE)
    cid, ticket = _store_with_late_tickets(store_url)
    base = ["sla", "scan", "--store", store_url, "--format", "json"]
    # 10:05 in Beijing (no offset: the office's local time): the response is not due yet.
    code, out, err = run([*base, "--as-of", "2031-03-03T10:05"], capsys)
    assert code == 0, err
    assert "(0)" in out
    code, out, err = run([*base, "--as-of", "2031-03-03T10:30+08:00"], capsys)
    assert code == 0, err
    assert str(ticket) in out
    assert "response" in out
    assert "Asia/Shanghai" in out  # the calendar deadlines run on
    code, out, err = run([*base, "--as-of", "2031-03-03T10:30+08:00"], capsys)
    assert code == 0, err
    assert str(ticket) not in out  # idempotent: nothing new
    crm = CRM(store_url)
    try:
        found = [e for e in crm.history(cid) if isinstance(e, Customer.TicketSlaBreached)]
        assert [e.clock.value for e in found] == ["response"]
        assert found[0].metadata["actor"] == "sla-scan"
    finally:
        crm.close()


def test_sla_scan_as_of_now_and_bad_input(
    small_store: str, clean_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(["sla", "scan", "--store", small_store], capsys)
    assert code == 0, err
    assert "the default" in out  # no calendar configured: the default is printed
    code, _, err = run(["sla", "scan", "--store", small_store, "--as-of", "tomorrow"], capsys)
    assert code == 2
    assert "--as-of" in err
    assert "Traceback" not in err
    code, _, err = run(["sla", "scan", "--store", f"sqlite:///{clean_env / 'none.sqlite'}"], capsys)
    assert code == 2
    assert "no store at" in err


def test_the_service_report_shows_both_levels_and_the_calendar(
    clean_env: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (clean_env / "crm.toml").write_text(OFFICE)
    url = f"sqlite:///{tmp_path / 'desk.sqlite'}"
    crm = CRM(url)
    try:
        cid = crm.register_customer(kind="individual", name="Wang Fang", code="WF-1")
        with crm.context(occurred_at=MON):
            late = crm.open_ticket(cid, kind="inquiry", subject="Late answer", channel="phone")
            crm.open_ticket(cid, kind="request", subject="New user", channel="phone")
        with crm.context(occurred_at=MON + timedelta(minutes=30)):
            crm.respond_to_ticket(cid, late, message="sorry")
    finally:
        crm.close()
    code, out, err = run(["report", "service", "--store", url, "--format", "json"], capsys)
    assert code == 0, err
    report = as_json(out)
    text = json.dumps(report)
    assert "Service levels (tickets)" in text
    assert "Beijing office: Asia/Shanghai" in text
    levels = next(s for s in report if s.get("title", "").startswith("Service levels"))
    rows = {r["clock"]: r for r in levels["rows"]}
    assert rows["first response"]["breached"] == 1
    assert rows["first response"]["running"] == 1
    assert rows["resolution"]["running"] == 2
