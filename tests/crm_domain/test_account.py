"""Every Account command through the CRM: pipeline, quotes, orders, money, and the rules."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import pytest

from crm_domain import CRM, Account, Money, OrderLine
from crm_domain.errors import (
    AccountClosedError,
    AccountNotFoundError,
    ActiveQuoteExistsError,
    ConfirmationNotRequestedError,
    ContactRoleError,
    CustomerNotFoundError,
    EntityNotFoundError,
    InactiveCustomerError,
    InvalidCommandError,
    OpportunityClosedError,
    OrderStateError,
    PipelineRuleError,
    QuoteStateError,
    RuleViolationError,
    UnknownValueError,
)
from crm_domain.values import (
    AccountTier,
    CompanySize,
    KeyAccountCriterion,
    OrderRejectionReason,
    OrderStatus,
    QuoteStatus,
)

Rejects = Callable[..., BaseException]
CLOSE = date(2031, 6, 30)


def cny(amount: str | int) -> Money:
    return Money.of(amount, "CNY")


def line(price: str = "1000", qty: int = 2, currency: str = "CNY") -> OrderLine:
    return OrderLine(sku="SCN-200", quantity=qty, unit_price=Money.of(price, currency))


def types(app: CRM, account_id: UUID) -> list[str]:
    return [type(e).__name__ for e in app.history(account_id)]


def last(app: CRM, account_id: UUID) -> object:
    return app.history(account_id)[-1]


# ----- the account -------------------------------------------------------------------------


def test_open_account_for_customer(app: CRM, customer_id: UUID, account_id: UUID) -> None:
    account = app.account(account_id)
    assert account.customer_id == customer_id
    assert (account.name, account.industry) == ("Baiyun Trading B2B", "logistics")
    assert (account.size, account.tier) == (CompanySize.LARGE, AccountTier.STANDARD)
    assert account.active
    assert account.key_account is None
    assert types(app, account_id) == ["Opened"]


def test_open_account_rules(app: CRM, rejects: Rejects, customer_id: UUID) -> None:
    rejects(CustomerNotFoundError, app.open_account, customer_id=uuid4(), name="x")
    rejects(InvalidCommandError, app.open_account, customer_id=customer_id, name="")
    rejects(InvalidCommandError, app.open_account, customer_id=customer_id, name="x", size="huge")
    rejects(InvalidCommandError, app.open_account, customer_id=customer_id, name="x", tier="gilt")
    app.deactivate_customer(customer_id, reason="dissolved")
    rejects(InactiveCustomerError, app.open_account, customer_id=customer_id, name="x")


def test_unknown_account_id(app: CRM, rejects: Rejects, customer_id: UUID) -> None:
    rejects(AccountNotFoundError, app.account, uuid4())
    rejects(AccountNotFoundError, app.assign_account_manager, uuid4(), manager="m", reason="r")
    # A customer id is not an account id.
    rejects(AccountNotFoundError, app.close_account, customer_id, reason="r")


def test_reclassify(app: CRM, rejects: Rejects, account_id: UUID) -> None:
    app.reclassify_account(account_id, tier="gold")
    account = app.account(account_id)
    assert (account.industry, account.size, account.tier) == (
        "logistics",
        CompanySize.LARGE,
        AccountTier.GOLD,
    )
    rejects(InvalidCommandError, app.reclassify_account, account_id, size="gigantic")


def test_key_account_designation_and_revocation(
    app: CRM, rejects: Rejects, account_id: UUID
) -> None:
    rejects(RuleViolationError, app.revoke_key_account, account_id, reason="not one")
    app.designate_key_account(account_id, criterion="size", note="over 1000 employees")
    assert app.account(account_id).key_account is KeyAccountCriterion.SIZE
    ev = last(app, account_id)
    assert isinstance(ev, Account.KeyAccountDesignated)
    assert ev.note == "over 1000 employees"
    rejects(InvalidCommandError, app.designate_key_account, account_id, criterion="vibes")
    app.revoke_key_account(account_id, reason="downsized")
    assert app.account(account_id).key_account is None


def test_contacts_are_the_decision_unit(
    app: CRM, rejects: Rejects, customer_id: UUID, account_id: UUID
) -> None:
    buyer = app.register_customer(kind="individual", name="Huang Lei", code="P-HL")
    cfo = app.register_customer(kind="individual", name="Lin Mei", code="P-LM")
    app.add_account_contact(account_id, customer_id=buyer, role="purchasing manager")
    app.add_account_contact(account_id, customer_id=cfo, role="CFO", decision_maker=True)
    account = app.account(account_id)
    assert set(account.contacts) == {buyer, cfo}
    assert [c.customer_id for c in account.decision_unit] == [cfo]
    rejects(ContactRoleError, app.add_account_contact, account_id, customer_id=buyer, role="x")
    rejects(
        CustomerNotFoundError, app.add_account_contact, account_id, customer_id=uuid4(), role="x"
    )
    rejects(
        InvalidCommandError, app.add_account_contact, account_id, customer_id=customer_id, role=""
    )
    app.remove_account_contact(account_id, customer_id=buyer, reason="left the company")
    assert set(app.account(account_id).contacts) == {cfo}
    rejects(
        EntityNotFoundError, app.remove_account_contact, account_id, customer_id=buyer, reason="r"
    )


def test_account_manager(app: CRM, rejects: Rejects, account_id: UUID) -> None:
    app.assign_account_manager(account_id, manager="li.wei", reason="key account")
    app.assign_account_manager(account_id, manager="zhao.lei", reason="li.wei left")
    assert app.account(account_id).manager == "zhao.lei"
    ev = last(app, account_id)
    assert isinstance(ev, Account.ManagerAssigned)
    assert ev.previous_manager == "li.wei"
    rejects(
        RuleViolationError, app.assign_account_manager, account_id, manager="zhao.lei", reason="r"
    )


def test_credit_limit(app: CRM, rejects: Rejects, account_id: UUID) -> None:
    app.set_credit_limit(account_id, limit=cny(500000))
    app.set_credit_limit(account_id, limit=cny(250000))
    assert app.account(account_id).credit_limit == cny(250000)
    ev = last(app, account_id)
    assert isinstance(ev, Account.CreditLimitSet)
    assert ev.previous_limit == cny(500000)
    rejects(InvalidCommandError, lambda: app.set_credit_limit(account_id, limit=cny(-1)))
    rejects(
        InvalidCommandError,
        lambda: app.set_credit_limit(account_id, limit=Money.of(1, "RMB")),
    )


def test_close_account_requires_closed_pipeline(
    app: CRM, rejects: Rejects, account_id: UUID, opportunity_id: UUID
) -> None:
    rejects(RuleViolationError, app.close_account, account_id, reason="relationship ended")
    app.lose_opportunity(account_id, opportunity_id, reason="budget cut")
    app.close_account(account_id, reason="relationship ended")
    assert app.account(account_id).active is False
    for command, kwargs in [
        ("close_account", {"reason": "again"}),
        ("open_opportunity", {"name": "n", "expected_close": CLOSE, "owner": "o"}),
        ("place_order", {"lines": [line()]}),
        ("assign_account_manager", {"manager": "m", "reason": "r"}),
        ("designate_key_account", {"criterion": "size"}),
        ("reclassify_account", {"tier": "gold"}),
    ]:
        rejects(AccountClosedError, getattr(app, command), account_id, **kwargs)


# ----- opportunities -------------------------------------------------------------------------


def test_opportunity_opens_in_first_stage(app: CRM, account_id: UUID, opportunity_id: UUID) -> None:
    opp = app.account(account_id).opportunity(opportunity_id)
    assert (opp.stage, opp.probability) == ("prospecting", Decimal("0.10"))
    assert opp.amount == cny("120000")
    assert opp.owner == "zhang.min"
    assert not opp.is_closed


def test_open_opportunity_rejects_bad_input(app: CRM, rejects: Rejects, account_id: UUID) -> None:
    rejects(
        InvalidCommandError,
        app.open_opportunity,
        account_id,
        name="",
        expected_close=CLOSE,
        owner="o",
    )
    rejects(
        InvalidCommandError,
        app.open_opportunity,
        account_id,
        name="n",
        expected_close="soon",
        owner="o",
    )
    rejects(
        InvalidCommandError,
        app.open_opportunity,
        account_id,
        name="n",
        expected_close=CLOSE,
        owner="o",
        amount={"amount": "-5", "currency": "CNY"},
    )


def test_staging_through_the_pipeline(app: CRM, account_id: UUID, opportunity_id: UUID) -> None:
    for stage, probability in [
        ("qualification", "0.20"),
        ("needs_analysis", "0.40"),
        ("proposal", "0.60"),
        ("negotiation", "0.80"),
    ]:
        app.stage_opportunity(account_id, opportunity_id, stage=stage)
        ev = last(app, account_id)
        assert isinstance(ev, Account.OpportunityStaged)
        assert (ev.to_stage, ev.probability) == (stage, Decimal(probability))
    app.stage_opportunity(account_id, opportunity_id, stage="proposal")  # stepping back is allowed
    assert app.account(account_id).opportunity(opportunity_id).stage == "proposal"


def test_staging_rules(app: CRM, rejects: Rejects, account_id: UUID, opportunity_id: UUID) -> None:
    rejects(UnknownValueError, app.stage_opportunity, account_id, opportunity_id, stage="won")
    rejects(
        PipelineRuleError, app.stage_opportunity, account_id, opportunity_id, stage="prospecting"
    )
    rejects(
        PipelineRuleError, app.stage_opportunity, account_id, opportunity_id, stage="closed_won"
    )
    rejects(
        PipelineRuleError, app.stage_opportunity, account_id, opportunity_id, stage="closed_lost"
    )
    rejects(EntityNotFoundError, app.stage_opportunity, account_id, uuid4(), stage="proposal")


def test_closed_opportunity_cannot_be_staged_revised_or_reclosed(
    app: CRM, rejects: Rejects, account_id: UUID, opportunity_id: UUID
) -> None:
    app.win_opportunity(account_id, opportunity_id, reason="best price", competitor="Zebra")
    opp = app.account(account_id).opportunity(opportunity_id)
    assert (opp.stage, opp.won, opp.probability) == ("closed_won", True, Decimal(1))
    ev = last(app, account_id)
    assert isinstance(ev, Account.OpportunityWon)
    assert (ev.amount, ev.competitor, ev.from_stage) == (cny("120000"), "Zebra", "prospecting")
    rejects(
        OpportunityClosedError, app.stage_opportunity, account_id, opportunity_id, stage="proposal"
    )
    rejects(
        OpportunityClosedError, app.revise_opportunity, account_id, opportunity_id, amount=cny(1)
    )
    rejects(OpportunityClosedError, app.win_opportunity, account_id, opportunity_id, reason="r")
    rejects(OpportunityClosedError, app.lose_opportunity, account_id, opportunity_id, reason="r")
    rejects(
        OpportunityClosedError,
        app.issue_quote,
        account_id,
        opportunity_id,
        amount=cny(1),
        valid_until=CLOSE,
    )


def test_closing_won_needs_an_amount(app: CRM, rejects: Rejects, account_id: UUID) -> None:
    opp = app.open_opportunity(account_id, name="Pilot", expected_close=CLOSE, owner="o")
    rejects(PipelineRuleError, app.win_opportunity, account_id, opp, reason="signed")
    app.revise_opportunity(account_id, opp, amount=cny(0), reason="free pilot")
    rejects(PipelineRuleError, app.win_opportunity, account_id, opp, reason="signed")
    app.revise_opportunity(account_id, opp, amount=cny("8000.50"), reason="paid pilot")
    app.win_opportunity(account_id, opp, reason="signed")
    assert app.account(account_id).opportunity(opp).won is True


def test_lose_records_reason_and_competitor_and_expires_active_quote(
    app: CRM, account_id: UUID, opportunity_id: UUID
) -> None:
    quote = app.issue_quote(account_id, opportunity_id, amount=cny(110000), valid_until=CLOSE)
    app.lose_opportunity(account_id, opportunity_id, reason="price", competitor="Honeywell")
    account = app.account(account_id)
    opp = account.opportunity(opportunity_id)
    assert (opp.stage, opp.won, opp.probability) == ("closed_lost", False, Decimal(0))
    assert account.quote(quote).status is QuoteStatus.EXPIRED
    lost, expired = app.history(account_id)[-2:]
    assert isinstance(lost, Account.OpportunityLost)
    assert (lost.reason, lost.competitor) == ("price", "Honeywell")
    assert isinstance(expired, Account.QuoteExpired)


def test_revise_opportunity(
    app: CRM, rejects: Rejects, account_id: UUID, opportunity_id: UUID
) -> None:
    app.revise_opportunity(
        account_id,
        opportunity_id,
        amount=cny(90000),
        expected_close=date(2031, 9, 30),
        reason="scope",
    )
    opp = app.account(account_id).opportunity(opportunity_id)
    assert (opp.amount, opp.expected_close) == (cny(90000), date(2031, 9, 30))
    rejects(
        InvalidCommandError, app.revise_opportunity, account_id, opportunity_id, reason="nothing"
    )
    rejects(EntityNotFoundError, app.revise_opportunity, account_id, uuid4(), amount=cny(1))


# ----- quotes --------------------------------------------------------------------------------


def test_one_active_quote_per_opportunity(
    app: CRM, rejects: Rejects, account_id: UUID, opportunity_id: UUID
) -> None:
    q1 = app.issue_quote(
        account_id, opportunity_id, amount=cny(118000), valid_until=CLOSE, discount_pct="5"
    )
    err = rejects(
        ActiveQuoteExistsError,
        app.issue_quote,
        account_id,
        opportunity_id,
        amount=cny(100000),
        valid_until=CLOSE,
    )
    assert isinstance(err, ActiveQuoteExistsError)
    assert err.quote_id == q1
    q2 = app.revise_quote(account_id, q1, amount=cny(112000), valid_until=CLOSE, discount_pct=10)
    account = app.account(account_id)
    assert account.quote(q1).status is QuoteStatus.SUPERSEDED
    assert account.quote(q2).status is QuoteStatus.ACTIVE
    assert (account.quote(q2).version, account.quote(q2).discount_pct) == (2, Decimal(10))
    assert account.active_quote(opportunity_id) == account.quote(q2)
    issued = last(app, account_id)
    assert isinstance(issued, Account.QuoteIssued)
    assert issued.supersedes == q1
    rejects(QuoteStateError, app.revise_quote, account_id, q1, amount=cny(1), valid_until=CLOSE)
    app.expire_quote(account_id, q2)
    q3 = app.issue_quote(account_id, opportunity_id, amount=cny(115000), valid_until=CLOSE)
    assert app.account(account_id).quote(q3).version == 3


def test_quote_state_rules(
    app: CRM, rejects: Rejects, account_id: UUID, opportunity_id: UUID
) -> None:
    q = app.issue_quote(account_id, opportunity_id, amount=cny(118000), valid_until=CLOSE)
    app.accept_quote(account_id, q)
    assert app.account(account_id).quote(q).status is QuoteStatus.ACCEPTED
    rejects(QuoteStateError, app.accept_quote, account_id, q)
    rejects(QuoteStateError, app.expire_quote, account_id, q)
    rejects(EntityNotFoundError, app.accept_quote, account_id, uuid4())
    rejects(EntityNotFoundError, app.expire_quote, account_id, uuid4())


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"discount_pct": "101"}, InvalidCommandError),
        ({"discount_pct": "-1"}, InvalidCommandError),
        ({"discount_pct": "ten"}, InvalidCommandError),
        ({"valid_until": "someday"}, InvalidCommandError),
        ({"amount": {"amount": "-1", "currency": "CNY"}}, InvalidCommandError),
    ],
)
def test_issue_quote_rejects_bad_input(
    app: CRM,
    rejects: Rejects,
    account_id: UUID,
    opportunity_id: UUID,
    kwargs: dict[str, object],
    error: type[Exception],
) -> None:
    base: dict[str, object] = {"amount": cny(1000), "valid_until": CLOSE}
    rejects(error, app.issue_quote, account_id, opportunity_id, **(base | kwargs))


# ----- orders --------------------------------------------------------------------------------


def test_order_flow_confirmed_by_erp(app: CRM, account_id: UUID, opportunity_id: UUID) -> None:
    quote = app.issue_quote(account_id, opportunity_id, amount=cny(2000), valid_until=CLOSE)
    app.accept_quote(account_id, quote)
    order = app.place_order(
        account_id,
        lines=[
            line("1000", 1),
            {
                "sku": "SVC-1",
                "quantity": 2,
                "unit_price": {"amount": "500", "currency": "CNY"},
                "customisation": "24/7 support",
            },
        ],
        opportunity_id=opportunity_id,
        quote_id=quote,
    )
    assert app.account(account_id).order(order).total == cny(2000)
    app.request_order_confirmation(account_id, order)
    with app.context(source_system="erp"):
        app.confirm_order(account_id, order, erp_reference="SAP-4711")
    app.ship_order(account_id, order, shipment_ref="SF-123")
    app.deliver_order(account_id, order)
    app.return_order(account_id, order, reason="damaged in transit")
    assert app.account(account_id).order(order).status is OrderStatus.RETURNED
    assert types(app, account_id)[-6:] == [
        "OrderPlaced",
        "OrderConfirmationRequested",
        "OrderConfirmed",
        "OrderShipped",
        "OrderDelivered",
        "OrderReturned",
    ]


@pytest.mark.parametrize("reason", list(OrderRejectionReason))
def test_order_rejected_by_erp(
    app: CRM, rejects: Rejects, account_id: UUID, reason: OrderRejectionReason
) -> None:
    order = app.place_order(account_id, lines=[line()])
    app.request_order_confirmation(account_id, order)
    with app.context(source_system="erp"):
        app.reject_order(account_id, order, reason=reason.value, detail="over the limit")
        assert app.account(account_id).order(order).status is OrderStatus.REJECTED
        rejects(OrderStateError, app.ship_order, account_id, order)
        rejects(OrderStateError, app.confirm_order, account_id, order)


def test_no_shipping_an_unconfirmed_order(app: CRM, rejects: Rejects, account_id: UUID) -> None:
    order = app.place_order(account_id, lines=[line()])
    err = rejects(OrderStateError, app.ship_order, account_id, order)
    assert "placed" in str(err)
    assert "confirmed" in str(err)
    app.request_order_confirmation(account_id, order)
    rejects(OrderStateError, app.ship_order, account_id, order)
    rejects(OrderStateError, app.request_order_confirmation, account_id, order)
    rejects(OrderStateError, app.deliver_order, account_id, order)
    rejects(OrderStateError, app.return_order, account_id, order, reason="r")
    rejects(InvalidCommandError, app.reject_order, account_id, order, reason="price")
    rejects(EntityNotFoundError, app.ship_order, account_id, uuid4())


def test_no_confirming_directly_from_placed(app: CRM, rejects: Rejects, account_id: UUID) -> None:
    """ERP confirms only what it was asked to confirm (tests/crm_domain/test_orders_erp_credit.py
    holds the other ERP and credit rules)."""
    order = app.place_order(account_id, lines=[line()])
    with app.context(source_system="erp"):
        rejects(ConfirmationNotRequestedError, app.confirm_order, account_id, order)
    assert app.account(account_id).order(order).status is OrderStatus.PLACED


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"lines": []}, InvalidCommandError),
        ({"lines": [line("10", 1, "CNY"), line("10", 1, "USD")]}, InvalidCommandError),
        (
            {
                "lines": [
                    {"sku": "x", "quantity": 0, "unit_price": {"amount": 1, "currency": "CNY"}}
                ]
            },
            InvalidCommandError,
        ),
        (
            {
                "lines": [
                    {"sku": "x", "quantity": 1, "unit_price": {"amount": -1, "currency": "CNY"}}
                ]
            },
            InvalidCommandError,
        ),
        (
            {
                "lines": [
                    {"sku": "x", "quantity": 1, "unit_price": {"amount": 1, "currency": "ABC"}}
                ]
            },
            InvalidCommandError,
        ),
        ({"lines": [line()], "opportunity_id": uuid4()}, EntityNotFoundError),
        ({"lines": [line()], "quote_id": uuid4()}, EntityNotFoundError),
    ],
)
def test_place_order_rejects_bad_input(
    app: CRM, rejects: Rejects, account_id: UUID, kwargs: dict[str, object], error: type[Exception]
) -> None:
    rejects(error, app.place_order, account_id, **kwargs)


def test_order_from_unaccepted_quote(
    app: CRM, rejects: Rejects, account_id: UUID, opportunity_id: UUID
) -> None:
    quote = app.issue_quote(account_id, opportunity_id, amount=cny(2000), valid_until=CLOSE)
    rejects(QuoteStateError, app.place_order, account_id, lines=[line()], quote_id=quote)


# ----- invoices and payments -------------------------------------------------------------------


def test_invoices_and_payments(app: CRM, rejects: Rejects, account_id: UUID) -> None:
    order = app.place_order(account_id, lines=[line("1000", 2)])
    erp_invoice = uuid4()
    invoice = app.issue_invoice(
        account_id, amount=cny(2000), order_id=order, reference="INV-1", invoice_id=erp_invoice
    )
    assert invoice == erp_invoice
    app.receive_payment(account_id, amount=cny(1500), invoice_id=invoice, reference="bank")
    app.receive_payment(account_id, amount=Money.of(10, "USD"))
    account = app.account(account_id)
    assert account.invoice(invoice).paid == Decimal(1500)
    assert not account.invoice(invoice).is_paid
    assert account.payments_received == {"CNY": Decimal(1500), "USD": Decimal(10)}
    app.receive_payment(account_id, amount=cny(500), invoice_id=invoice)
    assert app.account(account_id).invoice(invoice).is_paid

    rejects(RuleViolationError, app.issue_invoice, account_id, amount=cny(1), invoice_id=invoice)
    rejects(EntityNotFoundError, app.issue_invoice, account_id, amount=cny(1), order_id=uuid4())
    rejects(InvalidCommandError, app.receive_payment, account_id, amount=cny(0))
    rejects(
        InvalidCommandError,
        app.receive_payment,
        account_id,
        amount=Money.of(5, "EUR"),
        invoice_id=invoice,
    )
    rejects(EntityNotFoundError, app.receive_payment, account_id, amount=cny(5), invoice_id=uuid4())
    rejects(InvalidCommandError, lambda: app.receive_payment(account_id, amount=cny(-5)))


@pytest.mark.parametrize(
    "command",
    ["set_credit_limit", "issue_invoice", "receive_payment", "open_opportunity", "issue_quote"],
)
@pytest.mark.parametrize("loose", ["5 CNY", 5, None, {"amount": "-5", "currency": "CNY"}])
def test_money_that_is_not_money_is_a_typed_error(
    app: CRM, account_id: UUID, rejects: Rejects, command: str, loose: Any
) -> None:
    """Untyped callers (JSON payloads, scripts) get InvalidCommandError, never AttributeError;
    a mapping with a valid amount and currency is accepted as Money."""
    opportunity = app.open_opportunity(account_id, name="deal", expected_close=CLOSE, owner="o")
    calls: dict[str, Any] = {
        "set_credit_limit": lambda m: app.set_credit_limit(account_id, limit=m),
        "issue_invoice": lambda m: app.issue_invoice(account_id, amount=m),
        "receive_payment": lambda m: app.receive_payment(account_id, amount=m),
        "open_opportunity": lambda m: app.open_opportunity(
            account_id, name="n", expected_close=CLOSE, owner="o", amount=m if m else "x"
        ),
        "issue_quote": lambda m: app.issue_quote(
            account_id, opportunity, amount=m, valid_until=CLOSE
        ),
    }
    rejects(InvalidCommandError, calls[command], loose)
    calls[command]({"amount": "5", "currency": "CNY"})


# ----- the aggregate on its own ----------------------------------------------------------------


def test_rejected_aggregate_command_leaves_no_pending_event() -> None:
    account = Account.open(customer_id=uuid4(), name="Acme")
    opp = account.open_opportunity(name="n", expected_close=CLOSE, owner="o", amount=cny(5))
    account.issue_quote(opp, amount=cny(5), valid_until=CLOSE)
    account.collect_events()
    version = account.version
    with pytest.raises(ActiveQuoteExistsError):
        account.issue_quote(opp, amount=cny(4), valid_until=CLOSE)
    with pytest.raises(PipelineRuleError):
        account.stage_opportunity(opp, stage="closed_won")
    assert account.collect_events() == []
    assert account.version == version


# ----- reassigning opportunities --------------------------------------------------------------


def test_an_open_opportunity_can_be_handed_to_another_rep(
    app: CRM, account_id: UUID, opportunity_id: UUID, rejects: Rejects
) -> None:
    app.reassign_opportunity(account_id, opportunity_id, owner="li.wei", reason="zhang.min left")
    assert app.account(account_id).opportunity(opportunity_id).owner == "li.wei"
    last = app.history(account_id)[-1]
    assert isinstance(last, Account.OpportunityReassigned)
    assert (last.previous_owner, last.owner, last.reason) == (
        "zhang.min",
        "li.wei",
        "zhang.min left",
    )
    rejects(
        RuleViolationError,
        app.reassign_opportunity,
        account_id,
        opportunity_id,
        owner="li.wei",
        reason="again",
    )
    rejects(
        InvalidCommandError,
        app.reassign_opportunity,
        account_id,
        opportunity_id,
        owner="",
        reason="nobody",
    )
    app.lose_opportunity(account_id, opportunity_id, reason="budget cut")
    rejects(
        OpportunityClosedError,
        app.reassign_opportunity,
        account_id,
        opportunity_id,
        owner="wang.fang",
        reason="too late",
    )
