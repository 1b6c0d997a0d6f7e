"""Service desk: open tickets, SLA deadlines and breaches, response times, satisfaction.

What a service manager watches: open tickets by priority and assignee, tickets due soon and
those that breached their service level, time to first response and to resolution,
satisfaction averages, and which customers complain most.

Each ticket has two service levels, shown apart: the **response** level (first answer
due at ``response_due_at``; ``response_breached``) and the **resolution** level (due at
``due_at``, moved on when the customer replies to a ticket waiting on them with the clock
paused; ``breached``). A ticket stored before there were two clocks has no response due
time: its response level is ``none``. ``visits_completed`` counts engineer visits done.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from pydantic import computed_field
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Uuid,
    case,
    func,
    or_,
    select,
)

from crm_domain.customer import Customer
from crm_domain.errors import InvalidCommandError
from crm_domain.sla import SlaClock, SlaLevel
from crm_domain.values import Priority, SatisfactionClass, TicketKind
from projections.erasure import REDACTED, erase_rows
from projections.events import ACCOUNT_EVENTS, BOOKKEEPING_EVENTS
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
from projections.sqltypes import UTCDateTime

metadata = MetaData()

tickets = Table(
    "service_tickets",
    metadata,
    Column("ticket_id", Uuid, primary_key=True),
    Column("customer_id", Uuid, nullable=False, index=True),
    Column("kind", String(20), nullable=False),
    Column("priority", String(10), nullable=False),
    Column("channel", String(20), nullable=False),
    Column("subject", String(500), nullable=False),
    Column("status", String(10), nullable=False),
    Column("assignee", String(100)),
    Column("department", String(100)),
    Column("opened_at", UTCDateTime, nullable=False),
    Column("due_at", UTCDateTime, nullable=False),
    Column("first_response_at", UTCDateTime),
    Column("resolved_at", UTCDateTime),
    Column("closed_at", UTCDateTime),
    Column("escalation_level", Integer, nullable=False),
    Column("breached", Boolean, nullable=False),
    Column("reopen_count", Integer, nullable=False),
    Column("response_due_at", UTCDateTime),
    Column("response_breached", Boolean, nullable=False, default=False),
    Column("waiting_on_customer", Boolean, nullable=False, default=False),
    Column("resolution_paused", Boolean, nullable=False, default=False),
    Column("visits_completed", Integer, nullable=False, default=0),
)
Index("service_open_idx", tickets.c.status, tickets.c.priority, tickets.c.assignee)
Index("service_due_idx", tickets.c.status, tickets.c.due_at)

customers = Table(
    "service_customers",
    metadata,
    Column("customer_id", Uuid, primary_key=True),
    Column("name", String(300), nullable=False),
)

satisfaction = Table(
    "service_satisfaction",
    metadata,
    Column("position", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True),
    Column("customer_id", Uuid, nullable=False),
    Column("ticket_id", Uuid),
    Column("score", Integer, nullable=False),
    Column("classification", String(20), nullable=False),
    Column("at", UTCDateTime, nullable=False),
)

_TICKET_CHANGES = topics_of(
    Customer.TicketAssigned,
    Customer.TicketResponded,
    Customer.TicketEscalated,
    Customer.TicketResolved,
    Customer.TicketReopened,
    Customer.TicketClosed,
    Customer.TicketSlaBreached,
    Customer.TicketAwaitingCustomer,
    Customer.TicketCustomerReplied,
    Customer.FieldVisitCompleted,
)
_PROFILE_CORRECTED = topics_of(Customer.ProfileCorrected)
_PRIORITY_ORDER = [p.value for p in (Priority.URGENT, Priority.HIGH, Priority.NORMAL, Priority.LOW)]


class ServiceDesk(ReadModel):
    """The service desk read model: tickets with their SLA state, and satisfaction scores."""

    name = "service_desk"
    description = "open tickets, SLA due and breached, response times, satisfaction"
    rebuild_weight = 1.1
    tables = (tickets, customers, satisfaction)
    ignores = (
        *BOOKKEEPING_EVENTS,
        *ACCOUNT_EVENTS,
        Customer.ParentOrganisationSet,
        Customer.Deactivated,
        Customer.Reactivated,
        Customer.LifecycleStageChanged,
        Customer.ContactLogged,
        Customer.CommitmentFulfilled,
        Customer.CommitmentReassigned,
        Customer.SeminarRegistered,
        Customer.SeminarRegistrationConfirmed,
        Customer.ManagerAssigned,
        Customer.SupportOwnerAssigned,
        Customer.SegmentAssigned,
        Customer.GradeAssigned,
        Customer.ConsentGranted,
        Customer.ConsentWithdrawn,
        Customer.CampaignResponseRecorded,
        Customer.FieldVisitScheduled,
    )

    def __init__(self, session: Any) -> None:
        super().__init__(session)
        self.tickets = self.cache(tickets)
        self.customers = self.cache(customers)
        self._scores: list[dict[str, Any]] = []

    def prepare(self, events: Sequence[LoggedEvent]) -> None:
        self.tickets.prefetch(field_values(events, _TICKET_CHANGES, "ticket_id"))
        self.customers.prefetch(originators(events, _PROFILE_CORRECTED))

    def _ticket(self, ticket_id: UUID) -> Row:
        row = self.tickets.get(ticket_id)
        if row is None:
            raise LookupError(f"no ticket {ticket_id}")
        return row

    @handles(Customer.Registered)
    def registered(self, e: Customer.Registered, position: int) -> None:
        self.customers.put(new=True, row={"customer_id": e.originator_id, "name": e.name})

    @handles(Customer.ProfileCorrected)
    def profile_corrected(self, e: Customer.ProfileCorrected, position: int) -> None:
        if e.name is not None:
            self.customers.put({"customer_id": e.originator_id, "name": e.name})

    @handles(Customer.PersonalDataErased)
    def personal_data_erased(self, e: Customer.PersonalDataErased, position: int) -> None:
        """Drop the erased customer's name and ticket subjects at once."""
        erase_rows(self, customers, e.originator_id, {"name": REDACTED})
        erase_rows(self, tickets, e.originator_id, {"subject": REDACTED})

    @handles(Customer.TicketOpened)
    def opened(self, e: Customer.TicketOpened, position: int) -> None:
        self.tickets.put(
            new=True,
            row={
                "ticket_id": e.ticket_id,
                "customer_id": e.originator_id,
                "kind": e.kind.value,
                "priority": e.priority.value,
                "channel": e.channel.value,
                "subject": e.subject,
                "status": "open",
                "assignee": None,
                "department": None,
                "opened_at": e.occurred_at,
                "due_at": e.due_at,
                "first_response_at": None,
                "resolved_at": None,
                "closed_at": None,
                "escalation_level": 0,
                "breached": False,
                "reopen_count": 0,
                "response_due_at": e.response_due_at,
                "response_breached": False,
                "waiting_on_customer": False,
                "resolution_paused": False,
                "visits_completed": 0,
            },
        )

    @handles(Customer.TicketAssigned)
    def assigned(self, e: Customer.TicketAssigned, position: int) -> None:
        self._ticket(e.ticket_id).update(assignee=e.assignee, department=e.department)

    @handles(Customer.TicketResponded)
    def responded(self, e: Customer.TicketResponded, position: int) -> None:
        row = self._ticket(e.ticket_id)
        if row["first_response_at"] is None:
            row["first_response_at"] = e.occurred_at

    @handles(Customer.TicketEscalated)
    def escalated(self, e: Customer.TicketEscalated, position: int) -> None:
        row = self._ticket(e.ticket_id)
        row["escalation_level"] = e.level
        if e.escalated_to:
            row["assignee"] = e.escalated_to

    @handles(Customer.TicketResolved)
    def resolved(self, e: Customer.TicketResolved, position: int) -> None:
        self._ticket(e.ticket_id).update(
            status="resolved",
            resolved_at=e.occurred_at,
            waiting_on_customer=False,
            resolution_paused=False,
        )

    @handles(Customer.TicketReopened)
    def reopened(self, e: Customer.TicketReopened, position: int) -> None:
        row = self._ticket(e.ticket_id)
        row.update(
            status="open",
            resolved_at=None,
            due_at=e.due_at,
            breached=False,
            reopen_count=row["reopen_count"] + 1,
            waiting_on_customer=False,
            resolution_paused=False,
        )

    @handles(Customer.TicketClosed)
    def closed(self, e: Customer.TicketClosed, position: int) -> None:
        self._ticket(e.ticket_id).update(status="closed", closed_at=e.occurred_at)

    @handles(Customer.TicketSlaBreached)
    def breached(self, e: Customer.TicketSlaBreached, position: int) -> None:
        # Any ticket: a late response or resolution records its breach with the command.
        column = "response_breached" if e.clock is SlaClock.RESPONSE else "breached"
        self._ticket(e.ticket_id)[column] = True

    @handles(Customer.TicketAwaitingCustomer)
    def awaiting_customer(self, e: Customer.TicketAwaitingCustomer, position: int) -> None:
        self._ticket(e.ticket_id).update(waiting_on_customer=True, resolution_paused=e.clock_paused)

    @handles(Customer.TicketCustomerReplied)
    def customer_replied(self, e: Customer.TicketCustomerReplied, position: int) -> None:
        self._ticket(e.ticket_id).update(
            waiting_on_customer=False, resolution_paused=False, due_at=e.due_at
        )

    @handles(Customer.FieldVisitCompleted)
    def visit_completed(self, e: Customer.FieldVisitCompleted, position: int) -> None:
        row = self._ticket(e.ticket_id)
        row["visits_completed"] = row["visits_completed"] + 1

    @handles(Customer.SatisfactionRecorded)
    def satisfaction(self, e: Customer.SatisfactionRecorded, position: int) -> None:
        self._scores.append(
            {
                "position": position,
                "customer_id": e.originator_id,
                "ticket_id": e.ticket_id,
                "score": e.score,
                "classification": e.classification.value,
                "at": e.occurred_at,
            }
        )

    def finish(self) -> None:
        super().finish()
        if self._scores:
            execute_many(self.session, satisfaction, "insert", self._scores)
            self._scores = []


