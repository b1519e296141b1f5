"""Capture artifacts: what the capture missed or distorted, kept apart from network faults.

All findings here have category ``capture`` and severity ``info`` (never ``error``): they say
how far the capture can be trusted, not that the network failed. Per-connection ones come from
the analyzer's counters (segments never captured, ACKs of data never seen, duplicated frames);
capture-wide ones from the diagnostics (timestamps going backwards, truncated frames).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from tcptrace_py import units
from tcptrace_py.connection import Connection
from tcptrace_py.detectors.base import (
    Code,
    Detector,
    ParamValue,
    register,
)
from tcptrace_py.diagnostics import Diagnostics
from tcptrace_py.events import Anomaly
from tcptrace_py.options import Options
from tcptrace_py.segment import ts_or_none

SIDES = ("client", "server")
_TRUNCATED_CODES = ("truncated_record", "bad_record_length")
_MAX_FRAMES = 20


@register
class CaptureArtifacts(Detector):
    """Segments not captured, ACKs of unseen data, duplicated frames, clock and snaplen issues."""

    name = "capture"
    quiet_skip = True  # base.quiet: packets from both sides (so ``missing_side()`` is -1), no
    # lost_segments, acks_unseen, duplicates or truncated_pkts
    codes = (
        Code("segments_not_captured", "info", "capture",
             "Sequence space was skipped: segments the capture missed (drops, or the path "
             "split them elsewhere)."),
        Code("acks_of_unseen_data", "info", "capture",
             "ACKs covered data the capture never saw sent."),
        Code("duplicate_frames", "info", "capture",
             "Frames captured more than once (the same IP ID, or the same bytes moments "
             "apart): a capture artifact, kept out of retransmissions and every other "
             "finding."),
        Code("truncated_frames", "info", "capture",
             "Frames cut by the snaplen or a damaged file: payload or records incomplete."),
        Code("timestamps_backwards", "info", "capture",
             "Capture timestamps went backwards (clock step, merged files)."),
        Code("one_sided_capture", "info", "capture",
             "Only one side's packets are in the capture, yet they prove the other side sent "
             "(ACKs of unseen data, or an ACK after its own SYN): asymmetric routing, a span "
             "port fed one direction, or a capture filter. The missing side's states are "
             "inferred, and retransmission causes (timeout or fast) cannot be told."),
    )

    capture_wide = True  # truncated_frames counts over every connection

    def __init__(self, values: Mapping[str, ParamValue], options: Options) -> None:
        super().__init__(values, options)
        self.truncated_pkts = 0
        self.truncated_conns = 0
        self.truncated_first_frame = -1
        self.truncated_last_frame = -1
        self.truncated_ts_ns = -1

    def on_connection(self, conn: Connection) -> Iterable[Anomaly]:
        a = conn.analyzer
        out: list[Anomaly] = []
        stats = (a.client, a.server)
        # Each dict below is built only when a counter says it has an entry (most
        # connections: none), for the same findings at less cost per connection.
        if stats[0].lost_segments or stats[1].lost_segments:
            lost = {n: (s.lost_segments, s.missed_bytes)
                    for n, s in zip(SIDES, stats, strict=True) if s.lost_segments}
            out.append(self.make(
                "segments_not_captured", conn.flow_id, conn.first_frame, conn.last_frame,
                conn.first_ts_ns, "segments missing from the capture: "
                + ", ".join(f"{n} {c} gap(s), {b} bytes" for n, (c, b) in lost.items()),
                {n + "_gaps": c for n, (c, _) in lost.items()}
                | {n + "_missed_bytes": b for n, (_, b) in lost.items()}))
        missing = conn.missing_side()
        if missing < 0 and (stats[0].acks_unseen or stats[1].acks_unseen):
            # (else one_sided_capture, below, counts them)
            unseen = {n: s.acks_unseen for n, s in zip(SIDES, stats, strict=True)
                      if s.acks_unseen}
            out.append(self.make(
                "acks_of_unseen_data", conn.flow_id, conn.first_frame, conn.last_frame,
                conn.first_ts_ns, "ACKs of data the capture never saw: "
                + ", ".join(f"{n} sent {c}" for n, c in unseen.items()),
                {n + "_acks": c for n, c in unseen.items()}))
        if missing >= 0:
            out.append(self._one_sided(conn, 1 - missing))
        dups = conn.duplicates
        if dups:
            total = conn.duplicate_frames[0] + conn.duplicate_frames[1]
            out.append(self.make(
                "duplicate_frames", conn.flow_id, dups[0].frame, dups[-1].frame, dups[0].ts_ns,
                f"{total} duplicated frame(s): "
                + ", ".join(f"{n} {c}" for n, c in zip(SIDES, conn.duplicate_frames,
                                                       strict=True) if c)
                + f", up to {max(d.interval_ns for d in dups) / 1e6:.3f} ms after the original",
                {"count": total,
                 "client": conn.duplicate_frames[0], "server": conn.duplicate_frames[1],
                 "frames": [d.frame for d in dups[:_MAX_FRAMES]],
                 "original_frames": [d.original_frame for d in dups[:_MAX_FRAMES]],
                 "max_interval_us": round(max(d.interval_ns for d in dups) / 1e3, 3),
                 "identity": sorted({d.identity for d in dups}),
                 "ttl_changes": sorted({d.ttl_change for d in dups})}))
        if not self.sharded:
            share = self.summarize(conn)
            if share is not None:
                self.fold(share, [])
        return out

    def summarize(self, conn: Connection) -> tuple[int, int, int, int] | None:
        """(segments cut, last cut frame, first cut frame, its time) of a connection with
        snaplen-truncated segments."""
        a = conn.analyzer
        cut = a.client.truncated_pkts + a.server.truncated_pkts
        if not cut:
            return None
        cut_frames = [f for st in (a.client, a.server)
                      for f in (st.truncated_first_frame, st.truncated_last_frame) if f >= 0]
        firsts = [(st.truncated_first_frame, st.truncated_first_ts_ns)
                  for st in (a.client, a.server) if st.truncated_first_frame >= 0]
        first, first_ts = min(firsts, default=(conn.first_frame, conn.first_ts_ns))
        return cut, max(cut_frames, default=-1), first, first_ts

    def fold(self, share: Any, anomalies: list[Anomaly]) -> list[Anomaly]:
        cut, last, first, first_ts = share
        self.truncated_pkts += cut
        self.truncated_conns += 1
        if self.truncated_first_frame < 0 or first < self.truncated_first_frame:
            self.truncated_first_frame = first
            self.truncated_ts_ns = first_ts
        self.truncated_last_frame = max(self.truncated_last_frame, last)
        return anomalies

    def _one_sided(self, conn: Connection, seen: int) -> Anomaly:
        name, other = SIDES[seen], SIDES[1 - seen]
        st = conn.analyzer.client if seen == 0 else conn.analyzer.server
        answered = conn.answered_frame[seen]
        proof = []
        if st.acks_unseen:
            proof.append(f"{st.acks_unseen} ACK(s) of {other} data or FIN never captured")
        if answered >= 0:
            what = "SYN" if conn.pure_syn_sent[seen] else "SYN-ACK"
            proof.append(f"an ACK after its {what} (frame {answered})")
        resent = sum(1 for r in conn.analyzer.retransmissions
                     if r.sender == name and r.kind not in ("syn", "synack"))
        return self.make(
            "one_sided_capture", conn.flow_id, conn.first_frame, conn.last_frame,
            conn.first_ts_ns, f"only the {name}'s packets are in the capture, yet it answered "
            f"the {other} ({'; '.join(proof)}): the {other}'s side is missing (asymmetric "
            f"routing or a one-way capture)",
            {"seen": name, "missing": other, "seen_packets": conn.packets[seen],
             "acks_of_unseen_data": st.acks_unseen,
             "answered_frame": answered if answered >= 0 else None,
             "retransmissions_unclassified": resent})

    def on_end(self, end_ns: int, diag: Diagnostics) -> Iterable[Anomaly]:
        out: list[Anomaly] = []
        damaged = [w for w in diag.warnings if w.code in _TRUNCATED_CODES]
        if self.truncated_pkts or damaged:
            frames = [w.frame for w in damaged if w.frame is not None]
            first = self.truncated_first_frame if self.truncated_first_frame >= 0 else \
                (frames[0] if frames else 0)
            out.append(self.make(
                "truncated_frames", None, first, max(frames + [first, self.truncated_last_frame]),
                self.truncated_ts_ns if self.truncated_ts_ns >= 0 else (diag.first_ts_ns or 0),
                f"{self.truncated_pkts} TCP segment(s) cut by the snaplen in "
                f"{self.truncated_conns} connection(s)"
                + (f"; {len(damaged)} damaged record(s)" if damaged else ""),
                {"snaplen_truncated_segments": self.truncated_pkts,
                 "connections": self.truncated_conns, "damaged_records": len(damaged),
                 "damaged_frames": frames[:_MAX_FRAMES]}))
        back = diag.notes.get("timestamp_backwards", 0)
        warned = [w.frame for w in diag.warnings
                  if w.code == "timestamp_backwards" and w.frame is not None]
        if back or warned:
            steps = diag.backwards
            count = max(back, len(warned), len(steps))
            if steps:
                # Where it happened: the first step's frame and time, and how far back it and
                # the largest step went, in units a reader takes in (a clock reset reads
                # "17037 d 2 h", not 1472003999360380631 ns).
                frame, ts_ns, back_ns = steps[0]
                big = diag.backwards_max or steps[0]
                last = diag.backwards_last or steps[-1]
                known = ts_or_none(ts_ns)
                when = units.instant(None if known is None else known / 1e9)
                summary = (f"capture timestamps went backwards {count} time(s), first at "
                           f"frame {frame} ({when}) by {units.seconds(back_ns / 1e9)}")
                if big[2] > back_ns:
                    summary += f"; largest {units.seconds(big[2] / 1e9)} at frame {big[0]}"
                out.append(self.make(
                    "timestamps_backwards", None, frame, last[0], ts_ns, summary,
                    {"count": count, "frames": [f for f, _, _ in steps],
                     "backwards_s": [b / 1e9 for _, _, b in steps],
                     "max_backwards_s": big[2] / 1e9, "max_backwards_frame": big[0]}))
            else:  # diagnostics merged from a run that did not keep the steps
                out.append(self.make(
                    "timestamps_backwards", None, warned[0] if warned else 0,
                    warned[-1] if warned else 0, diag.first_ts_ns or 0,
                    f"capture timestamps went backwards {count} time(s)",
                    {"count": count, "frames": warned[:_MAX_FRAMES]}))
        return out
