"""Coverage-guided fuzz target for the whole pipeline: engine, every writer, the DataFrames.

Why beside ``fuzz_reader.py``: that target stops at the engine's records; the audit of
issue 18 found the crashes after it (a timestamp no ``datetime64[ns]`` holds broke the Zeek
writer, ``anomalies --format csv|parquet|zeek``, the anomalies/events/packets frames and
batch). Here each input, read as a capture, goes through everything a user can ask for:

1. ``Engine.run(bytes)`` with packets kept (reader, decoder, flow table, connections,
   detectors, records);
2. the typed DataFrames (flows, anomalies, events, packets: ``tcptrace_py.frames``);
3. every writer of flows and anomalies (json, jsonl, csv, parquet, zeek:
   ``tcptrace_py.export``), each read back with ``frames.read_table``; the capture summary.

Invariants (a failure is a finding, like a crash):
- nothing but ``CaptureError`` (an unreadable start) escapes any stage;
- frames read = TCP segments + every skip counter
  (``diag.frames == diag.tcp_segments + sum(diag.skipped.values())``);
- every segment is in exactly one record and in exactly one packet row (frame numbers
  unique, each within the frames read); connections counted = records yielded;
- every table has one row per record/anomaly/event/packet, and a time is either NaT or a
  real date (1970 .. 2262: ``segment.TS_NS_MIN..TS_NS_MAX``), NaT exactly where the exact
  time lies outside it (never a 1969 from a wrapped 64-bit value);
- a file written and read back has the same rows (flow ids, codes) and the same NaT places.

Run it like the reader target (tests/fuzz/README.md):

    python tests/fuzz/fuzz_pipeline.py -max_total_time=600 -timeout=20 corpus/

Without atheris, ``TestOneInput`` is a plain function: tests/test_fuzz_pipeline.py runs it
over the seeds and over structure-aware Hypothesis inputs, on the engine the session
selects (the suite runs once compiled, once with ``TCPTRACE_PY_PURE=1``) and, with the
compiled engine built, on the reference front end too (:func:`front_end`).
"""

from __future__ import annotations

import io
import json
import sys
import tempfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import pandas as pd  # noqa: E402

if __name__ == "__main__":
    # Under atheris, instrument the project only: instrument_all() would instrument pandas
    # and pyarrow too and run ~100x slower (under one input per second). pandas and
    # pyarrow are imported first, uninstrumented.
    import importlib

    import pyarrow  # noqa: F401

    _atheris = importlib.import_module("atheris")
    with _atheris.instrument_imports(include=["tcptrace_py"]):
        importlib.import_module("tcptrace_py.frames")
        importlib.import_module("tcptrace_py.export")
        importlib.import_module("tcptrace_py.engine")

from tcptrace_py import export, frames, implementation  # noqa: E402
from tcptrace_py.diagnostics import CaptureError  # noqa: E402
from tcptrace_py.engine import Engine  # noqa: E402
from tcptrace_py.options import Options  # noqa: E402
from tcptrace_py.segment import ts_in_range  # noqa: E402

FUZZ_OPTIONS = Options(max_connections=8, max_events_per_connection=16, keep_packets=True)
"""A tiny table so eviction paths are reached with small inputs; packets kept for the
packets table."""

TEXT_FORMATS = ("json", "jsonl", "csv", "zeek")
FILE_FORMATS = (*TEXT_FORMATS, "parquet")
"""Every format ``analyze``/``anomalies`` write (``table`` is the terminal's)."""


@contextmanager
def front_end(name: str) -> Iterator[None]:
    """Run with the compiled (``"compiled"``) or the reference (``"reference"``) reader and
    decoder, as tests/test_engines.py's in-process comparison does; the per-connection
    classes are the session's (``TCPTRACE_PY_PURE=1`` selects the reference end to end)."""
    saved = implementation.compiled
    if name == "reference":
        implementation.compiled = None
    elif saved is None:
        raise ValueError("compiled engine not built or not selected")
    try:
        yield
    finally:
        implementation.compiled = saved


def _times_ok(table: pd.DataFrame, col: str, exact: list[int | None] | None) -> None:
    """``table[col]`` is datetime64[ns, UTC]; NaT exactly where ``exact`` is out of range."""
    series = table[col]
    assert str(series.dtype) == "datetime64[ns, UTC]", (col, series.dtype)
    if exact is not None:
        expect_nat = [v is None or not ts_in_range(v) for v in exact]
        assert series.isna().tolist() == expect_nat, (col, series.tolist(), exact)


