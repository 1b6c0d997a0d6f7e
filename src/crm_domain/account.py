"""The ``Account`` aggregate: the commercial relationship with a customer.

A B2B company with its contacts (the decision unit), or a consumer's account. It owns
the sales side: opportunities moving through the pipeline, versioned quotes (one active
per opportunity: "three reps gave me three different quotes" must not happen), orders
that ERP confirms before they are promised, invoices and payments, the credit limit.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated
from uuid import UUID

from eventsourcing.domain import event
from pydantic import AwareDatetime, Field

from crm_domain.context import current_context
from crm_domain.credit import DEFAULT_ERP_SOURCES, CreditExposure, CreditOverride
from crm_domain.errors import (
    AcceptedQuoteExistsError,
    AccountClosedError,
    ActiveQuoteExistsError,
    ConfirmationNotRequestedError,
    ContactRoleError,
    CreditAmountError,
    CreditCurrencyError,
    CreditLimitExceededError,
    CurrencyChangeError,
    DiscountApprovalError,
    DiscountApprovalRequiredError,
    EntityNotFoundError,
    InvalidCommandError,
    NotErpSourceError,
    OpportunityClosedError,
    OrderStateError,
    PipelineRuleError,
    QuoteExpiredError,
    QuoteStateError,
    RuleViolationError,
    UnresolvedQuoteError,
)
from crm_domain.eventmodel import Aggregate, Entity, SnapshotState
from crm_domain.infrastructure.compat import random_uuid
from crm_domain.pipeline import DEFAULT_PIPELINE, Pipeline
from crm_domain.quoting import DEFAULT_QUOTE_SETTINGS, QuoteSettings
from crm_domain.values import (
    MAX_ORDER_LINES,
    AccountTier,
    CompanySize,
    DiscountApproval,
    FreeText,
    KeyAccountCriterion,
    Label,
    ListBounds,
    Money,
    Name,
    OrderLine,
    OrderRejectionReason,
    OrderStatus,
    QuoteStatus,
    Reference,
    ShortText,
    to_decimal,
)

Probability = Annotated[Decimal, Field(ge=0, le=1)]
DiscountPct = Annotated[Decimal, Field(ge=0, le=100)]


class AccountContact(Entity):
    """A person (a customer of kind individual) at the account, with their role."""

    customer_id: UUID
    role: str
    decision_maker: bool = False


class Opportunity(Entity):
    """A sale being pursued: its stage in the pipeline, amount, expected close and owner."""

    opportunity_id: UUID
    name: str
    amount: Money | None
    expected_close: date
    stage: str
    probability: Decimal
    owner: str
    opened_at: AwareDatetime
    closed_at: AwareDatetime | None = None
    won: bool | None = None
    #: The quote the customer accepted, while the deal is unrevised since: winning books its
    #: amount, and no new quote is issued until a revision clears it.
    accepted_quote_id: UUID | None = None

    @property
    def is_closed(self) -> bool:
        """Whether it was won or lost; a closed opportunity takes no more changes or quotes."""
        return self.closed_at is not None


class Quote(Entity):
    """One version of a price offer on an opportunity; revising it issues a new version."""

    quote_id: UUID
    opportunity_id: UUID
    version: int
    amount: Money
    discount_pct: Decimal
    valid_until: date
    status: QuoteStatus = QuoteStatus.ACTIVE
    #: The approval threshold (percent) of the account's tier when it was issued; None for
    #: quotes issued before discount approval existed (they need none).
    approval_threshold: Decimal | None = None
    approval: DiscountApproval = DiscountApproval.NOT_REQUIRED
    #: Who asked for the discount approval (the actor who issued the quote).
    requested_by: str = ""
    #: Who approved or rejected the discount.
    approver: str | None = None
    sent: bool = False

    def lapsed(self, as_of: date) -> bool:
        """Whether it is past its validity on ``as_of`` (``valid_until`` is the last valid day)."""
        return as_of > self.valid_until

    def status_on(self, as_of: date) -> QuoteStatus:
        """Its status as read on ``as_of``: an active quote past its validity reads as expired,
        even before ``crm quotes expire`` recorded it."""
        if self.status is QuoteStatus.ACTIVE and self.lapsed(as_of):
            return QuoteStatus.EXPIRED
        return self.status


class Order(Entity):
    """What the customer ordered; not promised to them until ERP confirms it."""

    order_id: UUID
    lines: list[OrderLine]
    total: Money
    status: OrderStatus = OrderStatus.PLACED
    opportunity_id: UUID | None = None
    quote_id: UUID | None = None
    placed_at: AwareDatetime
    #: ERP's reference for the order, from its confirmation ("" until then, or if ERP gave
    #: none): how an order import knows ERP's order is already there.
    erp_reference: str = ""


class Invoice(Entity):
    """An invoice on the account (usually from ERP), and how much of it has been paid,
    credited (credit notes) and refunded."""

    invoice_id: UUID
    order_id: UUID | None
    amount: Money
    paid: Decimal = Decimal(0)
    #: Credit notes issued against it.
    credited: Decimal = Decimal(0)
    #: Refunds paid back against it.
    refunded: Decimal = Decimal(0)

    @property
    def balance(self) -> Decimal:
        """What the customer still owes on it: amount less credit notes, less payments kept
        (payments less refunds); negative when they are owed money back."""
        return self.amount.amount - self.credited - (self.paid - self.refunded)

    @property
    def outstanding(self) -> Decimal:
        """What is still owed on it (never negative): its share of the account's exposure."""
        return max(self.balance, Decimal(0))

    @property
    def creditable(self) -> Decimal:
        """How much a credit note may still cover: the amount not yet credited."""
        return self.amount.amount - self.credited

    @property
    def refundable(self) -> Decimal:
        """How much may be refunded: what was paid beyond what is owed after credit notes."""
        return max(-self.balance, Decimal(0))

    @property
    def is_paid(self) -> bool:
        """Whether the payments kept cover what is owed after credit notes (an overpayment
        counts as paid)."""
        return self.balance <= 0


class AccountState(SnapshotState):
    """The account's state as a snapshot holds it, so a snapshot restores typed values."""

    customer_id: UUID
    name: str
    industry: str
    size: CompanySize
    tier: AccountTier
    active: bool
    key_account: KeyAccountCriterion | None
    manager: str | None
    contacts: dict[UUID, AccountContact]
    opportunities: dict[UUID, Opportunity]
    quotes: dict[UUID, Quote]
    orders: dict[UUID, Order]
    invoices: dict[UUID, Invoice]
    payments_received: dict[str, Decimal]
    credit_limit: Money | None
    #: Credit notes issued, each with its invoice (added later: older snapshots have none).
    credit_notes: dict[UUID, UUID] = {}


