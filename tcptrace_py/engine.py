"""Engine: drives capture -> decode -> flow table -> connections -> detectors -> records.

The one loop of the project. It is a generator, so memory is bounded by live connections:
each connection's result is yielded as soon as the flow table lets it go. Capture-wide
findings (RST storms, floods, capture artifacts) come at the end through :meth:`Engine.finish`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

from tcptrace_py import implementation
from tcptrace_py.capture import route_segments
from tcptrace_py.capture.source import source_name
from tcptrace_py.connection import Connection
from tcptrace_py.decode import Decoder
from tcptrace_py.detectors import DetectorSet
from tcptrace_py.diagnostics import Diagnostics
from tcptrace_py.events import Anomaly, Event
from tcptrace_py.flowtable import FlowTable, slot_of
from tcptrace_py.icmp import IcmpError
from tcptrace_py.lazy_dataclass import dataclass, field
from tcptrace_py.options import Options
from tcptrace_py.report import flow_record

# A path-like (pathlib.Path, not imported here: ~15 M instructions of start-up) is accepted
# at run time by capture.source.open_source; the alias says so.
Source = str | bytes | os.PathLike[str] | BinaryIO

PacketRow = tuple[int, int, int, bool, int, int, int]


@dataclass(slots=True)
class FlowResult:
    """Everything known about one finished connection."""

    record: dict[str, Any]
    """The flat connection record (see report.LIFECYCLE_COLUMNS and analysis columns)."""
    anomalies: list[Anomaly]
    """Findings on this connection."""
    events: list[Event]
    """State transitions and unexpected segments, in order."""
    packets: list[PacketRow] | None = None
    """Per-packet rows when ``Options.keep_packets``."""

    def __reduce__(self) -> tuple[Any, ...]:
        # A constructor call, as Event's (fast to unpickle in the parent of --jobs workers).
        return (FlowResult, (self.record, self.anomalies, self.events, self.packets))


@dataclass(slots=True)
class CaptureSummary:
    """Capture-wide results available after the last connection."""

    diagnostics: Diagnostics
    anomalies: list[Anomaly] = field(default_factory=list)
    connections: int = 0
    peak_live_connections: int = 0
    evicted_table_full: int = 0
    tracking_capped: int = 0
    """Connections whose per-direction tracking hit ``AnalysisOptions.max_unacked_segments``
    or ``max_holes`` (their RTT samples, original frames and gap counts are partial)."""
    tracking_dropped: int = 0
    """Segments and holes those connections forgot (their ``evidence_dropped`` share)."""


class Engine:
    """Analyse one capture: iterate :meth:`run`, then read :attr:`summary`."""

    def __init__(self, options: Options | None = None, diag: Diagnostics | None = None, *,
                 shard: tuple[int, int, int] | None = None,
                 encode: Callable[[Connection, list[str], list[Anomaly]], Any] | None = None
                 ) -> None:
        self.options = options or Options()
        self.encode = encode
        """When set, each finished connection's result is ``encode(conn, codes,
        anomalies)`` instead of a :class:`FlowResult`: a jsonl stream's
        ``encoded.EncodedResult``, whose line the compiled engine writes without building
        the record dict (``export.flow_line``). ``detectors.on_record`` is not called
        then: there is no record (no detector uses that hook)."""
        self.diag = diag or Diagnostics()
        self.table = FlowTable(self.options)
        self.shard = shard
        """(worker index, first slot, end slot) in a ``--jobs`` worker
        (tcptrace_py/parallel.py): only the connections whose ``flowtable.slot_of`` is in
        the slot range are analysed, capture-wide detectors only summarize, and
        :meth:`finish` leaves the capture-wide warnings and findings to the parent."""
        if shard is not None:
            _, self.table.slot_lo, self.table.slot_hi = shard
            self.table.sweep_tags = []
            self.table.allocated = []
        self.detectors = DetectorSet(self.options, self.diag, sharded=shard is not None)
        self.summary = CaptureSummary(self.diag)
        self._finished = False
        self.end_ns = 0
        """Packet time :meth:`finish` ended the capture at."""

    def _result(self, conn: Connection) -> FlowResult:
        anomalies = self.detectors.on_connection(conn)
        codes = sorted({a.code for a in anomalies}) if anomalies else []
        self.summary.connections += 1
        capped = conn.analyzer.tracking_capped + conn.peer.holes_filled
        if capped:
            self.summary.tracking_capped += 1
            self.summary.tracking_dropped += capped
        if self.encode is not None:
            return self.encode(conn, codes, anomalies)  # type: ignore[no-any-return]
        record = flow_record(conn, codes)
        self.detectors.on_record(conn, record)
        events = conn.events if self.options.keep_events else []
        return FlowResult(record, anomalies, events, conn.packet_rows)

    def _icmp(self, pending: list[IcmpError]) -> None:
        """Hand ICMP errors to the connections of the segments they quote (counted in
        ``diag.notes``: ``icmp_errors``, and ``icmp_errors_unmatched`` for those whose
        connection is not live)."""
        notes = self.diag.notes
        shard = self.shard
        for err in pending:
            if shard is not None and \
                    not shard[1] <= slot_of(err.src, err.sport, err.dst, err.dport) < shard[2]:
                continue  # counted by the worker of the connection it quotes
            notes["icmp_errors"] += 1
            if not self.table.on_icmp(err):
                notes["icmp_errors_unmatched"] += 1
        pending.clear()

    def router(self, finished: list[Connection], icmp: list[IcmpError]) -> Any:
        """The compiled engine's ``Router`` of this engine's flow table (its pcap and pcapng
        loops then route each segment themselves, appending to ``finished`` and ``icmp``),
        or None when the reference runs."""
        compiled = implementation.compiled
        if compiled is not None and isinstance(self.table, compiled.FlowTableBase):
            return compiled.Router(self.table, finished, icmp)
        return None

    def run(self, source: Source, *, name: str | None = None,
            strict: bool = False) -> Iterator[FlowResult]:
        """Yield each connection's result as it finishes; capture-wide ones in ``summary``."""
        diag = self.diag
        on_segment = self.table.on_segment
        finished: list[Connection] = []
        last_ts = -1
        decoder = Decoder(diag, icmp=True, strict=strict, source=source_name(source, name))
        icmp = decoder.icmp_errors
        assert icmp is not None
        # With the compiled engine, its pcap loop does this loop's per-segment work itself
        # (keep the latest time, route to the table) and yields None only when connections
        # finished or ICMP errors wait; every other reader yields each segment.
        router = self.router(finished, icmp)
        # read_segments fuses reading and decoding for classic pcap (no per-frame bytes copy,
        # tuple or decoder call) and yields only frames that decoded to a segment. ICMP errors
        # the decoder kept came before this segment: they go to their connections first.
        for seg in route_segments(source, diag, decoder, router, strict=strict, name=name):
            if icmp:
                self._icmp(icmp)
            if seg is not None:
                ts_ns = seg.ts_ns
                if ts_ns > last_ts:
                    last_ts = ts_ns
                on_segment(seg, finished)
            if finished:
                for conn in finished:
                    yield self._result(conn)
                finished.clear()
        if icmp:
            self._icmp(icmp)
        if router is not None and router.last_ts > last_ts:
            last_ts = router.last_ts
        yield from self.finish(max(last_ts, diag.last_ts_ns or 0), name=name)

    def finish_early(self, name: str | None = None) -> Iterator[FlowResult]:
        """After :meth:`run` stopped before the end of its input (Ctrl-C, a reader that gave
        up): :meth:`finish` at the last packet time the reader saw."""
        return self.finish(name=name)

    def finish(self, end_ns: int | None = None, *,
               name: str | None = None) -> Iterator[FlowResult]:
        """Hand over the connections still live and compute the capture-wide findings, as
        at the end of the capture (once; later calls yield nothing).

        :meth:`run` ends with it. A caller whose :meth:`run` stopped early (Ctrl-C on a live
        capture: the exception left the generator) calls it to keep what was read so far:
        the connections then end as open at capture end, at ``end_ns`` (default: the last
        packet time the reader saw).
        """
        if self._finished:
            return
        self._finished = True
        diag = self.diag
        if end_ns is None:
            end_ns = diag.last_ts_ns or 0
        self.end_ns = end_ns
        for conn in self.table.drain(end_ns):
            yield self._result(conn)
        self.close_summary()
        if self.shard is None:
            capture_warnings(diag, self.options, self.summary, self.table.evicted_half_open,
                             name)
            self.summary.anomalies = self.detectors.on_end(end_ns, diag)

    def close_summary(self) -> None:
        """Copy the flow table's counters into :attr:`summary` (after the drain)."""
        self.summary.peak_live_connections = self.table.peak_live
        self.summary.evicted_table_full = self.table.evicted_table_full


def capture_warnings(diag: Diagnostics, options: Options, summary: CaptureSummary,
                     evicted_half_open: int, name: str | None) -> None:
    """The capture-wide warnings of :meth:`Engine.finish`, from the summary's counters
    (also the parent's of ``--jobs`` workers, over their summed counters)."""
    if summary.evicted_table_full:
        diag.warn(name or "capture",
                  f"connection table full (max {options.max_connections}): "
                  f"{summary.evicted_table_full} connections emitted early "
                  f"({evicted_half_open} of them half-open)", code="table_full")
    if summary.tracking_capped:
        a = options.analysis
        n = summary.tracking_capped
        diag.warn(name or "capture",
                  f"sequence tracking capped (max {a.max_unacked_segments} segments, "
                  f"{a.max_holes} holes per direction) on {n} "
                  f"connection{'s' if n != 1 else ''}: {summary.tracking_dropped} "
                  "unacknowledged segments and holes forgotten (their ACKs or the other "
                  "direction are missing from the capture); RTT samples, original frames "
                  "and gap counts of those connections are partial (evidence_dropped)",
                  code="tracking_capped")
