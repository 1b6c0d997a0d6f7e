"""``crm import cdnow FILE``: bring an order history from another system into the CRM."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from adapters.cli.options import Store, load_settings
from adapters.cli.progress import progress

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

    Each customer is imported whole or not at all, so an interrupted import can simply be
    run again: customers already there are skipped.
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
            f"({summary.revenue:,.2f} USD); {summary.skipped:,} customers were already there"
        )
        console.print(f"database: {settings.store.display}", soft_wrap=True)
    finally:
        crm.close()
