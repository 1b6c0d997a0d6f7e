"""``crm quotes expire [--as-of]`` and ``crm report value --as-of``: on SQLite and PostgreSQL,
idempotent, and bad input is a usage error without a traceback."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from adapters.cdnow import Purchase, import_purchases
from adapters.cli import main
from crm_domain import CRM, Money
from crm_domain.values import QuoteStatus


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_quotes_expire_records_lapsed_quotes_once(
    store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    crm = CRM(store_url)
    try:
        cid = crm.register_customer(kind="enterprise", name="Expiry buyer", code="EXP-1")
        aid = crm.open_account(customer_id=cid, name="Expiry buyer")
        with crm.context(occurred_at=datetime(2031, 1, 10, tzinfo=UTC)):
            opp = crm.open_opportunity(
                aid, name="Sensors", expected_close=date(2031, 3, 31), owner="li"
            )
            quote = crm.issue_quote(
                aid, opp, amount=Money.of(100, "USD"), valid_until=date(2031, 1, 31)
            )
    finally:
        crm.close()

    code, out = run(["quotes", "expire", "--store", store_url, "--as-of", "2031-01-31"], capsys)
    assert (code, out.splitlines()[0]) == (0, "expired 0 quotes as of 2031-01-31")
    code, out = run(["quotes", "expire", "--store", store_url, "--as-of", "2031-02-01"], capsys)
    assert code == 0
    assert out.splitlines() == ["expired 1 quote as of 2031-02-01", str(quote)]
    code, out = run(["quotes", "expire", "--store", store_url, "--as-of", "2031-02-02"], capsys)
    assert (code, out.splitlines()[0]) == (0, "expired 0 quotes as of 2031-02-02")

    crm = CRM(store_url)
    try:
        expired = crm.history(aid)[-1]
        assert type(expired).__name__ == "QuoteExpired"
        assert crm.account(aid).quotes[quote].status is QuoteStatus.EXPIRED
    finally:
        crm.close()


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["quotes", "expire", "--as-of", "2031-02-30"], "--as-of"),
        (["quotes", "expire"], "no store at"),
        (["report", "value", "--as-of", "30/06/1998"], "--as-of"),
    ],
)
def test_bad_input_is_a_usage_error(
    argv: list[str], words: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = run(argv, capsys)
    assert code == 2
    assert words in out
    assert "Traceback" not in out


def test_report_value_as_of_a_date(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = f"sqlite:///{tmp_path / 'value.sqlite'}"
    noon = datetime(1998, 6, 1, 12, tzinfo=UTC)
    crm = CRM(store)
    try:
        import_purchases(
            crm,
            iter(
                [
                    Purchase("00001", noon, 1, Decimal("20.00")),
                    Purchase("00001", noon, 2, Decimal("30.00")),  # same day: one purchase day
                    Purchase("00002", datetime(1998, 6, 20, 12, tzinfo=UTC), 1, Decimal("5.00")),
                    Purchase("00003", noon, 1, Decimal("0")),  # no revenue
                ]
            ),
        )
    finally:
        crm.close()
    code, out = run(
        ["report", "value", "--store", store, "--as-of", "1998-06-30", "-f", "json"], capsys
    )
    assert code == 0, out
    sections = {s["title"]: s["rows"] for s in json.loads(out)}
    pareto = {r["measure"]: r["value"] for r in sections["Pareto (USD)"]}
    assert pareto["customers with revenue"] in (2, "2")
    rfm = sections["Best customers by RFM (USD, as of 1998-06-30, top 10)"]
    by_name = {r["customer"]: r for r in rfm}
    first = by_name["CDNOW customer 00001"]
    assert (first["days_since_purchase"], first["purchase_days"], first["orders"]) == (29, 1, 2)
    assert by_name["CDNOW customer 00002"]["days_since_purchase"] == 10
    assert "CDNOW customer 00003" not in by_name
