"""``crm orders exposure ACCOUNT | cancel ACCOUNT ORDER --reason TEXT``: credit and orders.

``exposure`` shows what credit control sees when an order asks for confirmation: the credit
limit, the unpaid invoices, the confirmed orders not yet shipped, and the headroom left
(read from the event store, so always current). ``cancel`` cancels an order that has not
shipped, with the reason, under the operator's name. Confirming and rejecting orders is
ERP's alone (``crm consume kafka``), so there is no command for it here.
"""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

import typer
from rich.console import Console

from adapters.cli.options import Format, OutputFormat, Store, existing_crm
from adapters.cli.render import Section, render

orders_app = typer.Typer(
    name="orders", help="An account's credit exposure; cancel an order.", no_args_is_help=True
)

AccountId = Annotated[UUID, typer.Argument(metavar="ACCOUNT", help="the account's id")]


@orders_app.command("exposure")
def exposure(account: AccountId, store: Store = None, fmt: Format = OutputFormat.TABLE) -> None:
    """The account's credit limit, unpaid invoices, confirmed unshipped orders and headroom."""
    from crm_domain.errors import CreditCurrencyError

    with existing_crm(store) as crm:
        acc = crm.account(account)
        section = Section(f"Credit exposure of {acc.name}", ["measure", "value"], measures=True)
        limit = acc.credit_limit
        if limit is None:
            section.add("credit limit", "none (orders are not checked)")
        else:
            section.add("credit limit", f"{limit.amount:,.2f} {limit.currency}")
            try:
                figures = acc.credit_exposure()
            except CreditCurrencyError as mixed:
                section.add("exposure", f"not countable: also in {', '.join(mixed.currencies)}")
            else:
                assert figures is not None
                cur = limit.currency
                section.add("unpaid invoices", f"{figures.unpaid_invoices.amount:,.2f} {cur}")
                section.add(
                    "confirmed unshipped orders", f"{figures.unshipped_orders.amount:,.2f} {cur}"
                )
                section.add("exposure", f"{figures.exposure.amount:,.2f} {cur}")
                section.add("headroom", f"{figures.headroom:,.2f} {cur}")
        render([section], fmt, console=Console())


@orders_app.command("cancel")
def cancel(
    account: AccountId,
    order: Annotated[UUID, typer.Argument(metavar="ORDER", help="the order's id")],
    reason: Annotated[str, typer.Option("--reason", help="why it is cancelled (recorded)")],
    actor: Annotated[
        str, typer.Option("--actor", help="who cancels it (recorded on the event)")
    ] = "operator",
    store: Store = None,
) -> None:
    """Cancel an order that has not shipped (placed, awaiting ERP, or confirmed)."""
    with existing_crm(store) as crm:
        with crm.context(actor=actor, source_system="crm-cli"):
            crm.cancel_order(account, order, reason=reason)
        typer.echo(f"order {order} cancelled")
