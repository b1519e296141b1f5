"""Duplicated frames: the same packet captured twice is a capture artifact, not a retransmission.

Theory of operation
-------------------
A capture point can hold one packet more than once: a bond and its slave, ``-i any`` seeing
a packet on a veth and on its bridge, NFLOG rules logging one SYN in three chains (all at the
same timestamp), or a span port fed from both sides of a router, which sees the packet before
and after the hop (milliseconds apart, TTL 64 then 63, other MAC addresses). To a sequence
analysis such a copy looks like a retransmission, and everything downstream (RTO and backoff,
RTT, the state machine, findings) would read a healthy connection as a failing one. The rules:

1. A copy repeats its original exactly: the same sequence and acknowledgment numbers, flags,
   payload length and TCP timestamp value (TSval). Any sender re-sending the same segment
   does it later, so a re-send with a newer TSval is a retransmission.
2. Strong identity, IPv4 IP ID: a stack gives every packet it sends its own IP ID (a per-socket
   or global counter, or a random value), a retransmission included. So a segment with the
   same non-zero IP ID as an earlier one of its sender is a copy, however late it comes, when
   that sender's IP IDs are seen to change from packet to packet (a sender whose IP ID is
   constant, e.g. always 1, proves nothing by it).
3. Weak identity, IPv6 or an IP ID of 0 or constant (Linux sends SYN-ACKs and RSTs with IP ID
   0): the whole TCP header and payload must agree, which the window and the checksum (it
   covers the payload and the options) stand for, its TTL must be the original's or a hop or
   two lower (:data:`MAX_HOPS_BETWEEN_COPIES`), and it must come within
   :attr:`~tcptrace_py.options.Options.duplicate_weak_max_interval_s` (a SYN or SYN-ACK within
   :attr:`~tcptrace_py.options.Options.duplicate_syn_max_interval_s`), and nothing that could
   have made the sender send it again may lie between: an identical data or FIN segment is
   re-sent by a timer (Linux: >= 2 SRTT + 2 ms for a tail-loss probe, so the copy must come
   within :data:`TIMER_MIN_RTTS` times the smallest RTT sample of the sender's data plus
   :data:`TIMER_MIN_EXTRA_NS`; >= 200 ms for an RTO) or for the peer's duplicate ACK or
   SACK (fast retransmit, RACK: none may come between); a SYN or SYN-ACK by the SYN timer
   (>= 1 s); a pure ACK or RST only in answer to a peer segment (none may come between).
4. What is remembered is bounded: the last
   :attr:`~tcptrace_py.options.Options.duplicate_memory_segments` segments of each direction
   (the segments themselves, no copy), so a copy is recognised in order or after a few later
   packets, never against the whole connection.

A duplicate is counted (``client_duplicate_frames``/``server_duplicate_frames``), kept as a
:class:`DuplicateFrame` for the ``duplicate_frames`` finding, still counts as a packet of its
sender and is shown to the Zeek/Wireshark summaries (those tools see it too), and takes no
other part: no retransmission, no RTT or RTO, no state machine input, no other finding.
"""

from __future__ import annotations

from collections.abc import Sequence

from tcptrace_py.lazy_dataclass import dataclass
from tcptrace_py.segment import FIN, SYN, Segment

MAX_HOPS_BETWEEN_COPIES = 2
"""Weak identity (rule 3): a copy's TTL is its original's, or lower by the routers between
two capture points (a span port fed before and after one router sees 64 then 63). A packet
with the same bytes and a TTL higher, or lower by more, came from another origin: a
middlebox's RST forged with the server's address and sequence number (TTL 59 next to the
server's 123 in suricata-verify debug-s13.pcap) is no copy of the server's RST."""

TIMER_MIN_RTTS = 2.0
"""Weak identity (rule 3): the shortest timer re-send, Linux's tail-loss probe, comes 2 SRTT
plus :data:`TIMER_MIN_EXTRA_NS` after the last transmission (RFC 8985 section 7.2, Linux
tcp_schedule_loss_probe; plus 200 ms when it is the only segment in flight), and the RTT the
capture point measures for a sender's data is at most that sender's RTT. So on a path with
RTT samples, an identical data segment later than this many (smallest) samples plus that
floor may be a probe, not a copy; on a LAN that is well under the 10 ms default."""

