"""``crm forget customer ID|CODE --reason ... [--legal-basis ...]``: erase a person's data.

The customer's key is destroyed (crypto-shredding) and the erasure is recorded as a
``PersonalDataErased`` event with who, when, why and the legal basis. History stays whole
and verifiable; every personal field of the customer reads ``[redacted]`` from then on.
See the "Erasure" section of docs/audit.md.
"""

from __future__ import annotations

import getpass
from typing import Annotated
from uuid import UUID

import typer
from rich.console import Console

from adapters.cli.options import Store, existing_crm
from crm_domain.commands.customer import DEFAULT_LEGAL_BASIS

forget_app = typer.Typer(
    help="Erase a data subject's personal data, keeping the history (crypto-shredding).",
    no_args_is_help=True,
)


@forget_app.command("customer")
def customer(
    ref: Annotated[str, typer.Argument(metavar="ID|CODE", help="the customer's id or code")],
    reason: Annotated[
        str,
        typer.Option("--reason", help="why (e.g. the request's reference); kept in clear"),
    ],
    legal_basis: Annotated[
        str,
        typer.Option("--legal-basis", help="the law or ground the erasure rests on"),
    ] = DEFAULT_LEGAL_BASIS,
    actor: Annotated[
        str | None,
        typer.Option("--actor", help="who erases [default: the OS user]", show_default=False),
    ] = None,
    store: Store = None,
) -> None:
    """Destroy the customer's key and record the erasure (who, when, why, legal basis)."""
    with existing_crm(store) as crm:
        try:
            customer_id = UUID(ref)
        except ValueError:
            customer_id = crm.customer_by_code(ref).id
        code = crm.customer(customer_id).code
        with crm.context(actor=actor or getpass.getuser()):
            erased = crm.forget_customer(customer_id, reason=reason, legal_basis=legal_basis)
    what = "personal data erased" if erased else "was already erased; key destroyed again"
    Console().print(f"customer {code} ({customer_id}): {what}")
