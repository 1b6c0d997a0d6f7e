"""A hand-made CRM history with known answers, and helpers that project a store's log
into a fresh view without a runner (shared by the projections tests)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import select

from crm_domain.application import CRM
from crm_domain.values import Money
from projections.readmodel import LoggedEvent, ReadModel
from projections.registry import all_read_models
from projections.runner import open_view
from projections.views import ReadModelView

T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)


def read_model_rows(url: str, views_url: str | None = None) -> dict[str, list[Any]]:
    """Every shipped read model's rows, by table, in primary-key order (to compare views)."""
    view = open_view(url, views_url=views_url)
    out: dict[str, list[Any]] = {}
    try:
        with view.engine.connect() as conn:
            for model in all_read_models().values():
                for table in model.tables:
                    keys = list(table.primary_key.columns)
                    out[table.name] = [
                        tuple(r) for r in conn.execute(select(table).order_by(*keys))
                    ]
    finally:
        view.engine.dispose()
    return out


def cny(amount: int | str) -> Money:
    return Money.of(amount, "CNY")


def project(
    app: CRM,
    read_models: Sequence[str | type[ReadModel]] | None = None,
    *,
    batch_size: int = 100_000,
    view: ReadModelView | None = None,
) -> ReadModelView:
    """Apply the whole log (or what the view has not seen) in batches of ``batch_size``."""
    view = view or open_view("memory://", read_models=read_models)
    start = (view.max_tracking_id(app.app.name) or 0) + 1
    while True:
        page = app.app.recorder.select_notifications(start=start, limit=1000)
        if not page:
            return view
        logged = [LoggedEvent(n, mapper=app.app.mapper) for n in page]
        for i in range(0, len(logged), batch_size):
            view.record(app.app.name, logged[i : i + batch_size])
        start = page[-1].id + 1


@dataclass
class Known:
    """Ids in the hand-made history, for tests to look answers up by."""

    acme: UUID
    bob: UUID
    acme_account: UUID
    bob_account: UUID
    won: UUID
    open_deal: UUID
    lost: UUID
    complaint: UUID
    inquiry: UUID
    bob_ticket: UUID
    quote_v2: UUID
    extra: dict[str, Any] = field(default_factory=dict)


def at(app: CRM, minutes: float) -> Any:
    """Commands inside happen ``minutes`` after T0 (business time)."""
    return app.context(actor="tester", occurred_at=T0 + timedelta(minutes=minutes))


