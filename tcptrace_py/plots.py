"""Plots with matplotlib (Agg backend): one connection in detail, or a whole capture.

Kinds for one connection (:func:`plot_flow`):

* ``tsg`` -- time-sequence graph in the manner of tcptrace's xplot output: each data segment
  a vertical bar from its first to its last sequence number at the time it was seen, the
  receiver's ACK line (green) and ACK + advertised window line (yellow, the most the sender may
  send), retransmissions in red, SACK blocks in purple, zero windows, SYN, RST and FIN marked;
* ``rtt`` -- RTT samples (ACK time minus the time of the segment it acknowledges exactly, only
  for segments sent once: Karn's rule, RFC 6298 section 3);
* ``throughput`` -- payload bytes per second per direction in time bins, and the average;
* ``window`` -- the receiver's advertised window (scaled) and the sender's bytes in flight.

``timeline`` (:func:`plot_timeline`) draws every connection as a horizontal bar from its first
to its last packet, coloured by how it ended, over the rate of RST segments.

Sequence/ACK/window values are not in the engine's packet rows (they would cost memory on
every run), so plots re-read the capture once for the one flow: frames between its first and
last frame with its 4-tuple, decoded by the same Decoder the engine uses.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from tcptrace_py import units
from tcptrace_py.analysis import flags as af
from tcptrace_py.capture import read_flow_segments
from tcptrace_py.lazy_dataclass import dataclass
from tcptrace_py.segment import ACK, FIN, RST, SYN, Segment, ts_in_range

if TYPE_CHECKING:
    from tcptrace_py.frames import AnalysisResult

_SEQ_MOD = 1 << 32

CLOSE_COLOURS = {
    "graceful": "tab:green", "rst_by_client": "tab:red", "rst_by_server": "tab:orange",
    "refused": "darkred", "unanswered": "tab:gray", "half_closed_at_capture_end": "gold",
    "open_at_capture_end": "tab:blue",
}
"""Timeline bar colour per ``close`` value."""

FLOW_KINDS = ("tsg", "rtt", "throughput", "window")


_BYTE_UNITS = ((1e9, "GB"), (1e6, "MB"), (1e3, "kB"), (1.0, "B"))
"""Decimal byte units for axes (as network rates are quoted; 1 kB = 1000 bytes)."""
ZERO_LENGTH_MIN_FRACTION = 1 / 400
"""A timeline bar is at least this fraction of the capture's span wide: a one-packet
connection (a SYN of a scan or flood) lasts 0 s and would be invisible."""
CLIP_WINDOW_FACTOR = 1.5
"""The tsg's ACK + window line is clipped when it rises above this many times the highest
data, ACK or SACK value: a large advertised window would otherwise squash the data."""


def _byte_axis(ax: Any, label: str, per_second: bool = False) -> None:
    """Label the y axis in B, kB, MB or GB (by the axis' top) and format ticks in that unit."""
    from matplotlib.ticker import FuncFormatter

    top = max(abs(v) for v in ax.get_ylim())
    scale, unit = next(((f, u) for f, u in _BYTE_UNITS if top >= f), (1.0, "B"))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v / scale:g}"))
    ax.set_ylabel(f"{label} ({unit}{'/s' if per_second else ''})")


def _rate_text(bytes_per_s: float) -> str:
    """``410 kB/s``: three significant digits in the largest decimal unit."""
    scale, unit = next(((f, u) for f, u in _BYTE_UNITS if bytes_per_s >= f), (1.0, "B"))
    return f"{bytes_per_s / scale:.3g} {unit}/s"


def _note_if_empty(ax: Any, what: str) -> None:
    """An empty panel says why instead of showing bare axes."""
    if not ax.get_lines() and not ax.collections:
        ax.text(0.5, 0.5, what, transform=ax.transAxes, ha="center", va="center",
                color="gray")


