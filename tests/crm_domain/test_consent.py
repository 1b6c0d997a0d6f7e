"""Consent is folded once (``crm_domain.consent``): the ``Customer`` aggregate, the customer
360 read model and the Kafka relay's ledger say the same for any history of grants and
withdrawals, and all equal a plain set of (purpose, channel) pairs."""

from __future__ import annotations

from uuid import UUID

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.kafka.consent import ConsentLedger
from adapters.kafka.eventtypes import crm_event_types
from crm_domain import consent
from crm_domain.application import CRM
from crm_domain.customer import Customer
from crm_domain.values import Channel
from projections.customer360 import Customer360Queries
from projections.readmodel import LoggedEvent
from projections.runner import open_view

PURPOSES = ["marketing", "newsletter"]
CHANNELS = ["email", "sms", "phone"]

history = st.lists(
    st.tuples(
        st.sampled_from(["grant", "withdraw"]),
        st.integers(0, 1),
        st.sampled_from(PURPOSES),
        st.sampled_from(CHANNELS),
    ),
    max_size=20,
)


def _as_pairs(consents: dict[str, list[Channel]] | dict[str, list[str]]) -> set[tuple[str, str]]:
    return {
        (purpose, str(channel)) for purpose, channels in consents.items() for channel in channels
    }


def _read_model_consents(crm: CRM) -> Customer360Queries:
    view = open_view("memory://", read_models=["customer360"])
    page = crm.app.recorder.select_notifications(start=1, limit=10_000)
    view.record(crm.app.name, [LoggedEvent(n, mapper=crm.app.mapper) for n in page])
    return Customer360Queries(view.engine)


@given(history)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_aggregate_read_model_and_relay_ledger_agree(
    steps: list[tuple[str, int, str, str]],
) -> None:
    crm = CRM("memory://")
    customers = [
        crm.register_customer(kind="individual", name=f"P{i}", code=f"P-{i}") for i in range(2)
    ]
    expected: dict[UUID, set[tuple[str, str]]] = {c: set() for c in customers}
    for action, i, purpose, channel in steps:
        customer_id = customers[i]
        if action == "grant":
            crm.grant_consent(customer_id, purpose=purpose, channel=channel)
            expected[customer_id].add((purpose, channel))
        else:
            crm.withdraw_consent(customer_id, purpose=purpose, channel=channel, reason="asked")
            expected[customer_id].discard((purpose, channel))

    # the relay's ledger, event by event, agrees with the aggregate at that event's version
    ledger = ConsentLedger()
    for customer_id in customers:
        for event in crm.history(customer_id):
            ledger.apply(event)
            then = crm.app.repository.get(customer_id, version=event.originator_version)
            assert ledger.consents(customer_id) == then.consents
    rebuilt = ConsentLedger.rebuild(
        crm.app, crm_event_types(), crm.app.recorder.max_notification_id()
    )

    read_model = _read_model_consents(crm)
    for customer_id in customers:
        now = crm.customer(customer_id).consents
        assert _as_pairs(now) == expected[customer_id]
        assert rebuilt.consents(customer_id) == now
        assert read_model.get(customer_id).consents == {
            purpose: [c.value for c in channels] for purpose, channels in now.items()
        }
        for purpose in PURPOSES:
            for channel in CHANNELS:
                held = (purpose, channel) in expected[customer_id]
                assert crm.customer(customer_id).has_consent(purpose, channel) is held
                assert rebuilt.has_consent(customer_id, purpose, channel) is held
            assert rebuilt.has_consent(customer_id, purpose) is any(
                p == purpose for p, _ in expected[customer_id]
            )


def test_fold_sorts_channels_drops_empty_purposes_and_never_mutates() -> None:
    start: dict[str, list[str]] = {"newsletter": ["sms"]}
    after_grant = consent.granted(start, "newsletter", "email")
    assert after_grant == {"newsletter": [Channel.EMAIL, Channel.SMS]}
    assert consent.granted(after_grant, "newsletter", Channel.EMAIL) == after_grant
    assert start == {"newsletter": ["sms"]}
    assert consent.withdrawn(start, "newsletter", "sms") == {}
    assert consent.withdrawn(start, "seminars", "sms") == start
    assert consent.allows(after_grant, "newsletter", None)
    assert consent.allows(after_grant, "newsletter", "email")
    assert not consent.allows(after_grant, "newsletter", "letter")
    assert not consent.allows(after_grant, "seminars", None)


def test_apply_folds_consent_events_and_leaves_others_alone() -> None:
    crm = CRM("memory://")
    customer_id = crm.register_customer(kind="individual", name="P", code="P-1")
    crm.grant_consent(customer_id, purpose="newsletter", channel="email")
    crm.withdraw_consent(customer_id, purpose="newsletter", channel="email")
    registered, grant, withdrawal = crm.history(customer_id)
    assert isinstance(registered, Customer.Registered)
    assert not consent.is_consent_change(registered)
    assert consent.is_consent_change(grant)
    assert consent.is_consent_change(withdrawal)
    state = consent.apply({}, registered)
    assert state == {}
    state = consent.apply(state, grant)
    assert state == {"newsletter": [Channel.EMAIL]}
    assert consent.apply(state, withdrawal) == {}
