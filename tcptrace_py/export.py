"""File sinks: JSON, JSON Lines, CSV, Parquet and Zeek TSV for flows and anomalies.

Why one module: the CLI and the API write the same files, and tests read every one of them
back. JSON/JSONL and Zeek are written straight from the records (no pandas: a terminal user
piping jsonl should not pay pandas' import); CSV and Parquet go through the typed DataFrame of
:mod:`tcptrace_py.frames` so that a file read back gives the same dtypes.

Zeek's conn.log follows ``scripts/base/protocols/conn/main.zeek`` and the ASCII writer's
header (``#separator``, ``#set_separator``, ``#empty_field``, ``#unset_field``, ``#path``,
``#open``, ``#fields``, ``#types``, ``#close``) so that ``zeek-cut`` reads it. It is
deterministic: ``#open``/``#close`` are the capture's first/last packet times (not the wall
clock) and the ``uid`` is a hash of the connection's identity.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import IO, TYPE_CHECKING, Any

from tcptrace_py.diagnostics import Diagnostics
from tcptrace_py.events import SEVERITIES, Anomaly
from tcptrace_py.implementation import compiled as _compiled
from tcptrace_py.report import flow_record
from tcptrace_py.segment import ts_or_none

if TYPE_CHECKING:
    from tcptrace_py.connection import Connection

FORMATS = ("table", "json", "jsonl", "csv", "parquet", "zeek")
"""Output formats of ``analyze``/``anomalies`` (``table`` is the CLI's rich rendering)."""

# LINKTYPE_* names (tcpdump.org/linktypes.html) for the capture summary.
LINKTYPE_NAMES = {0: "NULL", 1: "ETHERNET", 6: "IEEE802_5", 8: "SLIP", 10: "FDDI",
                  11: "ATM_RFC1483", 100: "ATM_RFC1483", 12: "RAW", 101: "RAW", 108: "LOOP",
                  113: "LINUX_SLL", 127: "IEEE802_11_RADIOTAP", 228: "IPV4", 229: "IPV6",
                  276: "LINUX_SLL2"}


def _json_default(obj: object) -> object:
    if isinstance(obj, (set, tuple)):
        return list(obj)
    return str(obj)


try:
    import orjson as _orjson
except ImportError:  # pragma: no cover - orjson is a dependency; json is the fallback
    _orjson = None  # type: ignore[assignment]

_ORJSON_OPTS = 0 if _orjson is None else _orjson.OPT_NON_STR_KEYS
_LINE = 0 if _orjson is None else _orjson.OPT_APPEND_NEWLINE


def dumps(obj: object) -> str:
    """One JSON value on one line (JSONL), non-JSON values as text, compact.

    orjson encodes a record about four times faster than ``json`` (a third of the Python
    time of an uneventful connection went to ``json.dumps``, issue 16). Its option for
    non-string keys costs a fifth of a record's encoding (1.7 of 7.7 us), and records
    have none, so it is only used when a dict (some finding's details) needs it: orjson
    refuses such a key with ``TypeError`` and the second try allows it. The ``json``
    fallback (orjson absent, or an integer beyond 64 bits, which orjson refuses) writes the
    same compact form, so the output does not depend on which encoder ran.
    """
    data = _orjson_bytes(obj, 0)
    return data.decode() if data is not None else _json_text(obj)


def dumps_line(obj: object) -> bytes:
    """``dumps(obj)`` and a newline, as UTF-8: the JSON line a byte stream takes.

    Why: orjson writes UTF-8 bytes; a text stream made them a string (``decode``), then
    added the newline (a copy) and encoded them back (another), three passes over a ~5 KB
    record that writing the bytes themselves skips (see ``cli._utf8_buffer``). The same
    encoders and the same fallbacks as :func:`dumps`, so the bytes are its text's.
    """
    data = _orjson_bytes(obj, _LINE)
    return data if data is not None else (_json_text(obj) + "\n").encode()


def _orjson_bytes(obj: object, option: int) -> bytes | None:
    """orjson's encoding of ``obj`` with ``option``: without the non-string-key option
    first (see :func:`dumps`); None when orjson is absent or refuses ``obj``."""
    if _orjson is None:
        return None
    try:
        return _orjson.dumps(obj, default=_json_default, option=option)
    except TypeError:
        pass
    try:
        return _orjson.dumps(obj, default=_json_default, option=option | _ORJSON_OPTS)
    except TypeError:
        return None


def held_line(rec: Mapping[str, Any]) -> bytes:
    """``dumps_line(rec)``, copied into a bytes object of its own: a line that is held a
    while (a ``--jobs`` batch, the pipe, the calling process's run-ahead).

    Why the copy: orjson's own output objects, held so, left the heap fragmented: a test
    keeping 256-1,024 of 30,000 lines alive among long-lived objects peaked at 34 MiB with
    orjson's objects against 19 MiB with copies (or strings), and ``--jobs 2`` on 2m.pcap
    peaked at 104-211 MiB in the calling process against 96-112 MiB with strings. The
    copy is one ``memcpy`` of ~5 KB."""
    return bytes(memoryview(dumps_line(rec)))


def flow_line(conn: Connection, anomaly_codes: list[str] | None = None) -> bytes:
    """A finished connection's record as the JSON line a jsonl stream writes:
    :func:`held_line` of ``flow_record(conn, anomaly_codes)``.

    The compiled engine writes the line straight from the connection's fields
    (``_engine.FlowRecord.line``, bytes of its own), without the ~200-column dict, once its
    numbers are shown to be orjson's (:func:`_lines_in_c`)."""
    return held_line(flow_record(conn, anomaly_codes))


_FLOAT_PROBES = (0.0, -0.0, 1.0, -1.0, 0.1, 0.5, 65535.0, 123.456, 0.001, 0.000212,
                 1704067200.070689, 1e-4, 1e-5, -1e-5, 1.5e-5, 1.2345678901234568e-05,
                 9.99e-6, 1e-6, -2.5e-6, 1.5e-7, 1.25e-10, 1e-100, 5e-324, 1e-320, 1e15,
                 999999999999999.9, 1e16, -1e16, 1.2345678901234568e+17, 1e21, 1e22,
                 1.7976931348623157e308, 2.2250738585072014e-308)
"""Floats at every boundary of the two layouts (see ``_engine.json_float``)."""


def _lines_in_c() -> bool:
    """Whether the compiled line writer's numbers are the installed orjson's: the same
    text for every probe, and orjson the encoder in use (without it the ``json`` module
    writes the records, whose floats differ)."""
    if _orjson is None or _compiled is None or \
            not isinstance(flow_record, _compiled.FlowRecord):
        return False
    return all(_compiled.json_float(x) == _orjson.dumps(x) for x in _FLOAT_PROBES)


def _json_text(obj: object) -> str:
    """The ``json`` module's compact form of ``obj``, which orjson's output matches."""
    return json.dumps(obj, default=_json_default, separators=(",", ":"), ensure_ascii=False)


def anomaly_dict(a: Anomaly, capture: str | None = None) -> dict[str, Any]:
    """An anomaly as the JSON object of ``anomalies --format jsonl``.

    ``ts`` is float epoch seconds (what jq users compare); ``ts_ns`` the exact integer; both
    null for a time outside 1970-2262 (``segment.TS_NS_MIN..TS_NS_MAX``).
    """
    ts_ns = ts_or_none(a.ts_ns)
    d: dict[str, Any] = {} if capture is None else {"capture": capture}
    d.update({"code": a.code, "severity": a.severity, "category": a.category,
              "flow_id": a.flow_id, "first_frame": a.first_frame, "last_frame": a.last_frame,
              "ts": None if ts_ns is None else ts_ns / 1e9, "ts_ns": ts_ns,
              "summary": a.summary,
              "details": a.details})
    return d


# --------------------------------------------------------------------------- flows
def write_flows(records: Sequence[Mapping[str, Any]], fmt: str, out: IO[str] | None = None,
                path: str | None = None, *, diag: Diagnostics | None = None) -> None:
    """Write flow records in ``fmt`` to ``out`` (text stream) or ``path`` (parquet: path only).

    ``json`` is one array, ``jsonl`` one object per line (same field names), ``csv``/``parquet``
    the typed DataFrame, ``zeek`` a conn.log (``diag`` gives the capture's time span).
    """
    if fmt == "jsonl":
        assert out is not None
        for rec in records:
            out.write(dumps(rec) + "\n")
    elif fmt == "json":
        assert out is not None
        json.dump(list(records), out, default=_json_default, indent=1)
        out.write("\n")
    elif fmt == "zeek":
        assert out is not None
        write_zeek_conn(records, out, diag)
    elif fmt in ("csv", "parquet"):
        from tcptrace_py.frames import flows_frame

        _write_frame(flows_frame(records), fmt, out, path)
    else:
        raise ValueError(f"format {fmt!r} cannot be written to a file")


CSV_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
"""A text cell starting with one of these is read as a formula by spreadsheets (OWASP "CSV
Injection"): a capture named ``=cmd|calc.pcap`` would run a command when the CSV is opened.
Such cells get a leading ``'`` (OWASP's escape; spreadsheets then show the text)."""


def printable(text: str, keep: str = "") -> str:
    """``text`` for a terminal: control characters (and lone surrogates from undecodable file
    names) as Python escapes (``\\x1b``), so a hostile file name cannot move the cursor,
    recolour or retitle the terminal through a warning, an error or a table cell. Characters
    in ``keep`` (e.g. a newline between lines of one cell) pass through."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c in keep else ascii(c)[1:-1] for c in text)


def csv_safe_text(value: object) -> object:
    """``value`` with OWASP's CSV-injection escape when it is text starting like a formula."""
    if isinstance(value, str) and value.startswith(CSV_FORMULA_PREFIXES):
        return "'" + value
    return value


def _csv_safe(df: Any) -> Any:
    """The frame with every text cell (object, string and categorical columns) escaped by
    :func:`csv_safe_text`; numbers (a negative value is not a formula) are left alone."""
    import pandas as pd

    out = None
    for col in df.columns:
        series = df[col]
        if isinstance(series.dtype, pd.CategoricalDtype):
            cats = series.cat.categories
            if any(isinstance(c, str) and c.startswith(CSV_FORMULA_PREFIXES) for c in cats):
                if out is None:
                    out = df.copy()
                out[col] = series.cat.rename_categories([csv_safe_text(c) for c in cats])
        elif series.dtype == object or isinstance(series.dtype, pd.StringDtype):
            if any(isinstance(v, str) and v.startswith(CSV_FORMULA_PREFIXES)
                   for v in series):
                if out is None:
                    out = df.copy()
                out[col] = series.map(csv_safe_text)
    return df if out is None else out


def _write_frame(df: Any, fmt: str, out: IO[str] | None, path: str | None) -> None:
    if fmt == "csv":
        _csv_safe(df).to_csv(out if out is not None else path, index=False)
    else:
        if path is None:
            raise ValueError("parquet needs an output path (-o FILE)")
        df.to_parquet(path, engine="pyarrow", index=False)


# --------------------------------------------------------------------------- anomalies
def write_anomalies(anomalies: Sequence[Anomaly], fmt: str, out: IO[str] | None = None,
                    path: str | None = None, *, captures: Sequence[str | None] | None = None,
                    records: Mapping[tuple[str | None, int], Mapping[str, Any]] | None = None,
                    diag: Diagnostics | None = None) -> None:
    """Write anomalies in ``fmt``. ``captures`` (parallel to ``anomalies``) adds a ``capture``
    column for multi-file runs; ``records`` (by (capture, flow_id)) gives zeek's weird.log the
    connection's endpoints and uid."""
    caps: Sequence[str | None] = captures or [None] * len(anomalies)
    if fmt in ("json", "jsonl"):
        assert out is not None
        dicts = [anomaly_dict(a, c) for a, c in zip(anomalies, caps, strict=True)]
        if fmt == "jsonl":
            for d in dicts:
                out.write(dumps(d) + "\n")
        else:
            json.dump(dicts, out, default=_json_default, indent=1)
            out.write("\n")
    elif fmt == "zeek":
        assert out is not None
        write_zeek_weird(anomalies, caps, records or {}, out, diag)
    elif fmt in ("csv", "parquet"):
        from tcptrace_py.frames import anomalies_frame

        df = anomalies_frame(anomalies)
        if any(c is not None for c in caps):
            df.insert(0, "capture", list(caps))
            df["capture"] = df["capture"].astype("string")
        _write_frame(df, fmt, out, path)
    else:
        raise ValueError(f"format {fmt!r} cannot be written to a file")


# --------------------------------------------------------------------------- zeek
ZEEK_CONN_FIELDS: tuple[tuple[str, str], ...] = (
    ("ts", "time"), ("uid", "string"), ("id.orig_h", "addr"), ("id.orig_p", "port"),
    ("id.resp_h", "addr"), ("id.resp_p", "port"), ("proto", "enum"), ("service", "string"),
    ("duration", "interval"), ("orig_bytes", "count"), ("resp_bytes", "count"),
    ("conn_state", "string"), ("local_orig", "bool"), ("local_resp", "bool"),
    ("missed_bytes", "count"), ("history", "string"), ("orig_pkts", "count"),
    ("orig_ip_bytes", "count"), ("resp_pkts", "count"), ("resp_ip_bytes", "count"),
    ("tunnel_parents", "set[string]"),
)
"""conn.log columns and Zeek types, in Zeek's order (base/protocols/conn/main.zeek)."""

ZEEK_WEIRD_FIELDS: tuple[tuple[str, str], ...] = (
    ("ts", "time"), ("uid", "string"), ("id.orig_h", "addr"), ("id.orig_p", "port"),
    ("id.resp_h", "addr"), ("id.resp_p", "port"), ("name", "string"), ("addl", "string"),
    ("notice", "bool"), ("peer", "string"), ("source", "string"),
)
"""weird.log columns (base/frameworks/notice/weird.zeek)."""

_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
UNSET = "-"
EMPTY = "(empty)"


def zeek_uid(record: Mapping[str, Any], capture: str | None = None) -> str:
    """A Zeek-style uid (``C`` + base62) derived from the connection's identity.

    Zeek draws uids at random; ours hash (capture, flow_id, 4-tuple, start) so the same
    capture always gives the same log and conn.log/weird.log rows join on ``uid``.
    """
    key = (f"{capture or ''}|{record['flow_id']}|{record['client_ip']}|"
           f"{record['client_port']}|{record['server_ip']}|{record['server_port']}|"
           f"{record['start_ts']!r}")
    import hashlib  # here: only Zeek output needs it, and its import is a start-up cost

    n = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=12).digest(), "big")
    chars = []
    while n:
        n, r = divmod(n, 62)
        chars.append(_B62[r])
    return "C" + "".join(reversed(chars)).rjust(17, "0")[:17]


