"""The sales pipeline: ordered opportunity stages, each with a default win probability.

Configurable per company; :data:`DEFAULT_PIPELINE` follows the brief. Stages marked
``closed`` end an opportunity (won or lost); a closed opportunity cannot be staged again.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from crm_domain.errors import UnknownValueError


@dataclass(frozen=True)
class PipelineStage:
    """One stage of a pipeline: win probability, forecast category, whether it closes the deal."""

    name: str
    probability: Decimal
    #: "pipeline", "best_case", "commit", "closed" or "omitted": the forecast category.
    forecast_category: str
    closed: bool = False
    won: bool = False


@dataclass(frozen=True)
class Pipeline:
    """A sales pipeline: its stages in order, with exactly one won and one lost stage."""

    name: str
    stages: tuple[PipelineStage, ...]

    def __post_init__(self) -> None:
        names = [s.name for s in self.stages]
        if len(set(names)) != len(names):
            raise ValueError("pipeline stage names must be unique")
        if sum(1 for s in self.stages if s.won) != 1:
            raise ValueError("a pipeline needs exactly one won stage")
        if not any(s.closed and not s.won for s in self.stages):
            raise ValueError("a pipeline needs a lost stage")

    def stage(self, name: str) -> PipelineStage:
        """The stage of that name, or ``UnknownValueError`` listing the pipeline's stages."""
        for s in self.stages:
            if s.name == name:
                return s
        raise UnknownValueError(
            f"unknown pipeline stage {name!r}; {self.name} has "
            + ", ".join(s.name for s in self.stages)
        )

    @property
    def first(self) -> PipelineStage:
        """The stage a new opportunity starts in."""
        return self.stages[0]

    @property
    def won_stage(self) -> PipelineStage:
        """The closed stage that means the opportunity was won."""
        return next(s for s in self.stages if s.won)

    @property
    def lost_stage(self) -> PipelineStage:
        """The closed stage that means the opportunity was lost."""
        return next(s for s in self.stages if s.closed and not s.won)

    def index(self, name: str) -> int:
        """Position of a stage in the pipeline (``UnknownValueError`` if it has none)."""
        return [s.name for s in self.stages].index(self.stage(name).name)


DEFAULT_PIPELINE = Pipeline(
    name="default",
    stages=(
        PipelineStage("prospecting", Decimal("0.10"), "pipeline"),
        PipelineStage("qualification", Decimal("0.20"), "pipeline"),
        PipelineStage("needs_analysis", Decimal("0.40"), "best_case"),
        PipelineStage("proposal", Decimal("0.60"), "best_case"),
        PipelineStage("negotiation", Decimal("0.80"), "commit"),
        PipelineStage("closed_won", Decimal("1.00"), "closed", closed=True, won=True),
        PipelineStage("closed_lost", Decimal("0.00"), "omitted", closed=True),
    ),
)
