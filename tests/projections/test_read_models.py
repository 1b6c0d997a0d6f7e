"""Each read model's answers on the hand-made history of ``conftest.known_history``."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal
from uuid import UUID

import orjson
import pytest
from eventsourcing.persistence import Notification
from projection_history import T0, Known, at, cny, project

from crm_domain.application import CRM
from crm_domain.customer import Customer
from crm_domain.errors import CustomerNotFoundError, InvalidCommandError
from crm_domain.pipeline import DEFAULT_PIPELINE, Pipeline
from projections.customer360 import Customer360Queries
from projections.customer_value import CustomerValueQueries, quintiles
from projections.handover import HandoverQueries
from projections.pipeline import PipelineQueries
from projections.readmodel import LoggedEvent
from projections.runner import open_view
from projections.service_desk import ServiceDeskQueries
from projections.timeline import TimelineQueries
from projections.views import ReadModelView

D = Decimal


def test_customer360_profile_contacts_tickets_and_value(view: ReadModelView, known: Known) -> None:
    q = Customer360Queries(view.engine)
    acme = q.get(known.acme)
    assert (acme.name, acme.code, acme.kind) == ("Acme Ltd", "ACME", "enterprise")
    assert (acme.manager, acme.lifecycle_stage, acme.segment) == (
        "li",
        "development",
        "manufacturing",
    )
    assert acme.email == "buy@acme.example"
    assert acme.consents == {"marketing": ["email"]}
    assert acme.contacts_logged == 3
    assert acme.contact_counts == {"phone": 2, "email": 1}
    assert acme.last_contact_at == T0 + timedelta(minutes=30)
    assert acme.last_contact_channel == "phone"
    assert acme.open_tickets == 1  # the complaint was resolved, the inquiry is open
    assert acme.satisfaction == 5
    # 100000 confirmed; 5000 confirmed then returned; 7000 rejected
    assert acme.lifetime_value == {"CNY": D("100000")}
    bob = q.by_code("BOB")
    assert (bob.manager, bob.open_tickets, bob.satisfaction) == (None, 1, 3)
    assert bob.lifetime_value == {"CNY": D("300")}


def test_customer360_search_filters_and_pages(view: ReadModelView, known: Known) -> None:
    q = Customer360Queries(view.engine)
    assert [c.code for c in q.search().items] == ["ACME", "BOB"]
    assert [c.code for c in q.search(manager="li").items] == ["ACME"]
    assert [c.code for c in q.search(name_contains="chen").items] == ["BOB"]
    assert q.search(name_contains="%").total == 0  # wildcards are matched literally
    page2 = q.search(page=2, page_size=1)
    assert (page2.total, page2.pages, [c.code for c in page2.items]) == (2, 2, ["BOB"])
    with pytest.raises(CustomerNotFoundError):
        q.get(known.acme_account)
    with pytest.raises(InvalidCommandError):
        q.search(page=0)


def test_timeline_newest_first_paged_and_filtered(
    view: ReadModelView, known: Known, crm: CRM
) -> None:
    q = TimelineQueries(view.engine)
    customer_events = len(crm.history(known.acme))
    account_events = len(crm.history(known.acme_account))
    everything = q.for_customer(known.acme, page_size=500)
    assert everything.total == customer_events + account_events
    stamps = [(e.occurred_at, e.position) for e in everything.items]
    assert stamps == sorted(stamps, reverse=True)
    assert everything.items[0].event_type == "PaymentReceived"
    assert everything.items[-1].event_type == "Registered"
    first, second = (
        q.for_customer(known.acme, page_size=5),
        q.for_customer(known.acme, page=2, page_size=5),
    )
    assert [e.position for e in first.items + second.items] == [
        e.position for e in everything.items[:10]
    ]
    assert q.for_customer(known.acme, include_accounts=False).total == customer_events
    contacts = q.for_customer(known.acme, event_types=["ContactLogged"]).items
    assert [c.channel for c in contacts] == ["phone", "email", "phone"]
    assert "promised: send price list (li)" in contacts[-1].summary
    assert contacts[0].actor == "tester"
    # the account's own events plus the contact logged about it
    assert q.for_account(known.acme_account).total == account_events + 1
    since = q.for_customer(known.acme, since=T0 + timedelta(days=12))
    assert {e.event_type for e in since.items} == {
        "OrderShipped",
        "OrderDelivered",
        "OrderReturned",
        "InvoiceIssued",
        "PaymentReceived",
    }


def test_pipeline_totals_forecast_conversion_and_win_rate(
    view: ReadModelView, known: Known
) -> None:
    q = PipelineQueries(view.engine)
    open_deals = q.open_opportunities()
    assert [o.opportunity_id for o in open_deals.items] == [known.open_deal]
    deal = open_deals.items[0]
    assert (deal.stage, deal.owner, deal.amount, deal.weighted) == (
        "proposal",
        "wang",
        D("50000"),
        D("30000"),
    )
    assert q.open_opportunities(owner="li").total == 0
    [proposal] = q.by_stage()
    assert (proposal.stage, proposal.count, proposal.amount, proposal.weighted) == (
        "proposal",
        1,
        {"CNY": D("50000")},
        {"CNY": D("30000")},
    )
    assert [(t.stage, t.owner) for t in q.by_stage_and_owner()] == [("proposal", "wang")]
    by_category = {f.key: (f.count, f.amount, f.weighted) for f in q.forecast_by_category()}
    assert by_category == {
        "best_case": (1, D("50000"), D("30000")),
        "closed": (1, D("100000"), D("100000")),
        "omitted": (1, D("20000"), D("0")),
    }
    by_month = {f.key: (f.amount, f.weighted) for f in q.forecast_by_month()}
    assert by_month == {"2025-03": (D("100000"), D("100000")), "2025-06": (D("50000"), D("30000"))}
    assert [f.key for f in q.forecast_by_month(since=date(2025, 4, 1))] == ["2025-06"]
    conversion = {c.stage: (c.reached, c.advanced, c.rate) for c in q.conversion()}
    assert conversion == {
        "prospecting": (3, 2, D("0.6667")),
        "qualification": (2, 2, D("1")),
        "needs_analysis": (1, 1, D("1")),
        "proposal": (1, 0, D("0")),
        "negotiation": (0, 0, None),
    }
    transitions = {(t.from_stage, t.to_stage): t.count for t in q.transitions()}
    assert transitions == {
        (None, "prospecting"): 3,
        ("prospecting", "qualification"): 2,
        ("prospecting", "closed_lost"): 1,
        ("qualification", "needs_analysis"): 1,
        ("qualification", "proposal"): 1,
        ("needs_analysis", "closed_won"): 1,
    }
    wins = q.win_rate()
    assert (wins.won, wins.lost, wins.rate, wins.average_cycle_days) == (1, 1, D("0.5"), D("10.00"))
    assert q.win_rate(owner="wang").rate is None


def test_service_desk_lists_and_measures(view: ReadModelView, known: Known, crm: CRM) -> None:
    q = ServiceDeskQueries(view.engine)
    open_tickets = q.open_tickets()
    assert [t.ticket_id for t in open_tickets.items] == [known.inquiry, known.bob_ticket]
    assert open_tickets.items[1].customer_name == "Bob Chen"
    assert [t.ticket_id for t in q.open_tickets(assignee="zhang").items] == [known.inquiry]
    assert q.open_tickets(priority="urgent").total == 0
    counts = [(c.priority, c.assignee, c.count) for c in q.open_by_priority_and_assignee()]
    assert counts == [("normal", "zhang", 1), ("low", None, 1)]
    assert [t.ticket_id for t in q.breached().items] == [known.bob_ticket]
    inquiry_due = crm.customer(known.acme).ticket(known.inquiry).due_at
    soon = q.due_soon(now=inquiry_due - timedelta(minutes=5), within=timedelta(minutes=10))
    assert [t.ticket_id for t in soon.items] == [known.inquiry]
    assert q.due_soon(now=inquiry_due - timedelta(hours=1), within=timedelta(minutes=10)).total == 0
    times = q.response_times()
    assert (times.responded, times.average_first_response_minutes) == (1, D("30.0"))
    assert (times.resolved, times.average_resolution_minutes) == (1, D("120.0"))
    sat = q.satisfaction()
    assert (sat.count, sat.average) == (2, D("4.00"))
    assert sat.by_class == {"loyal": 1, "at_risk": 1, "dissatisfied": 0}
    assert q.satisfaction(customer_id=known.bob).average == D("3.00")
    [complaints] = q.complaints_per_customer()
    assert (complaints.customer_id, complaints.complaints, complaints.open_complaints) == (
        known.acme,
        1,
        0,
    )


def test_customer_value_revenue_rfm_and_pareto(view: ReadModelView, known: Known) -> None:
    q = CustomerValueQueries(view.engine)
    assert q.currencies() == ["CNY"]
    revenue = q.revenue().items
    assert [(r.customer_id, r.booked, r.orders) for r in revenue] == [
        (known.acme, D("100000"), 1),
        (known.bob, D("300"), 1),
    ]
    assert (revenue[0].invoiced, revenue[0].paid) == (D("100000"), D("60000"))
    scores = q.rfm(as_of=T0 + timedelta(days=20)).items
    # two customers, equal on recency and purchase days: ties go by revenue, so the quintiles
    # by rank put Acme (more revenue) in the top fifth of each measure and Bob in the bottom
    assert [(s.customer_id, s.recency_days, s.frequency, s.code) for s in scores] == [
        (known.acme, 9, 1, "555"),
        (known.bob, 9, 1, "111"),
    ]
    pareto = q.pareto()
    assert (
        pareto.customers,
        pareto.top_customers,
        pareto.top_revenue,
        pareto.total_revenue,
        pareto.top_share,
    ) == (2, 1, D("100000"), D("100300"), D("0.9970"))
    assert q.pareto(currency="USD").customers == 0


def test_quintiles_are_equal_sized_with_ties_kept_in_order() -> None:
    # rank(method="first") then qcut 5: ties are ranked in the order given
    assert quintiles([1, 1, 2, 3, 4, 5, 6, 7, 8, 9]) == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert quintiles([9, 9, 9]) == [1, 3, 5]
    assert quintiles([7]) == [1]


def test_handover_pack_for_a_leaving_manager(view: ReadModelView, known: Known) -> None:
    q = HandoverQueries(view.engine)
    pack = q.for_manager("li", now=T0 + timedelta(days=3))
    assert [c.customer_id for c in pack.customers] == [known.acme]
    assert pack.customers[0].lifecycle_stage == "development"
    assert [a.account_id for a in pack.accounts] == [known.acme_account]
    assert [(o.opportunity_id, o.stage, o.near_signing) for o in pack.opportunities] == [
        (known.open_deal, "proposal", True)
    ]
    assert [(x.quote_id, x.version, x.discount_pct, x.amount) for x in pack.quotes] == [
        (known.quote_v2, 2, D("6"), D("47000"))
    ]
    [promise] = pack.commitments
    assert (promise.description, promise.owner, promise.overdue) == ("send price list", "li", True)
    assert [t.ticket_id for t in pack.tickets] == [known.inquiry]
    assert not q.for_manager("li", now=T0).commitments[0].overdue
    wang = q.for_manager("wang", now=T0)
    assert ([o.opportunity_id for o in wang.opportunities], wang.customers) == (
        [known.open_deal],
        [],
    )
    assert [(m.manager, m.customers, m.accounts) for m in q.managers()] == [("li", 1, 1)]
    with pytest.raises(InvalidCommandError):
        q.for_manager(" ", now=T0)


def _promising_contacts(crm: CRM, customer_id: UUID) -> list[UUID]:
    """Ids of the customer's logged contacts that made commitments, oldest first."""
    return [
        e.contact_id
        for e in crm.history(customer_id)
        if isinstance(e, Customer.ContactLogged) and e.commitments
    ]


