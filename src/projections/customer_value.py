"""Customer value: revenue per customer, RFM quintiles, and the Pareto (80/20) view.

Which customers are worth keeping: booked revenue from orders the back office confirmed
(less returns), invoiced and paid amounts, recency/frequency/monetary scores in quintiles,
and the share of revenue that comes from the top 20% of customers. Amounts are kept per
currency; the scores and the Pareto view are computed within one currency, among the
customers with revenue (booked revenue above zero).

RFM convention (see ``docs/projections.md``): the scores count the booked orders placed by
the as-of time; *recency* is the number of calendar days (UTC) from the last one to the
as-of date; *frequency* the number of distinct
days (UTC) with a booked purchase, so several orders on one day count once; *monetary* the
booked revenue. Each is scored 1 (worst) to 5 (best) in equal-sized quintiles by rank, as
``pandas.qcut(ranks, 5)`` on ``rank(method="first")``: customers are put in one order
(monetary, then frequency, then recency, then customer id; lower first), each measure is
ranked with ties kept in that order, and rank ``r`` of ``n`` scores
``max(1, ceil(5 * (r - 1) / (n - 1)))`` (a lone customer scores 1).

Revenue is net: an order rejected, returned or cancelled after ERP confirmed it leaves
``booked`` (and the order count); a credit note is taken off ``invoiced`` and a refund
off ``paid``. A credit note is only issued for a returned or cancelled order (or an
invoice of no order), so ``booked`` never counts a reversal twice.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy import (
    Column,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    Uuid,
    select,
)

from crm_domain.account import Account
from crm_domain.customer import Customer
from crm_domain.errors import InvalidCommandError
from projections.erasure import REDACTED, erase_rows
from projections.events import BOOKKEEPING_EVENTS, CUSTOMER_EVENTS
from projections.query import Answer, Page, check_paging, paged
from projections.readmodel import (
    LoggedEvent,
    ReadModel,
    field_values,
    handles,
    originators,
    topics_of,
)
from projections.rows import Row
from projections.sqltypes import Amount, UTCDateTime, to_amount, total

metadata = MetaData()

revenue = Table(
    "value_revenue",
    metadata,
    Column("customer_id", Uuid, primary_key=True),
    Column("currency", String(3), primary_key=True),
    Column("booked", Amount, nullable=False),
    Column("orders", Integer, nullable=False),
    Column("first_order_at", UTCDateTime),
    Column("last_order_at", UTCDateTime),
    Column("invoiced", Amount, nullable=False),
    Column("paid", Amount, nullable=False),
)

customers = Table(
    "value_customers",
    metadata,
    Column("customer_id", Uuid, primary_key=True),
    Column("name", String(300), nullable=False),
)

accounts = Table(
    "value_accounts",
    metadata,
    Column("account_id", Uuid, primary_key=True),
    Column("customer_id", Uuid, nullable=False),
)

orders = Table(
    "value_orders",
    metadata,
    Column("order_id", Uuid, primary_key=True),
    Column("customer_id", Uuid, nullable=False),
    Column("amount", Amount, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("placed_at", UTCDateTime, nullable=False),
    Column("counted", Integer, nullable=False),
)

_ZERO = Decimal("0.0000")

_CUSTOMER_IGNORED = tuple(
    c
    for c in CUSTOMER_EVENTS
    if c not in (Customer.Registered, Customer.ProfileCorrected, Customer.PersonalDataErased)
)


_ACCOUNT_OPENED = topics_of(Account.Opened)
_ORDER_PLACED = topics_of(Account.OrderPlaced)
_ORDER_CHANGES = topics_of(
    Account.OrderConfirmed, Account.OrderRejected, Account.OrderReturned, Account.OrderCancelled
)
_MONEY = topics_of(
    Account.InvoiceIssued,
    Account.PaymentReceived,
    Account.CreditNoteIssued,
    Account.RefundIssued,
)
_PROFILE_CORRECTED = topics_of(Customer.ProfileCorrected)


class CustomerValue(ReadModel):
    """The customer value read model: revenue per customer and currency, for RFM and Pareto."""

    name = "customer_value"
    description = "revenue per customer, RFM quintiles, Pareto share of the top 20%"
    rebuild_weight = 1.4
    tables = (revenue, customers, accounts, orders)
    ignores = (
        *BOOKKEEPING_EVENTS,
        *_CUSTOMER_IGNORED,
        Account.ClassificationChanged,
        Account.Closed,
        Account.KeyAccountDesignated,
        Account.KeyAccountRevoked,
        Account.ContactAdded,
        Account.ContactRemoved,
        Account.ManagerAssigned,
        Account.OpportunityOpened,
        Account.OpportunityStaged,
        Account.OpportunityRevised,
        Account.OpportunityReassigned,
        Account.OpportunityWon,
        Account.OpportunityLost,
        Account.QuoteIssued,
        Account.QuoteAccepted,
        Account.QuoteExpired,
        Account.QuoteDiscountApprovalRequested,
        Account.QuoteDiscountApproved,
        Account.QuoteDiscountRejected,
        Account.QuoteSent,
        Account.QuoteWithdrawn,
        Account.OpportunityCurrencyChanged,
        Account.OrderConfirmationRequested,
        Account.OrderShipped,
        Account.OrderDelivered,
        Account.CreditLimitSet,
    )

    def __init__(self, session: Any) -> None:
        super().__init__(session)
        self.revenue = self.cache(revenue)
        self.customers = self.cache(customers)
        self.accounts = self.cache(accounts)
        self.orders = self.cache(orders)

    def prepare(self, events: Sequence[LoggedEvent]) -> None:
        self.customers.prefetch(originators(events, _PROFILE_CORRECTED))
        self.accounts.prefetch(originators(events, _ORDER_PLACED | _MONEY))
        self.orders.prefetch(field_values(events, _ORDER_CHANGES, "order_id"))
        # revenue rows: (customer, currency) of counted orders, invoices and payments
        owner = {row["account_id"]: row["customer_id"] for row in self.accounts.rows()}
        owner.update(
            (e.originator_id, e.event.customer_id) for e in events if e.topic in _ACCOUNT_OPENED
        )
        keys = {(row["customer_id"], row["currency"]) for row in self.orders.rows()}
        for e in events:
            if e.topic in _MONEY and e.originator_id in owner:
                keys.add((owner[e.originator_id], e.event.amount.currency))
            elif e.topic in _ORDER_PLACED and e.originator_id in owner:
                keys.add((owner[e.originator_id], e.event.total.currency))
        self.revenue.prefetch(keys)

    def _customer_of(self, account_id: UUID) -> UUID:
        account = self.accounts.get(account_id)
        if account is None:
            raise LookupError(f"no account {account_id}")
        customer_id: UUID = account["customer_id"]
        return customer_id

    def _revenue(self, customer_id: UUID, currency: str) -> Row:
        row = self.revenue.get((customer_id, currency))
        if row is None:
            row = self.revenue.put(
                {
                    "customer_id": customer_id,
                    "currency": currency,
                    "booked": _ZERO,
                    "orders": 0,
                    "first_order_at": None,
                    "last_order_at": None,
                    "invoiced": _ZERO,
                    "paid": _ZERO,
                },
                new=True,
            )
        return row

    @handles(Customer.Registered)
    def registered(self, e: Customer.Registered, position: int) -> None:
        self.customers.put({"customer_id": e.originator_id, "name": e.name}, new=True)

    @handles(Customer.ProfileCorrected)
    def profile_corrected(self, e: Customer.ProfileCorrected, position: int) -> None:
        if e.name is not None:
            self.customers.put({"customer_id": e.originator_id, "name": e.name})

    @handles(Customer.PersonalDataErased)
    def personal_data_erased(self, e: Customer.PersonalDataErased, position: int) -> None:
        """Drop the erased customer's name at once."""
        erase_rows(self, customers, e.originator_id, {"name": REDACTED})

    @handles(Account.Opened)
    def account_opened(self, e: Account.Opened, position: int) -> None:
        self.accounts.put({"account_id": e.originator_id, "customer_id": e.customer_id}, new=True)

    @handles(Account.OrderPlaced)
    def order_placed(self, e: Account.OrderPlaced, position: int) -> None:
        self.orders.put(
            {
                "order_id": e.order_id,
                "customer_id": self._customer_of(e.originator_id),
                "amount": e.total.amount,
                "currency": e.total.currency,
                "placed_at": e.occurred_at,
                "counted": 0,
            },
            new=True,
        )

    @handles(
        Account.OrderConfirmed,
        Account.OrderRejected,
        Account.OrderReturned,
        Account.OrderCancelled,
    )
    def order_changed(self, e: Any, position: int) -> None:
        order = self.orders.get(e.order_id)
        if order is None:
            raise LookupError(f"no order {e.order_id}")
        count = isinstance(e, Account.OrderConfirmed)
        if bool(order["counted"]) == count:
            return
        order["counted"] = int(count)
        row = self._revenue(order["customer_id"], order["currency"])
        if count:
            row["booked"] += order["amount"]
            row["orders"] += 1
            placed = order["placed_at"]
            if row["first_order_at"] is None or placed < row["first_order_at"]:
                row["first_order_at"] = placed
            if row["last_order_at"] is None or placed > row["last_order_at"]:
                row["last_order_at"] = placed
        else:
            row["booked"] -= order["amount"]
            row["orders"] -= 1

    @handles(Account.InvoiceIssued)
    def invoiced(self, e: Account.InvoiceIssued, position: int) -> None:
        row = self._revenue(self._customer_of(e.originator_id), e.amount.currency)
        row["invoiced"] += e.amount.amount

    @handles(Account.PaymentReceived)
    def paid(self, e: Account.PaymentReceived, position: int) -> None:
        row = self._revenue(self._customer_of(e.originator_id), e.amount.currency)
        row["paid"] += e.amount.amount

    @handles(Account.CreditNoteIssued)
    def credited(self, e: Account.CreditNoteIssued, position: int) -> None:
        row = self._revenue(self._customer_of(e.originator_id), e.amount.currency)
        row["invoiced"] -= e.amount.amount

    @handles(Account.RefundIssued)
    def refunded(self, e: Account.RefundIssued, position: int) -> None:
        row = self._revenue(self._customer_of(e.originator_id), e.amount.currency)
        row["paid"] -= e.amount.amount


