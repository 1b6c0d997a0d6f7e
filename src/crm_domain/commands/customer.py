"""Commands on a customer: registration, profile, contacts, consent, satisfaction, tickets.

Each class is one command: its fields (validated), its concurrency policy, and its
handler (``decide``), which calls the :class:`~crm_domain.customer.Customer` method that
holds the rule. ``CRM`` has a typed method of the same name for each.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, ClassVar
from uuid import UUID

from crm_domain.bookkeeping import CustomerCodeClaim
from crm_domain.commands.base import (
    COMMUTES,
    Command,
    Concurrency,
    CustomerCommand,
    conflicts_on,
)
from crm_domain.context import current_context
from crm_domain.customer import Commitment, Customer
from crm_domain.errors import (
    ConcurrencyConflictError,
    CRMError,
    DuplicateCustomerCodeError,
    EntityNotFoundError,
    InvalidCommandError,
)
from crm_domain.eventmodel import Aggregate
from crm_domain.lifecycle import LifecycleRule
from crm_domain.values import (
    Channel,
    ContactDetails,
    CustomerKind,
    Direction,
    Priority,
    SatisfactionClass,
    TicketKind,
    VisitOutcome,
    business_time,
)

if TYPE_CHECKING:
    from crm_domain.application import CRM


# ===== registration and profile ========================================================
class RegisterCustomer(Command[UUID]):
    """Register a person or organisation under a unique customer code; returns its id."""

    command_name = "register_customer"
    aggregate = Customer
    creates = True

    kind: CustomerKind
    name: str
    code: str
    contact: ContactDetails | None = None
    source_channel: str = "direct"
    #: The group customer this one belongs to, if any.
    parent_id: UUID | None = None

    def check(self, crm: CRM) -> None:
        if self.parent_id is not None:
            crm.customer(self.parent_id)

    def create(self, crm: CRM) -> Aggregate:
        # Checked after the command-id lookup: a repeated registration returns its first
        # result instead of failing on its own code.
        if crm._code_taken(self.code):
            raise DuplicateCustomerCodeError(self.code)
        return Customer.register(
            kind=self.kind,
            name=self.name,
            code=self.code,
            contact=self.contact,
            source_channel=self.source_channel,
            parent_id=self.parent_id,
            lifecycle=crm.lifecycle,
        )

    def also_save(self, created: Aggregate) -> list[Aggregate]:
        return [CustomerCodeClaim(code=self.code, customer_id=created.id)]

    def on_conflict(self, error: ConcurrencyConflictError) -> CRMError:
        # Another registration claimed the code between our check and our save.
        return DuplicateCustomerCodeError(self.code)


class CorrectCustomerProfile(CustomerCommand[None]):
    """Correct the name, kind or contact details recorded for a customer, with a reason."""

    command_name = "correct_customer_profile"

    reason: str
    name: str | None = None
    kind: CustomerKind | None = None
    contact: ContactDetails | None = None

    def decide(self, customer: Customer, crm: CRM) -> None:
        customer.correct_profile(
            reason=self.reason, name=self.name, kind=self.kind, contact=self.contact
        )


class SetParentOrganisation(CustomerCommand[None]):
    """Place a customer under a group customer, or take it out (``parent_id=None``)."""

    command_name = "set_parent_organisation"

    parent_id: UUID | None

    def check(self, crm: CRM) -> None:
        if self.parent_id is not None:
            crm.customer(self.parent_id)

    def decide(self, customer: Customer, crm: CRM) -> None:
        customer.set_parent_organisation(self.parent_id)


class DeactivateCustomer(CustomerCommand[None]):
    """Deactivate a customer (never delete: the history stays for audit)."""

    command_name = "deactivate_customer"

    reason: str

    def decide(self, customer: Customer, crm: CRM) -> None:
        customer.deactivate(reason=self.reason)


#: The legal basis an erasure records when none is given.
DEFAULT_LEGAL_BASIS = "GDPR art. 17"


class ForgetCustomer(CustomerCommand[bool]):
    """Erase a customer's personal data (crypto-shredding): records ``PersonalDataErased``
    and, once it is stored, destroys the customer's key. Returns False if the customer was
    already erased (the key is destroyed again all the same, finishing an interrupted run).
    """

    command_name = "forget_customer"

    reason: str
    legal_basis: str = DEFAULT_LEGAL_BASIS

    def decide(self, customer: Customer, crm: CRM) -> bool:
        erased = customer.erase_personal_data(reason=self.reason, legal_basis=self.legal_basis)
        if not erased:
            crm._forget_subject(customer.id)
        return erased


class ReactivateCustomer(CustomerCommand[None]):
    """Make a deactivated customer active again."""

    command_name = "reactivate_customer"

    reason: str

    def decide(self, customer: Customer, crm: CRM) -> None:
        customer.reactivate(reason=self.reason)


class ChangeLifecycleStage(CustomerCommand[None]):
    """Move a customer to another lifecycle stage, as the lifecycle model allows."""

    command_name = "change_lifecycle_stage"

    to_stage: str
    reason: str

    def decide(self, customer: Customer, crm: CRM) -> None:
        customer.change_lifecycle_stage(
            to_stage=self.to_stage, reason=self.reason, lifecycle=crm.lifecycle
        )


class ApplyLifecyclePolicy(CustomerCommand[list[LifecycleRule]]):
    """Move a customer on by the lifecycle policy, from the business times of their confirmed
    orders, as of a moment; returns the rules that fired (none: nothing recorded).

    Idempotent by nature: a second run as of the same moment records nothing.
    ``crm.scan_lifecycle`` runs it for every customer with the orders it finds in the store.
    """

    command_name = "apply_lifecycle_policy"
    concurrency: ClassVar[Concurrency] = COMMUTES

    #: Business times of the customer's confirmed orders (over all their accounts).
    purchases: list[datetime]
    #: The moment to judge by (silences are measured up to it).
    as_of: datetime

    def decide(self, customer: Customer, crm: CRM) -> list[LifecycleRule]:
        steps = customer.apply_lifecycle_policy(
            purchases=self.purchases, as_of=self.as_of, policy=crm.lifecycle_policy
        )
        return [step.rule for step in steps]


# ===== interactions =====================================================================
class LogContact(CustomerCommand[UUID]):
    """Record an interaction (call, visit, e-mail...) with what was promised; returns its id.

    Outbound marketing needs the customer's consent for the purpose on that channel.
    """

    command_name = "log_contact"
    concurrency: ClassVar[Concurrency] = COMMUTES

    channel: Channel
    direction: Direction
    summary: str
    participants: list[str] | None = None
    commitments: list[Commitment] | None = None
    next_step: str | None = None
    next_step_due: datetime | None = None
    marketing_purpose: str | None = None
    #: The customer's account the interaction was about, if any.
    account_id: UUID | None = None
    #: Who logged it (default: the actor of the command context).
    logged_by: str | None = None

    def check(self, crm: CRM) -> None:
        # The account must exist and be this customer's (or have them as a contact).
        if self.account_id is None:
            return
        account = crm.account(self.account_id)
        if account.customer_id != self.customer_id and self.customer_id not in account.contacts:
            raise EntityNotFoundError("account", self.account_id, self.customer_id)

    def decide(self, customer: Customer, crm: CRM) -> UUID:
        return customer.log_contact(
            channel=self.channel,
            direction=self.direction,
            summary=self.summary,
            logged_by=self.logged_by or current_context().actor,
            participants=self.participants,
            commitments=self.commitments or [],
            next_step=self.next_step,
            next_step_due=self.next_step_due,
            marketing_purpose=self.marketing_purpose,
            account_id=self.account_id,
        )


class FulfilCommitment(CustomerCommand[None]):
    """Mark commitment ``index`` of logged contact ``contact_id`` as kept."""

    command_name = "fulfil_commitment"
    concurrency: ClassVar[Concurrency] = conflicts_on("contact_id")

    contact_id: UUID
    index: int = 0
    note: str = ""

    def decide(self, customer: Customer, crm: CRM) -> None:
        customer.fulfil_commitment(contact_id=self.contact_id, index=self.index, note=self.note)


class ReassignCommitment(CustomerCommand[None]):
    """Give open commitment ``index`` of logged contact ``contact_id`` to another owner."""

    command_name = "reassign_commitment"
    concurrency: ClassVar[Concurrency] = conflicts_on("contact_id")

    contact_id: UUID
    index: int = 0
    owner: str
    reason: str

    def decide(self, customer: Customer, crm: CRM) -> None:
        customer.reassign_commitment(
            contact_id=self.contact_id, index=self.index, owner=self.owner, reason=self.reason
        )


# ===== ownership and classification =====================================================
class AssignCustomerManager(CustomerCommand[None]):
    """Assign or hand over the customer manager (e.g. the rep left)."""

    command_name = "assign_customer_manager"

    manager: str
    reason: str

    def decide(self, customer: Customer, crm: CRM) -> None:
        customer.assign_manager(manager=self.manager, reason=self.reason)


class AssignSupportOwner(CustomerCommand[None]):
    """Assign the person who owns the customer's service relationship."""

    command_name = "assign_support_owner"

    owner: str
    reason: str

    def decide(self, customer: Customer, crm: CRM) -> None:
        customer.assign_support_owner(owner=self.owner, reason=self.reason)


