"""The ``CRM`` application: the public entry point, one method per command.

Each command loads an aggregate, lets it decide (rules raise typed errors and store
nothing), and saves its new events in one transaction. Around that sit the things a
production CRM needs: metadata on every event (who, why, from where), idempotent
commands (``command_id``), automatic retry of commands that commute when two writers
collide, and a bulk path that saves many commands for many aggregates in one transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, ClassVar, TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import datetime_now_with_tzinfo
from eventsourcing.persistence import RecordConflictError
from eventsourcing.utils import get_topic
from pydantic import ValidationError

from crm_domain.account import Account
from crm_domain.bookkeeping import CommandProcessed, CustomerCodeClaim, encode_result
from crm_domain.context import CommandContext, command_context, current_context
from crm_domain.customer import Commitment, Customer
from crm_domain.errors import (
    AccountNotFoundError,
    ConcurrencyConflictError,
    CustomerNotFoundError,
    DuplicateCustomerCodeError,
    InactiveCustomerError,
    InvalidCommandError,
    NotFoundError,
    invalid,
)
from crm_domain.eventmodel import Aggregate, DomainEvent, Snapshot
from crm_domain.lifecycle import DEFAULT_LIFECYCLE, LifecycleModel
from crm_domain.persistence import OrjsonTranscoder, PydanticMapper, limit_event_size
from crm_domain.pipeline import DEFAULT_PIPELINE, Pipeline
from crm_domain.settings import CRMSettings
from crm_domain.sla import DEFAULT_SLA, SlaPolicy
from crm_domain.values import (
    AccountTier,
    Channel,
    CompanySize,
    ContactDetails,
    CustomerKind,
    Direction,
    KeyAccountCriterion,
    Money,
    OrderLine,
    OrderRejectionReason,
    Priority,
    SatisfactionClass,
    TicketKind,
)

R = TypeVar("R")
A = TypeVar("A", bound=Aggregate)


@dataclass(frozen=True)
class Change:
    """One recorded change, as an auditor reads it: what, when, by whom, from where."""

    version: int
    event_type: str
    recorded_at: datetime
    occurred_at: datetime
    actor: str
    source_system: str
    correlation_id: str
    payload: dict[str, Any]


@dataclass
class _Batch:
    """Aggregates and command records collected by :meth:`CRM.bulk`, saved at the end."""

    aggregates: dict[UUID, Aggregate] = field(default_factory=dict)
    processed: dict[str, CommandProcessed] = field(default_factory=dict)


def _not_found(cls: type[Aggregate], aggregate_id: UUID) -> NotFoundError:
    if cls is Customer:
        return CustomerNotFoundError(aggregate_id)
    return AccountNotFoundError(aggregate_id)


class CRM(Application[UUID]):
    """Customers, accounts, pipeline, service and orders, as an event-sourced application.

    ``store`` is a URL (``memory://``, ``sqlite:///crm.sqlite``, ``postgresql://...``);
    by default ``$CRM_STORE_URL``, else ``sqlite:///crm.sqlite`` in the working directory.
    """

    name = "CRM"
    env: ClassVar[dict[str, str]] = {
        "TRANSCODER_TOPIC": get_topic(OrjsonTranscoder),
        "MAPPER_TOPIC": get_topic(PydanticMapper),
    }
    snapshot_class = Snapshot

    #: How often a commuting command is retried after a concurrent write.
    max_retries = 5

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # eventsourcing names an application after its class, and PostgreSQL tables after
        # the name: a service's own ``class MyCRM(CRM)`` would otherwise read and write
        # ``mycrm_events`` instead of the store everyone else uses. Keep "CRM" unless the
        # subclass names itself.
        if "name" not in cls.__dict__:
            cls.name = CRM.name
        super().__init_subclass__(**kwargs)

    def __init__(
        self,
        store: str | None = None,
        *,
        settings: CRMSettings | None = None,
        pipeline: Pipeline = DEFAULT_PIPELINE,
        lifecycle: LifecycleModel = DEFAULT_LIFECYCLE,
        sla: SlaPolicy | None = None,
        snapshot_interval: int | None = None,
        source_system: str | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        overrides = {
            "store_url": store,
            "snapshot_interval": snapshot_interval,
            "source_system": source_system,
        }
        if settings is None:
            settings = CRMSettings.load(**overrides)
        else:
            given = {k: v for k, v in overrides.items() if v is not None}
            if given:
                settings = CRMSettings.load(**(settings.model_dump() | given))
        self.settings = settings
        self.store = settings.store
        self.pipeline = pipeline
        self.lifecycle = lifecycle
        self.sla = sla or SlaPolicy(
            calendar=settings.calendar.business_calendar(),
            priority_factor=DEFAULT_SLA.priority_factor,
        )
        self.source_system = settings.source_system
        es_env = self.store.eventsourcing_env()
        if settings.snapshot_interval:
            es_env["IS_SNAPSHOTTING_ENABLED"] = "y"
            self.snapshotting_intervals = {  # type: ignore[misc]
                Customer: settings.snapshot_interval,
                Account: settings.snapshot_interval,
            }
        es_env.update(env or {})
        self._batch: ContextVar[_Batch | None] = ContextVar(f"crm_batch_{id(self)}", default=None)
        super().__init__(es_env)
        limit_event_size(self.mapper, settings.max_event_bytes)

    # ----- context ------------------------------------------------------------------
    @contextmanager
    def context(
        self,
        *,
        actor: str | None = None,
        source_system: str | None = None,
        correlation_id: str | None = None,
        causation_id: str | None = None,
        command_id: str | None = None,
        occurred_at: datetime | None = None,
    ) -> Iterator[CommandContext]:
        """Metadata for the commands inside the block: who, from where, why, and when.

        ``command_id`` makes the (single) command inside idempotent. ``occurred_at`` records
        business time when it differs from now (an offline visit synced later, an import).
        """
        with command_context(
            actor=actor,
            source_system=source_system,
            correlation_id=correlation_id,
            causation_id=causation_id,
            command_id=command_id,
            occurred_at=occurred_at,
        ) as ctx:
            yield ctx

    def _now(self) -> datetime:
        ctx = current_context()
        return ctx.occurred_at or datetime_now_with_tzinfo()

    # ----- the command pipeline -----------------------------------------------------
    def _run(
        self,
        command: str,
        load: Callable[[], A],
        decide: Callable[[A], R],
        *,
        commutes: bool = False,
        conflict_key: tuple[str, Any] | None = None,
        also_save: Callable[[A], Sequence[Aggregate]] = lambda _: (),
    ) -> R:
        """Run one command: idempotency, metadata, rules, one transaction, retries.

        ``commutes``: a concurrent write to the same aggregate is retried on fresh state
        (rules are checked again). ``conflict_key`` narrows that: if a concurrent event
        carries the same field value (e.g. the same ``opportunity_id``), it is a real
        conflict and :class:`ConcurrencyConflictError` is raised instead.
        """
        outer = current_context()
        ctx_kwargs: dict[str, Any] = {}
        if outer.source_system == "crm-core" and self.source_system != "crm-core":
            ctx_kwargs["source_system"] = self.source_system
        with command_context(command_id=outer.command_id, **ctx_kwargs) as ctx:
            batch = self._batch.get()
            if batch is not None:
                return self._run_in_batch(batch, ctx, command, load, decide, also_save)
            if ctx.command_id is not None:
                done = self._processed(ctx.command_id)
                if done is not None:
                    return self._repeat(done, command)  # type: ignore[no-any-return]
            for attempt in range(self.max_retries + 1):
                aggregate = load()
                base_version = aggregate.version
                result = self._decide(decide, aggregate)
                extra = list(also_save(aggregate))
                if ctx.command_id is not None:
                    extra.append(self._record_processed(ctx.command_id, command, result))
                try:
                    self.save(aggregate, *extra)
                except RecordConflictError as exc:
                    if ctx.command_id is not None:
                        done = self._processed(ctx.command_id)
                        if done is not None:
                            return self._repeat(done, command)  # type: ignore[no-any-return]
                    self._check_commutes(
                        aggregate.id, base_version, command, commutes, conflict_key, attempt, exc
                    )
                    continue
                return result
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _decide(decide: Callable[[A], R], aggregate: A) -> R:
        try:
            return decide(aggregate)
        except ValidationError as exc:
            raise invalid(exc) from exc

    def _check_commutes(
        self,
        aggregate_id: UUID,
        base_version: int,
        command: str,
        commutes: bool,
        conflict_key: tuple[str, Any] | None,
        attempt: int,
        exc: Exception,
    ) -> None:
        if not commutes:
            raise ConcurrencyConflictError(
                aggregate_id, f"{command} was based on version {base_version}"
            ) from exc
        if attempt >= self.max_retries:
            raise ConcurrencyConflictError(
                aggregate_id, f"{command} still conflicting after {self.max_retries} retries"
            ) from exc
        if conflict_key is not None:
            name, value = conflict_key
            for ev in self.events.get(aggregate_id, gt=base_version):
                if getattr(ev, name, None) == value:
                    raise ConcurrencyConflictError(
                        aggregate_id,
                        f"{command}: {type(ev).__name__} changed the same {name} concurrently",
                    ) from exc

    def _run_in_batch(
        self,
        batch: _Batch,
        ctx: CommandContext,
        command: str,
        load: Callable[[], A],
        decide: Callable[[A], R],
        also_save: Callable[[A], Sequence[Aggregate]],
    ) -> R:
        if ctx.command_id is not None:
            if ctx.command_id in batch.processed:
                return self._repeat(batch.processed[ctx.command_id], command)  # type: ignore[no-any-return]
            done = self._processed(ctx.command_id)
            if done is not None:
                return self._repeat(done, command)  # type: ignore[no-any-return]
        aggregate = load()
        cached = batch.aggregates.get(aggregate.id)
        if cached is not None:
            aggregate = cached  # type: ignore[assignment]
        result = self._decide(decide, aggregate)
        batch.aggregates[aggregate.id] = aggregate
        for other in also_save(aggregate):
            batch.aggregates[other.id] = other
        if ctx.command_id is not None:
            batch.processed[ctx.command_id] = self._record_processed(
                ctx.command_id, command, result
            )
        return result

    @contextmanager
    def bulk(self) -> Iterator[None]:
        """Run many commands, for many aggregates, and save them in ONE transaction.

        Commands inside the block check their rules as usual and return their ids at
        once; nothing is stored until the block ends, and then everything is, or (on an
        error or a concurrent write) nothing is.
        """
        if self._batch.get() is not None:
            raise InvalidCommandError("bulk blocks do not nest")
        batch = _Batch()
        token = self._batch.set(batch)
        try:
            yield
        finally:
            self._batch.reset(token)
        try:
            self.save(*batch.aggregates.values(), *batch.processed.values())
        except RecordConflictError as exc:
            raise ConcurrencyConflictError(
                next(iter(batch.aggregates), UUID(int=0)),
                "a concurrent write touched an aggregate of this bulk; nothing was saved",
            ) from exc

    def run_bulk(self, commands: Sequence[Callable[[CRM], R]]) -> list[R]:
        """Run the given commands (callables taking this application) in one transaction."""
        with self.bulk():
            return [command(self) for command in commands]

    def _processed(self, command_id: str) -> CommandProcessed | None:
        processed_id = CommandProcessed.id_for(command_id)
        if not self._has_events(processed_id):  # the usual case: a first run
            return None
        try:
            processed: CommandProcessed = self.repository.get(processed_id)
            return processed
        except AggregateNotFoundError:
            return None

    @staticmethod
    def _repeat(done: CommandProcessed, command: str) -> Any:
        """The first result of a repeated command; a command id names ONE command."""
        if done.command != command:
            raise InvalidCommandError(
                f"command id {done.command_id!r} was already used for {done.command}, "
                f"not {command}: give each command its own id"
            )
        return done.restore_result()

    @staticmethod
    def _record_processed(command_id: str, command: str, result: Any) -> CommandProcessed:
        return CommandProcessed(
            command_id=command_id, command=command, result=encode_result(result)
        )

    # ----- loading ------------------------------------------------------------------
    def _load(self, aggregate_id: UUID, cls: type[A]) -> A:
        batch = self._batch.get()
        if batch is not None and aggregate_id in batch.aggregates:
            cached = batch.aggregates[aggregate_id]
            if isinstance(cached, cls):
                return cached
        try:
            aggregate: Aggregate | None = self.repository.get(aggregate_id)
        except AggregateNotFoundError:
            aggregate = None
        if not isinstance(aggregate, cls):
            raise _not_found(cls, aggregate_id)
        return aggregate

    def _customer_command(
        self,
        customer_id: UUID,
        command: str,
        decide: Callable[[Customer], R],
        *,
        commutes: bool = False,
        conflict_key: tuple[str, Any] | None = None,
    ) -> R:
        return self._run(
            command,
            lambda: self._load(customer_id, Customer),
            decide,
            commutes=commutes,
            conflict_key=conflict_key,
        )

    def _account_command(
        self,
        account_id: UUID,
        command: str,
        decide: Callable[[Account], R],
        *,
        commutes: bool = False,
        conflict_key: tuple[str, Any] | None = None,
    ) -> R:
        return self._run(
            command,
            lambda: self._load(account_id, Account),
            decide,
            commutes=commutes,
            conflict_key=conflict_key,
        )

    # ----- reads --------------------------------------------------------------------
    def customer(self, customer_id: UUID) -> Customer:
        """Current state of a customer (treat it as read-only: change it with commands)."""
        return self._load(customer_id, Customer)

    def customer_by_code(self, code: str) -> Customer:
        """The customer a caller names by their customer code."""
        try:
            claim: CustomerCodeClaim = self.repository.get(CustomerCodeClaim.id_for(code))
        except AggregateNotFoundError:
            raise CustomerNotFoundError(code) from None
        return self.customer(claim.customer_id)

    def account(self, account_id: UUID) -> Account:
        return self._load(account_id, Account)

    def history(self, aggregate_id: UUID) -> list[DomainEvent]:
        """Every event of a customer or account, oldest first."""
        events = [e for e in self.events.get(aggregate_id) if isinstance(e, DomainEvent)]
        if not events:
            raise NotFoundError(f"no customer or account {aggregate_id}")
        return events

    def changes(self, aggregate_id: UUID, *, until: datetime | None = None) -> list[Change]:
        """Who changed what and when, as recorded (optionally up to a moment)."""
        out = []
        for ev in self.history(aggregate_id):
            if until is not None and ev.timestamp > until:
                break
            payload = ev.model_dump(
                mode="json",
                exclude={
                    "originator_id",
                    "originator_version",
                    "timestamp",
                    "metadata",
                    "event_id",
                    "occurred_at",
                    "originator_topic",
                },
            )
            out.append(
                Change(
                    version=ev.originator_version,
                    event_type=type(ev).__qualname__,
                    recorded_at=ev.timestamp,
                    occurred_at=ev.occurred_at,
                    actor=ev.metadata.get("actor", ""),
                    source_system=ev.metadata.get("source_system", ""),
                    correlation_id=ev.metadata.get("correlation_id", ""),
                    payload=payload,
                )
            )
        return out

    def customer_as_of(self, customer_id: UUID, when: datetime) -> Customer:
        """What we knew about a customer at ``when`` (by record time), for auditors."""
        return self._as_of(customer_id, when, Customer)

    def account_as_of(self, account_id: UUID, when: datetime) -> Account:
        return self._as_of(account_id, when, Account)

    def _as_of(self, aggregate_id: UUID, when: datetime, cls: type[A]) -> A:
        if when.tzinfo is None:
            raise InvalidCommandError("'when' must be timezone-aware")
        version = None
        for ev in self.events.get(aggregate_id):
            if not isinstance(ev, DomainEvent) or ev.timestamp > when:
                break
            version = ev.originator_version
        if version is None:
            raise _not_found(cls, aggregate_id)
        aggregate: Aggregate = self.repository.get(aggregate_id, version=version)
        if not isinstance(aggregate, cls):
            raise _not_found(cls, aggregate_id)
        return aggregate

    # ===== customer commands ========================================================
    def register_customer(
        self,
        *,
        kind: CustomerKind | str,
        name: str,
        code: str,
        contact: ContactDetails | dict[str, Any] | None = None,
        source_channel: str = "direct",
        parent_id: UUID | None = None,
    ) -> UUID:
        """Register a customer under a unique customer code; returns the customer id."""
        if parent_id is not None:
            self.customer(parent_id)

        def create() -> Customer:
            # Checked here, after the command-id lookup, so that repeating a registration
            # with the same command id returns its first result instead of failing.
            if self._code_taken(code):
                raise DuplicateCustomerCodeError(code)
            details = (
                ContactDetails.model_validate(contact) if isinstance(contact, dict) else contact
            )
            return Customer.register(
                kind=kind,
                name=name,
                code=code,
                contact=details,
                source_channel=source_channel,
                parent_id=parent_id,
                lifecycle=self.lifecycle,
            )

        def claim(customer: Customer) -> list[Aggregate]:
            return [CustomerCodeClaim(code=code, customer_id=customer.id)]

        try:
            return self._run(
                "register_customer",
                lambda: self._create(create),
                lambda c: c.id,
                also_save=claim,
            )
        except ConcurrencyConflictError:
            raise DuplicateCustomerCodeError(code) from None

    def _code_taken(self, code: str) -> bool:
        batch = self._batch.get()
        claim_id = CustomerCodeClaim.id_for(code)
        if batch is not None and claim_id in batch.aggregates:
            return True
        return self._has_events(claim_id)

    def _has_events(self, aggregate_id: UUID) -> bool:
        """Whether anything is stored for the id: one query for at most one event.

        Cheaper than ``repository.get`` for an existence check (which also queries the
        snapshots and rebuilds the aggregate); claims and command records are never
        snapshotted, so their events are all there is.
        """
        return next(iter(self.events.get(aggregate_id, limit=1)), None) is not None

    @staticmethod
    def _create(factory: Callable[[], A]) -> A:
        try:
            return factory()
        except ValidationError as exc:
            raise invalid(exc) from exc

    def correct_customer_profile(
        self,
        customer_id: UUID,
        *,
        reason: str,
        name: str | None = None,
        kind: CustomerKind | str | None = None,
        contact: ContactDetails | None = None,
    ) -> None:
        self._customer_command(
            customer_id,
            "correct_customer_profile",
            lambda c: c.correct_profile(reason=reason, name=name, kind=kind, contact=contact),
        )

    def set_parent_organisation(self, customer_id: UUID, parent_id: UUID | None) -> None:
        """Place a customer under a group customer (or remove it with ``None``)."""
        if parent_id is not None:
            self.customer(parent_id)
        self._customer_command(
            customer_id, "set_parent_organisation", lambda c: c.set_parent_organisation(parent_id)
        )

    def deactivate_customer(self, customer_id: UUID, *, reason: str) -> None:
        """Deactivate (never delete): the history stays for audit."""
        self._customer_command(
            customer_id, "deactivate_customer", lambda c: c.deactivate(reason=reason)
        )

    def reactivate_customer(self, customer_id: UUID, *, reason: str) -> None:
        self._customer_command(
            customer_id, "reactivate_customer", lambda c: c.reactivate(reason=reason)
        )

    def change_lifecycle_stage(self, customer_id: UUID, *, to_stage: str, reason: str) -> None:
        self._customer_command(
            customer_id,
            "change_lifecycle_stage",
            lambda c: c.change_lifecycle_stage(
                to_stage=to_stage, reason=reason, lifecycle=self.lifecycle
            ),
        )

    def log_contact(
        self,
        customer_id: UUID,
        *,
        channel: Channel | str,
        direction: Direction | str,
        summary: str,
        participants: list[str] | None = None,
        commitments: list[Commitment] | list[dict[str, Any]] | None = None,
        next_step: str | None = None,
        next_step_due: datetime | None = None,
        marketing_purpose: str | None = None,
        account_id: UUID | None = None,
        logged_by: str | None = None,
    ) -> UUID:
        """Record an interaction (commutes with other changes: retried on collision)."""
        by = logged_by or current_context().actor
        try:
            promised = [
                Commitment.model_validate(c) if isinstance(c, dict) else c
                for c in commitments or []
            ]
        except ValidationError as exc:
            raise invalid(exc) from exc
        return self._customer_command(
            customer_id,
            "log_contact",
            lambda c: c.log_contact(
                channel=channel,
                direction=direction,
                summary=summary,
                logged_by=by,
                participants=participants,
                commitments=promised,
                next_step=next_step,
                next_step_due=next_step_due,
                marketing_purpose=marketing_purpose,
                account_id=account_id,
            ),
            commutes=True,
        )

    def fulfil_commitment(
        self, customer_id: UUID, *, contact_id: UUID, index: int = 0, note: str = ""
    ) -> None:
        """Mark commitment ``index`` of logged contact ``contact_id`` as kept."""
        self._customer_command(
            customer_id,
            "fulfil_commitment",
            lambda c: c.fulfil_commitment(contact_id=contact_id, index=index, note=note),
            commutes=True,
            conflict_key=("contact_id", contact_id),
        )

    def assign_customer_manager(self, customer_id: UUID, *, manager: str, reason: str) -> None:
        """Assign or hand over the customer manager (e.g. the rep left)."""
        self._customer_command(
            customer_id,
            "assign_customer_manager",
            lambda c: c.assign_manager(manager=manager, reason=reason),
        )

    def assign_support_owner(self, customer_id: UUID, *, owner: str, reason: str) -> None:
        self._customer_command(
            customer_id,
            "assign_support_owner",
            lambda c: c.assign_support_owner(owner=owner, reason=reason),
        )

    def assign_segment(self, customer_id: UUID, *, segment: str) -> None:
        self._customer_command(
            customer_id, "assign_segment", lambda c: c.assign_segment(segment=segment)
        )

    def assign_grade(self, customer_id: UUID, *, grade: str) -> None:
        self._customer_command(customer_id, "assign_grade", lambda c: c.assign_grade(grade=grade))

    def grant_consent(self, customer_id: UUID, *, purpose: str, channel: Channel | str) -> None:
        self._customer_command(
            customer_id,
            "grant_consent",
            lambda c: c.grant_consent(purpose=purpose, channel=channel),
            commutes=True,
        )

    def withdraw_consent(
        self, customer_id: UUID, *, purpose: str, channel: Channel | str, reason: str = ""
    ) -> None:
        self._customer_command(
            customer_id,
            "withdraw_consent",
            lambda c: c.withdraw_consent(purpose=purpose, channel=channel, reason=reason),
            commutes=True,
        )

    def record_campaign_response(
        self,
        customer_id: UUID,
        *,
        campaign_id: str,
        response: str,
        channel: Channel | str,
        registered: bool = False,
    ) -> None:
        self._customer_command(
            customer_id,
            "record_campaign_response",
            lambda c: c.record_campaign_response(
                campaign_id=campaign_id, response=response, channel=channel, registered=registered
            ),
            commutes=True,
        )

    def record_satisfaction(
        self, customer_id: UUID, *, score: int, ticket_id: UUID | None = None, comment: str = ""
    ) -> SatisfactionClass:
        """Record a 1-5 score; returns the derived class (5 loyal, 3-4 at risk)."""
        return self._customer_command(
            customer_id,
            "record_satisfaction",
            lambda c: c.record_satisfaction(score=score, ticket_id=ticket_id, comment=comment),
            commutes=True,
        )

    def open_ticket(
        self,
        customer_id: UUID,
        *,
        kind: TicketKind | str,
        subject: str,
        channel: Channel | str,
        priority: Priority | str = Priority.NORMAL,
        description: str = "",
    ) -> UUID:
        """Open a service ticket; its due time comes from the SLA policy and calendar."""
        try:
            due_at = self.sla.due(TicketKind(kind), Priority(priority), self._now())
        except ValueError as exc:
            raise InvalidCommandError(str(exc)) from exc
        return self._customer_command(
            customer_id,
            "open_ticket",
            lambda c: c.open_ticket(
                kind=kind,
                priority=priority,
                channel=channel,
                subject=subject,
                description=description,
                due_at=due_at,
            ),
            commutes=True,
        )

    def assign_ticket(
        self,
        customer_id: UUID,
        ticket_id: UUID,
        *,
        assignee: str | None = None,
        department: str | None = None,
    ) -> None:
        self._customer_command(
            customer_id,
            "assign_ticket",
            lambda c: c.assign_ticket(ticket_id, assignee=assignee, department=department),
            commutes=True,
            conflict_key=("ticket_id", ticket_id),
        )

    def respond_to_ticket(
        self, customer_id: UUID, ticket_id: UUID, *, message: str, responder: str | None = None
    ) -> None:
        by = responder or current_context().actor
        self._customer_command(
            customer_id,
            "respond_to_ticket",
            lambda c: c.respond_to_ticket(ticket_id, responder=by, message=message),
            commutes=True,
            conflict_key=("ticket_id", ticket_id),
        )

    def schedule_field_visit(
        self, customer_id: UUID, ticket_id: UUID, *, visit_at: datetime, engineer: str
    ) -> None:
        self._customer_command(
            customer_id,
            "schedule_field_visit",
            lambda c: c.schedule_field_visit(ticket_id, visit_at=visit_at, engineer=engineer),
            commutes=True,
            conflict_key=("ticket_id", ticket_id),
        )

    def escalate_ticket(
        self, customer_id: UUID, ticket_id: UUID, *, reason: str, escalated_to: str | None = None
    ) -> int:
        """Escalate one level; returns the new escalation level."""
        return self._customer_command(
            customer_id,
            "escalate_ticket",
            lambda c: c.escalate_ticket(ticket_id, reason=reason, escalated_to=escalated_to),
            commutes=True,
            conflict_key=("ticket_id", ticket_id),
        )

    def resolve_ticket(
        self,
        customer_id: UUID,
        ticket_id: UUID,
        *,
        answer: str,
        knowledge_base_ref: str | None = None,
    ) -> None:
        self._customer_command(
            customer_id,
            "resolve_ticket",
            lambda c: c.resolve_ticket(
                ticket_id, answer=answer, knowledge_base_ref=knowledge_base_ref
            ),
            commutes=True,
            conflict_key=("ticket_id", ticket_id),
        )

    def reopen_ticket(self, customer_id: UUID, ticket_id: UUID, *, reason: str) -> None:
        """Reopen a resolved ticket; the SLA clock starts again. Closed tickets stay closed."""

        def decide(c: Customer) -> None:
            t = c.ticket(ticket_id)
            due_at = self.sla.due(t.kind, t.priority, self._now())
            c.reopen_ticket(ticket_id, reason=reason, due_at=due_at)

        self._customer_command(
            customer_id,
            "reopen_ticket",
            decide,
            commutes=True,
            conflict_key=("ticket_id", ticket_id),
        )

    def close_ticket(self, customer_id: UUID, ticket_id: UUID) -> None:
        self._customer_command(
            customer_id,
            "close_ticket",
            lambda c: c.close_ticket(ticket_id),
            commutes=True,
            conflict_key=("ticket_id", ticket_id),
        )

    def record_sla_breaches(self, customer_id: UUID, *, now: datetime | None = None) -> list[UUID]:
        """Record a breach for each open ticket of the customer past its due time."""
        at = now or self._now()

        def decide(c: Customer) -> list[UUID]:
            return [t.ticket_id for t in c.open_tickets if c.record_sla_breach(t.ticket_id, now=at)]

        found: list[UUID] = self._customer_command(
            customer_id, "record_sla_breaches", decide, commutes=True
        )
        return found

    # ===== account commands =========================================================
    def open_account(
        self,
        *,
        customer_id: UUID,
        name: str,
        industry: str = "unspecified",
        size: CompanySize | str = CompanySize.SMALL,
        tier: AccountTier | str = AccountTier.STANDARD,
    ) -> UUID:
        """Open the commercial account of an active customer; returns the account id."""

        def create() -> Account:
            # After the command-id lookup: a repeat returns the first result.
            if not self.customer(customer_id).active:
                raise InactiveCustomerError(f"customer {customer_id} is deactivated")
            return Account.open(
                customer_id=customer_id, name=name, industry=industry, size=size, tier=tier
            )

        return self._run("open_account", lambda: self._create(create), lambda a: a.id)

    def reclassify_account(
        self,
        account_id: UUID,
        *,
        industry: str | None = None,
        size: CompanySize | str | None = None,
        tier: AccountTier | str | None = None,
    ) -> None:
        self._account_command(
            account_id,
            "reclassify_account",
            lambda a: a.reclassify(industry=industry, size=size, tier=tier),
        )

    def close_account(self, account_id: UUID, *, reason: str) -> None:
        self._account_command(account_id, "close_account", lambda a: a.close(reason=reason))

    def designate_key_account(
        self, account_id: UUID, *, criterion: KeyAccountCriterion | str, note: str = ""
    ) -> None:
        self._account_command(
            account_id,
            "designate_key_account",
            lambda a: a.designate_key_account(criterion=criterion, note=note),
        )

    def revoke_key_account(self, account_id: UUID, *, reason: str) -> None:
        self._account_command(
            account_id, "revoke_key_account", lambda a: a.revoke_key_account(reason=reason)
        )

    def add_account_contact(
        self, account_id: UUID, *, customer_id: UUID, role: str, decision_maker: bool = False
    ) -> None:
        """Add a person (a registered customer) to the account's contacts, with a role."""
        self.customer(customer_id)
        self._account_command(
            account_id,
            "add_account_contact",
            lambda a: a.add_contact(
                customer_id=customer_id, role=role, decision_maker=decision_maker
            ),
            commutes=True,
            conflict_key=("customer_id", customer_id),
        )

    def remove_account_contact(self, account_id: UUID, *, customer_id: UUID, reason: str) -> None:
        self._account_command(
            account_id,
            "remove_account_contact",
            lambda a: a.remove_contact(customer_id=customer_id, reason=reason),
            commutes=True,
            conflict_key=("customer_id", customer_id),
        )

    def assign_account_manager(self, account_id: UUID, *, manager: str, reason: str) -> None:
        self._account_command(
            account_id,
            "assign_account_manager",
            lambda a: a.assign_manager(manager=manager, reason=reason),
        )

    def set_credit_limit(self, account_id: UUID, *, limit: Money) -> None:
        self._account_command(
            account_id, "set_credit_limit", lambda a: a.set_credit_limit(limit=limit)
        )

    def open_opportunity(
        self,
        account_id: UUID,
        *,
        name: str,
        expected_close: date,
        owner: str,
        amount: Money | None = None,
    ) -> UUID:
        return self._account_command(
            account_id,
            "open_opportunity",
            lambda a: a.open_opportunity(
                name=name,
                expected_close=expected_close,
                owner=owner,
                amount=amount,
                pipeline=self.pipeline,
            ),
            commutes=True,
        )

    def stage_opportunity(self, account_id: UUID, opportunity_id: UUID, *, stage: str) -> None:
        """Move an opportunity to a pipeline stage (staging two different ones commutes)."""
        self._account_command(
            account_id,
            "stage_opportunity",
            lambda a: a.stage_opportunity(opportunity_id, stage=stage, pipeline=self.pipeline),
            commutes=True,
            conflict_key=("opportunity_id", opportunity_id),
        )

    def revise_opportunity(
        self,
        account_id: UUID,
        opportunity_id: UUID,
        *,
        amount: Money | None = None,
        expected_close: date | None = None,
        reason: str = "",
    ) -> None:
        self._account_command(
            account_id,
            "revise_opportunity",
            lambda a: a.revise_opportunity(
                opportunity_id, amount=amount, expected_close=expected_close, reason=reason
            ),
            commutes=True,
            conflict_key=("opportunity_id", opportunity_id),
        )

    def reassign_opportunity(
        self, account_id: UUID, opportunity_id: UUID, *, owner: str, reason: str
    ) -> None:
        """Give an open opportunity a new owner (a rep left, territories changed)."""
        self._account_command(
            account_id,
            "reassign_opportunity",
            lambda a: a.reassign_opportunity(opportunity_id, owner=owner, reason=reason),
            commutes=True,
            conflict_key=("opportunity_id", opportunity_id),
        )

    def win_opportunity(
        self, account_id: UUID, opportunity_id: UUID, *, reason: str, competitor: str | None = None
    ) -> None:
        self._account_command(
            account_id,
            "win_opportunity",
            lambda a: a.win_opportunity(
                opportunity_id, reason=reason, competitor=competitor, pipeline=self.pipeline
            ),
            commutes=True,
            conflict_key=("opportunity_id", opportunity_id),
        )

    def lose_opportunity(
        self, account_id: UUID, opportunity_id: UUID, *, reason: str, competitor: str | None = None
    ) -> None:
        self._account_command(
            account_id,
            "lose_opportunity",
            lambda a: a.lose_opportunity(
                opportunity_id, reason=reason, competitor=competitor, pipeline=self.pipeline
            ),
            commutes=True,
            conflict_key=("opportunity_id", opportunity_id),
        )

    def issue_quote(
        self,
        account_id: UUID,
        opportunity_id: UUID,
        *,
        amount: Money,
        valid_until: date,
        discount_pct: Decimal | int | str = Decimal(0),
    ) -> UUID:
        """Issue a quote; an opportunity has at most one active quote."""
        return self._account_command(
            account_id,
            "issue_quote",
            lambda a: a.issue_quote(
                opportunity_id, amount=amount, valid_until=valid_until, discount_pct=discount_pct
            ),
            commutes=True,
            conflict_key=("opportunity_id", opportunity_id),
        )

    def revise_quote(
        self,
        account_id: UUID,
        quote_id: UUID,
        *,
        amount: Money,
        valid_until: date,
        discount_pct: Decimal | int | str = Decimal(0),
    ) -> UUID:
        """Issue a new version of a quote; returns the new quote's id."""
        return self._account_command(
            account_id,
            "revise_quote",
            lambda a: a.revise_quote(
                quote_id, amount=amount, valid_until=valid_until, discount_pct=discount_pct
            ),
        )

    def accept_quote(self, account_id: UUID, quote_id: UUID) -> None:
        self._account_command(account_id, "accept_quote", lambda a: a.accept_quote(quote_id))

    def expire_quote(self, account_id: UUID, quote_id: UUID) -> None:
        self._account_command(account_id, "expire_quote", lambda a: a.expire_quote(quote_id))

    def place_order(
        self,
        account_id: UUID,
        *,
        lines: list[OrderLine] | list[dict[str, Any]],
        opportunity_id: UUID | None = None,
        quote_id: UUID | None = None,
    ) -> UUID:
        """Place an order; it is promised only after ERP confirms it."""
        try:
            order_lines = [OrderLine.model_validate(x) if isinstance(x, dict) else x for x in lines]
        except ValidationError as exc:
            raise invalid(exc) from exc
        return self._account_command(
            account_id,
            "place_order",
            lambda a: a.place_order(
                lines=order_lines, opportunity_id=opportunity_id, quote_id=quote_id
            ),
            commutes=True,
        )

    def request_order_confirmation(self, account_id: UUID, order_id: UUID) -> None:
        """Ask ERP to confirm (credit, margin, availability); the Kafka relay carries it."""
        self._account_command(
            account_id,
            "request_order_confirmation",
            lambda a: a.request_order_confirmation(order_id),
            commutes=True,
            conflict_key=("order_id", order_id),
        )

    def confirm_order(self, account_id: UUID, order_id: UUID, *, erp_reference: str = "") -> None:
        self._account_command(
            account_id,
            "confirm_order",
            lambda a: a.confirm_order(order_id, erp_reference=erp_reference),
            commutes=True,
            conflict_key=("order_id", order_id),
        )

    def reject_order(
        self,
        account_id: UUID,
        order_id: UUID,
        *,
        reason: OrderRejectionReason | str,
        detail: str = "",
    ) -> None:
        self._account_command(
            account_id,
            "reject_order",
            lambda a: a.reject_order(order_id, reason=reason, detail=detail),
            commutes=True,
            conflict_key=("order_id", order_id),
        )

    def ship_order(self, account_id: UUID, order_id: UUID, *, shipment_ref: str = "") -> None:
        self._account_command(
            account_id,
            "ship_order",
            lambda a: a.ship_order(order_id, shipment_ref=shipment_ref),
            commutes=True,
            conflict_key=("order_id", order_id),
        )

    def deliver_order(self, account_id: UUID, order_id: UUID) -> None:
        self._account_command(
            account_id,
            "deliver_order",
            lambda a: a.deliver_order(order_id),
            commutes=True,
            conflict_key=("order_id", order_id),
        )

    def return_order(self, account_id: UUID, order_id: UUID, *, reason: str) -> None:
        self._account_command(
            account_id,
            "return_order",
            lambda a: a.return_order(order_id, reason=reason),
            commutes=True,
            conflict_key=("order_id", order_id),
        )

    def issue_invoice(
        self,
        account_id: UUID,
        *,
        amount: Money,
        order_id: UUID | None = None,
        due_date: date | None = None,
        reference: str = "",
        invoice_id: UUID | None = None,
    ) -> UUID:
        return self._account_command(
            account_id,
            "issue_invoice",
            lambda a: a.issue_invoice(
                amount=amount,
                order_id=order_id,
                due_date=due_date,
                reference=reference,
                invoice_id=invoice_id,
            ),
            commutes=True,
        )

    def receive_payment(
        self,
        account_id: UUID,
        *,
        amount: Money,
        invoice_id: UUID | None = None,
        reference: str = "",
    ) -> UUID:
        return self._account_command(
            account_id,
            "receive_payment",
            lambda a: a.receive_payment(amount=amount, invoice_id=invoice_id, reference=reference),
            commutes=True,
        )
