"""``crm report pipeline|service|value|customer|handover``: the read models as reports.

Each ``*_report`` function turns query answers (``projections.*Queries``) into
:class:`~adapters.cli.render.Section` objects, which :mod:`adapters.cli.render` prints as
tables, JSON or CSV. Before printing, the read models are brought up to date with the
store, with a progress bar when that takes a while (the first report after a large import).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager, nullcontext
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any
from uuid import UUID

import typer
from eventsourcing.application import Application
from rich.console import Console
from sqlalchemy import Engine

from adapters.cli.options import Format, OutputFormat, Store, Views, load_settings
from adapters.cli.progress import progress
from adapters.cli.quotes import AsOf
from adapters.cli.render import Section, render
from crm_domain.errors import CustomerNotFoundError, ProjectionLagError, ReadModelRebuildingError
from crm_domain.processes import end_of_day
from crm_domain.settings import CRMSettings
from crm_domain.sla import CalendarSettings
from projections.control import held_by
from projections.runner import ReadModelRunner
from projections.views import ReadModelView

#: Lag (events) from which catching up is announced with a progress bar.
ANNOUNCE_LAG = 2000
#: Seconds between progress updates while catching up.
POLL_SECONDS = 0.2
#: The levels of a service clock, as the service report's columns.
_LEVELS = ("met", "breached", "running", "paused")


def _pct(value: Decimal | None) -> str:
    return f"{value * 100:.1f}%" if value is not None else "-"


def _minutes(value: Decimal | None) -> str:
    return f"{value:,} min" if value is not None else "-"


# ----- the reports ---------------------------------------------------------------------
def pipeline_report(engine: Engine, *, as_of: date | None = None) -> list[Section]:
    """The pipeline report (``crm report pipeline``) as sections; quotes are counted by their
    status as of ``as_of`` (default: today, UTC), lapsed ones as expired."""
    from projections.pipeline import PipelineQueries

    q = PipelineQueries(engine)
    stages = Section("Open pipeline by stage", ("stage", "open", "amount", "weighted"))
    for t in q.by_stage():
        stages.add(t.stage, t.count, t.amount, t.weighted)
    forecast = Section(
        "Forecast by category", ("category", "currency", "deals", "amount", "weighted")
    )
    for f in q.forecast_by_category():
        forecast.add(f.key, f.currency, f.count, f.amount, f.weighted)
    conversion = Section("Stage conversion", ("stage", "reached", "advanced", "rate"))
    for c in q.conversion():
        conversion.add(c.stage, c.reached, c.advanced, _pct(c.rate))
    wins = q.win_rate()
    summary = Section("Win rate", ("measure", "value"), measures=True)
    summary.add("won / lost", f"{wins.won:,} / {wins.lost:,}")
    summary.add("win rate", _pct(wins.rate))
    cycle = wins.average_cycle_days
    summary.add("average sales cycle", f"{cycle} days" if cycle is not None else "-")
    revenue = Section(
        "Won revenue (net of cancelled and returned orders)",
        ("currency", "won deals", "amount", "reversed", "net"),
    )
    for r in q.revenue():
        revenue.add(r.currency, r.won, r.amount, r.reversed, r.net)
    top = Section(
        "Nearest to signing (top 10 open opportunities)",
        ("opportunity", "account", "owner", "stage", "prob.", "amount", "currency", "close by"),
    )
    for o in q.open_opportunities(page_size=10).items:
        top.add(
            o.name,
            o.account_name,
            o.owner,
            o.stage,
            _pct(o.probability),
            o.amount,
            o.currency,
            o.expected_close,
        )
    day = as_of or datetime.now(UTC).date()
    quotes = Section(f"Quotes (as of {day})", ("status", "quotes"), empty_note="no quotes yet")
    for status, count in q.quote_counts(as_of=day).items():
        quotes.add(status, count)
    return [stages, forecast, conversion, summary, revenue, top, quotes]


def service_report(
    engine: Engine, *, now: datetime, calendar: CalendarSettings | None = None
) -> list[Section]:
    """The service desk report (``crm report service``) as sections; with ``calendar``, it
    says which office calendar the deadlines run on (and when that is the default)."""
    from adapters.cli.sla import calendar_line
    from projections.service_desk import ServiceDeskQueries

    q = ServiceDeskQueries(engine)
    load = Section("Open tickets by priority and assignee", ("priority", "assignee", "open"))
    for c in q.open_by_priority_and_assignee():
        load.add(c.priority, c.assignee or "(unassigned)", c.count)
    breached = q.breached(page_size=10)
    late = Section(
        f"Open tickets that breached their SLA ({breached.total:,}; first 10)",
        ("customer", "subject", "priority", "due", "response", "resolution", "assignee"),
    )
    zone = calendar.business_calendar().zone if calendar is not None else UTC
    for t in breached.items:
        late.add(
            t.customer_name,
            t.subject,
            t.priority,
            t.due_at.astimezone(zone),
            t.response_level,
            t.resolution_level,
            t.assignee,
        )
    levels = q.service_levels()
    clocks = Section("Service levels (tickets)", ("clock", *_LEVELS))
    clocks.add("first response", *(levels.response[k] for k in _LEVELS))
    clocks.add("resolution", *(levels.resolution[k] for k in _LEVELS))
    times = q.response_times()
    sat = q.satisfaction()
    measures = Section("Service measures", ("measure", "value"), measures=True)
    measures.add("avg. first response", _minutes(times.average_first_response_minutes))
    measures.add("avg. resolution", _minutes(times.average_resolution_minutes))
    measures.add(
        "satisfaction (1-5)",
        f"{sat.average} from {sat.count:,} ratings" if sat.average is not None else "-",
    )
    measures.add(
        "loyal / at risk / dissatisfied",
        " / ".join(str(sat.by_class.get(k, 0)) for k in ("loyal", "at_risk", "dissatisfied")),
    )
    measures.add("due within 4 hours", q.due_soon(now=now).total)
    complaints = Section(
        "Complaints per customer (top 10)", ("customer", "complaints", "still open")
    )
    for k in q.complaints_per_customer(limit=10):
        complaints.add(k.customer_name, k.complaints, k.open_complaints)
    out = [load, late, clocks, measures, complaints]
    if calendar is not None:
        where = Section("Deadlines on", ("office calendar",))
        where.add(calendar_line(calendar))
        out.append(where)
    return out


def value_report(engine: Engine, *, as_of: datetime) -> list[Section]:
    """The customer value report (``crm report value``) as sections, per currency; the RFM
    scores count the orders placed by ``as_of`` and recency in days from it."""
    from projections.customer_value import CustomerValueQueries

    q = CustomerValueQueries(engine)
    out: list[Section] = []
    for currency in q.currencies():
        p = q.pareto(currency=currency)
        pareto = Section(f"Pareto ({currency})", ("measure", "value"), measures=True)
        pareto.add("customers with revenue", p.customers)
        pareto.add(f"top {p.top_customers:,} customers' revenue", p.top_revenue)
        pareto.add("total revenue", p.total_revenue)
        pareto.add("share of the top 20%", _pct(p.top_share))
        rfm = Section(
            f"Best customers by RFM ({currency}, as of {as_of.date()}, top 10)",
            ("customer", "RFM", "days since purchase", "purchase days", "orders", "revenue"),
        )
        for s in q.rfm(as_of=as_of, currency=currency, page_size=10).items:
            rfm.add(s.name, s.code, s.recency_days, s.frequency, s.orders, s.monetary)
        out += [pareto, rfm]
    if not out:
        out.append(Section("Customer value", ("currency",), empty_note="no booked revenue yet"))
    return out


def customer_report(
    engine: Engine,
    ref: str,
    *,
    by_code: Callable[[str], UUID] | None = None,
    calendar: CalendarSettings | None = None,
) -> list[Section]:
    """Customer 360, recent timeline and open tickets for a customer id or code.

    The read model matches codes exactly; ``by_code`` (the CRM's own, case-insensitive
    lookup) finds a code typed in another case, as ``CRM.customer_by_code`` does.
    """
    from projections.customer360 import Customer360Queries
    from projections.service_desk import ServiceDeskQueries
    from projections.timeline import TimelineQueries

    q = Customer360Queries(engine)
    try:
        customer = q.get(UUID(ref))
    except ValueError:
        try:
            customer = q.by_code(ref)
        except CustomerNotFoundError:
            if by_code is None:
                raise
            customer = q.get(by_code(ref))
    card = Section(f"{customer.name} ({customer.code})", ("field", "value"), measures=True)
    for label, value in (
        ("kind", customer.kind),
        ("active", "yes" if customer.active else "no"),
        ("lifecycle stage", customer.lifecycle_stage),
        ("manager", customer.manager or "-"),
        ("segment / grade", f"{customer.segment or '-'} / {customer.grade or '-'}"),
        ("e-mail / phone", f"{customer.email or '-'} / {customer.phone or '-'}"),
        (
            "consents",
            "; ".join(f"{p}: {', '.join(c)}" for p, c in customer.consents.items()) or "-",
        ),
        (
            "last contact",
            " ".join(
                x
                for x in (
                    customer.last_contact_at.strftime("%Y-%m-%d %H:%M")
                    if customer.last_contact_at
                    else "-",
                    customer.last_contact_channel or "",
                )
                if x
            ),
        ),
        (
            "contacts by channel",
            ", ".join(f"{k} {v}" for k, v in sorted(customer.contact_counts.items())) or "-",
        ),
        ("open tickets", str(customer.open_tickets)),
        ("satisfaction", str(customer.satisfaction or "-")),
    ):
        card.add(label, value)
    card.add("lifetime order value", customer.lifetime_value)
    history = Section("Recent activity (newest first)", ("when", "what", "by", "summary"))
    for entry in TimelineQueries(engine).for_customer(customer.customer_id, page_size=15).items:
        history.add(entry.occurred_at, entry.event_type, entry.actor, entry.summary)
    tickets = Section("Open tickets", ("subject", "priority", "due", "assignee"))
    zone = calendar.business_calendar().zone if calendar is not None else UTC
    for t in ServiceDeskQueries(engine).open_tickets(customer_id=customer.customer_id).items:
        tickets.add(t.subject, t.priority, t.due_at.astimezone(zone), t.assignee)
    out = [card, history, tickets]
    if calendar is not None:
        from adapters.cli.sla import calendar_line

        where = Section("Deadlines on", ("office calendar",))
        where.add(calendar_line(calendar))
        out.append(where)
    return out


def handover_report(engine: Engine, manager: str, *, now: datetime) -> list[Section]:
    """What a successor needs from ``manager``; says so when they own nothing (any more)."""
    from projections.handover import HandoverQueries

    q = HandoverQueries(engine)
    pack = q.for_manager(manager, now=now)
    owned = Section(
        f"Customers of {manager} ({len(pack.customers):,})", ("customer", "code", "stage")
    )
    for c in pack.customers:
        owned.add(c.name, c.code, c.lifecycle_stage)
    if not (pack.customers or pack.accounts or pack.opportunities):
        others = [m for m in q.managers() if m.manager != manager]
        names = ", ".join(f"{m.manager} ({m.customers:,})" for m in others) or "none"
        owned.empty_note = (
            f"{manager} manages no customers, accounts or open deals now (handed over "
            f"already, or a mistyped name?). Managers with customers: {names}"
        )
    deals = Section(
        "Open opportunities",
        ("opportunity", "stage", "prob.", "amount", "currency", "near signing"),
    )
    for o in pack.opportunities:
        deals.add(
            o.name,
            o.stage,
            _pct(o.probability),
            o.amount,
            o.currency,
            "yes" if o.near_signing else "",
        )
    quotes = Section(
        "Active quotes", ("version", "amount", "currency", "discount", "valid until", "issued by")
    )
    for qt in pack.quotes:
        quotes.add(
            qt.version, qt.amount, qt.currency, f"{qt.discount_pct}%", qt.valid_until, qt.issued_by
        )
    promises = Section(
        "Open commitments from contacts", ("promise", "owner", "due", "logged by", "overdue")
    )
    for p in pack.commitments:
        promises.add(p.description, p.owner, p.due, p.logged_by, "OVERDUE" if p.overdue else "")
    moved = Section(
        f"Handed over from or to {manager} (newest first)",
        ("when", "what", "customer", "name", "from", "to", "by"),
    )
    for m in pack.handed_over:
        moved.add(
            m.occurred_at, m.kind, m.customer_code, m.name, m.from_manager, m.to_manager, m.actor
        )
    moved.empty_note = "nothing handed over yet (`crm handover FROM TO --reason ...`)"
    return [owned, deals, quotes, promises, moved]


# ----- bringing the read models up to date ------------------------------------------------
@contextmanager
def current_read_models(
    source: str | Application[Any],
    views_url: str | None,
    *,
    catch_up: bool = True,
    timeout: float = 600.0,
    console: Console | None = None,
    read_models: Collection[str] | None = None,
) -> Iterator[Engine]:
    """The read models' database, first brought up to date with the store.

    ``source`` is a store URL, or an application open in this process (``memory://``).

    When they are behind by more than :data:`ANNOUNCE_LAG` events (the first report after
    a large import), say so on stderr and show the count, rate and time left.

    ``read_models`` are the ones the report reads (default: all). If a rebuild that is
    running holds one of them, :class:`~crm_domain.errors.ReadModelRebuildingError` says
    so at once (also with ``catch_up=False``): its tables are being replaced (on
    PostgreSQL, locked until the rebuild commits). Read models held by a rebuild that the
    report does not read are left to it; the others are caught up.
    """
    from projections.runner import follow, open_view

    if not catch_up:
        assert isinstance(source, str), "an in-process store is always caught up"
        view = open_view(source, views_url=views_url)
        try:
            _refuse_rebuilding(view, read_models)
            yield view.engine
        finally:
            view.engine.dispose()
        return
    console = console or Console(stderr=True)
    if isinstance(source, str):
        _fold_if_far_behind(source, views_url, console)
    with follow(source, views_url=views_url) as runner:
        head = runner.head()
        _wait(runner, head, timeout=timeout, console=console, read_models=read_models)
        engine = runner.view.engine
    try:
        yield engine
    finally:
        engine.dispose()


def _refuse_rebuilding(view: ReadModelView, read_models: Collection[str] | None) -> set[str]:
    """Raise :class:`ReadModelRebuildingError` if a running rebuild holds one of the
    ``read_models`` (None: any); else the names of the other read models it holds."""
    held = view.rebuilding()
    wanted = sorted(n for n in held if read_models is None or n in read_models)
    if wanted:
        who = "; ".join(held_by(n, held[n]) for n in wanted)
        raise ReadModelRebuildingError(
            f"being rebuilt: {who}. Run the report again when the rebuild is done "
            "(`crm projections status` shows it)"
        )
    return set(held)


def _fold_if_far_behind(store_url: str, views_url: str | None, console: Console) -> None:
    """Read models :data:`~projections.fold.FAST_CATCH_UP_LAG` or more events behind (the
    first report after a large import) are caught up by folding the log, with progress
    (shown only when there is something to catch up)."""
    from contextlib import ExitStack

    from projections.fold import FAST_CATCH_UP_LAG, catch_up

    with ExitStack() as stack:
        shown: list[Callable[[int, int], None]] = []

        def report(done: int, total: int) -> None:
            if not shown:
                console.print(
                    f"catching up: the read models are {total:,} events behind the store "
                    "(folding the log); `crm projections run` keeps them current"
                )
                shown.append(
                    stack.enter_context(progress("catching up", "events", console=console))
                )
            shown[0](done, total)

        catch_up(store_url, views_url=views_url, threshold=FAST_CATCH_UP_LAG, on_progress=report)


def _wait(
    runner: ReadModelRunner,
    head: int,
    *,
    timeout: float,
    console: Console,
    read_models: Collection[str] | None = None,
) -> None:
    deadline = time.monotonic() + timeout
    start = _position(runner, _refuse_rebuilding(runner.view, read_models))
    if start >= head:
        return
    behind = head - start
    announce = behind >= ANNOUNCE_LAG
    if announce:
        console.print(
            f"catching up: the read models are {behind:,} events behind the store "
            f"(at {start:,} of {head:,}); `crm projections run` keeps them current"
        )
    with (
        progress("catching up", "events", console=console)
        if announce
        else nullcontext(None) as show
    ):
        while True:
            done = _position(runner, _refuse_rebuilding(runner.view, read_models))
            if show is not None:
                show(done - start, behind)
            if done >= head:
                return
            if time.monotonic() > deadline:
                raise ProjectionLagError(
                    f"the read models did not catch up with the store in {timeout:g} s "
                    f"(at {done:,} of {head:,}); run `crm projections run` to keep them current"
                )
            runner.run_forever(timeout=POLL_SECONDS)  # re-raises the runner's error


def _position(runner: ReadModelRunner, rebuilding: Collection[str] = ()) -> int:
    """The least position of the read models no rebuild holds (the runner catches them up;
    the rebuild's are its own business)."""
    positions = runner.positions
    return min((p or 0 for n, p in positions.items() if n not in rebuilding), default=0)


# ----- the command group ------------------------------------------------------------------
report_app = typer.Typer(
    name="report",
    help="Print a read model as a report: pipeline, service, value, customer, handover.",
    no_args_is_help=True,
)

NoCatchUp = Annotated[
    bool,
    typer.Option(
        "--no-catch-up", help="print the read models as they are (a runner keeps them current)"
    ),
]
Timeout = Annotated[
    float,
    typer.Option("--timeout", metavar="SECONDS", min=0.1, help="give up catching up after this"),
]


def _report(
    store: str | None,
    views: str | None,
    fmt: OutputFormat,
    no_catch_up: bool,
    timeout: float,
    build: Callable[[Engine, CRMSettings], list[Section]],
    read_models: Collection[str],
) -> None:
    settings = load_settings(store)
    settings.store.check(must_exist=True)
    replayed = _replayed(views or settings.store_url)
    with current_read_models(
        settings.store_url,
        views,
        catch_up=not (no_catch_up or replayed),
        timeout=timeout,
        read_models=read_models,
    ) as engine:
        sections = build(engine, settings)
    render(sections, fmt)


def _replayed(url: str) -> bool:
    """True if ``url`` holds read models replayed as of a past time (``crm audit replay``):
    they are shown as they are, never caught up; stderr says as of when."""
    from projections.replay import replay_info

    info = replay_info(url)
    if info is None:
        return False
    state = "" if info.complete else " (INCOMPLETE: the replay did not finish; run it again)"
    Console(stderr=True).print(
        f"read models as of {info.until.isoformat()} (replayed from {info.source} up to "
        f"position {info.position:,}){state}"
    )
    return True


def _customer_id(settings: CRMSettings, code: str) -> UUID:
    """The customer with ``code`` in any case, from the event store itself."""
    from crm_domain.application import CRM

    crm = CRM(settings=settings)
    try:
        return crm.customer_by_code(code).id
    finally:
        crm.close()


@report_app.command("pipeline")
def pipeline(
    store: Store = None,
    views: Views = None,
    fmt: Format = OutputFormat.TABLE,
    no_catch_up: NoCatchUp = False,
    timeout: Timeout = 600.0,
) -> None:
    """Open pipeline, forecast, stage conversion, win rate."""
    _report(store, views, fmt, no_catch_up, timeout, lambda e, _: pipeline_report(e), ["pipeline"])


@report_app.command("service")
def service(
    store: Store = None,
    views: Views = None,
    fmt: Format = OutputFormat.TABLE,
    no_catch_up: NoCatchUp = False,
    timeout: Timeout = 600.0,
) -> None:
    """Open tickets, SLA breaches, response times, satisfaction."""
    now = datetime.now(UTC)
    _report(
        store,
        views,
        fmt,
        no_catch_up,
        timeout,
        lambda e, s: service_report(e, now=now, calendar=s.calendar),
        ["service_desk"],
    )


@report_app.command("value")
def value(
    store: Store = None,
    views: Views = None,
    fmt: Format = OutputFormat.TABLE,
    no_catch_up: NoCatchUp = False,
    timeout: Timeout = 600.0,
    as_of: AsOf = None,
) -> None:
    """Pareto share and RFM scores per currency; RFM as of the end of --as-of's day (UTC): the
    orders placed by then, recency counted from that day (else now)."""
    when = datetime.now(UTC) if as_of is None else end_of_day(as_of.date())
    _report(
        store,
        views,
        fmt,
        no_catch_up,
        timeout,
        lambda e, _: value_report(e, as_of=when),
        ["customer_value"],
    )


@report_app.command("customer")
def customer(
    ref: Annotated[str, typer.Argument(metavar="ID|CODE", help="customer id or customer code")],
    store: Store = None,
    views: Views = None,
    fmt: Format = OutputFormat.TABLE,
    no_catch_up: NoCatchUp = False,
    timeout: Timeout = 600.0,
) -> None:
    """Customer 360, recent timeline and open tickets of one customer."""

    def build(engine: Engine, settings: CRMSettings) -> list[Section]:
        return customer_report(
            engine,
            ref,
            by_code=lambda code: _customer_id(settings, code),
            calendar=settings.calendar,
        )

    _report(
        store, views, fmt, no_catch_up, timeout, build, ["customer360", "timeline", "service_desk"]
    )


@report_app.command("handover")
def handover(
    manager: Annotated[str, typer.Argument(metavar="MANAGER", help="the manager leaving")],
    store: Store = None,
    views: Views = None,
    fmt: Format = OutputFormat.TABLE,
    no_catch_up: NoCatchUp = False,
    timeout: Timeout = 600.0,
) -> None:
    """What a successor needs from a manager: customers, deals, quotes, promises."""
    now = datetime.now(UTC)
    _report(
        store,
        views,
        fmt,
        no_catch_up,
        timeout,
        lambda e, _: handover_report(e, manager, now=now),
        ["handover"],
    )
