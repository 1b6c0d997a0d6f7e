"""Who did it, why, and from where: the metadata every stored event carries.

Auditors ask "who changed this customer, and what caused it?". A :class:`CommandContext`
is set for the duration of a command (``with crm.context(actor="li.wei"): ...``), and
every event created inside it copies it into ``event.metadata``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any
from uuid import uuid4

from eventsourcing.domain import datetime_now_with_tzinfo


@dataclass(frozen=True)
class CommandContext:
    """The metadata of one command: actor, correlation and causation ids, source system.

    ``command_id`` makes a command idempotent: repeating a command with the same id stores
    nothing new and returns the first result.
    """

    actor: str = "system"
    source_system: str = "crm-core"
    correlation_id: str = field(default_factory=lambda: str(uuid4()))
    causation_id: str | None = None
    command_id: str | None = None
    #: When it happened in the business, if not now (an offline visit synced later, an
    #: import of history). Events record it as ``occurred_at`` beside their storage time.
    occurred_at: datetime | None = None
    #: The actor's roles (``"sales"``, ``"auditor"``...), which the access policy reads
    #: (:mod:`crm_domain.access`). Not stored on the events: the policy decides with them.
    roles: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_context(self)

    def as_metadata(self) -> dict[str, str]:
        """The metadata stored on each event of the command (actor, source, correlation, causation,
        command id): a new dict each time, made once per context (every event of a command,
        and of an import's order, takes it)."""
        made: dict[str, str] | None = self.__dict__.get("_metadata")
        if made is None:
            made = self._metadata()
            object.__setattr__(self, "_metadata", made)
        return dict(made)

    def _metadata(self) -> dict[str, str]:
        metadata = {
            "actor": self.actor,
            "source_system": self.source_system,
            "correlation_id": self.correlation_id,
            "causation_id": self.causation_id or self.command_id or self.correlation_id,
        }
        if self.command_id is not None:
            metadata["command_id"] = self.command_id
        return metadata


#: The fields of a context, in the order they are checked.
_CHECKED = (
    "actor",
    "source_system",
    "correlation_id",
    "causation_id",
    "command_id",
    "roles",
    "occurred_at",
)

#: The fields that may be None (not given).
_OPTIONAL = frozenset({"causation_id", "command_id", "occurred_at"})


def _check_context(ctx: CommandContext, names: Iterable[str] = _CHECKED) -> None:
    """Refuse metadata the stores and read models cannot hold (the timeline keeps the
    actor in ``varchar(100)``; PostgreSQL text takes no NUL), before any event has it.
    ``names``: the fields to check (all of them, unless the others were checked before)."""
    state = ctx.__dict__
    for name in names:
        value = state[name]
        if value is None and name in _OPTIONAL:
            continue  # not given
        if name == "roles":
            for role in value:
                _check_text("role", role)
        elif name == "occurred_at":
            _business_time()(value, "occurred_at")
        else:
            _check_text(name, value)


def derive_context(base: CommandContext, **changes: Any) -> CommandContext:
    """``dataclasses.replace(base, **changes)``, checking only the changed fields: the
    others are ``base``'s, checked when it was made (a context is immutable). A nested
    context (an import's order, with its business time) or a command's own context
    (its command id) is made this way for every command."""
    made: CommandContext = object.__new__(CommandContext)
    state = made.__dict__
    inherited = base.__dict__
    for name in _CHECKED:
        state[name] = changes[name] if name in changes else inherited[name]
    if len(changes) != len(changes.keys() & state.keys()):
        raise TypeError(f"not context fields: {sorted(changes.keys() - state.keys())}")
    _check_context(made, [n for n in _CHECKED if n in changes])
    return made


@lru_cache(maxsize=1)
def _business_time() -> Callable[[datetime, str], datetime]:
    """``crm_domain.values.business_time``, imported once (not at the top: crm_domain.values
    builds on the event model, which builds on this), not with every context."""
    from crm_domain.values import business_time

    return business_time


def _check_text(what: str, value: object) -> None:
    if isinstance(value, str):
        _check_string(what, value)
    else:
        _check_string.__wrapped__(what, value)  # not text: refused with the same message


@lru_cache(maxsize=4096)
def _check_string(what: str, value: object) -> None:
    """Check one metadata value (cached: the same actor, source system and correlation id
    recur in every nested context of a request, and a check is all this does)."""
    # Imported here: crm_domain.values builds on the event model, which builds on this.
    from crm_domain.values import check_identifier, check_label

    if what in ("actor", "source_system", "role"):
        check_label(value, what)
    else:
        check_identifier(value, what)


_current: ContextVar[CommandContext | None] = ContextVar("crm_command_context", default=None)


def current_context() -> CommandContext:
    """The context in force, or a fresh one (actor ``system``) when none was set."""
    ctx = _current.get()
    return ctx if ctx is not None else CommandContext()


def context_is_set() -> bool:
    """Whether a context is in force (set by :func:`command_context`), not the fresh default."""
    return _current.get() is not None


def context_in_force() -> CommandContext | None:
    """The context in force, or None when none is set (no fresh default made)."""
    return _current.get()


def enter_context(ctx: CommandContext) -> Token[CommandContext | None]:
    """Put ``ctx`` in force (a command's own context, made by the command path); hand the
    token back to :func:`leave_context` when the command ends, error or not."""
    return _current.set(ctx)


def leave_context(token: Token[CommandContext | None]) -> None:
    """Restore the context that was in force before :func:`enter_context`."""
    _current.reset(token)


def current_metadata() -> dict[str, str]:
    """Metadata for an event being created now (default factory of ``DomainEvent.metadata``)."""
    return current_context().as_metadata()


def current_occurred_at() -> datetime:
    """Business time of an event being created now: the context's, else the clock's."""
    ctx = _current.get()
    if ctx is not None and ctx.occurred_at is not None:
        return ctx.occurred_at
    return datetime_now_with_tzinfo()


@contextmanager
def command_context(
    *,
    actor: str | None = None,
    source_system: str | None = None,
    correlation_id: str | None = None,
    causation_id: str | None = None,
    command_id: str | None = None,
    occurred_at: datetime | None = None,
    roles: Iterable[str] | None = None,
) -> Iterator[CommandContext]:
    """Set the metadata for the commands run inside the block.

    Values not given (``roles`` included) are inherited from an enclosing context, except
    ``command_id``,
    which names one command and is never inherited. Metadata the stores cannot hold (an
    actor over 100 characters, a NUL, a naive or out-of-range ``occurred_at``) is an
    :class:`~crm_domain.errors.InvalidCommandError` here, before any command runs.
    """
    changes: dict[str, Any] = {"command_id": command_id}  # never inherited
    if actor is not None:
        changes["actor"] = actor
    if source_system is not None:
        changes["source_system"] = source_system
    if correlation_id is not None:
        changes["correlation_id"] = correlation_id
    if causation_id is not None:
        changes["causation_id"] = causation_id
    if occurred_at is not None:
        changes["occurred_at"] = occurred_at
    if roles is not None:
        changes["roles"] = _roles(roles)
    outer = _current.get()
    # Without a context in force: a fresh one (actor ``system``, a new correlation id).
    ctx = CommandContext(**changes) if outer is None else derive_context(outer, **changes)
    token = _current.set(ctx)
    try:
        yield ctx
    finally:
        _current.reset(token)


def _roles(roles: Iterable[str]) -> tuple[str, ...]:
    """Roles as a sorted tuple without repeats (a single string is one role, not letters)."""
    if isinstance(roles, str):
        return (roles,)
    return tuple(sorted(set(roles)))
