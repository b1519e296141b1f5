"""Peer-tool-compatible connection summaries: Zeek ``history``/``conn_state``, Wireshark
``tcp.completeness``.

Theory of operation
-------------------
Users already read Zeek's conn.log and Wireshark's conversation completeness. Rather than
inventing look-alikes, :class:`PeerSummary` replays each segment of one connection through a
small, faithful emulation of the peers' own rules, so the strings users see here mean exactly
what they mean there. Rules (details and every known difference: docs/compat.md):

1. Zeek keeps two observer endpoints (orig, resp) with states INACTIVE, SYN_SENT,
   SYN_ACK_SENT, PARTIAL, ESTABLISHED, CLOSED, RESET, moved by SYN/FIN/RST/ACK exactly as in
   Zeek's ``TCPSessionAdapter::Update*State`` (src/packet_analysis/protocol/tcp/
   TCPSessionAdapter.cc, formerly src/analyzer/protocol/tcp/TCP.cc).
2. Zeek's originator is the sender of the first packet, flipped (history gets ``^``) when the
   first packet is not a plain SYN and its source port is a likely server port
   (``WantConnection``), when a connection that began with a SYN-ACK then shows an ACK or data
   (Zeek >= 5.1, PR zeek/zeek#2191), or on a SYN/SYN-ACK reversal.
3. History letters follow ``update_history``: s/h/f/r once per endpoint and again when the
   sequence number differs from the last one of that kind; a/d/i/q once per endpoint;
   t/w/g (and c) on the 1st, 10th, 100th... occurrence. Upper case = originator.
4. ``conn_state`` is Zeek's script function ``Conn::conn_state`` applied to the final states.
5. Wireshark's completeness ORs SYN=1, SYN-ACK=2, ACK=4, DATA=8, FIN=16, RST=32 over the
   stream's packets, with the exact conditions TShark 4.0 shows (see on_segment).

Everything is plain ints in slotted objects: this sits on the per-packet path.
"""

from __future__ import annotations

from bisect import bisect_left

from tcptrace_py.analysis.evidence import NONE_YET
from tcptrace_py.segment import ACK, FIN, RST, SYN, Segment

# Zeek TCP endpoint states (src/analyzer/protocol/tcp/TCP_Endpoint.h, same numbering as the
# script-level enum TCP_INACTIVE..TCP_RESET).
INACTIVE = 0
SYN_SENT = 1
SYN_ACK_SENT = 2
PARTIAL = 3
ESTABLISHED = 4
CLOSED = 5
RESET = 6

STATE_NAMES = ("INACTIVE", "SYN_SENT", "SYN_ACK_SENT", "PARTIAL", "ESTABLISHED", "CLOSED",
               "RESET")

# Wireshark tcp.completeness bits (epan/dissectors/packet-tcp.c, TCP_COMPLETENESS_*).
WS_SYN = 1
WS_SYNACK = 2
WS_ACK = 4
WS_DATA = 8
WS_FIN = 16
WS_RST = 32

# Zeek history bits (HIST_* in src/Conn.h); the responder's are shifted by 16 there, here
# each endpoint keeps its own word.
_HIST_SYN = 0x1
_HIST_FIN = 0x2
_HIST_RST = 0x4
_HIST_FIN_RST = 0x8
_HIST_DATA = 0x10
_HIST_ACK = 0x20
_HIST_MULTI_FLAG = 0x100
HIST_DATA = _HIST_DATA
"""History bit of a side's first data segment ('d'); read by the fast path (fastpath.py)."""
HIST_ACK = _HIST_ACK
"""History bit of a side's first pure ACK ('a')."""

TOO_LARGE_SEQ_DELTA = 1048576
"""Zeek ignores SYN/RST sequence jumps larger than this (bytes) when tracking last_seq."""

SCALED_HISTORY_BASE = 10
"""t/w/g/c letters repeat at 1, 10, 100... occurrences (Zeek's ScaledHistoryEntry base)."""

