"""Loading one customer with 10 to 10,000 events, with and without snapshots.

Run on demand (not a test)::

    python benchmarks/aggregates.py [--sizes 10 100 1000 10000] [--json FILE]

For each size a customer gets that many events (registration, then logged contacts) plus
half a snapshot interval more (so a load reads a snapshot *and* events after it, not the
best case of a snapshot at the last version), in a SQLite store with the default snapshot
interval and in one without snapshots; then the customer is loaded (``crm.customer(id)``,
as every command on it does) repeatedly, and the median load time is printed. With
snapshots the load stays flat: at most one snapshot plus fewer than ``snapshot_interval``
events are read, however long the history.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def load_times(store_url: str, events: int, snapshot_interval: int | None) -> dict[str, Any]:
    """Write one customer's ``events`` events, then time loading it; median milliseconds."""
    from crm_domain.application import CRM

    crm = CRM(store_url, snapshot_interval=snapshot_interval)
    try:
        customer = crm.register_customer(kind="individual", name="Long History", code="LONG")
        left = events - 1
        while left > 0:
            step = min(left, 500)
            with crm.bulk():
                for i in range(step):
                    crm.log_contact(
                        customer, channel="phone", direction="outbound", summary=f"call {i}"
                    )
            left -= step
        crm.customer(customer)  # warm: classes and statements compiled
        times = []
        for _ in range(max(5, min(50, 20_000 // max(events, 1)))):
            started = time.perf_counter()
            loaded = crm.customer(customer)
            times.append(time.perf_counter() - started)
        assert loaded.version == events, (loaded.version, events)
    finally:
        crm.close()
    return {"events": events, "load_ms": round(statistics.median(times) * 1000, 3)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", nargs="+", type=int, default=[10, 100, 1000, 10_000])
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    from crm_domain.settings import CRMSettings

    interval = CRMSettings().snapshot_interval
    workdir = Path(tempfile.mkdtemp(prefix="crm-agg-bench-"))
    rows = []
    for size in args.sizes:
        events = size + interval // 2
        with_snapshots = load_times(f"sqlite:///{workdir / f's{size}.sqlite'}", events, interval)
        without = load_times(f"sqlite:///{workdir / f'n{size}.sqlite'}", events, 0)
        row = {
            "events": events,
            "snapshot_interval": interval,
            "with_snapshots_ms": with_snapshots["load_ms"],
            "without_snapshots_ms": without["load_ms"],
            "load": round(os.getloadavg()[0], 1),
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
