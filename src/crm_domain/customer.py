"""The ``Customer`` aggregate: a person, an enterprise or a government body.

Holds what the rules need: profile, lifecycle stage, who owns the relationship, marketing
consent per purpose and channel, and service tickets with their SLA state. Every
interaction is a ``ContactLogged`` event, so the whole communication history survives a
sales rep leaving. Nothing is deleted: customers are deactivated and corrected.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Annotated
from uuid import UUID, uuid4

from eventsourcing.domain import event
from pydantic import AwareDatetime, Field

from crm_domain import consent
from crm_domain.context import current_occurred_at
from crm_domain.errors import (
    ConsentRequiredError,
    EntityNotFoundError,
    InactiveCustomerError,
    InvalidCommandError,
    OpenComplaintError,
    RuleViolationError,
    SatisfactionNotAllowedError,
    TicketStateError,
)
from crm_domain.eventmodel import Aggregate, Entity, Immutable, SnapshotState
from crm_domain.lifecycle import (
    DEFAULT_LIFECYCLE,
    LifecycleModel,
    LifecyclePolicy,
    LifecycleRule,
    Transition,
)
from crm_domain.personal import REDACTED, personal_data, redacted
from crm_domain.sla import SlaClock, SlaLevel
from crm_domain.values import (
    MAX_COMMITMENTS,
    MAX_PARTICIPANTS,
    BusinessTime,
    Channel,
    ContactDetails,
    CustomerKind,
    Direction,
    FreeText,
    Label,
    ListBounds,
    Name,
    Priority,
    Reference,
    SatisfactionClass,
    ShortText,
    TicketKind,
    TicketStatus,
    VisitOutcome,
    business_time,
    parse_enum,
)

if TYPE_CHECKING:
    from crm_domain.sla import BusinessCalendar

CustomerCode = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
Score = Annotated[int, Field(ge=1, le=5)]

#: Open tickets of these kinds stop outbound marketing: a customer whose complaint, service
#: (repair) request or incident is still open is not marketed to.
MARKETING_BLOCKING_KINDS = frozenset(
    {TicketKind.COMPLAINT, TicketKind.REQUEST, TicketKind.INCIDENT}
)


@personal_data("description")
class Commitment(Immutable):
    """Something promised to the customer during a contact, by whom, and by when."""

    description: ShortText
    owner: Label
    due: BusinessTime | None = None


def commitment_key(contact_id: UUID, index: int) -> str:
    """Identity of a commitment: the contact it was made in, and its place in that contact."""
    return f"{contact_id}/{index}"


class SeminarRegistration(Entity):
    """A registration for a marketing seminar, and whether it was confirmed to the customer."""

    registration_id: UUID
    campaign_id: str
    seminar: str
    held_at: AwareDatetime | None = None
    registered_at: AwareDatetime
    confirmed_at: AwareDatetime | None = None


@personal_data("subject")
class Ticket(Entity):
    """A service ticket's current state (its history is in the events)."""

    ticket_id: UUID
    kind: TicketKind
    priority: Priority
    channel: Channel
    subject: str
    status: TicketStatus = TicketStatus.OPEN
    opened_at: AwareDatetime
    due_at: AwareDatetime
    assignee: str | None = None
    department: str | None = None
    first_response_at: AwareDatetime | None = None
    resolved_at: AwareDatetime | None = None
    escalation_level: int = 0
    #: The resolution clock passed its due time (a ``TicketSlaBreached`` was recorded).
    breached: bool = False
    reopen_count: int = 0
    #: When the first response is due (``None`` on tickets opened before the clock existed).
    response_due_at: AwareDatetime | None = None
    #: The response clock passed its due time before the first response.
    response_breached: bool = False
    #: Waiting on the customer (a reply, a document, access to a site): still open.
    waiting_on_customer: bool = False
    waiting_since: AwareDatetime | None = None
    #: The resolution clock is paused while waiting (as the policy said when it began).
    clock_paused: bool = False
    #: Engineer visits scheduled and not yet completed, and those completed.
    visits_open: int = 0
    visits_completed: int = 0

    def resolution_due(self, now: datetime, calendar: BusinessCalendar | None = None) -> datetime:
        """The resolution due time as of ``now``: ``due_at``, moved on by the working time
        spent waiting on the customer so far if the clock is paused (needs ``calendar``)."""
        if self.clock_paused and self.waiting_since is not None and calendar is not None:
            return calendar.add(self.due_at, calendar.elapsed(self.waiting_since, now))
        return self.due_at

    def response_level(self, now: datetime | None = None) -> SlaLevel:
        """The response clock: met, breached, or running (``none`` on old tickets)."""
        if self.response_breached:
            return SlaLevel.BREACHED
        if self.response_due_at is None:
            return SlaLevel.NONE
        answered = self.first_response_at or self.resolved_at
        if answered is not None:
            return SlaLevel.MET if answered <= self.response_due_at else SlaLevel.BREACHED
        if now is not None and now > self.response_due_at:
            return SlaLevel.BREACHED
        return SlaLevel.RUNNING

    def resolution_level(self, now: datetime | None = None) -> SlaLevel:
        """The resolution clock: met, breached, paused (waiting on the customer) or running."""
        if self.breached:
            return SlaLevel.BREACHED
        if self.resolved_at is not None:
            return SlaLevel.MET if self.resolved_at <= self.due_at else SlaLevel.BREACHED
        if self.waiting_on_customer and self.clock_paused:
            return SlaLevel.PAUSED
        if now is not None and now > self.due_at:
            return SlaLevel.BREACHED
        return SlaLevel.RUNNING