LIKELY_SERVER_PORTS = frozenset({
    21, 22, 23, 25, 53, 80, 81, 88, 110, 111, 135, 139, 143, 389, 443, 445, 465, 502, 513,
    514, 563, 585, 587, 614, 631, 636, 989, 990, 992, 993, 995, 1080, 1433, 1521, 1723, 2049,
    2811, 3128, 3306, 3389, 5060, 5222, 5223, 5432, 5900, 6379, 6666, 6667, 6668, 6669, 8000,
    8080, 8443, 8888,
})
"""Approximation of Zeek's ``likely_server_ports`` (the ports its default analyzers register).
Used only for Zeek's role-flip heuristic on connections that do not start with a SYN."""

_MASK32 = 0xFFFFFFFF
_HALF32 = 0x80000000


def _delta(a: int, b: int) -> int:
    """Signed 32-bit difference a - b (Zeek's seq_delta)."""
    d = (a - b) & _MASK32
    return d - 0x100000000 if d & 0x80000000 else d


_HISTORY_ENTRIES: dict[str, tuple[tuple[str, int], tuple[str, int]]] = {}
"""Per history letter, its two entries ``(letter, 0)`` and ``(letter, 1)``."""


def history_entry(letter: str, side: int) -> tuple[str, int]:
    """The ``(letter, side)`` entry of a connection's history, one shared tuple per letter
    and side: a connection holds ~6 until its record, each ~56 bytes as its own tuple, and
    a capture's peak holds thousands of connections waiting out TIME_WAIT."""
    if side != 0 and side != 1:
        return (letter, side)
    pair = _HISTORY_ENTRIES.get(letter)
    if pair is None:
        pair = _HISTORY_ENTRIES[letter] = ((letter, 0), (letter, 1))
    return pair[side]


class _Endpoint:
    """One side's Zeek TCP_Endpoint state (plus its reassembler's gap bookkeeping)."""

    __slots__ = ("state", "prev_state", "start_seq", "last_seq", "ack_seq", "fin_cnt",
                 "fin_seq", "rst_cnt", "last_syn", "last_fin", "last_rst", "hist",
                 "rxmt_cnt", "rxmt_thresh", "win0_cnt", "win0_thresh", "gap_cnt",
                 "gap_thresh", "reassem_seq", "trim_seq", "blocks", "first_seen",
                 "holes_filled")

    def __init__(self) -> None:
        self.state = INACTIVE
        self.prev_state = INACTIVE
        self.start_seq = 0
        self.last_seq = 0
        self.ack_seq = 0
        self.fin_cnt = 0
        self.fin_seq = 0
        self.rst_cnt = 0
        self.last_syn = 0
        self.last_fin = 0
        self.last_rst = 0
        self.hist = 0
        self.rxmt_cnt = 0
        self.rxmt_thresh = 1
        self.win0_cnt = 0
        self.win0_thresh = 1
        self.gap_cnt = 0
        self.gap_thresh = 1
        self.reassem_seq = 1  # Zeek's Reassembler starts at relative seq 1 (after the SYN)
        self.trim_seq = 0
        self.blocks: list[list[int]] | tuple[list[int], ...] = NONE_YET
        """Out-of-order data above ``reassem_seq``: sorted, disjoint, non-adjacent [lo, hi)
        (at most ``max_holes``; see ``_data_sent``); the shared empty tuple until the first
        (``analysis.evidence.NONE_YET``: most connections never have one)."""
        self.first_seen = False
        self.holes_filled = 0
        """Holes between blocks filled to stay within ``max_holes``."""

    def set_state(self, new: int) -> None:
        if new != self.state:
            self.prev_state = self.state
            self.state = new

    def init_seqs(self, seq: int, last: int) -> None:
        self.start_seq = seq
        self.ack_seq = seq
        self.last_seq = last

    def size(self) -> int:
        """Zeek's TCP_Endpoint::Size(): bytes of sequence space, SYN and FIN excluded."""
        top = max(_delta(self.last_seq, self.start_seq), _delta(self.ack_seq, self.start_seq))
        size = top - 1 if top > 0 else top
        if self.fin_cnt and size > 0:
            size -= 1
        return max(size, 0)


