"""``crm report``: formats, 80 columns, catching up out loud, and the newcomer's surprises."""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal
from pathlib import Path

import pytest
from rich.console import Console

from adapters.cli import main
from adapters.cli import reports as report_module
from adapters.cli.options import OutputFormat
from adapters.cli.render import Section, render
from crm_domain.application import CRM


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_tables_at_80_columns_keep_every_figure_whole() -> None:
    section = Section(
        "Open opportunities",
        ("opportunity", "account", "owner", "stage", "amount", "weighted", "close by"),
    )
    for i in range(3):
        section.add(
            f"{i} x rack servers for the new data centre in the east",
            "Manufacturing Group International Holdings",
            "zhang.min",
            "needs_analysis",
            Decimal("231000.00") * (i + 1),
            {"CNY": Decimal("92400.00"), "USD": Decimal("1200.50")},
            "2027-03-31",
        )
    out = io.StringIO()
    render([section], OutputFormat.TABLE, console=Console(file=out, width=80))
    text = out.getvalue()
    assert max(len(line) for line in text.splitlines()) <= 80
    for figure in ("231,000.00", "462,000.00", "693,000.00", "92,400.00 CNY", "1,200.50 USD"):
        assert figure in text, text
    assert "…" not in text


def test_json_and_csv_keep_amounts_exact(
    small_store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(["report", "customer", "ACME", "--store", small_store, "-f", "json"], capsys)
    assert code == 0
    document = json.loads(out)
    card = {row["field"]: row["value"] for row in document[0]["rows"]}
    assert document[0]["title"] == "Acme Ltd (ACME)"
    assert card["manager"] == "li.wei"
    code, out, _ = run(["report", "pipeline", "--store", small_store, "--format", "csv"], capsys)
    assert code == 0
    blocks = out.split("\n\n")
    assert blocks[0].startswith("# Open pipeline by stage\nstage,open,amount,weighted")
    rows = list(csv.reader(io.StringIO(blocks[3])))
    assert rows[0] == ["# Win rate"]
    assert rows[2] == ["won / lost", "0 / 0"]


def test_json_amounts_are_decimal_strings() -> None:
    section = Section("Pareto (USD)", ("measure", "value"), measures=True)
    section.add("total revenue", Decimal("2500315.63"))
    out = io.StringIO()
    render([section], OutputFormat.JSON, stream=out)
    assert json.loads(out.getvalue()) == [
        {"title": "Pareto (USD)", "rows": [{"measure": "total revenue", "value": "2500315.63"}]}
    ]


def test_customer_codes_are_found_in_any_case(
    small_store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(["report", "customer", "acme", "--store", small_store], capsys)
    assert code == 0, err
    assert "Acme Ltd (ACME)" in out


def test_handover_of_a_manager_without_customers_says_why(
    small_store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    crm = CRM(small_store)
    try:
        acme = crm.customer_by_code("ACME").id
        with crm.context(actor="sales.director"):
            crm.assign_customer_manager(acme, manager="zhang.min", reason="li.wei left")
    finally:
        crm.close()
    code, out, _ = run(["report", "handover", "li.wei", "--store", small_store], capsys)
    assert code == 0
    flat = " ".join(out.split())
    assert "li.wei manages no customers" in flat
    assert "zhang.min (1)" in flat


def test_a_report_that_has_to_catch_up_says_so_with_counts(
    small_store: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(report_module, "ANNOUNCE_LAG", 1)
    crm = CRM(small_store)
    head = crm.app.recorder.max_notification_id()
    crm.close()
    code, out, err = run(["report", "value", "--store", small_store], capsys)
    assert code == 0
    assert f"the read models are {head:,} events behind the store" in err
    assert f"catching up: {head:,}/{head:,} events (100.0%)" in err  # not a terminal: plain
    assert "no booked revenue yet" in out
    # now current: nothing to announce
    code, out, err = run(["report", "value", "--store", small_store], capsys)
    assert code == 0
    assert "catching up" not in err


def test_status_as_json(small_store: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["projections", "status", "--store", small_store, "-f", "json"], capsys)
    assert code == 0
    rows = json.loads(out)[0]["rows"]
    assert {r["read_model"] for r in rows} >= {"customer360", "pipeline", "handover"}
    assert all(r["lag"] == r["head"] for r in rows)


def test_reports_do_not_create_a_store_in_an_empty_folder(
    clean_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(["report", "pipeline"], capsys)
    assert code == 2
    assert "no store at sqlite:///crm.sqlite" in err
    assert list(clean_env.iterdir()) == []
