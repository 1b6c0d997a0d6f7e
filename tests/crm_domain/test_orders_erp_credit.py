"""Orders, ERP and credit (issue 10): only ERP confirms or rejects, and only after a
confirmation request; requesting confirmation checks the credit limit (unpaid invoices +
confirmed unshipped orders + this order), unless a supervisor overrides with a reason;
orders are cancelled before shipment, and invoices credited (credit notes, refunds) after
a return or cancellation."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from decimal import Decimal
from uuid import UUID, uuid4

import orjson
import pytest
from eventsourcing.persistence import StoredEvent
from eventsourcing.utils import get_topic

from crm_domain import CRM, CreditOverride, Money, OrderLine
from crm_domain.account import Account
from crm_domain.commands import IssueCreditNote, RequestOrderConfirmation
from crm_domain.errors import (
    ConfirmationNotRequestedError,
    CreditAmountError,
    CreditCheckError,
    CreditCurrencyError,
    CreditLimitExceededError,
    ErpConfirmationError,
    InvalidCommandError,
    NotErpSourceError,
    OrderStateError,
    RuleViolationError,
)
from crm_domain.settings import CRMSettings
from crm_domain.values import OrderStatus

Rejects = Callable[..., BaseException]  # the ``rejects`` fixture (tests/crm_domain/conftest.py)

SUPERVISOR = {"supervisor": "wang.fang", "reason": "strategic customer, bank guarantee on file"}


def cny(amount: str | int) -> Money:
    return Money.of(amount, "CNY")


def order_of(app: CRM, account_id: UUID, amount: str | int, currency: str = "CNY") -> UUID:
    line = OrderLine(sku="SCN-200", quantity=1, unit_price=Money.of(amount, currency))
    return app.place_order(account_id, lines=[line])


def confirmed(app: CRM, account_id: UUID, amount: str | int, currency: str = "CNY") -> UUID:
    order = order_of(app, account_id, amount, currency)
    app.request_order_confirmation(account_id, order, credit_override=SUPERVISOR)
    with app.context(source_system="erp"):
        app.confirm_order(account_id, order, erp_reference="SO-1")
    return order


def last_event(app: CRM, account_id: UUID) -> object:
    return app.history(account_id)[-1]


# ----- the failure the issue observed ---------------------------------------------------------
def test_front_end_cannot_promise_a_500k_order_on_a_10k_credit_limit(
    app: CRM, rejects: Rejects, account_id: UUID
) -> None:
    """Observed: a call from the CRM's own front end confirmed 500,000 CNY with no request
    and no ERP, on an account whose credit limit is 10,000 CNY."""
    app.set_credit_limit(account_id, limit=cny(10_000))
    with app.context(actor="li.wei", source_system="crm-web"):
        order = order_of(app, account_id, 500_000)
        rejects(NotErpSourceError, app.confirm_order, account_id, order, match="crm-web")
        err = rejects(CreditLimitExceededError, app.request_order_confirmation, account_id, order)
    assert app.account(account_id).order(order).status is OrderStatus.PLACED
    assert isinstance(err, CreditLimitExceededError)
    assert err.exposure == cny(500_000)
    assert err.credit_limit == cny(10_000)
    with app.context(source_system="erp"):  # not even ERP confirms what was never requested
        rejects(ConfirmationNotRequestedError, app.confirm_order, account_id, order)


# ----- only ERP confirms or rejects, only after a request -------------------------------------
@pytest.mark.parametrize("source", ["crm-web", "crm-core", "mobile-app", "ERP"])
def test_confirm_and_reject_come_only_from_an_erp_source(
    app: CRM, rejects: Rejects, account_id: UUID, source: str
) -> None:
    order = order_of(app, account_id, 1000)
    app.request_order_confirmation(account_id, order)
    with app.context(source_system=source):
        err = rejects(NotErpSourceError, app.confirm_order, account_id, order)
        rejects(NotErpSourceError, app.reject_order, account_id, order, reason="credit")
    assert isinstance(err, NotErpSourceError)
    assert (err.source_system, err.erp_sources, err.order_id) == (source, ["erp"], order)
    assert isinstance(err, ErpConfirmationError)
    assert isinstance(err, OrderStateError)  # callers catching the old error still do
    assert pickle.loads(pickle.dumps(err)).args == err.args
    with app.context(source_system="erp"):
        app.confirm_order(account_id, order, erp_reference="SO-7")
    ev = last_event(app, account_id)
    assert isinstance(ev, Account.OrderConfirmed)
    assert ev.metadata["source_system"] == "erp"


def test_the_default_context_is_not_erp(app: CRM, rejects: Rejects, account_id: UUID) -> None:
    order = order_of(app, account_id, 1000)
    app.request_order_confirmation(account_id, order)
    rejects(NotErpSourceError, app.confirm_order, account_id, order)


def test_erp_may_reject_a_requested_order(app: CRM, account_id: UUID) -> None:
    order = order_of(app, account_id, 1000)
    app.request_order_confirmation(account_id, order)
    with app.context(source_system="erp"):
        app.reject_order(account_id, order, reason="margin", detail="below floor price")
    assert app.account(account_id).order(order).status is OrderStatus.REJECTED


def test_erp_answers_only_what_it_was_asked(app: CRM, rejects: Rejects, account_id: UUID) -> None:
    order = order_of(app, account_id, 1000)
    with app.context(source_system="erp"):
        err = rejects(ConfirmationNotRequestedError, app.confirm_order, account_id, order)
        rejects(ConfirmationNotRequestedError, app.reject_order, account_id, order, reason="credit")
    assert "request_order_confirmation" in str(err)
    app.request_order_confirmation(account_id, order)
    with app.context(source_system="erp"):
        app.confirm_order(account_id, order)
        # answered once: a second answer is a plain state error
        again = rejects(OrderStateError, app.confirm_order, account_id, order)
        rejects(OrderStateError, app.reject_order, account_id, order, reason="credit")
    assert not isinstance(again, ErpConfirmationError)


def test_erp_sources_are_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    app = CRM("memory://", settings=CRMSettings(erp_sources=["sap-prod", "oracle-ebs"]))
    customer = app.register_customer(kind="enterprise", name="Acme", code="ACME")
    account = app.open_account(customer_id=customer, name="Acme")
    orders = [order_of(app, account, 100) for _ in range(3)]
    for order in orders:
        app.request_order_confirmation(account, order)
    with app.context(source_system="erp"), pytest.raises(NotErpSourceError, match="sap-prod"):
        app.confirm_order(account, orders[0])
    with app.context(source_system="sap-prod"):
        app.confirm_order(account, orders[0])
    with app.context(source_system="oracle-ebs"):
        app.reject_order(account, orders[1], reason="availability")
    assert app.settings.erp_source == "sap-prod"
    assert CRMSettings().erp_sources == ["erp"]  # the default
    monkeypatch.setenv("CRM_ERP_SOURCES", '["navision"]')
    assert CRMSettings.load().erp_sources == ["navision"]
    with pytest.raises(ValueError, match="erp_sources"):
        CRMSettings.load(erp_sources=[])


# ----- credit ---------------------------------------------------------------------------------
def test_exposure_counts_unpaid_invoices_unshipped_orders_and_this_order(
    app: CRM, rejects: Rejects, account_id: UUID
) -> None:
    app.set_credit_limit(account_id, limit=cny(10_000))
    # an invoice of 5,000 with 2,000 paid: 3,000 unpaid
    inv = app.issue_invoice(account_id, amount=cny(5000))
    app.receive_payment(account_id, amount=cny(2000), invoice_id=inv)
    # a confirmed, unshipped order of 4,000, nothing invoiced yet
    confirmed(app, account_id, 4000)
    # a confirmed order of 1,000 already invoiced and paid: counted once, as its (paid) invoice
    invoiced = confirmed(app, account_id, 1000)
    paid = app.issue_invoice(account_id, amount=cny(1000), order_id=invoiced)
    app.receive_payment(account_id, amount=cny(1000), invoice_id=paid)
    # a shipped order does not count (its invoice does, when issued)
    shipped = confirmed(app, account_id, 9000)
    app.ship_order(account_id, shipped)
    # a payment on account does not reduce what the invoices say is owed
    app.receive_payment(account_id, amount=cny(500))

    over = order_of(app, account_id, "3000.01")
    err = rejects(CreditLimitExceededError, app.request_order_confirmation, account_id, over)
    assert isinstance(err, CreditLimitExceededError)
    assert (err.unpaid_invoices, err.unshipped_orders, err.order_total) == (
        cny(3000),
        cny(4000),
        cny("3000.01"),
    )
    assert (err.exposure, err.credit_limit) == (cny("10000.01"), cny(10_000))
    for figure in ("3000", "4000", "3000.01", "10000.01", "10000"):
        assert f"{figure} CNY" in str(err)
    assert isinstance(err, CreditCheckError)
    assert isinstance(err, RuleViolationError)
    again = pickle.loads(pickle.dumps(err))
    assert (again.exposure, str(again)) == (err.exposure, str(err))

    at_limit = order_of(app, account_id, 3000)  # exactly the limit is allowed
    app.request_order_confirmation(account_id, at_limit)
    ev = last_event(app, account_id)
    assert isinstance(ev, Account.OrderConfirmationRequested)
    assert (ev.exposure, ev.credit_limit, ev.credit_override) == (cny(10_000), cny(10_000), None)


def test_a_partly_invoiced_confirmed_order_counts_the_rest(app: CRM, account_id: UUID) -> None:
    app.set_credit_limit(account_id, limit=cny(10_000))
    order = confirmed(app, account_id, 6000)
    app.issue_invoice(account_id, amount=cny(2000), order_id=order)
    small = order_of(app, account_id, 100)
    figures = app.account(account_id).credit_exposure(small)
    assert figures is not None
    assert (figures.unpaid_invoices, figures.unshipped_orders) == (cny(2000), cny(4000))
    assert figures.exposure == cny(6100)
    assert not figures.over_limit


def test_a_supervisor_override_with_a_reason_is_recorded(
    app: CRM, rejects: Rejects, account_id: UUID
) -> None:
    app.set_credit_limit(account_id, limit=cny(10_000))
    order = order_of(app, account_id, 500_000)
    with app.context(actor="li.wei"):
        app.request_order_confirmation(account_id, order, credit_override=SUPERVISOR)
    ev = last_event(app, account_id)
    assert isinstance(ev, Account.OrderConfirmationRequested)
    assert ev.credit_override == CreditOverride(**SUPERVISOR)
    assert (ev.exposure, ev.credit_limit) == (cny(500_000), cny(10_000))
    assert ev.metadata["actor"] == "li.wei"
    change = app.changes(account_id)[-1]
    assert change.payload["credit_override"] == SUPERVISOR
    # the override goes through the command value too; no reason, no override
    other = order_of(app, account_id, 500_000)
    for bad in ({"supervisor": "wang.fang", "reason": ""}, {"supervisor": "", "reason": "r"}):
        with pytest.raises(InvalidCommandError, match="credit_override"):
            RequestOrderConfirmation(account_id=account_id, order_id=other, credit_override=bad)
        rejects(
            InvalidCommandError,
            app.request_order_confirmation,
            account_id,
            other,
            credit_override=bad,
        )


def test_no_credit_limit_no_check(app: CRM, account_id: UUID) -> None:
    order = order_of(app, account_id, 9_999_999)
    app.request_order_confirmation(account_id, order)
    ev = last_event(app, account_id)
    assert isinstance(ev, Account.OrderConfirmationRequested)
    assert (ev.exposure, ev.credit_limit) == (None, None)


def test_a_zero_credit_limit_refuses_any_order(
    app: CRM, rejects: Rejects, account_id: UUID
) -> None:
    app.set_credit_limit(account_id, limit=cny(0))
    rejects(
        CreditLimitExceededError,
        app.request_order_confirmation,
        account_id,
        order_of(app, account_id, "0.01"),
    )


def test_exposure_in_another_currency_is_refused_unless_overridden(
    app: CRM, rejects: Rejects, account_id: UUID
) -> None:
    """No exchange rates in the CRM: an order or open item in a currency other than the
    limit's makes the check impossible, and is refused (typed) unless a supervisor decides."""
    app.set_credit_limit(account_id, limit=cny(10_000))
    usd_order = order_of(app, account_id, 10, "USD")
    err = rejects(CreditCurrencyError, app.request_order_confirmation, account_id, usd_order)
    assert isinstance(err, CreditCurrencyError)
    assert (err.limit_currency, err.currencies) == ("CNY", ["USD"])
    app.request_order_confirmation(account_id, usd_order, credit_override=SUPERVISOR)
    ev = last_event(app, account_id)
    assert isinstance(ev, Account.OrderConfirmationRequested)
    assert ev.exposure is None
    assert ev.credit_override is not None
    # an open EUR invoice makes a CNY order uncountable too; once paid, it no longer does
    eur = app.issue_invoice(account_id, amount=Money.of(50, "EUR"))
    cny_order = order_of(app, account_id, 100)
    err = rejects(CreditCurrencyError, app.request_order_confirmation, account_id, cny_order)
    assert err.currencies == ["EUR"]  # type: ignore[attr-defined]
    app.receive_payment(account_id, amount=Money.of(50, "EUR"), invoice_id=eur)
    app.request_order_confirmation(account_id, cny_order)