def check_pipeline(data: bytes, workdir: Path, outputs: bool = True) -> str:
    """Everything for one input; returns a digest of the engine's results (for comparing
    engines). ``outputs=False`` stops after the engine and its accounting: the DataFrames
    and writers cost ~0.2 s per input whatever its size (180 typed columns, Parquet), the
    engine a few ms, so the bounded suite checks outputs on a share of its inputs
    (:func:`outputs_for`)."""
    engine = Engine(FUZZ_OPTIONS)
    try:
        results = list(engine.run(data, name="fuzz"))
    except CaptureError:
        return "CaptureError"
    diag = engine.diag
    summary = engine.summary
    # ---- accounting
    assert diag.frames == diag.tcp_segments + sum(diag.skipped.values()), (
        diag.frames, diag.tcp_segments, dict(diag.skipped))
    records = [r.record for r in results]
    packets = sum(r["client_packets"] + r["server_packets"] for r in records)
    assert packets == diag.tcp_segments, (packets, diag.tcp_segments)
    assert summary.connections == len(records)
    ids = sorted(r["flow_id"] for r in records)
    assert len(set(ids)) == len(ids) and all(i >= 0 for i in ids), ids
    # Flow ids run 0, 1, 2... except where a SYN with a new ISN was held as a new
    # incarnation (its id reserved, as tcp.stream numbers it) and then answered as an RFC
    # 5961 challenge: it joined the connection and its id stays unused (flowtable.py).
    unused = set(range(ids[-1] + 1 if ids else 0)) - set(ids)
    syn_challenges = sum(a.details["count"] for r in results for a in r.anomalies
                         if a.code == "challenge_ack" and "syn" in a.details["kinds"])
    assert len(unused) <= syn_challenges, (ids, syn_challenges)
    rows = sorted(row for r in results for row in (r.packets or ()))
    frame_numbers = [row[0] for row in rows]
    assert len(rows) == diag.tcp_segments
    assert len(set(frame_numbers)) == len(rows)
    assert all(1 <= f <= diag.frames for f in frame_numbers)
    assert diag.notes["timestamp_out_of_range"] >= sum(1 for row in rows
                                                       if not ts_in_range(row[1]))
    for rec in records:
        for key in ("start_ts_ns", "end_ts_ns"):
            assert rec[key] is None or ts_in_range(rec[key]), (key, rec[key])
    anomalies = [a for r in results for a in r.anomalies] + list(summary.anomalies)
    events = [e for r in results for e in r.events]
    digest = repr((records, anomalies, events, rows, sorted(diag.skipped.items()),
                   sorted(diag.notes.items()), [str(w) for w in diag.warnings]))
    if not outputs:
        return digest
    # ---- DataFrames
    flows = frames.flows_frame(records)
    assert len(flows) == len(records)
    if records:
        _times_ok(flows, "start_ts", [r["start_ts_ns"] for r in records])
    table = frames.anomalies_frame(anomalies)
    assert len(table) == len(anomalies)
    _times_ok(table, "ts", [a.ts_ns for a in anomalies])
    ev = frames.events_frame(events)
    assert len(ev) == len(events)
    _times_ok(ev, "ts", [e.ts_ns for e in events])
    pk = frames.packets_frame(rows)
    assert len(pk) == len(rows)
    _times_ok(pk, "ts", [row[1] for row in rows])
    # ---- every writer, read back
    for fmt in FILE_FORMATS:
        _write_and_read(fmt, records, anomalies, diag, flows, table, workdir)
    json.dumps(export.capture_summary(diag, records, anomalies))
    return digest


OUTPUTS_EVERY = 4
"""The bounded suite checks the DataFrames and writers on one input in this many."""


def outputs_for(data: bytes) -> bool:
    """Whether the bounded suite checks outputs for ``data``: a function of the input, so a
    failing example replays (and shrinks) the same way."""
    return zlib.crc32(data) % OUTPUTS_EVERY == 0


def _write_and_read(fmt: str, records: list[dict[str, Any]], anomalies: list[Any],
                    diag: Any, flows: pd.DataFrame, table: pd.DataFrame,
                    workdir: Path) -> None:
    flows_path = workdir / f"flows.{fmt}"
    anomalies_path = workdir / f"anomalies.{fmt}"
    if fmt == "parquet":
        export.write_flows(records, fmt, path=str(flows_path))
        export.write_anomalies(anomalies, fmt, path=str(anomalies_path))
    else:
        buf = io.StringIO()
        export.write_flows(records, fmt, buf, diag=diag)
        flows_path.write_text(buf.getvalue(), encoding="utf-8")
        buf = io.StringIO()
        export.write_anomalies(anomalies, fmt, buf, diag=diag)
        anomalies_path.write_text(buf.getvalue(), encoding="utf-8")
    if fmt == "json":
        json.loads(flows_path.read_text(encoding="utf-8"))  # read back as jsonl is, below
        json.loads(anomalies_path.read_text(encoding="utf-8"))
        return
    back = frames.read_table(flows_path, fmt)
    assert len(back) == len(records), (fmt, len(back), len(records))
    if not records:
        return
    if fmt == "zeek":  # conn.log: ordered by start time, unset "-" for a missing one
        assert back["ts"].isna().sum() == flows["start_ts"].isna().sum()
        return
    assert back["flow_id"].tolist() == flows["flow_id"].tolist(), fmt
    assert back["start_ts"].isna().tolist() == flows["start_ts"].isna().tolist(), fmt
    if fmt in ("jsonl", "csv", "parquet") and anomalies:
        again = frames.read_table(anomalies_path, fmt, table="anomalies")
        assert again["code"].astype(str).tolist() == table["code"].astype(str).tolist()
        assert again["ts"].isna().tolist() == table["ts"].isna().tolist(), fmt


_WORKDIR: Path | None = None


def TestOneInput(data: bytes) -> None:  # noqa: N802 - the name libFuzzer/atheris expect
    """One fuzz iteration (see the module docstring); files go to one temporary directory
    for the whole run (overwritten by each input)."""
    global _WORKDIR
    if _WORKDIR is None:
        _WORKDIR = Path(tempfile.mkdtemp(prefix="tcptrace-fuzz-"))
    check_pipeline(data, _WORKDIR)


def main() -> None:
    import importlib

    atheris = importlib.import_module("atheris")  # optional: only this entry point needs it

    # The project's modules were instrumented when imported (top of this file).
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
