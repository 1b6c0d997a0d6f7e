"""The office calendar (issue 10, "Service clocks"): several periods per weekday, holidays and
make-up working days, 24x7 desks across DST, loading from a TOML file and from settings."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crm_domain import CRM, BusinessCalendar, SlaPolicy
from crm_domain.errors import ConfigurationError
from crm_domain.settings import CRMSettings
from crm_domain.sla import CalendarSettings, WorkingPeriod, parse_hours
from crm_domain.values import Priority, TicketKind

SHANGHAI = ZoneInfo("Asia/Shanghai")
BEIJING_WEEK = BusinessCalendar(timezone="Asia/Shanghai", closes=time(18))  # Mon-Fri 09-18
SPLIT_DAY = BusinessCalendar(
    timezone="Asia/Shanghai",
    hours=parse_hours({"mon-fri": ["09:00-12:00", "13:30-18:00"], "sat": ["09:00-12:00"]}),
)
CHINA = BusinessCalendar(
    timezone="Asia/Shanghai",
    country="CN",
    hours=parse_hours({"mon-fri": ["09:00-12:00", "13:30-18:00"]}),
)


def bj(*args: int) -> datetime:
    return datetime(*args, tzinfo=SHANGHAI)  # type: ignore[misc]


# ----- the examples -----------------------------------------------------------------


def test_beijing_inquiry_opened_friday_evening_is_due_monday_morning() -> None:
    policy = SlaPolicy(calendar=BEIJING_WEEK)
    opened = bj(2026, 11, 27, 17, 55)  # a Friday, 17:55 in Beijing (09:55 UTC)
    due = policy.response_due(TicketKind.INQUIRY, Priority.NORMAL, opened)
    assert due == bj(2026, 11, 30, 9, 5)  # Monday 09:05, not Friday 18:05


def test_beijing_inquiry_opened_monday_morning_is_due_ten_minutes_later() -> None:
    policy = SlaPolicy(calendar=BEIJING_WEEK)
    opened = bj(2026, 11, 30, 10, 0)
    assert policy.response_due(TicketKind.INQUIRY, Priority.NORMAL, opened) == bj(
        2026, 11, 30, 10, 10
    )
    # The same instant given in UTC (02:00Z) gives the same deadline, in UTC.
    due_utc = policy.response_due(TicketKind.INQUIRY, Priority.NORMAL, opened.astimezone(UTC))
    assert due_utc.tzinfo is UTC
    assert due_utc == bj(2026, 11, 30, 10, 10)


def test_complaint_opened_in_the_lunch_break_of_a_split_day_is_due_at_17_15() -> None:
    policy = SlaPolicy(calendar=SPLIT_DAY)
    assert SPLIT_DAY.working_day == timedelta(hours=7, minutes=30)
    assert policy.target(TicketKind.COMPLAINT, Priority.NORMAL) == timedelta(hours=3, minutes=45)
    due = policy.due(TicketKind.COMPLAINT, Priority.NORMAL, bj(2026, 11, 30, 12, 30))
    assert due == bj(2026, 11, 30, 17, 15)


def test_several_periods_per_weekday_and_a_saturday_morning() -> None:
    friday_evening = bj(2026, 11, 27, 17, 55)
    assert SPLIT_DAY.add(friday_evening, timedelta(minutes=10)) == bj(2026, 11, 28, 9, 5)
    saturday_noon = bj(2026, 11, 28, 11, 55)
    assert SPLIT_DAY.add(saturday_noon, timedelta(minutes=10)) == bj(2026, 11, 30, 9, 5)
    morning = bj(2026, 11, 30, 11, 50)  # runs over the lunch break
    assert SPLIT_DAY.add(morning, timedelta(minutes=20)) == bj(2026, 11, 30, 13, 40)
    assert SPLIT_DAY.elapsed(bj(2026, 11, 30, 8), bj(2026, 11, 30, 20)) == timedelta(
        hours=7, minutes=30
    )
    assert SPLIT_DAY.week_lines() == [
        ("mon-fri", "09:00-12:00, 13:30-18:00"),
        ("sat", "09:00-12:00"),
        ("sun", "closed"),
    ]


def test_china_make_up_working_days_of_2025_are_working_days() -> None:
    assert CHINA.is_working_day(date(2025, 9, 28))  # a Sunday, worked for National Day
    assert CHINA.is_working_day(date(2025, 10, 11))  # a Saturday, worked too
    assert not CHINA.is_working_day(date(2025, 10, 1))  # National Day
    assert not CHINA.is_working_day(date(2025, 10, 8))  # the day off moved from 11 October
    assert not CHINA.is_working_day(date(2025, 9, 27))  # an ordinary Saturday
    assert date(2025, 9, 28) in CHINA.extra_working_days_in(2025)
    assert date(2025, 10, 11) in CHINA.extra_working_days_in(2025)
    assert date(2025, 10, 1) in dict(CHINA.holidays_in(2025))
    # A ticket opened on the Friday before is worked on the make-up Sunday ...
    friday = bj(2025, 9, 26, 17, 55)
    assert CHINA.add(friday, timedelta(minutes=10)) == bj(2025, 9, 28, 9, 5)
    # ... and one opened on 30 September waits out the whole Golden Week.
    assert CHINA.add(bj(2025, 9, 30, 17, 55), timedelta(minutes=10)) == bj(2025, 10, 9, 9, 5)


def test_listed_holidays_and_extra_working_days() -> None:
    cal = BusinessCalendar(
        timezone="Asia/Shanghai",
        holidays=frozenset({date(2026, 12, 1)}),
        extra_working_days=frozenset({date(2026, 12, 6)}),  # a Sunday
    )
    assert not cal.is_working_day(date(2026, 12, 1))
    assert cal.is_working_day(date(2026, 12, 6))
    assert cal.periods_on(date(2026, 12, 6)) == (WorkingPeriod(time(9), time(17)),)
    with pytest.raises(ConfigurationError, match="both a holiday and an extra working day"):
        BusinessCalendar(
            holidays=frozenset({date(2026, 12, 1)}),
            extra_working_days=frozenset({date(2026, 12, 1)}),
        )
    # A listed extra working day overrides the country's holiday.
    cal = BusinessCalendar(
        timezone="Asia/Shanghai", country="CN", extra_working_days=frozenset({date(2025, 10, 1)})
    )
    assert cal.is_working_day(date(2025, 10, 1))


@pytest.mark.parametrize(
    ("zone", "start"),
    [
        ("Europe/Berlin", datetime(2026, 3, 29, 0, 30)),  # spring forward at 02:00
        ("Europe/Berlin", datetime(2026, 10, 25, 0, 30)),  # fall back at 03:00
        ("America/New_York", datetime(2026, 3, 8, 0, 30)),
        ("America/New_York", datetime(2026, 11, 1, 0, 30)),
    ],
)
def test_a_round_the_clock_desk_counts_real_hours_across_dst(zone: str, start: datetime) -> None:
    cal = BusinessCalendar.always_open(zone)
    opened = start.replace(tzinfo=ZoneInfo(zone))
    due = cal.add(opened, timedelta(hours=4))
    assert due.astimezone(UTC) - opened.astimezone(UTC) == timedelta(hours=4)
    assert cal.elapsed(opened, due) == timedelta(hours=4)
    # Also without the always-open shortcut (a 24x7 desk with a holiday elsewhere).
    with_holiday = BusinessCalendar(
        timezone=zone, hours=cal.hours, holidays=frozenset({date(2000, 1, 1)})
    )
    assert not with_holiday.is_always_open
    due2 = with_holiday.add(opened, timedelta(hours=4))
    assert due2.astimezone(UTC) - opened.astimezone(UTC) == timedelta(hours=4)
    assert with_holiday.elapsed(opened, due2) == timedelta(hours=4)


def test_working_periods_are_checked() -> None:
    assert str(WorkingPeriod.parse("13:30-24:00")) == "13:30-24:00"
    assert WorkingPeriod.parse("00:00-24:00").length == timedelta(days=1)
    for bad in ("9-12", "12:00-09:00", "09:00"):
        with pytest.raises(ConfigurationError):
            WorkingPeriod.parse(bad)
    with pytest.raises(ConfigurationError, match="overlap"):
        BusinessCalendar(hours=parse_hours({"mon": ["09:00-12:00", "11:00-13:00"]}))
    with pytest.raises(ConfigurationError, match="twice"):
        parse_hours({"mon-fri": ["09:00-12:00"], "fri": ["13:00-14:00"]})
    with pytest.raises(ConfigurationError, match="not a weekday"):
        parse_hours({"funday": ["09:00-12:00"]})
    with pytest.raises(ConfigurationError, match="country"):
        BusinessCalendar(country="XX")


@settings(max_examples=40, deadline=None)
@given(
    start=st.datetimes(
        min_value=datetime(2025, 1, 1), max_value=datetime(2026, 12, 31), timezones=st.just(UTC)
    ),
    minutes=st.integers(min_value=1, max_value=3 * 8 * 60),
)
def test_due_time_is_exactly_the_target_on_a_split_calendar(start: datetime, minutes: int) -> None:
    duration = timedelta(minutes=minutes)
    due = CHINA.add(start, duration)
    assert due > start
    assert CHINA.elapsed(start, due) == duration
    local = due.astimezone(SHANGHAI)
    assert CHINA.is_working_day(local.date())
    assert any(p.start < local.time() <= p.end for p in CHINA.periods_on(local.date()))


# ----- loading: one file format, settings, the constructor ------------------------------------

OFFICE_TOML = """
name = "Beijing office"
timezone = "Asia/Shanghai"
country = "CN"
holidays = [2026-12-31]
extra_working_days = ["2026-12-27"]

