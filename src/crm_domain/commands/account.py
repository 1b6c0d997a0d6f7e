"""Commands on an account: the account itself, its contacts, pipeline, quotes, orders, money.

Each class is one command: its fields (validated), its concurrency policy, and its
handler (``decide``), which calls the :class:`~crm_domain.account.Account` method that
holds the rule. ``CRM`` has a typed method of the same name for each.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, ClassVar
from uuid import UUID

from crm_domain.account import Account
from crm_domain.commands.base import (
    COMMUTES,
    AccountCommand,
    Command,
    Concurrency,
    conflicts_on,
)
from crm_domain.context import current_context
from crm_domain.credit import CreditOverride
from crm_domain.errors import InactiveCustomerError
from crm_domain.eventmodel import Aggregate
from crm_domain.quoting import office_date
from crm_domain.values import (
    AccountTier,
    CompanySize,
    KeyAccountCriterion,
    Money,
    OrderLine,
    OrderRejectionReason,
    ShortText,
)

if TYPE_CHECKING:
    from crm_domain.application import CRM


def office_today(crm: CRM) -> date:
    """The office's date (its calendar's zone) at the command's business time: quotes are
    valid up to and including their ``valid_until`` day there."""
    return office_date(crm._now(), crm.sla.calendar.timezone)


# ===== the account ======================================================================
class OpenAccount(Command[UUID]):
    """Open the commercial account of an active customer; returns the account id."""

    command_name = "open_account"
    aggregate = Account
    creates = True

    customer_id: UUID
    name: str
    industry: str = "unspecified"
    size: CompanySize = CompanySize.SMALL
    tier: AccountTier = AccountTier.STANDARD

    def create(self, crm: CRM) -> Aggregate:
        # After the command-id lookup: a repeat returns the first result.
        if not crm.customer(self.customer_id).active:
            raise InactiveCustomerError(f"customer {self.customer_id} is deactivated")
        return Account.open(
            customer_id=self.customer_id,
            name=self.name,
            industry=self.industry,
            size=self.size,
            tier=self.tier,
        )


class ReclassifyAccount(AccountCommand[None]):
    """Change an account's industry, size or tier."""

    command_name = "reclassify_account"

    industry: str | None = None
    size: CompanySize | None = None
    tier: AccountTier | None = None

    def decide(self, account: Account, crm: CRM) -> None:
        account.reclassify(industry=self.industry, size=self.size, tier=self.tier)


class CloseAccount(AccountCommand[None]):
    """Close an account: nothing more is sold or ordered on it."""

    command_name = "close_account"

    reason: str

    def decide(self, account: Account, crm: CRM) -> None:
        account.close(reason=self.reason)


class DesignateKeyAccount(AccountCommand[None]):
    """Make an account a key account, by the criterion it meets."""

    command_name = "designate_key_account"

    criterion: KeyAccountCriterion
    note: str = ""

    def decide(self, account: Account, crm: CRM) -> None:
        account.designate_key_account(criterion=self.criterion, note=self.note)


class RevokeKeyAccount(AccountCommand[None]):
    """Take the key-account status away from an account."""

    command_name = "revoke_key_account"

    reason: str

    def decide(self, account: Account, crm: CRM) -> None:
        account.revoke_key_account(reason=self.reason)


class AddAccountContact(AccountCommand[None]):
    """Add a person (a registered customer) to the account's contacts, with a role."""

    command_name = "add_account_contact"
    concurrency: ClassVar[Concurrency] = conflicts_on("customer_id")

    customer_id: UUID
    role: str
    decision_maker: bool = False

    def check(self, crm: CRM) -> None:
        crm.customer(self.customer_id)

    def decide(self, account: Account, crm: CRM) -> None:
        account.add_contact(
            customer_id=self.customer_id, role=self.role, decision_maker=self.decision_maker
        )


class RemoveAccountContact(AccountCommand[None]):
    """Remove a person from the account's contacts."""

    command_name = "remove_account_contact"
    concurrency: ClassVar[Concurrency] = conflicts_on("customer_id")

    customer_id: UUID
    reason: str

    def decide(self, account: Account, crm: CRM) -> None:
        account.remove_contact(customer_id=self.customer_id, reason=self.reason)


class AssignAccountManager(AccountCommand[None]):
    """Assign or hand over the account manager."""

    command_name = "assign_account_manager"

    manager: str
    reason: str

    def decide(self, account: Account, crm: CRM) -> None:
        account.assign_manager(manager=self.manager, reason=self.reason)


