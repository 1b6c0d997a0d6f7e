"""Customer lifecycle stages as a pluggable model.

The source texts use several models (five stages; attract-acquire-develop-retain-win
back; Dell's RAD for key accounts), so the model is data: a set of stages and the
transitions allowed between them. :data:`DEFAULT_LIFECYCLE` is the five-stage model
plus winning a terminated customer back.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from crm_domain.errors import LifecycleTransitionError, UnknownValueError


@dataclass(frozen=True)
class LifecycleModel:
    """Stages, the stage a new customer starts in, and the allowed transitions."""

    name: str
    stages: tuple[str, ...]
    initial: str
    transitions: Mapping[str, frozenset[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.initial not in self.stages:
            raise ValueError(f"initial stage {self.initial!r} is not a stage of {self.name}")
        for src, targets in self.transitions.items():
            unknown = ({src} | set(targets)) - set(self.stages)
            if unknown:
                raise ValueError(f"transitions of {self.name} name unknown stages {unknown}")

    @classmethod
    def linear(
        cls, name: str, stages: Iterable[str], extra: Mapping[str, Iterable[str]] | None = None
    ) -> LifecycleModel:
        """A model where each stage may move to the next, and any stage to the last one."""
        seq = tuple(stages)
        transitions: dict[str, set[str]] = {s: set() for s in seq}
        for a, b in itertools.pairwise(seq):
            transitions[a].add(b)
        for s in seq[:-1]:
            transitions[s].add(seq[-1])
        for src, targets in (extra or {}).items():
            transitions.setdefault(src, set()).update(targets)
        return cls(name, seq, seq[0], {k: frozenset(v) for k, v in transitions.items()})

    def require_stage(self, stage: str) -> None:
        """Raise ``UnknownValueError`` (listing the stages) unless ``stage`` is one of this
        model's."""
        if stage not in self.stages:
            raise UnknownValueError(
                f"unknown lifecycle stage {stage!r}; {self.name} has {', '.join(self.stages)}"
            )

    def check_transition(self, from_stage: str, to_stage: str) -> None:
        """Raise ``LifecycleTransitionError`` unless ``from_stage`` may move to ``to_stage``."""
        self.require_stage(to_stage)
        if to_stage not in self.transitions.get(from_stage, frozenset()):
            raise LifecycleTransitionError(from_stage, to_stage)


#: potential -> development -> growth -> maturity -> termination, skipping forward
#: allowed from potential/development, stepping back from maturity to growth, and
#: "won back": a terminated customer returns to development.
DEFAULT_LIFECYCLE = LifecycleModel(
    name="five-stage",
    stages=("potential", "development", "growth", "maturity", "termination"),
    initial="potential",
    transitions={
        "potential": frozenset({"development", "growth", "termination"}),
        "development": frozenset({"growth", "maturity", "termination"}),
        "growth": frozenset({"maturity", "termination"}),
        "maturity": frozenset({"growth", "termination"}),
        "termination": frozenset({"development"}),  # won back
    },
)

#: Dell's RAD model for key accounts, recomputed each quarter.
RAD_LIFECYCLE = LifecycleModel(
    name="rad",
    stages=("acquisition", "development", "retention"),
    initial="acquisition",
    transitions={
        "acquisition": frozenset({"development", "retention"}),
        "development": frozenset({"acquisition", "retention"}),
        "retention": frozenset({"development", "acquisition"}),
    },
)
