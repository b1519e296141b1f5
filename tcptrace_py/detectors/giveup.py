"""Connections that died by retransmission exhaustion (the inference of ``giveup.py``).

A sender whose data the peer never acknowledged backs its timer off and, after its last
retry (Linux ``tcp_retries2``, an application's ``TCP_USER_TIMEOUT``), drops the connection
without FIN or RST. The connection inferred it (fsm ``RETRIES_EXHAUSTED``: that side CLOSED)
when the capture went on past the retransmission that would have been due; this detector
reports it with the run of retransmissions and says what the peer is left with: a half-open
connection it still believes in.
"""

from __future__ import annotations

from collections.abc import Iterable

from tcptrace_py.connection import Connection
from tcptrace_py.detectors.base import Code, Detector, intervals_s, register, seconds
from tcptrace_py.events import Anomaly
from tcptrace_py.segment import endpoint_text


@register
class RetriesExhausted(Detector):
    """A side gave up after retransmitting into silence; the peer is left half-open."""

    name = "retries_exhausted"
    quiet_skip = True  # base.quiet: gave_up is None
    codes = (Code("retries_exhausted", "error", "network",
                  "A side's data went unanswered through RTO backoff, then the side fell "
                  "silent although the capture went on past its next due retransmission: it "
                  "gave up and closed without FIN or RST (Linux tcp_retries2, "
                  "TCP_USER_TIMEOUT), and the peer still holds a half-open connection."),)

    def on_connection(self, conn: Connection) -> Iterable[Anomaly]:
        if conn.gave_up is None:
            return ()
        side, at_ns = conn.gave_up
        run = conn.retx_runs[side]
        if run is None:
            return ()
        by = "client" if side == 0 else "server"
        peer = conn.server if side == 0 else conn.client
        start_ns = run.original_ts_ns if run.original_ts_ns >= 0 else run.times_ns[0]
        times = ([run.original_ts_ns] if run.original_ts_ns >= 0 else []) + run.times_ns
        next_rto_ns = at_ns - run.last_ts_ns
        addr, port = (conn.client_addr, conn.client_port) if side == 0 else \
            (conn.server_addr, conn.server_port)
        details = {
            "by": by,
            "retransmissions": run.count,
            "original_frame": run.original_frame if run.original_frame >= 0 else None,
            "frames": run.frames,
            "intervals_s": intervals_s(times),
            "gave_up_after_s": seconds(at_ns - start_ns),
            "next_rto_s": seconds(next_rto_ns),
            "last_retransmission_frame": run.last_frame,
            "peer_state": peer.state.value,
        }
        summary = (f"{by} {endpoint_text(addr, port)} gave up after {run.count} "
                   f"retransmissions over {seconds(at_ns - start_ns):g} s (no retransmission "
                   f"when the next was due, {seconds(next_rto_ns):g} s after frame "
                   f"{run.last_frame}); the {'server' if side == 0 else 'client'} is left "
                   f"half-open in {peer.state.value}")
        first = run.original_frame if run.original_frame >= 0 else run.frames[0]
        return (self.make("retries_exhausted", conn.flow_id, first, run.last_frame,
                          start_ns, summary, details),)
