"""Routing table (code, TOML, YAML) and the marketing consent rule, without a broker."""

from __future__ import annotations

from pathlib import Path
from uuid import UUID

import pytest

from adapters.kafka.consent import ConsentLedger, ConsentRule
from adapters.kafka.eventtypes import EventType, crm_event_types
from adapters.kafka.routing import Route, RoutingTable, WithoutConsent, default_routing
from crm_domain.account import Account
from crm_domain.application import CRM
from crm_domain.customer import Customer
from crm_domain.errors import ConfigurationError
from crm_domain.eventmodel import DomainEvent
from crm_domain.personal import personal_fields


def _routed(table: RoutingTable, topic: str) -> set[str]:
    return {et.name for et in crm_event_types() if topic in [r.topic for r in table.routes_for(et)]}


def test_default_routing_sends_what_the_issue_lists() -> None:
    table = default_routing("erp", "mkt")
    erp, mkt = _routed(table, "erp"), _routed(table, "mkt")
    assert {
        "crm.account.opened",
        "crm.account.contact_added",
        "crm.account.order_placed",
        "crm.account.order_confirmation_requested",
        "crm.account.invoice_issued",
        "crm.account.payment_received",
        "crm.account.credit_limit_set",
        "crm.account.opportunity_won",
    } <= erp
    assert "crm.account.opportunity_lost" not in erp
    assert "crm.account.opportunity_staged" not in erp
    assert not any(name.startswith("crm.customer.") for name in erp)
    assert mkt == {
        "crm.customer.lifecycle_stage_changed",
        "crm.customer.segment_assigned",
        "crm.customer.consent_granted",
        "crm.customer.consent_withdrawn",
        "crm.customer.contact_logged",
        "crm.customer.seminar_registered",
        "crm.customer.seminar_registration_confirmed",
        # marketing holds the contact history: it must hear of an erasure (issue 11)
        "crm.customer.personal_data_erased",
    }
    # a kept sales promise is neither an ERP fact nor marketing's business
    assert "crm.customer.commitment_fulfilled" not in erp | mkt


def test_every_type_routed_to_a_guarded_topic_declares_its_personal_fields() -> None:
    """A new marketing event type must say what is personal, or it is dropped unseen."""
    table = default_routing()
    guarded = [r for r in table.routes if r.consent_purpose]
    for et in crm_event_types():
        if any(r.matches(et) for r in guarded):
            assert personal_fields(et.cls) is not None, et.name
    # declared although unrouted, so routing ``crm.customer.*`` to marketing strips the note
    assert personal_fields(Customer.CommitmentFulfilled) == {"note"}
    assert personal_fields(Customer.ContactLogged) == {
        "participants",
        "summary",
        "commitments",
        "next_step",
    }


