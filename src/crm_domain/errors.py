"""Every error crm-core raises on purpose, as one tree.

Catch :class:`CRMError` for anything of ours, :class:`RejectedError` for "the CRM said
no" (the request can be fixed and sent again), or :class:`InfrastructureError` for
"something around the CRM failed" (a store, a broker, a read model, the configuration).
Messages speak CRM, naming the command, the customer or the setting, never an internal
class, so they can be shown to a user as they are::

    CRMError
    ├── RejectedError                    the CRM said no; nothing was stored
    │   ├── InvalidCommandError          arguments failed validation (also ValueError)
    │   │   ├── UnknownValueError        a stage, currency, kind... the configuration lacks
    │   │   └── MalformedRowError        an imported file's row (named by file and line)
    │   ├── NotFoundError                no such customer, account or entity (LookupError)
    │   │   ├── CustomerNotFoundError
    │   │   ├── AccountNotFoundError
    │   │   └── EntityNotFoundError      an opportunity, quote, order, ticket, contact
    │   ├── RuleViolationError           a business rule forbids it in the current state
    │   │   ├── InactiveCustomerError, AccountClosedError, LifecycleTransitionError,
    │   │   ├── ConsentRequiredError, OpenComplaintError, TicketStateError,
    │   │   ├── SatisfactionNotAllowedError, OpportunityClosedError, PipelineRuleError,
    │   │   ├── ActiveQuoteExistsError, ContactRoleError
    │   │   ├── QuoteStateError          the quote's state forbids the step
    │   │   │   ├── QuoteExpiredError    accepting (or sending) it past its validity
    │   │   │   ├── AcceptedQuoteExistsError  quoting again after acceptance, unrevised
    │   │   │   ├── DiscountApprovalRequiredError  discount beyond threshold, not approved
    │   │   │   └── DiscountApprovalError  no approval pending, or self-approval
    │   │   ├── UnresolvedQuoteError     won while a quote is neither accepted nor withdrawn
    │   │   │                            (a PipelineRuleError)
    │   │   ├── CurrencyChangeError      a revision in another currency: change it explicitly
    │   │   ├── OrderStateError
    │   │   │   └── ErpConfirmationError     only ERP confirms or rejects, after a request
    │   │   │       ├── NotErpSourceError    the command's source system is not an ERP one
    │   │   │       └── ConfirmationNotRequestedError  no confirmation request before it
    │   │   ├── CreditCheckError         requesting confirmation refused on credit grounds
    │   │   │   ├── CreditLimitExceededError  exposure would exceed the credit limit
    │   │   │   └── CreditCurrencyError  exposure in a currency other than the limit's
    │   │   └── CreditAmountError        a credit note or refund beyond what it may cover
    │   ├── ConflictError                it clashes with what is already stored
    │   │   ├── ConcurrencyConflictError someone changed the same thing at the same time
    │   │   ├── DuplicateCustomerCodeError
    │   │   └── IdempotencyKeyReusedError a command id reused for a different request
    │   ├── InboundMessageError          a Kafka message that cannot become a command
    │   └── PermissionDeniedError        the access policy does not let this actor do it
    └── InfrastructureError              not the request's fault: setup or a service
        ├── ConfigurationError           a setting, store URL or routing file is wrong
        │   │                            (also ValueError)
        │   └── MissingDependencyError   an optional extra is not installed
        ├── StoreError                   the event store or read-model database
        │   ├── StoreUnavailableError    unreachable (retry later)
        │   ├── StoreNotFoundError       a read-only command named a store that isn't there
        │   ├── StoreFullError           the database's disk (or size limit) is full
        │   ├── CorruptHistoryError      stored events that cannot be replayed
        │   │   ├── InvalidStoredEventError  one logged event's stored JSON is invalid
        │   │   └── TamperDetectedError  the hash chain shows an event modified, deleted,
        │   │                            inserted or reordered, or a snapshot edited
        │   └── UnchainedHistoryError    events stored before the hash chain began
        ├── AuditEvidenceError           an export, proof or digest does not verify
        ├── BrokerError                  Kafka
        │   ├── BrokerUnavailableError   unreachable or not acknowledging (retry later)
        │   ├── MissingTopicError
        │   └── PublishError             the broker refused a message
        └── ProjectionError              read models
            ├── UnknownReadModelError    (also a ConfigurationError)
            ├── UnhandledEventError      a read model cannot apply an event
            ├── ReadModelParkedError     retry/skip asked of a read model in the wrong state
            ├── ReadModelRebuildingError read models a running rebuild holds
            └── ProjectionLagError       read models did not catch up in time

:func:`invalid` is the one place where pydantic's ``ValidationError`` becomes an
:class:`InvalidCommandError`; :func:`problems` is the one way its problems are worded (for
the other errors that wrap one: routing tables, stored events, inbound messages). Exit codes
are not attributes of these classes: the ``crm`` command line maps them
(``adapters.exit_codes``); a library has no business exiting.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from uuid import UUID

if TYPE_CHECKING:
    from pydantic import ValidationError


class CRMError(Exception):
    """Base class of every error this library raises on purpose."""


# ===== rejected: the CRM said no ========================================================
class RejectedError(CRMError):
    """The CRM refused the request; nothing was stored. Fix the request and send it again."""


class InvalidCommandError(RejectedError, ValueError):
    """A command's arguments failed validation (wrong type, unknown value, bad format).

    ``errors`` lists each problem as pydantic reports it (``loc``, ``msg``, ``type``), so
    a form or an API can point at the field.
    """

    def __init__(self, message: str, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or []

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (str(self), self.errors)


class UnknownValueError(InvalidCommandError):
    """A value is not one of those the configuration knows (a stage, a currency, a kind)."""


class MalformedRowError(InvalidCommandError):
    """A row of an imported file cannot become commands: unreadable, or refused by a rule.

    ``file`` and ``line`` name it, ``reason`` says why; nothing of the row's batch was
    stored (earlier batches were, and a re-run skips them).
    """

    def __init__(self, file: str, line: int, reason: str) -> None:
        super().__init__(f"{file}:{line}: {reason}")
        self.file = file
        self.line = line
        self.reason = reason

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.file, self.line, self.reason)


def problems(exc: ValidationError, limit: int | None = None) -> str:
    """pydantic's problems in one line: ``field.path: message; ...`` (the first ``limit``)."""
    errors = exc.errors(include_url=False)[:limit]
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'value'}: {err['msg']}" for err in errors
    )


