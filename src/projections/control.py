"""Who may write a read model, and whether it is parked: the control rows beside tracking.

Each read model has one row in ``read_model_control`` (in the read models' database):

* ``generation`` counts its rebuilds. A rebuild claims the read model (a new generation and
  its ``rebuild_token``) in one short transaction *before* dropping its tables, and hands
  it back (token cleared) when it is done. A live runner writes a read model only while no
  rebuild holds it, and checks that under a lock in the same transaction as its
  compare-and-set of the tracking position (:func:`lock_states`), so a rebuild and a live
  runner never write the same read model at once; the live runner leaves it alone
  meanwhile and follows the new generation afterwards.
* ``parked_*``: the event a read model failed on (position, topic, aggregate, error, time).
  A parked read model keeps its position; the others go on. ``retry`` and ``skip``
  (:mod:`projections.parking`) resume it; skips are kept in ``read_model_skips`` for
  auditors (who, when, why, which event).
"""

from __future__ import annotations

import hashlib
import os
import socket
import uuid
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    Uuid,
    insert,
    select,
    update,
)
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from crm_domain.errors import ReadModelRebuildingError, UnhandledEventError
from projections.sqltypes import UTCDateTime

metadata = MetaData()

control = Table(
    "read_model_control",
    metadata,
    Column("read_model", String(100), primary_key=True),
    Column("generation", Integer, nullable=False),
    Column("rebuild_token", String(64)),
    Column("rebuild_started_at", UTCDateTime),
    Column("parked_position", BigInteger),
    Column("parked_topic", String(300)),
    Column("parked_originator_id", Uuid),
    Column("parked_error", Text),
    Column("parked_at", UTCDateTime),
)

skips = Table(
    "read_model_skips",
    metadata,
    Column("skip_id", Integer, primary_key=True, autoincrement=True),
    Column("read_model", String(100), nullable=False, index=True),
    Column("position", BigInteger, nullable=False),
    Column("topic", String(300)),
    Column("originator_id", Uuid),
    Column("error", Text),
    Column("reason", Text, nullable=False),
    Column("actor", String(200), nullable=False),
    Column("skipped_at", UTCDateTime, nullable=False),
)


@dataclass(frozen=True)
class Parked:
    """The event a read model stopped at, and why."""

    position: int
    topic: str
    originator_id: UUID | None
    error: str
    parked_at: datetime


#: Characters of the host name kept in a claim token (the token column is String(64)).
HOST_TAG_LENGTH = 20


@dataclass(frozen=True)
class ClaimHolder:
    """Who holds a rebuild's claim: host tag and process id (both None for a token from
    before holders were recorded: holder unknown)."""

    host: str | None
    pid: int | None

    @property
    def known(self) -> bool:
        """Whether the token named its holder."""
        return self.host is not None and self.pid is not None

    @property
    def on_this_host(self) -> bool:
        """Whether the holder ran on this host (only then can its process be checked)."""
        return self.host is not None and self.host == host_tag()

    def __str__(self) -> str:
        return f"process {self.pid} on {self.host}" if self.known else "holder unknown"


def host_tag(host: str | None = None) -> str:
    """This host's name as kept in a claim: whole if short, else its start and a hash of
    the whole name (two hosts whose names share a prefix are never taken for one)."""
    name = socket.gethostname() if host is None else host
    if len(name) <= HOST_TAG_LENGTH:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: HOST_TAG_LENGTH - 9]}~{digest}"


def new_claim_token() -> str:
    """A claim token naming this process: ``<32 hex>@<host tag>:<pid>`` (at most 61 chars)."""
    return f"{uuid.uuid4().hex}@{host_tag()}:{os.getpid()}"


def claim_holder(token: str) -> ClaimHolder:
    """Who holds the claim ``token`` (holder unknown for a plain token)."""
    _, at, holder = token.partition("@")
    host, colon, pid = holder.rpartition(":")
    if not at or not colon or not host or not pid.isdigit():
        return ClaimHolder(None, None)
    return ClaimHolder(host, int(pid))


