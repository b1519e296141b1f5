"""SequenceAnalyzer: retransmissions, out-of-order, RTT, windows and probes of one connection.

Theory of operation
-------------------
1. One analyzer per connection; ``on_segment`` sees every segment in capture order with its
   role (``from_client``). Each side has a :class:`SenderState` (what it sent, what the peer
   acknowledged) and a :class:`DirectionStats` (counters of what it sent).
2. Sequence numbers are unwrapped to 64-bit offsets relative to the ISN (0 = SYN, first data
   byte = 1) next to the highest offset seen, so ISNs near 2**32 and streams past 4 GiB work.
   Without a SYN, the first byte seen (or the first ACK number the peer sends) is offset 1.
3. As tcptrace's rexmit.c: the payload ranges each side sent are kept in a range set. A
   segment overlapping it is a retransmission (its bytes are the overlap); a start beyond
   SND.NXT means a segment was not captured (a hole). New bytes filling a hole are out of
   order when they are the delayed original (reordering: the hole is no loss), and a
   retransmission when they were sent after the segment that opened it
   (``_fill_is_original``). A bare FIN beyond SND.NXT reveals a hole too (the bytes before
   the FIN count as missed).
4. Probes are not data: a 0-byte segment at SND.UNA - 1 into a zero window (Linux) or 1 byte
   at SND.NXT into a zero window is a zero-window probe; 0/1 byte at SND.NXT - 1 with nothing
   outstanding is a keep-alive. Neither is a retransmission nor goes into the range set.
5. SYN, SYN-ACK and FIN occupy one sequence number each; a repeat of one already seen is a
   SYN/FIN retransmission. ``retransmissions`` counts retransmitted *segments*: a FIN that
   also re-sends data counts once.
6. Every retransmission is classified from what the observer saw before it (see
   ``_classify``) and names the frame of the original transmission.
7. RTT samples come from ACKs that end exactly at a remembered segment (tcptrace's rule);
   ACKs of retransmitted segments are ambiguous and skipped (Karn, RFC 6298 section 3), and
   so are ACKs that also cover bytes below that segment sent after it (a re-send or a late
   hole fill: the ACK waited for them). The samples drive one RFC 6298 estimator per side.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from types import MappingProxyType
from typing import Any, TypeVar

from tcptrace_py.analysis import flags as F
from tcptrace_py.analysis.direction import (
    NO_LATE,
    DirectionStats,
    Gap,
    SegmentRecord,
    SenderState,
    SentSegment,
    record_end,
)
from tcptrace_py.analysis.evidence import (
    NONE_YET,
    KeepAlive,
    Retransmission,
    WindowFull,
    ZeroWindowPeriod,
    ZeroWindowProbe,
    evidence_list,
)
from tcptrace_py.analysis.options import AnalysisOptions
from tcptrace_py.analysis.rtt import NO_SAMPLES, RttEstimator, RunningStats
from tcptrace_py.implementation import slots_factory
from tcptrace_py.segment import ACK, FIN, PSH, RST, SYN, Segment

_MASK = 0xFFFFFFFF
_HALF = 1 << 31
_CTRL = SYN | FIN | RST
# Flag bits as module globals for the per-segment methods (one global read instead of a
# global plus a module attribute read per use).
_ACK_UNSEEN = F.ACK_UNSEEN
_AMBIGUOUS_ACK = F.AMBIGUOUS_ACK
_DSACK = F.DSACK
_DUP_ACK = F.DUP_ACK
_FIN_RETRANSMISSION = F.FIN_RETRANSMISSION
_KEEPALIVE = F.KEEPALIVE
_KEEPALIVE_ACK = F.KEEPALIVE_ACK
_LOST_SEGMENT = F.LOST_SEGMENT
_OUT_OF_ORDER = F.OUT_OF_ORDER
_RETRANSMISSION = F.RETRANSMISSION
_RTT_SAMPLE = F.RTT_SAMPLE
_SACK = F.SACK
_SYN_RETRANSMISSION = F.SYN_RETRANSMISSION
_TRIPLE_DUP_ACK = F.TRIPLE_DUP_ACK
_TRUNCATED = F.TRUNCATED
_TSO_SUPERSEGMENT = F.TSO_SUPERSEGMENT
_WINDOW_FULL = F.WINDOW_FULL
_WINDOW_UPDATE = F.WINDOW_UPDATE
_ZERO_WINDOW = F.ZERO_WINDOW
_ZERO_WINDOW_PROBE = F.ZERO_WINDOW_PROBE
_ZERO_WINDOW_PROBE_ACK = F.ZERO_WINDOW_PROBE_ACK
_T = TypeVar("_T")
_new_retransmission = slots_factory(Retransmission)
"""``Retransmission(...)`` with positional arguments, made as ``events.new_event`` makes
events (the class itself under the reference engine)."""
_new_zw_period = slots_factory(ZeroWindowPeriod)
_new_zw_probe = slots_factory(ZeroWindowProbe)
"""The same for zero-window periods and probes: made, and each amendment made again
(``dataclasses.replace`` walks ``fields()``: ~10 k instructions), from positional
arguments."""

NO_DROPS: Mapping[str, int] = MappingProxyType({})
"""``SequenceAnalyzer.evidence_dropped`` until its first count: one shared read-only empty
mapping (a dict a connection was 64 bytes, and almost none ever counts a drop)."""

COMPACT_TAIL_SEGMENTS = 2
"""Acknowledged segments with the highest sequence numbers kept by :meth:`compact`: when the
final ACK is lost after the capture point, the peer re-sends its last segment (often data
and FIN together, one unit); keeping the last two names the original of that re-send and of
a re-send of the segment before it."""


MAX_TRACKED_GAPS = 64
"""Holes remembered per side for telling a late original from a re-send; older ones are
forgotten (a filler of a forgotten hole stays out of order, the behaviour before holes were
kept). A connection with more open holes at once has lost the capture, not reordered."""


class SequenceAnalyzer:
    """Sequence analysis of one connection (see the module docstring for the rules)."""

    __slots__ = ("options", "client", "server", "_c", "_s", "retransmissions",
                 "zero_window_periods", "zero_window_probes", "keepalives",
                 "window_full_events", "evidence_dropped", "first_ts_ns", "last_ts_ns",
                 "_both_syn_ws", "_thresh", "_max_unacked")

    def __init__(self, options: AnalysisOptions | None = None) -> None:
        self.options = options if options is not None else AnalysisOptions()
        o = self.options
        self.client = DirectionStats()
        """What the client sent."""
        self.server = DirectionStats()
        """What the server sent."""
        self._c = SenderState(self._estimator())
        self._s = SenderState(self._estimator())
        self.retransmissions: list[Retransmission] | tuple[Retransmission, ...] = NONE_YET
        self.zero_window_periods: list[ZeroWindowPeriod] | tuple[ZeroWindowPeriod, ...] = NONE_YET
        self.zero_window_probes: list[ZeroWindowProbe] | tuple[ZeroWindowProbe, ...] = NONE_YET
        self.keepalives: list[KeepAlive] | tuple[KeepAlive, ...] = NONE_YET
        self.window_full_events: list[WindowFull] | tuple[WindowFull, ...] = NONE_YET
        self.evidence_dropped: dict[str, int] | Mapping[str, int] = NO_DROPS
        """Items not kept because a list reached options.max_evidence_items, by list name
        (:data:`NO_DROPS` until the first; :meth:`_dropped` gives the dict to count in)."""
        self.first_ts_ns = -1
        self.last_ts_ns = -1
        self._both_syn_ws = False
        self._thresh = o.dup_ack_threshold
        self._max_unacked = o.max_unacked_segments

    def _estimator(self) -> RttEstimator:
        o = self.options
        return RttEstimator(initial_rto_ns=o.rto_initial_ns, min_rto_ns=o.rto_min_ns,
                            max_rto_ns=o.rto_max_ns, clock_granularity_ns=o.clock_granularity_ns)

    # ------------------------------------------------------------------ evidence helpers
    def _keep(self, name: str, lst: list[_T] | tuple[_T, ...], item: _T) -> int:
        """Append ``item`` to the list ``lst``, the attribute ``name`` (made a list at its
        first item, ``NONE_YET``), unless it is full; return its index or -1 (counted)."""
        if len(lst) < self.options.max_evidence_items:
            kept = evidence_list(self, name)
            kept.append(item)
            return len(kept) - 1
        dropped = self._dropped()
        dropped[name] = dropped.get(name, 0) + 1
        return -1

    def _dropped(self) -> dict[str, int]:
        """``evidence_dropped`` to count in: a dict put in place of ``NO_DROPS``."""
        dropped = self.evidence_dropped
        if type(dropped) is not dict:
            dropped = self.evidence_dropped = {}
        return dropped

    @staticmethod
    def _amend(lst: list[_T] | tuple[_T, ...], index: int, fn: Callable[[_T], _T]) -> None:
        if 0 <= index < len(lst) and type(lst) is list:
            lst[index] = fn(lst[index])

    # ------------------------------------------------------------------ the hot path
    def on_segment(self, seg: Segment, from_client: bool) -> int:
        """Analyse one segment sent by the client (``from_client``) or the server.

        Returns a bitmask of :mod:`tcptrace_py.analysis.flags`.
        """
        if from_client:
            snd = self._c
            rcv = self._s
            st = self.client
            rst_ = self.server
        else:
            snd = self._s
            rcv = self._c
            st = self.server
            rst_ = self.client
        ts = seg.ts_ns
        fl = seg.flags
        plen = seg.payload_len
        mask = 0
        st.packets += 1
        if self.first_ts_ns < 0:
            self.first_ts_ns = ts
        self.last_ts_ns = ts
        idle_ns = 0
        if snd.last_ts_ns >= 0:
            idle_ns = ts - snd.last_ts_ns
            if idle_ns > st.idle_max_ns:
                st.idle_max_ns = idle_ns
        else:
            st.first_ts_ns = ts
        snd.last_ts_ns = ts
        st.last_ts_ns = ts

        if fl & SYN:
            self._on_syn(seg, snd, rcv, st)
        elif snd.base < 0:
            # Picked up mid-stream: the first byte seen is relative 1 (rule 2).
            snd.base = (seg.seq - 1) & _MASK
            snd.snd_nxt = snd.snd_una = 1
            st.midstream = True

        # ---------------------------------------------------------------- ACK side
        if fl & ACK:
            st.ack_pkts += 1
            ack = seg.ack
            base = rcv.base
            nxt = rcv.snd_nxt
            una = rcv.snd_una
            if (base >= 0 and una <= nxt and not snd.pending_ack and not seg.sack
                    and nxt + ((ack - base - nxt + _HALF) & _MASK) - _HALF == una
                    and (plen or fl & _CTRL or ack != snd.last_ack_raw
                         or not snd.last_sent_ack)):
                # The common ACK that acknowledges nothing new, nothing unseen, and cannot be
                # a duplicate ACK (it carries data, or its ACK number changed): of _on_ack
                # only the bookkeeping of the last ACK sent applies.
                snd.last_ack_raw = ack
                snd.last_win_raw = seg.window
                snd.last_sent_ack = True
            elif (base >= 0 and una < (ack_rel := nxt + ((ack - base - nxt + _HALF) & _MASK)
                                       - _HALF) <= nxt
                  and not snd.pending_ack and not seg.sack and ack_rel <= rcv.late_low
                  and not isinstance(rec := rcv.record_ending(ack_rel), SentSegment)):
                # The common ACK of new, seen data whose segment (if remembered) was sent
                # once: _on_ack reduced to what can apply (no probe answer pending, no SACK,
                # nothing unseen, no late re-send or hole fill covered, no duplicate since it
                # moves SND.UNA).
                rcv.snd_una = ack_rel
                snd.dupacks = 0
                if ack_rel > 1:
                    rcv.iw_done = True
                if rec is not None:
                    sample = ts - rec[3]  # a FreshSegment: Karn-clean, never a SYN
                    if sample >= 0:
                        mask |= _RTT_SAMPLE
                        rst_.rtt.add(float(sample))
                        rcv.est.update(sample)
                if rcv.tracked() > self.options.max_tracked_segments:
                    self._prune(rcv)
                snd.last_ack_raw = ack
                snd.last_win_raw = seg.window
                snd.last_sent_ack = True
            else:
                mask |= self._on_ack(seg, snd, rcv, st, rst_, plen, fl, ts)
        if fl & RST:
            st.rst_pkts += 1
        elif seg.window >= 0:  # -1: the snaplen cut the header before the window field
            # Window advertisement (RFC 7323 section 2.3: never scaled on SYN segments).
            win = seg.window
            if not fl & SYN:
                win <<= snd.shift
            if st.win_min < 0 or win < st.win_min:
                st.win_min = win
            if win > st.win_max:
                st.win_max = win
            st.win_sum += win
            st.win_n += 1
            if win == 0 and not fl & _CTRL:
                mask |= _ZERO_WINDOW
                st.zero_window_advs += 1
                if snd.zw_open_index < 0:
                    snd.zw_open_index = self._keep(
                        "zero_window_periods", self.zero_window_periods,
                        _new_zw_period("client" if from_client else "server", seg.frame, ts,
                                       -1, -1, 0))
                    if snd.zw_open_index < 0:
                        snd.zw_open_index = -2  # open but not kept
            elif win > 0 and snd.zw_open_index != -1:
                if snd.zw_open_index >= 0:
                    self._amend(self.zero_window_periods, snd.zw_open_index,
                                lambda p: _new_zw_period(p.side, p.start_frame, p.start_ts_ns,
                                                         seg.frame, ts, p.probes))
                snd.zw_open_index = -1
            snd.win_scaled = win
            snd.win_known = True

        # ---------------------------------------------------------------- sequence side
        nxt = snd.snd_nxt
        if (plen > 1 and not fl & _CTRL
                and nxt + ((seg.seq - snd.base - nxt + _HALF) & _MASK) - _HALF == nxt):
            # In-order data, the bulk of all segments: _on_data's rules reduced to what can
            # apply. At SND.NXT and more than one byte, it is neither a zero-window probe nor
            # a keep-alive (rule 4), nor out of order or after a gap, and it overlaps nothing
            # sent (every range ends at or below SND.NXT), so it is not a retransmission.
            end = nxt + plen
            st.data_pkts += 1
            st.data_bytes += plen
            if st.seg_max == 0 or plen < st.seg_min:
                st.seg_min = plen
            if plen > st.seg_max:
                st.seg_max = plen
            if fl & PSH:
                st.pushed_pkts += 1
            peer_mss = rst_.mss
            if peer_mss > 0 and plen > peer_mss:
                mask |= _TSO_SUPERSEGMENT
                st.tso_pkts += 1
            snd.ranges.add(nxt, end)
            new: SegmentRecord = (SentSegment(nxt, end, seg.frame, ts, "") if snd.mutable
                                  else (nxt, end, seg.frame, ts))  # see direction.py
            snd.by_start[nxt] = new
            snd.by_end[end] = new
            order = snd.order
            if order is None:
                order = snd.order = []
            order.append(new)
            if len(order) > self._max_unacked:
                self._forget_oldest(snd)
            if not snd.iw_done:
                st.iw_bytes += plen
                st.iw_pkts += 1
            win = rcv.win_scaled
            if win and rcv.win_known and end == snd.snd_una + win:
                mask |= _WINDOW_FULL
                st.window_full += 1
                self._keep("window_full_events", self.window_full_events,
                           WindowFull(seg.frame, ts, "client" if from_client else "server",
                                      nxt, win))
            snd.snd_nxt = end
        elif plen or fl & (FIN | SYN):
            if not fl & RST:
                mask |= self._on_data(seg, snd, rcv, st, plen, fl, ts, from_client, idle_ns)
        elif not fl & RST and snd.base >= 0:
            # 0-byte segment: Linux zero-window probe (SND.UNA - 1) or keep-alive (SND.NXT - 1).
            rel = snd.snd_nxt + ((seg.seq - snd.base - snd.snd_nxt + _HALF) & _MASK) - _HALF
            if rel == snd.snd_una - 1 and rcv.win_known and rcv.win_scaled == 0:
                mask |= self._zw_probe(seg, snd, rcv, st, rel, "linux_zero_byte", from_client)
            elif (rel == snd.snd_nxt - 1 and snd.snd_una >= snd.snd_nxt
                  and idle_ns >= self.options.keepalive_min_idle_ns):
                mask |= self._keepalive(seg, snd, rcv, st, rel, from_client, idle_ns)
            else:
                st.pure_acks += 1 if fl & ACK else 0

        if seg.captured_payload < plen or seg.header_truncated:
            mask |= _TRUNCATED
            st.count_truncated(seg.frame, seg.ts_ns, plen - seg.captured_payload)
        return mask

    # ------------------------------------------------------------------ pieces
    def _on_syn(self, seg: Segment, snd: SenderState, rcv: SenderState,
                st: DirectionStats) -> None:
        st.syn_pkts += 1
        if snd.syn_seen:
            return  # repeat: classified in _on_data
        snd.syn_seen = True
        if snd.base < 0 or snd.snd_nxt <= 1:
            snd.base = seg.seq
            snd.snd_nxt = 1
            snd.snd_una = 0
        st.isn = seg.seq
        st.mss = seg.mss
        st.wscale = seg.wscale
        st.sack_permitted = seg.sack_permitted
        st.timestamps = seg.tsval >= 0
        if rcv.syn_seen:
            # RFC 7323 section 2.2: scaling is on only when both SYNs carried the option.
            peer = self.client if st is self.server else self.server
            if seg.wscale >= 0 and peer.wscale >= 0:
                snd.shift = min(seg.wscale, 14)
                rcv.shift = min(peer.wscale, 14)
                self._both_syn_ws = True

    def _on_ack(self, seg: Segment, snd: SenderState, rcv: SenderState, st: DirectionStats,
                rst_: DirectionStats, plen: int, fl: int, ts: int) -> int:
        """``snd`` acknowledges ``rcv``'s data; samples RTT for ``rcv`` (stats ``rst_``)."""
        mask = 0
        if rcv.base < 0:
            # Peer not seen yet (mid-stream): its next byte is relative 1.
            rcv.base = (seg.ack - 1) & _MASK
            rcv.snd_nxt = rcv.snd_una = 1
            rst_.midstream = True
        nxt = rcv.snd_nxt
        ack_rel = nxt + ((seg.ack - rcv.base - nxt + _HALF) & _MASK) - _HALF
        una = rcv.snd_una
        if snd.pending_ack and not plen:
            mask |= snd.pending_ack
            if snd.pending_ack == _KEEPALIVE_ACK:
                st.keepalive_acks += 1
                self._amend(self.keepalives, snd.pending_index,
                            lambda k: replace(k, answered_by_frame=seg.frame))
            else:
                st.zwp_acks += 1
                self._amend(self.zero_window_probes, snd.pending_index,
                            lambda k: _new_zw_probe(k.frame, k.ts_ns, k.sender, k.style, k.seq,
                                                    seg.frame))
            snd.pending_ack = 0
        if ack_rel > nxt:
            mask |= _ACK_UNSEEN
            st.acks_unseen += 1
        if ack_rel > una:
            rcv.snd_una = ack_rel
            snd.dupacks = 0
            if ack_rel > 1:
                rcv.iw_done = True
            rec = rcv.record_ending(ack_rel)
            late_ts = self._covered_late(rcv, ack_rel) if ack_rel > rcv.late_low else None
            if type(rec) is tuple:
                # A FreshSegment: sent once, so Karn-clean unless the ACK also covers bytes
                # sent after it (a re-send or a hole fill below it); never a SYN.
                if late_ts is not None and late_ts > rec[3]:
                    mask |= _AMBIGUOUS_ACK
                    rst_.ambiguous_acks += 1
                else:
                    sample = ts - rec[3]
                    if sample >= 0:
                        mask |= _RTT_SAMPLE
                        rst_.rtt.add(float(sample))
                        rcv.est.update(sample)
            elif rec is not None:
                assert isinstance(rec, SentSegment)
                if rec.tx > 1 or (late_ts is not None and late_ts > rec.ts_ns):
                    mask |= _AMBIGUOUS_ACK
                    rst_.ambiguous_acks += 1
                else:
                    sample = ts - rec.ts_ns
                    if sample >= 0:
                        mask |= _RTT_SAMPLE
                        rst_.rtt.add(float(sample))
                        rcv.est.update(sample)
                if rec.control == "syn" and rst_.handshake_rtt_ns < 0:
                    # Handshake RTT from the last (re)transmission of the SYN / SYN-ACK.
                    rst_.handshake_rtt_ns = ts - rec.last_ts_ns
            if rcv.tracked() > self.options.max_tracked_segments:
                self._prune(rcv)
        elif (ack_rel == una and not plen and not fl & _CTRL
              and seg.ack == snd.last_ack_raw and snd.last_sent_ack):
            if seg.window == snd.last_win_raw:
                if nxt > ack_rel and seg.window:
                    # RFC 5681 section 2 "duplicate acknowledgment" with data outstanding.
                    snd.dupacks += 1
                    st.dup_acks += 1
                    mask |= _DUP_ACK
                    if snd.dupacks == self._thresh:
                        mask |= _TRIPLE_DUP_ACK
                        st.triple_dup_acks += 1
            elif seg.window:
                mask |= _WINDOW_UPDATE
                st.window_updates += 1
        snd.last_ack_raw = seg.ack
        snd.last_win_raw = seg.window
        snd.last_sent_ack = True
        if seg.sack:
            mask |= self._on_sack(seg, snd, rcv, st, ack_rel)
        return mask

    def _on_sack(self, seg: Segment, snd: SenderState, rcv: SenderState, st: DirectionStats,
                 ack_rel: int) -> int:
        mask = _SACK
        st.sack_pkts += 1
        blocks = seg.sack
        if len(blocks) > st.max_sack_blocks:
            st.max_sack_blocks = len(blocks)
        base = rcv.base
        nxt = rcv.snd_nxt
        rel_blocks = [(nxt + ((left - base - nxt + _HALF) & _MASK) - _HALF,
                       nxt + ((right - base - nxt + _HALF) & _MASK) - _HALF)
                      for left, right in blocks]
        first_l, first_r = rel_blocks[0]
        # RFC 2883 section 4: a D-SACK is a first block below the ACK, or inside the second.
        dsack = first_l < ack_rel or (
            len(rel_blocks) > 1 and rel_blocks[1][0] <= first_l and first_r <= rel_blocks[1][1])
        if dsack:
            mask |= _DSACK
            st.dsack_pkts += 1
            self._mark_dsack(rcv, first_l, first_r)
        for _left, right in (rel_blocks[1:] if dsack else rel_blocks):
            if right > rcv.sack_high:
                rcv.sack_high = right
        return mask

    def _mark_dsack(self, rcv: SenderState, left: int, right: int) -> None:
        """A D-SACK proves the retransmission of [left, right) was spurious (RFC 3708)."""
        if not rcv.mutable:
            return  # no data retransmitted yet: no record has a retransmission to mark
        rec = rcv.record_starting(left)
        assert rec is None or isinstance(rec, SentSegment)  # rcv.mutable: no tuples left
        if rec is None or rec.rexmit_index < 0:
            for cand in reversed(_records(rcv.order)):
                if cand.start <= left < cand.end and cand.rexmit_index >= 0:
                    rec = cand
                    break
            else:
                return
        if rec.rexmit_index < 0:
            return
        idx = rec.rexmit_index
        if 0 <= idx < len(self.retransmissions) and not self.retransmissions[idx].spurious:
            r = self.retransmissions[idx]
            stats = self.client if r.sender == "client" else self.server
            stats.rexmt_spurious += 1
            kind = r.kind if r.kind in ("syn", "synack", "fin") else "spurious"
            evidence_list(self, "retransmissions")[idx] = replace(r, kind=kind, spurious=True)

    def _zw_probe(self, seg: Segment, snd: SenderState, rcv: SenderState, st: DirectionStats,
                  rel: int, style: str, from_client: bool) -> int:
        st.zwp_pkts += 1
        st.zwp_bytes += seg.payload_len
        idx = self._keep("zero_window_probes", self.zero_window_probes,
                         _new_zw_probe(seg.frame, seg.ts_ns,
                                       "client" if from_client else "server", style, rel))
        rcv.pending_ack = _ZERO_WINDOW_PROBE_ACK
        rcv.pending_index = idx
        if rcv.zw_open_index >= 0:
            self._amend(self.zero_window_periods, rcv.zw_open_index,
                        lambda p: _new_zw_period(p.side, p.start_frame, p.start_ts_ns,
                                                 p.end_frame, p.end_ts_ns, p.probes + 1))
        return _ZERO_WINDOW_PROBE

    def _keepalive(self, seg: Segment, snd: SenderState, rcv: SenderState, st: DirectionStats,
                   rel: int, from_client: bool, idle_ns: int) -> int:
        st.keepalives += 1
        idx = self._keep("keepalives", self.keepalives,
                         KeepAlive(seg.frame, seg.ts_ns, "client" if from_client else "server",
                                   seg.payload_len, idle_ns))
        rcv.pending_ack = _KEEPALIVE_ACK
        rcv.pending_index = idx
        return _KEEPALIVE

    def _on_data(self, seg: Segment, snd: SenderState, rcv: SenderState, st: DirectionStats,
                 plen: int, fl: int, ts: int, from_client: bool, idle_ns: int) -> int:
        """Payload, SYN and FIN sequence space sent by ``snd``."""
        mask = 0
        nxt = snd.snd_nxt
        rel = nxt + ((seg.seq - snd.base - nxt + _HALF) & _MASK) - _HALF
        retrans = False
        rec: SentSegment | None = None
        resend: SentSegment | None = None  # a re-send of bytes never captured
        kind = ""
        data_rel = rel
        if fl & SYN:
            data_rel = rel + 1
            srec = snd.syn_rec
            if srec is None:
                srec = SentSegment(rel, rel + 1, seg.frame, ts, "syn")
                snd.syn_rec = srec
                if fl & ACK:
                    snd.synack_sent = True
                snd.by_end[rel + 1] = srec
                if rel + 1 > snd.snd_nxt:
                    snd.snd_nxt = rel + 1
            elif (rel == srec.start and fl & ACK and not snd.synack_sent
                  and (rcv.syn_seen or (seg.sport == seg.dport and seg.src == seg.dst))):
                # Simultaneous open (RFC 9293 figure 8): SYN-SENT got the peer's SYN and answers
                # with SYN,ACK at the same ISN. A new step, not a retransmission (Wireshark and
                # tcptrace both miscount it); a self-connect does the same with itself.
                snd.synack_sent = True
            elif rel == srec.start:
                retrans = True
                rec = srec
                kind = "synack" if fl & ACK else "syn"
                mask |= _SYN_RETRANSMISSION
                st.syn_rexmt += 1
        end = data_rel + plen
        if plen:
            peer_zero = rcv.win_known and rcv.win_scaled == 0
            if (plen == 1 and peer_zero and not fl & (SYN | FIN)
                    and (data_rel == snd.snd_nxt or data_rel == snd.zwp_rel)):
                # Classic 1-byte zero-window probe (RFC 9293 section 3.8.6.1), not data yet.
                snd.zwp_rel = data_rel
                st.data_pkts += 1
                st.data_bytes += 1
                return mask | self._zw_probe(seg, snd, rcv, st, data_rel, "one_byte",
                                             from_client)
            if (plen == 1 and data_rel == snd.snd_nxt - 1 and snd.snd_una >= snd.snd_nxt
                    and not fl & (SYN | FIN) and idle_ns >= self.options.keepalive_min_idle_ns):
                return mask | self._keepalive(seg, snd, rcv, st, data_rel, from_client, idle_ns)
            st.data_pkts += 1
            st.data_bytes += plen
            if st.seg_max == 0 or plen < st.seg_min:
                st.seg_min = plen
            if plen > st.seg_max:
                st.seg_max = plen
            if fl & PSH:
                st.pushed_pkts += 1
            peer_mss = (self.server if from_client else self.client).mss
            if peer_mss > 0 and plen > peer_mss:
                mask |= _TSO_SUPERSEGMENT
                st.tso_pkts += 1
            if data_rel > snd.snd_nxt:
                mask |= _LOST_SEGMENT
                st.lost_segments += 1
                st.missed_bytes += data_rel - snd.snd_nxt
                self._open_gap(seg, snd, st, data_rel)
            gap: Gap | None = None
            original: bool | None = None  # a hole's filler: delayed original, re-send, unknown
            if snd.gaps is not None and data_rel < snd.snd_nxt:
                gap = _gap_at(snd.gaps, data_rel, end)
                if gap is not None:
                    original = self._fill_is_original(
                        seg, st, self.server if from_client else self.client, gap)
            overlap = snd.ranges.add(data_rel, end)
            if data_rel < snd.snd_nxt and end > snd.snd_una:
                self._note_late(snd, data_rel, end, ts)
            if overlap and not original:
                retrans = True
                st.rexmt_data_pkts += 1
                st.rexmt_data_bytes += overlap
                if rec is None:
                    if not snd.mutable:
                        snd.make_mutable()  # records get mutated from here on
                    rec = snd.record_starting(data_rel)  # type: ignore[assignment]
                    if rec is None or rec.end != end:
                        rec = self._overlapping(snd, data_rel, end, seg.frame, ts, rec)
            else:
                if original is False:
                    # Fills a hole with a re-send: its original was lost before the capture
                    # point (or sent before the capture started). A retransmission, classified
                    # like any other, whose original frame is unknown. Not in rexmt_data_*:
                    # those count payload the capture saw twice (tcptrace's definition, so
                    # data_bytes = unique_bytes + rexmt_data_bytes still holds).
                    retrans = True
                    if not snd.mutable:
                        snd.make_mutable()
                    resend = SentSegment(data_rel, end, seg.frame, ts, "")
                    resend.tx = 2  # Karn: its own ACK is ambiguous
                elif data_rel < snd.snd_nxt:
                    mask |= _OUT_OF_ORDER
                    st.ooo_pkts += 1
                    if original and gap is not None:
                        self._delayed_original(snd, st, gap, data_rel, end)
                    if overlap:  # the original after its re-send: payload seen twice
                        st.rexmt_data_pkts += 1
                        st.rexmt_data_bytes += overlap
            if not overlap:
                new: SegmentRecord = resend if resend is not None else (
                    SentSegment(data_rel, end, seg.frame, ts, "") if snd.mutable
                    else (data_rel, end, seg.frame, ts))  # FreshSegment: see direction.py
                snd.by_start[data_rel] = new
                snd.by_end[end] = new
                order = snd.order
                if order is None:
                    order = snd.order = []
                order.append(new)
                if not snd.iw_done:
                    st.iw_bytes += plen
                    st.iw_pkts += 1
            if rcv.win_known and rcv.win_scaled and end == snd.snd_una + rcv.win_scaled:
                mask |= _WINDOW_FULL
                st.window_full += 1
                self._keep("window_full_events", self.window_full_events,
                           WindowFull(seg.frame, ts, "client" if from_client else "server",
                                      data_rel, rcv.win_scaled))
            if end > snd.snd_nxt:
                snd.snd_nxt = end
            if snd.tracked() > self._max_unacked:
                self._forget_oldest(snd)
            if len(snd.ranges) > self.options.max_holes:
                self._fill_oldest_holes(snd)
        if fl & FIN:
            st.fin_pkts += 1
            frec = snd.fin_rec
            if frec is None:
                if not plen and end > snd.snd_nxt:
                    # A bare FIN beyond SND.NXT: the data before it was never captured (rule
                    # 3; tcptrace, tshark and Zeek count the gap as missed bytes too).
                    mask |= _LOST_SEGMENT
                    st.lost_segments += 1
                    st.missed_bytes += end - snd.snd_nxt
                    self._open_gap(seg, snd, st, end)  # a late filler may be reordering
                frec = SentSegment(end, end + 1, seg.frame, ts, "fin")
                snd.fin_rec = frec
                snd.fin_rel = end
                if not retrans:
                    snd.by_end[end + 1] = frec
                if end + 1 > snd.snd_nxt:
                    snd.snd_nxt = end + 1
            elif end == frec.start:
                if not retrans or rec is None:
                    rec = frec
                retrans = True
                kind = "fin"
                mask |= _FIN_RETRANSMISSION
                st.fin_rexmt += 1
                if rec is not frec:
                    frec.tx += 1
                    frec.last_ts_ns = ts
        if retrans:
            mask |= _RETRANSMISSION | self._classify(seg, snd, rcv, st, rec, kind, data_rel,
                                                      end, from_client)
            if resend is not None and self.retransmissions \
                    and self.retransmissions[-1].frame == seg.frame:
                resend.rexmit_index = len(self.retransmissions) - 1  # a D-SACK can mark it
        return mask

    def _classify(self, seg: Segment, snd: SenderState, rcv: SenderState, st: DirectionStats,
                  rec: SentSegment | None, kind: str, rel: int, end: int,
                  from_client: bool) -> int:
        """Name the cause of a retransmission from what the observer saw before it.

        Order of tests: SYN/FIN kinds are kept (their trigger is a timer or a TLP); data
        already acknowledged is spurious; dup ACKs >= threshold, SACKed data above it, or an
        ongoing fast recovery make it fast (RFC 5681 section 3.2, RFC 6675); the first re-send
        of the last segment sent with no dup ACKs is a Linux tail-loss probe (RFC 8985
        section 7); anything else waited for the retransmission timer (RFC 6298 section 5).
        """
        ts = seg.ts_ns
        st.retransmitted_segments += 1
        mask = 0
        since = -1
        interval = -1
        first_resend = True
        if rec is not None:
            since = ts - rec.ts_ns
            interval = ts - rec.last_ts_ns
            first_resend = rec.tx == 1
        o = self.options
        # A FIN re-send is needless only once the FIN itself (its sequence number + 1) was
        # acknowledged: data acknowledged up to the FIN does not make it spurious.
        spurious = (end + (1 if seg.flags & FIN else 0) <= snd.snd_una
                    and kind != "syn" and kind != "synack")
        if kind in ("syn", "synack"):
            trigger = "rto"
        elif (rcv.dupacks >= self._thresh or snd.sack_high > rel
              or (snd.recovery_end > rel and snd.snd_una < snd.recovery_end)):
            trigger = "fast"
            if snd.recovery_end <= snd.snd_una:
                snd.recovery_end = snd.snd_nxt
        elif first_resend and end + (1 if kind == "fin" else 0) >= snd.snd_nxt \
                and rcv.dupacks == 0:
            srtt = snd.est.srtt_ns
            limit = (o.tlp_max_srtt_factor * srtt + o.tlp_delack_allowance_ns
                     if srtt is not None else None)
            if limit is None or since <= max(limit * 1.25, snd.est.rto_ns):
                trigger = "tail_loss_probe"
            else:
                trigger = "rto"
        else:
            trigger = "rto"
        if trigger == "rto" and kind not in ("syn", "synack"):
            snd.est.on_timeout()
        if interval > 0:
            rxi = st.rexmit_interval
            if rxi is NO_SAMPLES:
                rxi = st.rexmit_interval = RunningStats()
            rxi.add(float(interval))
            if rec is not None and trigger == "rto" and rec.last_interval_ns > 0:
                bor = st.backoff_ratio
                if bor is NO_SAMPLES:
                    bor = st.backoff_ratio = RunningStats()
                bor.add(interval / rec.last_interval_ns)
        if kind == "":
            kind = "spurious" if spurious else trigger
        if spurious:
            mask |= F.SPURIOUS_RETRANSMISSION
            st.rexmt_spurious += 1
        if trigger == "fast":
            mask |= F.FAST_RETRANSMISSION
            st.rexmt_fast += 1
        elif trigger == "tail_loss_probe":
            mask |= F.TAIL_LOSS_PROBE
            st.rexmt_tlp += 1
        else:
            mask |= F.RTO_RETRANSMISSION
            st.rexmt_rto += 1
        idx = self._keep("retransmissions", self.retransmissions, _new_retransmission(
            seg.frame, ts, "client" if from_client else "server", kind,
            rec.frame if rec is not None else -1, since, rel - (1 if seg.flags & SYN else 0),
            seg.payload_len, trigger, interval, spurious))
        if rec is not None:
            rec.tx += 1
            rec.last_ts_ns = ts
            # Only timer-driven intervals feed the backoff ratio (a TLP is not a timeout).
            rec.last_interval_ns = interval if trigger == "rto" else -1
            rec.rexmit_index = idx
        return mask

    def _open_gap(self, seg: Segment, snd: SenderState, st: DirectionStats,
                  data_rel: int) -> None:
        """Remember the hole ``[SND.NXT, data_rel)`` this segment (G) reveals (bounded)."""
        gaps = snd.gaps
        if gaps is None:
            gaps = snd.gaps = []
        # G is the side's first packet only when SND.NXT came from the peer's first ACK.
        gaps.append(Gap(snd.snd_nxt, data_rel, seg.frame, seg.ts_ns, seg.ip_id, seg.tsval,
                        st.packets, st.packets == 1))
        if len(gaps) > MAX_TRACKED_GAPS:
            del gaps[0]

    def _fill_is_original(self, seg: Segment, st: DirectionStats, peer: DirectionStats,
                          gap: Gap) -> bool | None:
        """Was this filler of ``gap`` sent before the segment G that opened it?

        True: the delayed original (reordering, nothing lost); False: a re-send (TCP sends new
        data in sequence order, so bytes below G sent after G are a retransmission); None: no
        evidence (then it stays out of order, as tcptrace counts it). Evidence, strongest
        first: TCP timestamps (RFC 7323: TSval never decreases); IPv4 IDs of a counting sender
        (``reorder_ip_id_window``); timing: a re-send answers the hole, so it needs the path's
        whole round trip after G passed (the receiver's dup ACK to the sender and the re-send
        back: the two capture-point RTTs), and a filler sooner than that is the original;
        later than that it is taken for a re-send. Last, a hole from before the capture
        started can only be filled by a re-send.
        """
        if seg.tsval >= 0 and gap.tsval >= 0 and seg.tsval != gap.tsval:
            return ((gap.tsval - seg.tsval) & _MASK) < _HALF
        if seg.ip_id > 0 and gap.ip_id > 0:
            window = self.options.reorder_ip_id_window
            if 0 < (gap.ip_id - seg.ip_id) & 0xFFFF <= window:
                return True
            seen = st.packets - gap.packets  # this sender's packets since G, this one included
            if seen <= (seg.ip_id - gap.ip_id) & 0xFFFF <= seen + window:
                return False
        to_receiver = _min_rtt_ns(st)  # capture point -> receiver -> capture point
        to_sender = _min_rtt_ns(peer)  # capture point -> sender -> capture point
        if to_receiver >= 0 and to_sender >= 0:
            return seg.ts_ns - gap.ts_ns < to_receiver + to_sender
        return False if gap.pre_capture else None

    def _delayed_original(self, snd: SenderState, st: DirectionStats, gap: Gap, start: int,
                          end: int) -> None:
        """The original of (part of) ``gap`` arrived late: reordering, not loss.

        Its bytes leave ``missed_bytes``; once the whole hole arrived so, the hole leaves
        ``lost_segments`` (so ``segments_not_captured`` does not report it). A re-send that
        filled the hole first was spurious: the original got through (marked as a D-SACK
        would, RFC 3708).
        """
        lo, hi = max(start, gap.start), min(end, gap.end)
        if hi > lo:
            st.missed_bytes -= (hi - lo) - gap.originals.add(lo, hi)
            if not gap.retracted and gap.originals.covered() >= gap.end - gap.start:
                gap.retracted = True
                st.lost_segments -= 1
        self._mark_dsack(snd, start, end)

    def _note_late(self, snd: SenderState, start: int, end: int, ts: int) -> None:
        """Remember payload sent below SND.NXT (a re-send or a hole fill) until it is acked.

        Bounded: past ``max_tracked_segments`` entries the list folds into one covering
        entry with the latest time, which can only turn samples into ambiguous ACKs.
        """
        late = snd.late
        if late is None:
            late = snd.late = []
        late.append((start, end, ts))
        if start < snd.late_low:
            snd.late_low = start
        if len(late) > self.options.max_tracked_segments:
            snd.late = [(min(e[0] for e in late), max(e[1] for e in late),
                         max(e[2] for e in late))]

    @staticmethod
    def _covered_late(rcv: SenderState, ack_rel: int) -> int | None:
        """Latest send time of late transmissions an ACK up to ``ack_rel`` covers (None:
        none; not -1, which a time before 1970 would compare with: a pcapng interface's
        negative ``if_tsoffset`` gives such times, tests/test_time_pairs.py).

        Karn's rule on cumulative ACKs (tcptrace rexmit.c ``intervening_xmits``): an ACK
        that ends at a segment but also covers bytes below it which passed the capture point
        *after* it (a retransmission, or a hole filled late) may have waited for those
        bytes, so ``ack - sent`` of its segment is no round trip. Called with SND.UNA not yet
        moved past the entries; forgets those the ACK fully covers.
        """
        late = rcv.late
        assert late is not None
        newest: int | None = None
        keep = []
        for entry in late:
            if entry[0] < ack_rel and (newest is None or entry[2] > newest):
                newest = entry[2]
            if entry[1] > ack_rel:
                keep.append(entry)
        rcv.late = keep or None
        rcv.late_low = min((e[0] for e in keep), default=NO_LATE)
        return newest

    @staticmethod
    def _overlapping(snd: SenderState, start: int, end: int, frame: int, ts: int,
                     exact: SentSegment | None) -> SentSegment | None:
        """Repacketised retransmission: taint every remembered segment it overlaps.

        Karn's rule must hold for the ACK that ends at any of them (tcptrace marks each
        overlapped segment retransmitted). When no remembered segment ends where this one
        does, remember the new range as already retransmitted (tx=2) so its ACK is ambiguous.
        Returns the earliest overlapped segment (its frame is the original).
        """
        hit = [c for c in _records(snd.order) if c.start < end and start < c.end]
        first = exact
        for cand in hit:
            if first is None or cand.ts_ns < first.ts_ns:
                first = cand
        for cand in hit:
            if cand is not first:  # _classify counts the returned one
                cand.tx += 1
                cand.last_ts_ns = ts
        if snd.by_end.get(end) is None:
            extra = SentSegment(start, end, frame, ts, "")
            extra.tx = 2
            snd.by_end[end] = extra
            order = snd.order
            if order is None:
                order = snd.order = []
            order.append(extra)
        return first

    @staticmethod
    def _prune(state: SenderState) -> None:
        """Forget acknowledged segments beyond the tracking cap (bounded memory)."""
        order = state.order
        if order is None:
            return
        una = state.snd_una
        n = len(order)
        keep = n // 2
        i = 0  # records order[:i] are forgotten, removed from the list at once at the end
        while n - i > keep and record_end(order[i]) <= una:
            old = order[i]
            i += 1
            start = old[0] if type(old) is tuple else old.start  # type: ignore[union-attr]
            end = record_end(old)
            if state.by_start.get(start) is old:
                del state.by_start[start]
            if state.by_end.get(end) is old:
                del state.by_end[end]
        del order[:i]

    def _forget_oldest(self, state: SenderState) -> None:
        """Forget the oldest remembered segments, acknowledged or not, down to three quarters
        of ``max_unacked_segments`` (bounded memory when the peer's ACKs are not in the
        capture); the unacknowledged ones forgotten are counted in ``evidence_dropped``."""
        order = state.order
        if order is None:
            return
        una = state.snd_una
        keep = self._max_unacked - self._max_unacked // 4
        by_start = state.by_start
        by_end = state.by_end
        forgotten = 0
        n = len(order)
        i = 0  # records order[:i] are forgotten, removed from the list at once at the end
        while n - i > keep:
            old = order[i]
            i += 1
            start = old[0] if type(old) is tuple else old.start  # type: ignore[union-attr]
            end = record_end(old)
            if end > una:
                forgotten += 1
            if by_start.get(start) is old:
                del by_start[start]
            if by_end.get(end) is old:
                del by_end[end]
        del order[:i]
        if forgotten:
            dropped = self._dropped()
            dropped["unacked_segments"] = dropped.get("unacked_segments", 0) + forgotten

    def _fill_oldest_holes(self, state: SenderState) -> None:
        """Fill the oldest holes of the range set down to three quarters of ``max_holes``
        (a lossy one-sided capture adds one per lost segment); counted in
        ``evidence_dropped``, their bytes kept out of ``unique_bytes``."""
        cap = self.options.max_holes
        ranges = state.ranges
        n = len(ranges) - (cap - cap // 4)
        state.filled_bytes += ranges.merge_lowest(n)
        dropped = self._dropped()
        dropped["sequence_holes"] = dropped.get("sequence_holes", 0) + n

    @property
    def tracking_capped(self) -> int:
        """Segments and holes forgotten to stay within ``max_unacked_segments`` and
        ``max_holes`` (0 on any connection whose peer's ACKs were captured)."""
        dropped = self.evidence_dropped
        return dropped.get("unacked_segments", 0) + dropped.get("sequence_holes", 0)

    def acked(self, from_client: bool) -> int:
        """The side's SND.UNA as the peer's ACKs moved it: relative sequence number (1 = its
        first data byte) up to which its data was acknowledged; -1 when it was never seen."""
        snd = self._c if from_client else self._s
        return snd.snd_una if snd.base >= 0 else -1

    def last_ack_sent(self, from_client: bool) -> int:
        """The raw ACK number of the side's last ACK (its RCV.NXT then), -1 if it sent none:
        a RST below it or beyond what the peer sent is not at the side's RCV.NXT (RFC 5961)."""
        snd = self._c if from_client else self._s
        return snd.last_ack_raw if snd.last_sent_ack else -1

    def unacknowledged(self, from_client: bool, raw_seq: int) -> int:
        """Bytes of one side's sequence space below ``raw_seq`` (e.g. its RST's sequence
        number) that the peer had not acknowledged by the last ACK seen: 0 when the peer sent
        no ACK, or the side was never seen."""
        snd = self._c if from_client else self._s
        peer = self.server if from_client else self.client
        if snd.base < 0 or not peer.ack_pkts:
            return 0
        nxt = snd.snd_nxt
        rel = nxt + ((raw_seq - snd.base - nxt + _HALF) & _MASK) - _HALF
        d = rel - snd.snd_una
        return d if 0 < d < _HALF else 0

    def compact(self) -> int:
        """Forget per-segment history no later segment can use; return records dropped.

        Called once when both endpoints are closed or in TIME_WAIT (``Connection.compact``):
        the connection may still sit in the flow table for 2*MSL of packet time so late FIN
        retransmissions and re-ACKs land in it, but its acknowledged segments only serve to
        name the original frame of a late re-send of old data. What stays, per direction:

        - the range set of sent bytes, so any late data re-send is still a retransmission
          (tcptrace rexmit.c's rule) with the same byte counts;
        - ``syn_rec`` / ``fin_rec``, so SYN/FIN re-sends keep their original frame and kind;
        - every segment not yet acknowledged (``end > snd_una``) and its ``by_end`` key, so a
          later ACK samples RTT or is ambiguous (Karn) exactly as before;
        - every segment whose retransmission was recorded (``rexmit_index >= 0``), so a late
          D-SACK still marks that retransmission spurious (RFC 3708);
        - the :data:`COMPACT_TAIL_SEGMENTS` highest segments (in the start/end indexes only),
          which a peer whose final ACK was lost re-sends with its FIN.

        Only a late re-send of other acknowledged data can differ: no remembered original, so
        its ``original_frame`` is -1 and its trigger is judged without ``since_original_ns``
        (docs/sequence-analysis.md, "Compaction").
        """
        return self._compact_sender(self._c) + self._compact_sender(self._s)

    @staticmethod
    def _compact_sender(state: SenderState) -> int:
        order = state.order
        una = state.snd_una
        by_end = state.by_end
        tracked = len(order) if order is not None else 0
        # In transmission order: what later ACKs, D-SACKs and repacketised re-sends scan.
        # FreshSegment tuples have no retransmission (rexmit_index -1).
        keep = [r for r in order if record_end(r) > una
                or (type(r) is not tuple and r.rexmit_index >= 0)  # type: ignore[union-attr]
                ] if order else []
        # The tail is only looked up by exact start/end (a re-send of the same unit), so it
        # needs no place in ``order``: most closed connections then hold none.
        tail = sorted(order, key=record_end)[-COMPACT_TAIL_SEGMENTS:] if order else []
        kept_ids = {id(r) for r in keep}
        kept_ids.update(id(r) for r in tail)
        # Fresh containers: a dict never gives memory back when emptied in place.
        state.by_end = {k: r for k, r in by_end.items() if k > una or id(r) in kept_ids}
        state.by_start = {k: r for k, r in state.by_start.items() if id(r) in kept_ids}
        state.order = keep if keep else None
        return tracked - len(kept_ids)

    # ------------------------------------------------------------------ results
    def _finish(self) -> None:
        self.client.unique_bytes = self._c.ranges.covered() - self._c.filled_bytes
        self.server.unique_bytes = self._s.ranges.covered() - self._s.filled_bytes

    @property
    def retransmission_total(self) -> int:
        """Retransmitted SYN, SYN-ACK, FIN and data segments, both directions."""
        return self.client.retransmitted_segments + self.server.retransmitted_segments

    def columns(self) -> dict[str, object]:
        """Flat record columns: ``client_``/``server_`` prefixed, units in the names."""
        out: dict[str, object] = {}
        self.add_columns(out)
        return out

    def add_columns(self, out: dict[str, Any]) -> None:
        """:meth:`columns` written into ``out`` (a record), without an intermediate dict."""
        self._finish()
        out["retransmissions"] = self.retransmission_total
        duration_ns = (self.last_ts_ns - self.first_ts_ns) if self.first_ts_ns >= 0 else 0
        _put_direction_values(out, _PREFIXED["client_"], self.client, self._c, duration_ns)
        _put_direction_values(out, _PREFIXED["server_"], self.server, self._s, duration_ns)
        out["window_scaling"] = self._both_syn_ws
        out["evidence_dropped"] = sum(self.evidence_dropped.values())


def _gap_at(gaps: list[Gap], start: int, end: int) -> Gap | None:
    """The newest hole overlapping ``[start, end)``."""
    for gap in reversed(gaps):
        if gap.start < end and start < gap.end:
            return gap
    return None


def _min_rtt_ns(st: DirectionStats) -> int:
    """Smallest round trip from the capture point to this side's receiver and back: the
    handshake RTT or an RTT sample of the side's data (-1 when neither was seen)."""
    best = st.handshake_rtt_ns
    if st.rtt.count and (best < 0 or st.rtt.min < best):
        best = int(st.rtt.min)
    return best


def _records(order: list[SegmentRecord] | None) -> list[SentSegment] | tuple[()]:
    """``order`` of a side whose records are all ``SentSegment`` (``SenderState.mutable``)."""
    return order or ()  # type: ignore[return-value]


DIRECTION_COLUMNS = (
    "packets", "ack_pkts", "pure_acks", "rst_pkts", "data_pkts", "data_bytes", "unique_bytes",
    "retransmitted_segments", "rexmt_data_pkts", "rexmt_data_bytes", "syn_pkts", "fin_pkts",
    "syn_retransmissions", "fin_retransmissions", "rto_retransmissions", "fast_retransmissions",
    "tail_loss_probes", "spurious_retransmissions", "out_of_order_pkts", "lost_segments",
    "missed_bytes", "acks_of_unseen_data", "dup_acks", "triple_dup_acks", "sack_pkts",
    "dsack_pkts", "max_sack_blocks", "zero_window_advs", "zero_window_probes",
    "zero_window_probe_bytes", "zero_window_probe_acks", "keepalives", "keepalive_acks",
    "window_updates", "window_full", "pushed_pkts", "mss_bytes", "window_scale", "sack_permitted",
    "timestamps", "initial_window_bytes", "initial_window_pkts", "segment_min_bytes",
    "segment_max_bytes", "segment_avg_bytes", "window_min_bytes", "window_max_bytes",
    "window_avg_bytes", "idle_max_ms", "throughput_bytes_per_s", "truncated_bytes",
    "truncated_pkts", "tso_supersegments", "rtt_samples", "rtt_ambiguous_acks", "rtt_min_ms",
    "rtt_avg_ms", "rtt_max_ms", "rtt_stdev_ms", "handshake_rtt_ms", "srtt_ms", "rttvar_ms",
    "rto_ms", "rexmit_interval_min_ms", "rexmit_interval_max_ms", "rexmit_interval_avg_ms",
    "rto_backoff_ratio_avg", "isn", "midstream",
)
"""Per-direction record columns, without their ``client_``/``server_`` prefix, in order."""
NULLABLE_INT_COLUMNS = frozenset({"segment_min_bytes", "segment_max_bytes",
                                  "window_min_bytes", "window_max_bytes"})
"""Integer columns that are None without a sample (a direction that sent no data, no
window field): frames.py gives them a nullable integer dtype. Every other column that can
be None (RTT, intervals, averages, rates) is a float, NaN when missing."""
_PREFIXED = {p: tuple(p + name for name in DIRECTION_COLUMNS) for p in ("client_", "server_")}

_EXACT_BELOW = 4503599627370496.0
"""2**52: below it a double's fractional part is exact and ``int()`` of it is too."""
_MARGIN = 2.3e-16
"""Relative distance from a rounding boundary that decides without round() (see
:func:`round3`): above 2**-52, twice the error of the one multiplication."""


def round3(x: float) -> float:
    """``round(x, 3)``, bit for bit, without round()'s decimal string where it can.

    Why: ``round(x, 3)`` converts through a correctly rounded decimal string (about 2,500
    instructions) and a record takes a dozen such columns per direction. round() rounds the
    exact binary value v = x * 1000 to the nearest integer k (half to even) and returns the
    double nearest to k / 1000. Here y = x * 1000 is computed in doubles, within
    ``y * 2**-53`` of v. When y's fractional part ``f`` (exact below 2**52) is farther than
    ``_MARGIN * y`` from 0.5, v lies on the same side of the same half-integer, so k is
    ``int(y)`` or ``int(y) + 1``, and ``k / 1000`` (Python's correctly rounded integer
    division) is round()'s double. A float zero is its own rounding (0.0 or -0.0, which
    round() keeps); ties, near-ties, negative values, huge values, NaN and an int zero
    go through round().
    """
    return _round_scaled(x, 1000, 3)


def round1(x: float) -> float:
    """``round(x, 1)``, bit for bit: :func:`round3`'s argument with 10 for 1000."""
    return _round_scaled(x, 10, 1)


def _round_scaled(x: float, scale: int, digits: int) -> float:
    """``round(x, digits)`` for ``scale == 10 ** digits``, as :func:`round3` argues."""
    y = x * scale
    if 0.0 < y < _EXACT_BELOW:
        k = int(y)
        f = y - k
        if abs(f - 0.5) > y * _MARGIN:
            return (k + 1 if f > 0.5 else k) / scale
    elif y == 0.0 and type(x) is float:
        return x  # +-0.0 (only zero times ``scale`` is zero): round() keeps it, sign and all
    return round(x, digits)


def _put_direction_values(out: dict[str, Any], keys: tuple[str, ...], st: DirectionStats,
                          state: SenderState, duration_ns: int) -> None:
    """One direction's columns written into the record ``out`` under ``keys`` (prefixed
    DIRECTION_COLUMNS)."""
    out.update(zip(keys, _direction_values(st, state, duration_ns), strict=True))


def _direction_values(st: DirectionStats, state: SenderState,
                      duration_ns: int) -> tuple[object, ...]:
    """One direction's column values, in the order of DIRECTION_COLUMNS. A tuple zipped with
    prebuilt names: a record is made per connection, and for captures of many short
    connections (scans, floods) building it with 139 prefixed string concatenations and 21
    calls was a third of the time."""
    est = state.est
    rtt = st.rtt
    rxi = st.rexmit_interval
    bor = st.backoff_ratio
    # Fields read more than once, read once (each read of a slot is a descriptor call).
    packets, data_pkts, seg_max, win_n = st.packets, st.data_pkts, st.seg_max, st.win_n
    rtt_n, rxi_n, hs_ns = rtt.count, rxi.count, st.handshake_rtt_ns
    srtt, rttvar = est.srtt_ns, est.rttvar_ns
    values = (
        packets,  # packets
        st.ack_pkts,  # ack_pkts
        st.pure_acks,  # pure_acks
        st.rst_pkts,  # rst_pkts
        data_pkts,  # data_pkts
        st.data_bytes,  # data_bytes
        st.unique_bytes,  # unique_bytes
        st.retransmitted_segments,  # retransmitted_segments
        st.rexmt_data_pkts,  # rexmt_data_pkts
        st.rexmt_data_bytes,  # rexmt_data_bytes
        st.syn_pkts,  # syn_pkts
        st.fin_pkts,  # fin_pkts
        st.syn_rexmt,  # syn_retransmissions
        st.fin_rexmt,  # fin_retransmissions
        st.rexmt_rto,  # rto_retransmissions
        st.rexmt_fast,  # fast_retransmissions
        st.rexmt_tlp,  # tail_loss_probes
        st.rexmt_spurious,  # spurious_retransmissions
        st.ooo_pkts,  # out_of_order_pkts
        st.lost_segments,  # lost_segments
        st.missed_bytes,  # missed_bytes
        st.acks_unseen,  # acks_of_unseen_data
        st.dup_acks,  # dup_acks
        st.triple_dup_acks,  # triple_dup_acks
        st.sack_pkts,  # sack_pkts
        st.dsack_pkts,  # dsack_pkts
        st.max_sack_blocks,  # max_sack_blocks
        st.zero_window_advs,  # zero_window_advs
        st.zwp_pkts,  # zero_window_probes
        st.zwp_bytes,  # zero_window_probe_bytes
        st.zwp_acks,  # zero_window_probe_acks
        st.keepalives,  # keepalives
        st.keepalive_acks,  # keepalive_acks
        st.window_updates,  # window_updates
        st.window_full,  # window_full
        st.pushed_pkts,  # pushed_pkts
        st.mss,  # mss_bytes
        st.wscale,  # window_scale
        st.sack_permitted,  # sack_permitted
        st.timestamps,  # timestamps
        st.iw_bytes,  # initial_window_bytes
        st.iw_pkts,  # initial_window_pkts
        # Figures without a sample are None (NaN/<NA> in frames, null in JSON), never 0: a
        # 0 would read as a measurement (a zero window, a 0 ms RTT) and pull medians down.
        st.seg_min if seg_max else None,  # segment_min_bytes
        seg_max if seg_max else None,  # segment_max_bytes
        round1(st.data_bytes / data_pkts) if data_pkts else None,  # segment_avg_bytes
        st.win_min if win_n else None,  # window_min_bytes
        st.win_max if win_n else None,  # window_max_bytes
        round1(st.win_sum / win_n) if win_n else None,  # window_avg_bytes
        # idle_max_ms: a gap needs two packets of this direction.
        round3(st.idle_max_ns / 1e6) if packets > 1 else None,
        # throughput_bytes_per_s: no rate over a zero-length connection.
        (round1(st.unique_bytes * 1e9 / duration_ns) if duration_ns > 0 else None),
        st.truncated_bytes,  # truncated_bytes
        st.truncated_pkts,  # truncated_pkts
        st.tso_pkts,  # tso_supersegments
        rtt_n,  # rtt_samples
        st.ambiguous_acks,  # rtt_ambiguous_acks
        round3(rtt.min / 1e6) if rtt_n else None,  # rtt_min_ms
        round3(rtt.mean / 1e6) if rtt_n else None,  # rtt_avg_ms
        round3(rtt.max / 1e6) if rtt_n else None,  # rtt_max_ms
        # rtt_stdev_ms: the sample standard deviation needs two samples.
        round3(rtt.stdev / 1e6) if rtt_n > 1 else None,
        # handshake_rtt_ms:
        round3(hs_ns / 1e6) if hs_ns >= 0 else None,
        round3(srtt / 1e6) if srtt is not None else None,  # srtt_ms
        round3(rttvar / 1e6) if rttvar is not None else None,  # rttvar_ms
        round3(est.rto_ns / 1e6),  # rto_ms
        round3(rxi.min / 1e6) if rxi_n else None,  # rexmit_interval_min_ms
        round3(rxi.max / 1e6) if rxi_n else None,  # rexmit_interval_max_ms
        round3(rxi.mean / 1e6) if rxi_n else None,  # rexmit_interval_avg_ms
        # rto_backoff_ratio_avg:
        round3(bor.mean) if bor.count else None,
        st.isn,  # isn
        st.midstream,  # midstream
    )
    return values


# The compiled engine's twins (tcptrace_py/implementation.py, tcptrace_py/_engine.pyx).
from tcptrace_py.implementation import compiled as _compiled  # noqa: E402
from tcptrace_py.implementation import twin  # noqa: E402

SequenceAnalyzer = twin(SequenceAnalyzer, "SequenceAnalyzerBase")  # type: ignore[misc]
if _compiled is not None:  # per record: a dozen roundings and ~70 fields read twice
    round3 = _compiled.round3
    round1 = _compiled.round1
    _reference_direction_values = _direction_values
    _direction_values = _compiled.DirectionValues(_direction_values)
    _reference_put_direction_values = _put_direction_values
    _put_direction_values = _direction_values.put  # type: ignore[attr-defined]
