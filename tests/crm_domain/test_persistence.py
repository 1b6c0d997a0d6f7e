"""The same scenarios on SQLite and on PostgreSQL: write, reopen, read back.

``store_url`` gives a fresh SQLite file, and a fresh PostgreSQL database (marked
``postgres``: skipped without a server locally, failing in CI).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest

from crm_domain import CRM, Customer, Money, OrderLine
from crm_domain.errors import (
    ConcurrencyConflictError,
    DuplicateCustomerCodeError,
    PipelineRuleError,
)
from crm_domain.eventmodel import Aggregate
from crm_domain.values import OrderStatus, SatisfactionClass, TicketStatus

CLOSE = date(2031, 6, 30)


class InterleavedCRM(CRM):
    """Another writer (``interloper``) gets in once between a command's load and save."""

    interloper: Callable[[], object] | None = None

    def _save(self, *objs: Any) -> None:
        hook, self.interloper = self.interloper, None
        if hook is not None:
            hook()
        super()._save(*objs)


@pytest.fixture
def opened(store_url: str) -> Iterator[Callable[..., CRM]]:
    """Open applications on the test's store; all are closed at the end."""
    apps: list[CRM] = []

    def open_app(cls: type[CRM] = CRM, **kwargs: Any) -> CRM:
        app = cls(store_url, **kwargs)
        apps.append(app)
        return app

    yield open_app
    for app in apps:
        app.close()


def state(aggregate: Aggregate) -> dict[str, Any]:
    return {
        k: v for k, v in vars(aggregate).items() if k not in ("_pending_events", "_occurred_at")
    }


def scenario(app: CRM) -> dict[str, UUID]:
    visited = datetime(2031, 3, 3, 10, 0, tzinfo=UTC)
    with app.context(actor="li.wei", command_id="req-register"):
        cid = app.register_customer(
            kind="government",
            name="Baiyun District Education Bureau",
            code="GOV-BY-01",
            contact={"email": "it@edu.example.gov.cn", "phone": "+86 20 3600 0000"},
        )
    with app.context(actor="li.wei", occurred_at=visited):
        app.log_contact(
            cid,
            channel="visit",
            direction="outbound",
            summary="needs analysis for 40 schools",
            commitments=[{"description": "proposal by Friday", "owner": "li.wei"}],
        )
    app.grant_consent(cid, purpose="seminars", channel="email")
    ticket = app.open_ticket(cid, kind="complaint", subject="projector broken", channel="phone")
    app.resolve_ticket(cid, ticket, answer="replaced")
    app.record_satisfaction(cid, score=5, ticket_id=ticket)
    aid = app.open_account(customer_id=cid, name="Education Bureau", size="large")
    app.designate_key_account(aid, criterion="sector", note="education")
    opp = app.open_opportunity(
        aid,
        name="Smart classrooms",
        expected_close=CLOSE,
        owner="li.wei",
        amount=Money.of("1250000.75", "CNY"),
    )
    app.stage_opportunity(aid, opp, stage="proposal")
    quote = app.issue_quote(aid, opp, amount=Money.of("1200000", "CNY"), valid_until=CLOSE)
    app.accept_quote(aid, quote)
    app.win_opportunity(aid, opp, reason="best service plan")
    order = app.place_order(
        aid,
        lines=[OrderLine(sku="CLS-1", quantity=40, unit_price=Money.of("30000", "CNY"))],
        opportunity_id=opp,
        quote_id=quote,
    )
    app.request_order_confirmation(aid, order)
    with app.context(source_system="erp"):
        app.confirm_order(aid, order, erp_reference="SAP-1")
    app.ship_order(aid, order)
    return {"customer": cid, "account": aid, "ticket": ticket, "opp": opp, "order": order}


def test_write_reopen_and_read_back(opened: Callable[..., CRM]) -> None:
    first = opened()
    ids = scenario(first)
    before = {k: state(first.app.repository.get(ids[k])) for k in ("customer", "account")}
    events = first.app.recorder.max_notification_id()
    first.close()

    app = opened()
    customer = app.customer_by_code("gov-by-01")
    assert customer.id == ids["customer"]
    assert customer.contact.phone == "+862036000000"
    assert customer.satisfaction_class is SatisfactionClass.LOYAL
    assert customer.ticket(ids["ticket"]).status is TicketStatus.RESOLVED
    assert customer.last_contact_at == datetime(2031, 3, 3, 10, 0, tzinfo=UTC)
    account = app.account(ids["account"])
    # won on the accepted quote: its amount is what the deal booked (not the 1,250,000.75 asked)
    assert account.opportunity(ids["opp"]).amount == Money.of("1200000", "CNY")
    assert account.order(ids["order"]).status is OrderStatus.SHIPPED
    assert account.order(ids["order"]).total.amount == Decimal("1200000")
    for k in ("customer", "account"):
        assert state(app.app.repository.get(ids[k])) == before[k]

    changes = app.changes(ids["customer"])
    assert changes[0].actor == "li.wei"
    assert changes[1].payload["commitments"][0]["description"] == "proposal by Friday"
    assert all(c.recorded_at.tzinfo is not None for c in changes)

    # Idempotency survives a restart: the repeat returns the first id and stores nothing.
    # (The same request: a command id sent with other fields would be refused.)
    with app.context(command_id="req-register"):
        again = app.register_customer(
            kind="government",
            name="Baiyun District Education Bureau",
            code="GOV-BY-01",
            contact={"email": "it@edu.example.gov.cn", "phone": "+86 20 3600 0000"},
        )
    assert again == ids["customer"]
    assert app.app.recorder.max_notification_id() == events
    with pytest.raises(DuplicateCustomerCodeError):
        app.register_customer(kind="individual", name="Other", code="GOV-BY-01")
    assert app.app.recorder.max_notification_id() == events


