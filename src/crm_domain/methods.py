"""The CRM's typed methods: one per command, each building the command and handling it.

``crm.log_contact(customer_id, channel="phone", ...)`` is ``crm.handle(LogContact(...))``
with the arguments checked by your editor. The command classes
(:mod:`crm_domain.commands`) hold the fields, policy and handler; these methods hold
nothing but the friendly signature.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any, TypeVar
from uuid import UUID

from crm_domain.commands import (
    AcceptQuote,
    AddAccountContact,
    ApplyLifecyclePolicy,
    ApproveQuoteDiscount,
    AssignAccountManager,
    AssignCustomerManager,
    AssignGrade,
    AssignSegment,
    AssignSupportOwner,
    AssignTicket,
    CancelOrder,
    ChangeLifecycleStage,
    ChangeOpportunityCurrency,
    CloseAccount,
    CloseTicket,
    CompleteFieldVisit,
    ConfirmOrder,
    ConfirmSeminarRegistration,
    CorrectCustomerProfile,
    DeactivateCustomer,
    DeliverOrder,
    DesignateKeyAccount,
    EscalateTicket,
    ExpireLapsedQuotes,
    ExpireQuote,
    ForgetCustomer,
    FulfilCommitment,
    GrantConsent,
    IssueCreditNote,
    IssueInvoice,
    IssueQuote,
    IssueRefund,
    LogContact,
    LoseOpportunity,
    OpenAccount,
    OpenOpportunity,
    OpenTicket,
    PlaceOrder,
    ReactivateCustomer,
    ReassignCommitment,
    ReassignOpportunity,
    ReceivePayment,
    ReclassifyAccount,
    RecordCampaignResponse,
    RecordCustomerReply,
    RecordSatisfaction,
    RecordSlaBreaches,
    RegisterCustomer,
    RegisterForSeminar,
    RejectOrder,
    RejectQuoteDiscount,
    RemoveAccountContact,
    ReopenTicket,
    RequestOrderConfirmation,
    ResolveTicket,
    RespondToTicket,
    ReturnOrder,
    ReviseOpportunity,
    ReviseQuote,
    RevokeKeyAccount,
    ScheduleFieldVisit,
    SendQuote,
    SetCreditLimit,
    SetParentOrganisation,
    ShipOrder,
    StageOpportunity,
    WaitOnCustomer,
    WinOpportunity,
    WithdrawConsent,
    WithdrawQuote,
)
from crm_domain.commands.base import Command
from crm_domain.commands.customer import DEFAULT_LEGAL_BASIS
from crm_domain.credit import CreditOverride
from crm_domain.customer import Commitment
from crm_domain.lifecycle import LifecycleRule
from crm_domain.values import (
    AccountTier,
    Channel,
    CompanySize,
    ContactDetails,
    CustomerKind,
    Direction,
    KeyAccountCriterion,
    Money,
    OrderLine,
    OrderRejectionReason,
    Priority,
    SatisfactionClass,
    TicketKind,
    VisitOutcome,
)

R = TypeVar("R")


class _Handles:
    def handle(self, command: Command[R]) -> R:
        raise NotImplementedError


class CustomerMethods(_Handles):
    """Commands on customers: registration, profile, contacts, consent, tickets."""

    def register_customer(
        self,
        *,
        kind: CustomerKind | str,
        name: str,
        code: str,
        contact: ContactDetails | dict[str, Any] | None = None,
        source_channel: str = "direct",
        parent_id: UUID | None = None,
    ) -> UUID:
        """Register a customer under a unique customer code; returns the customer id."""
        return self.handle(
            RegisterCustomer(
                kind=kind,
                name=name,
                code=code,
                contact=contact,
                source_channel=source_channel,
                parent_id=parent_id,
            )
        )

    def correct_customer_profile(
        self,
        customer_id: UUID,
        *,
        reason: str,
        name: str | None = None,
        kind: CustomerKind | str | None = None,
        contact: ContactDetails | None = None,
    ) -> None:
        """Correct the name, kind or contact details recorded for a customer, with a reason."""
        self.handle(
            CorrectCustomerProfile(
                customer_id=customer_id, reason=reason, name=name, kind=kind, contact=contact
            )
        )

    def set_parent_organisation(self, customer_id: UUID, parent_id: UUID | None) -> None:
        """Place a customer under a group customer (or remove it with ``None``)."""
        self.handle(SetParentOrganisation(customer_id=customer_id, parent_id=parent_id))

    def deactivate_customer(self, customer_id: UUID, *, reason: str) -> None:
        """Deactivate (never delete): the history stays for audit."""
        self.handle(DeactivateCustomer(customer_id=customer_id, reason=reason))

    def forget_customer(
        self, customer_id: UUID, *, reason: str, legal_basis: str = DEFAULT_LEGAL_BASIS
    ) -> bool:
        """Erase a customer's personal data (GDPR art. 17, PIPL art. 47) without touching
        history: records who, when, why and on what legal basis (``PersonalDataErased``)
        and destroys the customer's key, so every personal field of their events,
        snapshots and read-model rows reads as ``[redacted]`` from then on. The customer,
        their code, tickets, orders and every rule stay. False if already erased."""
        return self.handle(
            ForgetCustomer(customer_id=customer_id, reason=reason, legal_basis=legal_basis)
        )

    def reactivate_customer(self, customer_id: UUID, *, reason: str) -> None:
        """Make a deactivated customer active again."""
        self.handle(ReactivateCustomer(customer_id=customer_id, reason=reason))

    def change_lifecycle_stage(self, customer_id: UUID, *, to_stage: str, reason: str) -> None:
        """Move a customer to another lifecycle stage, as the lifecycle model allows."""
        self.handle(ChangeLifecycleStage(customer_id=customer_id, to_stage=to_stage, reason=reason))

    def log_contact(
        self,
        customer_id: UUID,
        *,
        channel: Channel | str,
        direction: Direction | str,
        summary: str,
        participants: list[str] | None = None,
        commitments: list[Commitment] | list[dict[str, Any]] | None = None,
        next_step: str | None = None,
        next_step_due: datetime | None = None,
        marketing_purpose: str | None = None,
        account_id: UUID | None = None,
        logged_by: str | None = None,
    ) -> UUID:
        """Record an interaction (commutes with other changes: retried on collision)."""
        return self.handle(
            LogContact(
                customer_id=customer_id,
                channel=channel,
                direction=direction,
                summary=summary,
                participants=participants,
                commitments=commitments,
                next_step=next_step,
                next_step_due=next_step_due,
                marketing_purpose=marketing_purpose,
                account_id=account_id,
                logged_by=logged_by,
            )
        )

    def fulfil_commitment(
        self, customer_id: UUID, *, contact_id: UUID, index: int = 0, note: str = ""
    ) -> None:
        """Mark commitment ``index`` of logged contact ``contact_id`` as kept."""
        self.handle(
            FulfilCommitment(customer_id=customer_id, contact_id=contact_id, index=index, note=note)
        )

    def reassign_commitment(
        self, customer_id: UUID, *, contact_id: UUID, index: int = 0, owner: str, reason: str
    ) -> None:
        """Give commitment ``index`` of logged contact ``contact_id`` to another owner."""
        self.handle(
            ReassignCommitment(
                customer_id=customer_id,
                contact_id=contact_id,
                index=index,
                owner=owner,
                reason=reason,
            )
        )

    def apply_lifecycle_policy(
        self, customer_id: UUID, *, purchases: list[datetime], as_of: datetime
    ) -> list[LifecycleRule]:
        """Move a customer on by the lifecycle policy from their confirmed orders' business
        times, as of a moment; returns the rules that fired (see ``scan_lifecycle``)."""
        return self.handle(
            ApplyLifecyclePolicy(customer_id=customer_id, purchases=purchases, as_of=as_of)
        )

    def register_for_seminar(
        self,
        customer_id: UUID,
        *,
        campaign_id: str,
        seminar: str,
        channel: Channel | str,
        held_at: datetime | None = None,
    ) -> UUID:
        """Record a customer's registration for a marketing seminar; returns its id."""
        return self.handle(
            RegisterForSeminar(
                customer_id=customer_id,
                campaign_id=campaign_id,
                seminar=seminar,
                channel=channel,
                held_at=held_at,
            )
        )

    def confirm_seminar_registration(
        self, customer_id: UUID, *, registration_id: UUID, channel: Channel | str
    ) -> None:
        """Confirm a seminar registration to the customer (once), on a channel."""
        self.handle(
            ConfirmSeminarRegistration(
                customer_id=customer_id, registration_id=registration_id, channel=channel
            )
        )

    def assign_customer_manager(self, customer_id: UUID, *, manager: str, reason: str) -> None:
        """Assign or hand over the customer manager (e.g. the rep left)."""
        self.handle(AssignCustomerManager(customer_id=customer_id, manager=manager, reason=reason))

    def assign_support_owner(self, customer_id: UUID, *, owner: str, reason: str) -> None:
        """Assign the person who owns the customer's service relationship."""
        self.handle(AssignSupportOwner(customer_id=customer_id, owner=owner, reason=reason))

    def assign_segment(self, customer_id: UUID, *, segment: str) -> None:
        """Put a customer in a market segment (e.g. ``smb``, ``public-sector``)."""
        self.handle(AssignSegment(customer_id=customer_id, segment=segment))

    def assign_grade(self, customer_id: UUID, *, grade: str) -> None:
        """Grade a customer by value (e.g. A, B, C)."""
        self.handle(AssignGrade(customer_id=customer_id, grade=grade))

    def grant_consent(self, customer_id: UUID, *, purpose: str, channel: Channel | str) -> None:
        """Record the customer's consent to marketing for a purpose on a channel."""
        self.handle(GrantConsent(customer_id=customer_id, purpose=purpose, channel=channel))

    def withdraw_consent(
        self, customer_id: UUID, *, purpose: str, channel: Channel | str, reason: str = ""
    ) -> None:
        """Record that the customer withdrew a marketing consent."""
        self.handle(
            WithdrawConsent(
                customer_id=customer_id, purpose=purpose, channel=channel, reason=reason
            )
        )

    def record_campaign_response(
        self,
        customer_id: UUID,
        *,
        campaign_id: str,
        response: str,
        channel: Channel | str,
        registered: bool = False,
    ) -> None:
        """Record how the customer answered a marketing campaign."""
        self.handle(
            RecordCampaignResponse(
                customer_id=customer_id,
                campaign_id=campaign_id,
                response=response,
                channel=channel,
                registered=registered,
            )
        )

    def record_satisfaction(
        self, customer_id: UUID, *, score: int, ticket_id: UUID | None = None, comment: str = ""
    ) -> SatisfactionClass:
        """Record a 1-5 score; returns the derived class (5 loyal, 3-4 at risk)."""
        return self.handle(
            RecordSatisfaction(
                customer_id=customer_id, score=score, ticket_id=ticket_id, comment=comment
            )
        )

    def open_ticket(
        self,
        customer_id: UUID,
        *,
        kind: TicketKind | str,
        subject: str,
        channel: Channel | str,
        priority: Priority | str = Priority.NORMAL,
        description: str = "",
    ) -> UUID:
        """Open a service ticket; its due time comes from the SLA policy and calendar."""
        return self.handle(
            OpenTicket(
                customer_id=customer_id,
                kind=kind,
                subject=subject,
                channel=channel,
                priority=priority,
                description=description,
            )
        )

    def assign_ticket(
        self,
        customer_id: UUID,
        ticket_id: UUID,
        *,
        assignee: str | None = None,
        department: str | None = None,
    ) -> None:
        """Give a ticket to a person, a department, or both."""
        self.handle(
            AssignTicket(
                customer_id=customer_id,
                ticket_id=ticket_id,
                assignee=assignee,
                department=department,
            )
        )

    def respond_to_ticket(
        self, customer_id: UUID, ticket_id: UUID, *, message: str, responder: str | None = None
    ) -> None:
        """Answer the customer on a ticket (the SLA's first response)."""
        self.handle(
            RespondToTicket(
                customer_id=customer_id, ticket_id=ticket_id, message=message, responder=responder
            )
        )

    def schedule_field_visit(
        self, customer_id: UUID, ticket_id: UUID, *, visit_at: datetime, engineer: str
    ) -> None:
        """Send an engineer to the customer for a ticket."""
        self.handle(
            ScheduleFieldVisit(
                customer_id=customer_id, ticket_id=ticket_id, visit_at=visit_at, engineer=engineer
            )
        )

    def escalate_ticket(
        self, customer_id: UUID, ticket_id: UUID, *, reason: str, escalated_to: str | None = None
    ) -> int:
        """Escalate one level; returns the new escalation level."""
        return self.handle(
            EscalateTicket(
                customer_id=customer_id,
                ticket_id=ticket_id,
                reason=reason,
                escalated_to=escalated_to,
            )
        )

    def resolve_ticket(
        self,
        customer_id: UUID,
        ticket_id: UUID,
        *,
        answer: str,
        knowledge_base_ref: str | None = None,
    ) -> None:
        """Resolve a ticket with the answer given (and the knowledge-base article, if any)."""
        self.handle(
            ResolveTicket(
                customer_id=customer_id,
                ticket_id=ticket_id,
                answer=answer,
                knowledge_base_ref=knowledge_base_ref,
            )
        )

    def reopen_ticket(self, customer_id: UUID, ticket_id: UUID, *, reason: str) -> None:
        """Reopen a resolved ticket; the SLA clock starts again. Closed tickets stay closed."""
        self.handle(ReopenTicket(customer_id=customer_id, ticket_id=ticket_id, reason=reason))

    def close_ticket(self, customer_id: UUID, ticket_id: UUID) -> None:
        """Close a resolved ticket for good."""
        self.handle(CloseTicket(customer_id=customer_id, ticket_id=ticket_id))

    def record_sla_breaches(self, customer_id: UUID, *, now: datetime | None = None) -> list[UUID]:
        """Record a breach for each clock of an open ticket of the customer past its due
        time (once per clock); returns the tickets with a breach recorded now."""
        return self.handle(RecordSlaBreaches(customer_id=customer_id, now=now))

    def complete_field_visit(
        self,
        customer_id: UUID,
        ticket_id: UUID,
        *,
        outcome: VisitOutcome | str,
        result: str,
        engineer: str | None = None,
    ) -> None:
        """Record that a scheduled engineer visit took place, with its outcome and result."""
        self.handle(
            CompleteFieldVisit(
                customer_id=customer_id,
                ticket_id=ticket_id,
                outcome=outcome,
                result=result,
                engineer=engineer,
            )
        )

    def wait_on_customer(self, customer_id: UUID, ticket_id: UUID, *, reason: str) -> None:
        """Put a ticket in the "waiting on customer" status (its resolution clock pauses if
        the SLA policy says so)."""
        self.handle(WaitOnCustomer(customer_id=customer_id, ticket_id=ticket_id, reason=reason))

    def record_customer_reply(self, customer_id: UUID, ticket_id: UUID, *, message: str) -> None:
        """The customer answered a ticket waiting on them: its resolution clock runs again."""
        self.handle(
            RecordCustomerReply(customer_id=customer_id, ticket_id=ticket_id, message=message)
        )


