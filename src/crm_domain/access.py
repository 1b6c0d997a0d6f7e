"""Least privilege: which roles may run which commands on which customers.

An actor carries roles (``with crm.context(actor="li.wei", roles=["sales"]): ...``). An
:class:`AccessPolicy` (in code, or a TOML file named by the setting
``access.policy_file``) grants commands to roles; :meth:`CRM.handle` checks it before
anything else, so every path (the typed methods, ``handle_all``, bulk blocks, the
command line, the Kafka consumer) meets the same policy. A denied command raises
:class:`~crm_domain.errors.PermissionDeniedError`, stores nothing in the event log, and
is written to the access audit log (:class:`DenialLog`, ``crm audit denials``).

How a policy decides, for a command (or action) named ``N``:

1. If no grant names ``N`` (nor ``"*"``), the policy's ``default`` decides (``"allow"``,
   the default, so embedding stays simple; or ``"deny"``).
2. Otherwise ``N`` is allowed only if one of the grants naming it matches: the actor holds
   one of its ``roles`` (if it lists any), the command comes from one of its ``sources``
   (source systems, if it lists any), and its condition holds.

Conditions (``customers``): ``"any"``, or ``"managed"``: the actor is the assigned manager
of the customer or account the command changes. The policy sees that aggregate as the
command will see it: loaded through the CRM (from the open bulk block, if the command is
in one), only when a grant with that condition is the one left to decide, and the command
then decides on that same object (one load, no window between check and decision; a
retry after a concurrent write reloads, and keeps the policy's verdict). A command
creating an account is judged on the customer it names. In code, a grant may also carry
``when``, any callable of the :class:`AccessRequest`.

Commands are named by their CRM name (``"stage_opportunity"``) or class name
(``"StageOpportunity"``). Actions that are not commands are named in :data:`ACTIONS`
(``"audit.export"``, ``"audit.replay"``) and checked with :meth:`CRM.authorize`.
Names a policy does not know are a :class:`~crm_domain.errors.ConfigurationError` when it
is loaded, so a typo cannot silently leave a command ungoverned.

Roles and source systems are what the caller's context says: authenticating the actor is
the embedding application's job (its login, its Kafka ACLs); this module decides what an
authenticated actor may do.
"""

from __future__ import annotations

import threading
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from crm_domain.context import CommandContext, current_context
from crm_domain.errors import ConfigurationError, PermissionDeniedError, problems

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from crm_domain.commands.base import Command
    from crm_domain.eventmodel import Aggregate
    from crm_domain.infrastructure.storage import StoreURL

#: Actions that are not commands, checked with ``crm.authorize(action, ...)`` by the code
#: that performs them: name -> what it is.
ACTIONS: dict[str, str] = {
    "audit.export": "export the event history for auditors (crm audit export)",
    "audit.replay": "rebuild the read models as of a past time (crm audit replay)",
}

#: A grant naming this matches every command and action.
EVERYTHING = "*"


def register_action(name: str, description: str) -> None:
    """Declare another action name a policy may grant (for extensions of the CRM)."""
    if "." not in name:
        raise ConfigurationError(f"action names have a dot (area.verb), not {name!r}")
    ACTIONS[name] = description


@dataclass
class AccessRequest:
    """What a policy sees: who asks, with which roles, from where, to do what, to whom.

    ``aggregate()`` loads the customer or account the command changes (None for an
    action without one), the first time it is asked for.
    """

    actor: str
    roles: tuple[str, ...]
    source_system: str
    #: The command's CRM name, or an action's name.
    name: str
    #: The customer or account id the command changes (or an action names), if any.
    target: UUID | None = None
    command: Command[Any] | None = None
    loader: Callable[[], Aggregate | None] | None = field(default=None, repr=False)
    _loaded: list[Aggregate | None] = field(default_factory=list, repr=False)

    def aggregate(self) -> Aggregate | None:
        """The customer or account concerned, as the command will see it (loaded once)."""
        if not self._loaded:
            self._loaded.append(self.loader() if self.loader is not None else None)
        return self._loaded[0]

    def manages(self) -> bool:
        """True if the actor is the assigned manager of the customer or account concerned."""
        aggregate = self.aggregate()
        return aggregate is not None and getattr(aggregate, "manager", None) == self.actor


