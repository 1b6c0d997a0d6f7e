"""Rebuild rate of the read models against the raw read rate of the notification log.

Run on demand (not a test)::

    python benchmarks/projections.py                      # 100k and 1M, SQLite and PostgreSQL
    python benchmarks/projections.py --sizes 20000 --backends sqlite   # quick look

For each backend and size it writes a realistic history (customers with contacts,
tickets, accounts, deals, quotes, orders, invoices and payments), then, in a fresh
process per measurement: reads the whole log raw (notifications only), reads and decodes
it (domain events), runs the rebuild machinery with a read model that ignores every event
(the floor: what following the log costs by itself), and rebuilds all read models in one
process and with one worker process per CPU (the default of ``crm projections rebuild``),
reporting events/s and peak RSS.
Targets (issue 3): rebuild >= 1/3 of the raw read rate; peak RSS at 1M within 1.5x of
that at 100k.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
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


def generate(store_url: str, events: int, seed: int = 1) -> int:
    """Write about ``events`` events of varied CRM history; returns the head of the log."""
    import random

    from crm_domain.application import CRM
    from crm_domain.infrastructure.collector import fewer_gc_passes
    from crm_domain.values import Money

    rng = random.Random(seed)
    app = CRM(store_url, snapshot_interval=None)
    n = 0
    try:
        # Writing the history is not measured: the bulk collector setting spares each
        # bulk call's live aggregates passes that find nothing (they die by refcount).
        with fewer_gc_passes():
            while (app.app.recorder.max_notification_id() or 0) < events:
                with app.bulk():
                    for _ in range(25):
                        n += 1
                        c = app.register_customer(
                            kind="enterprise", name=f"Company {n}", code=f"B{n:07d}"
                        )
                        app.assign_customer_manager(c, manager=f"rep{n % 40}", reason="territory")
                        a = app.open_account(customer_id=c, name=f"Company {n} buying")
                        app.assign_account_manager(a, manager=f"rep{n % 40}", reason="territory")
                        for _ in range(rng.randint(2, 8)):
                            contact = app.log_contact(
                                c,
                                channel=rng.choice(["phone", "email", "visit"]),
                                direction="outbound",
                                summary="catch-up call",
                                commitments=[
                                    {"description": "send offer", "owner": f"rep{n % 40}"}
                                ],
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
                                lines=[
                                    {"sku": "X", "quantity": 2, "unit_price": Money.of(150, "CNY")}
                                ],
                            )
                            app.request_order_confirmation(a, order)
                            with app.context(source_system="erp"):
                                app.confirm_order(a, order)
                            app.issue_invoice(a, amount=Money.of(300, "CNY"), order_id=order)
                            app.receive_payment(a, amount=Money.of(300, "CNY"))
            return int(app.app.recorder.max_notification_id() or 0)
    finally:
        app.close()


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


def _store(backend: str, workdir: Path, size: int) -> str:
    if backend == "sqlite":
        return f"sqlite:///{workdir / f'bench-{size}.sqlite'}"
    import psycopg

    name = f"crm_bench_{size}_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN.rsplit("/", 1)[0]
    return f"{base}/{name}"


def _drop(store_url: str) -> None:
    if store_url.startswith("postgres"):
        import psycopg

        name = store_url.rsplit("/", 1)[1]
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


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
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.store, args.child)))
        return 0
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="crm-bench-"))
    rows = []
    for backend in args.backends:
        for size in args.sizes:
            store = _store(backend, workdir, size)
            try:
                t = time.perf_counter()
                head = generate(store, size)
                generated = time.perf_counter() - t
                print(f"{backend} {size}: wrote {head} events in {generated:.0f}s", flush=True)
                wanted = {"raw", "rebuild-1", *args.modes}
                results = {w: _in_child(store, w) for w in MODES if w in wanted}
            finally:
                _drop(store)
            raw = results["raw"]["rate"]

            def rate(mode: str, results: dict[str, Any] = results) -> int | None:
                return results[mode]["rate"] if mode in results else None

            rebuild = rate("rebuild")
            row = {
                "backend": backend,
                "events": head,
                "generate_seconds": round(generated, 1),
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
            rows.append(row)
            print(json.dumps(row), flush=True)
            if args.json:
                args.json.write_text(json.dumps(rows, indent=1))
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


if __name__ == "__main__":
    raise SystemExit(main())
