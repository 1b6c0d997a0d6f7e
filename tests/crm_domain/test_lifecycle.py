"""The pluggable lifecycle model: the default five stages, Dell's RAD, and custom models."""

from __future__ import annotations

import pytest

from crm_domain import CRM, DEFAULT_LIFECYCLE, LifecycleModel
from crm_domain.errors import LifecycleTransitionError, UnknownValueError
from crm_domain.lifecycle import RAD_LIFECYCLE

ALLOWED = {
    ("potential", "development"),
    ("potential", "growth"),
    ("potential", "termination"),
    ("development", "growth"),
    ("development", "maturity"),
    ("development", "termination"),
    ("growth", "maturity"),
    ("growth", "termination"),
    ("maturity", "growth"),
    ("maturity", "termination"),
    ("termination", "development"),  # won back
    # at risk: a buying customer who stopped buying (the lifecycle policy), then recovers
    # or lapses
    ("development", "at_risk"),
    ("growth", "at_risk"),
    ("maturity", "at_risk"),
    ("at_risk", "growth"),
    ("at_risk", "termination"),
}


def test_default_model_stages() -> None:
    assert DEFAULT_LIFECYCLE.stages == (
        "potential",
        "development",
        "growth",
        "maturity",
        "at_risk",
        "termination",
    )
    assert DEFAULT_LIFECYCLE.initial == "potential"


@pytest.mark.parametrize("src", DEFAULT_LIFECYCLE.stages)
@pytest.mark.parametrize("dst", DEFAULT_LIFECYCLE.stages)
def test_default_transitions(src: str, dst: str) -> None:
    if (src, dst) in ALLOWED:
        DEFAULT_LIFECYCLE.check_transition(src, dst)
    else:
        with pytest.raises(LifecycleTransitionError) as info:
            DEFAULT_LIFECYCLE.check_transition(src, dst)
        assert (info.value.from_stage, info.value.to_stage) == (src, dst)


def test_unknown_stage_is_named() -> None:
    with pytest.raises(UnknownValueError, match=r"'vip'.*potential, development"):
        DEFAULT_LIFECYCLE.check_transition("potential", "vip")


def test_linear_model() -> None:
    model = LifecycleModel.linear(
        "funnel", ["attract", "acquire", "develop", "retain", "lost"], extra={"lost": ["acquire"]}
    )
    assert model.initial == "attract"
    model.check_transition("attract", "acquire")
    model.check_transition("develop", "lost")  # any stage may move to the last one
    model.check_transition("lost", "acquire")  # the extra "win back"
    with pytest.raises(LifecycleTransitionError):
        model.check_transition("attract", "retain")
    with pytest.raises(LifecycleTransitionError):
        model.check_transition("retain", "develop")


def test_invalid_models_are_refused() -> None:
    with pytest.raises(ValueError, match="initial"):
        LifecycleModel("m", ("a", "b"), initial="c")
    with pytest.raises(ValueError, match="unknown stages"):
        LifecycleModel("m", ("a", "b"), initial="a", transitions={"a": frozenset({"z"})})


def test_application_with_dells_rad_model() -> None:
    app = CRM("memory://", lifecycle=RAD_LIFECYCLE)
    cid = app.register_customer(kind="enterprise", name="Dell customer", code="KA-1")
    assert app.customer(cid).lifecycle_stage == "acquisition"
    app.change_lifecycle_stage(cid, to_stage="retention", reason="Q2: large wallet share")
    app.change_lifecycle_stage(cid, to_stage="acquisition", reason="Q3: no trade, slid back")
    assert app.customer(cid).lifecycle_stage == "acquisition"
    before = app.app.recorder.max_notification_id()
    with pytest.raises(UnknownValueError):
        app.change_lifecycle_stage(cid, to_stage="growth", reason="not a RAD stage")
    with pytest.raises(LifecycleTransitionError):
        app.change_lifecycle_stage(cid, to_stage="acquisition", reason="already there")
    assert app.app.recorder.max_notification_id() == before