def _zeek_time(ts_s: float) -> str:
    """``#open``/``#close`` stamp as Zeek writes it (``%Y-%m-%d-%H-%M-%S``, UTC here)."""
    return time.strftime("%Y-%m-%d-%H-%M-%S", time.gmtime(ts_s))


def _zeek_value(v: object) -> str:
    if v is None:
        return UNSET
    if isinstance(v, bool):
        return "T" if v else "F"
    if isinstance(v, str):
        if v == "":
            return EMPTY
        # The ASCII writer escapes the separator and non-printables as \xNN.
        return "".join(c if c.isprintable() and c not in "\t\\" else f"\\x{ord(c):02x}"
                       for c in v)
    return str(v)


def _zeek_header(out: IO[str], path: str, fields_: Sequence[tuple[str, str]],
                 open_s: float) -> None:
    out.write("#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n"
              "#unset_field\t-\n")
    out.write(f"#path\t{path}\n#open\t{_zeek_time(open_s)}\n")
    out.write("#fields\t" + "\t".join(f for f, _ in fields_) + "\n")
    out.write("#types\t" + "\t".join(t for _, t in fields_) + "\n")


def _span(diag: Diagnostics | None, starts: Iterable[float | None]) -> tuple[float, float]:
    """``#open``/``#close`` times: the capture's span (the readers keep times no output can
    hold out of it), else the known start times."""
    if diag is not None and diag.first_ts_ns is not None and diag.last_ts_ns is not None:
        return diag.first_ts_ns / 1e9, diag.last_ts_ns / 1e9
    s = [t for t in starts if t is not None]
    return (min(s), max(s)) if s else (0.0, 0.0)


