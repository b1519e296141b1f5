"""Receive-window detectors: zero-window stalls and a receiver window that keeps filling.

Evidence: the analyzer's ``zero_window_periods`` (start/end frames, probes sent into them),
``zero_window_probes`` and ``window_full_events``, and the per-side counters.
"""

from __future__ import annotations

from collections.abc import Iterable

from tcptrace_py.analysis.evidence import ZeroWindowPeriod
from tcptrace_py.connection import Connection
from tcptrace_py.detectors.base import NS_PER_S, Code, Detector, Param, human, register, seconds
from tcptrace_py.events import Anomaly

SIDES = ("client", "server")
_MAX_FRAMES = 20


@register
class WindowDetector(Detector):
    """A receiver that closed its window for long (zero_window_stall) or kept it full."""

    name = "window"
    quiet_skip = True  # base.quiet: no zero_window_periods or window_full_events
    params = (
        Param("min_stall_s", 0.5, "Zero-window duration reported as a stall. Flow control "
              "closes windows briefly in healthy bulk transfers (one RTT, a few ms); half a "
              "second is user-visible and beyond a scheduling hiccup of the reader."),
        Param("min_probes", 2, "A shorter zero window is still a stall when the sender had to "
              "probe this many times (each probe waits at least an RTO, RFC 9293 3.8.6.1)."),
        Param("window_full_min_events", 5, "Window-full segments needed for window_full: one "
              "or two happen during slow start against a small initial window."),
    )
    codes = (
        Code("zero_window_stall", "warning", "network",
             "The receiver advertised a zero window long enough to stall the sender: "
             "duration, probes, whether it reopened."),
        Code("zero_window", "info", "network",
             "The receiver closed its window only briefly (below the stall thresholds) and "
             "the sender waited without probing: flow control at work, worth knowing when a "
             "transfer is slow."),
        Code("zero_window_probe", "info", "network",
             "The receiver closed its window briefly (below the stall thresholds) and the "
             "sender's persist timer probed it (RFC 9293 3.8.6.1) before it reopened."),
        Code("window_full", "info", "network",
             "The sender repeatedly filled the receiver's advertised window: the transfer is "
             "limited by the receiver (buffer or slow reader), not the network."),
    )

    def on_connection(self, conn: Connection) -> Iterable[Anomaly]:
        a = conn.analyzer
        out: list[Anomaly] = []
        if a.zero_window_periods:
            min_ns = int(float(self.p["min_stall_s"]) * NS_PER_S)
            min_probes = int(self.p["min_probes"])
            stats = {"client": a.client, "server": a.server}
            for name in SIDES:
                periods = []
                brief = []
                for zp in a.zero_window_periods:
                    if zp.side != name:
                        continue
                    end_ts = zp.end_ts_ns if zp.end_ts_ns >= 0 else self.end_ns_of(conn)
                    dur = end_ts - zp.start_ts_ns
                    if dur >= min_ns or zp.probes >= min_probes:
                        periods.append((zp, dur))
                    else:
                        brief.append((zp, dur))
                if not periods:
                    if brief:
                        out.append(self._brief(conn, name, brief))
                    continue
                sender = "server" if name == "client" else "client"
                probes = [p for p in a.zero_window_probes if p.sender == sender]
                total_probes = sum(zp.probes for zp, _ in periods)
                longest = max(d for _, d in periods)
                reopened = all(zp.end_frame >= 0 for zp, _ in periods)
                first, last = periods[0][0], periods[-1][0]
                details = {
                    "side": name,
                    "stalls": len(periods),
                    "duration_s": seconds(longest),
                    "total_s": seconds(sum(d for _, d in periods)),
                    "probes": total_probes,
                    "probe_frames": [p.frame for p in probes[:_MAX_FRAMES]],
                    "probe_style": sorted({p.style for p in probes}),
                    "zero_window_advertisements": stats[name].zero_window_advs,
                    "reopened": reopened,
                    "periods": [{"start_frame": zp.start_frame, "end_frame": zp.end_frame,
                                 "duration_s": seconds(d), "probes": zp.probes}
                                for zp, d in periods[:_MAX_FRAMES]],
                }
                out.append(self.make(
                    "zero_window_stall", conn.flow_id, first.start_frame,
                    last.end_frame if last.end_frame >= 0 else conn.last_frame,
                    first.start_ts_ns, f"{name} advertised a zero window for "
                    f"{human(longest)} ({total_probes} probes)"
                    + ("" if reopened else ", never reopened"), details))
        full = a.window_full_events
        # At least one event: a setting of 0 means "any", and a finding needs its first.
        need = max(1, int(self.p["window_full_min_events"]))
        if len(full) >= need:
            for name in SIDES:
                mine = [w for w in full if w.sender == name]
                if len(mine) < need:
                    continue
                out.append(self.make(
                    "window_full", conn.flow_id, mine[0].frame, mine[-1].frame, mine[0].ts_ns,
                    f"{name} filled the receiver's window {len(mine)} times",
                    {"by": name, "count": len(mine),
                     "frames": [w.frame for w in mine[:_MAX_FRAMES]],
                     "window_bytes_max": max(w.window_bytes for w in mine)}))
        return out

    def _brief(self, conn: Connection, name: str, brief: list[tuple[ZeroWindowPeriod, int]]
               ) -> Anomaly:
        """One side's zero windows, all below the stall thresholds."""
        probes = sum(zp.probes for zp, _ in brief)
        longest = max(d for _, d in brief)
        first, last = brief[0][0], brief[-1][0]
        code = "zero_window_probe" if probes else "zero_window"
        sender = "server" if name == "client" else "client"
        what = f"{sender} probed it {probes} time(s)" if probes else f"{sender} waited"
        return self.make(
            code, conn.flow_id, first.start_frame,
            last.end_frame if last.end_frame >= 0 else conn.last_frame, first.start_ts_ns,
            f"{name} closed its window {len(brief)} time(s), at most {human(longest)}; "
            f"{what}", {"side": name, "periods": len(brief), "duration_s": seconds(longest),
                        "probes": probes, "by": sender if probes else name,
                        "reopened": all(zp.end_frame >= 0 for zp, _ in brief)})
