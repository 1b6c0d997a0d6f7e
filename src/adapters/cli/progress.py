"""Counts, rate and time left for long work (rebuild, import, catching up), on stderr.

On a terminal a rich progress bar; otherwise (a log file, CI) a plain line every few
seconds and one at the end, so long work is never silent and never floods a log.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)

#: Seconds between the plain progress lines written when stderr is not a terminal.
LOG_INTERVAL = 5.0

OnProgress = Callable[[int, int], None]


@contextmanager
def progress(
    what: str,
    unit: str,
    *,
    console: Console | None = None,
    detail: Callable[[], str] | None = None,
) -> Iterator[OnProgress]:
    """Yield ``on_progress(done, total)``; shows ``what``: done/total unit, rate, time left
    (and ``detail()``, if given: more counts, such as the events an import stored)."""
    console = console or Console(stderr=True)
    began = time.monotonic()

    def rate(done: int) -> str:
        elapsed = time.monotonic() - began
        shown = f"{done / elapsed:,.0f} {unit}/s" if elapsed > 0.05 else ""
        return f"{shown} {detail()}".strip() if detail is not None else shown

    if console.is_terminal:
        with Progress(
            TextColumn(f"[bold]{what}[/bold]"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn(unit),
            TaskProgressColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeRemainingColumn(),
            console=console,
        ) as bar:
            task = bar.add_task(what, total=None, rate="")

            def show(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total, rate=rate(done))

            yield show
        return
    last = [0.0, -1]

    def log(done: int, total: int) -> None:
        now = time.monotonic()
        if now - last[0] >= LOG_INTERVAL or (done >= total and last[1] != done):
            last[0], last[1] = now, done
            pct = 100.0 * done / total if total else 100.0
            console.print(f"{what}: {done:,}/{total:,} {unit} ({pct:.1f}%) {rate(done)}")

    yield log
