"""The ``crm`` console script: demo, projections, reports, and the Kafka relay/consumer.

Each area registers its own subcommands (``projections.cli``, ``adapters.kafka.cli``);
this module only wires them and maps errors to exit codes: 0 ok, 1 a CRM error
(bad input, a broken rule), 2 usage, 3 an unreachable service.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from eventsourcing.persistence import InterfaceError, OperationalError
from rich.console import Console

from crm_domain.application import CRM
from crm_domain.errors import CRMError

DEMO_DB = Path("crm-demo.sqlite")


def _demo(args: argparse.Namespace) -> int:
    from adapters.demo import run_demo

    console = Console()
    store: str = args.store
    if not store:
        path = Path(args.db).resolve()
        for stale in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            stale.unlink(missing_ok=True)
        store = f"sqlite:///{path}"
    crm = CRM(store)
    try:
        with console.status("Playing a year of CRM history..."):
            summary = run_demo(crm, customers=args.customers, seed=args.seed)
        pipeline = ", ".join(f"{v:,.2f} {c}" for c, v in sorted(summary.open_pipeline.items()))
        console.print(f"[bold]crm-core demo[/bold] (run {summary.run_tag})")
        rows = [
            ("events stored", f"{summary.events_stored:,}"),
            ("customers", f"{summary.customers:,} (people and organisations)"),
            ("accounts", f"{summary.accounts:,}"),
            ("interactions logged", f"{summary.contacts_logged:,}"),
            (
                "opportunities",
                ", ".join(f"{k} {v}" for k, v in sorted(summary.opportunities.items())),
            ),
            ("open pipeline value", pipeline or "0"),
            ("orders", ", ".join(f"{k} {v}" for k, v in sorted(summary.orders.items()))),
            ("tickets", f"{summary.tickets_opened} opened, {summary.open_tickets} open"),
            ("SLA breaches", str(summary.sla_breaches)),
        ]
        if summary.handover:
            leaver, successor, moved = summary.handover
            rows.append(("manager handover", f"{moved} customers from {leaver} to {successor}"))
        width = max(len(k) for k, _ in rows)
        for key, value in rows:
            console.print(f"  {key:<{width}}  {value}")
        _print_reports(crm, console)
        if args.kafka:
            _publish(crm, args.kafka, console)
        console.print(f"database: {crm.store.url}")
        if crm.store.backend == "sqlite":
            console.print(
                f"explore it: CRM_STORE_URL={crm.store.url} crm report pipeline  "
                "(or crm projections status)"
            )
    finally:
        crm.close()
    return 0


def _import_cdnow(args: argparse.Namespace) -> int:
    from adapters.cdnow import import_purchases, read_purchases

    console = Console()
    crm = CRM(args.store or None)
    try:
        with console.status(f"Importing {args.file}..."):
            summary = import_purchases(
                crm, read_purchases(Path(args.file)), max_customers=args.customers
            )
        console.print(
            f"imported {summary.customers:,} customers and {summary.purchases:,} purchases "
            f"({summary.revenue:,.2f} USD); {summary.skipped:,} customers were already there"
        )
        console.print(f"database: {crm.store.url}")
    finally:
        crm.close()
    return 0


def _print_reports(crm: CRM, console: Console) -> None:
    """End the demo with the pipeline and service reports, from the read models."""
    try:
        from projections.reports import print_demo_reports
    except ModuleNotFoundError as exc:  # pragma: no cover - during development only
        if exc.name and exc.name.startswith("projections"):
            return
        raise
    print_demo_reports(crm.store.url, console)


def _publish(crm: CRM, bootstrap: str, console: Console) -> None:
    from adapters.kafka.demo import publish_demo_events

    publish_demo_events(crm, bootstrap, console)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="crm",
        description="crm-core: an event-sourced CRM core (customers, accounts, pipeline, "
        "service), with SQL read models and Kafka adapters.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser(
        "demo",
        help="play a realistic year of CRM history into a store and summarise it",
        description="Play a realistic scenario (a few hundred customers and accounts) into "
        "a store: SQLite by default, no server needed.",
    )
    demo.add_argument("--store", default="", help="store URL (default: a fresh ./crm-demo.sqlite)")
    demo.add_argument("--db", default=str(DEMO_DB), help=argparse.SUPPRESS)
    demo.add_argument("--customers", type=int, default=300, help="companies and consumers (300)")
    demo.add_argument("--seed", type=int, default=7, help="random seed (7)")
    demo.add_argument("--kafka", default="", metavar="HOST:PORT", help="also publish to Kafka")
    demo.set_defaults(func=_demo)

    importer = sub.add_parser("import", help="import an order history from another system")
    sources = importer.add_subparsers(dest="source", required=True, metavar="SOURCE")
    cdnow = sources.add_parser(
        "cdnow",
        help="the public CDNOW purchase log (CDNOW_master.txt or CDNOW_sample.txt)",
        description="Import the CDNOW purchase log as customers with confirmed, delivered, "
        "invoiced and paid orders at their purchase dates. Safe to re-run.",
    )
    cdnow.add_argument("file", help="path to CDNOW_master.txt or CDNOW_sample.txt")
    cdnow.add_argument(
        "--store", default="", help="store URL (default: $CRM_STORE_URL or ./crm.sqlite)"
    )
    cdnow.add_argument("--customers", type=int, default=None, help="import at most N customers")
    cdnow.set_defaults(func=_import_cdnow)

    from projections.cli import register as register_projections

    register_projections(sub)
    from adapters.kafka.cli import register as register_kafka

    register_kafka(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except CRMError as exc:
        print(f"crm: {exc}", file=sys.stderr)
        return 1
    except (InterfaceError, OperationalError) as exc:
        print(f"crm: the store is unreachable: {exc}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        return 130
    return code
