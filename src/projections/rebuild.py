"""Drop read models and build them again from the whole history.

The fast path (the default) folds the whole log with :func:`projections.fold.fold_log`:
the read models' own handlers (the code the live runner calls, so a rebuild cannot
disagree with an incrementally built read model) applied in memory, each table written
once. In one process (one group of read models: always on SQLite) the tables and tracking
are dropped and recreated empty *in the fold's transaction*, which sets every position at
the end: all or nothing. A fold that fails, or is killed, leaves the old rows and
positions exactly as they were.

The other paths commit the drop first, by design: with worker processes (``workers``
above 1, not on SQLite) the tables are dropped and recreated empty in their own
transaction per read model, then each worker folds its group in one transaction; with
``fast=False`` the ordinary runner catches up from the first notification, one batch per
transaction. Interrupting them leaves empty read models (a worker killed before its
commit) or a consistent prefix (a batch commits rows and position together), and
``crm projections run`` or another rebuild carries on from there.

Live runners may keep running: the rebuild first claims its read models (a new generation,
see :mod:`projections.control`), which live runners check under a lock before every write,
so they leave those read models alone until the rebuild hands them back, then catch them
up from where the rebuild stopped. A rebuild killed before handing them back (SIGKILL, out
of memory) leaves its claim, which names its process: ``status`` shows it ``interrupted``,
and a live runner or a report's catch-up on that host releases it and carries on from the
positions stored (see :func:`projections.control.release_stale_claims`).
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from crm_domain.errors import ProjectionError, ProjectionLagError
from crm_domain.infrastructure.collector import BULK_GC_THRESHOLD, fewer_gc_passes
from crm_domain.infrastructure.storage import StoreURL
from projections.control import claim_for_rebuild, release_from_rebuild
from projections.fold import DEFAULT_ROW_BUDGET, FOLD_PAGE_SIZE, fold_log
from projections.readmodel import ReadModel
from projections.registry import all_read_models, select_read_models
from projections.runner import (
    ReadModelRunner,
    crm_application_class,
    follow,
    log_head,
    open_view,
)
from projections.views import ReadModelView

#: Events per transaction while rebuilding with the runner (``fast=False``), and per page of
#: the log the fast path reads: larger than a live runner's batches (fewer commits and
#: queries per event).
REBUILD_BATCH_SIZE = 10_000
#: Seconds between progress updates.
POLL_INTERVAL = 0.1
#: Seconds between lines of the plain (non-terminal) progress log.
LOG_INTERVAL = 5.0
#: Allocations between the garbage collector's youngest-generation passes while a rebuild
#: runs (Python's default is 700): see :mod:`crm_domain.infrastructure.collector`.
REBUILD_GC_THRESHOLD = BULK_GC_THRESHOLD

Progress_ = Callable[[int, int], None]


@dataclass(frozen=True)
class RebuildResult:
    """What a rebuild did: the read models, events applied, seconds taken, workers used."""

    read_models: list[str]
    events: int
    seconds: float
    workers: int = 1

    @property
    def rate(self) -> float:
        """Notifications per second."""
        return self.events / self.seconds if self.seconds > 0 else float("inf")


def default_workers() -> int:
    """Worker processes a rebuild uses unless told otherwise: one per CPU it may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