def test_a_credit_note_lowers_the_exposure(app: CRM, rejects: Rejects, account_id: UUID) -> None:
    app.set_credit_limit(account_id, limit=cny(10_000))
    order = confirmed(app, account_id, 8000)
    app.ship_order(account_id, order)
    invoice = app.issue_invoice(account_id, amount=cny(8000), order_id=order)
    app.return_order(account_id, order, reason="wrong model")
    nxt = order_of(app, account_id, 5000)
    rejects(CreditLimitExceededError, app.request_order_confirmation, account_id, nxt)
    app.issue_credit_note(account_id, invoice, amount=cny(8000), reason="returned")
    app.request_order_confirmation(account_id, nxt)


def test_a_cancelled_confirmed_order_no_longer_counts(app: CRM, account_id: UUID) -> None:
    app.set_credit_limit(account_id, limit=cny(10_000))
    order = confirmed(app, account_id, 8000)
    nxt = order_of(app, account_id, 5000)
    with pytest.raises(CreditLimitExceededError):
        app.request_order_confirmation(account_id, nxt)
    app.cancel_order(account_id, order, reason="customer changed the spec")
    app.request_order_confirmation(account_id, nxt)


# ----- cancellation -----------------------------------------------------------------------------
@pytest.mark.parametrize("step", ["placed", "confirmation_requested", "confirmed"])
def test_an_order_is_cancelled_before_shipment(
    app: CRM, rejects: Rejects, account_id: UUID, step: str
) -> None:
    order = order_of(app, account_id, 1000)
    if step != "placed":
        app.request_order_confirmation(account_id, order)
    if step == "confirmed":
        with app.context(source_system="erp"):
            app.confirm_order(account_id, order)
    app.cancel_order(account_id, order, reason="customer withdrew")
    assert app.account(account_id).order(order).status is OrderStatus.CANCELLED
    ev = last_event(app, account_id)
    assert isinstance(ev, Account.OrderCancelled)
    assert (ev.from_status, ev.reason) == (OrderStatus(step), "customer withdrew")
    rejects(OrderStateError, app.cancel_order, account_id, order, reason="again")
    rejects(OrderStateError, app.ship_order, account_id, order)
    with app.context(source_system="erp"):
        rejects(OrderStateError, app.confirm_order, account_id, order)