def error_details(exc: ValidationError) -> list[dict[str, Any]]:
    """pydantic's problems as plain dicts (``loc``, ``msg``, ``type``...) for an API to show."""
    return [
        {k: v for k, v in e.items() if k != "ctx"} | _ctx(e) for e in exc.errors(include_url=False)
    ]


def invalid(exc: ValidationError, what: str | None = None) -> InvalidCommandError:
    """Turn pydantic's error into ours, naming the command (``what``) and each bad field.

    ``what`` is the CRM name of the thing validated, e.g. ``"register_customer"``; by
    default the model's title, which for a command or value model is its CRM name too.
    """
    # Only unknown choices (a channel, a kind...): the more precise UnknownValueError.
    only_choices = all(e["type"] == "enum" for e in exc.errors(include_url=False))
    cls = UnknownValueError if only_choices else InvalidCommandError
    return cls(f"invalid {what or exc.title}: {problems(exc)}", errors=error_details(exc))


def _ctx(err: Any) -> dict[str, Any]:
    # pydantic's ctx may hold the raised exception object: keep only printable values.
    ctx = err.get("ctx")
    return {"ctx": {k: str(v) for k, v in ctx.items()}} if ctx else {}


class NotFoundError(RejectedError, LookupError):
    """No aggregate or entity with that id (or customer code) exists."""


class CustomerNotFoundError(NotFoundError):
    """No customer with that id or customer code."""

    def __init__(self, ref: UUID | str) -> None:
        super().__init__(f"no customer {ref}")
        self.ref = ref

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.ref,)


