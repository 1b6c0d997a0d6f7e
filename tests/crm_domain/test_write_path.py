"""The write path's shortcuts store what the general path stored, byte for byte.

Events without personal fields are written by pydantic's JSON serializer in one pass
(``PydanticMapper.to_stored_event``); the stored bytes must stay those of orjson over
``model_dump(mode="json")``, which every store so far holds and the hash chain covers.
Events are applied through their ``@event`` method looked up once per class
(``compat.event_method``); the aggregate must be the one eventsourcing's own path builds.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
import pytest
from eventsourcing.domain import CanMutateAggregate, OriginatorVersionError

from adapters.demo import run_demo
from crm_domain import CRM, Money, OrderLine
from crm_domain.account import Account
from crm_domain.errors import DuplicateCustomerCodeError
from crm_domain.eventmodel import Aggregate
from crm_domain.infrastructure.compat import event_method

NOW = datetime(2031, 3, 3, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def demo_crm() -> Any:
    crm = CRM("memory://")
    run_demo(crm, customers=12, now=NOW)
    # Text the JSON writers might escape differently: accents, CJK, an emoji, quotes.
    with crm.context(actor="li.wei", source_system="erp"):
        cid = crm.register_customer(kind="enterprise", name='Zoë 東京 "Q" 😀', code="U-1")
        aid = crm.open_account(customer_id=cid, name='Café "Ñ" 東京 😀 \\ /', industry="retail")
        order = crm.place_order(
            aid,
            lines=[
                OrderLine(
                    sku="Ü-1",
                    description="tab\there, new\nline, nul-free \u2028",
                    quantity=3,
                    unit_price=Money(amount=Decimal("0.10"), currency="EUR"),
                )
            ],
        )
        crm.request_order_confirmation(aid, order)
    yield crm
    crm.close()


def test_unsealed_events_are_stored_as_orjson_of_their_json_dump(demo_crm: CRM) -> None:
    mapper = demo_crm.app.mapper
    sealer = demo_crm.app.sealer
    assert sealer is not None
    checked = set()
    for notification in demo_crm.app.recorder.select_notifications(1, 1_000_000):
        event = mapper.to_domain_event(notification)
        if sealer.may_seal(event) or getattr(type(event), "class_version", 1) > 1:
            continue
        expected = orjson.dumps(event.model_dump(mode="json"))  # type: ignore[attr-defined]
        assert notification.state == expected, type(event).__qualname__
        assert mapper.to_stored_event(event).state == expected
        checked.add(type(event).__qualname__)
    # the demo writes many kinds of account and customer events
    assert len(checked) >= 20, sorted(checked)
    assert {"Account.OrderPlaced", "Account.Opened"} <= checked


def test_events_with_personal_fields_are_still_sealed(demo_crm: CRM) -> None:
    sealed = [
        n
        for n in demo_crm.app.recorder.select_notifications(1, 1_000_000)
        if n.topic.endswith("Customer.Registered")
    ]
    assert sealed
    assert all(b'"__sealed__"' in n.state for n in sealed)
    assert not any("Zoë".encode() in n.state for n in sealed)


def test_event_methods_are_found_once_per_class() -> None:
    found = event_method(Account.OrderShipped)
    assert found is not None
    method, names = found
    assert method.__name__ == "_ship"
    assert names == ("order_id", "shipment_ref")
    assert event_method(Account.OrderShipped) is found
    # a created event is applied by the library (it constructs the aggregate)
    assert event_method(Account.Opened) is None


def test_an_event_class_with_its_own_apply_is_left_to_the_library() -> None:
    class Custom(Aggregate.Event):
        def apply(self, aggregate: Any) -> None:
            aggregate.touched = True

    assert event_method(Custom) is None
    assert CanMutateAggregate.apply is not Custom.apply


def test_applied_events_build_the_aggregate_the_library_builds(demo_crm: CRM) -> None:
    for account_id in demo_crm.app.originators_of(Account.Opened)[:5]:
        events = demo_crm.history(account_id)
        ours: Any = None
        library: Any = None
        for event in events:
            ours = event.mutate(ours)
            library = _library_mutate(event, library)
        assert ours.version == library.version == len(events)
        assert _state(ours) == _state(library)


def test_an_event_out_of_sequence_is_refused(demo_crm: CRM) -> None:
    account_id = demo_crm.app.originators_of(Account.OrderPlaced)[0]
    events = demo_crm.history(account_id)
    aggregate: Any = None
    for event in events[:2]:
        aggregate = event.mutate(aggregate)
    with pytest.raises(OriginatorVersionError):
        events[3].mutate(aggregate)
    assert aggregate.version == 2


def _library_mutate(event: Any, aggregate: Any) -> Any:
    """eventsourcing's own mutate (CanMutateAggregate's, DecoratedFuncCaller's apply)."""
    if aggregate is None:
        return Aggregate.Event.mutate(event, None)
    aggregate.__dict__["_occurred_at"] = event.occurred_at
    return CanMutateAggregate.mutate(event, aggregate)


def _state(aggregate: Any) -> dict[str, Any]:
    return {k: v for k, v in vars(aggregate).items() if k != "_pending_events"}


