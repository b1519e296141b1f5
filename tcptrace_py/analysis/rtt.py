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
        """Take one RTT measurement R (Karn-clean: the caller excludes retransmitted data)."""
        r = float(r_ns)
        if self.srtt_ns is None or self.rttvar_ns is None:
            # (2.2) First measurement: SRTT <- R, RTTVAR <- R/2.
            self.srtt_ns = r
            self.rttvar_ns = r / 2.0
        else:
            # (2.3) RTTVAR first, with the *old* SRTT, then SRTT.
            self.rttvar_ns = (1.0 - BETA) * self.rttvar_ns + BETA * abs(self.srtt_ns - r)
            self.srtt_ns = (1.0 - ALPHA) * self.srtt_ns + ALPHA * r
        # (2.2)/(2.3) RTO <- SRTT + max(G, K*RTTVAR)
        rto = self.srtt_ns + max(float(self._g_ns), K * self.rttvar_ns)
        # (2.4) round up to the minimum; (2.5) an upper bound may be placed.
        self.rto_ns = min(max(rto, float(self._min_ns)), float(self._max_ns))
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
