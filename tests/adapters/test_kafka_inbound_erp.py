"""The inbound consumer speaks for ERP: its ERP messages run under the configured ERP source
(so they may confirm and reject orders), and ERP's answers keep the order rules."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

import orjson
import pytest

from adapters.kafka.inbound import apply_command, parse_message
from crm_domain.application import CRM
from crm_domain.errors import ConfirmationNotRequestedError, CreditAmountError
from crm_domain.settings import CRMSettings
from crm_domain.values import Money, OrderStatus

STRUCTURED = [("content-type", b"application/cloudevents+json")]


def message(type_: str, data: dict[str, Any]) -> bytes:
    return orjson.dumps(
        {
            "specversion": "1.0",
            "id": f"msg-{uuid4().hex[:12]}",
            "source": "urn:erp:sap-prod",
            "type": type_,
            "time": "2024-05-02T09:30:00Z",
            "data": orjson.loads(orjson.dumps(data)),
        }
    )


def deliver(crm: CRM, type_: str, **data: Any) -> None:
    apply_command(crm, parse_message(message(type_, data), STRUCTURED))


def setup(crm: CRM) -> tuple[UUID, UUID]:
    customer = crm.register_customer(kind="enterprise", name="Baiyun Air Cargo", code="BAC-1")
    account = crm.open_account(customer_id=customer, name="Baiyun Air Cargo")
    order = crm.place_order(
        account,
        lines=[{"sku": "S", "quantity": 1, "unit_price": {"amount": "100", "currency": "CNY"}}],
    )
    return account, order


@pytest.mark.parametrize("sources", [None, ["sap-prod", "erp"]])
def test_erp_messages_run_under_the_configured_erp_source(sources: list[str] | None) -> None:
    settings = CRMSettings() if sources is None else CRMSettings(erp_sources=sources)
    crm = CRM("memory://", settings=settings)
    account, order = setup(crm)
    crm.request_order_confirmation(account, order)
    deliver(crm, "erp.order_confirmed.v1", account_id=account, order_id=order)
    assert crm.account(account).order(order).status is OrderStatus.CONFIRMED
    confirmed = crm.history(account)[-1]
    assert confirmed.metadata["source_system"] == (sources or ["erp"])[0]


def test_an_erp_answer_to_an_order_never_sent_for_confirmation_is_refused() -> None:
    crm = CRM("memory://")
    account, order = setup(crm)
    head = crm.app.recorder.max_notification_id()
    answers: list[tuple[str, dict[str, Any]]] = [
        ("erp.order_confirmed.v1", {}),
        ("erp.order_rejected.v1", {"reason": "credit"}),
    ]
    for type_, extra in answers:
        with pytest.raises(ConfirmationNotRequestedError):  # the consumer dead-letters it
            deliver(crm, type_, account_id=account, order_id=order, **extra)
    assert crm.app.recorder.max_notification_id() == head


def test_a_credit_note_message_keeps_the_credit_rules() -> None:
    crm = CRM("memory://")
    account, order = setup(crm)
    invoice = crm.issue_invoice(account, amount=Money.of(100, "CNY"), order_id=order)
    deliver(crm, "erp.order_cancelled.v1", account_id=account, order_id=order, reason="withdrawn")
    with pytest.raises(CreditAmountError):
        deliver(
            crm,
            "erp.credit_note_issued.v1",
            account_id=account,
            invoice_id=invoice,
            amount={"amount": "100.01", "currency": "CNY"},
            reason="cancelled",
        )
    assert crm.account(account).invoice(invoice).credited == 0