class AccountNotFoundError(NotFoundError):
    """No account with that id."""

    def __init__(self, ref: UUID | str) -> None:
        super().__init__(f"no account {ref}")
        self.ref = ref

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.ref,)


class EntityNotFoundError(NotFoundError):
    """An opportunity, quote, order, ticket or contact is not on this aggregate."""

    def __init__(self, kind: str, entity_id: UUID | str, owner_id: UUID) -> None:
        super().__init__(f"no {kind} {entity_id} on {owner_id}")
        self.kind = kind
        self.entity_id = entity_id
        self.owner_id = owner_id

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.kind, self.entity_id, self.owner_id)


class RuleViolationError(RejectedError):
    """A business rule forbids this command in the aggregate's current state."""


class InactiveCustomerError(RuleViolationError):
    """The customer is deactivated: reactivate them first."""


class AccountClosedError(RuleViolationError):
    """The account is closed: nothing more can be sold or ordered on it."""


class LifecycleTransitionError(RuleViolationError):
    """The lifecycle model does not allow moving between these two stages."""

    def __init__(self, from_stage: str, to_stage: str) -> None:
        super().__init__(f"lifecycle stage {from_stage!r} cannot move to {to_stage!r}")
        self.from_stage = from_stage
        self.to_stage = to_stage

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.from_stage, self.to_stage)


class ConsentRequiredError(RuleViolationError):
    """Marketing needs the customer's consent for that purpose on that channel."""

    def __init__(self, purpose: str, channel: str) -> None:
        super().__init__(f"no marketing consent for purpose {purpose!r} on channel {channel!r}")
        self.purpose = purpose
        self.channel = channel

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.purpose, self.channel)


class OpenComplaintError(RuleViolationError):
    """No marketing to a customer whose complaint is still open."""


class TicketStateError(RuleViolationError):
    """The ticket is not in a state that allows this step (e.g. reopening an open ticket)."""


class SatisfactionNotAllowedError(RuleViolationError):
    """Satisfaction is asked only about a resolved ticket of this customer."""


class OpportunityClosedError(RuleViolationError):
    """The opportunity is won or lost: it takes no more stages, quotes or revisions."""


class PipelineRuleError(RuleViolationError):
    """A pipeline rule was broken: e.g. closing won without an amount."""


class ActiveQuoteExistsError(RuleViolationError):
    """An opportunity has at most one active quote."""

    def __init__(self, opportunity_id: UUID, quote_id: UUID) -> None:
        super().__init__(
            f"opportunity {opportunity_id} already has active quote {quote_id}; "
            "revise or expire it first"
        )
        self.opportunity_id = opportunity_id
        self.quote_id = quote_id

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.opportunity_id, self.quote_id)


class QuoteStateError(RuleViolationError):
    """The quote is not in a state that allows this step."""


class QuoteExpiredError(QuoteStateError):
    """The quote is past its validity (``valid_until``, inclusive) on ``as_of``: it can no
    longer be accepted or sent; issue a new quote."""

    def __init__(self, quote_id: UUID, valid_until: object, as_of: object) -> None:
        super().__init__(
            f"quote {quote_id} was valid until {valid_until}; on {as_of} it is expired "
            "and cannot be accepted: issue a new quote"
        )
        self.quote_id = quote_id
        self.valid_until = valid_until
        self.as_of = as_of

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.quote_id, self.valid_until, self.as_of)


class AcceptedQuoteExistsError(QuoteStateError):
    """The opportunity's quote was accepted: no new quote until the deal is revised."""

    def __init__(self, opportunity_id: UUID, quote_id: UUID) -> None:
        super().__init__(
            f"opportunity {opportunity_id} has accepted quote {quote_id}; "
            "revise the deal before quoting it again"
        )
        self.opportunity_id = opportunity_id
        self.quote_id = quote_id

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.opportunity_id, self.quote_id)


