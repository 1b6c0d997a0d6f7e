"""How a command runs: idempotency, load, decide, save in one transaction, retries, bulk.

The machinery behind :meth:`crm_domain.CRM.handle`, kept apart from the CRM's public API.
Every command takes the same path, reading what the command declares (see
:mod:`crm_domain.commands.base`): the aggregate and its id, whether it creates one, and
its concurrency policy.
"""

from __future__ import annotations

import copy
import random
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.domain import OriginatorVersionError, datetime_now_with_tzinfo
from eventsourcing.persistence import RecordConflictError
from pydantic import ValidationError

from crm_domain.access import AccessControl
from crm_domain.account import Account
from crm_domain.bookkeeping import CommandProcessed, CustomerCodeClaim, encode_result
from crm_domain.commands.base import Command
from crm_domain.context import (
    CommandContext,
    context_in_force,
    derive_context,
    enter_context,
    leave_context,
)
from crm_domain.errors import (
    AccountNotFoundError,
    ConcurrencyConflictError,
    CorruptHistoryError,
    CustomerNotFoundError,
    IdempotencyKeyReusedError,
    InvalidCommandError,
    NotFoundError,
    invalid,
    problems,
)
from crm_domain.eventmodel import Aggregate
from crm_domain.infrastructure.eventstore import CRMEventStore

R = TypeVar("R")
A = TypeVar("A", bound=Aggregate)

#: The next step of the handling chain: runs the command, returns its result.
Handler = Callable[[Command[Any]], Any]
#: A step around every command: ``middleware(command, next)`` may look at the command and
#: the context (:func:`~crm_domain.context.current_context`), refuse it by raising (an
#: access policy), call ``next(command)`` and look at the result (an audit log).
Middleware = Callable[[Command[Any], Handler], Any]


@dataclass
class _Batch:
    """Aggregates and command records collected by a bulk block, saved at its end."""

    aggregates: dict[UUID, Aggregate] = field(default_factory=dict)
    processed: dict[str, CommandProcessed] = field(default_factory=dict)
    #: Customer code claims looked up for the block in one go (``look_up_codes``): whether
    #: each was stored when looked up.
    claims: dict[UUID, bool] = field(default_factory=dict)


def not_found(cls: type[Aggregate], aggregate_id: UUID | str) -> NotFoundError:
    """The typed not-found error for a customer or an account id (or code)."""
    if cls is Account:
        return AccountNotFoundError(aggregate_id)
    return CustomerNotFoundError(aggregate_id)


def as_uuid(ref: UUID | str) -> UUID | None:
    """``ref`` as a UUID, or None if it is not one (then no aggregate has that id)."""
    if isinstance(ref, UUID):
        return ref
    try:
        return UUID(str(ref))
    except ValueError:
        return None


def _guarded(decide: Callable[[], R]) -> R:
    """Run a handler; pydantic's errors (an event's payload) become InvalidCommandError."""
    try:
        return decide()
    except ValidationError as exc:
        raise invalid(exc) from exc


def replay_events(aggregate: Any, events: Iterable[Any]) -> Any:
    """Apply stored events, in order, to an aggregate (None before the first): what
    eventsourcing's ``project_aggregate`` does, without its per-event ``isinstance`` check
    against a runtime protocol. That check costs about 17 µs an event, a third of loading
    a long history (an audit's replay to a version, a customer without snapshots); every
    event the mapper gives back here is one of the domain's event classes, which mutate."""
    for event in events:
        aggregate = event.mutate(aggregate)
    return aggregate


