"""``crm demo``: play a realistic year of CRM history into a store, summarise it, report.

Without ``--store`` (and without ``CRM_STORE_URL`` or a ``store_url`` in ``crm.toml``) the
demo starts afresh in ``./crm-demo.sqlite``. Its summary counts this run; the reports that
follow read the whole store, which on a reused store holds earlier runs too: both say so.
"""

from __future__ import annotations

import os
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from adapters.cli.options import OutputFormat, Store, load_settings
from adapters.cli.render import render
from crm_domain.application import CRM
from crm_domain.settings import CRMSettings

#: The demo's own store when none is configured: replaced on every run.
DEMO_DB = Path("crm-demo.sqlite")


def _fresh_demo_store() -> str:
    path = DEMO_DB.resolve()
    for stale in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        stale.unlink(missing_ok=True)
    return f"sqlite:///{path}"


def command_name() -> str:
    """How to run this ``crm`` again from here: ``crm`` if that is on PATH and is this
    program, else its path (``.venv/bin/crm`` after ``make demo``)."""
    argv0 = sys.argv[0] if sys.argv and sys.argv[0] else "crm"
    me = Path(argv0)
    if Path(argv0).name != "crm":
        return "crm"
    found = shutil.which("crm")
    if found and Path(found).resolve() == me.resolve():
        return "crm"
    try:
        relative = os.path.relpath(me.resolve(), Path.cwd())
    except ValueError:  # another drive (Windows)
        return str(me.resolve())
    shorter = relative if not relative.startswith("..") else str(me.resolve())
    return shorter if os.sep in shorter else f".{os.sep}{shorter}"


def publish(crm: CRM, settings: CRMSettings, console: Console) -> None:
    """Relay every event the demo stored to the default ERP and marketing topics, then stop
    (on the deployment's Kafka connection and security, ``CRMSettings.kafka``)."""
    from adapters.kafka.relay import KafkaRelay
    from adapters.kafka.routing import default_routing
    from adapters.kafka.settings import RelaySettings

    routing = default_routing()
    relay_settings = RelaySettings.from_settings(
        settings.kafka, create_topics=True, broker_timeout=30.0
    )
    relay = KafkaRelay(crm.app, relay_settings, routing)
    with console.status(f"Publishing to Kafka at {settings.kafka.bootstrap}..."):
        stats = relay.run(until_caught_up=True)
    console.print(
        f"  kafka: {stats.messages_acked:,} messages to {', '.join(routing.topics)} "
        f"({stats.redacted_for_consent} redacted, {stats.dropped_for_consent} dropped "
        "for missing marketing consent)"
    )


def demo(
    store: Store = None,
    customers: Annotated[
        int, typer.Option("--customers", min=1, help="companies and consumers to play")
    ] = 300,
    seed: Annotated[int, typer.Option("--seed", help="random seed of the scenario")] = 7,
    kafka: Annotated[
        str | None,
        typer.Option(
            "--kafka",
            metavar="HOST:PORT",
            help="also publish the events to Kafka at these bootstrap servers (security "
            "from $CRM_KAFKA__* or crm.toml)",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Play a realistic year of CRM history into a store and summarise it (SQLite: no server)."""
    from adapters.cli.reports import current_read_models, pipeline_report, service_report
    from adapters.demo import audit_line, demo_calendar, run_demo

    settings = load_settings(store)
    if store is None and "store_url" not in settings.model_fields_set:
        settings = load_settings(_fresh_demo_store())
    settings.store.check()
    console = Console()
    # The demo's Guangzhou office, unless the settings configure a calendar.
    crm = CRM(settings=settings, calendar=None if settings.calendar.explicit else demo_calendar())
    try:
        with console.status("Playing a year of CRM history..."):
            summary = run_demo(crm, customers=customers, seed=seed)
        pipeline = ", ".join(f"{v:,.2f} {c}" for c, v in sorted(summary.open_pipeline.items()))
        reused = summary.store_events > summary.events_stored
        console.print(f"[bold]crm-core demo[/bold] (run {summary.run_tag}; figures of this run)")
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
            ("office calendar", summary.calendar),
            (
                "SLA breaches",
                f"{summary.sla_breaches} ({summary.sla_breaches_at_command} recorded by the late "
                f"response or resolution, {summary.sla_breaches_by_scan} by the scan of open "
                "tickets)",
            ),
            ("field visits completed", str(summary.field_visits_completed)),
        ]
        if summary.quote_rules:
            rows.append(("quote rules", summary.quote_rules))
        if summary.handover:
            leaver, successor, moved = summary.handover
            moves = ", ".join(f"{k} {v}" for k, v in sorted(summary.handed_over.items()))
            rows.append(
                (
                    "manager handover",
                    f"{moved} customers from {leaver} to {successor} ({moves or 'nothing'})",
                )
            )
        if summary.lifecycle:
            rows.append(
                (
                    "lifecycle scan",
                    ", ".join(f"{k} {v}" for k, v in summary.lifecycle.items()),
                )
            )
        rows.extend(("ERP and credit", line) for line in summary.erp_and_credit)
        if reused:
            rows.append(("events in the store", f"{summary.store_events:,} (with earlier runs)"))
        rows.extend(line for line in [audit_line(crm)] if line)
        width = max(len(k) for k, _ in rows)
        for key, value in rows:
            console.print(f"  {key:<{width}}  {value}", soft_wrap=True)
        scope = "whole store, earlier runs included" if reused else "read model"
        source = crm.app if settings.store.in_memory else settings.store.url
        with current_read_models(source, None, console=Console(stderr=True)) as engine:
            console.rule(f"Sales pipeline ({scope})")
            render(pipeline_report(engine), OutputFormat.TABLE, console=console)
            console.rule(f"Service desk ({scope})")
            now = datetime.now(UTC)
            render(service_report(engine, now=now), OutputFormat.TABLE, console=console)
            console.print(f"deadlines on: {summary.calendar}", soft_wrap=True)
        if kafka:
            publish(crm, load_settings(settings.store_url, bootstrap=kafka), console)
        console.print(f"database: {settings.store.display}", soft_wrap=True)
        if not settings.store.in_memory:
            crm_cmd = command_name()
            successor = summary.handover[1] if summary.handover else "MANAGER"
            console.print(
                f"explore it: {crm_cmd} report pipeline --store {settings.store.display}\n"
                f"  (also: report service, report value, report handover {successor}, "
                "projections status)",
                soft_wrap=True,
            )
    finally:
        crm.close()