class DiscountApprovalRequiredError(QuoteStateError):
    """The quote's discount is beyond the policy's threshold and is not approved (requested
    or rejected): it cannot be sent or accepted."""

    def __init__(
        self, quote_id: UUID, discount_pct: object, threshold_pct: object, approval: str
    ) -> None:
        super().__init__(
            f"quote {quote_id} has a {discount_pct}% discount, beyond the {threshold_pct}% "
            f"threshold, and its approval is {approval}: it needs an approved discount first"
        )
        self.quote_id = quote_id
        self.discount_pct = discount_pct
        self.threshold_pct = threshold_pct
        self.approval = approval

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.quote_id, self.discount_pct, self.threshold_pct, self.approval)


class DiscountApprovalError(QuoteStateError):
    """The discount approval step is not possible: no approval is pending on the quote, or
    the approver is the rep who asked for it."""


class UnresolvedQuoteError(PipelineRuleError):
    """An opportunity is won while a quote on it is still active: accept or withdraw it
    first, so the booked amount is the one the customer accepted."""

    def __init__(self, opportunity_id: UUID, quote_id: UUID) -> None:
        super().__init__(
            f"opportunity {opportunity_id} still has active quote {quote_id}; "
            "accept or withdraw it before closing the deal won"
        )
        self.opportunity_id = opportunity_id
        self.quote_id = quote_id

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.opportunity_id, self.quote_id)


class CurrencyChangeError(RuleViolationError):
    """A revision or quote would switch the deal's currency: change it explicitly, with a
    reason (``change_opportunity_currency``)."""

    def __init__(self, opportunity_id: UUID, currency: str, other: str) -> None:
        super().__init__(
            f"opportunity {opportunity_id} is in {currency}, not {other}; change its currency "
            "explicitly, with a reason (change_opportunity_currency)"
        )
        self.opportunity_id = opportunity_id
        self.currency = currency
        self.other = other

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.opportunity_id, self.currency, self.other)


class OrderStateError(RuleViolationError):
    """The order is not in a state that allows this step (e.g. shipping before ERP confirms)."""


class ErpConfirmationError(OrderStateError):
    """Only ERP confirms or rejects an order, and only one it was asked to confirm.

    The configuration names the source systems that count as ERP (``erp_sources``); the
    command's source system is the context's (``crm.context(source_system=...)``).
    """


class NotErpSourceError(ErpConfirmationError):
    """A confirmation or rejection came from a source system that is not ERP (e.g. the
    CRM's own front end); nothing was stored."""

    def __init__(
        self, order_id: UUID | str, step: str, source_system: str, erp_sources: list[str]
    ) -> None:
        super().__init__(
            f"cannot {step} order {order_id} from source system {source_system!r}: only ERP "
            f"({', '.join(repr(s) for s in erp_sources)}) confirms or rejects orders"
        )
        self.order_id = order_id
        self.step = step
        self.source_system = source_system
        self.erp_sources = erp_sources

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.order_id, self.step, self.source_system, self.erp_sources)


class ConfirmationNotRequestedError(ErpConfirmationError):
    """ERP answered for an order whose confirmation was never requested; nothing was stored."""

    def __init__(self, order_id: UUID | str, step: str) -> None:
        super().__init__(
            f"cannot {step} order {order_id}: its confirmation was not requested "
            "(request_order_confirmation first)"
        )
        self.order_id = order_id
        self.step = step

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.order_id, self.step)


class CreditCheckError(RuleViolationError):
    """Confirmation of an order cannot be requested on credit grounds; a supervisor override
    with a reason lets it through (and is recorded)."""


class CreditLimitExceededError(CreditCheckError):
    """The order would take the account's exposure over its credit limit.

    Exposure is the unpaid invoices, plus the confirmed orders not yet shipped (less what
    was already invoiced of them), plus this order; each figure is an attribute (Money).
    """

    def __init__(
        self,
        order_id: UUID | str,
        unpaid_invoices: object,
        unshipped_orders: object,
        order_total: object,
        exposure: object,
        credit_limit: object,
    ) -> None:
        super().__init__(
            f"order {order_id} would take the account's exposure to {exposure}, over its "
            f"credit limit of {credit_limit}: unpaid invoices {unpaid_invoices} + confirmed "
            f"unshipped orders {unshipped_orders} + this order {order_total}; "
            "a supervisor override with a reason is needed"
        )
        self.order_id = order_id
        self.unpaid_invoices = unpaid_invoices
        self.unshipped_orders = unshipped_orders
        self.order_total = order_total
        self.exposure = exposure
        self.credit_limit = credit_limit

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (
            self.order_id,
            self.unpaid_invoices,
            self.unshipped_orders,
            self.order_total,
            self.exposure,
            self.credit_limit,
        )


