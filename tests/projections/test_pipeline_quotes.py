"""The pipeline read model and quotes: a won deal counts the accepted quote's amount, quotes
show as expired once past their validity (recorded or not), withdrawals and approvals show."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from projection_history import project
from sqlalchemy import select

from crm_domain import CRM, Money
from projections.pipeline import PipelineQueries, opportunities

JAN_10 = datetime(2031, 1, 10, 9, 0, tzinfo=UTC)


def usd(amount: int) -> Money:
    return Money.of(amount, "USD")


def test_pipeline_books_the_accepted_quote_and_shows_expired_quotes() -> None:
    crm = CRM("memory://")
    cid = crm.register_customer(kind="enterprise", name="Pipeline buyer", code="PB-1")
    aid = crm.open_account(customer_id=cid, name="Pipeline buyer")
    with crm.context(actor="li", occurred_at=JAN_10):
        won = crm.open_opportunity(
            aid, name="Won deal", expected_close=date(2031, 3, 31), owner="li", amount=usd(100)
        )
        lapsing = crm.open_opportunity(
            aid, name="Slow deal", expected_close=date(2031, 3, 31), owner="li", amount=usd(50)
        )
        dropped = crm.open_opportunity(
            aid, name="Dropped", expected_close=date(2031, 3, 31), owner="li", amount=usd(10)
        )
        accepted = crm.issue_quote(aid, won, amount=usd(80), valid_until=date(2031, 1, 31))
        crm.accept_quote(aid, accepted)
        crm.win_opportunity(aid, won, reason="signed")
        stale = crm.issue_quote(aid, lapsing, amount=usd(45), valid_until=date(2031, 1, 20))
        big = crm.issue_quote(
            aid, dropped, amount=usd(5), valid_until=date(2031, 2, 28), discount_pct=50
        )
    with crm.context(actor="wang", occurred_at=JAN_10):
        crm.reject_quote_discount(aid, big, approver="wang", reason="too deep")
    with crm.context(actor="li", occurred_at=JAN_10):
        crm.withdraw_quote(aid, big, reason="deal dropped")

    view = project(crm, ["pipeline"])
    q = PipelineQueries(view.engine)
    with view.engine.connect() as conn:
        row = conn.execute(
            select(opportunities.c.status, opportunities.c.amount).where(
                opportunities.c.opportunity_id == won
            )
        ).one()
    assert (row.status, row.amount) == ("won", Decimal("80"))  # the quote, not the 100 asked

    on_21st = {x.quote_id: x for x in q.quotes(as_of=date(2031, 1, 21)).items}
    assert (on_21st[stale].status, on_21st[stale].recorded_status) == ("expired", "active")
    assert on_21st[accepted].status == "accepted"
    assert (on_21st[big].status, on_21st[big].approval, on_21st[big].approver) == (
        "withdrawn",
        "rejected",
        "wang",
    )
    assert [x.quote_id for x in q.quotes(as_of=date(2031, 1, 21), status="expired").items] == [
        stale
    ]
    assert q.quotes(as_of=date(2031, 1, 20), status="active").total == 1
    assert q.quote_counts(as_of=date(2031, 1, 21)) == {
        "accepted": 1,
        "expired": 1,
        "withdrawn": 1,
    }

    assert crm.expire_quotes(as_of=date(2031, 1, 21)) == [stale]
    project(crm, ["pipeline"], view=view)
    recorded = q.quotes(as_of=date(2031, 1, 1), status="expired").items
    assert [(x.quote_id, x.recorded_status) for x in recorded] == [(stale, "expired")]
