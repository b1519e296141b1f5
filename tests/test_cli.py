"""CLI: formats, filters, exit codes (click.testing.CliRunner), never a traceback."""

from __future__ import annotations

import json
import lzma
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from click.testing import CliRunner
from outputs_util import SCENARIOS, SHARED, write_mixed

import tcptrace_py
from tcptrace_py import detectors
from tcptrace_py.cli import main
from tcptrace_py.frames import read_table, read_zeek

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_mixed(tmp_path_factory.mktemp("cli") / "mixed.pcap")


def run(*args: str | Path) -> tuple[int, str, str]:
    res = CliRunner().invoke(main, [str(a) for a in args])
    if res.exception and not isinstance(res.exception, SystemExit):
        raise res.exception
    return res.exit_code, res.stdout, res.stderr


def jsonl(text: str) -> list[dict[str, Any]]:
    return [json.loads(x) for x in text.splitlines() if x.strip()]


def test_jsonl_fields_and_exit_0(mixed: Path) -> None:
    code, out, _ = run("analyze", mixed, "--format", "jsonl")
    assert code == 0
    recs = jsonl(out)
    assert [r["close"] for r in recs] == ["graceful", "refused", "unanswered",
                                          "open_at_capture_end"]
    assert recs == list(tcptrace_py.iter_flows(mixed))


def test_table_has_connections_anomalies_and_summary(mixed: Path) -> None:
    code, out, _ = run("analyze", mixed)
    assert code == 0
    assert "4 TCP connections" in out and "10.0.0.3:443" in out
    assert "unanswered_syn" in out  # the connection's anomalies beside it
    assert "capture summary" in out and "not_tcp 1" in out and "ETHERNET 21" in out
    code, out, _ = run("summary", mixed, "--format", "json")
    s = json.loads(out)
    assert code == 0 and s["connections"] == 4 and s["by_close"]["refused"] == 1


@pytest.mark.parametrize("args,closes", [
    (["--close", "refused"], ["refused"]),
    (["--close", "refused", "--close", "unanswered"], ["refused", "unanswered"]),
    (["--state", "time_wait"], ["graceful"]),
    (["--anomaly", "unanswered_syn"], ["unanswered"]),
    (["--host", "10.0.0.3"], ["refused"]),
    (["--port", "22"], ["unanswered"]),
    (["--flow", "0"], ["graceful"]),
    (["--host", "10.0.0.1", "--port", "80"], ["graceful"]),
])
def test_filters(mixed: Path, args: list[str], closes: list[str]) -> None:
    code, out, _ = run("analyze", mixed, "--format", "jsonl", *args)
    assert code == 0
    assert [r["close"] for r in jsonl(out)] == closes


def test_sort(mixed: Path) -> None:
    _, out, _ = run("analyze", mixed, "--format", "jsonl", "--sort", "duration_s",
                    "--reverse")
    durations = [r["duration_s"] for r in jsonl(out)]
    assert durations == sorted(durations, reverse=True)
    code, _, err = run("analyze", mixed, "--format", "json", "--sort", "no_such_column")
    assert code == 2 and "no_such_column" in err


def test_anomalies_filters_and_fail_on(mixed: Path) -> None:
    code, out, _ = run("anomalies", mixed, "--format", "jsonl", "--anomaly",
                       "connection_refused")
    assert code == 0 and [a["code"] for a in jsonl(out)] == ["connection_refused"]
    assert jsonl(out)[0]["ts"] == pytest.approx(1_700_000_000.4)
    code, out, _ = run("anomalies", mixed, "--format", "jsonl", "--fail-on", "error")
    assert code == 1 and out  # results written, then exit 1
    code, _, _ = run("analyze", mixed, "--format", "jsonl", "--fail-on", "warning")
    assert code == 1
    # Only the graceful connection: nothing at error level.
    code, _, _ = run("analyze", mixed, "--format", "jsonl", "--flow", "0",
                     "--fail-on", "error")
    assert code == 0