TIMER_MIN_EXTRA_NS = 2_000_000
"""Linux's TCP_TIMEOUT_MIN (2 jiffies, 2 ms at HZ=1000, more at lower HZ) added to 2 SRTT
for a tail-loss probe with several segments in flight."""


@dataclass(frozen=True, slots=True)
class DuplicateFrame:
    """One frame that is a copy of an earlier frame of the same sender."""

    frame: int
    """Frame of the copy."""
    ts_ns: int
    """Its timestamp, integer nanoseconds since the epoch."""
    sender: str
    """``client`` or ``server``."""
    original_frame: int
    """Frame of the packet it copies (the first capture of it)."""
    interval_ns: int
    """Time from the original to the copy (0 for a capture point that logs a packet twice)."""
    identity: str
    """``ip_id`` (same IPv4 IP ID, rule 2) or ``bytes`` (same TCP header and payload, rule 3)."""
    ttl_change: int
    """Copy's TTL (hop limit) minus the original's: -1 for a span port that sees the packet
    before and after a router."""


def original_of(seg: Segment, recent: Sequence[Segment], weak_max_ns: int, syn_max_ns: int,
                peer_loss_signal_ns: int, peer_last_ts_ns: int,
                min_rtt_ns: float) -> tuple[Segment, str] | None:
    """The earlier segment of the same sender that ``seg`` copies, with the identity that
    proved it (module rules 1-3), or None.

    ``recent`` holds the sender's last segments (rule 4). For rule 3: ``weak_max_ns`` and
    ``syn_max_ns`` bound the interval (SYN and SYN-ACK: the latter); ``peer_loss_signal_ns``
    is the time of the peer's last duplicate ACK or SACK and ``peer_last_ts_ns`` of its last
    segment (-1 if none), which an identical re-send may answer; ``min_rtt_ns`` the smallest
    RTT sample of the sender's data (-1 if none).
    """
    seq = seg.seq
    ack = seg.ack
    flags = seg.flags
    plen = seg.payload_len
    tsval = seg.tsval
    ip_id = seg.ip_id
    found: Segment | None = None
    for r in recent:
        if (r.seq == seq and r.ack == ack and r.flags == flags and r.payload_len == plen
                and r.tsval == tsval and r.ip_id == ip_id and r is not seg
                and (found is None or r.ts_ns < found.ts_ns)):
            found = r
    if found is None:
        return None
    if ip_id > 0 and any(r.ip_id != ip_id for r in recent):
        return found, "ip_id"
    sent_ns = found.ts_ns
    interval = seg.ts_ns - sent_ns
    limit = syn_max_ns if flags & SYN else weak_max_ns
    if not (found.window == seg.window and found.checksum == seg.checksum
            and found.urgent == seg.urgent and found.sack == seg.sack
            and 0 <= found.ttl - seg.ttl <= MAX_HOPS_BETWEEN_COPIES
            and -limit <= interval <= limit):
        return None
    if flags & SYN:
        # Re-sent by the SYN timer only (1 s initial RTO, RFC 6298 2.1), or in answer to a
        # re-sent SYN, which itself waited for that timer.
        return found, "bytes"
    if plen or flags & FIN:
        # Data or FIN: re-sent by a timer (at least TIMER_MIN_RTTS RTTs) or a loss signal.
        if peer_loss_signal_ns >= sent_ns or (
                min_rtt_ns >= 0
                and interval > TIMER_MIN_RTTS * min_rtt_ns + TIMER_MIN_EXTRA_NS):
            return None
        return found, "bytes"
    # A pure ACK or a RST is sent again only in answer to a peer's segment (a duplicate ACK
    # for out-of-order data, a re-ACK of a re-sent FIN, a RST per segment to a closed port).
    if peer_last_ts_ns >= sent_ns:
        return None
    return found, "bytes"


# The compiled engine's twin of original_of (tcptrace_py/_engine.pyx).
from tcptrace_py.implementation import compiled as _compiled  # noqa: E402

reference_original_of = original_of
if _compiled is not None:
    original_of = _compiled.original_of  # noqa: F811
