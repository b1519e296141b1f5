"""Connection: one incarnation of a 4-tuple; routes each segment to both endpoint machines.

The connection classifies a segment into a *send* input for its sender and a *receive* input
for its receiver (``fsm.Input``), checks RSTs against the receiver's window (RFC 5961 3.2),
records every transition and every unexpected segment as an :class:`~tcptrace_py.events.Event`,
and hands the segment to the sequence analyzer and the peer-tool summary. A copy of one of
its sender's last segments (``duplicates.py``: a capture point that holds a packet twice) is
counted and shown to the peer-tool summary only, before anything else sees it. It keeps
small, capped evidence lists (handshake/FIN/RST packets) for the detectors; it never raises.
"""

from __future__ import annotations

from tcptrace_py.analysis import SequenceAnalyzer
from tcptrace_py.analysis import flags as AF
from tcptrace_py.analysis.evidence import NONE_YET, evidence_list
from tcptrace_py.compat import PeerSummary
from tcptrace_py.duplicates import DuplicateFrame, original_of
from tcptrace_py.events import Event, new_event
from tcptrace_py.facts import ECN_FLAGS, ProtocolFacts
from tcptrace_py.fsm import Action, EndpointMachine, Input, TcpState, lookup
from tcptrace_py.giveup import RetransmissionRun
from tcptrace_py.icmp import IcmpError
from tcptrace_py.implementation import slots_factory
from tcptrace_py.lazy_dataclass import dataclass
from tcptrace_py.options import Options
from tcptrace_py.segment import ACK, FIN, RST, SYN, Segment, addr_text, flags_text

_MASK = 0xFFFFFFFF
_HALF = 1 << 31
_CONTROL = SYN | FIN | RST
_SYN_RST_ACK = SYN | RST | ACK
_DONE_STATES = (TcpState.CLOSED, TcpState.INACTIVE)
_QUIET_STATES = (TcpState.TIME_WAIT, TcpState.CLOSED, TcpState.INACTIVE)
"""Endpoint states after which an endpoint is not expected to send new data (compaction)."""

NEITHER: tuple[None, None] = (None, None)
"""``[client, server]`` lists that most connections never write (``retx_runs``,
``inexact_rst``) start as this shared tuple; the first write puts a list in its place
(``evidence_list``), as the evidence lists' ``NONE_YET`` (72 bytes a list a connection)."""

NO_LOSS_SIGNAL: tuple[int, int] = (-1, -1)
"""``loss_signal_ns`` until a side's first duplicate ACK or SACK (as :data:`NEITHER`)."""

_ATTEMPT_STATES = (TcpState.INACTIVE, TcpState.SYN_SENT, TcpState.SYN_RECEIVED)
"""States of a connection attempt nobody has completed (see Options.attempt_timeout_s)."""
_RETRANSMISSION = AF.RETRANSMISSION
_DUPLICATE_FRAME = AF.DUPLICATE_FRAME
_LOSS_SIGNAL = AF.DUP_ACK | AF.SACK
"""An ACK that may trigger an identical re-send (fast retransmit, RACK): see duplicates.py."""
_NOT_DATA_AFTER_FIN = AF.RETRANSMISSION | AF.KEEPALIVE | AF.ZERO_WINDOW_PROBE
_PROBE = (AF.RETRANSMISSION | AF.SYN_RETRANSMISSION | AF.FIN_RETRANSMISSION | AF.KEEPALIVE
          | AF.ZERO_WINDOW_PROBE)
"""Segments that ask the peer for an answer: retransmissions and probes."""

SILENT_PROBES_FOR_UNCONFIRMED_RST = 2
"""Unanswered probes/retransmissions after which the sender's RST is not assumed delivered:
one lost answer is common, two in a row mean the receiver (or the path to it) is gone, as
when keep-alives to a dead peer end in a RST (Linux tcp_keepalive_timer)."""
# Enum members bound once: ``TcpState.X`` is a class-attribute lookup through EnumType that
# costs about ten times a global read on CPython 3.11, and these run for every segment.
_ESTABLISHED = TcpState.ESTABLISHED
_SYN_RECEIVED = TcpState.SYN_RECEIVED
_SEND_ACK = Input.SEND_ACK
_SEND_AFTER_LOST_RST = Input.SEND_AFTER_LOST_RST
_SEND_CHALLENGE_ACK = Input.SEND_CHALLENGE_ACK
_SEND_AFTER_CHALLENGED_RST = Input.SEND_AFTER_CHALLENGED_RST
_SEND_SYN_NEW_ISN = Input.SEND_SYN_NEW_ISN
_SEND_SPLIT_SYN = Input.SEND_SPLIT_SYN
_RECV_ICMP_ERROR = Input.RECV_ICMP_ERROR
_RECV_ACK = Input.RECV_ACK
_SEND_SYN_ACK = Input.SEND_SYN_ACK
_SEND_FIN_CROSSED = Input.SEND_FIN_CROSSED
_RECV_FIN = Input.RECV_FIN
_RECV_FIN_ACK_OF_FIN = Input.RECV_FIN_ACK_OF_FIN
_OK = Action.OK
_CLOSED = TcpState.CLOSED
_CLOSE_WAIT = TcpState.CLOSE_WAIT
_IGNORED = Action.IGNORED
_INFER = Action.INFER
_INVALID_FLAGS = Input.INVALID_FLAGS
_NEW_INCARNATION = Input.NEW_INCARNATION
_RECV_ACK_OF_FIN = Input.RECV_ACK_OF_FIN
_RECV_ACK_UNCONFIRMED = Input.RECV_ACK_UNCONFIRMED
_RECV_RST = Input.RECV_RST
_RECV_RST_OUT_OF_WINDOW = Input.RECV_RST_OUT_OF_WINDOW
_RECV_RST_UNCONFIRMED = Input.RECV_RST_UNCONFIRMED
_RECV_SYN = Input.RECV_SYN
_RECV_SYN_ACK = Input.RECV_SYN_ACK
_A_RETRANSMISSION = Action.RETRANSMISSION
_SEND_FIN = Input.SEND_FIN
_SEND_FIN_AGAIN = Input.SEND_FIN_AGAIN
_SEND_RST = Input.SEND_RST
_SEND_SYN = Input.SEND_SYN
_SYN_SENT = TcpState.SYN_SENT
_TIMEOUT = Input.TIMEOUT
_RETRIES_EXHAUSTED = Input.RETRIES_EXHAUSTED
_TIME_WAIT = TcpState.TIME_WAIT
TIME_WAIT_EXPIRED = "2MSL elapsed by packet time (RFC 9293 3.10.8)"
"""The reason of the event :meth:`Connection.check_timers` records."""

