"""Hypothesis state machines for Customer and Account.

Random sequences of commands, valid and invalid, go through the CRM. After every step:
the rules held over the whole stored history (walked event by event), a rejected command
stored nothing, and the aggregate rebuilt from the stored events equals both the one the
command decided on and the one the application loads (from snapshots, taken every 3
events).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from crm_domain import CRM, DEFAULT_LIFECYCLE, DEFAULT_PIPELINE, Account, Customer, Money
from crm_domain.errors import CRMError
from crm_domain.eventmodel import Aggregate
from crm_domain.values import (
    Channel,
    OrderStatus,
    QuoteStatus,
    SatisfactionClass,
    TicketKind,
    TicketStatus,
)

SETTINGS = settings(
    max_examples=40,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
UNKNOWN = 9  # an index of 9 names an entity that does not exist
index = st.integers(min_value=0, max_value=UNKNOWN)
CLOSE = date(2031, 6, 30)
FAR_FUTURE = datetime(2100, 1, 1, tzinfo=UTC)


class RecordingCRM(CRM):
    """Remembers the aggregate object each successful command decided on and saved."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.live: dict[UUID, Aggregate] = {}

    def _save(self, *objs: Any) -> None:
        super()._save(*objs)
        for obj in objs:
            if isinstance(obj, Customer | Account):
                self.live[obj.id] = obj


def state(aggregate: Aggregate) -> dict[str, Any]:
    return {
        k: v for k, v in vars(aggregate).items() if k not in ("_pending_events", "_occurred_at")
    }


def pick(ids: list[UUID], i: int) -> UUID:
    return ids[i % len(ids)] if ids and i != UNKNOWN else uuid4()


class CRMMachine(RuleBasedStateMachine):
    aggregate_id: UUID

    def __init__(self) -> None:
        super().__init__()
        self.app = RecordingCRM("memory://", snapshot_interval=3)
        self.accepted = 0
        self.rejected = 0

    def attempt(self, command: Any, *args: Any, **kwargs: Any) -> Any:
        """Run a command; if the CRM says no, nothing may have been stored."""
        before = self.app.app.recorder.max_notification_id()
        version = self.app.app.repository.get(self.aggregate_id).version
        try:
            result = command(*args, **kwargs)
        except CRMError:
            self.rejected += 1
            assert self.app.app.recorder.max_notification_id() == before
            assert self.app.app.repository.get(self.aggregate_id).version == version
            return None
        self.accepted += 1
        return result

    def history(self) -> list[Any]:
        return list(self.app.app.events.get(self.aggregate_id))

    @invariant()
    def stored_events_rebuild_the_live_aggregate(self) -> None:
        replayed: Any = None
        for ev in self.app.app.events.get(self.aggregate_id):
            replayed = ev.mutate(replayed)
        live = self.app.live[self.aggregate_id]
        loaded = self.app.app.repository.get(self.aggregate_id)  # via snapshots
        assert replayed.version == live.version == loaded.version
        assert state(replayed) == state(live)
        assert state(loaded) == state(live)


