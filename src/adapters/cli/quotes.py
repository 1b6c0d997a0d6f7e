"""``crm quotes expire [--as-of DATE]``: record the expiry of quotes past their validity.

A quote is valid up to and including its ``valid_until`` day (in the office's time zone,
the ``calendar.timezone`` setting); reads already show a lapsed quote as expired, and this
command records it (``Account.QuoteExpired``) so the history, the Kafka topics and the
read models say so too. It is idempotent: run it from a scheduler as often as you like.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

import typer

from adapters.cli.options import Store, existing_crm

#: ``--as-of DATE`` (``YYYY-MM-DD``): the day to judge by, instead of today.
AsOf = Annotated[
    datetime | None,
    typer.Option(
        "--as-of",
        metavar="DATE",
        formats=["%Y-%m-%d"],
        help="judge as of this day (YYYY-MM-DD) instead of today",
        show_default=False,
    ),
]

quotes_app = typer.Typer(
    name="quotes",
    help="Quotes: record the expiry of quotes past their validity.",
    no_args_is_help=True,
)


def as_of_date(value: datetime | None) -> date | None:
    """The day an ``--as-of`` option names (None: not given)."""
    return value.date() if value is not None else None


@quotes_app.command("expire")
def expire(store: Store = None, as_of: AsOf = None) -> None:
    """Record the expiry of every active quote past its validity (idempotent)."""
    with existing_crm(store) as crm:
        expired = crm.expire_quotes(as_of=as_of_date(as_of))
    day = as_of_date(as_of) or "today"
    typer.echo(f"expired {len(expired):,} quote{'s' if len(expired) != 1 else ''} as of {day}")
    for quote_id in expired:
        typer.echo(str(quote_id))
