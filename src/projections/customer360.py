"""Customer 360: one row per customer, so no department asks the customer twice.

Current profile, lifecycle stage, manager, segment, consent, last contact and contact
counts by channel, open tickets and lifetime order value (orders the back office
confirmed, less returns), kept current from both Customer and Account events.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Uuid,
    select,
)

from crm_domain import consent
from crm_domain.account import Account
from crm_domain.customer import Customer
from crm_domain.errors import CustomerNotFoundError, InvalidCommandError
from projections.erasure import REDACTED, erase_rows
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
from projections.rows import Row
from projections.sqltypes import QUANTUM, Amount, UTCDateTime

metadata = MetaData()

#: Events that change an existing customer's row.
_CUSTOMER_CHANGES = topics_of(*CUSTOMER_EVENTS) - topics_of(Customer.Registered)
_ACCOUNT_OPENED = topics_of(Account.Opened)
_ORDER_PLACED = topics_of(Account.OrderPlaced)
_ORDER_CHANGES = topics_of(
    Account.OrderConfirmed, Account.OrderRejected, Account.OrderReturned, Account.OrderCancelled
)

customers = Table(
    "customer360",
    metadata,
    Column("customer_id", Uuid, primary_key=True),
    Column("code", String(100), nullable=False, index=True),
    Column("name", String(300), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("active", Boolean, nullable=False),
    Column("lifecycle_stage", String(100), nullable=False),
    Column("manager", String(100), index=True),
    Column("support_owner", String(100)),
    Column("segment", String(100)),
    Column("grade", String(100)),
    Column("parent_id", Uuid),
    Column("email", String(320)),
    Column("phone", String(32)),
    Column("consents", JSON, nullable=False),
    Column("satisfaction", Integer),
    Column("last_contact_at", UTCDateTime),
    Column("last_contact_channel", String(20)),
    Column("contacts_logged", Integer, nullable=False),
    Column("contact_counts", JSON, nullable=False),
    Column("open_ticket_ids", JSON, nullable=False),
    Column("open_tickets", Integer, nullable=False),
    Column("lifetime_value", JSON, nullable=False),
    Column("registered_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)
Index("customer360_stage_idx", customers.c.lifecycle_stage)

accounts = Table(
    "customer360_accounts",
    metadata,
    Column("account_id", Uuid, primary_key=True),
    Column("customer_id", Uuid, nullable=False),
)

orders = Table(
    "customer360_orders",
    metadata,
    Column("order_id", Uuid, primary_key=True),
    Column("customer_id", Uuid, nullable=False),
    Column("amount", Amount, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("counted", Boolean, nullable=False),
)


class Customer360(ReadModel):
    """The customer 360 read model: one row per customer, kept current from both aggregates."""

    name = "customer360"
    description = "one row per customer: profile, stage, manager, contacts, tickets, value"
    rebuild_weight = 2.0
    tables = (customers, accounts, orders)
    ignores = (
        *BOOKKEEPING_EVENTS,
        Customer.CampaignResponseRecorded,
        Customer.CommitmentFulfilled,
        Customer.CommitmentReassigned,
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
        Account.InvoiceIssued,
        Account.PaymentReceived,
        Account.CreditNoteIssued,
        Account.RefundIssued,
        Account.CreditLimitSet,
    )

    def __init__(self, session: Any) -> None:
        super().__init__(session)
        self.customers = self.cache(customers)
        self.accounts = self.cache(accounts)
        self.orders = self.cache(orders)

    def prepare(self, events: Sequence[LoggedEvent]) -> None:
        self.accounts.prefetch(originators(events, _ORDER_PLACED))
        self.orders.prefetch(field_values(events, _ORDER_CHANGES, "order_id"))
        customer_ids = originators(events, _CUSTOMER_CHANGES)
        customer_ids |= field_values(events, _ACCOUNT_OPENED, "customer_id")
        customer_ids.update(row["customer_id"] for row in self.orders.rows())
        customer_ids.update(row["customer_id"] for row in self.accounts.rows())
        self.customers.prefetch(customer_ids)

    def _customer(self, customer_id: UUID) -> Row:
        row = self.customers.get(customer_id)
        if row is None:
            raise CustomerNotFoundError(customer_id)
        return row

    def _touch(self, event: Any) -> Row:
        row = self._customer(event.originator_id)
        row["updated_at"] = event.occurred_at
        return row

    @handles(Customer.Registered)
    def registered(self, e: Customer.Registered, position: int) -> None:
        self.customers.put(
            new=True,
            row={
                "customer_id": e.originator_id,
                "code": e.code,
                "name": e.name,
                "kind": e.kind.value,
                "active": True,
                "lifecycle_stage": e.lifecycle_stage,
                "manager": None,
                "support_owner": None,
                "segment": None,
                "grade": None,
                "parent_id": e.parent_id,
                "email": e.contact.email,
                "phone": e.contact.phone or e.contact.mobile,
                "consents": {},
                "satisfaction": None,
                "last_contact_at": None,
                "last_contact_channel": None,
                "contacts_logged": 0,
                "contact_counts": {},
                "open_ticket_ids": [],
                "open_tickets": 0,
                "lifetime_value": {},
                "registered_at": e.occurred_at,
                "updated_at": e.occurred_at,
            },
        )

    @handles(Customer.ProfileCorrected)
    def profile_corrected(self, e: Customer.ProfileCorrected, position: int) -> None:
        row = self._touch(e)
        if e.name is not None:
            row["name"] = e.name
        if e.kind is not None:
            row["kind"] = e.kind.value
        if e.contact is not None:
            row["email"] = e.contact.email
            row["phone"] = e.contact.phone or e.contact.mobile

    @handles(Customer.PersonalDataErased)
    def personal_data_erased(self, e: Customer.PersonalDataErased, position: int) -> None:
        """Drop the erased customer's name, e-mail and phone at once."""
        self._touch(e)
        erase_rows(
            self, customers, e.originator_id, {"name": REDACTED, "email": None, "phone": None}
        )

    @handles(Customer.ParentOrganisationSet)
    def parent_set(self, e: Customer.ParentOrganisationSet, position: int) -> None:
        self._touch(e)["parent_id"] = e.parent_id

    @handles(Customer.Deactivated, Customer.Reactivated)
    def activity_changed(self, e: Any, position: int) -> None:
        self._touch(e)["active"] = isinstance(e, Customer.Reactivated)

    @handles(Customer.LifecycleStageChanged)
    def stage_changed(self, e: Customer.LifecycleStageChanged, position: int) -> None:
        self._touch(e)["lifecycle_stage"] = e.to_stage

    @handles(Customer.ManagerAssigned)
    def manager_assigned(self, e: Customer.ManagerAssigned, position: int) -> None:
        self._touch(e)["manager"] = e.manager

    @handles(Customer.SupportOwnerAssigned)
    def support_owner_assigned(self, e: Customer.SupportOwnerAssigned, position: int) -> None:
        self._touch(e)["support_owner"] = e.owner

    @handles(Customer.SegmentAssigned)
    def segment_assigned(self, e: Customer.SegmentAssigned, position: int) -> None:
        self._touch(e)["segment"] = e.segment

    @handles(Customer.GradeAssigned)
    def grade_assigned(self, e: Customer.GradeAssigned, position: int) -> None:
        self._touch(e)["grade"] = e.grade

    @handles(Customer.ConsentGranted, Customer.ConsentWithdrawn)
    def consent_changed(self, e: Any, position: int) -> None:
        row = self._touch(e)
        folded = consent.apply(row["consents"], e)
        row["consents"] = {purpose: [c.value for c in cs] for purpose, cs in folded.items()}

    @handles(Customer.ContactLogged)
    def contact_logged(self, e: Customer.ContactLogged, position: int) -> None:
        row = self._touch(e)
        counts = dict(row["contact_counts"])
        counts[e.channel.value] = counts.get(e.channel.value, 0) + 1
        row["contact_counts"] = counts
        row["contacts_logged"] += 1
        last = row["last_contact_at"]
        if last is None or e.occurred_at >= last:
            row["last_contact_at"] = e.occurred_at
            row["last_contact_channel"] = e.channel.value

    @handles(Customer.SatisfactionRecorded)
    def satisfaction(self, e: Customer.SatisfactionRecorded, position: int) -> None:
        self._touch(e)["satisfaction"] = e.score

    @handles(Customer.TicketOpened, Customer.TicketReopened)
    def ticket_opened(self, e: Any, position: int) -> None:
        row = self._touch(e)
        ids = [*row["open_ticket_ids"], str(e.ticket_id)]
        row["open_ticket_ids"] = sorted(set(ids))
        row["open_tickets"] = len(row["open_ticket_ids"])

    @handles(Customer.TicketResolved, Customer.TicketClosed)
    def ticket_done(self, e: Any, position: int) -> None:
        row = self._touch(e)
        row["open_ticket_ids"] = [t for t in row["open_ticket_ids"] if t != str(e.ticket_id)]
        row["open_tickets"] = len(row["open_ticket_ids"])

    @handles(Account.Opened)
    def account_opened(self, e: Account.Opened, position: int) -> None:
        self._customer(e.customer_id)
        self.accounts.put(
            new=True, row={"account_id": e.originator_id, "customer_id": e.customer_id}
        )

    @handles(Account.OrderPlaced)
    def order_placed(self, e: Account.OrderPlaced, position: int) -> None:
        account = self.accounts.get(e.originator_id)
        if account is None:
            raise LookupError(f"no account {e.originator_id}")
        self.orders.put(
            new=True,
            row={
                "order_id": e.order_id,
                "customer_id": account["customer_id"],
                "amount": e.total.amount,
                "currency": e.total.currency,
                "counted": False,
            },
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
        if order["counted"] == count:
            return
        order["counted"] = count
        row = self._customer(order["customer_id"])
        values = dict(row["lifetime_value"])
        current = Decimal(values.get(order["currency"], "0"))
        current += order["amount"] if count else -order["amount"]
        # kept as text with the domain's 4 decimal places, however the amounts arrive
        values[order["currency"]] = str(current.quantize(QUANTUM))
        row["lifetime_value"] = values


# -- queries ---------------------------------------------------------------------------


class CustomerView(Answer):
    """Everything a department needs about a customer, on one screen."""

    customer_id: UUID
    code: str
    name: str
    kind: str
    active: bool
    lifecycle_stage: str
    manager: str | None
    support_owner: str | None
    segment: str | None
    grade: str | None
    parent_id: UUID | None
    email: str | None
    phone: str | None
    consents: dict[str, list[str]]
    satisfaction: int | None
    last_contact_at: datetime | None
    last_contact_channel: str | None
    contacts_logged: int
    contact_counts: dict[str, int]
    open_tickets: int
    lifetime_value: dict[str, Decimal]
    registered_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: Any) -> CustomerView:
        """The answer for one ``customer360`` row."""
        data = dict(row)
        data.pop("open_ticket_ids", None)
        data["lifetime_value"] = {k: Decimal(v) for k, v in sorted(data["lifetime_value"].items())}
        return cls.model_validate(data)


