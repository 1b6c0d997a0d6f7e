"""Processes over many customers and accounts: a manager's handover and the lifecycle scan.

Both first find what they touch by reading the event store itself (the events of a few
types, picked by topic in the store's notification log), not a read model: a read model
may lag behind the store, and a handover must not miss the customer assigned a second
ago, nor a lifecycle scan the order ERP confirmed just now. Each then loads the current
aggregates and lets their rules decide, through ordinary commands:

- :meth:`ProcessMethods.hand_over` moves everything a manager owns (customer manager,
  account manager, open opportunities, open commitments) to a successor in ONE
  transaction (:meth:`~crm_domain.CRM.handle_all`), one event per change, each with the
  reason, so the history shows who held what until when.
- :meth:`ProcessMethods.scan_lifecycle` applies the lifecycle policy
  (:mod:`crm_domain.lifecycle`) to every customer with confirmed orders, as of a moment.
  It runs as a scan, not inside order confirmation: the time-based rules (at risk,
  lapsed) need a scan anyway, the order-based ones then see every order whoever
  confirmed it (the ERP consumer, an import, a bulk load), and confirming an order stays
  a change to one account that never waits on, or conflicts with, its customer. Every
  transition records the business time at which its rule fired (the order's time, or the
  moment a silence reached its limit), so a scan run late records the same history.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any, cast
from uuid import UUID

from crm_domain.account import Account
from crm_domain.commands import (
    ApplyLifecyclePolicy,
    AssignAccountManager,
    AssignCustomerManager,
    Command,
    ReassignCommitment,
    ReassignOpportunity,
)
from crm_domain.customer import Customer
from crm_domain.errors import InvalidCommandError
from crm_domain.lifecycle import LifecyclePolicy
from crm_domain.values import business_time

if TYPE_CHECKING:
    from crm_domain.application import CRM

#: Notifications read per query while scanning the store.
PAGE = 5000
#: Customers per transaction of a lifecycle scan.
SCAN_BATCH = 500


def _events(crm: CRM, *classes: type[Any]) -> Iterator[Any]:
    """The stored events of these classes, in log order (decoded as the CRM reads them)."""
    mapper = crm.app.mapper
    for notification in crm.app.notifications_of(*classes, page=PAGE):
        yield mapper.to_domain_event(notification)


def end_of_day(day: date) -> datetime:
    """The last moment of ``day`` in UTC: ``--as-of 1998-06-30`` counts that day's orders."""
    return datetime.combine(day + timedelta(days=1), time(0), tzinfo=UTC) - timedelta(
        microseconds=1
    )


# ===== handover ========================================================================
@dataclass(frozen=True)
class Move:
    """One thing handed over: what (``customer``, ``account``, ``opportunity``,
    ``commitment``), of which customer, and its id and name."""

    kind: str
    customer_id: UUID
    customer_code: str
    item: str
    name: str


@dataclass(frozen=True)
class HandoverResult:
    """What a handover moved from one manager to another (nothing: ``moves`` is empty)."""

    from_manager: str
    to_manager: str
    reason: str
    #: The correlation id on every event of the handover (the context's).
    correlation_id: str
    moves: list[Move]
    #: Customers or accounts the leaver still holds that the rules do not let move (a
    #: deactivated customer, a closed account), with why.
    left: list[str] = field(default_factory=list)

    @property
    def customers(self) -> list[UUID]:
        """The customers something moved for, in the order handled."""
        return list(dict.fromkeys(m.customer_id for m in self.moves))

    def count(self, kind: str) -> int:
        """How many moves of one kind."""
        return sum(1 for m in self.moves if m.kind == kind)


@dataclass
class _Portfolio:
    accounts: dict[UUID, list[UUID]] = field(default_factory=lambda: defaultdict(list))
    customers: dict[UUID, None] = field(default_factory=dict)