def _plt() -> Any:
    """pyplot with the non-interactive Agg backend (no display needed, no GUI imports)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _as_result(result_or_path: Any) -> AnalysisResult:
    from tcptrace_py.frames import AnalysisResult, analyze

    if isinstance(result_or_path, AnalysisResult):
        return result_or_path
    return analyze(result_or_path, packets=True)


@dataclass(frozen=True)
class FlowPackets:
    """One connection's segments in capture order, split by sender, for plotting."""

    record: dict[str, Any]
    segments: list[tuple[Segment, bool, int]]
    """(segment, from_client, analysis flags) in capture order."""
    whole: FlowPackets | None = None
    """For a stretch of the connection (:meth:`stretch`): the whole of it, which fixes the
    time origin, the sequence bases and the window scale (a stretch may lack the SYNs)."""

    def stretch(self, first_frame: int, last_frame: int) -> FlowPackets:
        """Only the segments of frames ``first_frame`` to ``last_frame`` (inclusive), drawn
        on the whole connection's axes (same time origin and relative sequence numbers)."""
        segs = [s for s in self.segments if first_frame <= s[0].frame <= last_frame]
        if not segs:  # KeyError, as for an unknown flow: the input lacks what was asked
            upper = "" if last_frame >= 1 << 62 else str(last_frame)
            raise KeyError(f"no packet of flow {self.record['flow_id']} in frames "
                           f"{first_frame}-{upper}")
        return FlowPackets(self.record, segs, self.whole or self)

    @property
    def t0_ns(self) -> int:
        """Time origin: the connection's first packet."""
        segs = (self.whole or self).segments
        return segs[0][0].ts_ns if segs else 0

    def sender_is_client(self, direction: str) -> bool:
        """``auto``: the endpoint that sent more payload (the interesting direction)."""
        if direction == "auto":
            r = self.record
            return int(r["client_payload_bytes"]) >= int(r["server_payload_bytes"])
        return direction == "client"

    def base_seq(self, from_client: bool) -> int:
        """First sequence number seen from that sender (its ISN when the SYN was seen)."""
        if self.whole is not None:
            return self.whole.base_seq(from_client)
        for seg, fc, _m in self.segments:
            if fc == from_client:
                return seg.seq
        return 0

    def wscale(self, from_client: bool) -> int:
        """Window shift of that endpoint's windows (RFC 7323: only when both SYNs had it)."""
        if self.whole is not None:
            return self.whole.wscale(from_client)
        shift = {True: -1, False: -1}
        for seg, fc, _m in self.segments:
            if seg.flags & SYN and shift[fc] < 0:
                shift[fc] = seg.wscale
        if shift[True] < 0 or shift[False] < 0:
            return 0
        return min(shift[from_client], 14)


def flow_packets(result_or_path: Any, flow_id: int) -> FlowPackets:
    """Re-read the capture for one flow's segments (seq/ack/window/SACK included)."""
    res = _as_result(result_or_path)
    rec = next((r for r in res.records if r["flow_id"] == flow_id), None)
    if rec is None:
        raise KeyError(f"no connection with flow_id {flow_id}")
    masks = {row[0]: row[5] for row in res.packet_rows() if row[2] == flow_id}
    segs = [(seg, fc, masks.get(seg.frame, 0))
            for seg, fc in read_flow_segments(res.reopen(), rec, int(rec["last_frame"]))]
    return FlowPackets(rec, segs)


def _new_ax(ax: Any, size: tuple[float, float] = (10, 6)) -> Any:
    if ax is not None:
        return ax
    fig, new = _plt().subplots(figsize=size, layout="constrained")
    return new


def _rel(value: int, base: int) -> int:
    return (value - base) % _SEQ_MOD


def _times(fp: FlowPackets) -> Iterator[tuple[float, Segment, bool, int]]:
    t0 = fp.t0_ns
    for seg, fc, mask in fp.segments:
        yield (seg.ts_ns - t0) / 1e9, seg, fc, mask


def _title(fp: FlowPackets, what: str, sender_client: bool | None = None) -> str:
    r = fp.record
    c = f"{r['client_ip']}:{r['client_port']}"
    s = f"{r['server_ip']}:{r['server_port']}"
    if sender_client is None:
        return f"flow {r['flow_id']} {what}: {c} <-> {s}"
    a, b = (c, s) if sender_client else (s, c)
    return f"flow {r['flow_id']} {what}: {a} -> {b}"


RETRANSMISSION_CLASSES = ("spurious", "fast", "rto", "tail_loss_probe", "other")
"""Classes a data retransmission is shown under (the first that applies): spurious (the data
was already acknowledged, or a D-SACK said so), fast (dup ACKs or SACK evidence), rto (timer
expiry), tail-loss probe, other (a re-send none of those explains)."""
_CLASS_BITS = ((af.SPURIOUS_RETRANSMISSION, "spurious"), (af.FAST_RETRANSMISSION, "fast"),
               (af.RTO_RETRANSMISSION, "rto"), (af.TAIL_LOSS_PROBE, "tail_loss_probe"),
               (af.RETRANSMISSION, "other"))


