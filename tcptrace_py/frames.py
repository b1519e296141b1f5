"""DataFrames: the pandas face of the engine, and the only module that imports pandas.

Why explicit dtypes: a DataFrame inferred from dicts gives ``object`` columns, float columns
where an integer is sometimes missing and timestamps as floats; users then guess. Here every
column has a declared kind (``report.LIFECYCLE_COLUMNS`` for the lifecycle columns, the
analyzer's own values for the ``client_``/``server_`` columns) mapped to one pandas dtype:

=========  ============================  ===============================================
kind       dtype                         used for
=========  ============================  ===============================================
int        ``int64``                     counters, ports, frame numbers
int?       ``Int64`` (nullable)          frames that may not exist (``rst_frame``...)
float(?)   ``float64``                   durations in seconds, ``*_ms`` figures (NaN when
                                         there is no sample)
bool       ``bool``                      flags (``sack_permitted``...)
str        ``string``                    addresses, ``history``, comma-joined anomaly codes
category   ``category`` with the full    ``open``/``close``/states/``conn_state``/codes
           set of possible values
ts         ``datetime64[ns, UTC]``       ``start_ts``/``end_ts``/``ts``
=========  ============================  ===============================================

Categoricals carry every possible value (``fsm.TcpState``, ``report.OPEN_VALUES``...), not
just those present, so ``value_counts()`` shows zeros and frames from different captures
concatenate without turning into ``object``. The same schema is used by the readers below, so
a table written to CSV/JSON/Parquet/Zeek and read back is equal to the DataFrame.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import pandas as pd

from tcptrace_py.diagnostics import Diagnostics
from tcptrace_py.engine import CaptureSummary, FlowResult, PacketRow, Source
from tcptrace_py.events import SEVERITIES, Anomaly, Event
from tcptrace_py.fsm import TcpState
from tcptrace_py.gcpolicy import collector_paused, paused_while_computing
from tcptrace_py.lazy_dataclass import dataclass, field
from tcptrace_py.options import Options
from tcptrace_py.report import CLOSE_VALUES, LIFECYCLE_COLUMNS, OPEN_VALUES
from tcptrace_py.segment import TS_NS_MIN

_NS = 1_000_000_000

STATE_VALUES = tuple(s.value for s in TcpState)
# Zeek's conn_state values (scripts/base/protocols/conn/main.zeek), "" when not classified.
CONN_STATE_VALUES = ("S0", "S1", "SF", "REJ", "S2", "S3", "RSTO", "RSTR", "RSTOS0", "RSTRH",
                     "SH", "SHR", "OTH", "")
END_REASON_VALUES = ("capture_end", "closed", "time_wait_expired", "idle_timeout",
                     "attempt_timeout", "new_incarnation", "table_full")

CATEGORIES: dict[str, tuple[str, ...]] = {
    "open": OPEN_VALUES,
    "close": CLOSE_VALUES,
    "client_state": STATE_VALUES,
    "server_state": STATE_VALUES,
    "old_state": STATE_VALUES,
    "new_state": STATE_VALUES,
    "conn_state": CONN_STATE_VALUES,
    "end_reason": END_REASON_VALUES,
    "severity": SEVERITIES,
    "category": ("network", "capture", "protocol", "lifecycle"),
    "endpoint": ("client", "server"),
    "direction": ("sent", "received"),
    "kind": ("transition", "unexpected", "ignored", "timeout"),
}
"""Every value a categorical column can take (values met in data but missing here are added,
never turned into NaN)."""

Schema = dict[str, str]

ANOMALY_SCHEMA: Schema = {
    "code": "category", "severity": "category", "category": "category", "flow_id": "int?",
    "first_frame": "int", "last_frame": "int", "ts": "ts", "summary": "str", "details": "str",
}
EVENT_SCHEMA: Schema = {
    "flow_id": "int", "frame": "int", "ts": "ts", "endpoint": "category", "kind": "category",
    "old_state": "category", "new_state": "category", "direction": "category", "flags": "str",
    "seq": "int", "ack": "int", "payload_len": "int", "reason": "str",
}
PACKET_SCHEMA: Schema = {
    "frame": "int", "ts": "ts", "flow_id": "int", "from_client": "bool", "tcp_flags": "int",
    "flags": "str", "analysis_flags": "int", "analysis": "str", "payload_len": "int",
}


def _analysis_kinds() -> Schema:
    """Kinds of the sequence-analysis columns (columns.analysis_kinds: one definition)."""
    from tcptrace_py.columns import analysis_kinds

    return analysis_kinds()


def _value_kind(values: Iterable[Any]) -> str:
    """Kind of a column not declared anywhere (a newer engine's extra column)."""
    seen = {type(v) for v in values if v is not None}
    has_none = any(v is None for v in values)
    if seen <= {bool} and seen:
        return "bool" if not has_none else "str"
    if seen <= {int}:
        return "int?" if has_none or not seen else "int"
    if seen <= {int, float}:
        return "float"
    if seen <= {list, tuple}:
        return "list"
    return "str"


def flow_schema(columns: Sequence[str] | None = None,
                records: Sequence[Mapping[str, Any]] = ()) -> Schema:
    """Column -> kind for the flows table: declared kinds first, inferred for unknown ones."""
    declared: Schema = {"capture": "str", **LIFECYCLE_COLUMNS, **_analysis_kinds(),
                        "anomalies": "list"}
    if columns is None:
        columns = [c for c in declared if c != "capture"]
    out: Schema = {}
    for col in columns:
        kind = declared.get(col)
        out[col] = kind if kind is not None else _value_kind([r.get(col) for r in records])
    return out


def _categorical(name: str, values: pd.Series) -> pd.Series:
    cats = list(CATEGORIES.get(name, ()))
    extra = sorted({str(v) for v in values.dropna().unique()} - set(cats))
    dtype = pd.CategoricalDtype(cats + extra, ordered=name == "severity")
    return values.astype("object").where(values.notna(), None).astype(dtype)


def _ts_from_seconds(values: pd.Series) -> pd.Series:
    """Float epoch seconds (the JSON record's form) -> UTC timestamps, rounded to the
    microsecond: a float64 holds today's epoch seconds to ~0.2 us only, so finer digits are
    noise (1.510638 would read back as .510638080); pcap's usual resolution is the us."""
    us = pd.to_numeric(values, errors="coerce").mul(1_000_000).round()
    return pd.to_datetime(us.astype("Int64"), unit="us", utc=True).astype("datetime64[ns, UTC]")


_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _int64_or_na(values: pd.Series) -> pd.Series:
    """Integers that fit int64; NA for the rest (a corrupt capture timestamp can lie 580,000
    years ahead -- pcapng-example.pcapng's second interface -- which no int64 holds)."""
    def fit(v: Any) -> Any:
        if v is None or v is pd.NA or v == "" or (isinstance(v, float) and v != v):
            return None
        iv = int(v)
        return iv if _INT64_MIN <= iv <= _INT64_MAX else None
    return pd.Series([fit(v) for v in values], index=values.index, dtype="Int64")


def _ts_from_ns(values: pd.Series) -> pd.Series:
    """Exact integer nanoseconds -> UTC timestamps; NaT outside 1970-2262
    (``segment.TS_NS_MIN..TS_NS_MAX``, which the capture's warnings count)."""
    if values.dtype == "int64" or values.dtype == "Int64":
        ns = values.astype("Int64")  # the common case, vectorised
    else:
        # uint64 (2**63..2**64: must not wrap to 1969), object (Python ints beyond 2**64,
        # None), text from a file.
        ns = _int64_or_na(values)
    ns = ns.where(ns >= TS_NS_MIN)
    return pd.to_datetime(ns, unit="ns", utc=True).astype("datetime64[ns, UTC]")


def coerce(df: pd.DataFrame, schema: Schema) -> pd.DataFrame:
    """Give each column of ``df`` the dtype of its kind (raw values or text from a file).

    Accepts what the sinks write: numbers or numeric text, ``""``/``None`` for missing,
    timestamps as epoch seconds, datetimes or ISO text, lists as lists or comma-joined text.
    """
    out: dict[str, pd.Series] = {}
    for col, kind in schema.items():
        if col not in df.columns:
            continue
        s = df[col]
        texty = s.dtype == object or pd.api.types.is_string_dtype(s.dtype)
        if texty and kind in ("int", "int?", "float", "float?", "ts"):
            s = s.where(s != "", None)  # CSV's empty cell: missing
        if kind == "int":
            try:
                out[col] = pd.to_numeric(s).astype("int64")
            except (OverflowError, ValueError, TypeError):
                out[col] = _int64_or_na(s)
        elif kind == "int?":
            try:
                out[col] = pd.to_numeric(s).astype("Int64")
            except (OverflowError, ValueError, TypeError):
                out[col] = _int64_or_na(s)
        elif kind in ("float", "float?"):
            out[col] = pd.to_numeric(s).astype("float64")
        elif kind == "bool":
            if texty:
                s = s.map(lambda v: v if isinstance(v, bool) else str(v).lower() in
                          ("true", "t", "1"))
            out[col] = s.astype("bool")
        elif kind == "category":
            out[col] = _categorical(col, s)
        elif kind == "ts":
            exact = df.get(f"{col}_ns")
            if exact is not None and (exact.notna() | s.isna()).all():
                # The record carries exact integer nanoseconds beside the float seconds (both
                # null for a time no output can hold).
                out[col] = _ts_from_ns(exact)
            elif pd.api.types.is_datetime64_any_dtype(s):
                out[col] = pd.to_datetime(s, utc=True).astype("datetime64[ns, UTC]")
            elif texty and s.map(lambda v: isinstance(v, str)).any():
                as_num = pd.to_numeric(s, errors="coerce")
                # Numbers (epoch seconds), some missing (Zeek's "-": a time no output can
                # hold), or ISO text.
                out[col] = (_ts_from_seconds(as_num) if (as_num.notna() | s.isna()).all()
                            else pd.to_datetime(s, utc=True).astype("datetime64[ns, UTC]"))
            else:
                out[col] = _ts_from_seconds(s)
        elif kind == "list":
            out[col] = s.map(_join_list).astype("string")
        else:
            out[col] = s.map(lambda v: v if v is None or isinstance(v, str) else
                             json.dumps(v) if isinstance(v, dict) else str(v)).astype("string")
    extra = [c for c in df.columns if c not in schema]
    frame = pd.DataFrame(out, index=pd.RangeIndex(len(df)))
    for col in extra:
        frame[col] = df[col].to_numpy()
    return frame


def _join_list(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, str):
        return v
    try:
        return ",".join(str(x) for x in v)
    except TypeError:  # NaN from a reader
        return ""


def empty_frame(schema: Schema) -> pd.DataFrame:
    """A frame with no rows and the schema's columns and dtypes."""
    return coerce(pd.DataFrame({c: pd.Series([], dtype=object) for c in schema}), schema)


def flows_frame(records: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Flow records (``FlowResult.record`` dicts) -> the typed flows DataFrame.

    ``anomalies`` (a list of codes in the record) becomes comma-joined text, which every file
    format can hold: ``df[df.anomalies.str.contains("unanswered_syn")]``.
    """
    if not records:
        return empty_frame(flow_schema())
    columns = list(records[0].keys())
    for r in records[1:]:
        if len(r) != len(columns):
            columns += [k for k in r if k not in columns]
    schema = flow_schema(columns, records)
    df = pd.DataFrame.from_records(list(records), columns=columns)
    return coerce(df, schema)


def anomaly_record(a: Anomaly) -> dict[str, Any]:
    """An anomaly as a plain dict in the DataFrame's shape (``ts`` as integer ns)."""
    return {"code": a.code, "severity": a.severity, "category": a.category,
            "flow_id": a.flow_id, "first_frame": a.first_frame, "last_frame": a.last_frame,
            "ts": a.ts_ns, "summary": a.summary,
            "details": json.dumps(a.details, sort_keys=True, default=str)}


def _ns_frame(rows: list[dict[str, Any]] | list[tuple[Any, ...]], schema: Schema,
              columns: list[str] | None = None) -> pd.DataFrame:
    """Rows whose ``ts`` is integer nanoseconds -> typed frame (exact timestamps)."""
    if not rows:
        return empty_frame(schema)
    df = pd.DataFrame.from_records(rows, columns=columns)
    ts = _ts_from_ns(df["ts"])
    df = coerce(df.drop(columns=["ts"]), {k: v for k, v in schema.items() if k != "ts"})
    df.insert(list(schema).index("ts"), "ts", ts)
    return df[list(schema)]


def anomalies_frame(anomalies: Iterable[Anomaly]) -> pd.DataFrame:
    """Anomalies -> typed DataFrame; ``details`` is JSON text (``json.loads`` it)."""
    return _ns_frame([anomaly_record(a) for a in anomalies], ANOMALY_SCHEMA)


def events_frame(events: Iterable[Event]) -> pd.DataFrame:
    """State-machine events -> typed DataFrame (one row per transition/unexpected segment)."""
    rows = [(e.flow_id, e.frame, e.ts_ns, e.endpoint, e.kind, e.old_state, e.new_state,
             e.direction, e.flags, e.seq, e.ack, e.payload_len, e.reason) for e in events]
    return _ns_frame(rows, EVENT_SCHEMA, list(EVENT_SCHEMA))


def packets_frame(rows: Iterable[PacketRow]) -> pd.DataFrame:
    """Per-packet rows (``Options.keep_packets``) -> typed DataFrame with flag names."""
    from tcptrace_py.analysis import flag_names
    from tcptrace_py.segment import flags_text

    out = [(frame, ts, fid, fc, tf, flags_text(tf), am, " ".join(flag_names(am)), plen)
           for frame, ts, fid, fc, tf, am, plen in rows]
    return _ns_frame(out, PACKET_SCHEMA, list(PACKET_SCHEMA))


# --------------------------------------------------------------------------- the API object
_OPTION_FIELDS = {f.name for f in fields(Options)}


def make_options(options: Options | None = None, **kwargs: Any) -> Options:
    """``Options`` from keyword arguments named as its fields (``time_wait_s=30``...).

    ``packets=True`` is short for ``keep_packets=True``; an unknown name is a TypeError, so a
    typo does not silently run with defaults.
    """
    if "packets" in kwargs:
        kwargs["keep_packets"] = bool(kwargs.pop("packets"))
    unknown = sorted(set(kwargs) - _OPTION_FIELDS)
    if unknown:
        raise TypeError(f"unknown option(s): {', '.join(unknown)} "
                        f"(known: packets, {', '.join(sorted(_OPTION_FIELDS))})")
    return replace(options or Options(), **kwargs)


@dataclass
class AnalysisResult:
    """One capture analysed: typed DataFrames plus the capture summary.

    Example::

        >>> import tcptrace_py
        >>> res = tcptrace_py.analyze("capture.pcap")
        >>> res.flows[res.flows.close.isin(["refused", "unanswered"])]   # failed connections
        >>> res.anomalies.groupby("severity", observed=False).size()
        >>> res.packets          # built on first access (re-reads the capture)
    """

    source: Any
    """What was analysed (path, bytes or file object)."""
    options: Options
    """Options used."""
    results: list[FlowResult]
    """The engine's per-connection results, in emission order."""
    summary: CaptureSummary
    """Capture-wide results: diagnostics, capture-wide anomalies, connection counts."""
    _cache: dict[str, pd.DataFrame] = field(default_factory=dict, repr=False)
    _start_pos: int | None = field(default=None, repr=False)

    @property
    def diagnostics(self) -> Diagnostics:
        """Frames read, skipped by reason, link types, warnings."""
        return self.summary.diagnostics

    @property
    def records(self) -> list[dict[str, Any]]:
        """The flow records as plain dicts (what ``iter_flows`` yields)."""
        return [r.record for r in self.results]

    @property
    def all_anomalies(self) -> list[Anomaly]:
        """Per-connection anomalies then capture-wide ones."""
        return [a for r in self.results for a in r.anomalies] + list(self.summary.anomalies)

    @property
    def flows(self) -> pd.DataFrame:
        """One row per TCP connection (see docs/outputs.md for the columns)."""
        if "flows" not in self._cache:
            self._cache["flows"] = flows_frame(self.records)
        return self._cache["flows"]

    @property
    def anomalies(self) -> pd.DataFrame:
        """One row per anomaly; capture-wide ones have ``flow_id`` <NA>."""
        if "anomalies" not in self._cache:
            self._cache["anomalies"] = anomalies_frame(self.all_anomalies)
        return self._cache["anomalies"]

    @property
    def events(self) -> pd.DataFrame:
        """State transitions and unexpected segments of every connection."""
        if "events" not in self._cache:
            self._cache["events"] = events_frame(e for r in self.results for e in r.events)
        return self._cache["events"]

    @property
    def packets(self) -> pd.DataFrame:
        """Per-packet flags. Built only when asked: re-runs the analysis with packet rows
        unless ``analyze(..., packets=True)`` kept them the first time."""
        if "packets" not in self._cache:
            rows = self.packet_rows()
            self._cache["packets"] = packets_frame(sorted(rows))
        return self._cache["packets"]

    def packet_rows(self) -> list[PacketRow]:
        """Per-packet tuples (frame, ts_ns, flow_id, from_client, tcp flags, analysis flags,
        payload_len), re-running the analysis if they were not kept."""
        if not self.options.keep_packets:
            again = analyze(self.reopen(), options=replace(self.options, keep_packets=True))
            self.results = again.results
            self.summary = again.summary
            self.options = again.options
        return [row for r in self.results for row in (r.packets or ())]

    def to_html(self, path: str | Path, *, title: str | None = None,
                largest: int | None = None, max_detail_bytes: int | None = None) -> Path:
        """Write the interactive HTML report of this capture to ``path``: one self-contained
        file (docs/report.md). ``largest`` and ``max_detail_bytes`` change which connections
        carry packet detail (default: those with findings and the 20 largest, 40 MB at most).
        Needs the capture again (a path, bytes or a seekable file object) for the segments'
        numbers. Returns the path written."""
        from tcptrace_py.htmlreport import ReportLimits, write_html

        limits = ReportLimits()
        if largest is not None:
            limits = replace(limits, largest=largest)
        if max_detail_bytes is not None:
            limits = replace(limits, detail_budget_bytes=max_detail_bytes)
        return write_html(self, path, title=title, limits=limits)

    def reopen(self) -> Source:
        """The source again, for a second pass (plots, packets)."""
        src = self.source
        if hasattr(src, "read"):
            if self._start_pos is None or not hasattr(src, "seek"):
                raise ValueError("cannot re-read a non-seekable file object: pass "
                                 "packets=True to analyze() or give a path or bytes")
            src.seek(self._start_pos)
        return src  # type: ignore[no-any-return]


def analyze(source: Source, *, options: Options | None = None, name: str | None = None,
            strict: bool = False, jobs: int = 1, **kwargs: Any) -> AnalysisResult:
    """Analyse one capture into an :class:`AnalysisResult` (see ``tcptrace_py.analyze``);
    ``jobs`` > 1 splits a capture file over that many processes (same results)."""
    from tcptrace_py.parallel import engine_for

    opts = make_options(options, **kwargs)
    start = None
    if hasattr(source, "read") and hasattr(source, "tell"):
        try:
            start = source.tell()
        except OSError:
            start = None
    engine = engine_for(opts, jobs, source)
    with collector_paused():
        results = list(engine.run(source, name=name, strict=strict))
    return AnalysisResult(source, opts, results, engine.summary, _start_pos=start)


def iter_results(source: Source, jobs: int = 1, **kwargs: Any) -> Iterator[FlowResult]:
    """Engine results one by one (no DataFrame); ``jobs`` as for :func:`analyze`."""
    from tcptrace_py.parallel import engine_for

    yield from paused_while_computing(engine_for(make_options(**kwargs), jobs,
                                                 source).run(source))


# --------------------------------------------------------------------------- readers
def read_table(path: str | Path, fmt: str, table: str = "flows") -> pd.DataFrame:
    """Read a file written by ``export`` (csv, json, jsonl, parquet, zeek) back into the
    typed DataFrame of ``table`` (``flows`` or ``anomalies``)."""
    p = Path(path)
    if fmt == "parquet":
        df = pd.read_parquet(p)
        return df if table == "flows" else coerce(df, ANOMALY_SCHEMA)
    if fmt == "csv":
        df = pd.read_csv(p, dtype=str, keep_default_na=False)
    elif fmt == "jsonl":
        with open(p, encoding="utf-8") as f:
            df = pd.DataFrame([json.loads(line) for line in f if line.strip()])
    elif fmt == "json":
        with open(p, encoding="utf-8") as f:
            df = pd.DataFrame(json.load(f))
    elif fmt == "zeek":
        return read_zeek(p)
    else:
        raise ValueError(f"unknown format {fmt!r}")
    if table == "flows":
        if df.empty:
            return empty_frame(flow_schema())
        records: list[dict[str, Any]] = [{str(k): v for k, v in r.items()}
                                         for r in df.to_dict("records")]
        return coerce(df, flow_schema([str(c) for c in df.columns], records))
    if "ts_ns" in df.columns:  # exact timestamps written beside the float seconds
        df["ts"] = _ts_from_ns(df.pop("ts_ns"))
    if df.empty:
        return empty_frame(ANOMALY_SCHEMA)
    if "details" in df.columns:
        df["details"] = df["details"].map(
            lambda v: v if isinstance(v, str) else json.dumps(v, sort_keys=True, default=str))
    return coerce(df, ANOMALY_SCHEMA)[list(ANOMALY_SCHEMA)]


ZEEK_CONN_TYPES: dict[str, str] = {
    "ts": "ts", "uid": "str", "id.orig_h": "str", "id.orig_p": "int", "id.resp_h": "str",
    "id.resp_p": "int", "proto": "str", "service": "str", "duration": "float",
    "orig_bytes": "int?", "resp_bytes": "int?", "conn_state": "category", "local_orig": "str",
    "local_resp": "str", "missed_bytes": "int?", "history": "str", "orig_pkts": "int?",
    "orig_ip_bytes": "int?", "resp_pkts": "int?", "resp_ip_bytes": "int?",
    "tunnel_parents": "str",
}


def read_zeek(path: str | Path) -> pd.DataFrame:
    """Parse a Zeek TSV log (header lines, ``#fields``) as zeek-cut would, typed when it is a
    conn.log. Unset ``-`` becomes <NA>, ``(empty)`` an empty string."""
    fields_: list[str] = []
    rows: list[list[str]] = []
    sep = "\t"
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("#separator"):
                sep = line.split(" ", 1)[1].encode().decode("unicode_escape")
            elif line.startswith("#fields"):
                fields_ = line.split(sep)[1:]
            elif line.startswith("#"):
                continue
            elif line:
                rows.append(line.split(sep))
    raw = pd.DataFrame(rows, columns=fields_, dtype=object)
    raw = raw.replace({"-": None, "(empty)": ""})
    schema = {c: ZEEK_CONN_TYPES.get(c, "str") for c in fields_}
    df = coerce(raw, schema)
    for c, k in schema.items():  # the unset mark means missing, even for text
        if k == "str":
            df[c] = raw[c].astype("string")
    return df
