"""``crm projections run|rebuild|status``: keep the SQL read models current, rebuild them.

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
from projections.projection import DEFAULT_BATCH_SIZE
from projections.registry import all_read_models

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
    for value in values or ():
        read_model_name(value)
    return values


def complete_read_model(incomplete: str) -> list[str]:
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
            help="processes rebuilding read models side by side [default: one per CPU]",
            show_default=False,
        ),
    ] = None,
    store: Store = None,
    views: Views = None,
) -> None:
    """Drop read models and rebuild them from the whole history."""
    from projections.rebuild import default_workers
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
            workers=workers or default_workers(),
        )
    Console().print(
        f"rebuilt {', '.join(result.read_models)} from {result.events:,} events "
        f"in {result.seconds:.1f} s ({result.rate:,.0f} events/s"
        + (f", {result.workers} worker processes)" if result.workers > 1 else ")")
    )


@projections_app.command("status")
def status(store: Store = None, views: Views = None, fmt: Format = OutputFormat.TABLE) -> None:
    """Each read model's position against the head of the event log (its lag)."""
    from projections.status import status as read_model_status

    settings = load_settings(store)
    settings.store.check(must_exist=True)
    table = Section("Read models", ("read model", "position", "head", "lag", "answers"))
    for s in read_model_status(settings.store_url, views_url=views):
        table.add(s.name, s.position or 0, s.head, s.lag, s.description)
    render([table], fmt)
