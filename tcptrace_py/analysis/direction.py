"""Per-direction containers: what one side SENT (counters) and its sender state.

Why two classes: counters are the public result (tcptrace's ``a2b``/``b2a`` records), the
sender state (RFC 9293 names: ``iss``, ``snd_una``, ``snd_nxt``) is how the analysis gets
there. Keeping them apart, as aioquic keeps its per-space containers apart from the recovery
algorithm, means the result can be read without knowing the algorithm.
"""

from __future__ import annotations

from tcptrace_py.analysis.rangeset import RangeSet
from tcptrace_py.analysis.rtt import NO_SAMPLES, RttEstimator, RunningStats


class SentSegment:
    """One transmission unit remembered for RTT (Karn) and original-frame lookups."""

    __slots__ = ("start", "end", "frame", "ts_ns", "last_ts_ns", "tx", "last_interval_ns",
                 "rexmit_index", "control")

    def __init__(self, start: int, end: int, frame: int, ts_ns: int, control: str) -> None:
        self.start = start
        self.end = end
        self.frame = frame
        self.ts_ns = ts_ns
        self.last_ts_ns = ts_ns
        self.tx = 1
        self.last_interval_ns = -1
        self.rexmit_index = -1
        self.control = control  # "syn", "fin" or "" (data)


class Gap:
    """A hole in one sender's sequence space, opened by a segment starting beyond SND.NXT.

    Why kept: the segment that later fills the hole is either the original, delayed on the
    path (reordering: nothing was lost, so the hole is taken back from ``lost_segments`` and
    ``missed_bytes``), or a re-send of a segment lost before the capture point (a
    retransmission whose original was never captured). ``SequenceAnalyzer._fill_is_original``
    tells them apart from what the segment that opened the hole (``G``) carried.
    """

    __slots__ = ("start", "end", "frame", "ts_ns", "ip_id", "tsval", "packets", "pre_capture",
                 "originals", "retracted")

    def __init__(self, start: int, end: int, frame: int, ts_ns: int, ip_id: int, tsval: int,
                 packets: int, pre_capture: bool) -> None:
        self.start = start
        self.end = end
        """The hole ``[start, end)`` (relative offsets)."""
        self.frame = frame
        self.ts_ns = ts_ns
        """Frame and time of G."""
        self.ip_id = ip_id
        self.tsval = tsval
        """G's IPv4 identification and TCP TSval (-1 when absent)."""
        self.packets = packets
        """The sender's packet count with G (``DirectionStats.packets``)."""
        self.pre_capture = pre_capture
        """G was the first data of a side picked up mid-stream, above the peer's first ACK:
        the hole was sent before the capture started."""
        self.originals = RangeSet()
        """Bytes of the hole seen in their original transmission (delayed, not lost)."""
        self.retracted = False
        """The whole hole arrived as originals: its ``lost_segments`` count was taken back."""


FreshSegment = tuple[int, int, int, int]
"""A first transmission never retransmitted: ``(start, end, frame, ts_ns)``.

Why not a :class:`SentSegment`: most data segments are sent once, and a tuple of ints costs a
quarter of the time to build and is untracked by CPython's cyclic GC after its first
collection, whereas ~10^5 live ``SentSegment`` objects made the GC a third of the analyzer's
time (docs/benchmarks.md, rounds 2 and 3). It stands for ``SentSegment(start, end, frame,
ts_ns, "")`` with ``tx == 1`` and no retransmission recorded, the only state such a segment
has; :meth:`SenderState.make_mutable` turns every one into a ``SentSegment`` once the
direction retransmits data (the only path that mutates data records)."""

NO_LATE = 1 << 62
"""``SenderState.late_low`` when no late transmission is outstanding (above any offset)."""

SegmentRecord = SentSegment | FreshSegment
"""What ``by_start``, ``by_end`` and ``order`` hold."""


def record_end(rec: SegmentRecord) -> int:
    """End (exclusive) of either kind of record."""
    return rec[1] if type(rec) is tuple else rec.end  # type: ignore[union-attr]