class AssignSegment(CustomerCommand[None]):
    """Put a customer in a market segment (e.g. ``smb``, ``public-sector``)."""

    command_name = "assign_segment"

    segment: str

    def decide(self, customer: Customer, crm: CRM) -> None:
        customer.assign_segment(segment=self.segment)


class AssignGrade(CustomerCommand[None]):
    """Grade a customer by value (e.g. A, B, C)."""

    command_name = "assign_grade"

    grade: str

    def decide(self, customer: Customer, crm: CRM) -> None:
        customer.assign_grade(grade=self.grade)


# ===== consent and marketing ============================================================
class GrantConsent(CustomerCommand[None]):
    """Record the customer's consent to marketing for a purpose on a channel."""

    command_name = "grant_consent"
    concurrency: ClassVar[Concurrency] = COMMUTES

    purpose: str
    channel: Channel

    def decide(self, customer: Customer, crm: CRM) -> None:
        customer.grant_consent(purpose=self.purpose, channel=self.channel)


class WithdrawConsent(CustomerCommand[None]):
    """Record that the customer withdrew a marketing consent."""

    command_name = "withdraw_consent"
    concurrency: ClassVar[Concurrency] = COMMUTES

    purpose: str
    channel: Channel
    reason: str = ""

    def decide(self, customer: Customer, crm: CRM) -> None:
        customer.withdraw_consent(purpose=self.purpose, channel=self.channel, reason=self.reason)


