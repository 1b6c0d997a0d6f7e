"""Least privilege: roles, grants, the one entry point, denials that store nothing and are
logged append-only."""

from __future__ import annotations

import pickle
from datetime import date
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import create_engine, text

from crm_domain import CRM, Money
from crm_domain.access import AccessPolicy, Grant
from crm_domain.commands import StageOpportunity
from crm_domain.errors import (
    ConfigurationError,
    InvalidCommandError,
    PermissionDeniedError,
    RejectedError,
)
from crm_domain.infrastructure.storage import StoreURL
from crm_domain.settings import CRMSettings

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "docs" / "access-policy.toml"

PIPELINE = ["open_opportunity", "stage_opportunity"]
POLICY = AccessPolicy(
    grants=(
        Grant(commands=frozenset(PIPELINE), roles=frozenset({"sales"}), customers="managed"),
        Grant(commands=frozenset(PIPELINE), roles=frozenset({"sales_supervisor"})),
        Grant(commands=frozenset({"ConfirmOrder"}), sources=frozenset({"erp"})),
        Grant(commands=frozenset({"audit.export"}), roles=frozenset({"auditor"})),
        Grant(commands=frozenset({"forget_customer"}), roles=frozenset({"dpo"})),
    )
)


def _setup(crm: CRM) -> tuple[UUID, UUID, UUID]:
    with crm.context(actor="admin", roles=["sales_supervisor"]):
        customer = crm.register_customer(kind="enterprise", name="Acme Ltd", code="ACME")
        account = crm.open_account(customer_id=customer, name="Acme Ltd")
        crm.assign_account_manager(account, manager="li.wei", reason="territory")
        deal = crm.open_opportunity(
            account, name="40 workstations", owner="li.wei", expected_close=date(2027, 3, 31)
        )
    return customer, account, deal


def _count(crm: CRM) -> int:
    return int(crm.app.recorder.max_notification_id() or 0)


@pytest.fixture
def crm() -> CRM:
    return CRM("memory://", policy=POLICY)


def test_the_default_policy_allows_everything() -> None:
    crm = CRM("memory://")
    assert crm.access.policy.allows_everything
    _setup(crm)
    crm.authorize("audit.export")
    assert crm.access.log.read() == []


def test_the_assigned_manager_stages_their_accounts_opportunities(crm: CRM) -> None:
    _, account, deal = _setup(crm)
    with crm.context(actor="li.wei", roles=["sales"]):
        crm.stage_opportunity(account, deal, stage="qualification")
    assert crm.account(account).opportunities[deal].stage == "qualification"


def test_another_sales_rep_is_denied_and_nothing_is_stored(crm: CRM) -> None:
    _, account, deal = _setup(crm)
    before = _count(crm)
    with (
        crm.context(actor="zhang.min", roles=["sales"]),
        pytest.raises(PermissionDeniedError) as info,
    ):
        crm.stage_opportunity(account, deal, stage="qualification")
    assert _count(crm) == before
    error = info.value
    assert isinstance(error, RejectedError)
    assert (error.actor, error.roles, error.command, error.target) == (
        "zhang.min",
        ("sales",),
        "stage_opportunity",
        account,
    )
    assert "assigned manager" in str(error)
    (denial,) = crm.access.log.read()
    assert (denial.actor, denial.command, denial.target) == (
        "zhang.min",
        "stage_opportunity",
        str(account),
    )
    assert crm.account(account).opportunities[deal].stage != "qualification"


def test_a_supervisor_stages_any_accounts_opportunities(crm: CRM) -> None:
    _, account, deal = _setup(crm)
    with crm.context(actor="wang.fang", roles=["sales_supervisor"]):
        crm.stage_opportunity(account, deal, stage="qualification")


def test_no_roles_no_pipeline(crm: CRM) -> None:
    _, account, deal = _setup(crm)
    with crm.context(actor="li.wei"), pytest.raises(PermissionDeniedError, match="no roles"):
        crm.stage_opportunity(account, deal, stage="qualification")