class CommandHandling:
    """The command pipeline of :class:`~crm_domain.CRM` (private methods only)."""

    app: CRMEventStore
    source_system: str
    access: AccessControl
    #: Steps run around every command, outermost first (see :data:`Middleware`).
    middleware: list[Middleware]
    #: How often a commuting command is decided again after a concurrent write.
    max_retries: ClassVar[int] = 20
    #: Seconds before the first retry; it doubles with each retry, up to the cap, and
    #: each wait is drawn at random below it ("full jitter"). Without it, writers that
    #: collided reload and save again in lockstep and collide again: with two writers
    #: each retry was a coin toss, and 1-12% of commands ran out of retries.
    retry_backoff: ClassVar[float] = 0.002
    retry_backoff_cap: ClassVar[float] = 0.25

    def _init_handling(self) -> None:
        self.middleware = []
        self._batch: ContextVar[_Batch | None] = ContextVar(f"crm_batch_{id(self)}", default=None)
        self._policy_loaded: ContextVar[Aggregate | None] = ContextVar(
            f"crm_policy_loaded_{id(self)}", default=None
        )

    def _now(self) -> datetime:
        """The business time of the command running (the context's), else now."""
        ctx = context_in_force()
        if ctx is not None and ctx.occurred_at is not None:
            return ctx.occurred_at
        return datetime_now_with_tzinfo()

    # ----- the chain --------------------------------------------------------------------
    def _dispatch(self, command: Command[Any]) -> Any:
        if not isinstance(command, Command):
            raise InvalidCommandError(f"not a CRM command: {command!r}")
        # The access policy first: no middleware, check or load of a denied command runs.
        # An aggregate it loaded (a "managed" grant) is the one the command decides on.
        token = self._policy_loaded.set(None)
        try:
            self.access.check_command(command, self._load_for_policy)
            if not self.middleware:
                return self._execute(command)
            steps = self.middleware

            def step(i: int, cmd: Command[Any]) -> Any:
                if i == len(steps):
                    return self._execute(cmd)
                return steps[i](cmd, lambda c: step(i + 1, c))

            return step(0, command)
        finally:
            self._policy_loaded.reset(token)

    def _load_for_policy(self, aggregate_id: UUID, cls: type[A]) -> A:
        aggregate = self._load(aggregate_id, cls)
        self._policy_loaded.set(aggregate)
        return aggregate

    def _loaded_by_policy(self, command: Command[Any]) -> Aggregate | None:
        """The aggregate the access policy loaded to judge ``command``, if it is the one
        the command changes (taken once: a retry loads afresh)."""
        aggregate = self._policy_loaded.get()
        if aggregate is None or command.creates:
            return None
        self._policy_loaded.set(None)
        if aggregate.id == command.aggregate_id() and isinstance(aggregate, command.aggregate):
            return aggregate
        return None

    def _execute(self, command: Command[R]) -> R:
        """Checks, idempotency, metadata, decide, one transaction, retries."""
        command.check(self)  # type: ignore[arg-type]
        outer = context_in_force()
        if outer is None:
            # No context set: the command's own, as ``command_context`` would derive it
            # from a fresh default (actor ``system``, a new correlation id), made once.
            ctx = CommandContext(source_system=self.source_system, command_id=command.command_id)
        else:
            ctx_kwargs: dict[str, Any] = {}
            if outer.source_system == "crm-core" and self.source_system != "crm-core":
                ctx_kwargs["source_system"] = self.source_system
            command_id = command.command_id or outer.command_id
            if command_id == outer.command_id and not ctx_kwargs:
                return self._execute_in(outer, command)  # the context in force is the command's
            ctx = derive_context(outer, command_id=command_id, **ctx_kwargs)
        token = enter_context(ctx)
        try:
            return self._execute_in(ctx, command)
        finally:
            leave_context(token)

    def _execute_in(self, ctx: CommandContext, command: Command[R]) -> R:
        batch = self._batch.get()
        if batch is not None:
            return self._execute_in_batch(batch, ctx, command)
        try:
            return self._execute_alone(ctx, command)
        except ConcurrencyConflictError as exc:
            raise command.on_conflict(exc) from exc.__cause__

    def _execute_alone(self, ctx: CommandContext, command: Command[R]) -> R:
        if ctx.command_id is not None:
            done = self._processed(ctx.command_id)
            if done is not None:
                return self._repeat(done, command)  # type: ignore[no-any-return]
        retry_base: Aggregate | None = None
        for attempt in range(self.max_retries + 1):
            loaded = None
            if retry_base is not None:
                loaded = self._fast_forward(retry_base)
                retry_base = None
            elif attempt > 0 and not command.creates:
                # A retry: keep the fresh state undecided, so that a further retry loads
                # only the events since, not the snapshot and history again. A cheaper
                # reload is a shorter window for the next concurrent write to land in.
                loaded = self._load(command.aggregate_id(), command.aggregate)
            if loaded is not None:
                retry_base = copy.deepcopy(loaded)
            elif attempt == 0:
                loaded = self._loaded_by_policy(command)
            aggregate, base_version, result, extra = self._decide(command, loaded)
            if ctx.command_id is not None:
                extra.append(self._record_processed(ctx.command_id, command, result))
            try:
                self._save(aggregate, *extra)
            except RecordConflictError as exc:
                if ctx.command_id is not None:
                    done = self._processed(ctx.command_id)
                    if done is not None:
                        return self._repeat(done, command)  # type: ignore[no-any-return]
                self._check_commutes(aggregate.id, base_version, command, attempt, exc)
                self._back_off(attempt)
                continue
            return result
        raise AssertionError("unreachable")  # pragma: no cover

    def _fast_forward(self, aggregate: Aggregate) -> Aggregate:
        """The aggregate brought up to date with the events stored after its version."""
        current: Aggregate = aggregate
        for event in self._stored_events(aggregate.id, gt=aggregate.version):
            current = event.mutate(current)
        return current

    def _decide(
        self, command: Command[R], loaded: Aggregate | None = None
    ) -> tuple[Aggregate, int, R, list[Aggregate]]:
        """Load (or create) the command's aggregate and let the command's handler decide."""
        if command.creates:
            created = _guarded(lambda: command.create(self))  # type: ignore[arg-type]
            return created, 0, command.result_of_creation(created), command.also_save(created)
        aggregate = loaded or self._load(command.aggregate_id(), command.aggregate)
        base_version = aggregate.version
        result = _guarded(lambda: command.decide(aggregate, self))  # type: ignore[arg-type]
        return aggregate, base_version, result, []

    def _check_commutes(
        self,
        aggregate_id: UUID,
        base_version: int,
        command: Command[Any],
        attempt: int,
        exc: Exception,
    ) -> None:
        name, policy = command.command_name, command.concurrency
        if not policy.commutes:
            raise ConcurrencyConflictError(
                aggregate_id, f"{name} was based on version {base_version}"
            ) from exc
        if attempt >= self.max_retries:
            raise ConcurrencyConflictError(
                aggregate_id, f"{name} still conflicting after {self.max_retries} retries"
            ) from exc
        if policy.conflicts_on is not None:
            value = command.conflict_value()
            for ev in self._stored_events(aggregate_id, gt=base_version):
                if getattr(ev, policy.conflicts_on, None) == value:
                    raise ConcurrencyConflictError(
                        aggregate_id,
                        f"{name}: {type(ev).__name__} changed the same "
                        f"{policy.conflicts_on} concurrently",
                    ) from exc

    def _back_off(self, attempt: int) -> None:
        """Wait a random while before retrying, so colliding writers fall out of step."""
        ceiling = min(self.retry_backoff_cap, self.retry_backoff * 2**attempt)
        if ceiling > 0:
            time.sleep(random.uniform(0, ceiling))

    def _execute_in_batch(self, batch: _Batch, ctx: CommandContext, command: Command[R]) -> R:
        if ctx.command_id is not None:
            if ctx.command_id in batch.processed:
                return self._repeat(batch.processed[ctx.command_id], command)  # type: ignore[no-any-return]
            done = self._processed(ctx.command_id)
            if done is not None:
                return self._repeat(done, command)  # type: ignore[no-any-return]
        aggregate, _, result, extra = self._decide(command, self._loaded_by_policy(command))
        batch.aggregates[aggregate.id] = aggregate
        for other in extra:
            batch.aggregates[other.id] = other
        if ctx.command_id is not None:
            batch.processed[ctx.command_id] = self._record_processed(
                ctx.command_id, command, result
            )
        return result

    @contextmanager
    def _bulk(self) -> Iterator[None]:
        if self._batch.get() is not None:
            raise InvalidCommandError("bulk blocks do not nest")
        batch = _Batch()
        token = self._batch.set(batch)
        try:
            yield
        finally:
            self._batch.reset(token)
        try:
            self._save(*batch.aggregates.values(), *batch.processed.values())
        except RecordConflictError as exc:
            raise ConcurrencyConflictError(
                next(iter(batch.aggregates), UUID(int=0)),
                "a concurrent write touched an aggregate of this bulk; nothing was saved",
            ) from exc

    def _save(self, *aggregates: Aggregate) -> None:
        """Store the new events of the aggregates in one transaction."""
        self.app.save(*aggregates)

    # ----- idempotency --------------------------------------------------------------------
    def _processed(self, command_id: str) -> CommandProcessed | None:
        processed_id = CommandProcessed.id_for(command_id)
        if not self._has_events(processed_id):  # the usual case: a first run
            return None
        try:
            processed: CommandProcessed = self.app.repository.get(processed_id)
        except AggregateNotFoundError:
            return None
        return processed

    @staticmethod
    def _repeat(done: CommandProcessed, command: Command[Any]) -> Any:
        """The first result of a repeated command; a command id names ONE request."""
        if done.command != command.command_name:
            raise InvalidCommandError(
                f"command id {done.command_id!r} was already used for {done.command}, "
                f"not {command.command_name}: give each command its own id"
            )
        if done.request_hash and done.request_hash != command.request_hash():
            raise IdempotencyKeyReusedError(
                done.command_id,
                f"for another {command.command_name} request (other customer, account or "
                "fields): give each request its own id",
            )
        return done.restore_result()

    @staticmethod
    def _record_processed(command_id: str, command: Command[Any], result: Any) -> CommandProcessed:
        return CommandProcessed(
            command_id=command_id,
            command=command.command_name,
            result=encode_result(result),
            request_hash=command.request_hash(),
        )

    # ----- loading ------------------------------------------------------------------------
    def _load(self, aggregate_id: UUID, cls: type[A]) -> A:
        batch = self._batch.get()
        if batch is not None and aggregate_id in batch.aggregates:
            cached = batch.aggregates[aggregate_id]
            if isinstance(cached, cls):
                return cached
        aggregate = self._get(aggregate_id)
        if not isinstance(aggregate, cls):
            raise not_found(cls, aggregate_id)
        return aggregate

    def _get(self, aggregate_id: UUID | str, version: int | None = None) -> Aggregate | None:
        """The aggregate as stored (at ``version``), or None if there is none by that id.

        A history that cannot be replayed (a gap, two swapped events, invalid stored
        data) raises :class:`CorruptHistoryError` naming the aggregate and the version.
        """
        uid = as_uuid(aggregate_id)
        if uid is None:
            return None  # not an id (a PostgreSQL uuid column would refuse to compare it)
        try:
            aggregate: Aggregate = self.app.repository.get(
                uid, version=version, projector_func=replay_events
            )
        except AggregateNotFoundError:
            return None
        except OriginatorVersionError as exc:
            found, expected = [*exc.args, None, None][:2]
            raise CorruptHistoryError(
                uid,
                expected,
                f"found the event of version {found} where version {expected} was expected "
                "(a gap or two swapped events)",
            ) from exc
        except ValidationError as exc:
            raise self._corrupt(uid, exc) from exc
        return aggregate

    def _stored_events(self, aggregate_id: UUID | str, *, gt: int | None = None) -> list[Any]:
        """The stored events of an aggregate (after version ``gt``), oldest first."""
        uid = as_uuid(aggregate_id)
        if uid is None:
            return []
        try:
            return list(self.app.events.get(uid, gt=gt))
        except ValidationError as exc:
            raise self._corrupt(uid, exc) from exc

    def _corrupt(self, aggregate_id: UUID, exc: ValidationError) -> CorruptHistoryError:
        """Name the first stored event of the aggregate that does not validate."""
        position = None
        for stored in self.app.recorder.select_events(aggregate_id):
            try:
                self.app.mapper.to_domain_event(stored)
            except ValidationError:
                position = stored.originator_version
                break
        return CorruptHistoryError(
            aggregate_id, position, f"invalid stored event: {problems(exc, limit=3)}"
        )

    def _code_taken(self, code: str) -> bool:
        batch = self._batch.get()
        claim_id = CustomerCodeClaim.id_for(code)
        if batch is not None:
            if claim_id in batch.aggregates:
                return True
            looked_up = batch.claims.get(claim_id)
            if looked_up is not None:
                return looked_up
        return self._has_events(claim_id)

    def look_up_codes(self, codes: Iterable[str]) -> set[str]:
        """The customer codes among ``codes`` that are taken, found in one query (per few
        hundred codes). Inside a bulk block, the block's registrations then check their
        code against this answer instead of a query each (an import registers thousands of
        customers per block); a code another writer claims meanwhile still fails the
        block's save, as it fails a registration checked just before it."""
        claims = {CustomerCodeClaim.id_for(code): code for code in codes}
        stored = self.app.stored_originators(claims)
        batch = self._batch.get()
        if batch is not None:
            for claim_id in claims:
                batch.claims[claim_id] = claim_id in stored
        return {claims[claim_id] for claim_id in stored}

    def _has_events(self, aggregate_id: UUID) -> bool:
        """Whether anything is stored for the id: one query for at most one event.

        Cheaper than ``repository.get`` for an existence check (which also queries the
        snapshots and rebuilds the aggregate); claims and command records are never
        snapshotted, so their events are all there is.
        """
        return next(iter(self.app.events.get(aggregate_id, limit=1)), None) is not None
