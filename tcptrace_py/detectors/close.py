"""Close detectors: lost final ACK, FIN retransmissions, CLOSE_WAIT stuck, half and simultaneous
close.

Evidence: ``conn.fin_frame`` and the ``notable`` FIN packets (raw seq/ack), the analyzer's
``retransmissions`` of kind ``fin`` with their intervals, the state machines' final states
and events. Bytes sent after a FIN come from sequence numbers: the FIN's ACK field is how far
its sender had received, the peer's highest sequence number sent (``snd_max``) how far it sent.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from tcptrace_py.connection import Connection, NotablePacket
from tcptrace_py.detectors.base import (
    Code,
    Detector,
    Param,
    ParamValue,
    human,
    register,
    seconds,
)
from tcptrace_py.events import Anomaly
from tcptrace_py.fsm import EndpointMachine, TcpState
from tcptrace_py.segment import ACK, FIN, RST

_MASK = 0xFFFFFFFF
_HALF = 1 << 31
SIDES = ("client", "server")
# Enum members bound once: read through their class they cost ten global reads, and these
# tests run for every finished connection.
_LAST_ACK = TcpState.LAST_ACK
_CLOSE_WAIT = TcpState.CLOSE_WAIT


def first_fin(conn: Connection, side: int) -> NotablePacket | None:
    """The first FIN segment a side sent (None when it sent none)."""
    frame = conn.fin_frame[side]
    if frame < 0:
        return None
    return conn.first_notable(frame, FIN, RST)


def sent_after(machine: EndpointMachine, peer_fin: NotablePacket | None,
               sent_before: int = -1) -> int:
    """Payload bytes ``machine``'s side sent beyond what the peer had received when it sent
    ``peer_fin`` (its ACK field); 0 when unknown. A FIN's own sequence number is excluded.

    With ``sent_before`` (the side's raw SND.MAX at the peer's FIN, see
    ``Connection.peer_sent_at_fin``) only bytes sent after the FIN count: data already in
    flight or lost when the FIN left was not sent after it."""
    if peer_fin is None or not peer_fin.flags & ACK or machine.snd_max < 0:
        return 0
    start = peer_fin.ack
    d = (machine.snd_max - start) & _MASK
    if d >= _HALF:
        return 0
    if sent_before >= 0:
        later = (machine.snd_max - sent_before) & _MASK
        if later >= _HALF:
            return 0
        if later < d:
            d, start = later, sent_before
    if machine.fin_sent and ((machine.fin_seq - start) & _MASK) < d:
        d -= 1  # its own FIN, inside the counted span, is not a byte
    return max(d, 0)


@register
class LostFinalAck(Detector):
    """The passive closer retransmits its FIN in LAST_ACK: the final ACK never reached it."""

    name = "lost_final_ack"
    quiet_skip = True  # base.quiet: no retransmission, no side in LAST_ACK
    params = (
        Param("min_wait_s", 1.0, "Without FIN retransmissions, how long after its FIN a side "
              "must still sit in LAST_ACK at capture end (no final ACK seen) to be reported: "
              "longer than Linux's 200 ms minimum RTO, so a live stack would have re-sent."),
    )
    codes = (
        Code("lost_final_ack", "warning", "network",
             "The passive closer re-sent its FIN from LAST_ACK (the active closer's final ACK "
             "was lost, possibly after the capture point), or the capture ended without it."),
        Code("fin_retransmission", "warning", "network",
             "An active closer re-sent its FIN (the FIN or its ACK was lost)."),
    )

    def on_connection(self, conn: Connection) -> Iterable[Anomaly]:
        machines = (conn.client, conn.server)
        # Pre-check (no finding otherwise): both findings need a FIN retransmission (one of
        # the analyzer's retransmissions) or a side left in LAST_ACK.
        if not conn.analyzer.retransmissions and machines[0].state is not _LAST_ACK \
                and machines[1].state is not _LAST_ACK:
            return []
        out: list[Anomaly] = []
        for side, name in enumerate(SIDES):
            fin = first_fin(conn, side)
            if fin is None:
                continue
            peer_fin_frame = conn.fin_frame[1 - side]
            passive = 0 <= peer_fin_frame < fin.frame
            rex = [r for r in conn.analyzer.retransmissions if r.kind == "fin"
                   and r.sender == name]
            acks = [e.frame for e in conn.events if e.endpoint == name
                    and e.direction == "received" and e.old_state == "LAST_ACK"
                    and e.new_state == "CLOSED"]
            if passive and rex:
                details = {
                    "by": name,
                    "fin_frame": fin.frame,
                    "fin_retransmissions": len(rex),
                    "frames": [r.frame for r in rex],
                    "intervals_s": [seconds(r.interval_ns) for r in rex],
                    "final_ack_seen": bool(acks),
                    "final_ack_frames": acks,
                    "ended_in": machines[side].state.value,
                }
                where = " (ACKs seen: lost after the capture point)" if acks else ""
                out.append(self.make(
                    "lost_final_ack", conn.flow_id, fin.frame, rex[-1].frame, fin.ts_ns,
                    f"{name} re-sent its FIN {len(rex)} time(s) from LAST_ACK: the final ACK "
                    f"never reached it{where}", details))
            elif passive and machines[side].state is _LAST_ACK and not acks \
                    and self.end_ns_of(conn) - fin.ts_ns >= \
                    int(float(self.p["min_wait_s"]) * 1e9):
                out.append(self.make(
                    "lost_final_ack", conn.flow_id, fin.frame, conn.last_frame, fin.ts_ns,
                    f"{name} still in LAST_ACK at capture end: final ACK never seen",
                    {"by": name, "fin_frame": fin.frame, "fin_retransmissions": 0,
                     "frames": [], "intervals_s": [], "final_ack_seen": False,
                     "final_ack_frames": [], "ended_in": "LAST_ACK",
                     "waited_s": seconds(self.end_ns_of(conn) - fin.ts_ns)}))
            elif rex:
                out.append(self.make(
                    "fin_retransmission", conn.flow_id, fin.frame, rex[-1].frame, fin.ts_ns,
                    f"{name} re-sent its FIN {len(rex)} time(s)",
                    {"by": name, "fin_frame": fin.frame, "count": len(rex),
                     "frames": [r.frame for r in rex],
                     "intervals_s": [seconds(r.interval_ns) for r in rex]}))
        return out


def closed_quietly(conn: Connection, max_close_delay_ns: int) -> bool:
    """True when neither :class:`CloseKinds` nor :class:`CloseWaitStuck` can find anything
    in a connection :func:`~tcptrace_py.detectors.base.quiet` accepted (so no RST and
    packets from both sides): the first closer's peer sent nothing after that FIN, no
    CLOSING state (simultaneous close), and no side left in CLOSE_WAIT without a FIN or
    closing ``max_close_delay_ns`` or more after the peer's FIN.

    These are the detectors' own tests, in their order, up to where each would compute a
    finding; a connection this accepts gets none from either, so
    :class:`~tcptrace_py.detectors.DetectorSet` leaves both out (:attr:`Detector.close_skip`).
    """
    f0, f1 = conn.fin_frame[0], conn.fin_frame[1]
    if f0 < 0 and f1 < 0:
        return not conn.transition_frames("CLOSING")
    fins = (first_fin(conn, 0), first_fin(conn, 1))
    machines = (conn.client, conn.server)
    side = 0 if f1 < 0 or 0 <= f0 < f1 else 1  # CloseKinds: the first closer
    fin = fins[side]
    if fin is not None and sent_after(machines[1 - side], fin,
                                      conn.peer_sent_at_fin[side]) > 0:
        return False  # half_close
    if conn.transition_frames("CLOSING"):
        return False  # simultaneous_close
    for s in (0, 1):  # CloseWaitStuck's tests before its arithmetic
        peer_fin = fins[1 - s]
        if peer_fin is None or not conn.packets[s]:
            continue
        own_fin = fins[s]
        if own_fin is None:
            if machines[s].state is _CLOSE_WAIT:
                return False
        elif own_fin.frame > peer_fin.frame \
                and own_fin.ts_ns - peer_fin.ts_ns >= max_close_delay_ns:
            return False
    return True


@register
class CloseWaitStuck(Detector):
    """One side received the peer's FIN and never closed: an application that leaks sockets."""

    name = "close_wait_stuck"
    params = (
        Param("min_stuck_s", 2.0, "Time in CLOSE_WAIT the capture must show (peer FIN to the "
              "capture's last frame, nothing sent after it) for severity warning; shorter is "
              "reported as info, since a capture shows nothing after its last frame. An "
              "application closes within milliseconds of reading EOF: 2 s is far beyond "
              "scheduling delays yet fits short captures."),
        Param("max_close_delay_s", 60.0, "A side that did close, but this long after the "
              "peer's FIN without sending data meanwhile, is reported too (a slow leak): "
              "longer than any request a server finishes after the client's EOF."),
    )
    close_skip = True  # closed_quietly: no side stuck or slow to close
    codes = (Code("close_wait_stuck", "warning", "network",
                  "One side closed; the other acknowledged the FIN but never sent its own (by "
                  "capture end, or not within max_close_delay_s)."),)

    def on_connection(self, conn: Connection) -> Iterable[Anomaly]:
        out: list[Anomaly] = []
        if conn.first_rst_frame >= 0 or (conn.fin_frame[0] < 0 and conn.fin_frame[1] < 0):
            return out  # no side's loop below gets past its first test
        machines = (conn.client, conn.server)
        fins = (first_fin(conn, 0), first_fin(conn, 1))
        for side, name in enumerate(SIDES):
            peer_fin = fins[1 - side]
            if peer_fin is None or not conn.packets[side]:
                # A side the capture holds no packet of never showed it acknowledged the FIN:
                # whether it closed cannot be known (one-sided capture).
                continue
            m = machines[side]
            own_fin = fins[side]
            stuck = m.state is _CLOSE_WAIT and own_fin is None
            # Either finding needs extra == 0; the second one a late own FIN. Both tests
            # come before sent_after's arithmetic, which most graceful closes then skip.
            if not stuck and (own_fin is None or own_fin.frame <= peer_fin.frame
                              or own_fin.ts_ns - peer_fin.ts_ns
                              < max_close_delay_ns(self.p)):
                continue
            extra = sent_after(m, peer_fin, conn.peer_sent_at_fin[1 - side])
            if stuck and extra == 0:
                # A capture has no end marker after its last frame: the time we can show runs
                # to the last frame. Stuck by capture end is the finding; warning once the
                # capture shows it for min_stuck_s, info when it ended too soon to be sure.
                stuck_ns = self.end_ns_of(conn) - peer_fin.ts_ns
                long_enough = stuck_ns >= int(float(self.p["min_stuck_s"]) * 1e9)
                out.append(self.make(
                    "close_wait_stuck", conn.flow_id, peer_fin.frame, conn.last_frame,
                    peer_fin.ts_ns, f"{name} never closed after the peer's FIN (CLOSE_WAIT "
                    f"for at least {human(stuck_ns)}, to the capture end)",
                    {"by": name, "peer_fin_frame": peer_fin.frame,
                     "stuck_s_at_least": seconds(stuck_ns), "closed": False},
                    severity=None if long_enough else "info"))
            elif own_fin is not None and extra == 0:  # late (above): frame and delay
                delay_ns = own_fin.ts_ns - peer_fin.ts_ns
                out.append(self.make(
                    "close_wait_stuck", conn.flow_id, peer_fin.frame, own_fin.frame,
                    peer_fin.ts_ns, f"{name} closed {human(delay_ns)} after the "
                    "peer's FIN", {"by": name, "peer_fin_frame": peer_fin.frame,
                                   "fin_frame": own_fin.frame,
                                   "stuck_s_at_least": seconds(delay_ns),
                                   "closed": True}))
        return out