class Customer360Queries:
    """Look a customer up by id or code, or list customers with filters."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def get(self, customer_id: UUID) -> CustomerView:
        """The customer with this id, or ``CustomerNotFoundError``."""
        with self.engine.connect() as conn:
            row = (
                conn.execute(select(customers).where(customers.c.customer_id == customer_id))
                .mappings()
                .first()
            )
        if row is None:
            raise CustomerNotFoundError(customer_id)
        return CustomerView.from_row(row)

    def by_code(self, code: str) -> CustomerView:
        """The customer with this code, or ``CustomerNotFoundError``."""
        with self.engine.connect() as conn:
            row = conn.execute(select(customers).where(customers.c.code == code)).mappings().first()
        if row is None:
            raise CustomerNotFoundError(code)
        return CustomerView.from_row(row)

    def search(
        self,
        *,
        manager: str | None = None,
        lifecycle_stage: str | None = None,
        segment: str | None = None,
        active: bool | None = None,
        name_contains: str | None = None,
        page: int = 1,
        page_size: int = 50,
    ) -> Page[CustomerView]:
        """Customers matching every given filter, by name."""
        stmt = select(customers)
        if manager is not None:
            stmt = stmt.where(customers.c.manager == manager)
        if lifecycle_stage is not None:
            stmt = stmt.where(customers.c.lifecycle_stage == lifecycle_stage)
        if segment is not None:
            stmt = stmt.where(customers.c.segment == segment)
        if active is not None:
            stmt = stmt.where(customers.c.active == active)
        if name_contains:
            if len(name_contains) > 300:
                raise InvalidCommandError("name filter is longer than any name")
            stmt = stmt.where(
                customers.c.name.ilike(f"%{_escape_like(name_contains)}%", escape="\\")
            )
        stmt = stmt.order_by(customers.c.name, customers.c.customer_id)
        return paged(self.engine, stmt, CustomerView.from_row, page, page_size)


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