class CustomerMachine(CRMMachine):
    @initialize()
    def register(self) -> None:
        self.aggregate_id = self.app.register_customer(
            kind="enterprise", name="Baiyun", code="BY-1"
        )
        self.tickets: list[UUID] = []

    # ----- commands ---------------------------------------------------------------------
    @rule(
        channel=st.sampled_from([*Channel, "fax"]),
        direction=st.sampled_from(["inbound", "outbound", "sideways"]),
        purpose=st.sampled_from([None, "news", "promo"]),
    )
    def log_contact(self, channel: str, direction: str, purpose: str | None) -> None:
        self.attempt(
            self.app.log_contact,
            self.aggregate_id,
            channel=channel,
            direction=direction,
            summary="call",
            marketing_purpose=purpose,
        )

    @rule(
        grant=st.booleans(),
        purpose=st.sampled_from(["news", "promo"]),
        channel=st.sampled_from(["email", "sms", "phone", "fax"]),
    )
    def consent(self, grant: bool, purpose: str, channel: str) -> None:
        command = self.app.grant_consent if grant else self.app.withdraw_consent
        self.attempt(command, self.aggregate_id, purpose=purpose, channel=channel)

    @rule(stage=st.sampled_from([*DEFAULT_LIFECYCLE.stages, "vip"]))
    def change_stage(self, stage: str) -> None:
        self.attempt(
            self.app.change_lifecycle_stage, self.aggregate_id, to_stage=stage, reason="review"
        )

    @rule(manager=st.sampled_from(["li.wei", "zhao.lei", ""]))
    def assign_manager(self, manager: str) -> None:
        self.attempt(
            self.app.assign_customer_manager, self.aggregate_id, manager=manager, reason="r"
        )

    @precondition(lambda self: self.accepted > 10)
    @rule(active=st.booleans())
    def activation(self, active: bool) -> None:
        command = self.app.reactivate_customer if active else self.app.deactivate_customer
        self.attempt(command, self.aggregate_id, reason="review")

    @rule(
        kind=st.sampled_from([*TicketKind, "gripe"]),
        priority=st.sampled_from(["normal", "urgent", "asap"]),
    )
    def open_ticket(self, kind: str, priority: str) -> None:
        ticket = self.attempt(
            self.app.open_ticket,
            self.aggregate_id,
            kind=kind,
            priority=priority,
            subject="s",
            channel="phone",
        )
        if ticket is not None:
            self.tickets.append(ticket)

    @rule(
        step=st.sampled_from(
            ["assign", "respond", "visit", "escalate", "resolve", "reopen", "close"]
        ),
        i=index,
    )
    def ticket_step(self, step: str, i: int) -> None:
        app, cid, ticket = self.app, self.aggregate_id, pick(self.tickets, i)
        commands: dict[str, Any] = {
            "assign": lambda: app.assign_ticket(cid, ticket, department="service"),
            "respond": lambda: app.respond_to_ticket(cid, ticket, message="m"),
            "visit": lambda: app.schedule_field_visit(
                cid, ticket, visit_at=FAR_FUTURE, engineer="e"
            ),
            "escalate": lambda: app.escalate_ticket(cid, ticket, reason="r"),
            "resolve": lambda: app.resolve_ticket(cid, ticket, answer="a"),
            "reopen": lambda: app.reopen_ticket(cid, ticket, reason="r"),
            "close": lambda: app.close_ticket(cid, ticket),
        }
        self.attempt(commands[step])

    @rule(i=index, reopen=st.booleans())
    def ticket_progress(self, i: int, reopen: bool) -> None:
        """The natural next step of a ticket, so deep states are reached too."""
        ticket = pick(self.tickets, i)
        current = self.app.customer(self.aggregate_id).tickets.get(ticket)
        if current is None or current.status is TicketStatus.CLOSED:
            return
        if current.status is TicketStatus.OPEN:
            self.attempt(self.app.resolve_ticket, self.aggregate_id, ticket, answer="done")
        elif reopen:
            self.attempt(self.app.reopen_ticket, self.aggregate_id, ticket, reason="again")
        else:
            self.attempt(self.app.close_ticket, self.aggregate_id, ticket)

    @rule(score=st.integers(min_value=0, max_value=6), about_ticket=st.booleans(), i=index)
    def satisfaction(self, score: int, about_ticket: bool, i: int) -> None:
        ticket = pick(self.tickets, i) if about_ticket else None
        self.attempt(self.app.record_satisfaction, self.aggregate_id, score=score, ticket_id=ticket)

    @rule()
    def sla_breaches(self) -> None:
        self.attempt(self.app.record_sla_breaches, self.aggregate_id, now=FAR_FUTURE)

    # ----- invariants over the whole history ------------------------------------------------
    @invariant()
    def rules_held_over_the_history(self) -> None:
        active = True
        stage = DEFAULT_LIFECYCLE.initial
        consents: set[tuple[str, str]] = set()
        tickets: dict[UUID, tuple[TicketKind, TicketStatus]] = {}
        needs_active = (
            Customer.ContactLogged,
            Customer.LifecycleStageChanged,
            Customer.ManagerAssigned,
            Customer.TicketOpened,
            Customer.Deactivated,
        )
        for ev in self.history():
            if isinstance(ev, needs_active):
                assert active, f"{type(ev).__name__} on a deactivated customer"
            if isinstance(ev, Customer.Deactivated | Customer.Reactivated):
                assert active is isinstance(ev, Customer.Deactivated)
                active = not active
            elif isinstance(ev, Customer.LifecycleStageChanged):
                assert ev.from_stage == stage
                DEFAULT_LIFECYCLE.check_transition(stage, ev.to_stage)
                stage = ev.to_stage
            elif isinstance(ev, Customer.ConsentGranted):
                consents.add((ev.purpose, ev.channel))
            elif isinstance(ev, Customer.ConsentWithdrawn):
                consents.discard((ev.purpose, ev.channel))
            elif isinstance(ev, Customer.ContactLogged):
                if ev.marketing_purpose and ev.direction == "outbound":
                    assert (ev.marketing_purpose, ev.channel) in consents
                    assert not any(
                        k is TicketKind.COMPLAINT and s is TicketStatus.OPEN
                        for k, s in tickets.values()
                    )
            elif isinstance(ev, Customer.TicketOpened):
                tickets[ev.ticket_id] = (ev.kind, TicketStatus.OPEN)
            elif isinstance(ev, Customer.SatisfactionRecorded):
                assert ev.classification is SatisfactionClass.of(ev.score)
                if ev.ticket_id is not None:
                    assert tickets[ev.ticket_id][1] is not TicketStatus.OPEN
            elif hasattr(ev, "ticket_id"):
                kind, status = tickets[ev.ticket_id]
                if isinstance(ev, Customer.TicketReopened | Customer.TicketClosed):
                    assert status is TicketStatus.RESOLVED
                else:
                    assert status is TicketStatus.OPEN
                if isinstance(ev, Customer.TicketResolved):
                    status = TicketStatus.RESOLVED
                elif isinstance(ev, Customer.TicketReopened):
                    status = TicketStatus.OPEN
                elif isinstance(ev, Customer.TicketClosed):
                    status = TicketStatus.CLOSED
                tickets[ev.ticket_id] = (kind, status)
        customer = self.app.customer(self.aggregate_id)
        assert customer.active is active
        assert customer.lifecycle_stage == stage
        assert {(p, c) for p, chans in customer.consents.items() for c in chans} == consents
        assert {t: (x.kind, x.status) for t, x in customer.tickets.items()} == tickets
        if customer.satisfaction is not None:
            assert customer.satisfaction_class is SatisfactionClass.of(customer.satisfaction)


