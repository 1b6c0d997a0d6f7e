"""Credit and ERP: who may confirm an order, and how much an account may owe.

Orders are promised only once ERP has confirmed them, on credit and margin. Two rules
follow, both held by :class:`~crm_domain.account.Account`:

* **Only ERP confirms or rejects**, and only an order whose confirmation was requested.
  "ERP" is a source system the configuration names (``CRMSettings.erp_sources``, default
  ``["erp"]``); the command's source system is its context's
  (``crm.context(source_system="erp")``). The Kafka consumer applies ERP's messages under
  an ERP source; a call from the CRM's own front end is refused.
* **Credit**: requesting confirmation of an order is refused when it would take the
  account's :class:`CreditExposure` over its credit limit, unless a supervisor overrides
  with a reason (:class:`CreditOverride`, recorded in ``OrderConfirmationRequested``).

Exposure is counted in the credit limit's currency only: the CRM holds no exchange rates,
so an order or an open item in another currency makes the check impossible and the request
is refused (:class:`~crm_domain.errors.CreditCurrencyError`) unless a supervisor overrides.
An account without a credit limit is not checked (ERP's credit control still is).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from crm_domain.eventmodel import Immutable
from crm_domain.values import Label, Money, ShortText

#: The source systems that count as ERP when the settings name none.
DEFAULT_ERP_SOURCES: tuple[str, ...] = ("erp",)


class CreditOverride(Immutable):
    """A supervisor's decision to request confirmation of an order despite the credit check,
    with the reason (both are recorded on the event)."""

    supervisor: Label
    reason: ShortText


@dataclass(frozen=True)
class CreditExposure:
    """What an account would owe if an order were confirmed, in the credit limit's currency.

    ``unpaid_invoices``: what is still owed on invoices (after payments, refunds and credit
    notes). ``unshipped_orders``: confirmed orders not yet shipped, less what was already
    invoiced of them (an invoiced order counts once, through its invoice).
    ``order_total``: the order asking for confirmation.
    """

    unpaid_invoices: Money
    unshipped_orders: Money
    order_total: Money
    credit_limit: Money

    @property
    def exposure(self) -> Money:
        """The three figures added up."""
        amount = (
            self.unpaid_invoices.amount + self.unshipped_orders.amount + self.order_total.amount
        )
        return Money(amount=amount, currency=self.credit_limit.currency)

    @property
    def headroom(self) -> Decimal:
        """The credit limit less the exposure (negative when over the limit)."""
        return self.credit_limit.amount - self.exposure.amount

    @property
    def over_limit(self) -> bool:
        """Whether the exposure is above the credit limit (reaching it exactly is allowed)."""
        return self.headroom < 0