class SetCreditLimit(AccountCommand[None]):
    """Set how much the account may owe (checked when an order's confirmation is requested:
    unpaid invoices + confirmed unshipped orders + the order must stay within it)."""

    command_name = "set_credit_limit"

    limit: Money

    def decide(self, account: Account, crm: CRM) -> None:
        account.set_credit_limit(limit=self.limit)


# ===== pipeline =========================================================================
class OpenOpportunity(AccountCommand[UUID]):
    """Open a sales opportunity on the account's pipeline; returns its id."""

    command_name = "open_opportunity"
    concurrency: ClassVar[Concurrency] = COMMUTES

    name: str
    expected_close: date
    owner: str
    amount: Money | None = None

    def decide(self, account: Account, crm: CRM) -> UUID:
        return account.open_opportunity(
            name=self.name,
            expected_close=self.expected_close,
            owner=self.owner,
            amount=self.amount,
            pipeline=crm.pipeline,
        )


class OpportunityCommand(AccountCommand[None]):
    """A step on one opportunity: concurrent steps on other opportunities commute."""

    concurrency: ClassVar[Concurrency] = conflicts_on("opportunity_id")

    opportunity_id: UUID


class StageOpportunity(OpportunityCommand):
    """Move an opportunity to a pipeline stage."""

    command_name = "stage_opportunity"

    stage: str

    def decide(self, account: Account, crm: CRM) -> None:
        account.stage_opportunity(self.opportunity_id, stage=self.stage, pipeline=crm.pipeline)


class ReviseOpportunity(OpportunityCommand):
    """Change an opportunity's expected amount or close date, with a reason."""

    command_name = "revise_opportunity"

    amount: Money | None = None
    expected_close: date | None = None
    reason: str = ""

    def decide(self, account: Account, crm: CRM) -> None:
        account.revise_opportunity(
            self.opportunity_id,
            amount=self.amount,
            expected_close=self.expected_close,
            reason=self.reason,
        )


class ChangeOpportunityCurrency(OpportunityCommand):
    """Change a deal's currency explicitly, with its amount in the new currency and the reason
    (a plain revision keeps the currency)."""

    command_name = "change_opportunity_currency"

    amount: Money
    reason: str

    def decide(self, account: Account, crm: CRM) -> None:
        account.change_opportunity_currency(
            self.opportunity_id, amount=self.amount, reason=self.reason
        )


class ReassignOpportunity(OpportunityCommand):
    """Give an open opportunity a new owner (a rep left, territories changed)."""

    command_name = "reassign_opportunity"

    owner: str
    reason: str

    def decide(self, account: Account, crm: CRM) -> None:
        account.reassign_opportunity(self.opportunity_id, owner=self.owner, reason=self.reason)


class WinOpportunity(OpportunityCommand):
    """Close an opportunity as won (it needs an amount), with the reason and competitor."""

    command_name = "win_opportunity"

    reason: str
    competitor: str | None = None

    def decide(self, account: Account, crm: CRM) -> None:
        account.win_opportunity(
            self.opportunity_id,
            reason=self.reason,
            competitor=self.competitor,
            pipeline=crm.pipeline,
            as_of=office_today(crm),
        )


class LoseOpportunity(OpportunityCommand):
    """Close an opportunity as lost, with the reason and the competitor who won."""

    command_name = "lose_opportunity"

    reason: str
    competitor: str | None = None

    def decide(self, account: Account, crm: CRM) -> None:
        account.lose_opportunity(
            self.opportunity_id,
            reason=self.reason,
            competitor=self.competitor,
            pipeline=crm.pipeline,
        )


# ===== quotes ===========================================================================
class IssueQuote(AccountCommand[UUID]):
    """Issue a quote for an opportunity (at most one active quote each); returns its id."""

    command_name = "issue_quote"
    concurrency: ClassVar[Concurrency] = conflicts_on("opportunity_id")

    opportunity_id: UUID
    amount: Money
    valid_until: date
    discount_pct: Decimal = Decimal(0)

    def decide(self, account: Account, crm: CRM) -> UUID:
        return account.issue_quote(
            self.opportunity_id,
            amount=self.amount,
            valid_until=self.valid_until,
            discount_pct=self.discount_pct,
            as_of=office_today(crm),
            policy=crm.settings.quotes,
            requested_by=current_context().actor,
        )


