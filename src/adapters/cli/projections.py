"""``crm projections run|rebuild|status|retry|skip|verify``: keep the read models current.

Adding an action is adding one function decorated with ``@projections_app.command()``
that takes the shared :data:`~adapters.cli.options.Store` and ``Views`` options and calls
a ``projections`` API; errors it raises are mapped to exit codes by the app.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from adapters.cli.options import Format, OutputFormat, Store, Views, load_settings
from adapters.cli.progress import progress
from adapters.cli.render import Section, render
from crm_domain.errors import ReadModelParkedError
from projections.fold import DEFAULT_ROW_BUDGET
from projections.projection import DEFAULT_BATCH_SIZE
from projections.registry import all_read_models
from projections.status import ReadModelStatus

projections_app = typer.Typer(
    name="projections",
    help="Keep the SQL read models current, rebuild them, show their lag.",
    no_args_is_help=True,
)

READ_MODELS = list(all_read_models())


def read_model_name(value: str | None) -> str | None:
    """A registered read model's name (or None), else a usage error listing them."""
    if value is not None and value not in READ_MODELS:
        raise typer.BadParameter(f"no read model {value!r}; choose from: {', '.join(READ_MODELS)}")
    return value


def read_model_names(values: list[str] | None) -> list[str] | None:
    """The given read model names, checked (a usage error names the known ones)."""
    for value in values or ():
        read_model_name(value)
    return values


def complete_read_model(incomplete: str) -> list[str]:
    """Shell completion: the read model names starting with what was typed."""
    return [name for name in READ_MODELS if name.startswith(incomplete)]


@projections_app.command("run")
def run(
    store: Store = None,
    views: Views = None,
    only: Annotated[
        list[str] | None,
        typer.Option(
            "--only",
            metavar="NAME",
            callback=read_model_names,
            autocompletion=complete_read_model,
            help=f"only this read model (repeatable): {', '.join(READ_MODELS)}",
            show_default=False,
        ),
    ] = None,
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, help="most events per transaction")
    ] = DEFAULT_BATCH_SIZE,
) -> None:
    """Follow the event log and keep the read models current until stopped (Ctrl-C, SIGTERM)."""
    from projections.runner import ReadModelRunner
    from projections.runner import run as run_forever

    settings = load_settings(store)
    settings.store.check()
    console = Console(stderr=True)

    def started(runner: ReadModelRunner) -> None:
        console.print(
            f"following {settings.store.display} into {', '.join(runner.view.names)}; "
            "Ctrl-C or SIGTERM to stop"
        )

    run_forever(
        settings.store_url,
        read_models=only or None,
        views_url=views,
        batch_size=batch_size,
        on_start=started,
    )
    console.print("stopped")


@projections_app.command("rebuild")
def rebuild(
    name: Annotated[
        str | None,
        typer.Argument(
            metavar="NAME",
            callback=read_model_name,
            autocompletion=complete_read_model,
            help=f"the read model to rebuild: {', '.join(READ_MODELS)}",
            show_default=False,
        ),
    ] = None,
    all_: Annotated[bool, typer.Option("--all", help="rebuild every read model")] = False,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            metavar="N",
            min=1,
            help="processes rebuilding read models side by side, on PostgreSQL (each group "
            "committed on its own) [default: 1, all or nothing]",
            show_default=False,
        ),
    ] = None,
    row_budget: Annotated[
        int,
        typer.Option(
            "--row-budget",
            metavar="ROWS",
            min=1,
            help="read-model rows a rebuild holds in memory before it writes them "
            "(about 1.3 KB each)",
        ),
    ] = DEFAULT_ROW_BUDGET,
    store: Store = None,
    views: Views = None,
) -> None:
    """Drop read models and rebuild them from the whole history: in one process by default,
    all or nothing (a failed or killed rebuild leaves the old rows and positions)."""
    from projections.rebuild import rebuild as rebuild_read_models

    if all_ == (name is not None):
        raise typer.BadParameter("name ONE read model or give --all", param_hint="NAME")
    settings = load_settings(store)
    settings.store.check(must_exist=True)
    models = None if all_ else [name or ""]
    what = "rebuilding " + (name or "all read models")
    with progress(what, "events") as show:
        result = rebuild_read_models(
            settings.store_url,
            read_models=models,
            views_url=views,
            on_progress=show,
            workers=workers or 1,
            row_budget=row_budget,
        )
    Console().print(
        f"rebuilt {', '.join(result.read_models)} from {result.events:,} events "
        f"in {result.seconds:.1f} s ({result.rate:,.0f} events/s"
        + (f", {result.workers} worker processes)" if result.workers > 1 else ")")
    )