def retransmission_class(mask: int) -> str | None:
    """The class of a data segment's retransmission from its analysis flags, or None when
    the segment is not a retransmission."""
    return next((name for bit, name in _CLASS_BITS if mask & bit), None)


@dataclass
class TsgSeries:
    """What a time-sequence graph shows for one sender, as plain numbers (seconds since the
    connection's first packet; sequence numbers relative to the sender's first one), for
    matplotlib here and the HTML report alike."""

    data: list[tuple[float, int, int, int]]
    """(t, first, end, frame) of each data segment sent once."""
    retx: list[tuple[float, int, int, int, str]]
    """(t, first, end, frame, class) of each retransmitted data segment
    (:data:`RETRANSMISSION_CLASSES`)."""
    ack: list[tuple[float, int, int, int]]
    """(t, ack, ack + scaled window, frame) of each ACK from the receiver."""
    sack: list[tuple[float, int, int, int]]
    """(t, left, right, frame) of each SACK block the receiver reported."""
    zero_window: list[tuple[float, int, int]]
    """(t, ack, frame) of each zero window advertised."""
    syn: list[tuple[float, int, int]]
    fin: list[tuple[float, int, int]]
    rst: list[tuple[float, int, int]]
    """(t, sequence number, frame) of SYN, FIN (at its sequence number) and RST segments."""

    @property
    def top(self) -> int:
        """Highest data, ACK or SACK value (the height the window line is clipped to)."""
        return max([*(d[2] for d in self.data), *(r[2] for r in self.retx),
                    *(a[1] for a in self.ack), *(s[2] for s in self.sack), 0])

    @property
    def window_clipped(self) -> bool:
        """The ACK + window line rises above CLIP_WINDOW_FACTOR times :attr:`top`."""
        top = self.top
        return bool(self.ack) and top > 0 and \
            max(a[2] for a in self.ack) > CLIP_WINDOW_FACTOR * top


def tsg_series(fp: FlowPackets, sender_client: bool) -> TsgSeries:
    """The time-sequence graph of the data ``sender_client`` sends (tcptrace's xplot)."""
    base_snd = fp.base_seq(sender_client)
    shift = fp.wscale(not sender_client)
    out = TsgSeries([], [], [], [], [], [], [], [])
    for t, seg, fc, mask in _times(fp):
        frame = seg.frame
        if fc == sender_client:
            lo = _rel(seg.seq, base_snd)
            if seg.flags & SYN:
                out.syn.append((t, lo, frame))
            if seg.payload_len:
                cls = retransmission_class(mask)
                if cls is None:
                    out.data.append((t, lo, lo + seg.payload_len, frame))
                else:
                    out.retx.append((t, lo, lo + seg.payload_len, frame, cls))
            if seg.flags & FIN:
                out.fin.append((t, lo + seg.payload_len, frame))
            if seg.flags & RST:
                out.rst.append((t, lo, frame))
        else:
            if seg.flags & ACK:
                ack = _rel(seg.ack, base_snd)
                win = seg.window if seg.flags & SYN else seg.window << shift
                out.ack.append((t, ack, ack + win, frame))
                if seg.window == 0 and not seg.flags & (SYN | FIN | RST):
                    out.zero_window.append((t, ack, frame))
                for left, right in seg.sack:
                    out.sack.append((t, _rel(left, base_snd), _rel(right, base_snd), frame))
            if seg.flags & RST:
                out.rst.append((t, _rel(seg.ack, base_snd) if seg.flags & ACK else 0, frame))
    return out


