"""Every ``crm`` command over a table of bad inputs: the exit code the README promises, a
message naming the problem, and never a traceback (issue 8)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from adapters.cli import main

MISSING = "sqlite:////nonexistent/dir/x.sqlite"


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out + captured.err


#: (arguments, exit code, words the message must contain). ``{store}`` is a small store,
#: ``{absent}`` an SQLite path in an existing folder where no store exists.
BAD_INPUTS: list[tuple[list[str], int, str]] = [
    (["demo", "--store", "foo://bar"], 2, "unsupported store URL 'foo://bar'"),
    (["demo", "--store", "sqlite://"], 2, "names no SQLite file"),
    (["demo", "--store", MISSING], 2, "/nonexistent/dir does not exist"),
    (["demo", "--customers", "0"], 2, "--customers"),
    (["import", "cdnow", "/nonexistent.txt"], 2, "does not exist"),
    (["import", "cdnow", "/nonexistent.txt", "--store", "foo://bar"], 2, "does not exist"),
    (["report", "pipeline", "--store", "{absent}"], 2, "no store at"),
    (["report", "service", "--store", "{absent}"], 2, "no store at"),
    (["report", "value", "--store", "{absent}"], 2, "no store at"),
    (["report", "customer", "ACME", "--store", "{absent}"], 2, "no store at"),
    (["report", "handover", "li.wei", "--store", "{absent}"], 2, "no store at"),
    (["report", "pipeline", "--store", MISSING], 2, "no store at"),
    (["report", "pipeline", "--store", "{store}", "--format", "xml"], 2, "'xml'"),
    (["report", "customer", "NOBODY", "--store", "{store}"], 1, "no customer NOBODY"),
    (["report", "pipeline"], 2, "no store at sqlite:///crm.sqlite"),
    (["projections", "status"], 2, "no store at sqlite:///crm.sqlite"),
    (["projections", "status", "--store", "foo://bar"], 2, "unsupported store URL"),
    (["projections", "rebuild", "--all", "--store", "{absent}"], 2, "no store at"),
    (["projections", "rebuild", "--store", "{store}"], 2, "name ONE read model or give --all"),
    (["projections", "rebuild", "nosuch", "--store", "{store}"], 2, "no read model 'nosuch'"),
    (["projections", "rebuild", "--all", "--workers", "0", "--store", "{store}"], 2, "--workers"),
    (["projections", "run", "--only", "nosuch", "--store", "{store}"], 2, "no read model"),
    (["relay", "kafka", "--store", "{store}"], 2, "--bootstrap"),
    (["relay", "kafka", "--store", "foo://bar", "--bootstrap", "h:1"], 2, "unsupported store"),
    (
        ["relay", "kafka", "--store", "{store}", "--bootstrap", "h:1", "--routing", "/no.toml"],
        2,
        "does not exist",
    ),
    (
        ["relay", "kafka", "--store", "{store}", "--bootstrap", "h:1", "--format", "xml"],
        2,
        "'xml'",
    ),
    (["consume", "kafka", "--store", "{store}"], 2, "--bootstrap"),
    (
        ["consume", "kafka", "--bootstrap", "h:1", "--sasl-password-file", "/nonexistent"],
        2,
        "does not exist",
    ),
    (
        ["consume", "kafka", "--bootstrap", "h:1", "--security-protocol", "SMOKE"],
        2,
        "security_protocol",
    ),
    (["settings", "show", "--store", "sqlite://"], 2, "names no SQLite file"),
    (["nosuch"], 2, "No such command"),
]


@pytest.mark.parametrize(("argv", "code", "words"), BAD_INPUTS, ids=lambda v: str(v))
def test_bad_input_gives_exit_code_and_message(
    argv: list[str],
    code: int,
    words: str,
    small_store: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    absent = f"sqlite:///{tmp_path / 'absent.sqlite'}"
    argv = [a.format(store=small_store, absent=absent) for a in argv]
    got, output = run(argv, capsys)
    assert got == code, output
    assert words in " ".join(output.replace("│", " ").split()), output
    assert "Traceback" not in output
    assert not (tmp_path / "absent.sqlite").exists(), "a read-only command created a store"
    assert not (tmp_path / "work" / "crm.sqlite").exists(), "a command created ./crm.sqlite"


def test_a_bad_store_in_the_environment_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CRM_STORE_URL", "foo://bar")
    code, output = run(["report", "pipeline"], capsys)
    assert code == 2
    assert "CRM_STORE_URL" in output
    assert "unsupported store URL" in output


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("path", "words"),
    [
        ("postgres@{host}/crm_no_such_database", "database 'crm_no_such_database' does not exist"),
        ("crm_no_such_role@{host}/postgres", "refused user 'crm_no_such_role'"),
    ],
)
def test_a_missing_postgres_database_or_role_is_said_at_once(
    path: str, words: str, postgres_server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from psycopg.conninfo import conninfo_to_dict

    params = conninfo_to_dict(postgres_server)
    host = f"{params.get('host', '127.0.0.1')}:{params.get('port', '5432')}"
    started = time.monotonic()
    code, output = run(["demo", "--store", "postgresql://" + path.format(host=host)], capsys)
    assert code == 2, output
    assert words in output
    assert "unreachable" not in output
    assert time.monotonic() - started < 5  # was a 10 s wait, then "unreachable"


@pytest.mark.postgres
def test_reports_refuse_a_postgres_database_without_events(
    postgres_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, output = run(["report", "pipeline", "--store", postgres_url], capsys)
    assert code == 2
    assert "holds no CRM events" in output


def test_an_unreachable_postgres_is_exit_code_3(capsys: pytest.CaptureFixture[str]) -> None:
    store = "postgresql://postgres@127.0.0.1:1/none?connect_timeout=1"
    code, output = run(["projections", "status", "--store", store], capsys)
    assert code == 3
    assert "the store is unreachable" in output


def test_postgres_without_psycopg_names_the_extra(tmp_path: Path) -> None:
    """On a plain install (no ``crm-core[postgres]``) a PostgreSQL store says what to install."""
    script = (
        "import sys; sys.modules['psycopg'] = None\n"
        "from adapters.cli import main\n"
        "raise SystemExit(main(['demo', '--store', 'postgresql://u@127.0.0.1/db']))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert result.returncode == 2, result.stderr
    assert "pip install 'crm-core[postgres]'" in result.stderr
    assert "Traceback" not in result.stderr


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    import adapters
    import crm_domain
    import projections

    code, output = run(["--version"], capsys)
    assert code == 0
    assert output.strip() == f"crm-core {crm_domain.__version__}"
    assert crm_domain.__version__ == projections.__version__ == adapters.__version__
    assert crm_domain.__version__[0].isdigit()


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    code, output = run(["--help"], capsys)
    assert code == 0
    for command in ("demo", "projections", "report", "relay", "consume", "import", "settings"):
        assert command in output
    assert "--install-completion" in output  # shell completion


def test_every_command_names_the_store_option_the_same_way(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from adapters.cli.options import STORE_HELP

    first_words = " ".join(STORE_HELP.split()[:4])
    for argv in (
        ["demo"],
        ["import", "cdnow"],
        ["projections", "run"],
        ["projections", "rebuild"],
        ["projections", "status"],
        ["report", "pipeline"],
        ["report", "customer"],
        ["relay", "kafka"],
        ["consume", "kafka"],
        ["settings", "show"],
    ):
        code, output = run([*argv, "--help"], capsys)
        assert code == 0, argv
        flat = " ".join(output.replace("│", " ").split())
        assert "--store" in flat, argv
        assert first_words in flat, argv
