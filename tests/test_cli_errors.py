"""CLI failure paths (issue 18 items 8 and 11): output errors, bad option values, closed
standard streams. Each is one line on stderr and exit status 2, never a traceback, and a
failed run never destroys the previous results of ``-o``."""

from __future__ import annotations

import json
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


# --------------------------------------------------------------------------- Ctrl-C
class _InterruptedReader:
    """A capture stream that delivers ``data`` and then gets Ctrl-C (KeyboardInterrupt
    raised by the next read, as Python raises it from a read blocked on a pipe)."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def read(self, n: int = -1, /) -> bytes:
        if not self._data:
            raise KeyboardInterrupt
        out, self._data = (self._data, b"") if n < 0 else (self._data[:n], self._data[n:])
        return out

    read1 = read

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        pass


def _frames() -> list[tuple[int, bytes]]:
    from captures_util import tcp_frame

    t0 = 1_700_000_000 * 10**9
    frames = []
    for i in range(6):  # six connections, each SYN, SYN-ACK, ACK, 100 bytes
        c, s, port = f"10.0.0.{i + 1}", "10.0.1.1", 40000 + i
        for k, (src, dst, sp, dp, seq, ack, fl, data) in enumerate((
                (c, s, port, 80, 100, 0, 0x02, b""), (s, c, 80, port, 500, 101, 0x12, b""),
                (c, s, port, 80, 101, 501, 0x10, b""),
                (c, s, port, 80, 101, 501, 0x18, b"x" * 100))):
            frames.append((t0 + (i * 4 + k) * 10**6,
                           tcp_frame(src, dst, sp, dp, seq, ack, fl, payload=data)))
    return frames


@pytest.mark.parametrize("cmd, fmt", [("analyze", "jsonl"), ("analyze", "csv"),
                                      ("anomalies", "jsonl"), ("summary", "json")])
def test_ctrl_c_writes_what_was_read_and_exits_130(tmp_path: Path, cmd: str, fmt: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C after half the capture: the output is what the first half alone gives (live
    connections reported as at a cut capture), written whole; exit 130, no "Aborted!"."""
    from captures_util import pcap_bytes

    import tcptrace_py.cli as cli

    frames = _frames()
    prefix = pcap_bytes(frames[:13])  # cut inside the fourth connection's handshake
    assert pcap_bytes(frames).startswith(prefix)
    half = tmp_path / "half.pcap"
    half.write_bytes(prefix)
    out = tmp_path / "out"
    args = [cmd, "-", "--format", fmt] + ([] if cmd == "summary" else ["-o", str(out)])
    exp_args: list[str | Path] = [cmd, half, "--format", fmt]
    if cmd != "summary":
        exp_args += ["-o", tmp_path / "exp"]
    expected = run(*exp_args)
    monkeypatch.setattr(cli, "_with_progress",
                        lambda path, quiet, *_gate: iter([_InterruptedReader(prefix)]))
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 130, res.output
    assert "Aborted" not in res.output
    assert res.stderr.strip().splitlines()[-1] == \
        "tcptrace-py: interrupted: results cover the frames of - read so far"
    if cmd == "summary":
        assert res.stdout == expected[1]
        assert json.loads(res.stdout)["connections"] == 4
    else:
        assert out.read_bytes() == (tmp_path / "exp").read_bytes()


def test_sigint_on_a_live_pipe(tmp_path: Path) -> None:
    """A real SIGINT while ``analyze -`` waits for more packets on a pipe (tcpdump -w - |
    tcptrace-py analyze -): the connections read so far are written, exit 130."""
    import signal
    import time

    from captures_util import pcap_bytes

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "tcptrace_py", "analyze", "-", "--format",
                             "jsonl"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)
    try:
        assert proc.stdin is not None
        proc.stdin.write(pcap_bytes(_frames()[:7]))
        proc.stdin.flush()
        wchan = Path(f"/proc/{proc.pid}/wchan")
        if not wchan.exists():
            pytest.skip("needs /proc/PID/wchan")
        # Wait (bounded) until the child has read everything and blocks on the pipe again.
        # The CLI waits for the pipe in select (cli._InterruptGate), reading nothing more.
        waiting = ("pipe_read", "poll", "select")
        for _ in range(6000):
            if any(w in wchan.read_text() for w in waiting) or proc.poll() is not None:
                break
            time.sleep(0.01)
        assert any(w in wchan.read_text() for w in waiting)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert one_line(err.decode()) == \
        "tcptrace-py: interrupted: results cover the frames of - read so far"
    records = [line for line in out.splitlines() if line.strip()]
    # 2 (the first connection, and the second one's SYN so far) once a read from the pipe
    # returns what it holds; 0 while standard input is read in whole 1 MiB chunks (the
    # frames are still in the read buffer: live reading is issue 17's).
    assert len(records) in (0, 2)
