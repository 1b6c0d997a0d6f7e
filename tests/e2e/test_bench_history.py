"""The benchmarks' history generator (benchmarks/projections.py): a history grown in steps,
measured on a copy at each step, holds at each step what a history written straight to
that size holds, so `make bench` can grow one history to 10k, 100k and 1M events."""

from __future__ import annotations

import importlib.util
import sqlite3
from collections import Counter
from contextlib import closing
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def _bench() -> Any:
    spec = importlib.util.spec_from_file_location(
        "projections_bench", ROOT / "benchmarks" / "projections.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _shape(url: str) -> tuple[int, Counter[tuple[str, int]], int]:
    """Events, how many of each type at each aggregate version, and aggregates."""
    with closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as db:
        rows = db.execute("SELECT topic, originator_version FROM stored_events").fetchall()
        aggregates = db.execute("SELECT COUNT(DISTINCT originator_id) FROM stored_events")
        return len(rows), Counter(rows), aggregates.fetchone()[0]


def test_a_grown_history_holds_what_one_written_straight_to_its_size_holds(
    tmp_path: Path,
) -> None:
    bench = _bench()
    grown = f"sqlite:///{tmp_path / 'grown.sqlite'}"
    with bench.History(grown, writers=2) as history:
        small = history.grow(1500)
        at_small = bench._copy(grown, tmp_path, small)
        large = history.grow(4000)
    assert 1500 <= small < 4000 <= large
    straight_small = f"sqlite:///{tmp_path / 'small.sqlite'}"
    straight_large = f"sqlite:///{tmp_path / 'large.sqlite'}"
    assert bench.generate(straight_small, 1500, writers=1) == small
    assert bench.generate(straight_large, 4000, writers=1) == large
    assert _shape(at_small) == _shape(straight_small)
    assert _shape(grown) == _shape(straight_large)
    bench._drop(at_small)
    assert not Path(at_small.removeprefix("sqlite:///")).exists()
