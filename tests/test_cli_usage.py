"""Small things that mislead (issue 17 item 11): ``| head``, unknown filter values, help
texts' exit codes and sort fields, batch's engine options, plot's ``-q``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from captures_util import tcp_frame, write_pcap
from click.testing import CliRunner

from tcptrace_py.batch_cli import batch
from tcptrace_py.cli import main
from tcptrace_py.segment import SYN

SAMPLES = Path(__file__).resolve().parents[1] / "samples"


def _invoke(*args: str | Path) -> tuple[int, str]:
    res = CliRunner().invoke(main, [str(a) for a in args])
    if res.exception and not isinstance(res.exception, SystemExit):
        raise res.exception
    return res.exit_code, res.output


@pytest.fixture(scope="module")
def many_syns(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1,500 unanswered SYNs: every output is far larger than a pipe's 64 KiB buffer."""
    t0 = 1_700_000_000_000_000_000
    frames = [(t0 + i * 1_000_000, tcp_frame("10.9.0.1", "10.9.0.2", 20000 + i, 80, i, 0, SYN))
              for i in range(1500)]
    return write_pcap(tmp_path_factory.mktemp("syns") / "syns.pcap", frames)


@pytest.mark.parametrize("args", [
    ("analyze",), ("analyze", "--format", "jsonl"), ("analyze", "--format", "csv"),
    ("anomalies",), ("anomalies", "--format", "jsonl"),
])
def test_head_closing_the_pipe_exits_zero_quietly(many_syns: Path, args: tuple[str, ...]) -> None:
    """``tcptrace-py ... | head -1``: exit 0 and nothing on stderr (was "Broken pipe" blamed
    on the capture and exit 1 or 2)."""
    proc = subprocess.Popen([sys.executable, "-m", "tcptrace_py", args[0], str(many_syns),
                             *args[1:]], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline()
    proc.stdout.close()          # what head does after its line
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=300) == 0, err
    assert err == ""


@pytest.mark.parametrize("option,bad,listed,good", [
    ("--close", "refuse", "refused, unanswered", "refused"),
    ("--state", "waiting", "CLOSE_WAIT", "closed"),    # states are case-insensitive
    ("--anomaly", "rst", "rst_storm", "connection_refused"),
])
def test_unknown_filter_values_are_rejected_with_the_valid_ones(
        option: str, bad: str, listed: str, good: str) -> None:
    """A typo was an empty result (exit 0); now exit 2 naming the valid values."""
    for cmd in ("analyze", "anomalies"):
        code, out = _invoke(cmd, SAMPLES / "refused.pcap", option, bad)
        assert code == 2 and listed in out and repr(bad) in out, out
    code, out = _invoke("analyze", SAMPLES / "refused.pcap", option, good, "--format",
                        "jsonl")
    assert code == 0 and [json.loads(x)["close"] for x in out.splitlines()] == ["refused"]


def test_help_lists_only_the_exit_codes_a_command_can_return() -> None:
    for cmd in ("analyze", "anomalies"):
        out = _invoke(cmd, "--help")[1]
        assert "--fail-on SEVERITY matched" in out and "130" in out
    for cmd in ("summary", "flow", "plot"):
        out = _invoke(cmd, "--help")[1]
        assert "Exit codes" in out and "--fail-on SEVERITY matched" not in out, cmd
    out = CliRunner().invoke(batch, ["--help"]).output
    assert "Exit codes" in out and "at least one selected capture failed" in out
    for option in ("--param", "--config", "--time-wait", "--max-connections"):
        assert option in out


def test_anomalies_sort_help_names_anomaly_fields() -> None:
    out = _invoke("anomalies", "--help")[1]
    assert "first_frame" in out and "duration_s" not in out
    code, out = _invoke("anomalies", SAMPLES / "refused.pcap", "--sort", "duration_s")
    assert code == 2 and "flow_id" in out
    code, out = _invoke("anomalies", SAMPLES / "rst_abort.pcap", "--sort", "ts",
                        "--format", "jsonl")
    ts = [json.loads(x)["ts_ns"] for x in out.splitlines()]
    assert code == 0 and ts == sorted(ts)