class AccountMachine(CRMMachine):
    @initialize()
    def open_account(self) -> None:
        cid = self.app.register_customer(kind="enterprise", name="Acme", code="ACME")
        self.aggregate_id = self.app.open_account(customer_id=cid, name="Acme")
        self.opportunities: list[UUID] = []
        self.quotes: list[UUID] = []
        self.orders: list[UUID] = []

    # ----- commands ---------------------------------------------------------------------
    @rule(amount=st.none() | st.integers(min_value=-5, max_value=10_000))
    def open_opportunity(self, amount: int | None) -> None:
        opp = self.attempt(
            lambda: self.app.open_opportunity(
                self.aggregate_id,
                name="deal",
                expected_close=CLOSE,
                owner="o",
                amount=None if amount is None else Money.of(amount, "CNY"),
            )
        )
        if opp is not None:
            self.opportunities.append(opp)

    @rule(i=index, stage=st.sampled_from([*(s.name for s in DEFAULT_PIPELINE.stages), "demo"]))
    def stage(self, i: int, stage: str) -> None:
        self.attempt(
            self.app.stage_opportunity, self.aggregate_id, pick(self.opportunities, i), stage=stage
        )

    @rule(i=index, amount=st.integers(min_value=-5, max_value=10_000))
    def revise(self, i: int, amount: int) -> None:
        self.attempt(
            lambda: self.app.revise_opportunity(
                self.aggregate_id, pick(self.opportunities, i), amount=Money.of(amount, "CNY")
            )
        )

    @rule(i=index, won=st.booleans())
    def close_opportunity(self, i: int, won: bool) -> None:
        command = self.app.win_opportunity if won else self.app.lose_opportunity
        self.attempt(command, self.aggregate_id, pick(self.opportunities, i), reason="r")

    @rule(i=index, discount=st.sampled_from(["0", "5", "101", "x"]))
    def issue_quote(self, i: int, discount: str) -> None:
        quote = self.attempt(
            self.app.issue_quote,
            self.aggregate_id,
            pick(self.opportunities, i),
            amount=Money.of(100, "CNY"),
            valid_until=CLOSE,
            discount_pct=discount,
        )
        if quote is not None:
            self.quotes.append(quote)

    @rule(i=index, step=st.sampled_from(["revise", "accept", "expire"]))
    def quote_step(self, i: int, step: str) -> None:
        app, aid, quote = self.app, self.aggregate_id, pick(self.quotes, i)
        if step == "revise":
            new = self.attempt(
                app.revise_quote, aid, quote, amount=Money.of(90, "CNY"), valid_until=CLOSE
            )
            if new is not None:
                self.quotes.append(new)
        else:
            self.attempt(app.accept_quote if step == "accept" else app.expire_quote, aid, quote)

    @rule(
        qty=st.integers(min_value=0, max_value=3),
        i=index,
        from_quote=st.sampled_from([False, False, True]),
    )
    def place_order(self, qty: int, i: int, from_quote: bool) -> None:
        line = {"sku": "S", "quantity": qty, "unit_price": {"amount": "10", "currency": "CNY"}}
        order = self.attempt(
            self.app.place_order,
            self.aggregate_id,
            lines=[line],
            quote_id=pick(self.quotes, i) if from_quote else None,
        )
        if order is not None:
            self.orders.append(order)

    @rule(
        i=index,
        step=st.sampled_from(
            ["request", "confirm", "reject", "ship", "deliver", "return", "cancel"]
        ),
        reason=st.sampled_from(["credit", "margin", "availability", "price"]),
        source=st.sampled_from(["erp", "crm-web"]),
    )
    def order_step(self, i: int, step: str, reason: str, source: str) -> None:
        app, aid, order = self.app, self.aggregate_id, pick(self.orders, i)
        commands: dict[str, Any] = {
            "request": lambda: app.request_order_confirmation(aid, order),
            "confirm": lambda: app.confirm_order(aid, order),
            "reject": lambda: app.reject_order(aid, order, reason=reason),
            "ship": lambda: app.ship_order(aid, order),
            "deliver": lambda: app.deliver_order(aid, order),
            "return": lambda: app.return_order(aid, order, reason="broken"),
            "cancel": lambda: app.cancel_order(aid, order, reason="withdrawn"),
        }
        with app.context(source_system=source):
            self.attempt(commands[step])

    @rule(i=index, ok=st.booleans())
    def order_progress(self, i: int, ok: bool) -> None:
        """The natural next step of an order (ERP says yes or no), to reach deep states."""
        app, aid, order = self.app, self.aggregate_id, pick(self.orders, i)
        current = app.account(aid).orders.get(order)
        if current is None:
            return
        status = current.status
        if status is OrderStatus.PLACED:
            self.attempt(app.request_order_confirmation, aid, order)
        elif status is OrderStatus.CONFIRMATION_REQUESTED:
            with app.context(source_system="erp"):
                if ok:
                    self.attempt(app.confirm_order, aid, order, erp_reference="SAP")
                else:
                    self.attempt(app.reject_order, aid, order, reason="margin")
        elif status is OrderStatus.CONFIRMED:
            self.attempt(app.ship_order, aid, order)
        elif status is OrderStatus.SHIPPED:
            self.attempt(
                app.deliver_order if ok else app.return_order,
                aid,
                order,
                **({} if ok else {"reason": "damaged"}),
            )
        elif status is OrderStatus.DELIVERED and not ok:
            self.attempt(app.return_order, aid, order, reason="faulty")

    @rule(amount=st.integers(min_value=-1, max_value=500))
    def payment(self, amount: int) -> None:
        self.attempt(
            lambda: self.app.receive_payment(self.aggregate_id, amount=Money.of(amount, "CNY"))
        )

    @precondition(lambda self: self.accepted > 30)  # late, or little else could happen
    @rule()
    def close_account(self) -> None:
        self.attempt(self.app.close_account, self.aggregate_id, reason="ended")

    # ----- invariants -------------------------------------------------------------------------
    @invariant()
    def at_most_one_active_quote_per_opportunity(self) -> None:
        account = self.app.account(self.aggregate_id)
        active = [
            q.opportunity_id for q in account.quotes.values() if q.status is QuoteStatus.ACTIVE
        ]
        assert len(active) == len(set(active))

    @invariant()
    def rules_held_over_the_history(self) -> None:
        closed: set[UUID] = set()
        orders: dict[UUID, OrderStatus] = {}
        quotes: dict[UUID, QuoteStatus] = {}
        quote_opportunity: dict[UUID, UUID] = {}
        payments = Decimal(0)
        order_moves: dict[type, tuple[set[OrderStatus], OrderStatus]] = {
            Account.OrderConfirmationRequested: (
                {OrderStatus.PLACED},
                OrderStatus.CONFIRMATION_REQUESTED,
            ),
            # only ERP answers, and only what it was asked (test_orders_erp_credit.py)
            Account.OrderConfirmed: ({OrderStatus.CONFIRMATION_REQUESTED}, OrderStatus.CONFIRMED),
            Account.OrderRejected: ({OrderStatus.CONFIRMATION_REQUESTED}, OrderStatus.REJECTED),
            Account.OrderCancelled: (
                {OrderStatus.PLACED, OrderStatus.CONFIRMATION_REQUESTED, OrderStatus.CONFIRMED},
                OrderStatus.CANCELLED,
            ),
            Account.OrderShipped: ({OrderStatus.CONFIRMED}, OrderStatus.SHIPPED),
            Account.OrderDelivered: ({OrderStatus.SHIPPED}, OrderStatus.DELIVERED),
            Account.OrderReturned: (
                {OrderStatus.SHIPPED, OrderStatus.DELIVERED},
                OrderStatus.RETURNED,
            ),
        }
        for ev in self.history():
            if isinstance(
                ev,
                Account.OpportunityStaged
                | Account.OpportunityRevised
                | Account.OpportunityWon
                | Account.OpportunityLost
                | Account.QuoteIssued,
            ):
                assert ev.opportunity_id not in closed, "a closed opportunity changed"
            if isinstance(ev, Account.OpportunityWon | Account.OpportunityLost):
                closed.add(ev.opportunity_id)
            if isinstance(ev, Account.OpportunityWon):
                assert ev.amount.amount > 0
            if isinstance(ev, Account.OpportunityStaged):
                assert not DEFAULT_PIPELINE.stage(ev.to_stage).closed
            if isinstance(ev, Account.QuoteIssued):
                others_active = [
                    q
                    for q, status in quotes.items()
                    if status is QuoteStatus.ACTIVE
                    and quote_opportunity[q] == ev.opportunity_id
                    and q != ev.supersedes
                ]
                assert not others_active, "a second active quote"
                quote_opportunity[ev.quote_id] = ev.opportunity_id
                if ev.supersedes is not None:
                    assert quotes[ev.supersedes] is QuoteStatus.ACTIVE
                    quotes[ev.supersedes] = QuoteStatus.SUPERSEDED
                quotes[ev.quote_id] = QuoteStatus.ACTIVE
            if isinstance(ev, Account.QuoteAccepted | Account.QuoteExpired):
                assert quotes[ev.quote_id] is QuoteStatus.ACTIVE
                accepted = isinstance(ev, Account.QuoteAccepted)
                quotes[ev.quote_id] = QuoteStatus.ACCEPTED if accepted else QuoteStatus.EXPIRED
            if isinstance(ev, Account.OrderPlaced):
                assert ev.quote_id is None or quotes[ev.quote_id] is QuoteStatus.ACCEPTED
                orders[ev.order_id] = OrderStatus.PLACED
            if type(ev) in order_moves:
                allowed, to = order_moves[type(ev)]
                assert orders[ev.order_id] in allowed, f"{type(ev).__name__} from {orders}"
                orders[ev.order_id] = to
            if isinstance(ev, Account.OrderConfirmed | Account.OrderRejected):
                assert ev.metadata["source_system"] == "erp", "not confirmed by ERP"
            if isinstance(ev, Account.PaymentReceived):
                assert ev.amount.amount > 0
                payments += ev.amount.amount
        account = self.app.account(self.aggregate_id)
        assert {o: x.status for o, x in account.orders.items()} == orders
        assert {q: x.status for q, x in account.quotes.items()} == quotes
        assert {o for o, x in account.opportunities.items() if x.is_closed} == closed
        assert account.payments_received.get("CNY", Decimal(0)) == payments
        for opp in account.opportunities.values():
            assert opp.probability == DEFAULT_PIPELINE.stage(opp.stage).probability


TestCustomerMachine = CustomerMachine.TestCase
TestCustomerMachine.settings = SETTINGS
TestAccountMachine = AccountMachine.TestCase
TestAccountMachine.settings = SETTINGS
