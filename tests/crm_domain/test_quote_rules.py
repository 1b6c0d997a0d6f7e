"""Quotes and won deals: validity, expiry, one accepted quote, what a win books, discount
approval by tier, and explicit currency changes (issue 10, "Quotes and won deals")."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from decimal import Decimal
from uuid import UUID

import pytest

from conftest import Rejects
from crm_domain import CRM, Money
from crm_domain.account import Account
from crm_domain.errors import (
    AcceptedQuoteExistsError,
    ActiveQuoteExistsError,
    CurrencyChangeError,
    DiscountApprovalError,
    DiscountApprovalRequiredError,
    InvalidCommandError,
    QuoteExpiredError,
    UnresolvedQuoteError,
)
from crm_domain.quoting import QuoteSettings
from crm_domain.settings import CRMSettings
from crm_domain.values import DiscountApproval, QuoteStatus

JAN_10 = datetime(2031, 1, 10, 9, 0, tzinfo=UTC)
VALID_UNTIL = date(2031, 1, 31)


def usd(amount: int | str) -> Money:
    return Money.of(amount, "USD")


@contextmanager
def on(app: CRM, when: datetime, actor: str = "zhang.min") -> Iterator[None]:
    with app.context(actor=actor, occurred_at=when):
        yield


def types(app: CRM, account_id: UUID, last: int) -> list[str]:
    return [type(e).__name__ for e in app.history(account_id)[-last:]]


@pytest.fixture
def deal(app: CRM, account_id: UUID) -> UUID:
    with on(app, JAN_10):
        return app.open_opportunity(
            account_id,
            name="Cold-chain sensors",
            expected_close=date(2031, 3, 31),
            owner="zhang.min",
            amount=usd(50000),
        )


@pytest.fixture
def quote(app: CRM, account_id: UUID, deal: UUID) -> UUID:
    with on(app, JAN_10):
        return app.issue_quote(account_id, deal, amount=usd(48000), valid_until=VALID_UNTIL)


# ----- validity --------------------------------------------------------------------------
def test_a_quote_past_its_validity_cannot_be_accepted(
    app: CRM, rejects: Rejects, account_id: UUID, quote: UUID
) -> None:
    with on(app, datetime(2031, 2, 1, 8, 0, tzinfo=UTC)):
        err = rejects(QuoteExpiredError, app.accept_quote, account_id, quote)
    assert isinstance(err, QuoteExpiredError)
    assert (err.quote_id, err.valid_until, err.as_of) == (quote, VALID_UNTIL, date(2031, 2, 1))
    with on(app, datetime(2031, 2, 1, 8, 0, tzinfo=UTC)):
        rejects(QuoteExpiredError, app.send_quote, account_id, quote)
    # valid_until is the last valid day
    with on(app, datetime(2031, 1, 31, 23, 0, tzinfo=UTC)):
        app.accept_quote(account_id, quote)
    assert app.account(account_id).quotes[quote].status is QuoteStatus.ACCEPTED


def test_validity_is_counted_in_the_office_time_zone(customer_id: UUID) -> None:
    app = CRM("memory://", settings=CRMSettings(calendar={"timezone": "Asia/Shanghai"}))
    cid = app.register_customer(kind="enterprise", name="Pudong Cold Chain", code="PD-1")
    aid = app.open_account(customer_id=cid, name="Pudong Cold Chain")
    with on(app, JAN_10):
        opp = app.open_opportunity(
            aid, name="Sensors", expected_close=date(2031, 3, 31), owner="li", amount=usd(10)
        )
        q = app.issue_quote(aid, opp, amount=usd(10), valid_until=VALID_UNTIL)
    # 17:00 UTC on the 31st is 01:00 on 1 February in Shanghai: expired there
    with on(app, datetime(2031, 1, 31, 17, 0, tzinfo=UTC)), pytest.raises(QuoteExpiredError):
        app.accept_quote(aid, q)


def test_a_quote_past_its_validity_reads_as_expired(
    app: CRM, account_id: UUID, quote: UUID
) -> None:
    account = app.account(account_id)
    assert account.quote(quote, as_of=VALID_UNTIL).status is QuoteStatus.ACTIVE
    assert account.quote(quote, as_of=date(2031, 2, 1)).status is QuoteStatus.EXPIRED
    assert account.quotes[quote].status is QuoteStatus.ACTIVE  # not recorded yet
    # by default, as of today: the fixture's quote (2031) is still valid
    assert account.quote(quote).status is QuoteStatus.ACTIVE


def test_expiring_lapsed_quotes_records_them_once(
    app: CRM, account_id: UUID, deal: UUID, quote: UUID
) -> None:
    assert app.expire_lapsed_quotes(account_id, as_of=VALID_UNTIL) == []
    assert app.expire_lapsed_quotes(account_id, as_of=date(2031, 2, 1)) == [quote]
    expired = app.history(account_id)[-1]
    assert isinstance(expired, Account.QuoteExpired)
    assert (expired.valid_until, expired.as_of) == (VALID_UNTIL, date(2031, 2, 1))
    assert app.account(account_id).quotes[quote].status is QuoteStatus.EXPIRED
    events = len(app.history(account_id))
    assert app.expire_lapsed_quotes(account_id, as_of=date(2031, 2, 2)) == []
    assert app.expire_quotes(as_of=date(2031, 2, 2)) == []
    assert len(app.history(account_id)) == events


def test_issuing_over_a_lapsed_quote_records_its_expiry_first(
    app: CRM, account_id: UUID, deal: UUID, quote: UUID
) -> None:
    with on(app, datetime(2031, 1, 20, tzinfo=UTC)), pytest.raises(ActiveQuoteExistsError):
        app.issue_quote(account_id, deal, amount=usd(47000), valid_until=date(2031, 2, 28))
    with on(app, datetime(2031, 2, 3, tzinfo=UTC)):
        new = app.issue_quote(account_id, deal, amount=usd(47000), valid_until=date(2031, 2, 28))
    assert types(app, account_id, 2) == ["QuoteExpired", "QuoteIssued"]
    assert app.account(account_id).quotes[new].version == 2


# ----- one accepted quote ----------------------------------------------------------------
def test_no_new_quote_after_acceptance_until_the_deal_is_revised(
    app: CRM, rejects: Rejects, account_id: UUID, deal: UUID, quote: UUID
) -> None:
    with on(app, JAN_10):
        app.accept_quote(account_id, quote)
        err = rejects(
            AcceptedQuoteExistsError,
            app.issue_quote,
            account_id,
            deal,
            amount=usd(30000),
            valid_until=VALID_UNTIL,
        )
        assert isinstance(err, AcceptedQuoteExistsError)
        assert (err.opportunity_id, err.quote_id) == (deal, quote)
        app.revise_opportunity(account_id, deal, amount=usd(60000), reason="scope doubled")
        again = app.issue_quote(account_id, deal, amount=usd(58000), valid_until=VALID_UNTIL)
    assert app.account(account_id).quotes[again].version == 2


# ----- what a win books ------------------------------------------------------------------
def test_winning_books_the_accepted_quote_total(
    app: CRM, account_id: UUID, deal: UUID, quote: UUID
) -> None:
    with on(app, JAN_10):
        app.accept_quote(account_id, quote)
        app.win_opportunity(account_id, deal, reason="signed")
    won = app.history(account_id)[-1]
    assert isinstance(won, Account.OpportunityWon)
    assert (won.amount, won.quote_id) == (usd(48000), quote)
    assert app.account(account_id).opportunity(deal).amount == usd(48000)


def test_winning_without_a_quote_books_the_opportunity_amount(
    app: CRM, account_id: UUID, deal: UUID
) -> None:
    with on(app, JAN_10):
        app.win_opportunity(account_id, deal, reason="signed")
    won = app.history(account_id)[-1]
    assert isinstance(won, Account.OpportunityWon)
    assert (won.amount, won.quote_id) == (usd(50000), None)


def test_an_active_quote_must_be_accepted_or_withdrawn_before_winning(
    app: CRM, rejects: Rejects, account_id: UUID, deal: UUID, quote: UUID
) -> None:
    with on(app, JAN_10):
        err = rejects(UnresolvedQuoteError, app.win_opportunity, account_id, deal, reason="x")
        assert isinstance(err, UnresolvedQuoteError)
        assert (err.opportunity_id, err.quote_id) == (deal, quote)
        app.withdraw_quote(account_id, quote, reason="customer signs the list price")
        app.win_opportunity(account_id, deal, reason="signed")
    assert types(app, account_id, 2) == ["QuoteWithdrawn", "OpportunityWon"]
    account = app.account(account_id)
    assert account.quotes[quote].status is QuoteStatus.WITHDRAWN
    assert account.active_quote(deal) is None


def test_a_lapsed_quote_is_expired_when_the_deal_is_won(
    app: CRM, account_id: UUID, deal: UUID, quote: UUID
) -> None:
    with on(app, datetime(2031, 2, 5, tzinfo=UTC)):
        app.win_opportunity(account_id, deal, reason="signed on the list price")
    assert types(app, account_id, 2) == ["QuoteExpired", "OpportunityWon"]
    assert app.account(account_id).quotes[quote].status is QuoteStatus.EXPIRED


# ----- discount approval -----------------------------------------------------------------
@pytest.fixture
def policy_app() -> CRM:
    settings = CRMSettings(
        quotes=QuoteSettings(approval_threshold_pct=Decimal(10), tier_thresholds_pct={"gold": 20})
    )
    return CRM("memory://", settings=settings)


def _deal(app: CRM, tier: str) -> tuple[UUID, UUID]:
    cid = app.register_customer(kind="enterprise", name=f"{tier} buyer", code=f"T-{tier}")
    aid = app.open_account(customer_id=cid, name=f"{tier} buyer", tier=tier)
    with on(app, JAN_10):
        opp = app.open_opportunity(
            aid, name="Sensors", expected_close=date(2031, 3, 31), owner="li", amount=usd(100)
        )
    return aid, opp


def test_a_discount_beyond_the_threshold_needs_approval_by_someone_else(
    policy_app: CRM,
) -> None:
    app = policy_app
    aid, opp = _deal(app, "standard")
    with on(app, JAN_10, actor="li"):
        q = app.issue_quote(aid, opp, amount=usd(85), valid_until=VALID_UNTIL, discount_pct=15)
    requested = app.history(aid)[-1]
    assert isinstance(requested, Account.QuoteDiscountApprovalRequested)
    assert (requested.discount_pct, requested.threshold_pct) == (Decimal(15), Decimal(10))
    assert requested.requested_by == "li"
    with on(app, JAN_10, actor="li"):
        with pytest.raises(DiscountApprovalRequiredError) as info:
            app.accept_quote(aid, q)
        err = info.value
        assert (err.discount_pct, err.threshold_pct, err.approval) == (15, 10, "requested")
        with pytest.raises(DiscountApprovalRequiredError):
            app.send_quote(aid, q)
        with pytest.raises(DiscountApprovalError):
            app.approve_quote_discount(aid, q, approver="li")
    with on(app, JAN_10, actor="wang.director"):
        app.approve_quote_discount(aid, q, approver="wang.director", note="strategic account")
        with pytest.raises(DiscountApprovalError):
            app.approve_quote_discount(aid, q, approver="x")
    approved = app.history(aid)[-1]
    assert isinstance(approved, Account.QuoteDiscountApproved)
    assert approved.approver == "wang.director"
    with on(app, JAN_10, actor="li"):
        app.send_quote(aid, q, sent_to="purchasing@example.com")
        app.accept_quote(aid, q)
    quote = app.account(aid).quotes[q]
    assert (quote.approval, quote.approver, quote.sent) == (
        DiscountApproval.APPROVED,
        "wang.director",
        True,
    )


def test_a_rejected_discount_blocks_the_quote_until_revised(policy_app: CRM) -> None:
    app = policy_app
    aid, opp = _deal(app, "standard")
    with on(app, JAN_10, actor="li"):
        q = app.issue_quote(aid, opp, amount=usd(80), valid_until=VALID_UNTIL, discount_pct=20)
    with on(app, JAN_10, actor="wang.director"):
        app.reject_quote_discount(aid, q, approver="wang.director", reason="margin too thin")
    assert isinstance(app.history(aid)[-1], Account.QuoteDiscountRejected)
    with on(app, JAN_10, actor="li"):
        with pytest.raises(DiscountApprovalRequiredError):
            app.accept_quote(aid, q)
        q2 = app.revise_quote(aid, q, amount=usd(92), valid_until=VALID_UNTIL, discount_pct=8)
        app.accept_quote(aid, q2)  # within the threshold: no approval needed
    assert types(app, aid, 2) == ["QuoteIssued", "QuoteAccepted"]


def test_the_threshold_is_configured_per_account_tier(policy_app: CRM) -> None:
    app = policy_app
    aid, opp = _deal(app, "gold")
    with on(app, JAN_10):
        q = app.issue_quote(aid, opp, amount=usd(85), valid_until=VALID_UNTIL, discount_pct=15)
        app.accept_quote(aid, q)  # gold: 15% is within its 20% threshold
    issued = app.history(aid)[-2]
    assert isinstance(issued, Account.QuoteIssued)
    assert issued.approval_threshold == Decimal(20)


def test_thresholds_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRM_QUOTES__APPROVAL_THRESHOLD_PCT", "5")
    monkeypatch.setenv("CRM_QUOTES__TIER_THRESHOLDS_PCT", '{"platinum": 25}')
    quotes = CRMSettings.load().quotes
    assert quotes.threshold_for("standard") == Decimal(5)
    assert quotes.threshold_for("platinum") == Decimal(25)
    assert CRMSettings().quotes.threshold_for("gold") == Decimal(5)


# ----- currency --------------------------------------------------------------------------
def test_a_revision_keeps_the_currency(
    app: CRM, rejects: Rejects, account_id: UUID, deal: UUID
) -> None:
    err = rejects(
        CurrencyChangeError,
        app.revise_opportunity,
        account_id,
        deal,
        amount=Money.of(350000, "CNY"),
        reason="reprice",
    )
    assert isinstance(err, CurrencyChangeError)
    assert (err.currency, err.other) == ("USD", "CNY")
    app.revise_opportunity(account_id, deal, amount=usd(52000), reason="more sensors")
    assert app.account(account_id).opportunity(deal).amount == usd(52000)


def test_changing_the_currency_is_explicit_with_a_reason(
    app: CRM, rejects: Rejects, account_id: UUID, deal: UUID, quote: UUID
) -> None:
    cny = Money.of(350000, "CNY")
    rejects(
        InvalidCommandError,
        app.change_opportunity_currency,
        account_id,
        deal,
        amount=cny,
        reason="",
    )
    rejects(
        ActiveQuoteExistsError,
        app.change_opportunity_currency,
        account_id,
        deal,
        amount=cny,
        reason="billed by the Shanghai entity",
    )
    with on(app, JAN_10):
        app.withdraw_quote(account_id, quote, reason="re-quote in CNY")
        rejects(
            CurrencyChangeError,
            app.issue_quote,
            account_id,
            deal,
            amount=Money.of(340000, "CNY"),
            valid_until=VALID_UNTIL,
        )
    app.change_opportunity_currency(
        account_id, deal, amount=cny, reason="billed by the Shanghai entity"
    )
    changed = app.history(account_id)[-1]
    assert isinstance(changed, Account.OpportunityCurrencyChanged)
    assert (changed.amount, changed.previous_amount) == (cny, usd(50000))
    assert changed.reason == "billed by the Shanghai entity"
    with on(app, JAN_10):
        rejects(
            CurrencyChangeError,
            app.issue_quote,
            account_id,
            deal,
            amount=usd(1),
            valid_until=VALID_UNTIL,
        )
        app.issue_quote(account_id, deal, amount=Money.of(340000, "CNY"), valid_until=VALID_UNTIL)


# ----- history written before these rules ------------------------------------------------
def test_events_stored_before_the_new_fields_still_load() -> None:
    base = {
        "originator_id": "6f1c1a52-4a5e-4c36-9a55-111111111111",
        "originator_version": 3,
        "timestamp": "2025-01-01T00:00:00+00:00",
    }
    ids = {
        "quote_id": "6f1c1a52-4a5e-4c36-9a55-222222222222",
        "opportunity_id": "6f1c1a52-4a5e-4c36-9a55-333333333333",
    }
    issued = Account.QuoteIssued.model_validate(
        base
        | ids
        | {
            "version": 1,
            "amount": {"amount": "10", "currency": "USD"},
            "discount_pct": "50",
            "valid_until": "2025-02-01",
        }
    )
    assert issued.approval_threshold is None
    expired = Account.QuoteExpired.model_validate(base | ids)
    assert (expired.valid_until, expired.as_of) == (None, None)
    won = Account.OpportunityWon.model_validate(
        base
        | {
            "opportunity_id": ids["opportunity_id"],
            "from_stage": "negotiation",
            "to_stage": "won",
            "amount": {"amount": "10", "currency": "USD"},
            "reason": "signed",
        }
    )
    assert won.quote_id is None


# ----- on the stores ---------------------------------------------------------------------
def test_quote_rules_hold_after_reopening_the_store(store_url: str) -> None:
    """The approval, the acceptance and the expiry survive a reload (and a snapshot)."""
    app = CRM(store_url, snapshot_interval=2)
    try:
        cid = app.register_customer(kind="enterprise", name="Store buyer", code="ST-1")
        aid = app.open_account(customer_id=cid, name="Store buyer")
        with on(app, JAN_10, actor="li"):
            opp = app.open_opportunity(
                aid, name="Sensors", expected_close=date(2031, 3, 31), owner="li", amount=usd(100)
            )
            other = app.open_opportunity(
                aid, name="Spares", expected_close=date(2031, 3, 31), owner="li", amount=usd(9)
            )
            q = app.issue_quote(aid, opp, amount=usd(70), valid_until=VALID_UNTIL, discount_pct=30)
            lapsing = app.issue_quote(aid, other, amount=usd(9), valid_until=date(2031, 1, 15))
    finally:
        app.close()
    app = CRM(store_url, snapshot_interval=2)
    try:
        with on(app, JAN_10, actor="li"), pytest.raises(DiscountApprovalRequiredError):
            app.accept_quote(aid, q)
        with on(app, JAN_10, actor="wang"):
            app.approve_quote_discount(aid, q, approver="wang")
        with on(app, JAN_10, actor="li"):
            app.accept_quote(aid, q)
            with pytest.raises(AcceptedQuoteExistsError):
                app.issue_quote(aid, opp, amount=usd(1), valid_until=VALID_UNTIL)
        assert app.expire_quotes(as_of=date(2031, 1, 20)) == [lapsing]
        assert app.expire_quotes(as_of=date(2031, 1, 20)) == []
    finally:
        app.close()
    app = CRM(store_url)
    try:
        with on(app, datetime(2031, 1, 20, tzinfo=UTC)):
            app.win_opportunity(aid, opp, reason="signed")
        account = app.account(aid)
        assert account.opportunity(opp).amount == usd(70)
        assert account.quotes[lapsing].status is QuoteStatus.EXPIRED
        assert account.quotes[q].approval is DiscountApproval.APPROVED
    finally:
        app.close()