_FAST_ESTABLISHED = (lookup(_ESTABLISHED, _SEND_ACK)[:2] == (_OK, _ESTABLISHED)
                     and lookup(_ESTABLISHED, _RECV_ACK)[:2] == (_OK, _ESTABLISHED))
"""Read from the table, not assumed: when both ESTABLISHED rows for a plain ACK/data segment
are (OK, ESTABLISHED), such a segment between two ESTABLISHED endpoints changes no state and
records no event, so :meth:`Connection.on_segment` may skip classifying and stepping it (the
overwhelmingly common segment of a capture)."""


_EVENT_REASONS: dict[tuple[Input, str], str] = {}
"""Event reason texts by (input, table reason). Bounded: table rows and the few reasons
``fsm.lookup`` builds for unexpected (state, input) pairs."""


def _seq_lt(a: int, b: int) -> bool:
    """a < b in modulo-2**32 sequence space (RFC 9293 3.4)."""
    return ((a - b) & _MASK) >= _HALF and a != b


def _seq_diff(a: int, b: int) -> int:
    """Signed distance a - b in sequence space."""
    d = (a - b) & _MASK
    return d - (1 << 32) if d >= _HALF else d


@dataclass(frozen=True, slots=True)
class NotablePacket:
    """A handshake, FIN or RST segment kept as evidence for the detectors."""

    frame: int
    """Frame number."""
    ts_ns: int
    """Capture time, integer nanoseconds."""
    sender: str
    """``client`` or ``server``."""
    flags: int
    """TCP flag bits."""
    seq: int
    """Raw sequence number."""
    ack: int
    """Raw acknowledgment number."""
    payload_len: int
    """Payload bytes."""
    obeyed: bool = True
    """For RSTs: False when the RST was outside the receiver's window (RFC 5961)."""
    since_peer_ns: int = -1
    """Time since the peer's last segment (-1: the peer had sent none): a RST that answers a
    segment follows it within a round trip, an abort comes whenever the application acts."""


_new_notable = slots_factory(NotablePacket)
"""``NotablePacket(...)`` for the per-segment path (see ``events.new_event``)."""


@dataclass(frozen=True, slots=True)
class Challenge:
    """An RFC 5961 challenge: a RST or SYN its receiver answered with an ACK instead of obeying
    (evidence for the ``challenge_ack`` detector)."""

    kind: str
    """``rst`` (in-window RST not at RCV.NXT, RFC 5961 3.2) or ``syn`` (a SYN with a new ISN
    on an established connection, RFC 5961 4)."""
    injected_frames: tuple[int, ...]
    """Frames of the challenged RST or SYN(s)."""
    ts_ns: int
    """Time of the first of them."""
    challenge_frame: int
    """Frame of the challenge ACK (-1: the receiver answered with data of the connection)."""
    challenge_ts_ns: int
    """Time of the receiver's answer (the challenge ACK)."""
    by: str
    """``client`` or ``server``: the receiver that challenged."""
    seq: int
    """Raw sequence number of the challenged segment."""
    rcv_nxt: int
    """Raw ACK number of the challenge ACK: the receiver's RCV.NXT (-1 without one)."""


