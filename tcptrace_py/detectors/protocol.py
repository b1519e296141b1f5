"""Protocol-violation detectors, from the frames the connection collected while replaying.

``conn.invalid_flags``, ``syn_with_data``, ``data_after_fin``, ``after_rst`` and
``out_of_window_rsts`` are capped frame lists (``max_evidence_items``); these detectors only
turn them into findings, so the per-connection cost is a few list checks.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from tcptrace_py.connection import Connection
from tcptrace_py.detectors.base import Code, Detector, Param, register
from tcptrace_py.events import Anomaly
from tcptrace_py.segment import ACK, RST, SYN, flags_text

_MASK = 0xFFFFFFFF
_MAX_FRAMES = 20


@register
class ProtocolViolations(Detector):
    """Segments no conforming stack sends in that state (RFC 9293 3.10)."""

    name = "protocol"
    quiet_skip = True  # base.quiet: no invalid_flags, syn_with_data, data_after_fin, after_rst or
    # out_of_window_rsts
    params = (
        Param("crossing_s", 0.25, "Data or FIN from the RST's receiver this soon after the "
              "RST may have crossed it in flight (sent before the RST arrived): not counted "
              "as data_after_rst. 250 ms covers intercontinental RTTs."),
    )
    codes = (
        Code("invalid_flags", "warning", "protocol",
             "Invalid flag combinations (SYN+FIN, SYN+RST, no flags, ...): scans (OS "
             "fingerprinting, null/Xmas scans) or broken middleboxes."),
        Code("syn_with_data", "warning", "protocol",
             "A SYN carrying data: info when it is a client SYN (TCP Fast Open, RFC 7413), "
             "warning for a SYN-ACK with data."),
        Code("data_after_fin", "warning", "protocol",
             "New data sent after the sender's own FIN (RFC 9293 3.10.7: no data after FIN)."),
        Code("data_after_rst", "warning", "protocol",
             "Data or FIN sent by an endpoint after it sent or obeyed a RST."),
        Code("out_of_window_rst", "warning", "network",
             "A RST outside the receiver's window, not obeyed (RFC 5961 3.2): a stale RST or "
             "an injection attempt."),
    )

    def _frames(self, code: str, conn: Connection, frames: Sequence[int], summary: str,
                extra: dict[str, object] | None = None,
                severity: str | None = None) -> Anomaly:
        ts = next((p.ts_ns for p in conn.notable if p.frame == frames[0]), conn.first_ts_ns)
        details: dict[str, object] = {"count": len(frames),
                                      "frames": list(frames[:_MAX_FRAMES])}
        details.update(extra or {})
        return self.make(code, conn.flow_id, frames[0], frames[-1], ts, summary, dict(details),
                         severity=severity)

    def _after_rst(self, conn: Connection) -> list[int]:
        """Frames of ``conn.after_rst`` that are violations, not crossings: the RST's sender
        going on, or its peer sending more than crossing_s after the RST (before that, the
        segment may have left before the RST arrived: the capture point is not the peer)."""
        rst = next((p for p in conn.notable if p.frame == conn.first_rst_frame), None)
        if rst is None:
            return list(conn.after_rst)
        limit_ns = rst.ts_ns + int(float(self.p["crossing_s"]) * 1e9)
        sent = {e.frame: (e.endpoint, e.ts_ns) for e in conn.events if e.direction == "sent"}
        out = []
        for frame in conn.after_rst:
            who, ts = sent.get(frame, ("", -1))
            if who == rst.sender or ts < 0 or ts > limit_ns:
                out.append(frame)
        return out

    def on_connection(self, conn: Connection) -> Iterable[Anomaly]:
        out: list[Anomaly] = []
        if conn.invalid_flags:
            frames = sorted(set(conn.invalid_flags))
            kinds = sorted({flags_text(p.flags) for p in conn.notable if p.frame in frames})
            out.append(self._frames("invalid_flags", conn, frames,
                                    f"{len(frames)} segment(s) with invalid flag combinations",
                                    {"flags": kinds}))
        if conn.syn_with_data:
            by_frame = {p.frame: p for p in conn.notable}
            for frame in conn.syn_with_data[:1]:
                p = by_frame.get(frame)
                client_syn = p is not None and p.flags & (SYN | ACK) == SYN
                acked = False
                if client_syn and p is not None:
                    sa = next((q for q in conn.notable if q.flags & (SYN | ACK) == SYN | ACK),
                              None)
                    acked = sa is not None and sa.ack == (p.seq + 1 + p.payload_len) & _MASK
                out.append(self._frames(
                    "syn_with_data", conn, conn.syn_with_data,
                    ("SYN with data (TCP Fast Open)" if client_syn else "SYN-ACK with data"),
                    {"tcp_fast_open": client_syn, "data_acknowledged": acked,
                     "payload_bytes": p.payload_len if p is not None else None},
                    severity="info" if client_syn else None))
        if conn.data_after_fin:
            out.append(self._frames("data_after_fin", conn, conn.data_after_fin,
                                    f"{len(conn.data_after_fin)} segment(s) of new data after "
                                    "their sender's FIN"))
        if conn.after_rst:
            frames = self._after_rst(conn)
            if frames:
                out.append(self._frames("data_after_rst", conn, frames,
                                        f"{len(frames)} segment(s) with data or FIN after "
                                        "a RST"))
        if conn.out_of_window_rsts:
            out.append(self._frames("out_of_window_rst", conn, conn.out_of_window_rsts,
                                    f"{len(conn.out_of_window_rsts)} RST(s) outside the "
                                    "receiver's window, not obeyed (possible injection)"))
        return out


@register
class ChallengeAcks(Detector):
    """RSTs and SYNs answered by RFC 5961 challenge ACKs: the connection went on."""

    name = "challenge_ack"
    quiet_skip = True  # base.quiet: no challenges
    params = ()
    codes = (
        Code("challenge_ack", "warning", "network",
             "An in-window RST not at the receiver's RCV.NXT (RFC 5961 3.2), or a SYN with a "
             "new ISN on an established connection (RFC 5961 4), was answered by a challenge "
             "ACK and did not end the connection: a blind injection attempt (RST or SYN "
             "spoofed by a third party), or a stale segment of a peer that lost the "
             "connection (it then resets at RCV.NXT)."),
    )

    def on_connection(self, conn: Connection) -> Iterable[Anomaly]:
        if not conn.challenges:
            return ()
        chs = conn.challenges
        injected = [f for c in chs for f in c.injected_frames]
        acks = [c.challenge_frame for c in chs if c.challenge_frame >= 0]
        kinds = sorted({c.kind for c in chs})
        apparent = sorted({"server" if c.by == "client" else "client" for c in chs})
        # What followed tells an injection from a peer that lost the connection: the apparent
        # sender going on with the connection never sent that segment; one that answers the
        # challenge ACK with a RST at RCV.NXT did (RFC 5961 3.2's legitimate reset).
        last_ack = max(acks) if acks else max(injected)
        answered_ns = max(c.challenge_ts_ns for c in chs)
        reset_after = any(p.flags & RST and p.sender in apparent and p.frame > last_ack
                          for p in conn.notable)
        stats = {"client": conn.analyzer.client, "server": conn.analyzer.server}
        went_on = not reset_after and any(stats[s].last_ts_ns > answered_ns for s in apparent)
        details: dict[str, object] = {
            "kinds": kinds,
            "by": sorted({c.by for c in chs}),
            "apparent_sender": apparent,
            "injected_frames": injected[:_MAX_FRAMES],
            "challenge_ack_frames": acks[:_MAX_FRAMES],
            "count": len(chs),
            "sender_went_on": went_on,
            "reset_at_rcv_nxt_after": reset_after,
        }
        what = " and ".join({"rst": "in-window RST(s) not at RCV.NXT",
                             "syn": "SYN(s) with a new ISN"}[k] for k in kinds)
        verdict = ("possible injection: the apparent sender went on with the connection"
                   if went_on else "the peer then reset at RCV.NXT" if reset_after
                   else "possible injection")
        return (self.make("challenge_ack", conn.flow_id, min(injected),
                          max(acks + injected), chs[0].ts_ns,
                          f"{what} answered by challenge ACK(s) (RFC 5961): {verdict}",
                          details),)
