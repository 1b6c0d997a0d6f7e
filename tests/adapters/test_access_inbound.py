"""The access policy on the Kafka path: inbound ERP messages run as commands through
CRM.handle under the sender's source system, so "only ERP confirms orders" holds there too,
and a denied message is refused like any rejected command (dead-lettered, nothing stored)."""

from __future__ import annotations

from pathlib import Path
from uuid import uuid4

import orjson
import pytest

from adapters.kafka.inbound import apply_command, parse_message
from crm_domain.access import AccessPolicy
from crm_domain.application import CRM
from crm_domain.errors import PermissionDeniedError, RejectedError
from crm_domain.values import Money, OrderStatus

POLICY = Path(__file__).resolve().parents[2] / "docs" / "access-policy.toml"
STRUCTURED = [("content-type", b"application/cloudevents+json")]


def _message(type_: str, data: dict[str, object]) -> bytes:
    return orjson.dumps(
        {
            "specversion": "1.0",
            "id": f"msg-{uuid4().hex[:12]}",
            "source": "urn:erp:test",
            "type": type_,
            "time": "2026-05-02T09:30:00Z",
            "data": data,
        }
    )


def test_erp_messages_pass_the_documented_policy_and_others_cannot_confirm() -> None:
    crm = CRM("memory://", policy=AccessPolicy.from_toml(POLICY))
    with crm.context(actor="wang.fang", roles=["sales_supervisor"]):
        customer = crm.register_customer(kind="enterprise", name="Baiyun Air Cargo", code="BAC")
        account = crm.open_account(customer_id=customer, name="Baiyun Air Cargo")
        order = crm.place_order(
            account, lines=[{"sku": "S", "quantity": 1, "unit_price": Money.of("100", "CNY")}]
        )
        crm.request_order_confirmation(account, order)
        before = crm.app.recorder.max_notification_id()
        with pytest.raises(PermissionDeniedError) as info:
            crm.confirm_order(account, order, erp_reference="SO-1")
    assert isinstance(info.value, RejectedError)  # the consumer dead-letters rejected commands
    assert crm.app.recorder.max_notification_id() == before
    for type_, data in (
        (
            "erp.order_confirmed.v1",
            {"account_id": account, "order_id": order, "erp_reference": "SO-1"},
        ),
        (
            "erp.credit_limit_changed.v1",
            {"account_id": account, "limit": {"amount": "5000", "currency": "CNY"}},
        ),
    ):
        apply_command(
            crm, parse_message(_message(type_, orjson.loads(orjson.dumps(data))), STRUCTURED)
        )
    assert crm.account(account).orders[order].status is OrderStatus.CONFIRMED
    assert crm.account(account).credit_limit == Money.of(5000, "CNY")
    assert [d.command for d in crm.access.log.read()] == ["confirm_order"]