class Connection:
    """One TCP connection (an incarnation of a 4-tuple) as the observer replays it."""

    __slots__ = (
        "flow_id", "key", "client_addr", "client_port", "server_addr", "server_port",
        "roles_inferred", "self_connect", "client", "server", "analyzer", "peer", "options",
        "events", "events_dropped", "notable", "notable_dropped", "first_frame", "last_frame",
        "first_ts_ns", "last_ts_ns", "packets", "payload_bytes", "pure_syn_sent",
        "synack_sent", "handshake_done_frame", "handshake_done_ts_ns", "first_rst_sender",
        "first_rst_frame", "fin_frame", "base_seq", "win_raw", "wscale", "finished",
        "end_reason", "packet_rows", "rst_count", "data_after_fin", "after_rst",
        "invalid_flags", "syn_with_data", "out_of_window_rsts", "time_wait_expired",
        "incarnation", "previous_end_ts_ns", "previous_states", "silent_probes", "compacted",
        "steady", "_fast", "answered_frame", "rst_not_taken_frame", "icmp_errors",
        "peer_sent_at_fin", "facts", "retx_runs", "gave_up", "duplicate_frames", "duplicates",
        "recent", "loss_signal_ns", "_dup_n",
        "inexact_rst", "challenged_rst_sender", "challenges",
    )

    def __init__(self, flow_id: int, key: tuple[bytes, int, bytes, int], seg: Segment,
                 client_is_src: bool, roles_inferred: bool, options: Options) -> None:
        self.flow_id = flow_id
        self.key = key
        if client_is_src:
            self.client_addr, self.client_port = seg.src, seg.sport
            self.server_addr, self.server_port = seg.dst, seg.dport
        else:
            self.client_addr, self.client_port = seg.dst, seg.dport
            self.server_addr, self.server_port = seg.src, seg.sport
        self.roles_inferred = roles_inferred
        self.self_connect = seg.src == seg.dst and seg.sport == seg.dport
        self.client = EndpointMachine()
        # A self-connect is one socket talking to itself: one machine plays both ends.
        self.server = self.client if self.self_connect else EndpointMachine()
        self.analyzer = SequenceAnalyzer(options.analysis)
        self.peer = PeerSummary(options.analysis.max_holes)
        self.options = options
        self.events: list[Event] = []
        self.events_dropped = 0
        self.notable: list[NotablePacket] = []
        self.notable_dropped = 0
        self.first_frame = seg.frame
        self.last_frame = seg.frame
        self.first_ts_ns = seg.ts_ns
        self.last_ts_ns = seg.ts_ns
        self.packets = [0, 0]
        """Segments sent by [client, server]."""
        self.payload_bytes = [0, 0]
        """Payload bytes (IP-header lengths, retransmissions included) by [client, server]."""
        self.pure_syn_sent = [0, 0]
        """SYN-without-ACK segments sent by [client, server]."""
        self.synack_sent = [0, 0]
        """SYN-ACK segments sent by [client, server]."""
        self.handshake_done_frame = -1
        """Frame of the client's first ACK after the server's SYN-ACK (3-way handshake)."""
        self.handshake_done_ts_ns = -1
        self.first_rst_sender = ""
        """``client``/``server``: sender of the first RST that was obeyed."""
        self.first_rst_frame = -1
        self.fin_frame = [-1, -1]
        """Frame of the first FIN sent by [client, server]."""
        self.base_seq = [-1, -1]
        """First raw sequence number seen from [client, server] (the ISN for a SYN)."""
        self.win_raw = [-1, -1]
        """Last raw window advertised by [client, server]."""
        self.wscale = [-1, -1]
        """Window-scale option of [client, server] SYNs."""
        self.finished = False
        self.end_reason = "capture_end"
        """Why the record was emitted: capture_end, closed, time_wait_expired, idle_timeout,
        attempt_timeout, new_incarnation, table_full."""
        self.packet_rows: list[tuple[int, int, int, bool, int, int, int]] | None = (
            [] if options.keep_packets
            and (not options.packet_flows or flow_id in options.packet_flows) else None)
        """Per-packet rows (frame, ts_ns, flow_id, from_client, tcp flags, analysis flags,
        payload_len) when the packet table was asked for."""
        self.rst_count = [0, 0]
        self.data_after_fin: list[int] | tuple[int, ...] = NONE_YET
        """Frames carrying new data after their sender's FIN (protocol violation)."""
        self.after_rst: list[int] | tuple[int, ...] = NONE_YET
        """Frames sent with data or FIN by an endpoint after it sent or obeyed a RST."""
        self.invalid_flags: list[int] | tuple[int, ...] = NONE_YET
        """Frames with invalid flag combinations (SYN+FIN, SYN+RST, no flags...)."""
        self.syn_with_data: list[int] | tuple[int, ...] = NONE_YET
        """Frames of SYN segments carrying payload (TCP Fast Open or a violation)."""
        self.out_of_window_rsts: list[int] | tuple[int, ...] = NONE_YET
        """Frames of RSTs outside the receiver's window (RFC 5961: possible injection)."""
        self.time_wait_expired = False
        self.incarnation = 0
        """0 for the first connection on this 4-tuple in the capture, then 1, 2..."""
        self.previous_end_ts_ns = -1
        """Last packet time of the previous incarnation on this 4-tuple, -1 if none."""
        self.silent_probes = [0, 0]
        """Probes/retransmissions sent by [client, server] since the peer last sent anything."""
        self.previous_states: tuple[str, str] | None = None
        """(client_state, server_state) of the previous incarnation when this one began."""
        self.compacted = False
        """Per-segment history already dropped (:meth:`compact`); set once."""
        self.answered_frame = [-1, -1]
        """Frame of the first ACK or data (no SYN, no RST) sent by [client, server] after its own
        SYN or SYN-ACK: proof that its handshake segment was answered, whether or not the
        capture holds the answer. Set on the full path, which every segment takes until both
        ends are ESTABLISHED (the fast path never sees a side's first such segment)."""
        self.rst_not_taken_frame = -1
        """Frame proving the first obeyed RST did not reach its receiver: the receiver sent
        again after it, later than ``Options.rst_crossing_s`` (fsm SEND_AFTER_LOST_RST)."""
        self.peer_sent_at_fin = [-1, -1]
        """The peer's raw SND.MAX when [client, server] sent its first FIN (-1: the peer had
        sent nothing): what the peer sends *after* a FIN is beyond it, what it had sent
        before (in flight, or lost) is not."""
        self.inexact_rst: list[tuple[int, int, int] | None] | tuple[None, None] = NEITHER
        """(frame, raw seq, ts_ns) of the in-window RST received by [client, server] while
        ESTABLISHED whose sequence number was not at its RCV.NXT: below its last ACK number or
        beyond what the sender had sent (RFC 5961 3.2 wants a challenge ACK for it)."""
        self.challenged_rst_sender = -1
        """Side (0 client, 1 server) whose RST the peer challenged, -1 if none: ACK/data it
        sends while seemingly CLOSED proves the RST was not its own abort."""
        self.challenges: list[Challenge] | tuple[Challenge, ...] = NONE_YET
        """RSTs and SYNs answered by RFC 5961 challenge ACKs (at most max_evidence_items)."""
        self.icmp_errors: list[IcmpError] | tuple[IcmpError, ...] = NONE_YET
        """ICMP/ICMPv6 errors quoting one of this connection's segments (at most
        ``max_evidence_items``): a router or host answering for the peer."""
        self.retx_runs: list[RetransmissionRun | None] | tuple[None, None] = NEITHER
        """[client, server]: the side's data retransmissions since the peer last sent
        anything (``giveup.py``), None until its first."""
        self.gave_up: tuple[int, int] | None = None
        """(side, time) when :meth:`finalize` inferred that side gave up retransmitting
        (fsm ``RETRIES_EXHAUSTED``); its run is ``retx_runs[side]``."""
        self.facts = ProtocolFacts()
        """ECN and TCP Fast Open facts (``facts.py``)."""
        self.duplicate_frames = [0, 0]
        """Duplicated frames (copies of an earlier frame, ``duplicates.py``) by [client,
        server]; counted in ``packets`` and nowhere else."""
        self.duplicates: list[DuplicateFrame] | tuple[DuplicateFrame, ...] = NONE_YET
        """The first ``max_evidence_items`` duplicated frames, for the finding."""
        self.recent: list[list[Segment] | None] = [None, None]
        """Last ``Options.duplicate_memory_segments`` segments sent by [client, server], a ring
        indexed by ``packets[side]`` (``fastpath.steady_segment`` writes it too)."""
        self.loss_signal_ns: list[int] | tuple[int, int] = NO_LOSS_SIGNAL
        """Time of the last duplicate ACK or SACK sent by [client, server]."""
        self._dup_n = max(1, options.duplicate_memory_segments)
        self.steady = False
        """Segments may go through ``fastpath.steady_segment`` (see :meth:`update_steady`)."""
        self._fast = options.fast_path

    # -- evidence helpers -------------------------------------------------------------------
    def _event(self, endpoint: str, seg: Segment, old: TcpState, new: TcpState, kind: str,
               direction: str, reason: str, base_snd: int, base_rcv: int) -> None:
        if len(self.events) >= self.options.max_events_per_connection:
            self.events_dropped += 1
            return
        seq = (seg.seq - base_snd) & _MASK if base_snd >= 0 else seg.seq
        ack = (seg.ack - base_rcv) & _MASK if base_rcv >= 0 and seg.flags & ACK else seg.ack
        self.events.append(new_event(self.flow_id, seg.frame, seg.ts_ns, endpoint, kind,
                                     old._value_, new._value_, direction,
                                     flags_text(seg.flags), seq, ack, seg.payload_len,
                                     reason))

    def _add_event(self, event: Event) -> None:
        """Log an event a timer or an inference made (not a segment's), if the log has room;
        one that does not fit is left out without a count, as such events always were."""
        if len(self.events) < self.options.max_events_per_connection:
            self.events.append(event)

    def transition_frames(self, state: str) -> list[int]:
        """Frames of the segments that moved an endpoint into ``state`` (its RFC 9293 name),
        in the log's order: what a detector asks of the log without reading every event."""
        return [e.frame for e in self.events if e.new_state == state and e.kind == "transition"]

    def first_notable(self, frame: int, flags: int,
                      not_flags: int = 0) -> NotablePacket | None:
        """The first notable packet of ``frame`` that carries every flag of ``flags`` and
        none of ``not_flags`` (None when there is none): what a detector asks of the
        notable packets without reading them all (the compiled twin answers from its packed
        records and makes only the packet found)."""
        for p in self.notable:
            if p.frame == frame and p.flags & flags == flags and not p.flags & not_flags:
                return p
        return None

    def _keep(self, name: str, frame: int) -> None:
        """Add ``frame`` to the evidence list ``name`` unless it is full."""
        if len(getattr(self, name)) < self.options.analysis.max_evidence_items:
            evidence_list(self, name).append(frame)

    # -- the per-segment path ----------------------------------------------------------------
    def is_from_client(self, seg: Segment) -> bool:
        return seg.src == self.client_addr and seg.sport == self.client_port

    def on_segment(self, seg: Segment) -> int:
        """Replay one segment; returns the analysis flag bitmask of the segment."""
        from_client = self.self_connect or (seg.sport == self.client_port
                                            and seg.src == self.client_addr)
        side = 0 if from_client else 1
        ts = seg.ts_ns
        self.last_frame = seg.frame
        self.last_ts_ns = ts
        self.packets[side] += 1
        self.payload_bytes[side] += seg.payload_len
        flags = seg.flags
        snd, rcv = (self.client, self.server) if from_client else (self.server, self.client)
        recent = self.recent[side]
        if recent is None:
            self.recent[side] = [seg] * self._dup_n
        else:
            # A copy repeats an earlier segment, so it neither sends beyond SND.MAX nor
            # acknowledges beyond the highest ACK its sender sent (the peer's SND.UNA in the
            # analyzer, read as fastpath.py does): only such segments are looked up.
            snd_max = snd.snd_max
            d = (seg.seq + seg.payload_len - snd_max) & _MASK
            if snd_max >= 0 and (d == 0 or d >= _HALF):
                peer = self.analyzer._s if from_client else self.analyzer._c
                a = (seg.ack - peer.base - peer.snd_una) & _MASK
                if not flags & ACK or peer.base < 0 or a == 0 or a >= _HALF:
                    an = self.analyzer
                    rtt = (an.client if from_client else an.server).rtt
                    opts = self.options
                    found = original_of(seg, recent, opts.duplicate_weak_max_interval_ns,
                                        opts.duplicate_syn_max_interval_ns,
                                        self.loss_signal_ns[1 - side],
                                        (an._s if from_client else an._c).last_ts_ns,
                                        rtt.min if rtt.count else -1)
                    if found is not None:
                        return self._on_duplicate(seg, found[0], found[1], side, from_client)
            recent[self.packets[side] % self._dup_n] = seg
        if self.base_seq[side] < 0:
            self.base_seq[side] = seg.seq
        if seg.window >= 0:
            self.win_raw[side] = seg.window
        if snd.time_wait_since_ns >= 0 or rcv.time_wait_since_ns >= 0:
            self.check_timers(ts, seg)

        if flags & _CONTROL:
            self._note_control(seg, side, snd, rcv)
        if seg.ecn or flags & ECN_FLAGS:
            self.facts.on_marked(seg, side)
        if flags & _SYN_RST_ACK == ACK and self.answered_frame[side] < 0 and (
                self.pure_syn_sent[side] or self.synack_sent[side]):
            self.answered_frame[side] = seg.frame
        amask = self.analyzer.on_segment(seg, from_client)
        if amask & _LOSS_SIGNAL:
            evidence_list(self, "loss_signal_ns")[side] = ts
        silent = self.silent_probes
        silent[1 - side] = 0
        if amask & _PROBE:
            silent[side] += 1
            if amask & _RETRANSMISSION and seg.payload_len:
                self._note_retransmission(seg, side)
        self.peer.on_segment(seg, from_client, amask & _RETRANSMISSION != 0)
        if self.packet_rows is not None:
            self.packet_rows.append((seg.frame, ts, self.flow_id, from_client, flags, amask,
                                     seg.payload_len))

        # Fast path: ACK/data without SYN/FIN/RST between two ESTABLISHED endpoints, the
        # receiver having sent no FIN. _classify would give (SEND_ACK, RECV_ACK), both table
        # rows are (OK, ESTABLISHED) (checked at import: _FAST_ESTABLISHED), and neither
        # EndpointMachine.apply nor _step changes anything for such a row.
        if not (flags & (_CONTROL | ACK) == ACK and snd.state is _ESTABLISHED
                and rcv.state is _ESTABLISHED and not rcv.fin_sent and _FAST_ESTABLISHED):
            self._replay_states(seg, from_client, side, snd, rcv, amask)

        # Sender-side variables follow what it sent.
        end = (seg.seq + seg.payload_len + (1 if flags & SYN else 0)
               + (1 if flags & FIN else 0)) & _MASK
        snd_max = snd.snd_max
        # _seq_lt(snd_max, end), inlined. A RST occupies no sequence space and a spoofed one
        # carries any number (RFC 5961): it never advances SND.MAX, only starts it.
        if snd_max < 0 or (((snd_max - end) & _MASK) >= _HALF and snd_max != end
                           and not flags & RST):
            snd.snd_max = end
        if flags & FIN and not flags & RST:
            fin_seq = (seg.seq + seg.payload_len) & _MASK
            if not snd.fin_sent:
                snd.fin_sent = True
                snd.fin_seq = fin_seq
                self.fin_frame[side] = seg.frame
                self.peer_sent_at_fin[side] = rcv.snd_max
        elif seg.payload_len and snd.fin_sent and _seq_lt(snd.fin_seq, seg.seq + 1) \
                and not amask & _NOT_DATA_AFTER_FIN:
            self._keep("data_after_fin", seg.frame)
        if (self.handshake_done_frame < 0 and from_client and flags & ACK
                and not flags & (SYN | RST) and self.synack_sent[1]
                and (self.server.iss < 0 or seg.ack == (self.server.iss + 1) & _MASK
                     or _seq_lt((self.server.iss + 1) & _MASK, seg.ack))):
            self.handshake_done_frame = seg.frame
            self.handshake_done_ts_ns = ts
        if self._fast:
            self.update_steady()
        return amask

    def _note_retransmission(self, seg: Segment, side: int) -> None:
        """A data retransmission into the peer's silence: extend the side's run, or start one
        when other probes (or the peer) came since (``giveup.py`` rule 1)."""
        run = self.retx_runs[side]
        if run is None or run.count != self.silent_probes[side] - 1:
            run = evidence_list(self, "retx_runs")[side] = RetransmissionRun()
        rec = self.analyzer.retransmissions[-1:] if run.count == 0 else ()
        if rec and rec[0].frame == seg.frame:
            run.add(seg.frame, seg.ts_ns, rec[0].original_frame, rec[0].since_original_ns)
        else:
            run.add(seg.frame, seg.ts_ns, -1, -1)

    def _on_duplicate(self, seg: Segment, original: Segment, identity: str, side: int,
                      from_client: bool) -> int:
        """A duplicated frame (``duplicates.py``): counted as a packet of its sender and as a
        duplicate, shown to the Zeek/Wireshark summaries (which see it too), and kept out of
        everything else: sequence analysis, state machines, timers and evidence."""
        self.duplicate_frames[side] += 1
        if len(self.duplicates) < self.options.analysis.max_evidence_items:
            evidence_list(self, "duplicates").append(DuplicateFrame(
                seg.frame, seg.ts_ns, "client" if from_client else "server", original.frame,
                seg.ts_ns - original.ts_ns, identity, seg.ttl - original.ttl))
        (self.analyzer.client if from_client else self.analyzer.server).packets += 1
        self.peer.on_segment(seg, from_client, False)
        if self.packet_rows is not None:
            self.packet_rows.append((seg.frame, seg.ts_ns, self.flow_id, from_client,
                                     seg.flags, _DUPLICATE_FRAME, seg.payload_len))
        if self._fast:
            self.update_steady()
        return _DUPLICATE_FRAME

    def update_steady(self) -> None:
        """Set :attr:`steady`: the conditions of ``fastpath.steady_segment`` that hold for
        the whole connection rather than one segment. They change only through a segment
        the full path takes (timers act on TIME_WAIT and SYN_SENT endpoints, never on two
        ESTABLISHED ones), so recomputing here after each such segment is enough."""
        c = self.client
        s = self.server
        self.steady = (c.state is _ESTABLISHED and s.state is _ESTABLISHED and _FAST_ESTABLISHED
                       and not c.fin_sent and not s.fin_sent and c.time_wait_since_ns < 0
                       and s.time_wait_since_ns < 0 and not self.self_connect
                       and (self.handshake_done_frame >= 0 or not self.synack_sent[1])
                       and self.peer.steady())

    def _replay_states(self, seg: Segment, from_client: bool, side: int,
                       snd: EndpointMachine, rcv: EndpointMachine, amask: int) -> None:
        """Classify the segment and step both endpoint machines through the table."""
        flags = seg.flags
        send_in, recv_in = self._classify(seg, snd, rcv, amask)
        sender = "client" if from_client else "server"
        receiver = "server" if from_client else "client"
        # Fields the table's inference rules rely on (rule 4 of fsm.py).
        if send_in is _SEND_SYN_ACK and snd.state is _ESTABLISHED \
                and snd.handshake_ack >= 0:
            snd.synack_after_ack = True
        if send_in is _SEND_FIN_CROSSED:
            snd.peer_fin_pending = True
        elif (snd.peer_fin_pending and flags & ACK and rcv.fin_sent
              and not _seq_lt(seg.ack, (rcv.fin_seq + 1) & _MASK)):
            # It now acknowledges the peer's crossed FIN: deliver that FIN first (rule 4).
            snd.peer_fin_pending = False
            self._step(snd, _RECV_FIN, seg, sender, "received", 1 - side)
        if flags & (FIN | RST | SYN) == FIN and self.challenged_rst_sender == side \
                and snd.state is _CLOSED:
            # Its first segment after the peer challenged its RST is a FIN: it was still
            # synchronized (rule 7 of docs/state-machine.md), then it closes.
            self._step(snd, _SEND_AFTER_CHALLENGED_RST, seg, sender, "sent", side)
            send_in = self._classify(seg, snd, rcv, amask)[0]
        self._step(snd, send_in, seg, sender, "sent", side)
        if recv_in is _RECV_FIN or recv_in is _RECV_FIN_ACK_OF_FIN:
            rcv.peer_fin_pending = False
        if recv_in is _RECV_ACK and rcv.state is _SYN_RECEIVED \
                and rcv.handshake_ack < 0 and flags & ACK:
            rcv.handshake_ack = seg.ack
        self._step(rcv, recv_in, seg, receiver, "received", side)

    def _note_control(self, seg: Segment, side: int, snd: EndpointMachine,
                      rcv: EndpointMachine) -> None:
        flags = seg.flags
        sender = "client" if side == 0 else "server"
        if flags & SYN:
            if flags & ACK:
                self.synack_sent[side] += 1
            else:
                self.pure_syn_sent[side] += 1
            if snd.iss < 0 and not flags & (RST | FIN):
                snd.iss = seg.seq
                self.base_seq[side] = seg.seq
            if seg.wscale >= 0:
                self.wscale[side] = seg.wscale
            if not flags & (RST | FIN):
                self.facts.on_handshake(seg, side)
            if seg.payload_len:
                self._keep("syn_with_data", seg.frame)
            if flags & (FIN | RST):
                self._keep("invalid_flags", seg.frame)
        if flags & RST:
            self.rst_count[side] += 1
        if len(self.notable) < self.options.analysis.max_evidence_items:
            peer_ts = (self.analyzer.server if side == 0 else self.analyzer.client).last_ts_ns
            self.notable.append(_new_notable(seg.frame, seg.ts_ns, sender, flags, seg.seq,
                                             seg.ack, seg.payload_len,
                                             not flags & RST or self._rst_acceptable(seg, rcv),
                                             seg.ts_ns - peer_ts if peer_ts >= 0 else -1))
        else:
            self.notable_dropped += 1

    def _rst_acceptable(self, seg: Segment, rcv: EndpointMachine) -> bool:
        """RFC 5961 3.2 / RFC 9293 3.10.7, from what an observer knows of the receiver."""
        if rcv.state is _SYN_SENT:
            # In SYN-SENT a RST is acceptable only if it acknowledges the SYN.
            return bool(seg.flags & ACK) and (rcv.iss < 0 or seg.ack == (rcv.iss + 1) & _MASK)
        side = 0 if seg.src == self.client_addr and seg.sport == self.client_port else 1
        snd = self.client if side == 0 else self.server
        if snd.snd_max < 0:
            return True  # nothing known of the sender's sequence space: cannot judge
        rcv_side = 1 - side
        win = self.win_raw[rcv_side]
        scale = self.wscale[rcv_side] if self.wscale[0] >= 0 and self.wscale[1] >= 0 else 0
        window = max((win << scale) if win >= 0 else 0, self.options.rst_min_window_bytes)
        # The receiver's RCV.NXT lies between what it acknowledged and what the sender sent;
        # the observer accepts the span [snd_max - window, snd_max + window].
        return abs(_seq_diff(seg.seq, snd.snd_max)) <= window

    def _note_inexact_rst(self, seg: Segment, snd: EndpointMachine,
                          rcv: EndpointMachine) -> None:
        """Remember an obeyed in-window RST that cannot be at the receiver's RCV.NXT.

        The receiver's RCV.NXT lies between its last ACK number and what the sender had sent
        (SND.MAX): a RST outside that span is in the window yet not exact, and an RFC 5961
        receiver answers it with a challenge ACK instead of closing (Linux since 3.6). Whether
        this one did is only known from what it sends next (fsm rule 4).
        """
        rcv_side = 0 if rcv is self.client else 1
        low = self.analyzer.last_ack_sent(rcv_side == 0)
        high = snd.snd_max
        if high < 0:
            return
        seq = seg.seq
        exact = seq == high if low < 0 else (
            not _seq_lt(seq, low) and not _seq_lt(high, seq))
        if not exact or self.inexact_rst[rcv_side] is not None:
            evidence_list(self, "inexact_rst")[rcv_side] = \
                None if exact else (seg.frame, seq, seg.ts_ns)

    def on_challenged_syn(self, syns: list[Segment], answer: Segment) -> None:
        """SYNs with a new ISN that the receiver answered as the established connection (a
        challenge ACK, RFC 5961 4) instead of with a SYN-ACK: they belong to this connection.

        The flow table held them until that answer (``FlowTable``). They move no sequence
        state: a foreign ISN is not this connection's sequence space, so neither the analyzer
        nor the peer-tool summary sees them; counters, evidence and the state machines do.
        """
        first = syns[0]
        side = 0 if self.is_from_client(first) else 1
        snd, rcv = (self.client, self.server) if side == 0 else (self.server, self.client)
        sender, receiver = ("client", "server") if side == 0 else ("server", "client")
        stats = self.analyzer.client if side == 0 else self.analyzer.server
        for seg in syns:
            self.packets[side] += 1
            self.payload_bytes[side] += seg.payload_len
            stats.packets += 1  # counted, as a SYN, but no sequence number moves
            stats.syn_pkts += 1
            if len(self.notable) < self.options.analysis.max_evidence_items:
                self.notable.append(NotablePacket(seg.frame, seg.ts_ns, sender, seg.flags,
                                                  seg.seq, seg.ack, seg.payload_len))
            else:
                self.notable_dropped += 1
            if self.packet_rows is not None:
                self.packet_rows.append((seg.frame, seg.ts_ns, self.flow_id, side == 0,
                                         seg.flags, 0, seg.payload_len))
            self._step(snd, _SEND_SYN_NEW_ISN, seg, sender, "sent", side)
            self._step(rcv, _RECV_SYN, seg, receiver, "received", side)
        if self.last_frame > first.frame:
            # Segments of the connection passed while the SYNs were held: keep frame order.
            self.events.sort(key=lambda e: e.frame)
            if self.packet_rows is not None:
                self.packet_rows.sort(key=lambda r: r[0])
        pure_ack = answer.flags & (_CONTROL | ACK) == ACK and not answer.payload_len
        if len(self.challenges) < self.options.analysis.max_evidence_items:
            evidence_list(self, "challenges").append(Challenge(
                "syn", tuple(s.frame for s in syns), first.ts_ns,
                answer.frame if pure_ack else -1, answer.ts_ns, receiver, first.seq,
                answer.ack if pure_ack else -1))

    def _classify(self, seg: Segment, snd: EndpointMachine, rcv: EndpointMachine,
                  amask: int) -> tuple[Input, Input]:
        flags = seg.flags
        if flags & RST:
            if flags & SYN:
                return _INVALID_FLAGS, _INVALID_FLAGS
            recv = _RECV_RST if self._rst_acceptable(seg, rcv) else \
                _RECV_RST_OUT_OF_WINDOW
            if recv is _RECV_RST and rcv.state is not _SYN_SENT and \
                    self.silent_probes[0 if snd is self.client else 1] \
                    >= SILENT_PROBES_FOR_UNCONFIRMED_RST:
                recv = _RECV_RST_UNCONFIRMED
            if recv is _RECV_RST_OUT_OF_WINDOW:
                self._keep("out_of_window_rsts", seg.frame)
            elif recv is _RECV_RST and rcv.state is _ESTABLISHED:
                self._note_inexact_rst(seg, snd, rcv)
            return _SEND_RST, recv
        if flags & SYN:
            if flags & FIN:
                return _INVALID_FLAGS, _INVALID_FLAGS
            if flags & ACK:
                return _SEND_SYN_ACK, _RECV_SYN_ACK
            if snd.state is _ESTABLISHED and rcv.state is _SYN_SENT and \
                    self.pure_syn_sent[0 if snd is self.client else 1] == 1:
                return _SEND_SPLIT_SYN, _RECV_SYN  # see FlowTable._new_incarnation
            return _SEND_SYN, _RECV_SYN
        if not flags & (ACK | FIN):
            # No ACK on a non-SYN segment: invalid in every synchronized state (RFC 9293
            # 3.10.7.4 "if the ACK bit is off drop the segment"); a null scan has no flags.
            return _INVALID_FLAGS, _INVALID_FLAGS
        acks_rcv_fin = (bool(flags & ACK) and rcv.fin_sent
                        and not _seq_lt(seg.ack, (rcv.fin_seq + 1) & _MASK))
        if flags & FIN:
            fin_seq = (seg.seq + seg.payload_len) & _MASK
            send = _SEND_FIN_AGAIN if snd.fin_sent and fin_seq == snd.fin_seq \
                else _SEND_FIN
            if (send is _SEND_FIN and snd.state is _CLOSE_WAIT and rcv.fin_sent
                    and flags & ACK and _seq_lt(seg.ack, (rcv.fin_seq + 1) & _MASK)):
                send = _SEND_FIN_CROSSED
            return send, (_RECV_FIN_ACK_OF_FIN if acks_rcv_fin else _RECV_FIN)
        if snd.state is _CLOSED:
            side = 0 if snd is self.client else 1
            inexact = self.inexact_rst[side]
            if inexact is not None and snd.reset_in_established_ns >= 0 \
                    and not seg.payload_len and flags & ACK and seg.ack != inexact[1]:
                # RFC 5961 3.2: its RCV.NXT (this ACK number) is not the RST's sequence number.
                return _SEND_CHALLENGE_ACK, _RECV_ACK_OF_FIN if acks_rcv_fin else _RECV_ACK
            if self.challenged_rst_sender == side:
                return _SEND_AFTER_CHALLENGED_RST, (_RECV_ACK_OF_FIN if acks_rcv_fin
                                                    else _RECV_ACK)
            if snd.reset_in_established_ns >= 0 and \
                    seg.ts_ns - snd.reset_in_established_ns > self.options.rst_crossing_ns:
                return _SEND_AFTER_LOST_RST, _RECV_ACK_OF_FIN if acks_rcv_fin else _RECV_ACK
        if acks_rcv_fin:
            return _SEND_ACK, _RECV_ACK_OF_FIN
        if rcv.synack_after_ack and rcv.state is _SYN_RECEIVED \
                and not seg.payload_len and seg.ack == rcv.handshake_ack:
            return _SEND_ACK, _RECV_ACK_UNCONFIRMED
        return _SEND_ACK, _RECV_ACK

    def _step(self, machine: EndpointMachine, inp: Input, seg: Segment, endpoint: str,
              direction: str, side: int) -> None:
        old = machine.state
        action, new, reason = machine.apply(inp, seg.ts_ns)
        if action is _OK and new is old:
            return
        if inp is _RECV_RST or (inp is _SEND_RST and old not in _DONE_STATES):
            # Only a RST its receiver obeys decides how the connection ended: an
            # out-of-window one (RFC 5961 3.2) is recorded as ignored, not taken as the close.
            if (not self.first_rst_sender or self.rst_not_taken_frame > self.first_rst_frame) \
                    and new is _CLOSED and old is not new and (
                    inp is _RECV_RST or self._rst_acceptable(
                        seg, self.server if side == 0 else self.client)):
                self.first_rst_sender = "client" if side == 0 else "server"
                self.first_rst_frame = seg.frame
        if old in (_CLOSED,) and direction == "sent" and inp in (
                _SEND_ACK, _SEND_FIN) and (seg.payload_len or seg.flags & FIN) \
                and self.first_rst_frame >= 0:
            self._keep("after_rst", seg.frame)
        if inp is _INVALID_FLAGS and direction == "sent" and \
                seg.frame not in self.invalid_flags[-1:]:
            self._keep("invalid_flags", seg.frame)
        kind = "transition" if new is not old else (
            "ignored" if action is _IGNORED else
            "retransmission" if action is _A_RETRANSMISSION else "unexpected")
        if action is _INFER:
            kind = "inferred"
            if inp is _SEND_CHALLENGE_ACK:
                self._challenged_rst(seg, side)
            elif inp is _SEND_AFTER_CHALLENGED_RST:
                self.challenged_rst_sender = -1
            if inp is _SEND_AFTER_LOST_RST and self.rst_not_taken_frame < 0:
                # The RST that seemed to end the connection did not reach this endpoint: a
                # later obeyed RST, if any, says how it ended (see the RST rule above), and
                # what this endpoint sent while seemingly closed was no violation.
                self.rst_not_taken_frame = seg.frame
                mine = {e.frame for e in self.events
                        if e.endpoint == endpoint and e.direction == "sent"}
                self.after_rst = [f for f in self.after_rst if f not in mine]
        base_snd = self.base_seq[side]
        base_rcv = self.base_seq[1 - side]
        key = (inp, reason)
        text = _EVENT_REASONS.get(key)
        if text is None:
            # One string per (input, table reason): a handful of events per connection, so
            # sharing them matters when a flood keeps 100 k connections live.
            text = _EVENT_REASONS[key] = f"{inp._value_}: {reason}"
        self._event(endpoint, seg, old, new, kind, direction, text, base_snd, base_rcv)

    def _challenged_rst(self, ack: Segment, side: int) -> None:
        """``side`` answered the RST in ``inexact_rst`` with a challenge ACK: the RST did not
        end the connection, so it does not decide its close, and what either end sent while
        it seemed closed was no violation."""
        inexact = self.inexact_rst[side]
        evidence_list(self, "inexact_rst")[side] = None
        if inexact is None:
            return
        rst_frame, rst_seq, rst_ts = inexact
        if self.first_rst_frame == rst_frame:
            self.first_rst_sender = ""
            self.first_rst_frame = -1
        self.after_rst = [f for f in self.after_rst if f <= rst_frame]
        self.challenged_rst_sender = 1 - side
        if len(self.challenges) < self.options.analysis.max_evidence_items:
            evidence_list(self, "challenges").append(Challenge(
                "rst", (rst_frame,), rst_ts, ack.frame, ack.ts_ns,
                "client" if side == 0 else "server", rst_seq, ack.ack))

    # -- timers and the end --------------------------------------------------------------------
    def check_timers(self, now_ns: int, seg: Segment | None = None) -> None:
        """Expire TIME_WAIT by packet time (fsm rule 5)."""
        tw_ns = self.options.time_wait_ns
        for name, machine in (("client", self.client), ("server", self.server)):
            since = machine.time_wait_since_ns
            if since >= 0 and machine.state is _TIME_WAIT and now_ns - since >= tw_ns:
                old = machine.state
                machine.apply(_TIMEOUT, since + tw_ns)
                self.time_wait_expired = True
                self._add_event(new_event(
                    self.flow_id, seg.frame if seg else self.last_frame, since + tw_ns, name,
                    "timeout", old.value, machine.state.value, "timer", "", 0, 0, 0,
                    TIME_WAIT_EXPIRED))
            if self.self_connect:
                break

    def finalize(self, end_ns: int) -> None:
        """Capture end: run the timers the capture can still show, then the inferences.

        A client that sent its SYN more than once and never got any answer is reported as
        having given up (connect() times out after its SYN retries): the retransmissions prove
        the attempt was failing, and no stack keeps a connection attempt open forever.
        """
        self.check_timers(end_ns)
        c = self.client
        err = self.syn_icmp_error() if self.icmp_errors else None
        if c.state is _SYN_SENT and err is not None and not self.packets[1]:
            old = c.state
            reason = c.apply(_RECV_ICMP_ERROR, err.ts_ns)[2]
            self._add_event(new_event(
                self.flow_id, err.frame, err.ts_ns, "client", "inferred", old.value,
                c.state.value, "received", "", 0, 0, 0,
                f"{_RECV_ICMP_ERROR.value} ({err.name} from {addr_text(err.reporter)}): "
                f"{reason}"))
        elif (c.state is _SYN_SENT and self.pure_syn_sent[0] > 1 and not self.packets[1]):
            old = c.state
            c.apply(_TIMEOUT, end_ns)
            self._add_event(new_event(
                self.flow_id, self.last_frame, end_ns, "client", "inferred", old.value,
                c.state.value, "timer", "", 0, 0, 0,
                f"{_TIMEOUT.value}: {self.pure_syn_sent[0]} SYNs never answered: the "
                "client gives up after its retries (RFC 9293 3.8.3 R2)"))
        if not self.self_connect and self.gave_up is None:
            self._infer_give_up(end_ns)

    def _infer_give_up(self, end_ns: int) -> None:
        """A side that retransmitted into silence and stopped although the capture went on
        past its next due retransmission gave up (``giveup.py``; fsm RETRIES_EXHAUSTED)."""
        opts = self.options
        for side, name, machine in ((0, "client", self.client), (1, "server", self.server)):
            run = self.retx_runs[side]
            if run is None or run.last_frame != self.last_frame \
                    or run.count != self.silent_probes[side] \
                    or lookup(machine.state, _RETRIES_EXHAUSTED)[0] is not _INFER:
                continue
            at = run.give_up_ns(end_ns, opts.give_up_min_retransmissions,
                                opts.give_up_rto_max_ns)
            if at < 0:
                continue
            old = machine.state
            reason = machine.apply(_RETRIES_EXHAUSTED, at)[2]
            self.gave_up = (side, at)
            span = at - (run.original_ts_ns if run.original_ts_ns >= 0 else run.times_ns[0])
            self._add_event(new_event(
                self.flow_id, self.last_frame, at, name, "inferred", old.value,
                machine.state.value, "timer", "", 0, 0, 0,
                f"{_RETRIES_EXHAUSTED.value}: gave up after {run.count} retransmissions "
                f"over {span / 1e9:.1f} s: {reason}"))
            return

    def end_incarnation(self, seg: Segment) -> None:
        """A SYN reopened the 4-tuple: this incarnation's endpoints are done."""
        for name, machine in (("client", self.client), ("server", self.server)):
            old = machine.state
            action, new, reason = machine.apply(_NEW_INCARNATION, seg.ts_ns)
            if new is not old:
                side = 0 if name == "client" else 1
                self._event(name, seg, old, new, "transition", "timer",
                            f"{_NEW_INCARNATION.value}: {reason}", self.base_seq[side],
                            self.base_seq[1 - side])
            if self.self_connect:
                break

    def compact(self) -> bool:
        """Drop per-segment history once both ends are closed or in TIME_WAIT; True if done.

        Such a connection stays in the flow table for TIME_WAIT (2*MSL of packet time) so a
        late FIN re-send or re-ACK still lands in it, but it sends no new data: holding every
        acknowledged segment for that minute made memory follow connections closed per
        minute (docs/benchmarks.md). See ``SequenceAnalyzer.compact`` for what is kept.
        """
        if self.compacted or self.client.state not in _QUIET_STATES \
                or self.server.state not in _QUIET_STATES:
            return self.compacted
        self.analyzer.compact()
        self.compacted = True
        return True

    def on_icmp(self, err: IcmpError) -> None:
        """Keep an ICMP error about one of this connection's segments as evidence.

        It is not a TCP segment: no counter, state or time of the connection moves here. Its
        one effect on the replay is at :meth:`finalize`: a client whose SYN drew an error and
        that sent no SYN after it gave up on it (Linux ends a SYN_SENT socket on the error).
        """
        if len(self.icmp_errors) < self.options.analysis.max_evidence_items:
            evidence_list(self, "icmp_errors").append(err)

    def syn_icmp_error(self) -> IcmpError | None:
        """The last ICMP error (not a packet-too-big) quoting one of the client's SYNs, if no
        client SYN followed it: the error that ended the connection attempt."""
        if not self.pure_syn_sent[0] or self.client.iss < 0:
            return None
        iss = self.client.iss
        errs = [e for e in self.icmp_errors
                if not e.too_big and e.seq == iss and e.src == self.client_addr
                and e.sport == self.client_port]
        if not errs:
            return None
        last = errs[-1]
        later_syn = any(p.frame > last.frame and p.sender == "client"
                        and p.flags & (SYN | ACK) == SYN for p in self.notable)
        return None if later_syn else last

    def missing_side(self) -> int:
        """The side (0 client, 1 server) the capture holds no packet of although the other
        side's own segments prove it sent some during the capture, else -1.

        Asymmetric routing, a span port fed one direction, or a capture filter on one host's
        outgoing traffic all show one side talking to silence. Its segments prove the peer:
        ACKs of sequence space the capture never saw sent (the peer's data or FIN), or an
        ACK after its own SYN or SYN-ACK (the handshake was answered). A side that only
        repeats SYNs, or keeps one ACK number (a peer dead since before the capture), proves
        nothing, and its peer is not called missing.
        """
        if self.self_connect:
            return -1
        stats = (self.analyzer.client, self.analyzer.server)
        for seen in (0, 1):
            if self.packets[1 - seen] or not self.packets[seen]:
                continue
            if stats[seen].acks_unseen or self.answered_frame[seen] >= 0:
                return 1 - seen
        return -1

    def is_done(self) -> bool:
        """No segment can change this connection any more (both ends closed)."""
        return self.client.state in _DONE_STATES and self.server.state in _DONE_STATES \
            and (self.client.state is _CLOSED or self.server.state is _CLOSED)

    def is_attempt(self) -> bool:
        """A connection attempt nobody completed: no endpoint ever reached ESTABLISHED."""
        return self.client.state in _ATTEMPT_STATES and self.server.state in _ATTEMPT_STATES

    def quiet_deadline_ns(self) -> int:
        """Packet time after which the connection can be emitted if nothing else arrives."""
        opts = self.options
        if self.is_done():
            return self.last_ts_ns + opts.closed_linger_ns
        deadlines = []
        if self.is_attempt():
            # Nobody reached ESTABLISHED: an attempt, which stacks give up within minutes.
            return self.last_ts_ns + min(opts.attempt_timeout_ns, opts.idle_timeout_ns)
        for m in (self.client, self.server):
            if m.state is _TIME_WAIT and m.time_wait_since_ns >= 0:
                deadlines.append(m.time_wait_since_ns + opts.time_wait_ns)
            elif m.state not in _DONE_STATES:
                return self.last_ts_ns + opts.idle_timeout_ns
        return max(deadlines + [self.last_ts_ns + opts.closed_linger_ns])


# The compiled engine's twins (tcptrace_py/implementation.py, tcptrace_py/_engine.pyx).
from tcptrace_py.implementation import twin  # noqa: E402

Connection = twin(Connection, "ConnectionBase")  # type: ignore[misc]
