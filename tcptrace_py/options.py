"""Options: every threshold of the engine, named, with why it has its default.

One frozen object travels from the API/CLI/TOML config into the core. Times are given in
seconds (what users think in) and exposed as integer nanoseconds (what the core computes in).
"""

from __future__ import annotations

import math
from functools import cached_property
from typing import Any

from tcptrace_py.analysis import AnalysisOptions
from tcptrace_py.lazy_dataclass import dataclass, field

_NS = 1_000_000_000

MAX_SECONDS = 1e9
"""Largest time option accepted (~31.7 years): times become integer nanoseconds, and an
int64 holds 9.2e9 s; infinity, NaN or 1e300 would overflow or poison every comparison."""


@dataclass(frozen=True)
class Options:
    """Engine options. Detector thresholds live in ``detector_params`` (see detectors/)."""

    time_wait_s: float = 60.0
    """How long TIME_WAIT lasts (2*MSL). RFC 9293 suggests MSL = 2 min; Linux holds TIME_WAIT
    for a fixed 60 s (TCP_TIMEWAIT_LEN), the most common stack in captures, hence 60 s."""
    idle_timeout_s: float = 3600.0
    """A connection with no segment for this long is emitted and leaves the table (a later
    segment starts a mid-stream connection). One hour: longer than Linux's 2 h keep-alive
    is rare in captures, and Zeek's 5 min split connections users consider one."""
    attempt_timeout_s: float = 300.0
    """A connection attempt never answered (no endpoint ESTABLISHED: SYNs unanswered, a
    SYN-ACK never acknowledged) with no segment for this long is emitted and leaves the table.
    Linux gives up a connect() after ~127 s (tcp_syn_retries=6) and a half-open request after
    ~63 s (tcp_synack_retries=5); 300 s leaves room for slower stacks while keeping scans and
    floods from holding memory for the whole idle timeout."""
    closed_linger_s: float = 10.0
    """A connection whose endpoints are both closed stays this long (packet time) to absorb
    trailing segments (RSTs answering in-flight data arrive within a few RTTs)."""
    max_connections: int = 100_000
    """Live connections kept at most; beyond, the oldest idle (half-open first) are emitted
    early with end_reason ``table_full`` and a warning (SYN floods). 100 k is far above the
    live connections of busy server captures (the 2 M-packet bench peaks under 500) and bounds
    a flood of a million sources to about 0.9 GB (docs/robustness.md)."""
    max_events_per_connection: int = 512
    """Events kept per connection; more are counted (``events_dropped``), bounding memory."""
    rst_min_window_bytes: int = 65535
    """Smallest receive window assumed when judging a RST (RFC 5961 3.2): an observer does not
    know RCV.WND exactly; 64 KiB is the largest unscaled window."""
    rst_crossing_s: float = 0.25
    """A segment from a RST's receiver this soon after the RST may have been sent before the
    RST arrived (they crossed); one sent later proves the RST did not take effect and the
    receiver is still synchronized (fsm ``SEND_AFTER_LOST_RST``). 250 ms covers
    intercontinental RTTs; the ``protocol.crossing_s`` detector parameter is the same window
    for ``data_after_rst``."""
    give_up_min_retransmissions: int = 3
    """Data retransmissions into the peer's silence, backing off, needed before a side that
    then stays silent past its next due retransmission is inferred to have given up
    (``giveup.py``). RFC 9293 3.8.3 puts the first threshold R1 at 3 retransmissions; below
    that a pause is more likely the sender's application than its timer giving up."""
    give_up_rto_max_s: float = 120.0
    """Longest wait between two retransmissions assumed when computing when the next one was
    due: Linux TCP_RTO_MAX (120 s); RFC 6298 2.5 allows a cap of at least 60 s."""
    duplicate_memory_segments: int = 8
    """Segments remembered per direction to recognise duplicated frames (docs/
    sequence-analysis.md, "Duplicated frames"): a copy is found among its sender's last this
    many segments. Copies come at the same timestamp or a router hop later (0.3-50 ms in the
    captures seen), a few packets at most. Memory: the references (120 bytes per direction)
    keep up to this many decoded segments alive (~0.6 kB each), ~10 kB for a long-lived
    connection, one segment for a SYN-flood attempt."""
    duplicate_weak_max_interval_s: float = 0.01
    """A segment with no informative IP ID (IPv6, IP ID 0 or constant) that repeats an earlier
    one byte for byte (same TSval, window, checksum) is a duplicated frame only within this
    interval: an identical re-send needs a timer, and Linux's shortest (a tail-loss probe at
    2 SRTT, with a 10 ms floor on most kernels; RTO >= 200 ms, SYN 1 s) is longer; re-sends
    answering a peer's duplicate ACK or SACK are excluded separately."""
    duplicate_syn_max_interval_s: float = 0.25
    """The same bound for a SYN or SYN-ACK repeated byte for byte (Linux SYN-ACKs carry IP ID
    0, and a sender's first packet shows no other IP ID to judge it by): the SYN timer's
    first re-send comes 1 s after the SYN (RFC 6298 2.1 and Linux; 3 s on older stacks and
    Windows), and a SYN-ACK is re-sent by that timer or for such a re-sent SYN; 250 ms is a
    quarter of that and well beyond the copies seen (span ports: up to ~50 ms)."""
    keep_packets: bool = False
    """Build the per-packet table (frame, flow, flags, analysis flags): costs memory."""
    packet_flows: tuple[int, ...] = ()
    """With ``keep_packets``: keep the rows of these flow ids only (empty: every flow). The
    ``flow`` command's ladder needs one connection's packets, not a whole capture's."""
    keep_events: bool = True
    """Keep per-connection events (state transitions) in results."""
    fast_path: bool = True
    """Apply steady segments through ``fastpath.steady_segment``. Results are the same either
    way (tests/test_fastpath.py compares them); off only to check that, or to profile."""
    analysis: AnalysisOptions = field(default_factory=AnalysisOptions)
    """Sequence-analysis thresholds."""
    detector_params: dict[str, Any] = field(default_factory=dict)
    """Detector thresholds by name (``detectors.DEFAULTS`` documents each)."""
    disabled_detectors: tuple[str, ...] = ()
    """Detectors not to run."""

    def __post_init__(self) -> None:
        """Reject values the engine cannot run with (the CLI turns this into exit 2)."""
        for name in ("time_wait_s", "idle_timeout_s", "attempt_timeout_s", "closed_linger_s",
                     "rst_crossing_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                    not math.isfinite(value) or not 0 <= value <= MAX_SECONDS:
                raise ValueError(f"{name} must be a number of seconds from 0 to "
                                 f"{MAX_SECONDS:g}, not {value!r}")
        for name, low in (("max_connections", 1), ("max_events_per_connection", 0),
                          ("rst_min_window_bytes", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, not {value!r}")

    # The nanosecond forms are computed once per Options (kept in the instance's __dict__;
    # the fields of a frozen dataclass never change): the engine reads them per connection
    # and per handshake segment, and this module is not compiled.
    @cached_property
    def time_wait_ns(self) -> int:
        return int(self.time_wait_s * _NS)

    @cached_property
    def idle_timeout_ns(self) -> int:
        return int(self.idle_timeout_s * _NS)

    @cached_property
    def attempt_timeout_ns(self) -> int:
        return int(self.attempt_timeout_s * _NS)

    @cached_property
    def rst_crossing_ns(self) -> int:
        return int(self.rst_crossing_s * _NS)

    @cached_property
    def give_up_rto_max_ns(self) -> int:
        return int(self.give_up_rto_max_s * _NS)

    @cached_property
    def duplicate_weak_max_interval_ns(self) -> int:
        return int(self.duplicate_weak_max_interval_s * _NS)

    @cached_property
    def duplicate_syn_max_interval_ns(self) -> int:
        return int(self.duplicate_syn_max_interval_s * _NS)

    @cached_property
    def closed_linger_ns(self) -> int:
        return int(self.closed_linger_s * _NS)
