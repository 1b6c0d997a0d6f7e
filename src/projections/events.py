"""The catalogue of event classes the CRM stores, for read models to handle or ignore."""

from __future__ import annotations

from typing import Any

from crm_domain import bookkeeping
from crm_domain.account import Account
from crm_domain.customer import Customer
from crm_domain.eventmodel import event_classes

#: Every event a customer records.
CUSTOMER_EVENTS = event_classes(Customer)
#: Every event an account records.
ACCOUNT_EVENTS = event_classes(Account)
#: Bookkeeping that keeps rules across aggregates (code claims, idempotency records): not
#: CRM facts, so every read model ignores them.
BOOKKEEPING_EVENTS: tuple[type[Any], ...] = bookkeeping.BOOKKEEPING_EVENTS
#: Everything in the notification log.
ALL_EVENTS = CUSTOMER_EVENTS + ACCOUNT_EVENTS + BOOKKEEPING_EVENTS