def process_gone(pid: int) -> bool:
    """Whether no process ``pid`` runs on this host (a zombie, killed and not yet reaped
    by its parent, counts as gone: it writes nothing more)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, another user's
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            return stat.read().rpartition(")")[2].split()[:1] == ["Z"]
    except OSError:
        return False  # no /proc (not Linux), or it just went: checked again next time


def claim_is_stale(token: str) -> bool:
    """Whether the claim's holder was on this host and its process no longer exists.

    Conservative: a holder on another host, an unknown holder (an old plain token) or a
    process still running keeps its claim.
    """
    holder = claim_holder(token)
    return holder.on_this_host and holder.pid is not None and process_gone(holder.pid)


@dataclass(frozen=True)
class ControlState:
    """A read model's generation, the rebuild holding it (if any) and its parked event."""

    read_model: str
    generation: int = 0
    rebuild_token: str | None = None
    rebuild_started_at: datetime | None = None
    parked: Parked | None = None

    @property
    def rebuilding(self) -> bool:
        """True while a rebuild holds the read model."""
        return self.rebuild_token is not None

    @property
    def holder(self) -> ClaimHolder | None:
        """Who holds the rebuild's claim (None: no rebuild holds it)."""
        return None if self.rebuild_token is None else claim_holder(self.rebuild_token)

    @property
    def interrupted(self) -> bool:
        """True when the rebuild holding it was killed: its process is gone from this host
        (see :func:`claim_is_stale`); a live runner may release the claim."""
        return self.rebuild_token is not None and claim_is_stale(self.rebuild_token)

    def writable_by(self, token: str | None) -> bool:
        """Whether a runner (``token`` None) or the rebuild with ``token`` may write it."""
        if token is None:
            return self.rebuild_token is None and self.parked is None
        return self.rebuild_token == token


@dataclass(frozen=True)
class Skip:
    """One skipped event, as kept for auditors."""

    read_model: str
    position: int
    topic: str | None
    originator_id: UUID | None
    error: str | None
    reason: str
    actor: str
    skipped_at: datetime


def create_control_tables(bind: Engine | Connection) -> None:
    """Create the control and skip-audit tables if they do not exist."""
    for table in (control, skips):
        table.create(bind, checkfirst=True)


def _ensure_rows(session: Session, names: Iterable[str]) -> None:
    """Give every named read model a control row (generation 0), racing others safely."""
    names = list(names)
    present = set(
        session.execute(select(control.c.read_model).where(control.c.read_model.in_(names)))
        .scalars()
        .all()
    )
    missing = [{"read_model": n, "generation": 0} for n in names if n not in present]
    if not missing:
        return
    dialect = session.get_bind().dialect.name
    stmt: Any
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        stmt = pg_insert(control).on_conflict_do_nothing()
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        stmt = sqlite_insert(control).on_conflict_do_nothing()
    else:  # pragma: no cover - the library supports SQLite and PostgreSQL
        stmt = insert(control)
    session.execute(stmt, missing)


def ensure_rows(engine: Engine, names: Iterable[str]) -> None:
    """Give each named read model its control row, if it has none yet."""
    with Session(engine) as session, session.begin():
        _ensure_rows(session, names)


def read_states(session: Session, names: Collection[str]) -> dict[str, ControlState]:
    """Each named read model's control state (a missing row reads as generation 0)."""
    found = {
        row.read_model: _state(row)
        for row in session.execute(select(control).where(control.c.read_model.in_(list(names))))
    }
    return {name: found.get(name) or ControlState(name) for name in names}


def lock_states(session: Session, names: Collection[str]) -> dict[str, ControlState]:
    """Lock the named read models' control rows in ``session``'s transaction, then read them.

    PostgreSQL: row locks taken in name order (``SELECT ... FOR UPDATE``), so two writers
    never deadlock on them. SQLite: a no-op ``UPDATE`` takes the database's write lock
    (its reads before the first write are not part of the transaction). Either way a
    rebuild cannot claim these read models until the transaction ends.
    """
    ordered = sorted(names)
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            select(control.c.read_model)
            .where(control.c.read_model.in_(ordered))
            .order_by(control.c.read_model)
            .with_for_update()
        )
    else:
        session.execute(
            update(control)
            .where(control.c.read_model.in_(ordered))
            .values(generation=control.c.generation)
        )
    return read_states(session, ordered)


def _state(row: Any) -> ControlState:
    parked = None
    if row.parked_position is not None:
        parked = Parked(
            position=int(row.parked_position),
            topic=row.parked_topic or "",
            originator_id=row.parked_originator_id,
            error=row.parked_error or "",
            parked_at=row.parked_at,
        )
    return ControlState(
        read_model=row.read_model,
        generation=int(row.generation),
        rebuild_token=row.rebuild_token,
        rebuild_started_at=row.rebuild_started_at,
        parked=parked,
    )


def park(session: Session, error: UnhandledEventError) -> None:
    """Record that ``error.read_model`` stopped at ``error``'s event (caller holds the lock)."""
    _ensure_rows(session, [error.read_model])
    session.execute(
        update(control)
        .where(control.c.read_model == error.read_model)
        .values(
            parked_position=error.position,
            parked_topic=error.topic,
            parked_originator_id=error.originator_id,
            parked_error=str(error),
            parked_at=datetime.now(UTC),
        )
    )


