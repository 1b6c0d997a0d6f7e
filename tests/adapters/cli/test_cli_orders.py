"""``crm orders exposure | cancel``: what credit control sees, and cancelling before shipment,
with typed refusals as exit code 1 and no traceback."""

from __future__ import annotations

import json
from pathlib import Path
from uuid import UUID, uuid4

import pytest

from adapters.cli import main
from crm_domain.application import CRM
from crm_domain.values import Money, OrderStatus


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def store_with_orders(path: Path) -> tuple[str, UUID, list[UUID]]:
    url = f"sqlite:///{path / 'crm.sqlite'}"
    crm = CRM(url)
    try:
        customer = crm.register_customer(kind="enterprise", name="Acme", code="ACME")
        account = crm.open_account(customer_id=customer, name="Acme Trading")
        crm.set_credit_limit(account, limit=Money.of(10_000, "CNY"))
        orders = [
            crm.place_order(
                account, lines=[{"sku": "X", "quantity": 1, "unit_price": Money.of(n, "CNY")}]
            )
            for n in (3000, 500)
        ]
        crm.request_order_confirmation(account, orders[0])
        with crm.context(source_system="erp"):
            crm.confirm_order(account, orders[0])
        crm.issue_invoice(account, amount=Money.of(1200, "CNY"))
    finally:
        crm.close()
    return url, account, orders


def test_exposure_shows_what_credit_control_sees(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, account, _ = store_with_orders(tmp_path)
    code, out = run(["orders", "exposure", str(account), "--store", url, "-f", "json"], capsys)
    assert code == 0, out
    rows = {r["measure"]: r["value"] for r in json.loads(out)[0]["rows"]}
    assert rows == {
        "credit limit": "10,000.00 CNY",
        "unpaid invoices": "1,200.00 CNY",
        "confirmed unshipped orders": "3,000.00 CNY",
        "exposure": "4,200.00 CNY",
        "headroom": "5,800.00 CNY",
    }


def test_cancel_before_shipment_and_refusals(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, account, orders = store_with_orders(tmp_path)
    argv = ["orders", "cancel", str(account), str(orders[1]), "--store", url]
    code, out = run([*argv, "--reason", "customer withdrew", "--actor", "li.wei"], capsys)
    assert (code, out.strip()) == (0, f"order {orders[1]} cancelled")
    crm = CRM(url)
    try:
        assert crm.account(account).order(orders[1]).status is OrderStatus.CANCELLED
        last = crm.changes(account)[-1]
        assert (last.event_type, last.actor) == ("Account.OrderCancelled", "li.wei")
    finally:
        crm.close()
    code, out = run([*argv, "--reason", "again"], capsys)
    assert code == 1
    assert "cannot cancel order" in out
    assert "Traceback" not in out
    code, out = run(
        ["orders", "cancel", str(account), str(uuid4()), "--store", url, "--reason", "r"], capsys
    )
    assert (code, "Traceback" in out) == (1, False)
    assert "no order" in out


def test_exposure_in_mixed_currencies_is_said_not_summed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, account, _ = store_with_orders(tmp_path)
    crm = CRM(url)
    try:
        crm.issue_invoice(account, amount=Money.of(10, "USD"))
    finally:
        crm.close()
    code, out = run(["orders", "exposure", str(account), "--store", url, "-f", "json"], capsys)
    assert code == 0, out
    rows = {r["measure"]: r["value"] for r in json.loads(out)[0]["rows"]}
    assert rows["exposure"] == "not countable: also in USD"
