"""The quote policy: which discounts need approval, and the office's date for validity.

A quote's discount beyond the threshold of the account's tier needs an approval (by
someone other than the rep who asked) before the quote can be sent or accepted. The
thresholds are settings (``[quotes]`` in ``crm.toml``, ``CRM_QUOTES__...`` in the
environment)::

    [quotes]
    approval_threshold_pct = 10          # every tier, unless listed below
    tier_thresholds_pct = { gold = 15, platinum = 20 }

A quote is valid up to and including its ``valid_until`` date, counted in the office's
time zone (the ``calendar.timezone`` setting): on the next day it is expired.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field

from crm_domain.values import AccountTier

Percent = Annotated[Decimal, Field(ge=0, le=100)]


class QuoteSettings(BaseModel):
    """Discount approval thresholds, per account tier (one settings group: ``quotes``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: A discount above this percentage needs approval, for tiers not listed below.
    approval_threshold_pct: Percent = Decimal(10)
    #: Thresholds per account tier (standard, silver, gold, platinum), overriding the above.
    tier_thresholds_pct: dict[AccountTier, Percent] = Field(default_factory=dict)

    def threshold_for(self, tier: AccountTier | str) -> Decimal:
        """The discount (percent) above which a quote for an account of ``tier`` needs approval."""
        return self.tier_thresholds_pct.get(AccountTier(tier), self.approval_threshold_pct)


#: The policy in force when none is configured: approval above 10% for every tier.
DEFAULT_QUOTE_SETTINGS = QuoteSettings()


def office_date(moment: datetime, timezone: str) -> date:
    """The office's calendar date at ``moment`` (quotes are valid by the office's days)."""
    return moment.astimezone(ZoneInfo(timezone)).date()
