"""Rows touched by one batch of events: read once, changed in memory, written once.

Applying events one SQL statement at a time is what makes naive projections slow. A
:class:`RowCache` loads the rows a batch needs with a few ``IN (...)`` queries (the read
model's ``prepare`` names them), lets the read model change plain dicts, and writes back
the inserted, changed and deleted rows with one ``executemany`` each, in the batch's
transaction. Rows read but not changed are not written.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator
from typing import Any, ClassVar

from sqlalchemy import JSON, Table, and_, bindparam, delete, insert, select, tuple_, update
from sqlalchemy.orm import Session

Row = dict[str, Any]

#: Keys per ``IN (...)`` query when prefetching rows.
PREFETCH_CHUNK = 400


class RowCache:
    """The rows of one table that a batch reads or writes, keyed by the primary key."""

    #: Rows read one query each because no :meth:`prefetch` asked for them (in this
    #: process): each is a missed prefetch, the cost that makes projections slow.
    single_row_reads: ClassVar[int] = 0

    def __init__(self, session: Session, table: Table) -> None:
        self.session = session
        self.table = table
        self.key_columns = [c.name for c in table.primary_key.columns]
        # A handler may change a JSON value in place, which a shallow copy would not see:
        # rows of such tables are always written back.
        self._compare = not any(isinstance(c.type, JSON) for c in table.columns)
        self._rows: dict[Hashable, Row | None] = {}
        #: The rows as read, to write back only those a handler changed.
        self._stored: dict[Hashable, Row] = {}
        self._dirty: set[Hashable] = set()
        self._deleted: set[Hashable] = set()
        #: Keys put as new in this batch: not in the database, nothing to delete there.
        self._fresh: set[Hashable] = set()

    def _key_of(self, row: Row) -> Hashable:
        if len(self.key_columns) == 1:
            key: Hashable = row[self.key_columns[0]]
            return key
        return tuple(row[c] for c in self.key_columns)

    def _where(self, key: Hashable) -> Any:
        if len(self.key_columns) == 1:
            return self.table.c[self.key_columns[0]] == key
        assert isinstance(key, tuple)
        return and_(*(self.table.c[c] == v for c, v in zip(self.key_columns, key, strict=True)))

    def prefetch(self, keys: Iterable[Hashable]) -> None:
        """Load the rows for these keys (those not already cached) in few queries."""
        missing = list({k for k in keys if k not in self._rows})
        for start in range(0, len(missing), PREFETCH_CHUNK):
            chunk = missing[start : start + PREFETCH_CHUNK]
            if len(self.key_columns) == 1:
                cond = self.table.c[self.key_columns[0]].in_(chunk)
            else:
                cond = tuple_(*(self.table.c[c] for c in self.key_columns)).in_(chunk)
            for found in self.session.execute(select(self.table).where(cond)).mappings():
                row = dict(found)
                key = self._key_of(row)
                self._rows[key] = row
                self._stored[key] = dict(found)
            for key in chunk:
                self._rows.setdefault(key, None)

    def _load(self, key: Hashable) -> None:
        if key not in self._rows:
            RowCache.single_row_reads += 1
            found = self.session.execute(select(self.table).where(self._where(key))).mappings()
            first = found.first()
            self._rows[key] = dict(first) if first is not None else None
            if first is not None:
                self._stored[key] = dict(first)

    def get(self, key: Hashable) -> Row | None:
        """The row with this key, or None; changes to it are written at :meth:`write`."""
        self._load(key)
        row = self._rows[key]
        if row is not None:
            self._dirty.add(key)
        return row

    def put(self, row: Row, *, new: bool = False) -> Row:
        """Add or replace a whole row. ``new=True`` promises no such row is stored yet
        (saves a lookup; a broken promise fails the batch on the primary key)."""
        key = self._key_of(row)
        if new:
            self._fresh.add(key)
        else:
            self._load(key)
        self._rows[key] = row
        self._deleted.discard(key)
        self._dirty.add(key)
        return row

    def delete(self, key: Hashable) -> None:
        """Remove the row with this key (if there is one)."""
        if key in self._fresh:
            self._fresh.discard(key)
        else:
            self._deleted.add(key)
        self._rows[key] = None
        self._dirty.discard(key)

    def rows(self) -> Iterator[Row]:
        """Every row currently cached (loaded or added)."""
        return (row for row in self._rows.values() if row is not None)

    def write(self) -> None:
        """Insert new rows, update changed ones, delete removed ones; then forget them."""
        inserts: list[Row] = []
        updates: list[Row] = []
        for key in self._dirty:
            row = self._rows[key]
            if row is None:
                continue
            stored = self._stored.get(key)
            if stored is None:
                inserts.append(row)
            elif row != stored or not self._compare:
                updates.append(row)
        doomed = list(self._deleted)
        if doomed:
            remove = delete(self.table).where(
                and_(*(self.table.c[c] == bindparam(f"k_{c}") for c in self.key_columns))
            )
            self.session.execute(remove, [self._key_params(k) for k in doomed])
        if inserts:
            self.session.execute(insert(self.table), inserts)
        if updates:
            values: dict[str, Any] = {
                c.name: bindparam(f"v_{c.name}")
                for c in self.table.columns
                if c.name not in self.key_columns
            }
            stmt = (
                update(self.table)
                .where(and_(*(self.table.c[c] == bindparam(f"k_{c}") for c in self.key_columns)))
                .values(values)
            )
            params = [
                {
                    **{f"k_{c}": row[c] for c in self.key_columns},
                    **{f"v_{name}": row.get(name) for name in values},
                }
                for row in updates
            ]
            self.session.execute(stmt, params)
        self._rows.clear()
        self._stored.clear()
        self._dirty.clear()
        self._deleted.clear()
        self._fresh.clear()

    def _key_params(self, key: Hashable) -> dict[str, Any]:
        if len(self.key_columns) == 1:
            return {f"k_{self.key_columns[0]}": key}
        assert isinstance(key, tuple)
        return {f"k_{c}": v for c, v in zip(self.key_columns, key, strict=True)}
