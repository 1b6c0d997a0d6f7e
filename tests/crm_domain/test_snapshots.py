"""Snapshots: a snapshot round trip gives exactly the aggregate that replaying gives, for
every attribute, and no attribute can be added to an aggregate without its snapshot."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID, uuid4

import pytest

from crm_domain import CRM, Account, ContactDetails, Customer, Money, OrderLine
from crm_domain.account import AccountState
from crm_domain.customer import CustomerState
from crm_domain.eventmodel import Aggregate, Snapshot
from crm_domain.values import Address

CLOSE = date(2031, 6, 30)
BOOKKEEPING = {"created_on", "modified_on"}


def state(aggregate: Aggregate) -> dict[str, Any]:
    """Everything an aggregate holds, except transient bookkeeping of the last event."""
    return {
        k: v for k, v in vars(aggregate).items() if k not in ("_pending_events", "_occurred_at")
    }


def replay(app: CRM, aggregate_id: UUID) -> Aggregate:
    aggregate: Any = None
    for ev in app.app.events.get(aggregate_id):
        aggregate = ev.mutate(aggregate)
    assert isinstance(aggregate, Aggregate)
    return aggregate


def rich_customer(app: CRM) -> UUID:
    """A customer with every attribute set to something other than its initial value."""
    group = app.register_customer(kind="enterprise", name="Group", code="GROUP")
    cid = app.register_customer(
        kind="enterprise",
        name="Baiyun",
        code="BY-1",
        contact=ContactDetails(
            email="a@by.example.cn",
            phone="+862088880000",
            mobile="13800138000",
            address=Address(line1="1 Airport Rd", city="Guangzhou", country="CN"),
        ),
        source_channel="trade-fair",
        parent_id=group,
    )
    app.change_lifecycle_stage(cid, to_stage="development", reason="first order")
    app.assign_customer_manager(cid, manager="li.wei", reason="key account")
    app.assign_support_owner(cid, owner="sun.hao", reason="named engineer")
    app.assign_segment(cid, segment="logistics")
    app.assign_grade(cid, grade="A")
    app.grant_consent(cid, purpose="newsletter", channel="email")
    app.grant_consent(cid, purpose="newsletter", channel="sms")
    app.grant_consent(cid, purpose="seminars", channel="letter")
    app.log_contact(
        cid,
        channel="visit",
        direction="outbound",
        summary="demo",
        commitments=[{"description": "trial unit", "owner": "li.wei"}],
    )
    opened = datetime(2031, 3, 3, 10, 0, tzinfo=UTC)
    with app.context(occurred_at=opened):
        t1 = app.open_ticket(cid, kind="complaint", subject="late", channel="phone")
        t2 = app.open_ticket(cid, kind="incident", subject="down", channel="web", priority="urgent")
        t3 = app.open_ticket(cid, kind="inquiry", subject="price", channel="email")
    app.assign_ticket(cid, t1, assignee="wang.fang", department="complaints")
    app.respond_to_ticket(cid, t1, message="looking into it")
    app.escalate_ticket(cid, t2, reason="vip")
    app.record_sla_breaches(cid, now=datetime(2031, 3, 4, 10, 0, tzinfo=UTC))
    app.resolve_ticket(cid, t1, answer="apologised")
    app.reopen_ticket(cid, t1, reason="not satisfied")
    app.resolve_ticket(cid, t1, answer="refunded")
    app.resolve_ticket(cid, t3, answer="sent")
    app.close_ticket(cid, t3)
    app.record_satisfaction(cid, score=4, ticket_id=t1)
    app.deactivate_customer(cid, reason="merged")
    return cid


def rich_account(app: CRM) -> UUID:
    cid = app.register_customer(kind="enterprise", name="Acme", code="ACME")
    person = app.register_customer(kind="individual", name="Huang", code="P-H")
    aid = app.open_account(customer_id=cid, name="Acme", industry="retail", size="medium")
    app.reclassify_account(aid, tier="gold")
    app.designate_key_account(aid, criterion="sector", note="government")
    app.add_account_contact(aid, customer_id=person, role="CFO", decision_maker=True)
    app.assign_account_manager(aid, manager="li.wei", reason="key account")
    app.set_credit_limit(aid, limit=Money.of("250000.5", "CNY"))
    won = app.open_opportunity(aid, name="Won", expected_close=CLOSE, owner="o")
    lost = app.open_opportunity(aid, name="Lost", expected_close=CLOSE, owner="o")
    open_ = app.open_opportunity(
        aid, name="Open", expected_close=CLOSE, owner="o", amount=Money.of(7, "USD")
    )
    app.stage_opportunity(aid, open_, stage="negotiation")
    app.revise_opportunity(aid, won, amount=Money.of("1000.25", "CNY"), expected_close=CLOSE)
    q1 = app.issue_quote(aid, won, amount=Money.of(1000, "CNY"), valid_until=CLOSE)
    q2 = app.revise_quote(aid, q1, amount=Money.of(950, "CNY"), valid_until=CLOSE, discount_pct="5")
    app.accept_quote(aid, q2)
    app.win_opportunity(aid, won, reason="price", competitor="Globex")
    app.issue_quote(aid, lost, amount=Money.of(10, "CNY"), valid_until=CLOSE)
    app.lose_opportunity(aid, lost, reason="budget")
    app.issue_quote(aid, open_, amount=Money.of(7, "USD"), valid_until=CLOSE)
    line = OrderLine(sku="SKU", quantity=2, unit_price=Money.of("475", "CNY"), customisation="red")
    orders = [app.place_order(aid, lines=[line], opportunity_id=won, quote_id=q2) for _ in range(6)]
    for o in orders[1:]:
        app.request_order_confirmation(aid, o)
    with app.context(source_system="erp"):
        for o in orders[2:]:
            app.confirm_order(aid, o, erp_reference="SAP")
        app.reject_order(aid, orders[1], reason="credit")
    for o in orders[3:]:
        app.ship_order(aid, o)
    for o in orders[4:]:
        app.deliver_order(aid, o)
    app.return_order(aid, orders[5], reason="broken")
    app.cancel_order(aid, orders[0], reason="duplicate")
    back = app.issue_invoice(aid, amount=Money.of(950, "CNY"), order_id=orders[5])
    app.receive_payment(aid, amount=Money.of(950, "CNY"), invoice_id=back)
    app.issue_credit_note(aid, back, amount=Money.of(950, "CNY"), reason="returned")
    app.issue_refund(aid, back, amount=Money.of(900, "CNY"), reason="returned")
    inv = app.issue_invoice(aid, amount=Money.of(950, "CNY"), order_id=orders[2])
    app.receive_payment(aid, amount=Money.of(500, "CNY"), invoice_id=inv)
    app.receive_payment(aid, amount=Money.of(3, "USD"))
    return aid


@pytest.mark.parametrize("build", [rich_customer, rich_account], ids=["customer", "account"])
def test_snapshot_round_trip_equals_replay(build: Any) -> None:
    app = CRM("memory://", snapshot_interval=None)
    aggregate_id = build(app)
    replayed = replay(app, aggregate_id)
    snapshot = Snapshot.take(replayed)
    # Through the stored form (JSON), as the snapshot store would keep it.
    stored = app.app.mapper.to_domain_event(app.app.mapper.to_stored_event(snapshot))
    restored = stored.mutate(None)
    assert type(restored) is type(replayed)
    assert state(restored) == state(replayed)
    assert restored.version == replayed.version


@pytest.mark.parametrize("build", [rich_customer, rich_account], ids=["customer", "account"])
def test_application_snapshots_every_n_events(build: Any) -> None:
    app = CRM("memory://", snapshot_interval=4)
    aggregate_id = build(app)
    assert app.app.snapshots is not None
    snapshots = list(app.app.snapshots.get(aggregate_id))
    assert snapshots, "no snapshot was taken"
    assert all(s.originator_version % 4 == 0 for s in snapshots)
    loaded = app.app.repository.get(aggregate_id)
    assert state(loaded) == state(replay(app, aggregate_id))
    # Loading a version that sits exactly on a snapshot, and reading the past, still agree.
    at_snapshot = snapshots[-1].originator_version
    from_snapshot = app.app.repository.get(aggregate_id, version=at_snapshot)
    replayed_to = None
    for ev in app.app.events.get(aggregate_id, lte=at_snapshot):
        replayed_to = ev.mutate(replayed_to)
    assert replayed_to is not None
    assert state(from_snapshot) == state(replayed_to)


def test_commands_continue_from_a_snapshot() -> None:
    app = CRM("memory://", snapshot_interval=2)
    cid = app.register_customer(kind="individual", name="Chen", code="P-1")
    ticket = app.open_ticket(cid, kind="inquiry", subject="s", channel="web")  # version 2
    app.resolve_ticket(cid, ticket, answer="a")
    app.log_contact(cid, channel="web", direction="inbound", summary="thanks")  # version 4
    app.close_ticket(cid, ticket)
    customer = app.customer(cid)
    assert customer.contacts_logged == 1
    assert customer.ticket(ticket).status == "closed"
    assert state(customer) == state(replay(app, cid))


def public_attributes(aggregate: Aggregate) -> set[str]:
    return {k for k in vars(aggregate) if not k.startswith("_")}


def fresh_customer() -> Aggregate:
    return Customer.register(kind="individual", name="New", code="NEW")


def fresh_account() -> Aggregate:
    return Account.open(customer_id=uuid4(), name="New")


@pytest.mark.parametrize(
    ("build", "fresh", "model"),
    [
        (rich_customer, fresh_customer, CustomerState),
        (rich_account, fresh_account, AccountState),
    ],
    ids=["customer", "account"],
)
def test_snapshot_state_covers_every_public_attribute(build: Any, fresh: Any, model: Any) -> None:
    """Add an attribute to an aggregate and this fails until its snapshot state has it."""
    app = CRM("memory://", snapshot_interval=None)
    fields = set(model.model_fields) - BOOKKEEPING
    assert public_attributes(app.app.repository.get(build(app))) == fields
    assert public_attributes(fresh()) == fields


def test_a_failed_snapshot_does_not_fail_a_stored_command(
    store_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Snapshots are written after the command's events committed: if that write fails,
    the command still succeeded (its events are stored), so the caller is told so, and the
    failure is logged. The aggregate loads from its events; the next snapshot will do."""
    app = CRM(store_url, snapshot_interval=2)
    try:
        cid = app.register_customer(kind="individual", name="Snap", code="SNAP-1")
        assert app.app.snapshots is not None

        def broken(*_: Any, **__: Any) -> Any:
            raise OSError("disk full")

        monkeypatch.setattr(app.app.snapshots, "put", broken)
        contact = app.log_contact(cid, channel="phone", direction="inbound", summary="v2")
        assert isinstance(contact, UUID)
        assert "snapshot not stored" in caplog.text
        assert app.customer(cid).version == 2
        assert list(app.app.snapshots.get(cid)) == []
        monkeypatch.undo()
        app.log_contact(cid, channel="phone", direction="inbound", summary="v3")
        app.log_contact(cid, channel="phone", direction="inbound", summary="v4")
        assert [s.originator_version for s in app.app.snapshots.get(cid)] == [4]
        assert app.customer(cid).contacts_logged == 3
    finally:
        app.close()


