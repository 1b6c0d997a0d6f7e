"""Drop read models and build them again from the whole history.

The tables (and the tracking) are dropped and recreated empty, then the ordinary runner
catches up from the first notification: the same code path as live projection, so a
rebuild cannot disagree with an incrementally built read model. Interrupting a rebuild
is safe: what was committed is consistent with its position, and ``crm projections run``
(or another rebuild) carries on from there. Stop live runners of the same read models
first: a runner that keeps its old position would be refused by the tracking check.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from projections.readmodel import ReadModel
from projections.registry import select_read_models
from projections.runner import ReadModelRunner, follow, log_head, open_view

#: Events per transaction while rebuilding: larger than a live runner's batches (fewer
#: commits and prefetch queries per event); memory grows with it, not with the history.
REBUILD_BATCH_SIZE = 5000
#: Seconds between progress updates.
POLL_INTERVAL = 0.1
#: Seconds between lines of the plain (non-terminal) progress log.
LOG_INTERVAL = 5.0

Progress_ = Callable[[int, int], None]


@dataclass(frozen=True)
class RebuildResult:
    read_models: list[str]
    events: int
    seconds: float

    @property
    def rate(self) -> float:
        """Notifications per second."""
        return self.events / self.seconds if self.seconds > 0 else float("inf")


def rebuild(
    store_url: str,
    *,
    read_models: Sequence[str | type[ReadModel]] | None = None,
    views_url: str | None = None,
    batch_size: int = REBUILD_BATCH_SIZE,
    on_progress: Progress_ | None = None,
    timeout: float | None = None,
) -> RebuildResult:
    """Drop and rebuild the given read models (all by default) from the whole history.

    ``on_progress(done, total)`` is called as notifications are applied.
    """
    models = select_read_models(read_models)
    view = open_view(store_url, read_models=models, views_url=views_url)
    try:
        for model in models:
            view.drop_read_model(model.name)
    finally:
        view.engine.dispose()
    _, head = log_head(store_url)
    started = time.perf_counter()
    with follow(
        store_url, read_models=models, views_url=views_url, batch_size=batch_size
    ) as runner:
        _wait_for(runner, head, on_progress, timeout)
    return RebuildResult([m.name for m in models], head, time.perf_counter() - started)


def _wait_for(
    runner: ReadModelRunner, head: int, on_progress: Progress_ | None, timeout: float | None
) -> None:
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        done = runner.view.max_tracking_id(runner.app_name) or 0
        if on_progress is not None:
            on_progress(min(done, head), head)
        if done >= head:
            return
        runner.run_forever(timeout=POLL_INTERVAL)  # re-raises the runner's error, if any
        if runner.is_interrupted.is_set():
            runner.run_forever(timeout=0)
            raise RuntimeError("the runner stopped before the rebuild finished")
        if deadline is not None and time.monotonic() > deadline:
            from projections.errors import ProjectionLagError

            raise ProjectionLagError(f"rebuild did not reach {head} in {timeout} seconds")


def rebuild_with_progress(
    store_url: str,
    *,
    read_models: Sequence[str | type[ReadModel]] | None = None,
    views_url: str | None = None,
    console: Console | None = None,
    stream: TextIO | None = None,
) -> RebuildResult:
    """:func:`rebuild` with a progress bar on a terminal, plain log lines otherwise."""
    console = console or Console(file=stream or sys.stdout)
    names = ", ".join(m.name for m in select_read_models(read_models))
    if console.is_terminal:
        with Progress(
            TextColumn("[bold]rebuilding[/bold] {task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=console,
        ) as bar:
            task = bar.add_task(names, total=None)

            def show(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            result = rebuild(
                store_url, read_models=read_models, views_url=views_url, on_progress=show
            )
    else:
        out = stream or sys.stdout
        last = [0.0]

        def log(done: int, total: int) -> None:
            now = time.monotonic()
            if now - last[0] >= LOG_INTERVAL or done >= total:
                last[0] = now
                pct = 100.0 * done / total if total else 100.0
                print(
                    f"rebuilding {names}: {done}/{total} notifications ({pct:.1f}%)",
                    file=out,
                    flush=True,
                )

        result = rebuild(store_url, read_models=read_models, views_url=views_url, on_progress=log)
    console.print(
        f"rebuilt {', '.join(result.read_models)} from {result.events} notifications "
        f"in {result.seconds:.1f}s ({result.rate:,.0f}/s)"
    )
    return result