# -- queries ---------------------------------------------------------------------------


class TicketLine(Answer):
    """One ticket as the service desk shows it: customer, kind, priority, status, SLA times."""

    ticket_id: UUID
    customer_id: UUID
    customer_name: str
    kind: str
    priority: str
    channel: str
    subject: str
    status: str
    assignee: str | None
    department: str | None
    opened_at: datetime
    due_at: datetime
    first_response_at: datetime | None
    resolved_at: datetime | None
    closed_at: datetime | None
    escalation_level: int
    #: The resolution clock breached.
    breached: bool
    reopen_count: int
    response_due_at: datetime | None = None
    response_breached: bool = False
    waiting_on_customer: bool = False
    resolution_paused: bool = False
    visits_completed: int = 0

    @computed_field  # type: ignore[prop-decorator]
    @property
    def response_level(self) -> str:
        """``met``, ``breached``, ``running`` or ``none`` (a ticket from before the clock)."""
        if self.response_breached:
            return SlaLevel.BREACHED.value
        if self.response_due_at is None:
            return SlaLevel.NONE.value
        answered = self.first_response_at or self.resolved_at
        if answered is None:
            return SlaLevel.RUNNING.value
        return (SlaLevel.MET if answered <= self.response_due_at else SlaLevel.BREACHED).value

    @computed_field  # type: ignore[prop-decorator]
    @property
    def resolution_level(self) -> str:
        """``met``, ``breached``, ``paused`` (waiting on the customer) or ``running``."""
        if self.breached:
            return SlaLevel.BREACHED.value
        if self.resolved_at is not None:
            return (SlaLevel.MET if self.resolved_at <= self.due_at else SlaLevel.BREACHED).value
        return (SlaLevel.PAUSED if self.resolution_paused else SlaLevel.RUNNING).value