def test_commands_no_grant_names_follow_the_default(crm: CRM) -> None:
    customer, _, _ = _setup(crm)
    with crm.context(actor="anyone"):
        crm.log_contact(customer, channel="phone", direction="inbound", summary="asks for a call")
    deny = CRM("memory://", policy=AccessPolicy(default="deny"))
    with pytest.raises(PermissionDeniedError, match="default deny"):
        deny.register_customer(kind="enterprise", name="Acme Ltd", code="ACME")
    assert _count(deny) == 0


def test_only_erp_confirms_orders(crm: CRM) -> None:
    _, account, _ = _setup(crm)
    with crm.context(actor="admin"):
        order = crm.place_order(
            account, lines=[{"sku": "WS-40", "quantity": 1, "unit_price": Money.of("2300", "CNY")}]
        )
        crm.request_order_confirmation(account, order)
    before = _count(crm)
    with (
        crm.context(actor="li.wei", roles=["sales_supervisor"]),
        pytest.raises(PermissionDeniedError, match="source erp"),
    ):
        crm.confirm_order(account, order, erp_reference="SO-1")
    assert _count(crm) == before
    with crm.context(actor="erp-connector", source_system="erp"):
        crm.confirm_order(account, order, erp_reference="SO-1")


def test_every_path_meets_the_policy_handle_all_and_bulk(crm: CRM) -> None:
    _, account, deal = _setup(crm)
    before = _count(crm)
    stage = StageOpportunity(account_id=account, opportunity_id=deal, stage="qualification")
    with crm.context(actor="zhang.min", roles=["sales"]):
        with pytest.raises(PermissionDeniedError):
            crm.handle(stage)
        with pytest.raises(PermissionDeniedError):
            crm.handle_all([stage])
        with pytest.raises(PermissionDeniedError), crm.bulk():
            crm.handle(stage)
    assert _count(crm) == before
    assert len(crm.access.log.read()) == 3


def test_the_policy_runs_before_middleware(crm: CRM) -> None:
    _, account, deal = _setup(crm)
    seen: list[str] = []
    crm.middleware.append(lambda cmd, nxt: seen.append(cmd.command_name) or nxt(cmd))
    with crm.context(actor="zhang.min", roles=["sales"]), pytest.raises(PermissionDeniedError):
        crm.stage_opportunity(account, deal, stage="qualification")
    assert seen == []


def test_managed_sees_the_state_of_the_bulk_block(crm: CRM) -> None:
    """A hand-over earlier in the same bulk block counts: the policy sees the aggregate as
    the command will."""
    _, account, deal = _setup(crm)
    with crm.context(actor="wang.fang", roles=["sales_supervisor", "sales"]), crm.bulk():
        crm.assign_account_manager(account, manager="wang.fang", reason="cover")
        crm.stage_opportunity(account, deal, stage="qualification")