def test_handover_stops_listing_a_commitment_once_fulfilled(crm: CRM, known: Known) -> None:
    [first_contact] = _promising_contacts(crm, known.acme)
    with at(crm, 400):
        second = crm.log_contact(
            known.acme,
            channel="visit",
            direction="outbound",
            summary="site visit",
            commitments=[
                {"description": "send drawings", "owner": "li"},
                {"description": "book a demo", "owner": "wang"},
                {"description": "call back", "owner": "li"},
            ],
            logged_by="li",
        )
    assert _promising_contacts(crm, known.acme) == [first_contact, second]
    # one batch for everything, and one event per batch, give the same answer
    for batch_size in (100_000, 1):
        view = project(crm, ["handover"], batch_size=batch_size)
        promises = HandoverQueries(view.engine).for_manager("li", now=T0).commitments
        assert [(p.description, p.contact_id, p.index) for p in promises] == [
            ("send price list", first_contact, 0),
            ("send drawings", second, 0),
            ("book a demo", second, 1),
            ("call back", second, 2),
        ]
    with at(crm, 500):
        crm.fulfil_commitment(known.acme, contact_id=second, index=1, note="demo booked")
        crm.fulfil_commitment(known.acme, contact_id=first_contact, index=0)
    # applied to a view that already listed them, and rebuilt from scratch
    incremental = project(crm, ["handover"], view=view)
    for built in (incremental, project(crm, ["handover"]), project(crm, batch_size=1)):
        left = HandoverQueries(built.engine).for_manager("li", now=T0).commitments
        assert [(p.description, p.owner, p.contact_id, p.index) for p in left] == [
            ("send drawings", "li", second, 0),
            ("call back", "li", second, 2),
        ]
    # the timeline shows the fulfilments
    entries = TimelineQueries(built.engine).for_customer(
        known.acme, event_types=["CommitmentFulfilled"]
    )
    assert [e.summary for e in entries.items] == [
        f"commitment fulfilled: contact_id={first_contact}, index=0",
        f"commitment fulfilled: contact_id={second}, index=1, note=demo booked",
    ]


