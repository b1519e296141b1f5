"""ICMP detectors: routers and hosts answering for a connection with ICMP errors.

Evidence: ``conn.icmp_errors`` (``tcptrace_py.icmp.IcmpError``: reporter, type, code, MTU and
the quoted segment's sender and sequence number), kept by the engine from ICMP and ICMPv6
errors that quote one of the connection's segments.
"""

from __future__ import annotations

from collections.abc import Iterable

from tcptrace_py.connection import Connection
from tcptrace_py.detectors.base import Code, Detector, register
from tcptrace_py.events import Anomaly
from tcptrace_py.icmp import IcmpError
from tcptrace_py.segment import addr_text, endpoint_text

_MAX_FRAMES = 20


def _sender(conn: Connection, err: IcmpError) -> str:
    """Which side sent the segment the error quotes."""
    client = err.src == conn.client_addr and err.sport == conn.client_port
    return "client" if client else "server"


@register
class IcmpDetector(Detector):
    """ICMP errors for the connection's segments: rejected attempts, unreachable paths, PMTU."""

    name = "icmp"
    quiet_skip = True  # base.quiet: no icmp_errors
    codes = (
        Code("icmp_unreachable", "error", "network",
             "An ICMP or ICMPv6 error (destination unreachable, time exceeded, parameter "
             "problem) answered the connection's segments: a router or the destination host "
             "rejected them (a firewall's REJECT, no route, an expired TTL). Error when it "
             "answered the client's SYN and the client tried no more (connect() failed at "
             "once); warning otherwise."),
        Code("icmp_packet_too_big", "info", "network",
             "Path MTU discovery (RFC 1191, RFC 8201): a router reported a smaller next-hop MTU "
             "(ICMP fragmentation needed, ICMPv6 packet too big) for the connection's "
             "segments, which the sender then resends smaller."),
    )

    def on_connection(self, conn: Connection) -> Iterable[Anomaly]:
        if not conn.icmp_errors:
            return ()
        out: list[Anomaly] = []
        errors = [e for e in conn.icmp_errors if not e.too_big]
        too_big = [e for e in conn.icmp_errors if e.too_big]
        if errors:
            ended = conn.syn_icmp_error()
            last = ended or errors[-1]
            who = _sender(conn, last)
            reporters = sorted({addr_text(e.reporter) for e in errors})
            kinds = sorted({e.name for e in errors})
            server = endpoint_text(conn.server_addr, conn.server_port)
            if ended is not None and not conn.packets[1]:
                summary = (f"the client's SYN to {server} was answered by ICMP {ended.name} "
                           f"from {addr_text(ended.reporter)}: the attempt ended there")
            else:
                summary = (f"ICMP {', '.join(kinds)} from {', '.join(reporters)} for "
                           f"{len(errors)} of the {who}'s segments")
            out.append(self.make(
                "icmp_unreachable", conn.flow_id, errors[0].frame, errors[-1].frame,
                errors[0].ts_ns, summary,
                {"by": reporters[0] if len(reporters) == 1 else reporters,
                 "kinds": kinds, "type": last.type, "code": last.code,
                 "icmp_version": last.version, "count": len(errors),
                 "segment_sender": who, "ended_attempt": ended is not None,
                 "frames": [e.frame for e in errors[:_MAX_FRAMES]]},
                severity=None if ended is not None and not conn.packets[1] else "warning"))
        if too_big:
            mtus = sorted({e.mtu for e in too_big if e.mtu > 0})
            who = _sender(conn, too_big[0])
            out.append(self.make(
                "icmp_packet_too_big", conn.flow_id, too_big[0].frame, too_big[-1].frame,
                too_big[0].ts_ns, f"{', '.join(sorted({addr_text(e.reporter) for e in too_big}))}"
                f" reported a next-hop MTU of {', '.join(str(m) for m in mtus) or 'unknown'} "
                f"for the {who}'s segments ({len(too_big)} time(s))",
                {"by": sorted({addr_text(e.reporter) for e in too_big}), "mtu": mtus,
                 "count": len(too_big), "segment_sender": who,
                 "frames": [e.frame for e in too_big[:_MAX_FRAMES]]}))
        return out