@pytest.mark.parametrize("step", ["shipped", "delivered", "returned", "rejected"])
def test_no_cancelling_after_shipment_or_rejection(
    app: CRM, rejects: Rejects, account_id: UUID, step: str
) -> None:
    order = order_of(app, account_id, 1000)
    app.request_order_confirmation(account_id, order)
    with app.context(source_system="erp"):
        if step == "rejected":
            app.reject_order(account_id, order, reason="credit")
        else:
            app.confirm_order(account_id, order)
    if step in ("shipped", "delivered", "returned"):
        app.ship_order(account_id, order)
    if step in ("delivered", "returned"):
        app.deliver_order(account_id, order)
    if step == "returned":
        app.return_order(account_id, order, reason="faulty")
    rejects(OrderStateError, app.cancel_order, account_id, order, reason="too late", match=step)
    rejects(InvalidCommandError, app.cancel_order, account_id, order, reason="")


# ----- credit notes and refunds -----------------------------------------------------------------
def _returned_and_paid(app: CRM, account_id: UUID, amount: int, paid: int) -> tuple[UUID, UUID]:
    order = confirmed(app, account_id, amount)
    app.ship_order(account_id, order)
    invoice = app.issue_invoice(account_id, amount=cny(amount), order_id=order)
    if paid:
        app.receive_payment(account_id, amount=cny(paid), invoice_id=invoice)
    app.deliver_order(account_id, order)
    app.return_order(account_id, order, reason="damaged")
    return order, invoice