class RecordCampaignResponse(CustomerCommand[None]):
    """Record how the customer answered a marketing campaign."""

    command_name = "record_campaign_response"
    concurrency: ClassVar[Concurrency] = COMMUTES

    campaign_id: str
    response: str
    channel: Channel
    registered: bool = False

    def decide(self, customer: Customer, crm: CRM) -> None:
        customer.record_campaign_response(
            campaign_id=self.campaign_id,
            response=self.response,
            channel=self.channel,
            registered=self.registered,
        )


class RegisterForSeminar(CustomerCommand[UUID]):
    """Record a customer's registration for a marketing seminar; returns the registration id."""

    command_name = "register_for_seminar"
    concurrency: ClassVar[Concurrency] = COMMUTES

    campaign_id: str
    seminar: str
    channel: Channel
    #: When the seminar takes place, if known.
    held_at: datetime | None = None

    def decide(self, customer: Customer, crm: CRM) -> UUID:
        return customer.register_for_seminar(
            campaign_id=self.campaign_id,
            seminar=self.seminar,
            channel=self.channel,
            held_at=self.held_at,
        )


class ConfirmSeminarRegistration(CustomerCommand[None]):
    """Confirm a seminar registration to the customer (once), on a channel."""

    command_name = "confirm_seminar_registration"
    concurrency: ClassVar[Concurrency] = conflicts_on("registration_id")

    registration_id: UUID
    channel: Channel

    def decide(self, customer: Customer, crm: CRM) -> None:
        customer.confirm_seminar_registration(self.registration_id, channel=self.channel)


class RecordSatisfaction(CustomerCommand[SatisfactionClass]):
    """Record a 1-5 satisfaction score; returns its class (5 loyal, 3-4 at risk)."""

    command_name = "record_satisfaction"
    concurrency: ClassVar[Concurrency] = COMMUTES

    #: Checked by the customer (1-5, a whole number).
    score: int
    ticket_id: UUID | None = None
    comment: str = ""

    def decide(self, customer: Customer, crm: CRM) -> SatisfactionClass:
        return customer.record_satisfaction(
            score=self.score, ticket_id=self.ticket_id, comment=self.comment
        )


# ===== service tickets ==================================================================
class OpenTicket(CustomerCommand[UUID]):
    """Open a service ticket; its due time comes from the SLA policy and calendar."""

    command_name = "open_ticket"
    concurrency: ClassVar[Concurrency] = COMMUTES

    kind: TicketKind
    subject: str
    channel: Channel
    priority: Priority = Priority.NORMAL
    description: str = ""

    def decide(self, customer: Customer, crm: CRM) -> UUID:
        now = crm._now()
        try:
            due_at = crm.sla.due(self.kind, self.priority, now)
            response_due_at = crm.sla.response_due(self.kind, self.priority, now)
        except ValueError as exc:
            raise InvalidCommandError(str(exc)) from exc
        return customer.open_ticket(
            kind=self.kind,
            priority=self.priority,
            channel=self.channel,
            subject=self.subject,
            description=self.description,
            due_at=due_at,
            response_due_at=response_due_at,
        )


class TicketCommand(CustomerCommand[None]):
    """A step on one open ticket: concurrent steps on other tickets commute."""

    concurrency: ClassVar[Concurrency] = conflicts_on("ticket_id")

    ticket_id: UUID


class AssignTicket(TicketCommand):
    """Give a ticket to a person, a department, or both."""

    command_name = "assign_ticket"

    assignee: str | None = None
    department: str | None = None

    def decide(self, customer: Customer, crm: CRM) -> None:
        customer.assign_ticket(self.ticket_id, assignee=self.assignee, department=self.department)


