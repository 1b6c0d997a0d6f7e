"""The committed JSON Schemas match the code, and published payloads match the schemas."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from adapters.kafka.cloudevents import event_data
from adapters.kafka.eventtypes import crm_event_types
from adapters.kafka.messages import INBOUND_PAYLOADS
from adapters.kafka.schemas import all_schemas, differences, main
from crm_domain.application import CRM
from crm_domain.values import Money

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "docs" / "schemas"


def test_committed_schemas_are_up_to_date() -> None:
    changed, extra = differences(SCHEMA_DIR)
    assert not changed, f"regenerate: python -m adapters.kafka.schemas docs/schemas ({changed})"
    assert not extra, f"stale schema files: {extra}"


def test_check_fails_when_code_and_schemas_disagree(tmp_path: Path) -> None:
    assert main([str(tmp_path)]) == 0  # generate
    assert main(["--check", str(tmp_path)]) == 0
    victim = tmp_path / "crm.account.order_placed.v1.json"
    schema = orjson.loads(victim.read_bytes())
    del schema["properties"]["total"]
    victim.write_bytes(orjson.dumps(schema))
    assert main(["--check", str(tmp_path)]) == 1
    (tmp_path / "crm.account.retired_event.v1.json").write_text("{}")
    assert differences(tmp_path)[1] == ["crm.account.retired_event.v1.json"]


def test_every_event_type_and_inbound_message_has_a_schema() -> None:
    files = all_schemas()
    for et in crm_event_types():
        assert f"{et.type}.json" in files
    for type_ in INBOUND_PAYLOADS:
        assert f"inbound/{type_}.json" in files


def _conforms(payload: dict[str, Any], schema: dict[str, Any]) -> None:
    properties = schema["properties"]
    assert set(payload) <= set(properties), set(payload) - set(properties)
    assert set(schema.get("required", [])) <= set(payload)


def test_published_payloads_conform_to_their_schemas() -> None:
    crm = CRM("memory://")
    cid = crm.register_customer(
        kind="individual", name="Sun Li", code="SL-1", contact={"email": "sun@example.com"}
    )
    crm.log_contact(cid, channel="visit", direction="outbound", summary="site visit")
    crm.grant_consent(cid, purpose="marketing", channel="sms")
    aid = crm.open_account(customer_id=cid, name="Sun Li Ltd")
    crm.set_credit_limit(aid, limit=Money.of(5000, "EUR"))
    order = crm.place_order(
        aid, lines=[{"sku": "X", "quantity": 2, "unit_price": {"amount": "5", "currency": "EUR"}}]
    )
    crm.request_order_confirmation(aid, order)
    files = all_schemas()
    registry = crm_event_types()
    checked = 0
    for event in [*crm.history(cid), *crm.history(aid)]:
        et = registry.of(event)
        assert et is not None
        _conforms(event_data(event), files[f"{et.type}.json"])
        checked += 1
    assert checked >= 7
    personal = files["crm.customer.registered.v1.json"]["properties"]["name"]
    assert personal["x-personal-data"] is True
