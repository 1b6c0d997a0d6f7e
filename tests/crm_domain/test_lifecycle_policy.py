"""The lifecycle policy: stages from what customers do (acquire, develop, retain, win back),
applied by the lifecycle scan, idempotently; on CDNOW's real purchase log too."""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from uuid import UUID

import pytest

from adapters.cdnow import import_purchases, read_purchases
from crm_domain import CRM, Money
from crm_domain.customer import Customer
from crm_domain.errors import ConfigurationError, InactiveCustomerError
from crm_domain.lifecycle import (
    DEFAULT_LIFECYCLE,
    RAD_LIFECYCLE,
    LifecyclePolicySettings,
    LifecycleRule,
)
from crm_domain.settings import CRMSettings
from crm_domain.values import OrderLine
from projections.customer360 import Customer360Queries
from projections.runner import follow

T0 = datetime(2030, 1, 10, 12, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[2]
CDNOW_DIR = Path(os.environ.get("CRM_CDNOW_DIR", ROOT.parent / "shared" / "data" / "cdnow"))
SAMPLE = CDNOW_DIR / "CDNOW_sample.txt"


def day(n: int) -> datetime:
    """``n`` days after T0."""
    return T0 + timedelta(days=n)


class Shop:
    """A customer with an account, buying on given days (orders confirmed by ERP)."""

    def __init__(self, crm: CRM, code: str = "C-1") -> None:
        self.crm = crm
        with crm.context(occurred_at=T0):
            self.customer = crm.register_customer(kind="individual", name="Li", code=code)
            self.account = crm.open_account(customer_id=self.customer, name="Li")

    def buy(self, n: int, *, confirm: bool = True) -> UUID:
        line = OrderLine(sku="CD", quantity=1, unit_price=Money.of("10", "USD"))
        with self.crm.context(occurred_at=day(n), source_system="erp"):
            order = self.crm.place_order(self.account, lines=[line])
            self.crm.request_order_confirmation(self.account, order)
            if confirm:
                self.crm.confirm_order(self.account, order)
        return order

    def scan(self, n: int) -> dict[str, int]:
        return self.crm.scan_lifecycle(as_of=day(n)).transitions

    @property
    def stage(self) -> str:
        return self.crm.customer(self.customer).lifecycle_stage

    def changes(self) -> list[tuple[str, str, str | None, datetime]]:
        return [
            (e.from_stage, e.to_stage, e.rule, e.occurred_at)
            for e in self.crm.history(self.customer)
            if isinstance(e, Customer.LifecycleStageChanged)
        ]


@pytest.fixture
def crm() -> CRM:
    return CRM("memory://")


@pytest.fixture
def shop(crm: CRM) -> Shop:
    return Shop(crm)


def test_first_confirmed_order_acquires_the_customer(shop: Shop) -> None:
    shop.buy(3)
    assert shop.scan(2) == {}  # not yet bought as of day 2
    assert shop.stage == "potential"
    assert shop.scan(5) == {"first_purchase": 1}
    assert shop.changes() == [("potential", "development", "first_purchase", day(3))]


def test_an_unconfirmed_order_is_no_purchase(shop: Shop) -> None:
    shop.buy(3, confirm=False)
    assert shop.scan(5) == {}
    assert shop.stage == "potential"


def test_repeat_purchases_within_the_window_develop_then_retain(shop: Shop) -> None:
    for n in (0, 30, 200, 379):  # 30 and 170 days apart: repeats; 200 -> 379 is 179 days
        shop.buy(n)
    shop.scan(380)
    assert [(c[1], c[2]) for c in shop.changes()] == [
        ("development", "first_purchase"),
        ("growth", "repeat_purchase"),
        ("maturity", "repeat_purchase"),
    ]
    assert shop.stage == "maturity"


def test_a_purchase_outside_the_repeat_window_is_no_repeat(crm: CRM) -> None:
    settings = CRMSettings(
        store_url="memory://",
        lifecycle=LifecyclePolicySettings(repeat_days=30, at_risk_days=90),
    )
    shop = Shop(CRM(settings=settings))
    shop.buy(0)
    shop.buy(31)  # 31 days later: not a repeat under a 30-day window
    shop.scan(60)
    assert shop.stage == "development"
    shop.buy(61)  # 30 days after the last one: a repeat
    shop.scan(62)
    assert shop.stage == "growth"


def test_silence_puts_at_risk_then_lapsed_then_an_order_wins_back(shop: Shop) -> None:
    shop.buy(0)
    assert shop.scan(179) == {"first_purchase": 1}
    assert shop.stage == "development"
    assert shop.scan(180) == {"at_risk": 1}
    assert shop.stage == "at_risk"
    assert shop.scan(364) == {}
    assert shop.scan(365) == {"lapsed": 1}
    assert shop.stage == "termination"
    shop.buy(500)
    assert shop.scan(501) == {"won_back": 1}
    assert shop.changes() == [
        ("potential", "development", "first_purchase", day(0)),
        ("development", "at_risk", "at_risk", day(180)),
        ("at_risk", "termination", "lapsed", day(365)),
        ("termination", "development", "won_back", day(500)),
    ]


def test_an_order_while_at_risk_recovers(shop: Shop) -> None:
    shop.buy(0)
    shop.buy(10)
    shop.buy(250)
    shop.scan(260)
    assert [(c[1], c[2], c[3]) for c in shop.changes()] == [
        ("development", "first_purchase", day(0)),
        ("growth", "repeat_purchase", day(10)),
        ("at_risk", "at_risk", day(190)),
        ("growth", "recovered", day(250)),
    ]


def test_a_late_scan_records_every_step_at_the_time_its_rule_fired(shop: Shop) -> None:
    shop.buy(0)
    assert shop.scan(1000) == {"at_risk": 1, "first_purchase": 1, "lapsed": 1}
    assert [c[3] for c in shop.changes()] == [day(0), day(180), day(365)]


def test_the_scan_is_idempotent(crm: CRM, shop: Shop) -> None:
    shop.buy(0)
    shop.buy(20)
    first = crm.scan_lifecycle(as_of=day(400))
    assert (first.total, first.customers_moved) == (4, 1)
    head = crm.app.recorder.max_notification_id()
    again = crm.scan_lifecycle(as_of=day(400))
    assert (again.total, again.customers_moved, again.customers_checked) == (0, 0, 1)
    assert crm.app.recorder.max_notification_id() == head
    assert crm.scan_lifecycle(as_of=day(10)).total == 0  # an earlier moment: nothing either


def test_the_policy_resumes_after_a_change_made_by_hand(crm: CRM, shop: Shop) -> None:
    shop.buy(0)
    shop.scan(1)
    with crm.context(occurred_at=day(100)):
        crm.change_lifecycle_stage(shop.customer, to_stage="maturity", reason="key account")
    # Silence is still measured from the last order; the hand-made stage is left at risk.
    assert shop.scan(200) == {"at_risk": 1}
    assert shop.changes()[1][2] is None  # the change by hand has no rule


def test_deactivated_customers_are_left_alone(crm: CRM, shop: Shop) -> None:
    shop.buy(0)
    crm.deactivate_customer(shop.customer, reason="moved away")
    assert shop.scan(10) == {}
    with pytest.raises(InactiveCustomerError):
        crm.change_lifecycle_stage(shop.customer, to_stage="development", reason="x")


def test_purchases_of_every_account_of_the_customer_count(crm: CRM, shop: Shop) -> None:
    shop.buy(0)
    second = crm.open_account(customer_id=shop.customer, name="Li (2nd)")
    line = OrderLine(sku="CD", quantity=1, unit_price=Money.of("10", "USD"))
    with crm.context(occurred_at=day(5), source_system="erp"):
        order = crm.place_order(second, lines=[line])
        crm.request_order_confirmation(second, order)
        crm.confirm_order(second, order)
    shop.scan(6)
    assert shop.stage == "growth"


def test_only_named_customers_are_scanned(crm: CRM, shop: Shop) -> None:
    other = Shop(crm, code="C-2")
    shop.buy(0)
    other.buy(0)
    assert crm.scan_lifecycle(as_of=day(1), customers=[other.customer]).customers_moved == 1
    assert (shop.stage, other.stage) == ("potential", "development")


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRM_LIFECYCLE__AT_RISK_DAYS", "30")
    monkeypatch.setenv("CRM_LIFECYCLE__LAPSED_DAYS", "60")
    crm = CRM("memory://")
    assert crm.lifecycle_policy.settings.at_risk_days == 30
    shop = Shop(crm)
    shop.buy(0)
    assert shop.scan(60) == {"at_risk": 1, "first_purchase": 1, "lapsed": 1}


def test_lapsing_before_being_at_risk_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRM_LIFECYCLE__LAPSED_DAYS", "100")
    with pytest.raises(ConfigurationError, match="lapsed_days"):
        CRM("memory://")


def test_a_policy_the_lifecycle_model_cannot_follow_is_refused() -> None:
    crm = CRM("memory://", lifecycle=RAD_LIFECYCLE)
    with pytest.raises(ConfigurationError, match=r"'development'|'growth'"):
        crm.scan_lifecycle(as_of=T0)
    custom = LifecyclePolicySettings(acquired="development", developed="retention")
    with pytest.raises(ConfigurationError, match="lacks"):
        custom.policy(RAD_LIFECYCLE)


def test_stage_changes_stored_before_the_rule_field_load() -> None:
    old = Customer.LifecycleStageChanged.model_validate(
        {
            "originator_id": UUID(int=1),
            "originator_version": 2,
            "from_stage": "potential",
            "to_stage": "development",
            "reason": "first order",
        }
    )
    assert old.rule is None
    assert LifecycleRule("won_back") is LifecycleRule.WON_BACK


def test_scan_and_customer_360_on_the_store(store_url: str) -> None:
    crm = CRM(store_url)
    try:
        buyers = [Shop(crm, code=f"C-{i}") for i in range(3)]
        buyers[0].buy(0)
        buyers[1].buy(0)
        buyers[1].buy(10)
        buyers[2].buy(0)
        buyers[2].buy(300)
        result = crm.scan_lifecycle(as_of=day(301), batch=2)
        assert result.transitions == {
            "at_risk": 3,
            "first_purchase": 3,
            "recovered": 1,
            "repeat_purchase": 1,
        }
        assert crm.scan_lifecycle(as_of=day(301)).total == 0
    finally:
        crm.close()
    with follow(store_url, read_models=["customer360"]) as runner:
        runner.wait_until_current(timeout=60)
        q = Customer360Queries(runner.view.engine)
        stages = {c.code: c.lifecycle_stage for c in q.search(page_size=10).items}
    assert stages == {"C-0": "at_risk", "C-1": "at_risk", "C-2": "growth"}


# ----- CDNOW: the stages spread as the rules say ------------------------------------------
AS_OF = date(1998, 6, 30)
CUSTOMERS = 150


def expected_stages(path: Path, customers: int, policy: LifecyclePolicySettings) -> Counter[str]:
    """The stage of each of the first ``customers`` customers as of AS_OF, walking the
    calendar day by day (not the policy's own code): orders of a day first, then the
    silence since the last order."""
    days: dict[str, list[date]] = defaultdict(list)
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if not parts:
            continue
        if parts[0] not in days and len(days) == customers:
            continue
        days[parts[0]].append(datetime.strptime(parts[-3], "%Y%m%d").date())
    buying = ("development", "growth", "maturity")
    out: Counter[str] = Counter()
    for bought in days.values():
        stage, last = "potential", None
        current = min(bought)
        while current <= AS_OF:
            for _ in range(bought.count(current)):
                if stage in ("potential", "termination"):  # first purchase, won back
                    stage = "development"
                elif stage == "at_risk":
                    stage = "growth"
                elif last is not None and (current - last).days <= policy.repeat_days:
                    stage = {"development": "growth", "growth": "maturity"}.get(stage, stage)
                last = current
            assert last is not None
            silent = (current - last).days
            if silent >= policy.lapsed_days and stage in (*buying, "at_risk"):
                stage = "termination"
            elif silent >= policy.at_risk_days and stage in buying:
                stage = "at_risk"
            current += timedelta(days=1)
        out[stage] += 1
    return out


def test_cdnow_stages_after_a_scan_as_of_the_end_of_the_log(tmp_path: Path) -> None:
    if not SAMPLE.exists():
        pytest.skip(f"CDNOW sample not found at {SAMPLE} (set CRM_CDNOW_DIR)")
    store = f"sqlite:///{tmp_path / 'cdnow.sqlite'}"
    crm = CRM(store)
    try:
        import_purchases(crm, read_purchases(SAMPLE), max_customers=CUSTOMERS)
        before = Counter(
            crm.customer_by_code(f"CDNOW-{c}").lifecycle_stage for c in ("00004", "00021")
        )
        assert before == {"potential": 2}  # what the issue observed: nothing moves them
        result = crm.scan_lifecycle(as_of=datetime(1998, 6, 30, 23, 59, tzinfo=UTC))
        assert result.customers_checked == CUSTOMERS
        assert crm.scan_lifecycle(as_of=datetime(1998, 6, 30, 23, 59, tzinfo=UTC)).total == 0
    finally:
        crm.close()
    expected = expected_stages(SAMPLE, CUSTOMERS, LifecyclePolicySettings())
    with follow(store, read_models=["customer360"]) as runner:
        runner.wait_until_current(timeout=120)
        q = Customer360Queries(runner.view.engine)
        counted = Counter(
            {
                stage: q.search(lifecycle_stage=stage, page_size=1).total
                for stage in DEFAULT_LIFECYCLE.stages
            }
        )
    assert +counted == +expected
    assert counted["potential"] == 0
    # Spread: every customer bought, most stopped; each behaviour stage is reached.
    assert {s for s, n in counted.items() if n} >= {"termination", "at_risk", "development"}
    assert result.transitions["first_purchase"] == CUSTOMERS