class RespondToTicket(TicketCommand):
    """Answer the customer on a ticket; the first answer stops the response clock (a late
    one records the response breach in the same command)."""

    command_name = "respond_to_ticket"

    message: str
    #: Who answered (default: the actor of the command context).
    responder: str | None = None

    def decide(self, customer: Customer, crm: CRM) -> None:
        customer.respond_to_ticket(
            self.ticket_id,
            responder=self.responder or current_context().actor,
            message=self.message,
            now=crm._now(),
        )


class ScheduleFieldVisit(TicketCommand):
    """Send an engineer to the customer for a ticket."""

    command_name = "schedule_field_visit"

    visit_at: datetime
    engineer: str

    def decide(self, customer: Customer, crm: CRM) -> None:
        customer.schedule_field_visit(
            self.ticket_id, visit_at=self.visit_at, engineer=self.engineer
        )


class CompleteFieldVisit(TicketCommand):
    """Record that a scheduled engineer visit took place, with its outcome and result."""

    command_name = "complete_field_visit"

    outcome: VisitOutcome
    result: str
    #: The engineer who visited (default: the actor of the command context).
    engineer: str | None = None

    def decide(self, customer: Customer, crm: CRM) -> None:
        customer.complete_field_visit(
            self.ticket_id,
            engineer=self.engineer or current_context().actor,
            outcome=self.outcome,
            result=self.result,
        )


class WaitOnCustomer(TicketCommand):
    """Put a ticket in the "waiting on customer" status; the SLA policy says whether its
    resolution clock pauses meanwhile (``SlaPolicy.pause_when_waiting``)."""

    command_name = "wait_on_customer"

    reason: str

    def decide(self, customer: Customer, crm: CRM) -> None:
        customer.wait_on_customer(
            self.ticket_id,
            reason=self.reason,
            pause_clock=crm.sla.pause_when_waiting,
            now=crm._now(),
        )


class RecordCustomerReply(TicketCommand):
    """The customer answered a ticket waiting on them: its resolution clock runs again."""

    command_name = "record_customer_reply"

    message: str

    def decide(self, customer: Customer, crm: CRM) -> None:
        customer.record_customer_reply(
            self.ticket_id, message=self.message, now=crm._now(), calendar=crm.sla.calendar
        )


class EscalateTicket(CustomerCommand[int]):
    """Escalate a ticket one level; returns the new escalation level."""

    command_name = "escalate_ticket"
    concurrency: ClassVar[Concurrency] = conflicts_on("ticket_id")

    ticket_id: UUID
    reason: str
    escalated_to: str | None = None

    def decide(self, customer: Customer, crm: CRM) -> int:
        return customer.escalate_ticket(
            self.ticket_id, reason=self.reason, escalated_to=self.escalated_to
        )


class ResolveTicket(TicketCommand):
    """Resolve a ticket with the answer given (and the knowledge-base article, if any);
    a late resolution records its breach in the same command."""

    command_name = "resolve_ticket"

    answer: str
    knowledge_base_ref: str | None = None

    def decide(self, customer: Customer, crm: CRM) -> None:
        customer.resolve_ticket(
            self.ticket_id,
            answer=self.answer,
            knowledge_base_ref=self.knowledge_base_ref,
            now=crm._now(),
            calendar=crm.sla.calendar,
        )


class ReopenTicket(TicketCommand):
    """Reopen a resolved ticket; the SLA clock starts again. Closed tickets stay closed."""

    command_name = "reopen_ticket"

    reason: str

    def decide(self, customer: Customer, crm: CRM) -> None:
        ticket = customer.ticket(self.ticket_id)
        due_at = crm.sla.due(ticket.kind, ticket.priority, crm._now())
        customer.reopen_ticket(self.ticket_id, reason=self.reason, due_at=due_at)


class CloseTicket(TicketCommand):
    """Close a resolved ticket for good."""

    command_name = "close_ticket"

    def decide(self, customer: Customer, crm: CRM) -> None:
        customer.close_ticket(self.ticket_id)


class RecordSlaBreaches(CustomerCommand[list[UUID]]):
    """Record a breach for each clock of an open ticket past its due time (once per clock);
    returns the ids of the tickets with a breach recorded now."""

    command_name = "record_sla_breaches"
    concurrency: ClassVar[Concurrency] = COMMUTES

    #: The moment to judge by (default: the command's business time, else now).
    now: datetime | None = None

    def decide(self, customer: Customer, crm: CRM) -> list[UUID]:
        at = business_time(self.now or crm._now(), "now")
        due = dict.fromkeys(ticket_id for ticket_id, _ in customer.sla_breaches_due(at))
        return [ticket_id for ticket_id in due if customer.record_sla_breach(ticket_id, now=at)]