def test_routing_table_loads_from_toml(tmp_path: Path) -> None:
    path = tmp_path / "routing.toml"
    path.write_text(
        """
[[routes]]
topic = "erp.in"
types = ["crm.account.order_*"]
partitions = 3

[[routes]]
topic = "mkt.in"
types = ["crm.customer.contact_logged"]
consent_purpose = "newsletter"
without_consent = "drop"
"""
    )
    table = RoutingTable.load(path)
    assert table.topics == ["erp.in", "mkt.in"]
    assert table.routes[0].partitions == 3
    assert table.routes[1].without_consent is WithoutConsent.DROP
    assert _routed(table, "erp.in") >= {"crm.account.order_placed", "crm.account.order_shipped"}
    table.check_against(crm_event_types())


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("routes = [", "not valid TOML"),
        ("[[routes]]\ntopic = 'x'\n", "types"),
        ("[[routes]]\ntopic = 'bad topic!'\ntypes = ['crm.*']\n", "topic"),
        ("[[routes]]\ntopic = 'x'\ntypes = ['crm.*']\nwithout_consent = 'ignore'\n", "strip"),
        (
            "[[routes]]\ntopic='a'\ntypes=['crm.*']\n[[routes]]\ntopic='a'\ntypes=['crm.*']\n",
            "more than one route",
        ),
    ],
)
def test_bad_routing_files_give_clear_errors(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "routing.toml"
    path.write_text(content)
    with pytest.raises(ConfigurationError, match=message):
        RoutingTable.load(path)


def test_a_pattern_that_matches_nothing_is_a_config_error() -> None:
    table = RoutingTable(routes=(Route(topic="erp", types=("crm.acount.order_*",)),))
    with pytest.raises(ConfigurationError, match="matches no event type"):
        table.check_against(crm_event_types())


def test_yaml_needs_pyyaml_or_loads(tmp_path: Path) -> None:
    path = tmp_path / "routing.yaml"
    path.write_text("routes:\n  - topic: erp\n    types: ['crm.account.*']\n")
    try:
        import yaml  # type: ignore[import-untyped]  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigurationError, match="PyYAML is not installed"):
            RoutingTable.load(path)
    else:  # pragma: no cover - depends on the environment
        assert RoutingTable.load(path).topics == ["erp"]
    json_file = tmp_path / "routing.json"
    json_file.write_text("{}")
    with pytest.raises(ConfigurationError, match="unknown file type"):
        RoutingTable.load(json_file)
    with pytest.raises(ConfigurationError, match="cannot read"):
        RoutingTable.load(tmp_path / "missing.toml")


def _events(crm: CRM, customer: UUID) -> list[tuple[DomainEvent, EventType]]:
    registry = crm_event_types()
    out = []
    for event in crm.history(customer):
        et = registry.of(event)
        assert et is not None
        out.append((event, et))
    return out


def test_consent_is_judged_at_each_events_position_in_the_log() -> None:
    crm = CRM("memory://")
    cid = crm.register_customer(kind="individual", name="Chen Jie", code="CJ-1")
    crm.log_contact(cid, channel="phone", direction="inbound", summary="before consent")
    crm.grant_consent(cid, purpose="marketing", channel="email")
    crm.log_contact(cid, channel="email", direction="inbound", summary="while consenting")
    crm.withdraw_consent(cid, purpose="marketing", channel="email", reason="too many mails")
    crm.log_contact(cid, channel="phone", direction="inbound", summary="after withdrawal")
    route = default_routing().routes[1]
    rule, ledger = ConsentRule(), ConsentLedger()
    decisions = []
    for event, et in _events(crm, cid):
        ledger.apply(event)
        if route.matches(et):
            decisions.append((et.name, rule.decide(route, event, et, ledger)))
    names = [n for n, _ in decisions]
    assert names == [
        "crm.customer.contact_logged",
        "crm.customer.consent_granted",
        "crm.customer.contact_logged",
        "crm.customer.consent_withdrawn",
        "crm.customer.contact_logged",
    ]
    before, granted, during, withdrawn, after = (d for _, d in decisions)
    assert before.publish
    assert "summary" in before.redact
    assert granted.publish
    assert not granted.redact
    assert during.publish
    assert not during.redact
    assert withdrawn.publish
    assert withdrawn.redact == ("reason",)
    assert after.publish
    assert "summary" in after.redact


def test_drop_mode_and_undeclared_types_are_not_published() -> None:
    crm = CRM("memory://")
    cid = crm.register_customer(kind="individual", name="Liu Yang", code="LY-1")
    crm.log_contact(cid, channel="phone", direction="inbound", summary="no consent")
    drop = Route(
        topic="mkt",
        types=("crm.customer.*",),
        consent_purpose="marketing",
        without_consent=WithoutConsent.DROP,
    )
    ledger = ConsentLedger()
    rule = ConsentRule()
    registered, logged = _events(crm, cid)
    assert not rule.decide(drop, logged[0], logged[1], ledger).publish
    # an event class that declares no personal data: never published without consent
    # (every Customer event declares its personal fields since erasure needs them; the
    # Account events are still undeclared)
    aid = crm.open_account(customer_id=cid, name="Liu household")
    opened = next((e, et) for e, et in _events(crm, aid) if isinstance(e, Account.Opened))
    assert personal_fields(Account.Opened) is None
    drop_all = drop.model_copy(update={"types": ("crm.*",)})
    undeclared = rule.decide(drop_all, opened[0], opened[1], ledger)
    assert not undeclared.publish
    assert "no personal-data declaration" in undeclared.reason
    # an unguarded route publishes everything
    open_route = Route(topic="all", types=("crm.*",))
    assert rule.decide(open_route, registered[0], registered[1], ledger).publish


def test_ledger_rebuilds_from_the_log_up_to_a_position() -> None:
    crm = CRM("memory://")
    a = crm.register_customer(kind="individual", name="A", code="A-1")
    b = crm.register_customer(kind="individual", name="B", code="B-1")
    crm.grant_consent(a, purpose="marketing", channel="email")
    crm.grant_consent(b, purpose="marketing", channel="sms")
    middle = crm.app.recorder.max_notification_id()
    crm.withdraw_consent(a, purpose="marketing", channel="email")
    registry = crm_event_types()
    at_middle = ConsentLedger.rebuild(crm.app, registry, middle)
    assert at_middle.has_consent(a, "marketing")
    assert at_middle.has_consent(b, "marketing", "sms")
    assert not at_middle.has_consent(b, "marketing", "email")
    now = ConsentLedger.rebuild(crm.app, registry, crm.app.recorder.max_notification_id())
    assert not now.has_consent(a, "marketing")
    assert now.has_consent(b, "marketing")
    assert len(ConsentLedger.rebuild(crm.app, registry, None)) == 0
