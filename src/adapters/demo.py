"""``crm demo``: a year of a small company's CRM, replayed into a real store in seconds.

A few hundred customers (enterprises, government bodies, consumers) with accounts and
contacts, logged interactions, opportunities moving through the pipeline, versioned
quotes, orders that ERP confirms or rejects (after the CRM's own credit check, which a
supervisor may override), returns credited, invoices and payments, service tickets on
the SLA calendar (some breached), consent changes, and a sales rep leaving whose
customers are handed over. Business time is spread over the last year through the
command context's ``occurred_at``; every command carries an actor.

Service levels run on a Guangzhou office's calendar (:func:`demo_calendar`: Asia/Shanghai,
09:00-12:00 and 13:30-18:00 on weekdays, Saturday mornings, China's public holidays and
make-up working days) unless the settings configure one. A late response or resolution
records its breach itself; at the end one scan (``crm sla scan``) records the breaches of
tickets still open, and the summary counts both.
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
from crm_domain.errors import (
    CreditCheckError,
    CRMError,
    DiscountApprovalRequiredError,
    NotErpSourceError,
    QuoteExpiredError,
)
from crm_domain.sla import BusinessCalendar, parse_hours
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
    #: Breaches recorded by the late response or resolution itself, and by the final scan.
    sla_breaches_at_command: int = 0
    sla_breaches_by_scan: int = 0
    #: The office calendar the service levels ran on, as one line.
    calendar: str = ""
    field_visits_completed: int = 0
    open_pipeline: dict[str, Decimal] = field(default_factory=lambda: defaultdict(Decimal))
    handover: tuple[str, str, int] | None = None
    #: Changes the handover moved, by kind (customer, account, opportunity, commitment).
    handed_over: Counter[str] = field(default_factory=Counter)
    #: Lifecycle transitions the scan at the end of the year recorded, by rule.
    lifecycle: dict[str, int] = field(default_factory=dict)
    #: What the quote rules did in the showcase deal, in one line.
    quote_rules: str = ""
    #: Events this run stored (the figures above are this run's too).
    events_stored: int = 0
    #: The ERP and credit rules at work, one line each (see ``DemoCompany._erp_and_credit``).
    erp_and_credit: list[str] = field(default_factory=list)
    #: Events in the whole store afterwards: more than this run's on a reused store.
    store_events: int = 0

    @property
    def sla_breaches(self) -> int:
        """Every breach recorded, both ways."""
        return self.sla_breaches_at_command + self.sla_breaches_by_scan


def demo_calendar() -> BusinessCalendar:
    """The demo's office: Guangzhou, split working day, Saturday mornings, China's holidays."""
    return BusinessCalendar(
        name="Guangzhou office",
        timezone="Asia/Shanghai",
        country="CN",
        hours=parse_hours({"mon-fri": ["09:00-12:00", "13:30-18:00"], "sat": ["09:00-12:00"]}),
    )


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
        self.summary = DemoSummary(
            store=crm.store.url, run_tag=self.run_tag, calendar=crm.sla.calendar.describe()
        )
        self.owner_of: dict[UUID, str] = {}
        self.account_of: dict[UUID, UUID] = {}

    # ----- helpers ------------------------------------------------------------------
    def _when(self, base: datetime, max_days: float) -> datetime:
        moment = base + timedelta(days=self.rng.uniform(0, max_days))
        return min(moment, self.now - timedelta(minutes=1))

    def _as(self, actor: str, at: datetime) -> AbstractContextManager[CommandContext]:
        return self.crm.context(actor=actor, occurred_at=at, source_system="crm-demo")

    def _as_erp(self, at: datetime) -> AbstractContextManager[CommandContext]:
        """ERP's answers: only a source system the settings name as ERP confirms orders."""
        return self.crm.context(
            actor="erp", occurred_at=at, source_system=self.crm.settings.erp_source
        )

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
        self._quote_rules()
        self._erp_and_credit()
        self._handover()
        self._lifecycle_scan()
        # The scheduler's scan (``crm sla scan``, every minute in production): breaches of
        # tickets still open now; late responses and resolutions recorded theirs already.
        with self._as("sla-scan", self.now):
            self.summary.sla_breaches_by_scan = len(self.crm.scan_sla_breaches(as_of=self.now))
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
        try:
            crm.request_order_confirmation(aid, order_id)
        except CreditCheckError as refused:  # over the credit limit: a supervisor decides
            if rng.random() < 0.5:
                crm.cancel_order(aid, order_id, reason=str(refused)[:500])
                self.summary.orders["refused on credit"] += 1
                return
            with self._as("sales.director", at):
                crm.request_order_confirmation(
                    aid,
                    order_id,
                    credit_override={
                        "supervisor": "sales.director",
                        "reason": "long-standing customer, payment plan agreed",
                    },
                )
            self.summary.orders["credit override"] += 1
        with self._as_erp(at + timedelta(hours=2)):
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
        with self._as_erp(ship_at):
            crm.ship_order(aid, order_id, shipment_ref=f"SH-{rng.randint(1000, 9999)}")
            crm.deliver_order(aid, order_id)
            total = crm.account(aid).order(order_id).total
            invoice_id = crm.issue_invoice(
                aid, amount=total, order_id=order_id, due_date=(ship_at + timedelta(days=30)).date()
            )
            paid = rng.random() < 0.8
            if paid:
                crm.receive_payment(
                    aid, amount=total, invoice_id=invoice_id, reference="bank transfer"
                )
        if rng.random() < 0.03:
            with self._as_erp(min(ship_at + timedelta(days=14), self.now - timedelta(minutes=1))):
                crm.return_order(aid, order_id, reason="damaged in transit")
                crm.issue_credit_note(aid, invoice_id, amount=total, reason="returned")
                if paid:
                    crm.issue_refund(aid, invoice_id, amount=total, reason="returned")
                self.summary.orders["returned and credited"] += 1

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
                            cid,
                            tid,
                            visit_at=respond + timedelta(minutes=30),
                            engineer="engineer.ma",
                        )
                        with self._as("engineer.ma", respond + timedelta(minutes=45)):
                            crm.complete_field_visit(
                                cid, tid, outcome="fixed", result="replaced the faulty part"
                            )
                        self.summary.field_visits_completed += 1
                    elif kind == "complaint" and rng.random() < 0.3:
                        crm.wait_on_customer(cid, tid, reason="asked for photos of the damage")
                        with self._as("customer", respond + timedelta(minutes=30)):
                            crm.record_customer_reply(cid, tid, message="photos attached")
                with self._as(rng.choice(SUPPORT), done):
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
        customer = crm.customer(cid)
        self.summary.open_tickets += sum(
            1 for t in customer.tickets.values() if t.status is TicketStatus.OPEN
        )
        # Breaches the late responses and resolutions recorded themselves.
        self.summary.sla_breaches_at_command += sum(
            int(t.breached) + int(t.response_breached) for t in customer.tickets.values()
        )

    def _quote_rules(self) -> None:
        """The quote rules at work on one framework deal: an 18% discount waits for the sales
        director, an acceptance after the quote lapsed is refused, the re-issued quote is
        approved and accepted, the win books its total; then the scheduler's
        ``crm quotes expire`` records every other lapsed quote."""
        if not self.account_of:
            return
        crm = self.crm
        cid, aid = next(iter(self.account_of.items()))
        rep, director = self.owner_of.get(cid, REPS[2]), "sales.director"
        _, desc, price = PRODUCTS[0]
        listed = Money(amount=price * 20, currency=CURRENCY)
        offered = Money(
            amount=(price * 20 * Decimal("0.82")).quantize(Decimal("0.01")), currency=CURRENCY
        )
        at = self.now - timedelta(days=40)
        refused = []
        with self._as(rep, at):
            oid = crm.open_opportunity(
                aid,
                name=f"20 x {desc} (framework deal)",
                expected_close=(self.now + timedelta(days=30)).date(),
                owner=rep,
                amount=listed,
            )
            quote = crm.issue_quote(
                aid,
                oid,
                amount=offered,
                valid_until=(at + timedelta(days=14)).date(),
                discount_pct=18,
            )
            try:
                crm.accept_quote(aid, quote)
            except DiscountApprovalRequiredError:
                refused.append("an 18% discount before approval")
        with self._as(director, at + timedelta(days=1)):
            crm.approve_quote_discount(aid, quote, approver=director, note="framework deal")
        late = at + timedelta(days=20)
        with self._as(rep, late):
            try:
                crm.accept_quote(aid, quote)
            except QuoteExpiredError:
                refused.append("a quote 6 days past its validity")
            quote = crm.issue_quote(
                aid,
                oid,
                amount=offered,
                valid_until=(late + timedelta(days=14)).date(),
                discount_pct=18,
            )
        with self._as(director, late + timedelta(hours=2)):
            crm.approve_quote_discount(aid, quote, approver=director, note="framework deal")
        with self._as(rep, late + timedelta(days=2)):
            crm.accept_quote(aid, quote)
            crm.win_opportunity(aid, oid, reason="framework agreement signed")
        self.summary.opportunities["won"] += 1
        with self._as("scheduler", self.now - timedelta(hours=2)):
            expired = crm.expire_quotes()
        self.summary.quote_rules = (
            f"refused {' and '.join(refused)}; won at the quote's {offered.amount:,} "
            f"{CURRENCY} (listed {listed.amount:,}); {len(expired)} lapsed quotes expired"
        )

    def _erp_and_credit(self) -> None:
        """The issue's case: the front end tries to promise 500,000 CNY on a 10,000 CNY credit
        limit. The CRM refuses (only ERP confirms; the credit check names its figures); a
        supervisor overrides with a reason, and ERP confirms."""
        crm, at = self.crm, self.now - timedelta(minutes=30)
        lines = self.summary.erp_and_credit
        with self._as("li.wei", at):
            cid = crm.register_customer(
                kind="enterprise", name="Huanan Hardware", code=f"{self.run_tag}-HH"
            )
            aid = crm.open_account(customer_id=cid, name="Huanan Hardware", size="small")
            crm.set_credit_limit(aid, limit=Money.of(10_000, CURRENCY))
            big = [OrderLine(sku="CNC-9", quantity=1, unit_price=Money.of(500_000, CURRENCY))]
            order = crm.place_order(aid, lines=big)
        with self.crm.context(actor="li.wei", occurred_at=at, source_system="crm-web"):
            try:
                crm.confirm_order(aid, order)
            except NotErpSourceError as refused:
                lines.append(f"front end confirms: refused ({refused})")
            try:
                crm.request_order_confirmation(aid, order)
            except CreditCheckError as refused:
                lines.append(f"confirmation requested: refused ({refused})")
        with self._as("sales.director", at + timedelta(minutes=5)):
            crm.request_order_confirmation(
                aid,
                order,
                credit_override={"supervisor": "sales.director", "reason": "prepayment received"},
            )
        lines.append("supervisor override: recorded (sales.director, prepayment received)")
        with self._as_erp(at + timedelta(minutes=10)):
            crm.confirm_order(aid, order, erp_reference="SO-500000")
        status = crm.account(aid).order(order).status.value
        lines.append(f"ERP confirms (source {crm.settings.erp_source}): order {status}")
        self.summary.customers += 1
        self.summary.accounts += 1

    def _handover(self) -> None:
        """A sales rep leaves: ``crm.hand_over`` moves their customers, accounts, open deals
        and open promises to a successor in one transaction, with the reason.

        The successor sees the whole history (``crm report handover zhang.min``). Only this
        run's customers are named, so a store with earlier runs keeps theirs as they were."""
        leaver, successor = REPS[0], REPS[1]
        mine = [cid for cid, owner in self.owner_of.items() if owner == leaver]
        with self._as("sales.director", self.now - timedelta(hours=1)):
            result = self.crm.hand_over(
                leaver, successor, reason=f"{leaver} left the company", customers=mine
            )
        self.summary.handed_over.update(m.kind for m in result.moves)
        self.summary.handover = (leaver, successor, len(result.customers))

    def _lifecycle_scan(self) -> None:
        """The lifecycle policy as of the end of the year: customers who bought are acquired,
        developed or retained; those who stopped buying are at risk (``crm lifecycle scan``)."""
        with self.crm.context(actor="lifecycle-scan", source_system="crm-demo"):
            result = self.crm.scan_lifecycle(as_of=self.now, customers=list(self.owner_of))
        self.summary.lifecycle = result.transitions


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
