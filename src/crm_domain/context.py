"""Who did it, why, and from where: the metadata every stored event carries.

Auditors ask "who changed this customer, and what caused it?". A :class:`CommandContext`
is set for the duration of a command (``with crm.context(actor="li.wei"): ...``), and
every event created inside it copies it into ``event.metadata``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import lru_cache
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


def _check_context(ctx: CommandContext) -> None:
    """Refuse metadata the stores and read models cannot hold (the timeline keeps the
    actor in ``varchar(100)``; PostgreSQL text takes no NUL), before any event has it."""
    _check_text("actor", ctx.actor)
    _check_text("source_system", ctx.source_system)
    _check_text("correlation_id", ctx.correlation_id)
    if ctx.causation_id is not None:
        _check_text("causation_id", ctx.causation_id)
    if ctx.command_id is not None:
        _check_text("command_id", ctx.command_id)
    for role in ctx.roles:
        _check_text("role", role)
    if ctx.occurred_at is not None:
        _business_time()(ctx.occurred_at, "occurred_at")


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
    outer = _current.get()
    base = outer if outer is not None else CommandContext()
    ctx = replace(
        base,
        actor=actor if actor is not None else base.actor,
        source_system=source_system if source_system is not None else base.source_system,
        correlation_id=correlation_id if correlation_id is not None else base.correlation_id,
        causation_id=causation_id if causation_id is not None else base.causation_id,
        command_id=command_id,
        occurred_at=occurred_at if occurred_at is not None else base.occurred_at,
        roles=_roles(roles) if roles is not None else base.roles,
    )
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
