"""The cyclic garbage collector's policy while a capture is analysed.

Why: an analysis allocates many small objects that live as long as their connection (state,
counters, segment records) and creates no reference cycles (reference counting frees all of
it), so every pass of the cyclic collector only traverses live objects and frees nothing.
Each object allocated since the last pass is traversed once when the pass promotes it:
with the default thresholds that was 8 % of a typical run, a third of a SYN flood's (whose
connections all stay live); with the young generation collected every 100 k allocations
instead of 700, the passes still cost 0.68-0.76 s of an 8.1 s run on the 2 M-packet bench
capture (eight passes while ~6,500 connections wait out TIME_WAIT), and nothing else in
the run is as large. So the collector is paused for the analysis: measured on that capture,
7.2-7.8 s instead of 8.0-8.3 s, the same peak memory, and the same ~40 objects of cyclic
garbage left at the end of a run whatever its size (a reader's and its diagnostics').

What keeps this safe: ``tests/test_gcpolicy.py`` runs captures of hundreds of connections,
every kind the detectors explain, with the collector paused and asserts the cyclic garbage
left does not grow with the connections. (A closure in compiled code that a generator
expression also uses makes a cycle per call; ``detectors.handshake.backoff_pattern`` had
one, a pair of objects per retried SYN.)

The command line sets the thresholds below for its whole process (``cli.main``: pandas and
the reports run with them) and pauses the collector around each capture's analysis.
Library entry points (``tcptrace_py.analyze``, batch workers, the ``--jobs`` workers) use
:func:`collector_paused` too, which restores the caller's setting afterwards; the
generators (``iter_flows``, ``frames.iter_results``) pause it only while the engine
computes the next result (:func:`paused_while_computing`). The engine itself never touches
the collector.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")

ANALYSIS_THRESHOLDS = (100_000, 50, 100)
"""The command line's thresholds outside the analyses (young generation every 100 k
allocations instead of 700: reports and exports also allocate mostly long-lived objects)."""


@contextmanager
def collector_paused() -> Iterator[None]:
    """Run the body with the cyclic collector off, then turn it back on if it was (also on
    error, and when a generator using this is closed early)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def paused_while_computing(items: Iterator[T]) -> Iterator[T]:
    """``items`` with the collector paused while each one is computed and as the caller
    left it while the caller's own code runs between them: a generator API (``iter_flows``)
    must not keep the collector off in the caller's loop body, which may well make cycles.
    Closing this closes ``items`` (a ``--jobs`` run stops its workers)."""
    try:
        while True:
            with collector_paused():
                try:
                    item = next(items)
                except StopIteration:
                    return
            yield item
    finally:
        close = getattr(items, "close", None)
        if close is not None:
            close()