class Grant(BaseModel):
    """Lets ``roles`` (any of them; none listed: any actor) from ``sources`` (any of them;
    none listed: any source) run ``commands`` (names of commands or actions, or ``"*"``)
    on the customers ``customers`` says: ``"any"`` or ``"managed"`` (see the module)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    commands: frozenset[str] = Field(min_length=1)
    roles: frozenset[str] = frozenset()
    sources: frozenset[str] = frozenset()
    customers: Literal["any", "managed"] = "any"
    #: A further condition, in code only (a TOML file names conditions by ``customers``).
    when: Callable[[AccessRequest], bool] | None = Field(default=None, exclude=True)
    #: Why the grant exists (shown in ``crm settings show`` and the docs, not checked).
    description: str = ""

    @field_validator("commands")
    @classmethod
    def _known(cls, names: frozenset[str]) -> frozenset[str]:
        return frozenset(canonical_name(name) for name in names)

    def matches(self, request: AccessRequest) -> bool:
        """True if this grant lets the request through (it names the request's command)."""
        if self.roles and not self.roles.intersection(request.roles):
            return False
        if self.sources and request.source_system not in self.sources:
            return False
        if self.customers == "managed" and not request.manages():
            return False
        return self.when is None or bool(self.when(request))

    def names(self, name: str) -> bool:
        """True if this grant is about the command or action ``name``."""
        return name in self.commands or EVERYTHING in self.commands


def canonical_name(name: str) -> str:
    """A command's CRM name for its CRM or class name; an action's name; or ``"*"``.

    Unknown names are a :class:`ConfigurationError` listing what is known.
    """
    from crm_domain.commands.base import all_commands

    if name == EVERYTHING or name in ACTIONS:
        return name
    for command in all_commands():
        if name in (command.command_name, command.__name__):
            return command.command_name
    raise ConfigurationError(
        f"access policy names unknown command or action {name!r}; actions: "
        f"{', '.join(sorted(ACTIONS))}; commands: "
        f"{', '.join(c.command_name for c in all_commands())}"
    )


class AccessPolicy(BaseModel):
    """Grants and a default (see the module docstring for how they decide)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: What happens to commands and actions no grant names.
    default: Literal["allow", "deny"] = "allow"
    grants: tuple[Grant, ...] = ()

    @property
    def allows_everything(self) -> bool:
        """True for the default policy (no grants, default allow): nothing to check."""
        return self.default == "allow" and not self.grants

    @classmethod
    def allow_all(cls) -> AccessPolicy:
        """The default policy: every actor may run every command."""
        return cls()

    @classmethod
    def from_toml(cls, path: Path | str) -> AccessPolicy:
        """Read a policy file (``default = ...`` and ``[[grants]]`` tables); any problem is a
        :class:`ConfigurationError` naming the file."""
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigurationError(f"cannot read access policy {path}: {exc}") from None
        return cls.from_mapping(data, source=str(path))

    @classmethod
    def from_mapping(cls, data: Any, *, source: str = "access policy") -> AccessPolicy:
        """A policy from plain data (as a TOML or JSON file holds it)."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise ConfigurationError(f"invalid access policy {source}: {problems(exc)}") from None

    def decide(self, request: AccessRequest) -> str | None:
        """None if the request is allowed, else why it is not."""
        relevant = [g for g in self.grants if g.names(request.name)]
        if not relevant:
            return None if self.default == "allow" else "not granted to anyone (default deny)"
        if any(g.matches(request) for g in relevant):
            return None
        return _why_not(request, relevant)


def _why_not(request: AccessRequest, grants: Sequence[Grant]) -> str:
    """A short reason: what the grants for this command ask for."""
    asks = []
    for grant in grants:
        parts = []
        if grant.roles:
            parts.append("role " + " or ".join(sorted(grant.roles)))
        if grant.sources:
            parts.append("source " + " or ".join(sorted(grant.sources)))
        if grant.customers == "managed":
            parts.append("as the assigned manager")
        if grant.when is not None:
            parts.append("a condition in code")
        asks.append(", ".join(parts) or "anyone")
    return "needs " + "; or ".join(asks)


@dataclass(frozen=True)
class Denial:
    """One denied command or action, as the access audit log keeps it."""

    position: int
    denied_at: datetime
    actor: str
    roles: tuple[str, ...]
    source_system: str
    command: str
    target: str | None
    reason: str
    correlation_id: str
    command_id: str | None


class DenialLog:
    """The access audit log: every denial, append-only, in a table of its own
    (``crm_access_denials``) in the event store's database (kept in memory for a
    ``memory://`` store). SQL triggers refuse UPDATE and DELETE on the table.

    Written outside the command's transaction (a denied command has none); the table is
    created the first time a denial is written or read, so a CRM that denies nothing never
    touches it.
    """

    TABLE = "crm_access_denials"

    def __init__(self, store: StoreURL) -> None:
        """The log of the store at ``store``."""
        self.store = store
        self._memory: list[Denial] = []
        self._engine: Engine | None = None
        self._lock = threading.Lock()

    def _open(self) -> Engine:
        with self._lock:
            if self._engine is None:
                from sqlalchemy import create_engine

                engine = create_engine(self.store.sqlalchemy_url, pool_pre_ping=True)
                _create_table(engine, self.TABLE)
                self._engine = engine
            return self._engine

    def append(self, denial: Denial) -> None:
        """Add one denial (its ``position`` is given by the log)."""
        if self.store.in_memory:
            with self._lock:
                position = len(self._memory) + 1
                self._memory.append(_with_position(denial, position))
            return
        from sqlalchemy import text

        with self._open().begin() as conn:
            conn.execute(
                text(
                    f"INSERT INTO {self.TABLE} (denied_at, actor, roles, source_system, "
                    "command, target, reason, correlation_id, command_id) VALUES (:denied_at, "
                    ":actor, :roles, :source_system, :command, :target, :reason, "
                    ":correlation_id, :command_id)"
                ),
                {
                    "denied_at": denial.denied_at.isoformat(),
                    "actor": denial.actor,
                    "roles": ",".join(denial.roles),
                    "source_system": denial.source_system,
                    "command": denial.command,
                    "target": denial.target,
                    "reason": denial.reason,
                    "correlation_id": denial.correlation_id,
                    "command_id": denial.command_id,
                },
            )

    def read(
        self, *, since: datetime | None = None, actor: str | None = None, limit: int | None = None
    ) -> list[Denial]:
        """Denials in the order they happened (``since`` a time, of one ``actor``; the last
        ``limit`` of them)."""
        found = list(self._memory) if self.store.in_memory else self._select()
        if since is not None:
            found = [d for d in found if d.denied_at >= since]
        if actor is not None:
            found = [d for d in found if d.actor == actor]
        return found[-limit:] if limit else found

    def _select(self) -> list[Denial]:
        from sqlalchemy import text

        with self._open().connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT position, denied_at, actor, roles, source_system, command, target, "
                    f"reason, correlation_id, command_id FROM {self.TABLE} ORDER BY position"
                )
            ).all()
        return [
            Denial(
                position=int(r[0]),
                denied_at=datetime.fromisoformat(str(r[1])),
                actor=r[2],
                roles=tuple(x for x in str(r[3]).split(",") if x),
                source_system=r[4],
                command=r[5],
                target=r[6],
                reason=r[7],
                correlation_id=r[8],
                command_id=r[9],
            )
            for r in rows
        ]

    def close(self) -> None:
        """Return the log's database connections."""
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None