class ReviseQuote(AccountCommand[UUID]):
    """Issue a new version of a quote; returns the new quote's id."""

    command_name = "revise_quote"

    quote_id: UUID
    amount: Money
    valid_until: date
    discount_pct: Decimal = Decimal(0)

    def decide(self, account: Account, crm: CRM) -> UUID:
        return account.revise_quote(
            self.quote_id,
            amount=self.amount,
            valid_until=self.valid_until,
            discount_pct=self.discount_pct,
            as_of=office_today(crm),
            policy=crm.settings.quotes,
            requested_by=current_context().actor,
        )


class AcceptQuote(AccountCommand[None]):
    """Record that the customer accepted a quote (valid today, its discount approved if the
    policy asks for it)."""

    command_name = "accept_quote"

    quote_id: UUID

    def decide(self, account: Account, crm: CRM) -> None:
        account.accept_quote(self.quote_id, as_of=office_today(crm))


class SendQuote(AccountCommand[None]):
    """Record that a quote was sent to the customer (valid today, its discount approved if the
    policy asks for it)."""

    command_name = "send_quote"

    quote_id: UUID
    sent_to: str = ""

    def decide(self, account: Account, crm: CRM) -> None:
        account.send_quote(self.quote_id, sent_to=self.sent_to, as_of=office_today(crm))


class WithdrawQuote(AccountCommand[None]):
    """Withdraw an active quote (e.g. before winning the deal on other terms), with a reason."""

    command_name = "withdraw_quote"

    quote_id: UUID
    reason: str

    def decide(self, account: Account, crm: CRM) -> None:
        account.withdraw_quote(self.quote_id, reason=self.reason)


class ApproveQuoteDiscount(AccountCommand[None]):
    """Approve a quote's discount beyond the policy's threshold (not by the rep who asked)."""

    command_name = "approve_quote_discount"

    quote_id: UUID
    approver: str
    note: str = ""

    def decide(self, account: Account, crm: CRM) -> None:
        account.approve_quote_discount(self.quote_id, approver=self.approver, note=self.note)


class RejectQuoteDiscount(AccountCommand[None]):
    """Reject a quote's discount beyond the policy's threshold, with the reason."""

    command_name = "reject_quote_discount"

    quote_id: UUID
    approver: str
    reason: str

    def decide(self, account: Account, crm: CRM) -> None:
        account.reject_quote_discount(self.quote_id, approver=self.approver, reason=self.reason)


class ExpireLapsedQuotes(AccountCommand[list[UUID]]):
    """Record the expiry of the account's active quotes past their validity; returns their ids
    (idempotent: run it as often as a scheduler likes)."""

    command_name = "expire_lapsed_quotes"
    concurrency: ClassVar[Concurrency] = COMMUTES

    #: The office date to judge by (default: today at the command's business time).
    as_of: date | None = None

    def decide(self, account: Account, crm: CRM) -> list[UUID]:
        return account.expire_lapsed_quotes(as_of=self.as_of or office_today(crm))


class ExpireQuote(AccountCommand[None]):
    """Let a quote lapse (past its validity, or withdrawn)."""

    command_name = "expire_quote"

    quote_id: UUID

    def decide(self, account: Account, crm: CRM) -> None:
        account.expire_quote(self.quote_id)


# ===== orders ===========================================================================
class PlaceOrder(AccountCommand[UUID]):
    """Place an order; it is promised only after ERP confirms it. Returns its id."""

    command_name = "place_order"
    concurrency: ClassVar[Concurrency] = COMMUTES

    lines: list[OrderLine]
    opportunity_id: UUID | None = None
    quote_id: UUID | None = None

    def decide(self, account: Account, crm: CRM) -> UUID:
        return account.place_order(
            lines=self.lines, opportunity_id=self.opportunity_id, quote_id=self.quote_id
        )


class OrderCommand(AccountCommand[None]):
    """A step on one order: concurrent steps on other orders commute."""

    concurrency: ClassVar[Concurrency] = conflicts_on("order_id")

    order_id: UUID


class RequestOrderConfirmation(OrderCommand):
    """Ask ERP to confirm an order (credit, margin, availability); the Kafka relay carries it.

    Refused over the account's credit limit unless ``credit_override`` (a supervisor and a
    reason) is given."""

    command_name = "request_order_confirmation"

    credit_override: CreditOverride | None = None

    def decide(self, account: Account, crm: CRM) -> None:
        account.request_order_confirmation(self.order_id, credit_override=self.credit_override)