def _portfolio(crm: CRM, manager: str) -> _Portfolio:
    """Every customer the store names ``manager`` for (as customer or account manager,
    opportunity owner or commitment owner, at any time), and every customer's accounts.

    A superset: the current aggregates decide what is still theirs."""
    found = _Portfolio()
    account_customer: dict[UUID, UUID] = {}
    for e in _events(
        crm,
        Account.Opened,
        Account.ManagerAssigned,
        Account.OpportunityOpened,
        Account.OpportunityReassigned,
        Customer.ManagerAssigned,
        Customer.ContactLogged,
        Customer.CommitmentReassigned,
    ):
        if isinstance(e, Account.Opened):
            account_customer[e.originator_id] = e.customer_id
            found.accounts[e.customer_id].append(e.originator_id)
        elif isinstance(e, Account.ManagerAssigned) and e.manager == manager:
            found.customers[account_customer[e.originator_id]] = None
        elif isinstance(e, Account.OpportunityOpened | Account.OpportunityReassigned):
            if e.owner == manager:
                found.customers[account_customer[e.originator_id]] = None
        elif isinstance(e, Customer.ManagerAssigned | Customer.CommitmentReassigned):
            if getattr(e, "manager", getattr(e, "owner", None)) == manager:
                found.customers[e.originator_id] = None
        elif isinstance(e, Customer.ContactLogged) and any(
            c.owner == manager for c in e.commitments
        ):
            found.customers[e.originator_id] = None
    return found


def _moves_for(
    crm: CRM,
    customer: Customer,
    accounts: Sequence[UUID],
    from_manager: str,
    to_manager: str,
    reason: str,
) -> tuple[list[tuple[Move, Command[Any]]], list[str]]:
    """The commands moving what ``from_manager`` holds of one customer, and what stays."""
    code = customer.code
    moves: list[tuple[Move, Command[Any]]] = []
    left: list[str] = []
    if customer.manager == from_manager:
        if customer.active:
            moves.append(
                (
                    Move("customer", customer.id, code, str(customer.id), customer.name),
                    AssignCustomerManager(
                        customer_id=customer.id, manager=to_manager, reason=reason
                    ),
                )
            )
        else:
            left.append(f"customer {code} is deactivated: its manager stays {from_manager}")
    for account_id in accounts:
        account = crm.account(account_id)
        if account.manager == from_manager:
            if account.active:
                moves.append(
                    (
                        Move("account", customer.id, code, str(account.id), account.name),
                        AssignAccountManager(
                            account_id=account.id, manager=to_manager, reason=reason
                        ),
                    )
                )
            else:
                left.append(f"account {account.name!r} of {code} is closed: its manager stays")
        for opp in account.open_pipeline():
            if opp.owner == from_manager:
                moves.append(
                    (
                        Move("opportunity", customer.id, code, str(opp.opportunity_id), opp.name),
                        ReassignOpportunity(
                            account_id=account.id,
                            opportunity_id=opp.opportunity_id,
                            owner=to_manager,
                            reason=reason,
                        ),
                    )
                )
    for key, promise in customer.open_commitments.items():
        if promise.owner == from_manager:
            contact_id, index = key.rsplit("/", 1)
            moves.append(
                (
                    Move("commitment", customer.id, code, key, promise.description),
                    ReassignCommitment(
                        customer_id=customer.id,
                        contact_id=UUID(contact_id),
                        index=int(index),
                        owner=to_manager,
                        reason=reason,
                    ),
                )
            )
    return moves, left


# ===== lifecycle scan ==================================================================
@dataclass(frozen=True)
class LifecycleScanResult:
    """What a lifecycle scan did: customers looked at, moved, and transitions per rule."""

    as_of: datetime
    customers_checked: int
    customers_moved: int
    transitions: dict[str, int]

    @property
    def total(self) -> int:
        """Transitions recorded in all (0: the scan changed nothing)."""
        return sum(self.transitions.values())


def confirmed_purchases(crm: CRM, *, as_of: datetime | None = None) -> dict[UUID, list[datetime]]:
    """The business times of every customer's confirmed orders (over all their accounts,
    up to ``as_of`` if given), read from the store."""
    account_customer: dict[UUID, UUID] = {}
    purchases: dict[UUID, list[datetime]] = defaultdict(list)
    for e in _events(crm, Account.Opened, Account.OrderConfirmed):
        if isinstance(e, Account.Opened):
            account_customer[e.originator_id] = e.customer_id
        elif as_of is None or e.occurred_at <= as_of:
            purchases[account_customer[e.originator_id]].append(e.occurred_at)
    return dict(purchases)