def test_a_credit_note_needs_the_order_returned_or_cancelled(
    app: CRM, rejects: Rejects, account_id: UUID
) -> None:
    order = confirmed(app, account_id, 1000)
    invoice = app.issue_invoice(account_id, amount=cny(1000), order_id=order)
    app.ship_order(account_id, order)
    err = rejects(
        OrderStateError, app.issue_credit_note, account_id, invoice, amount=cny(10), reason="r"
    )
    assert "returned or cancelled" in str(err)
    # an invoice of a confirmed order that is then cancelled can be credited
    other = confirmed(app, account_id, 500)
    inv2 = app.issue_invoice(account_id, amount=cny(500), order_id=other)
    app.cancel_order(account_id, other, reason="withdrawn")
    app.issue_credit_note(account_id, inv2, amount=cny(500), reason="cancelled")
    assert app.account(account_id).invoice(inv2).outstanding == 0
    # an invoice for no order (a service fee) may be credited at any time
    fee = app.issue_invoice(account_id, amount=cny(80))
    app.issue_credit_note(account_id, fee, amount=cny(30), reason="fee reduced")
    assert app.account(account_id).invoice(fee).outstanding == Decimal(50)


def test_credit_notes_are_bounded_by_what_was_invoiced(
    app: CRM, rejects: Rejects, account_id: UUID
) -> None:
    order, invoice = _returned_and_paid(app, account_id, 1000, 0)
    first = app.issue_credit_note(account_id, invoice, amount=cny(600), reason="partial credit")
    err = rejects(
        CreditAmountError, app.issue_credit_note, account_id, invoice, amount=cny(401), reason="r"
    )
    assert isinstance(err, CreditAmountError)
    assert (err.amount, err.available) == (cny(401), cny(400))
    assert "401 CNY" in str(err)
    assert "400 CNY" in str(err)
    rejects(
        InvalidCommandError,
        app.issue_credit_note,
        account_id,
        invoice,
        amount=Money.of(1, "USD"),
        reason="r",
    )
    rejects(
        InvalidCommandError, app.issue_credit_note, account_id, invoice, amount=cny(0), reason="r"
    )
    rejects(
        RuleViolationError,
        app.issue_credit_note,
        account_id,
        invoice,
        amount=cny(1),
        reason="r",
        credit_note_id=first,
    )
    app.issue_credit_note(account_id, invoice, amount=cny(400), reason="rest")
    acc = app.account(account_id)
    assert acc.invoice(invoice).credited == Decimal(1000)
    assert acc.invoice(invoice).outstanding == 0
    assert acc.invoice(invoice).is_paid
    ev = last_event(app, account_id)
    assert isinstance(ev, Account.CreditNoteIssued)
    assert (ev.invoice_id, ev.order_id, ev.amount) == (invoice, order, cny(400))