class ConfirmOrder(OrderCommand):
    """Record ERP's confirmation of an order, with its ERP reference; only from a source
    system the settings name as ERP (``erp_sources``), after a confirmation request."""

    command_name = "confirm_order"

    erp_reference: str = ""

    def decide(self, account: Account, crm: CRM) -> None:
        account.confirm_order(
            self.order_id,
            erp_reference=self.erp_reference,
            source_system=current_context().source_system,
            erp_sources=crm.settings.erp_sources,
        )


class RejectOrder(OrderCommand):
    """Record that ERP rejected an order, and why; only from an ERP source system, after a
    confirmation request."""

    command_name = "reject_order"

    reason: OrderRejectionReason
    detail: str = ""

    def decide(self, account: Account, crm: CRM) -> None:
        account.reject_order(
            self.order_id,
            reason=self.reason,
            detail=self.detail,
            source_system=current_context().source_system,
            erp_sources=crm.settings.erp_sources,
        )


class ShipOrder(OrderCommand):
    """Record that a confirmed order was shipped."""

    command_name = "ship_order"

    shipment_ref: str = ""

    def decide(self, account: Account, crm: CRM) -> None:
        account.ship_order(self.order_id, shipment_ref=self.shipment_ref)


class DeliverOrder(OrderCommand):
    """Record that a shipped order reached the customer."""

    command_name = "deliver_order"

    def decide(self, account: Account, crm: CRM) -> None:
        account.deliver_order(self.order_id)


class ReturnOrder(OrderCommand):
    """Record that the customer sent a delivered order back."""

    command_name = "return_order"

    reason: str

    def decide(self, account: Account, crm: CRM) -> None:
        account.return_order(self.order_id, reason=self.reason)


class CancelOrder(OrderCommand):
    """Cancel an order before it ships (placed, awaiting ERP, or confirmed), with the reason."""

    command_name = "cancel_order"

    reason: ShortText

    def decide(self, account: Account, crm: CRM) -> None:
        account.cancel_order(self.order_id, reason=self.reason)


# ===== money ============================================================================
class IssueInvoice(AccountCommand[UUID]):
    """Invoice the account (for an order, or on its own); returns the invoice id."""

    command_name = "issue_invoice"
    concurrency: ClassVar[Concurrency] = COMMUTES

    amount: Money
    order_id: UUID | None = None
    due_date: date | None = None
    reference: str = ""
    #: Give the invoice a known id (e.g. ERP's), else a new one.
    invoice_id: UUID | None = None

    def decide(self, account: Account, crm: CRM) -> UUID:
        return account.issue_invoice(
            amount=self.amount,
            order_id=self.order_id,
            due_date=self.due_date,
            reference=self.reference,
            invoice_id=self.invoice_id,
        )


class ReceivePayment(AccountCommand[UUID]):
    """Record a payment from the account (against an invoice, or on account); returns its id."""

    command_name = "receive_payment"
    concurrency: ClassVar[Concurrency] = COMMUTES

    amount: Money
    invoice_id: UUID | None = None
    reference: str = ""

    def decide(self, account: Account, crm: CRM) -> UUID:
        return account.receive_payment(
            amount=self.amount, invoice_id=self.invoice_id, reference=self.reference
        )


class IssueCreditNote(AccountCommand[UUID]):
    """Credit an invoice after its order was returned or cancelled (or an invoice without an
    order), at most what is not yet credited; returns the credit note's id."""

    command_name = "issue_credit_note"
    concurrency: ClassVar[Concurrency] = conflicts_on("invoice_id")

    invoice_id: UUID
    amount: Money
    reason: ShortText
    reference: str = ""
    #: Give the credit note a known id (e.g. ERP's), else a new one.
    credit_note_id: UUID | None = None

    def decide(self, account: Account, crm: CRM) -> UUID:
        return account.issue_credit_note(
            self.invoice_id,
            amount=self.amount,
            reason=self.reason,
            reference=self.reference,
            credit_note_id=self.credit_note_id,
        )


class IssueRefund(AccountCommand[UUID]):
    """Pay money back against an invoice, at most what was paid beyond what is owed after
    credit notes; returns the refund's id."""

    command_name = "issue_refund"
    concurrency: ClassVar[Concurrency] = conflicts_on("invoice_id")

    invoice_id: UUID
    amount: Money
    reason: ShortText
    reference: str = ""

    def decide(self, account: Account, crm: CRM) -> UUID:
        return account.issue_refund(
            self.invoice_id, amount=self.amount, reason=self.reason, reference=self.reference
        )
