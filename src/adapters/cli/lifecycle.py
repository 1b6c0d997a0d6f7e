"""``crm handover FROM TO`` and ``crm lifecycle scan``: processes over many customers.

``crm handover`` moves what a leaver holds to a successor in one transaction
(:meth:`crm_domain.CRM.hand_over`); ``crm report handover MANAGER`` shows what a manager
holds and what was handed over from or to them. ``crm lifecycle scan`` applies the
lifecycle policy as of a day (:meth:`crm_domain.CRM.scan_lifecycle`), for a scheduler
to run daily: a second run as of the same day records nothing.
"""

from __future__ import annotations

import getpass
from datetime import datetime
from typing import Annotated

import typer

from adapters.cli.options import Format, OutputFormat, Store, existing_crm
from adapters.cli.render import Section, render

ActorOption = Annotated[
    str | None,
    typer.Option(
        "--actor",
        metavar="NAME",
        help="who does it, as recorded on every event [default: your login name]",
        show_default=False,
    ),
]


def _actor(actor: str | None) -> str:
    if actor:
        return actor
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # pragma: no cover - no login name (a bare container)
        return "crm-cli"


def handover(
    from_manager: Annotated[str, typer.Argument(metavar="FROM", help="the manager leaving")],
    to_manager: Annotated[str, typer.Argument(metavar="TO", help="the manager taking over")],
    reason: Annotated[
        str, typer.Option("--reason", help="why (recorded on every change)", show_default=False)
    ],
    customers: Annotated[
        list[str] | None,
        typer.Option(
            "--customers",
            "--customer",
            metavar="CODE|ID",
            help="only these customers (repeat the option) [default: all of FROM's]",
            show_default=False,
        ),
    ] = None,
    store: Store = None,
    actor: ActorOption = None,
    fmt: Format = OutputFormat.TABLE,
) -> None:
    """Hand everything FROM holds over to TO in one transaction: customer manager, account
    managers, open opportunities and open commitments, with the history kept."""
    with existing_crm(store) as crm, crm.context(actor=_actor(actor)):
        result = crm.hand_over(from_manager, to_manager, reason=reason, customers=customers or None)
    moved = Section(
        f"Handed over from {from_manager} to {to_manager} ({len(result.moves):,})",
        ("what", "customer", "name"),
    )
    for move in result.moves:
        moved.add(move.kind, move.customer_code, move.name)
    if not result.moves:
        scope = "the customers named" if customers else "any customer"
        moved.empty_note = (
            f"nothing to move: {from_manager} manages no customer or account and owns no open "
            f"opportunity or commitment of {scope} (handed over already, or a mistyped name?)"
        )
    sections = [moved]
    if result.left:
        stays = Section("Not moved (the rules keep them)", ("why",))
        for note in result.left:
            stays.add(note)
        sections.append(stays)
    render(sections, fmt)


lifecycle_app = typer.Typer(
    name="lifecycle",
    help="Move customers between lifecycle stages by what they do (the lifecycle policy).",
    no_args_is_help=True,
)


@lifecycle_app.command("scan")
def scan(
    as_of: Annotated[
        datetime | None,
        typer.Option(
            "--as-of",
            metavar="DATE",
            formats=["%Y-%m-%d"],
            help="judge as of the end of this day, UTC [default: now]",
            show_default=False,
        ),
    ] = None,
    store: Store = None,
    actor: ActorOption = None,
    fmt: Format = OutputFormat.TABLE,
) -> None:
    """Apply the lifecycle policy to every customer with confirmed orders: first purchase,
    repeat purchase, at risk, lapsed, won back. A second run records nothing."""
    from crm_domain.processes import end_of_day

    with existing_crm(store) as crm:
        with crm.context(actor=_actor(actor)):
            result = crm.scan_lifecycle(as_of=end_of_day(as_of.date()) if as_of else None)
        policy = crm.lifecycle_policy.settings
    summary = Section(
        f"Lifecycle scan as of {result.as_of:%Y-%m-%d %H:%M} UTC",
        ("measure", "value"),
        measures=True,
    )
    summary.add("customers with confirmed orders", result.customers_checked)
    summary.add("customers moved", result.customers_moved)
    summary.add(
        "policy (days)",
        f"repeat within {policy.repeat_days}, at risk after "
        f"{policy.at_risk_days}, lapsed after {policy.lapsed_days}",
    )
    rules = Section("Transitions recorded, by rule", ("rule", "transitions"))
    for rule, count in result.transitions.items():
        rules.add(rule, count)
    rules.empty_note = "nothing to record: every customer's stage is current"
    render([summary, rules], fmt)