def test_a_refund_pays_back_at_most_what_was_paid_beyond_what_is_owed(
    app: CRM, rejects: Rejects, account_id: UUID
) -> None:
    order, invoice = _returned_and_paid(app, account_id, 1000, 400)
    # paid 400 of 1000, nothing credited yet: nothing to refund
    err = rejects(
        CreditAmountError, app.issue_refund, account_id, invoice, amount=cny(1), reason="r"
    )
    assert err.available == cny(0)  # type: ignore[attr-defined]
    app.issue_credit_note(account_id, invoice, amount=cny(1000), reason="returned")
    # owed: 1000 - 1000 - 400 = -400: the customer gets 400 back, not more
    rejects(CreditAmountError, app.issue_refund, account_id, invoice, amount=cny(401), reason="r")
    app.issue_refund(account_id, invoice, amount=cny(300), reason="returned", reference="BANK-1")
    app.issue_refund(account_id, invoice, amount=cny(100), reason="returned")
    rejects(
        CreditAmountError, app.issue_refund, account_id, invoice, amount=cny("0.01"), reason="r"
    )
    rejects(
        InvalidCommandError,
        app.issue_refund,
        account_id,
        invoice,
        amount=Money.of(1, "EUR"),
        reason="r",
    )
    acc = app.account(account_id)
    assert (acc.invoice(invoice).refunded, acc.invoice(invoice).balance) == (Decimal(400), 0)
    assert acc.payments_received["CNY"] == Decimal(0)
    ev = last_event(app, account_id)
    assert isinstance(ev, Account.RefundIssued)
    assert (ev.invoice_id, ev.order_id, ev.amount) == (invoice, order, cny(100))


def test_an_overpayment_can_be_refunded(app: CRM, account_id: UUID) -> None:
    invoice = app.issue_invoice(account_id, amount=cny(100))
    app.receive_payment(account_id, amount=cny(120), invoice_id=invoice)
    app.issue_refund(account_id, invoice, amount=cny(20), reason="overpaid")
    assert app.account(account_id).invoice(invoice).balance == 0


