"""AnalysisOptions: every threshold of the sequence analysis, named, with why it has its default.

Self-contained on purpose: a global options object can embed it later without this module
knowing about it.
"""

from __future__ import annotations

from tcptrace_py.lazy_dataclass import dataclass


@dataclass(frozen=True, slots=True)
class AnalysisOptions:
    """Thresholds and limits of :class:`tcptrace_py.analysis.SequenceAnalyzer`."""

    max_evidence_items: int = 256
    """Cap on each evidence list kept per connection (retransmissions, probes, keep-alives...);
    further items are only counted, so memory stays bounded on pathological flows."""
    dup_ack_threshold: int = 3
    """Duplicate ACKs that trigger fast retransmit (RFC 5681 section 3.2, DupThresh of RFC 6675)."""
    tlp_max_srtt_factor: float = 2.0
    """Linux's probe timeout is 2*SRTT (RFC 8985 section 7.2); a first re-send of the tail
    segment within max(this * SRTT + tlp_delack_allowance_ns, RTO) of the original is a TLP."""
    tlp_delack_allowance_ns: int = 200_000_000
    """Linux adds the worst-case delayed-ACK time (TCP_RTO_MIN, 200 ms) to the PTO when only one
    segment is in flight (tcp_output.c tcp_schedule_loss_probe)."""
    rto_min_ns: int = 1_000_000_000
    """RFC 6298 rule (2.4): RTO is rounded up to 1 s. Linux uses 200 ms; set it for Linux peers."""
    rto_max_ns: int = 60_000_000_000
    """RFC 6298 rule (2.5): an upper bound of at least 60 s may be placed on RTO."""
    rto_initial_ns: int = 1_000_000_000
    """RFC 6298 rule (2.1): RTO before the first sample is 1 s."""
    clock_granularity_ns: int = 1_000_000
    """RFC 6298 G: the sender's clock granularity (Linux jiffies are <= 4 ms; 1 ms is typical)."""
    keepalive_min_idle_ns: int = 0
    """Idle time before a segment at SND.NXT-1 counts as a keep-alive. 0 follows Wireshark
    (shape alone decides); raise it to demand RFC 9293's "no data for an interval"."""
    max_tracked_segments: int = 4096
    """Acknowledged sent segments remembered per direction (for original frames of late
    retransmissions and spurious detection); older acknowledged ones are forgotten."""
    reorder_ip_id_window: int = 256
    """IPv4 IDs tell a delayed original from a re-send when the sender numbers its packets
    with a counter (Linux per connection, Windows per host): a hole's filler whose ID is at
    most this far *below* the ID of the segment that opened the hole was sent before it
    (reordering); one above it by at least the sender's packets seen since, and at most this
    much more, was sent after it (a re-send). Random IDs fall in either window with
    probability 2 * 256 / 65536 (under 1 %); a busy host's counter that moved further gives
    no evidence, and timing decides."""
    max_unacked_segments: int = 16384
    """Sent segments remembered per direction at most, acknowledged or not. Beyond, the oldest
    are forgotten even unacknowledged (counted in ``evidence_dropped`` as
    ``unacked_segments``): an ACK of one then gives no RTT sample and a re-send of one no
    original frame. Without it a direction whose ACKs the capture lacks (asymmetric routing,
    one direction captured) grew ~280 B per segment for its whole life. Linux's default send
    buffer cap (tcp_wmem 4 MiB) keeps ~2,900 full segments in flight; 16,384 leaves room for
    tuned buffers and small segments, and costs at most ~4.5 MB per direction."""
    max_holes: int = 16384
    """Holes (stretches of sequence space never captured, below data that was) remembered
    per direction, in the range set of sent bytes and in Zeek's reassembly bookkeeping
    (``compat``). Beyond, the oldest hole is filled (counted in ``evidence_dropped`` as
    ``sequence_holes`` / ``reassembly_holes``): bytes arriving in it later count as
    retransmitted rather than out of order, and Zeek's gap count (history ``G``) can be one
    lower. A lossy one-sided capture otherwise grew a range per lost segment. 16,384 holes
    (~1.2 MB per direction in the range set) is a hole every 60 segments of a million-segment
    transfer; old holes are the least likely to be filled by a late re-send."""
