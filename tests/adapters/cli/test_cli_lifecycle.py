"""``crm handover FROM TO`` and ``crm lifecycle scan --as-of DATE``."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from adapters.cli import main
from crm_domain.application import CRM
from crm_domain.customer import Customer
from crm_domain.values import Money, OrderLine


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def book(tmp_path: Path) -> str:
    """li.wei manages ACME (with an account, an open deal and a promise) and BOLT."""
    url = f"sqlite:///{tmp_path / 'book.sqlite'}"
    crm = CRM(url)
    try:
        with crm.context(actor="admin"):
            for code in ("ACME", "BOLT"):
                cid = crm.register_customer(kind="enterprise", name=f"{code} Ltd", code=code)
                crm.assign_customer_manager(cid, manager="li.wei", reason="new")
            acme = crm.customer_by_code("ACME").id
            account = crm.open_account(customer_id=acme, name="Acme B2B")
            crm.assign_account_manager(account, manager="li.wei", reason="new")
            crm.open_opportunity(
                account, name="Scanners", owner="li.wei", expected_close=date(2031, 1, 1)
            )
            crm.log_contact(
                acme,
                channel="visit",
                direction="outbound",
                summary="visit",
                commitments=[{"description": "send the quote", "owner": "li.wei"}],
            )
    finally:
        crm.close()
    return url


def test_handover_moves_everything_and_the_report_shows_it(
    book: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["handover", "li.wei", "zhang.min", "--reason", "left the company", "--store", book]
    code, out, err = run([*argv, "--actor", "director", "-f", "json"], capsys)
    assert (code, err) == (0, "")
    [moved] = json.loads(out)
    assert sorted((r["what"], r["customer"]) for r in moved["rows"]) == [
        ("account", "ACME"),
        ("commitment", "ACME"),
        ("customer", "ACME"),
        ("customer", "BOLT"),
        ("opportunity", "ACME"),
    ]
    crm = CRM(book)
    try:
        acme = crm.customer_by_code("ACME")
        assert acme.manager == "zhang.min"
        [event] = [e for e in crm.history(acme.id) if isinstance(e, Customer.ManagerAssigned)][1:]
        assert (event.reason, event.metadata["actor"]) == ("left the company", "director")
    finally:
        crm.close()
    # The leaver's report: nothing open, and what went to whom.
    code, out, _ = run(["report", "handover", "li.wei", "--store", book, "-f", "json"], capsys)
    assert code == 0
    sections = {s["title"]: s for s in json.loads(out)}
    assert sections["Customers of li.wei (0)"]["rows"] == []
    handed = sections["Handed over from or to li.wei (newest first)"]["rows"]
    assert len(handed) == 5
    assert {(r["from"], r["to"], r["by"]) for r in handed} == {("li.wei", "zhang.min", "director")}
    # Again: nothing to move, said so, nothing stored.
    code, out, _ = run(argv, capsys)
    assert code == 0
    assert "nothing to move: li.wei" in " ".join(out.split())


def test_handover_of_named_customers_only(book: str, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["handover", "li.wei", "zhang.min", "--reason", "split", "--customers", "BOLT"]
    code, out, _ = run([*argv, "--store", book, "-f", "csv"], capsys)
    assert code == 0
    assert out.splitlines()[-2:] == ["what,customer,name", "customer,BOLT,BOLT Ltd"]


@pytest.mark.parametrize(
    ("argv", "exit_code", "message"),
    [
        (["handover", "li.wei", "li.wei", "--reason", "x"], 1, "cannot hand over to themselves"),
        (["handover", "li.wei", "zhang.min", "--reason", "x", "--customers", "NOPE"], 1, "NOPE"),
        (["handover", "li.wei", "zhang.min"], 2, "--reason"),
        (["lifecycle", "scan", "--as-of", "1998-13-01"], 2, "--as-of"),
    ],
)
def test_bad_input_is_an_exit_code_not_a_traceback(
    book: str, capsys: pytest.CaptureFixture[str], argv: list[str], exit_code: int, message: str
) -> None:
    code, out, err = run([*argv, "--store", book], capsys)
    assert code == exit_code
    assert message in err
    assert "Traceback" not in err + out


def test_lifecycle_scan_as_of_a_day_is_idempotent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'shop.sqlite'}"
    crm = CRM(url)
    try:
        with crm.context(occurred_at=datetime(1997, 1, 1, 12, tzinfo=UTC)):
            cid = crm.register_customer(kind="individual", name="Li", code="LI")
            account = crm.open_account(customer_id=cid, name="Li")
        line = OrderLine(sku="CD", quantity=1, unit_price=Money.of("10", "USD"))
        for day in (date(1997, 1, 1), date(1997, 2, 1)):
            when = datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
            with crm.context(occurred_at=when, source_system="erp"):
                order = crm.place_order(account, lines=[line])
                crm.request_order_confirmation(account, order)
                crm.confirm_order(account, order)
    finally:
        crm.close()
    code, out, _ = run(
        ["lifecycle", "scan", "--as-of", "1998-06-30", "--store", url, "-f", "json"], capsys
    )
    assert code == 0
    summary, rules = json.loads(out)
    assert summary["title"] == "Lifecycle scan as of 1998-06-30 23:59 UTC"
    assert {r["rule"]: r["transitions"] for r in rules["rows"]} == {
        "at_risk": 1,
        "first_purchase": 1,
        "lapsed": 1,
        "repeat_purchase": 1,
    }
    code, out, _ = run(["lifecycle", "scan", "--as-of", "1998-06-30", "--store", url], capsys)
    assert code == 0
    assert "nothing to record" in " ".join(out.split())
    crm = CRM(url)
    try:
        assert crm.customer_by_code("LI").lifecycle_stage == "termination"
    finally:
        crm.close()
