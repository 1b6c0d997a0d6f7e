"""``crm report ...``: the read models as tables in the terminal (rich).

Each ``*_tables`` function turns query answers into rich renderables, so the same tables
serve the CLI, the demo and anyone embedding the library.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal
from uuid import UUID

from rich.console import Console, RenderableType
from rich.table import Table
from sqlalchemy import Engine

from crm_domain.errors import CustomerNotFoundError
from projections.customer360 import Customer360Queries, CustomerView
from projections.customer_value import CustomerValueQueries
from projections.handover import HandoverQueries
from projections.pipeline import PipelineQueries
from projections.runner import follow
from projections.service_desk import ServiceDeskQueries
from projections.timeline import TimelineQueries


def _money(amounts: dict[str, Decimal]) -> str:
    return ", ".join(f"{v:,.2f} {c}" for c, v in sorted(amounts.items())) or "-"


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M") if moment else "-"


def _pct(value: Decimal | None) -> str:
    return f"{value * 100:.1f}%" if value is not None else "-"


def pipeline_tables(engine: Engine) -> list[RenderableType]:
    """The pipeline report as tables (``crm report pipeline``)."""
    q = PipelineQueries(engine)
    stages = Table(title="Open pipeline by stage")
    for col in ("stage", "open", "amount", "weighted"):
        stages.add_column(col, justify="left" if col == "stage" else "right")
    for t in q.by_stage():
        stages.add_row(t.stage, str(t.count), _money(t.amount), _money(t.weighted))

    forecast = Table(title="Forecast by category")
    for col in ("category", "currency", "deals", "amount", "weighted"):
        forecast.add_column(col, justify="left" if col in ("category", "currency") else "right")
    for f in q.forecast_by_category():
        forecast.add_row(f.key, f.currency, str(f.count), f"{f.amount:,.2f}", f"{f.weighted:,.2f}")

    conversion = Table(title="Stage conversion")
    for col in ("stage", "reached", "advanced", "rate"):
        conversion.add_column(col, justify="left" if col == "stage" else "right")
    for c in q.conversion():
        conversion.add_row(c.stage, str(c.reached), str(c.advanced), _pct(c.rate))

    wins = q.win_rate()
    summary = Table(title="Win rate", show_header=False)
    summary.add_column("measure")
    summary.add_column("value", justify="right")
    summary.add_row("won / lost", f"{wins.won} / {wins.lost}")
    summary.add_row("win rate", _pct(wins.rate))
    cycle = wins.average_cycle_days
    summary.add_row("average sales cycle", f"{cycle} days" if cycle is not None else "-")

    top = Table(title="Nearest to signing (top 10 open opportunities)")
    for col in ("opportunity", "account", "owner", "stage", "prob.", "amount", "close by"):
        top.add_column(col)
    for o in q.open_opportunities(page_size=10).items:
        amount = f"{o.amount:,.2f} {o.currency}" if o.amount is not None else "-"
        top.add_row(
            o.name,
            o.account_name,
            o.owner,
            o.stage,
            _pct(o.probability),
            amount,
            o.expected_close.isoformat(),
        )
    return [stages, forecast, conversion, summary, top]


def service_tables(engine: Engine, *, now: datetime | None = None) -> list[RenderableType]:
    """The service desk report as tables (``crm report service``)."""
    q = ServiceDeskQueries(engine)
    now = now or datetime.now(UTC)
    load = Table(title="Open tickets by priority and assignee")
    for col in ("priority", "assignee", "open"):
        load.add_column(col, justify="right" if col == "open" else "left")
    for c in q.open_by_priority_and_assignee():
        load.add_row(c.priority, c.assignee or "(unassigned)", str(c.count))

    breached = q.breached(page_size=10)
    late = Table(title=f"Open tickets that breached their SLA ({breached.total})")
    for col in ("customer", "subject", "priority", "due", "assignee"):
        late.add_column(col)
    for t in breached.items:
        late.add_row(t.customer_name, t.subject, t.priority, _when(t.due_at), t.assignee or "-")

    times = q.response_times()
    sat = q.satisfaction()
    measures = Table(title="Service measures", show_header=False)
    measures.add_column("measure")
    measures.add_column("value", justify="right")
    measures.add_row(
        "avg. first response",
        f"{times.average_first_response_minutes} min"
        if times.average_first_response_minutes is not None
        else "-",
    )
    measures.add_row(
        "avg. resolution",
        f"{times.average_resolution_minutes} min"
        if times.average_resolution_minutes is not None
        else "-",
    )
    measures.add_row(
        "satisfaction (1-5)",
        f"{sat.average} from {sat.count} ratings" if sat.average is not None else "-",
    )
    measures.add_row(
        "loyal / at risk / dissatisfied",
        " / ".join(str(sat.by_class[k]) for k in ("loyal", "at_risk", "dissatisfied")),
    )
    due = q.due_soon(now=now)
    measures.add_row("due within 4 hours", str(due.total))

    complaints = Table(title="Complaints per customer (top 10)")
    for col in ("customer", "complaints", "still open"):
        complaints.add_column(col, justify="left" if col == "customer" else "right")
    for k in q.complaints_per_customer(limit=10):
        complaints.add_row(k.customer_name, str(k.complaints), str(k.open_complaints))
    return [load, late, measures, complaints]


def value_tables(engine: Engine, *, now: datetime | None = None) -> list[RenderableType]:
    """The customer value report as tables, per currency (``crm report value``)."""
    q = CustomerValueQueries(engine)
    now = now or datetime.now(UTC)
    out: list[RenderableType] = []
    for currency in q.currencies():
        p = q.pareto(currency=currency)
        pareto = Table(title=f"Pareto ({currency})", show_header=False)
        pareto.add_column("measure")
        pareto.add_column("value", justify="right")
        pareto.add_row("customers with revenue", str(p.customers))
        pareto.add_row(f"top {p.top_customers} customers' revenue", f"{p.top_revenue:,.2f}")
        pareto.add_row("total revenue", f"{p.total_revenue:,.2f}")
        pareto.add_row("share of the top 20%", _pct(p.top_share))
        rfm = Table(title=f"Best customers by RFM ({currency}, top 10)")
        for col in ("customer", "RFM", "days since order", "orders", "revenue"):
            rfm.add_column(col, justify="left" if col == "customer" else "right")
        for s in q.rfm(as_of=now, currency=currency, page_size=10).items:
            rfm.add_row(s.name, s.code, str(s.recency_days), str(s.frequency), f"{s.monetary:,.2f}")
        out += [pareto, rfm]
    if not out:
        out.append(Table(title="No booked revenue yet"))
    return out


def customer_tables(engine: Engine, ref: str) -> list[RenderableType]:
    """Customer 360, recent timeline and open tickets for a customer id or code."""
    q = Customer360Queries(engine)
    customer = _find_customer(q, ref)
    card = Table(title=f"{customer.name} ({customer.code})", show_header=False)
    card.add_column("field")
    card.add_column("value")
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
            f"{_when(customer.last_contact_at)} {customer.last_contact_channel or ''}".strip(),
        ),
        (
            "contacts by channel",
            ", ".join(f"{k} {v}" for k, v in sorted(customer.contact_counts.items())) or "-",
        ),
        ("open tickets", str(customer.open_tickets)),
        ("satisfaction", str(customer.satisfaction or "-")),
        ("lifetime order value", _money(customer.lifetime_value)),
    ):
        card.add_row(label, value)
    history = Table(title="Recent activity (newest first)")
    for col in ("when", "what", "by", "summary"):
        history.add_column(col)
    for entry in TimelineQueries(engine).for_customer(customer.customer_id, page_size=15).items:
        history.add_row(_when(entry.occurred_at), entry.event_type, entry.actor, entry.summary)
    tickets = Table(title="Open tickets")
    for col in ("subject", "priority", "due", "assignee"):
        tickets.add_column(col)
    for t in ServiceDeskQueries(engine).open_tickets(customer_id=customer.customer_id).items:
        tickets.add_row(t.subject, t.priority, _when(t.due_at), t.assignee or "-")
    return [card, history, tickets]


def handover_tables(
    engine: Engine, manager: str, *, now: datetime | None = None
) -> list[RenderableType]:
    """The handover pack of one manager as tables (``crm report handover``)."""
    pack = HandoverQueries(engine).for_manager(manager, now=now or datetime.now(UTC))
    owned = Table(title=f"Customers of {manager} ({len(pack.customers)})")
    for col in ("customer", "code", "stage"):
        owned.add_column(col)
    for c in pack.customers:
        owned.add_row(c.name, c.code, c.lifecycle_stage)
    deals = Table(title="Open opportunities")
    for col in ("opportunity", "stage", "prob.", "amount", "near signing"):
        deals.add_column(col)
    for o in pack.opportunities:
        amount = f"{o.amount:,.2f} {o.currency}" if o.amount is not None else "-"
        deals.add_row(o.name, o.stage, _pct(o.probability), amount, "yes" if o.near_signing else "")
    quotes = Table(title="Active quotes")
    for col in ("version", "amount", "discount", "valid until", "issued by"):
        quotes.add_column(col)
    for q in pack.quotes:
        quotes.add_row(
            str(q.version),
            f"{q.amount:,.2f} {q.currency}",
            f"{q.discount_pct}%",
            q.valid_until.isoformat(),
            q.issued_by,
        )
    promises = Table(title="Open commitments from contacts")
    for col in ("promise", "owner", "due", "logged by", "overdue"):
        promises.add_column(col)
    for p in pack.commitments:
        promises.add_row(
            p.description, p.owner, _when(p.due), p.logged_by, "OVERDUE" if p.overdue else ""
        )
    return [owned, deals, quotes, promises]


def _find_customer(q: Customer360Queries, ref: str) -> CustomerView:
    try:
        return q.get(UUID(ref))
    except ValueError:
        return q.by_code(ref)
    except CustomerNotFoundError:
        return q.by_code(ref)


def print_all(console: Console, renderables: Iterable[RenderableType]) -> None:
    """Print the tables of a report, one after the other."""
    for item in renderables:
        console.print(item)


def print_reports(store_url: str, console: Console, *, timeout: float = 300.0) -> None:
    """Bring the read models up to date, then print the pipeline and service reports.

    What the demo ends with: the reports come from the SQL read models, not from the
    aggregates.
    """
    with follow(store_url) as runner:
        runner.wait_until_current(timeout=timeout)
        engine = runner.view.engine
        console.rule("Sales pipeline (read model)")
        print_all(console, pipeline_tables(engine))
        console.rule("Service desk (read model)")
        print_all(console, service_tables(engine))


#: The name the demo calls.
print_demo_reports = print_reports
