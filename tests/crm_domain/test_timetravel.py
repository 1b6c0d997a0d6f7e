"""Time travel: the state as of a time or a version equals the fold of the event prefix;
the audit history's diffs add up to the current state."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import suppress
from datetime import timedelta
from typing import Any
from uuid import UUID

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crm_domain import CRM
from crm_domain.errors import RejectedError
from crm_domain.timetravel import diff, flatten, fold, state_of

Step = Callable[[CRM, UUID], Any]

STEPS: list[Step] = [
    lambda crm, c: crm.log_contact(c, channel="phone", direction="inbound", summary="a call"),
    lambda crm, c: crm.assign_segment(c, segment="smb"),
    lambda crm, c: crm.assign_segment(c, segment="enterprise"),
    lambda crm, c: crm.assign_grade(c, grade="A"),
    lambda crm, c: crm.assign_grade(c, grade="B"),
    lambda crm, c: crm.grant_consent(c, purpose="newsletter", channel="email"),
    lambda crm, c: crm.open_ticket(c, kind="inquiry", subject="invoice copy", channel="email"),
]


def _apply(crm: CRM, customer: UUID, steps: list[int]) -> None:
    for i in steps:
        with suppress(RejectedError):  # a rule said no (the same grade again): nothing stored
            STEPS[i](crm, customer)


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    steps=st.lists(st.integers(0, len(STEPS) - 1), min_size=1, max_size=12),
    interval=st.sampled_from([0, 2, 3]),
)
def test_as_of_state_equals_the_fold_of_the_event_prefix(steps: list[int], interval: int) -> None:
    crm = CRM("memory://", snapshot_interval=interval)
    customer = crm.register_customer(kind="enterprise", name="Acme Ltd", code="ACME")
    _apply(crm, customer, steps)
    events = crm.history(customer)
    for k, event in enumerate(events, start=1):
        prefix = [e for e in events if e.timestamp <= event.timestamp]
        assert state_of(crm.customer_as_of(customer, event.timestamp)) == state_of(fold(prefix))
        assert state_of(crm.state_at(customer, version=k)) == state_of(fold(events[:k]))
    later = events[-1].timestamp + timedelta(days=1)
    assert state_of(crm.customer_as_of(customer, later)) == state_of(crm.customer(customer))


@settings(max_examples=20, deadline=None)
@given(steps=st.lists(st.integers(0, len(STEPS) - 1), min_size=1, max_size=10))
def test_the_diffs_of_the_history_add_up_to_the_current_state(steps: list[int]) -> None:
    crm = CRM("memory://")
    customer = crm.register_customer(kind="enterprise", name="Acme Ltd", code="ACME")
    _apply(crm, customer, steps)
    state: dict[str, Any] = {}
    for entry in crm.audit_history(customer):
        for change in entry.changes:
            assert state.get(change.path) == change.before
            if change.after is None:
                state.pop(change.path, None)
            else:
                state[change.path] = change.after
    current = {k: v for k, v in flatten(state_of(crm.customer(customer))).items() if v is not None}
    assert state == current


def test_diff_names_nested_fields() -> None:
    before = {"a": 1, "b": {"c": 2, "d": [1]}}
    after = {"a": 1, "b": {"c": 3, "d": [1, 2]}, "e": "x"}
    assert [(c.path, c.before, c.after) for c in diff(before, after)] == [
        ("b.c", 2, 3),
        ("b.d", [1], [1, 2]),
        ("e", None, "x"),
    ]