class CreditCurrencyError(CreditCheckError):
    """Exposure cannot be added up: the order or an open item is in a currency other than
    the credit limit's (the CRM holds no exchange rates; ERP or a supervisor decides)."""

    def __init__(
        self, order_id: UUID | str | None, limit_currency: str, currencies: list[str]
    ) -> None:
        what = f"order {order_id}" if order_id is not None else "the account's exposure"
        super().__init__(
            f"cannot check {what} against the credit limit in {limit_currency}: "
            f"the exposure is also in {', '.join(currencies)}; "
            "a supervisor override with a reason is needed"
        )
        self.order_id = order_id
        self.limit_currency = limit_currency
        self.currencies = currencies

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.order_id, self.limit_currency, self.currencies)


class CreditAmountError(RuleViolationError):
    """A credit note or refund is for more than it may cover: a credit note at most what
    is invoiced and not yet credited, a refund at most what was paid beyond what is owed."""

    def __init__(
        self, what: str, invoice_id: UUID | str, amount: object, available: object
    ) -> None:
        super().__init__(
            f"{what} of {amount} on invoice {invoice_id} is more than the {available} it may cover"
        )
        self.what = what
        self.invoice_id = invoice_id
        self.amount = amount
        self.available = available

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.what, self.invoice_id, self.amount, self.available)


class ContactRoleError(RuleViolationError):
    """A contact's role on the account does not allow this."""


class ConflictError(RejectedError):
    """The request clashes with what is already stored."""


class ConcurrencyConflictError(ConflictError):
    """Someone else changed the same thing at the same time; reload and decide again."""

    def __init__(self, aggregate_id: UUID, detail: str = "") -> None:
        msg = f"concurrent change to {aggregate_id}"
        super().__init__(f"{msg}: {detail}" if detail else msg)
        self.aggregate_id = aggregate_id
        self.detail = detail

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.aggregate_id, self.detail)


class DuplicateCustomerCodeError(ConflictError):
    """Customer codes are unique: callers name customers by them."""

    def __init__(self, code: str) -> None:
        super().__init__(f"customer code {code!r} is already taken")
        self.code = code

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.code,)


class IdempotencyKeyReusedError(ConflictError):
    """A command id (idempotency key) came back with a different request.

    As with payment APIs, one key names one request: repeating it returns the first
    result, but the same key with another command or other arguments is refused.
    """

    def __init__(self, command_id: str, detail: str) -> None:
        super().__init__(f"command id {command_id!r} was already used {detail}")
        self.command_id = command_id
        self.detail = detail

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.command_id, self.detail)


class InboundMessageError(RejectedError, ValueError):
    """An inbound message is malformed (not JSON, unknown type, invalid fields)."""

    def __init__(self, message: str, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or []

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (str(self), self.errors)


class PermissionDeniedError(RejectedError):
    """The access policy does not let this actor, with these roles, run this command (or
    action) on this customer or account. Nothing was stored; the denial is in the audit
    log (``crm audit denials``).

    ``command`` is the command's CRM name (``"stage_opportunity"``) or an action's name
    (``"audit.export"``); ``target`` the customer or account id, if the command has one.
    """

    def __init__(
        self,
        actor: str,
        roles: tuple[str, ...],
        command: str,
        target: UUID | str | None = None,
        reason: str = "",
    ) -> None:
        roles = (roles,) if isinstance(roles, str) else tuple(roles)
        held = ", ".join(roles) if roles else "no roles"
        on = f" on {target}" if target is not None else ""
        why = f": {reason}" if reason else ""
        super().__init__(f"{actor} ({held}) may not run {command}{on}{why}")
        self.actor = actor
        self.roles = roles
        self.command = command
        self.target = target
        self.reason = reason

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.actor, self.roles, self.command, self.target, self.reason)


