"""Rebuild rate of the read models against the raw read rate of the notification log.

Run on demand (not a test)::

    python benchmarks/projections.py                      # 100k and 1M, SQLite and PostgreSQL
    python benchmarks/projections.py --sizes 20000 --backends sqlite   # quick look

For each backend it writes a realistic history (customers with contacts, tickets,
accounts, deals, quotes, orders, invoices and payments) through the CRM's commands, one
writer process per CPU, and grows it from size to size (``History``); at each size, on a
copy of the history as it stands, in a fresh process per measurement: reads the whole
log raw (notifications only), reads and decodes it (domain events), runs the rebuild
machinery with a read model that ignores every event (the floor: what following the log
costs by itself), and rebuilds all read models in one process and with one worker process
per CPU (the default of ``crm projections rebuild``; not on SQLite, where a rebuild folds
in one process whatever the workers), reporting events/s and peak RSS.
Targets (issue 3): rebuild >= 1/3 of the raw read rate; peak RSS at 1M within 1.5x of
that at 100k.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import date
from pathlib import Path
from typing import Any

SRC = Path(__file__).resolve().parents[1] / "src"
sys.path.insert(0, str(SRC))

PG_ADMIN = os.environ.get("CRM_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


#: Customers written per round of the generator (split between its writer processes); the
#: history grows by whole rounds, so its size is a function of the target alone.
ROUND = 50

#: Customers per ``bulk()`` transaction of a writer.
BULK = 25


def _customer(app: Any, n: int, seed: int) -> None:
    """Write customer ``n``'s history through the CRM's commands (every rule on): contacts,
    tickets, an account with deals, quotes, orders, invoices and payments. Its own seeded
    random stream makes it the same whichever writer writes it, and whenever."""
    import random

    from crm_domain.values import Money

    rng = random.Random(seed * 1_000_000_007 + n)
    c = app.register_customer(kind="enterprise", name=f"Company {n}", code=f"B{n:07d}")
    app.assign_customer_manager(c, manager=f"rep{n % 40}", reason="territory")
    a = app.open_account(customer_id=c, name=f"Company {n} buying")
    app.assign_account_manager(a, manager=f"rep{n % 40}", reason="territory")
    for _ in range(rng.randint(2, 8)):
        contact = app.log_contact(
            c,
            channel=rng.choice(["phone", "email", "visit"]),
            direction="outbound",
            summary="catch-up call",
            commitments=[{"description": "send offer", "owner": f"rep{n % 40}"}],
        )
        if rng.random() < 0.5:
            app.fulfil_commitment(c, contact_id=contact, note="sent")
    for _ in range(rng.randint(0, 3)):
        t = app.open_ticket(
            c,
            kind=rng.choice(["inquiry", "complaint"]),
            subject="question",
            channel="phone",
        )
        app.respond_to_ticket(c, t, message="looking", responder="desk")
        if rng.random() < 0.7:
            app.resolve_ticket(c, t, answer="done")
    app.record_satisfaction(c, score=rng.randint(1, 5))
    for _ in range(rng.randint(1, 3)):
        o = app.open_opportunity(
            a,
            name="deal",
            owner=f"rep{n % 40}",
            expected_close=date(2026, rng.randint(1, 12), 1),
            amount=Money.of(rng.randint(1, 500) * 100, "CNY"),
        )
        app.stage_opportunity(a, o, stage="qualification")
        q = app.issue_quote(
            a,
            o,
            amount=Money.of(1000, "CNY"),
            valid_until=date(2099, 12, 31),
            discount_pct="5",
        )
        if rng.random() < 0.4:
            app.accept_quote(a, q)  # a deal is won on its accepted quote
            app.win_opportunity(a, o, reason="fit")
        elif rng.random() < 0.3:
            app.lose_opportunity(a, o, reason="price")
    for _ in range(rng.randint(0, 3)):
        order = app.place_order(
            a,
            lines=[{"sku": "X", "quantity": 2, "unit_price": Money.of(150, "CNY")}],
        )
        app.request_order_confirmation(a, order)
        with app.context(source_system="erp"):
            app.confirm_order(a, order)
        app.issue_invoice(a, amount=Money.of(300, "CNY"), order_id=order)
        app.receive_payment(a, amount=Money.of(300, "CNY"))


def _writer(conn: Any, seed: int) -> None:
    """A writer process: writes the customers it is sent, each range in ``bulk()``
    transactions of ``BULK`` customers, and answers with the log's head."""
    import traceback

    from crm_domain.application import CRM
    from crm_domain.infrastructure.collector import fewer_gc_passes

    app: Any = None
    store = ""
    # Writing the history is not measured: the bulk collector setting spares each
    # bulk call's live aggregates passes that find nothing (they die by refcount).
    with fewer_gc_passes():
        while True:
            message = conn.recv()
            if message is None:
                break
            try:
                if message[0] == "close":
                    if app is not None:
                        app.close()
                    app, store = None, ""
                    conn.send(("ok", 0))
                    continue
                _, url, first, count = message
                if app is None or store != url:
                    if app is not None:
                        app.close()
                    app, store = CRM(url, snapshot_interval=None), url
                for start in range(first, first + count, BULK):
                    with app.bulk():
                        for n in range(start, min(start + BULK, first + count)):
                            _customer(app, n, seed)
                conn.send(("ok", int(app.app.recorder.max_notification_id() or 0)))
            except BaseException:
                conn.send(("error", traceback.format_exc()))
    if app is not None:
        app.close()


