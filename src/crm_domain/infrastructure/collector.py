"""Python's cyclic garbage collector during bulk work: fewer passes (or none), then restored.

Bulk jobs make millions of short-lived objects and almost no reference cycles: a rebuild
folding the log (each page's stored events, lazy events and rows), an order import's batch
(its aggregates and some 16,000 events, all alive until the batch's transaction ends). At
Python's default threshold (a youngest-generation pass every 700 allocations) the passes
scan those objects again and again and find nothing: a fifth of a rebuild's time, a sixth
of an import's CPU time. The objects are freed by their reference counts either way;
only cyclic garbage made meanwhile waits, for a later pass or the end of the job.

One helper for both, in this package so that every layer may use it (the projections,
the adapters, the benchmarks): :func:`fewer_gc_passes`.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

#: Allocations between the collector's youngest-generation passes during a bulk job
#: (Python's default is 700). Above a page of the log's objects (a rebuild's 10,000
#: events' states and lazy events), most objects are freed by their reference counts
#: before a pass would scan them: at 50,000, passes still took a tenth of a rebuild (each
#: scanning the page being applied), at 1,000,000 under 3%.
BULK_GC_THRESHOLD = 1_000_000


@contextmanager
def fewer_gc_passes(threshold: int = BULK_GC_THRESHOLD) -> Iterator[None]:
    """Run the block with fewer garbage-collector passes, then restore the collector as
    it was, also when the block raises.

    ``threshold`` is the youngest generation's (raised to it, never lowered); 0 means no
    passes at all, as for :func:`gc.set_threshold`, but by :func:`gc.disable` (re-enabled
    afterwards only if it was enabled): an order import's batch, whose objects all live
    until it commits, so that any pass would find nothing.

    Process-wide while it lasts: a host embedding a bulk job sees fewer, longer collection
    passes meanwhile (a rebuild's ``tune_gc=False`` keeps the host's setting).
    """
    if threshold < 0:
        raise ValueError(f"threshold must be 0 (no passes) or more, not {threshold}")
    if threshold == 0:
        enabled = gc.isenabled()
        gc.disable()
        try:
            yield
        finally:
            if enabled:
                gc.enable()
        return
    old = gc.get_threshold()
    gc.set_threshold(max(threshold, old[0]), *old[1:])
    try:
        yield
    finally:
        gc.set_threshold(*old)