def _is_clean(e: _Endpoint) -> bool:
    """Zeek TCP_Reassembler.cc is_clean(): gaps only count in clean states."""
    return e.state == ESTABLISHED or (e.state == CLOSED and e.prev_state == ESTABLISHED)


class PeerSummary:
    """Zeek history/conn_state and Wireshark completeness for one connection.

    Feed every segment in capture order with :meth:`on_segment`; read :meth:`history`,
    :meth:`conn_state`, :meth:`completeness` at any time. Sides are indexed 0 = our client,
    1 = our server; ``zeek_orig_is_client`` says whether Zeek's originator is our client.
    """

    __slots__ = ("_eps", "_orig", "_letters", "_flips", "_partial", "_n", "_ws", "_ws_prev",
                 "_max_holes")

    def __init__(self, max_holes: int = 16384) -> None:
        self._max_holes = max_holes
        """Reassembly blocks kept per side (``AnalysisOptions.max_holes``, same default)."""
        self._eps = (_Endpoint(), _Endpoint())
        self._orig = -1  # side index of Zeek's originator; -1 before the first segment
        self._letters: list[tuple[str, int]] = []  # (upper-case letter, sender side)
        self._flips = 0
        self._partial = False
        self._n = 0
        self._ws = 0
        self._ws_prev = 0

    # ------------------------------------------------------------------ public results
    @property
    def holes_filled(self) -> int:
        """Reassembly holes filled on either side to stay within ``max_holes``."""
        return self._eps[0].holes_filled + self._eps[1].holes_filled

    @property
    def zeek_orig_is_client(self) -> bool:
        """True when Zeek's originator (after its flips) is our client."""
        return self._orig != 1

    @property
    def flipped(self) -> bool:
        """Zeek flipped the roles (history starts with ``^``)."""
        return self._flips % 2 == 1

    def endpoint_states(self) -> tuple[str, str]:
        """(orig, resp) Zeek endpoint state names, for evidence and debugging."""
        o = self._orig if self._orig >= 0 else 0
        return STATE_NAMES[self._eps[o].state], STATE_NAMES[self._eps[1 - o].state]

    def history(self) -> str:
        """Zeek's history string; the originator's letters are upper case."""
        o = self._orig
        # A list, not a generator, for join(): built once per record, and a compiled
        # generator costs a closure and a generator object per call.
        return "^" * self._flips + "".join(
            [ch if side == o else ch.lower() for ch, side in self._letters])

    def conn_state(self) -> str:
        """Zeek's ``Conn::conn_state`` (scripts/base/protocols/conn/main.zeek) for TCP."""
        if self._orig < 0:
            return "OTH"
        oe = self._eps[self._orig]
        re_ = self._eps[1 - self._orig]
        os_, rs = oe.state, re_.state
        o_inactive = os_ in (INACTIVE, PARTIAL)
        r_inactive = rs in (INACTIVE, PARTIAL)
        if rs == RESET:
            if os_ in (SYN_SENT, SYN_ACK_SENT) or (
                    os_ == RESET and oe.size() == 0 and re_.size() == 0):
                return "REJ"
            return "RSTRH" if o_inactive else "RSTR"
        if os_ == RESET:
            if r_inactive:
                return "RSTOS0" if _rstos0_history(self.history()) else "OTH"
            return "RSTO"
        if rs == CLOSED and os_ == CLOSED:
            return "SF"
        if os_ == CLOSED:
            return "SH" if r_inactive else "S2"
        if rs == CLOSED:
            return "SHR" if o_inactive else "S3"
        if os_ == SYN_SENT and rs == INACTIVE:
            return "S0"
        if os_ == ESTABLISHED and rs == ESTABLISHED:
            return "S1"
        return "OTH"

    def steady(self) -> bool:
        """Both Zeek endpoints seen and ESTABLISHED: for a plain data or ACK segment,
        :meth:`_zeek` is then its 'd'/'a' history letter (once per side) followed by
        :meth:`_steady`, which is what fastpath.py applies."""
        o, r = self._eps
        return (self._orig >= 0 and self._n > 0 and o.state == ESTABLISHED
                and r.state == ESTABLISHED and o.first_seen and r.first_seen)

    def completeness(self) -> int:
        """Wireshark's ``tcp.completeness`` bitmask over every packet seen."""
        return self._ws

    def completeness_one_pass(self) -> int:
        """The value one-pass TShark prints on the stream's last packet.

        TShark adds the field to a packet's tree before folding that packet's own flags in,
        so in a one-pass read the last packet shows the value of all packets but itself.
        """
        return self._ws_prev

    # ------------------------------------------------------------------ per segment
    def on_segment(self, seg: Segment, from_client: bool,
                   is_retransmission: bool = False) -> None:
        """Fold one segment in (capture order).

        ``is_retransmission`` is accepted for the engine's convenience but Zeek's 't' uses
        Zeek's own rule (payload not advancing the sender's highest sequence), so that the
        history matches Zeek's; see docs/compat.md.
        """
        flags = seg.flags
        plen = seg.payload_len
        # ---- Wireshark completeness (packet-tcp.c), as TShark 4.0 computes it in one pass:
        # the stream's first packet only contributes a SYN (and the SYN's data); a SYN seen
        # later does not set SYN; SYN-ACK sets SYN-ACK on its own; ACK means a pure ACK
        # (no payload, no SYN); FIN counts only with ACK; a SYN-ACK's payload is not DATA.
        ws = self._ws
        self._ws_prev = ws
        if self._n == 0:
            if flags & SYN and not flags & ACK:
                ws |= WS_SYN | (WS_DATA if plen > 0 else 0)
        else:
            if flags & SYN:
                if flags & ACK:
                    ws |= WS_SYNACK
            elif flags & ACK and plen == 0:
                ws |= WS_ACK
            if plen > 0 and not (flags & SYN and flags & ACK):
                ws |= WS_DATA
            if flags & FIN and flags & ACK:
                ws |= WS_FIN
            if flags & RST:
                ws |= WS_RST
        self._ws = ws

        # ---- Zeek
        side = 0 if from_client else 1
        self._n += 1
        if not flags & (SYN | FIN | RST) and self._orig >= 0:
            eps = self._eps
            e = eps[side]
            p = eps[1 - side]
            if (e.state == ESTABLISHED and p.state == ESTABLISHED and e.first_seen
                    and e.hist & (_HIST_DATA if plen else _HIST_ACK)):
                self._steady(seg, e, p, side, flags, plen)
                return
        if self._orig < 0:
            self._orig = side
            # WantConnection(): a connection not opened by a plain SYN may be flipped by port.
            if not flags & SYN or flags & ACK:
                if seg.sport in LIKELY_SERVER_PORTS:
                    if seg.dport in LIKELY_SERVER_PORTS:
                        flip = not flags & SYN and seg.sport < seg.dport
                    else:
                        flip = True
                    if flip:
                        self._flip()
        else:
            o = self._eps[self._orig]
            if (o.state == SYN_ACK_SENT and self._eps[1 - self._orig].state == INACTIVE
                    and not flags & (SYN | FIN | RST) and (flags & ACK or plen > 0)):
                # Zeek >= 5.1 (zeek/zeek#2191): a connection begun with a SYN-ACK that then
                # shows an ACK or data is flipped; the SYN-ACK sender is the responder.
                self._flip()
                o.set_state(ESTABLISHED)
                self._partial = False
        self._zeek(seg, side, flags, plen)

    def _steady(self, seg: Segment, e: _Endpoint, p: _Endpoint, side: int, flags: int,
                plen: int) -> None:
        """:meth:`_zeek` for the bulk of segments: data or an ACK without SYN/FIN/RST between
        two ESTABLISHED endpoints, from a sender already seen that already has this kind's
        history letter ('d' for data, 'a' for a pure ACK).

        What can still change then is exactly what follows: no role flip (that needs a
        SYN_ACK_SENT originator), no partial status (first segment only), no endpoint
        re-init or state change (SYN/FIN/RST or INACTIVE only), no d/a letter; only the
        scaled 'w' (zero window), 't' (Zeek's retransmission: payload not past last_seq)
        and 'g' (an ACK above the bytes seen) letters, and the sequence bookkeeping behind
        them and behind ``Size()``. Each line is the same arithmetic as in :meth:`_zeek`,
        with the branches these states rule out removed.
        """
        seq = seg.seq
        end = (seq + plen) & _MASK32
        rel_seq = ((seq - e.start_seq + _HALF32) & _MASK32) - _HALF32
        if seg.window == 0:  # update_window: not RST, peer not CLOSED, we are not RESET
            e.win0_cnt += 1
            if e.win0_cnt == e.win0_thresh:
                self._letters.append(history_entry("W", side))
                e.win0_thresh *= SCALED_HISTORY_BASE
        rel_ack = 0
        if flags & ACK:
            ack = seg.ack
            rel_ack = ((ack - p.start_seq + _HALF32) & _MASK32) - _HALF32
            if rel_ack < 0:
                rel_ack = 0
            else:
                d_ack = ((ack - p.ack_seq + _HALF32) & _MASK32) - _HALF32
                if not (ack == 0 and d_ack > TOO_LARGE_SEQ_DELTA) and d_ack > 0:
                    p.ack_seq = ack
        # update_last_seq: neither SYN/RST nor FIN, and not RESET
        if ((end - e.last_seq + _HALF32) & _MASK32) - _HALF32 > 0:
            e.last_seq = end
        elif plen > 0:
            e.rxmt_cnt += 1
            if e.rxmt_cnt == e.rxmt_thresh:
                self._letters.append(history_entry("T", side))
                e.rxmt_thresh *= SCALED_HISTORY_BASE
        if flags & ACK and rel_ack > p.trim_seq:
            if not p.fin_cnt and rel_ack <= p.reassem_seq:
                p.trim_seq = rel_ack  # _ack_received with no FIN clamp and no gap
            else:
                self._ack_received(p, 1 - side, rel_ack)
        if plen > 0 and seg.captured_payload >= plen and rel_seq >= 0:
            upper = rel_seq + plen
            if (not e.blocks
                    and ((e.ack_seq - e.start_seq + _HALF32) & _MASK32) - _HALF32 <= rel_seq
                    <= e.reassem_seq < upper):
                e.reassem_seq = upper  # _data_sent: in order, nothing buffered above
            else:
                self._data_sent(e, rel_seq, plen)

    def _flip(self) -> None:
        self._orig = 1 - self._orig
        self._flips += 1

    def _check(self, e: _Endpoint, side: int, mask: int, letter: str) -> bool:
        """Zeek's CheckHistory: record the letter the first time; True if seen before."""
        if e.hist & mask:
            return True
        e.hist |= mask
        self._letters.append(history_entry(letter, side))
        return False

    def _zeek(self, seg: Segment, side: int, flags: int, plen: int) -> None:
        eps = self._eps
        e = eps[side]
        p = eps[1 - side]
        is_orig = side == self._orig
        seq = seg.seq
        # Flag bits and both endpoints' states read once: nothing below changes a state
        # before _state_machine (init_seqs and _check touch sequence numbers and history).
        syn = flags & SYN
        fin = flags & FIN
        rst = flags & RST
        ackf = flags & ACK
        st = e.state
        pst = p.state
        # SetPartialStatus
        if is_orig:
            if not e.first_seen:
                self._partial = not syn or bool(ackf)
        elif not e.first_seen and not self._partial:
            self._partial = not syn
        seg_len = plen + (1 if syn else 0) + (1 if fin else 0)
        if rst:
            seg_len -= plen  # RST payload is not stream data (Zeek get_segment_len)
        end = (seq + seg_len) & _MASK32
        # init_endpoint
        if st == INACTIVE:
            if syn:
                e.init_seqs(seq, end)
            else:
                e.init_seqs((seq - 1) & _MASK32, seq)
        elif syn and (
                st in (ESTABLISHED, PARTIAL)  # "SYN inside connection": re-base
                or (st in (SYN_SENT, SYN_ACK_SENT) and seq != e.start_seq)  # SYN_seq_jump
                or (st == RESET and e.prev_state == INACTIVE)):  # earlier RST was spoofed?
            e.init_seqs(seq, end)
        # Signed 32-bit deltas are inlined below (``_delta``): this runs for every segment.
        rel_seq = ((seq - e.start_seq + _HALF32) & _MASK32) - _HALF32
        underflow = rel_seq < 0
        # update_history
        ctrl = flags & (SYN | FIN | RST)
        bits = 0 if not ctrl else (
            (1 if syn else 0) + (1 if fin else 0) + (1 if rst else 0))
        if not bits:
            # Data / ACK letters: once per endpoint, so test the bit before calling _check.
            if plen:
                if not e.hist & _HIST_DATA:
                    self._check(e, side, _HIST_DATA, "D")
            elif ackf and not e.hist & _HIST_ACK:
                self._check(e, side, _HIST_ACK, "A")
        elif bits > 1:
            if fin and rst:
                self._check(e, side, _HIST_FIN_RST, "I")
            else:
                self._check(e, side, _HIST_MULTI_FLAG, "Q")
        elif bits == 1:
            if syn:
                code = "H" if ackf else "S"
                if self._check(e, side, _HIST_SYN, code) and rel_seq != e.last_syn:
                    self._letters.append(history_entry(code, side))
                e.last_syn = rel_seq
            elif fin:
                if self._check(e, side, _HIST_FIN, "F") and rel_seq + plen != e.last_fin:
                    self._letters.append(history_entry("F", side))
                e.last_fin = rel_seq + plen
            else:
                if self._check(e, side, _HIST_RST, "R") and rel_seq != e.last_rst:
                    self._letters.append(history_entry("R", side))
                e.last_rst = rel_seq
        # update_window: zero windows count unless RST, peer closed, or we were reset.
        if seg.window == 0 and not rst and pst != CLOSED and st != RESET:
            e.win0_cnt += 1
            if e.win0_cnt == e.win0_thresh:
                self._letters.append(history_entry("W", side))
                e.win0_thresh *= SCALED_HISTORY_BASE
        if fin:
            e.fin_cnt += 1
            e.fin_seq = rel_seq + seg_len
        if rst:
            e.rst_cnt += 1
        rel_ack = 0
        ack = seg.ack
        if ackf:
            if pst == INACTIVE:
                rel_ack = 1
                p.init_seqs((ack - 1) & _MASK32, (ack - 1) & _MASK32)
            else:
                rel_ack = ((ack - p.start_seq + _HALF32) & _MASK32) - _HALF32
                if rel_ack < 0:
                    rel_ack = 0
                elif not rst:
                    d_ack = ((ack - p.ack_seq + _HALF32) & _MASK32) - _HALF32
                    if not (ack == 0 and d_ack > TOO_LARGE_SEQ_DELTA) and d_ack > 0:
                        p.ack_seq = ack
        # update_last_seq (also Zeek's retransmission rule for 't')
        delta_last = ((end - e.last_seq + _HALF32) & _MASK32) - _HALF32
        if (syn or rst) and (delta_last > TOO_LARGE_SEQ_DELTA
                                    or delta_last < -TOO_LARGE_SEQ_DELTA):
            pass
        elif fin and e.last_seq == (e.start_seq + 1) & _MASK32:
            e.last_seq = end
        elif st == RESET:
            pass
        elif delta_last > 0:
            e.last_seq = end
        elif plen > 0:
            e.rxmt_cnt += 1
            if e.rxmt_cnt == e.rxmt_thresh:
                self._letters.append(history_entry("T", side))
                e.rxmt_thresh *= SCALED_HISTORY_BASE
        if ctrl or st == INACTIVE:
            # Without SYN/FIN/RST the state machine only moves an INACTIVE endpoint.
            self._state_machine(e, p, side, is_orig, flags, plen, seq)
        if ackf and rel_ack > p.trim_seq:
            # _ack_received returns at once unless the ACK moves past trim_seq (its FIN clamp
            # only lowers the value), so the common repeated ACK skips the call.
            self._ack_received(p, 1 - side, rel_ack)
        if plen > 0 and seg.captured_payload >= plen and not rst and not underflow:
            self._data_sent(e, rel_seq + 1 if syn else rel_seq, plen)
        e.first_seen = True

    # ------------------------------------------------------------------ state machine
    def _state_machine(self, e: _Endpoint, p: _Endpoint, side: int, is_orig: bool,
                       flags: int, plen: int, seq: int) -> None:
        st = e.state
        if st == INACTIVE:
            if flags & SYN:
                if is_orig:
                    e.set_state(SYN_ACK_SENT if flags & ACK else SYN_SENT)
                else:
                    if not flags & ACK and p.state == SYN_ACK_SENT and seq == e.start_seq:
                        # SYN/SYN-ACK reversal: Zeek flips and establishes.
                        self._partial = False
                        self._flip()
                        p.set_state(ESTABLISHED)
                    if p.state == SYN_SENT:
                        p.set_state(ESTABLISHED)
                    e.set_state(ESTABLISHED)
            if flags & FIN:
                e.set_state(CLOSED)
            if flags & RST:
                e.set_state(RESET)
            if e.state == INACTIVE:
                orig = self._eps[self._orig]
                if not is_orig and plen == 0 and orig.state == SYN_SENT:
                    pass  # an ACK of the SYN before the SYN-ACK: not a partial connection
                elif flags & ACK and p.state == ESTABLISHED:
                    e.set_state(ESTABLISHED)
                    self._partial = False
                else:
                    e.set_state(PARTIAL)
        elif st in (SYN_SENT, SYN_ACK_SENT):
            if flags & FIN:
                e.set_state(CLOSED)
            if flags & RST:
                e.set_state(RESET)
        elif st in (ESTABLISHED, PARTIAL):
            if flags & SYN and st == PARTIAL and p.state == INACTIVE and not flags & ACK:
                e.set_state(SYN_SENT)
            if flags & FIN and not flags & RST:
                e.set_state(CLOSED)
                if p.state == RESET and p.prev_state == CLOSED:
                    p.set_state(CLOSED)  # the peer's FIN then RST was a normal close
            if flags & RST:
                e.set_state(RESET)
        elif st == CLOSED:
            if flags & RST and p.state != CLOSED:
                e.set_state(RESET)

    # ------------------------------------------------------------------ reassembly gaps
    def _data_sent(self, e: _Endpoint, seq: int, length: int) -> None:
        """TCP_Reassembler::DataSent: remember which bytes were seen (relative seqs)."""
        ack = ((e.ack_seq - e.start_seq + _HALF32) & _MASK32) - _HALF32  # _delta, inlined
        upper = seq + length
        if seq < ack:
            if upper <= ack:
                return
            seq = ack
        if upper <= e.reassem_seq:
            return
        if seq <= e.reassem_seq:
            e.reassem_seq = upper
            blocks = e.blocks
            while type(blocks) is list and blocks and blocks[0][0] <= e.reassem_seq:
                lo_hi = blocks.pop(0)
                if lo_hi[1] > e.reassem_seq:
                    e.reassem_seq = lo_hi[1]
            return
        # Zeek keeps one block per segment; only the union of the blocks matters to the gap
        # count (_undelivered counts a gap where a block starts beyond the bytes reached,
        # which adjacent or overlapping blocks never do), so touching blocks are merged: a
        # one-sided capture keeps a block per hole, not per segment. Found by bisection: a
        # linear scan made a capture whose ACKs are missing quadratic (568 s for 100 k
        # segments).
        blocks = e.blocks
        if type(blocks) is not list:
            blocks = e.blocks = []
        i = bisect_left(blocks, [seq])
        if i and blocks[i - 1][1] >= seq:
            i -= 1
            blk = blocks[i]
            if upper > blk[1]:
                blk[1] = upper
        else:
            blk = [seq, upper]
            blocks.insert(i, blk)
        j = i + 1
        n = len(blocks)
        while j < n and blocks[j][0] <= blk[1]:
            if blocks[j][1] > blk[1]:
                blk[1] = blocks[j][1]
            j += 1
        if j > i + 1:
            del blocks[i + 1:j]
        if len(blocks) > self._max_holes:
            # Fill the oldest hole (lowest sequence numbers: the least likely to be filled
            # by a late re-send); Zeek's gap count can then be one lower. Counted.
            first = blocks.pop(0)
            if first[0] < blocks[0][0]:
                blocks[0][0] = first[0]
            e.holes_filled += 1

    def _ack_received(self, e: _Endpoint, side: int, seq: int) -> None:
        """TCP_Reassembler::AckReceived/Undelivered: acked bytes never seen are a gap."""
        if e.fin_cnt and seq >= e.fin_seq:
            seq = e.fin_seq - 1
        if seq <= e.trim_seq:
            return
        if seq > e.reassem_seq:
            self._undelivered(e, side, seq)
        e.trim_seq = seq

    def _undelivered(self, e: _Endpoint, side: int, up_to: int) -> None:
        if up_to <= 2 and self._partial:
            return  # Zeek: faked-up initial sequence of a partial connection
        blocks = e.blocks
        while type(blocks) is list and blocks and blocks[0][0] < up_to:
            lo, hi = blocks.pop(0)
            if hi <= e.reassem_seq:
                continue
            if lo > e.reassem_seq:
                self._gap(e, side)
            e.reassem_seq = hi
        if up_to > e.reassem_seq:
            self._gap(e, side)
            e.reassem_seq = up_to

    def _gap(self, e: _Endpoint, side: int) -> None:
        if _is_clean(e) and _is_clean(self._eps[1 - side]):
            e.gap_cnt += 1
            if e.gap_cnt == e.gap_thresh:
                self._letters.append(history_entry("G", side))
                e.gap_thresh *= SCALED_HISTORY_BASE


def _rstos0_history(history: str) -> bool:
    """Zeek's ``/\\^?S[^HAFGIQ]*R.*/ == c$history`` (an anchored, whole-string match)."""
    i = 1 if history.startswith("^") else 0
    if i >= len(history) or history[i] != "S":
        return False
    for ch in history[i + 1:]:
        if ch == "R":
            return True
        if ch in "HAFGIQ":
            return False
    return False


# The compiled engine's twins (tcptrace_py/implementation.py, tcptrace_py/_engine.pyx).
from tcptrace_py.implementation import twin  # noqa: E402

_Endpoint = twin(_Endpoint, "EndpointBase")  # type: ignore[misc]
PeerSummary = twin(PeerSummary, "PeerSummaryBase")  # type: ignore[misc]
