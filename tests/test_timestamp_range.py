"""Timestamps no output can hold (issue 17 items 11-12, issue 18 item 9).

A pcapng interface's ``if_tsresol``/``if_tsoffset`` can put a packet anywhere in time: past
2262 (the end of ``datetime64[ns]``), between 2**63 and 2**64 ns (which wrapped to 1969 in a
signed cast), before 1970 (a negative offset). Such frames are analysed with their exact
times (intervals within one interface stay right), flagged once per interface with a count,
kept out of the backwards check and the capture's span, and every output shows their times
as null/NaT. The captures are built here, one interface per kind of bad time, their frames
interleaved with a normal interface's, and read by both engines.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from captures_util import ng_epb, ng_idb, ng_shb, tcp_frame, write_pcap
from click.testing import CliRunner

import tcptrace_py
from tcptrace_py import export, frames, implementation
from tcptrace_py.cli import main
from tcptrace_py.engine import Engine
from tcptrace_py.options import Options
from tcptrace_py.segment import ACK, PSH, RST, SYN

SHARED = Path(__file__).resolve().parents[2] / "shared"
PCAPNG_EXAMPLE = SHARED / "captures" / "pcapplusplus" / "pcapng-example.pcapng"

T0_S = 1_700_000_000
"""The normal interface's first packet (2023-11-14)."""
YEAR_2000_NS = 946_684_800 * 10**9
TS_NS_MAX = 2**63 - 1
"""The last time datetime64[ns] holds (segment.TS_NS_MAX, written out)."""


