"""Loading an aggregate replays its events without eventsourcing's per-event protocol
check (``isinstance`` against a runtime protocol, about 17 µs an event), and gives the
state the library's own projector gives."""

from __future__ import annotations

from datetime import date
from typing import Any

import eventsourcing.application
import pytest

from crm_domain.application import CRM
from crm_domain.values import Money


def _history(crm: CRM) -> tuple[Any, Any]:
    customer = crm.register_customer(kind="enterprise", name="Hangzhou Tea Co", code="HT1")
    account = crm.open_account(customer_id=customer, name="Hangzhou Tea buying")
    for i in range(30):
        crm.log_contact(customer, channel="phone", direction="outbound", summary=f"call {i}")
    deal = crm.open_opportunity(
        account,
        name="tea packs",
        owner="li.wei",
        expected_close=date(2027, 3, 1),
        amount=Money.of(12000, "CNY"),
    )
    crm.stage_opportunity(account, deal, stage="qualification")
    return customer, account


def _state(aggregate: Any) -> dict[str, Any]:
    return {k: v for k, v in vars(aggregate).items() if not k.startswith("_pending")}


def test_loads_do_not_use_the_library_projector_and_agree_with_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    crm = CRM("sqlite:///:memory:", snapshot_interval=None)
    try:
        customer, account = _history(crm)
        library = {
            aid: _state(crm.app.repository.get(aid)) for aid in (customer, account)
        }  # the library's own projector
        versions = {aid: crm.app.repository.get(aid).version for aid in (customer, account)}

        checks: list[Any] = []

        class Counting(type):
            def __instancecheck__(cls, instance: Any) -> bool:
                checks.append(instance)
                return True

        class Protocol(metaclass=Counting):
            pass

        monkeypatch.setattr(eventsourcing.application, "CanMutateProtocol", Protocol)
        crm.app.repository.get(customer)  # the library's projector checks every event
        assert len(checks) == versions[customer]
        checks.clear()
        for aid in (customer, account):
            loaded = crm._get(aid)
            assert loaded is not None
            assert _state(loaded) == library[aid]
            assert loaded.version == versions[aid]
            at_three = crm._get(aid, version=3)
            assert at_three is not None
            assert at_three.version == 3
        assert checks == []  # ours checks none
    finally:
        crm.close()