def unpark(session: Session, name: str) -> None:
    """Clear a read model's parked state (the event it stopped at and the error)."""
    session.execute(
        update(control)
        .where(control.c.read_model == name)
        .values(
            parked_position=None,
            parked_topic=None,
            parked_originator_id=None,
            parked_error=None,
            parked_at=None,
        )
    )


def record_skip(session: Session, name: str, parked: Parked, reason: str, actor: str) -> None:
    """Audit that the parked event of a read model was skipped: by whom and why."""
    session.execute(
        insert(skips).values(
            read_model=name,
            position=parked.position,
            topic=parked.topic,
            originator_id=parked.originator_id,
            error=parked.error,
            reason=reason,
            actor=actor,
            skipped_at=datetime.now(UTC),
        )
    )


def skips_of(engine: Engine, name: str | None = None) -> list[Skip]:
    """The recorded skips (of one read model, or all), oldest first."""
    query = select(skips).order_by(skips.c.skip_id)
    if name is not None:
        query = query.where(skips.c.read_model == name)
    with engine.connect() as conn:
        return [
            Skip(
                read_model=r.read_model,
                position=int(r.position),
                topic=r.topic,
                originator_id=r.originator_id,
                error=r.error,
                reason=r.reason,
                actor=r.actor,
                skipped_at=r.skipped_at,
            )
            for r in conn.execute(query)
        ]


def claim_for_rebuild(engine: Engine, names: Collection[str]) -> str:
    """Take the named read models for a rebuild: a new generation each, owned by the
    returned token, parked state cleared. Committed before the rebuild touches a table, so
    every live runner's next write sees it (and a batch in flight finishes first: the
    claim waits for its lock). A second rebuild takes them over; the first one's writes
    are then refused."""
    token = new_claim_token()
    try:
        with Session(engine) as session, session.begin():
            _ensure_rows(session, names)
            lock_states(session, names)
            session.execute(
                update(control)
                .where(control.c.read_model.in_(list(names)))
                .values(
                    generation=control.c.generation + 1,
                    rebuild_token=token,
                    rebuild_started_at=datetime.now(UTC),
                    parked_position=None,
                    parked_topic=None,
                    parked_originator_id=None,
                    parked_error=None,
                    parked_at=None,
                )
            )
    except OperationalError as exc:
        if engine.dialect.name != "sqlite" or "locked" not in str(exc.orig):
            raise
        # SQLite: a rebuild folding in chunks holds the database's write lock until it
        # commits (a reader still sees the control rows), so say who, not "locked".
        with Session(engine) as session:
            held = {n: s for n, s in read_states(session, names).items() if s.rebuilding}
        who = "; ".join(held_by(n, s) for n, s in sorted(held.items()))
        raise ReadModelRebuildingError(
            (f"being rebuilt: {who}" if who else "the read models' database is locked")
            + ". Another rebuild holds the database's write lock until it commits: run this "
            "one again when it is done (`crm projections status` shows it)"
        ) from exc
    return token


def held_by(name: str, state: ControlState) -> str:
    """Which rebuild holds a read model, and since when, in words."""
    since = state.rebuild_started_at
    when = f" since {since.isoformat(timespec='seconds')}" if since is not None else ""
    return f"read model {name!r} by {state.holder}{when}"


def release_from_rebuild(engine: Engine, names: Collection[str], token: str) -> None:
    """Hand the read models back to live runners (only those this rebuild still holds)."""
    with Session(engine) as session, session.begin():
        session.execute(
            update(control)
            .where(control.c.read_model.in_(list(names)), control.c.rebuild_token == token)
            .values(rebuild_token=None, rebuild_started_at=None)
        )


def release_stale_claims(session: Session, names: Collection[str]) -> list[str]:
    """Release the named read models whose rebuild was killed (its claim is stale), in
    ``session``'s transaction; returns their names.

    Under the control locks a claim takes (:func:`lock_states`), and only where the token
    is still the stale one, so a rebuild claiming meanwhile keeps its claim. Safe because
    a rebuild writes rows and positions only in a transaction that checks its claim under
    these locks: what a killed rebuild committed is consistent (its fast fold commits all
    or nothing, its runner path a batch with its positions), and nothing of it writes
    again. The positions stored stand; the live runner carries on from them.
    """
    released = []
    for name, state in lock_states(session, names).items():
        if state.rebuild_token is None or not claim_is_stale(state.rebuild_token):
            continue
        session.execute(
            update(control)
            .where(control.c.read_model == name, control.c.rebuild_token == state.rebuild_token)
            .values(rebuild_token=None, rebuild_started_at=None)
        )
        released.append(name)
    return released