def _with_position(denial: Denial, position: int) -> Denial:
    from dataclasses import replace

    return replace(denial, position=position)


def _create_table(engine: Engine, table: str) -> None:
    """The denials table and the triggers that keep it append-only (idempotent)."""
    from sqlalchemy import text

    postgres = engine.dialect.name == "postgresql"
    key = "BIGSERIAL PRIMARY KEY" if postgres else "INTEGER PRIMARY KEY AUTOINCREMENT"
    statements = [
        f"CREATE TABLE IF NOT EXISTS {table} (position {key}, denied_at TEXT NOT NULL, "
        "actor TEXT NOT NULL, roles TEXT NOT NULL, source_system TEXT NOT NULL, "
        "command TEXT NOT NULL, target TEXT, reason TEXT NOT NULL, "
        "correlation_id TEXT NOT NULL, command_id TEXT)"
    ]
    message = "the access audit log is append-only"
    if postgres:
        statements += [
            f"CREATE OR REPLACE FUNCTION {table}_append_only() RETURNS trigger "
            f"LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION '{message}'; END $$",
            f"DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = "
            f"'{table}_append_only') THEN CREATE TRIGGER {table}_append_only BEFORE UPDATE "
            f"OR DELETE ON {table} FOR EACH ROW EXECUTE FUNCTION {table}_append_only(); "
            "END IF; END $$",
        ]
    else:
        statements += [
            f"CREATE TRIGGER IF NOT EXISTS {table}_no_{verb.lower()} BEFORE {verb} ON {table} "
            f"BEGIN SELECT RAISE(ABORT, '{message}'); END"
            for verb in ("UPDATE", "DELETE")
        ]
    from sqlalchemy.exc import IntegrityError, ProgrammingError

    from crm_domain.infrastructure.schema_lock import schema_change

    try:
        with schema_change(engine) as conn:
            for statement in statements:
                conn.execute(text(statement))
    except (IntegrityError, ProgrammingError):  # pragma: no cover - a concurrent creator
        pass