# -- queries ---------------------------------------------------------------------------


class CustomerRevenue(Answer):
    """One customer's revenue in one currency: booked, invoiced, paid, orders and their dates
    (net: returned or cancelled orders, credit notes and refunds are taken off)."""

    customer_id: UUID
    name: str
    currency: str
    booked: Decimal
    orders: int
    first_order_at: datetime | None
    last_order_at: datetime | None
    invoiced: Decimal
    paid: Decimal


class RfmScore(Answer):
    """Quintile scores 1 (worst) to 5 (best), equal-sized by rank (ties in a documented order:
    see the module docstring). ``frequency`` counts distinct purchase days, ``orders`` the
    booked orders."""

    customer_id: UUID
    name: str
    recency_days: int
    frequency: int
    orders: int
    monetary: Decimal
    recency: int
    frequency_score: int
    monetary_score: int

    @property
    def code(self) -> str:
        """The three quintiles as one code, e.g. ``"545"`` (recency, frequency, monetary)."""
        return f"{self.recency}{self.frequency_score}{self.monetary_score}"


class ParetoView(Answer):
    """How concentrated revenue is: ``top_share`` of it comes from the top ``top_fraction``
    of the ``customers`` with revenue (booked revenue above zero)."""

    currency: str
    customers: int
    top_customers: int
    top_fraction: Decimal
    top_revenue: Decimal
    total_revenue: Decimal
    top_share: Decimal | None