def test_batch_takes_detector_parameters(tmp_path: Path) -> None:
    """rst_abort.pcap's 11 RSTs make an rst_storm at the default connection threshold
    (10) and none at 50, set with --param as for analyze."""
    import pandas as pd

    def storms(*extra: str) -> int:
        out = tmp_path / ("ds" + "".join(extra).replace(".", "_").replace("=", "_"))
        res = CliRunner().invoke(batch, [str(SAMPLES / "rst_abort.pcap"), "-o", str(out),
                                         "-j", "1", *extra])
        assert res.exit_code == 0, res.output
        df = pd.read_parquet(out / "anomalies")
        return int((df["code"] == "rst_storm").sum())

    assert storms() == 1
    assert storms("--param", "rst_storm.connection_min_rsts=50") == 0
    res = CliRunner().invoke(batch, [str(SAMPLES / "rst_abort.pcap"), "-o",
                                     str(tmp_path / "bad"), "--param", "nope.x=1"])
    assert res.exit_code == 2 and "nope" in res.output


def test_plot_quiet_silences_warnings(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    data = (SAMPLES / "normal.pcap").read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(data[:-10])           # the last record cut: a warning
    res = CliRunner().invoke(main, ["plot", str(cut), "--kind", "timeline", "-o",
                                    str(tmp_path / "t.png")])
    assert res.exit_code == 0 and "warning" in res.stderr
    res = CliRunner().invoke(main, ["plot", str(cut), "--kind", "timeline", "-o",
                                    str(tmp_path / "t.png"), "-q"])
    assert res.exit_code == 0 and res.stderr == ""


def test_flow_stats_side_by_side_with_units() -> None:
    """``flow --stats``: tcptrace -l's a2b/b2a columns for one connection, from the record,
    with units (retransmission_timeout.pcap: the client re-sent 3 of its 4 data segments)."""
    import tcptrace_py

    sample = SAMPLES / "retransmission_timeout.pcap"
    (rec,) = tcptrace_py.analyze(sample).records
    res = CliRunner().invoke(main, ["flow", str(sample), "0", "--stats"],
                             env={"COLUMNS": "160"})
    assert res.exit_code == 0
    rows = {line.split("│")[1].strip(): [c.strip() for c in line.split("│")[2:5]]
            for line in res.stdout.splitlines() if line.startswith("│")}
    assert rows["rexmt data pkts"] == ["3", "0", "rexmt data pkts"]
    assert rows["data bytes"] == ["4,000 B", "300 B", "actual data bytes"]
    assert rows["unique bytes"][:2] == [f"{rec['client_unique_bytes']:,} B",
                                        f"{rec['server_unique_bytes']:,} B"]
    assert rows["rtt samples"][:2] == [str(rec["client_rtt_samples"]),
                                      str(rec["server_rtt_samples"])]
    assert rows["rtt min ms"][0].endswith(("ms", "µs", " s"))   # a time, with its unit
    assert rows["rexmit interval min ms"][1] == "-"               # the server re-sent nothing
    assert "ladder" not in res.stdout and "analysis, transitions" not in res.stdout


def test_batch_without_pyarrow_fails_at_once_naming_the_extra(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without pyarrow every capture used to be recorded as failed (for good: a rerun skipped
    them). Now: one line naming the extra, exit 2, the output directory untouched; the same
    for --scheduler without distributed, and analyze_many raises the same error."""
    import importlib.util

    from tcptrace_py.batch import MissingExtraError, analyze_many

    real = importlib.util.find_spec
    missing = {"pyarrow"}

    def find_spec(name: str, *args: object, **kw: object) -> object:
        return None if name in missing else real(name, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    out = tmp_path / "ds"
    res = CliRunner().invoke(batch, [str(SAMPLES / "normal.pcap"), "-o", str(out)])
    assert res.exit_code == 2
    assert res.output.strip().splitlines() == [
        "tcptrace-py batch: needs the pyarrow package: pip install 'tcptrace-py[parquet]'"]
    assert not out.exists()
    with pytest.raises(MissingExtraError, match=r"tcptrace-py\[parquet\]"):
        analyze_many([SAMPLES / "normal.pcap"])
    missing = {"distributed"}
    res = CliRunner().invoke(batch, [str(SAMPLES / "normal.pcap"), "-o", str(out),
                                     "--scheduler", "tcp://127.0.0.1:1"])
    assert res.exit_code == 2 and "tcptrace-py[dask]" in res.output and not out.exists()


def test_help_names_the_extras() -> None:
    out = _invoke("--help")[1]
    for extra in ("parquet", "plot", "dask", "zstd", "all"):
        assert extra in out
    readme = (SAMPLES.parent / "README.md").read_text()
    assert "| `parquet` | `--format parquet`, `batch`, `analyze_many` |" in readme
