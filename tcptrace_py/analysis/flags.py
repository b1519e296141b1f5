"""Per-packet analysis flags returned by ``SequenceAnalyzer.on_segment`` as one int bitmask.

Why a bitmask: the analyzer runs once per packet, and an int costs nothing to build or to
store in a column; :func:`flag_names` turns it into names only when a sink needs text. Names
follow Wireshark's ``tcp.analysis.*`` fields where the meaning is the same, so users can
compare; docs/sequence-analysis.md lists where the definitions differ.
"""

from __future__ import annotations

RETRANSMISSION = 1 << 0
"""Segment re-sends sequence space (data, SYN or FIN) already seen sent in this direction."""
FAST_RETRANSMISSION = 1 << 1
"""Retransmission after >= dup_ack_threshold duplicate ACKs or SACK evidence (RFC 5681/6675)."""
SPURIOUS_RETRANSMISSION = 1 << 2
"""Retransmission of data already acknowledged (or later reported by a D-SACK, RFC 2883)."""
RTO_RETRANSMISSION = 1 << 3
"""Retransmission by timer expiry (RFC 6298), no dup-ACK/SACK evidence."""
TAIL_LOSS_PROBE = 1 << 4
"""Linux tail-loss probe: first re-send of the last segment sent, with no dup ACKs."""
SYN_RETRANSMISSION = 1 << 5
"""SYN or SYN-ACK with an ISN already seen."""
FIN_RETRANSMISSION = 1 << 6
"""FIN whose sequence number was already seen."""
OUT_OF_ORDER = 1 << 7
"""New data filling a hole below the highest sequence number sent: the delayed original
(reordering), or a filler nothing tells from a re-send (a proven re-send is a retransmission)."""
DUP_ACK = 1 << 8
"""Pure ACK repeating the previous ACK number and window while data is outstanding."""
TRIPLE_DUP_ACK = 1 << 9
"""The dup_ack_threshold-th duplicate ACK of the same ACK number."""
LOST_SEGMENT = 1 << 10
"""Sequence space between the highest byte sent and this segment was never captured."""
ACK_UNSEEN = 1 << 11
"""ACK covers sequence space the capture never saw sent."""
ZERO_WINDOW = 1 << 12
"""Advertised window is zero (not on SYN/FIN/RST, as Wireshark)."""
ZERO_WINDOW_PROBE = 1 << 13
"""Probe into a zero window: 1 byte at SND.NXT, or Linux's 0-byte segment at SND.UNA - 1."""
ZERO_WINDOW_PROBE_ACK = 1 << 14
"""ACK answering a zero-window probe."""
KEEPALIVE = 1 << 15
"""0 or 1 byte at SND.NXT - 1 with nothing outstanding (RFC 9293 section 3.8.4)."""
KEEPALIVE_ACK = 1 << 16
"""ACK answering a keep-alive."""
WINDOW_UPDATE = 1 << 17
"""Pure ACK that only changes the advertised window."""
WINDOW_FULL = 1 << 18
"""Data segment that fills the receiver's advertised window exactly."""
SACK = 1 << 19
"""Segment carries SACK blocks (RFC 2018)."""
DSACK = 1 << 20
"""First SACK block reports a duplicate (RFC 2883)."""
TSO_SUPERSEGMENT = 1 << 21
"""Payload larger than the peer's MSS: TSO/GSO/GRO merged segments at the capture point."""
TRUNCATED = 1 << 22
"""Capture holds fewer payload bytes than the IP header announces (snaplen)."""
AMBIGUOUS_ACK = 1 << 23
"""ACK of retransmitted data: no RTT sample under Karn's rule."""
RTT_SAMPLE = 1 << 24
"""ACK yielded an RTT sample."""
DUPLICATE_FRAME = 1 << 25
"""A copy of an earlier frame of the same sender (capture artifact, ``duplicates.py``): set
alone, the segment took no part in the analysis."""

FLAG_NAMES: tuple[tuple[int, str], ...] = tuple(
    (value, name.lower()) for name, value in list(globals().items())
    if name.isupper() and isinstance(value, int) and not name.startswith("_")
)
"""(bit, snake_case name) pairs in bit order."""


def flag_names(mask: int) -> list[str]:
    """Names of the bits set in ``mask``, in bit order (e.g. ``["retransmission", "sack"]``)."""
    return [name for bit, name in FLAG_NAMES if mask & bit]
