"""Manager handover: what a successor needs on the day a customer manager leaves.

For one manager: every customer and account they own with its lifecycle stage, open
opportunities and their stage (who is near signing), active quotes and the discounts
given, commitments made in logged contacts and not yet fulfilled (and by whom), and open
tickets, so the handover is not "a pile of name cards". And what was handed over: every
change of customer manager, account manager, opportunity owner or commitment owner, from
whom to whom, when, by whom and why (``handover_moves``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    Uuid,
    func,
    or_,
    select,
    union,
)

from crm_domain.account import Account
from crm_domain.customer import Customer
from crm_domain.errors import InvalidCommandError
from projections.erasure import REDACTED, erase_rows
from projections.events import BOOKKEEPING_EVENTS
from projections.query import Answer
from projections.readmodel import (
    LoggedEvent,
    ReadModel,
    field_values,
    handles,
    originators,
    topics_of,
)
from projections.rows import Row, execute_many
from projections.sqltypes import Amount, UTCDateTime

metadata = MetaData()

owned_customers = Table(
    "handover_customers",
    metadata,
    Column("customer_id", Uuid, primary_key=True),
    Column("name", String(300), nullable=False),
    Column("code", String(100), nullable=False),
    Column("manager", String(100), index=True),
    Column("lifecycle_stage", String(100), nullable=False),
    Column("active", Boolean, nullable=False),
)

owned_accounts = Table(
    "handover_accounts",
    metadata,
    Column("account_id", Uuid, primary_key=True),
    Column("customer_id", Uuid, nullable=False, index=True),
    Column("name", String(300), nullable=False),
    Column("manager", String(100), index=True),
    Column("key_account", String(20)),
    Column("active", Boolean, nullable=False),
)

opportunities = Table(
    "handover_opportunities",
    metadata,
    Column("opportunity_id", Uuid, primary_key=True),
    Column("account_id", Uuid, nullable=False, index=True),
    Column("name", String(300), nullable=False),
    Column("owner", String(100), nullable=False, index=True),
    Column("stage", String(100), nullable=False),
    Column("probability", Amount, nullable=False),
    Column("amount", Amount),
    Column("currency", String(3)),
    Column("expected_close", Date, nullable=False),
    Column("open", Boolean, nullable=False),
)

quotes = Table(
    "handover_quotes",
    metadata,
    Column("quote_id", Uuid, primary_key=True),
    Column("account_id", Uuid, nullable=False, index=True),
    Column("opportunity_id", Uuid, nullable=False),
    Column("version", Integer, nullable=False),
    Column("amount", Amount, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("discount_pct", Amount, nullable=False),
    Column("valid_until", Date, nullable=False),
    Column("status", String(12), nullable=False),
    Column("issued_by", String(100), nullable=False),
)

#: Open commitments: one row per promise made in a logged contact, keyed like the domain's
#: ``commitment_key`` (the contact, and the promise's index in it); deleted when fulfilled.
commitments = Table(
    "handover_commitments",
    metadata,
    Column("contact_id", Uuid, primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("position", BigInteger().with_variant(Integer(), "sqlite"), nullable=False),
    Column("customer_id", Uuid, nullable=False, index=True),
    Column("account_id", Uuid),
    Column("description", String(500), nullable=False),
    Column("owner", String(100), nullable=False),
    Column("due", UTCDateTime),
    Column("logged_by", String(100), nullable=False),
    Column("logged_at", UTCDateTime, nullable=False),
)

#: Every hand-over of something owned: one row per change of customer manager, account
#: manager, opportunity owner or commitment owner (a first assignment is not a move).
moves = Table(
    "handover_moves",
    metadata,
    Column("position", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True),
    Column("kind", String(12), nullable=False),
    Column("customer_id", Uuid, nullable=False, index=True),
    Column("item", String(100), nullable=False),
    Column("name", String(500), nullable=False),
    Column("from_manager", String(100), nullable=False, index=True),
    Column("to_manager", String(100), nullable=False, index=True),
    Column("reason", String(500), nullable=False),
    Column("occurred_at", UTCDateTime, nullable=False),
    Column("actor", String(100), nullable=False),
    Column("correlation_id", String(100), nullable=False),
)

tickets = Table(
    "handover_tickets",
    metadata,
    Column("ticket_id", Uuid, primary_key=True),
    Column("customer_id", Uuid, nullable=False, index=True),
    Column("subject", String(500), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("priority", String(10), nullable=False),
    Column("open", Boolean, nullable=False),
    Column("due_at", UTCDateTime, nullable=False),
)


_CUSTOMER_CHANGES = topics_of(
    Customer.ProfileCorrected,
    Customer.Deactivated,
    Customer.Reactivated,
    Customer.LifecycleStageChanged,
    Customer.ManagerAssigned,
    Customer.CommitmentReassigned,
)
_TICKET_CHANGES = topics_of(Customer.TicketResolved, Customer.TicketClosed, Customer.TicketReopened)
_ACCOUNT_CHANGES = topics_of(
    Account.ManagerAssigned, Account.Closed, Account.KeyAccountDesignated, Account.KeyAccountRevoked
)
_OPPORTUNITY_CHANGES = topics_of(
    Account.OpportunityStaged,
    Account.OpportunityRevised,
    Account.OpportunityReassigned,
    Account.OpportunityWon,
    Account.OpportunityLost,
    Account.OpportunityCurrencyChanged,
)
_COMMITMENT_CHANGES = topics_of(Customer.CommitmentReassigned)
_QUOTE_ISSUED = topics_of(Account.QuoteIssued)
_QUOTE_CHANGES = topics_of(Account.QuoteAccepted, Account.QuoteExpired, Account.QuoteWithdrawn)


class ManagerHandover(ReadModel):
    """The handover read model: what each manager owns and has promised."""

    name = "handover"
    description = "per manager: customers, accounts, deals, quotes, promises, tickets"
    rebuild_weight = 2.6
    tables = (owned_customers, owned_accounts, opportunities, quotes, commitments, tickets, moves)
    ignores = (
        *BOOKKEEPING_EVENTS,
        Customer.ParentOrganisationSet,
        Customer.SupportOwnerAssigned,
        Customer.SegmentAssigned,
        Customer.GradeAssigned,
        Customer.ConsentGranted,
        Customer.ConsentWithdrawn,
        Customer.SatisfactionRecorded,
        Customer.CampaignResponseRecorded,
        Customer.SeminarRegistered,
        Customer.SeminarRegistrationConfirmed,
        Customer.TicketAssigned,
        Customer.TicketResponded,
        Customer.FieldVisitScheduled,
        Customer.FieldVisitCompleted,
        Customer.TicketAwaitingCustomer,
        Customer.TicketCustomerReplied,
        Customer.TicketEscalated,
        Customer.TicketSlaBreached,
        Account.ClassificationChanged,
        Account.ContactAdded,
        Account.ContactRemoved,
        Account.OrderPlaced,
        Account.OrderConfirmationRequested,
        Account.OrderConfirmed,
        Account.OrderRejected,
        Account.OrderShipped,
        Account.OrderDelivered,
        Account.OrderReturned,
        Account.OrderCancelled,
        Account.InvoiceIssued,
        Account.PaymentReceived,
        Account.CreditNoteIssued,
        Account.RefundIssued,
        Account.CreditLimitSet,
        Account.QuoteDiscountApprovalRequested,
        Account.QuoteDiscountApproved,
        Account.QuoteDiscountRejected,
        Account.QuoteSent,
    )

    def __init__(self, session: Any) -> None:
        super().__init__(session)
        self.customers = self.cache(owned_customers)
        self.accounts = self.cache(owned_accounts)
        self.opportunities = self.cache(opportunities)
        self.quotes = self.cache(quotes)
        self.tickets = self.cache(tickets)
        self.commitments = self.cache(commitments)
        self._moves: list[dict[str, Any]] = []

    def prepare(self, events: Sequence[LoggedEvent]) -> None:
        self.customers.prefetch(originators(events, _CUSTOMER_CHANGES))
        self.tickets.prefetch(field_values(events, _TICKET_CHANGES, "ticket_id"))
        self.accounts.prefetch(
            originators(events, _ACCOUNT_CHANGES) | originators(events, _OPPORTUNITY_CHANGES)
        )
        self.commitments.prefetch(
            (e.event.contact_id, e.event.index) for e in events if e.topic in _COMMITMENT_CHANGES
        )
        self.opportunities.prefetch(field_values(events, _OPPORTUNITY_CHANGES, "opportunity_id"))
        self.quotes.prefetch(
            field_values(events, _QUOTE_ISSUED, "supersedes")
            | field_values(events, _QUOTE_CHANGES, "quote_id")
        )

    @staticmethod
    def _found(row: Row | None, what: str, key: UUID) -> Row:
        if row is None:
            raise LookupError(f"no {what} {key}")
        return row

    # customers
    @handles(Customer.Registered)
    def registered(self, e: Customer.Registered, position: int) -> None:
        self.customers.put(
            {
                "customer_id": e.originator_id,
                "name": e.name,
                "code": e.code,
                "manager": None,
                "lifecycle_stage": e.lifecycle_stage,
                "active": True,
            },
            new=True,
        )

    def _customer(self, e: Any) -> Row:
        return self._found(self.customers.get(e.originator_id), "customer", e.originator_id)

    @handles(Customer.PersonalDataErased)
    def personal_data_erased(self, e: Customer.PersonalDataErased, position: int) -> None:
        """Drop the erased customer's name, commitments' texts and ticket subjects at once."""
        erase_rows(self, owned_customers, e.originator_id, {"name": REDACTED})
        erase_rows(self, commitments, e.originator_id, {"description": REDACTED})
        erase_rows(self, tickets, e.originator_id, {"subject": REDACTED})

    @handles(Customer.ProfileCorrected)
    def profile_corrected(self, e: Customer.ProfileCorrected, position: int) -> None:
        if e.name is not None:
            self._customer(e)["name"] = e.name

    @handles(Customer.Deactivated, Customer.Reactivated)
    def activity(self, e: Any, position: int) -> None:
        self._customer(e)["active"] = isinstance(e, Customer.Reactivated)

    @handles(Customer.LifecycleStageChanged)
    def stage(self, e: Customer.LifecycleStageChanged, position: int) -> None:
        self._customer(e)["lifecycle_stage"] = e.to_stage

    def _moved(
        self,
        e: Any,
        position: int,
        kind: str,
        customer_id: UUID,
        item: Any,
        name: str,
        from_manager: str | None,
        to_manager: str,
    ) -> None:
        if from_manager is None or from_manager == to_manager:
            return  # a first assignment: nothing was handed over
        self._moves.append(
            {
                "position": position,
                "kind": kind,
                "customer_id": customer_id,
                "item": str(item),
                "name": name[:500],
                "from_manager": from_manager,
                "to_manager": to_manager,
                "reason": e.reason,
                "occurred_at": e.occurred_at,
                "actor": e.metadata.get("actor", "") or "",
                "correlation_id": e.metadata.get("correlation_id", "") or "",
            }
        )

    @handles(Customer.ManagerAssigned)
    def manager(self, e: Customer.ManagerAssigned, position: int) -> None:
        row = self._customer(e)
        row["manager"] = e.manager
        self._moved(
            e,
            position,
            "customer",
            e.originator_id,
            e.originator_id,
            row["name"],
            e.previous_manager,
            e.manager,
        )

    @handles(Customer.ContactLogged)
    def contact(self, e: Customer.ContactLogged, position: int) -> None:
        for seq, promise in enumerate(e.commitments):
            self.commitments.put(
                new=True,
                row={
                    "contact_id": e.contact_id,
                    "seq": seq,
                    "position": position,
                    "customer_id": e.originator_id,
                    "account_id": e.account_id,
                    "description": promise.description,
                    "owner": promise.owner,
                    "due": promise.due,
                    "logged_by": e.logged_by,
                    "logged_at": e.occurred_at,
                },
            )

    @handles(Customer.CommitmentFulfilled)
    def commitment_fulfilled(self, e: Customer.CommitmentFulfilled, position: int) -> None:
        self.commitments.delete((e.contact_id, e.index))

    @handles(Customer.CommitmentReassigned)
    def commitment_reassigned(self, e: Customer.CommitmentReassigned, position: int) -> None:
        key = (e.contact_id, e.index)
        row = self._found(self.commitments.get(key), "commitment", e.contact_id)
        row["owner"] = e.owner
        self._moved(
            e,
            position,
            "commitment",
            e.originator_id,
            f"{e.contact_id}/{e.index}",
            row["description"],
            e.previous_owner,
            e.owner,
        )

    @handles(Customer.TicketOpened)
    def ticket_opened(self, e: Customer.TicketOpened, position: int) -> None:
        self.tickets.put(
            {
                "ticket_id": e.ticket_id,
                "customer_id": e.originator_id,
                "subject": e.subject,
                "kind": e.kind.value,
                "priority": e.priority.value,
                "open": True,
                "due_at": e.due_at,
            },
            new=True,
        )

    @handles(Customer.TicketResolved, Customer.TicketClosed, Customer.TicketReopened)
    def ticket_changed(self, e: Any, position: int) -> None:
        row = self._found(self.tickets.get(e.ticket_id), "ticket", e.ticket_id)
        row["open"] = isinstance(e, Customer.TicketReopened)
        if isinstance(e, Customer.TicketReopened):
            row["due_at"] = e.due_at

    # accounts
    @handles(Account.Opened)
    def account_opened(self, e: Account.Opened, position: int) -> None:
        self.accounts.put(
            {
                "account_id": e.originator_id,
                "customer_id": e.customer_id,
                "name": e.name,
                "manager": None,
                "key_account": None,
                "active": True,
            },
            new=True,
        )

    def _account(self, e: Any) -> Row:
        return self._found(self.accounts.get(e.originator_id), "account", e.originator_id)

    @handles(Account.ManagerAssigned)
    def account_manager(self, e: Account.ManagerAssigned, position: int) -> None:
        row = self._account(e)
        row["manager"] = e.manager
        self._moved(
            e,
            position,
            "account",
            row["customer_id"],
            e.originator_id,
            row["name"],
            e.previous_manager,
            e.manager,
        )

    @handles(Account.Closed)
    def account_closed(self, e: Account.Closed, position: int) -> None:
        self._account(e)["active"] = False

    @handles(Account.KeyAccountDesignated, Account.KeyAccountRevoked)
    def key_account(self, e: Any, position: int) -> None:
        designated = isinstance(e, Account.KeyAccountDesignated)
        self._account(e)["key_account"] = e.criterion.value if designated else None

    @handles(Account.OpportunityOpened)
    def opportunity_opened(self, e: Account.OpportunityOpened, position: int) -> None:
        self.opportunities.put(
            {
                "opportunity_id": e.opportunity_id,
                "account_id": e.originator_id,
                "name": e.name,
                "owner": e.owner,
                "stage": e.stage,
                "probability": e.probability,
                "amount": e.amount.amount if e.amount else None,
                "currency": e.amount.currency if e.amount else None,
                "expected_close": e.expected_close,
                "open": True,
            },
            new=True,
        )

    def _opportunity(self, opportunity_id: UUID) -> Row:
        return self._found(self.opportunities.get(opportunity_id), "opportunity", opportunity_id)

    @handles(Account.OpportunityStaged)
    def opportunity_staged(self, e: Account.OpportunityStaged, position: int) -> None:
        self._opportunity(e.opportunity_id).update(stage=e.to_stage, probability=e.probability)

    @handles(Account.OpportunityRevised)
    def opportunity_revised(self, e: Account.OpportunityRevised, position: int) -> None:
        self._opportunity(e.opportunity_id).update(
            amount=e.amount.amount if e.amount else None,
            currency=e.amount.currency if e.amount else None,
            expected_close=e.expected_close,
        )

    @handles(Account.OpportunityCurrencyChanged)
    def opportunity_currency_changed(
        self, e: Account.OpportunityCurrencyChanged, position: int
    ) -> None:
        self._opportunity(e.opportunity_id).update(
            amount=e.amount.amount, currency=e.amount.currency
        )

    @handles(Account.OpportunityReassigned)
    def opportunity_reassigned(self, e: Account.OpportunityReassigned, position: int) -> None:
        row = self._opportunity(e.opportunity_id)
        row["owner"] = e.owner
        self._moved(
            e,
            position,
            "opportunity",
            self._account(e)["customer_id"],
            e.opportunity_id,
            row["name"],
            e.previous_owner,
            e.owner,
        )

    @handles(Account.OpportunityWon, Account.OpportunityLost)
    def opportunity_closed(self, e: Any, position: int) -> None:
        self._opportunity(e.opportunity_id).update(stage=e.to_stage, open=False)

    @handles(Account.QuoteIssued)
    def quote_issued(self, e: Account.QuoteIssued, position: int) -> None:
        if e.supersedes is not None:
            old = self._found(self.quotes.get(e.supersedes), "quote", e.supersedes)
            old["status"] = "superseded"
        self.quotes.put(
            {
                "quote_id": e.quote_id,
                "account_id": e.originator_id,
                "opportunity_id": e.opportunity_id,
                "version": e.version,
                "amount": e.amount.amount,
                "currency": e.amount.currency,
                "discount_pct": e.discount_pct,
                "valid_until": e.valid_until,
                "status": "active",
                "issued_by": e.metadata.get("actor", "") or "",
            },
            new=True,
        )

    @handles(Account.QuoteAccepted, Account.QuoteExpired, Account.QuoteWithdrawn)
    def quote_done(self, e: Any, position: int) -> None:
        row = self._found(self.quotes.get(e.quote_id), "quote", e.quote_id)
        row["status"] = (
            "accepted"
            if isinstance(e, Account.QuoteAccepted)
            else "withdrawn"
            if isinstance(e, Account.QuoteWithdrawn)
            else "expired"
        )

    def finish(self) -> None:
        super().finish()
        if self._moves:
            execute_many(self.session, moves, "insert", self._moves)
            self._moves = []


# -- queries ---------------------------------------------------------------------------


class OwnedCustomer(Answer):
    """A customer the manager is responsible for."""

    customer_id: UUID
    name: str
    code: str
    lifecycle_stage: str
    active: bool


class OwnedAccount(Answer):
    """An account the manager is responsible for."""

    account_id: UUID
    customer_id: UUID
    name: str
    key_account: str | None
    active: bool


class OpenDeal(Answer):
    """An open opportunity of one of the manager's accounts."""

    opportunity_id: UUID
    account_id: UUID
    name: str
    owner: str
    stage: str
    probability: Decimal
    amount: Decimal | None
    currency: str | None
    expected_close: date
    near_signing: bool