def quintile_of_rank(rank: int, n: int) -> int:
    """1-5 for rank ``rank`` (1 = lowest) of ``n``: equal-sized quintiles, exactly as
    ``pandas.qcut(ranks, 5, labels=False) + 1`` (a lone customer scores 1)."""
    if not 1 <= rank <= n:
        raise ValueError(f"rank {rank} is not within 1..{n}")
    if n == 1:
        return 1
    return max(1, -((-5 * (rank - 1)) // (n - 1)))


def quintiles(values: Sequence[Any]) -> list[int]:
    """The quintile score (1-5) of each value, ranked in ascending order with ties kept in
    the order given (``rank(method="first")``), then cut into five equal-sized groups."""
    order = sorted(range(len(values)), key=lambda i: values[i])  # stable: ties keep order
    scores = [0] * len(values)
    for rank, i in enumerate(order, start=1):
        scores[i] = quintile_of_rank(rank, len(values))
    return scores


class CustomerValueQueries:
    """Revenue lists, RFM scores and the Pareto view."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def currencies(self) -> list[str]:
        """Currencies with booked revenue, biggest total first."""
        r = revenue.c
        stmt = select(r.currency, total(r.booked)).group_by(r.currency)
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).all()
        return [c for c, _ in sorted(rows, key=lambda row: (-to_amount(row[1]), row[0]))]

    def _currency(self, currency: str | None) -> str | None:
        if currency is not None:
            return currency.upper()
        found = self.currencies()
        return found[0] if found else None

    def revenue(
        self, *, currency: str | None = None, page: int = 1, page_size: int = 50
    ) -> Page[CustomerRevenue]:
        """Customers by booked revenue, highest first (default: the main currency)."""
        code = self._currency(currency)
        stmt = (
            select(revenue, customers.c.name)
            .join(customers, customers.c.customer_id == revenue.c.customer_id)
            .where(revenue.c.currency == (code or ""))
            .order_by(revenue.c.booked.desc(), customers.c.name, revenue.c.customer_id)
        )
        return paged(self.engine, stmt, CustomerRevenue.model_validate, page, page_size)

    def _ordering(self, code: str) -> list[Any]:
        stmt = (
            select(
                revenue.c.customer_id,
                customers.c.name,
                revenue.c.booked,
                revenue.c.orders,
                revenue.c.last_order_at,
            )
            .join(customers, customers.c.customer_id == revenue.c.customer_id)
            .where(revenue.c.currency == code, revenue.c.booked > 0)
        )
        with self.engine.connect() as conn:
            return list(conn.execute(stmt).all())

    def _measures(
        self, code: str, as_of: datetime
    ) -> dict[UUID, tuple[str, Decimal, int, date, set[date]]]:
        """Per customer with revenue by ``as_of``: name, booked revenue, orders, the day of the
        last one and the distinct days (UTC) with one, from the booked orders placed by then."""
        o = orders.c
        stmt = (
            select(o.customer_id, customers.c.name, o.amount, o.placed_at)
            .join(customers, customers.c.customer_id == o.customer_id)
            .where(o.currency == code, o.counted == 1, o.placed_at <= as_of)
        )
        found: dict[UUID, tuple[str, Decimal, int, date, set[date]]] = {}
        with self.engine.connect() as conn:
            for cid, name, amount, placed_at in conn.execute(stmt):
                day = placed_at.astimezone(UTC).date()
                _, booked, n, last, days = found.get(cid, (name, _ZERO, 0, day, set()))
                days.add(day)
                found[cid] = (name, booked + amount, n + 1, max(last, day), days)
        return {cid: m for cid, m in found.items() if m[1] > 0}

    def rfm(
        self, *, as_of: datetime, currency: str | None = None, page: int = 1, page_size: int = 50
    ) -> Page[RfmScore]:
        """RFM quintiles of the customers with revenue in one currency as of ``as_of``, best
        first: the booked orders placed by then (those that stand: cancelled or returned ones
        are out), recency counted in days from ``as_of`` (see the module docstring for the
        convention). For everything as it stood then, reversals included, replay the read
        models to that time (``crm audit replay --until``)."""
        if as_of.tzinfo is None:
            raise InvalidCommandError("give 'as_of' with a time zone")
        check_paging(page, page_size)
        code = self._currency(currency)
        rows = self._measures(code, as_of) if code else {}
        if not rows:
            return Page[RfmScore](items=[], total=0, page=page, page_size=page_size)
        today = as_of.astimezone(UTC).date()
        # One order for every measure's ties: monetary, frequency, recency, customer id.
        measured: list[dict[str, Any]] = sorted(
            (
                {
                    "customer_id": cid,
                    "name": name,
                    "recency_days": max(0, (today - last).days),
                    "frequency": len(days),
                    "orders": n_orders,
                    "monetary": booked,
                }
                for cid, (name, booked, n_orders, last, days) in rows.items()
            ),
            key=lambda m: (
                m["monetary"],
                m["frequency"],
                -m["recency_days"],
                str(m["customer_id"]),
            ),
        )
        # Fewer days since the last purchase is better: rank the negated days.
        r_scores = quintiles([-m["recency_days"] for m in measured])
        f_scores = quintiles([m["frequency"] for m in measured])
        m_scores = quintiles([m["monetary"] for m in measured])
        scores = [
            RfmScore(**m, recency=r, frequency_score=f, monetary_score=v)
            for m, r, f, v in zip(measured, r_scores, f_scores, m_scores, strict=True)
        ]
        scores.sort(
            key=lambda s: (
                -(s.recency + s.frequency_score + s.monetary_score),
                -s.monetary,
                s.name,
                s.customer_id,
            )
        )
        start = (page - 1) * page_size
        return Page[RfmScore](
            items=scores[start : start + page_size],
            total=len(scores),
            page=page,
            page_size=page_size,
        )

    def pareto(
        self, *, currency: str | None = None, top_fraction: Decimal = Decimal("0.2")
    ) -> ParetoView:
        """Share of booked revenue from the top ``top_fraction`` of customers (rounded up)."""
        if not Decimal(0) < top_fraction <= Decimal(1):
            raise InvalidCommandError("top_fraction must be in (0, 1]")
        code = self._currency(currency) or ""
        amounts = sorted((r[2] for r in self._ordering(code)), reverse=True) if code else []
        n = len(amounts)
        top_n = math.ceil(n * top_fraction) if n else 0
        total_revenue = sum(amounts, _ZERO)
        top_revenue = sum(amounts[:top_n], _ZERO)
        share = (top_revenue / total_revenue).quantize(Decimal("0.0001")) if total_revenue else None
        return ParetoView(
            currency=code,
            customers=n,
            top_customers=top_n,
            top_fraction=top_fraction,
            top_revenue=top_revenue,
            total_revenue=total_revenue,
            top_share=share,
        )