def known_history(app: CRM) -> Known:
    """Two customers, one account each, three deals, tickets, quotes, orders and money."""
    with at(app, 0):
        acme = app.register_customer(
            kind="enterprise", name="Acme Ltd", code="ACME", contact={"email": "buy@acme.example"}
        )
        bob = app.register_customer(kind="individual", name="Bob Chen", code="BOB")
    with at(app, 10):
        app.assign_customer_manager(acme, manager="li", reason="key account")
        app.change_lifecycle_stage(acme, to_stage="development", reason="first deal")
        app.assign_segment(acme, segment="manufacturing")
        app.grant_consent(acme, purpose="marketing", channel="email")
        acme_account = app.open_account(customer_id=acme, name="Acme Procurement")
        app.assign_account_manager(acme_account, manager="li", reason="owner")
        bob_account = app.open_account(customer_id=bob, name="Bob Retail")
    with at(app, 20):
        app.log_contact(
            acme,
            channel="phone",
            direction="inbound",
            summary="asked for prices",
            commitments=[
                {"description": "send price list", "owner": "li", "due": T0 + timedelta(days=2)}
            ],
            account_id=acme_account,
            logged_by="li",
        )
    with at(app, 30):
        app.log_contact(
            acme, channel="email", direction="outbound", summary="sent prices", logged_by="li"
        )
        app.log_contact(
            acme, channel="phone", direction="outbound", summary="follow up", logged_by="li"
        )
    # service
    with at(app, 60):
        complaint = app.open_ticket(
            acme, kind="complaint", subject="late delivery", channel="phone", priority="urgent"
        )
        inquiry = app.open_ticket(acme, kind="inquiry", subject="manual", channel="email")
        bob_ticket = app.open_ticket(
            bob, kind="inquiry", subject="opening hours", channel="web", priority="low"
        )
    with at(app, 70):
        app.assign_ticket(acme, inquiry, assignee="zhang")
    with at(app, 90):
        app.respond_to_ticket(acme, complaint, message="sorry", responder="zhang")
    with at(app, 180):
        app.resolve_ticket(acme, complaint, answer="re-shipped")
        app.record_satisfaction(acme, score=5, ticket_id=complaint)
        app.record_satisfaction(bob, score=3)
    with at(app, 60 * 24 * 5):
        app.record_sla_breaches(bob, now=T0 + timedelta(days=5))
    # sales
    with at(app, 100):
        won = app.open_opportunity(
            acme_account,
            name="Line 1",
            owner="li",
            expected_close=date(2025, 4, 30),
            amount=cny(100000),
        )
        open_deal = app.open_opportunity(
            acme_account,
            name="Line 2",
            owner="wang",
            expected_close=date(2025, 6, 15),
            amount=cny(50000),
        )
        lost = app.open_opportunity(
            acme_account,
            name="Spare parts",
            owner="li",
            expected_close=date(2025, 5, 1),
            amount=cny(20000),
        )
    with at(app, 200):
        app.stage_opportunity(acme_account, won, stage="qualification")
        app.stage_opportunity(acme_account, open_deal, stage="qualification")
    with at(app, 300):
        app.stage_opportunity(acme_account, won, stage="needs_analysis")
        app.stage_opportunity(acme_account, open_deal, stage="proposal")
        app.lose_opportunity(acme_account, lost, reason="price")
        quote_v1 = app.issue_quote(
            acme_account,
            open_deal,
            amount=cny(48000),
            valid_until=date(2025, 5, 1),
            discount_pct="4",
        )
    with at(app, 60 * 24 * 10 + 100):  # won ten days after opening
        app.win_opportunity(acme_account, won, reason="best fit")
        quote_v2 = app.revise_quote(
            acme_account,
            quote_v1,
            amount=cny(47000),
            valid_until=date(2025, 5, 15),
            discount_pct="6",
        )
    # orders and money
    with at(app, 60 * 24 * 11):
        big = app.place_order(
            acme_account, lines=[{"sku": "L1", "quantity": 1, "unit_price": cny(100000)}]
        )
        small = app.place_order(
            acme_account, lines=[{"sku": "S1", "quantity": 5, "unit_price": cny(1000)}]
        )
        rejected = app.place_order(
            acme_account, lines=[{"sku": "R1", "quantity": 1, "unit_price": cny(7000)}]
        )
        bobs = app.place_order(
            bob_account, lines=[{"sku": "B1", "quantity": 3, "unit_price": cny(100)}]
        )
        for account, order in (
            (acme_account, big),
            (acme_account, small),
            (acme_account, rejected),
            (bob_account, bobs),
        ):
            app.request_order_confirmation(account, order)
        with app.context(source_system="erp"):
            app.confirm_order(acme_account, big)
            app.confirm_order(acme_account, small)
            app.reject_order(acme_account, rejected, reason="credit")
            app.confirm_order(bob_account, bobs)
    with at(app, 60 * 24 * 12):
        app.ship_order(acme_account, small)
        app.deliver_order(acme_account, small)
        app.return_order(acme_account, small, reason="damaged")
        app.issue_invoice(acme_account, amount=cny(100000), order_id=big)
        app.receive_payment(acme_account, amount=cny(60000))
    return Known(
        acme=acme,
        bob=bob,
        acme_account=acme_account,
        bob_account=bob_account,
        won=won,
        open_deal=open_deal,
        lost=lost,
        complaint=complaint,
        inquiry=inquiry,
        bob_ticket=bob_ticket,
        quote_v2=quote_v2,
        extra={"quote_v1": quote_v1},
    )