class Account(Aggregate):
    """A commercial relationship: contacts, pipeline, quotes, orders, money."""

    snapshot_state = AccountState

    # ----- events -------------------------------------------------------------------
    class Opened(Aggregate.Created):
        """A commercial account was opened for a customer."""

        customer_id: UUID
        name: Name
        industry: Label
        size: CompanySize
        tier: AccountTier

    class ClassificationChanged(Aggregate.Event):
        """Industry, size or tier of the account changed."""

        industry: Label
        size: CompanySize
        tier: AccountTier

    class Closed(Aggregate.Event):
        """The account was closed (never deleted)."""

        reason: ShortText

    class KeyAccountDesignated(Aggregate.Event):
        """The account became a key account, with the criterion."""

        criterion: KeyAccountCriterion
        note: FreeText = ""

    class KeyAccountRevoked(Aggregate.Event):
        """The account is no longer a key account."""

        reason: ShortText

    class ContactAdded(Aggregate.Event):
        """A person joined the account contacts (the decision unit), with a role."""

        customer_id: UUID
        role: Label
        decision_maker: bool = False

    class ContactRemoved(Aggregate.Event):
        """A person left the account contacts."""

        customer_id: UUID
        reason: ShortText

    class ManagerAssigned(Aggregate.Event):
        """The account manager was assigned or handed over."""

        manager: Label
        previous_manager: Label | None
        reason: ShortText

    class OpportunityOpened(Aggregate.Event):
        """A sales opportunity was opened in the first pipeline stage."""

        opportunity_id: UUID
        name: Name
        amount: Money | None
        expected_close: date
        stage: Label
        probability: Probability
        owner: Label
        #: Added after the first release; events stored before it read as None.
        forecast_category: Label | None = None

    class OpportunityStaged(Aggregate.Event):
        """An opportunity moved to another open pipeline stage."""

        opportunity_id: UUID
        from_stage: Label
        to_stage: Label
        probability: Probability
        forecast_category: Label

    class OpportunityRevised(Aggregate.Event):
        """The amount or expected close date of an opportunity was revised."""

        opportunity_id: UUID
        amount: Money | None
        expected_close: date
        reason: FreeText = ""

    class OpportunityReassigned(Aggregate.Event):
        """An open opportunity got a new owner (e.g. its rep left), with the reason."""

        opportunity_id: UUID
        owner: Label
        previous_owner: Label
        reason: ShortText

    class OpportunityWon(Aggregate.Event):
        """An opportunity closed won, with its amount."""

        opportunity_id: UUID
        from_stage: Label
        to_stage: Label
        amount: Money
        reason: ShortText
        competitor: Label | None = None
        #: The accepted quote whose amount was booked (None: the opportunity's own amount).
        quote_id: UUID | None = None

    class OpportunityCurrencyChanged(Aggregate.Event):
        """An open opportunity's currency was changed explicitly, with its amount in the new
        currency and the reason (a plain revision keeps the currency)."""

        opportunity_id: UUID
        amount: Money
        previous_amount: Money | None
        reason: ShortText

    class OpportunityLost(Aggregate.Event):
        """An opportunity closed lost, with the reason and competitor."""

        opportunity_id: UUID
        from_stage: Label
        to_stage: Label
        reason: ShortText
        competitor: Label | None = None

    class QuoteIssued(Aggregate.Event):
        """A quote (or a new version superseding one) was issued on an opportunity."""

        quote_id: UUID
        opportunity_id: UUID
        version: int
        amount: Money
        discount_pct: DiscountPct
        valid_until: date
        supersedes: UUID | None = None
        #: The discount approval threshold (percent) in force for the account's tier; a
        #: discount above it needs approval. None on events stored before the policy existed.
        approval_threshold: DiscountPct | None = None

    class QuoteDiscountApprovalRequested(Aggregate.Event):
        """A quote's discount is beyond the policy's threshold: it needs approval before it can
        be sent or accepted."""

        quote_id: UUID
        opportunity_id: UUID
        discount_pct: DiscountPct
        threshold_pct: DiscountPct
        requested_by: Label

    class QuoteDiscountApproved(Aggregate.Event):
        """A quote's discount was approved, by whom (not the rep who asked)."""

        quote_id: UUID
        opportunity_id: UUID
        approver: Label
        note: FreeText = ""

    class QuoteDiscountRejected(Aggregate.Event):
        """A quote's discount was rejected, by whom and why: revise the quote or withdraw it."""

        quote_id: UUID
        opportunity_id: UUID
        approver: Label
        reason: ShortText

    class QuoteSent(Aggregate.Event):
        """A quote was sent to the customer (only valid, approved quotes are sent)."""

        quote_id: UUID
        opportunity_id: UUID
        sent_to: FreeText = ""

    class QuoteWithdrawn(Aggregate.Event):
        """The seller withdrew an active quote, with the reason (e.g. before winning the deal on
        other terms)."""

        quote_id: UUID
        opportunity_id: UUID
        reason: ShortText

    class QuoteAccepted(Aggregate.Event):
        """The customer accepted a quote."""

        quote_id: UUID
        opportunity_id: UUID

    class QuoteExpired(Aggregate.Event):
        """A quote expired (or was withdrawn when the opportunity was lost)."""

        quote_id: UUID
        opportunity_id: UUID
        #: The last day it was valid, and the day its expiry was recorded for (None when it
        #: was expired by hand, and on events stored before these fields existed).
        valid_until: date | None = None
        as_of: date | None = None

    class OrderPlaced(Aggregate.Event):
        """An order was placed; it is not promised until ERP confirms it."""

        order_id: UUID
        lines: Annotated[
            list[OrderLine], Field(min_length=1), ListBounds(MAX_ORDER_LINES, "order lines")
        ]
        total: Money
        opportunity_id: UUID | None = None
        quote_id: UUID | None = None

    class OrderConfirmationRequested(Aggregate.Event):
        """ERP was asked to confirm the order (credit, margin, availability).

        When the account has a credit limit, ``exposure`` is what it would owe with this
        order (in the limit's currency; None when that could not be counted); a supervisor's
        ``credit_override`` lets a request over the limit through, with the reason.
        """

        order_id: UUID
        total: Money
        #: Added with the credit check; events stored before it read as None.
        credit_limit: Money | None = None
        exposure: Money | None = None
        credit_override: CreditOverride | None = None

    class OrderConfirmed(Aggregate.Event):
        """ERP confirmed the order."""

        order_id: UUID
        erp_reference: Reference = ""

    class OrderRejected(Aggregate.Event):
        """ERP rejected the order, with the reason."""

        order_id: UUID
        reason: OrderRejectionReason
        detail: FreeText = ""

    class OrderShipped(Aggregate.Event):
        """The order was shipped."""

        order_id: UUID
        shipment_ref: Reference = ""

    class OrderDelivered(Aggregate.Event):
        """The order was delivered."""

        order_id: UUID

    class OrderReturned(Aggregate.Event):
        """The order was returned."""

        order_id: UUID
        reason: ShortText

    class OrderCancelled(Aggregate.Event):
        """The order was cancelled before it shipped, with the reason."""

        order_id: UUID
        reason: ShortText
        #: The status it was cancelled from (placed, confirmation requested or confirmed).
        from_status: OrderStatus

    class InvoiceIssued(Aggregate.Event):
        """An invoice was recorded for the account."""

        invoice_id: UUID
        order_id: UUID | None
        amount: Money
        due_date: date | None = None
        reference: Reference = ""

    class PaymentReceived(Aggregate.Event):
        """A payment was received (optionally against an invoice)."""

        payment_id: UUID
        amount: Money
        invoice_id: UUID | None = None
        reference: Reference = ""

    class CreditNoteIssued(Aggregate.Event):
        """A credit note was issued against an invoice (after a return or a cancellation),
        reducing what the customer owes; ``order_id`` is the invoice's order, if any."""

        credit_note_id: UUID
        invoice_id: UUID
        order_id: UUID | None
        amount: Money
        reason: ShortText
        reference: Reference = ""

    class RefundIssued(Aggregate.Event):
        """Money was paid back to the customer against an invoice (what they paid beyond
        what they owe after credit notes); ``order_id`` is the invoice's order, if any."""

        refund_id: UUID
        invoice_id: UUID
        order_id: UUID | None
        amount: Money
        reason: ShortText
        reference: Reference = ""

    class CreditLimitSet(Aggregate.Event):
        """The credit limit was set or changed."""

        limit: Money
        previous_limit: Money | None

    # ----- creation -----------------------------------------------------------------
    @event(Opened)
    def __init__(
        self,
        customer_id: UUID,
        name: str,
        industry: str,
        size: CompanySize,
        tier: AccountTier,
    ) -> None:
        self.customer_id = customer_id
        self.name = name
        self.industry = industry
        self.size = CompanySize(size)
        self.tier = AccountTier(tier)
        self.active = True
        self.key_account: KeyAccountCriterion | None = None
        self.manager: str | None = None
        self.contacts: dict[UUID, AccountContact] = {}
        self.opportunities: dict[UUID, Opportunity] = {}
        self.quotes: dict[UUID, Quote] = {}
        self.orders: dict[UUID, Order] = {}
        self.invoices: dict[UUID, Invoice] = {}
        self.payments_received: dict[str, Decimal] = {}
        self.credit_limit: Money | None = None
        self.credit_notes: dict[UUID, UUID] = {}

    @classmethod
    def open(
        cls,
        *,
        customer_id: UUID,
        name: str,
        industry: str = "unspecified",
        size: CompanySize | str = CompanySize.SMALL,
        tier: AccountTier | str = AccountTier.STANDARD,
    ) -> Account:
        """Open an account for a customer (default classification: unspecified industry, small,
        standard)."""
        return cls(
            customer_id=customer_id,
            name=name,
            industry=industry,
            size=size,  # type: ignore[arg-type]
            tier=tier,  # type: ignore[arg-type]
        )

    # ----- lookups and guards -------------------------------------------------------
    def _require_active(self) -> None:
        if not self.active:
            raise AccountClosedError(f"account {self.name} is closed")

    def opportunity(self, opportunity_id: UUID) -> Opportunity:
        """The opportunity with that id on this account, else :class:`EntityNotFoundError`."""
        try:
            return self.opportunities[opportunity_id]
        except KeyError:
            raise EntityNotFoundError("opportunity", opportunity_id, self.id) from None

    def quote(self, quote_id: UUID, *, as_of: date | None = None) -> Quote:
        """The quote with that id on this account, else :class:`EntityNotFoundError`.

        Read as of ``as_of`` (default: today, UTC): an active quote past its validity shows
        as expired, even before its expiry is recorded (``crm quotes expire``). The stored
        state is ``quotes[quote_id]``.
        """
        quote = self._quote(quote_id)
        day = as_of if as_of is not None else datetime.now(UTC).date()
        status = quote.status_on(day)
        return quote if status is quote.status else quote.model_copy(update={"status": status})

    def _quote(self, quote_id: UUID) -> Quote:
        try:
            return self.quotes[quote_id]
        except KeyError:
            raise EntityNotFoundError("quote", quote_id, self.id) from None

    def accepted_quote(self, opportunity_id: UUID) -> Quote | None:
        """The quote the customer accepted on the opportunity, if the deal was not revised
        since (winning books its amount), else None."""
        accepted = self.opportunity(opportunity_id).accepted_quote_id
        return None if accepted is None else self.quotes[accepted]

    def deal_currency(self, opportunity_id: UUID) -> str | None:
        """The opportunity's currency: its amount's, else its latest quote's (None: neither)."""
        opp = self.opportunity(opportunity_id)
        if opp.amount is not None:
            return opp.amount.currency
        quoted = [q for q in self.quotes.values() if q.opportunity_id == opportunity_id]
        return max(quoted, key=lambda q: q.version).amount.currency if quoted else None

    def order(self, order_id: UUID) -> Order:
        """The order with that id on this account, else :class:`EntityNotFoundError`."""
        try:
            return self.orders[order_id]
        except KeyError:
            raise EntityNotFoundError("order", order_id, self.id) from None

    def invoice(self, invoice_id: UUID) -> Invoice:
        """The invoice with that id on this account, else :class:`EntityNotFoundError`."""
        try:
            return self.invoices[invoice_id]
        except KeyError:
            raise EntityNotFoundError("invoice", invoice_id, self.id) from None

    def active_quote(self, opportunity_id: UUID) -> Quote | None:
        """The opportunity's one active quote (the rule allows no second), or None."""
        for q in self.quotes.values():
            if q.opportunity_id == opportunity_id and q.status is QuoteStatus.ACTIVE:
                return q
        return None

    def _open_opportunity(self, opportunity_id: UUID, step: str) -> Opportunity:
        opp = self.opportunity(opportunity_id)
        if opp.is_closed:
            raise OpportunityClosedError(
                f"cannot {step} opportunity {opp.name!r}: it is closed ({opp.stage})"
            )
        return opp

    # ----- account profile ----------------------------------------------------------
    def reclassify(
        self,
        *,
        industry: str | None = None,
        size: CompanySize | str | None = None,
        tier: AccountTier | str | None = None,
    ) -> None:
        """Change industry, size or tier of an open account; what is not given stays as it is."""
        self._require_active()
        self._reclassify(
            industry=industry if industry is not None else self.industry,
            size=size if size is not None else self.size,
            tier=tier if tier is not None else self.tier,
        )

    @event(ClassificationChanged)
    def _reclassify(self, industry: str, size: CompanySize | str, tier: AccountTier | str) -> None:
        self.industry = industry
        self.size = CompanySize(size)
        self.tier = AccountTier(tier)

    def close(self, *, reason: str) -> None:
        """Close the account (never deleted); refused while an opportunity is still open: win or
        lose it first."""
        self._require_active()
        if any(not o.is_closed for o in self.opportunities.values()):
            raise RuleViolationError("close or lose the open opportunities before closing")
        self._close(reason=reason)

    @event(Closed)
    def _close(self, reason: str) -> None:
        self.active = False

    def designate_key_account(
        self, *, criterion: KeyAccountCriterion | str, note: str = ""
    ) -> None:
        """Make an open account a key account, recording the criterion (size, sector...) that
        qualifies it."""
        self._require_active()
        self._designate(criterion=criterion, note=note)

    @event(KeyAccountDesignated)
    def _designate(self, criterion: KeyAccountCriterion | str, note: str) -> None:
        self.key_account = KeyAccountCriterion(criterion)

    def revoke_key_account(self, *, reason: str) -> None:
        """End key-account status, with the reason; refused if the account is not a key account."""
        if self.key_account is None:
            raise RuleViolationError(f"account {self.name} is not a key account")
        self._revoke(reason=reason)

    @event(KeyAccountRevoked)
    def _revoke(self, reason: str) -> None:
        self.key_account = None

    def add_contact(self, *, customer_id: UUID, role: str, decision_maker: bool = False) -> None:
        """Add a person to the open account's contacts (the decision unit) with a role; a person is
        added once."""
        self._require_active()
        if customer_id in self.contacts:
            raise ContactRoleError(f"{customer_id} is already a contact of {self.name}")
        self._add_contact(customer_id=customer_id, role=role, decision_maker=decision_maker)

    @event(ContactAdded)
    def _add_contact(self, customer_id: UUID, role: str, decision_maker: bool) -> None:
        self.contacts[customer_id] = AccountContact(
            customer_id=customer_id, role=role, decision_maker=decision_maker
        )

    def remove_contact(self, *, customer_id: UUID, reason: str) -> None:
        """Remove a person from the account's contacts, with the reason; they must be a contact."""
        if customer_id not in self.contacts:
            raise EntityNotFoundError("contact", customer_id, self.id)
        self._remove_contact(customer_id=customer_id, reason=reason)

    @event(ContactRemoved)
    def _remove_contact(self, customer_id: UUID, reason: str) -> None:
        del self.contacts[customer_id]

    def assign_manager(self, *, manager: str, reason: str) -> None:
        """Assign or hand over the manager of an open account; the reason stays on record."""
        self._require_active()
        if manager == self.manager:
            raise RuleViolationError(f"{manager} already manages account {self.name}")
        self._assign_manager(manager=manager, previous_manager=self.manager, reason=reason)

    @event(ManagerAssigned)
    def _assign_manager(self, manager: str, previous_manager: str | None, reason: str) -> None:
        self.manager = manager

    def set_credit_limit(self, *, limit: Money) -> None:
        """Set or change the credit limit; the previous limit stays in the event."""
        self._set_credit_limit(limit=limit, previous_limit=self.credit_limit)

    @event(CreditLimitSet)
    def _set_credit_limit(self, limit: Money, previous_limit: Money | None) -> None:
        self.credit_limit = limit

    # ----- opportunities ------------------------------------------------------------
    def open_opportunity(
        self,
        *,
        name: str,
        expected_close: date,
        owner: str,
        amount: Money | None = None,
        pipeline: Pipeline = DEFAULT_PIPELINE,
    ) -> UUID:
        """Open an opportunity on an open account, in the pipeline's first stage with that stage's
        probability."""
        self._require_active()
        first = pipeline.first
        opportunity_id = random_uuid()
        self._open_opp(
            opportunity_id=opportunity_id,
            name=name,
            amount=amount,
            expected_close=expected_close,
            stage=first.name,
            probability=first.probability,
            forecast_category=first.forecast_category,
            owner=owner,
        )
        return opportunity_id

    @event(OpportunityOpened)
    def _open_opp(
        self,
        opportunity_id: UUID,
        name: str,
        amount: Money | None,
        expected_close: date,
        stage: str,
        probability: Decimal,
        owner: str,
        forecast_category: str | None,
    ) -> None:
        self.opportunities[opportunity_id] = Opportunity(
            opportunity_id=opportunity_id,
            name=name,
            amount=amount,
            expected_close=expected_close,
            stage=stage,
            probability=probability,
            owner=owner,
            opened_at=self.occurred_on,
        )

    def stage_opportunity(
        self, opportunity_id: UUID, *, stage: str, pipeline: Pipeline = DEFAULT_PIPELINE
    ) -> None:
        """Move an open opportunity to another open stage (win/lose close it)."""
        opp = self._open_opportunity(opportunity_id, "stage")
        target = pipeline.stage(stage)
        if target.closed:
            raise PipelineRuleError(
                f"stage {stage!r} closes the opportunity: use win or lose, with a reason"
            )
        if target.name == opp.stage:
            raise PipelineRuleError(f"opportunity {opp.name!r} is already in stage {stage!r}")
        self._stage(
            opportunity_id=opportunity_id,
            from_stage=opp.stage,
            to_stage=target.name,
            probability=target.probability,
            forecast_category=target.forecast_category,
        )

    @event(OpportunityStaged)
    def _stage(
        self,
        opportunity_id: UUID,
        from_stage: str,
        to_stage: str,
        probability: Decimal,
        forecast_category: str,
    ) -> None:
        opp = self.opportunities[opportunity_id]
        opp.stage = to_stage
        opp.probability = probability

    def revise_opportunity(
        self,
        opportunity_id: UUID,
        *,
        amount: Money | None = None,
        expected_close: date | None = None,
        reason: str = "",
    ) -> None:
        """Revise an open opportunity's amount and/or expected close date; a revision must change
        one."""
        opp = self._open_opportunity(opportunity_id, "revise")
        if amount is None and expected_close is None:
            raise InvalidCommandError("a revision must change the amount or the close date")
        currency = self.deal_currency(opportunity_id)
        if amount is not None and currency is not None and amount.currency != currency:
            raise CurrencyChangeError(opportunity_id, currency, amount.currency)
        self._revise(
            opportunity_id=opportunity_id,
            amount=amount if amount is not None else opp.amount,
            expected_close=expected_close if expected_close is not None else opp.expected_close,
            reason=reason,
        )

    @event(OpportunityRevised)
    def _revise(
        self, opportunity_id: UUID, amount: Money | None, expected_close: date, reason: str
    ) -> None:
        opp = self.opportunities[opportunity_id]
        opp.amount = amount
        opp.expected_close = expected_close
        opp.accepted_quote_id = None  # a revised deal is quoted (and accepted) afresh

    def change_opportunity_currency(
        self, opportunity_id: UUID, *, amount: Money, reason: str
    ) -> None:
        """Change an open opportunity's currency explicitly, with its amount in the new currency
        and the reason. An active quote (in the old currency) must be withdrawn first; an
        accepted one no longer binds the deal, as after any revision."""
        self._open_opportunity(opportunity_id, "change the currency of")
        if not reason.strip():
            raise InvalidCommandError("changing a deal's currency needs a reason")
        amount = Money.coerce(amount)
        currency = self.deal_currency(opportunity_id)
        if currency == amount.currency:
            raise InvalidCommandError(
                f"opportunity {opportunity_id} is already in {amount.currency}: revise it instead"
            )
        active = self.active_quote(opportunity_id)
        if active is not None:
            raise ActiveQuoteExistsError(opportunity_id, active.quote_id)
        self._change_currency(
            opportunity_id=opportunity_id,
            amount=amount,
            previous_amount=self.opportunities[opportunity_id].amount,
            reason=reason,
        )

    @event(OpportunityCurrencyChanged)
    def _change_currency(
        self, opportunity_id: UUID, amount: Money, previous_amount: Money | None, reason: str
    ) -> None:
        opp = self.opportunities[opportunity_id]
        opp.amount = amount
        opp.accepted_quote_id = None

    def reassign_opportunity(self, opportunity_id: UUID, *, owner: str, reason: str) -> None:
        """Hand an open opportunity to another rep; its history goes with it."""
        opp = self._open_opportunity(opportunity_id, "reassign")
        if owner == opp.owner:
            raise RuleViolationError(f"{owner} already owns opportunity {opp.name!r}")
        self._reassign(
            opportunity_id=opportunity_id, owner=owner, previous_owner=opp.owner, reason=reason
        )

    @event(OpportunityReassigned)
    def _reassign(self, opportunity_id: UUID, owner: str, previous_owner: str, reason: str) -> None:
        self.opportunities[opportunity_id].owner = owner

    def win_opportunity(
        self,
        opportunity_id: UUID,
        *,
        reason: str,
        competitor: Label | None = None,
        pipeline: Pipeline = DEFAULT_PIPELINE,
        as_of: date | None = None,
    ) -> None:
        """Close won, booking the accepted quote's amount (the opportunity's own amount only
        when no quote was accepted since the last revision); a deal without a value cannot be
        booked. A quote still active is refused (:class:`UnresolvedQuoteError`): accept or
        withdraw it first. One past its validity on ``as_of`` is expired in the same change."""
        opp = self._open_opportunity(opportunity_id, "win")
        active = self.active_quote(opportunity_id)
        if active is not None and not (as_of is not None and active.lapsed(as_of)):
            raise UnresolvedQuoteError(opportunity_id, active.quote_id)
        accepted = self.accepted_quote(opportunity_id)
        amount = accepted.amount if accepted is not None else opp.amount
        if amount is None or (accepted is None and amount.amount <= 0):
            raise PipelineRuleError(
                f"cannot close opportunity {opp.name!r} won without an amount; revise it first"
            )
        if active is not None and as_of is not None:
            self._expire_quote(
                quote_id=active.quote_id,
                opportunity_id=opportunity_id,
                valid_until=active.valid_until,
                as_of=as_of,
            )
        self._win(
            opportunity_id=opportunity_id,
            from_stage=opp.stage,
            to_stage=pipeline.won_stage.name,
            amount=amount,
            reason=reason,
            competitor=competitor,
            quote_id=accepted.quote_id if accepted is not None else None,
        )

    @event(OpportunityWon)
    def _win(
        self,
        opportunity_id: UUID,
        from_stage: str,
        to_stage: str,
        amount: Money,
        reason: str,
        competitor: str | None,
        quote_id: UUID | None,
    ) -> None:
        opp = self.opportunities[opportunity_id]
        opp.amount = amount
        opp.stage = to_stage
        opp.probability = Decimal(1)
        opp.won = True
        opp.closed_at = self.occurred_on

    def lose_opportunity(
        self,
        opportunity_id: UUID,
        *,
        reason: str,
        competitor: Label | None = None,
        pipeline: Pipeline = DEFAULT_PIPELINE,
    ) -> None:
        """Close an open opportunity lost, with the reason and competitor; its active quote expires
        with it."""
        opp = self._open_opportunity(opportunity_id, "lose")
        self._lose(
            opportunity_id=opportunity_id,
            from_stage=opp.stage,
            to_stage=pipeline.lost_stage.name,
            reason=reason,
            competitor=competitor,
        )
        active = self.active_quote(opportunity_id)
        if active is not None:
            self._expire_quote(
                quote_id=active.quote_id,
                opportunity_id=opportunity_id,
                valid_until=active.valid_until,
                as_of=None,
            )

    @event(OpportunityLost)
    def _lose(
        self,
        opportunity_id: UUID,
        from_stage: str,
        to_stage: str,
        reason: str,
        competitor: str | None,
    ) -> None:
        opp = self.opportunities[opportunity_id]
        opp.stage = to_stage
        opp.probability = Decimal(0)
        opp.won = False
        opp.closed_at = self.occurred_on

    # ----- quotes -------------------------------------------------------------------
    # A quote is valid up to and including ``valid_until``; ``as_of`` is the office's date
    # when the command runs (the commands pass it; None skips the validity checks).
    def _lapse_active(self, opportunity_id: UUID, as_of: date | None) -> Quote | None:
        """The active quote; one past its validity on ``as_of`` is expired here (None)."""
        active = self.active_quote(opportunity_id)
        if active is not None and as_of is not None and active.lapsed(as_of):
            self._expire_quote(
                quote_id=active.quote_id,
                opportunity_id=opportunity_id,
                valid_until=active.valid_until,
                as_of=as_of,
            )
            return None
        return active

    def _check_new_quote(
        self, opportunity_id: UUID, amount: Money, valid_until: date, as_of: date | None
    ) -> None:
        opp = self.opportunities[opportunity_id]
        if opp.accepted_quote_id is not None:
            raise AcceptedQuoteExistsError(opportunity_id, opp.accepted_quote_id)
        currency = self.deal_currency(opportunity_id)
        if currency is not None and Money.coerce(amount).currency != currency:
            raise CurrencyChangeError(opportunity_id, currency, Money.coerce(amount).currency)
        if as_of is not None and valid_until < as_of:
            raise InvalidCommandError(f"a quote valid until {valid_until} is expired on {as_of}")

    def issue_quote(
        self,
        opportunity_id: UUID,
        *,
        amount: Money,
        valid_until: date,
        discount_pct: Decimal | int | str = Decimal(0),
        as_of: date | None = None,
        policy: QuoteSettings = DEFAULT_QUOTE_SETTINGS,
        requested_by: str = "system",
    ) -> UUID:
        """Issue the first quote of an open opportunity, in the deal's currency.

        At most one active quote per opportunity (one past its validity is expired first);
        none once a quote was accepted, until the deal is revised. A discount beyond the
        ``policy``'s threshold for the account's tier asks for approval (by someone other than
        ``requested_by``) in the same change.
        """
        self._open_opportunity(opportunity_id, "quote")
        active = self._lapse_active(opportunity_id, as_of)
        if active is not None:
            raise ActiveQuoteExistsError(opportunity_id, active.quote_id)
        self._check_new_quote(opportunity_id, amount, valid_until, as_of)
        versions = [q.version for q in self.quotes.values() if q.opportunity_id == opportunity_id]
        return self._new_quote(
            opportunity_id,
            version=max(versions, default=0) + 1,
            amount=amount,
            valid_until=valid_until,
            discount_pct=discount_pct,
            supersedes=None,
            policy=policy,
            requested_by=requested_by,
        )

    def revise_quote(
        self,
        quote_id: UUID,
        *,
        amount: Money,
        valid_until: date,
        discount_pct: Decimal | int | str = Decimal(0),
        as_of: date | None = None,
        policy: QuoteSettings = DEFAULT_QUOTE_SETTINGS,
        requested_by: str = "system",
    ) -> UUID:
        """Issue a new version of an active quote (also one past its validity); the old one is
        superseded, and the new version's discount is checked against the policy afresh."""
        old = self._quote(quote_id)
        if old.status is not QuoteStatus.ACTIVE:
            raise QuoteStateError(f"quote {quote_id} is {old.status.value}; only an active quote")
        self._open_opportunity(old.opportunity_id, "quote")
        self._check_new_quote(old.opportunity_id, amount, valid_until, as_of)
        return self._new_quote(
            old.opportunity_id,
            version=old.version + 1,
            amount=amount,
            valid_until=valid_until,
            discount_pct=discount_pct,
            supersedes=quote_id,
            policy=policy,
            requested_by=requested_by,
        )

    def _new_quote(
        self,
        opportunity_id: UUID,
        *,
        version: int,
        amount: Money,
        valid_until: date,
        discount_pct: Decimal | int | str,
        supersedes: UUID | None,
        policy: QuoteSettings,
        requested_by: str,
    ) -> UUID:
        discount = to_decimal(discount_pct, "discount_pct")
        threshold = policy.threshold_for(self.tier)
        quote_id = random_uuid()
        self._issue_quote(
            quote_id=quote_id,
            opportunity_id=opportunity_id,
            version=version,
            amount=amount,
            discount_pct=discount,
            valid_until=valid_until,
            supersedes=supersedes,
            approval_threshold=threshold,
        )
        if discount > threshold:
            self._request_approval(
                quote_id=quote_id,
                opportunity_id=opportunity_id,
                discount_pct=discount,
                threshold_pct=threshold,
                requested_by=requested_by,
            )
        return quote_id

    @event(QuoteIssued)
    def _issue_quote(
        self,
        quote_id: UUID,
        opportunity_id: UUID,
        version: int,
        amount: Money,
        discount_pct: Decimal,
        valid_until: date,
        supersedes: UUID | None,
        approval_threshold: Decimal | None,
    ) -> None:
        if supersedes is not None:
            self.quotes[supersedes].status = QuoteStatus.SUPERSEDED
        self.quotes[quote_id] = Quote(
            quote_id=quote_id,
            opportunity_id=opportunity_id,
            version=version,
            amount=amount,
            discount_pct=discount_pct,
            valid_until=valid_until,
            approval_threshold=approval_threshold,
        )

    @event(QuoteDiscountApprovalRequested)
    def _request_approval(
        self,
        quote_id: UUID,
        opportunity_id: UUID,
        discount_pct: Decimal,
        threshold_pct: Decimal,
        requested_by: str,
    ) -> None:
        quote = self.quotes[quote_id]
        quote.approval = DiscountApproval.REQUESTED
        quote.requested_by = requested_by

    def _pending_approval(self, quote_id: UUID, approver: str) -> Quote:
        quote = self._quote(quote_id)
        if quote.status is not QuoteStatus.ACTIVE:
            raise QuoteStateError(f"quote {quote_id} is {quote.status.value}; only an active quote")
        if quote.approval is not DiscountApproval.REQUESTED:
            raise DiscountApprovalError(
                f"quote {quote_id} has no discount approval pending ({quote.approval.value})"
            )
        if approver == quote.requested_by:
            raise DiscountApprovalError(
                f"{approver} asked for the discount on quote {quote_id} and cannot approve "
                "or reject it: another person decides"
            )
        return quote

    def approve_quote_discount(self, quote_id: UUID, *, approver: str, note: str = "") -> None:
        """Approve the discount of an active quote waiting for approval; the approver is not the
        rep who asked. The quote can then be sent and accepted."""
        quote = self._pending_approval(quote_id, approver)
        self._approve(
            quote_id=quote_id, opportunity_id=quote.opportunity_id, approver=approver, note=note
        )

    @event(QuoteDiscountApproved)
    def _approve(self, quote_id: UUID, opportunity_id: UUID, approver: str, note: str) -> None:
        quote = self.quotes[quote_id]
        quote.approval = DiscountApproval.APPROVED
        quote.approver = approver

    def reject_quote_discount(self, quote_id: UUID, *, approver: str, reason: str) -> None:
        """Reject the discount of an active quote waiting for approval, with the reason: the
        quote cannot be sent or accepted (revise it with a smaller discount, or withdraw it)."""
        quote = self._pending_approval(quote_id, approver)
        self._reject_discount(
            quote_id=quote_id, opportunity_id=quote.opportunity_id, approver=approver, reason=reason
        )

    @event(QuoteDiscountRejected)
    def _reject_discount(
        self, quote_id: UUID, opportunity_id: UUID, approver: str, reason: str
    ) -> None:
        quote = self.quotes[quote_id]
        quote.approval = DiscountApproval.REJECTED
        quote.approver = approver

    def _usable(self, quote_id: UUID, step: str, as_of: date | None) -> Quote:
        """An active quote, valid on ``as_of``, whose discount needs no (more) approval."""
        quote = self._quote(quote_id)
        if quote.status is QuoteStatus.EXPIRED or (
            quote.status is QuoteStatus.ACTIVE and as_of is not None and quote.lapsed(as_of)
        ):
            raise QuoteExpiredError(quote_id, quote.valid_until, as_of or quote.valid_until)
        if quote.status is not QuoteStatus.ACTIVE:
            raise QuoteStateError(f"cannot {step} quote {quote_id}: it is {quote.status.value}")
        if quote.approval in (DiscountApproval.REQUESTED, DiscountApproval.REJECTED):
            raise DiscountApprovalRequiredError(
                quote_id, quote.discount_pct, quote.approval_threshold, quote.approval.value
            )
        return quote

    def send_quote(self, quote_id: UUID, *, sent_to: str = "", as_of: date | None = None) -> None:
        """Record that an active quote was sent to the customer: only while valid on ``as_of``
        and with its discount approved if the policy asks for it."""
        quote = self._usable(quote_id, "send", as_of)
        self._send(quote_id=quote_id, opportunity_id=quote.opportunity_id, sent_to=sent_to)

    @event(QuoteSent)
    def _send(self, quote_id: UUID, opportunity_id: UUID, sent_to: str) -> None:
        self.quotes[quote_id].sent = True

    def accept_quote(self, quote_id: UUID, *, as_of: date | None = None) -> None:
        """Record that the customer accepted a quote: only the active version, valid on
        ``as_of`` (else :class:`QuoteExpiredError`), with its discount approved if the policy
        asks for it (else :class:`DiscountApprovalRequiredError`)."""
        quote = self._usable(quote_id, "accept", as_of)
        self._accept_quote(quote_id=quote_id, opportunity_id=quote.opportunity_id)

    @event(QuoteAccepted)
    def _accept_quote(self, quote_id: UUID, opportunity_id: UUID) -> None:
        self.quotes[quote_id].status = QuoteStatus.ACCEPTED
        self.opportunities[opportunity_id].accepted_quote_id = quote_id

    def withdraw_quote(self, quote_id: UUID, *, reason: str) -> None:
        """Withdraw an active quote (the seller takes it back), with the reason."""
        quote = self._quote(quote_id)
        if quote.status is not QuoteStatus.ACTIVE:
            raise QuoteStateError(f"cannot withdraw quote {quote_id}: it is {quote.status.value}")
        self._withdraw(quote_id=quote_id, opportunity_id=quote.opportunity_id, reason=reason)

    @event(QuoteWithdrawn)
    def _withdraw(self, quote_id: UUID, opportunity_id: UUID, reason: str) -> None:
        self.quotes[quote_id].status = QuoteStatus.WITHDRAWN

    def expire_quote(self, quote_id: UUID) -> None:
        """Expire an active quote (only an active one), so the opportunity can be quoted afresh."""
        quote = self._quote(quote_id)
        if quote.status is not QuoteStatus.ACTIVE:
            raise QuoteStateError(f"cannot expire quote {quote_id}: it is {quote.status.value}")
        self._expire_quote(
            quote_id=quote_id,
            opportunity_id=quote.opportunity_id,
            valid_until=quote.valid_until,
            as_of=None,
        )

    def expire_lapsed_quotes(self, *, as_of: date) -> list[UUID]:
        """Record the expiry of every active quote past its validity on ``as_of``; returns their
        ids. Idempotent: a second run finds none."""
        lapsed = [
            q for q in self.quotes.values() if q.status is QuoteStatus.ACTIVE and q.lapsed(as_of)
        ]
        for q in lapsed:
            self._expire_quote(
                quote_id=q.quote_id,
                opportunity_id=q.opportunity_id,
                valid_until=q.valid_until,
                as_of=as_of,
            )
        return [q.quote_id for q in lapsed]

    @event(QuoteExpired)
    def _expire_quote(
        self, quote_id: UUID, opportunity_id: UUID, valid_until: date | None, as_of: date | None
    ) -> None:
        self.quotes[quote_id].status = QuoteStatus.EXPIRED

    # ----- orders -------------------------------------------------------------------
    def place_order(
        self,
        *,
        lines: list[OrderLine],
        opportunity_id: UUID | None = None,
        quote_id: UUID | None = None,
    ) -> UUID:
        """Place an order; it is only promised once ERP confirms it."""
        self._require_active()
        if not lines:
            raise InvalidCommandError("an order needs at least one line")
        currencies = {line.unit_price.currency for line in lines}
        if len(currencies) != 1:
            raise InvalidCommandError(f"order lines mix currencies: {sorted(currencies)}")
        if opportunity_id is not None:
            self.opportunity(opportunity_id)
        if quote_id is not None and self._quote(quote_id).status is not QuoteStatus.ACCEPTED:
            raise QuoteStateError(f"quote {quote_id} is not accepted")
        total = Money(amount=sum((ln.total for ln in lines), Decimal(0)), currency=currencies.pop())
        order_id = random_uuid()
        self._place_order(
            order_id=order_id,
            lines=lines,
            total=total,
            opportunity_id=opportunity_id,
            quote_id=quote_id,
        )
        return order_id

    @event(OrderPlaced)
    def _place_order(
        self,
        order_id: UUID,
        lines: list[OrderLine],
        total: Money,
        opportunity_id: UUID | None,
        quote_id: UUID | None,
    ) -> None:
        self.orders[order_id] = Order(
            order_id=order_id,
            lines=lines,
            total=total,
            opportunity_id=opportunity_id,
            quote_id=quote_id,
            placed_at=self.occurred_on,
        )

    def _order_in(self, order_id: UUID, step: str, *allowed: OrderStatus) -> Order:
        order = self.order(order_id)
        if order.status not in allowed:
            raise OrderStateError(
                f"cannot {step} order {order_id}: it is {order.status.value} "
                f"(needs {' or '.join(s.value for s in allowed)})"
            )
        return order

    def credit_exposure(self, order_id: UUID | None = None) -> CreditExposure | None:
        """What the account would owe with this order (or as it stands, without one), in its
        credit limit's currency (see :mod:`crm_domain.credit`); None without a credit limit.
        An order or open item in another currency is a :class:`CreditCurrencyError`."""
        limit = self.credit_limit
        if limit is None:
            return None
        cur = limit.currency
        total = Money(amount=Decimal(0), currency=cur)
        if order_id is not None:
            total = self.order(order_id).total
        others: set[str] = set()
        if total.currency != cur:
            others.add(total.currency)
        unpaid = Decimal(0)
        invoiced: dict[UUID, Decimal] = {}
        for invoice in self.invoices.values():
            if invoice.order_id is not None:
                invoiced[invoice.order_id] = invoiced.get(invoice.order_id, Decimal(0)) + (
                    invoice.amount.amount
                )
            if invoice.outstanding <= 0:
                continue
            if invoice.amount.currency != cur:
                others.add(invoice.amount.currency)
            else:
                unpaid += invoice.outstanding
        unshipped = Decimal(0)
        for o in self.orders.values():
            if o.status is not OrderStatus.CONFIRMED:
                continue
            rest = o.total.amount - invoiced.get(o.order_id, Decimal(0))
            if rest <= 0:
                continue
            if o.total.currency != cur:
                others.add(o.total.currency)
            else:
                unshipped += rest
        if others:
            raise CreditCurrencyError(order_id, cur, sorted(others))
        return CreditExposure(
            unpaid_invoices=Money(amount=unpaid, currency=cur),
            unshipped_orders=Money(amount=unshipped, currency=cur),
            order_total=total,
            credit_limit=limit,
        )

    def request_order_confirmation(
        self, order_id: UUID, *, credit_override: CreditOverride | None = None
    ) -> None:
        """Ask ERP to confirm a placed order (credit, margin, availability checks).

        With a credit limit on the account, an order that would take the exposure over it
        (:class:`CreditLimitExceededError`, naming the figures) or that cannot be counted in
        the limit's currency (:class:`CreditCurrencyError`) is refused, unless a supervisor's
        ``credit_override`` with a reason is given; it is recorded on the event.
        """
        order = self._order_in(order_id, "request confirmation of", OrderStatus.PLACED)
        exposure: Money | None = None
        try:
            figures = self.credit_exposure(order_id)
        except CreditCurrencyError:
            if credit_override is None:
                raise
            figures = None
        if figures is not None:
            exposure = figures.exposure
            if figures.over_limit and credit_override is None:
                raise CreditLimitExceededError(
                    order_id,
                    unpaid_invoices=figures.unpaid_invoices,
                    unshipped_orders=figures.unshipped_orders,
                    order_total=figures.order_total,
                    exposure=figures.exposure,
                    credit_limit=figures.credit_limit,
                )
        self._request_confirmation(
            order_id=order_id,
            total=order.total,
            credit_limit=self.credit_limit,
            exposure=exposure,
            credit_override=credit_override,
        )

    @event(OrderConfirmationRequested)
    def _request_confirmation(
        self,
        order_id: UUID,
        total: Money,
        credit_limit: Money | None,
        exposure: Money | None,
        credit_override: CreditOverride | None,
    ) -> None:
        self.orders[order_id].status = OrderStatus.CONFIRMATION_REQUESTED

    def _erp_answer(
        self,
        order_id: UUID,
        step: str,
        source_system: str | None,
        erp_sources: Collection[str],
    ) -> None:
        """ERP's answer: only from an ERP source, only for an order awaiting confirmation."""
        order = self.order(order_id)
        source = source_system if source_system is not None else current_context().source_system
        if source not in erp_sources:
            raise NotErpSourceError(order_id, step, source, sorted(erp_sources))
        if order.status is OrderStatus.PLACED:
            raise ConfirmationNotRequestedError(order_id, step)
        self._order_in(order_id, step, OrderStatus.CONFIRMATION_REQUESTED)

    def confirm_order(
        self,
        order_id: UUID,
        *,
        erp_reference: str = "",
        source_system: str | None = None,
        erp_sources: Collection[str] = DEFAULT_ERP_SOURCES,
    ) -> None:
        """Record ERP's confirmation of an order whose confirmation was requested: only now
        may it be promised and shipped.

        Only a source system in ``erp_sources`` may confirm (``source_system``: by default the
        command context's); anything else is a :class:`NotErpSourceError`, and an order never
        sent for confirmation a :class:`ConfirmationNotRequestedError`.
        """
        self._erp_answer(order_id, "confirm", source_system, erp_sources)
        self._confirm(order_id=order_id, erp_reference=erp_reference)

    @event(OrderConfirmed)
    def _confirm(self, order_id: UUID, erp_reference: str) -> None:
        order = self.orders[order_id]
        order.status = OrderStatus.CONFIRMED
        if erp_reference:
            order.erp_reference = erp_reference

    def reject_order(
        self,
        order_id: UUID,
        *,
        reason: OrderRejectionReason | str,
        detail: str = "",
        source_system: str | None = None,
        erp_sources: Collection[str] = DEFAULT_ERP_SOURCES,
    ) -> None:
        """Record ERP's refusal of an order whose confirmation was requested, with the reason
        (credit, margin or availability); the same source rules as :meth:`confirm_order`."""
        self._erp_answer(order_id, "reject", source_system, erp_sources)
        self._reject(order_id=order_id, reason=reason, detail=detail)

    @event(OrderRejected)
    def _reject(self, order_id: UUID, reason: OrderRejectionReason | str, detail: str) -> None:
        self.orders[order_id].status = OrderStatus.REJECTED

    def ship_order(self, order_id: UUID, *, shipment_ref: str = "") -> None:
        """Ship a confirmed order. An unconfirmed order is never shipped."""
        self._order_in(order_id, "ship", OrderStatus.CONFIRMED)
        self._ship(order_id=order_id, shipment_ref=shipment_ref)

    @event(OrderShipped)
    def _ship(self, order_id: UUID, shipment_ref: str) -> None:
        self.orders[order_id].status = OrderStatus.SHIPPED

    def deliver_order(self, order_id: UUID) -> None:
        """Record delivery of a shipped order; an order not shipped cannot be delivered."""
        self._order_in(order_id, "deliver", OrderStatus.SHIPPED)
        self._deliver(order_id=order_id)

    @event(OrderDelivered)
    def _deliver(self, order_id: UUID) -> None:
        self.orders[order_id].status = OrderStatus.DELIVERED

    def return_order(self, order_id: UUID, *, reason: str) -> None:
        """Record the return of a shipped or delivered order, with the reason."""
        self._order_in(order_id, "return", OrderStatus.SHIPPED, OrderStatus.DELIVERED)
        self._return(order_id=order_id, reason=reason)

    @event(OrderReturned)
    def _return(self, order_id: UUID, reason: str) -> None:
        self.orders[order_id].status = OrderStatus.RETURNED

    def cancel_order(self, order_id: UUID, *, reason: str) -> None:
        """Cancel an order before it ships (placed, awaiting ERP, or confirmed), with the
        reason; a shipped order is returned instead. An invoice already issued for it is
        then credited with :meth:`issue_credit_note`."""
        order = self._order_in(
            order_id,
            "cancel",
            OrderStatus.PLACED,
            OrderStatus.CONFIRMATION_REQUESTED,
            OrderStatus.CONFIRMED,
        )
        self._cancel(order_id=order_id, reason=reason, from_status=order.status)

    @event(OrderCancelled)
    def _cancel(self, order_id: UUID, reason: str, from_status: OrderStatus) -> None:
        self.orders[order_id].status = OrderStatus.CANCELLED

    # ----- invoices and payments ----------------------------------------------------
    def issue_invoice(
        self,
        *,
        amount: Money,
        order_id: UUID | None = None,
        due_date: date | None = None,
        reference: str = "",
        invoice_id: UUID | None = None,
    ) -> UUID:
        """Record an invoice (usually ERP's); ``invoice_id`` keeps ERP's identity if given."""
        if order_id is not None:
            self.order(order_id)
        invoice_id = invoice_id or random_uuid()
        if invoice_id in self.invoices:
            raise RuleViolationError(f"invoice {invoice_id} is already recorded")
        self._invoice(
            invoice_id=invoice_id,
            order_id=order_id,
            amount=amount,
            due_date=due_date,
            reference=reference,
        )
        return invoice_id

    @event(InvoiceIssued)
    def _invoice(
        self,
        invoice_id: UUID,
        order_id: UUID | None,
        amount: Money,
        due_date: date | None,
        reference: str,
    ) -> None:
        self.invoices[invoice_id] = Invoice(invoice_id=invoice_id, order_id=order_id, amount=amount)

    def receive_payment(
        self, *, amount: Money, invoice_id: UUID | None = None, reference: str = ""
    ) -> UUID:
        """Record a positive payment; one against an invoice must be in the invoice's currency."""
        amount = Money.coerce(amount)
        if amount.amount <= 0:
            raise InvalidCommandError("a payment must be a positive amount")
        if invoice_id is not None:
            invoice = self.invoice(invoice_id)
            if invoice.amount.currency != amount.currency:
                raise InvalidCommandError(
                    f"payment in {amount.currency} for an invoice in {invoice.amount.currency}"
                )
        payment_id = random_uuid()
        self._pay(payment_id=payment_id, amount=amount, invoice_id=invoice_id, reference=reference)
        return payment_id

    @event(PaymentReceived)
    def _pay(
        self, payment_id: UUID, amount: Money, invoice_id: UUID | None, reference: str
    ) -> None:
        cur = amount.currency
        self.payments_received[cur] = self.payments_received.get(cur, Decimal(0)) + amount.amount
        if invoice_id is not None:
            self.invoices[invoice_id].paid += amount.amount

    def issue_credit_note(
        self,
        invoice_id: UUID,
        *,
        amount: Money,
        reason: str,
        reference: str = "",
        credit_note_id: UUID | None = None,
    ) -> UUID:
        """Credit an invoice (in its currency), at most what is not yet credited on it
        (:class:`CreditAmountError` names both). An invoice for an order is credited once
        the order was returned or cancelled; ``credit_note_id`` keeps ERP's identity."""
        invoice = self.invoice(invoice_id)
        amount = self._positive_in(amount, invoice, "credit note")
        if invoice.order_id is not None:
            self._order_in(invoice.order_id, "credit", OrderStatus.RETURNED, OrderStatus.CANCELLED)
        if amount.amount > invoice.creditable:
            raise CreditAmountError(
                "credit note",
                invoice_id,
                amount,
                Money(amount=invoice.creditable, currency=amount.currency),
            )
        credit_note_id = credit_note_id or random_uuid()
        if credit_note_id in self.credit_notes:
            raise RuleViolationError(f"credit note {credit_note_id} is already recorded")
        self._credit(
            credit_note_id=credit_note_id,
            invoice_id=invoice_id,
            order_id=invoice.order_id,
            amount=amount,
            reason=reason,
            reference=reference,
        )
        return credit_note_id

    @event(CreditNoteIssued)
    def _credit(
        self,
        credit_note_id: UUID,
        invoice_id: UUID,
        order_id: UUID | None,
        amount: Money,
        reason: str,
        reference: str,
    ) -> None:
        self.invoices[invoice_id].credited += amount.amount
        self.credit_notes[credit_note_id] = invoice_id

    def issue_refund(
        self, invoice_id: UUID, *, amount: Money, reason: str, reference: str = ""
    ) -> UUID:
        """Pay money back against an invoice (in its currency): at most what the customer paid
        beyond what they owe after credit notes (:class:`CreditAmountError` names both)."""
        invoice = self.invoice(invoice_id)
        amount = self._positive_in(amount, invoice, "refund")
        if amount.amount > invoice.refundable:
            raise CreditAmountError(
                "refund",
                invoice_id,
                amount,
                Money(amount=invoice.refundable, currency=amount.currency),
            )
        refund_id = random_uuid()
        self._refund(
            refund_id=refund_id,
            invoice_id=invoice_id,
            order_id=invoice.order_id,
            amount=amount,
            reason=reason,
            reference=reference,
        )
        return refund_id

    @event(RefundIssued)
    def _refund(
        self,
        refund_id: UUID,
        invoice_id: UUID,
        order_id: UUID | None,
        amount: Money,
        reason: str,
        reference: str,
    ) -> None:
        self.invoices[invoice_id].refunded += amount.amount
        cur = amount.currency
        self.payments_received[cur] = self.payments_received.get(cur, Decimal(0)) - amount.amount

    @staticmethod
    def _positive_in(amount: Money, invoice: Invoice, what: str) -> Money:
        amount = Money.coerce(amount)
        if amount.amount <= 0:
            raise InvalidCommandError(f"a {what} must be a positive amount")
        if amount.currency != invoice.amount.currency:
            raise InvalidCommandError(
                f"{what} in {amount.currency} for an invoice in {invoice.amount.currency}"
            )
        return amount

    # ----- derived ------------------------------------------------------------------
    def open_pipeline(self) -> list[Opportunity]:
        """The opportunities still open (neither won nor lost)."""
        return [o for o in self.opportunities.values() if not o.is_closed]

    @property
    def decision_unit(self) -> list[AccountContact]:
        """The contacts who take the buying decision."""
        return [c for c in self.contacts.values() if c.decision_maker]