def _tsg(fp: FlowPackets, ax: Any, sender_client: bool) -> None:
    s = tsg_series(fp, sender_client)
    clipped = s.window_clipped
    if s.ack:
        ack_t = [a[0] for a in s.ack]
        ax.step(ack_t, [a[1] for a in s.ack], where="post", color="tab:green", lw=1,
                label="ACK")
        ax.step(ack_t, [a[2] for a in s.ack], where="post", color="goldenrod", lw=1,
                label="ACK + advertised window" + (" (clipped)" if clipped else ""))
    if s.data:
        ax.vlines([d[0] for d in s.data], [d[1] for d in s.data], [d[2] for d in s.data],
                  color="black", lw=1.2, label="data segment")
    if s.retx:
        rx_x = [r[0] for r in s.retx]
        ax.vlines(rx_x, [r[1] for r in s.retx], [r[2] for r in s.retx], color="tab:red",
                  lw=2, label="retransmission")
        ax.scatter(rx_x, [r[2] for r in s.retx], marker="$R$", color="tab:red", s=40,
                   zorder=3)
    if s.sack:
        ax.vlines([b[0] for b in s.sack], [b[1] for b in s.sack], [b[2] for b in s.sack],
                  color="tab:purple", lw=2.5, alpha=0.7, label="SACK block")
    for points, kw in ((s.zero_window, {"marker": "x", "color": "magenta", "s": 50,
                                        "zorder": 3, "label": "zero window"}),
                       (s.syn, {"marker": ">", "color": "tab:green", "s": 40, "zorder": 3,
                                "label": "SYN"}),
                       (s.fin, {"marker": "D", "color": "tab:blue", "s": 40, "zorder": 3,
                                "label": "FIN"}),
                       (s.rst, {"marker": "*", "color": "darkred", "s": 120, "zorder": 4,
                                "label": "RST"})):
        if points:
            ax.scatter([p[0] for p in points], [p[1] for p in points], **kw)
    if clipped:  # the window line leaves the top: the data keeps the height
        ax.set_ylim(min(0, ax.get_ylim()[0]), s.top * 1.1)
    ax.set_xlabel("time since first packet (s)")
    ax.set_title(_title(fp, "time-sequence graph", sender_client))
    _note_if_empty(ax, "no segment from this sender")
    _byte_axis(ax, "relative sequence number")
    ax.grid(True, alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", fontsize="small")


def rtt_samples(fp: FlowPackets, sender_client: bool) -> list[tuple[float, float]]:
    """(time s, RTT ms) for each ACK that exactly acknowledges a segment sent once (Karn)."""
    sent: dict[int, tuple[float, bool]] = {}
    out: list[tuple[float, float]] = []
    for t, seg, fc, _mask in _times(fp):
        if fc == sender_client:
            length = seg.payload_len + (1 if seg.flags & (SYN | FIN) else 0)
            if length:
                end = (seg.seq + length) % _SEQ_MOD
                sent[end] = (sent[end][0], True) if end in sent else (t, False)
        elif seg.flags & ACK and seg.ack in sent:
            t_sent, again = sent.pop(seg.ack)
            if not again:
                out.append((t, (t - t_sent) * 1e3))
    return out


def _rtt(fp: FlowPackets, ax: Any, sender_client: bool) -> None:
    samples = rtt_samples(fp, sender_client)
    if samples:
        ax.plot(*zip(*samples, strict=True), "o", ms=3, color="tab:blue", label="RTT sample")
    p = "client_" if sender_client else "server_"
    srtt = fp.record.get(p + "srtt_ms")
    if srtt is not None:
        ax.axhline(float(srtt), color="tab:orange", ls="--", lw=1,
                   label=f"final SRTT {float(srtt):.3f} ms")
    ax.set_xlabel("time since first packet (s)")
    ax.set_ylabel("RTT (ms)")
    ax.set_title(_title(fp, "RTT samples (Karn)", sender_client))
    ax.grid(True, alpha=0.3)
    ax.set_ylim(bottom=0)
    _note_if_empty(ax, "no RTT sample (no ACK acknowledged a segment sent once)")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper right", fontsize="small")


@dataclass
class ThroughputSeries:
    """Payload bytes per second of each direction in equal time bins (retransmissions left
    out: goodput as the receiver gets it)."""

    bin_s: float
    """Bin width: 1/100 of the connection's span, at least 1 ms."""
    t_min: float
    """Start of the first bin: the earliest timestamp (not the first packet's: with
    timestamps going backwards a packet can lie before the first one)."""
    client: list[float]
    """Bytes per second sent by the client in each bin (empty: it sent no payload)."""
    server: list[float]
    """Same for the server."""
    client_avg: float | None
    server_avg: float | None
    """Average over the connection's span (None when nothing was sent or it lasted 0 s)."""


def backwards_frames(fp: FlowPackets) -> list[int]:
    """Frames whose timestamp is earlier than the one before them in the connection."""
    out: list[int] = []
    last = None
    for seg, _fc, _m in fp.segments:
        if last is not None and seg.ts_ns < last:
            out.append(seg.frame)
        last = seg.ts_ns if last is None else max(last, seg.ts_ns)
    return out


def throughput_series(fp: FlowPackets) -> ThroughputSeries:
    """Binned goodput of both directions. Bins cover the earliest to the latest timestamp,
    not the first to the last packet: with timestamps going backwards (a clock step, merged
    files) a packet can lie before the first one or the last one before others, and binning
    from the first packet would index before the first bin or past the last."""
    pts = list(_times(fp))
    t_min = min((p[0] for p in pts), default=0.0)
    t_max = max((p[0] for p in pts), default=0.0)
    span = t_max - t_min
    bin_s = max(span / 100, 0.001)
    nbins = int(span / bin_s) + 1
    rates: dict[bool, list[float]] = {}
    avgs: dict[bool, float | None] = {}
    for fc in (True, False):
        counts = [0] * nbins
        total = 0
        for t, seg, c, mask in pts:
            if c == fc and seg.payload_len and not mask & af.RETRANSMISSION:
                counts[min(max(int((t - t_min) / bin_s), 0), nbins - 1)] += seg.payload_len
                total += seg.payload_len
        rates[fc] = [c / bin_s for c in counts] if total else []
        avgs[fc] = total / span if total and span > 0 else None
    return ThroughputSeries(bin_s, t_min, rates[True], rates[False], avgs[True], avgs[False])


def _throughput(fp: FlowPackets, ax: Any) -> None:
    """Payload per time bin (:func:`throughput_series`). A connection whose timestamps go
    backwards is said so in the title, as its rate is then only as good as its timestamps."""
    s = throughput_series(fp)
    for rates, avg, label, colour in ((s.client, s.client_avg, "client -> server", "tab:blue"),
                                      (s.server, s.server_avg, "server -> client",
                                       "tab:orange")):
        if not rates:
            continue
        ax.step([s.t_min + i * s.bin_s for i in range(len(rates))], rates, where="post",
                color=colour, label=label)
        if avg is not None:
            ax.axhline(avg, color=colour, ls="--", lw=1,
                       label=f"{label} average {_rate_text(avg)}")
    ax.set_xlabel("time since first packet (s)")
    _note_if_empty(ax, "no payload sent")
    _byte_axis(ax, f"payload, {units.seconds(s.bin_s)} bins", per_second=True)
    back = backwards_frames(fp)
    title = _title(fp, "throughput")
    if back:
        title += (f"\ntimestamps go backwards at {len(back)} packet(s) (first: frame "
                  f"{back[0]}): binned by timestamp, not capture order")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper right", fontsize="small")


@dataclass
class WindowSeries:
    """The receiver's advertised window against the sender's bytes in flight."""

    window: list[tuple[float, int]]
    """(t, scaled window) of each ACK from the receiver."""
    in_flight: list[tuple[float, int]]
    """(t, highest byte sent minus highest byte acknowledged) after every segment."""
    zero_window: list[float]
    """Times of zero windows advertised."""


def window_series(fp: FlowPackets, sender_client: bool) -> WindowSeries:
    """Window and bytes in flight of the data ``sender_client`` sends."""
    shift = fp.wscale(not sender_client)
    base = fp.base_seq(sender_client)
    out = WindowSeries([], [], [])
    high = 0
    acked = 0
    for t, seg, fc, _mask in _times(fp):
        if fc == sender_client:
            end = _rel(seg.seq, base) + seg.payload_len
            if end > high and end - high < _SEQ_MOD // 2:
                high = end
        elif seg.flags & ACK:
            acked = max(acked, _rel(seg.ack, base))
            win = seg.window if seg.flags & SYN else seg.window << shift
            out.window.append((t, win))
            if seg.window == 0 and not seg.flags & (SYN | FIN | RST):
                out.zero_window.append(t)
        out.in_flight.append((t, max(high - acked, 0)))
    return out


def _window(fp: FlowPackets, ax: Any, sender_client: bool) -> None:
    s = window_series(fp, sender_client)
    if s.window:
        ax.step(*zip(*s.window, strict=True), where="post", color="goldenrod",
                label="advertised window")
    if s.in_flight:
        ax.step(*zip(*s.in_flight, strict=True), where="post", color="tab:blue",
                label="bytes in flight")
    if s.zero_window:
        ax.scatter(s.zero_window, [0] * len(s.zero_window), marker="x", color="magenta",
                   s=50, zorder=3, label="zero window")
    ax.set_xlabel("time since first packet (s)")
    _note_if_empty(ax, "no ACK from the receiver")
    _byte_axis(ax, "advertised window, bytes in flight")
    ax.set_title(_title(fp, "window", sender_client))
    ax.grid(True, alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper right", fontsize="small")


def plot_flow(result_or_path: Any, flow_id: int, kind: str = "tsg", ax: Any = None, *,
              direction: str = "auto", frames: tuple[int, int] | None = None) -> Any:
    """Plot one connection; returns the matplotlib Axes (``.figure.savefig(...)``).

    ``result_or_path`` is an ``AnalysisResult`` or anything ``analyze`` accepts;
    ``direction`` (``auto``/``client``/``server``) picks the data sender for tsg/rtt/window;
    ``frames=(first, last)`` draws only that stretch of the connection (same axes origin).

    >>> ax = plot_flow("capture.pcap", 0, "tsg")  # doctest: +SKIP
    >>> ax.figure.savefig("flow0.png")            # doctest: +SKIP
    """
    if kind not in FLOW_KINDS:
        raise ValueError(f"unknown plot kind {kind!r} (one of {', '.join(FLOW_KINDS)})")
    fp = flow_packets(result_or_path, flow_id)
    if frames is not None:
        fp = fp.stretch(*frames)
    sender_client = fp.sender_is_client(direction)
    ax = _new_ax(ax)
    if kind == "tsg":
        _tsg(fp, ax, sender_client)
    elif kind == "rtt":
        _rtt(fp, ax, sender_client)
    elif kind == "throughput":
        _throughput(fp, ax)
    else:
        _window(fp, ax, sender_client)
    return ax


def plot_timeline(result_or_path: Any, ax: Any = None) -> Any:
    """Every connection as a bar over time, coloured by outcome, with the RST rate below.

    Returns the Axes holding the bars. With ``ax`` given, the RST rate goes on a twin axis.
    """
    res = _as_result(result_or_path)
    # A connection whose times no output can hold (null start_ts: segment.TS_NS_MIN..MAX)
    # has no place on a time axis: left out, and the title says how many.
    undrawable = sum(1 for r in res.records if r["start_ts"] is None or r["end_ts"] is None)
    records = sorted((r for r in res.records
                      if r["start_ts"] is not None and r["end_ts"] is not None),
                     key=lambda r: (r["start_ts"], r["flow_id"]))
    rows = [row for row in res.packet_rows() if ts_in_range(row[1])]
    t0 = min((r["start_ts"] for r in records), default=0.0)
    span = max((r["end_ts"] for r in records), default=t0) - t0
    rst_ts = sorted(ts / 1e9 - t0 for _f, ts, _fid, _c, tf, _m, _p in rows if tf & RST)
    ax_rst: Any = None
    if ax is None and rst_ts:
        fig, (ax, ax_rst) = _plt().subplots(
            2, 1, figsize=(11, 7), sharex=True, height_ratios=(4, 1), layout="constrained")
    elif ax is None:  # no RST at all: no empty rate panel
        fig, ax = _plt().subplots(figsize=(11, 6), layout="constrained")
    elif rst_ts:
        ax_rst = ax.twinx()
    min_width = max(span * ZERO_LENGTH_MIN_FRACTION, 1e-6)
    seen: set[str] = set()
    for i, r in enumerate(records):
        close = str(r["close"])
        width = max(float(r["duration_s"]), min_width)
        ax.barh(i, width, left=r["start_ts"] - t0, height=0.8,
                color=CLOSE_COLOURS.get(close, "tab:gray"),
                label=close if close not in seen else None)
        seen.add(close)
    ax.set_ylabel("connection (by start time)")
    ax.set_title(f"{len(records)} TCP connections" + (
        f" ({undrawable} more with timestamps outside 1970-2262 not drawn)"
        if undrawable else ""))
    ax.grid(True, axis="x", alpha=0.3)
    if len(records) <= 40:
        ax.set_yticks(range(len(records)), [str(r["flow_id"]) for r in records])
    ax.invert_yaxis()
    if seen:
        ax.legend(loc="best", fontsize="small", title="close")
    if ax_rst is None:
        ax.set_xlabel("time since first connection (s)")
        return ax
    bin_s = max(span / 100, 0.001)
    nbins = int(span / bin_s) + 1
    counts = [0] * nbins
    for t in rst_ts:
        counts[min(max(int(t / bin_s), 0), nbins - 1)] += 1
    ax_rst.step([i * bin_s for i in range(nbins)], [c / bin_s for c in counts], where="post",
                color="darkred", label="RST/s")
    ax_rst.set_ylabel("RST segments/s")
    ax_rst.set_xlabel("time since first connection (s)")
    ax_rst.grid(True, alpha=0.3)
    return ax