class ActiveQuote(Answer):
    """A quote still open for acceptance, on one of the manager's opportunities."""

    quote_id: UUID
    account_id: UUID
    opportunity_id: UUID
    version: int
    amount: Decimal
    currency: str
    discount_pct: Decimal
    valid_until: date
    issued_by: str


class Promise(Answer):
    """A commitment made to the customer in a logged contact, not yet fulfilled.

    ``contact_id`` and ``index`` identify it (``CRM.fulfil_commitment`` takes them)."""

    contact_id: UUID
    index: int
    customer_id: UUID
    account_id: UUID | None
    description: str
    owner: str
    due: datetime | None
    logged_by: str
    logged_at: datetime
    overdue: bool


class OpenTicket(Answer):
    """An open service ticket of one of the manager's customers."""

    ticket_id: UUID
    customer_id: UUID
    subject: str
    kind: str
    priority: str
    due_at: datetime


class HandedOver(Answer):
    """One thing handed over from one manager to another: what, when, by whom and why.

    ``kind`` is ``customer``, ``account``, ``opportunity`` or ``commitment``; ``item`` its
    id (a commitment's is ``<contact id>/<index>``)."""

    kind: str
    customer_id: UUID
    customer_name: str
    customer_code: str
    item: str
    name: str
    from_manager: str
    to_manager: str
    reason: str
    occurred_at: datetime
    actor: str
    correlation_id: str