def test_snapshots_with_a_small_interval(opened: Callable[..., CRM]) -> None:
    app = opened(snapshot_interval=2)
    ids = scenario(app)
    assert app.app.snapshots is not None
    for key in ("customer", "account"):
        assert list(app.app.snapshots.get(ids[key])), f"no snapshot of the {key}"
    app.close()

    reopened = opened(snapshot_interval=2)
    for key in ("customer", "account"):
        replayed: Any = None
        for ev in reopened.app.events.get(ids[key]):
            replayed = ev.mutate(replayed)
        assert state(reopened.app.repository.get(ids[key])) == state(replayed)
    # Commands continue from the snapshot.
    reopened.log_contact(ids["customer"], channel="email", direction="inbound", summary="thanks")
    assert reopened.customer(ids["customer"]).contacts_logged == 2
    first_seen = reopened.history(ids["customer"])[0].timestamp
    assert reopened.customer_as_of(ids["customer"], first_seen).contacts_logged == 0


def test_commuting_command_retried_on_this_backend(opened: Callable[..., CRM]) -> None:
    ours = opened(InterleavedCRM)
    theirs = opened()
    assert isinstance(ours, InterleavedCRM)
    cid = ours.register_customer(kind="individual", name="Chen", code="P-1")
    ours.interloper = lambda: theirs.log_contact(
        cid, channel="phone", direction="inbound", summary="theirs"
    )
    ours.log_contact(cid, channel="sms", direction="outbound", summary="ours")
    logged = [e for e in ours.history(cid) if isinstance(e, Customer.ContactLogged)]
    assert [e.summary for e in logged] == ["theirs", "ours"]


def test_conflict_on_the_same_opportunity_on_this_backend(opened: Callable[..., CRM]) -> None:
    ours = opened(InterleavedCRM)
    theirs = opened()
    assert isinstance(ours, InterleavedCRM)
    cid = ours.register_customer(kind="enterprise", name="Acme", code="ACME")
    aid = ours.open_account(customer_id=cid, name="Acme")
    opp = ours.open_opportunity(aid, name="Deal", expected_close=CLOSE, owner="o")
    ours.interloper = lambda: theirs.stage_opportunity(aid, opp, stage="negotiation")
    before = ours.app.recorder.max_notification_id()
    with pytest.raises(ConcurrencyConflictError):
        ours.stage_opportunity(aid, opp, stage="proposal")
    assert ours.app.recorder.max_notification_id() == before + 1
    assert ours.account(aid).opportunity(opp).stage == "negotiation"


def test_concurrent_duplicate_code_on_this_backend(opened: Callable[..., CRM]) -> None:
    ours = opened(InterleavedCRM)
    theirs = opened()
    assert isinstance(ours, InterleavedCRM)
    ours.interloper = lambda: theirs.register_customer(kind="individual", name="T", code="X-1")
    with pytest.raises(DuplicateCustomerCodeError):
        ours.register_customer(kind="individual", name="O", code="X-1")
    assert ours.customer_by_code("X-1").name == "T"


def test_bulk_is_one_transaction_on_this_backend(opened: Callable[..., CRM]) -> None:
    app = opened()
    with app.bulk():
        ids = [
            app.register_customer(kind="individual", name=f"C{i}", code=f"C-{i}") for i in range(20)
        ]
    assert [app.customer_by_code(f"c-{i}").id for i in range(20)] == ids
    before = app.app.recorder.max_notification_id()
    aid = ids[0]

    def batch() -> None:
        with app.bulk():
            for cid in ids:
                app.log_contact(cid, channel="web", direction="inbound", summary="s")
            account = app.open_account(customer_id=aid, name="A")
            opp = app.open_opportunity(account, name="Deal", expected_close=CLOSE, owner="o")
            app.win_opportunity(account, opp, reason="no amount")

    with pytest.raises(PipelineRuleError):
        batch()
    assert app.app.recorder.max_notification_id() == before
    assert all(app.customer(cid).contacts_logged == 0 for cid in ids)
