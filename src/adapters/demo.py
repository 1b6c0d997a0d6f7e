"""``crm demo``: a year of a small company's CRM, replayed into a real store in seconds.

A few hundred customers (enterprises, government bodies, consumers) with accounts and
contacts, logged interactions, opportunities moving through the pipeline, versioned
quotes, orders that ERP confirms or rejects, invoices and payments, service tickets on
the SLA calendar (some breached), consent changes, and a sales rep leaving whose
customers are handed over. Business time is spread over the last year through the
command context's ``occurred_at``; every command carries an actor.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from uuid import UUID, uuid4

from crm_domain.application import CRM
from crm_domain.context import CommandContext
from crm_domain.errors import CRMError
from crm_domain.values import ContactDetails, Money, OrderLine, TicketStatus

REPS = ["li.wei", "zhang.min", "wang.fang", "chen.jie", "liu.yang", "zhao.lei"]
SUPPORT = ["support.hu", "support.xu", "support.sun"]
DEPARTMENTS = ["pre-sales", "technical-support", "complaints", "billing"]
INDUSTRIES = ["manufacturing", "education", "government", "retail", "logistics", "finance"]
CHANNELS = ["phone", "email", "visit", "web", "sms", "mobile_app", "call_centre", "letter"]
PRODUCTS = [
    ("SRV-R740", "rack server", Decimal("4200.00")),
    ("NB-L14", "notebook", Decimal("890.00")),
    ("WS-T5", "workstation", Decimal("2300.00")),
    ("SW-SEC", "security suite licence", Decimal("120.00")),
    ("SVC-3Y", "3-year on-site service", Decimal("450.00")),
]
CURRENCY = "CNY"


@dataclass
class DemoSummary:
    """What the demo stored, for the closing summary."""

    store: str
    run_tag: str
    customers: int = 0
    accounts: int = 0
    contacts_logged: int = 0
    opportunities: Counter[str] = field(default_factory=Counter)
    orders: Counter[str] = field(default_factory=Counter)
    tickets_opened: int = 0
    open_tickets: int = 0
    sla_breaches: int = 0
    open_pipeline: dict[str, Decimal] = field(default_factory=lambda: defaultdict(Decimal))
    handover: tuple[str, str, int] | None = None
    #: Events this run stored (the figures above are this run's too).
    events_stored: int = 0
    #: Events in the whole store afterwards: more than this run's on a reused store.
    store_events: int = 0


class DemoCompany:
    """Drives one simulated year through the CRM application's public commands."""

    def __init__(self, crm: CRM, *, customers: int, seed: int, now: datetime) -> None:
        self.crm = crm
        self.rng = random.Random(seed)
        self.n_customers = customers
        self.now = now
        self.start = now - timedelta(days=365)
        # A fresh tag per run keeps customer codes unique when the demo is replayed into
        # the same (e.g. PostgreSQL) store; the seeded scenario is otherwise the same.
        self.run_tag = uuid4().hex[:4].upper()
        self.summary = DemoSummary(store=crm.store.url, run_tag=self.run_tag)
        self.owner_of: dict[UUID, str] = {}
        self.account_of: dict[UUID, UUID] = {}

    # ----- helpers ------------------------------------------------------------------
    def _when(self, base: datetime, max_days: float) -> datetime:
        moment = base + timedelta(days=self.rng.uniform(0, max_days))
        return min(moment, self.now - timedelta(minutes=1))

    def _as(self, actor: str, at: datetime) -> AbstractContextManager[CommandContext]:
        return self.crm.context(actor=actor, occurred_at=at, source_system="crm-demo")

    # ----- the scenario -------------------------------------------------------------
    def run(self) -> DemoSummary:
        """Play the whole year into the store and return what was recorded."""
        before = self.crm.app.recorder.max_notification_id() or 0
        n_b2b = max(1, int(self.n_customers * 0.6))
        for i in range(self.n_customers):
            if i < n_b2b:
                self._company(i)
            else:
                self._consumer(i)
        self._handover()
        self.summary.store_events = self.crm.app.recorder.max_notification_id() or 0
        self.summary.events_stored = self.summary.store_events - before
        return self.summary

    def _company(self, i: int) -> None:
        rng = self.rng
        rep = rng.choice(REPS)
        t0 = self._when(self.start, 60)
        kind = "government" if i % 7 == 0 else "enterprise"
        industry = "government" if kind == "government" else rng.choice(INDUSTRIES)
        code = f"{self.run_tag}-E{i:04d}"
        # One transaction per company keeps the demo fast (the bulk path).
        with self.crm.bulk():
            with self._as(rep, t0):
                cid = self.crm.register_customer(
                    kind=kind,
                    name=f"{industry.title()} Group {i}",
                    code=code,
                    contact=ContactDetails(email=f"office{i}@example.com", phone=f"+8620{i:07d}"),
                    source_channel=rng.choice(["trade_fair", "web", "referral", "campaign"]),
                )
                size = rng.choice(["small", "medium", "large", "enterprise"])
                aid = self.crm.open_account(
                    customer_id=cid,
                    name=f"{industry.title()} Group {i}",
                    industry=industry,
                    size=size,
                    tier=rng.choice(["standard", "silver", "gold", "platinum"]),
                )
                self.crm.assign_customer_manager(cid, manager=rep, reason="new customer")
                self.crm.assign_account_manager(aid, manager=rep, reason="new account")
                self.crm.assign_support_owner(cid, owner=rng.choice(SUPPORT), reason="new customer")
                self.crm.assign_segment(cid, segment="b2b-" + industry)
                self.crm.set_credit_limit(
                    aid, limit=Money.of(rng.choice([50_000, 200_000, 1_000_000]), CURRENCY)
                )
                if size in ("large", "enterprise") or kind == "government":
                    self.crm.designate_key_account(
                        aid,
                        criterion="size" if kind == "enterprise" else "sector",
                        note="first-line criterion" if kind == "enterprise" else "public sector",
                    )
                    self.crm.assign_grade(cid, grade="A")
                else:
                    self.crm.assign_grade(cid, grade=rng.choice(["B", "C"]))
            self.owner_of[cid] = rep
            self.account_of[cid] = aid
            self.summary.customers += 1
            self.summary.accounts += 1
            # The decision unit: two or three people at the company.
            for j in range(rng.randint(2, 3)):
                with self._as(rep, self._when(t0, 5)):
                    person = self.crm.register_customer(
                        kind="individual",
                        name=f"Contact {i}-{j}",
                        code=f"{code}-P{j}",
                        contact=ContactDetails(email=f"p{j}.c{i}@example.com"),
                        source_channel="account-contact",
                        parent_id=cid,
                    )
                    self.crm.add_account_contact(
                        aid,
                        customer_id=person,
                        role=["buyer", "it-director", "cfo"][j],
                        decision_maker=j > 0,
                    )
                self.summary.customers += 1
            self._lifecycle(cid, rep, t0)
            self._interactions(cid, rep, t0, aid)
            for _ in range(rng.randint(1, 3)):
                self._opportunity(aid, rep, t0)
            self._service(cid, t0)

    def _consumer(self, i: int) -> None:
        rng = self.rng
        t0 = self._when(self.start, 200)
        rep = rng.choice(REPS)
        with self.crm.bulk(), self._as("call_centre", t0):
            cid = self.crm.register_customer(
                kind="individual",
                name=f"Consumer {i}",
                code=f"{self.run_tag}-C{i:05d}",
                contact=ContactDetails(email=f"consumer{i}@example.com", mobile=f"+86139{i:08d}"),
                source_channel=rng.choice(["web", "mobile_app", "call_centre", "campaign"]),
            )
            aid = self.crm.open_account(
                customer_id=cid, name=f"Consumer {i}", industry="consumer", size="micro"
            )
            self.crm.assign_segment(cid, segment=rng.choice(["young-urban", "family", "senior"]))
            if rng.random() < 0.6:
                self.crm.grant_consent(cid, purpose="marketing", channel="email")
            if rng.random() < 0.3:
                self.crm.grant_consent(cid, purpose="offers", channel="sms")
        self.owner_of[cid] = rep
        self.summary.customers += 1
        self.summary.accounts += 1
        # A few consumer orders straight from the web shop.
        for _ in range(rng.randint(0, 3)):
            at = self._when(t0, 150)
            sku, desc, price = rng.choice(PRODUCTS[1:])
            with self._as("web-shop", at):
                self._order(
                    aid,
                    [
                        OrderLine(
                            sku=sku,
                            description=desc,
                            quantity=1,
                            unit_price=Money(amount=price, currency=CURRENCY),
                        )
                    ],
                    None,
                    at,
                )
        if rng.random() < 0.15:
            with self._as("consumer", self._when(t0, 200)):
                self.crm.withdraw_consent(
                    cid, purpose="marketing", channel="email", reason="unsubscribed"
                )
        self._interactions(cid, "call_centre", t0, aid, n=rng.randint(1, 3))
        self._service(cid, t0)

    def _lifecycle(self, cid: UUID, rep: str, t0: datetime) -> None:
        path = ["development", "growth", "maturity"]
        steps = self.rng.randint(0, 3)
        at = t0
        for stage in path[:steps]:
            at = self._when(at, 60)
            with self._as(rep, at):
                self.crm.change_lifecycle_stage(cid, to_stage=stage, reason="quarterly review")
        if steps == 3 and self.rng.random() < 0.1:
            with self._as(rep, self._when(at, 30)):
                self.crm.change_lifecycle_stage(
                    cid, to_stage="termination", reason="moved to a competitor"
                )

    def _interactions(
        self, cid: UUID, rep: str, t0: datetime, aid: UUID, n: int | None = None
    ) -> None:
        rng = self.rng
        at = t0
        for _ in range(n if n is not None else rng.randint(2, 6)):
            at = self._when(at, 45)
            commitments = []
            if rng.random() < 0.3:
                commitments.append(
                    {
                        "description": "send revised price list",
                        "owner": rep,
                        "due": at + timedelta(days=7),
                    }
                )
            with self._as(rep, at):
                self.crm.log_contact(
                    cid,
                    channel=rng.choice(CHANNELS),
                    direction=rng.choice(["inbound", "outbound"]),
                    summary=rng.choice(
                        [
                            "discussed renewal",
                            "asked for a quote",
                            "follow-up on delivery",
                            "product demo",
                            "complained about invoice",
                            "seminar invitation",
                        ]
                    ),
                    commitments=commitments,
                    next_step="call back" if commitments else None,
                    next_step_due=at + timedelta(days=7) if commitments else None,
                    account_id=aid,
                )
            self.summary.contacts_logged += 1

    def _opportunity(self, aid: UUID, rep: str, t0: datetime) -> None:
        rng = self.rng
        crm = self.crm
        at = self._when(t0, 200)
        sku, desc, price = rng.choice(PRODUCTS)
        qty = rng.randint(5, 80)
        amount = Money(amount=price * qty, currency=CURRENCY)
        with self._as(rep, at):
            oid = crm.open_opportunity(
                aid,
                name=f"{qty} x {desc}",
                expected_close=(at + timedelta(days=rng.randint(30, 150))).date(),
                owner=rep,
                amount=amount if rng.random() < 0.9 else None,
            )
        stages = ["qualification", "needs_analysis", "proposal", "negotiation"]
        reached = rng.randint(0, 4)
        quote_id: UUID | None = None
        for stage in stages[:reached]:
            at = self._when(at, 20)
            with self._as(rep, at):
                crm.stage_opportunity(aid, oid, stage=stage)
                if stage == "proposal":
                    quote_id = crm.issue_quote(
                        aid,
                        oid,
                        amount=amount,
                        valid_until=(at + timedelta(days=30)).date(),
                        discount_pct=rng.choice([0, 3, 5]),
                    )
                if stage == "negotiation" and quote_id is not None:
                    quote_id = crm.revise_quote(
                        aid,
                        quote_id,
                        amount=Money(
                            amount=(amount.amount * Decimal("0.95")).quantize(Decimal("0.01")),
                            currency=CURRENCY,
                        ),
                        valid_until=(at + timedelta(days=30)).date(),
                        discount_pct=5,
                    )
        outcome = rng.random()
        at = self._when(at, 20)
        try:
            with self._as(rep, at):
                if reached == 4 and outcome < 0.6:
                    opp = crm.account(aid).opportunity(oid)
                    if opp.amount is None:
                        crm.revise_opportunity(aid, oid, amount=amount, reason="final scope agreed")
                    if quote_id is not None:
                        crm.accept_quote(aid, quote_id)
                    crm.win_opportunity(aid, oid, reason="best total cost of ownership")
                    self.summary.opportunities["won"] += 1
                    self._order(
                        aid,
                        [
                            OrderLine(
                                sku=sku,
                                description=desc,
                                quantity=qty,
                                unit_price=Money(amount=price, currency=CURRENCY),
                            )
                        ],
                        oid,
                        at,
                        quote_id=quote_id,
                    )
                elif outcome < 0.25 and reached >= 1:
                    crm.lose_opportunity(
                        aid,
                        oid,
                        reason=rng.choice(["price", "timing", "features"]),
                        competitor=rng.choice(["Lenovo", "HP", "Huawei"]),
                    )
                    self.summary.opportunities["lost"] += 1
                else:
                    self.summary.opportunities["open"] += 1
                    opp = crm.account(aid).opportunity(oid)
                    if opp.expected_close < self.now.date():
                        # Deals that slipped: the rep moves the close date, as reps do.
                        crm.revise_opportunity(
                            aid,
                            oid,
                            expected_close=(self.now + timedelta(days=rng.randint(14, 120))).date(),
                            reason="customer postponed the decision",
                        )
                    if opp.amount is not None:
                        self.summary.open_pipeline[opp.amount.currency] += opp.amount.amount
        except CRMError as exc:  # the demo shows rules at work, never swallows silently
            raise RuntimeError(f"demo scenario broke a rule: {exc}") from exc

    def _order(
        self,
        aid: UUID,
        lines: list[OrderLine],
        oid: UUID | None,
        at: datetime,
        quote_id: UUID | None = None,
    ) -> None:
        rng = self.rng
        crm = self.crm
        order_id = crm.place_order(aid, lines=lines, opportunity_id=oid, quote_id=quote_id)
        crm.request_order_confirmation(aid, order_id)
        with self._as("erp", at + timedelta(hours=2)):
            if rng.random() < 0.15:
                crm.reject_order(
                    aid,
                    order_id,
                    reason=rng.choice(["credit", "margin", "availability"]),
                    detail="ERP check failed",
                )
                self.summary.orders["rejected"] += 1
                return
            crm.confirm_order(aid, order_id, erp_reference=f"SO-{rng.randint(100000, 999999)}")
            self.summary.orders["confirmed"] += 1
        ship_at = min(at + timedelta(days=rng.randint(1, 10)), self.now - timedelta(minutes=1))
        with self._as("erp", ship_at):
            crm.ship_order(aid, order_id, shipment_ref=f"SH-{rng.randint(1000, 9999)}")
            crm.deliver_order(aid, order_id)
            total = crm.account(aid).order(order_id).total
            invoice_id = crm.issue_invoice(
                aid, amount=total, order_id=order_id, due_date=(ship_at + timedelta(days=30)).date()
            )
            if rng.random() < 0.8:
                crm.receive_payment(
                    aid, amount=total, invoice_id=invoice_id, reference="bank transfer"
                )
        if rng.random() < 0.03:
            with self._as(
                "erp", min(ship_at + timedelta(days=14), self.now - timedelta(minutes=1))
            ):
                crm.return_order(aid, order_id, reason="damaged in transit")

    def _service(self, cid: UUID, t0: datetime) -> None:
        rng = self.rng
        crm = self.crm
        for _ in range(rng.choices([0, 1, 2], weights=[5, 4, 1])[0]):
            opened = self._when(t0, 300)
            kind = rng.choice(["inquiry", "inquiry", "request", "complaint", "incident"])
            with self._as("call_centre", opened):
                tid = crm.open_ticket(
                    cid,
                    kind=kind,
                    subject=f"{kind}: {rng.choice(['delivery', 'invoice', 'repair', 'pricing'])}",
                    channel=rng.choice(["phone", "email", "web", "call_centre"]),
                    priority=rng.choice(["low", "normal", "normal", "high", "urgent"]),
                )
                crm.assign_ticket(
                    cid, tid, department=rng.choice(DEPARTMENTS), assignee=rng.choice(SUPPORT)
                )
            self.summary.tickets_opened += 1
            fate = rng.random()
            if fate < 0.7:  # answered and resolved, usually in time
                respond = opened + timedelta(minutes=rng.choice([3, 8, 25, 90, 600]))
                done = respond + timedelta(hours=rng.choice([1, 3, 20, 50]))
                if done >= self.now:
                    continue
                with self._as(rng.choice(SUPPORT), respond):
                    crm.respond_to_ticket(cid, tid, message="we are looking into it")
                    if kind == "incident" and rng.random() < 0.5:
                        crm.schedule_field_visit(
                            cid, tid, visit_at=respond + timedelta(days=1), engineer="engineer.ma"
                        )
                with self._as(rng.choice(SUPPORT), done):
                    crm.record_sla_breaches(cid, now=done)
                    crm.resolve_ticket(
                        cid,
                        tid,
                        answer="fixed; see knowledge base",
                        knowledge_base_ref=f"KB-{rng.randint(100, 999)}",
                    )
                    crm.record_satisfaction(cid, score=rng.choice([2, 3, 4, 5, 5]), ticket_id=tid)
                    if rng.random() < 0.8:
                        crm.close_ticket(cid, tid)
            elif fate < 0.8:  # escalated, still open
                with self._as("supervisor", opened + timedelta(hours=1)):
                    crm.escalate_ticket(
                        cid, tid, reason="customer called again", escalated_to="service-manager"
                    )
        # The nightly SLA sweep: record breaches of tickets still open now.
        with self._as("sla-monitor", self.now):
            crm.record_sla_breaches(cid, now=self.now)
        customer = crm.customer(cid)
        self.summary.open_tickets += sum(
            1 for t in customer.tickets.values() if t.status is TicketStatus.OPEN
        )
        self.summary.sla_breaches += sum(1 for t in customer.tickets.values() if t.breached)

    def _handover(self) -> None:
        """A sales rep leaves: their customers and accounts go to a successor, with the reason.

        The successor sees the whole history (``crm report handover zhang.min``)."""
        leaver, successor = REPS[0], REPS[1]
        moved = 0
        with self.crm.bulk(), self._as("sales.director", self.now - timedelta(hours=1)):
            for cid, owner in self.owner_of.items():
                if owner == leaver and self.crm.customer(cid).manager == leaver:
                    reason = f"{leaver} left the company"
                    self.crm.assign_customer_manager(cid, manager=successor, reason=reason)
                    if cid in self.account_of:
                        aid = self.account_of[cid]
                        self.crm.assign_account_manager(aid, manager=successor, reason=reason)
                        for deal in self.crm.account(aid).open_pipeline():
                            if deal.owner == leaver:
                                self.crm.reassign_opportunity(
                                    aid, deal.opportunity_id, owner=successor, reason=reason
                                )
                    moved += 1
        self.summary.handover = (leaver, successor, moved)


def run_demo(
    crm: CRM, *, customers: int = 300, seed: int = 7, now: datetime | None = None
) -> DemoSummary:
    """Play the demo scenario into ``crm`` and return what was stored."""
    return DemoCompany(crm, customers=customers, seed=seed, now=now or datetime.now(UTC)).run()


def audit_line(crm: CRM) -> tuple[str, str] | None:
    """The demo's tamper-evidence line: the log verified against its hash chain, and the
    digest an auditor would keep (None for an in-memory store, which is not chained)."""
    from crm_domain.audit.proofs import current_digest
    from crm_domain.audit.verify import verify_log

    if crm.store.in_memory:
        return None
    report = verify_log(crm, snapshots=False)
    if not report.intact:
        return "tamper evidence", report.summary()
    return "tamper evidence", (
        f"{report.events:,} events verified against the hash chain; "
        f"digest {current_digest(crm)} (crm audit --help)"
    )