def _zeek_ts(ts_s: float | None) -> str | None:
    """A Zeek ``time``/``interval`` value; None (unset ``-``) for a missing one."""
    return None if ts_s is None else f"{ts_s:.6f}"


def zeek_conn_row(rec: Mapping[str, Any], capture: str | None = None) -> list[str]:
    """One conn.log row. Byte counts are unique payload bytes per direction (Zeek counts
    sequence space, which is the same when nothing was missed); IP-level byte counts are
    unset: the record does not keep header lengths."""
    values: list[object] = [
        _zeek_ts(rec["start_ts"]), zeek_uid(rec, capture), rec["client_ip"],
        rec["client_port"], rec["server_ip"], rec["server_port"], "tcp", None,
        _zeek_ts(rec["duration_s"]),
        rec.get("client_unique_bytes"), rec.get("server_unique_bytes"),
        rec.get("conn_state") or None, None, None,
        int(rec.get("client_missed_bytes") or 0) + int(rec.get("server_missed_bytes") or 0),
        rec.get("history") or None, rec.get("client_packets"), None, rec.get("server_packets"),
        None, None,
    ]
    return [_zeek_value(v) for v in values]


def write_zeek_conn(records: Sequence[Mapping[str, Any]], out: IO[str],
                    diag: Diagnostics | None = None) -> None:
    """A Zeek conn.log (TSV with header lines) of the records, ordered by start time (an
    unknown one, ``-``, last)."""
    open_s, close_s = _span(diag, (r["start_ts"] for r in records))
    _zeek_header(out, "conn", ZEEK_CONN_FIELDS, open_s)
    for rec in sorted(records, key=lambda r: (r["start_ts"] is None, r["start_ts"] or 0.0,
                                              r.get("capture", ""), r["flow_id"])):
        out.write("\t".join(zeek_conn_row(rec, rec.get("capture"))) + "\n")
    out.write(f"#close\t{_zeek_time(close_s)}\n")


