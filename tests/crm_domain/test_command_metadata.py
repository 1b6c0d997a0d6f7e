"""The metadata each command stores on its events, field by field, for a fixed scenario.

The command path builds one context per command (a fresh one, with a fresh correlation
id, when none is set); these tests pin what that context puts on every stored event (and
the command records), so making the path cheaper cannot change what is stored.
Correlation ids made by the CRM are random: they are named by first appearance
(``<1>``, ``<2>``...), so the tests also pin which events share one.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import pytest

from crm_domain import CRM
from crm_domain.bookkeeping import CommandProcessed
from crm_domain.commands.customer import AssignGrade
from crm_domain.context import CommandContext, context_is_set, current_context, derive_context
from crm_domain.errors import CustomerNotFoundError, InvalidCommandError


def _stored(app: CRM) -> list[tuple[str, dict[str, Any]]]:
    """Every stored event's type and metadata, in log order, random ids named in order."""
    names: dict[str, str] = {}

    def name(value: str) -> str:
        try:
            UUID(value)
        except ValueError:
            return value  # given by the caller
        return names.setdefault(value, f"<{len(names) + 1}>")

    out = []
    for notification in app.app.recorder.select_notifications(start=1, limit=1000):
        event = app.app.mapper.to_domain_event(notification)
        metadata = dict(getattr(event, "metadata", {}))
        for key in ("correlation_id", "causation_id"):
            if key in metadata:
                metadata[key] = name(metadata[key])
        out.append((type(event).__qualname__, metadata))
    return out


def _meta(actor: str, source: str, correlation: str, causation: str | None = None,
          command_id: str | None = None) -> dict[str, str]:  # fmt: skip
    out = {
        "actor": actor,
        "source_system": source,
        "correlation_id": correlation,
        "causation_id": causation or command_id or correlation,
    }
    if command_id is not None:
        out["command_id"] = command_id
    return out


def test_metadata_of_commands_without_and_with_a_context() -> None:
    app = CRM("memory://", source_system="erp-bridge")
    cid = app.register_customer(kind="individual", name="Chen", code="P-1")
    app.assign_grade(cid, grade="B")
    app.handle(AssignGrade(customer_id=cid, grade="A", command_id="msg-1"))
    app.handle(AssignGrade(customer_id=cid, grade="A", command_id="msg-1"))  # a repeat
    with app.context(actor="li.wei", roles=["sales"]):
        app.assign_grade(cid, grade="C")
        app.assign_grade(cid, grade="B")
    with app.context(actor="li.wei", correlation_id="call-42", source_system="call-centre"):
        with app.context(command_id="req-9", causation_id="ivr-3"):
            app.assign_grade(cid, grade="A")
        app.handle(AssignGrade(customer_id=cid, grade="C", command_id="msg-2"))
    with app.bulk():
        app.assign_grade(cid, grade="B")
        app.assign_grade(cid, grade="A")
    assert not context_is_set()
    system = "erp-bridge"
    assert _stored(app) == [
        ("Customer.Registered", _meta("system", system, "<1>")),
        ("CustomerCodeClaim.Claimed", _meta("system", system, "<1>")),
        ("Customer.GradeAssigned", _meta("system", system, "<2>")),
        ("Customer.GradeAssigned", _meta("system", system, "<3>", command_id="msg-1")),
        ("CommandProcessed.Recorded", _meta("system", system, "<3>", command_id="msg-1")),
        # one context set by the caller: one correlation id for both commands
        ("Customer.GradeAssigned", _meta("li.wei", system, "<4>")),
        ("Customer.GradeAssigned", _meta("li.wei", system, "<4>")),
        ("Customer.GradeAssigned", _meta("li.wei", "call-centre", "call-42", "ivr-3", "req-9")),
        ("CommandProcessed.Recorded", _meta("li.wei", "call-centre", "call-42", "ivr-3", "req-9")),
        ("Customer.GradeAssigned", _meta("li.wei", "call-centre", "call-42", None, "msg-2")),
        ("CommandProcessed.Recorded", _meta("li.wei", "call-centre", "call-42", None, "msg-2")),
        # a bulk block without a context: still one fresh correlation id per command
        ("Customer.GradeAssigned", _meta("system", system, "<5>")),
        ("Customer.GradeAssigned", _meta("system", system, "<6>")),
    ]


def test_default_source_system_and_business_time() -> None:
    app = CRM("memory://")
    at = datetime(2024, 3, 1, 9, 30, tzinfo=UTC)
    cid = app.register_customer(kind="individual", name="Chen", code="P-1")
    with app.context(occurred_at=at):
        app.assign_grade(cid, grade="B")
    with app.context(source_system="mobile-app"):
        app.assign_grade(cid, grade="A")
    assert [m for _, m in _stored(app)] == [
        _meta("system", "crm-core", "<1>"),
        _meta("system", "crm-core", "<1>"),
        _meta("system", "crm-core", "<2>"),
        _meta("system", "mobile-app", "<3>"),
    ]
    registered, at_b, now_a = app.history(cid)
    assert at_b.occurred_at == at
    for ev in (registered, now_a):  # no business time given: the storage time
        assert abs((ev.occurred_at - ev.timestamp).total_seconds()) < 5


