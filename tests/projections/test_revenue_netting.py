"""Revenue nets out cancellations, returns, credit notes and refunds (issue 10, "Orders, ERP
and credit"): in the customer-value read model (booked, invoiced, paid), in the pipeline's
won revenue, and in the customer 360's lifetime value; incrementally, rebuilt, and on
SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from uuid import UUID

from projection_history import project

from adapters.cli.reports import pipeline_report
from crm_domain import CRM, Money
from projections.customer360 import Customer360Queries
from projections.customer_value import CustomerValueQueries
from projections.pipeline import PipelineQueries, RevenueLine
from projections.rebuild import rebuild
from projections.runner import open_view

OVERRIDE = {"supervisor": "wang.fang", "reason": "prepaid"}


def cny(amount: int | str) -> Money:
    return Money.of(amount, "CNY")


@dataclass
class Netted:
    customer: UUID
    account: UUID


def _order(app: CRM, account: UUID, amount: int, deal: UUID | None = None) -> UUID:
    lines = [{"sku": "X", "quantity": 1, "unit_price": cny(amount)}]
    return app.place_order(account, lines=lines, opportunity_id=deal)


def _confirm(app: CRM, account: UUID, order: UUID) -> None:
    app.request_order_confirmation(account, order, credit_override=OVERRIDE)
    with app.context(source_system="erp"):
        app.confirm_order(account, order)


def history(app: CRM) -> Netted:
    """Five orders of one customer, two won deals:

    * A 1,000 kept: shipped, invoiced, paid.                        (deal 1, won 3,000)
    * B 2,000 returned: invoice 2,000 paid, credited 2,000, refunded 1,500 (deal 1)
    * C 4,000 confirmed, then cancelled before shipment: invoiced 4,000, credited 4,000
    * D 8,000 placed and cancelled before ERP saw it (never booked)   (deal 2, won 8,000)
    * E 300 kept, invoiced, unpaid; a service fee invoice of 50 credited 20.
    """
    customer = app.register_customer(kind="enterprise", name="Acme", code="ACME")
    account = app.open_account(customer_id=customer, name="Acme")
    deals = []
    for amount in (3000, 8000):
        deal = app.open_opportunity(
            account, name=f"deal {amount}", expected_close=date(2030, 1, 1), owner="li",
            amount=cny(amount),
        )  # fmt: skip
        app.win_opportunity(account, deal, reason="signed")
        deals.append(deal)
    a = _order(app, account, 1000, deals[0])
    b = _order(app, account, 2000, deals[0])
    c = _order(app, account, 4000)
    d = _order(app, account, 8000, deals[1])
    e = _order(app, account, 300)
    for order in (a, b, c, e):
        _confirm(app, account, order)
    for order, amount in ((a, 1000), (b, 2000)):
        app.ship_order(account, order)
        invoice = app.issue_invoice(account, amount=cny(amount), order_id=order)
        app.receive_payment(account, amount=cny(amount), invoice_id=invoice)
    b_invoice = invoice
    app.return_order(account, b, reason="damaged")
    app.issue_credit_note(account, b_invoice, amount=cny(2000), reason="returned")
    app.issue_refund(account, b_invoice, amount=cny(1500), reason="returned")
    c_invoice = app.issue_invoice(account, amount=cny(4000), order_id=c)
    app.cancel_order(account, c, reason="customer withdrew")
    app.issue_credit_note(account, c_invoice, amount=cny(4000), reason="cancelled")
    app.cancel_order(account, d, reason="duplicate")
    app.ship_order(account, e)
    app.issue_invoice(account, amount=cny(300), order_id=e)
    fee = app.issue_invoice(account, amount=cny(50))
    app.issue_credit_note(account, fee, amount=cny(20), reason="fee reduced")
    return Netted(customer=customer, account=account)


def check(engine: object, netted: Netted) -> None:
    revenue = CustomerValueQueries(engine).revenue(currency="CNY").items  # type: ignore[arg-type]
    assert len(revenue) == 1
    row = revenue[0]
    # booked: A 1,000 + E 300 (B returned, C cancelled after confirmation, D never booked)
    assert (row.booked, row.orders) == (Decimal(1300), 2)
    # invoiced: 1,000 + 2,000 + 4,000 + 300 + 50 - credit notes 2,000 + 4,000 + 20
    assert row.invoiced == Decimal(1330)
    # paid: 1,000 + 2,000 - refund 1,500
    assert row.paid == Decimal(1500)
    value = Customer360Queries(engine).get(netted.customer)  # type: ignore[arg-type]
    assert value.lifetime_value == {"CNY": Decimal(1300)}
    # won 3,000 + 8,000; reversed: deal 1's returned order B 2,000, deal 2's cancelled D
    # 8,000 (capped at the deal's amount)
    assert PipelineQueries(engine).revenue() == [  # type: ignore[arg-type]
        RevenueLine(
            currency="CNY",
            won=2,
            amount=Decimal(11000),
            reversed=Decimal(10000),
            net=Decimal(1000),
        )
    ]


def test_revenue_nets_out_cancellations_returns_credit_notes_and_refunds() -> None:
    app = CRM("memory://")
    netted = history(app)
    one_by_one = project(app, batch_size=1)
    check(one_by_one.engine, netted)
    check(project(app).engine, netted)


def test_a_deal_reversal_is_capped_and_by_owner() -> None:
    app = CRM("memory://")
    history(app)
    engine = project(app).engine
    q = PipelineQueries(engine)
    assert q.revenue(owner="nobody") == []
    line = q.revenue(owner="li")[0]
    assert line.net == line.amount - line.reversed
    # `crm report pipeline` shows it
    sections = {s.title: s for s in pipeline_report(engine)}
    won = sections["Won revenue (net of cancelled and returned orders)"]
    assert won.rows == [("CNY", 2, Decimal(11000), Decimal(10000), Decimal(1000))]


def test_netting_on_a_real_store(store_url: str) -> None:
    app = CRM(store_url)
    try:
        netted = history(app)
    finally:
        app.close()
    rebuild(store_url, read_models=["customer_value", "pipeline", "customer360"])
    view = open_view(store_url)
    try:
        check(view.engine, netted)
    finally:
        view.engine.dispose()