class Handover(Answer):
    """Everything a manager hands over: customers, accounts, deals, quotes, promises, tickets
    (and what was handed over from or to them, newest first)."""

    manager: str
    customers: list[OwnedCustomer]
    accounts: list[OwnedAccount]
    opportunities: list[OpenDeal]
    quotes: list[ActiveQuote]
    commitments: list[Promise]
    tickets: list[OpenTicket]
    handed_over: list[HandedOver] = []


class ManagerLoad(Answer):
    """How many customers and accounts one manager owns."""

    manager: str
    customers: int
    accounts: int


class HandoverQueries:
    """The handover pack for one manager, and who owns how much."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def managers(self) -> list[ManagerLoad]:
        """Every manager with how many customers and accounts they own."""
        c, a = owned_customers.c, owned_accounts.c
        with self.engine.connect() as conn:
            by_customer: dict[str, int] = {
                str(m): int(n)
                for m, n in conn.execute(
                    select(c.manager, func.count())
                    .where(c.manager.is_not(None))
                    .group_by(c.manager)
                ).all()
            }
            by_account: dict[str, int] = {
                str(m): int(n)
                for m, n in conn.execute(
                    select(a.manager, func.count())
                    .where(a.manager.is_not(None))
                    .group_by(a.manager)
                ).all()
            }
        names = sorted(set(by_customer) | set(by_account))
        return [
            ManagerLoad(manager=m, customers=by_customer.get(m, 0), accounts=by_account.get(m, 0))
            for m in names
        ]

    def for_manager(
        self,
        manager: str,
        *,
        now: datetime,
        near_signing: Decimal = Decimal("0.6"),
        limit: int = 500,
    ) -> Handover:
        """Everything ``manager`` owns; each list holds at most ``limit`` items (most urgent
        first). Accounts count as owned if assigned to them or to a customer they own."""
        if not manager.strip():
            raise InvalidCommandError("name a manager")
        if now.tzinfo is None:
            raise InvalidCommandError("give 'now' with a time zone")
        if not 1 <= limit <= 5000:
            raise InvalidCommandError(f"limit must be between 1 and 5000, not {limit}")
        c, a, o, q, k, t = (
            owned_customers.c,
            owned_accounts.c,
            opportunities.c,
            quotes.c,
            commitments.c,
            tickets.c,
        )
        my_customers = select(c.customer_id).where(c.manager == manager)
        my_accounts = select(a.account_id).where(
            or_(a.manager == manager, a.customer_id.in_(my_customers))
        )
        customer_scope = union(
            my_customers, select(a.customer_id).where(a.manager == manager)
        ).subquery()
        with self.engine.connect() as conn:
            customers = (
                conn.execute(
                    select(c.customer_id, c.name, c.code, c.lifecycle_stage, c.active)
                    .where(c.customer_id.in_(select(customer_scope.c.customer_id)))
                    .order_by(c.name, c.customer_id)
                    .limit(limit)
                )
                .mappings()
                .all()
            )
            accounts = (
                conn.execute(
                    select(a.account_id, a.customer_id, a.name, a.key_account, a.active)
                    .where(a.account_id.in_(my_accounts))
                    .order_by(a.name, a.account_id)
                    .limit(limit)
                )
                .mappings()
                .all()
            )
            deals = (
                conn.execute(
                    select(
                        o.opportunity_id,
                        o.account_id,
                        o.name,
                        o.owner,
                        o.stage,
                        o.probability,
                        o.amount,
                        o.currency,
                        o.expected_close,
                    )
                    .where(o.open.is_(True), or_(o.account_id.in_(my_accounts), o.owner == manager))
                    .order_by(o.probability.desc(), o.expected_close, o.opportunity_id)
                    .limit(limit)
                )
                .mappings()
                .all()
            )
            active_quotes = (
                conn.execute(
                    select(
                        q.quote_id,
                        q.account_id,
                        q.opportunity_id,
                        q.version,
                        q.amount,
                        q.currency,
                        q.discount_pct,
                        q.valid_until,
                        q.issued_by,
                    )
                    .where(q.status == "active", q.account_id.in_(my_accounts))
                    .order_by(q.valid_until, q.quote_id)
                    .limit(limit)
                )
                .mappings()
                .all()
            )
            promises = (
                conn.execute(
                    select(
                        k.contact_id,
                        k.seq.label("index"),
                        k.customer_id,
                        k.account_id,
                        k.description,
                        k.owner,
                        k.due,
                        k.logged_by,
                        k.logged_at,
                    )
                    .where(
                        or_(
                            k.customer_id.in_(select(customer_scope.c.customer_id)),
                            k.account_id.in_(my_accounts),
                            k.owner == manager,
                        )
                    )
                    .order_by(k.due.is_(None), k.due, k.position, k.seq)
                    .limit(limit)
                )
                .mappings()
                .all()
            )
            open_tickets = (
                conn.execute(
                    select(t.ticket_id, t.customer_id, t.subject, t.kind, t.priority, t.due_at)
                    .where(
                        t.open.is_(True), t.customer_id.in_(select(customer_scope.c.customer_id))
                    )
                    .order_by(t.due_at, t.ticket_id)
                    .limit(limit)
                )
                .mappings()
                .all()
            )
        return Handover(
            manager=manager,
            customers=[OwnedCustomer.model_validate(dict(r)) for r in customers],
            accounts=[OwnedAccount.model_validate(dict(r)) for r in accounts],
            opportunities=[
                OpenDeal.model_validate({**r, "near_signing": r["probability"] >= near_signing})
                for r in deals
            ],
            quotes=[ActiveQuote.model_validate(dict(r)) for r in active_quotes],
            commitments=[
                Promise.model_validate({**r, "overdue": r["due"] is not None and r["due"] < now})
                for r in promises
            ],
            tickets=[OpenTicket.model_validate(dict(r)) for r in open_tickets],
            handed_over=self.moves(manager, limit=limit),
        )

    def moves(
        self,
        manager: str | None = None,
        *,
        correlation_id: str | None = None,
        limit: int = 500,
    ) -> list[HandedOver]:
        """What was handed over from or to ``manager`` (all managers if None; only one
        handover's if ``correlation_id``), newest first, at most ``limit``."""
        if not 1 <= limit <= 5000:
            raise InvalidCommandError(f"limit must be between 1 and 5000, not {limit}")
        m, c = moves.c, owned_customers.c
        stmt = select(
            m.kind,
            m.customer_id,
            c.name.label("customer_name"),
            c.code.label("customer_code"),
            m.item,
            m.name,
            m.from_manager,
            m.to_manager,
            m.reason,
            m.occurred_at,
            m.actor,
            m.correlation_id,
        ).join(owned_customers, c.customer_id == m.customer_id)
        if manager is not None:
            stmt = stmt.where(or_(m.from_manager == manager, m.to_manager == manager))
        if correlation_id is not None:
            stmt = stmt.where(m.correlation_id == correlation_id)
        stmt = stmt.order_by(m.position.desc()).limit(limit)
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).mappings().all()
        return [HandedOver.model_validate(dict(r)) for r in rows]
