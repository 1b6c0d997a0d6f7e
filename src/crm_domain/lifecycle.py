"""Customer lifecycle stages as a pluggable model, and the policy that moves customers on.

The source texts use several models (five stages; attract-acquire-develop-retain-win
back; Dell's RAD for key accounts), so the model is data: a set of stages and the
transitions allowed between them. :data:`DEFAULT_LIFECYCLE` is the five-stage model
plus "at risk" (a customer who stopped buying) and winning a terminated customer back.

:class:`LifecyclePolicy` moves customers on from what they do (acquire, develop, retain,
win back): the first confirmed order, a repeat purchase within a window, no purchase for
a while (at risk, then lapsed) and a new order after a lapse. Which stage each step of
the policy reaches is configuration (:class:`LifecyclePolicySettings`), checked against
the lifecycle model in force. :func:`plan_transitions` is the policy as a pure function;
:meth:`crm_domain.customer.Customer.apply_lifecycle_policy` records what it decides.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator

from crm_domain.errors import ConfigurationError, LifecycleTransitionError, UnknownValueError


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
#: "won back": a terminated customer returns to development. "at_risk" is where a buying
#: customer (development, growth, maturity) goes when they stop buying; from there they
#: recover (growth) or lapse (termination).
DEFAULT_LIFECYCLE = LifecycleModel(
    name="five-stage",
    stages=("potential", "development", "growth", "maturity", "at_risk", "termination"),
    initial="potential",
    transitions={
        "potential": frozenset({"development", "growth", "termination"}),
        "development": frozenset({"growth", "maturity", "at_risk", "termination"}),
        "growth": frozenset({"maturity", "at_risk", "termination"}),
        "maturity": frozenset({"growth", "at_risk", "termination"}),
        "at_risk": frozenset({"growth", "termination"}),
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


# ===== the policy: stages from behaviour ===============================================
class LifecycleRule(StrEnum):
    """The rule of the lifecycle policy that moved a customer (recorded on the event)."""

    #: The first confirmed order: a prospect became a customer (acquire).
    FIRST_PURCHASE = "first_purchase"
    #: A confirmed order within the repeat window of the previous one (develop, retain).
    REPEAT_PURCHASE = "repeat_purchase"
    #: A confirmed order from a customer at risk: the relationship recovered.
    RECOVERED = "recovered"
    #: No confirmed order for ``at_risk_days``.
    AT_RISK = "at_risk"
    #: No confirmed order for ``lapsed_days``.
    LAPSED = "lapsed"
    #: A confirmed order from a lapsed customer (win back).
    WON_BACK = "won_back"


class LifecyclePolicySettings(BaseModel):
    """The lifecycle policy's settings (``[lifecycle]`` in ``crm.toml``, ``CRM_LIFECYCLE__*``).

    Days are whole days after the last confirmed order; the stages are the lifecycle
    model's names for each step (defaults: :data:`DEFAULT_LIFECYCLE`).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: A confirmed order at most this many days after the previous one is a repeat purchase.
    repeat_days: int = Field(default=180, ge=1, le=3660)
    #: No confirmed order for this many days: the customer is at risk.
    at_risk_days: int = Field(default=180, ge=1, le=3660)
    #: No confirmed order for this many days: the customer has lapsed.
    lapsed_days: int = Field(default=365, ge=1, le=3660)
    #: Stage of a prospect who made a first purchase (acquired); also of one won back.
    acquired: str = "development"
    #: Stage after a first repeat purchase (developed).
    developed: str = "growth"
    #: Stage after further repeat purchases (retained).
    retained: str = "maturity"
    #: Stage of a customer who stopped buying.
    at_risk: str = "at_risk"
    #: Stage of a customer who lapsed.
    lapsed: str = "termination"

    @model_validator(mode="after")
    def _lapse_after_risk(self) -> LifecyclePolicySettings:
        if self.lapsed_days <= self.at_risk_days:
            raise ValueError(
                f"lapsed_days ({self.lapsed_days}) must be more than "
                f"at_risk_days ({self.at_risk_days})"
            )
        return self

    def policy(self, model: LifecycleModel) -> LifecyclePolicy:
        """The policy on ``model``; :class:`ConfigurationError` if the model lacks a stage or
        a transition the policy needs."""
        return LifecyclePolicy(settings=self, model=model)


@dataclass(frozen=True)
class Transition:
    """One step the policy takes: to which stage, by which rule, at what business time."""

    to_stage: str
    rule: LifecycleRule
    at: datetime
    reason: str


