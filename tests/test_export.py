"""File sinks: every format written and read back equal to the DataFrame; Zeek conn.log."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any, cast

import pandas as pd
import pytest
from outputs_util import SCENARIOS, write_mixed

import tcptrace_py
from tcptrace_py.export import (
    ZEEK_CONN_FIELDS,
    capture_summary,
    write_anomalies,
    write_flows,
    zeek_uid,
)
from tcptrace_py.frames import read_table, read_zeek

FILE_FORMATS = ("csv", "json", "jsonl", "parquet")
SAMPLES = Path(__file__).resolve().parents[1] / "samples"


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> tcptrace_py.AnalysisResult:
    return tcptrace_py.analyze(write_mixed(tmp_path_factory.mktemp("export") / "mixed.pcap"))


def _write(fmt: str, path: Path, writer: object, *args: object, **kw: object) -> None:
    if fmt == "parquet":
        writer(*args, fmt, None, str(path), **kw)  # type: ignore[operator]
    else:
        with open(path, "w", encoding="utf-8", newline="") as f:
            writer(*args, fmt, f, None, **kw)  # type: ignore[operator]


@pytest.mark.parametrize("fmt", FILE_FORMATS)
def test_flows_round_trip(result: tcptrace_py.AnalysisResult, tmp_path: Path,
                          fmt: str) -> None:
    path = tmp_path / f"flows.{fmt}"
    _write(fmt, path, write_flows, result.records, diag=result.diagnostics)
    back = read_table(path, fmt, "flows")
    pd.testing.assert_frame_equal(back, result.flows)


@pytest.mark.parametrize("fmt", FILE_FORMATS)
def test_anomalies_round_trip(result: tcptrace_py.AnalysisResult, tmp_path: Path,
                              fmt: str) -> None:
    assert len(result.anomalies) >= 2
    path = tmp_path / f"anomalies.{fmt}"
    _write(fmt, path, write_anomalies, result.all_anomalies)
    back = read_table(path, fmt, "anomalies")
    pd.testing.assert_frame_equal(back, result.anomalies)


def test_jsonl_keeps_record_field_names(result: tcptrace_py.AnalysisResult) -> None:
    out = io.StringIO()
    write_flows(result.records, "jsonl", out)
    lines = [json.loads(x) for x in out.getvalue().splitlines()]
    assert [list(x) for x in lines] == [list(r) for r in result.records]
    assert lines[1]["anomalies"] == result.records[1]["anomalies"]  # a list, as before


def test_parquet_schema_is_the_dataframe_schema(result: tcptrace_py.AnalysisResult,
                                                tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    path = tmp_path / "f.parquet"
    write_flows(result.records, "parquet", None, str(path))
    schema = pq.read_schema(path)
    assert str(schema.field("start_ts").type) == "timestamp[ns, tz=UTC]"
    assert str(schema.field("close").type).startswith("dictionary")
    assert str(schema.field("rst_frame").type) == "int64" and schema.field("rst_frame").nullable
    with pytest.raises(ValueError, match="path"):
        write_flows(result.records, "parquet", io.StringIO(), None)


def test_zeek_conn_log(result: tcptrace_py.AnalysisResult) -> None:
    out = io.StringIO()
    write_flows(result.records, "zeek", out, diag=result.diagnostics)
    text = out.getvalue()
    lines = text.splitlines()
    assert lines[0] == "#separator \\x09"
    assert lines[1] == "#set_separator\t,"
    assert lines[2] == "#empty_field\t(empty)"
    assert lines[3] == "#unset_field\t-"
    assert lines[4] == "#path\tconn"
    assert lines[5] == "#open\t2023-11-14-22-13-20"  # the capture's first packet, not now
    assert lines[6].split("\t")[1:] == [f for f, _ in ZEEK_CONN_FIELDS]
    assert lines[7].split("\t")[0] == "#types"
    assert lines[-1] == "#close\t2023-11-14-22-13-23"
    rows = [x.split("\t") for x in lines[8:-1]]
    assert len(rows) == 4 and all(len(r) == len(ZEEK_CONN_FIELDS) for r in rows)
    again = io.StringIO()
    write_flows(result.records, "zeek", again, diag=result.diagnostics)
    assert again.getvalue() == text  # deterministic


def _zeek_cut(text: str, *columns: str) -> list[list[str]]:
    """What ``zeek-cut col...`` prints: the named columns of each data line, in order."""
    fields: list[str] = []
    out = []
    for line in text.splitlines():
        if line.startswith("#fields"):
            fields = line.split("\t")[1:]
        elif not line.startswith("#"):
            cells = line.split("\t")
            out.append([cells[fields.index(c)] for c in columns])
    return out


def test_zeek_parsed_back(result: tcptrace_py.AnalysisResult, tmp_path: Path) -> None:
    path = tmp_path / "conn.log"
    with open(path, "w", encoding="utf-8") as f:
        write_flows(result.records, "zeek", f, diag=result.diagnostics)
    log = read_zeek(path)
    flows = result.flows.sort_values("start_ts", kind="stable").reset_index(drop=True)
    assert log["id.orig_h"].tolist() == flows["client_ip"].tolist()
    assert log["id.resp_p"].tolist() == flows["server_port"].tolist()
    assert log["ts"].tolist() == flows["start_ts"].tolist()
    assert log["duration"].tolist() == pytest.approx(flows["duration_s"].tolist())
    assert log["conn_state"].astype(str).tolist() == flows["conn_state"].astype(str).tolist()
    assert log["history"].tolist() == [h or "" for h in flows["history"]]
    assert log["orig_pkts"].tolist() == flows["client_packets"].tolist()
    assert log["orig_bytes"].tolist() == flows["client_unique_bytes"].tolist()
    assert log["service"].isna().all()  # unset '-'
    uids = [zeek_uid(r) for r in sorted(result.records, key=lambda r: r["start_ts"])]
    assert log["uid"].tolist() == uids and len(set(uids)) == 4
    assert all(u.startswith("C") and len(u) == 18 for u in uids)
    cut = _zeek_cut(path.read_text(), "id.orig_h", "id.resp_p", "conn_state")
    assert cut[0] == ["10.0.0.1", "80", str(flows.loc[0, "conn_state"])]


def test_zeek_weird_log_joins_conn_uid(result: tcptrace_py.AnalysisResult) -> None:
    out = io.StringIO()
    recs: dict[tuple[str | None, int], dict[str, Any]] = {
        (None, r["flow_id"]): r for r in result.records}
    write_anomalies(result.all_anomalies, "zeek", out, records=recs, diag=result.diagnostics)
    rows = _zeek_cut(out.getvalue(), "uid", "name", "id.resp_p")
    by_code = {name: (uid, port) for uid, name, port in rows}
    refused = next(r for r in result.records if r["close"] == "refused")
    assert by_code["connection_refused"] == (zeek_uid(refused), "443")
    assert "#path\tweird" in out.getvalue()


def test_capture_summary(result: tcptrace_py.AnalysisResult) -> None:
    s = capture_summary(result.diagnostics, result.records, result.all_anomalies)
    assert s["frames"] == 21 and s["tcp_segments"] == 20
    assert s["skipped"] == {"not_tcp": 1}
    assert s["link_types"] == {"ETHERNET": 21}
    assert s["span_s"] == pytest.approx(3.61)
    assert s["by_close"]["refused"] == 1 and s["connections"] == 4
    assert s["anomalies_by_code"]["unanswered_syn"] == 1
    assert s["anomalies_by_severity"]["error"] >= 2
    json.dumps(s)  # JSON-ready


@pytest.mark.skipif(not SCENARIOS.is_dir(), reason="../shared/scenarios absent")
@pytest.mark.parametrize("pcap", sorted(SCENARIOS.glob("*.pcap")) if SCENARIOS.is_dir() else [],
                         ids=lambda p: p.stem)
def test_scenarios_round_trip(pcap: Path, tmp_path: Path) -> None:
    res = tcptrace_py.analyze(pcap)
    for fmt in FILE_FORMATS:
        path = tmp_path / f"flows.{fmt}"
        _write(fmt, path, write_flows, res.records, diag=res.diagnostics)
        pd.testing.assert_frame_equal(read_table(path, fmt, "flows"), res.flows)
        apath = tmp_path / f"anomalies.{fmt}"
        _write(fmt, apath, write_anomalies, res.all_anomalies)
        pd.testing.assert_frame_equal(read_table(apath, fmt, "anomalies"), res.anomalies)
    zpath = tmp_path / "conn.log"
    _write("zeek", zpath, write_flows, res.records, diag=res.diagnostics)
    assert len(read_zeek(zpath)) == len(res.flows)


def test_parquet_survives_timestamps_beyond_datetime64(tmp_path: Path) -> None:
    """A corrupt pcapng timestamp can put frames 580,000 years ahead (the public
    pcapplusplus/pcapng-example.pcapng does: microsecond units near 2**64): those timestamps
    become NaT/NA in the DataFrame and Parquet, never a crash."""
    from captures_util import ng_epb, ng_idb, ng_shb, tcp_frame
    from click.testing import CliRunner

    from tcptrace_py.cli import main
    from tcptrace_py.segment import ACK, SYN

    syn = tcp_frame("10.0.0.1", "10.0.0.2", 40000, 80, 1, 0, SYN)
    ack = tcp_frame("10.0.0.3", "10.0.0.2", 40001, 80, 1, 0, ACK)
    src = tmp_path / "wild.pcapng"
    src.write_bytes(ng_shb() + ng_idb(1) + ng_epb(0, 1_000_000, syn)
                    + ng_epb(0, 18_446_744_073_204_126_329, ack))
    out = tmp_path / "wild.parquet"
    result = CliRunner().invoke(main, ["analyze", str(src), "--format", "parquet", "-o", str(out)])
    assert result.exit_code == 0, result.output
    back = pd.read_parquet(out)
    assert len(back) == 2
    assert str(back["start_ts_ns"].dtype) == "Int64"
    assert back["start_ts"].isna().sum() == 1


NO_SAMPLE_COLUMNS = ("rtt_min_ms", "rtt_avg_ms", "rtt_max_ms", "rtt_stdev_ms", "srtt_ms",
                     "segment_min_bytes", "segment_max_bytes", "segment_avg_bytes",
                     "window_min_bytes", "window_max_bytes", "window_avg_bytes", "idle_max_ms",
                     "rexmit_interval_min_ms", "rexmit_interval_max_ms",
                     "rexmit_interval_avg_ms", "rto_backoff_ratio_avg")


@pytest.mark.parametrize("fmt", FILE_FORMATS)
def test_missing_statistics_are_missing_everywhere(tmp_path: Path, fmt: str) -> None:
    """samples/refused.pcap: a SYN answered by a RST. The server sent one packet (a RST,
    whose window the analysis does not count as an advertisement), no data, no RTT sample,
    nothing retransmitted: its statistics are missing (None / NaN / <NA> / null / an empty
    cell), never 0, in the record, the DataFrame and every export, as srtt_ms already was.
    The client's SYN window is a real sample and stays."""
    res = tcptrace_py.analyze(SAMPLES / "refused.pcap")
    (rec,) = res.records
    for col in NO_SAMPLE_COLUMNS:
        assert rec[f"server_{col}"] is None, col
    assert rec["client_window_max_bytes"] == 64240           # real samples stay
    assert rec["client_rtt_samples"] == 1 and rec["client_rtt_min_ms"] == 0.224
    assert rec["client_rtt_stdev_ms"] is None                 # a sample stdev needs two
    assert rec["server_throughput_bytes_per_s"] == 0.0        # 0 bytes over 224 us: a rate
    df = res.flows
    assert str(df["server_segment_max_bytes"].dtype) == "Int64"
    assert str(df["server_segment_avg_bytes"].dtype) == "float64"   # was int64 (truncated)
    assert df["server_segment_max_bytes"].isna().all()
    assert df["server_rtt_avg_ms"].isna().all()
    path = tmp_path / f"flows.{fmt}"
    _write(fmt, path, write_flows, res.records, diag=res.diagnostics)
    if fmt in ("json", "jsonl"):
        text = path.read_text()
        loaded = json.loads(text)[0] if fmt == "json" else json.loads(text.splitlines()[0])
        assert loaded["server_rtt_avg_ms"] is None and loaded["server_segment_min_bytes"] is None
    back = read_table(path, fmt, "flows")
    pd.testing.assert_frame_equal(back, df)
    assert back[[f"server_{c}" for c in NO_SAMPLE_COLUMNS]].isna().all().all()


