"""Reset detectors: RST storms, abortive closes, resets on data or after idle, keep-alive
timeouts.

RST storms need every RST of the capture in time order while connections finish in any order,
so RSTs are counted into fixed time bins (a tenth of the window) with per-host counters: memory
grows with the capture's duration in bins that saw RSTs, not with the number of RSTs.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from tcptrace_py.connection import Connection, NotablePacket
from tcptrace_py.detectors.base import (
    NS_PER_S,
    Code,
    Detector,
    Param,
    ParamValue,
    human,
    register,
    seconds,
)
from tcptrace_py.diagnostics import Diagnostics
from tcptrace_py.events import Anomaly
from tcptrace_py.lazy_dataclass import dataclass, field
from tcptrace_py.options import Options
from tcptrace_py.segment import ACK, FIN, RST, SYN, addr_text

_MASK = 0xFFFFFFFF
_HALF = 1 << 31
SIDES = ("client", "server")
_BINS_PER_WINDOW = 10
_MAX_SAMPLE_FRAMES = 20


def rsts(conn: Connection) -> list[NotablePacket]:
    return [p for p in conn.notable if p.flags & RST]


@dataclass
class _Bin:
    """The RSTs seen in one tenth of the storm window: how many, from and to whom, where."""

    count: int = 0
    first_frame: int = -1
    last_frame: int = -1
    first_ts_ns: int = -1
    senders: Counter[str] = field(default_factory=Counter)
    receivers: Counter[str] = field(default_factory=Counter)
    frames: list[int] = field(default_factory=list)

    def add(self, frame: int, ts_ns: int, sender: str, receiver: str) -> None:
        self.count += 1
        if self.first_frame < 0 or frame < self.first_frame:
            self.first_frame = frame
        self.last_frame = max(self.last_frame, frame)
        if self.first_ts_ns < 0 or ts_ns < self.first_ts_ns:
            self.first_ts_ns = ts_ns
        self.senders[sender] += 1
        self.receivers[receiver] += 1
        if len(self.frames) < _MAX_SAMPLE_FRAMES:
            self.frames.append(frame)


@register
class RstStorm(Detector):
    """Many RSTs in a short sliding window: capture-wide, per host, and per connection."""

    name = "rst_storm"
    quiet_skip = True  # base.quiet: no RST (rst_count): no notable RST packet
    params = (
        Param("window_s", 1.0, "Sliding window length. One second matches how operators "
              "read rates (RSTs per second) and spans many RTTs."),
        Param("min_rsts", 100, "RSTs in one window, capture-wide, for a storm: a busy server "
              "sees a handful of refusals and aborts per second; a hundred is a port scan, a "
              "crashing service or a RST-injecting middlebox."),
        Param("host_min_rsts", 50, "RSTs sent by one host in one window for a per-host storm "
              "(reported when that host is not already most of a capture-wide storm)."),
        Param("connection_min_rsts", 10, "RSTs from one connection within the window for a "
              "burst: a stack answers each segment of a dead connection with one RST, so more "
              "than a few mean a peer kept sending into it."),
        Param("top_peers", 5, "Hosts listed in the evidence (senders and receivers)."),
    )
    codes = (Code("rst_storm", "warning", "network",
                  "Many RSTs in a short window (scope capture, host or connection): count, "
                  "rate, top peers, frames."),)

    capture_wide = True  # capture-wide and per-host storms count RSTs of every connection

    def __init__(self, values: Mapping[str, ParamValue], options: Options) -> None:
        super().__init__(values, options)
        self.window_ns = max(int(float(self.p["window_s"]) * NS_PER_S), _BINS_PER_WINDOW)
        self.bin_ns = self.window_ns // _BINS_PER_WINDOW
        self.bins: dict[int, _Bin] = {}

    def on_connection(self, conn: Connection) -> Iterable[Anomaly]:
        packets = rsts(conn)
        if not packets:
            return ()
        if not self.sharded:
            self.fold(self.summarize(conn), [])
        need = int(self.p["connection_min_rsts"])
        if len(packets) < need:
            return ()
        # Largest count of this connection's RSTs inside one window (two pointers, in time).
        times = sorted(p.ts_ns for p in packets)
        best, lo = 0, 0
        for hi, t in enumerate(times):
            while t - times[lo] >= self.window_ns:
                lo += 1
            best = max(best, hi - lo + 1)
        if best < need:
            return ()
        first_rst = conn.first_rst_frame
        # RSTs that answer segments after the connection's own closing RST from the same
        # sender are the expected aftermath of an abort (RFC 9293 3.10.7.1), not an attack.
        aftermath = first_rst >= 0 and all(
            p.frame >= first_rst and p.sender == conn.first_rst_sender for p in packets)
        span_ns = packets[-1].ts_ns - packets[0].ts_ns
        details = {
            "scope": "connection",
            "count": len(packets),
            "max_in_window": best,
            "window_s": float(self.p["window_s"]),
            "rate_per_s": round(len(packets) / (span_ns / NS_PER_S), 1) if span_ns else None,
            "by": sorted({p.sender for p in packets}),
            "frames": [p.frame for p in packets[:_MAX_SAMPLE_FRAMES]],
            "after_abort": aftermath,
        }
        return (self.make("rst_storm", conn.flow_id, packets[0].frame, packets[-1].frame,
                          packets[0].ts_ns, f"burst of {len(packets)} RSTs on one connection"
                          + (" answering segments after its abort" if aftermath else ""),
                          details, severity="info" if aftermath else None),)

    def summarize(self, conn: Connection) -> Any:
        """(client address, server address, [(frame, ts_ns, sender)] of its RSTs)."""
        packets = rsts(conn)
        if not packets:
            return None
        return (addr_text(conn.client_addr), addr_text(conn.server_addr),
                [(p.frame, p.ts_ns, p.sender) for p in packets])

    def fold(self, share: Any, anomalies: list[Anomaly]) -> list[Anomaly]:
        client, server, packets = share
        bins = self.bins
        bin_ns = self.bin_ns
        for frame, ts_ns, sender in packets:
            b = bins.get(ts_ns // bin_ns)
            if b is None:
                b = bins[ts_ns // bin_ns] = _Bin()
            if sender == "client":
                b.add(frame, ts_ns, client, server)
            else:
                b.add(frame, ts_ns, server, client)
        return anomalies

    def _windows(self) -> list[tuple[int, int, list[_Bin]]]:
        """Non-overlapping windows of maximal count: (count, start bin, bins), greedy."""
        keys = sorted(self.bins)
        out: list[tuple[int, int, list[_Bin]]] = []
        i = 0
        # Two pointers over sorted bins: the window starting at keys[i] covers the bins with
        # key < keys[i] + _BINS_PER_WINDOW.
        while i < len(keys):
            j = i
            total = 0
            while j < len(keys) and keys[j] < keys[i] + _BINS_PER_WINDOW:
                total += self.bins[keys[j]].count
                j += 1
            out.append((total, keys[i], [self.bins[k] for k in keys[i:j]]))
            i += 1
        return out

    def on_end(self, end_ns: int, diag: Diagnostics) -> Iterable[Anomaly]:
        if not self.bins:
            return ()
        windows = self._windows()
        top = int(self.p["top_peers"])
        out: list[Anomaly] = []
        # Capture-wide: report each storm once (the best window, then skip overlapping ones).
        storms: list[tuple[int, int, list[_Bin]]] = []
        for total, start, bins in sorted(windows, key=lambda w: (-w[0], w[1])):
            if total < int(self.p["min_rsts"]):
                break
            if any(abs(start - s) < _BINS_PER_WINDOW for _, s, _ in storms):
                continue
            storms.append((total, start, bins))
        covered: set[tuple[str, int]] = set()
        for total, start, bins in sorted(storms, key=lambda w: w[1]):
            senders: Counter[str] = Counter()
            receivers: Counter[str] = Counter()
            for b in bins:
                senders.update(b.senders)
                receivers.update(b.receivers)
            for host, n in senders.items():
                if n * 2 >= total:
                    covered.add((host, start))
            out.append(self._storm("capture", total, bins, senders, receivers, top))
        host_need = int(self.p["host_min_rsts"])
        reported: list[tuple[str, int]] = []
        for total, start, bins in sorted(windows, key=lambda w: (-w[0], w[1])):
            if total < host_need:
                break
            senders = Counter()
            for b in bins:
                senders.update(b.senders)
            for host, n in senders.items():
                if n < host_need:
                    continue
                if any(h == host and abs(start - s) < _BINS_PER_WINDOW
                       for h, s in list(covered) + reported):
                    continue
                reported.append((host, start))
                receivers = Counter()
                for b in bins:
                    receivers.update(b.receivers)
                a = self._storm("host", n, bins, Counter({host: n}), receivers, top)
                a.details["host"] = host
                out.append(a)
        return out

    def _storm(self, scope: str, count: int, bins: list[_Bin], senders: Counter[str],
               receivers: Counter[str], top: int) -> Anomaly:
        first = min(b.first_frame for b in bins)
        last = max(b.last_frame for b in bins)
        ts = min(b.first_ts_ns for b in bins)
        frames = sorted(f for b in bins for f in b.frames)[:_MAX_SAMPLE_FRAMES]
        window_s = float(self.p["window_s"])
        details = {
            "scope": scope,
            "count": count,
            "window_s": window_s,
            "rate_per_s": round(count / window_s, 1),
            "top_senders": [[h, n] for h, n in senders.most_common(top)],
            "top_receivers": [[h, n] for h, n in receivers.most_common(top)],
            "frames": frames,
        }
        who = f" from {senders.most_common(1)[0][0]}" if scope == "host" else ""
        return self.make("rst_storm", None, first, last, ts,
                         f"RST storm{who}: {count} RSTs within {window_s:g} s", details)


@register
class ResetKinds(Detector):
    """How a connection was reset: abortive close, reset on data, reset after idle."""

    name = "resets"
    quiet_skip = True  # base.quiet: no first_rst_frame
    params = (
        Param("min_idle_s", 300.0, "Silence in both directions before a RST for "
              "reset_after_idle: firewalls and NATs drop idle flows after 5 min to 1 h (AWS "
              "NLB 350 s, Linux conntrack 5 days, many firewalls 300-3600 s)."),
        Param("answer_max_rtts", 2.0, "A bare RST answers a peer segment (reset_on_data, "
              "half_open) only when it follows the peer's last segment within this many round "
              "trips at the capture point: a stack with no state resets at once on the "
              "segment, so the RST trails it by at most one round trip wherever the capture "
              "sits; twice allows for jitter. A later RST nothing prompted is an abort."),
        Param("answer_min_s", 0.05, "Smallest answer window, whatever the round trip: on a "
              "LAN (round trips of microseconds) scheduling delays of a loaded host would "
              "otherwise make an answering RST look unprompted."),
        Param("unknown_rtt_s", 0.25, "Round trip assumed when the capture shows none (no "
              "handshake, no RTT sample): 250 ms covers intercontinental paths, as "
              "Options.rst_crossing_s does."),
    )
    codes = (
        Code("abortive_close", "warning", "network",
             "An endpoint closed with RST while its data was still in flight (SO_LINGER 0, "
             "or close() with unread data): the peer may lose data."),
        Code("reset_on_data", "error", "network",
             "Data answered by a bare RST with no close: the peer had no state for the "
             "connection (restarted, crashed, or a middlebox forgot it)."),
        Code("reset_after_idle", "warning", "network",
             "A RST after the connection sat idle past min_idle_s: a middlebox idle timeout "
             "or a peer that restarted."),
    )

    def on_connection(self, conn: Connection) -> Iterable[Anomaly]:
        if conn.first_rst_frame < 0 or conn.handshake_done_frame < 0 and \
                conn.pure_syn_sent[0]:
            # No obeyed RST, or one during the handshake (refusals are connection_refused).
            return ()
        rst = next((p for p in conn.notable if p.frame == conn.first_rst_frame
                    and p.flags & RST), None)
        if rst is None:
            return ()
        side = 0 if rst.sender == "client" else 1
        name, peer = SIDES[side], SIDES[1 - side]
        out: list[Anomaly] = []
        own_fin_before = 0 <= conn.fin_frame[side] < rst.frame
        base = conn.base_seq[side]
        rst_rel = (rst.seq - base) & _MASK if base >= 0 else -1
        # Peer segments after the RST that acknowledge less than the RST's sequence number:
        # ACK numbers never go back, so that much of the RST sender's data was unacknowledged
        # (in flight) when it reset.
        later_acks = [e.ack for e in conn.events if e.endpoint == peer and e.direction == "sent"
                      and e.frame > rst.frame and "A" in e.flags]
        in_flight = 0
        basis = "peer ACKs after the RST"
        if rst_rel > 0 and later_acks:
            d = rst_rel - min(later_acks)
            if 0 < d < _HALF:
                in_flight = d
        elif not later_acks:
            # No peer segment after the RST (a capture near the peer, which obeyed it at
            # once). The RST sender's own bare RSTs afterwards answer peer ACKs that reached it
            # after its abort: each echoes that ACK's number as its sequence number (RFC 9293
            # 3.10.7.1), so those ACKs, and that much data, were in flight at the abort.
            echoes = [(p.seq - base) & _MASK for p in conn.notable
                      if p.sender == name and p.frame > rst.frame
                      and p.flags & (RST | ACK | SYN | FIN) == RST] if base >= 0 else []
            d = rst_rel - min(echoes) if rst_rel > 0 and echoes else 0
            if 0 < d < _HALF:
                in_flight = d
                basis = "its own RSTs answering peer ACKs sent before the abort arrived"
            else:
                # Else the peer's last ACK before the RST says what was unacknowledged.
                in_flight = conn.analyzer.unacknowledged(side == 0, rst.seq)
                basis = "peer's last ACK before the RST"
        bare = not rst.flags & ACK
        peer_data = conn.payload_bytes[1 - side] > 0
        window_ns = self._answer_window_ns(conn)
        prompted = 0 <= rst.since_peer_ns <= window_ns
        unanswered = 0 if in_flight or own_fin_before else self._unanswered(conn, side, rst)
        if in_flight and not own_fin_before:
            out.append(self.make(
                "abortive_close", conn.flow_id, rst.frame, rst.frame, rst.ts_ns,
                f"{name} aborted with RST while at least {in_flight} bytes it sent were "
                "unacknowledged", {"by": name, "rst_frame": rst.frame,
                                   "rst_flags": "RA" if rst.flags & ACK else "R",
                                   "in_flight_bytes_at_least": in_flight,
                                   "peer_acks_after_rst": len(later_acks),
                                   "basis": basis}))
        elif unanswered:
            out.append(self.make(
                "abortive_close", conn.flow_id, rst.frame, rst.frame, rst.ts_ns,
                f"{name} reset the connection without answering the {unanswered} bytes "
                f"{peer} sent: a close() with them unread (RFC 2525 2.17) or an abort",
                {"by": name, "rst_frame": rst.frame, "rst_flags": "RA",
                 "unanswered_peer_bytes": unanswered, "in_flight_bytes_at_least": 0,
                 "peer_acks_after_rst": len(later_acks),
                 "basis": "peer data acknowledged by the RST, never answered"}))
        elif bare and peer_data and not own_fin_before and not rst.flags & (SYN | FIN) \
                and not prompted:
            # Nothing prompted it: the peer's last segment is long past (more than a round
            # trip), so this is not a stack answering a segment it has no state for but an
            # abort (an application's close with SO_LINGER 0, a process killed); the peer was
            # not sending into a forgotten connection (suricata-verify tcp-opt.pcap frame 42).
            out.append(self.make(
                "abortive_close", conn.flow_id, rst.frame, rst.frame, rst.ts_ns,
                f"{name} aborted with a bare RST {seconds(rst.since_peer_ns):g} s after "
                f"{peer}'s last segment: no segment prompted it",
                {"by": name, "rst_frame": rst.frame, "rst_flags": "R",
                 "in_flight_bytes_at_least": 0, "peer_acks_after_rst": len(later_acks),
                 "since_peer_segment_s": seconds(rst.since_peer_ns),
                 "answer_window_s": seconds(window_ns),
                 "basis": "unprompted: no peer segment within the answer window"}))
        elif bare and peer_data and not own_fin_before and not rst.flags & (SYN | FIN):
            out.append(self.make(
                "reset_on_data", conn.flow_id, rst.frame, rst.frame, rst.ts_ns,
                f"{name} answered {peer}'s segments with a bare RST: it had no state for the "
                "connection", {"by": name, "rst_frame": rst.frame,
                               "peer_payload_bytes": conn.payload_bytes[1 - side]}))
            # RFC 9293 3.5.2 names this a half-open connection: the peer still believed it
            # was established and sent data into a connection the other end had forgotten.
            # The code is declared (and documented for both cases) by the synack detector.
            out.append(Anomaly(
                "half_open", "error", conn.flow_id, rst.frame, rst.frame, rst.ts_ns,
                f"half-open (RFC 9293 3.5.2): {peer} sent data on a connection {name} no "
                "longer had", {"by": name, "believed_established": peer, "rst_frame": rst.frame,
                               "evidence": "reset_on_data"}, "network"))
        elif conn.rst_not_taken_frame > rst.frame:
            # The RST never took effect: its receiver went on sending, believing the
            # connection established, while the RST's sender had dropped it.
            out.append(Anomaly(
                "half_open", "error", conn.flow_id, rst.frame, conn.rst_not_taken_frame,
                rst.ts_ns, f"half-open (RFC 9293 3.5.2): {peer} went on sending after {name}'s "
                "RST, which never reached it (lost after the capture point, or answered by a "
                "challenge ACK)", {"by": name, "believed_established": peer,
                                   "rst_frame": rst.frame,
                                   "sent_after_frame": conn.rst_not_taken_frame,
                                   "evidence": "rst_not_taken"}, "network"))
        idle_ns = min(conn.analyzer.client.idle_max_ns, conn.analyzer.server.idle_max_ns)
        if idle_ns >= int(float(self.p["min_idle_s"]) * NS_PER_S) and \
                conn.last_ts_ns - rst.ts_ns < idle_ns:
            out.append(self.make(
                "reset_after_idle", conn.flow_id, rst.frame, rst.frame, rst.ts_ns,
                f"RST from {name} after the connection sat idle {human(idle_ns)}",
                {"by": name, "rst_frame": rst.frame, "idle_s": seconds(idle_ns)}))
        return out

    def _answer_window_ns(self, conn: Connection) -> int:
        """How long after a peer segment a RST may come and still answer it.

        The round trip at the capture point is the sum of both directions' handshake RTTs
        (SYN to SYN-ACK, SYN-ACK to ACK: one of them is near zero next to a host), else of
        their mean RTT samples, else ``unknown_rtt_s``.
        """
        c, s = conn.analyzer.client, conn.analyzer.server
        if c.handshake_rtt_ns >= 0 and s.handshake_rtt_ns >= 0:
            rtt_ns = c.handshake_rtt_ns + s.handshake_rtt_ns
        elif c.rtt.count or s.rtt.count:
            rtt_ns = int((c.rtt.mean if c.rtt.count else 0) + (s.rtt.mean if s.rtt.count else 0))
        else:
            rtt_ns = int(float(self.p["unknown_rtt_s"]) * NS_PER_S)
        return max(int(float(self.p["answer_max_rtts"]) * rtt_ns),
                   int(float(self.p["answer_min_s"]) * NS_PER_S))

    @staticmethod
    def _unanswered(conn: Connection, side: int, rst: NotablePacket) -> int:
        """Peer payload bytes the RST acknowledges although its sender never sent any data.

        RFC 2525 2.17: a stack that close()s with received data unread resets instead of
        closing; so does an abort. An endpoint that received a request and answered nothing
        but a RST discarded it (the server of ``samples/close_unread.pcap``). Kept narrow on
        purpose: an endpoint that sent data of its own may have read everything and then
        reset (SO_LINGER 0 after a complete exchange is common), and one that probed first
        (keep-alive) was reset by its kernel's timer, not by a close.
        """
        peer = 1 - side
        base = conn.base_seq[peer]
        if not rst.flags & ACK or conn.payload_bytes[side] or not conn.payload_bytes[peer] \
                or conn.handshake_done_frame < 0 or conn.pure_syn_sent[peer] + \
                conn.synack_sent[peer] == 0 or base < 0:
            return 0
        st = conn.analyzer.client if side == 0 else conn.analyzer.server
        if st.keepalives or st.zwp_pkts:
            return 0
        acked = (rst.ack - base - 1) & _MASK  # the peer's bytes after its SYN
        if 0 <= conn.fin_frame[peer] < rst.frame:
            acked -= 1  # and its FIN
        return acked if 0 < acked < _HALF else 0


@register
class KeepaliveTimeout(Detector):
    """Keep-alive probes left unanswered, then the prober reset or dropped the connection."""

    name = "keepalive_timeout"
    quiet_skip = True  # base.quiet: no keepalives
    params = (
        Param("min_unanswered", 3, "Trailing unanswered keep-alive probes needed: one lost "
              "probe is retried; Linux gives up after TCP_KEEPCNT (default 9) and Windows "
              "after 10, but 3 in a row already shows the peer is gone."),
    )
    codes = (Code("keepalive_timeout", "error", "network",
                  "Keep-alive probes went unanswered, then the prober reset the connection "
                  "(or the capture ended): the peer or the path is gone."),)

    def on_connection(self, conn: Connection) -> Iterable[Anomaly]:
        kas = conn.analyzer.keepalives
        if not kas:
            return ()
        out: list[Anomaly] = []
        for name in SIDES:
            mine = [k for k in kas if k.sender == name]
            trailing = []
            for k in reversed(mine):
                if k.answered_by_frame >= 0:
                    break
                trailing.append(k)
            trailing.reverse()
            if len(trailing) < int(self.p["min_unanswered"]):
                continue
            rst = next((p for p in conn.notable if p.flags & RST and p.sender == name
                        and p.frame > trailing[-1].frame), None)
            details = {
                "by": name,
                "unanswered_probes": len(trailing),
                "frames": [k.frame for k in trailing],
                "intervals_s": [seconds(b.ts_ns - a.ts_ns)
                                for a, b in zip(trailing, trailing[1:], strict=False)],
                "rst_frame": rst.frame if rst is not None else None,
            }
            out.append(self.make(
                "keepalive_timeout", conn.flow_id, trailing[0].frame,
                rst.frame if rst is not None else trailing[-1].frame, trailing[0].ts_ns,
                f"{len(trailing)} keep-alive probes from {name} unanswered"
                + (", then RST" if rst is not None else ""), details))
        return out
