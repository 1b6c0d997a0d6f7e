"""``crm sla calendar|scan``: the office calendar in force, and the breach scan.

``crm sla calendar`` prints the calendar the service levels run on (zone, weekly hours,
holidays and make-up working days of a year), and says so when it is the default (UTC,
Monday to Friday 09:00-17:00) because no calendar is configured. ``crm sla scan`` records
the breaches of still-open tickets as of now (or ``--as-of``); it is idempotent, so a
scheduler can run it every minute.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from adapters.cli.options import Format, OutputFormat, Store, existing_crm, load_settings
from adapters.cli.render import Section, render
from crm_domain.sla import CalendarSettings

sla_app = typer.Typer(
    name="sla",
    help="Service levels: the office calendar in force, and the breach scan.",
    no_args_is_help=True,
)

#: The actor recorded on the breaches a scan records.
SCAN_ACTOR = "sla-scan"


def calendar_line(settings: CalendarSettings) -> str:
    """The calendar as one line, marked when it is the default, for wherever deadlines show."""
    line = settings.business_calendar().describe()
    if not settings.explicit:
        line += " [the default: no calendar configured; set [calendar] in crm.toml]"
    return line


def calendar_sections(settings: CalendarSettings, year: int) -> list[Section]:
    """The calendar in force as report sections: summary, weekly hours, days off, extra days."""
    calendar = settings.business_calendar()
    where = (
        f"file {settings.file}"
        if settings.file
        else "settings"
        if settings.explicit
        else "the default (no calendar configured: set [calendar] in crm.toml or CRM_CALENDAR__*)"
    )
    summary = Section("Office calendar", ("setting", "value"), measures=True)
    if calendar.name:
        summary.add("name", calendar.name)
    summary.add("time zone", calendar.timezone)
    summary.add("from", where)
    summary.add("country holidays", calendar.country or "-")
    summary.add("a full working day", str(calendar.working_day))
    week = Section("Working hours", ("days", "periods"))
    for days, periods in calendar.week_lines():
        week.add(days, periods)
    off = Section(f"Holidays {year}", ("date", "weekday", "name"), empty_note="none")
    for day, name in calendar.holidays_in(year):
        off.add(day, day.strftime("%a"), name)
    extra = Section(
        f"Extra working days {year} (make-up days)",
        ("date", "weekday", "hours"),
        empty_note="none",
    )
    hours = ", ".join(map(str, calendar.week[calendar.extra_day_hours]))
    for day in calendar.extra_working_days_in(year):
        extra.add(day, day.strftime("%a"), hours)
    return [summary, week, off, extra]


@sla_app.command("calendar")
def calendar(
    year: Annotated[
        int | None,
        typer.Option("--year", min=1, max=9999, help="whose holidays to list [default: this year]"),
    ] = None,
    fmt: Format = OutputFormat.TABLE,
) -> None:
    """Print the office calendar the deadlines run on: zone, hours, holidays, make-up days."""
    settings = load_settings()
    render(calendar_sections(settings.calendar, year or datetime.now(UTC).year), fmt)


def _as_of(text: str | None, settings: CalendarSettings) -> datetime:
    if text is None:
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is not an ISO date-time (e.g. 2026-03-02T10:00+08:00)",
            param_hint="--as-of",
        ) from None
    if moment.tzinfo is None:  # a wall-clock time at the office
        moment = moment.replace(tzinfo=settings.business_calendar().zone)
    return moment


@sla_app.command("scan")
def scan(
    store: Store = None,
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of",
            metavar="DATETIME",
            help="judge as of this ISO date-time (without an offset: the office's local "
            "time) [default: now]",
            show_default=False,
        ),
    ] = None,
    fmt: Format = OutputFormat.TABLE,
) -> None:
    """Record the SLA breaches of still-open tickets as of now (idempotent: run it every
    minute from a scheduler; a second run records nothing new)."""
    with existing_crm(store) as crm:
        settings = crm.settings
        moment = _as_of(as_of, settings.calendar)
        with crm.context(actor=SCAN_ACTOR):
            found = crm.scan_sla_breaches(as_of=moment)
    table = Section(
        f"SLA breaches recorded as of {moment.isoformat()} ({len(found):,})",
        ("customer", "ticket", "clock", "due"),
        empty_note="none: every open ticket is within its service levels, or already recorded",
    )
    zone = settings.calendar.business_calendar().zone
    for b in found:
        table.add(str(b.customer_id), str(b.ticket_id), b.clock.value, b.due_at.astimezone(zone))
    note = Section("Deadlines on", ("office calendar",))
    note.add(calendar_line(settings.calendar))
    render([table, note], fmt)
