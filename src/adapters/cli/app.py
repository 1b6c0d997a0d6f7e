"""The ``crm`` command line: one typer app, its global options, and the one error mapping.

Every command raises errors from :mod:`crm_domain.errors` (or a usage error); this module
alone turns them into a message on stderr and an exit code
(:func:`adapters.exit_codes.exit_code_for`): 0 ok, 1 the CRM said no, 2 usage or
configuration, 3 a service stayed unreachable (or a report's read models are being
rebuilt). Nothing an ordinary mistake causes ends in a traceback.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from adapters.cli.audit import audit_app
from adapters.cli.demo import demo
from adapters.cli.forget import forget_app
from adapters.cli.importing import import_app
from adapters.cli.kafka import consume_app, relay_app
from adapters.cli.lifecycle import handover, lifecycle_app
from adapters.cli.orders import orders_app
from adapters.cli.projections import projections_app
from adapters.cli.quotes import quotes_app
from adapters.cli.reports import report_app
from adapters.cli.settings import settings_app
from adapters.cli.sla import sla_app
from adapters.exit_codes import UNAVAILABLE, exit_code_for
from crm_domain.errors import CRMError

#: Loggers of the Kafka client library: silent unless asked for (``-v``, ``-vv``). The
#: adapters report a broker that stays unreachable themselves, once, as an error.
KAFKA_LOGGERS = ("kafka",)
#: Our own loggers.
CRM_LOGGERS = ("adapters", "projections", "crm_domain")
#: Interrupted by Ctrl-C (128 + SIGINT), as shells report it.
INTERRUPTED = 130


def package_version() -> str:
    """The installed crm-core version (``unknown`` when run from a source tree)."""
    try:
        return version("crm-core")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "unknown"


def _store_failure(exc: BaseException) -> str | None:
    """A message if ``exc`` is a database driver's "cannot reach / open the store" error."""
    names = {f"{c.__module__}.{c.__qualname__}" for c in type(exc).__mro__}
    driver_errors = {
        "sqlite3.OperationalError",
        "sqlalchemy.exc.OperationalError",
        "sqlalchemy.exc.InterfaceError",
        "psycopg.OperationalError",
        "psycopg_pool.PoolTimeout",
        "eventsourcing.persistence.OperationalError",
        "eventsourcing.persistence.InterfaceError",
    }
    if names & driver_errors:
        text = str(exc).strip().splitlines()
        return f"the store is unreachable or cannot be opened: {text[0] if text else exc!r}"
    return None


def fail(message: str, code: int) -> None:
    """Say what went wrong on stderr and stop with ``code``."""
    typer.echo(f"crm: {message}", err=True)
    raise typer.Exit(code)


class CRMGroup(TyperGroup):
    """The root command: maps every error a command raises to a message and an exit code."""

    def invoke(self, ctx: Any) -> Any:  # click.Context (typer may vendor click)
        try:
            return super().invoke(ctx)
        except CRMError as exc:
            fail(str(exc), exit_code_for(exc))
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            raise typer.Exit(INTERRUPTED) from None
        except Exception as exc:
            message = _store_failure(exc)
            if message is None:
                raise  # a bug: keep the traceback
            fail(message, UNAVAILABLE)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"crm-core {package_version()}")
        raise typer.Exit()


def setup_logging(verbosity: int) -> None:
    """Warnings of ours by default; ``-v`` our progress and the Kafka client's warnings;
    ``-vv`` everything, the Kafka client's connection chatter included."""
    ours = logging.WARNING if verbosity == 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    kafka = (
        logging.CRITICAL if verbosity == 0 else logging.WARNING if verbosity == 1 else logging.INFO
    )
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for name in CRM_LOGGERS:
        logging.getLogger(name).setLevel(ours)
    for name in KAFKA_LOGGERS:
        logging.getLogger(name).setLevel(kafka)


app = typer.Typer(
    name="crm",
    cls=CRMGroup,
    help="crm-core: an event-sourced CRM core (customers, accounts, pipeline, service), "
    "with SQL read models and Kafka adapters.\n\n"
    "Exit codes: 0 ok, 1 the CRM said no, 2 usage or configuration, 3 a service unreachable.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


@app.callback()
def root(
    verbose: Annotated[
        int,
        typer.Option(
            "--verbose",
            "-v",
            count=True,
            help="log progress (-v); add the Kafka client's connection logs (-vv)",
        ),
    ] = 0,
    show_version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="print the version and exit"
        ),
    ] = False,
) -> None:
    """Options of every ``crm`` command: logging and ``--version``."""
    setup_logging(verbose)


app.command("demo")(demo)
app.add_typer(projections_app)
app.add_typer(report_app)
app.add_typer(relay_app)
app.add_typer(consume_app)
app.add_typer(import_app)
app.add_typer(settings_app)
app.add_typer(audit_app)
app.command("handover")(handover)
app.add_typer(lifecycle_app)
app.add_typer(sla_app)
app.add_typer(quotes_app)
app.add_typer(orders_app)
app.add_typer(forget_app, name="forget")


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``crm`` with ``argv`` (default: the process's arguments); return the exit code."""
    try:
        app(args=list(argv) if argv is not None else None, prog_name="crm")
    except SystemExit as exc:
        code = exc.code
        if code is None:
            return 0
        if isinstance(code, int):
            return code
        print(code, file=sys.stderr)
        return 1
    return 0
