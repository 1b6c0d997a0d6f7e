"""Run every benchmark and write docs/performance.md (``make bench``; ``make bench-full``).

Each benchmark runs as its own process, writing JSON that this script turns into tables:
every figure beside its bare baseline and their ratio (measured in the same run, so the
machine's load affects both), the load average while it ran, and how the rebuild scales
with the size of the history (10k, 100k and 1M events) with peak memory; ``--full`` makes
every measurement at 1M on every backend.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DOC = HERE.parent / "docs" / "performance.md"


def _run(name: str, args: list[str], out: Path | None, log: list[str]) -> Any:
    started, cpu = time.monotonic(), _children_cpu()
    print(f"== {name}: {' '.join(args)}", flush=True)
    done = subprocess.run(
        [sys.executable, str(HERE / name), *args], capture_output=True, text=True, check=False
    )
    seconds, cpu = time.monotonic() - started, _children_cpu() - cpu
    print(done.stdout[-3000:], done.stderr[-2000:], sep="\n", flush=True)
    log.append(
        f"{name} {' '.join(args)}: {seconds:.0f} s, {cpu:.0f} s of CPU in its processes "
        f"(exit {done.returncode})"
    )
    if out is None:
        return done.stdout
    # What was measured before a failure is reported too (the log shows the exit status).
    return json.loads(out.read_text()) if out.exists() else None


def _children_cpu() -> float:
    """CPU seconds of the finished child processes (a benchmark's own children included;
    the database server's not)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _n(value: int | None) -> str:
    """A rate, or a dash where that measurement was not made (1M in `make bench`)."""
    return "-" if value is None else f"{value:,}"


def _workers(row: dict[str, Any]) -> str:
    """The worker processes' rate; SQLite's rebuild folds in one process whatever the
    number of workers (projections.rebuild), so there it is the fold's, not measured twice."""
    if row["backend"] == "sqlite" and row["rebuild_rate"] is None:
        return "= fold"
    return _n(row["rebuild_rate"])


def _ratio(ours: float | None, bare: float | None) -> str:
    return f"{ours / bare:.2f}" if ours and bare else "n/a"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--full", action="store_true", help="add the 1M-event projections run")
    parser.add_argument("--backends", nargs="+", default=["sqlite", "postgres"])
    parser.add_argument(
        "--full-backends",
        nargs="+",
        default=["sqlite", "postgres"],
        help="backends of the 1M-event run (with --full)",
    )
    parser.add_argument("--doc", type=Path, default=DOC)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="crm-bench-report-"))
    log: list[str] = []
    began = time.monotonic()
    load_before = os.getloadavg()[0]
    # One history per backend, grown to 10k, 100k (and 1M) events and measured at each size
    # on a copy of it (projections.py). At 1M: SQLite's bare read and one-process fold (the
    # target and the memory figure) in every run; with --full, every measurement on every
    # backend of --full-backends. 'floor' is not in these tables, so it is not measured here.
    modes = ["raw", "decode", "runner-1", "rebuild-1", "rebuild"]
    projections: list[dict[str, Any]] = []
    for backend in args.backends:
        million = backend in (args.full_backends if args.full else ["sqlite"])
        rows = _run(
            "projections.py",
            [
                "--sizes",
                "10000",
                "100000",
                *(["1000000"] if million else []),
                "--backends",
                backend,
                "--modes",
                *modes,
                *([] if args.full else ["--big-modes", "raw", "rebuild-1"]),
                "--json",
                str(tmp / f"p-{backend}.json"),
            ],
            tmp / f"p-{backend}.json",
            log,
        )
        for r in rows or []:
            log.append(
                f"  {backend} at {r['events']:,} events: history grown in "
                f"{r['generate_seconds']:.0f} s, copied in {r['copy_seconds']:.0f} s, "
                f"measured in {r['measure_seconds']:.0f} s"
            )
        projections += rows or []
    projections.sort(key=lambda r: (r["backend"], r["events"]))
    importing = _run(
        "importing.py",
        ["--backends", *args.backends, "--json", str(tmp / "i.json")],
        tmp / "i.json",
        log,
    )
    relay = _run("relay.py", ["--rounds", "3", "--json", str(tmp / "r.json")], tmp / "r.json", log)
    aggregates = _run("aggregates.py", ["--json", str(tmp / "a.json")], tmp / "a.json", log)
    commands = _run(
        "commands.py",
        ["--backends", ",".join(args.backends), "--rounds", "2"],
        None,
        log,
    )
    audit = _run("audit.py", ["--size", "20000", "--backends", *args.backends], None, log)
    total = time.monotonic() - began
    lines = [
        "# Performance",
        "",
        "Written by `make bench` (`benchmarks/report.py`; `make bench-full` measures everything",
        "at 1M events on both backends).",
        "Every figure stands beside its bare baseline, measured in the same run; the machine is",
        "shared, so compare ratios, not absolute rates, and mind the load average noted.",
        "Where the time goes, and why the part that remains is there:",
        "[where-the-time-goes.md](where-the-time-goes.md).",
        "",
        f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"- machine: {os.cpu_count()} cores, {platform.machine()}, Python "
        f"{platform.python_version()}, load average {load_before:.1f} at the start",
        f"- whole run: {total / 60:.1f} min"
        + (
            f" (every measurement at 1M events on {', '.join(args.full_backends)})"
            if args.full
            else " (at 1M events: SQLite, bare read and fold; `make bench-full` measures all)"
        ),
        "",
        "## Rebuild of all read models against the bare log read",
        "",
        "bare = reading the notification log raw; fold = `crm projections rebuild` in one process",
        "(the fast path: log in pages, routed by topic before decoding, rows folded in memory,",
        "each table written once); runner = the same rebuild through the live runner's batches;",
        "workers = one process per core (on PostgreSQL; SQLite folds in one process whatever",
        "the number of workers, so its workers figure is the fold's). Each size is measured on",
        "one history per backend grown from 10k to 100k to 1M events (the same customers and",
        "events as a history written straight to that size); load = the 1-minute load average",
        "after that size's measurements, which still counts the history's writers (one per",
        "core) just before them. Target: fold >= 1/3 of bare.",
        "",
        "| backend | events | bare/s | decode/s | runner/s | fold/s | fold/bare | workers/s "
        "| fold RSS MB | load |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in projections or []:
        lines.append(
            f"| {r['backend']} | {r['events']:,} | {r['raw_rate']:,} | {_n(r['decode_rate'])} "
            f"| {_n(r['runner_1_rate'])} | {r['rebuild_1_rate']:,} | {r['rebuild_1/raw']} "
            f"| {_workers(r)} | {r['rebuild_1_rss_mb']} | {r['load']} |"
        )
    if not projections:
        lines.append("| (failed: see the log below) |")
    for backend in sorted({r["backend"] for r in projections or []}):
        rss = {
            r["events"]: r["rebuild_1_rss_mb"] for r in projections or [] if r["backend"] == backend
        }
        hundred_k = [e for e in rss if 50_000 <= e < 500_000]
        million = [e for e in rss if e >= 500_000]
        if hundred_k and million:
            ratio = rss[million[0]] / rss[hundred_k[0]]
            lines.append(
                f"\n{backend}: fold peak RSS {rss[million[0]]} MB at {million[0]:,} events, "
                f"{rss[hundred_k[0]]} MB at {hundred_k[0]:,} (x{ratio:.2f}; target <= 1.5)."
            )
    lines += [
        "",
        "## Bulk import of an ERP order history",
        "",
        "ours = `crm import orders --format cdnow` (every rule on, ERP context); bare = the rows",
        "it stored copied into an empty table of the same schema (`executemany` on SQLite,",
        "`COPY` on PostgreSQL). Target: ours >= 0.25 of bare.",
        "",
        "| backend | file | rows | events | ours events/s | bare rows/s | ratio | CPU s | load |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in importing or []:
        lines.append(
            f"| {r['backend']} | {r['file']} | {r['rows']:,} | {r['events']:,} "
            f"| {r['import_rate']:,} | {r['bare_rate']:,} | {r['ratio']} "
            f"| {r['import_cpu_s']} | {r['load']} |"
        )
    lines += [
        "",
        "## Kafka relay",
        "",
        "ours = the relay from the store to acknowledged messages; bare = a kafka-python",
        "producer with the relay's settings (acks=all, idempotent, one request in flight) and",
        "the same accelerator, on the same records; ceiling = confluent-kafka (librdkafka).",
        "Medians of 3 rounds on a tansu broker sharing the cores. Target: ours >= 0.8 of bare.",
        "",
    ]
    if relay:
        ceiling = relay.get("confluent_rate")
        lines += [
            "| messages | ours/s | bare/s | ratio | kafka-python defaults/s | ceiling/s "
            "| CRC32C | load |",
            "|---:|---:|---:|---:|---:|---:|---|---:|",
            f"| {relay['messages']:,} | {relay['relay_rate']:,} | {relay['bare_rate']:,} "
            f"| {relay['ratio']} | {relay['bare_default_rate']:,} "
            f"| {f'{ceiling:,}' if ceiling else 'not installed'} | {relay['crc32c']} "
            f"| {relay['load']} |",
        ]
    else:
        lines.append("(failed or skipped: see the log below)")
    lines += [
        "",
        "## Loading one customer, with and without snapshots",
        "",
        "Median time of `crm.customer(id)` (SQLite); with snapshots it stays flat.",
        "",
        "| events | with snapshots ms | without ms | ratio | load |",
        "|---:|---:|---:|---:|---:|",
    ]
    for r in aggregates or []:
        lines.append(
            f"| {r['events']:,} | {r['with_snapshots_ms']} | {r['without_snapshots_ms']} "
            f"| {_ratio(r['with_snapshots_ms'], r['without_snapshots_ms'])} | {r['load']} |"
        )
    lines += [
        "",
        "## Commands (ours beside a bare eventsourcing application)",
        "",
        "bare = eventsourcing's own recorders and no personal-data sealing: ours/bare prices",
        "the command handling, the hash chain and the encryption together (target >= 0.80).",
        "",
        "```text",
        *(str(commands or "(failed: see the log below)").rstrip().splitlines()[-40:]),
        "```",
        "",
        "## Audit: `crm audit verify` beside a rebuild, and the chain's write cost",
        "",
        "```text",
        *(str(audit or "(failed: see the log below)").rstrip().splitlines()[-12:]),
        "```",
        "",
        "## Run log",
        "",
        *(f"  - {line.strip()}" if line.startswith(" ") else f"- {line}" for line in log),
        "",
    ]
    args.doc.write_text("\n".join(lines))
    shutil.rmtree(tmp, ignore_errors=True)
    print(f"wrote {args.doc} in {total / 60:.1f} min", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
