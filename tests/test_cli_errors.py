"""CLI failure paths (issue 18 items 8 and 11): output errors, bad option values, closed
standard streams. Each is one line on stderr and exit status 2, never a traceback, and a
failed run never destroys the previous results of ``-o``."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from tcptrace_py.cli import main
from tcptrace_py.engine import Engine
from tcptrace_py.options import Options

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "samples" / "refused.pcap"


def run(*args: str | Path) -> tuple[int, str, str]:
    res = CliRunner().invoke(main, [str(a) for a in args])
    if res.exception and not isinstance(res.exception, SystemExit):
        raise res.exception
    return res.exit_code, res.stdout, res.stderr


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


# --------------------------------------------------------------------------- output errors
@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
@pytest.mark.parametrize("cmd, fmt", [("analyze", "jsonl"), ("analyze", "json"),
                                      ("analyze", "csv"), ("analyze", "zeek"),
                                      ("analyze", "table"), ("anomalies", "jsonl"),
                                      ("anomalies", "csv"), ("anomalies", "zeek")])
def test_disk_full_is_one_line_naming_the_output(cmd: str, fmt: str) -> None:
    code, _, err = run(cmd, SAMPLE, "--format", fmt, "-o", "/dev/full")
    assert code == 2
    line = one_line(err)
    assert line == "tcptrace-py: /dev/full: No space left on device"
    assert str(SAMPLE) not in line  # the input is not to blame


@pytest.mark.parametrize("fmt", ["parquet", "jsonl", "csv"])
def test_missing_or_unwritable_directory(tmp_path: Path, fmt: str) -> None:
    for target, reason in ((tmp_path / "no" / "such" / "out.x", "No such file or directory"),
                           (SAMPLE / "out.x", "Not a directory"),
                           (Path("/proc/out.x"), "")):
        code, _, err = run("analyze", SAMPLE, "--format", fmt, "-o", target)
        assert code == 2, err
        line = one_line(err)
        assert line.startswith(f"tcptrace-py: {target}: cannot write ("), line
        assert reason in line


def test_failed_run_keeps_previous_results(tmp_path: Path) -> None:
    """The output is replaced only when the run succeeds: a bad input (checked after the
    output was opened) leaves the old file intact and no temporary file behind."""
    out = tmp_path / "flows.jsonl"
    out.write_text("previous results\n")
    bad = tmp_path / "notes.txt"
    bad.write_text("not a capture at all\n")
    for fmt in ("jsonl", "csv", "parquet", "zeek"):
        code, _, err = run("analyze", bad, "--format", fmt, "-o", out)
        assert code == 2 and "not a capture" in one_line(err)
        assert out.read_text() == "previous results\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["flows.jsonl", "notes.txt"]
    # Success replaces it whole, with the mode a new file gets, and leaves nothing else.
    code, _, _ = run("analyze", SAMPLE, "--format", "jsonl", "-o", out)
    assert code == 0
    assert out.read_text().count("\n") == len(list(Engine().run(str(SAMPLE))))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["flows.jsonl", "notes.txt"]
    new = tmp_path / "new.jsonl"
    assert run("anomalies", SAMPLE, "--format", "jsonl", "-o", new)[0] == 0
    umask = os.umask(0)
    os.umask(umask)
    assert new.stat().st_mode & 0o777 == 0o666 & ~umask


def test_device_target_written_in_place(tmp_path: Path) -> None:
    code, _, err = run("analyze", SAMPLE, "--format", "jsonl", "-o", os.devnull)
    assert code == 0 and not err.strip()


def _shell(cmd: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(["sh", "-c", cmd], capture_output=True, text=True, env=env,
                          timeout=120)


def test_closed_standard_streams_are_one_line() -> None:
    py = shlex.quote(sys.executable)
    sample = shlex.quote(str(SAMPLE))
    for cmd, expect in ((f"{py} -m tcptrace_py analyze {sample} --format jsonl >&-",
                         "tcptrace-py: standard output is closed"),
                        (f"{py} -m tcptrace_py analyze {sample} >&-",
                         "tcptrace-py: standard output is closed"),
                        (f"{py} -m tcptrace_py summary {sample} >&-",
                         "tcptrace-py: standard output is closed"),
                        (f"{py} -m tcptrace_py analyze - --format jsonl <&-",
                         "tcptrace-py: -: standard input is closed")):
        res = _shell(cmd)
        assert res.returncode == 2, (cmd, res.stderr)
        assert one_line(res.stderr) == expect


# --------------------------------------------------------------------------- option values
@pytest.mark.parametrize("args", [
    ["--idle-timeout", "inf"], ["--time-wait", "nan"], ["--attempt-timeout", "1e300"],
    ["--time-wait", "-inf"], ["--param", "rst_storm.window_s=inf"],
    ["--param", "window.min_stall_s=nan"], ["--param", "scan.max_tracked=0"],
    ["--param", "scan.max_keys=-5"], ["--param", "rst_storm.window_s=1e300"],
    ["--param", "close_wait_stuck.max_close_delay_s=-1"],
])
def test_bad_option_values_are_usage_errors(args: list[str]) -> None:
    for cmd in ("analyze", "anomalies"):
        code, _, err = run(cmd, SAMPLE, "--format", "jsonl", *args)
        assert code == 2, (args, err)
        assert "Traceback" not in err and "Error:" in err


def test_good_edge_values_still_run() -> None:
    code, out, _ = run("analyze", SAMPLE, "--format", "jsonl", "--idle-timeout", "0",
                       "--param", "close_wait_stuck.max_close_delay_s=0.5",
                       "--param", "scan.max_tracked=1")
    assert code == 0 and out


def test_api_options_validated() -> None:
    for kw in ({"time_wait_s": float("inf")}, {"idle_timeout_s": float("nan")},
               {"attempt_timeout_s": 1e300}, {"max_connections": 0},
               {"closed_linger_s": -1.0}):
        with pytest.raises(ValueError):
            Options(**kw)
    with pytest.raises(ValueError, match="scan.max_tracked"):
        Engine(Options(detector_params={"scan.max_tracked": 0}))
