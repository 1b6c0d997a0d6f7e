"""Replay and time travel for auditors: every change of a customer or account with the
state before and after it, and the state as it stood at a time or a version.

:func:`audit_history` folds the aggregate's events one by one (``event.mutate``), the way
the repository rebuilds it, and compares the state before and after each event field by
field (:func:`diff`); the state is the one snapshots keep (:func:`state_of`). The same
fold, cut at a time, is what :meth:`CRM.customer_as_of` answers from the store (snapshots
included): a property test holds the two equal.

Time here is record time (``timestamp``: when the CRM knew it); each entry also shows
business time (``occurred_at``: when it happened, e.g. a visit synced later).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from crm_domain.account import Account
from crm_domain.customer import Customer
from crm_domain.errors import CustomerNotFoundError, InvalidCommandError, NotFoundError
from crm_domain.eventmodel import ENVELOPE_FIELDS, Aggregate, DomainEvent, Snapshot
from crm_domain.handling import as_uuid

if TYPE_CHECKING:
    from crm_domain.application import CRM

#: Attributes of the state that every event changes (the fold's bookkeeping, not news).
BOOKKEEPING = frozenset({"created_on", "modified_on"})


@dataclass(frozen=True)
class FieldChange:
    """One field that an event changed: its dotted path and the values before and after
    (``None`` where the field did not exist)."""

    path: str
    before: Any
    after: Any


@dataclass(frozen=True)
class AuditEntry:
    """One event of a customer or account as an auditor reads it."""

    version: int
    event_type: str
    #: When it was recorded (the CRM knew it from then on).
    recorded_at: datetime
    #: When it happened in the business.
    occurred_at: datetime
    actor: str
    source_system: str
    correlation_id: str
    causation_id: str
    command_id: str
    payload: dict[str, Any]
    changes: list[FieldChange] = field(default_factory=list)


def state_of(aggregate: Aggregate | None) -> dict[str, Any]:
    """The aggregate's state as JSON values (as a snapshot keeps it), without the fold's
    bookkeeping; ``{}`` for no aggregate."""
    if aggregate is None:
        return {}
    state = Snapshot.take(aggregate).state
    return {k: v for k, v in state.items() if k not in BOOKKEEPING}


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings as ``{"a.b.c": leaf}``; lists and scalars are leaves, empty mappings
    are left out (an entity's appearance shows as its fields)."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, inner in value.items():
            out.update(flatten(inner, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: value} if prefix else {}


def diff(before: dict[str, Any], after: dict[str, Any]) -> list[FieldChange]:
    """Field-level changes from one state to the next, by dotted path, in path order."""
    old, new = flatten(before), flatten(after)
    return [
        FieldChange(path, old.get(path), new.get(path))
        for path in sorted(old.keys() | new.keys())
        if old.get(path) != new.get(path)
    ]


def resolve(crm: CRM, ref: UUID | str) -> Aggregate:
    """The customer or account named by an id, or a customer by its code."""
    uid = as_uuid(ref)
    if uid is not None:
        found = crm._get(uid)
        if isinstance(found, Customer | Account):
            return found
        raise NotFoundError(f"no customer or account {ref}")
    try:
        return crm.customer_by_code(str(ref))
    except CustomerNotFoundError:
        raise NotFoundError(f"no customer or account with id or customer code {ref}") from None


def fold(events: list[DomainEvent]) -> Aggregate | None:
    """The aggregate the events make, applied in order (None for no events)."""
    aggregate: Any = None
    for event in events:
        aggregate = event.mutate(aggregate)  # type: ignore[attr-defined]
    return aggregate  # type: ignore[no-any-return]


def audit_history(crm: CRM, ref: UUID | str) -> list[AuditEntry]:
    """Every event of a customer or account, oldest first, with its metadata and the
    field-level changes it made to the state."""
    aggregate_id = resolve(crm, ref).id
    entries = []
    aggregate: Any = None
    before: dict[str, Any] = {}
    for event in crm.history(aggregate_id):
        aggregate = event.mutate(aggregate)  # type: ignore[attr-defined]
        after = state_of(aggregate)
        meta = event.metadata
        entries.append(
            AuditEntry(
                version=event.originator_version,
                event_type=type(event).__qualname__,
                recorded_at=event.timestamp,
                occurred_at=event.occurred_at,
                actor=meta.get("actor", ""),
                source_system=meta.get("source_system", ""),
                correlation_id=meta.get("correlation_id", ""),
                causation_id=meta.get("causation_id", ""),
                command_id=meta.get("command_id", ""),
                payload=event.model_dump(mode="json", exclude=set(ENVELOPE_FIELDS)),
                changes=diff(before, after),
            )
        )
        before = after
    return entries


def state_at(
    crm: CRM, ref: UUID | str, *, when: datetime | None = None, version: int | None = None
) -> Aggregate:
    """The customer or account as it stood at ``when`` (record time, timezone-aware) or at
    ``version``; now if neither is given. Before it existed: not found."""
    if when is not None and version is not None:
        raise InvalidCommandError("give a time or a version, not both")
    current = resolve(crm, ref)
    if when is not None:
        if isinstance(current, Account):
            return crm.account_as_of(current.id, when)
        return crm.customer_as_of(current.id, when)
    if version is not None:
        if not 1 <= version <= current.version:
            raise InvalidCommandError(
                f"{current.id} has versions 1 to {current.version}, not {version}"
            )
        found = crm._get(current.id, version=version)
        assert found is not None
        return found
    return current