class AccountMethods(_Handles):
    """Commands on accounts: the account, contacts, pipeline, quotes, orders, money."""

    def open_account(
        self,
        *,
        customer_id: UUID,
        name: str,
        industry: str = "unspecified",
        size: CompanySize | str = CompanySize.SMALL,
        tier: AccountTier | str = AccountTier.STANDARD,
    ) -> UUID:
        """Open the commercial account of an active customer; returns the account id."""
        return self.handle(
            OpenAccount(customer_id=customer_id, name=name, industry=industry, size=size, tier=tier)
        )

    def reclassify_account(
        self,
        account_id: UUID,
        *,
        industry: str | None = None,
        size: CompanySize | str | None = None,
        tier: AccountTier | str | None = None,
    ) -> None:
        """Change an account's industry, size or tier."""
        self.handle(
            ReclassifyAccount(account_id=account_id, industry=industry, size=size, tier=tier)
        )

    def close_account(self, account_id: UUID, *, reason: str) -> None:
        """Close an account: nothing more is sold or ordered on it."""
        self.handle(CloseAccount(account_id=account_id, reason=reason))

    def designate_key_account(
        self, account_id: UUID, *, criterion: KeyAccountCriterion | str, note: str = ""
    ) -> None:
        """Make an account a key account, by the criterion it meets."""
        self.handle(DesignateKeyAccount(account_id=account_id, criterion=criterion, note=note))

    def revoke_key_account(self, account_id: UUID, *, reason: str) -> None:
        """Take the key-account status away from an account."""
        self.handle(RevokeKeyAccount(account_id=account_id, reason=reason))

    def add_account_contact(
        self, account_id: UUID, *, customer_id: UUID, role: str, decision_maker: bool = False
    ) -> None:
        """Add a person (a registered customer) to the account's contacts, with a role."""
        self.handle(
            AddAccountContact(
                account_id=account_id,
                customer_id=customer_id,
                role=role,
                decision_maker=decision_maker,
            )
        )

    def remove_account_contact(self, account_id: UUID, *, customer_id: UUID, reason: str) -> None:
        """Remove a person from the account's contacts."""
        self.handle(
            RemoveAccountContact(account_id=account_id, customer_id=customer_id, reason=reason)
        )

    def assign_account_manager(self, account_id: UUID, *, manager: str, reason: str) -> None:
        """Assign or hand over the account manager."""
        self.handle(AssignAccountManager(account_id=account_id, manager=manager, reason=reason))

    def set_credit_limit(self, account_id: UUID, *, limit: Money) -> None:
        """Set how much the account may owe: requesting confirmation of an order checks it."""
        self.handle(SetCreditLimit(account_id=account_id, limit=limit))

    def open_opportunity(
        self,
        account_id: UUID,
        *,
        name: str,
        expected_close: date,
        owner: str,
        amount: Money | None = None,
    ) -> UUID:
        """Open a sales opportunity on the account's pipeline; returns its id."""
        return self.handle(
            OpenOpportunity(
                account_id=account_id,
                name=name,
                expected_close=expected_close,
                owner=owner,
                amount=amount,
            )
        )

    def stage_opportunity(self, account_id: UUID, opportunity_id: UUID, *, stage: str) -> None:
        """Move an opportunity to a pipeline stage (staging two different ones commutes)."""
        self.handle(
            StageOpportunity(account_id=account_id, opportunity_id=opportunity_id, stage=stage)
        )

    def revise_opportunity(
        self,
        account_id: UUID,
        opportunity_id: UUID,
        *,
        amount: Money | None = None,
        expected_close: date | None = None,
        reason: str = "",
    ) -> None:
        """Change an opportunity's expected amount or close date, with a reason."""
        self.handle(
            ReviseOpportunity(
                account_id=account_id,
                opportunity_id=opportunity_id,
                amount=amount,
                expected_close=expected_close,
                reason=reason,
            )
        )

    def reassign_opportunity(
        self, account_id: UUID, opportunity_id: UUID, *, owner: str, reason: str
    ) -> None:
        """Give an open opportunity a new owner (a rep left, territories changed)."""
        self.handle(
            ReassignOpportunity(
                account_id=account_id, opportunity_id=opportunity_id, owner=owner, reason=reason
            )
        )

    def change_opportunity_currency(
        self, account_id: UUID, opportunity_id: UUID, *, amount: Money, reason: str
    ) -> None:
        """Change a deal's currency explicitly, with its amount in the new currency and the
        reason (a plain revision in another currency is refused)."""
        self.handle(
            ChangeOpportunityCurrency(
                account_id=account_id, opportunity_id=opportunity_id, amount=amount, reason=reason
            )
        )

    def win_opportunity(
        self, account_id: UUID, opportunity_id: UUID, *, reason: str, competitor: str | None = None
    ) -> None:
        """Close an opportunity as won (it needs an amount), with the reason and competitor."""
        self.handle(
            WinOpportunity(
                account_id=account_id,
                opportunity_id=opportunity_id,
                reason=reason,
                competitor=competitor,
            )
        )

    def lose_opportunity(
        self, account_id: UUID, opportunity_id: UUID, *, reason: str, competitor: str | None = None
    ) -> None:
        """Close an opportunity as lost, with the reason and the competitor who won."""
        self.handle(
            LoseOpportunity(
                account_id=account_id,
                opportunity_id=opportunity_id,
                reason=reason,
                competitor=competitor,
            )
        )

    def issue_quote(
        self,
        account_id: UUID,
        opportunity_id: UUID,
        *,
        amount: Money,
        valid_until: date,
        discount_pct: Decimal | int | str = Decimal(0),
    ) -> UUID:
        """Issue a quote; an opportunity has at most one active quote."""
        return self.handle(
            IssueQuote(
                account_id=account_id,
                opportunity_id=opportunity_id,
                amount=amount,
                valid_until=valid_until,
                discount_pct=discount_pct,
            )
        )

    def revise_quote(
        self,
        account_id: UUID,
        quote_id: UUID,
        *,
        amount: Money,
        valid_until: date,
        discount_pct: Decimal | int | str = Decimal(0),
    ) -> UUID:
        """Issue a new version of a quote; returns the new quote's id."""
        return self.handle(
            ReviseQuote(
                account_id=account_id,
                quote_id=quote_id,
                amount=amount,
                valid_until=valid_until,
                discount_pct=discount_pct,
            )
        )

    def accept_quote(self, account_id: UUID, quote_id: UUID) -> None:
        """Record that the customer accepted a quote: refused past its validity
        (``QuoteExpiredError``) or with a discount not approved
        (``DiscountApprovalRequiredError``)."""
        self.handle(AcceptQuote(account_id=account_id, quote_id=quote_id))

    def send_quote(self, account_id: UUID, quote_id: UUID, *, sent_to: str = "") -> None:
        """Record that a quote was sent to the customer (valid, discount approved if needed)."""
        self.handle(SendQuote(account_id=account_id, quote_id=quote_id, sent_to=sent_to))

    def withdraw_quote(self, account_id: UUID, quote_id: UUID, *, reason: str) -> None:
        """Withdraw an active quote, with the reason."""
        self.handle(WithdrawQuote(account_id=account_id, quote_id=quote_id, reason=reason))

    def approve_quote_discount(
        self, account_id: UUID, quote_id: UUID, *, approver: str, note: str = ""
    ) -> None:
        """Approve a quote's discount beyond the policy's threshold (not by the rep who asked)."""
        self.handle(
            ApproveQuoteDiscount(
                account_id=account_id, quote_id=quote_id, approver=approver, note=note
            )
        )

    def reject_quote_discount(
        self, account_id: UUID, quote_id: UUID, *, approver: str, reason: str
    ) -> None:
        """Reject a quote's discount beyond the policy's threshold, with the reason."""
        self.handle(
            RejectQuoteDiscount(
                account_id=account_id, quote_id=quote_id, approver=approver, reason=reason
            )
        )

    def expire_lapsed_quotes(self, account_id: UUID, *, as_of: date | None = None) -> list[UUID]:
        """Record the expiry of one account's quotes past their validity on ``as_of`` (default:
        the office's today); returns their ids. Idempotent."""
        return self.handle(ExpireLapsedQuotes(account_id=account_id, as_of=as_of))

    def expire_quote(self, account_id: UUID, quote_id: UUID) -> None:
        """Let a quote lapse (past its validity, or withdrawn)."""
        self.handle(ExpireQuote(account_id=account_id, quote_id=quote_id))

    def place_order(
        self,
        account_id: UUID,
        *,
        lines: list[OrderLine] | list[dict[str, Any]],
        opportunity_id: UUID | None = None,
        quote_id: UUID | None = None,
    ) -> UUID:
        """Place an order; it is promised only after ERP confirms it."""
        return self.handle(
            PlaceOrder(
                account_id=account_id, lines=lines, opportunity_id=opportunity_id, quote_id=quote_id
            )
        )

    def request_order_confirmation(
        self,
        account_id: UUID,
        order_id: UUID,
        *,
        credit_override: CreditOverride | dict[str, str] | None = None,
    ) -> None:
        """Ask ERP to confirm (credit, margin, availability); the Kafka relay carries it.

        Over the account's credit limit it is refused (:class:`CreditLimitExceededError`)
        unless ``credit_override={"supervisor": ..., "reason": ...}`` is given."""
        self.handle(
            RequestOrderConfirmation(
                account_id=account_id, order_id=order_id, credit_override=credit_override
            )
        )

    def confirm_order(self, account_id: UUID, order_id: UUID, *, erp_reference: str = "") -> None:
        """Record ERP's confirmation of an order, with its ERP reference: only under an ERP
        source system (``with crm.context(source_system="erp")``), after a request."""
        self.handle(
            ConfirmOrder(account_id=account_id, order_id=order_id, erp_reference=erp_reference)
        )

    def reject_order(
        self,
        account_id: UUID,
        order_id: UUID,
        *,
        reason: OrderRejectionReason | str,
        detail: str = "",
    ) -> None:
        """Record that ERP rejected an order, and why."""
        self.handle(
            RejectOrder(account_id=account_id, order_id=order_id, reason=reason, detail=detail)
        )

    def ship_order(self, account_id: UUID, order_id: UUID, *, shipment_ref: str = "") -> None:
        """Record that a confirmed order was shipped."""
        self.handle(ShipOrder(account_id=account_id, order_id=order_id, shipment_ref=shipment_ref))

    def deliver_order(self, account_id: UUID, order_id: UUID) -> None:
        """Record that a shipped order reached the customer."""
        self.handle(DeliverOrder(account_id=account_id, order_id=order_id))

    def return_order(self, account_id: UUID, order_id: UUID, *, reason: str) -> None:
        """Record that the customer sent a delivered order back."""
        self.handle(ReturnOrder(account_id=account_id, order_id=order_id, reason=reason))

    def cancel_order(self, account_id: UUID, order_id: UUID, *, reason: str) -> None:
        """Cancel an order before it ships (placed, awaiting ERP, or confirmed)."""
        self.handle(CancelOrder(account_id=account_id, order_id=order_id, reason=reason))

    def issue_invoice(
        self,
        account_id: UUID,
        *,
        amount: Money,
        order_id: UUID | None = None,
        due_date: date | None = None,
        reference: str = "",
        invoice_id: UUID | None = None,
    ) -> UUID:
        """Invoice the account (for an order, or on its own); returns the invoice id."""
        return self.handle(
            IssueInvoice(
                account_id=account_id,
                amount=amount,
                order_id=order_id,
                due_date=due_date,
                reference=reference,
                invoice_id=invoice_id,
            )
        )

    def receive_payment(
        self,
        account_id: UUID,
        *,
        amount: Money,
        invoice_id: UUID | None = None,
        reference: str = "",
    ) -> UUID:
        """Record a payment from the account (against an invoice, or on account); returns its id."""
        return self.handle(
            ReceivePayment(
                account_id=account_id, amount=amount, invoice_id=invoice_id, reference=reference
            )
        )

    def issue_credit_note(
        self,
        account_id: UUID,
        invoice_id: UUID,
        *,
        amount: Money,
        reason: str,
        reference: str = "",
        credit_note_id: UUID | None = None,
    ) -> UUID:
        """Credit an invoice after its order was returned or cancelled; returns the credit
        note's id."""
        return self.handle(
            IssueCreditNote(
                account_id=account_id,
                invoice_id=invoice_id,
                amount=amount,
                reason=reason,
                reference=reference,
                credit_note_id=credit_note_id,
            )
        )

    def issue_refund(
        self,
        account_id: UUID,
        invoice_id: UUID,
        *,
        amount: Money,
        reason: str,
        reference: str = "",
    ) -> UUID:
        """Pay money back against an invoice (what was paid beyond what is owed after credit
        notes); returns the refund's id."""
        return self.handle(
            IssueRefund(
                account_id=account_id,
                invoice_id=invoice_id,
                amount=amount,
                reason=reason,
                reference=reference,
            )
        )
