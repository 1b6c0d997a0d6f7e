"""Service levels on a business-hours calendar.

The brief's real service plan: an inquiry gets a clear answer within 10 minutes, a
complaint is handled within half a working day. Deadlines only run in working hours, so
a complaint opened at 17:30 on a Friday is due on Monday morning. Both the calendar and
the targets are configurable.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from crm_domain.errors import ConfigurationError, InvalidCommandError
from crm_domain.values import Priority, TicketKind


@dataclass(frozen=True)
class BusinessCalendar:
    """Working days (0 = Monday), working hours and holidays in one time zone."""

    timezone: str = "UTC"
    workdays: frozenset[int] = frozenset({0, 1, 2, 3, 4})
    opens: time = time(9, 0)
    closes: time = time(17, 0)
    holidays: frozenset[date] = frozenset()

    def __post_init__(self) -> None:
        if self.closes <= self.opens:
            raise ConfigurationError("a business day must close after it opens")
        try:
            ZoneInfo(self.timezone)  # fail early on an unknown zone
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigurationError(f"unknown time zone {self.timezone!r}") from None

    @property
    def working_day(self) -> timedelta:
        """The length of one working day (opening to closing time)."""
        return datetime.combine(date.min, self.closes) - datetime.combine(date.min, self.opens)

    def is_working_day(self, day: date) -> bool:
        """True on a working weekday that is not a holiday."""
        return day.weekday() in self.workdays and day not in self.holidays

    def add(self, start: datetime, duration: timedelta) -> datetime:
        """The instant ``duration`` of working time after ``start``.

        A naive ``start``, or one so near the end of the calendar that the deadline would
        fall past year 9999, is an :class:`~crm_domain.errors.InvalidCommandError`.
        """
        _require_aware(start, "start")
        try:
            return self._add(start, duration)
        except OverflowError:
            raise InvalidCommandError(
                f"no deadline {duration} of working time after {start.isoformat()}: "
                "it would fall outside years 1-9999"
            ) from None

    def _add(self, start: datetime, duration: timedelta) -> datetime:
        zone = ZoneInfo(self.timezone)
        local = start.astimezone(zone)
        remaining = duration
        for _ in range(3660):  # at most ten years of days; guards a calendar with no workdays
            day = local.date()
            if self.is_working_day(day):
                opens = datetime.combine(day, self.opens, zone)
                closes = datetime.combine(day, self.closes, zone)
                begin = max(local, opens)
                if begin < closes:
                    available = closes - begin
                    if remaining <= available:
                        return (begin + remaining).astimezone(start.tzinfo)
                    remaining -= available
            local = datetime.combine(day + timedelta(days=1), time(0, 0), zone)
        raise ConfigurationError("business calendar has no working time in ten years")

    def elapsed(self, start: datetime, end: datetime) -> timedelta:
        """Working time between two instants (zero if end is before start)."""
        _require_aware(start, "start")
        _require_aware(end, "end")
        try:
            return self._elapsed(start, end)
        except OverflowError:
            raise InvalidCommandError(
                f"working time between {start.isoformat()} and {end.isoformat()} "
                "reaches past the calendar's years 1-9999"
            ) from None

    def _elapsed(self, start: datetime, end: datetime) -> timedelta:
        if end <= start:
            return timedelta(0)
        zone = ZoneInfo(self.timezone)
        a, b = start.astimezone(zone), end.astimezone(zone)
        total = timedelta(0)
        day = a.date()
        while day <= b.date():
            if self.is_working_day(day):
                opens = datetime.combine(day, self.opens, zone)
                closes = datetime.combine(day, self.closes, zone)
                lo, hi = max(a, opens), min(b, closes)
                if hi > lo:
                    total += hi - lo
            day += timedelta(days=1)
        return total


def _require_aware(moment: datetime, what: str) -> None:
    if not isinstance(moment, datetime) or moment.utcoffset() is None:
        raise InvalidCommandError(f"{what} must be a timezone-aware datetime, got {moment!r}")


@dataclass(frozen=True)
class SlaPolicy:
    """Working-time targets per ticket kind, optionally tightened per priority."""

    calendar: BusinessCalendar = field(default_factory=BusinessCalendar)
    targets: Mapping[TicketKind, timedelta] = field(default_factory=dict)
    priority_factor: Mapping[Priority, float] = field(default_factory=dict)

    def target(self, kind: TicketKind, priority: Priority) -> timedelta:
        """The working time allowed for a ticket of this kind and priority."""
        if kind in self.targets:
            base = self.targets[kind]
        elif kind is TicketKind.COMPLAINT:
            base = self.calendar.working_day / 2
        else:
            base = DEFAULT_TARGETS[kind]
        return base * self.priority_factor.get(priority, 1.0)

    def due(self, kind: TicketKind, priority: Priority, opened_at: datetime) -> datetime:
        """When a ticket opened at ``opened_at`` is due, in working time."""
        return self.calendar.add(opened_at, self.target(kind, priority))


#: From the brief: inquiries answered within 10 minutes; complaints handled within half a
#: working day (computed from the calendar); requests within a working day of 8 hours;
#: incidents within 4 working hours.
DEFAULT_TARGETS: Mapping[TicketKind, timedelta] = {
    TicketKind.INQUIRY: timedelta(minutes=10),
    TicketKind.REQUEST: timedelta(hours=8),
    TicketKind.INCIDENT: timedelta(hours=4),
}

DEFAULT_SLA = SlaPolicy(
    priority_factor={Priority.URGENT: 0.5, Priority.HIGH: 0.75},
)