def test_a_snapshot_of_another_state_shape_is_passed_over_for_the_events() -> None:
    """A snapshot taken before a field joined the state (here: one whose shape is not
    today's) would give that field its default; the repository folds the events instead."""
    app = CRM("memory://", snapshot_interval=2)
    cid = app.register_customer(kind="individual", name="Lin", code="LIN-1")
    app.change_lifecycle_stage(cid, to_stage="development", reason="first order")
    app.assign_customer_manager(cid, manager="li.wei", reason="region")
    snapshots = app.app.snapshots
    assert snapshots is not None
    (taken,) = snapshots.get(cid)
    assert isinstance(taken, Snapshot)
    assert taken.is_current()
    assert taken.originator_version == 2

    # A later snapshot as an earlier release would have stored it: no shape, and a state
    # that says something the events do not (so using it would show).
    stale = taken.model_copy(
        update={
            "originator_version": 3,
            "shape": "",
            "state": {**taken.state, "manager": "someone.else"},
        }
    )
    assert not stale.is_current()
    snapshots.recorder.insert_events([snapshots.mapper.to_stored_event(stale)])
    assert app.customer(cid).manager == "li.wei"
    assert [s.originator_version for s in snapshots.get(cid)] == [2]


def test_a_bulk_save_writes_its_snapshots_in_one_transaction(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An import saves thousands of aggregates per bulk block: their snapshots (one per
    aggregate past a snapshot point, of the saved aggregate) go to the store in one write,
    not one transaction (and commit) each, and are the same snapshots."""
    app = CRM(store_url, snapshot_interval=2)
    try:
        assert app.app.snapshots is not None
        recorder = app.app.snapshots.recorder
        writes: list[int] = []
        insert = recorder.insert_events

        def counted(stored: Any, **kwargs: Any) -> Any:
            writes.append(len(stored))
            return insert(stored, **kwargs)

        monkeypatch.setattr(recorder, "insert_events", counted)
        with app.bulk():
            ids = [
                app.register_customer(kind="individual", name=f"Snap {n}", code=f"SNAP-{n}")
                for n in range(3)
            ]
            for cid in ids:
                app.log_contact(cid, channel="phone", direction="inbound", summary="v2")
            app.log_contact(ids[0], channel="phone", direction="inbound", summary="v3")
        assert writes == [3]
        assert [[s.originator_version for s in app.app.snapshots.get(c)] for c in ids] == [
            [3],  # the saved aggregate at its version, past the point (as before)
            [2],
            [2],
        ]
        for cid in ids:
            assert state(app.customer(cid)) == state(replay(app, cid))
    finally:
        app.close()