class AccessControl:
    """A policy and the log of its denials: what :meth:`CRM.handle` and
    :meth:`CRM.authorize` consult."""

    def __init__(self, policy: AccessPolicy, log: DenialLog) -> None:
        """Enforce ``policy``, writing denials to ``log``."""
        self.policy = policy
        self.log = log

    def check_command(
        self, command: Command[Any], load: Callable[[UUID, type[Aggregate]], Aggregate]
    ) -> None:
        """Raise :class:`PermissionDeniedError` (and log it) unless the context may run
        ``command``; ``load`` fetches the aggregate when a condition needs it."""
        if self.policy.allows_everything:
            return
        target, kind = _target(command)

        def loader() -> Aggregate | None:
            return load(target, kind) if target is not None and kind is not None else None

        self._check(command.command_name, target, command=command, loader=loader)

    def check_action(
        self,
        action: str,
        *,
        target: UUID | None = None,
        load: Callable[[], Aggregate | None] | None = None,
    ) -> None:
        """Raise :class:`PermissionDeniedError` (and log it) unless the context may perform
        ``action`` (one of :data:`ACTIONS`) on ``target``."""
        if action not in ACTIONS:
            raise ConfigurationError(
                f"unknown action {action!r}; known: {', '.join(sorted(ACTIONS))}"
            )
        if self.policy.allows_everything:
            return
        self._check(action, target, loader=load)

    def _check(
        self,
        name: str,
        target: UUID | None,
        *,
        command: Command[Any] | None = None,
        loader: Callable[[], Aggregate | None] | None = None,
    ) -> None:
        ctx = current_context()
        request = AccessRequest(
            actor=ctx.actor,
            roles=ctx.roles,
            source_system=ctx.source_system,
            name=name,
            target=target,
            command=command,
            loader=loader,
        )
        reason = self.policy.decide(request)
        if reason is None:
            return
        self.log.append(_denial(ctx, name, target, reason, command))
        raise PermissionDeniedError(ctx.actor, ctx.roles, name, target, reason)


def _target(command: Command[Any]) -> tuple[UUID | None, type[Aggregate] | None]:
    """The customer or account a command is about, and its aggregate class."""
    from crm_domain.customer import Customer

    if not command.creates:
        return command.aggregate_id(), command.aggregate
    customer_id = getattr(command, "customer_id", None)
    if isinstance(customer_id, UUID):
        return customer_id, Customer
    return None, None


def _denial(
    ctx: CommandContext, name: str, target: UUID | None, reason: str, command: Command[Any] | None
) -> Denial:
    command_id = (command.command_id if command is not None else None) or ctx.command_id
    return Denial(
        position=0,
        denied_at=datetime.now(UTC),
        actor=ctx.actor,
        roles=ctx.roles,
        source_system=ctx.source_system,
        command=name,
        target=str(target) if target is not None else None,
        reason=reason,
        correlation_id=ctx.correlation_id,
        command_id=command_id,
    )


def load_policy(path: Path | None, policy: AccessPolicy | None = None) -> AccessPolicy:
    """The policy in force: the one given in code, else the file's, else allow-all."""
    if policy is not None:
        return policy
    if path is not None:
        return AccessPolicy.from_toml(path)
    return AccessPolicy.allow_all()
