"""Runner, rebuild, status, reports and the CLI against SQLite and PostgreSQL."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import Any

import pytest
from projection_history import known_history
from rich.console import Console

from adapters.cli import main
from adapters.cli.options import OutputFormat
from adapters.cli.render import render
from adapters.cli.reports import current_read_models, pipeline_report, service_report
from crm_domain.application import CRM
from projections.customer360 import Customer360Queries
from projections.pipeline import PipelineQueries
from projections.rebuild import rebuild, rebuild_with_progress
from projections.runner import follow, open_view
from projections.status import status
from projections.timeline import TimelineQueries


def test_runner_follows_the_store_live(store_url: str) -> None:
    app = CRM(store_url)
    known = known_history(app)
    with follow(store_url) as runner:
        runner.wait_until_current(timeout=30)
        q = Customer360Queries(runner.view.engine)
        assert q.get(known.acme).contacts_logged == 3
        app.log_contact(known.acme, channel="visit", direction="outbound", summary="visit")
        runner.wait_until_current(timeout=10)
        assert q.get(known.acme).contact_counts == {"phone": 2, "email": 1, "visit": 1}
        assert set(runner.positions.values()) == {runner.head()}
    app.close()


def test_a_stopped_runner_gives_back_its_connections(store_url: str) -> None:
    app = CRM(store_url)
    known = known_history(app)
    app.close()
    with follow(store_url) as runner:
        runner.wait_until_current(timeout=30)
    pool: Any = runner.view.engine.pool
    assert pool.checkedin() == 0
    assert pool.checkedout() == 0
    # the engine still answers queries after the runner stopped
    assert Customer360Queries(runner.view.engine).get(known.acme).contacts_logged == 3


def test_rebuild_status_and_reports(store_url: str) -> None:
    app = CRM(store_url)
    known = known_history(app)
    head = app.app.recorder.max_notification_id()
    assert {s.name: s.position for s in status(store_url)} == dict.fromkeys(
        ["customer360", "timeline", "pipeline", "service_desk", "customer_value", "handover"]
    )
    seen: list[tuple[int, int]] = []
    result = rebuild(
        store_url, read_models=["pipeline"], on_progress=lambda d, t: seen.append((d, t))
    )
    assert result.read_models == ["pipeline"]
    assert result.events == head
    assert seen[-1] == (head, head)
    report = {s.name: (s.position, s.lag) for s in status(store_url)}
    assert report["pipeline"] == (head, 0)
    assert report["timeline"] == (None, head)
    view = open_view(store_url, read_models=["pipeline"])
    assert PipelineQueries(view.engine).win_rate().won == 1
    # a second rebuild starts from nothing and ends with the same answers
    app.log_contact(known.bob, channel="sms", direction="inbound", summary="thanks")
    out = io.StringIO()
    rebuild_with_progress(store_url, read_models=None, console=Console(file=out), stream=out)
    text = out.getvalue()
    assert f"{head + 1}/{head + 1} notifications (100.0%)" in text  # plain log, not a terminal
    assert all(s.lag == 0 for s in status(store_url))
    timeline = TimelineQueries(open_view(store_url).engine).for_customer(known.bob)
    assert timeline.items[0].summary == "inbound sms: thanks"
    console = Console(file=io.StringIO(), width=120)
    with current_read_models(store_url, None) as engine:
        sections = pipeline_report(engine) + service_report(engine, now=datetime.now(UTC))
        render(sections, OutputFormat.TABLE, console=console)
    printed = console.file.getvalue()  # type: ignore[attr-defined]
    assert "Open pipeline by stage" in printed
    assert "Service measures" in printed
    app.close()


def test_cli_commands(store_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    app = CRM(store_url)
    known = known_history(app)
    app.close()
    store = ["--store", store_url]
    assert main(["projections", "status", *store]) == 0
    assert "customer360" in capsys.readouterr().out
    assert main(["projections", "rebuild", "customer360", *store]) == 0
    assert "rebuilt customer360" in capsys.readouterr().out
    assert main(["projections", "rebuild", *store]) == 2
    assert main(["projections", "rebuild", "--all", "--workers", "2", *store]) == 0
    # SQLite has one writer: its fast rebuild folds in one process whatever --workers says
    parallel = not store_url.startswith("sqlite")
    assert ("2 worker processes" in capsys.readouterr().out) == parallel
    assert main(["projections", "rebuild", "--all", "--workers", "0", *store]) == 2
    for args in (
        ["pipeline"],
        ["service"],
        ["value"],
        ["customer", "ACME"],
        ["customer", str(known.bob)],
        ["handover", "li"],
    ):
        assert main(["report", *args, *store]) == 0, args
        printed = capsys.readouterr().out
        assert printed.strip(), args
    assert main(["report", "customer", "NOBODY", *store]) == 1
    assert "no customer NOBODY" in capsys.readouterr().err
    assert main(["projections", "rebuild", "nonsense", *store]) == 2


def test_views_can_live_in_another_database(store_url: str, tmp_path: Any) -> None:
    app = CRM(store_url)
    known = known_history(app)
    views = f"sqlite:///{tmp_path / 'views.sqlite'}"
    with follow(store_url, views_url=views, read_models=["customer360"]) as runner:
        runner.wait_until_current(timeout=30)
    assert (
        Customer360Queries(open_view(store_url, views_url=views).engine).get(known.acme).manager
        == "li"
    )
    assert status(store_url, read_models=["customer360"])[0].position is None
    app.close()


def test_row_writes_read_back_what_was_written(store_url: str) -> None:
    """RowCache writes (precompiled executemany; COPY on PostgreSQL) convert every column
    type as SQLAlchemy would: UUIDs, amounts, aware times, dates, booleans, JSON, NULLs."""
    from datetime import UTC, date, datetime, timedelta, timezone
    from decimal import Decimal
    from uuid import uuid4

    from sqlalchemy import JSON, Boolean, Column, Date, MetaData, String, Table, Uuid, select
    from sqlalchemy.orm import Session

    from projections.rows import RowCache, execute_many
    from projections.sqltypes import Amount, UTCDateTime

    table = Table(
        "rows_roundtrip",
        MetaData(),
        Column("id", Uuid, primary_key=True),
        Column("name", String(100), nullable=False),
        Column("amount", Amount),
        Column("at", UTCDateTime),
        Column("day", Date),
        Column("flag", Boolean),
        Column("data", JSON),
        Column("other", Uuid),
    )
    view = open_view(store_url)
    table.create(view.engine)
    ids = [uuid4() for _ in range(3)]
    at = datetime(2024, 5, 1, 12, 30, 0, 123456, tzinfo=timezone(timedelta(hours=2)))
    first = {
        "id": ids[0],
        "name": 'it\'s 100% \\ "quoted"\ttab',
        "amount": Decimal("12.3456"),
        "at": at,
        "day": date(2024, 5, 1),
        "flag": True,
        "data": {"a": [1, "x"], "b": None},
        "other": ids[1],
    }
    with Session(view.engine) as session, session.begin():
        execute_many(session, table, "insert", [first, {"id": ids[1], "name": "sparse"}])
        rows = RowCache(session, table)
        rows.put({"id": ids[2], "name": "third", "flag": False}, new=True)
        rows.write()
    with Session(view.engine) as session, session.begin():
        rows = RowCache(session, table)
        rows.prefetch(ids)
        changed = rows.get(ids[1])
        assert changed is not None
        changed.update(amount=Decimal("-0.0001"), data=[])
        rows.delete(ids[2])
        rows.write()
    with view.engine.connect() as conn:
        found = {r.id: r._asdict() for r in conn.execute(select(table))}
    assert set(found) == {ids[0], ids[1]}
    assert found[ids[0]] == {**first, "at": at.astimezone(UTC)}
    assert found[ids[1]] == {
        "id": ids[1],
        "name": "sparse",
        "amount": Decimal("-0.0001"),
        "at": None,
        "day": None,
        "flag": None,
        "data": [],
        "other": None,
    }
    view.engine.dispose()
