"""Drift check: compare each read model with a rebuild of it, at the same position.

Rows deleted or edited by hand leave a read model's position (and so ``status``) as it was.
:func:`verify` rebuilds each read model into a scratch SQLite database up to exactly the
position the live read model has reached (events a ``skip`` left out are left out there
too), then compares every table row by row: rows missing, extra, or changed. With
``repair=True`` it writes the scratch rows over the ones that differ, in one transaction
that checks the live position has not moved (compare-and-set, as a runner does) and that
no rebuild holds the read model; a live runner may keep running meanwhile.
"""

from __future__ import annotations

import tempfile
from collections.abc import Hashable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eventsourcing.persistence import IntegrityError, Tracking
from sqlalchemy import Connection, Engine, Table, select

from crm_domain.errors import ProjectionError
from projections import control
from projections.readmodel import ReadModel
from projections.registry import select_read_models
from projections.rows import execute_many
from projections.runner import crm_application_class, log_reader, open_view
from projections.views import ReadModelView

#: Events per transaction while the scratch copy is built.
SCRATCH_BATCH = 5000
#: Attempts to catch a moving read model at one position before giving up.
ATTEMPTS = 5

Key = dict[str, Any]


@dataclass(frozen=True)
class TableDrift:
    """One table's rows that differ from a rebuild, by primary key."""

    table: str
    #: Rows the history produces that the read model lacks.
    missing: list[Key] = field(default_factory=list)
    #: Rows the read model has that the history does not produce.
    extra: list[Key] = field(default_factory=list)
    #: Rows present in both with different values.
    changed: list[Key] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no row is missing, extra or changed."""
        return not (self.missing or self.extra or self.changed)


@dataclass(frozen=True)
class ReadModelDrift:
    """How one read model compares with its rebuild at ``position``."""

    name: str
    position: int | None
    #: The tables that differ (empty: the read model is as the history says).
    tables: list[TableDrift] = field(default_factory=list)
    #: Whether the differing rows were rewritten from the rebuild.
    repaired: bool = False
    #: Why it was not verified (e.g. a rebuild holds it), or None.
    skipped: str | None = None
    #: Whether a killed rebuild's claim on it was released first (see
    #: :func:`~projections.control.release_stale_claims`).
    released_claim: bool = False

    @property
    def ok(self) -> bool:
        """True when every table equals its rebuild."""
        return not self.tables

    @property
    def differing_rows(self) -> int:
        """Rows missing, extra or changed, over every table of the read model."""
        return sum(len(t.missing) + len(t.extra) + len(t.changed) for t in self.tables)


@dataclass(frozen=True)
class VerifyReport:
    """The drift check's answer, one entry per read model checked."""

    read_models: list[ReadModelDrift]

    @property
    def ok(self) -> bool:
        """True if no read model differs from its rebuild (or every difference was repaired)."""
        return all(m.ok or m.repaired for m in self.read_models)

    @property
    def drifted(self) -> list[str]:
        """Names of the read models that differ from their rebuild."""
        return [m.name for m in self.read_models if not m.ok]

    def lines(self) -> list[str]:
        """A line per read model and per differing table, for a terminal."""
        out: list[str] = []
        for m in self.read_models:
            if m.released_claim:
                out.append(
                    f"{m.name}: released the claim of a killed rebuild "
                    f"(carried on from position {m.position or 0})"
                )
            if m.skipped:
                out.append(f"{m.name}: not verified ({m.skipped})")
                continue
            verdict = "ok" if m.ok else f"{m.differing_rows} rows differ"
            if m.repaired:
                verdict += ", repaired"
            out.append(f"{m.name} at position {m.position or 0}: {verdict}")
            for t in m.tables:
                out.append(
                    f"  {t.table}: {len(t.missing)} missing, {len(t.extra)} extra, "
                    f"{len(t.changed)} changed"
                )
        return out


def verify(
    store_url: str,
    names: Sequence[str | type[ReadModel]] | None = None,
    *,
    views_url: str | None = None,
    repair: bool = False,
) -> VerifyReport:
    """Compare read models (all by default) with a rebuild at their own positions.

    Each read model is rebuilt into a scratch SQLite database (deleted afterwards) up to
    the position it has reached, and its tables compared row by row. ``repair=True``
    rewrites the rows that differ from the rebuild (missing inserted, extra deleted,
    changed overwritten) while checking that the position did not move. A read model held
    by a rebuild that was killed is released first, as a live runner or a report's
    catch-up does (:func:`~projections.control.release_stale_claims`: its positions
    stand), then verified; one a rebuild still holds is reported as not verified.
    """
    models = select_read_models(names)
    app = crm_application_class(store_url)()
    try:
        with tempfile.TemporaryDirectory(prefix="crm-verify-") as scratch_dir:
            return VerifyReport(
                [
                    _verify_one(app, store_url, views_url, model, Path(scratch_dir), repair)
                    for model in models
                ]
            )
    finally:
        app.close()


