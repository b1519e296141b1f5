"""A connection packet by packet (the ladder), as plain data for every view of it.

``tcptrace-py flow`` prints it in the terminal and the HTML report (``htmlreport``) shows it in
a browser; both build it here so the two can never disagree. The engine keeps only flags and
lengths per packet (``FlowResult.packets``); sequence, ACK, window and SACK numbers come from a
second read of the connection's segments (``capture.read_flow_segments``), as Wireshark shows
them (relative to each sender's ISN). Nothing here prints or imports click/rich.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from tcptrace_py.analysis import flag_names
from tcptrace_py.engine import PacketRow
from tcptrace_py.events import Event
from tcptrace_py.lazy_dataclass import dataclass, field
from tcptrace_py.segment import Segment, flags_text

SEQ_MOD = 1 << 32
INITIAL_STATE = "INACTIVE"
"""Both endpoints' state before their first segment (Zeek's observer state, fsm.py)."""


@dataclass(frozen=True, slots=True)
class SegmentDetail:
    """What the ladder shows of a segment beyond its flags (Wireshark's relative numbers)."""

    seq: int
    """Sequence number relative to the sender's ISN (0: the SYN; 1: the first data byte)."""
    ack: int | None
    """ACK number relative to the peer's ISN (None without ACK or before the peer spoke)."""
    window: int
    """Advertised window, scaled (RFC 7323: when both SYNs carried the option, never on a
    SYN); -1 when the snaplen cut the field."""
    sack: str
    """SACK blocks, relative to the peer's ISN, ``left-right`` each."""

    def lines(self) -> list[str]:
        """One number a line (the narrow ladder), each SACK block on its own line."""
        out = [f"seq {self.seq}"]
        if self.ack is not None:
            out.append(f"ack {self.ack}")
        if self.window >= 0:
            out.append(f"win {self.window}")
        out += [("sack " if i == 0 else "     ") + block
                for i, block in enumerate(self.sack.split())]
        return out

    def text(self) -> str:
        ack = "" if self.ack is None else f" ack {self.ack}"
        win = "" if self.window < 0 else f" win {self.window}"
        sack = f" sack {self.sack}" if self.sack else ""
        return f"seq {self.seq}{ack}{win}{sack}"


def segment_details(segments: Iterable[tuple[Segment, bool]], wanted: set[int],
                    out: dict[int, SegmentDetail] | None = None) -> dict[int, SegmentDetail]:
    """Sequence, ACK, window and SACK of the wanted frames among one connection's segments
    ``(segment, from_client)`` in capture order (all of them from its first: the relative
    numbers need each side's first segment). Filled into ``out`` when given, so a caller
    whose read fails half-way keeps what was read."""
    base: dict[bool, int] = {}
    wscale: dict[bool, int] = {}
    out = {} if out is None else out
    for seg, fc in segments:
        frame_no = seg.frame
        syn = bool(seg.flags & 0x02)
        if fc not in base:  # without its SYN the first byte seen is 1
            base[fc] = seg.seq if syn else (seg.seq - 1) % SEQ_MOD
        if syn and fc not in wscale:
            wscale[fc] = seg.wscale
        if frame_no not in wanted:
            continue
        peer = base.get(not fc)
        ack = (seg.ack - peer) % SEQ_MOD if seg.flags & 0x10 and peer is not None else None
        win = seg.window
        if win > 0 and not syn and min(wscale.get(True, -1), wscale.get(False, -1)) >= 0:
            win <<= min(wscale[fc], 14)
        sack = " ".join(f"{(left - peer) % SEQ_MOD}-{(right - peer) % SEQ_MOD}"
                        for left, right in seg.sack) if peer is not None else ""
        out[frame_no] = SegmentDetail((seg.seq - base[fc]) % SEQ_MOD, ack, win, sack)
    return out


@dataclass(frozen=True, slots=True)
class LadderRow:
    """One packet of the ladder."""

    frame: int
    t_s: float
    """Seconds since the connection's first packet."""
    from_client: bool
    flags: str
    """TCP flags as letters (``S``, ``SA``, ``FA``...)."""
    payload: int
    detail: SegmentDetail | None
    analysis: str
    """Analysis flag names (``retransmission fast_retransmission``...), space separated."""
    client_state: str
    server_state: str
    """Each endpoint's RFC 9293 (or observer) state after this packet."""
    transitions: list[str] = field(default_factory=list)
    """``endpoint: OLD -> NEW (kind; reason)`` for each event this packet caused."""


def event_text(ev: Event) -> str:
    """One event as the ladder states it."""
    return f"{ev.endpoint}: {ev.old_state} -> {ev.new_state} ({ev.kind}; {ev.reason})"


def states_after(rec: Mapping[str, Any], events: Sequence[Event]) -> dict[int, dict[str, str]]:
    """Each endpoint's state after every frame that had an event: the events' new states
    replayed in order (a frame without an event leaves both states as they were)."""
    after: dict[int, dict[str, str]] = {}
    current = {"client": INITIAL_STATE, "server": INITIAL_STATE}
    self_connect = rec["client_port"] == rec["server_port"] and \
        rec["client_ip"] == rec["server_ip"]
    for ev in events:
        if ev.endpoint in current:
            current[ev.endpoint] = ev.new_state
            if self_connect:
                current = {"client": ev.new_state, "server": ev.new_state}
        after[ev.frame] = dict(current)
    return after


def flow_t0_ns(rec: Mapping[str, Any], packets: Sequence[PacketRow]) -> int:
    """Time origin of a connection's views: its start; when no output can hold its start
    (a time out of range, null) its earliest packet time, whose differences are still
    exact."""
    start = rec.get("start_ts_ns")
    return int(start) if start is not None else min((p[1] for p in packets), default=0)


def ladder_rows(rec: Mapping[str, Any], events: Sequence[Event], packets: Sequence[PacketRow],
                details: Mapping[int, SegmentDetail], shown: set[int] | None = None,
                ) -> tuple[list[LadderRow], dict[int, list[str]]]:
    """The ladder rows of the ``shown`` frames (None: all) with the states after each, and
    the transitions of frames that have no packet row of their own (timers), by frame."""
    events_by_frame: dict[int, list[str]] = {}
    for ev in events:
        events_by_frame.setdefault(ev.frame, []).append(event_text(ev))
    after = states_after(rec, events)
    t0_ns = flow_t0_ns(rec, packets)
    states = {"client": INITIAL_STATE, "server": INITIAL_STATE}
    rows: list[LadderRow] = []
    for frame, ts_ns, _fid, from_client, tflags, amask, plen in packets:
        states = after.get(frame, states)  # every packet, shown or not: states carry over
        if shown is not None and frame not in shown:
            continue
        rows.append(LadderRow(frame, (ts_ns - t0_ns) / 1e9, from_client, flags_text(tflags),
                              plen,
                              details.get(frame), " ".join(flag_names(amask)).lower(),
                              states["client"], states["server"],
                              events_by_frame.pop(frame, [])))
    return rows, events_by_frame