def write_zeek_weird(anomalies: Sequence[Anomaly], captures: Sequence[str | None],
                     records: Mapping[tuple[str | None, int], Mapping[str, Any]],
                     out: IO[str], diag: Diagnostics | None = None) -> None:
    """Anomalies as a Zeek weird.log: ``name`` is the anomaly code, ``addl`` its summary."""
    times = [ts_or_none(a.ts_ns) for a in anomalies]
    open_s, close_s = _span(diag, (None if t is None else t / 1e9 for t in times))
    _zeek_header(out, "weird", ZEEK_WEIRD_FIELDS, open_s)
    for ts_ns, a, cap in sorted(zip(times, anomalies, captures, strict=True),
                                key=lambda x: (x[0] is None, x[0] or 0, x[2] or "",
                                               x[1].code)):
        rec = records.get((cap, a.flow_id)) if a.flow_id is not None else None
        ident: list[object] = ([zeek_uid(rec, cap), rec["client_ip"], rec["client_port"],
                                rec["server_ip"], rec["server_port"]]
                               if rec is not None else [None] * 5)
        row = [_zeek_ts(None if ts_ns is None else ts_ns / 1e9), *ident, a.code, a.summary,
               False, "tcptrace-py", a.category]
        out.write("\t".join(_zeek_value(v) for v in row) + "\n")
    out.write(f"#close\t{_zeek_time(close_s)}\n")


