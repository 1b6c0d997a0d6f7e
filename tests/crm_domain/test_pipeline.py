"""The configurable sales pipeline and its default stages and win probabilities."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from crm_domain import CRM, DEFAULT_PIPELINE, Money, Pipeline, PipelineStage
from crm_domain.errors import OpportunityClosedError, PipelineRuleError, UnknownValueError


def test_default_pipeline_follows_the_brief() -> None:
    assert [(s.name, s.probability) for s in DEFAULT_PIPELINE.stages] == [
        ("prospecting", Decimal("0.10")),
        ("qualification", Decimal("0.20")),
        ("needs_analysis", Decimal("0.40")),
        ("proposal", Decimal("0.60")),
        ("negotiation", Decimal("0.80")),
        ("closed_won", Decimal("1.00")),
        ("closed_lost", Decimal("0.00")),
    ]
    assert DEFAULT_PIPELINE.first.name == "prospecting"
    assert DEFAULT_PIPELINE.won_stage.name == "closed_won"
    assert DEFAULT_PIPELINE.lost_stage.name == "closed_lost"
    assert DEFAULT_PIPELINE.index("proposal") == 3
    probabilities = [s.probability for s in DEFAULT_PIPELINE.stages if not s.closed]
    assert probabilities == sorted(probabilities)


def test_unknown_stage() -> None:
    with pytest.raises(UnknownValueError, match=r"'demo'.*prospecting"):
        DEFAULT_PIPELINE.stage("demo")
    with pytest.raises(UnknownValueError):
        DEFAULT_PIPELINE.index("demo")


@pytest.mark.parametrize(
    ("stages", "message"),
    [
        (
            (
                PipelineStage("a", Decimal("0.1"), "pipeline"),
                PipelineStage("a", Decimal("0.2"), "pipeline"),
            ),
            "unique",
        ),
        ((PipelineStage("lost", Decimal(0), "omitted", closed=True),), "won stage"),
        ((PipelineStage("won", Decimal(1), "closed", closed=True, won=True),), "lost stage"),
    ],
)
def test_invalid_pipelines_are_refused(stages: tuple[PipelineStage, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Pipeline("bad", stages)


SHORT = Pipeline(
    name="inside-sales",
    stages=(
        PipelineStage("lead", Decimal("0.05"), "pipeline"),
        PipelineStage("demo", Decimal("0.50"), "best_case"),
        PipelineStage("signed", Decimal("1"), "closed", closed=True, won=True),
        PipelineStage("dropped", Decimal("0"), "omitted", closed=True),
    ),
)


def test_application_with_a_custom_pipeline() -> None:
    app = CRM("memory://", pipeline=SHORT)
    cid = app.register_customer(kind="enterprise", name="Acme", code="ACME")
    account = app.open_account(customer_id=cid, name="Acme")
    opp = app.open_opportunity(
        account,
        name="Licences",
        expected_close=date(2031, 1, 31),
        owner="o",
        amount=Money.of(5000, "EUR"),
    )
    assert app.account(account).opportunity(opp).stage == "lead"
    with pytest.raises(UnknownValueError):
        app.stage_opportunity(account, opp, stage="proposal")  # a default stage, not ours
    app.stage_opportunity(account, opp, stage="demo")
    assert app.account(account).opportunity(opp).probability == Decimal("0.50")
    with pytest.raises(PipelineRuleError):
        app.stage_opportunity(account, opp, stage="signed")
    app.win_opportunity(account, opp, reason="demo went well")
    assert app.account(account).opportunity(opp).stage == "signed"
    with pytest.raises(OpportunityClosedError):
        app.stage_opportunity(account, opp, stage="lead")