class DirectionStats:
    """Counters for the segments one side sent (tcptrace's per-direction block)."""

    __slots__ = (
        "packets", "ack_pkts", "pure_acks", "rst_pkts", "data_pkts", "data_bytes",
        "rexmt_data_pkts", "rexmt_data_bytes", "syn_pkts", "fin_pkts", "syn_rexmt", "fin_rexmt",
        "retransmitted_segments", "rexmt_rto", "rexmt_fast", "rexmt_tlp", "rexmt_spurious",
        "ooo_pkts", "lost_segments", "missed_bytes", "acks_unseen", "dup_acks",
        "triple_dup_acks", "sack_pkts", "dsack_pkts", "max_sack_blocks", "zero_window_advs",
        "zwp_pkts", "zwp_bytes", "keepalives", "keepalive_acks", "zwp_acks", "window_updates",
        "window_full", "pushed_pkts", "mss", "wscale", "sack_permitted", "timestamps",
        "iw_bytes", "iw_pkts", "seg_min", "seg_max", "win_min", "win_max", "win_sum", "win_n",
        "idle_max_ns", "truncated_bytes", "truncated_pkts", "truncated_first_frame",
        "truncated_first_ts_ns", "truncated_last_frame", "tso_pkts", "rtt",
        "ambiguous_acks", "handshake_rtt_ns", "rexmit_interval", "backoff_ratio",
        "unique_bytes", "first_ts_ns", "last_ts_ns", "isn", "midstream",
    )

    def __init__(self) -> None:
        self.packets = 0
        self.ack_pkts = 0
        self.pure_acks = 0
        self.rst_pkts = 0
        self.data_pkts = 0
        self.data_bytes = 0
        self.rexmt_data_pkts = 0
        self.rexmt_data_bytes = 0
        self.syn_pkts = 0
        self.fin_pkts = 0
        self.syn_rexmt = 0
        self.fin_rexmt = 0
        self.retransmitted_segments = 0
        self.rexmt_rto = 0
        self.rexmt_fast = 0
        self.rexmt_tlp = 0
        self.rexmt_spurious = 0
        self.ooo_pkts = 0
        self.lost_segments = 0
        self.missed_bytes = 0
        self.acks_unseen = 0
        self.dup_acks = 0
        self.triple_dup_acks = 0
        self.sack_pkts = 0
        self.dsack_pkts = 0
        self.max_sack_blocks = 0
        self.zero_window_advs = 0
        self.zwp_pkts = 0
        self.zwp_bytes = 0
        self.keepalives = 0
        self.keepalive_acks = 0
        self.zwp_acks = 0
        self.window_updates = 0
        self.window_full = 0
        self.pushed_pkts = 0
        self.mss = -1
        self.wscale = -1
        self.sack_permitted = False
        self.timestamps = False
        self.iw_bytes = 0
        self.iw_pkts = 0
        self.seg_min = 0
        self.seg_max = 0
        self.win_min = -1
        self.win_max = 0
        self.win_sum = 0
        self.win_n = 0
        self.idle_max_ns = 0
        self.truncated_bytes = 0
        self.truncated_pkts = 0
        self.truncated_first_frame = -1
        """First and last frame cut by the snaplen (evidence for the capture detector)."""
        self.truncated_last_frame = -1
        self.truncated_first_ts_ns = -1
        self.tso_pkts = 0
        self.rtt = RunningStats()
        """Per-segment RTT samples (ns) under Karn's rule, for data this side sent."""
        self.ambiguous_acks = 0
        """ACKs of retransmitted data: excluded from RTT by Karn's rule (RFC 6298 section 3)."""
        self.handshake_rtt_ns = -1
        """Client: SYN -> SYN-ACK; server: SYN-ACK -> handshake ACK (-1 when not seen)."""
        self.rexmit_interval = NO_SAMPLES
        """Time between consecutive transmissions of the same sequence space (ns; the shared
        empty ``NO_SAMPLES`` until the first)."""
        self.backoff_ratio = NO_SAMPLES
        """Ratio between consecutive timeout intervals of one segment (2.0 = RFC 6298 5.5;
        ``NO_SAMPLES`` until the first)."""
        self.unique_bytes = 0
        self.first_ts_ns = -1
        self.last_ts_ns = -1
        self.isn = -1
        """Raw initial sequence number (-1 when no SYN was seen)."""
        self.midstream = False
        """No SYN seen: relative numbers start at the first byte seen minus one."""

    def count_truncated(self, frame: int, ts_ns: int, cut_bytes: int) -> None:
        """A segment the snaplen cut (``cut_bytes`` of its payload missing, or its header)."""
        self.truncated_pkts += 1
        self.truncated_bytes += cut_bytes
        if self.truncated_first_frame < 0:
            self.truncated_first_frame = frame
            self.truncated_first_ts_ns = ts_ns
        self.truncated_last_frame = frame