def default_writers() -> int:
    """Writer processes of the generator: one per CPU (up to 4; SQLite has one writer at a
    time, and a writer spends most of its time deciding commands, not holding the lock)."""
    from projections.rebuild import default_workers

    return min(4, default_workers())


class History:
    """A seeded CRM history that grows: ``grow(events)`` writes whole rounds of ``ROUND``
    customers until the log holds at least ``events`` events, and returns its head.

    Customers are numbered from 1 and each one's history depends only on its number and the
    seed, so a history grown to 10k, then 100k, then 1M holds at each step exactly the
    customers (and events) a history grown straight to that size holds; only the order of a
    round's bulk transactions in the log depends on which writer commits first. The writers
    (``writers`` processes, one per CPU by default) go through the real command path; they
    close their connections after each ``grow`` (so the store can be copied).
    """

    def __init__(self, store_url: str, seed: int = 1, writers: int | None = None) -> None:
        import multiprocessing

        self.store_url, self.seed, self.head, self.customers = store_url, seed, 0, 0
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
        if context.get_start_method() == "fork":
            import crm_domain.application  # noqa: F401  (imported once, for every writer)
            import projections.rebuild  # noqa: F401
        self._pipes: list[Any] = []
        self._procs: list[Any] = []
        for _ in range(max(1, writers or default_writers())):
            ours, theirs = context.Pipe()
            proc = context.Process(target=_writer, args=(theirs, seed), daemon=True)
            proc.start()
            theirs.close()
            self._pipes.append(ours)
            self._procs.append(proc)

    def _ask(self, messages: list[Any]) -> list[int]:
        for pipe, message in zip(self._pipes, messages, strict=False):
            pipe.send(message)
        heads = []
        for pipe in self._pipes[: len(messages)]:
            status, value = pipe.recv()
            if status != "ok":
                raise RuntimeError(f"history writer failed:\n{value}")
            heads.append(value)
        return heads

    def grow(self, events: int) -> int:
        """Write rounds of customers until the log holds at least ``events`` events."""
        share = -(-ROUND // len(self._pipes))
        while self.head < events:
            first = self.customers + 1
            self.head = max(
                self._ask(
                    [
                        ("write", self.store_url, first + i, min(share, ROUND - i))
                        for i in range(0, ROUND, share)
                    ]
                )
            )
            self.customers += ROUND
        self._ask([("close",)] * len(self._pipes))
        return self.head

    def close(self) -> None:
        for pipe in self._pipes:
            with contextlib.suppress(OSError):
                pipe.send(None)
        for proc in self._procs:
            proc.join(timeout=30)
            if proc.is_alive():
                proc.terminate()
        self._pipes, self._procs = [], []

    def __enter__(self) -> History:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def generate(store_url: str, events: int, seed: int = 1, writers: int | None = None) -> int:
    """Write about ``events`` events of varied CRM history; returns the head of the log."""
    with History(store_url, seed, writers) as history:
        return history.grow(events)


MODES = ("raw", "decode", "floor", "runner-1", "rebuild-1", "rebuild")


def _floor_model() -> Any:
    """A read model that ignores every event: what following the log costs by itself."""
    from projections.events import ALL_EVENTS
    from projections.readmodel import ReadModel

    class Floor(ReadModel):
        name = "bench_floor"
        ignores = ALL_EVENTS

    return Floor


def measure(store_url: str, what: str) -> dict[str, Any]:
    """One measurement in this (fresh) process: 'raw', 'decode', 'floor' (the rebuild with a
    read model that ignores everything), 'rebuild-1' (every read model, one process: the
    fast path folding the log in memory), 'runner-1' (the same through the live runner's
    batches, ``fast=False``) or 'rebuild' (every read model, one worker process per CPU:
    what ``crm projections rebuild --all`` does)."""
    from crm_domain.application import CRM

    started = time.perf_counter()
    if what in ("rebuild", "rebuild-1", "runner-1", "floor"):
        from projections.rebuild import default_workers, rebuild

        if what == "floor":
            result = rebuild(store_url, read_models=[_floor_model()])
        elif what == "runner-1":
            result = rebuild(store_url, workers=1, fast=False)
        else:
            result = rebuild(store_url, workers=1 if what == "rebuild-1" else default_workers())
        count = result.events
    else:
        app = CRM(store_url, snapshot_interval=None)
        count, start = 0, 1
        while True:
            page = app.app.recorder.select_notifications(start=start, limit=1000)
            if not page:
                break
            if what == "decode":
                for notification in page:
                    app.app.mapper.to_domain_event(notification)
            count += len(page)
            start = page[-1].id + 1
        app.close()
    seconds = time.perf_counter() - started
    rss_kb = max(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,  # a parallel rebuild's workers
    )
    return {
        "what": what,
        "events": count,
        "seconds": round(seconds, 2),
        "rate": round(count / seconds),
        "peak_rss_mb": round(rss_kb / 1024, 1),
    }


def _in_child(store_url: str, what: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", what, "--store", store_url],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _forked(conn: Any) -> None:
    """The parent of the measurements' processes: forks one per measurement (``measure``
    in it, the result sent back), and waits for it."""
    import traceback

    while True:
        message = conn.recv()
        if message is None:
            return
        pid = os.fork()
        if pid == 0:  # the measurement's own process
            try:
                result: tuple[str, Any] = ("ok", measure(*message))
            except BaseException:
                result = ("error", traceback.format_exc())
            try:
                conn.send(result)
            finally:
                os._exit(0)
        _, status = os.waitpid(pid, 0)
        if status != 0:
            conn.send(("error", f"measurement {message[1]} exited with status {status}"))


class Fresh:
    """Fresh processes for the measurements, as ``python projections.py --child WHAT`` would
    be, without starting an interpreter and importing the CRM for each (about a second
    each): each is forked from one process started before anything else happens, which has
    imported what ``measure`` imports before its clock starts (``crm_domain.application``)
    and nothing more. Where processes cannot fork, each measurement runs in a new
    interpreter."""

    def __init__(self) -> None:
        import multiprocessing

        self._conn: Any = None
        self._proc: Any = None
        if "fork" not in multiprocessing.get_all_start_methods():
            return
        import crm_domain.application  # noqa: F401  (what a measurement imports off the clock)

        context = multiprocessing.get_context("fork")
        self._conn, theirs = context.Pipe()
        # Not a daemon: a measurement's process starts the rebuild's worker processes.
        self._proc = context.Process(target=_forked, args=(theirs,))
        self._proc.start()
        theirs.close()

    def measure(self, store_url: str, what: str) -> dict[str, Any]:
        if self._conn is None:
            return _in_child(store_url, what)
        self._conn.send((store_url, what))
        status, value = self._conn.recv()
        if status != "ok":
            raise RuntimeError(f"measurement {what} on {store_url} failed:\n{value}")
        result: dict[str, Any] = value
        return result

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(OSError):
                self._conn.send(None)
            self._proc.join(timeout=30)
            if self._proc.is_alive():
                self._proc.terminate()
            self._conn = None


def _store(backend: str, workdir: Path, size: int | str) -> str:
    if backend == "sqlite":
        return f"sqlite:///{workdir / f'bench-{size}.sqlite'}"
    import psycopg

    name = f"crm_bench_{size}_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN.rsplit("/", 1)[0]
    return f"{base}/{name}"


def _copy(store_url: str, workdir: Path, size: int) -> str:
    """A copy of the store (nobody connected to it), to measure on while the original grows
    on: SQLite's online backup (page for page), PostgreSQL's ``CREATE DATABASE ... TEMPLATE``."""
    if store_url.startswith("sqlite:///"):
        import sqlite3
        from contextlib import closing

        target = workdir / f"bench-{size}.sqlite"
        with (
            closing(sqlite3.connect(store_url.removeprefix("sqlite:///"))) as source,
            closing(sqlite3.connect(target)) as copy,
        ):
            source.backup(copy)
        return f"sqlite:///{target}"
    import psycopg

    name = f"crm_bench_{size}_{uuid.uuid4().hex[:6]}"
    template = store_url.rsplit("/", 1)[1]
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        for attempt in range(50):  # the writers' sessions may take a moment to end
            try:
                conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
                break
            except psycopg.errors.ObjectInUse:
                if attempt == 49:
                    raise
                time.sleep(0.1)
    return f"{store_url.rsplit('/', 1)[0]}/{name}"


def _drop(store_url: str) -> None:
    if store_url.startswith("postgres"):
        import psycopg

        name = store_url.rsplit("/", 1)[1]
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    elif store_url.startswith("sqlite:///"):
        path = store_url.removeprefix("sqlite:///")
        for suffix in ("", "-wal", "-shm"):
            Path(path + suffix).unlink(missing_ok=True)


#: From this many events on, ``--big-modes`` says what is measured.
BIG = 500_000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", nargs="+", type=int, default=[100_000, 1_000_000])
    parser.add_argument(
        "--backends", nargs="+", choices=["sqlite", "postgres"], default=["sqlite", "postgres"]
    )
    parser.add_argument("--workdir", default="", help="where SQLite files go (default: tmp)")
    parser.add_argument("--child", default="", help=argparse.SUPPRESS)
    parser.add_argument("--store", default="", help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--modes",
        nargs="+",
        choices=MODES,
        default=list(MODES),
        help="what to measure (default: all; 'raw' and 'rebuild-1' always run: the ratio)",
    )
    parser.add_argument(
        "--big-modes",
        nargs="+",
        choices=MODES,
        help=f"what to measure at {BIG:,} events and more (default: --modes)",
    )
    parser.add_argument(
        "--writers",
        type=int,
        default=0,
        help="processes writing the history (default: one per CPU, up to 4)",
    )
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.store, args.child)))
        return 0
    fresh = Fresh()  # first: forked from before the history is written
    try:
        rows = _measure_all(args, fresh)
    finally:
        fresh.close()
    print(
        "\nbackend   events     raw/s  decode/s   floor/s  1 proc/s  1 proc/raw  1 proc RSS MB"
        "  workers/s"
    )
    for r in rows:
        print(
            f"{r['backend']:9} {r['events']:>8} {r['raw_rate']:>9} {r['decode_rate'] or '-':>9} "
            f"{r['floor_rate'] or '-':>9} {r['rebuild_1_rate']:>9} {r['rebuild_1/raw']:>11} "
            f"{r['rebuild_1_rss_mb']:>14} {r['rebuild_rate'] or '-':>10}"
        )
    for backend in args.backends:
        rss = {r["events"]: r["rebuild_1_rss_mb"] for r in rows if r["backend"] == backend}
        if len(rss) > 1:
            small, big = min(rss), max(rss)
            print(
                f"{backend}: peak RSS {rss[big]} MB at {big} vs {rss[small]} MB at {small} "
                f"(x{rss[big] / rss[small]:.2f})"
            )
    return 0


