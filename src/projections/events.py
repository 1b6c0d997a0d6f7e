"""The catalogue of event classes the CRM stores, for read models to handle or ignore."""

from __future__ import annotations

from typing import Any

from crm_domain.account import Account
from crm_domain.bookkeeping import CommandProcessed, CustomerCodeClaim
from crm_domain.customer import Customer
from crm_domain.eventmodel import Aggregate


def _events_of(aggregate: type[Aggregate]) -> tuple[type[Any], ...]:
    return tuple(
        value
        for name, value in vars(aggregate).items()
        if isinstance(value, type)
        and issubclass(value, Aggregate.Event)
        and name not in ("Event", "Created")
    )


#: Every event a customer records.
CUSTOMER_EVENTS = _events_of(Customer)
#: Every event an account records.
ACCOUNT_EVENTS = _events_of(Account)
#: Bookkeeping that keeps rules across aggregates (code claims, idempotency records): not
#: CRM facts, so every read model ignores them.
BOOKKEEPING_EVENTS: tuple[type[Any], ...] = (CustomerCodeClaim.Claimed, CommandProcessed.Recorded)
#: Everything in the notification log.
ALL_EVENTS = CUSTOMER_EVENTS + ACCOUNT_EVENTS + BOOKKEEPING_EVENTS


def event_name(event: Any) -> str:
    """``ContactLogged`` for a ``Customer.ContactLogged`` event."""
    return str(event.__class__.__name__)
