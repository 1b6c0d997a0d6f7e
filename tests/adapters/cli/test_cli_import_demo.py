"""``crm import cdnow`` counts as it goes; ``crm demo`` names the ``crm`` that ran it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from adapters.cli import main
from adapters.cli.demo import command_name

SAMPLE = """customer_id date cds value
00001 19970101 1 11.77
00002 19970112 1 12.00
00002 19970112 5 77.00
00003 19970102 2 20.76
00003 19970330 2 20.76
"""


def test_import_shows_counts_and_is_safe_to_rerun(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "CDNOW_master.txt"
    log.write_text(SAMPLE)
    store = f"sqlite:///{tmp_path / 'cdnow.sqlite'}"
    assert main(["import", "cdnow", str(log), "--store", store]) == 0
    captured = capsys.readouterr()
    assert "importing CDNOW_master.txt: 3/3 customers (100.0%)" in captured.err
    assert "imported 3 customers and 5 purchases (142.29 USD)" in captured.out
    assert main(["import", "cdnow", str(log), "--store", store]) == 0
    out = capsys.readouterr().out
    assert "imported 0 customers and 0 purchases (0.00 USD)" in out
    assert "3 customers were already there, 5 purchases were already imported" in out
    # the next log: a new purchase of customer 00003 is stored, beside a new customer
    log.write_text(SAMPLE + "00003 19970410 1 9.99\n00004 19970411 1 5.00\n")
    assert main(["import", "cdnow", str(log), "--store", store]) == 0
    out = capsys.readouterr().out
    assert "imported 1 customers and 2 purchases (14.99 USD)" in out
    assert "3 customers were already there, 5 purchases were already imported" in out


def test_a_malformed_purchase_log_names_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "broken.txt"
    log.write_text(SAMPLE + "00004 1997-01-01 1 x\n")
    store = f"sqlite:///{tmp_path / 'cdnow.sqlite'}"
    assert main(["import", "cdnow", str(log), "--store", store]) == 1
    err = capsys.readouterr().err
    assert f"{log}:7: not a CDNOW purchase" in err
    assert "Traceback" not in err


def test_the_demo_hint_names_the_crm_that_ran_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = tmp_path / ".venv" / "bin" / "crm"
    script.parent.mkdir(parents=True)
    script.write_text("")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [str(script), "demo"])
    monkeypatch.setenv("PATH", str(tmp_path / "elsewhere"))
    assert command_name() == ".venv/bin/crm"
    monkeypatch.setenv("PATH", str(script.parent))
    script.chmod(0o755)
    assert command_name() == "crm"  # on PATH: the short name works
