"""Typed errors of the projections: what went wrong, where in the log, in which read model."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from crm_domain.errors import CRMError, InvalidCommandError


class ProjectionError(CRMError):
    """Base class of the errors the projections raise on purpose."""


class UnknownReadModelError(InvalidCommandError):
    """A read model name that is not registered (e.g. a typo on the command line)."""

    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(f"unknown read model {name!r}; known: {', '.join(sorted(known))}")
        self.name = name
        self.known = known

    def __reduce__(self) -> tuple[type[UnknownReadModelError], tuple[str, list[str]]]:
        return type(self), (self.name, self.known)


class UnhandledEventError(ProjectionError):
    """A read model met an event it cannot apply; nothing from that event on was stored.

    Names the read model, the event's topic, its position in the notification log and the
    aggregate it came from, so the operator can find it and fix the projection or the data.
    """

    def __init__(
        self,
        *,
        read_model: str,
        topic: str,
        position: int,
        originator_id: UUID | None,
        reason: str,
    ) -> None:
        where = f" of {originator_id}" if originator_id else ""
        super().__init__(
            f"read model {read_model!r} cannot handle event {topic}{where} "
            f"at position {position}: {reason}"
        )
        self.read_model = read_model
        self.topic = topic
        self.position = position
        self.originator_id = originator_id
        self.reason = reason

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only arguments: pickle (a parallel rebuild's worker reporting to its
        # parent) needs to be told how to build the error again.
        return _unhandled_event_error, (
            self.read_model,
            self.topic,
            self.position,
            self.originator_id,
            self.reason,
        )


def _unhandled_event_error(
    read_model: str, topic: str, position: int, originator_id: UUID | None, reason: str
) -> UnhandledEventError:
    return UnhandledEventError(
        read_model=read_model,
        topic=topic,
        position=position,
        originator_id=originator_id,
        reason=reason,
    )


class ProjectionLagError(ProjectionError, TimeoutError):
    """The read models did not reach a position in the time allowed."""
