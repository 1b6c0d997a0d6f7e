"""The one garbage-collector helper of bulk jobs (rebuilds, order imports, benchmarks)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from crm_domain.infrastructure.collector import BULK_GC_THRESHOLD, fewer_gc_passes


@pytest.fixture(autouse=True)
def _collector_as_it_was() -> Iterator[None]:
    threshold, enabled = gc.get_threshold(), gc.isenabled()
    yield
    gc.set_threshold(*threshold)
    if enabled:
        gc.enable()
    else:
        gc.disable()


def test_the_first_threshold_is_raised_then_restored_also_on_errors() -> None:
    before = gc.get_threshold()
    with fewer_gc_passes():
        assert gc.get_threshold() == (max(BULK_GC_THRESHOLD, before[0]), *before[1:])
        assert gc.isenabled()
    assert gc.get_threshold() == before
    seen: list[int] = []

    def fail() -> None:
        seen.append(gc.get_threshold()[0])
        raise RuntimeError("restored on errors too")

    with pytest.raises(RuntimeError), fewer_gc_passes(5000):
        fail()
    assert seen == [max(5000, before[0])]
    assert gc.get_threshold() == before


def test_a_host_threshold_above_it_is_kept() -> None:
    gc.set_threshold(2 * BULK_GC_THRESHOLD, 10, 10)
    with fewer_gc_passes():
        assert gc.get_threshold() == (2 * BULK_GC_THRESHOLD, 10, 10)
    assert gc.get_threshold() == (2 * BULK_GC_THRESHOLD, 10, 10)


def test_no_passes_disables_the_collector_and_restores_it_as_it_was() -> None:
    threshold = gc.get_threshold()
    with fewer_gc_passes(0):
        assert not gc.isenabled()
        assert gc.get_threshold() == threshold
    assert gc.isenabled()
    with pytest.raises(RuntimeError), fewer_gc_passes(0):
        raise RuntimeError("re-enabled on errors too")
    assert gc.isenabled()
    gc.disable()  # a host that runs without it keeps it off
    with fewer_gc_passes(0):
        pass
    assert not gc.isenabled()


def test_a_negative_threshold_is_refused() -> None:
    with pytest.raises(ValueError, match="0 \\(no passes\\) or more"), fewer_gc_passes(-1):
        pass