def _measure_all(args: argparse.Namespace, fresh: Fresh) -> list[dict[str, Any]]:
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="crm-bench-"))
    sizes = sorted(set(args.sizes))
    rows: list[dict[str, Any]] = []
    for backend in args.backends:
        # One history per backend, grown from size to size: each size is measured on a copy
        # of the history as it stands (the largest on the history itself), which holds
        # exactly what a history generated straight to that size holds.
        store = _store(backend, workdir, "history")
        try:
            with History(store, writers=args.writers or None) as history:
                for size in sizes:
                    t = time.perf_counter()
                    head = history.grow(size)
                    generated = time.perf_counter() - t
                    print(f"{backend} {size}: {head} events, grown in {generated:.0f}s", flush=True)
                    last = size == sizes[-1]
                    rows.append(
                        _measure_size(
                            backend, store, workdir, size, head, generated, last, args, fresh
                        )
                    )
                    print(json.dumps(rows[-1]), flush=True)
                    if args.json:
                        args.json.write_text(json.dumps(rows, indent=1))
        finally:
            _drop(store)
    if not args.workdir:
        shutil.rmtree(workdir, ignore_errors=True)
    return rows


def _measure_size(
    backend: str,
    store: str,
    workdir: Path,
    size: int,
    head: int,
    generated: float,
    last: bool,
    args: argparse.Namespace,
    fresh: Fresh,
) -> dict[str, Any]:
    """Every measurement asked for at this size, each in a fresh process, on a copy of the
    history (on the history itself when it grows no further)."""
    t = time.perf_counter()
    target = store if last else _copy(store, workdir, size)
    copied = time.perf_counter() - t
    modes = args.big_modes if args.big_modes and size >= BIG else args.modes
    wanted = {"raw", "rebuild-1", *modes}
    if backend == "sqlite":
        # A rebuild of read models in SQLite folds in one process whatever ``workers`` says
        # (projections.rebuild): 'rebuild' would measure 'rebuild-1' again.
        wanted.discard("rebuild")
    t = time.perf_counter()
    try:
        results = {w: fresh.measure(target, w) for w in MODES if w in wanted}
    finally:
        if not last:
            _drop(target)
    measured = time.perf_counter() - t
    if results["raw"]["events"] != head:  # the copy holds the history as grown to this size
        raise RuntimeError(f"measured {results['raw']['events']} events, not {head}")
    raw = results["raw"]["rate"]

    def rate(mode: str) -> int | None:
        return results[mode]["rate"] if mode in results else None

    rebuild = rate("rebuild")
    return {
        "backend": backend,
        "events": head,
        "generate_seconds": round(generated, 1),
        "copy_seconds": round(copied, 1),
        "measure_seconds": round(measured, 1),
        "raw_rate": raw,
        "decode_rate": rate("decode"),
        "floor_rate": rate("floor"),
        "runner_1_rate": rate("runner-1"),
        "rebuild_1_rate": results["rebuild-1"]["rate"],
        "rebuild_1/raw": round(results["rebuild-1"]["rate"] / raw, 3),
        "rebuild_1_rss_mb": results["rebuild-1"]["peak_rss_mb"],
        "load": round(os.getloadavg()[0], 1),
        "rebuild_rate": rebuild,
        "rebuild/raw": round(rebuild / raw, 3) if rebuild else None,
        "rebuild/decode": round(rebuild / results["decode"]["rate"], 3)
        if rebuild and "decode" in results
        else None,
        "rebuild_rss_mb": results["rebuild"]["peak_rss_mb"] if rebuild else None,
    }


if __name__ == "__main__":
    raise SystemExit(main())