@personal_data("name", "contact", "open_commitments", "tickets")
class CustomerState(SnapshotState):
    """The customer's state as a snapshot holds it, so a snapshot restores typed values."""

    kind: CustomerKind
    name: str
    code: str
    contact: ContactDetails
    source_channel: str
    parent_id: UUID | None
    active: bool
    lifecycle_stage: str
    manager: str | None
    support_owner: str | None
    segment: str | None
    grade: str | None
    consents: dict[str, list[Channel]]
    satisfaction: int | None
    satisfaction_class: SatisfactionClass | None
    tickets: dict[UUID, Ticket]
    contacts_logged: int
    open_commitments: dict[str, Commitment]
    last_contact_at: AwareDatetime | None
    #: Added with the lifecycle policy; snapshots taken before it read as None / empty.
    stage_changed_at: AwareDatetime | None = None
    seminar_registrations: dict[UUID, SeminarRegistration] = {}
    #: True once the customer's personal data was erased (``PersonalDataErased``).
    forgotten: bool = False


class Customer(Aggregate):
    """A customer of any kind, with the history of every dealing with them."""

    snapshot_state = CustomerState

    # ----- events -------------------------------------------------------------------
    @personal_data("name", "contact")
    class Registered(Aggregate.Created):
        """A customer (person, enterprise or government body) was registered under a unique code."""

        kind: CustomerKind
        name: Name
        code: CustomerCode
        contact: ContactDetails
        source_channel: Label
        lifecycle_stage: Label
        parent_id: UUID | None = None

    @personal_data("name", "contact", "reason")
    class ProfileCorrected(Aggregate.Event):
        """Name, kind or contact details were corrected; the old values stay in history."""

        name: Name | None = None
        kind: CustomerKind | None = None
        contact: ContactDetails | None = None
        reason: ShortText

    @personal_data()
    class ParentOrganisationSet(Aggregate.Event):
        """The customer was placed under a group customer (or removed from one)."""

        parent_id: UUID | None

    @personal_data("reason")
    class Deactivated(Aggregate.Event):
        """The customer was deactivated (never deleted)."""

        reason: ShortText

    @personal_data("reason")
    class Reactivated(Aggregate.Event):
        """A deactivated customer was made active again."""

        reason: ShortText

    @personal_data("reason")
    class LifecycleStageChanged(Aggregate.Event):
        """The customer moved between lifecycle stages, with the reason (and the lifecycle
        policy's rule that fired, if the policy moved them)."""

        from_stage: Label
        to_stage: Label
        reason: ShortText
        #: The lifecycle policy's rule (:class:`~crm_domain.lifecycle.LifecycleRule`); None
        #: for a change made by hand (and every change stored before the policy existed).
        rule: LifecycleRule | None = None

    @personal_data("participants", "summary", "commitments", "next_step")
    class ContactLogged(Aggregate.Event):
        """An interaction: channel, direction, participants, summary, commitments, next step."""

        contact_id: UUID
        channel: Channel
        direction: Direction
        participants: Annotated[list[Label], ListBounds(MAX_PARTICIPANTS, "participants")]
        summary: ShortText
        commitments: Annotated[list[Commitment], ListBounds(MAX_COMMITMENTS, "commitments")] = []
        next_step: FreeText | None = None
        next_step_due: BusinessTime | None = None
        logged_by: Label
        marketing_purpose: Label | None = None
        account_id: UUID | None = None

    @personal_data("note")
    class CommitmentFulfilled(Aggregate.Event):
        """A promise made during a logged contact was kept."""

        contact_id: UUID
        index: Annotated[int, Field(ge=0)]
        note: FreeText = ""

    @personal_data("reason")
    class CommitmentReassigned(Aggregate.Event):
        """An open promise made during a logged contact got a new owner (e.g. its owner left)."""

        contact_id: UUID
        index: Annotated[int, Field(ge=0)]
        owner: Label
        previous_owner: Label
        reason: ShortText

    @personal_data("reason")
    class ManagerAssigned(Aggregate.Event):
        """The customer manager was assigned or handed over (e.g. the rep left)."""

        manager: Label
        previous_manager: Label | None
        reason: ShortText

    @personal_data("reason")
    class SupportOwnerAssigned(Aggregate.Event):
        """The named technical-support owner was assigned."""

        owner: Label
        previous_owner: Label | None
        reason: ShortText

    @personal_data()
    class SegmentAssigned(Aggregate.Event):
        """The customer was put in a marketing/service segment."""

        segment: Label
        previous_segment: Label | None

    @personal_data()
    class GradeAssigned(Aggregate.Event):
        """The customer was graded (e.g. A/B/C by value)."""

        grade: Label
        previous_grade: Label | None

    @personal_data()
    class ConsentGranted(Aggregate.Event):
        """Marketing consent was granted for one purpose on one channel."""

        purpose: Label
        channel: Channel

    @personal_data("reason")
    class ConsentWithdrawn(Aggregate.Event):
        """Marketing consent was withdrawn for one purpose on one channel."""

        purpose: Label
        channel: Channel
        reason: FreeText = ""

    @personal_data("comment")
    class SatisfactionRecorded(Aggregate.Event):
        """A 1-5 satisfaction score, with its class (5 loyal, 3-4 at risk)."""

        score: Score
        classification: SatisfactionClass
        ticket_id: UUID | None = None
        comment: FreeText = ""

    @personal_data()
    class CampaignResponseRecorded(Aggregate.Event):
        """The customer responded to a marketing campaign (or registered for it)."""

        campaign_id: Label
        response: Label
        channel: Channel
        registered: bool = False

    @personal_data()
    class SeminarRegistered(Aggregate.Event):
        """The customer registered for a marketing seminar (an event of a campaign)."""

        registration_id: UUID
        campaign_id: Label
        seminar: ShortText
        held_at: BusinessTime | None = None
        channel: Channel

    @personal_data()
    class SeminarRegistrationConfirmed(Aggregate.Event):
        """The customer's seminar registration was confirmed to them (on a channel)."""

        registration_id: UUID
        channel: Channel

    @personal_data("subject", "description")
    class TicketOpened(Aggregate.Event):
        """A service ticket was opened, with its SLA due times (resolution, first response)."""

        ticket_id: UUID
        kind: TicketKind
        priority: Priority
        channel: Channel
        subject: ShortText
        description: FreeText = ""
        due_at: BusinessTime
        #: When the first response is due (absent on tickets opened before release 0.2).
        response_due_at: BusinessTime | None = None

    @personal_data()
    class TicketAssigned(Aggregate.Event):
        """A ticket was assigned to a person and/or a department."""

        ticket_id: UUID
        assignee: Label | None
        department: Label | None

    @personal_data("message")
    class TicketResponded(Aggregate.Event):
        """Someone answered the customer on a ticket (the first one is the first response)."""

        ticket_id: UUID
        responder: Label
        message: ShortText

    @personal_data()
    class FieldVisitScheduled(Aggregate.Event):
        """An engineer visit was scheduled for a ticket."""

        ticket_id: UUID
        visit_at: BusinessTime
        engineer: Label

    @personal_data("result")
    class FieldVisitCompleted(Aggregate.Event):
        """An engineer's visit for a ticket took place, with its outcome and result."""

        ticket_id: UUID
        engineer: Label
        outcome: VisitOutcome
        result: ShortText

    @personal_data("reason")
    class TicketAwaitingCustomer(Aggregate.Event):
        """The ticket waits on the customer (status "waiting on customer"); its resolution
        clock is paused if ``clock_paused`` (the SLA policy's ``pause_when_waiting``)."""

        ticket_id: UUID
        reason: ShortText
        clock_paused: bool

    @personal_data("message")
    class TicketCustomerReplied(Aggregate.Event):
        """The customer answered a ticket waiting on them: its resolution clock runs again,
        due at ``due_at`` (moved on by the working time spent waiting, if it was paused)."""

        ticket_id: UUID
        message: ShortText
        due_at: BusinessTime

    @personal_data("reason")
    class TicketEscalated(Aggregate.Event):
        """A ticket was escalated one level."""

        ticket_id: UUID
        level: int
        reason: ShortText
        escalated_to: Label | None = None

    @personal_data("answer")
    class TicketResolved(Aggregate.Event):
        """A ticket was resolved, with the answer given."""

        ticket_id: UUID
        answer: ShortText
        knowledge_base_ref: Reference | None = None

    @personal_data("reason")
    class TicketReopened(Aggregate.Event):
        """A resolved ticket was reopened; its SLA clock restarted."""

        ticket_id: UUID
        reason: ShortText
        due_at: BusinessTime

    @personal_data()
    class TicketClosed(Aggregate.Event):
        """A resolved ticket was closed."""

        ticket_id: UUID

    @personal_data()
    class TicketSlaBreached(Aggregate.Event):
        """A ticket passed the due time of one of its clocks: recorded by the late response
        or resolution itself, or by the scan of open tickets (``crm sla scan``)."""

        ticket_id: UUID
        due_at: BusinessTime
        detected_at: BusinessTime
        #: Which clock: events stored before there were two clocks are resolution breaches.
        clock: SlaClock = SlaClock.RESOLUTION

    @personal_data()
    class PersonalDataErased(Aggregate.Event):
        """The customer's personal data was erased (GDPR art. 17, PIPL art. 47): their key was
        destroyed, so every personal field of their history reads as redacted from now on.
        Who and when are the event's actor and time; ``reason`` and ``legal_basis`` are kept
        in clear (write no personal data in them)."""

        reason: ShortText
        legal_basis: Label

    # ----- creation -----------------------------------------------------------------
    @event(Registered)
    def __init__(
        self,
        kind: CustomerKind,
        name: str,
        code: str,
        contact: ContactDetails,
        source_channel: str,
        lifecycle_stage: str,
        parent_id: UUID | None = None,
    ) -> None:
        self.kind = CustomerKind(kind)
        self.name = name
        self.code = code
        self.contact = contact
        self.source_channel = source_channel
        self.parent_id = parent_id
        self.active = True
        self.lifecycle_stage = lifecycle_stage
        self.manager: str | None = None
        self.support_owner: str | None = None
        self.segment: str | None = None
        self.grade: str | None = None
        self.consents: consent.Consents = {}
        self.satisfaction: int | None = None
        self.satisfaction_class: SatisfactionClass | None = None
        self.tickets: dict[UUID, Ticket] = {}
        self.contacts_logged = 0
        #: Promises still to keep, keyed by ``"<contact id>/<index in the contact>"``.
        self.open_commitments: dict[str, Commitment] = {}
        self.last_contact_at: datetime | None = None
        #: Business time of the last lifecycle stage change (where the policy resumes).
        self.stage_changed_at: datetime | None = None
        self.seminar_registrations: dict[UUID, SeminarRegistration] = {}
        self.forgotten = False

    @classmethod
    def register(
        cls,
        *,
        kind: CustomerKind | str,
        name: str,
        code: str,
        contact: ContactDetails | None = None,
        source_channel: str = "direct",
        parent_id: UUID | None = None,
        lifecycle: LifecycleModel = DEFAULT_LIFECYCLE,
    ) -> Customer:
        return cls(
            kind=kind,  # type: ignore[arg-type]
            name=name,
            code=code,
            contact=contact or ContactDetails(),
            source_channel=source_channel,
            lifecycle_stage=lifecycle.initial,
            parent_id=parent_id,
        )

    # ----- guards -------------------------------------------------------------------
    def _require_active(self) -> None:
        if not self.active:
            raise InactiveCustomerError(f"customer {self.code} is deactivated")

    def ticket(self, ticket_id: UUID) -> Ticket:
        """The ticket with that id on this customer, else :class:`EntityNotFoundError`."""
        try:
            return self.tickets[ticket_id]
        except KeyError:
            raise EntityNotFoundError("ticket", ticket_id, self.id) from None

    def has_consent(self, purpose: str, channel: Channel | str) -> bool:
        """Whether the customer consented to marketing for ``purpose`` on ``channel`` (outbound
        marketing needs it)."""
        return parse_enum(Channel, channel) in self.consents.get(purpose, [])

    @property
    def open_tickets(self) -> list[Ticket]:
        """Tickets not yet resolved, waiting ones included (an open complaint, request or
        incident stops outbound marketing)."""
        return [t for t in self.tickets.values() if t.status is TicketStatus.OPEN]

    # ----- profile ------------------------------------------------------------------
    def correct_profile(
        self,
        *,
        reason: str,
        name: str | None = None,
        kind: CustomerKind | str | None = None,
        contact: ContactDetails | None = None,
    ) -> None:
        """Correct what was wrong; the old values stay in the history."""
        if name is None and kind is None and contact is None:
            raise InvalidCommandError("a profile correction must change something")
        self._correct(
            name=name,
            kind=kind,
            contact=contact,
            reason=reason,
        )

    @event(ProfileCorrected)
    def _correct(
        self,
        name: str | None,
        kind: CustomerKind | str | None,
        contact: ContactDetails | None,
        reason: str,
    ) -> None:
        if name is not None:
            self.name = name
        if kind is not None:
            self.kind = CustomerKind(kind)
        if contact is not None:
            self.contact = contact

    def set_parent_organisation(self, parent_id: UUID | None) -> None:
        """Place the customer under a group customer (None: out of it); never under itself."""
        if parent_id == self.id:
            raise RuleViolationError("a customer cannot be its own parent organisation")
        self._set_parent(parent_id=parent_id)

    @event(ParentOrganisationSet)
    def _set_parent(self, parent_id: UUID | None) -> None:
        self.parent_id = parent_id

    def deactivate(self, *, reason: str) -> None:
        """Deactivate (never delete) an active customer: no new contacts, tickets or assignments
        until it is reactivated."""
        self._require_active()
        self._deactivate(reason=reason)

    @event(Deactivated)
    def _deactivate(self, reason: str) -> None:
        self.active = False

    def reactivate(self, *, reason: str) -> None:
        """Make a deactivated customer active again, with the reason."""
        if self.active:
            raise RuleViolationError(f"customer {self.code} is already active")
        self._reactivate(reason=reason)

    @event(Reactivated)
    def _reactivate(self, reason: str) -> None:
        self.active = True

    # ----- erasure ------------------------------------------------------------------
    def erase_personal_data(self, *, reason: str, legal_basis: str) -> bool:
        """Record that the customer's personal data is erased (the CRM then destroys their
        key); False, recording nothing, if it already was. The customer stays, with their
        code, stage, tickets, orders and every rule; their personal fields read redacted."""
        if self.forgotten:
            return False
        self._erase_personal_data(reason=reason, legal_basis=legal_basis)
        return True

    @event(PersonalDataErased)
    def _erase_personal_data(self, reason: str, legal_basis: str) -> None:
        # The state reads redacted at once, whatever the events before said (events stored
        # before encryption existed, a key still cached elsewhere): replayed, snapshotted
        # or not, the customer's state after this event is the same.
        self.forgotten = True
        self.name = REDACTED
        self.contact = redacted(self.contact)
        self.open_commitments = {k: redacted(c) for k, c in self.open_commitments.items()}
        self.tickets = {k: redacted(t) for k, t in self.tickets.items()}

    # ----- lifecycle ----------------------------------------------------------------
    def change_lifecycle_stage(
        self, *, to_stage: str, reason: str, lifecycle: LifecycleModel = DEFAULT_LIFECYCLE
    ) -> None:
        """Move an active customer to another lifecycle stage; only the lifecycle model's
        transitions are allowed."""
        self._require_active()
        lifecycle.check_transition(self.lifecycle_stage, to_stage)
        self._change_stage(
            from_stage=self.lifecycle_stage,
            to_stage=to_stage,
            reason=reason,
            rule=None,
            occurred_at=current_occurred_at(),
        )

    def apply_lifecycle_policy(
        self, *, purchases: Sequence[datetime], as_of: datetime, policy: LifecyclePolicy
    ) -> list[Transition]:
        """Record the transitions the lifecycle policy makes due for an active customer as of
        ``as_of``, given the business times of their confirmed orders; returns them (none:
        nothing is recorded). Each event carries its rule and the business time at which
        the rule fired (the order's, or the moment the silence reached its limit).

        Idempotent: only what happened after the last stage change is looked at."""
        if not self.active:
            return []
        as_of = business_time(as_of, "as_of")
        plan = policy.plan(
            self.lifecycle_stage, purchases, since=self.stage_changed_at, as_of=as_of
        )
        for step in plan:
            policy.model.check_transition(self.lifecycle_stage, step.to_stage)
            self._change_stage(
                from_stage=self.lifecycle_stage,
                to_stage=step.to_stage,
                reason=step.reason,
                rule=step.rule,
                occurred_at=step.at,
            )
        return plan

    @event(LifecycleStageChanged)
    def _change_stage(
        self,
        from_stage: str,
        to_stage: str,
        reason: str,
        rule: LifecycleRule | None,
        occurred_at: datetime,
    ) -> None:
        self.lifecycle_stage = to_stage
        self.stage_changed_at = self.occurred_on

    # ----- interactions -------------------------------------------------------------
    def log_contact(
        self,
        *,
        channel: Channel | str,
        direction: Direction | str,
        summary: str,
        logged_by: str,
        participants: list[str] | None = None,
        commitments: list[Commitment] | None = None,
        next_step: str | None = None,
        next_step_due: datetime | None = None,
        marketing_purpose: str | None = None,
        account_id: UUID | None = None,
    ) -> UUID:
        """Record an interaction. Outbound marketing needs consent for purpose and channel."""
        self._require_active()
        if marketing_purpose is not None and parse_enum(Direction, direction) is Direction.OUTBOUND:
            if not self.has_consent(marketing_purpose, channel):
                raise ConsentRequiredError(marketing_purpose, parse_enum(Channel, channel).value)
            blocking = [t for t in self.open_tickets if t.kind in MARKETING_BLOCKING_KINDS]
            if blocking:
                raise OpenComplaintError(
                    f"customer {self.code} has an open {blocking[0].kind.value}: "
                    "no marketing until it is resolved"
                )
        contact_id = uuid4()
        self._log_contact(
            contact_id=contact_id,
            channel=channel,
            direction=direction,
            participants=participants or [logged_by],
            summary=summary,
            commitments=commitments or [],
            next_step=next_step,
            next_step_due=next_step_due,
            logged_by=logged_by,
            marketing_purpose=marketing_purpose,
            account_id=account_id,
        )
        return contact_id

    @event(ContactLogged)
    def _log_contact(
        self,
        contact_id: UUID,
        channel: Channel | str,
        direction: Direction | str,
        participants: list[str],
        summary: str,
        commitments: list[Commitment],
        next_step: str | None,
        next_step_due: datetime | None,
        logged_by: str,
        marketing_purpose: str | None,
        account_id: UUID | None,
    ) -> None:
        self.contacts_logged += 1
        self.last_contact_at = self.occurred_on
        for index, commitment in enumerate(commitments):
            self.open_commitments[commitment_key(contact_id, index)] = Commitment.model_validate(
                commitment
            )

    def fulfil_commitment(self, *, contact_id: UUID, index: int = 0, note: str = "") -> None:
        """Mark a promise made during a contact as kept (so a successor sees what is left)."""
        key = commitment_key(contact_id, index)
        if key not in self.open_commitments:
            raise EntityNotFoundError("open commitment", key, self.id)
        self._fulfil(contact_id=contact_id, index=index, note=note)

    @event(CommitmentFulfilled)
    def _fulfil(self, contact_id: UUID, index: int, note: str) -> None:
        del self.open_commitments[commitment_key(contact_id, index)]

    def reassign_commitment(
        self, *, contact_id: UUID, index: int = 0, owner: str, reason: str
    ) -> None:
        """Give an open promise to another owner (e.g. its owner left), with the reason; the
        promise and who made it stay as logged."""
        key = commitment_key(contact_id, index)
        commitment = self.open_commitments.get(key)
        if commitment is None:
            raise EntityNotFoundError("open commitment", key, self.id)
        if commitment.owner == owner:
            raise RuleViolationError(f"{owner} already owns commitment {key}")
        self._reassign_commitment(
            contact_id=contact_id,
            index=index,
            owner=owner,
            previous_owner=commitment.owner,
            reason=reason,
        )

    @event(CommitmentReassigned)
    def _reassign_commitment(
        self, contact_id: UUID, index: int, owner: str, previous_owner: str, reason: str
    ) -> None:
        key = commitment_key(contact_id, index)
        self.open_commitments[key] = self.open_commitments[key].model_copy(update={"owner": owner})

    # ----- ownership, segmentation, consent -----------------------------------------
    def assign_manager(self, *, manager: str, reason: str) -> None:
        """Assign or hand over the customer manager; the reason stays on record."""
        self._require_active()
        if manager == self.manager:
            raise RuleViolationError(f"{manager} already manages customer {self.code}")
        self._assign_manager(manager=manager, previous_manager=self.manager, reason=reason)

    @event(ManagerAssigned)
    def _assign_manager(self, manager: str, previous_manager: str | None, reason: str) -> None:
        self.manager = manager

    def assign_support_owner(self, *, owner: str, reason: str) -> None:
        """Assign or hand over the named technical-support owner of an active customer, with the
        reason."""
        self._require_active()
        self._assign_support(owner=owner, previous_owner=self.support_owner, reason=reason)

    @event(SupportOwnerAssigned)
    def _assign_support(self, owner: str, previous_owner: str | None, reason: str) -> None:
        self.support_owner = owner

    def assign_segment(self, *, segment: str) -> None:
        """Put an active customer in a segment; the same segment again records nothing."""
        self._require_active()
        if segment == self.segment:
            return
        self._assign_segment(segment=segment, previous_segment=self.segment)

    @event(SegmentAssigned)
    def _assign_segment(self, segment: str, previous_segment: str | None) -> None:
        self.segment = segment

    def assign_grade(self, *, grade: str) -> None:
        """Grade an active customer (e.g. A/B/C by value); the same grade again records nothing."""
        self._require_active()
        if grade == self.grade:
            return
        self._assign_grade(grade=grade, previous_grade=self.grade)

    @event(GradeAssigned)
    def _assign_grade(self, grade: str, previous_grade: str | None) -> None:
        self.grade = grade

    def grant_consent(self, *, purpose: str, channel: Channel | str) -> None:
        """Grant marketing consent for one purpose on one channel; consent already given records
        nothing."""
        if self.has_consent(purpose, channel):
            return
        self._grant(purpose=purpose, channel=channel)

    @event(ConsentGranted)
    def _grant(self, purpose: str, channel: Channel | str) -> None:
        self.consents = consent.granted(self.consents, purpose, channel)

    def withdraw_consent(self, *, purpose: str, channel: Channel | str, reason: str = "") -> None:
        """Withdraw marketing consent for one purpose on one channel; consent not given records
        nothing."""
        if not self.has_consent(purpose, channel):
            return
        self._withdraw(purpose=purpose, channel=channel, reason=reason)

    @event(ConsentWithdrawn)
    def _withdraw(self, purpose: str, channel: Channel | str, reason: str) -> None:
        self.consents = consent.withdrawn(self.consents, purpose, channel)

    def record_campaign_response(
        self, *, campaign_id: str, response: str, channel: Channel | str, registered: bool = False
    ) -> None:
        """Record the customer's response to a marketing campaign (or their registration for it)."""
        self._campaign_response(
            campaign_id=campaign_id, response=response, channel=channel, registered=registered
        )

    @event(CampaignResponseRecorded)
    def _campaign_response(
        self, campaign_id: str, response: str, channel: Channel | str, registered: bool
    ) -> None:
        pass

    def register_for_seminar(
        self,
        *,
        campaign_id: str,
        seminar: str,
        channel: Channel | str,
        held_at: datetime | None = None,
    ) -> UUID:
        """Record an active customer's registration for a marketing seminar; returns its id
        (confirm it with :meth:`confirm_seminar_registration`)."""
        self._require_active()
        registration_id = uuid4()
        self._register_seminar(
            registration_id=registration_id,
            campaign_id=campaign_id,
            seminar=seminar,
            held_at=held_at,
            channel=channel,
        )
        return registration_id

    @event(SeminarRegistered)
    def _register_seminar(
        self,
        registration_id: UUID,
        campaign_id: str,
        seminar: str,
        held_at: datetime | None,
        channel: Channel | str,
    ) -> None:
        self.seminar_registrations[registration_id] = SeminarRegistration(
            registration_id=registration_id,
            campaign_id=campaign_id,
            seminar=seminar,
            held_at=held_at,
            registered_at=self.occurred_on,
        )

    def confirm_seminar_registration(
        self, registration_id: UUID, *, channel: Channel | str
    ) -> None:
        """Confirm a seminar registration to the customer, once ("I registered for a seminar
        and never got a confirmation" must not happen)."""
        registration = self.seminar_registrations.get(registration_id)
        if registration is None:
            raise EntityNotFoundError("seminar registration", registration_id, self.id)
        if registration.confirmed_at is not None:
            raise RuleViolationError(
                f"seminar registration {registration_id} was already confirmed "
                f"({registration.confirmed_at:%Y-%m-%d %H:%M})"
            )
        self._confirm_seminar(registration_id=registration_id, channel=channel)

    @event(SeminarRegistrationConfirmed)
    def _confirm_seminar(self, registration_id: UUID, channel: Channel | str) -> None:
        self.seminar_registrations[registration_id].confirmed_at = self.occurred_on

    @property
    def unconfirmed_seminar_registrations(self) -> list[SeminarRegistration]:
        """Seminar registrations not yet confirmed to the customer."""
        return [r for r in self.seminar_registrations.values() if r.confirmed_at is None]

    # ----- satisfaction -------------------------------------------------------------
    def record_satisfaction(
        self, *, score: int, ticket_id: UUID | None = None, comment: str = ""
    ) -> SatisfactionClass:
        """Record a 1-5 score; about a ticket only once that ticket is resolved."""
        if ticket_id is not None and self.ticket(ticket_id).status is TicketStatus.OPEN:
            raise SatisfactionNotAllowedError(
                f"ticket {ticket_id} is not resolved: ask for satisfaction after resolution"
            )
        if not isinstance(score, int) or isinstance(score, bool) or not 1 <= score <= 5:
            raise InvalidCommandError(f"satisfaction score must be 1-5, got {score!r}")
        classification = SatisfactionClass.of(score)
        self._satisfaction(
            score=score, classification=classification, ticket_id=ticket_id, comment=comment
        )
        return classification

    @event(SatisfactionRecorded)
    def _satisfaction(
        self, score: int, classification: SatisfactionClass, ticket_id: UUID | None, comment: str
    ) -> None:
        self.satisfaction = score
        self.satisfaction_class = SatisfactionClass(classification)

    # ----- service tickets ----------------------------------------------------------
    def open_ticket(
        self,
        *,
        kind: TicketKind | str,
        priority: Priority | str,
        channel: Channel | str,
        subject: str,
        due_at: datetime,
        description: str = "",
        response_due_at: datetime | None = None,
    ) -> UUID:
        """Open a ticket; ``due_at`` (resolution) and ``response_due_at`` come from the SLA
        policy (see :mod:`crm_domain.sla`)."""
        self._require_active()
        ticket_id = uuid4()
        self._open_ticket(
            ticket_id=ticket_id,
            kind=kind,
            priority=priority,
            channel=channel,
            subject=subject,
            description=description,
            due_at=due_at,
            response_due_at=response_due_at,
        )
        return ticket_id

    @event(TicketOpened)
    def _open_ticket(
        self,
        ticket_id: UUID,
        kind: TicketKind | str,
        priority: Priority | str,
        channel: Channel | str,
        subject: str,
        description: str,
        due_at: datetime,
        response_due_at: datetime | None = None,
    ) -> None:
        self.tickets[ticket_id] = Ticket(
            ticket_id=ticket_id,
            kind=kind,
            priority=priority,
            channel=channel,
            subject=subject,
            opened_at=self.occurred_on,
            due_at=due_at,
            response_due_at=response_due_at,
        )

    def _open(self, ticket_id: UUID, step: str) -> Ticket:
        ticket = self.ticket(ticket_id)
        if ticket.status is not TicketStatus.OPEN:
            raise TicketStateError(f"cannot {step} ticket {ticket_id}: it is {ticket.status.value}")
        return ticket

    def assign_ticket(
        self, ticket_id: UUID, *, assignee: str | None = None, department: str | None = None
    ) -> None:
        """Assign an open ticket to a person, a department, or both (at least one)."""
        if assignee is None and department is None:
            raise InvalidCommandError("assign a ticket to a person, a department, or both")
        self._open(ticket_id, "assign")
        self._assign_ticket(ticket_id=ticket_id, assignee=assignee, department=department)

    @event(TicketAssigned)
    def _assign_ticket(self, ticket_id: UUID, assignee: str | None, department: str | None) -> None:
        ticket = self.tickets[ticket_id]
        ticket.assignee = assignee
        ticket.department = department

    def respond_to_ticket(
        self, ticket_id: UUID, *, responder: str, message: str, now: datetime | None = None
    ) -> None:
        """Answer the customer on an open ticket; the first answer stops the response clock.

        Given ``now`` (the command's business time), a first answer after the response
        due time records the response breach first, in the same command.
        """
        ticket = self._open(ticket_id, "respond to")
        if now is not None and ticket.first_response_at is None:
            self._record_late(ticket, SlaClock.RESPONSE, business_time(now, "now"))
        self._respond(ticket_id=ticket_id, responder=responder, message=message)

    @event(TicketResponded)
    def _respond(self, ticket_id: UUID, responder: str, message: str) -> None:
        ticket = self.tickets[ticket_id]
        if ticket.first_response_at is None:
            ticket.first_response_at = self.occurred_on

    def schedule_field_visit(self, ticket_id: UUID, *, visit_at: datetime, engineer: str) -> None:
        """Schedule an engineer's visit for an open ticket."""
        self._open(ticket_id, "schedule a visit for")
        self._schedule_visit(ticket_id=ticket_id, visit_at=visit_at, engineer=engineer)

    @event(FieldVisitScheduled)
    def _schedule_visit(self, ticket_id: UUID, visit_at: datetime, engineer: str) -> None:
        self.tickets[ticket_id].visits_open += 1

    def complete_field_visit(
        self, ticket_id: UUID, *, engineer: str, outcome: VisitOutcome | str, result: str
    ) -> None:
        """Record that a scheduled engineer visit took place, with its outcome and result.

        The ticket must have a visit scheduled and not yet completed, and must not be
        closed; resolving the ticket stays a step of its own.
        """
        ticket = self.ticket(ticket_id)
        if ticket.status is TicketStatus.CLOSED:
            raise TicketStateError(f"cannot complete a visit for ticket {ticket_id}: it is closed")
        if ticket.visits_open < 1:
            raise TicketStateError(
                f"cannot complete a visit for ticket {ticket_id}: no visit is scheduled"
            )
        self._complete_visit(
            ticket_id=ticket_id,
            engineer=engineer,
            outcome=parse_enum(VisitOutcome, outcome),
            result=result,
        )

    @event(FieldVisitCompleted)
    def _complete_visit(
        self, ticket_id: UUID, engineer: str, outcome: VisitOutcome | str, result: str
    ) -> None:
        ticket = self.tickets[ticket_id]
        ticket.visits_open -= 1
        ticket.visits_completed += 1

    def wait_on_customer(
        self, ticket_id: UUID, *, reason: str, pause_clock: bool, now: datetime | None = None
    ) -> None:
        """Put an open ticket in the "waiting on customer" status, pausing its resolution
        clock if ``pause_clock`` (the SLA policy says). A resolution due time already
        passed (given ``now``) is recorded as a breach first."""
        ticket = self._open(ticket_id, "wait on the customer for")
        if ticket.waiting_on_customer:
            raise TicketStateError(f"ticket {ticket_id} is already waiting on the customer")
        if now is not None:
            self._record_late(ticket, SlaClock.RESOLUTION, business_time(now, "now"))
        self._await_customer(ticket_id=ticket_id, reason=reason, clock_paused=pause_clock)

    @event(TicketAwaitingCustomer)
    def _await_customer(self, ticket_id: UUID, reason: str, clock_paused: bool) -> None:
        ticket = self.tickets[ticket_id]
        ticket.waiting_on_customer = True
        ticket.waiting_since = self.occurred_on
        ticket.clock_paused = clock_paused

    def record_customer_reply(
        self,
        ticket_id: UUID,
        *,
        message: str,
        now: datetime,
        calendar: BusinessCalendar | None = None,
    ) -> datetime:
        """The customer answered a ticket waiting on them: it is open again and its resolution
        clock runs on, due later by the working time (on ``calendar``) it was paused.
        Returns the new resolution due time."""
        ticket = self._open(ticket_id, "record a customer reply on")
        if not ticket.waiting_on_customer:
            raise TicketStateError(f"ticket {ticket_id} is not waiting on the customer")
        due = ticket.resolution_due(business_time(now, "now"), calendar)
        self._customer_replied(ticket_id=ticket_id, message=message, due_at=due)
        return due

    @event(TicketCustomerReplied)
    def _customer_replied(self, ticket_id: UUID, message: str, due_at: datetime) -> None:
        ticket = self.tickets[ticket_id]
        ticket.due_at = due_at
        ticket.waiting_on_customer = False
        ticket.waiting_since = None
        ticket.clock_paused = False

    def escalate_ticket(
        self, ticket_id: UUID, *, reason: str, escalated_to: str | None = None
    ) -> int:
        """Escalate an open ticket one level, with the reason; returns the new level."""
        ticket = self._open(ticket_id, "escalate")
        level = ticket.escalation_level + 1
        self._escalate(ticket_id=ticket_id, level=level, reason=reason, escalated_to=escalated_to)
        return level

    @event(TicketEscalated)
    def _escalate(self, ticket_id: UUID, level: int, reason: str, escalated_to: str | None) -> None:
        self.tickets[ticket_id].escalation_level = level

    def resolve_ticket(
        self,
        ticket_id: UUID,
        *,
        answer: str,
        knowledge_base_ref: str | None = None,
        now: datetime | None = None,
        calendar: BusinessCalendar | None = None,
    ) -> None:
        """Resolve an open ticket with the answer; only then can it be closed, reopened or rated.

        Resolving stops both clocks (the answer is a response too). Given ``now`` (the
        command's business time), a clock already past its due time records its breach
        first, in the same command (time spent waiting on the customer with the clock
        paused is not counted: ``calendar`` measures it).
        """
        ticket = self._open(ticket_id, "resolve")
        if now is not None:
            now = business_time(now, "now")
            if ticket.first_response_at is None:
                self._record_late(ticket, SlaClock.RESPONSE, now)
            self._record_late(
                ticket, SlaClock.RESOLUTION, now, ticket.resolution_due(now, calendar)
            )
        self._resolve(ticket_id=ticket_id, answer=answer, knowledge_base_ref=knowledge_base_ref)

    @event(TicketResolved)
    def _resolve(self, ticket_id: UUID, answer: str, knowledge_base_ref: str | None) -> None:
        ticket = self.tickets[ticket_id]
        ticket.status = TicketStatus.RESOLVED
        ticket.resolved_at = self.occurred_on
        ticket.waiting_on_customer = False
        ticket.waiting_since = None
        ticket.clock_paused = False

    def reopen_ticket(self, ticket_id: UUID, *, reason: str, due_at: datetime) -> None:
        """Reopen a resolved ticket. A closed ticket stays closed: open a new one."""
        ticket = self.ticket(ticket_id)
        if ticket.status is not TicketStatus.RESOLVED:
            raise TicketStateError(
                f"cannot reopen ticket {ticket_id}: it is {ticket.status.value}; "
                "only a resolved ticket can be reopened"
            )
        self._reopen(ticket_id=ticket_id, reason=reason, due_at=due_at)

    @event(TicketReopened)
    def _reopen(self, ticket_id: UUID, reason: str, due_at: datetime) -> None:
        ticket = self.tickets[ticket_id]
        ticket.status = TicketStatus.OPEN
        ticket.resolved_at = None
        ticket.due_at = due_at
        ticket.breached = False
        ticket.reopen_count += 1
        ticket.waiting_on_customer = False
        ticket.waiting_since = None
        ticket.clock_paused = False

    def close_ticket(self, ticket_id: UUID) -> None:
        """Close a resolved ticket for good (an unresolved one must be resolved first)."""
        ticket = self.ticket(ticket_id)
        if ticket.status is not TicketStatus.RESOLVED:
            raise TicketStateError(
                f"cannot close ticket {ticket_id}: it is {ticket.status.value}; resolve it first"
            )
        self._close(ticket_id=ticket_id)

    @event(TicketClosed)
    def _close(self, ticket_id: UUID) -> None:
        self.tickets[ticket_id].status = TicketStatus.CLOSED

    def sla_breaches_due(self, now: datetime) -> list[tuple[UUID, SlaClock]]:
        """The breaches a scan at ``now`` would record: open tickets whose response (before
        any response) or running resolution clock is past due and not yet recorded."""
        found = []
        for t in self.open_tickets:
            if (
                t.first_response_at is None
                and t.response_due_at is not None
                and not t.response_breached
                and now > t.response_due_at
            ):
                found.append((t.ticket_id, SlaClock.RESPONSE))
            if not t.breached and not (t.waiting_on_customer and t.clock_paused) and now > t.due_at:
                found.append((t.ticket_id, SlaClock.RESOLUTION))
        return found

    def record_sla_breach(self, ticket_id: UUID, *, now: datetime) -> bool:
        """Record the breaches of an open ticket whose clocks passed their due times as of
        ``now`` (response before any response; resolution unless paused waiting on the
        customer). Each breach is recorded once. Returns False if none was due."""
        now = business_time(now, "now")
        ticket = self.ticket(ticket_id)
        due = [clock for tid, clock in self.sla_breaches_due(now) if tid == ticket_id]
        for clock in due:
            self._record_late(ticket, clock, now)
        return bool(due)

    def _record_late(
        self, ticket: Ticket, clock: SlaClock, now: datetime, due_at: datetime | None = None
    ) -> bool:
        """Record a breach of ``clock`` if ``now`` is past its due time and none is recorded."""
        if clock is SlaClock.RESPONSE:
            due, done = ticket.response_due_at, ticket.response_breached
        else:
            due, done = due_at or ticket.due_at, ticket.breached
        if due is None or done or now <= due:
            return False
        self._breach(ticket_id=ticket.ticket_id, due_at=due, detected_at=now, clock=clock)
        return True

    @event(TicketSlaBreached)
    def _breach(
        self,
        ticket_id: UUID,
        due_at: datetime,
        detected_at: datetime,
        clock: SlaClock = SlaClock.RESOLUTION,
    ) -> None:
        ticket = self.tickets[ticket_id]
        if SlaClock(clock) is SlaClock.RESPONSE:
            ticket.response_breached = True
        else:
            ticket.breached = True