# ===== infrastructure: setup or a service ==============================================
class InfrastructureError(CRMError):
    """Not the request's fault: the configuration, a store, a broker or a read model."""


class ConfigurationError(InfrastructureError, ValueError):
    """A setting, store URL, routing table or mapping is invalid: fix the configuration."""


class MissingDependencyError(ConfigurationError):
    """A feature needs an optional extra that is not installed."""

    def __init__(self, feature: str, extra: str, module: str) -> None:
        super().__init__(f"{feature} needs the {module!r} package: pip install 'crm-core[{extra}]'")
        self.feature = feature
        self.extra = extra
        self.module = module

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.feature, self.extra, self.module)


class StoreError(InfrastructureError):
    """The event store or the read-model database failed."""


class StoreUnavailableError(StoreError):
    """The store could not be reached (down, refused, timed out): retry later."""


class StoreNotFoundError(StoreError):
    """A command that only reads was given a store that does not exist (a mistyped path?)."""


class StoreFullError(StoreError):
    """The database ran out of space (its disk, or a size limit such as SQLite's
    ``max_page_count``): nothing of the failed write was stored; free space and resume."""

    def __init__(self, what: str, detail: str) -> None:
        super().__init__(
            f"the {what} is full (no space left on its disk, or its size limit reached); "
            f"nothing of the failed write was stored, free some space and start again: {detail}"
        )
        self.what = what
        self.detail = detail

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.what, self.detail)


class CorruptHistoryError(StoreError):
    """Stored events of an aggregate cannot be replayed (a gap, a swap, invalid data)."""

    def __init__(self, aggregate_id: UUID | str, position: int | None, detail: str) -> None:
        where = f" at version {position}" if position is not None else ""
        super().__init__(f"history of {aggregate_id} is corrupt{where}: {detail}")
        self.aggregate_id = aggregate_id
        self.position = position
        self.detail = detail

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.aggregate_id, self.position, self.detail)


class InvalidStoredEventError(CorruptHistoryError):
    """One event of the notification log cannot be read: its stored JSON is not valid for
    its event class (a field missing or of the wrong type, unreadable JSON, unknown type)."""

    def __init__(
        self, topic: str, position: int | None, originator_id: UUID | None, detail: str
    ) -> None:
        event = topic.rsplit(":", 1)[-1]
        where = f" at position {position}" if position is not None else ""
        of = f" of {originator_id}" if originator_id is not None else ""
        StoreError.__init__(self, f"stored event {event}{of}{where} is invalid: {detail}")
        self.aggregate_id = originator_id or ""
        self.topic = topic
        self.position = position
        self.originator_id = originator_id
        self.detail = detail

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.topic, self.position, self.originator_id, self.detail)


class TamperDetectedError(CorruptHistoryError):
    """The hash chain shows the event log was changed behind the CRM's back: the first
    event ``modified``, ``deleted``, ``inserted`` or ``reordered``, or a ``snapshot`` that
    is not the fold of its events, at notification ``position``."""

    def __init__(self, kind: str, position: int | None, detail: str) -> None:
        where = f" at position {position}" if position is not None else ""
        StoreError.__init__(self, f"the event log was tampered with: {kind}{where}: {detail}")
        self.aggregate_id = ""
        self.kind = kind
        self.position = position
        self.detail = detail

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.kind, self.position, self.detail)


class UnchainedHistoryError(StoreError):
    """The oldest events were stored before the hash chain began (a store written by an
    earlier release): nothing proves them unedited until ``crm audit seal`` chains them.
    ``first_chained`` is the first chained position (None: none yet)."""

    def __init__(self, first_chained: int | None, detail: str) -> None:
        super().__init__(f"the event log is not fully chained: {detail}")
        self.first_chained = first_chained
        self.detail = detail

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.first_chained, self.detail)