class ServiceLevels(Answer):
    """Tickets per level of each clock, apart: ``{"met": n, "breached": n, "running": n...}``."""

    response: dict[str, int]
    resolution: dict[str, int]


class TicketCount(Answer):
    """Open tickets of one priority and assignee."""

    priority: str
    assignee: str | None
    count: int


class ResponseTimes(Answer):
    """Averages in minutes of business time recorded on the events."""

    responded: int
    average_first_response_minutes: Decimal | None
    resolved: int
    average_resolution_minutes: Decimal | None


class SatisfactionSummary(Answer):
    """Satisfaction scores: how many, their average, and the count per class."""

    count: int
    average: Decimal | None
    by_class: dict[str, int]


class CustomerComplaints(Answer):
    """How many complaints a customer made, and how many are still open."""

    customer_id: UUID
    customer_name: str
    complaints: int
    open_complaints: int


def _minutes(seconds: float, n: int) -> Decimal | None:
    return (Decimal(seconds) / Decimal(60 * n)).quantize(Decimal("0.1")) if n else None


class ServiceDeskQueries:
    """Ticket lists and service measures."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _lines(self) -> Any:
        return select(tickets, customers.c.name.label("customer_name")).join(
            customers, customers.c.customer_id == tickets.c.customer_id
        )

    @staticmethod
    def _priority_rank() -> Any:
        return case({p: i for i, p in enumerate(_PRIORITY_ORDER)}, value=tickets.c.priority)

    def open_tickets(
        self,
        *,
        priority: Priority | str | None = None,
        assignee: str | None = None,
        kind: TicketKind | str | None = None,
        customer_id: UUID | None = None,
        page: int = 1,
        page_size: int = 50,
    ) -> Page[TicketLine]:
        """Open tickets, most urgent first, then by due time."""
        stmt = self._lines().where(tickets.c.status == "open")
        if priority is not None:
            stmt = stmt.where(tickets.c.priority == Priority(priority).value)
        if assignee is not None:
            stmt = stmt.where(tickets.c.assignee == assignee)
        if kind is not None:
            stmt = stmt.where(tickets.c.kind == TicketKind(kind).value)
        if customer_id is not None:
            stmt = stmt.where(tickets.c.customer_id == customer_id)
        stmt = stmt.order_by(self._priority_rank(), tickets.c.due_at, tickets.c.ticket_id)
        return paged(self.engine, stmt, TicketLine.model_validate, page, page_size)

    def open_by_priority_and_assignee(self) -> list[TicketCount]:
        """Open tickets counted by priority and assignee."""
        stmt = (
            select(tickets.c.priority, tickets.c.assignee, func.count())
            .where(tickets.c.status == "open")
            .group_by(tickets.c.priority, tickets.c.assignee)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).all()
        counts = [TicketCount(priority=p, assignee=a, count=n) for p, a, n in rows]
        return sorted(
            counts,
            key=lambda c: (
                _PRIORITY_ORDER.index(c.priority) if c.priority in _PRIORITY_ORDER else 9,
                c.assignee or "",
            ),
        )

    def due_soon(
        self,
        *,
        now: datetime,
        within: timedelta = timedelta(hours=4),
        page: int = 1,
        page_size: int = 50,
    ) -> Page[TicketLine]:
        """Open tickets not yet marked breached whose deadline falls before ``now + within``
        (overdue ones included: they are about to breach)."""
        if now.tzinfo is None:
            raise InvalidCommandError("give 'now' with a time zone")
        stmt = (
            self._lines()
            .where(
                tickets.c.status == "open",
                tickets.c.breached.is_(False),
                tickets.c.due_at <= now + within,
            )
            .order_by(tickets.c.due_at, tickets.c.ticket_id)
        )
        return paged(self.engine, stmt, TicketLine.model_validate, page, page_size)

    def breached(
        self,
        *,
        open_only: bool = True,
        clock: SlaClock | str | None = None,
        page: int = 1,
        page_size: int = 50,
    ) -> Page[TicketLine]:
        """Tickets whose service level was breached (still open ones only, by default), on
        the ``response`` or ``resolution`` clock, or on either (``None``)."""
        if clock is None:
            stmt = self._lines().where(
                or_(tickets.c.breached.is_(True), tickets.c.response_breached.is_(True))
            )
        elif SlaClock(clock) is SlaClock.RESPONSE:
            stmt = self._lines().where(tickets.c.response_breached.is_(True))
        else:
            stmt = self._lines().where(tickets.c.breached.is_(True))
        if open_only:
            stmt = stmt.where(tickets.c.status == "open")
        stmt = stmt.order_by(tickets.c.due_at, tickets.c.ticket_id)
        return paged(self.engine, stmt, TicketLine.model_validate, page, page_size)

    def service_levels(self, *, kind: TicketKind | str | None = None) -> ServiceLevels:
        """How many tickets met, breached or still run each clock (optionally of one kind)."""
        stmt = self._lines()
        if kind is not None:
            stmt = stmt.where(tickets.c.kind == TicketKind(kind).value)
        response = {level.value: 0 for level in SlaLevel}
        resolution = {level.value: 0 for level in SlaLevel}
        with self.engine.connect() as conn:
            for row in conn.execute(stmt).mappings():
                line = TicketLine.model_validate(dict(row))
                response[line.response_level] += 1
                resolution[line.resolution_level] += 1
        return ServiceLevels(response=response, resolution=resolution)

    def response_times(self, *, kind: TicketKind | str | None = None) -> ResponseTimes:
        """Average first-response and resolution times (optionally of one ticket kind)."""
        stmt = select(tickets.c.opened_at, tickets.c.first_response_at, tickets.c.resolved_at)
        if kind is not None:
            stmt = stmt.where(tickets.c.kind == TicketKind(kind).value)
        responded = resolved = 0
        response_s = resolution_s = 0.0
        with self.engine.connect() as conn:
            for opened, first, done in conn.execute(stmt):
                if first is not None:
                    responded += 1
                    response_s += (first - opened).total_seconds()
                if done is not None:
                    resolved += 1
                    resolution_s += (done - opened).total_seconds()
        return ResponseTimes(
            responded=responded,
            average_first_response_minutes=_minutes(response_s, responded),
            resolved=resolved,
            average_resolution_minutes=_minutes(resolution_s, resolved),
        )

    def satisfaction(self, *, customer_id: UUID | None = None) -> SatisfactionSummary:
        """Satisfaction scores of everyone, or of one customer."""
        s = satisfaction.c
        stmt = select(s.classification, func.count(), func.sum(s.score)).group_by(s.classification)
        if customer_id is not None:
            stmt = stmt.where(s.customer_id == customer_id)
        by_class = {c.value: 0 for c in SatisfactionClass}
        count = score_sum = 0
        with self.engine.connect() as conn:
            for cls, n, total_score in conn.execute(stmt):
                by_class[cls] = n
                count += n
                score_sum += int(total_score)
        average = (Decimal(score_sum) / Decimal(count)).quantize(Decimal("0.01")) if count else None
        return SatisfactionSummary(count=count, average=average, by_class=by_class)

    def complaints_per_customer(self, *, limit: int = 20) -> list[CustomerComplaints]:
        """Customers with the most complaint tickets first."""
        if not 1 <= limit <= 500:
            raise InvalidCommandError(f"limit must be between 1 and 500, not {limit}")
        t = tickets.c
        is_open = case((t.status == "open", 1), else_=0)
        stmt = (
            select(t.customer_id, customers.c.name, func.count(), func.sum(is_open))
            .join(customers, customers.c.customer_id == t.customer_id)
            .where(t.kind == TicketKind.COMPLAINT.value)
            .group_by(t.customer_id, customers.c.name)
            .order_by(func.count().desc(), customers.c.name)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).all()
        return [
            CustomerComplaints(
                customer_id=c, customer_name=n, complaints=k, open_complaints=int(o or 0)
            )
            for c, n, k, o in rows
        ]
