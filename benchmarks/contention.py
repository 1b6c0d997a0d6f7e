"""Contention: several writers on ONE customer (and its account), all at once.

Run::

    python benchmarks/contention.py [--writers 2,4,8] [--commands 40] [--backends sqlite,postgres]

Each writer is a separate process (``--mode thread`` for threads) with its own ``CRM`` on
the same store, starting together, each running ``--commands`` commuting commands
alternately ``log_contact`` on the customer and ``receive_payment`` on its account. A
commuting command that meets a concurrent write is decided again on fresh state (after a
jittered back-off), up to ``CRM.max_retries`` times; beyond that it fails with
``ConcurrencyConflictError``. Reported: success rate (target 100% at 8 writers), p50/p99
latency per command, and stored contacts/payments (they must equal the successes).

This is a benchmark, not a test: it prints a table and exits 0.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse, urlunparse
from uuid import UUID

from rich.console import Console
from rich.table import Table

from crm_domain import CRM, Money
from crm_domain.errors import ConcurrencyConflictError

DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
console = Console()


@dataclass
class WriterResult:
    ok: int = 0
    conflicts: int = 0
    latencies: list[float] = field(default_factory=list)


def writer(
    store: str, customer_id: UUID, account_id: UUID, commands: int, start_at: float, tag: str
) -> WriterResult:
    """One writer: its own CRM on the store, ``commands`` commuting commands."""
    # Opened one after another: eventsourcing's PostgreSQL recorder (re)creates its
    # tables and functions on start, which concurrent starts can trip over.
    time.sleep(int(tag[1:]) * 0.15)
    crm = CRM(store, snapshot_interval=50)
    result = WriterResult()
    try:
        time.sleep(max(0.0, start_at - time.time()))
        for i in range(commands):
            t0 = time.perf_counter()
            try:
                if i % 2 == 0:
                    crm.log_contact(
                        customer_id, channel="phone", direction="inbound", summary=f"{tag}-{i}"
                    )
                else:
                    crm.receive_payment(account_id, amount=Money.of(1, "CNY"), reference=tag)
                result.ok += 1
            except ConcurrencyConflictError:
                result.conflicts += 1
            result.latencies.append(time.perf_counter() - t0)
    finally:
        crm.close()
    return result


def _process_writer(args: tuple[Any, ...]) -> WriterResult:
    return writer(*args)


@dataclass
class Row:
    backend: str
    writers: int
    attempted: int
    ok: int
    stored: int
    p50_ms: float
    p99_ms: float
    seconds: float


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def run(backend: str, store: str, writers: int, commands: int, mode: str) -> Row:
    setup = CRM(store)
    code = f"C-{uuid.uuid4().hex[:8]}"
    customer_id = setup.register_customer(kind="enterprise", name="Contended Ltd", code=code)
    account_id = setup.open_account(customer_id=customer_id, name="Contended")
    versions = setup.customer(customer_id).version + setup.account(account_id).version
    start_at = time.time() + (3.0 if mode == "process" else 0.3) + 0.15 * writers
    jobs = [(store, customer_id, account_id, commands, start_at, f"w{n}") for n in range(writers)]
    started = time.perf_counter()
    results: list[WriterResult]
    if mode == "process":
        with mp.get_context("spawn").Pool(writers) as pool:
            results = pool.map(_process_writer, jobs)
    else:
        results = [WriterResult() for _ in jobs]

        def work(i: int) -> None:
            results[i] = writer(*jobs[i])

        threads = [threading.Thread(target=work, args=(i,)) for i in range(writers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    seconds = time.perf_counter() - started - max(0.0, start_at - time.time())
    # Every success stored exactly one event on the customer or the account.
    stored = setup.customer(customer_id).version + setup.account(account_id).version - versions
    setup.close()
    latencies = [x for r in results for x in r.latencies]
    return Row(
        backend=backend,
        writers=writers,
        attempted=writers * commands,
        ok=sum(r.ok for r in results),
        stored=stored,
        p50_ms=percentile(latencies, 0.5) * 1000,
        p99_ms=percentile(latencies, 0.99) * 1000,
        seconds=seconds,
    )


@contextmanager
def sqlite_store() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="crm-contention-") as tmp:
        yield f"sqlite:///{Path(tmp) / 'crm.db'}"


@contextmanager
def postgres_store(pg_url: str) -> Iterator[str]:
    import psycopg

    name = f"crm_contention_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunparse(urlparse(pg_url)._replace(path="/" + name, query=""))
    finally:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--writers", default="2,4,8", help="comma-separated writer counts")
    p.add_argument("--commands", type=int, default=40, help="commands per writer")
    p.add_argument("--backends", default="sqlite,postgres", help="sqlite, postgres")
    p.add_argument("--pg-url", default=DEFAULT_PG_URL, help="server to make a scratch db on")
    p.add_argument("--mode", choices=("process", "thread"), default="process")
    args = p.parse_args(argv)

    rows: list[Row] = []
    for backend in [b.strip() for b in args.backends.split(",") if b.strip()]:
        for n in [int(w) for w in args.writers.split(",")]:
            store_cm = sqlite_store() if backend == "sqlite" else postgres_store(args.pg_url)
            with store_cm as store:
                rows.append(run(backend, store, n, args.commands, args.mode))
            console.print(rows[-1])

    table = Table(title=f"Commuting commands, writers on one customer ({args.mode}es)")
    for col in ("backend", "writers", "commands", "succeeded", "stored", "p50 ms", "p99 ms"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(
            r.backend,
            str(r.writers),
            str(r.attempted),
            f"{r.ok / r.attempted:.1%}",
            "ok" if r.stored == r.ok else f"{r.stored} != {r.ok}",
            f"{r.p50_ms:.1f}",
            f"{r.p99_ms:.1f}",
        )
    console.print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