@pytest.mark.parametrize("fmt", ["csv", "json", "jsonl", "parquet"])
def test_output_files_read_back(mixed: Path, tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"flows.{fmt}"
    code, out, _ = run("analyze", mixed, "--format", fmt, "-o", path)
    assert code == 0 and out == ""
    pd.testing.assert_frame_equal(read_table(path, fmt), tcptrace_py.analyze(mixed).flows)
    apath = tmp_path / f"anomalies.{fmt}"
    code, _, _ = run("anomalies", mixed, "--format", fmt, "-o", apath)
    assert code == 0
    pd.testing.assert_frame_equal(read_table(apath, fmt, "anomalies"),
                                  tcptrace_py.analyze(mixed).anomalies)


def test_zeek_and_parquet_usage(mixed: Path, tmp_path: Path) -> None:
    code, out, _ = run("analyze", mixed, "--format", "zeek")
    assert code == 0 and out.startswith("#separator \\x09\n") and "#path\tconn" in out
    path = tmp_path / "conn.log"
    path.write_text(out)
    assert len(read_zeek(path)) == 4
    code, out, _ = run("anomalies", mixed, "--format", "zeek")
    assert code == 0 and "#path\tweird" in out and "unanswered_syn" in out
    code, _, err = run("analyze", mixed, "--format", "parquet")
    assert code == 2 and "-o" in err


def test_multiple_files_get_a_capture_column(mixed: Path) -> None:
    code, out, _ = run("analyze", mixed, mixed, "--format", "jsonl")
    recs = jsonl(out)
    assert code == 0 and len(recs) == 8 and recs[0]["capture"] == str(mixed)


def test_bad_input_is_one_line_exit_2(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("this is not a capture\n" * 10)
    for bad in (tmp_path / "missing.pcap", tmp_path, text):
        code, out, err = run("analyze", bad, "--format", "jsonl")
        assert code == 2, bad
        assert out == "" and len(err.strip().splitlines()) == 1 and "Traceback" not in err
        assert str(bad) in err
    code, _, err = run("analyze", text)
    assert code == 2 and "Traceback" not in err


def test_damaged_capture_warns_exit_0_unless_strict(mixed: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(mixed.read_bytes()[:-30])
    code, out, err = run("analyze", cut, "--format", "jsonl")
    assert code == 0 and jsonl(out) and "warning" in err
    code, _, err = run("analyze", cut, "--format", "jsonl", "--strict")
    assert code == 2 and "Traceback" not in err
    code, _, err = run("analyze", cut, "--format", "jsonl", "--quiet")
    assert code == 0 and err == ""


def test_usage_errors_exit_2(mixed: Path, tmp_path: Path) -> None:
    assert run("analyze", mixed, "--format", "xml")[0] == 2
    assert run("analyze")[0] == 2
    code, _, err = run("analyze", mixed, "--param", "no_such_detector.x=1")
    assert code == 2 and "no_such_detector" in err
    code, _, err = run("analyze", mixed, "--param", "nonsense")
    assert code == 2
    bad_toml = tmp_path / "bad.toml"
    bad_toml.write_text("[rst_storm\n")
    assert run("analyze", mixed, "--config", bad_toml)[0] == 2
    assert run("analyze", mixed, "--time-wait", "-1")[0] == 2


def test_params_and_options_reach_the_engine(mixed: Path, tmp_path: Path) -> None:
    det, name, default, _doc = detectors.parameters()[0]
    value = (not default) if isinstance(default, bool) else default
    code, _, _ = run("analyze", mixed, "--format", "jsonl", "--param", f"{det}.{name}={value}")
    assert code == 0
    cfg = tmp_path / "d.toml"
    cfg.write_text(f"[{det}]\n{name} = {json.dumps(value)}\n")
    assert run("analyze", mixed, "--format", "jsonl", "--config", cfg)[0] == 0
    # A TIME_WAIT of 1 ms: the graceful connection's client has left TIME_WAIT at the end.
    _, out, _ = run("analyze", mixed, "--format", "jsonl")
    assert jsonl(out)[0]["client_state"] == "TIME_WAIT"
    _, out, _ = run("analyze", mixed, "--format", "jsonl", "--time-wait", "0.001")
    assert jsonl(out)[0]["client_state"] == "CLOSED"
    # 50 ms idle timeout: the SYN retries 1 s apart become separate connections.
    _, out, _ = run("analyze", mixed, "--format", "jsonl", "--idle-timeout", "0.05")
    recs = jsonl(out)
    # (an unanswered attempt: the shorter of the attempt and idle timeouts let it go)
    assert len(recs) == 6 and recs[0]["end_reason"] == "attempt_timeout"
    _, out, _ = run("analyze", mixed, "--format", "jsonl", "--max-connections", "1", "-q")
    assert any(r["end_reason"] == "table_full" for r in jsonl(out))


def test_help_shows_examples_and_exit_codes() -> None:
    for cmd in ([], ["analyze"], ["anomalies"], ["summary"], ["flow"], ["plot"]):
        code, out, _ = run(*cmd, "--help")
        assert code == 0 and "Example" in out, cmd
        assert "Exit codes" in out, cmd


def test_flow_ladder(mixed: Path) -> None:
    code, out, _ = run("flow", mixed, "0")
    assert code == 0 and "TIME_WAIT" in out and "retransmission" in out
    code, _, err = run("flow", mixed, "99")
    assert code == 2 and "99" in err


NOT_ON_THE_JSONL_PATH = (
    # Heavy third-party packages: tables, DataFrames, Parquet, plots, batch, zstd captures.
    "pandas", "numpy", "pyarrow", "matplotlib", "rich", "dask", "zstandard",
    # Package modules of other commands and formats.
    "tcptrace_py.frames", "tcptrace_py.batch", "tcptrace_py.plots", "tcptrace_py.columns",
    "tcptrace_py.htmlreport",
    "tcptrace_py.ladder",  # the flow command
    "tcptrace_py.parallel", "multiprocessing", "pickle", "socket",  # --jobs N
    "tempfile", "shutil", "random",  # -o to a regular file (written whole or not at all)
    "gzip", "bz2", "lzma",  # compressed captures
    "pathlib", "urllib",  # paths as str or os.PathLike (ipaddress: only for IPv6 text)
)
"""Modules ``analyze --format jsonl`` must not import (issue 16 item 3: a tiny capture should
answer at once; docs/benchmarks.md, "Start-up"): each costs start-up and only another command,
format, option or kind of capture needs it."""


def _console_entry() -> str:
    """``module:function`` of the ``tcptrace-py`` console script, as pyproject.toml declares
    it (what the installed script imports and calls)."""
    text = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    match = re.search(r'^tcptrace-py\s*=\s*"([\w.]+:\w+)"', text, re.MULTILINE)
    assert match, "no tcptrace-py console script in pyproject.toml"
    return match.group(1)


def test_startup_is_light(mixed: Path) -> None:
    """The console script running ``analyze --format jsonl`` on a tiny capture, to standard
    output and to a device, imports none of NOT_ON_THE_JSONL_PATH."""
    module, func = _console_entry().split(":")
    code = (
        "import json, sys\n"
        f"from {module} import {func} as entry\n"
        "codes = []\n"
        f"for out in ([], ['-o', {os.devnull!r}]):\n"
        f"    sys.argv = ['tcptrace-py', 'analyze', {str(mixed)!r}, '--format', 'jsonl', *out]\n"
        "    try:\n        entry()\n    except SystemExit as exc:\n        codes.append(exc.code)\n"
        f"bad = [m for m in {NOT_ON_THE_JSONL_PATH!r} if m in sys.modules]\n"
        "print(json.dumps({'codes': codes, 'imported': bad}), file=sys.stderr)\n")
    out = subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO,
                         capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    _, expected, _ = run("analyze", mixed, "--format", "jsonl")
    assert expected and out.stdout == expected  # the records, once (the -o run wrote none)
    got = json.loads(out.stderr.strip().splitlines()[-1])
    assert got == {"codes": [0, 0], "imported": []}, got


def test_console_script_imports_the_cli_without_collecting(mixed: Path) -> None:
    """The console script's entry point imports the CLI with the cyclic collector off (its
    young-generation passes over the import's objects freed nothing: tcptrace_py/__main__.py):
    no collection starts before the command runs, and the collector is on again after."""
    module, func = _console_entry().split(":")
    code = (
        "import gc, json, sys\n"
        "import click\n"
        "state = {'running': False, 'before': 0}\n"
        "call = click.Command.__call__\n"
        "def running(self, *args, **kwargs):\n"
        "    state['running'] = True\n"
        "    return call(self, *args, **kwargs)\n"
        "click.Command.__call__ = running\n"
        "def collected(phase, info):\n"
        "    if phase == 'start' and not state['running']:\n"
        "        state['before'] += 1\n"
        "gc.callbacks.append(collected)\n"
        f"from {module} import {func} as entry\n"
        f"sys.argv = ['tcptrace-py', 'analyze', {str(mixed)!r}, '--format', 'jsonl', '-q']\n"
        "try:\n    entry()\nexcept SystemExit:\n    pass\n"
        "print(json.dumps({'before': state['before'], 'gc': gc.isenabled()}),"
        " file=sys.stderr)\n")
    out = subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO,
                         capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    got = json.loads(out.stderr.strip().splitlines()[-1])
    assert got == {"before": 0, "gc": True}, got


def test_damaged_xz_capture_in_a_fresh_process(tmp_path: Path, mixed: Path) -> None:
    """lzma is imported only when an xz capture is opened: its error still counts as damage
    (a warning and exit 0, exit 2 with --strict), not a traceback, in a process that had not
    imported lzma before."""
    comp = bytearray(lzma.compress(mixed.read_bytes()))
    for i in range(len(comp) // 2, len(comp) // 2 + 8):
        comp[i] ^= 0xFF
    bad = tmp_path / "bad.pcap.xz"
    bad.write_bytes(bytes(comp))
    for extra, code in (([], 0), (["--strict"], 2)):
        res = subprocess.run([sys.executable, "-m", "tcptrace_py", "analyze", str(bad),
                              "--format", "jsonl", *extra], cwd=REPO, capture_output=True,
                             text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
        assert res.returncode == code, res.stderr
        assert "xz error: Corrupt input data" in res.stderr and "Traceback" not in res.stderr


@pytest.mark.skipif(not SCENARIOS.is_dir(), reason="../shared/scenarios absent")
def test_scenarios_all_commands(tmp_path: Path) -> None:
    for pcap in sorted(SCENARIOS.glob("*.pcap")):
        for fmt in ("table", "jsonl", "zeek"):
            assert run("analyze", pcap, "--format", fmt)[0] == 0, (pcap, fmt)
        assert run("anomalies", pcap)[0] == 0, pcap
        assert run("summary", pcap)[0] == 0, pcap
        code, _, _ = run("analyze", pcap, "--format", "parquet", "-o", tmp_path / "f.parquet")
        assert code == 0


@pytest.mark.skipif(not (SHARED / "score_scenarios.py").is_file() or not SCENARIOS.is_dir(),
                    reason="../shared/score_scenarios.py absent")
def test_scorer_reads_our_jsonl(tmp_path: Path) -> None:
    """The scorer's contract: it runs BIN/tcptrace-py and parses our JSON fields."""
    shim = tmp_path / "tcptrace-py"
    shim.write_text(f"#!/bin/sh\nPYTHONPATH={REPO} exec {sys.executable} -m tcptrace_py \"$@\"\n")
    shim.chmod(0o755)
    res = subprocess.run([sys.executable, str(SHARED / "score_scenarios.py"), str(tmp_path),
                          str(SCENARIOS), "--check", "lifecycle"],
                         capture_output=True, text=True, timeout=300)
    assert "analyze failed" not in res.stdout
    assert "conn_count" in res.stdout


def test_progress_bar_only_on_a_terminal(mixed: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from tcptrace_py import cli

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(cli, "PROGRESS_MIN_BYTES", 0)
    gate = cli._InterruptGate()

    def plain(quiet: bool) -> bool:
        (src,) = list(cli._with_progress(str(mixed), quiet, gate))
        return isinstance(src, cli._GatedReader) and isinstance(src._f, io.BufferedReader)

    # Not a terminal: the file itself, read through the Ctrl-C gate, without a bar.
    monkeypatch.setattr("tcptrace_py.cli.sys.stderr", io.StringIO())
    assert plain(quiet=False)
    tty = Tty()
    monkeypatch.setattr("tcptrace_py.cli.sys.stderr", tty)
    assert plain(quiet=True)
    gen = cli._with_progress(str(mixed), False, gate)
    reader = next(gen)
    assert reader.read() == mixed.read_bytes()  # a counting reader under the bar
    with pytest.raises(StopIteration):
        next(gen)
    code, out, _ = run("analyze", mixed, "--format", "jsonl")
    assert code == 0 and len(jsonl(out)) == 4


def test_gated_readers_fill_the_readers_buffer(mixed: Path) -> None:
    """The reader refills one buffer through ``readinto1``: the plain and the counting
    (progress bar) reader give the file's bytes, the bar advances by each fill, and a
    pending Ctrl-C stops the next fill as it stops a read."""
    from tcptrace_py import cli
    from tcptrace_py.capture.source import _Prefixed

    data = mixed.read_bytes()
    advanced: list[int] = []
    for counting in (False, True):
        gate = cli._InterruptGate()
        with mixed.open("rb") as f:
            inner: Any = cli._CountingReader(f, advanced.append) if counting else f
            stream = _Prefixed(b"", gate.wrap(inner), partial_reads=True)
            buf = bytearray(1000)
            got = b""
            while n := stream.readinto(memoryview(buf)):
                got += bytes(buf[:n])
            assert got == data
            f.seek(0)
            gate.pending = True
            with pytest.raises(KeyboardInterrupt):
                stream.readinto(memoryview(buf))
    assert sum(advanced) == len(data) and max(advanced) <= 1000


@pytest.mark.skipif(not (Path(__file__).resolve().parents[1] / "samples").exists(),
                    reason="samples/ absent")
def test_flow_ladder_shows_each_endpoint_state_after_every_segment() -> None:
    sample = Path(__file__).resolve().parents[1] / "samples" / "simultaneous_close.pcap"
    code, out, _ = run("flow", sample, "0")
    assert code == 0
    assert "client state" in out and "server state" in out
    # The FINs crossed: after the server's FIN the client is CLOSING, the server FIN_WAIT_1.
    rows = [line for line in out.splitlines() if "CLOSING" in line and "FIN_WAIT_1" in line]
    assert rows, out


def test_attempt_timeout_option_reaches_the_engine(tmp_path: Path) -> None:
    from captures_util import pcap_bytes, tcp_frame

    from tcptrace_py.segment import SYN

    ns = 1_000_000_000
    frames = [(ns, tcp_frame("10.0.0.1", "10.0.0.2", 40000, 80, 7, 0, SYN)),
              (200 * ns, tcp_frame("10.0.0.1", "10.0.0.2", 40001, 81, 9, 0, SYN))]
    cap = tmp_path / "scan.pcap"
    cap.write_bytes(pcap_bytes(frames, nanosecond=True))
    code, out, _ = run("analyze", cap, "--format", "jsonl", "--attempt-timeout", "60")
    assert code == 0
    assert [r["end_reason"] for r in jsonl(out)] == ["attempt_timeout", "capture_end"]


def test_limit_keeps_the_most_severe_rows_and_says_so(mixed: Path) -> None:
    """The mixed capture: graceful (clean), refused (error), unanswered (info: one SYN),
    open at capture end. With room for one row, the table shows the refused connection."""
    code, out, _ = run("analyze", mixed, "--limit", "1")
    assert code == 0 and "showing 1 of 4 connections" in out
    table = out.split("showing")[0]
    assert "connection_refused" in table
    assert not any(k in table for k in ("graceful", "unanswered", "open_at_capture_end"))
    assert "capture summary" in out and "refused 1" in out  # the summary counts all four
    code, out, _ = run("anomalies", mixed, "--limit", "1")
    assert "connection_refused" in out and "unanswered_syn" not in out
    assert "showing 1 of" in out


def test_limit_with_sort_and_file_formats(mixed: Path) -> None:
    code, out, _ = run("analyze", mixed, "--format", "jsonl", "--limit", "2")
    recs = jsonl(out)
    assert code == 0 and [r["flow_id"] for r in recs] == [0, 1]  # streamed: the first two
    _, out, _ = run("analyze", mixed, "--format", "jsonl")
    assert len(jsonl(out)) == 4  # file formats: every row unless --limit is given
    _, out, _ = run("analyze", mixed, "--format", "jsonl", "--sort", "flow_id", "--reverse",
                    "--limit", "1")
    assert [r["flow_id"] for r in jsonl(out)] == [3]  # the first of the user's order
    _, out, _ = run("analyze", mixed, "--limit", "0")
    assert "showing" not in out


def test_ipv6_endpoints_are_bracketed_and_survive_rich_markup() -> None:
    """``[fd77::2]:8080`` in a rich cell would be read as a markup tag and vanish."""
    pcap = REPO / "samples" / "ipv6_normal.pcap"
    code, out, _ = run("analyze", pcap)
    assert code == 0 and "[fd77::1]:" in out and "[fd77::2]:8080" in out
    code, out, _ = run("flow", pcap, "0")
    assert code == 0 and "[fd77::2]:8080 (server)" in out


def test_evidence_brackets_ipv6_servers() -> None:
    from tcptrace_py.segment import endpoint_text

    assert endpoint_text(bytes(16), 80) == "[::]:80"
    assert endpoint_text(bytes([10, 0, 0, 1]), 443) == "10.0.0.1:443"


def test_flow_ladder_frames_and_limit_keep_the_states_right() -> None:
    """Rows outside --frames/--limit are not shown but still move the endpoint states."""
    sample = Path(__file__).resolve().parents[1] / "samples" / "simultaneous_close.pcap"
    code, out, _ = run("flow", sample, "0", "--frames", "9-10")
    rows = [line for line in out.splitlines() if line.startswith("│ ") and "──" in line]
    assert code == 0 and [r.split("│")[1].strip() for r in rows] == ["9", "10"]
    assert "CLOSING" in rows[0] and "FIN_WAIT_1" in rows[0]  # as in the full ladder
    code, out, _ = run("flow", sample, "0", "--limit", "3")
    rows = [line for line in out.splitlines() if line.startswith("│ ") and "──" in line]
    assert code == 0 and len(rows) == 3 and "showing 3 of 11 packets" in out
    code, _, err = run("flow", sample, "0", "--frames", "9")
    assert code == 2 and "frame range" in err


def test_packet_rows_only_for_the_flows_asked() -> None:
    from tcptrace_py.engine import Engine
    from tcptrace_py.options import Options

    sample = Path(__file__).resolve().parents[1] / "samples" / "rst_storm.pcap"
    results = list(Engine(Options(keep_packets=True, packet_flows=(3,))).run(str(sample)))
    assert [r.record["flow_id"] for r in results if r.packets] == [3]
    everything = list(Engine(Options(keep_packets=True)).run(str(sample)))
    assert all(r.packets for r in everything)
    assert results[3].record == everything[3].record  # rows or not, the same analysis
