"""Sales pipeline: open opportunities by stage and owner, forecasts, conversion, win rate.

Answers "who is near signing and what will we close this quarter": totals by stage, the
weighted forecast (amount x stage probability) by expected close month and by forecast
category (pipeline, best case, commit, closed, omitted), stage-to-stage conversion from
the recorded stage history, win rate and average sales cycle. Won deals count the amount
they booked (the accepted quote's); quotes are listed with their status as of a date, so
one past its validity reads as expired before ``crm quotes expire`` records it. Won
revenue is net of the orders of won deals that were cancelled or returned
(:meth:`PipelineQueries.revenue`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Uuid,
    and_,
    func,
    or_,
    select,
)

from crm_domain.account import Account
from crm_domain.pipeline import DEFAULT_PIPELINE, Pipeline
from projections.events import BOOKKEEPING_EVENTS, CUSTOMER_EVENTS
from projections.query import Answer, Page, paged
from projections.readmodel import (
    LoggedEvent,
    ReadModel,
    field_values,
    handles,
    originators,
    topics_of,
)
from projections.rows import Row, execute_many
from projections.sqltypes import QUANTUM, Amount, UTCDateTime, to_amount, total

metadata = MetaData()

opportunities = Table(
    "pipeline_opportunities",
    metadata,
    Column("opportunity_id", Uuid, primary_key=True),
    Column("account_id", Uuid, nullable=False),
    Column("account_name", String(300), nullable=False),
    Column("name", String(300), nullable=False),
    Column("owner", String(100), nullable=False),
    Column("stage", String(100), nullable=False),
    Column("probability", Amount, nullable=False),
    Column("forecast_category", String(20), nullable=False),
    Column("amount", Amount),
    Column("currency", String(3)),
    Column("weighted", Amount),
    Column("expected_close", Date, nullable=False),
    Column("close_month", String(7), nullable=False),
    Column("status", String(4), nullable=False),  # open, won, lost
    Column("opened_at", UTCDateTime, nullable=False),
    Column("closed_at", UTCDateTime),
    Column("stage_entered_at", UTCDateTime, nullable=False),
)
Index("pipeline_open_idx", opportunities.c.status, opportunities.c.stage, opportunities.c.owner)

stage_changes = Table(
    "pipeline_stage_changes",
    metadata,
    Column("position", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True),
    Column("opportunity_id", Uuid, nullable=False, index=True),
    Column("from_stage", String(100)),
    Column("to_stage", String(100), nullable=False),
    Column("at", UTCDateTime, nullable=False),
)

quotes = Table(
    "pipeline_quotes",
    metadata,
    Column("quote_id", Uuid, primary_key=True),
    Column("opportunity_id", Uuid, nullable=False, index=True),
    Column("account_id", Uuid, nullable=False),
    Column("version", Integer, nullable=False),
    Column("amount", Amount, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("discount_pct", Amount, nullable=False),
    Column("valid_until", Date, nullable=False),
    Column("status", String(12), nullable=False),  # as stored: active, accepted, expired...
    Column("approval", String(12), nullable=False),  # not_required, requested, approved...
    Column("approver", String(100)),
    Column("issued_at", UTCDateTime, nullable=False),
)

#: Orders placed for an opportunity, and whether they were reversed (cancelled or returned).
orders = Table(
    "pipeline_orders",
    metadata,
    Column("order_id", Uuid, primary_key=True),
    Column("opportunity_id", Uuid, nullable=False, index=True),
    Column("amount", Amount, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("reversed", Integer, nullable=False),
)

accounts = Table(
    "pipeline_accounts",
    metadata,
    Column("account_id", Uuid, primary_key=True),
    Column("name", String(300), nullable=False),
)

_OPENED = topics_of(Account.OpportunityOpened)
_ORDER_REVERSED = topics_of(Account.OrderCancelled, Account.OrderReturned)
_CHANGED = topics_of(
    Account.OpportunityStaged,
    Account.OpportunityRevised,
    Account.OpportunityReassigned,
    Account.OpportunityWon,
    Account.OpportunityLost,
    Account.OpportunityCurrencyChanged,
)
_QUOTE_ISSUED = topics_of(Account.QuoteIssued)
_QUOTE_CHANGED = topics_of(
    Account.QuoteAccepted,
    Account.QuoteExpired,
    Account.QuoteWithdrawn,
    Account.QuoteDiscountApprovalRequested,
    Account.QuoteDiscountApproved,
    Account.QuoteDiscountRejected,
)


def _weighted(amount: Decimal | None, probability: Decimal) -> Decimal | None:
    return None if amount is None else (amount * probability).quantize(QUANTUM)


class SalesPipeline(ReadModel):
    """The sales pipeline read model: opportunities, their stage changes, account names."""

    name = "pipeline"
    description = "open opportunities by stage and owner, forecasts, conversion, win rate"
    rebuild_weight = 1.6
    tables = (opportunities, stage_changes, accounts, quotes, orders)
    #: Stage order, and forecast categories for opportunities opened by events stored
    #: before ``OpportunityOpened.forecast_category`` existed.
    pipeline: Pipeline = DEFAULT_PIPELINE
    ignores = (
        *BOOKKEEPING_EVENTS,
        *CUSTOMER_EVENTS,
        Account.ClassificationChanged,
        Account.Closed,
        Account.KeyAccountDesignated,
        Account.KeyAccountRevoked,
        Account.ContactAdded,
        Account.ContactRemoved,
        Account.ManagerAssigned,
        Account.QuoteSent,
        Account.OrderConfirmationRequested,
        Account.OrderConfirmed,
        Account.OrderRejected,
        Account.OrderShipped,
        Account.OrderDelivered,
        Account.InvoiceIssued,
        Account.PaymentReceived,
        Account.CreditNoteIssued,
        Account.RefundIssued,
        Account.CreditLimitSet,
    )

    def __init__(self, session: Any) -> None:
        super().__init__(session)
        self.opportunities = self.cache(opportunities)
        self.accounts = self.cache(accounts)
        self.quotes = self.cache(quotes)
        self.orders = self.cache(orders)
        self._changes: list[dict[str, Any]] = []

    def prepare(self, events: Sequence[LoggedEvent]) -> None:
        self.accounts.prefetch(originators(events, _OPENED))
        self.opportunities.prefetch(field_values(events, _CHANGED, "opportunity_id"))
        self.quotes.prefetch(
            field_values(events, _QUOTE_CHANGED, "quote_id")
            | field_values(events, _QUOTE_ISSUED, "supersedes")
        )
        self.orders.prefetch(field_values(events, _ORDER_REVERSED, "order_id"))

    def _opportunity(self, opportunity_id: UUID) -> Row:
        row = self.opportunities.get(opportunity_id)
        if row is None:
            raise LookupError(f"no opportunity {opportunity_id}")
        return row

    def _category(self, stage: str) -> str:
        try:
            return self.pipeline.stage(stage).forecast_category
        except ValueError:
            return "pipeline"

    def _stage_change(self, e: Any, position: int, from_stage: str | None, to_stage: str) -> None:
        self._changes.append(
            {
                "position": position,
                "opportunity_id": e.opportunity_id,
                "from_stage": from_stage,
                "to_stage": to_stage,
                "at": e.occurred_at,
            }
        )

    @handles(Account.Opened)
    def account_opened(self, e: Account.Opened, position: int) -> None:
        self.accounts.put(new=True, row={"account_id": e.originator_id, "name": e.name})

    @handles(Account.OpportunityOpened)
    def opened(self, e: Account.OpportunityOpened, position: int) -> None:
        account = self.accounts.get(e.originator_id)
        if account is None:
            raise LookupError(f"no account {e.originator_id}")
        amount = e.amount.amount if e.amount else None
        self.opportunities.put(
            new=True,
            row={
                "opportunity_id": e.opportunity_id,
                "account_id": e.originator_id,
                "account_name": account["name"],
                "name": e.name,
                "owner": e.owner,
                "stage": e.stage,
                "probability": e.probability,
                # Events stored before the field existed carry None: fall back to the
                # category of the opening stage in this read model's pipeline.
                "forecast_category": (
                    self._category(e.stage) if e.forecast_category is None else e.forecast_category
                ),
                "amount": amount,
                "currency": e.amount.currency if e.amount else None,
                "weighted": _weighted(amount, e.probability),
                "expected_close": e.expected_close,
                "close_month": e.expected_close.strftime("%Y-%m"),
                "status": "open",
                "opened_at": e.occurred_at,
                "closed_at": None,
                "stage_entered_at": e.occurred_at,
            },
        )
        self._stage_change(e, position, None, e.stage)

    @handles(Account.OpportunityStaged)
    def staged(self, e: Account.OpportunityStaged, position: int) -> None:
        row = self._opportunity(e.opportunity_id)
        row.update(
            stage=e.to_stage,
            probability=e.probability,
            forecast_category=e.forecast_category,
            weighted=_weighted(row["amount"], e.probability),
            stage_entered_at=e.occurred_at,
        )
        self._stage_change(e, position, e.from_stage, e.to_stage)

    @handles(Account.OpportunityRevised)
    def revised(self, e: Account.OpportunityRevised, position: int) -> None:
        row = self._opportunity(e.opportunity_id)
        amount = e.amount.amount if e.amount else None
        row.update(
            amount=amount,
            currency=e.amount.currency if e.amount else None,
            weighted=_weighted(amount, row["probability"]),
            expected_close=e.expected_close,
        )
        if row["status"] == "open":
            row["close_month"] = e.expected_close.strftime("%Y-%m")

    @handles(Account.OpportunityCurrencyChanged)
    def currency_changed(self, e: Account.OpportunityCurrencyChanged, position: int) -> None:
        row = self._opportunity(e.opportunity_id)
        row.update(
            amount=e.amount.amount,
            currency=e.amount.currency,
            weighted=_weighted(e.amount.amount, row["probability"]),
        )

    def _quote(self, quote_id: UUID) -> Row:
        row = self.quotes.get(quote_id)
        if row is None:
            raise LookupError(f"no quote {quote_id}")
        return row

    @handles(Account.QuoteIssued)
    def quote_issued(self, e: Account.QuoteIssued, position: int) -> None:
        if e.supersedes is not None:
            self._quote(e.supersedes)["status"] = "superseded"
        self.quotes.put(
            new=True,
            row={
                "quote_id": e.quote_id,
                "opportunity_id": e.opportunity_id,
                "account_id": e.originator_id,
                "version": e.version,
                "amount": e.amount.amount,
                "currency": e.amount.currency,
                "discount_pct": e.discount_pct,
                "valid_until": e.valid_until,
                "status": "active",
                "approval": "not_required",
                "approver": None,
                "issued_at": e.occurred_at,
            },
        )

    @handles(Account.QuoteAccepted, Account.QuoteExpired, Account.QuoteWithdrawn)
    def quote_closed(self, e: Any, position: int) -> None:
        status = {
            Account.QuoteAccepted: "accepted",
            Account.QuoteExpired: "expired",
            Account.QuoteWithdrawn: "withdrawn",
        }
        self._quote(e.quote_id)["status"] = next(v for k, v in status.items() if isinstance(e, k))

    @handles(
        Account.QuoteDiscountApprovalRequested,
        Account.QuoteDiscountApproved,
        Account.QuoteDiscountRejected,
    )
    def quote_approval(self, e: Any, position: int) -> None:
        row = self._quote(e.quote_id)
        if isinstance(e, Account.QuoteDiscountApprovalRequested):
            row["approval"] = "requested"
        else:
            approved = isinstance(e, Account.QuoteDiscountApproved)
            row.update(approval="approved" if approved else "rejected", approver=e.approver)

    @handles(Account.OpportunityReassigned)
    def reassigned(self, e: Account.OpportunityReassigned, position: int) -> None:
        self._opportunity(e.opportunity_id)["owner"] = e.owner

    @handles(Account.OpportunityWon, Account.OpportunityLost)
    def closed(self, e: Any, position: int) -> None:
        row = self._opportunity(e.opportunity_id)
        won = isinstance(e, Account.OpportunityWon)
        probability = Decimal(1) if won else Decimal(0)
        if won:
            row.update(amount=e.amount.amount, currency=e.amount.currency)
        row.update(
            stage=e.to_stage,
            probability=probability,
            forecast_category="closed" if won else "omitted",
            weighted=_weighted(row["amount"], probability),
            status="won" if won else "lost",
            closed_at=e.occurred_at,
            close_month=e.occurred_at.strftime("%Y-%m"),
            stage_entered_at=e.occurred_at,
        )
        self._stage_change(e, position, e.from_stage, e.to_stage)

    @handles(Account.OrderPlaced)
    def order_placed(self, e: Account.OrderPlaced, position: int) -> None:
        if e.opportunity_id is None:
            return  # an order of no deal: not pipeline revenue
        self.orders.put(
            new=True,
            row={
                "order_id": e.order_id,
                "opportunity_id": e.opportunity_id,
                "amount": e.total.amount,
                "currency": e.total.currency,
                "reversed": 0,
            },
        )

    @handles(Account.OrderCancelled, Account.OrderReturned)
    def order_reversed(self, e: Any, position: int) -> None:
        row = self.orders.get(e.order_id)
        if row is not None:
            row["reversed"] = 1

    def finish(self) -> None:
        super().finish()
        if self._changes:
            execute_many(self.session, stage_changes, "insert", self._changes)
            self._changes = []


# -- queries ---------------------------------------------------------------------------


class OpportunityLine(Answer):
    """One opportunity as the pipeline shows it: account, owner, stage, amounts, dates."""

    opportunity_id: UUID
    account_id: UUID
    account_name: str
    name: str
    owner: str
    stage: str
    probability: Decimal
    forecast_category: str
    amount: Decimal | None
    currency: str | None
    weighted: Decimal | None
    expected_close: date
    status: str
    opened_at: datetime
    closed_at: datetime | None
    stage_entered_at: datetime

    @classmethod
    def from_row(cls, row: Any) -> OpportunityLine:
        """The answer for one ``pipeline_opportunities`` row."""
        data = {k: v for k, v in dict(row).items() if k != "close_month"}
        return cls.model_validate(data)


class StageTotal(Answer):
    """Open opportunities in one stage (and, for :meth:`PipelineQueries.by_stage_and_owner`,
    of one owner); amounts per currency."""

    stage: str
    owner: str | None = None
    count: int
    amount: dict[str, Decimal]
    weighted: dict[str, Decimal]


class ForecastLine(Answer):
    """Forecast for one period or category in one currency."""

    key: str
    currency: str
    count: int
    amount: Decimal
    weighted: Decimal


class StageConversion(Answer):
    """Of the opportunities that reached ``stage``, how many went further (or were won)."""

    stage: str
    reached: int
    advanced: int
    rate: Decimal | None


class Transition(Answer):
    """How many opportunities moved from one stage to another."""

    from_stage: str | None
    to_stage: str
    count: int


class QuoteLine(Answer):
    """A quote as the pipeline shows it, its ``status`` read as of a date: an active quote past
    its validity reads as expired (``recorded_status`` is what the events say)."""

    quote_id: UUID
    opportunity_id: UUID
    account_id: UUID
    version: int
    amount: Decimal
    currency: str
    discount_pct: Decimal
    valid_until: date
    status: str
    recorded_status: str
    approval: str
    approver: str | None
    issued_at: datetime


class WinRate(Answer):
    """Won and lost opportunities, the win rate and the average days to win."""

    won: int
    lost: int
    rate: Decimal | None
    average_cycle_days: Decimal | None


class RevenueLine(Answer):
    """Won revenue in one currency: what the won deals booked, what their cancelled or
    returned orders took back, and the net (never below zero per deal)."""

    currency: str
    won: int
    amount: Decimal
    reversed: Decimal
    net: Decimal


class PipelineQueries:
    """Pipeline answers; stage order comes from ``pipeline`` (the domain's by default)."""

    def __init__(self, engine: Engine, pipeline: Pipeline = DEFAULT_PIPELINE) -> None:
        self.engine = engine
        self.pipeline = pipeline

    def _stage_order(self, stage: str) -> tuple[int, str]:
        names = [s.name for s in self.pipeline.stages]
        return (names.index(stage) if stage in names else len(names), stage)

    def open_opportunities(
        self,
        *,
        stage: str | None = None,
        owner: str | None = None,
        account_id: UUID | None = None,
        page: int = 1,
        page_size: int = 50,
    ) -> Page[OpportunityLine]:
        """Open opportunities, most likely to close first."""
        stmt = select(opportunities).where(opportunities.c.status == "open")
        if stage is not None:
            stmt = stmt.where(opportunities.c.stage == stage)
        if owner is not None:
            stmt = stmt.where(opportunities.c.owner == owner)
        if account_id is not None:
            stmt = stmt.where(opportunities.c.account_id == account_id)
        stmt = stmt.order_by(
            opportunities.c.probability.desc(),
            opportunities.c.expected_close,
            opportunities.c.opportunity_id,
        )
        return paged(self.engine, stmt, OpportunityLine.from_row, page, page_size)

    def quotes(
        self,
        *,
        as_of: date,
        status: str | None = None,
        account_id: UUID | None = None,
        opportunity_id: UUID | None = None,
        page: int = 1,
        page_size: int = 50,
    ) -> Page[QuoteLine]:
        """Quotes with their status on ``as_of`` (active, expired, accepted, withdrawn,
        superseded; an active one past its ``valid_until`` is expired), optionally of one
        status, account or opportunity; soonest to lapse first."""
        q = quotes.c
        lapsed = and_(q.status == "active", q.valid_until < as_of)
        stmt = select(quotes)
        if status == "expired":
            stmt = stmt.where(or_(q.status == "expired", lapsed))
        elif status == "active":
            stmt = stmt.where(q.status == "active", q.valid_until >= as_of)
        elif status is not None:
            stmt = stmt.where(q.status == status)
        if account_id is not None:
            stmt = stmt.where(q.account_id == account_id)
        if opportunity_id is not None:
            stmt = stmt.where(q.opportunity_id == opportunity_id)
        stmt = stmt.order_by(q.valid_until, q.quote_id)

        def line(row: Any) -> QuoteLine:
            data = dict(row)
            data["recorded_status"] = data["status"]
            if data["status"] == "active" and data["valid_until"] < as_of:
                data["status"] = "expired"
            return QuoteLine.model_validate(data)

        return paged(self.engine, stmt, line, page, page_size)

    def quote_counts(self, *, as_of: date) -> dict[str, int]:
        """How many quotes have each status on ``as_of`` (lapsed active quotes count as
        expired)."""
        q = quotes.c
        by_status = select(q.status, func.count()).group_by(q.status)
        lapsed = select(func.count()).where(q.status == "active", q.valid_until < as_of)
        with self.engine.connect() as conn:
            counts: dict[str, int] = {str(r[0]): int(r[1]) for r in conn.execute(by_status)}
            n_lapsed = conn.execute(lapsed).scalar_one()
        if n_lapsed:
            counts["active"] -= n_lapsed
            counts["expired"] = counts.get("expired", 0) + n_lapsed
        counts = {k: v for k, v in counts.items() if v}
        return dict(sorted(counts.items()))

    def by_stage(self) -> list[StageTotal]:
        """Open opportunities per stage, in pipeline order."""
        return [t.model_copy(update={"owner": None}) for t in self._totals(by_owner=False)]

    def by_stage_and_owner(self) -> list[StageTotal]:
        """Open opportunities per stage and owner."""
        return self._totals(by_owner=True)

    def _totals(self, *, by_owner: bool) -> list[StageTotal]:
        o = opportunities.c
        keys = [o.stage, o.owner] if by_owner else [o.stage]
        stmt = (
            select(*keys, o.currency, func.count(), total(o.amount), total(o.weighted))
            .where(o.status == "open")
            .group_by(*keys, o.currency)
        )
        cells: dict[tuple[str, str | None], dict[str, Any]] = {}
        with self.engine.connect() as conn:
            for row in conn.execute(stmt):
                stage, owner = row[0], (row[1] if by_owner else None)
                currency, count, amount, weighted = row[-4], row[-3], row[-2], row[-1]
                cell = cells.setdefault((stage, owner), {"count": 0, "amount": {}, "weighted": {}})
                cell["count"] += count
                if currency is not None:
                    cell["amount"][currency] = to_amount(amount)
                    cell["weighted"][currency] = to_amount(weighted)
        ordered = sorted(cells, key=lambda k: (self._stage_order(k[0]), k[1] or ""))
        return [StageTotal(stage=s, owner=w, **cells[(s, w)]) for s, w in ordered]

    def forecast_by_month(self, *, since: date | None = None) -> list[ForecastLine]:
        """Weighted forecast by expected close month (won deals in the month they closed;
        lost deals count nothing)."""
        o = opportunities.c
        stmt = select(
            o.close_month, o.currency, func.count(), total(o.amount), total(o.weighted)
        ).where(o.status != "lost", o.currency.is_not(None))
        if since is not None:
            stmt = stmt.where(o.close_month >= since.strftime("%Y-%m"))
        return self._forecast(stmt.group_by(o.close_month, o.currency))

    def forecast_by_category(self) -> list[ForecastLine]:
        """Forecast by category: pipeline, best case, commit, closed (won), omitted (lost)."""
        o = opportunities.c
        stmt = select(
            o.forecast_category, o.currency, func.count(), total(o.amount), total(o.weighted)
        ).where(o.currency.is_not(None))
        order = ["pipeline", "best_case", "commit", "closed", "omitted"]
        lines = self._forecast(stmt.group_by(o.forecast_category, o.currency))
        return sorted(
            lines,
            key=lambda f: (order.index(f.key) if f.key in order else len(order), f.key, f.currency),
        )

    def _forecast(self, stmt: Any) -> list[ForecastLine]:
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).all()
        return sorted(
            (
                ForecastLine(key=k, currency=c, count=n, amount=to_amount(a), weighted=to_amount(w))
                for k, c, n, a, w in rows
            ),
            key=lambda f: (f.key, f.currency),
        )

    def transitions(self) -> list[Transition]:
        """How often opportunities moved from one stage to another (None: opened in)."""
        s = stage_changes.c
        stmt = select(s.from_stage, s.to_stage, func.count()).group_by(s.from_stage, s.to_stage)
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).all()
        return sorted(
            (Transition(from_stage=f, to_stage=t, count=n) for f, t, n in rows),
            key=lambda t: (self._stage_order(t.from_stage or ""), self._stage_order(t.to_stage)),
        )

    def conversion(self) -> list[StageConversion]:
        """Per open stage: opportunities that reached it, and those that then moved to a
        later stage or were won (lost and backward moves do not count)."""
        s = stage_changes.c
        names = [st.name for st in self.pipeline.stages]
        won = self.pipeline.won_stage.name
        reached: dict[str, set[UUID]] = defaultdict(set)
        advanced: dict[str, set[UUID]] = defaultdict(set)
        stmt = select(s.opportunity_id, s.from_stage, s.to_stage).order_by(s.position)
        with self.engine.connect() as conn:
            for opp, frm, to in conn.execute(stmt):
                reached[to].add(opp)
                if frm is None:
                    continue
                reached[frm].add(opp)
                forward = to == won or (
                    frm in names
                    and to in names
                    and names.index(to) > names.index(frm)
                    and not self.pipeline.stage(to).closed
                )
                if forward:
                    advanced[frm].add(opp)
        out = []
        for stage in self.pipeline.stages:
            if stage.closed:
                continue
            n = len(reached[stage.name])
            k = len(advanced[stage.name])
            rate = (Decimal(k) / Decimal(n)).quantize(QUANTUM) if n else None
            out.append(StageConversion(stage=stage.name, reached=n, advanced=k, rate=rate))
        return out

    def win_rate(self, *, owner: str | None = None) -> WinRate:
        """Won / (won + lost), and the average days from opening to winning."""
        o = opportunities.c
        stmt = select(o.status, o.opened_at, o.closed_at).where(o.status != "open")
        if owner is not None:
            stmt = stmt.where(o.owner == owner)
        won = lost = 0
        cycle_seconds = 0.0
        with self.engine.connect() as conn:
            for status, opened, closed in conn.execute(stmt):
                if status == "won":
                    won += 1
                    cycle_seconds += (closed - opened).total_seconds()
                else:
                    lost += 1
        rate = (Decimal(won) / Decimal(won + lost)).quantize(QUANTUM) if won + lost else None
        cycle = (
            (Decimal(cycle_seconds) / Decimal(86400 * won)).quantize(Decimal("0.01"))
            if won
            else None
        )
        return WinRate(won=won, lost=lost, rate=rate, average_cycle_days=cycle)

    def revenue(self, *, owner: str | None = None) -> list[RevenueLine]:
        """Won revenue per currency, net of the orders of won deals that were cancelled or
        returned (each deal's reversal is capped at its amount; orders in another currency
        than the deal's are not netted). Credit notes need a returned or cancelled order, so
        they are netted through it."""
        o, r = opportunities.c, orders.c
        won = select(o.opportunity_id, o.currency, o.amount).where(
            o.status == "won", o.currency.is_not(None)
        )
        if owner is not None:
            won = won.where(o.owner == owner)
        taken = (
            select(r.opportunity_id, r.currency, total(r.amount))
            .where(r.reversed == 1)
            .group_by(r.opportunity_id, r.currency)
        )
        with self.engine.connect() as conn:
            deals = conn.execute(won).all()
            reversals = {(opp, cur): to_amount(amt) for opp, cur, amt in conn.execute(taken)}
        lines: dict[str, dict[str, Any]] = {}
        for opp, currency, amount in deals:  # the Amount column reads as Decimal
            back = min(reversals.get((opp, currency), Decimal(0)), amount)
            line = lines.setdefault(
                currency, {"won": 0, "amount": Decimal(0), "reversed": Decimal(0)}
            )
            line["won"] += 1
            line["amount"] += amount
            line["reversed"] += back
        return [
            RevenueLine(currency=c, net=v["amount"] - v["reversed"], **v)
            for c, v in sorted(lines.items())
        ]