def _without_forecast_category(notification: Notification) -> Notification:
    """The notification as it was stored before ``forecast_category`` existed."""
    state = orjson.loads(notification.state)
    del state["forecast_category"]
    return replace(notification, state=orjson.dumps(state))


def test_pipeline_forecast_category_comes_from_the_opening_event() -> None:
    # A company whose first stage already counts as "commit" in its forecast.
    eager = Pipeline(
        name="eager",
        stages=tuple(
            replace(s, forecast_category="commit") if s.name == "prospecting" else s
            for s in DEFAULT_PIPELINE.stages
        ),
    )
    crm = CRM("memory://", pipeline=eager)
    account = crm.open_account(
        customer_id=crm.register_customer(kind="enterprise", name="Acme", code="ACME"),
        name="Acme buying",
    )
    new = crm.open_opportunity(
        account, name="new", owner="li", expected_close=date(2025, 6, 1), amount=cny(1000)
    )
    old = crm.open_opportunity(
        account, name="old", owner="li", expected_close=date(2025, 6, 1), amount=cny(300)
    )
    notifications = crm.app.recorder.select_notifications(start=1, limit=1000)
    opened = [n for n in notifications if n.topic.endswith("Account.OpportunityOpened")]
    assert len(opened) == 2
    # the second opening as an event stored before the field existed
    stored = [_without_forecast_category(n) if n.id == opened[1].id else n for n in notifications]
    assert getattr(crm.app.mapper.to_domain_event(stored[-1]), "forecast_category", 0) is None
    view = open_view("memory://", read_models=["pipeline"])
    view.record(crm.app.name, [LoggedEvent(n, mapper=crm.app.mapper) for n in stored])
    q = PipelineQueries(view.engine)
    # the new event's own category; the old one falls back to the default pipeline's
    categories = {o.opportunity_id: o.forecast_category for o in q.open_opportunities().items}
    assert categories == {new: "commit", old: "pipeline"}
    by_category = {f.key: (f.count, f.amount) for f in q.forecast_by_category()}
    assert by_category == {"commit": (1, D("1000")), "pipeline": (1, D("300"))}


