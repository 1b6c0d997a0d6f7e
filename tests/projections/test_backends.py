"""Runner, rebuild, status, reports and the CLI against SQLite and PostgreSQL."""

from __future__ import annotations

import io
from typing import Any

import pytest
from projection_history import known_history
from rich.console import Console

from adapters.cli import main
from crm_domain.application import CRM
from projections.customer360 import Customer360Queries
from projections.pipeline import PipelineQueries
from projections.rebuild import rebuild, rebuild_with_progress
from projections.reports import print_reports
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


def test_rebuild_status_and_reports(store_url: str) -> None:
    app = CRM(store_url)
    known = known_history(app)
    head = app.recorder.max_notification_id()
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
    print_reports(store_url, console)
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
    with pytest.raises(SystemExit):
        main(["projections", "rebuild", "nonsense", *store])


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