def test_the_command_context_is_gone_after_the_command_and_its_errors() -> None:
    app = CRM("memory://")
    cid = app.register_customer(kind="individual", name="Chen", code="P-1")
    seen: list[tuple[str, str | None]] = []

    def spy(command: Any, next_step: Any) -> Any:
        ctx = current_context()
        seen.append((ctx.correlation_id, ctx.command_id))
        return next_step(command)

    app.middleware.append(spy)
    app.handle(AssignGrade(customer_id=cid, grade="B", command_id="m-1"))
    assert not context_is_set()
    with pytest.raises(CustomerNotFoundError):  # the context is reset after an error too
        app.assign_grade(UUID(int=7), grade="B")
    assert not context_is_set()
    app.assign_grade(cid, grade="A")
    # the middleware runs before the command's own context is set (as before)
    assert [c for _, c in seen] == [None, None, None]
    assert len({c for c, _ in seen}) == 3  # a fresh default each time, never kept


def test_contexts_do_not_leak_between_threads() -> None:
    app = CRM("memory://")
    cid = app.register_customer(kind="individual", name="Chen", code="P-1")
    entered, release = threading.Event(), threading.Event()

    def other() -> None:
        with app.context(actor="thread.b", correlation_id="b-1"):
            entered.set()
            release.wait(5)
            app.assign_grade(cid, grade="A")

    thread = threading.Thread(target=other)
    thread.start()
    assert entered.wait(5)
    app.assign_grade(cid, grade="B")  # no context here, while thread b holds one
    release.set()
    thread.join(5)
    records = [m for _, m in _stored(app)]
    assert records[2] == _meta("system", "crm-core", "<2>")
    assert records[3] == _meta("thread.b", "crm-core", "b-1")
    assert not context_is_set()


def test_a_repeated_command_returns_the_first_result_and_stores_nothing() -> None:
    app = CRM("memory://")
    cid = app.register_customer(kind="individual", name="Chen", code="P-1")
    command = AssignGrade(customer_id=cid, grade="B", command_id="m-9")
    app.handle(command)
    head = app.app.recorder.max_notification_id()
    app.handle(command)
    with app.context(command_id="m-9"):
        app.handle(AssignGrade(customer_id=cid, grade="B"))
    assert app.app.recorder.max_notification_id() == head
    record = app.app.repository.get(CommandProcessed.id_for("m-9"))
    assert record.command == "assign_grade"


BASE = CommandContext(
    actor="li.wei",
    source_system="call-centre",
    correlation_id="call-42",
    causation_id="ivr-3",
    command_id="req-1",
    occurred_at=datetime(2024, 3, 1, 9, 30, tzinfo=UTC),
    roles=("sales",),
)


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"command_id": None},
        {"command_id": "req-2", "source_system": "erp"},
        {"actor": "wang.fang", "roles": ("auditor", "sales")},
        {"occurred_at": datetime(2023, 1, 2, tzinfo=UTC), "causation_id": "c-9"},
        {"correlation_id": "other"},
    ],
)
def test_a_derived_context_is_the_replaced_one(changes: dict[str, Any]) -> None:
    derived = derive_context(BASE, **changes)
    assert derived == replace(BASE, **changes)
    assert derived.as_metadata() == replace(BASE, **changes).as_metadata()
    assert hash(derived) == hash(replace(BASE, **changes))


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"actor": "x" * 101}, "actor"),
        ({"command_id": "a\x00b"}, "command_id"),
        ({"source_system": ""}, "source_system"),
        ({"roles": ("sales", "bad\nrole")}, "role"),
        ({"occurred_at": datetime(2024, 3, 1)}, "occurred_at"),
        ({"correlation_id": 42}, "correlation_id"),
    ],
)
def test_a_derived_context_checks_what_changed(changes: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidCommandError, match=match):
        derive_context(BASE, **changes)
    with pytest.raises(InvalidCommandError, match=match):
        replace(BASE, **changes)  # as a context made in full refuses it


def test_nested_contexts_check_what_they_are_given() -> None:
    app = CRM("memory://")
    with app.context(actor="li.wei"):
        with (
            pytest.raises(InvalidCommandError, match="occurred_at"),
            app.context(occurred_at=datetime(2024, 3, 1)),
        ):
            pass
        with pytest.raises(InvalidCommandError, match="actor"), app.context(actor="a\x00"):
            pass
        with app.context(occurred_at=BASE.occurred_at) as inner:
            assert (inner.actor, inner.occurred_at) == ("li.wei", BASE.occurred_at)
        assert current_context().occurred_at is None
    with pytest.raises(TypeError, match="not context fields"):
        derive_context(BASE, colour="red")


def test_every_context_field_is_derived_and_checked() -> None:
    """A field added to CommandContext must be carried over by derive_context (which builds
    a context field by field) and checked: the list both use names every field."""
    from dataclasses import fields

    from crm_domain.context import _CHECKED

    assert sorted(_CHECKED) == sorted(f.name for f in fields(CommandContext))
