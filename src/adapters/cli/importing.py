"""``crm import orders FILE`` (and the ``crm import cdnow FILE`` shortcut): bring an order
history from another system (ERP) into the CRM."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from adapters.cli.options import Store, load_settings
from adapters.cli.progress import progress
from adapters.orders_import import DEFAULT_BATCH_SIZE, ImportProgress

import_app = typer.Typer(
    name="import", help="Import an order history from another system.", no_args_is_help=True
)


@import_app.command("cdnow")
def cdnow(
    file: Annotated[
        Path,
        typer.Argument(
            metavar="FILE",
            help="CDNOW_master.txt or CDNOW_sample.txt",
            exists=True,
            dir_okay=False,
            readable=True,
        ),
    ],
    store: Store = None,
    customers: Annotated[
        int | None,
        typer.Option("--customers", min=1, help="import at most N customers", show_default=False),
    ] = None,
) -> None:
    """Import the public CDNOW purchase log as customers with delivered, paid orders.

    A shortcut for ``crm import orders FILE --format cdnow`` with customers coded
    ``CDNOW-<id>``. A re-run (also after an interrupted run) stores nothing twice: of
    customers already there, only purchases not imported yet are stored.
    """
    from adapters.cdnow import import_purchases, read_purchases
    from crm_domain.application import CRM

    settings = load_settings(store)
    settings.store.check()
    console = Console()
    crm = CRM(settings=settings)
    try:
        with progress(f"importing {file.name}", "customers") as show:
            summary = import_purchases(
                crm, read_purchases(file), max_customers=customers, on_progress=show
            )
        console.print(
            f"imported {summary.customers:,} customers and {summary.purchases:,} purchases "
            f"({summary.revenue:,.2f} USD); {summary.skipped:,} customers were already there, "
            f"{summary.purchases_skipped:,} purchases were already imported",
            soft_wrap=True,
        )
        console.print(f"database: {settings.store.display}", soft_wrap=True)
    finally:
        crm.close()


@import_app.command("orders")
def orders(
    file: Annotated[
        Path,
        typer.Argument(
            metavar="FILE",
            help="order lines: customer reference, date, quantity, amount, [order reference]",
            exists=True,
            dir_okay=False,
            readable=True,
        ),
    ],
    fmt: Annotated[
        str,
        typer.Option("--format", help="cdnow (the CDNOW log) or csv (with a header)"),
    ] = "csv",
    mapping: Annotated[
        list[str] | None,
        typer.Option(
            "--map",
            metavar="COLUMN=FIELD",
            help="the CSV column of a field (customer, date, quantity, amount, order)",
        ),
    ] = None,
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, help="rows per transaction (whole customers)")
    ] = DEFAULT_BATCH_SIZE,
    code: Annotated[
        str, typer.Option("--code", help="the customer code of a reference {ref}")
    ] = "ERP-{ref}",
    currency: Annotated[str, typer.Option("--currency", help="the amounts' currency")] = "USD",
    store: Store = None,
) -> None:
    """Import an ERP order history: one row per order line, many customers per transaction.

    Every rule is checked, in an ERP-source context. Idempotent per order: a re-run (also
    after an interrupted run), or a later file with new orders of customers imported
    before, stores only the orders not there yet (by order reference, else by customer,
    day, quantity, amount and occurrence; see docs/orders.md). A malformed row is named
    by file and line, and nothing of its batch is stored.
    """
    from adapters.orders_import import CustomerNaming, import_orders, parse_map, read_rows
    from crm_domain.application import CRM

    rows = read_rows(file, fmt, parse_map(mapping or []))
    naming = CustomerNaming(code=code, currency=currency.upper())
    if "{ref}" not in code:
        raise typer.BadParameter("--code must contain {ref}")
    settings = load_settings(store)
    settings.store.check()
    console = Console()
    crm = CRM(settings=settings)
    try:
        counts: list[ImportProgress] = []

        def events() -> str:
            if not counts:
                return ""
            return f"{counts[0].events:,} events ({counts[0].rate:,.0f}/s)"

        with progress(f"importing {file.name}", "rows", detail=events) as show:

            def report(done: ImportProgress, total: int) -> None:
                counts[:] = [done]
                show(done.rows, total)

            summary = import_orders(
                crm, rows, naming=naming, batch_size=batch_size, on_progress=report
            )
        console.print(
            f"imported {summary.customers:,} customers, {summary.orders:,} orders from "
            f"{summary.rows:,} rows: {summary.events:,} events in {summary.seconds:.1f}s "
            f"({summary.events / max(summary.seconds, 1e-9):,.0f} events/s); "
            f"{summary.skipped:,} customers were already there, "
            f"{summary.orders_skipped:,} orders were already imported",
            soft_wrap=True,
        )
        console.print(f"database: {settings.store.display}", soft_wrap=True)
    finally:
        crm.close()