def test_credit_notes_and_refunds_as_command_values(app: CRM, account_id: UUID) -> None:
    _, invoice = _returned_and_paid(app, account_id, 200, 200)
    note_id = uuid4()
    assert (
        app.handle(
            IssueCreditNote(
                account_id=account_id,
                invoice_id=invoice,
                amount=cny(200),
                reason="returned",
                credit_note_id=note_id,
            )
        )
        == note_id
    )
    assert app.account(account_id).invoice(invoice).refundable == Decimal(200)


# ----- stored and read back, SQLite and PostgreSQL ------------------------------------------------
def test_the_rules_hold_on_a_real_store(store_url: str) -> None:
    app = CRM(store_url, snapshot_interval=3)
    try:
        customer = app.register_customer(kind="enterprise", name="Acme", code="ACME")
        account = app.open_account(customer_id=customer, name="Acme")
        app.set_credit_limit(account, limit=cny(10_000))
        big = order_of(app, account, 500_000)
        before = app.app.recorder.max_notification_id()
        with app.context(source_system="crm-web"), pytest.raises(NotErpSourceError):
            app.confirm_order(account, big)
        with pytest.raises(CreditLimitExceededError):
            app.request_order_confirmation(account, big)
        assert app.app.recorder.max_notification_id() == before
        app.request_order_confirmation(account, big, credit_override=SUPERVISOR)
        with app.context(source_system="erp"):
            app.confirm_order(account, big)
        app.ship_order(account, big)
        invoice = app.issue_invoice(account, amount=cny(500_000), order_id=big)
        app.receive_payment(account, amount=cny(500_000), invoice_id=invoice)
        app.return_order(account, big, reason="damaged")
        app.issue_credit_note(account, invoice, amount=cny(500_000), reason="returned")
        app.issue_refund(account, invoice, amount=cny(100_000), reason="returned")
        small = order_of(app, account, 10)
        app.cancel_order(account, small, reason="duplicate")
    finally:
        app.close()
    again = CRM(store_url, snapshot_interval=3)
    try:
        acc = again.account(account)
        inv = acc.invoice(invoice)
        assert (inv.credited, inv.refunded, inv.refundable) == (
            Decimal(500_000),
            Decimal(100_000),
            Decimal(400_000),
        )
        assert acc.credit_notes
        assert acc.order(small).status is OrderStatus.CANCELLED
        requested = [
            e for e in again.history(account) if isinstance(e, Account.OrderConfirmationRequested)
        ]
        assert requested[0].credit_override == CreditOverride(**SUPERVISOR)
        with pytest.raises(CreditAmountError):
            again.issue_refund(account, invoice, amount=cny(400_001), reason="r")
    finally:
        again.close()


def test_an_order_keeps_the_erp_reference_it_was_confirmed_with(store_url: str) -> None:
    """What an order import needs to know whether ERP's order is already there: the
    reference lives on the order's state, also through a snapshot."""
    app = CRM(store_url, snapshot_interval=2)
    try:
        customer = app.register_customer(kind="enterprise", name="Acme", code="ACME")
        account = app.open_account(customer_id=customer, name="Acme")
        order = confirmed(app, account, 10)
        unconfirmed = order_of(app, account, 20)
        app.ship_order(account, order)
    finally:
        app.close()
    again = CRM(store_url, snapshot_interval=2)
    try:
        acc = again.account(account)
        assert (acc.order(order).erp_reference, acc.order(unconfirmed).erp_reference) == (
            "SO-1",
            "",
        )
    finally:
        again.close()


def test_a_confirmation_request_stored_before_the_credit_check_still_loads(app: CRM) -> None:
    """Events stored before the new fields read them as None (no upcaster needed)."""
    originator = uuid4()
    state = {
        "originator_id": str(originator),
        "originator_version": 7,
        "timestamp": "2025-03-01T10:00:00Z",
        "occurred_at": "2025-03-01T10:00:00Z",
        "metadata": {"actor": "li.wei", "source_system": "crm-core"},
        "event_id": str(uuid4()),
        "order_id": str(uuid4()),
        "total": {"amount": "500000", "currency": "CNY"},
    }
    stored = StoredEvent(
        originator_id=originator,
        originator_version=7,
        topic=get_topic(Account.OrderConfirmationRequested),
        state=orjson.dumps(state),
    )
    event = app.app.mapper.to_domain_event(stored)
    assert isinstance(event, Account.OrderConfirmationRequested)
    assert (event.credit_limit, event.exposure, event.credit_override) == (None, None, None)
    assert event.total == cny(500_000)