@register
class CloseKinds(Detector):
    """Notable closes: half close (RFC 9293 3.6), simultaneous close, and data the closer
    discarded because it had closed for good."""

    name = "close_kinds"
    close_skip = True  # closed_quietly: nothing sent after the first FIN, no CLOSING
    codes = (
        Code("half_close", "info", "lifecycle",
             "One side sent FIN (shutdown(SHUT_WR)) and the other kept sending data after it."),
        Code("simultaneous_close", "info", "lifecycle",
             "Both sides sent FIN before receiving the other's (CLOSING state, RFC 9293 3.6)."),
        Code("data_after_close", "warning", "network",
             "One side closed (FIN), the other sent data afterwards and the closer answered "
             "with a RST: it had closed its socket, not only its sending side, so that data "
             "was discarded (a client that timed out before a slow response). Info when the "
             "peer had closed as well before the RST (parting bytes such as a TLS "
             "close_notify)."),
    )

    def on_connection(self, conn: Connection) -> Iterable[Anomaly]:
        out: list[Anomaly] = []
        fins = [conn.fin_frame[0], conn.fin_frame[1]]
        if fins[0] >= 0 or fins[1] >= 0:
            side = 0 if fins[1] < 0 or 0 <= fins[0] < fins[1] else 1
            fin = first_fin(conn, side)
            peer = (conn.client, conn.server)[1 - side]
            name, other = SIDES[side], SIDES[1 - side]
            # Bytes the closer had not received at its FIN, needed only when its RST came
            # after that FIN (most closes have no RST: no arithmetic).
            arrived = sent_after(peer, fin) if fin is not None \
                and conn.first_rst_sender == name and conn.first_rst_frame > fin.frame else 0
            if arrived > 0:
                assert fin is not None
                # A half-closed endpoint (shutdown(SHUT_WR)) accepts data after its FIN; one
                # that close()d answers it with a RST (Linux: from the socket, TCPAbortOnData,
                # or from its FIN_WAIT_2 mini-socket). So the RST proves a full close, and the
                # data after the FIN was thrown away.
                rst = next(p for p in conn.notable if p.frame == conn.first_rst_frame)
                # The peer closed too, before the RST could reach it (its FIN came first, or
                # crossed the RST): the discarded bytes were its parting words (a TLS
                # close_notify, a QUIT): info. Otherwise the RST cut the peer off: warning.
                peer_fin = first_fin(conn, 1 - side)
                peer_closed = peer_fin is not None and \
                    peer_fin.ts_ns - rst.ts_ns <= conn.options.rst_crossing_ns
                out.append(self.make(
                    "data_after_close", conn.flow_id, fin.frame, rst.frame, fin.ts_ns,
                    f"{name} had closed (FIN) and reset the {arrived} bytes {other} sent that "
                    f"reached it after its FIN: {other}'s data was discarded "
                    f"({human(rst.ts_ns - fin.ts_ns)} after the close)",
                    {"by": name, "fin_frame": fin.frame, "rst_frame": rst.frame,
                     "discarded_bytes_at_least": arrived,
                     "fin_to_rst_s": seconds(rst.ts_ns - fin.ts_ns),
                     "peer_closed_first": peer_closed},
                    severity="info" if peer_closed else None))
            elif fin is not None and (
                    extra := sent_after(peer, fin, conn.peer_sent_at_fin[side])) > 0:
                # extra: bytes the peer sent after the FIN.
                peer_fin = first_fin(conn, 1 - side)
                until = peer_fin.ts_ns if peer_fin is not None else self.end_ns_of(conn)
                out.append(self.make(
                    "half_close", conn.flow_id, fin.frame,
                    peer_fin.frame if peer_fin is not None else conn.last_frame, fin.ts_ns,
                    f"half close: {name} sent FIN, {other} then sent {extra} more bytes",
                    {"by": name, "fin_frame": fin.frame, f"{other}_bytes_after_fin": extra,
                     "bytes_after_fin": extra,
                     "peer_fin_frame": peer_fin.frame if peer_fin is not None else None,
                     "half_closed_s": seconds(until - fin.ts_ns)}))
        closing = conn.transition_frames("CLOSING")
        if closing:
            first = min(f for f in fins if f >= 0)
            ts = next((p.ts_ns for p in conn.notable if p.frame == first), conn.first_ts_ns)
            out.append(self.make(
                "simultaneous_close", conn.flow_id, first, closing[-1], ts,
                "simultaneous close: both sides sent FIN before receiving the other's",
                {"fin_frames": fins, "closing_frames": closing}))
        return out


def max_close_delay_ns(params: Mapping[str, ParamValue]) -> int:
    """:class:`CloseWaitStuck`'s ``max_close_delay_s`` parameter in nanoseconds, as it
    compares it."""
    return int(float(params["max_close_delay_s"]) * 1e9)


# The compiled engine's twin of closed_quietly (tcptrace_py/_engine.pyx): the same tests on
# the packed notable packets and C fields.
from tcptrace_py.implementation import compiled as _compiled  # noqa: E402

reference_closed_quietly = closed_quietly
if _compiled is not None:
    closed_quietly = _compiled.closed_quietly  # noqa: F811
