"""Typed errors: every rejected command raises one of these, and stores nothing.

Callers catch :class:`CRMError` for "the CRM said no", or a subclass to react to one
rule. Each error says what was wrong in CRM words, so it can be shown to a user.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID


class CRMError(Exception):
    """Base class of every error this library raises on purpose."""


class InvalidCommandError(CRMError, ValueError):
    """A command's arguments failed validation (wrong type, unknown value, bad format)."""

    def __init__(self, message: str, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or []


class UnknownValueError(InvalidCommandError):
    """A value is not one of those the configuration knows (a stage, a currency, a kind)."""


class NotFoundError(CRMError, LookupError):
    """No aggregate or entity with that id (or customer code) exists."""


class CustomerNotFoundError(NotFoundError):
    def __init__(self, ref: UUID | str) -> None:
        super().__init__(f"no customer {ref}")
        self.ref = ref


class AccountNotFoundError(NotFoundError):
    def __init__(self, ref: UUID | str) -> None:
        super().__init__(f"no account {ref}")
        self.ref = ref


class EntityNotFoundError(NotFoundError):
    """An opportunity, quote, order, ticket or contact is not on this aggregate."""

    def __init__(self, kind: str, entity_id: UUID | str, owner_id: UUID) -> None:
        super().__init__(f"no {kind} {entity_id} on {owner_id}")
        self.kind = kind
        self.entity_id = entity_id
        self.owner_id = owner_id


class DuplicateCustomerCodeError(CRMError):
    def __init__(self, code: str) -> None:
        super().__init__(f"customer code {code!r} is already taken")
        self.code = code


class ConcurrencyConflictError(CRMError):
    """Someone else changed the same thing at the same time; reload and decide again."""

    def __init__(self, aggregate_id: UUID, detail: str = "") -> None:
        msg = f"concurrent change to {aggregate_id}"
        super().__init__(f"{msg}: {detail}" if detail else msg)
        self.aggregate_id = aggregate_id


class RuleViolationError(CRMError):
    """A business rule forbids this command in the aggregate's current state."""


class InactiveCustomerError(RuleViolationError):
    pass


class AccountClosedError(RuleViolationError):
    pass


class LifecycleTransitionError(RuleViolationError):
    def __init__(self, from_stage: str, to_stage: str) -> None:
        super().__init__(f"lifecycle stage {from_stage!r} cannot move to {to_stage!r}")
        self.from_stage = from_stage
        self.to_stage = to_stage


class ConsentRequiredError(RuleViolationError):
    def __init__(self, purpose: str, channel: str) -> None:
        super().__init__(f"no marketing consent for purpose {purpose!r} on channel {channel!r}")
        self.purpose = purpose
        self.channel = channel


class OpenComplaintError(RuleViolationError):
    """No marketing to a customer whose complaint is still open."""


class TicketStateError(RuleViolationError):
    """The ticket is not in a state that allows this step (e.g. reopening an open ticket)."""


class SatisfactionNotAllowedError(RuleViolationError):
    pass


class OpportunityClosedError(RuleViolationError):
    pass


class PipelineRuleError(RuleViolationError):
    """A pipeline rule was broken: e.g. closing won without an amount."""


class ActiveQuoteExistsError(RuleViolationError):
    def __init__(self, opportunity_id: UUID, quote_id: UUID) -> None:
        super().__init__(
            f"opportunity {opportunity_id} already has active quote {quote_id}; "
            "revise or expire it first"
        )
        self.opportunity_id = opportunity_id
        self.quote_id = quote_id


class QuoteStateError(RuleViolationError):
    pass


class OrderStateError(RuleViolationError):
    pass


class ContactRoleError(RuleViolationError):
    pass
