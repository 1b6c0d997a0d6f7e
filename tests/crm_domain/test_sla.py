"""Service levels on a business-hours calendar: weekends, after hours, holidays, time zones."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crm_domain import CRM, DEFAULT_SLA, BusinessCalendar, SlaPolicy
from crm_domain.errors import InvalidCommandError
from crm_domain.values import Priority, TicketKind

CAL = BusinessCalendar()  # Mon-Fri 09:00-17:00 UTC
MON = datetime(2031, 3, 3, tzinfo=UTC)  # Monday 3 March 2031
FRI = MON + timedelta(days=4)
SAT = MON + timedelta(days=5)


def at(day: datetime, hh: int, mm: int = 0) -> datetime:
    return day.replace(hour=hh, minute=mm)


def test_mon_is_a_monday() -> None:
    assert MON.weekday() == 0


@pytest.mark.parametrize(
    ("opened", "due"),
    [
        (at(MON, 10), at(MON, 10, 10)),  # during working hours
        (at(MON, 16, 55), at(MON + timedelta(days=1), 9, 5)),  # runs over closing time
        (at(MON, 7), at(MON, 9, 10)),  # before opening
        (at(MON, 17), at(MON + timedelta(days=1), 9, 10)),  # at closing time
        (at(MON, 20), at(MON + timedelta(days=1), 9, 10)),  # after hours
        (at(FRI, 16, 58), at(MON + timedelta(days=7), 9, 8)),  # over the weekend
        (at(SAT, 12), at(MON + timedelta(days=7), 9, 10)),  # opened on a Saturday
    ],
)
def test_inquiry_answered_within_ten_working_minutes(opened: datetime, due: datetime) -> None:
    assert DEFAULT_SLA.response_due(TicketKind.INQUIRY, Priority.NORMAL, opened) == due


@pytest.mark.parametrize(
    ("opened", "due"),
    [
        (at(MON, 10), at(MON, 14)),
        (at(MON, 9), at(MON, 13)),
        (at(MON, 15), at(MON + timedelta(days=1), 11)),
        (at(FRI, 15), at(MON + timedelta(days=7), 11)),
        (at(FRI, 17, 30), at(MON + timedelta(days=7), 13)),
    ],
)
def test_complaint_handled_within_half_a_working_day(opened: datetime, due: datetime) -> None:
    assert DEFAULT_SLA.target(TicketKind.COMPLAINT, Priority.NORMAL) == timedelta(hours=4)
    assert DEFAULT_SLA.due(TicketKind.COMPLAINT, Priority.NORMAL, opened) == due


def test_half_a_working_day_follows_the_calendar() -> None:
    long_days = SlaPolicy(calendar=BusinessCalendar(opens=time(8, 30), closes=time(17, 30)))
    assert long_days.target(TicketKind.COMPLAINT, Priority.NORMAL) == timedelta(hours=4, minutes=30)
    assert long_days.due(TicketKind.COMPLAINT, Priority.NORMAL, at(MON, 8, 30)) == at(MON, 13)


def test_holidays_are_not_working_time() -> None:
    holiday = SlaPolicy(calendar=BusinessCalendar(holidays=frozenset({date(2031, 3, 4)})))
    due = holiday.response_due(TicketKind.INQUIRY, Priority.NORMAL, at(MON, 16, 55))
    assert due == at(MON + timedelta(days=2), 9, 5)  # Tuesday is a holiday: Wednesday


def test_custom_workdays_and_targets() -> None:
    six_days = BusinessCalendar(workdays=frozenset({0, 1, 2, 3, 4, 5}))
    policy = SlaPolicy(calendar=six_days, targets={TicketKind.INQUIRY: timedelta(minutes=30)})
    assert policy.due(TicketKind.INQUIRY, Priority.NORMAL, at(FRI, 16, 50)) == at(SAT, 9, 20)
    assert policy.target(TicketKind.REQUEST, Priority.NORMAL) == timedelta(hours=8)


def test_priority_tightens_the_target() -> None:
    assert DEFAULT_SLA.target(TicketKind.INCIDENT, Priority.NORMAL) == timedelta(hours=4)
    assert DEFAULT_SLA.target(TicketKind.INCIDENT, Priority.HIGH) == timedelta(hours=3)
    assert DEFAULT_SLA.target(TicketKind.INCIDENT, Priority.URGENT) == timedelta(hours=2)
    assert DEFAULT_SLA.target(TicketKind.INCIDENT, Priority.LOW) == timedelta(hours=4)


def test_calendar_in_a_local_time_zone() -> None:
    cal = BusinessCalendar(timezone="Asia/Shanghai")
    opened = datetime(2031, 3, 3, 8, 55, tzinfo=UTC)  # 16:55 in Guangzhou
    due = cal.add(opened, timedelta(minutes=10))
    assert due.tzinfo is UTC
    assert due.astimezone(ZoneInfo("Asia/Shanghai")) == datetime(
        2031, 3, 4, 9, 5, tzinfo=ZoneInfo("Asia/Shanghai")
    )


def test_daylight_saving_change_over_a_weekend() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    cal = BusinessCalendar(timezone="Europe/Berlin")
    opened = datetime(2031, 3, 28, 16, 55, tzinfo=berlin)  # Friday before the clocks change
    due = cal.add(opened, timedelta(minutes=10)).astimezone(berlin)
    assert (due.date(), due.time()) == (date(2031, 3, 31), time(9, 5))
    assert due.utcoffset() == timedelta(hours=2)


def test_elapsed_counts_only_working_time() -> None:
    assert CAL.elapsed(at(FRI, 16), at(MON + timedelta(days=7), 10)) == timedelta(hours=2)
    assert CAL.elapsed(at(MON, 10), at(MON, 9)) == timedelta(0)
    assert CAL.elapsed(at(SAT, 10), at(SAT, 15)) == timedelta(0)


def test_calendar_validation() -> None:
    with pytest.raises(ValueError, match="close after it opens"):
        BusinessCalendar(opens=time(17), closes=time(9))
    with pytest.raises(Exception, match="Mars"):
        BusinessCalendar(timezone="Mars/Olympus_Mons")
    with pytest.raises(ValueError, match="timezone-aware"):
        CAL.add(datetime(2031, 3, 3, 10), timedelta(minutes=10))
    with pytest.raises(ValueError, match="no working time"):
        BusinessCalendar(workdays=frozenset()).add(at(MON, 10), timedelta(minutes=1))


def test_application_uses_its_sla_policy() -> None:
    policy = SlaPolicy(targets={TicketKind.INQUIRY: timedelta(minutes=30)})
    app = CRM("memory://", sla=policy)
    cid = app.register_customer(kind="individual", name="Chen", code="P-1")
    with app.context(occurred_at=at(FRI, 16, 45)):
        inquiry = app.open_ticket(cid, kind="inquiry", subject="s", channel="phone")
        complaint = app.open_ticket(cid, kind="complaint", subject="s", channel="phone")
    customer = app.customer(cid)
    assert customer.ticket(inquiry).due_at == at(MON + timedelta(days=7), 9, 15)
    assert customer.ticket(complaint).due_at == at(MON + timedelta(days=7), 12, 45)
    assert customer.ticket(inquiry).opened_at == at(FRI, 16, 45)


def test_application_with_a_calendar_that_never_works() -> None:
    app = CRM("memory://", sla=SlaPolicy(calendar=BusinessCalendar(workdays=frozenset())))
    cid = app.register_customer(kind="individual", name="Chen", code="P-1")
    before = app.app.recorder.max_notification_id()
    with pytest.raises(InvalidCommandError):
        app.open_ticket(cid, kind="inquiry", subject="s", channel="phone")
    assert app.app.recorder.max_notification_id() == before


@settings(max_examples=60, deadline=None)
@given(
    start=st.datetimes(
        min_value=datetime(2030, 1, 1), max_value=datetime(2032, 12, 31), timezones=st.just(UTC)
    ),
    minutes=st.integers(min_value=1, max_value=3 * 8 * 60),
)
def test_due_time_is_exactly_the_target_in_working_time(start: datetime, minutes: int) -> None:
    cal = BusinessCalendar(timezone="Asia/Shanghai", holidays=frozenset({date(2031, 10, 1)}))
    duration = timedelta(minutes=minutes)
    due = cal.add(start, duration)
    assert due > start
    assert cal.elapsed(start, due) == duration
    local = due.astimezone(ZoneInfo("Asia/Shanghai"))
    assert cal.is_working_day(local.date())
    assert cal.opens < local.time() <= cal.closes
