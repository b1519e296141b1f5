"""The cyclic garbage collector's policy while a capture is analysed.

Why: an analysis allocates many small objects that live as long as their connection (state,
counters, segment records) and creates no reference cycles on its per-packet path, so the
collector's young-generation passes, triggered every 700 allocations by default, only
traverse live objects and free nothing: 8 % of a typical run, a third of a SYN flood's (whose
connections all stay live). Reference counting frees everything as before; only the cycle
detector runs less often.

The command line sets this for its whole process (``cli.main``). Library entry points
(``tcptrace_py.analyze``, ``iter_flows``, batch workers) use :func:`fewer_collections`, which
raises the thresholds for the duration of the call and restores the caller's afterwards; the
engine itself never touches the collector.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

ANALYSIS_THRESHOLDS = (100_000, 50, 100)
"""Young generation collected every 100 k allocations instead of 700 (older generations
proportionally): measured best on the benchmark captures (docs/benchmarks.md); higher
values gain nothing more."""


@contextmanager
def fewer_collections() -> Iterator[None]:
    """Run the body with :data:`ANALYSIS_THRESHOLDS`, then restore the previous thresholds
    (also on error, and when a generator using it is closed early)."""
    previous = gc.get_threshold()
    gc.set_threshold(*ANALYSIS_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*previous)
