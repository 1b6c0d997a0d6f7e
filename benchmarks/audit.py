"""Speed of ``crm audit verify`` beside a projection rebuild, and the chain's write cost.

Run on demand (not a test)::

    python benchmarks/audit.py                  # 20k events on SQLite
    python benchmarks/audit.py --size 100000 --backends sqlite postgres

For each backend it writes a realistic history (the generator of
``benchmarks/projections.py``), then measures on the same store: the verification (chain
walk, every event's hash, the log's and the aggregates' chains; snapshots off, as the
generator takes none), the rebuild of every read model in one process; and the chain's
cost on the write path: the CPU to compute a chain row, and one-event transactions through
the stock SQLite recorder and ours, in alternating rounds (the commands benchmark's "bare"
side uses our recorder too, so its ratio does not show the chain's cost). Target (issue
11): verify at least as fast as a rebuild.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))


def _projections_bench() -> object:
    spec = importlib.util.spec_from_file_location("projections_bench", HERE / "projections.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def chain_cost_us(events: int = 20000) -> float:
    """Microseconds of CPU per event to compute its chain row (hash, links)."""
    from eventsourcing.persistence import StoredEvent

    from crm_domain.infrastructure.hashchain import link_batch

    state = b'{"name":"Company 1","kind":"enterprise","code":"B0000001"}' * 4
    stored = [
        StoredEvent(originator_id=uuid.uuid4(), originator_version=1, topic="t:T", state=state)
        for _ in range(events)
    ]
    started = time.perf_counter()
    for i in range(0, events, 3):
        link_batch(stored[i : i + 3], list(range(i, i + len(stored[i : i + 3]))), None, {})
    return (time.perf_counter() - started) / events * 1e6


def write_cost(saves: int = 1500, rounds: int = 3) -> tuple[float, float]:
    """Events/s of one-event transactions on SQLite (fsync on), through the stock recorder
    and through ours (which chains), in alternating rounds: the chain's cost on the
    write path, by itself."""
    from eventsourcing.application import Application
    from eventsourcing.domain import Aggregate, event

    from crm_domain.infrastructure.sqlite_subscription import (
        SubscribableSQLiteApplicationRecorder,
    )
    from crm_domain.infrastructure.storage import StoreURL

    class Note(Aggregate):
        @event("Written")
        def write(self, text: str) -> None:
            self.text = text

    stock = "eventsourcing.sqlite:SQLiteApplicationRecorder"
    ours = (
        f"{SubscribableSQLiteApplicationRecorder.__module__}:SubscribableSQLiteApplicationRecorder"
    )
    rates: dict[str, list[float]] = {stock: [], ours: []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(rounds):
            for topic in (stock, ours):
                env = StoreURL.parse(f"sqlite:///{tmp}/{r}-{len(rates[topic])}.db")
                settings = env.eventsourcing_env() | {"APPLICATION_RECORDER_TOPIC": topic}
                app = Application[uuid.UUID](settings)
                notes = [Note() for _ in range(50)]
                app.save(*notes)
                started = time.perf_counter()
                for i in range(saves):
                    note = notes[i % 50]
                    note.write(f"note {i}")
                    app.save(note)
                rates[topic].append(saves / (time.perf_counter() - started))
                app.close()
    return max(rates[stock]), max(rates[ours])


def main() -> int:
    """Print verify and rebuild events/s per backend, and the chain's cost per event."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=20_000)
    parser.add_argument("--backends", nargs="+", default=["sqlite"])
    args = parser.parse_args()
    bench = _projections_bench()
    from crm_domain.application import CRM
    from crm_domain.audit.verify import verify_log

    print(f"chain rows: {chain_cost_us():.1f} µs of CPU per event written")
    stock, chained = write_cost()
    print(
        f"SQLite one-event writes: stock recorder {stock:,.0f}/s, chained {chained:,.0f}/s "
        f"(ratio {chained / stock:.2f})"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for backend in args.backends:
            url = bench._store(backend, Path(tmp), args.size)  # type: ignore[attr-defined]
            try:
                bench.generate(url, args.size)  # type: ignore[attr-defined]
                crm = CRM(url, snapshot_interval=None)
                report = verify_log(crm, snapshots=False)
                assert report.intact, report.summary()
                started = time.perf_counter()
                verify_log(crm, snapshots=False)
                verify_rate = report.events / (time.perf_counter() - started)
                crm.close()
                rebuild = bench.measure(url, "rebuild-1")  # type: ignore[attr-defined]
                print(
                    f"{backend}: {report.events:,} events; verify {verify_rate:,.0f} events/s; "
                    f"rebuild (one process) {rebuild['rate']:,.0f} events/s; "
                    f"ratio {verify_rate / rebuild['rate']:.1f}x"
                )
            finally:
                bench._drop(url)  # type: ignore[attr-defined]
    return 0


if __name__ == "__main__":
    sys.exit(main())