def _verify_one(
    app: Any,
    store_url: str,
    views_url: str | None,
    model: type[ReadModel],
    scratch_dir: Path,
    repair: bool,
) -> ReadModelDrift:
    name = model.name
    live = open_view(store_url, read_models=[model], views_url=views_url)
    scratch_url = f"sqlite:///{scratch_dir / f'{name}.sqlite'}"
    scratch = open_view(store_url, read_models=[model], views_url=scratch_url)
    try:
        released = bool(live.release_stale_claims())
        skipped = {s.position for s in control.skips_of(live.engine, name)}
        read = log_reader(app.recorder, app.mapper)
        for _ in range(ATTEMPTS):
            state = live.control_states()[name]
            if state.rebuilding:
                return ReadModelDrift(name, None, skipped="a rebuild holds it")
            position = live.position(name, app.name)
            _build_to(scratch, app.name, name, position or 0, skipped, read)
            with _snapshot(live.engine) as conn:
                if _position(conn, live, name, app.name) != position:
                    continue  # a runner moved it meanwhile: catch the scratch copy up
                tables = [_compare(t, conn, scratch.engine) for t in model.tables]
            drift = [t for t in tables if not t.ok]
            if not drift or not repair:
                return ReadModelDrift(name, position, drift, released_claim=released)
            if _repair(live, scratch, model, app.name, position, drift):
                return ReadModelDrift(name, position, drift, repaired=True, released_claim=released)
        raise ProjectionError(
            f"read model {name!r} kept moving; verify it again (or stop its runner)"
        )
    finally:
        live.engine.dispose()
        scratch.engine.dispose()


def _build_to(
    scratch: ReadModelView,
    app_name: str,
    name: str,
    target: int,
    skipped: set[int],
    read: Any,
) -> None:
    """Apply the log to the scratch copy up to ``target`` (without the skipped events)."""
    done = scratch.position(name, app_name) or 0
    while done < target:
        chunk = [e for e in read(done, target, SCRATCH_BATCH) if e.position not in skipped]
        if not chunk:
            break
        scratch.record(app_name, chunk)
        reached = scratch.position(name, app_name) or 0
        if reached < chunk[-1].position:
            parked = scratch.control_states()[name].parked
            raise ProjectionError(
                f"cannot rebuild read model {name!r} up to {target} to compare: "
                + (parked.error if parked else f"it stopped at {reached}")
            )
        done = reached


@contextmanager
def _snapshot(engine: Engine) -> Iterator[Connection]:
    """A read-only connection whose reads all see one moment (a position and its rows)."""
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
            conn.begin()
        else:  # SQLite (WAL): a read transaction keeps one snapshot
            conn.exec_driver_sql("BEGIN")
        try:
            yield conn
        finally:
            conn.rollback()


def _position(conn: Connection, view: ReadModelView, name: str, app_name: str) -> int | None:
    table = view.tracking_tables[name]
    value = conn.execute(
        select(table.c.notification_id).where(table.c.application_name == app_name)
    ).scalar()
    return int(value) if value is not None else None


def _rows(conn: Connection, table: Table) -> dict[Hashable, dict[str, Any]]:
    keys = [c.name for c in table.primary_key.columns]
    rows: dict[Hashable, dict[str, Any]] = {}
    for found in conn.execute(select(table)).mappings():
        row = dict(found)
        rows[tuple(row[k] for k in keys)] = row
    return rows


def _compare(table: Table, live: Connection, scratch: Engine) -> TableDrift:
    keys = [c.name for c in table.primary_key.columns]
    have = _rows(live, table)
    with scratch.connect() as conn:
        want = _rows(conn, table)

    def key(k: Hashable) -> Key:
        assert isinstance(k, tuple)
        return dict(zip(keys, k, strict=True))

    return TableDrift(
        table.name,
        missing=[key(k) for k in want if k not in have],
        extra=[key(k) for k in have if k not in want],
        changed=[key(k) for k, row in want.items() if k in have and have[k] != row],
    )


def _repair(
    live: ReadModelView,
    scratch: ReadModelView,
    model: type[ReadModel],
    app_name: str,
    position: int | None,
    drift: list[TableDrift],
) -> bool:
    """Rewrite the differing rows from the scratch copy; False if the position moved."""
    name = model.name
    tables = {t.name: t for t in model.tables}
    with scratch.engine.connect() as conn:
        wanted = {d.table: _rows(conn, tables[d.table]) for d in drift}
    try:
        with live.transaction(commit=True) as session:
            state = control.lock_states(session, [name])[name]
            if state.rebuilding:
                return False
            tracking = live.tracking_tables[name]
            if position is None:
                if live._read_position(session, tracking, app_name) is not None:
                    return False
            else:  # compare-and-set: the write lock, and proof nothing moved meanwhile
                ReadModelView._advance_position(
                    session, tracking, name, position, Tracking(app_name, position)
                )
            for d in drift:
                table = tables[d.table]
                rows = wanted[d.table]
                keys = [c.name for c in table.primary_key.columns]

                missing = [rows[tuple(k[c] for c in keys)] for k in d.missing]
                changed = [rows[tuple(k[c] for c in keys)] for k in d.changed]
                execute_many(session, table, "delete", d.extra)
                execute_many(session, table, "insert", missing)
                execute_many(session, table, "update", changed)
    except IntegrityError:
        return False
    return True
