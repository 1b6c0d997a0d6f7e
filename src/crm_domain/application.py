"""The ``CRM``: customers, accounts, pipeline, service and orders, as one object.

Every change is a command (:mod:`crm_domain.commands`) handled by :meth:`CRM.handle`:
its aggregate is loaded, its handler decides (rules raise typed errors and store
nothing), and the new events are saved in one transaction, with the metadata of the
command context, idempotency (``command_id``) and retries for commands that commute.
The typed methods (``crm.log_contact(...)``, :mod:`crm_domain.methods`) build the command
for you. The event store itself is ``crm.app`` (:mod:`crm_domain.infrastructure.eventstore`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from typing import Any, ClassVar, TypeVar
from uuid import UUID

from crm_domain.access import AccessControl, AccessPolicy, DenialLog, load_policy
from crm_domain.account import Account
from crm_domain.bookkeeping import CustomerCodeClaim
from crm_domain.commands.base import Command
from crm_domain.context import CommandContext, command_context
from crm_domain.customer import Customer
from crm_domain.errors import CustomerNotFoundError, InvalidCommandError, NotFoundError
from crm_domain.eventmodel import ENVELOPE_FIELDS, Aggregate, DomainEvent
from crm_domain.handling import CommandHandling, not_found
from crm_domain.infrastructure.eventstore import CRMEventStore
from crm_domain.infrastructure.keystore import KeyStore
from crm_domain.infrastructure.persistence import limit_event_size
from crm_domain.lifecycle import DEFAULT_LIFECYCLE, LifecycleModel
from crm_domain.methods import AccountMethods, CustomerMethods
from crm_domain.pipeline import DEFAULT_PIPELINE, Pipeline
from crm_domain.processes import ProcessMethods
from crm_domain.quoting import office_date
from crm_domain.settings import CRMSettings
from crm_domain.sla import DEFAULT_SLA, BusinessCalendar, SlaClock, SlaPolicy
from crm_domain.timetravel import AuditEntry, audit_history, state_at
from crm_domain.values import QuoteStatus, business_time

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


@dataclass(frozen=True)
class SlaBreach:
    """One breach a scan recorded: which ticket of which customer, which clock, due when."""

    customer_id: UUID
    ticket_id: UUID
    clock: SlaClock
    due_at: datetime


class CRM(CustomerMethods, AccountMethods, ProcessMethods, CommandHandling):
    """Customers, accounts, pipeline, service and orders, as an event-sourced CRM.

    ``store`` is a URL (``memory://``, ``sqlite:///crm.sqlite``, ``postgresql://...``);
    by default ``$CRM_STORE_URL``, else ``sqlite:///crm.sqlite`` in the working directory.
    Change it with commands: ``crm.handle(command)`` or the typed methods; read it with
    ``customer``, ``account``, ``history`` and ``changes``.
    """

    #: The store's name: PostgreSQL tables are ``crm_events`` etc. A subclass keeps it.
    name: ClassVar[str] = "CRM"

    def __init__(
        self,
        store: str | None = None,
        *,
        settings: CRMSettings | None = None,
        pipeline: Pipeline | None = None,
        lifecycle: LifecycleModel | None = None,
        sla: SlaPolicy | None = None,
        calendar: BusinessCalendar | None = None,
        snapshot_interval: int | None = None,
        source_system: str | None = None,
        env: dict[str, str] | None = None,
        policy: AccessPolicy | None = None,
        key_store: KeyStore | None = None,
    ) -> None:
        """Open the CRM on ``store`` (see the class docstring); the other settings come
        from ``settings`` (default: :meth:`CRMSettings.load`), overridden by the keyword
        arguments given. ``pipeline``, ``lifecycle`` and ``sla`` default to the built-in
        models; the office ``calendar`` the service levels run on defaults to ``sla``'s
        when a policy is given, else to the settings' (``CRMSettings.calendar``); ``env``
        adds eventsourcing settings for the event store. ``policy`` is the access policy
        (default: the file of the setting ``access.policy_file``, else one that allows
        everything; see :mod:`crm_domain.access`). ``key_store`` holds the customers' keys
        (default: a table beside the events, or ``KEY_STORE_TOPIC``; see
        :mod:`crm_domain.infrastructure.keystore`)."""
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
        #: The settings in force (store, snapshots, calendar, Kafka...).
        self.settings = settings
        #: The event store's URL, parsed.
        self.store = settings.store
        self.pipeline = pipeline or DEFAULT_PIPELINE
        self.lifecycle = lifecycle or DEFAULT_LIFECYCLE
        if sla is None:
            sla = SlaPolicy(
                calendar=calendar or settings.calendar.business_calendar(),
                priority_factor=DEFAULT_SLA.priority_factor,
            )
        elif calendar is not None:
            sla = replace(sla, calendar=calendar)
        #: The service-level policy: targets per kind and priority on the office calendar.
        self.sla = sla
        self.source_system = settings.source_system
        es_env = self.store.eventsourcing_env()
        if settings.snapshot_interval:
            es_env["IS_SNAPSHOTTING_ENABLED"] = "y"
        es_env.update(env or {})
        self._init_handling()
        #: Who may run what (``access.policy``), and the log of denials (``access.log``).
        self.access = AccessControl(
            load_policy(settings.access.policy_file, policy), DenialLog(self.store)
        )
        #: The event store (eventsourcing's ``Application``): its ``recorder``, ``mapper``
        #: and ``events`` are what projections and the Kafka relay read.
        self.app = CRMEventStore(
            es_env,
            name=type(self).name,
            snapshot_interval=settings.snapshot_interval,
            store=self.store,
            key_store=key_store,
            key_cache_seconds=settings.erasure.cache_seconds,
            encrypt_personal_data=settings.erasure.encrypt,
        )
        limit_event_size(self.app.mapper, settings.max_event_bytes)

    def close(self) -> None:
        """Close the store's connections."""
        self.access.log.close()
        self.app.close()

    def _forget_subject(self, customer_id: UUID) -> None:
        """Destroy a customer's key (``forget_customer`` records the erasure first)."""
        if self.app.sealer is not None:
            self.app.sealer.forget(customer_id)

    # ----- commands -----------------------------------------------------------------
    def handle(self, command: Command[R]) -> R:
        """Run one command and return its result: the one entry point for every change.

        The command's rules are checked on its aggregate, and its events are stored in
        one transaction with the context's metadata (:meth:`context`). A ``command_id``
        (in the context or the command) makes it idempotent. Steps in ``middleware`` run
        around it (an access policy, an audit log).
        """
        result: R = self._dispatch(command)
        return result

    def handle_all(self, commands: Sequence[Command[Any]]) -> list[Any]:
        """Run the commands in ONE transaction: all are stored, or (on any error) none."""
        with self.bulk():
            return [self.handle(command) for command in commands]

    @contextmanager
    def bulk(self) -> Iterator[None]:
        """Run many commands, for many aggregates, and save them in ONE transaction.

        Commands inside the block check their rules as usual and return their ids at
        once; nothing is stored until the block ends, and then everything is, or (on an
        error or a concurrent write) nothing is.
        """
        with self._bulk():
            yield

    def run_bulk(self, commands: Sequence[Command[Any] | Callable[[CRM], R]]) -> list[Any]:
        """Like :meth:`handle_all`; items may also be callables taking this CRM."""
        with self.bulk():
            return [
                self.handle(item) if isinstance(item, Command) else item(self) for item in commands
            ]

    def context(
        self,
        *,
        actor: str | None = None,
        source_system: str | None = None,
        correlation_id: str | None = None,
        causation_id: str | None = None,
        command_id: str | None = None,
        occurred_at: datetime | None = None,
        roles: Iterable[str] | None = None,
    ) -> AbstractContextManager[CommandContext]:
        """Metadata for the commands inside the block: who, from where, why, and when.

        ``command_id`` makes the (single) command inside idempotent. ``occurred_at`` records
        business time when it differs from now (an offline visit synced later, an import).
        ``roles`` are the actor's roles, which the access policy (``crm.access``) reads.
        """
        return command_context(  # itself: one generator per block, not two
            actor=actor,
            source_system=source_system,
            correlation_id=correlation_id,
            causation_id=causation_id,
            command_id=command_id,
            occurred_at=occurred_at,
            roles=roles,
        )

    def authorize(self, action: str, *, customer_id: UUID | None = None) -> None:
        """Check that the context's actor may perform ``action``, one of
        :data:`crm_domain.access.ACTIONS` (``"audit.export"``, ``"audit.replay"``), on
        ``customer_id``: else :class:`~crm_domain.errors.PermissionDeniedError`, and the
        denial is written to the access audit log. Code performing such an action calls
        this first; commands are checked by :meth:`handle` itself."""

        def load() -> Customer | None:
            return self.customer(customer_id) if customer_id is not None else None

        self.access.check_action(action, target=customer_id, load=load)

    # ----- service levels -------------------------------------------------------------
    def scan_sla_breaches(
        self,
        *,
        as_of: datetime | None = None,
        customer_ids: Sequence[UUID] | None = None,
        batch: int = 1000,
    ) -> list[SlaBreach]:
        """Record the breaches of still-open tickets as of ``as_of`` (default: now) and return
        them: a first response or a running resolution past its due time. Idempotent: each
        clock of a ticket is breached once, so a scheduler may run it every minute (``crm sla
        scan``); a second run records nothing new. Late responses and resolutions record
        their own breach when they happen; this is for the tickets nobody touched.

        Candidates are the customers with a ticket opened or reopened, read from the event
        store (or only ``customer_ids``); each one with a breach due gets one
        ``record_sla_breaches`` command, in the caller's context (actor, source system).
        """
        at = business_time(as_of or datetime.now(UTC), "as_of")
        if customer_ids is None:
            customer_ids = self.app.originators_of(
                Customer.TicketOpened, Customer.TicketReopened, page=batch
            )
        found: list[SlaBreach] = []
        for customer_id in customer_ids:
            customer = self.customer(customer_id)
            due = customer.sla_breaches_due(at)
            if not due:
                continue
            self.record_sla_breaches(customer_id, now=at)
            for ticket_id, clock in due:
                ticket = customer.ticket(ticket_id)
                due_at = ticket.response_due_at if clock is SlaClock.RESPONSE else ticket.due_at
                assert due_at is not None
                found.append(SlaBreach(customer_id, ticket_id, clock, due_at))
        return found

    def expire_quotes(self, *, as_of: date | None = None) -> list[UUID]:
        """Record the expiry of every active quote past its validity on ``as_of`` (default: the
        office's today), account by account; returns the quotes' ids. Idempotent: meant for a
        scheduler (``crm quotes expire``), a second run finds nothing to do."""
        expired: list[UUID] = []
        for account_id in self.app.originators_of(Account.QuoteIssued):
            account = self.account(account_id)
            day = as_of or office_date(self._now(), self.sla.calendar.timezone)
            if any(
                q.status is QuoteStatus.ACTIVE and q.lapsed(day) for q in account.quotes.values()
            ):
                expired += self.expire_lapsed_quotes(account_id, as_of=day)
        return expired

    # ----- reads --------------------------------------------------------------------
    def customer(self, customer_id: UUID) -> Customer:
        """Current state of a customer (treat it as read-only: change it with commands)."""
        return self._load(customer_id, Customer)

    def customer_by_code(self, code: str) -> Customer:
        """The customer a caller names by their customer code."""
        claim = self._get(CustomerCodeClaim.id_for(code))
        if not isinstance(claim, CustomerCodeClaim):
            raise CustomerNotFoundError(code)
        return self.customer(claim.customer_id)

    def account(self, account_id: UUID) -> Account:
        """Current state of an account (treat it as read-only: change it with commands)."""
        return self._load(account_id, Account)

    def history(self, aggregate_id: UUID) -> list[DomainEvent]:
        """Every event of a customer or account, oldest first."""
        events = [e for e in self._stored_events(aggregate_id) if isinstance(e, DomainEvent)]
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
                exclude=set(ENVELOPE_FIELDS),
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

    def audit_history(self, ref: UUID | str) -> list[AuditEntry]:
        """Every event of a customer or account (by id, or a customer by code), oldest
        first: business and record time, actor, source system, correlation and command
        id, payload, and the field-level changes it made (``crm audit history``)."""
        return audit_history(self, ref)

    def state_at(
        self, ref: UUID | str, *, when: datetime | None = None, version: int | None = None
    ) -> Customer | Account:
        """A customer or account (by id, or a customer by code) as it stood at ``when``
        (record time) or at ``version`` (``crm audit show``)."""
        found = state_at(self, ref, when=when, version=version)
        assert isinstance(found, Customer | Account)
        return found

    def customer_as_of(self, customer_id: UUID, when: datetime) -> Customer:
        """What we knew about a customer at ``when`` (by record time), for auditors."""
        return self._as_of(customer_id, when, Customer)

    def account_as_of(self, account_id: UUID, when: datetime) -> Account:
        """What we knew about an account at ``when`` (by record time), for auditors."""
        return self._as_of(account_id, when, Account)

    def _as_of(self, aggregate_id: UUID, when: datetime, cls: type[A]) -> A:
        if when.tzinfo is None:
            raise InvalidCommandError("'when' must be timezone-aware")
        version = None
        for ev in self._stored_events(aggregate_id):
            if not isinstance(ev, DomainEvent) or ev.timestamp > when:
                break
            version = ev.originator_version
        if version is None:
            raise not_found(cls, aggregate_id)
        aggregate = self._get(aggregate_id, version=version)
        if not isinstance(aggregate, cls):
            raise not_found(cls, aggregate_id)
        return aggregate
