"""Slow connects: a handshake that completed only after its SYN or SYN-ACK was retransmitted.

The user-visible cost of a lost SYN is the retry timer: Linux waits 1 s, then 2, 4... (RFC
6298 5.5 backoff from the 1 s initial RTO), Windows 3 s, old BSD 6 s, so a connect that
loses one SYN takes a second or more instead of one RTT. The record has the raw facts
(``client_syn_retransmissions``, ``handshake_s``); this finding says it happened, how often
each side retried, on which schedule, and how much time the retries cost.

Evidence: the connection's ``notable`` SYN and SYN-ACK packets (sent before the handshake
completed: the client's first ACK after the SYN-ACK, ``Connection.handshake_done_ts_ns``).
The time lost is the union of the two retry spans, each from a side's first handshake
segment to its last retry: SYN and SYN-ACK retries that overlap (a server answering each
retried SYN with a SYN-ACK retransmission) are counted once.
"""

from __future__ import annotations

from collections.abc import Iterable

from tcptrace_py.connection import Connection, NotablePacket
from tcptrace_py.detectors.base import (
    Code,
    Detector,
    Param,
    intervals_s,
    register,
    seconds,
)
from tcptrace_py.detectors.handshake import backoff_pattern
from tcptrace_py.events import Anomaly
from tcptrace_py.segment import ACK, FIN, RST, SYN, endpoint_text

_HANDSHAKE_FLAGS = SYN | ACK | RST | FIN


def _span_union_ns(spans: list[tuple[int, int]]) -> int:
    """Total length of the union of closed intervals."""
    total = 0
    end = None
    for a, b in sorted(spans):
        if end is None or a > end:
            total += b - a
            end = b
        elif b > end:
            total += b - end
            end = b
    return total


@register
class SlowConnect(Detector):
    """A connection established only after SYN or SYN-ACK retransmissions."""

    name = "slow_connect"
    quiet_skip = True  # base.quiet: at most one client SYN and one SYN-ACK
    params = (
        Param("min_extra_delay_s", 0.5, "Time the retries must have cost to be reported. "
              "Every standard first retry waits at least 1 s (RFC 6298 2.1 and Linux's 1 s "
              "initial RTO; Windows 3 s): half of that keeps duplicated or eager re-sends a "
              "few milliseconds apart (a capture point logging a SYN twice) out."),
        Param("interval_tolerance", 0.3, "Relative tolerance when naming the retry schedule "
              "(as unanswered_syn.interval_tolerance: timers fire late by scheduling jitter)."),
    )
    codes = (Code("slow_connect", "warning", "network",
                  "The handshake completed only after the SYN (or the SYN-ACK) was "
                  "retransmitted: the retries, their schedule and the delay they added "
                  "(connect() took seconds instead of one round trip)."),)

    def on_connection(self, conn: Connection) -> Iterable[Anomaly]:
        if conn.self_connect or (conn.pure_syn_sent[0] and conn.pure_syn_sent[1]):
            return ()  # simultaneous open: no client waiting on a listener
        answered = conn.synack_sent[1] > 0 or conn.answered_frame[0] >= 0
        if not answered or (conn.pure_syn_sent[0] < 2 and conn.synack_sent[1] < 2):
            return ()
        done_ns = conn.handshake_done_ts_ns
        if done_ns < 0 and conn.answered_frame[0] < 0:
            return ()  # the handshake never completed: unanswered_syn / half_open
        limit = done_ns if done_ns >= 0 else conn.last_ts_ns
        syns = self._sent(conn, "client", SYN, limit)
        synacks = self._sent(conn, "server", SYN | ACK, limit)
        spans = [(p[0].ts_ns, p[-1].ts_ns) for p in (syns, synacks) if len(p) >= 2]
        if not spans:
            return ()
        extra_ns = _span_union_ns(spans)
        if extra_ns < float(self.p["min_extra_delay_s"]) * 1e9:
            return ()
        tol = float(self.p["interval_tolerance"])
        syn_gaps = intervals_s([p.ts_ns for p in syns])
        synack_gaps = intervals_s([p.ts_ns for p in synacks])
        first = syns[0] if syns else synacks[0]
        handshake_s = seconds(done_ns - first.ts_ns) if done_ns >= 0 else None
        server = endpoint_text(conn.server_addr, conn.server_port)
        parts = []
        if len(syns) >= 2:
            parts.append(f"SYN retried {len(syns) - 1} time(s) after "
                         f"{', '.join(f'{g:.1f}' for g in syn_gaps)} s "
                         f"({backoff_pattern(syn_gaps, tol)})")
        if len(synacks) >= 2:
            parts.append(f"SYN-ACK retried {len(synacks) - 1} time(s) after "
                         f"{', '.join(f'{g:.1f}' for g in synack_gaps)} s "
                         f"({backoff_pattern(synack_gaps, tol)})")
        details = {
            "server": server,
            "syn_retries": max(len(syns) - 1, 0),
            "syn_frames": [p.frame for p in syns],
            "syn_intervals_s": syn_gaps,
            "syn_pattern": backoff_pattern(syn_gaps, tol) if len(syns) >= 2 else None,
            "synack_retries": max(len(synacks) - 1, 0),
            "synack_frames": [p.frame for p in synacks],
            "synack_intervals_s": synack_gaps,
            "synack_pattern": backoff_pattern(synack_gaps, tol) if len(synacks) >= 2
            else None,
            "extra_delay_s": seconds(extra_ns),
            "handshake_s": handshake_s,
            "handshake_ack_frame": conn.handshake_done_frame
            if conn.handshake_done_frame >= 0 else None,
        }
        last = max(p[-1].frame for p in (syns, synacks) if p)
        summary = (f"slow connect to {server}: " + "; ".join(parts)
                   + f"; the retries added {seconds(extra_ns):g} s"
                   + (f" (handshake took {handshake_s:g} s)" if handshake_s is not None
                      else ""))
        return (self.make("slow_connect", conn.flow_id, first.frame,
                          conn.handshake_done_frame if conn.handshake_done_frame >= 0
                          else last, first.ts_ns, summary, details),)

    @staticmethod
    def _sent(conn: Connection, sender: str, flags: int,
              limit_ns: int) -> list[NotablePacket]:
        """``sender``'s handshake segments with exactly ``flags`` (of SYN/ACK/RST/FIN) sent
        up to ``limit_ns``."""
        return [p for p in conn.notable if p.sender == sender
                and p.flags & _HANDSHAKE_FLAGS == flags and p.ts_ns <= limit_ns]