def plan_workers(models: Sequence[type[ReadModel]], workers: int) -> list[list[type[ReadModel]]]:
    """Split read models into at most ``workers`` groups of about equal rebuild cost.

    Longest first onto the least loaded group, by each read model's ``rebuild_weight``;
    each group keeps the order the read models were given in.
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1, not {workers}")
    count = min(workers, len(models))
    groups: list[list[type[ReadModel]]] = [[] for _ in range(count)]
    loads = [0.0] * count
    for model in sorted(models, key=lambda m: -m.rebuild_weight):
        least = loads.index(min(loads))
        groups[least].append(model)
        loads[least] += model.rebuild_weight
    order = {model: i for i, model in enumerate(models)}
    return [sorted(group, key=order.__getitem__) for group in groups]


def rebuild(
    store_url: str,
    *,
    read_models: Sequence[str | type[ReadModel]] | None = None,
    views_url: str | None = None,
    batch_size: int = REBUILD_BATCH_SIZE,
    on_progress: Progress_ | None = None,
    timeout: float | None = None,
    workers: int = 1,
    tune_gc: bool = True,
    fast: bool = True,
    row_budget: int = DEFAULT_ROW_BUDGET,
) -> RebuildResult:
    """Drop and rebuild the given read models (all by default) from the whole history.

    ``fast`` (the default) folds the log in memory (:func:`~projections.fold.fold_log`),
    reading it in pages of ``batch_size``, holding at most about ``row_budget`` read-model
    rows before writing them, and commits the read models and their positions at once;
    ``fast=False`` follows the log with the live runner's machinery in batches of
    ``batch_size``. A fast rebuild of read models in SQLite runs in one process whatever
    ``workers`` says: SQLite has one writer at a time, so folding workers would only
    queue for its write lock (and time out behind a chunked fold, which holds it).

    All or nothing holds for a fast rebuild in one process (one group): the tables are
    dropped and recreated in the fold's own transaction, so an error (say an
    :class:`~crm_domain.errors.UnhandledEventError`) or a kill leaves the old rows and
    positions. With worker processes, and with ``fast=False``, the tables are dropped and
    recreated first, in a transaction of their own, and filled by one transaction per
    group (workers) or per batch (``fast=False``), by design: interrupted, they are left
    empty or part-built (consistent with their positions) until a runner or rebuild
    carries on. On PostgreSQL a fast rebuild in one process keeps the replaced tables
    locked until it commits; readers keep off them by the control rows (see
    :meth:`~projections.views.ReadModelView.positions`, and reports'
    :class:`~crm_domain.errors.ReadModelRebuildingError`).

    ``on_progress(done, total)`` is called as notifications are applied. With ``workers``
    above 1, the read models are split into that many groups (see :func:`plan_workers`),
    each rebuilt by its own process following the log on its own; every read model has
    its own position, so this is as exactly-once as one runner. Read-model classes that
    are not shipped with the library must then be importable by the worker processes.
    An in-memory store is always rebuilt in this process. Workers are started the
    ``spawn`` way (fresh interpreters), so a script that calls this with ``workers`` above
    1 needs the usual ``if __name__ == "__main__":`` guard.

    Secondary indexes are dropped for the rebuild and built once at the end; a rebuild
    interrupted before then gets them back from the next runner that opens the views.
    """
    models = select_read_models(read_models)
    names = [m.name for m in models]
    one = _in_memory(store_url, views_url) or (fast and _sqlite_views(store_url, views_url))
    groups = plan_workers(models, 1 if one else workers)
    folds_here = fast and len(groups) == 1
    view = open_view(store_url, read_models=models, views_url=views_url, creates_indexes=False)
    token = claim_for_rebuild(view.engine, names)
    try:
        if not folds_here:  # the fold here replaces the tables in its own transaction
            for model in models:
                view.drop_read_model(model.name, defer_indexes=True)
        view.engine.dispose()  # hold no connection while the read models load
        app_name, head = log_head(store_url)
        started = time.perf_counter()
        with fewer_gc_passes(REBUILD_GC_THRESHOLD) if tune_gc else nullcontext():
            if folds_here:
                _fold_store(
                    view,
                    store_url,
                    head,
                    token=token,
                    on_progress=on_progress,
                    budget=row_budget,
                    page_size=batch_size,
                    replace_tables=True,
                )
            elif len(groups) == 1:
                with follow(
                    store_url,
                    read_models=models,
                    views_url=views_url,
                    batch_size=batch_size,
                    creates_indexes=False,
                    rebuild_token=token,
                ) as runner:
                    _wait_for(runner, head, on_progress, timeout)
            else:
                _rebuild_in_workers(
                    view,
                    store_url,
                    app_name,
                    groups,
                    views_url=views_url,
                    batch_size=batch_size,
                    head=head,
                    on_progress=on_progress,
                    timeout=timeout,
                    tune_gc=tune_gc,
                    token=token,
                    fast=fast,
                    row_budget=row_budget,
                )
        for model in models:
            view.create_indexes(model.name)
    finally:
        try:
            release_from_rebuild(view.engine, names, token)
        finally:
            view.engine.dispose()
    return RebuildResult(
        [m.name for m in models], head, time.perf_counter() - started, workers=len(groups)
    )


def _fold_store(
    view: ReadModelView,
    store_url: str,
    head: int,
    *,
    token: str,
    on_progress: Progress_ | None,
    budget: int,
    page_size: int = FOLD_PAGE_SIZE,
    replace_tables: bool = False,
) -> None:
    """Fold the store's log up to ``head`` into the view's read models (one transaction;
    with ``replace_tables``, their tables are dropped and created empty in it)."""
    app = crm_application_class(store_url)()
    try:
        fold_log(
            view,
            app.recorder,
            app.mapper,
            app.name,
            head,
            token=token,
            page_size=page_size,
            row_budget=budget,
            on_progress=on_progress,
            replace_tables=replace_tables,
        )
    finally:
        app.close()


def _sqlite_views(store_url: str, views_url: str | None) -> bool:
    """Whether the read models live in SQLite: one writer at a time, so folding workers
    would queue for its write lock (and a chunked fold holds it until it commits)."""
    return StoreURL.parse(views_url or store_url).backend == "sqlite"


def _in_memory(store_url: str, views_url: str | None) -> bool:
    return StoreURL.parse(store_url).in_memory or bool(
        views_url and StoreURL.parse(views_url).in_memory
    )


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
            raise ProjectionLagError(f"rebuild did not reach {head} in {timeout} seconds")


# -- parallel rebuild ------------------------------------------------------------------


def _picklable(models: Sequence[type[ReadModel]]) -> list[str | type[ReadModel]]:
    """Shipped read models travel by name; others by class (pickled by reference)."""
    shipped = all_read_models()
    return [m.name if shipped.get(m.name) is m else m for m in models]


def _worker(
    index: int,
    store_url: str,
    read_models: list[str | type[ReadModel]],
    views_url: str | None,
    batch_size: int,
    head: int,
    tune_gc: bool,
    token: str,
    results: Any,
    fast: bool = False,
    row_budget: int = DEFAULT_ROW_BUDGET,
) -> None:
    """One worker process: rebuild its group of read models up to ``head``, report."""
    try:
        if fast:
            view = open_view(
                store_url,
                read_models=read_models,
                views_url=views_url,
                creates_indexes=False,
                creates_tables=False,
            )
            try:
                with fewer_gc_passes(REBUILD_GC_THRESHOLD) if tune_gc else nullcontext():
                    _fold_store(
                        view, store_url, head, token=token, on_progress=None, budget=row_budget
                    )
            finally:
                view.engine.dispose()
            results.put((index, None))
            return
        with (
            fewer_gc_passes(REBUILD_GC_THRESHOLD) if tune_gc else nullcontext(),
            follow(
                store_url,
                read_models=read_models,
                views_url=views_url,
                batch_size=batch_size,
                creates_indexes=False,
                # the parent created every table; concurrent DDL fails on PostgreSQL
                env={"CREATE_TABLE": "n"},
                rebuild_token=token,
            ) as runner,
        ):
            _wait_for(runner, head, None, None)
        results.put((index, None))
    except BaseException as exc:  # reported to the parent, which raises it
        results.put((index, _transportable(exc)))


def _transportable(exc: BaseException) -> BaseException:
    """``exc`` if it survives pickling, else a :class:`ProjectionError` saying what it was."""
    import pickle

    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        return ProjectionError(f"{type(exc).__name__}: {exc}")
    return exc


def _rebuild_in_workers(
    view: ReadModelView,
    store_url: str,
    app_name: str,
    groups: list[list[type[ReadModel]]],
    *,
    views_url: str | None,
    batch_size: int,
    head: int,
    on_progress: Progress_ | None,
    timeout: float | None,
    tune_gc: bool,
    token: str,
    fast: bool,
    row_budget: int,
) -> None:
    # Fresh interpreters, never fork: a forked worker would share the caller's open
    # database connections (SQLite's file locks do not survive that) and its threads' locks.
    context = multiprocessing.get_context("spawn")
    results: Any = context.Queue()
    processes = [
        context.Process(
            target=_worker,
            args=(
                i,
                store_url,
                _picklable(g),
                views_url,
                batch_size,
                head,
                tune_gc,
                token,
                results,
                fast,
                row_budget,
            ),
            name=f"crm-rebuild-{'-'.join(m.name for m in g)}",
            daemon=True,
        )
        for i, g in enumerate(groups)
    ]
    deadline = None if timeout is None else time.monotonic() + timeout
    pending = set(range(len(processes)))
    try:
        for process in processes:
            process.start()
        while pending:
            try:
                index, error = results.get(timeout=POLL_INTERVAL)
            except queue.Empty:
                for index in pending:
                    code = processes[index].exitcode
                    if code is not None and results.empty():
                        raise ProjectionError(
                            f"rebuild worker {processes[index].name} ended with exit code "
                            f"{code} before it finished"
                        ) from None
            else:
                if error is not None:
                    raise error
                pending.discard(index)
            if on_progress is not None:  # the positions the workers have committed
                done = view.max_tracking_id(app_name) or 0
                on_progress(min(done, head), head)
            if deadline is not None and time.monotonic() > deadline:
                raise ProjectionLagError(f"rebuild did not reach {head} in {timeout} seconds")
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
            process.join()
        results.close()


def rebuild_with_progress(
    store_url: str,
    *,
    read_models: Sequence[str | type[ReadModel]] | None = None,
    views_url: str | None = None,
    console: Console | None = None,
    stream: TextIO | None = None,
    workers: int = 1,
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
                store_url,
                read_models=read_models,
                views_url=views_url,
                on_progress=show,
                workers=workers,
            )
    else:
        out = stream or sys.stdout
        last = [0.0, -1.0]  # when a line was printed, and at what count

        def log(done: int, total: int) -> None:
            now = time.monotonic()
            finished = done >= total and last[1] != done
            if now - last[0] >= LOG_INTERVAL or finished:
                last[0], last[1] = now, done
                pct = 100.0 * done / total if total else 100.0
                print(
                    f"rebuilding {names}: {done}/{total} notifications ({pct:.1f}%)",
                    file=out,
                    flush=True,
                )

        result = rebuild(
            store_url,
            read_models=read_models,
            views_url=views_url,
            on_progress=log,
            workers=workers,
        )
    console.print(
        f"rebuilt {', '.join(result.read_models)} from {result.events} notifications "
        f"in {result.seconds:.1f}s ({result.rate:,.0f}/s"
        + (f", {result.workers} worker processes)" if result.workers > 1 else ")")
    )
    return result