[hours]
mon-fri = ["09:00-12:00", "13:30-18:00"]
sat = ["09:00-12:00"]
"""


def test_a_calendar_loads_from_a_toml_file(tmp_path: Path) -> None:
    path = tmp_path / "office.toml"
    path.write_text(OFFICE_TOML)
    cal = BusinessCalendar.from_file(path)
    assert cal.name == "Beijing office"
    assert cal.timezone == "Asia/Shanghai"
    assert cal.week == SPLIT_DAY.week
    assert cal.is_working_day(date(2025, 9, 28))
    assert not cal.is_working_day(date(2026, 12, 31))
    assert cal.is_working_day(date(2026, 12, 27))
    assert "Asia/Shanghai" in cal.describe()


def test_a_calendar_file_without_a_zone_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "office.toml"
    path.write_text('[hours]\nmon-fri = ["09:00-17:00"]\n')
    with pytest.raises(ConfigurationError, match="explicit zone"):
        BusinessCalendar.from_file(path)
    path.write_text('timezone = "Asia/Shanghai"\nhour = 3\n')
    with pytest.raises(ConfigurationError, match="unknown key"):
        BusinessCalendar.from_file(path)
    with pytest.raises(ConfigurationError, match="cannot read"):
        BusinessCalendar.from_file(tmp_path / "missing.toml")


def test_a_round_the_clock_calendar_file(tmp_path: Path) -> None:
    path = tmp_path / "desk.toml"
    path.write_text('timezone = "Europe/Berlin"\nalways_open = true\n')
    assert BusinessCalendar.from_file(path).is_always_open


def test_the_calendar_comes_from_settings_and_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("CRM_CONFIG", "CRM_STORE_URL"):
        monkeypatch.delenv(name, raising=False)
    assert not CRMSettings().calendar.explicit  # the UTC default, printed where deadlines are
    monkeypatch.setenv("CRM_CALENDAR__TIMEZONE", "Asia/Shanghai")
    monkeypatch.setenv("CRM_CALENDAR__HOURS", '{"mon-fri": ["09:00-12:00", "13:30-18:00"]}')
    monkeypatch.setenv("CRM_CALENDAR__COUNTRY", "CN")
    crm = CRM("memory://")
    assert crm.settings.calendar.explicit
    assert crm.sla.calendar.week == CHINA.week
    assert crm.sla.calendar.is_working_day(date(2025, 9, 28))
    monkeypatch.setenv("CRM_CALENDAR__HOURS", '{"mon-fri": ["12:00-09:00"]}')
    with pytest.raises(ConfigurationError, match="calendar"):
        CRMSettings.load()


def test_the_calendar_file_setting(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "office.toml"
    path.write_text(OFFICE_TOML)
    config = tmp_path / "crm.toml"
    config.write_text(f'store_url = "memory://"\n[calendar]\nfile = "{path}"\n')
    monkeypatch.setenv("CRM_CONFIG", str(config))
    crm = CRM()
    assert crm.sla.calendar.name == "Beijing office"
    with pytest.raises(ConfigurationError, match="excludes"):
        CRMSettings.load(calendar={"file": str(path), "timezone": "Europe/Berlin"})
    assert CalendarSettings(file=path).business_calendar().timezone == "Asia/Shanghai"


def test_the_constructor_takes_a_calendar() -> None:
    crm = CRM("memory://", calendar=SPLIT_DAY)
    assert crm.sla.calendar is SPLIT_DAY
    policy = SlaPolicy(targets={TicketKind.INQUIRY: timedelta(hours=1)})
    crm = CRM("memory://", sla=policy, calendar=CHINA)
    assert crm.sla.calendar is CHINA
    assert crm.sla.target(TicketKind.INQUIRY, Priority.NORMAL) == timedelta(hours=1)
    cid = crm.register_customer(kind="individual", name="Chen", code="P-1")
    with crm.context(occurred_at=bj(2025, 9, 26, 17, 55)):
        ticket = crm.open_ticket(cid, kind="inquiry", subject="s", channel="phone")
    assert crm.customer(cid).ticket(ticket).response_due_at == bj(2025, 9, 28, 9, 5)