def test_event_methods_called_otherwise_go_the_library_way(demo_crm: CRM) -> None:
    account_id = demo_crm.app.originators_of(Account.OrderPlaced)[0]
    account = demo_crm.account(account_id)
    order = next(iter(account.orders))
    version = account.version
    # every parameter by keyword: the fast way; positionally: the library's; same event
    account._ship(order_id=order, shipment_ref="A")
    account._ship(order, "B")
    shipped = account.collect_events()[-2:]
    assert [type(e) for e in shipped] == [Account.OrderShipped, Account.OrderShipped]
    assert [(e.order_id, e.shipment_ref) for e in shipped] == [(order, "A"), (order, "B")]
    assert account.version == version + 2
    # the library's errors for a missing or an unknown argument
    with pytest.raises(TypeError, match="missing"):
        account._ship(order_id=order)
    with pytest.raises(TypeError, match="unexpected keyword argument 'colour'"):
        account._ship(order_id=order, shipment_ref="", colour="red")
    assert account.version == version + 2


def test_codes_looked_up_at_once_answer_the_registrations_of_a_bulk(store_url: str) -> None:
    crm = CRM(store_url)
    try:
        with crm.context(actor="li.wei"):
            crm.register_customer(kind="individual", name="Old", code="OLD-1")
            with crm.bulk():
                assert crm.look_up_codes(["OLD-1", "NEW-1", "NEW-2"]) == {"OLD-1"}
                looked_up = crm._has_events
                crm._has_events = None  # type: ignore[assignment,method-assign]
                try:  # answered by the look-up: no query of their own
                    crm.register_customer(kind="individual", name="N1", code="NEW-1")
                    with pytest.raises(DuplicateCustomerCodeError):
                        crm.register_customer(kind="individual", name="O", code="OLD-1")
                    with pytest.raises(DuplicateCustomerCodeError):  # taken in this block
                        crm.register_customer(kind="individual", name="N", code="NEW-1")
                finally:
                    crm._has_events = looked_up  # type: ignore[method-assign]
                crm.register_customer(kind="individual", name="N3", code="NEW-3")  # queried
        assert crm.customer_by_code("NEW-1").name == "N1"
        assert crm.look_up_codes(["NEW-1", "NEW-2", "NEW-3", "OLD-1"]) == {
            "NEW-1",
            "NEW-3",
            "OLD-1",
        }
        many = [f"X-{i}" for i in range(1200)]  # more than one page of ids
        assert crm.look_up_codes([*many, "OLD-1"]) == {"OLD-1"}
    finally:
        crm.close()


def test_codes_are_looked_up_in_memory_too(demo_crm: CRM) -> None:
    assert demo_crm.look_up_codes(["U-1", "NOT-THERE"]) == {"U-1"}


def test_a_batch_is_stored_at_consecutive_positions_and_chained(store_url: str) -> None:
    from crm_domain.audit.verify import verify_log

    crm = CRM(store_url)
    try:
        with crm.context(actor="li.wei", source_system="erp"):
            crm.register_customer(kind="individual", name="Single", code="S-1")
            with crm.bulk():
                for i in range(30):
                    cid = crm.register_customer(kind="individual", name=f"N{i}", code=f"B-{i}")
                    aid = crm.open_account(customer_id=cid, name=f"A{i}")
                    crm.place_order(
                        aid,
                        lines=[
                            OrderLine(
                                sku="I", quantity=1, unit_price=Money(amount=1, currency="EUR")
                            )
                        ],
                    )
        notifications = crm.app.recorder.select_notifications(1, 10_000)
        assert [n.id for n in notifications] == list(range(1, len(notifications) + 1))
        assert len(notifications) == 2 + 30 * 4  # customer and claim; + account and order
        # each position holds the event the chain hashed for it
        report = verify_log(crm)
        assert report.finding.value == "intact", report.detail
        assert report.events == len(notifications)
    finally:
        crm.close()


def test_new_keys_are_stored_together_and_a_different_stored_key_is_refused(
    store_url: str,
) -> None:
    from uuid import uuid4

    from eventsourcing.persistence import IntegrityError

    from crm_domain.infrastructure.keystore import SQLKeyStore

    crm = CRM(store_url)
    try:
        assert crm.app.sealer is not None
        keys = crm.app.sealer.keys
        assert isinstance(keys, SQLKeyStore)
        new = {uuid4(): i.to_bytes(2) * 16 for i in range(700)}  # more than one read-back
        with keys.datastore.transaction(commit=True) as cursor:
            keys.insert_keys(cursor, new)
        with keys.datastore.transaction(commit=True) as cursor:
            keys.insert_keys(cursor, new)  # again is harmless
        subject = next(iter(new))
        found = keys.get(subject)
        assert found is not None
        assert found.key == new[subject]
        other = {uuid4(): b"n" * 32, subject: b"x" * 32}
        with (
            pytest.raises(IntegrityError, match=str(subject)),
            keys.datastore.transaction(commit=True) as cursor,
        ):
            keys.insert_keys(cursor, other)
        assert all(keys.get(s) is None for s in other if s != subject)  # rolled back
    finally:
        crm.close()