def test_reassigned_opportunities_follow_their_new_owner(crm: CRM) -> None:
    customer = crm.register_customer(kind="enterprise", name="Acme", code="ACME-R")
    account = crm.open_account(customer_id=customer, name="Acme")
    crm.assign_account_manager(account, manager="li.wei", reason="new account")
    deal = crm.open_opportunity(
        account,
        name="servers",
        expected_close=date(2031, 1, 31),
        owner="li.wei",
        amount=cny(50_000),
    )
    crm.stage_opportunity(account, deal, stage="proposal")
    before = project(crm)
    assert [o.owner for o in PipelineQueries(before.engine).open_opportunities().items] == [
        "li.wei"
    ]
    crm.assign_account_manager(account, manager="zhang.min", reason="li.wei left")
    crm.reassign_opportunity(account, deal, owner="zhang.min", reason="li.wei left")
    for view in (project(crm, view=before), project(crm)):  # incremental and rebuilt
        pipeline = PipelineQueries(view.engine)
        assert pipeline.open_opportunities(owner="li.wei").total == 0
        assert [o.opportunity_id for o in pipeline.open_opportunities(owner="zhang.min").items] == [
            deal
        ]
        handover = HandoverQueries(view.engine).for_manager("zhang.min", now=T0 + timedelta(days=1))
        assert [(d.opportunity_id, d.owner) for d in handover.opportunities] == [
            (deal, "zhang.min")
        ]