@pytest.fixture(params=["compiled", "reference"])
def engine(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Run the test with the compiled engine's reader and decoder, then the reference's."""
    if request.param == "compiled":
        if implementation.compiled is None:
            pytest.skip("compiled engine not built or not selected")
    else:
        monkeypatch.setattr(implementation, "compiled", None)
    yield request.param


def _handshake(client: str, cport: int) -> list[bytes]:
    """SYN, SYN-ACK, ACK, 100 bytes of request, their ACK: an open connection to port 80."""
    server = "10.9.9.9"
    return [tcp_frame(client, server, cport, 80, 1000, 0, SYN),
            tcp_frame(server, client, 80, cport, 5000, 1001, SYN | ACK),
            tcp_frame(client, server, cport, 80, 1001, 5001, ACK),
            tcp_frame(client, server, cport, 80, 1001, 5001, PSH | ACK, payload=b"q" * 100),
            tcp_frame(server, client, 80, cport, 5001, 1101, ACK)]


def _refused(client: str, cport: int) -> list[bytes]:
    server = "10.9.9.9"
    return [tcp_frame(client, server, cport, 81, 7000, 0, SYN),
            tcp_frame(server, client, 81, cport, 0, 7001, RST | ACK)]


# (if_tsresol, if_tsoffset seconds, first timestamp in the interface's units, frames)
INTERFACES: list[tuple[int, int | None, int, list[bytes]]] = [
    # 0: microseconds since 2023: a normal interface.
    (6, None, T0_S * 10**6, _handshake("10.0.0.1", 40000)),
    # 1: nanoseconds, timestamps just above 2**63: wrapped to 1969 by a signed cast.
    (9, None, 2**63 + 5 * 10**9, _handshake("10.0.0.2", 40001)),
    # 2: an offset of -2e12 s: 63,000 years before 1970, a negative time.
    (6, -2 * 10**12, T0_S * 10**6, _refused("10.0.0.3", 40002)),
    # 3: an offset of 1e10 s pushing past 2262 (year 2340).
    (6, 10**10, T0_S * 10**6, _handshake("10.0.0.4", 40003)),
]
BAD_FRAMES = sum(len(f) for _r, _o, _u, f in INTERFACES[1:])
STEP_UNITS = {6: 1_000, 9: 1_000_000}
"""1 ms between two frames of one interface, in its units."""


def out_of_range_pcapng(path: Path) -> Path:
    """The four interfaces, their frames interleaved (0, 1, 2, 3, 0, 1, ...), 1 ms apart
    within an interface: with the old rules every in-range frame after a bad one went
    'backwards'."""
    blocks = [ng_shb()]
    for resol, offset, _u, _f in INTERFACES:
        blocks.append(ng_idb(1, tsresol=resol, tsoffset_s=offset))
    longest = max(len(f) for _r, _o, _u, f in INTERFACES)
    for i in range(longest):
        for iface, (resol, _o, first, frames_) in enumerate(INTERFACES):
            if i < len(frames_):
                blocks.append(ng_epb(iface, first + i * STEP_UNITS[resol], frames_[i]))
    path.write_bytes(b"".join(blocks))
    return path


@pytest.fixture
def capture(tmp_path: Path) -> Path:
    return out_of_range_pcapng(tmp_path / "bad_times.pcapng")


def test_flagged_once_per_interface_and_analysed(capture: Path, engine: str) -> None:
    eng = Engine(Options(keep_packets=True))
    results = list(eng.run(str(capture)))
    diag = eng.summary.diagnostics
    assert diag.frames == diag.tcp_segments == sum(len(f) for _r, _o, _u, f in INTERFACES)
    assert diag.notes["timestamp_out_of_range"] == BAD_FRAMES
    warned = [w for w in diag.warnings if w.code == "timestamp_out_of_range"]
    assert [w.message.split(":")[0] for w in warned] == ["interface 1", "interface 2",
                                                         "interface 3"]
    assert [w.frame for w in warned] == [2, 3, 4]  # the first frame of each interface
    assert "5 frame(s)" in warned[0].message and "2 frame(s)" in warned[1].message
    assert "years before 1970" in warned[1].message and "year 2340" in warned[2].message
    # Interleaved with a normal interface, bad times are not steps backwards.
    assert diag.notes["timestamp_backwards"] == 0
    assert not [a for a in eng.summary.anomalies if a.code == "timestamps_backwards"]
    # The capture's span is the normal interface's.
    assert diag.first_ts_ns == T0_S * 10**9
    assert diag.last_ts_ns == T0_S * 10**9 + 4 * 10**6
    by_port = {r.record["client_port"]: r.record for r in results}
    assert by_port[40000]["start_ts_ns"] == T0_S * 10**9
    for port in (40001, 40002, 40003):
        rec = by_port[port]
        assert rec["start_ts"] is rec["end_ts"] is None
        assert rec["start_ts_ns"] is rec["end_ts_ns"] is None
    # Intervals within one interface are right: the analysis ran on exact times.
    assert by_port[40001]["duration_s"] == pytest.approx(0.004)
    assert by_port[40003]["duration_s"] == pytest.approx(0.004)
    assert by_port[40003]["client_rtt_min_ms"] == pytest.approx(1.0)
    assert by_port[40001]["open"] == "three_way_handshake"
    assert by_port[40002]["close"] == "refused"
    refused = [a for r in results for a in r.anomalies if a.code == "connection_refused"]
    assert len(refused) == 1 and refused[0].ts_ns < 0  # exact inside; null outside


def _no_1969(series: pd.Series) -> None:
    """No timestamp before 2000 (a wrapped or negative time shown as a date)."""
    known = series.dropna()
    assert (known >= pd.Timestamp(YEAR_2000_NS, unit="ns", tz="UTC")).all(), known


def test_dataframes_give_nat(capture: Path, engine: str) -> None:
    res = tcptrace_py.analyze(capture, packets=True)
    flows = res.flows.set_index("client_port")
    assert flows.loc[40000, "start_ts"] == pd.Timestamp(T0_S * 10**9, unit="ns", tz="UTC")
    assert flows.loc[[40001, 40002, 40003], "start_ts"].isna().all()
    assert flows.loc[[40001, 40002, 40003], "end_ts"].isna().all()
    assert flows.loc[[40001, 40002, 40003], "start_ts_ns"].isna().all()
    assert flows.loc[40001, "duration_s"] == pytest.approx(0.004)
    anomalies = res.anomalies
    assert anomalies.loc[anomalies.code == "connection_refused", "ts"].isna().all()
    events = res.events
    packets = res.packets
    assert len(packets) == res.diagnostics.frames
    for table in (res.flows, anomalies, events, packets):
        for col in ("ts", "start_ts", "end_ts"):
            if col in table:
                _no_1969(table[col])
    assert packets["ts"].isna().sum() == BAD_FRAMES
    assert events["ts"].notna().any() and events["ts"].isna().any()


@pytest.mark.parametrize("fmt", ["json", "jsonl", "csv", "parquet", "zeek"])
def test_every_writer_gives_null(capture: Path, tmp_path: Path, fmt: str) -> None:
    res = tcptrace_py.analyze(capture)
    flows_path = tmp_path / f"flows.{fmt}"
    anomalies_path = tmp_path / f"anomalies.{fmt}"
    if fmt == "parquet":
        export.write_flows(res.records, fmt, path=str(flows_path))
        export.write_anomalies(res.all_anomalies, fmt, path=str(anomalies_path))
    else:
        with open(flows_path, "w", encoding="utf-8") as f:
            export.write_flows(res.records, fmt, f, diag=res.diagnostics)
        with open(anomalies_path, "w", encoding="utf-8") as f:
            export.write_anomalies(res.all_anomalies, fmt, f, diag=res.diagnostics)
    back = frames.read_table(flows_path, fmt).set_index(
        "id.orig_p" if fmt == "zeek" else "client_port")
    ts_col = "ts" if fmt == "zeek" else "start_ts"
    assert back.loc[[40001, 40002, 40003], ts_col].isna().all()
    assert back.loc[40000, ts_col] == pd.Timestamp(T0_S * 10**9, unit="ns", tz="UTC")
    _no_1969(back[ts_col])
    if fmt == "zeek":
        text = anomalies_path.read_text()
        refused = next(line for line in text.splitlines() if "connection_refused" in line)
        assert refused.split("\t")[0] == "-"  # Zeek's unset time
        assert "#open\t2023-11-14" in text   # the capture's span, from in-range frames
        return
    anomalies = frames.read_table(anomalies_path, fmt, table="anomalies")
    assert anomalies.loc[anomalies.code == "connection_refused", "ts"].isna().all()
    if fmt == "jsonl":
        rows = [json.loads(line) for line in anomalies_path.read_text().splitlines()]
        refused = next(r for r in rows if r["code"] == "connection_refused")
        assert refused["ts"] is None and refused["ts_ns"] is None


@pytest.mark.parametrize("args", [
    ["analyze"], ["analyze", "--format", "zeek"], ["analyze", "--format", "jsonl"],
    ["anomalies"], ["anomalies", "--format", "csv"], ["anomalies", "--format", "zeek"],
    ["summary"], ["flow", "{capture}", "1"], ["flow", "{capture}", "1", "--stats"],
])
def test_cli_commands_never_crash(capture: Path, args: list[str]) -> None:
    argv = [a.format(capture=capture) for a in args]
    if "{capture}" not in args:
        argv.append(str(capture))
    result = CliRunner().invoke(main, argv, env={"COLUMNS": "120"})
    assert result.exit_code == 0, (result.output, result.exception)
    assert "interface 1: 5 frame(s) with a timestamp outside 1970-2262" in result.output


def test_cli_parquet_and_ladder_times(capture: Path, tmp_path: Path) -> None:
    out = tmp_path / "a.parquet"
    result = CliRunner().invoke(main, ["anomalies", str(capture), "--format", "parquet",
                                       "-o", str(out), "-q"])
    assert result.exit_code == 0, result.output
    df = pd.read_parquet(out)
    assert df.loc[df.code == "connection_refused", "ts"].isna().all()
    result = CliRunner().invoke(main, ["flow", str(capture), "1"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "started n/a" in result.stdout
    # Relative times in the ladder come from the exact times: 1 ms steps.
    assert "0.004000" in result.stdout


def test_batch_keeps_capture_with_bad_times(capture: Path, tmp_path: Path) -> None:
    from tcptrace_py.batch import run_batch

    summary = run_batch([capture], tmp_path / "ds", jobs=1)
    assert not summary.failed
    flows = pd.read_parquet(tmp_path / "ds" / "flows")
    assert len(flows) == 4 and flows["start_ts"].isna().sum() == 3
    _no_1969(flows["start_ts"])
    anomalies = pd.read_parquet(tmp_path / "ds" / "anomalies")
    assert anomalies.loc[anomalies.code == "connection_refused", "ts"].isna().all()


def test_batch_failure_lines_name_the_capture(tmp_path: Path) -> None:
    """Whatever the reason says, the line names the capture (a worker's exception does
    not)."""
    from tcptrace_py.batch_cli import _failure_line

    row = {"path": "/data/x.pcap", "error": "OverflowError: int too large"}
    assert _failure_line(row) == "failed: /data/x.pcap: OverflowError: int too large"
    row = {"path": "/data/x.pcap", "error": "/data/x.pcap: not a capture"}
    assert _failure_line(row) == "failed: /data/x.pcap: not a capture"
    bad = tmp_path / "in" / "bad.pcap"
    bad.parent.mkdir()
    bad.write_bytes(b"not a capture at all, really")
    result = CliRunner().invoke(main, ["batch", str(bad.parent), "-o", str(tmp_path / "ds"),
                                       "--jobs", "1"])
    assert result.exit_code == 1
    failed = [line for line in result.output.splitlines() if "failed:" in line]
    assert failed and all(str(bad) in line for line in failed)


def test_negative_offset_is_not_backwards_in_the_fast_loop(tmp_path: Path,
                                                           engine: str) -> None:
    """One interface only, negative times throughout: every frame is out of range, none
    goes backwards, the span is unknown, and summary/anomalies do not invent a 1969."""
    frames_ = _handshake("10.0.0.5", 40005)
    blocks = [ng_shb(), ng_idb(1, tsresol=6, tsoffset_s=-10**12)]
    blocks += [ng_epb(0, T0_S * 10**6 + i * 1000, f) for i, f in enumerate(frames_)]
    path = tmp_path / "negative.pcapng"
    path.write_bytes(b"".join(blocks))
    res = tcptrace_py.analyze(path)
    diag = res.diagnostics
    assert diag.notes["timestamp_out_of_range"] == 5 and not diag.notes["timestamp_backwards"]
    assert diag.first_ts_ns is None and diag.last_ts_ns is None
    assert res.flows["start_ts"].isna().all()
    result = CliRunner().invoke(main, ["summary", str(path), "--format", "json", "-q"])
    assert result.exit_code == 0
    summary = json.loads(result.stdout)
    assert summary["first_ts"] is None and summary["span_s"] is None


def test_edges_of_the_range(tmp_path: Path, engine: str) -> None:
    """0 and 2**63-1 ns are times; -1 and 2**63 are not (tsresol 9: units are ns)."""
    frames_ = _handshake("10.0.0.6", 40006)[:4]
    units_ = [0, TS_NS_MAX, TS_NS_MAX + 1, 2**64 - 1]
    blocks = [ng_shb(), ng_idb(1, tsresol=9)]
    blocks += [ng_epb(0, u, f) for u, f in zip(units_, frames_, strict=True)]
    path = tmp_path / "edges.pcapng"
    path.write_bytes(b"".join(blocks))
    res = tcptrace_py.analyze(path, packets=True)
    assert res.diagnostics.notes["timestamp_out_of_range"] == 2
    ts = res.packets.set_index("frame")["ts"]
    assert ts[1] == pd.Timestamp(0, unit="ns", tz="UTC")
    assert ts[2] == pd.Timestamp(TS_NS_MAX, unit="ns", tz="UTC")
    assert ts[[3, 4]].isna().all()


@pytest.mark.skipif(not PCAPNG_EXAMPLE.exists(), reason="../shared captures absent")
def test_pcapplusplus_example_year_586524(engine: str, tmp_path: Path) -> None:
    """PcapPlusPlus's pcapng-example: its second interface's timestamps decode to year
    586524. Analysed (15 connections, as tshark's tcp.stream), flagged with interface and
    count, and every table gives NaT for those times instead of crashing."""
    res = tcptrace_py.analyze(PCAPNG_EXAMPLE, packets=True)
    warned = [w for w in res.diagnostics.warnings if w.code == "timestamp_out_of_range"]
    assert len(warned) == 1
    assert warned[0].message.startswith("interface 1: 100 frame(s)")
    assert "year 586524" in warned[0].message and warned[0].frame == 60
    assert len(res.flows) == 15
    assert res.flows["start_ts"].notna().sum() == 1
    for table in (res.flows, res.anomalies, res.events, res.packets):
        col = "start_ts" if "start_ts" in table else "ts"
        assert table[col].isna().any()
        _no_1969(table[col])
    assert res.packets["ts"].isna().sum() == 100


@pytest.mark.skipif(not PCAPNG_EXAMPLE.exists(), reason="../shared captures absent")
def test_pcapplusplus_example_in_batch(tmp_path: Path) -> None:
    from tcptrace_py.batch import run_batch

    summary = run_batch([PCAPNG_EXAMPLE], tmp_path / "ds", jobs=1)
    assert not summary.failed and len(summary.analysed) == 1
    assert len(pd.read_parquet(tmp_path / "ds" / "flows")) == 15


def _pcap_with_backwards(path: Path) -> Path:
    """A request and its answer, then a frame 2 days and 3 hours before the one before
    it (a clock reset), then two more."""
    base = T0_S * 10**9
    step = (2 * 86_400 + 3 * 3600) * 10**9
    hs = _handshake("10.0.0.7", 40007)
    times = [base, base + 10**6, base + 2 * 10**6, base + 3 * 10**6 - step,
             base + 4 * 10**6 - step]
    return write_pcap(path, list(zip(times, hs, strict=True)), nanosecond=True)


def test_backwards_finding_says_where_and_how_far(tmp_path: Path, engine: str) -> None:
    path = _pcap_with_backwards(tmp_path / "back.pcap")
    res = tcptrace_py.analyze(path)
    warned = [w for w in res.diagnostics.warnings if w.code == "timestamp_backwards"]
    assert len(warned) == 1 and "backwards by 2 d 3 h" in warned[0].message
    [finding] = [a for a in res.all_anomalies if a.code == "timestamps_backwards"]
    assert finding.first_frame == 4
    assert finding.ts_ns == T0_S * 10**9 + 3 * 10**6 - (2 * 86_400 + 3 * 3600) * 10**9
    assert "first at frame 4 (2023-11-12 " in finding.summary
    assert finding.summary.endswith("by 2 d 3 h")
    assert finding.details["frames"] == [4, 5]
    assert finding.details["max_backwards_s"] == pytest.approx(2 * 86_400 + 3 * 3600 - 0.001)
    row = res.anomalies[res.anomalies.code == "timestamps_backwards"].iloc[0]
    assert row["ts"] == pd.Timestamp(finding.ts_ns, unit="ns", tz="UTC")


def test_throughput_plot_on_backwards_timestamps(tmp_path: Path) -> None:
    """No IndexError, and packets before the first one land in the bins by their time; the
    title says the timestamps went backwards."""
    pytest.importorskip("matplotlib")
    from tcptrace_py import plots

    base = T0_S * 10**9
    hs = _handshake("10.0.0.8", 40008)
    data = [tcp_frame("10.0.0.8", "10.9.9.9", 40008, 80, 1101 + 100 * i, 5001, PSH | ACK,
                      payload=b"d" * 100) for i in range(3)]
    # The last data packets are stamped 5 s and 10 s before the first packet.
    times = [base, base + 10**6, base + 2 * 10**6, base + 3 * 10**6, base + 4 * 10**6,
             base - 5 * 10**9, base - 10 * 10**9]
    path = write_pcap(tmp_path / "tp.pcap", list(zip(times, hs + data[:2], strict=True)),
                      nanosecond=True)
    res = tcptrace_py.analyze(path, packets=True)
    ax = plots.plot_flow(res, 0, "throughput")
    title = ax.get_title()
    assert "timestamps go backwards at 2 packet(s) (first: frame 6)" in title
    client = next(line for line in ax.get_lines() if line.get_label() == "client -> server")
    xs = list(client.get_xdata())
    assert xs[0] == pytest.approx(-10.0)  # bins start at the earliest timestamp
    rates = list(client.get_ydata())
    bin_s = xs[1] - xs[0]
    assert sum(rates) * bin_s == pytest.approx(300)  # every payload byte in some bin
    plots._plt().close("all")



def test_timeline_leaves_out_connections_with_out_of_range_times(capture: Path) -> None:
    """Connections with null start times have no place on a time axis: left out, counted."""
    pytest.importorskip("matplotlib")
    from tcptrace_py import plots

    ax = plots.plot_timeline(tcptrace_py.analyze(capture, packets=True))
    assert ax.get_title() == ("1 TCP connections (3 more with timestamps outside 1970-2262 "
                              "not drawn)")
    assert len(ax.patches) == 1
    plots._plt().close("all")
