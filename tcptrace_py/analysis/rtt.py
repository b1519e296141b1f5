"""RTT: an RFC 6298 estimator with injected time, and running sample statistics.

Why an object per direction: RFC 6298's state (SRTT, RTTVAR, RTO) belongs to one sender, and
a passive observer can replay it from the samples it derives under Karn's rule (RFC 6298
section 3: never take a sample from a retransmitted segment). All times are integer
nanoseconds passed in by the caller; nothing here reads a clock.
"""

from __future__ import annotations

import math

ALPHA = 1.0 / 8.0
"""RFC 6298 section 2: smoothing gain for SRTT."""
BETA = 1.0 / 4.0
"""RFC 6298 section 2: smoothing gain for RTTVAR."""
K = 4
"""RFC 6298 section 2: RTTVAR multiplier in the RTO."""
# RttEstimator.update writes these as literals (it runs for a third of all segments).
assert (1.0 - BETA, BETA, 1.0 - ALPHA, ALPHA, float(K)) == (0.75, 0.25, 0.875, 0.125, 4.0)


class RttEstimator:
    """RFC 6298 section 2, rule by rule. Floats hold nanoseconds (sub-ns smoothing matters)."""

    __slots__ = ("srtt_ns", "rttvar_ns", "rto_ns", "samples", "backoffs",
                 "_g_ns", "_min_ns", "_max_ns")

    def __init__(self, *, initial_rto_ns: int = 1_000_000_000, min_rto_ns: int = 1_000_000_000,
                 max_rto_ns: int = 60_000_000_000, clock_granularity_ns: int = 1_000_000) -> None:
        # (2.1) Until a measurement is made, RTO <- 1 second.
        self.srtt_ns: float | None = None
        self.rttvar_ns: float | None = None
        self.rto_ns: float = float(initial_rto_ns)
        self.samples = 0
        self.backoffs = 0
        self._g_ns = clock_granularity_ns
        self._min_ns = min_rto_ns
        self._max_ns = max_rto_ns

    def update(self, r_ns: int) -> None:
        """Take one RTT measurement R (Karn-clean: the caller excludes retransmitted data).

        Called for about a third of a capture's segments, so the arithmetic is written out
        (module constants bound as literals, comparisons instead of ``max``/``min`` calls);
        every value is the one RFC 6298's formulas give, operation for operation."""
        r = float(r_ns)
        srtt = self.srtt_ns
        rttvar = self.rttvar_ns
        if srtt is None or rttvar is None:
            # (2.2) First measurement: SRTT <- R, RTTVAR <- R/2.
            srtt = self.srtt_ns = r
            rttvar = self.rttvar_ns = r / 2.0
        else:
            # (2.3) RTTVAR first, with the *old* SRTT, then SRTT: (1 - BETA) = 0.75,
            # BETA = 0.25, (1 - ALPHA) = 0.875, ALPHA = 0.125 (exact in binary).
            d = srtt - r
            rttvar = self.rttvar_ns = 0.75 * rttvar + 0.25 * (d if d >= 0.0 else -d)
            srtt = self.srtt_ns = 0.875 * srtt + 0.125 * r
        # (2.2)/(2.3) RTO <- SRTT + max(G, K*RTTVAR)
        kvar = 4.0 * rttvar
        g = self._g_ns
        rto = srtt + (kvar if kvar > g else float(g))
        # (2.4) round up to the minimum; (2.5) an upper bound may be placed.
        lo = self._min_ns
        hi = self._max_ns
        rto = rto if rto > lo else float(lo)
        self.rto_ns = float(hi) if rto > hi else rto
        self.samples += 1
        self.backoffs = 0

    def on_timeout(self) -> None:
        """(5.5) The timer expired: back off, RTO <- RTO * 2 (bounded by the maximum)."""
        self.rto_ns = min(self.rto_ns * 2.0, float(self._max_ns))
        self.backoffs += 1


class RunningStats:
    """Count, min, max, mean and standard deviation in O(1) memory (Welford's method)."""

    __slots__ = ("count", "min", "max", "_mean", "_m2")

    def __init__(self) -> None:
        self.count = 0
        self.min = 0.0
        self.max = 0.0
        self._mean = 0.0
        self._m2 = 0.0

    def add(self, x: float) -> None:
        self.count += 1
        if self.count == 1:
            self.min = self.max = x
        elif x < self.min:
            self.min = x
        elif x > self.max:
            self.max = x
        delta = x - self._mean
        self._mean += delta / self.count
        self._m2 += delta * (x - self._mean)

    @property
    def mean(self) -> float:
        return self._mean if self.count else 0.0

    @property
    def stdev(self) -> float:
        """Sample standard deviation (n - 1 in the denominator, as tcptrace's ``RTT stdev``)."""
        if self.count < 2:
            return 0.0
        return math.sqrt(self._m2 / (self.count - 1))


# The compiled engine's twins (tcptrace_py/implementation.py, tcptrace_py/_engine.pyx).
from tcptrace_py.implementation import twin  # noqa: E402

RttEstimator = twin(RttEstimator, "RttEstimatorBase")  # type: ignore[misc]
RunningStats = twin(RunningStats, "RunningStatsBase")  # type: ignore[misc]

NO_SAMPLES = RunningStats()
"""The statistics of a quantity most connections never sample (``DirectionStats``'
``rexmit_interval`` and ``backoff_ratio``: only retransmissions do) until its first sample,
shared: two fewer objects a side, 2 % of the peak RSS on the 2 M-packet bench capture. Never
added to: a writer puts a new ``RunningStats`` in its place first (``tests/test_memory.py``
checks it stays empty)."""