def test_the_command_decides_on_the_aggregate_the_policy_saw(
    crm: CRM, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One load for policy and command: no second read, no window between them."""
    _, account, deal = _setup(crm)
    loads: list[UUID] = []
    get = crm.app.repository.get

    def counting_get(aggregate_id: UUID, **kwargs: Any) -> Any:
        loads.append(aggregate_id)
        return get(aggregate_id, **kwargs)

    monkeypatch.setattr(crm.app.repository, "get", counting_get)
    with crm.context(actor="li.wei", roles=["sales"]):
        crm.stage_opportunity(account, deal, stage="qualification")
        assert loads == [account]
        with crm.bulk():
            crm.stage_opportunity(account, deal, stage="needs_analysis")
        assert loads == [account, account]
    assert crm.account(account).opportunities[deal].stage == "needs_analysis"


def test_actions_only_auditors_export_only_the_dpo_forgets(crm: CRM) -> None:
    customer, _, _ = _setup(crm)
    events = _count(crm)
    with crm.context(actor="li.wei", roles=["sales"]):
        with pytest.raises(PermissionDeniedError, match=r"audit\.export"):
            crm.authorize("audit.export")
        with pytest.raises(PermissionDeniedError, match=r"forget_customer"):
            crm.forget_customer(customer, reason="asked by phone")
    assert _count(crm) == events
    assert crm.customer(customer).forgotten is False
    with crm.context(actor="chen.jing", roles=["auditor"]):
        crm.authorize("audit.export")
    with crm.context(actor="zhou.li", roles=["dpo"]):
        assert crm.forget_customer(customer, reason="request DSR-1") is True
    assert [d.command for d in crm.access.log.read()] == ["audit.export", "forget_customer"]
    with pytest.raises(ConfigurationError, match="unknown action"):
        crm.authorize("audit.exprot")


def test_a_condition_in_code() -> None:
    policy = AccessPolicy(
        grants=(
            Grant(
                commands=frozenset({"log_contact"}),
                when=lambda request: request.actor.endswith("@service"),
            ),
        )
    )
    crm = CRM("memory://", policy=policy)
    customer = crm.register_customer(kind="individual", name="Li Na", code="C1")
    with pytest.raises(PermissionDeniedError, match="condition in code"):
        crm.log_contact(customer, channel="phone", direction="inbound", summary="hello")
    with crm.context(actor="desk@service"):
        crm.log_contact(customer, channel="phone", direction="inbound", summary="hello")


def test_policy_names_are_checked_when_loaded() -> None:
    with pytest.raises(ConfigurationError, match="stage_oportunity"):
        AccessPolicy.from_mapping({"grants": [{"commands": ["stage_oportunity"]}]})
    with pytest.raises(ConfigurationError, match="customers"):
        AccessPolicy.from_mapping({"grants": [{"commands": ["log_contact"], "customers": "mine"}]})
    grant = Grant(commands=frozenset({"StageOpportunity"}))
    assert grant.commands == {"stage_opportunity"}


def test_roles_are_inherited_and_checked() -> None:
    crm = CRM("memory://")
    with crm.context(actor="li.wei", roles=["sales", "sales"]) as outer:
        assert outer.roles == ("sales",)
        with crm.context(source_system="crm-web") as inner:
            assert inner.roles == ("sales",)
    with pytest.raises(InvalidCommandError, match="role"), crm.context(roles=["x" * 101]):
        pass


def test_the_documented_policy_loads_and_decides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "crm.toml").write_text(f'[access]\npolicy_file = "{EXAMPLE}"\n')
    monkeypatch.chdir(tmp_path)
    crm = CRM(settings=CRMSettings.load(store_url="memory://"))
    assert len(crm.access.policy.grants) == 7
    _, account, deal = _setup(crm)
    with crm.context(actor="zhang.min", roles=["sales"]), pytest.raises(PermissionDeniedError):
        crm.stage_opportunity(account, deal, stage="qualification")
    with crm.context(actor="li.wei", roles=["sales"]):
        crm.stage_opportunity(account, deal, stage="qualification")


def test_a_missing_policy_file_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="access__policy_file"):
        CRMSettings.load(store_url="memory://", access={"policy_file": tmp_path / "nope.toml"})
    bad = tmp_path / "bad.toml"
    bad.write_text("grants = 3\n")
    with pytest.raises(ConfigurationError, match=r"bad\.toml"):
        AccessPolicy.from_toml(bad)


def test_the_error_names_actor_roles_command_and_customer_and_pickles() -> None:
    error = PermissionDeniedError("li.wei", ("sales",), "stage_opportunity", "c-1", "needs x")
    again = pickle.loads(pickle.dumps(error))
    assert str(again) == "li.wei (sales) may not run stage_opportunity on c-1: needs x"


def test_denials_persist_append_only_in_the_store(store_url: str) -> None:
    crm = CRM(store_url, policy=POLICY)
    try:
        _, account, deal = _setup(crm)
        before = _count(crm)
        with (
            crm.context(actor="zhang.min", roles=["sales"], correlation_id="req-7"),
            pytest.raises(PermissionDeniedError),
        ):
            crm.stage_opportunity(account, deal, stage="qualification")
        assert _count(crm) == before
    finally:
        crm.close()
    again = CRM(store_url, policy=POLICY)
    try:
        (denial,) = again.access.log.read()
        assert (denial.position, denial.actor, denial.roles, denial.correlation_id) == (
            1,
            "zhang.min",
            ("sales",),
            "req-7",
        )
    finally:
        again.close()
    engine = create_engine(StoreURL.parse(store_url).sqlalchemy_url)
    try:
        for statement in (
            "UPDATE crm_access_denials SET actor = 'nobody'",
            "DELETE FROM crm_access_denials",
        ):
            with pytest.raises(Exception, match="append-only"), engine.begin() as conn:
                conn.execute(text(statement))
    finally:
        engine.dispose()