class AuditEvidenceError(InfrastructureError):
    """An audit export, a customer's proof or a digest does not verify (a bad signature,
    an edited file, a digest the log does not extend); the message says where."""


class BrokerError(InfrastructureError):
    """The Kafka broker failed or refused."""


class BrokerUnavailableError(BrokerError):
    """The broker could not be reached, or did not acknowledge, within the allowed time."""

    def __init__(self, bootstrap: str, seconds: float, detail: str = "") -> None:
        message = f"Kafka broker {bootstrap} unavailable for more than {seconds:g}s"
        super().__init__(f"{message}: {detail}" if detail else message)
        self.bootstrap = bootstrap
        self.seconds = seconds
        self.detail = detail

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.bootstrap, self.seconds, self.detail)


class MissingTopicError(BrokerError, ConfigurationError):
    """A topic the adapter needs does not exist, and creating topics is not allowed."""

    def __init__(self, topics: list[str], bootstrap: str) -> None:
        names = ", ".join(sorted(topics))
        super().__init__(
            f"missing Kafka topic(s) {names} on {bootstrap}; create them, "
            "or allow the adapter to create topics (--create-topics)"
        )
        self.topics = sorted(topics)
        self.bootstrap = bootstrap

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.topics, self.bootstrap)


class PublishError(BrokerError):
    """The broker refused a message for a reason retrying cannot fix (too large, denied)."""

    def __init__(self, topic: str, event_type: str, event_id: str, cause: BaseException) -> None:
        super().__init__(
            f"broker refused {event_type} {event_id} for topic {topic}: "
            f"{type(cause).__name__}: {cause}"
        )
        self.topic = topic
        self.event_type = event_type
        self.event_id = event_id
        self.cause = cause

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.topic, self.event_type, self.event_id, self.cause)


class ProjectionError(InfrastructureError):
    """A read model could not be built or kept current."""


class UnknownReadModelError(ProjectionError, ConfigurationError):
    """A read model name that is not registered (e.g. a typo on the command line)."""

    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(f"unknown read model {name!r}; known: {', '.join(sorted(known))}")
        self.name = name
        self.known = known

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.name, self.known)


class UnhandledEventError(ProjectionError):
    """A read model met an event it cannot apply; nothing from that event on was stored.

    Names the read model, the event's topic, its position in the notification log and the
    aggregate it came from, so the operator can find it and fix the projection or the data.
    """

    def __init__(
        self,
        *,
        read_model: str,
        topic: str,
        position: int,
        originator_id: UUID | None,
        reason: str,
    ) -> None:
        where = f" of {originator_id}" if originator_id else ""
        super().__init__(
            f"read model {read_model!r} cannot handle event {topic}{where} "
            f"at position {position}: {reason}"
        )
        self.read_model = read_model
        self.topic = topic
        self.position = position
        self.originator_id = originator_id
        self.reason = reason

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only arguments: pickle (a parallel rebuild's worker reporting to its
        # parent) needs to be told how to build the error again.
        return _unhandled_event_error, (
            self.read_model,
            self.topic,
            self.position,
            self.originator_id,
            self.reason,
        )


def _unhandled_event_error(
    read_model: str, topic: str, position: int, originator_id: UUID | None, reason: str
) -> UnhandledEventError:
    return UnhandledEventError(
        read_model=read_model,
        topic=topic,
        position=position,
        originator_id=originator_id,
        reason=reason,
    )


class ReadModelParkedError(ProjectionError):
    """``retry`` or ``skip`` was asked of a read model that is not parked (or not parked
    at the position given): nothing was changed."""


class ReadModelRebuildingError(ProjectionError):
    """Read models are being rebuilt (a running rebuild holds them): a report cannot read
    them, nor (on SQLite, whose write lock the rebuild holds) another rebuild claim them,
    until it has finished; nothing was read or changed. Try again then."""


class ProjectionLagError(ProjectionError, TimeoutError):
    """The read models did not reach a position in the time allowed."""
