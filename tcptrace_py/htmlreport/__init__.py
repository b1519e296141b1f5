"""The interactive HTML report: one self-contained file that answers "what went wrong in this
capture" and can be mailed, attached to a ticket or opened on a laptop with no tools.

What is in it (docs/report.md): the capture summary, the findings grouped by severity with
their evidence and frames, the connection table (sortable, filterable, paginated: 100k rows
stay responsive because the browser only builds the rows of one page), and for the
connections a user is likely to open (those with findings, then the largest) their
lifecycle, ladder and zoomable time-sequence, RTT, throughput and window graphs.

How it is built: the data is computed here by the code the other views use (``plots``'
series, ``ladder``'s rows, ``capture.read_flows_segments`` for the segments' numbers, the
engine's events and findings) and embedded as JSON; ``report.js`` (small hand-written canvas
code, no library: docs/report.md says why) draws it. Nothing from the capture is ever
written as markup: the JSON sits in ``<script type="application/json">`` blocks with ``<``,
``>``, ``&`` and U+2028/U+2029 escaped, the page inserts text with ``textContent`` only, and a
Content-Security-Policy allows only the report's own script (by its hash) and no network
request at all.

This module is imported only by ``tcptrace-py report``, ``AnalysisResult.to_html`` and
``batch --report``: ``analyze`` never pays for it.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tcptrace_py import __version__
from tcptrace_py.capture import read_flows_segments
from tcptrace_py.diagnostics import CaptureError
from tcptrace_py.engine import Engine, FlowResult, PacketRow
from tcptrace_py.events import SEVERITY_RANK, Anomaly
from tcptrace_py.export import anomaly_dict, capture_summary
from tcptrace_py.ladder import flow_t0_ns, ladder_rows, segment_details
from tcptrace_py.lazy_dataclass import dataclass
from tcptrace_py.plots import (
    FlowPackets,
    rtt_samples,
    throughput_series,
    tsg_series,
    window_series,
)

if TYPE_CHECKING:
    from tcptrace_py.frames import AnalysisResult

LARGEST_DEFAULT = 20
"""Connections embedded in detail beside those with findings: the N with the most payload
bytes. A user opens the connections a finding points at, then the big transfers; 20 covers
a page of the table sorted by bytes."""
DETAIL_BUDGET_BYTES = 40_000_000
"""Most JSON bytes of per-connection detail (ladder and graph data) in one report. About
120 bytes a packet: 40 MB holds ~330k packets of detail, a 100 MB-class capture's worth of
interesting connections, and a browser still parses one connection's block at once
(blocks are parsed only when that connection is opened)."""
MAX_FLOW_PACKETS = 200_000
"""A connection with more packets than this is not embedded (its detail alone would be
~25 MB); the report says so and names ``tcptrace-py flow`` / ``plot`` for it."""

MAX_DETAIL_CONNECTIONS = 2_000
"""Most connections embedded in detail. Building one costs ~0.3 ms and at least ~1 kB even
for a two-packet connection; a reader opens a handful, so a capture of 100k failed
connections (a scan, a flood: every one has a finding) embeds the first 2,000 by severity and
names the rest instead of spending minutes and tens of MB on them."""
MAX_FINDINGS_PER_CODE = 1_000
"""Findings listed per code. A scan or flood gives one finding per connection; past 1,000 of
one code the rest only add size (the connection table's finding filter still lists every
connection that has the code, and the summary counts them all)."""
_EST_BYTES_PER_PACKET = 150
_EST_BYTES_PER_CONNECTION = 1_500
"""Estimate of a connection's detail before building it (measured: ~120 B a packet, ~1.2 kB
of fixed overhead), to choose what fits the budget without building what will not."""

_TIME_DIGITS = 6
"""Seconds are rounded to microseconds (pcap's usual resolution) to keep the JSON small."""


@dataclass(frozen=True)
class ReportLimits:
    """What the report embeds in detail (see the module constants for why the defaults)."""

    largest: int = LARGEST_DEFAULT
    detail_budget_bytes: int = DETAIL_BUDGET_BYTES
    max_flow_packets: int = MAX_FLOW_PACKETS
    max_connections: int = MAX_DETAIL_CONNECTIONS
    max_findings_per_code: int = MAX_FINDINGS_PER_CODE


def json_for_script(obj: object) -> str:
    """JSON safe inside ``<script type="application/json">``: ``<``, ``>`` and ``&`` as
    ``\\u`` escapes (no ``</script>`` or ``<!--`` can end or bend the block) and U+2028/U+2029
    escaped (older JavaScript parsers take them as line ends)."""
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False,
                      default=_json_default)
    return (text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def _json_default(obj: object) -> object:
    if isinstance(obj, bytes):
        return obj.hex()
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    if hasattr(obj, "item"):  # numpy scalars
        return obj.item()
    return str(obj)


def _num(v: Any) -> Any:
    """A record value as JSON: NaN/NA as null, numpy scalars as Python numbers."""
    if v is None:
        return None
    if isinstance(v, float):
        return None if v != v or v in (float("inf"), float("-inf")) else v
    if isinstance(v, (bool, int, str)):
        return v
    if hasattr(v, "item"):
        return _num(v.item())
    try:
        if v != v:
            return None
    except (TypeError, ValueError):
        return None
    return str(v)


def _t(x: float) -> float:
    return round(x, _TIME_DIGITS)


CONNECTION_COLUMNS: tuple[tuple[str, str], ...] = (
    ("flow_id", "flow (tcp.stream)"),
    ("client", "client"),
    ("server", "server"),
    ("start_s", "start (s)"),
    ("duration_s", "duration (s)"),
    ("packets", "packets"),
    ("bytes", "payload bytes"),
    ("retransmissions", "retransmissions"),
    ("open", "open"),
    ("close", "close"),
    ("client_state", "client state"),
    ("server_state", "server state"),
    ("anomalies", "findings"),
)
"""The connection table's columns (key, heading); the hidden columns after them feed the
filters and the detail header."""


def _retransmissions(rec: Mapping[str, Any]) -> int:
    return sum(int(_num(rec.get(f"{p}_retransmitted_segments")) or 0)
               for p in ("client", "server"))


def _connection_rows(records: Sequence[Mapping[str, Any]], t0: float,
                     embedded: set[int]) -> dict[str, list[Any]]:
    """The table as columns (one list per column: smaller JSON than a dict per row)."""
    cols: dict[str, list[Any]] = {k: [] for k in (
        "flow_id", "client_ip", "client_port", "server_ip", "server_port", "start_s",
        "duration_s", "packets", "bytes", "retransmissions", "open", "close", "client_state",
        "server_state", "anomalies", "first_frame", "last_frame", "start_ts", "conn_state",
        "history", "detail")}
    for r in records:
        fid = int(r["flow_id"])
        cols["flow_id"].append(fid)
        cols["client_ip"].append(str(r["client_ip"]))
        cols["client_port"].append(int(r["client_port"]))
        cols["server_ip"].append(str(r["server_ip"]))
        cols["server_port"].append(int(r["server_port"]))
        start = _num(r["start_ts"])  # null when out of range (segment.ts_in_range)
        cols["start_s"].append(None if start is None else _t(float(start) - t0))
        duration = _num(r["duration_s"])
        cols["duration_s"].append(None if duration is None else _t(float(duration)))
        cols["packets"].append(int(r["client_packets"]) + int(r["server_packets"]))
        cols["bytes"].append(int(r["client_payload_bytes"]) + int(r["server_payload_bytes"]))
        cols["retransmissions"].append(_retransmissions(r))
        for k in ("open", "close", "client_state", "server_state", "conn_state", "history"):
            cols[k].append(str(_num(r.get(k)) or ""))
        cols["anomalies"].append(list(r.get("anomalies") or []))
        cols["first_frame"].append(int(r["first_frame"]))
        cols["last_frame"].append(int(r["last_frame"]))
        cols["start_ts"].append(start)
        cols["detail"].append(1 if fid in embedded else 0)
    return cols


def choose_flows(results: Sequence[FlowResult], limits: ReportLimits) -> list[int]:
    """Flow ids to consider for detail, most wanted first: those with findings (by worst
    severity, then how many), then the largest by payload bytes (``limits.largest``);
    connections above ``limits.max_flow_packets`` packets are left out. The caller stops at
    ``limits.max_connections`` and the byte budget."""
    def packets(r: FlowResult) -> int:
        return int(r.record["client_packets"]) + int(r.record["server_packets"])

    fits = [r for r in results if packets(r) <= limits.max_flow_packets]
    with_findings = sorted(
        (r for r in fits if r.anomalies),
        key=lambda r: (-max(SEVERITY_RANK.get(a.severity, 0) for a in r.anomalies),
                       -len(r.anomalies), int(r.record["flow_id"])))
    chosen = [int(r.record["flow_id"]) for r in with_findings]
    seen = set(chosen)
    by_size = sorted(fits, key=lambda r: (-(int(r.record["client_payload_bytes"]) +
                                            int(r.record["server_payload_bytes"])),
                                          int(r.record["flow_id"])))
    for r in by_size[:limits.largest]:
        fid = int(r.record["flow_id"])
        if fid not in seen:
            chosen.append(fid)
            seen.add(fid)
    return chosen


def _series_json(fp: FlowPackets, sender_client: bool) -> dict[str, Any]:
    """The tsg and window series of one sender, as columns."""
    s = tsg_series(fp, sender_client)
    w = window_series(fp, sender_client)

    def cols(rows: Iterable[tuple[Any, ...]], names: str) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {n: [] for n in names}
        for row in rows:
            for n, v in zip(names, row, strict=True):
                out[n].append(_t(v) if n == "t" else v)
        return out

    return {
        "tsg": {"data": cols(s.data, "tlhf"), "retx": cols(s.retx, "tlhfc"),
                "ack": cols(s.ack, "tawf"), "sack": cols(s.sack, "tlhf"),
                "zero_window": cols(s.zero_window, "tyf"), "syn": cols(s.syn, "tyf"),
                "fin": cols(s.fin, "tyf"), "rst": cols(s.rst, "tyf"),
                "top": s.top, "clipped": s.window_clipped},
        "window": {"window": cols(w.window, "ty"), "in_flight": cols(w.in_flight, "ty"),
                   "zero_window": [_t(t) for t in w.zero_window]},
        "rtt": cols(rtt_samples(fp, sender_client), "ty"),
    }


def flow_detail(result: FlowResult, segments: list[tuple[Any, bool]],
                packets: Sequence[PacketRow]) -> dict[str, Any]:
    """Everything the report shows of one connection: lifecycle events, ladder rows and the
    graphs' series (both senders), from the engine's result and the re-read segments."""
    rec = result.record
    masks = {row[0]: row[5] for row in packets}
    fp = FlowPackets(rec, [(seg, fc, masks.get(seg.frame, 0)) for seg, fc in segments])
    details = segment_details(segments, {p[0] for p in packets})
    rows, _timers = ladder_rows(rec, result.events, packets, details)
    t0_ns = flow_t0_ns(rec, packets)
    ladder = [[r.frame, _t(r.t_s), 1 if r.from_client else 0, r.flags, r.payload,
               None if r.detail is None else r.detail.seq,
               None if r.detail is None else r.detail.ack,
               None if r.detail is None else r.detail.window,
               "" if r.detail is None else r.detail.sack,
               r.analysis, r.client_state, r.server_state, r.transitions] for r in rows]
    events = [[e.frame, _t((e.ts_ns - t0_ns) / 1e9), e.endpoint, e.kind, e.old_state, e.new_state,
               e.reason, e.flags] for e in result.events]
    tp = throughput_series(fp)
    return {
        "events": events,
        "ladder": ladder,
        "sender": "client" if fp.sender_is_client("auto") else "server",
        "client": _series_json(fp, True),
        "server": _series_json(fp, False),
        "srtt_ms": {p: _num(rec.get(f"{p}_srtt_ms")) for p in ("client", "server")},
        "throughput": {"bin_s": tp.bin_s, "t_min": _t(tp.t_min),
                       "client": [round(v, 1) for v in tp.client],
                       "server": [round(v, 1) for v in tp.server],
                       "client_avg": tp.client_avg, "server_avg": tp.server_avg},
        "span_s": _t(float(_num(rec["duration_s"]) or 0.0)),
    }


def _finding(a: Anomaly) -> dict[str, Any]:
    d = anomaly_dict(a)
    d.pop("capture", None)
    cleaned: dict[str, Any] = _finite(d)
    return cleaned


def _finite(obj: Any) -> Any:
    """``obj`` with NaN and infinities as None (JSON has neither; the page's JSON.parse
    would reject the whole block)."""
    if isinstance(obj, float):
        return obj if obj == obj and obj not in (float("inf"), float("-inf")) else None
    if isinstance(obj, dict):
        return {str(k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [_finite(v) for v in obj]
    return obj


def _asset(name: str) -> str:
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


def _script_hash(script: str) -> str:
    digest = hashlib.sha256(script.encode("utf-8")).digest()
    return "'sha256-" + base64.b64encode(digest).decode("ascii") + "'"


def build_html(result: AnalysisResult, *, title: str | None = None,
               limits: ReportLimits | None = None) -> str:
    """The report of an analysed capture as one HTML document (a string)."""
    limits = limits or ReportLimits()
    results = result.results
    records = [r.record for r in results]
    by_id = {int(r.record["flow_id"]): r for r in results}
    wanted = choose_flows(results, limits)
    chosen, skipped = _fit(wanted, by_id, limits)
    packets_by_flow = _packet_rows(result, chosen)
    try:
        segments = read_flows_segments(result.reopen(), [by_id[f].record for f in chosen])
    except (CaptureError, OSError, ValueError):  # e.g. standard input: cannot be read twice
        segments = {}
    blocks: list[str] = []
    embedded: list[int] = []
    left_out: dict[str, list[int]] = {"budget": skipped, "unreadable": []}
    used = 0
    for fid in chosen:
        if fid not in segments:
            left_out["unreadable"].append(fid)
            continue
        if used >= limits.detail_budget_bytes:
            left_out["budget"].append(fid)
            continue
        text = json_for_script(flow_detail(by_id[fid], segments[fid],
                                           packets_by_flow.get(fid, [])))
        if used + len(text) > limits.detail_budget_bytes:
            left_out["budget"].append(fid)
            continue
        used += len(text)
        embedded.append(fid)
        blocks.append(f'<script type="application/json" id="flow-{fid}">{text}</script>')
    too_big = [int(r.record["flow_id"]) for r in results
               if int(r.record["client_packets"]) + int(r.record["server_packets"])
               > limits.max_flow_packets]
    diag = result.diagnostics
    summary = _finite(capture_summary(diag, records, result.all_anomalies))
    t0 = summary["first_ts"] if summary["first_ts"] is not None else \
        min((float(r["start_ts"]) for r in records if _num(r["start_ts"]) is not None),
            default=0.0)
    name = title if title is not None else _source_title(result)
    findings, findings_left_out = _findings(result.all_anomalies, limits.max_findings_per_code)
    data = {
        "title": name,
        "generator": f"tcptrace-py {__version__}",
        "summary": summary,
        "t0": t0,
        "findings": findings,
        "findings_left_out": findings_left_out,
        "connections": _connection_rows(records, t0, set(embedded)),
        "columns": CONNECTION_COLUMNS,
        "detail": {
            "embedded": len(embedded),
            "bytes": used,
            "limits": {"largest": limits.largest, "budget_bytes": limits.detail_budget_bytes,
                       "max_flow_packets": limits.max_flow_packets,
                       "max_connections": limits.max_connections,
                       "max_findings_per_code": limits.max_findings_per_code},
            "over_budget": left_out["budget"],
            "too_many_packets": too_big,
            "unreadable": left_out["unreadable"],
        },
        "warnings": [str(w) for w in diag.warnings[:100]],
    }
    script = _asset("report.js")
    csp = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
           f"script-src {_script_hash(script)}; connect-src 'none'; form-action 'none'; "
           "base-uri 'none'")
    return "".join([
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(name)} - tcptrace-py report</title>",
        f"<style>{_asset('report.css')}</style></head><body>",
        '<noscript>This report needs JavaScript (it uses no network).</noscript>',
        '<div id="app"></div>',
        f'<script type="application/json" id="report-data">{json_for_script(data)}</script>',
        *blocks,
        f"<script>{script}</script></body></html>\n",
    ])


def _fit(wanted: Sequence[int], by_id: Mapping[int, FlowResult], limits: ReportLimits,
         ) -> tuple[list[int], list[int]]:
    """Split ``wanted`` into the connections to build (within ``limits.max_connections`` and,
    by estimate, the byte budget) and those left out before any work is spent on them."""
    chosen: list[int] = []
    rest: list[int] = []
    estimate = 0
    for fid in wanted:
        rec = by_id[fid].record
        size = _EST_BYTES_PER_CONNECTION + _EST_BYTES_PER_PACKET * (
            int(rec["client_packets"]) + int(rec["server_packets"]))
        if len(chosen) >= limits.max_connections or \
                estimate + size > limits.detail_budget_bytes * 1.5:
            rest.append(fid)
            continue
        estimate += size
        chosen.append(fid)
    return chosen, rest


def _findings(anomalies: Sequence[Anomaly], per_code: int,
              ) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """The findings listed (at most ``per_code`` of each code, in the engine's order) and
    how many of each code were left out."""
    kept: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    left_out: dict[str, int] = {}
    for a in anomalies:
        n = seen.get(a.code, 0)
        seen[a.code] = n + 1
        if n < per_code:
            kept.append(_finding(a))
        else:
            left_out[a.code] = left_out.get(a.code, 0) + 1
    return kept, left_out


def _source_title(result: AnalysisResult) -> str:
    src = result.source
    if isinstance(src, (str, Path)):
        return Path(src).name
    name = getattr(src, "name", None)
    return Path(name).name if isinstance(name, str) else "capture"


def _packet_rows(result: AnalysisResult, flows: Sequence[int]) -> dict[int, list[PacketRow]]:
    """The engine's packet rows of those flows: kept ones, or a second analysis that keeps
    only theirs (memory stays bounded by those connections, not the capture)."""
    if not flows:
        return {}
    out: dict[int, list[PacketRow]] = {}
    if result.options.keep_packets:
        for r in result.results:
            if r.packets is not None:
                out[int(r.record["flow_id"])] = r.packets
        if all(f in out for f in flows):
            return out
    from tcptrace_py.gcpolicy import collector_paused

    wanted = set(flows)
    engine = Engine(replace(result.options, keep_packets=True, packet_flows=tuple(flows)))
    try:  # streamed: only the wanted connections' rows are kept, not a second result
        with collector_paused():
            for r in engine.run(result.reopen()):
                fid = int(r.record["flow_id"])
                if fid in wanted and r.packets:
                    out[fid] = r.packets
    except (CaptureError, OSError, ValueError):  # cannot be read again: no detail
        return out
    return out


def write_html(result: AnalysisResult, path: str | Path, *, title: str | None = None,
               limits: ReportLimits | None = None) -> Path:
    """Write the report to ``path`` (replaced only once it is complete); returns the path."""
    target = Path(path)
    text = build_html(result, title=title, limits=limits)
    tmp = target.with_name(target.name + ".part")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(target)
    return target


def index_html(entries: Sequence[Mapping[str, Any]], title: str = "tcptrace-py reports") -> str:
    """The batch index page: one row per capture (``name``, ``href``, ``connections``,
    ``findings`` by severity, ``error``), built with the same escaping as the reports."""
    script = _asset("index.js")
    csp = ("default-src 'none'; style-src 'unsafe-inline'; "
           f"script-src {_script_hash(script)}; connect-src 'none'; base-uri 'none'")
    data = {"title": title, "generator": f"tcptrace-py {__version__}",
            "captures": list(entries)}
    return "".join([
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">',
        f"<title>{html.escape(title)}</title><style>{_asset('report.css')}</style></head>",
        '<body><div id="app"></div>',
        f'<script type="application/json" id="report-data">{json_for_script(data)}</script>',
        f"<script>{script}</script></body></html>\n",
    ])


REPORTS_DIR = "reports"
"""``batch --report`` writes ``DIR/reports/<capture>.html`` and ``DIR/reports/index.html``."""


def report_file_name(path: str) -> str:
    """A report's file name for a capture path: its base name with every byte outside
    ``[A-Za-z0-9._-]`` as ``_`` (safe in any file system and as a relative link), plus a
    short hash of the whole path so captures of one name in two folders do not collide."""
    raw = path.encode("utf-8", "surrogateescape")
    base = "".join(c if c.isascii() and (c.isalnum() or c in "._-") else "_"
                   for c in Path(path).name)[:80].lstrip(".") or "capture"
    return f"{base}-{hashlib.sha256(raw).hexdigest()[:8]}.html"


def write_batch_reports(paths: Sequence[str], out_dir: str | Path, *,
                        options: Any = None, strict: bool = False,
                        limits: ReportLimits | None = None,
                        failed: Mapping[str, str] | None = None) -> Path:
    """One report per capture in ``out_dir/reports/`` and an index page linking them (the
    captures in ``failed``, path -> error, are listed with their error instead). Returns
    the index's path. A capture that cannot be read is listed as failed, not raised."""
    from tcptrace_py.batch import safe_name
    from tcptrace_py.frames import analyze

    target = Path(out_dir) / REPORTS_DIR
    target.mkdir(parents=True, exist_ok=True)
    entries: list[dict[str, Any]] = []
    failed = dict(failed or {})
    for path in sorted(set(paths) | set(failed)):
        name = safe_name(path)
        entry: dict[str, Any] = {"name": name, "href": None, "connections": None,
                                 "findings": {}, "error": failed.get(path)}
        if path not in failed:
            try:
                result = analyze(path, options=options, strict=strict)
                href = report_file_name(path)
                write_html(result, target / href, title=name, limits=limits)
            except (CaptureError, OSError, ValueError) as exc:
                entry["error"] = safe_name(str(exc))
            else:
                by_sev: dict[str, int] = {}
                for a in result.all_anomalies:
                    by_sev[a.severity] = by_sev.get(a.severity, 0) + 1
                entry.update(href=href, connections=len(result.results), findings=by_sev)
        entries.append(entry)
    index = target / "index.html"
    tmp = index.with_name("index.html.part")
    tmp.write_text(index_html(entries), encoding="utf-8")
    tmp.replace(index)
    return index