def test_median_rtt_over_a_capture_ignores_connections_without_samples(
        result: tcptrace_py.AnalysisResult) -> None:
    """The mixed capture: one graceful exchange with RTT samples beside a refused, an
    unanswered and an open connection. The median RTT is that of the measured connections,
    not pulled to 0 by those that had no sample."""
    df = result.flows
    rtt = df["server_rtt_avg_ms"]
    measured = df["server_rtt_samples"] > 0
    assert rtt[~measured].isna().all() and rtt[measured].notna().all()
    assert rtt.median() == rtt[measured].median() > 0


def test_dumps_same_for_string_and_other_keys() -> None:
    """``export.dumps`` tries orjson without its (slower) non-string-key option first: a
    record (string keys) and a finding's details with integer keys both come out as the
    ``json`` module would write them, compact."""
    from tcptrace_py.export import dumps

    for value in ({"a": 1, "b": [1.5, None, True], "c": "é"},
                  {"details": {1: "x", 2: [3, 4]}, "n": 2**70},
                  {"s": {1, 2}, "t": (3,)}):
        expected = json.dumps(value, default=lambda o: list(o), separators=(",", ":"),
                              ensure_ascii=False)
        assert dumps(value) == expected


def test_dumps_line_is_dumps_text_as_utf8() -> None:
    """``export.dumps_line`` (the bytes ``analyze --format jsonl`` streams) is ``dumps`` and a
    newline, encoded: records, non-string keys, integers past 64 bits (the json fallback),
    non-ASCII text."""
    from tcptrace_py.export import dumps, dumps_line

    for value in ({"a": 1, "b": [1.5, None, True], "c": "é"},
                  {"details": {1: "x", 2: [3, 4]}, "n": 2**70},
                  {"s": {1, 2}, "t": (3,)}, {"x": float("nan"), "y": -0.0, "z": 1e300}):
        assert dumps_line(value) == (dumps(value) + "\n").encode()
    for rec in tcptrace_py.analyze(SAMPLES / "rst_storm.pcap").records:
        assert dumps_line(rec) == (dumps(rec) + "\n").encode()


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_streamed_jsonl_same_through_bytes_or_text(tmp_path: Path, jobs: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The jsonl stream writes records as bytes under the output's text stream
    (``cli._utf8_buffer``); through the text stream it writes the same file, with --jobs
    (text lines from the workers) too, to a file and to standard output."""
    from click.testing import CliRunner

    from tcptrace_py import cli

    runner = CliRunner()
    outs: list[bytes] = []
    for text_only in (False, True):
        with monkeypatch.context() as m:
            if text_only:
                m.setattr(cli, "_utf8_buffer", lambda stream: None)
            for sample in ("normal.pcap", "rst_storm.pcap", "syn_flood.pcap"):
                target = tmp_path / f"{text_only}-{sample}.jsonl"
                args = ["analyze", str(SAMPLES / sample), "--format", "jsonl", "--jobs", jobs]
                res = runner.invoke(cli.main, [*args, "-o", str(target)])
                assert res.exit_code == 0, res.output
                outs.append(target.read_bytes())
                res = runner.invoke(cli.main, args)
                assert res.exit_code == 0, res.output
                outs.append(res.stdout_bytes)
    half = len(outs) // 2
    assert outs[:half] == outs[half:]
    assert all(o.endswith(b"\n") and o.count(b"\n") >= 1 for o in outs)


def test_bytes_go_under_a_text_stream_only_where_they_read_the_same(tmp_path: Path) -> None:
    """``cli._utf8_buffer``: a UTF-8 output file's buffer; none for another encoding, for an
    unbuffered binary layer (``python -u``: a raw write may be partial) or a StringIO."""
    from tcptrace_py import cli

    with open(tmp_path / "a", "w", encoding="utf-8", newline="") as f:
        assert cli._utf8_buffer(f) is cast(Any, f.buffer)
    with open(tmp_path / "b", "w", encoding="UTF8", newline="") as f:
        assert cli._utf8_buffer(f) is cast(Any, f.buffer)
    with open(tmp_path / "c", "w", encoding="latin-1", newline="") as f:
        assert cli._utf8_buffer(f) is None
    with open(tmp_path / "d", "wb", buffering=0) as raw:
        assert cli._utf8_buffer(io.TextIOWrapper(raw, encoding="utf-8")) is None
    assert cli._utf8_buffer(io.StringIO()) is None
