"""Bulk import of an ERP order history against the bare database inserting the same rows.

Run on demand (not a test)::

    python benchmarks/importing.py                        # CDNOW sample, SQLite and PostgreSQL
    python benchmarks/importing.py --file ../shared/data/cdnow/CDNOW_master.txt --backends sqlite

For each backend: imports the file with ``crm import orders``' code path (every rule
check on, ERP-source context, many customers per transaction), then copies the stored
event rows the import wrote into an empty table of the same schema: ``executemany`` on
SQLite, ``COPY`` on PostgreSQL, one transaction, in the same run. Prints events/s of
both and their ratio (issue 12 target: import >= 0.25 of the bare inserts), wall and CPU
seconds (CPU: the machine is shared, compare ratios measured in one run).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

PG_ADMIN = os.environ.get("CRM_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
SAMPLE = ROOT.parent / "shared" / "data" / "cdnow" / "CDNOW_sample.txt"


def _store(backend: str, workdir: Path) -> str:
    if backend == "sqlite":
        return f"sqlite:///{workdir / f'import-{uuid.uuid4().hex[:6]}.sqlite'}"
    import psycopg

    name = f"crm_import_bench_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{PG_ADMIN.rsplit('/', 1)[0]}/{name}"


def _drop(store_url: str) -> None:
    if store_url.startswith("postgres"):
        import psycopg

        name = store_url.rsplit("/", 1)[1]
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def import_file(store_url: str, path: Path, batch_size: int) -> dict[str, Any]:
    """Import ``path`` (CDNOW layout) into a fresh store; events, wall and CPU seconds."""
    from adapters.orders_import import CustomerNaming, import_orders, read_cdnow
    from crm_domain.application import CRM

    crm = CRM(store_url)
    try:
        wall, cpu = time.perf_counter(), time.process_time()
        summary = import_orders(
            crm, read_cdnow(path), naming=CustomerNaming(code="CDNOW-{ref}"), batch_size=batch_size
        )
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    finally:
        crm.close()
    return {"events": summary.events, "rows": summary.rows, "wall": wall, "cpu": cpu}


def bare_copy(store_url: str) -> dict[str, Any]:
    """Copy the stored event rows into an empty table of the same schema, one transaction."""
    if store_url.startswith("sqlite"):
        import sqlite3

        conn = sqlite3.connect(store_url.removeprefix("sqlite:///"))
        (ddl,) = conn.execute(
            "SELECT sql FROM sqlite_master WHERE type='table' AND name='stored_events'"
        ).fetchone()
        conn.execute(ddl.replace("stored_events", "bare_events", 1))
        rows = conn.execute(
            "SELECT originator_id, originator_version, topic, state FROM stored_events"
        ).fetchall()
        conn.commit()
        wall, cpu = time.perf_counter(), time.process_time()
        conn.executemany("INSERT INTO bare_events VALUES (?, ?, ?, ?)", rows)
        conn.commit()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        conn.close()
        return {"rows": len(rows), "wall": wall, "cpu": cpu}
    import psycopg

    with psycopg.connect(store_url.replace("postgresql+psycopg", "postgresql")) as conn:
        conn.execute("CREATE TABLE bare_events (LIKE crm_events INCLUDING ALL)")
        columns = "originator_id, originator_version, topic, state"
        rows = conn.execute(f"SELECT {columns} FROM crm_events").fetchall()
        conn.commit()
        wall, cpu = time.perf_counter(), time.process_time()
        with conn.cursor() as cur, cur.copy(f"COPY bare_events ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        conn.commit()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"rows": len(rows), "wall": wall, "cpu": cpu}


def run(backend: str, path: Path, batch_size: int, workdir: Path) -> dict[str, Any]:
    """One backend: the import, then the bare copy of its rows; rates and ratio."""
    store = _store(backend, workdir)
    try:
        ours = import_file(store, path, batch_size)
        bare = bare_copy(store)
    finally:
        _drop(store)
    ours_rate = ours["events"] / ours["wall"]
    bare_rate = bare["rows"] / bare["wall"]
    return {
        "backend": backend,
        "file": path.name,
        "rows": ours["rows"],
        "events": ours["events"],
        "import_s": round(ours["wall"], 2),
        "import_cpu_s": round(ours["cpu"], 2),
        "import_rate": round(ours_rate),
        "bare_rate": round(bare_rate),
        "ratio": round(ours_rate / bare_rate, 3),
        "load": round(os.getloadavg()[0], 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--file", type=Path, default=SAMPLE)
    parser.add_argument(
        "--backends", nargs="+", choices=["sqlite", "postgres"], default=["sqlite", "postgres"]
    )
    parser.add_argument("--batch-size", type=int, default=2000)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if not args.file.exists():
        print(f"skipped: {args.file} not found", flush=True)
        return 0
    workdir = Path(tempfile.mkdtemp(prefix="crm-import-bench-"))
    results = []
    for backend in args.backends:
        result = run(backend, args.file, args.batch_size, workdir)
        results.append(result)
        print(json.dumps(result), flush=True)
    print("\nbackend   rows    events  import ev/s  bare rows/s  ratio  load")
    for r in results:
        print(
            f"{r['backend']:9} {r['rows']:>6} {r['events']:>8} {r['import_rate']:>11} "
            f"{r['bare_rate']:>12} {r['ratio']:>6} {r['load']:>5}"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