# --------------------------------------------------------------------------- summary
class SummaryCounter:
    """The counts of :func:`capture_summary`, fed one record and one anomaly at a time.

    Why a counter: the ``summary`` command only counts, so it streams records and anomalies
    through one of these instead of keeping them (a flood of a million SYNs would otherwise
    hold a million records and a million ``unanswered_syn`` findings)."""

    __slots__ = ("by_close", "by_code", "by_open", "by_sev", "connections")

    def __init__(self) -> None:
        self.by_open: Counter[str] = Counter()
        self.by_close: Counter[str] = Counter()
        self.by_code: Counter[str] = Counter()
        self.by_sev: Counter[str] = Counter()
        self.connections = 0

    def add_record(self, rec: Mapping[str, Any]) -> None:
        self.connections += 1
        self.by_open[rec["open"]] += 1
        self.by_close[rec["close"]] += 1

    def add_anomaly(self, a: Anomaly) -> None:
        self.by_code[a.code] += 1
        self.by_sev[a.severity] += 1

    def summary(self, diag: Diagnostics) -> dict[str, Any]:
        """The summary dict (JSON-ready) of what was counted and ``diag``."""
        first, last = diag.first_ts_ns, diag.last_ts_ns
        by_sev = self.by_sev
        return {
            "frames": diag.frames,
            "tcp_segments": diag.tcp_segments,
            "link_types": {LINKTYPE_NAMES.get(k, str(k)): v
                           for k, v in sorted(diag.link_types.items())},
            "first_ts": None if first is None else first / 1e9,
            "last_ts": None if last is None else last / 1e9,
            "span_s": None if first is None or last is None else (last - first) / 1e9,
            "skipped": dict(sorted(diag.skipped.items())),
            "warnings": len(diag.warnings) + diag.warnings_dropped,
            "connections": self.connections,
            "by_open": dict(self.by_open.most_common()),
            "by_close": dict(self.by_close.most_common()),
            "anomalies_by_code": dict(self.by_code.most_common()),
            "anomalies_by_severity": {s: by_sev[s] for s in reversed(SEVERITIES) if by_sev[s]},
        }


def capture_summary(diag: Diagnostics, records: Iterable[Mapping[str, Any]],
                    anomalies: Iterable[Anomaly]) -> dict[str, Any]:
    """The capture at a glance, as plain JSON-ready values (the ``summary`` command)."""
    counter = SummaryCounter()
    for r in records:
        counter.add_record(r)
    for a in anomalies:
        counter.add_anomaly(a)
    return counter.summary(diag)


if _lines_in_c():
    _twin: Any = flow_record  # _engine.FlowRecord
    _twin.enable_lines(held_line)
    flow_line = _twin.line  # noqa: F811
