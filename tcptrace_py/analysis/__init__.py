"""Sequence analysis (issue 4): retransmissions, out-of-order, RTT, windows and probes.

Public names: :class:`SequenceAnalyzer` (one per connection), :class:`AnalysisOptions`, the
evidence records, and :mod:`tcptrace_py.analysis.flags` for the per-packet bitmask.
"""

from tcptrace_py.analysis.evidence import (
    RETRANSMISSION_KINDS,
    KeepAlive,
    Retransmission,
    WindowFull,
    ZeroWindowPeriod,
    ZeroWindowProbe,
)
from tcptrace_py.analysis.flags import flag_names
from tcptrace_py.analysis.options import AnalysisOptions
from tcptrace_py.analysis.rangeset import RangeSet
from tcptrace_py.analysis.rtt import RttEstimator, RunningStats
from tcptrace_py.analysis.sequence import SequenceAnalyzer

__all__ = [
    "RETRANSMISSION_KINDS", "AnalysisOptions", "KeepAlive", "RangeSet", "Retransmission",
    "RttEstimator", "RunningStats", "SequenceAnalyzer", "WindowFull", "ZeroWindowPeriod",
    "ZeroWindowProbe", "flag_names",
]
