"""The pandas API: tcptrace_py.analyze / iter_flows and the typed DataFrames of frames.py."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from outputs_util import SCENARIOS, T0_NS, write_mixed

import tcptrace_py
from tcptrace_py.fsm import TcpState
from tcptrace_py.report import CLOSE_VALUES, LIFECYCLE_COLUMNS, OPEN_VALUES

REPO = Path(__file__).resolve().parents[1]

DTYPE_OF_KIND = {"int": "int64", "int?": "Int64", "float": "float64", "float?": "float64",
                 "bool": "bool", "str": "string", "ts": "datetime64[ns, UTC]",
                 "category": "category"}


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_mixed(tmp_path_factory.mktemp("frames") / "mixed.pcap")


@pytest.fixture(scope="module")
def result(mixed: Path) -> tcptrace_py.AnalysisResult:
    return tcptrace_py.analyze(mixed)


def test_flows_dtypes_follow_declared_kinds(result: tcptrace_py.AnalysisResult) -> None:
    df = result.flows
    assert len(df) == 4
    for col, kind in LIFECYCLE_COLUMNS.items():
        assert str(df[col].dtype) == DTYPE_OF_KIND[kind], col
    assert str(df["client_rtt_avg_ms"].dtype) == "float64"
    assert str(df["client_sack_permitted"].dtype) == "bool"
    assert str(df["retransmissions"].dtype) == "int64"
    assert str(df["anomalies"].dtype) == "string"


def test_categoricals_carry_every_possible_value(result: tcptrace_py.AnalysisResult) -> None:
    df = result.flows
    assert list(df["open"].cat.categories) == list(OPEN_VALUES)
    assert list(df["close"].cat.categories) == list(CLOSE_VALUES)
    assert set(df["client_state"].cat.categories) == {s.value for s in TcpState}
    counts = df["close"].value_counts()
    assert counts["graceful"] == 1 and counts["refused"] == 1 and counts["unanswered"] == 1
    assert counts["rst_by_server"] == 0  # present as a category with a zero count


def test_values_timestamps_and_missing(result: tcptrace_py.AnalysisResult) -> None:
    df = result.flows.set_index("close", drop=False)
    good = df.loc["graceful"]
    assert good["start_ts"] == pd.Timestamp(T0_NS, unit="ns", tz="UTC")
    assert good["duration_s"] == pytest.approx(0.320)
    assert good["retransmissions"] == 1
    assert good["client_fin_frame"] == 12
    assert pd.isna(good["rst_frame"])  # Int64 <NA>, not NaN in a float column
    assert df.loc["refused"]["rst_frame"] == 16
    assert "unanswered_syn" in df.loc["unanswered"]["anomalies"]
    v6 = result.flows[result.flows.ip_version == 6]
    assert list(v6["open"]) == ["midstream"]


def test_anomalies_events_frames(result: tcptrace_py.AnalysisResult) -> None:
    an = result.anomalies
    assert str(an["ts"].dtype) == "datetime64[ns, UTC]"
    assert str(an["flow_id"].dtype) == "Int64"
    assert list(an["severity"].cat.categories) == ["info", "warning", "error"]
    assert an["severity"].cat.ordered
    assert set(an["code"]) >= {"unanswered_syn", "connection_refused"}
    refused = an[an.code == "connection_refused"].iloc[0]
    assert refused["ts"] == pd.Timestamp(T0_NS + 400_000_000, unit="ns", tz="UTC")
    ev = result.events
    assert str(ev["new_state"].dtype) == "category"
    assert (ev[ev.flow_id == 0]["new_state"] == "TIME_WAIT").any()
    assert str(ev["ts"].dtype) == "datetime64[ns, UTC]"


def test_packets_lazily_and_eagerly(mixed: Path, result: tcptrace_py.AnalysisResult) -> None:
    lazy = result.packets  # re-runs the analysis with packet rows
    eager = tcptrace_py.analyze(mixed, packets=True).packets
    pd.testing.assert_frame_equal(lazy, eager)
    assert len(eager) == 20  # every TCP segment, the UDP frame is not a packet row
    retx = eager[eager.analysis.str.contains("retransmission")]
    assert list(retx["frame"]) == [10, 18, 19]
    assert str(eager["from_client"].dtype) == "bool"
    assert eager.iloc[0]["flags"] == "S"


def test_sources_path_bytes_file_object(mixed: Path) -> None:
    by_path = tcptrace_py.analyze(str(mixed)).flows
    by_bytes = tcptrace_py.analyze(mixed.read_bytes()).flows
    with open(mixed, "rb") as f:
        res = tcptrace_py.analyze(f)
        by_file = res.flows
        assert len(res.packets) == 20  # seekable: the second pass re-reads it
    pd.testing.assert_frame_equal(by_path, by_bytes)
    pd.testing.assert_frame_equal(by_path, by_file)
    stream = io.BufferedReader(io.BytesIO(mixed.read_bytes()))
    assert len(tcptrace_py.analyze(stream).flows) == 4


def test_options_keywords(mixed: Path) -> None:
    res = tcptrace_py.analyze(mixed, time_wait_s=0.001, idle_timeout_s=100.0)
    assert res.options.time_wait_s == 0.001
    with pytest.raises(TypeError, match="time_wait"):
        tcptrace_py.analyze(mixed, time_wait=3)


def test_empty_capture_gives_typed_empty_frames(tmp_path: Path) -> None:
    from captures_util import write_pcap

    res = tcptrace_py.analyze(write_pcap(tmp_path / "empty.pcap", []))
    assert res.flows.empty and str(res.flows["start_ts"].dtype) == "datetime64[ns, UTC]"
    assert str(res.flows["close"].dtype) == "category"
    assert res.anomalies.empty and list(res.anomalies.columns)[0] == "code"


def test_iter_flows_streams_dicts_without_pandas(mixed: Path) -> None:
    code = ("import sys, tcptrace_py\n"
            f"recs = list(tcptrace_py.iter_flows({str(mixed)!r}, time_wait_s=1.0))\n"
            "assert [r['close'] for r in recs].count('refused') == 1, recs\n"
            "bad = [m for m in ('pandas', 'pyarrow', 'matplotlib', 'rich') if m in sys.modules]\n"
            "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_import_and_cli_stay_light() -> None:
    code = ("import sys, tcptrace_py, tcptrace_py.cli\n"
            "bad = [m for m in ('pandas', 'pyarrow', 'matplotlib', 'rich', 'dask')"
            " if m in sys.modules]\n"
            "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_lazy_public_names() -> None:
    assert callable(tcptrace_py.analyze_many)
    assert tcptrace_py.Options().time_wait_s == 60.0
    with pytest.raises(AttributeError):
        _ = tcptrace_py.no_such_name


def test_failed_connections_sample(mixed: Path) -> None:
    out = subprocess.run([sys.executable, str(REPO / "samples" / "failed_connections.py"),
                          str(mixed)], check=True, capture_output=True, text=True, cwd=REPO)
    assert "refused" in out.stdout and "unanswered" in out.stdout
    assert "graceful" not in out.stdout


@pytest.mark.skipif(not SCENARIOS.is_dir(), reason="../shared/scenarios absent")
@pytest.mark.parametrize("pcap", sorted(SCENARIOS.glob("*.pcap")) if SCENARIOS.is_dir() else [],
                         ids=lambda p: p.stem)
def test_scenarios_frames(pcap: Path) -> None:
    res = tcptrace_py.analyze(pcap, packets=True)
    recs = list(tcptrace_py.iter_flows(pcap))
    assert len(res.flows) == len(recs) > 0
    assert res.flows["flow_id"].tolist() == [r["flow_id"] for r in recs]
    assert res.flows["close"].tolist() == [r["close"] for r in recs]
    assert int(res.flows["retransmissions"].sum()) == sum(r["retransmissions"] for r in recs)
    assert len(res.packets) == res.diagnostics.tcp_segments
    assert not res.flows["start_ts"].isna().any()