@projections_app.command("status")
def status(store: Store = None, views: Views = None, fmt: Format = OutputFormat.TABLE) -> None:
    """Each read model's position against the head of the event log (its lag) and its state.

    A read model that could not apply an event is ``parked`` there (the others go on):
    the table below names the event and the error; ``crm projections retry`` or ``skip``
    resumes it. A read model held by a rebuild is ``rebuilding`` (the rebuilds table says
    by which process, on which host, since when), or ``interrupted`` when that rebuild
    was killed: ``crm projections run`` (or a report) releases it and carries on.
    """
    from projections.status import status as read_model_status

    settings = load_settings(store)
    settings.store.check(must_exist=True)
    table = Section("Read models", ("read model", "state", "position", "head", "lag", "answers"))
    parked = Section(
        "Parked read models",
        ("read model", "position", "event", "customer or account", "error", "parked at"),
    )
    rebuilds = Section("Rebuilds", ("read model", "state", "since", "held by", "what to do"))
    for s in read_model_status(settings.store_url, views_url=views):
        table.add(s.name, s.state, s.position or 0, s.head, s.lag, s.description)
        if s.parked is not None:
            p = s.parked
            parked.add(
                s.name,
                p.position,
                p.topic.rsplit(":", 1)[-1],
                str(p.originator_id or ""),
                p.error,
                p.parked_at.isoformat(timespec="seconds"),
            )
        if s.rebuilding_since is not None:
            rebuilds.add(
                s.name,
                s.state,
                s.rebuilding_since.isoformat(timespec="seconds"),
                str(s.rebuilt_by),
                s.rebuild_advice,
            )
    render([table, *(t for t in (parked, rebuilds) if t.rows)], fmt)


ParkedName = Annotated[
    str,
    typer.Argument(
        metavar="NAME",
        callback=read_model_name,
        autocompletion=complete_read_model,
        help=f"the parked read model: {', '.join(READ_MODELS)}",
        show_default=False,
    ),
]


@projections_app.command("retry")
def retry(name: ParkedName, store: Store = None, views: Views = None) -> None:
    """Apply a parked read model's event again (after a fix) and catch it up to the head.

    If the event still fails, the read model stays parked with the new error (exit 1).
    """
    from projections.parking import retry as retry_read_model

    settings = load_settings(store)
    settings.store.check(must_exist=True)
    result = retry_read_model(settings.store_url, name, views_url=views)
    _report_resumed(result)


@projections_app.command("skip")
def skip(
    name: ParkedName,
    position: Annotated[
        int,
        typer.Option(
            "--position",
            metavar="P",
            min=1,
            help="the position the read model is parked at (see status)",
            show_default=False,
        ),
    ],
    reason: Annotated[
        str,
        typer.Option(
            "--reason", help="why the event is skipped (kept for auditors)", show_default=False
        ),
    ],
    actor: Annotated[
        str | None,
        typer.Option("--actor", help="who skips it [default: the OS user]", show_default=False),
    ] = None,
    store: Store = None,
    views: Views = None,
) -> None:
    """Leave out the event a read model is parked at, record who and why, and go on."""
    from projections.parking import skip as skip_event

    settings = load_settings(store)
    settings.store.check(must_exist=True)
    result = skip_event(
        settings.store_url, name, position=position, reason=reason, actor=actor, views_url=views
    )
    _report_resumed(result)


def _report_resumed(result: ReadModelStatus) -> None:
    if result.parked is not None:
        raise ReadModelParkedError(
            f"read model {result.name!r} is parked again at position "
            f"{result.parked.position}: {result.parked.error}"
        )
    Console().print(f"{result.name}: {result.state} at position {result.position or 0:,}")


@projections_app.command("verify")
def verify(
    names: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="[NAME]...",
            callback=read_model_names,
            autocompletion=complete_read_model,
            help="the read models to check [default: all]",
            show_default=False,
        ),
    ] = None,
    repair: Annotated[bool, typer.Option("--repair", help="rewrite the rows that differ")] = False,
    store: Store = None,
    views: Views = None,
) -> None:
    """Rebuild read models aside and compare them row by row with the live tables.

    Finds rows deleted, added or edited by hand, which ``status`` cannot see. A killed
    rebuild's claim (``interrupted``) is released first, as ``run`` and reports do. Exits 1
    when a read model differs and was not repaired.
    """
    from projections.verify import verify as verify_read_models

    settings = load_settings(store)
    settings.store.check(must_exist=True)
    with Console(stderr=True).status("rebuilding the read models aside to compare"):
        report = verify_read_models(
            settings.store_url, names or None, views_url=views, repair=repair
        )
    console = Console()
    for line in report.lines():
        console.print(line, highlight=False)
    if not report.ok and not repair:
        console.print("run again with --repair to rewrite the rows that differ")
        raise typer.Exit(1)
