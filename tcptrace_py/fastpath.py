"""The steady-state fast path: one function for the bulk of a capture's segments.

Why it exists
-------------
Most segments of a capture are data or pure ACKs between two ESTABLISHED endpoints. The full
path hands each one through three layers (``Connection.on_segment``, then
``SequenceAnalyzer.on_segment`` and ``PeerSummary.on_segment``), and each layer re-derives
the sender, re-reads the segment and re-tests conditions the others already settled. For a
*steady* segment almost none of that work can change anything, so :func:`steady_segment`
does only what remains, in one frame, with the segment's fields read once.

The contract
------------
:func:`steady_segment` either applies a segment with exactly the effect of the full path, or
returns ``-1`` having changed nothing, and the caller takes the full path. It first tests
every condition under which the full path would do something it does not do (a zero or
unknown window, SACK blocks, a header or payload cut by the snaplen, a pure ACK that
acknowledges nothing new (a duplicate ACK, a window update or a duplicated frame), an ACK of
unseen or re-sent data or one covering a late re-send or hole fill, out-of-order or 1-byte
data, a window-full mark, a pending probe answer...), and only then writes. The
connection-wide conditions (both
endpoints ESTABLISHED with no FIN sent, not a self-connect, handshake settled, Zeek's
endpoints ESTABLISHED) are summed up in
``Connection.steady``, recomputed after every segment the full path takes
(``Connection.update_steady``).

``tests/test_fastpath.py`` checks the equivalence on every capture the tests can reach and on
random conversations (Hypothesis) by running each with the fast path on and off and comparing
every output; each refusal rule above has a conversation that fails without it.

It reads and writes the private state of ``SequenceAnalyzer`` (``_c``/``_s``, ``_prune``) and
``PeerSummary`` (``_eps``, ``_ws``, ``_n``, ``_check``, ``_steady``) on purpose: it is those
classes' per-segment code for one case, kept here so that each class stays readable as the
full statement of its rules. A change to either class's per-segment rules must be mirrored
here, and the equivalence tests say where it was not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tcptrace_py.analysis import flags as AF
from tcptrace_py.analysis.direction import SegmentRecord, SentSegment
from tcptrace_py.compat import HIST_ACK, HIST_DATA, WS_ACK, WS_DATA
from tcptrace_py.facts import ECN_FLAGS
from tcptrace_py.segment import ACK, FIN, PSH, RST, SYN, Segment

if TYPE_CHECKING:
    from tcptrace_py.connection import Connection

_MASK = 0xFFFFFFFF
_HALF = 1 << 31
_NOT_STEADY = SYN | FIN | RST | ACK
"""A steady segment has ACK and none of SYN/FIN/RST: ``flags & _NOT_STEADY == ACK``."""
_RTT_SAMPLE = AF.RTT_SAMPLE
_TSO_SUPERSEGMENT = AF.TSO_SUPERSEGMENT
_TRUNCATED = AF.TRUNCATED


def steady_segment(conn: Connection, seg: Segment) -> int:
    """Apply ``seg`` to a ``conn.steady`` connection; its analysis flags, or -1 if not taken.

    Each block names the full-path code it stands for; the tests compare the two paths.
    """
    flags = seg.flags
    plen = seg.payload_len
    window = seg.window
    if flags & _NOT_STEADY != ACK or window <= 0 or seg.sack or seg.header_truncated:
        return -1
    from_client = seg.sport == conn.client_port and seg.src == conn.client_addr
    an = conn.analyzer
    if from_client:
        side = 0
        snd = an._c
        rcv = an._s
        st = an.client
        rst_ = an.server
    else:
        side = 1
        snd = an._s
        rcv = an._c
        st = an.server
        rst_ = an.client
    peer = conn.peer
    eps = peer._eps
    e = eps[side]
    base = snd.base
    last = snd.last_ts_ns
    if base < 0 or last < 0 or snd.pending_ack or snd.zw_open_index != -1:
        # This side's first segment, a probe answer due, or a zero-window period to close.
        return -1
    ts = seg.ts_ns

    # -- SequenceAnalyzer.on_segment's two common ACK branches: the tests, no writes yet.
    ack = seg.ack
    rbase = rcv.base
    nxt = rcv.snd_nxt
    una = rcv.snd_una
    if rbase < 0 or una > nxt:
        return -1
    ack_rel = nxt + ((ack - rbase - nxt + _HALF) & _MASK) - _HALF
    sent_ts: int | None = None  # send time of the segment this ACK ends at (RTT sample)
    if ack_rel == una:
        if not plen:
            # A duplicate-ACK or window-update candidate, or (its ACK number differing from
            # the sender's last) a copy of an earlier ACK: a duplicated frame to look up.
            return -1
        new_ack = False
    elif una < ack_rel <= nxt:
        if ack_rel > rcv.late_low:
            return -1  # covers a re-send or hole fill: Karn's rule on cumulative ACKs
        rec: SegmentRecord | None = rcv.by_end.get(ack_rel)
        if rec is not None:
            if type(rec) is tuple:
                sent_ts = rec[3]  # a FreshSegment: sent once, Karn-clean
            else:
                assert isinstance(rec, SentSegment)
                if rec.tx > 1 or rec.control == "syn":
                    return -1  # ACK of re-sent data (Karn) or of the SYN: handshake RTT
                sent_ts = rec.ts_ns
        new_ack = True
    else:
        return -1  # ACK of data never seen, or behind SND.UNA

    # -- the sequence side: in-order data of more than one byte, or a plain 0-byte ACK.
    s_nxt = snd.snd_nxt
    rel = s_nxt + ((seg.seq - base - s_nxt + _HALF) & _MASK) - _HALF
    if rel != s_nxt:
        return -1  # out of order, a re-send, a probe or a keep-alive
    end = s_nxt + plen
    rwin = rcv.win_scaled
    if plen:
        if plen == 1 or (rwin and rcv.win_known and end == snd.snd_una + rwin):
            return -1  # a possible 1-byte probe, or a window-full mark to record
    elif rel == snd.snd_una - 1 and rcv.win_known and rwin == 0:
        return -1  # a zero-window probe at SND.UNA - 1 (SND.UNA past SND.NXT: ACK of unseen)

    # ===================================================================== writes
    # Connection.on_segment, before the analyzer.
    conn.last_frame = seg.frame
    conn.last_ts_ns = ts
    n = conn.packets[side] = conn.packets[side] + 1
    conn.payload_bytes[side] += plen
    conn.win_raw[side] = window
    if seg.ecn or flags & ECN_FLAGS:
        conn.facts.on_marked(seg, side)  # ECN marks and echoes ride on steady segments too
    # The sender's ring of recent segments (duplicated frames, Connection.on_segment). A
    # steady segment is never a copy: it sends at SND.NXT and its ACK is new or data-bearing.
    conn.recent[side][n % conn._dup_n] = seg  # type: ignore[index]

    # SequenceAnalyzer.on_segment: timing.
    mask = 0
    st.packets += 1
    an.last_ts_ns = ts
    idle_ns = ts - last
    if idle_ns > st.idle_max_ns:
        st.idle_max_ns = idle_ns
    snd.last_ts_ns = ts
    st.last_ts_ns = ts

    # ACK side.
    st.ack_pkts += 1
    if new_ack:
        rcv.snd_una = ack_rel
        snd.dupacks = 0
        if ack_rel > 1:
            rcv.iw_done = True
        if sent_ts is not None:
            sample = ts - sent_ts
            if sample >= 0:
                mask = _RTT_SAMPLE
                rst_.rtt.add(float(sample))
                rcv.est.update(sample)
        order = rcv.order
        if order is not None and len(order) > an.options.max_tracked_segments:
            an._prune(rcv)
    snd.last_ack_raw = ack
    snd.last_win_raw = window
    snd.last_sent_ack = True

    # Window advertisement (never zero here).
    win = window << snd.shift
    if st.win_min < 0 or win < st.win_min:
        st.win_min = win
    if win > st.win_max:
        st.win_max = win
    st.win_sum += win
    st.win_n += 1
    snd.win_scaled = win
    snd.win_known = True

    # Sequence side.
    if plen:
        st.data_pkts += 1
        st.data_bytes += plen
        if st.seg_max == 0 or plen < st.seg_min:
            st.seg_min = plen
        if plen > st.seg_max:
            st.seg_max = plen
        if flags & PSH:
            st.pushed_pkts += 1
        peer_mss = rst_.mss
        if peer_mss > 0 and plen > peer_mss:
            mask |= _TSO_SUPERSEGMENT
            st.tso_pkts += 1
        snd.ranges.add(s_nxt, end)
        new: SegmentRecord = (SentSegment(s_nxt, end, seg.frame, ts, "") if snd.mutable
                              else (s_nxt, end, seg.frame, ts))
        snd.by_start[s_nxt] = new
        snd.by_end[end] = new
        sorder = snd.order
        if sorder is None:
            sorder = snd.order = []
        sorder.append(new)
        if len(sorder) > an._max_unacked:
            an._forget_oldest(snd)  # SequenceAnalyzer.on_segment's in-order branch
        if not snd.iw_done:
            st.iw_bytes += plen
            st.iw_pkts += 1
        snd.snd_nxt = end
    else:
        st.pure_acks += 1
    if seg.captured_payload < plen:
        # SequenceAnalyzer.on_segment's count of payloads a snaplen cut (a capture taken
        # with ``tcpdump -s 96`` has every data segment cut: they stay on this path).
        mask |= _TRUNCATED
        st.count_truncated(seg.frame, ts, plen - seg.captured_payload)

    # Connection.on_segment, after the analyzer: the peer's silence count, then Zeek and
    # Wireshark, then the sender's SND.MAX (no FIN, no SYN: the end is seq + payload).
    conn.silent_probes[1 - side] = 0
    ws = peer._ws
    peer._ws_prev = ws
    peer._ws = ws | (WS_DATA if plen else WS_ACK)
    peer._n += 1
    if plen:
        if not e.hist & HIST_DATA:
            peer._check(e, side, HIST_DATA, "D")  # this side's first data: Zeek's 'd'
    elif not e.hist & HIST_ACK:
        peer._check(e, side, HIST_ACK, "A")  # its first pure ACK: 'a'
    peer._steady(seg, e, eps[1 - side], side, flags, plen)
    rows = conn.packet_rows
    if rows is not None:
        rows.append((seg.frame, ts, conn.flow_id, from_client, flags, mask, plen))
    machine = conn.client if from_client else conn.server
    raw_end = (seg.seq + plen) & _MASK
    snd_max = machine.snd_max
    if snd_max < 0 or (((snd_max - raw_end) & _MASK) >= _HALF and snd_max != raw_end):
        machine.snd_max = raw_end
    return mask


# The compiled engine's twin of steady_segment (tcptrace_py/_engine.pyx).
from tcptrace_py.implementation import compiled as _compiled  # noqa: E402

if _compiled is not None:
    steady_segment = _compiled.steady_segment  # noqa: F811
