"""``crm projections run|rebuild|status`` and ``crm report pipeline|service|value|customer``.

:func:`register` adds both command groups to the ``crm`` console script.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

from rich.console import Console
from rich.table import Table

from projections.projection import DEFAULT_BATCH_SIZE
from projections.registry import all_read_models


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def _store(args: argparse.Namespace) -> str:
    from projections.runner import default_store_url

    return str(args.store or default_store_url())


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--store",
        default="",
        help="event store URL (default: $CRM_STORE_URL or sqlite:///crm.sqlite)",
    )
    parser.add_argument(
        "--views", default="", help="database for the read models (default: the store's)"
    )


def _run(args: argparse.Namespace) -> int:
    from projections.runner import ReadModelRunner, run

    console = Console(stderr=True)
    names = args.only or None

    def started(runner: ReadModelRunner) -> None:
        console.print(
            f"following {runner.app_name} from {', '.join(runner.view.names)}; "
            "Ctrl-C or SIGTERM to stop"
        )

    run(
        _store(args),
        read_models=names,
        views_url=args.views or None,
        batch_size=args.batch_size,
        on_start=started,
    )
    console.print("stopped")
    return 0


def _rebuild(args: argparse.Namespace) -> int:
    from projections.rebuild import default_workers, rebuild_with_progress

    if args.all == bool(args.name):
        print("crm projections rebuild: name ONE read model or give --all", file=sys.stderr)
        return 2
    rebuild_with_progress(
        _store(args),
        read_models=None if args.all else [args.name],
        views_url=args.views or None,
        console=Console(),
        workers=args.workers or default_workers(),
    )
    return 0


def _status(args: argparse.Namespace) -> int:
    from projections.status import status

    rows = status(_store(args), views_url=args.views or None)
    table = Table(title="Read models")
    for col in ("read model", "position", "head", "lag", "answers"):
        table.add_column(col, justify="right" if col in ("position", "head", "lag") else "left")
    for s in rows:
        lag = "[green]0[/green]" if s.current else f"[yellow]{s.lag}[/yellow]"
        table.add_row(s.name, str(s.position or 0), str(s.head), lag, s.description)
    Console().print(table)
    return 0


def _report(args: argparse.Namespace) -> int:
    from projections import reports
    from projections.runner import follow, open_view

    console = Console()
    store = _store(args)
    now = datetime.now(UTC)
    if args.no_catch_up:
        view = open_view(store, views_url=args.views or None)
        engine = view.engine
    else:
        runner = follow(store, views_url=args.views or None)
        with runner:
            runner.wait_until_current(timeout=args.timeout)
        engine = runner.view.engine
    which = args.report
    if which == "pipeline":
        tables = reports.pipeline_tables(engine)
    elif which == "service":
        tables = reports.service_tables(engine, now=now)
    elif which == "value":
        tables = reports.value_tables(engine, now=now)
    elif which == "customer":
        tables = reports.customer_tables(engine, args.ref)
    else:
        tables = reports.handover_tables(engine, args.ref, now=now)
    reports.print_all(console, tables)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``projections`` and ``report`` to the ``crm`` command."""
    names = list(all_read_models())

    proj = subparsers.add_parser(
        "projections",
        help="keep the SQL read models current, rebuild them, show their lag",
        description="SQL read models built from the event history, exactly once.",
    )
    psub = proj.add_subparsers(dest="projections_command", required=True, metavar="ACTION")

    run = psub.add_parser("run", help="follow the event log until stopped (Ctrl-C, SIGTERM)")
    _add_common(run)
    run.add_argument(
        "--only",
        nargs="+",
        choices=names,
        metavar="NAME",
        help=f"only these read models ({', '.join(names)})",
    )
    run.add_argument(
        "--batch-size",
        type=_positive,
        default=DEFAULT_BATCH_SIZE,
        help=f"most events per transaction ({DEFAULT_BATCH_SIZE})",
    )
    run.set_defaults(func=_run)

    rebuild = psub.add_parser("rebuild", help="drop read models and rebuild them from history")
    rebuild.add_argument(
        "name",
        nargs="?",
        choices=[*names, None],
        metavar="NAME",
        help=f"one of: {', '.join(names)}",
    )
    rebuild.add_argument("--all", action="store_true", help="rebuild every read model")
    rebuild.add_argument(
        "--workers",
        type=_positive,
        default=None,
        metavar="N",
        help="processes rebuilding read models side by side (default: one per CPU)",
    )
    _add_common(rebuild)
    rebuild.set_defaults(func=_rebuild)

    stat = psub.add_parser("status", help="each read model's position against the log's head")
    _add_common(stat)
    stat.set_defaults(func=_status)

    report = subparsers.add_parser(
        "report",
        help="print a read model as tables: pipeline, service, value, customer ID, handover NAME",
        description="Print the read models as tables (they are first brought up to date).",
    )
    rsub = report.add_subparsers(dest="report", required=True, metavar="REPORT")
    for name, text in (
        ("pipeline", "open pipeline, forecast, conversion, win rate"),
        ("service", "open tickets, SLA breaches, response times, satisfaction"),
        ("value", "Pareto share and RFM scores per currency"),
    ):
        sp = rsub.add_parser(name, help=text)
        _add_report_common(sp)
    customer = rsub.add_parser("customer", help="customer 360, timeline and tickets")
    customer.add_argument("ref", metavar="ID", help="customer id or customer code")
    _add_report_common(customer)
    handover = rsub.add_parser("handover", help="what a successor needs from a manager")
    handover.add_argument("ref", metavar="MANAGER")
    _add_report_common(handover)


def _add_report_common(parser: argparse.ArgumentParser) -> None:
    _add_common(parser)
    parser.add_argument(
        "--no-catch-up",
        action="store_true",
        help="print the read models as they are (a runner keeps them current)",
    )
    parser.add_argument(
        "--timeout", type=float, default=600.0, help="seconds to wait for catching up (600)"
    )
    parser.set_defaults(func=_report)
