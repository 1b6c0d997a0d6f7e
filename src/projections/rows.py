"""Rows touched by one batch of events: read once, changed in memory, written once.

Applying events one SQL statement at a time is what makes naive projections slow. A
:class:`RowCache` loads the rows a batch needs with a few ``IN (...)`` queries (the read
model's ``prepare`` names them), lets the read model change plain dicts, and writes back
the inserted, changed and deleted rows with one ``executemany`` each, in the batch's
transaction. Rows read but not changed are not written.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from contextlib import suppress
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any, ClassVar, cast

from sqlalchemy import JSON, Table, Uuid, and_, bindparam, delete, insert, select, tuple_, update
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.dml import Insert
from sqlalchemy.sql.expression import ClauseElement

from crm_domain.infrastructure.compat import bind_names_in_order
from projections.sqltypes import UTCDateTime

Row = dict[str, Any]

#: Keys per ``IN (...)`` query when prefetching rows.
PREFETCH_CHUNK = 400


#: A column's bind processor (Python value to DBAPI value), or None where there is none.
_Processor = Callable[[Any], Any] | None


class _Precompiled:
    """One INSERT, UPDATE or DELETE of a table compiled for one dialect: its SQL, and per
    parameter the column it takes its value from and that column type's bind processor.

    SQLAlchemy's ``executemany`` compiles (cached) and then builds every row's parameters
    through its generic machinery, which costs more than the database's own work for rows
    this small; here a row becomes DBAPI parameters in one list comprehension.
    """

    __slots__ = (
        "columns",
        "convert",
        "copy",
        "key_order",
        "names",
        "positional",
        "row_key_order",
        "row_values",
        "sql",
    )

    def __init__(self, stmt: ClauseElement, dialect: Dialect, columns: dict[str, str]) -> None:
        compiled = stmt.compile(dialect=dialect, column_keys=list(columns))
        assert isinstance(compiled, SQLCompiler)
        if compiled.escaped_bind_names:  # pragma: no cover - no read model's names need it
            raise ValueError(f"bind names needing escapes: {compiled.escaped_bind_names}")
        self.sql = compiled.string
        processors: dict[str, _Processor] = {
            name: bind.type.dialect_impl(dialect).bind_processor(dialect)
            for name, bind in compiled.binds.items()
        }
        order = bind_names_in_order(compiled) if dialect.positional else list(processors)
        if order is None or set(order) != set(columns):  # pragma: no cover
            raise ValueError(f"{self.sql!r} binds {order}, not {list(columns)}")
        self.positional = dialect.positional
        #: The parameters in the order the SQL takes them, the column each takes its value
        #: from, and (by position) the bind processors there are.
        self.names = list(order)
        self.columns = [columns[name] for name in order]
        self.convert = [
            (i, process)
            for i, name in enumerate(order)
            if (process := processors[name]) is not None
        ]
        types = {name: bind.type.dialect_impl(dialect) for name, bind in compiled.binds.items()}
        self.row_values = _row_function(
            [
                (
                    columns[name],
                    _faster_processor(compiled.binds[name].type, dialect) or processors[name],
                    _is_hex_uuid(types[name], dialect),
                )
                for name in order
            ]
        )
        #: PostgreSQL (psycopg): an INSERT as ``COPY FROM STDIN``, several times faster than
        #: ``executemany`` (which sends and dumps every row as its own statement).
        self.copy: str | None = None
        #: SQLite: an INSERT's rows are sent in primary-key order (see :func:`execute_many`).
        self.key_order: Callable[[tuple[Any, ...]], Any] | None = None
        #: The same order read from the rows themselves (before they become parameters).
        self.row_key_order: Callable[[dict[str, Any]], Any] | None = None
        if isinstance(stmt, Insert) and dialect.name == "sqlite" and self.positional:
            keys = [c.name for c in cast(Table, stmt.table).primary_key.columns]
            self.key_order = itemgetter(*(self.columns.index(k) for k in keys))
            self.row_key_order = itemgetter(*keys)
        if isinstance(stmt, Insert) and (dialect.name, dialect.driver) == ("postgresql", "psycopg"):
            quote = dialect.identifier_preparer.quote
            names = ", ".join(quote(column) for column in self.columns)
            table = dialect.identifier_preparer.format_table(stmt.table)
            self.copy = f"COPY {table} ({names}) FROM STDIN"

    def values(self, rows: Iterable[dict[str, Any]]) -> Iterator[tuple[Any, ...]]:
        """Each row's DBAPI values in the order the SQL takes them (missing columns: None)."""
        return map(self.row_values, rows)

    def params(self, rows: Iterable[dict[str, Any]]) -> list[Any]:
        """DBAPI parameters of these rows: tuples or dicts, as the dialect takes them."""
        if self.positional:
            return list(map(self.row_values, rows))
        names = self.names
        return [dict(zip(names, values, strict=True)) for values in self.values(rows)]


