"""Retransmission timing detectors, from the analyzer's classified ``retransmissions``.

SYN, SYN-ACK and FIN retransmissions belong to the handshake and close detectors; these look
at data only (kinds ``rto``, ``fast``, ``tail_loss_probe``, ``spurious``, ``other``).
"""

from __future__ import annotations

from collections.abc import Iterable

from tcptrace_py import units
from tcptrace_py.analysis.evidence import Retransmission
from tcptrace_py.connection import Connection
from tcptrace_py.detectors.base import Code, Detector, Param, register, seconds
from tcptrace_py.events import Anomaly

SIDES = ("client", "server")
_CONTROL = ("syn", "synack", "fin")
_MAX_FRAMES = 20


def data_retransmissions(conn: Connection) -> list[Retransmission]:
    return [r for r in conn.analyzer.retransmissions if r.kind not in _CONTROL]


@register
class RetransmissionTiming(Detector):
    """Timeouts, exponential backoff, too many and spurious retransmissions."""

    name = "retransmission"
    quiet_skip = True  # base.quiet: no retransmission
    params = (
        Param("min_backoffs", 2, "Timer retransmissions of one segment needed for rto_backoff: "
              "the second timeout is the first that shows the RTO doubling (RFC 6298 5.5)."),
        Param("backoff_min_ratio", 1.5, "Smallest ratio between consecutive timeout intervals "
              "counted as backoff (2.0 is RFC 6298; timers fire late, Linux caps at rto_max)."),
        Param("excessive_ratio", 0.1, "Share of a side's data segments retransmitted for "
              "excessive_retransmissions: 10% loss cuts Reno/CUBIC throughput by an order of "
              "magnitude (Mathis et al.); a few percent is an ordinary lossy path."),
        Param("black_hole_min_bytes", 1200, "Payload a re-sent segment needs to count as "
              "full-size for pmtu_black_hole: segments much smaller pass every path (IPv6 "
              "guarantees a 1280-byte MTU), Ethernet's are 1448-1460 bytes."),
        Param("black_hole_min_timeouts", 3, "Timer re-sends of the same full-size segment "
              "needed for pmtu_black_hole: one or two timeouts are ordinary loss."),
        Param("excessive_min_count", 10, "Retransmitted segments needed as well, so a short "
              "connection losing 1 of 5 segments is not called excessive."),
    )
    codes = (
        Code("retransmission_timeout", "warning", "network",
             "Data re-sent after the retransmission timer expired (no dup-ACK or SACK "
             "evidence): a stall of at least one RTO."),
        Code("rto_backoff", "warning", "network",
             "The same data timed out repeatedly with growing intervals (RFC 6298 5.5 "
             "backoff): the path or the peer is unreachable for seconds."),
        Code("excessive_retransmissions", "warning", "network",
             "A side retransmitted more than excessive_ratio of its data segments."),
        Code("pmtu_black_hole", "warning", "network",
             "Full-size segments timed out again and again and were never acknowledged while "
             "the path still carried smaller packets: a path-MTU black hole (a link with a "
             "smaller MTU drops them and no ICMP fragmentation-needed comes back). Proven when "
             "the sender then re-sent the same data in smaller segments that got through "
             "(Linux MTU probing), suspected otherwise."),
        Code("spurious_retransmission", "info", "network",
             "Data re-sent although it had been acknowledged (or a D-SACK proved it arrived): "
             "an RTO or TLP fired too early, or ACKs were delayed or lost."),
    )

    def on_connection(self, conn: Connection) -> Iterable[Anomaly]:
        rex = data_retransmissions(conn)
        if not rex:
            return ()
        out: list[Anomaly] = []
        stats = (conn.analyzer.client, conn.analyzer.server)
        missing = conn.missing_side()
        for side, name in enumerate(SIDES):
            mine = [r for r in rex if r.sender == name]
            if not mine:
                continue
            # With the receiver's side missing from the capture, its dup ACKs and SACKs are
            # missing too: a fast retransmission looks like a timeout, so none is claimed
            # (capture.one_sided_capture counts them).
            rto = [r for r in mine if r.kind == "rto"] if missing != 1 - side else []
            if rto:
                out.append(self.make(
                    "retransmission_timeout", conn.flow_id, rto[0].frame, rto[-1].frame,
                    rto[0].ts_ns, f"{len(rto)} timeout retransmission(s) by {name}",
                    {"by": name, "count": len(rto),
                     "frames": [r.frame for r in rto[:_MAX_FRAMES]],
                     "original_frames": [r.original_frame for r in rto[:_MAX_FRAMES]],
                     "intervals_s": [seconds(r.interval_ns) for r in rto[:_MAX_FRAMES]],
                     "max_interval_s": seconds(max(r.interval_ns for r in rto))}))
            out.extend(self._backoff(conn, name, mine))
            out.extend(self._black_hole(conn, side, mine))
            st = stats[side]
            count = sum(1 for r in mine if r.kind != "spurious")
            if st.data_pkts and count >= int(self.p["excessive_min_count"]) and \
                    count / st.data_pkts >= float(self.p["excessive_ratio"]):
                out.append(self.make(
                    "excessive_retransmissions", conn.flow_id, mine[0].frame, mine[-1].frame,
                    mine[0].ts_ns, f"{name} retransmitted {count} of {st.data_pkts} data "
                    "segments", {"by": name, "count": count, "data_pkts": st.data_pkts,
                                 "ratio": round(count / st.data_pkts, 3),
                                 "by_kind": {k: sum(1 for r in mine if r.kind == k)
                                             for k in sorted({r.kind for r in mine})}}))
            spurious = [r for r in mine if r.spurious]
            if spurious:
                out.append(self.make(
                    "spurious_retransmission", conn.flow_id, spurious[0].frame,
                    spurious[-1].frame, spurious[0].ts_ns,
                    f"{len(spurious)} spurious retransmission(s) by {name}",
                    {"by": name, "count": len(spurious),
                     "frames": [r.frame for r in spurious[:_MAX_FRAMES]],
                     "triggers": sorted({r.trigger for r in spurious if r.trigger})}))
        return out

    def _black_hole(self, conn: Connection, side: int,
                    mine: list[Retransmission]) -> list[Anomaly]:
        """Timer re-sends of one sequence number, all full-size, never acknowledged by their
        full size: then either smaller re-sends that got through (proven: the stack lowered
        its MSS, Linux ``tcp_mtu_probing``), or nothing acknowledged at all while the peer
        kept sending (suspected: small packets pass, large ones vanish)."""
        name = SIDES[side]
        by_seq: dict[int, list[Retransmission]] = {}
        for r in mine:
            if r.trigger == "rto":
                by_seq.setdefault(r.seq, []).append(r)
        min_full = int(self.p["black_hole_min_bytes"])
        acked = conn.analyzer.acked(side == 0)
        peer = conn.analyzer.server if side == 0 else conn.analyzer.client
        for seq, chain in sorted(by_seq.items()):
            full = [r for r in chain if r.payload_len >= min_full]
            if len(full) < int(self.p["black_hole_min_timeouts"]):
                continue
            size = max(r.payload_len for r in full)
            smaller = [r for r in chain if r.ts_ns > full[-1].ts_ns
                       and r.payload_len < full[-1].payload_len]
            if smaller and acked > seq:
                proven = True
            elif not smaller and acked <= seq and peer.last_ts_ns > full[0].ts_ns:
                proven = False
            else:
                continue
            details = {"by": name, "seq": seq, "segment_bytes": size,
                       "timeouts": len(full), "frames": [r.frame for r in full],
                       "proven": proven,
                       "smaller_bytes": smaller[-1].payload_len if smaller else None}
            if proven:
                summary = (f"{name}'s {size}-byte segments timed out {len(full)} times, then "
                           f"got through re-sent as {details['smaller_bytes']}-byte segments: "
                           "a path-MTU black hole (large packets dropped, no ICMP)")
            else:
                summary = (f"{name}'s {size}-byte segments timed out {len(full)} times and "
                           f"were never acknowledged while {SIDES[1 - side]}'s packets still "
                           "arrived: a path-MTU black hole is likely (large packets dropped, "
                           "no ICMP)")
            return [self.make("pmtu_black_hole", conn.flow_id, full[0].frame,
                              (smaller or full)[-1].frame, full[0].ts_ns, summary, details)]
        return []

    def _backoff(self, conn: Connection, name: str,
                 mine: list[Retransmission]) -> list[Anomaly]:
        by_seq: dict[int, list[Retransmission]] = {}
        for r in mine:
            if r.trigger == "rto" or r.kind == "rto":
                by_seq.setdefault(r.seq, []).append(r)
        worst: list[Retransmission] = []
        for chain in by_seq.values():
            if len(chain) > len(worst):
                worst = chain
        if len(worst) < int(self.p["min_backoffs"]):
            return []
        gaps = [r.interval_ns for r in worst if r.interval_ns > 0]
        ratios = [round(b / a, 2) for a, b in zip(gaps, gaps[1:], strict=False) if a > 0]
        if not ratios or min(ratios) < float(self.p["backoff_min_ratio"]):
            return []
        return [self.make(
            "rto_backoff", conn.flow_id, worst[0].frame, worst[-1].frame, worst[0].ts_ns,
            f"{name} timed out {len(worst)} times on the same data (seq {worst[0].seq}), "
            f"intervals {units.seconds_list([g / 1e9 for g in gaps])}",
            {"by": name, "seq": worst[0].seq, "timeouts": len(worst),
             "original_frame": worst[0].original_frame, "frames": [r.frame for r in worst],
             "intervals_s": [seconds(g) for g in gaps], "ratios": ratios,
             "total_s": seconds(worst[-1].since_original_ns)})]