class SenderState:
    """Sequence state of one sender as a passive observer reconstructs it (RFC 9293 names).

    Relative offsets are unwrapped 64-bit integers: 0 is the ISN, so the first data byte is 1.
    """

    __slots__ = ("base", "snd_una", "snd_nxt", "fin_rel", "syn_seen", "synack_sent", "ranges",
                 "by_start", "by_end", "order", "last_ack_raw", "last_win_raw", "win_scaled",
                 "win_known", "shift", "dupacks", "sack_high", "recovery_end", "zwp_rel",
                 "pending_ack", "pending_index", "iw_done", "syn_rec", "fin_rec", "est",
                 "zw_open_index", "last_ts_ns", "last_sent_ack", "mutable", "late",
                 "late_low", "gaps", "filled_bytes")

    def __init__(self, est: RttEstimator) -> None:
        self.base = -1
        """Raw sequence number of relative offset 0 (-1 until known)."""
        self.snd_una = 0
        """Highest ACK received from the peer (relative)."""
        self.snd_nxt = 0
        """One past the highest sequence number sent (relative; SYN and FIN count)."""
        self.fin_rel = -1
        """Relative sequence number of the FIN (-1 until one is seen)."""
        self.syn_seen = False
        self.synack_sent = False
        """A SYN-ACK was sent (its first one after a pure SYN is a simultaneous open's step)."""
        self.ranges = RangeSet()
        """Payload sequence ranges seen sent (tcptrace rexmit.c's segment list)."""
        self.by_start: dict[int, SegmentRecord] = {}
        """Data segments by start offset. Each data record's start byte is in ``ranges``, so
        a later record never reuses a key (no overwrite)."""
        self.by_end: dict[int, SegmentRecord] = {}
        self.order: list[SegmentRecord] | None = None
        """Remembered segments in transmission order; created with the first data segment
        (SYN-only or reset connections, the bulk of a SYN flood, never need one). A list, not
        a deque: records leave from the front only in batches (``_prune`` and
        ``_forget_oldest`` delete one slice), and a deque is 760 bytes however few it holds
        (a list of ten, 184): 0.9 KB of each live connection, 5 % of the peak RSS on the
        2 M-packet bench capture."""
        self.last_ack_raw = -1
        """Raw ACK number of this side's previous segment (dup-ACK / window-update tests)."""
        self.last_win_raw = -1
        """Raw window field of this side's previous segment."""
        self.win_scaled = 0
        """Last window this side advertised, in bytes (scaled when RFC 7323 scaling is on)."""
        self.win_known = False
        self.shift = 0
        """Window scale shift applied to this side's window field (both SYNs carried WS)."""
        self.dupacks = 0
        """Duplicate ACKs this side sent for its current ACK number."""
        self.sack_high = -1
        """Highest right SACK edge the peer reported for this side's data (relative)."""
        self.recovery_end = -1
        """snd_nxt when fast recovery started; re-sends below it while unacked are 'fast'."""
        self.zwp_rel = -1
        """Relative sequence number of the current 1-byte zero-window probe."""
        self.pending_ack = 0
        """Flag bit (KEEPALIVE_ACK / ZERO_WINDOW_PROBE_ACK) expected on this side's next ACK."""
        self.pending_index = -1
        self.iw_done = False
        self.syn_rec: SentSegment | None = None
        self.fin_rec: SentSegment | None = None
        self.est = est
        self.zw_open_index = -1
        """Index of this side's open ZeroWindowPeriod in the evidence list (-1 if none)."""
        self.last_ts_ns = -1
        self.last_sent_ack = False
        self.filled_bytes = 0
        """Bytes of holes ``ranges`` had filled to stay within ``max_holes``: in the set but
        never seen sent (subtracted from ``unique_bytes``)."""
        self.mutable = False
        """Data records are ``SentSegment`` objects (set at this side's first data
        retransmission by :meth:`make_mutable`); until then they are ``FreshSegment`` tuples."""
        self.late: list[tuple[int, int, int]] | None = None
        """``(start, end, ts_ns)`` of payload sent *below* SND.NXT and not yet acknowledged:
        retransmissions and hole fills. In-order data is sent in sequence order, so only these
        can make a cumulative ACK wait for bytes that passed the capture point after the
        segment the ACK ends at (Karn's rule on cumulative ACKs, see ``late_low``)."""
        self.late_low = NO_LATE
        """Lowest start in ``late`` (:data:`NO_LATE` when empty): an ACK at or below it covers
        none of them, the one test the common ACK paths pay."""
        self.gaps: list[Gap] | None = None
        """Holes this side's segments revealed, newest last (bounded; see ``Gap``)."""

    def record_ending(self, end: int) -> SegmentRecord | None:
        """The remembered segment that ends at ``end`` (``by_end.get(end)``), to read
        only: an ACK's RTT sample and Karn's test. The caller changes nothing in it.

        A method, not the index read in place: the compiled twin keeps the latest in-order
        records pending (four C integers each) and answers with a copy of a pending one
        (its fields are those of a segment sent once), where reading ``by_end`` makes
        every pending record. The record an ACK ends at is often far along them: after a
        loss, the ACK that the repair brings covers the whole window."""
        return self.by_end.get(end)

    def record_starting(self, start: int) -> SegmentRecord | None:
        """The remembered segment that starts at ``start`` (``by_start.get(start)``): the
        record itself, which a re-send changes (the twin makes the pending records up to
        it, in the order sent; see :meth:`record_ending`)."""
        return self.by_start.get(start)

    def tracked(self) -> int:
        """How many segments are remembered (``len(order)``; see :meth:`record_ending`)."""
        return len(self.order) if self.order is not None else 0

    def make_mutable(self) -> None:
        """Replace every ``FreshSegment`` by an equivalent ``SentSegment``, in place.

        Called once, when this side first re-sends data: retransmission handling mutates
        records (``tx``, ``rexmit_index``...) and scans ``order``, and from then on it sees
        only ``SentSegment`` objects, exactly as before tuples existed. Positions in
        ``order`` and the keys of both indexes are kept; a tuple shared by several
        containers becomes one shared object.
        """
        self.mutable = True
        made: dict[int, SentSegment] = {}

        def conv(rec: SegmentRecord) -> SentSegment:
            if type(rec) is not tuple:
                return rec  # type: ignore[return-value]
            new = made.get(id(rec))
            if new is None:
                new = made[id(rec)] = SentSegment(rec[0], rec[1], rec[2], rec[3], "")
            return new

        # ``made`` is keyed by id(): the old containers are held in locals until all three
        # are rebuilt, so no tuple is freed (and its id reused) in between.
        old_order, old_start, old_end = self.order, self.by_start, self.by_end
        if old_order is not None:
            self.order = [conv(r) for r in old_order]
        self.by_start = {k: conv(r) for k, r in old_start.items()}
        self.by_end = {k: conv(r) for k, r in old_end.items()}


# The compiled engine's twins (tcptrace_py/implementation.py, tcptrace_py/_engine.pyx).
from tcptrace_py.implementation import compiled as _compiled  # noqa: E402
from tcptrace_py.implementation import twin  # noqa: E402

if _compiled is not None:
    SentSegment = _compiled.SentSegment  # type: ignore[misc]  # complete twin
DirectionStats = twin(DirectionStats, "DirectionStatsBase")  # type: ignore[misc]
SenderState = twin(SenderState, "SenderStateBase")  # type: ignore[misc]
