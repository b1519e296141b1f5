"""Handshake detectors: unanswered and refused SYNs, SYN-ACK trouble, unusual opens, reuse.

Evidence comes from what the connection kept: ``notable`` SYN/SYN-ACK/RST packets, the
sequence analyzer's ``retransmissions`` (kind ``syn``/``synack`` with their intervals) and the
state machine's events (an ``inferred`` ESTABLISHED -> SYN_RECEIVED step proves the server
ignored a handshake ACK, fsm rule 4).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from tcptrace_py import units
from tcptrace_py.connection import Connection
from tcptrace_py.detectors.base import (
    Code,
    Detector,
    Param,
    ParamValue,
    human,
    intervals_s,
    register,
    seconds,
)
from tcptrace_py.diagnostics import Diagnostics
from tcptrace_py.events import Anomaly
from tcptrace_py.fsm import TcpState
from tcptrace_py.options import Options
from tcptrace_py.report import classify_close, classify_open
from tcptrace_py.segment import ACK, RST, SYN, endpoint_text

_SYN_RECEIVED = TcpState.SYN_RECEIVED
"""Bound once: an Enum member read through its class costs ten global reads (per connection)."""


def _near(x: float, y: float, tolerance: float) -> bool:
    """``x`` within ``tolerance`` (relative) of ``y``.

    A module function, not a closure: compiled with Cython, a nested function that the
    generator expressions below also use makes a reference cycle per call, left for the
    cyclic collector, which the analysis pauses (tcptrace_py/gcpolicy.py)."""
    return abs(x - y) <= tolerance * y


def backoff_pattern(gaps_s: list[float], tolerance: float) -> str:
    """Name the retry schedule of a series of SYN retransmission intervals (seconds).

    ``linux_exponential``: 1, 2, 4 s... (Linux initial RTO 1 s, RFC 6298 5.5 doubling);
    ``windows_exponential``: 3, 6, 12 s (Windows' 3 s initial SYN timeout, RFC 1122 era);
    ``bsd``: 6 s then 18/24 s (4.4BSD slow timer: SYNs at 0, 6, 24 s within 75 s);
    ``linux_linear``: a run of equal ~1 s intervals first (tcp_syn_linear_timeouts, Linux 6.x),
    possibly doubling after; ``exponential``/``constant`` for other bases; ``irregular``;
    ``single`` with fewer than one interval.
    """
    if not gaps_s:
        return "single"
    t = tolerance
    first = gaps_s[0]
    pairs = list(zip(gaps_s, gaps_s[1:], strict=False))
    doubling = all(_near(b, 2 * a, t) for a, b in pairs)
    lead_equal = 0
    for g in gaps_s:
        if _near(g, first, t):
            lead_equal += 1
        else:
            break
    if lead_equal >= 2 and _near(first, 1.0, t):
        rest = gaps_s[lead_equal - 1:]
        if all(_near(b, 2 * a, t) for a, b in zip(rest, rest[1:], strict=False)):
            return "linux_linear"
    if doubling and _near(first, 1.0, t):
        return "linux_exponential"
    if doubling and _near(first, 3.0, t):
        return "windows_exponential"
    if _near(first, 6.0, t) and (len(gaps_s) == 1 or _near(gaps_s[1], 18.0, t)
                                 or _near(gaps_s[1], 24.0, t)):
        return "bsd"
    if len(gaps_s) >= 2 and lead_equal == len(gaps_s):
        return "constant"
    if doubling and len(gaps_s) >= 2:
        return "exponential"
    return "irregular"


@register
class UnansweredSyn(Detector):
    """SYNs the server never answered (firewall drop, host down, full SYN queue)."""

    name = "unanswered_syn"
    quiet_skip = True  # base.quiet: packets from the server
    params = (
        Param("min_attempts", 2, "SYN transmissions needed to call the attempt failed (error). "
              "With one SYN the capture cannot show the client retrying: it may have ended "
              "first, so a single unanswered SYN is reported as info only."),
        Param("interval_tolerance", 0.3, "Relative tolerance when matching retry intervals "
              "to a stack's schedule: timers fire late by scheduling jitter (the labelled "
              "Linux capture shows 1.01, 2.02, 4.13 s), 30% separates 1-2-4 from 3-6-12."),
    )
    codes = (Code("unanswered_syn", "error", "network",
                  "Client SYN(s) never answered: attempts, retry intervals, the backoff pattern "
                  "recognised and whether the client gave up."),)

    def on_connection(self, conn: Connection) -> Iterable[Anomaly]:
        if not conn.pure_syn_sent[0] or conn.packets[1] or conn.self_connect \
                or conn.answered_frame[0] >= 0 or conn.syn_icmp_error() is not None:
            # Answered: the server's packets are in the capture, the client's own ACK after its
            # SYN proves a SYN-ACK reached it (one-sided capture: capture.one_sided_capture), or
            # an ICMP error answered its last SYN (icmp.icmp_unreachable).
            return ()
        syns = [p for p in conn.notable
                if p.sender == "client" and p.flags & (SYN | ACK | RST) == SYN]
        if not syns:
            return ()
        attempts = conn.pure_syn_sent[0]
        times = [p.ts_ns for p in syns]
        gaps = intervals_s(times)
        pattern = backoff_pattern(gaps, float(self.p["interval_tolerance"]))
        gave_up_inferred = any(e.kind == "inferred" and e.endpoint == "client"
                               and e.new_state == TcpState.CLOSED.value for e in conn.events)
        gave_up = gave_up_inferred or conn.client.state is TcpState.CLOSED
        severity = "error" if attempts >= int(self.p["min_attempts"]) else "info"
        details = {
            "attempts": attempts,
            "frames": [p.frame for p in syns],
            "times_after_first_s": [seconds(t - times[0]) for t in times[1:]],
            "intervals_s": gaps,
            "pattern": pattern,
            "gave_up": gave_up,
            "gave_up_inferred": gave_up_inferred,
            "server": endpoint_text(conn.server_addr, conn.server_port),
        }
        summary = (f"{attempts} SYN(s) to {details['server']} never answered"
                   + (f"; retries after {units.seconds_list(gaps)} ({pattern})"
                      if gaps else "")
                   + ("; client gave up" if gave_up else ""))
        return (self.make("unanswered_syn", conn.flow_id, syns[0].frame, syns[-1].frame,
                          syns[0].ts_ns, summary, details, severity=severity),)


@register
class ConnectionRefused(Detector):
    """A SYN answered by RST: no listener (ECONNREFUSED) or a firewall's reject."""

    name = "connection_refused"
    quiet_skip = True  # base.quiet: no first_rst_sender
    codes = (Code("connection_refused", "error", "network",
                  "The server answered the SYN with a RST (nothing listening, or rejected)."),)

    def on_connection(self, conn: Connection) -> Iterable[Anomaly]:
        # Pre-check: classify_close says "refused" only for a first obeyed RST from the
        # server; most connections have none and skip both classifications.
        if conn.first_rst_sender != "server":
            return ()
        open_kind = classify_open(conn)
        if classify_close(conn, open_kind) != "refused":
            return ()
        syns = [p for p in conn.notable
                if p.sender == "client" and p.flags & (SYN | ACK | RST) == SYN]
        rst = next((p for p in conn.notable
                    if p.sender == "server" and p.flags & RST and p.frame == conn.first_rst_frame),
                   None)
        if rst is None or not syns:
            return ()
        details = {
            "syn_frame": syns[0].frame,
            "rst_frame": rst.frame,
            "syn_attempts": conn.pure_syn_sent[0],
            "rst_flags": "RA" if rst.flags & ACK else "R",
            "reply_s": seconds(rst.ts_ns - syns[-1].ts_ns),
            "server": endpoint_text(conn.server_addr, conn.server_port),
        }
        return (self.make("connection_refused", conn.flow_id, syns[0].frame, rst.frame,
                          syns[0].ts_ns, f"connection to {details['server']} refused (RST in "
                          f"frame {rst.frame})", details),)


@register
class SynAckTrouble(Detector):
    """SYN-ACK retransmitted, and half-open connections the server never completed.

    A half-open connection: the server stayed in SYN_RECEIVED to the end after retransmitting
    its SYN-ACK, either because the client never acknowledged it (SYN flood, client gone) or
    because it ignored the client's handshake ACK (full accept queue: Linux drops the ACK when
    the listen backlog overflows, tcp_abort_on_overflow=0) -- the client believes the
    connection is ESTABLISHED. Many of them on one server are aggregated (SYN flood).
    """

    name = "synack"
    quiet_skip = True  # base.quiet: no retransmission, the server not in SYN_RECEIVED
    params = (
        Param("max_per_server", 20, "Per-connection synack_retransmission/half_open findings "
              "reported per server before the rest are only counted into one capture-wide "
              "finding per server (a SYN flood would otherwise bury every other anomaly)."),
    )
    codes = (
        Code("synack_retransmission", "warning", "network",
             "The server retransmitted its SYN-ACK: the SYN-ACK or the client's ACK was lost, "
             "or the server ignored the ACK (accept queue full)."),
        Code("half_open", "error", "network",
             "A half-open connection (RFC 9293 3.5.2): the server never completed the "
             "handshake (still SYN_RECEIVED after SYN-ACK retransmissions) while the client "
             "sent its ACK or vanished, aggregated per server when many (SYN flood, "
             "accept-queue overflow); or, reported by the resets detector beside "
             "reset_on_data, one end had lost an established connection and answered the "
             "other's data with a bare RST."),
    )

    def __init__(self, values: Mapping[str, ParamValue], options: Options) -> None:
        super().__init__(values, options)
        self.per_server: dict[str, dict[str, list[int]]] = {}
        """server -> code -> [count, first_frame, last_frame, first_ts_ns, suppressed]."""
        self._gates: list[tuple[str, str, int, int, int]] = []
        """In a worker (``sharded``): the :meth:`_count` calls of the last connection, one
        per finding made, for the parent to count in the order of one engine."""

    capture_wide = True  # findings per server are capped over every connection

    def summarize(self, conn: Connection) -> Any:
        gates, self._gates = self._gates, []
        return gates or None

    def fold(self, share: Any, anomalies: list[Anomaly]) -> list[Anomaly]:
        # One finding per _count call, in order: keep those within max_per_server.
        return [a for gate, a in zip(share, anomalies, strict=True) if self._count(*gate)]

    def _count(self, server: str, code: str, frame: int, last: int, ts: int) -> bool:
        """Count a finding for a server; False when it is beyond max_per_server (in a
        worker: always True, the call is recorded for the parent's :meth:`fold`)."""
        if self.sharded:
            self._gates.append((server, code, frame, last, ts))
            return True
        rec = self.per_server.setdefault(server, {}).setdefault(code, [0, frame, last, ts, 0])
        rec[0] += 1
        rec[2] = max(rec[2], last)
        if rec[0] > int(self.p["max_per_server"]):
            rec[4] += 1
            return False
        return True

    def on_connection(self, conn: Connection) -> Iterable[Anomaly]:
        if not conn.synack_sent[1]:
            return ()
        rex = [r for r in conn.analyzer.retransmissions if r.kind == "synack"
               and r.sender == "server"]
        # Pre-check (no finding, no count): both findings below need a SYN-ACK
        # retransmission, or the server left in SYN_RECEIVED. Most connections with a
        # SYN-ACK have neither, and skip the evidence scans and the server's text.
        if not rex and conn.server.state is not _SYN_RECEIVED:
            return ()
        out: list[Anomaly] = []
        server = endpoint_text(conn.server_addr, conn.server_port)
        synacks = [p for p in conn.notable if p.sender == "server"
                   and p.flags & (SYN | ACK | RST) == SYN | ACK]
        ignored = [e.frame for e in conn.events if e.endpoint == "server"
                   and e.kind in ("ignored", "inferred")
                   and (e.old_state, e.new_state) in (("ESTABLISHED", "SYN_RECEIVED"),
                                                      ("SYN_RECEIVED", "SYN_RECEIVED"))]
        inferred = [e.frame for e in conn.events if e.endpoint == "server"
                    and e.kind == "inferred" and e.new_state == "SYN_RECEIVED"]
        ack_seen = conn.handshake_done_frame >= 0
        if rex and synacks:
            times = [p.ts_ns for p in synacks]
            details = {
                "count": len(rex),
                "frames": [r.frame for r in rex],
                "original_frame": rex[0].original_frame,
                "intervals_s": intervals_s(times),
                "after_handshake_ack": bool(inferred),
                "server": server,
            }
            if self._count(server, "synack_retransmission", synacks[0].frame, rex[-1].frame,
                           synacks[0].ts_ns):
                out.append(self.make(
                    "synack_retransmission", conn.flow_id, synacks[0].frame, rex[-1].frame,
                    synacks[0].ts_ns, f"server {server} retransmitted its SYN-ACK {len(rex)} "
                    "time(s)" + (" after the client's handshake ACK" if inferred else ""),
                    details))
        if conn.server.state is _SYN_RECEIVED and (rex or inferred):
            reason = "handshake_ack_ignored" if ack_seen else "synack_unacknowledged"
            details = {
                "reason": reason,
                "client_state": conn.client.state.value,
                "synack_count": conn.synack_sent[1],
                "handshake_ack_frame": conn.handshake_done_frame if ack_seen else None,
                "ignored_ack_frames": [f for f in ignored if f not in inferred],
                "inferred_frames": inferred,
                "server": server,
            }
            first = conn.handshake_done_frame if ack_seen else synacks[0].frame
            if self._count(server, "half_open", first, conn.last_frame, conn.first_ts_ns):
                out.append(self.make(
                    "half_open", conn.flow_id, first, conn.last_frame, conn.first_ts_ns,
                    f"half-open: server {server} never completed the handshake "
                    + ("(it ignored the client's ACK; client believes it is ESTABLISHED)"
                       if ack_seen else "(the client never acknowledged its SYN-ACK)"),
                    details))
        return out

    def on_end(self, end_ns: int, diag: Diagnostics) -> Iterable[Anomaly]:
        out = []
        for server, by_code in self.per_server.items():
            for code, (count, first, last, ts, suppressed) in by_code.items():
                if suppressed:
                    out.append(self.make(
                        code, None, first, last, ts,
                        f"{count} connections to {server} with {code} ({suppressed} not "
                        "listed one by one)", {"server": server, "connections": count,
                                               "not_listed": suppressed}))
        return out


@register
class OpenKinds(Detector):
    """Unusual but legal opens: simultaneous open (RFC 9293 3.5 fig. 8) and self-connect."""

    name = "open_kinds"
    quiet_skip = True  # base.quiet: no self-connect, no server SYN
    codes = (
        Code("simultaneous_open", "info", "lifecycle",
             "Both ends sent a SYN (RFC 9293 section 3.5, figure 8)."),
        Code("self_connect", "info", "lifecycle",
             "A socket connected to itself (same address and port at both ends): usually a "
             "client whose ephemeral port equals the port it dials while nothing listens."),
    )

    def on_connection(self, conn: Connection) -> Iterable[Anomaly]:
        if conn.self_connect:
            return (self.make("self_connect", conn.flow_id, conn.first_frame, conn.last_frame,
                              conn.first_ts_ns, "self-connect on "
                              f"{endpoint_text(conn.client_addr, conn.client_port)}",
                              {"port": conn.client_port}),)
        if conn.pure_syn_sent[0] and conn.pure_syn_sent[1]:
            syns = [p.frame for p in conn.notable if p.flags & (SYN | ACK) == SYN]
            return (self.make("simultaneous_open", conn.flow_id, syns[0] if syns else
                              conn.first_frame, syns[-1] if syns else conn.first_frame,
                              conn.first_ts_ns, "simultaneous open: both ends sent a SYN",
                              {"syn_frames": syns}),)
        return ()


@register
class TimeWaitReuse(Detector):
    """A new SYN on a 4-tuple while an endpoint of the previous incarnation was in TIME_WAIT.

    RFC 9293 3.10.7.4 / RFC 6191 allow it when the new ISN (or timestamp) is higher; Linux does
    it for tcp_timewait_state_process. It is worth knowing: stacks without RFC 6191 answer with
    an ACK or RST, and old duplicates of the previous incarnation could be accepted.
    """

    name = "time_wait_reuse"
    codes = (Code("time_wait_reuse", "info", "lifecycle",
                  "A new SYN reused a 4-tuple within 2MSL of the previous incarnation (an "
                  "endpoint was in TIME_WAIT); warning when the new incarnation failed."),)

    def __init__(self, values: Mapping[str, ParamValue], options: Options) -> None:
        super().__init__(values, options)
        self.memo: dict[tuple[bytes, int, bytes, int], tuple[int, str, int]] = {}
        """4-tuple -> (last ts, side that was in TIME_WAIT, flow_id) of an incarnation that a
        new SYN ended; popped by the next incarnation (so bounded by live connections)."""

    def on_connection(self, conn: Connection) -> Iterable[Anomaly]:
        out: list[Anomaly] = []
        prev = self.memo.pop(conn.key, None)
        if conn.incarnation > 0 and conn.previous_end_ts_ns >= 0:
            gap_ns = conn.first_ts_ns - conn.previous_end_ts_ns
            tw_side = prev[1] if prev is not None else ""
            if not tw_side and conn.previous_states is not None:
                cs, ss = conn.previous_states
                tw_side = "client" if cs == "TIME_WAIT" else "server" if ss == "TIME_WAIT" \
                    else ""
            if tw_side and gap_ns < self.options.time_wait_ns:
                failed = conn.handshake_done_frame < 0 and classify_open(conn) != \
                    "simultaneous_open"
                details = {
                    "incarnation": conn.incarnation,
                    "previous_flow_id": prev[2] if prev is not None else None,
                    "time_wait_side": tw_side,
                    "since_previous_s": seconds(gap_ns),
                    "time_wait_s": self.options.time_wait_s,
                    "established": not failed,
                }
                out.append(self.make(
                    "time_wait_reuse", conn.flow_id, conn.first_frame, conn.first_frame,
                    conn.first_ts_ns, f"new SYN reuses the 4-tuple {human(gap_ns)} after "
                    f"the previous incarnation, whose {tw_side} was in TIME_WAIT", details,
                    severity="warning" if failed else None))
        if conn.end_reason == "new_incarnation":
            side = ""
            for e in conn.events:
                if e.old_state == "TIME_WAIT" and e.direction == "timer" \
                        and e.kind == "transition":
                    side = e.endpoint
            if not side:
                side = "client" if conn.client.state is TcpState.TIME_WAIT else \
                    "server" if conn.server.state is TcpState.TIME_WAIT else ""
            if side:
                self.memo[conn.key] = (conn.last_ts_ns, side, conn.flow_id)
        return out