@dataclass(frozen=True)
class LifecyclePolicy:
    """The policy's settings bound to a lifecycle model (checked when built)."""

    settings: LifecyclePolicySettings
    model: LifecycleModel

    def __post_init__(self) -> None:
        s = self.settings
        buying = (s.acquired, s.developed, s.retained)
        for stage in (*buying, s.at_risk, s.lapsed):
            if stage not in self.model.stages:
                raise ConfigurationError(
                    f"the lifecycle policy names stage {stage!r}, which lifecycle model "
                    f"{self.model.name} lacks ({', '.join(self.model.stages)})"
                )
        needed = [
            (self.model.initial, s.acquired),
            (s.acquired, s.developed),
            (s.developed, s.retained),
            (s.at_risk, s.developed),
            (s.at_risk, s.lapsed),
            (s.lapsed, s.acquired),
            *((b, s.at_risk) for b in buying),
        ]
        for src, dst in needed:
            if dst not in self.model.transitions.get(src, frozenset()):
                raise ConfigurationError(
                    f"the lifecycle policy moves customers from {src!r} to {dst!r}, which "
                    f"lifecycle model {self.model.name} does not allow"
                )

    def plan(
        self,
        stage: str,
        purchases: Sequence[datetime],
        *,
        since: datetime | None,
        as_of: datetime,
    ) -> list[Transition]:
        """See :func:`plan_transitions`."""
        return plan_transitions(self, stage, purchases, since=since, as_of=as_of)


def plan_transitions(
    policy: LifecyclePolicy,
    stage: str,
    purchases: Sequence[datetime],
    *,
    since: datetime | None,
    as_of: datetime,
) -> list[Transition]:
    """The transitions due for a customer now in ``stage``, oldest first.

    ``purchases`` are the business times of the customer's confirmed orders (any order).
    Only what happened after ``since`` (when the stage last changed; None: never) and up
    to ``as_of`` is looked at: orders at their time, and the moments the customer has
    gone ``at_risk_days`` and ``lapsed_days`` without an order. Each step
    moves from the stage the previous one reached; a stage the policy does not name
    (e.g. one set by hand) is left alone until an order says otherwise. The plan depends
    only on its inputs, so running it again after its transitions are recorded (then
    ``since`` is the last one's time) plans nothing: the scan is idempotent.
    """
    s = policy.settings
    buying = (s.acquired, s.developed, s.retained)
    orders = sorted(p for p in purchases if p <= as_of)
    risk, lapse = timedelta(days=s.at_risk_days), timedelta(days=s.lapsed_days)
    window = timedelta(days=s.repeat_days)
    # Moments to look at: (time, 0 for an order / 1 for a silence), orders first at a tie.
    moments: list[tuple[datetime, int, datetime | None]] = []
    previous: datetime | None = None
    for order in orders:
        moments.append((order, 0, previous))
        previous = order
    for i, order in enumerate(orders):
        following = orders[i + 1] if i + 1 < len(orders) else None
        for gap in (risk, lapse):
            moment = order + gap
            if moment <= as_of and (following is None or following > moment):
                moments.append((moment, 1, order))
    moments.sort(key=lambda m: (m[0], m[1]))
    out: list[Transition] = []
    for at, silence, last in moments:
        if since is not None and at <= since:
            continue
        step: tuple[str, LifecycleRule, str] | None = None
        if silence:
            assert last is not None
            days = (at - last).days
            if days >= s.lapsed_days and stage in (*buying, s.at_risk):
                step = (s.lapsed, LifecycleRule.LAPSED, f"no confirmed order for {days} days")
            elif days < s.lapsed_days and stage in buying:
                step = (
                    s.at_risk,
                    LifecycleRule.AT_RISK,
                    f"no confirmed order for {days} days",
                )
        elif stage == policy.model.initial:
            step = (s.acquired, LifecycleRule.FIRST_PURCHASE, "first confirmed order")
        elif stage == s.lapsed:
            step = (s.acquired, LifecycleRule.WON_BACK, "confirmed order after a lapse")
        elif stage == s.at_risk:
            step = (s.developed, LifecycleRule.RECOVERED, "confirmed order while at risk")
        elif last is not None and at - last <= window and stage in buying[:2]:
            target = s.developed if stage == s.acquired else s.retained
            days = (at - last).days
            step = (target, LifecycleRule.REPEAT_PURCHASE, f"repeat order after {days} days")
        if step is not None and step[0] != stage:
            out.append(Transition(to_stage=step[0], rule=step[1], at=at, reason=step[2]))
            stage = step[0]
    return out