class ProcessMethods:
    """The CRM's processes over many aggregates: handover and the lifecycle scan."""

    _lifecycle_policy: LifecyclePolicy | None = None

    @property
    def lifecycle_policy(self) -> LifecyclePolicy:
        """The lifecycle policy in force: ``settings.lifecycle`` on the lifecycle model
        (:class:`~crm_domain.errors.ConfigurationError` if the model lacks its stages)."""
        crm = cast("CRM", self)
        policy = self._lifecycle_policy
        if policy is None or policy.model is not crm.lifecycle:
            policy = crm.settings.lifecycle.policy(crm.lifecycle)
            self._lifecycle_policy = policy
        return policy

    def hand_over(
        self,
        from_manager: str,
        to_manager: str,
        *,
        reason: str,
        customers: Sequence[UUID | str] | None = None,
    ) -> HandoverResult:
        """Move what ``from_manager`` holds to ``to_manager`` in ONE transaction: the
        customer manager, the account managers, the open opportunities' owners and the open
        commitments of every customer in their portfolio (or only of ``customers``, given
        by id or code). One event per change, each with ``reason``; the history keeps who
        held what before. Nothing to move: nothing is stored and ``moves`` is empty.

        The portfolio is read from the event store (a read model might lag); deactivated
        customers and closed accounts keep their manager (listed in ``left``).
        """
        crm = cast("CRM", self)
        if not from_manager.strip() or not to_manager.strip():
            raise InvalidCommandError("name the manager leaving and the one taking over")
        if from_manager == to_manager:
            raise InvalidCommandError(f"{from_manager} cannot hand over to themselves")
        if not reason.strip():
            raise InvalidCommandError("give the reason for the handover")
        portfolio = _portfolio(crm, from_manager)
        if customers is None:
            targets = [crm.customer(cid) for cid in portfolio.customers]
        else:
            targets = [self._customer_ref(ref) for ref in customers]
        planned: list[tuple[Move, Command[Any]]] = []
        left: list[str] = []
        seen: set[UUID] = set()
        for customer in targets:
            if customer.id in seen:
                continue
            seen.add(customer.id)
            moves, stays = _moves_for(
                crm,
                customer,
                portfolio.accounts.get(customer.id, []),
                from_manager,
                to_manager,
                reason,
            )
            planned += moves
            left += stays
        commands = [command for _, command in planned]
        # One correlation id for every event of the handover (the caller's, if they set one).
        with crm.context() as ctx:
            if commands:
                crm.handle_all(commands)
        return HandoverResult(
            from_manager=from_manager,
            to_manager=to_manager,
            reason=reason,
            correlation_id=ctx.correlation_id,
            moves=[move for move, _ in planned],
            left=left,
        )

    def _customer_ref(self, ref: UUID | str) -> Customer:
        crm = cast("CRM", self)
        if isinstance(ref, UUID):
            return crm.customer(ref)
        try:
            return crm.customer(UUID(ref))
        except ValueError:
            return crm.customer_by_code(ref)

    def scan_lifecycle(
        self,
        *,
        as_of: datetime | None = None,
        customers: Sequence[UUID] | None = None,
        batch: int = SCAN_BATCH,
    ) -> LifecycleScanResult:
        """Apply the lifecycle policy to every customer with confirmed orders (or only to
        ``customers``) as of ``as_of`` (default: now): first purchase, repeat purchases,
        at risk, lapsed, won back. Idempotent: a second run as of the same moment records
        nothing. ``batch`` customers are saved per transaction (a scheduler may stop and
        rerun a scan at any point).
        """
        crm = cast("CRM", self)
        at = business_time(as_of, "as_of") if as_of is not None else datetime.now(UTC)
        _ = self.lifecycle_policy  # a misconfigured policy fails before any work
        purchases = confirmed_purchases(crm, as_of=at)
        ids = sorted(purchases, key=str) if customers is None else list(customers)
        fired: Counter[str] = Counter()
        moved = 0
        for start in range(0, len(ids), max(1, batch)):
            chunk = ids[start : start + max(1, batch)]
            results = crm.handle_all(
                [
                    ApplyLifecyclePolicy(
                        customer_id=cid, purchases=purchases.get(cid, []), as_of=at
                    )
                    for cid in chunk
                ]
            )
            for rules in results:
                fired.update(str(rule) for rule in rules)
                moved += bool(rules)
        return LifecycleScanResult(
            as_of=at,
            customers_checked=len(ids),
            customers_moved=moved,
            transitions=dict(sorted(fired.items())),
        )