#: How SQLAlchemy's SQLite ``DATETIME`` writes a time, unless told otherwise.
_SQLITE_DATETIME_FORMAT = (
    "%(year)04d-%(month)02d-%(day)02d %(hour)02d:%(minute)02d:%(second)02d.%(microsecond)06d"
)


def _sqlite_utc_datetime(bind: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """:class:`~projections.sqltypes.UTCDateTime`'s SQLite bind processor, written out: a
    UTC time (what the read models hold) becomes SQLAlchemy's text in one ``isoformat``
    (``bind``, the stock processor, takes anything else: same text, same errors)."""

    def process(value: Any) -> Any:
        if type(value) is datetime and value.tzinfo is UTC:
            text = value.isoformat(" ")  # "...[.ffffff]+00:00"
            return text[:-6] if value.microsecond else text[:-6] + ".000000"
        return bind(value)

    return process


def _faster_processor(type_: Any, dialect: Dialect) -> _Processor:
    """A faster equivalent of a column type's bind processor, where there is one."""
    if dialect.name != "sqlite" or not isinstance(type_, UTCDateTime):
        return None
    impl = type_.impl_instance.dialect_impl(dialect)
    if getattr(impl, "_storage_format", None) != _SQLITE_DATETIME_FORMAT:
        return None  # pragma: no cover - a DATETIME told to write another format
    bind = type_.dialect_impl(dialect).bind_processor(dialect)
    return None if bind is None else _sqlite_utc_datetime(bind)


def _is_hex_uuid(type_: Any, dialect: Dialect) -> bool:
    """A ``Uuid(as_uuid=True)`` stored as text (SQLite): its bind processor is ``value.hex``."""
    return (
        isinstance(type_, Uuid)
        and bool(type_.as_uuid)
        and (not dialect.supports_native_uuid or not type_.native_uuid)
    )


def _row_function(
    parameters: Sequence[tuple[str, _Processor, bool]],
) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
    """``row -> tuple of DBAPI values``, one expression compiled for a statement: each
    parameter is ``row.get(column)`` through its bind processor (a UUID stored as text is
    read as ``.hex`` in place, which is all its processor does). A rebuild writes every row
    of a read model through this, so it is written out rather than looped over, and the
    columns are taken with one ``itemgetter`` (``.get`` only for a row missing some)."""
    namespace: dict[str, Any] = {}
    items = []
    for i, (_column, process, hex_uuid) in enumerate(parameters):
        if hex_uuid:
            items.append(f"(None if (x{i} := v[{i}]) is None else x{i}.hex)")
        elif process is not None:
            namespace[f"p{i}"] = process
            items.append(f"p{i}(v[{i}])")
        else:
            items.append(f"v[{i}]")
    columns = [column for column, _, _ in parameters]
    if len(columns) > 1:
        # A row with every column (the usual case) is read in one C call; a row leaving
        # some out reads those as None.
        namespace["every"] = itemgetter(*columns)
        gets = ", ".join(f"g({column!r})" for column in columns)
        source = (
            "def row_values(row):\n"
            "    try:\n"
            "        v = every(row)\n"
            "    except KeyError:\n"
            "        g = row.get\n"
            f"        v = ({gets},)\n"
            f"    return ({', '.join(items)},)\n"
        )
    else:
        source = (
            f"def row_values(row):\n    v = (row.get({columns[0]!r}),)\n    return ({items[0]},)\n"
        )
    exec(source, namespace)  # built from the table's own column names
    function: Callable[[dict[str, Any]], tuple[Any, ...]] = namespace["row_values"]
    return function


_PRECOMPILED: dict[tuple[Table, str, str, str, str], _Precompiled] = {}


def _precompiled(dialect: Dialect, table: Table, kind: str) -> _Precompiled:
    cache_key = (table, kind, dialect.name, dialect.driver, dialect.paramstyle)
    found = _PRECOMPILED.get(cache_key)
    if found is not None:
        return found
    keys = [c.name for c in table.primary_key.columns]
    where = and_(*(table.c[c] == bindparam(f"k_{c}") for c in keys))
    stmt: ClauseElement
    if kind == "insert":
        columns = {c.name: c.name for c in table.columns}
        stmt = insert(table)
    elif kind == "update":
        values: dict[str, Any] = {
            c.name: bindparam(f"v_{c.name}") for c in table.columns if c.name not in keys
        }
        columns = {f"k_{c}": c for c in keys} | {f"v_{c}": c for c in values}
        stmt = update(table).where(where).values(values)
    elif kind == "delete":
        columns = {f"k_{c}": c for c in keys}
        stmt = delete(table).where(where)
    else:
        raise ValueError(kind)
    found = _PRECOMPILED[cache_key] = _Precompiled(stmt, dialect, columns)
    return found


def execute_many(session: Session, table: Table, kind: str, rows: Sequence[dict[str, Any]]) -> None:
    """``kind`` (``insert``, ``update`` or ``delete``) one row each of ``rows`` (column
    name to value; for ``delete``, the primary key), as one DBAPI ``executemany`` of SQL
    compiled once per table and dialect (on PostgreSQL with psycopg, inserts are one
    ``COPY``). Values go through their column types' bind processors, as with
    ``session.execute``; a column a row leaves out gets None (SQL NULL; JSON ``null`` in
    a JSON column, as SQLAlchemy binds None there)."""
    if not rows:
        return
    connection = session.connection()
    stmt = _precompiled(connection.dialect, table, kind)
    if stmt.copy is not None:
        cursor: Any = connection.connection.cursor()
        try:
            with cursor.copy(stmt.copy) as copy:
                for values in stmt.values(rows):
                    copy.write_row(values)
        finally:
            cursor.close()
        return
    if len(rows) <= ROWS_PER_EXECUTE:
        params = stmt.params(rows)
        if stmt.key_order is not None and len(params) >= KEY_ORDER_MIN_ROWS:
            _in_key_order(params, stmt.key_order)
        connection.exec_driver_sql(stmt.sql, params)
        return
    # Many rows (a rebuild writing a table): their parameters are made and sent a slice
    # at a time, so the rows are not held twice over (as dicts and as tuples) at the peak.
    if stmt.row_key_order is not None:
        rows = _rows_in_key_order(rows, stmt.row_key_order)
    for start in range(0, len(rows), ROWS_PER_EXECUTE):
        connection.exec_driver_sql(stmt.sql, stmt.params(rows[start : start + ROWS_PER_EXECUTE]))


#: Rows from which an INSERT on SQLite sends them in primary-key order.
KEY_ORDER_MIN_ROWS = 1_000
#: Rows made into parameters and sent per ``executemany`` at most: a rebuild writes a
#: chunk of several hundred thousand rows, and their parameters (a tuple of values each)
#: would cost about as much memory again as the rows, all at once.
ROWS_PER_EXECUTE = 10_000


def _rows_in_key_order(
    rows: Sequence[dict[str, Any]], key: Callable[[dict[str, Any]], Any]
) -> Sequence[dict[str, Any]]:
    """The rows sorted by primary key as Python values (for the key types the read models
    use, text, integers, UUIDs and UTC times, the order their stored forms sort in), or as
    they were if the keys do not compare or a row lacks one (the INSERT refuses it then)."""
    try:
        return sorted(rows, key=key)
    except (TypeError, KeyError):
        return rows


def _in_key_order(params: list[Any], key: Callable[[tuple[Any, ...]], Any]) -> None:
    """Sort an INSERT's rows by primary key (as DBAPI values: text, numbers), in place.

    SQLite adds rows to the primary key's B-tree (a table's own, or the index of a text
    key) one at a time: in key order each lands on the page the one before it did, rather
    than on a random page of a tree larger than the page cache. A rebuild's tables, written
    at once, take about a quarter less time so. Values that do not compare (none should: a
    key is never NULL) leave the rows as they were."""
    with suppress(TypeError):  # a NULL in a primary key: the INSERT refuses it anyway
        params.sort(key=key)


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
        self._single_key = self.key_columns[0] if len(self.key_columns) == 1 else None
        self._complete = False

    @property
    def complete(self) -> bool:
        """Whether every row of the table is in this cache (a rebuild folding the log into
        empty tables): a key not cached is then not stored, and nothing is read. Every
        row held is then new, so nothing is tracked: :meth:`write` inserts them all."""
        return self._complete

    @complete.setter
    def complete(self, value: bool) -> None:
        if value and self._complete != value and self._rows:
            raise ValueError("rows are cached: a table is held complete from empty only")
        self._complete = value

    def _key_of(self, row: Row) -> Hashable:
        single = self._single_key
        if single is not None:
            key: Hashable = row[single]
            return key
        return tuple(row[c] for c in self.key_columns)

    def _where(self, key: Hashable) -> Any:
        if len(self.key_columns) == 1:
            return self.table.c[self.key_columns[0]] == key
        assert isinstance(key, tuple)
        return and_(*(self.table.c[c] == v for c, v in zip(self.key_columns, key, strict=True)))

    def prefetch(self, keys: Iterable[Hashable]) -> None:
        """Load the rows for these keys (those not already cached) in few queries."""
        if self.complete:
            return
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
            if self.complete:
                self._rows[key] = None
                return
            RowCache.single_row_reads += 1
            found = self.session.execute(select(self.table).where(self._where(key))).mappings()
            first = found.first()
            self._rows[key] = dict(first) if first is not None else None
            if first is not None:
                self._stored[key] = dict(first)

    def get(self, key: Hashable) -> Row | None:
        """The row with this key, or None; changes to it are written at :meth:`write`."""
        if self._complete:  # every row held is new, and written whole
            return self._rows.get(key)
        self._load(key)
        row = self._rows[key]
        if row is not None:
            self._dirty.add(key)
        return row

    def put(self, row: Row, *, new: bool = False) -> Row:
        """Add or replace a whole row. ``new=True`` promises no such row is stored yet
        (saves a lookup; a broken promise fails the batch on the primary key)."""
        key = self._key_of(row)
        if self._complete:
            self._rows[key] = row
            return row
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
        if self._complete:  # nothing stored: it just is not inserted
            self._rows[key] = None
            return
        if key in self._fresh:
            self._fresh.discard(key)
        else:
            self._deleted.add(key)
        self._rows[key] = None
        self._dirty.discard(key)

    def __len__(self) -> int:
        """Rows held (cached, added or marked deleted): what the cache costs in memory."""
        return len(self._rows)

    def rows(self) -> Iterator[Row]:
        """Every row currently cached (loaded or added)."""
        return (row for row in self._rows.values() if row is not None)

    def write(self) -> None:
        """Insert new rows, update changed ones, delete removed ones; then forget them.

        A complete cache (see :attr:`complete`) inserts every row it holds, and is no longer
        complete after: its rows are stored now."""
        if self._complete:
            held = [row for row in self._rows.values() if row is not None]
            execute_many(self.session, self.table, "insert", held)
            self._rows.clear()
            self._complete = False
            return
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
        if self._deleted:
            execute_many(
                self.session, self.table, "delete", [self._key_row(k) for k in self._deleted]
            )
        execute_many(self.session, self.table, "insert", inserts)
        execute_many(self.session, self.table, "update", updates)
        self._rows.clear()
        self._stored.clear()
        self._dirty.clear()
        self._deleted.clear()
        self._fresh.clear()

    def _key_row(self, key: Hashable) -> dict[str, Any]:
        if len(self.key_columns) == 1:
            return {self.key_columns[0]: key}
        assert isinstance(key, tuple)
        return dict(zip(self.key_columns, key, strict=True))
