"""SQLite links a single event in one statement (its links hashed by a SQL function): the
rows are byte for byte the ones the Python path (``link_batch``) computes, on connections
that have never seen the function, and a position already chained still refuses the write."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from uuid import uuid4

import pytest
from eventsourcing.persistence import StoredEvent

from crm_domain.errors import TamperDetectedError
from crm_domain.infrastructure.hashchain import ChainTable, chain_sqlite, link_batch

TABLE = "stored_events_chain"


def _connect(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None)
    for statement in ChainTable(TABLE).sqlite_create():
        connection.execute(statement)
    return connection


def _events() -> list[StoredEvent]:
    a, b = uuid4(), uuid4()
    keys = [(a, 1), (b, 1), (a, 2), (a, 3), (b, 2), (a, 4)]
    return [
        StoredEvent(originator_id=o, originator_version=v, topic="t", state=b'{"n":%d}' % i)
        for i, (o, v) in enumerate(keys)
    ]


def test_one_event_rows_equal_the_python_links(tmp_path: Path) -> None:
    events = _events()
    expected = link_batch(events, range(1, len(events) + 1), None, {})
    for position, event in enumerate(events, start=1):
        # A new connection each time: the hash function is registered on first use.
        connection = _connect(tmp_path / "chain.db")
        chain_sqlite(connection.cursor(), TABLE, [event], [position])
        connection.close()
    rows = _connect(tmp_path / "chain.db").execute(f"SELECT * FROM {TABLE} ORDER BY position")
    assert [(p, o, v, bytes(e), bytes(a), bytes(c)) for p, o, v, e, a, c in rows] == expected


def test_a_chained_position_is_refused_on_the_one_statement_path(tmp_path: Path) -> None:
    connection = _connect(tmp_path / "chain.db")
    event = _events()[0]
    chain_sqlite(connection.cursor(), TABLE, [event], [1])
    with pytest.raises(TamperDetectedError):
        chain_sqlite(connection.cursor(), TABLE, [event], [1])
