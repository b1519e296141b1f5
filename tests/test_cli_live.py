"""Live input: ``tcpdump -U -w - | tcptrace-py analyze -`` and Ctrl-C.

The CLI runs in a subprocess fed through a pipe that stays open (as a live capture's), so
what it writes before end of input and what a SIGINT leaves behind are observed as a user
sees them. Reads of its stdout wait with ``select`` and a generous bound only so that a
regression fails instead of hanging the suite; nothing here measures time.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
from typing import Any

import pytest
from captures_util import pcap_bytes, tcp_frame

from tcptrace_py.segment import ACK, FIN, PSH, SYN

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and pipes")

T0_NS = 1_700_000_000_000_000_000
SECOND_NS = 1_000_000_000
HANG_GUARD_S = 120
"""Upper bound on waiting for a line: a regression (nothing written before end of input)
then fails the test instead of blocking it forever."""

C, S = "10.1.0.1", "10.1.0.2"


def _graceful(port: int, t_ns: int) -> list[tuple[int, bytes]]:
    """Handshake, 100 bytes each way, FIN/FIN/ACK: a connection that ends in TIME_WAIT."""
    frames = [
        tcp_frame(C, S, port, 80, 1000, 0, SYN),
        tcp_frame(S, C, 80, port, 5000, 1001, SYN | ACK),
        tcp_frame(C, S, port, 80, 1001, 5001, ACK),
        tcp_frame(C, S, port, 80, 1001, 5001, PSH | ACK, payload=b"q" * 100),
        tcp_frame(S, C, 80, port, 5001, 1101, PSH | ACK, payload=b"r" * 100),
        tcp_frame(C, S, port, 80, 1101, 5101, FIN | ACK),
        tcp_frame(S, C, 80, port, 5101, 1102, FIN | ACK),
        tcp_frame(C, S, port, 80, 1102, 5102, ACK),
    ]
    return [(t_ns + i * 1_000_000, f) for i, f in enumerate(frames)]


def _open(port: int, t_ns: int) -> list[tuple[int, bytes]]:
    """Handshake and a request, never closed: still live when input stops."""
    frames = [
        tcp_frame(C, S, port, 80, 7000, 0, SYN),
        tcp_frame(S, C, 80, port, 9000, 7001, SYN | ACK),
        tcp_frame(C, S, port, 80, 7001, 9001, ACK),
        tcp_frame(C, S, port, 80, 7001, 9001, PSH | ACK, payload=b"x" * 50),
    ]
    return [(t_ns + i * 1_000_000, f) for i, f in enumerate(frames)]


def _live_capture() -> bytes:
    """A closed connection, then 100 s later (past TIME_WAIT, 60 s) a second one that stays
    open: the first is finished, by packet time, as soon as the second's packets arrive."""
    return pcap_bytes(_graceful(40000, T0_NS) + _open(40001, T0_NS + 100 * SECOND_NS))


def _start(*args: str) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env.pop("PYTHONUNBUFFERED", None)  # the CLI's own flushing is under test
    return subprocess.Popen([sys.executable, "-m", "tcptrace_py", "analyze", *args],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)


def _wait_consumed(proc: subprocess.Popen[bytes]) -> None:
    """Until the CLI has read everything written to its stdin (FIONREAD on the pipe: the
    bytes still in it; Linux answers it on either end). Only then is a SIGINT certain to
    find the analysis running (not Python still starting up) with all input read."""
    import fcntl
    import struct
    import termios
    import time

    assert proc.stdin is not None
    buf = bytearray(4)
    for _ in range(HANG_GUARD_S * 100):
        fcntl.ioctl(proc.stdin.fileno(), termios.FIONREAD, buf)
        if struct.unpack("i", bytes(buf))[0] == 0:
            return
        time.sleep(0.01)
    raise AssertionError("the CLI never read its input")


def _read_line(proc: subprocess.Popen[bytes]) -> bytes:
    assert proc.stdout is not None
    out = b""
    fd = proc.stdout.fileno()
    while not out.endswith(b"\n"):
        ready, _, _ = select.select([fd], [], [], HANG_GUARD_S)
        assert ready, f"nothing written before end of input (so far: {out!r})"
        chunk = os.read(fd, 1)
        assert chunk, f"output ended early: {out!r}"
        out += chunk
    return out


def _finish(proc: subprocess.Popen[bytes]) -> tuple[int, bytes, str]:
    """Wait for the process (closing its stdin only after it exited)."""
    assert proc.stdout is not None and proc.stderr is not None
    rest = proc.stdout.read()
    err = proc.stderr.read().decode()
    code = proc.wait(HANG_GUARD_S)
    assert proc.stdin is not None
    proc.stdin.close()
    return code, rest, err


def _records(data: bytes) -> list[dict[str, Any]]:
    return [json.loads(x) for x in data.splitlines() if x.strip()]


def test_jsonl_emits_each_finished_connection_before_end_of_input() -> None:
    """The closed connection's line arrives while the pipe is still open (read1 instead of
    a 1 MiB read, and a flush per line); Ctrl-C then writes the open one and exits 130."""
    proc = _start("-", "--format", "jsonl")
    assert proc.stdin is not None
    proc.stdin.write(_live_capture())
    proc.stdin.flush()
    first = json.loads(_read_line(proc))
    assert (first["flow_id"], first["close"]) == (0, "graceful")
    proc.send_signal(signal.SIGINT)
    code, rest, err = _finish(proc)
    assert code == 130, err
    (second,) = _records(rest)
    assert (second["flow_id"], second["close"]) == (1, "open_at_capture_end")
    assert second["client_payload_bytes"] == 50
    assert "Aborted" not in err and "Traceback" not in err
    assert "interrupted" in err


def test_ctrl_c_writes_the_table_and_summary_of_what_was_read() -> None:
    """The table format (written at the end): on Ctrl-C, both connections and the capture
    summary, exit 130, no "Aborted!"."""
    proc = _start("-", "--format", "table")
    assert proc.stdin is not None
    proc.stdin.write(_live_capture())
    proc.stdin.flush()
    _wait_consumed(proc)
    proc.send_signal(signal.SIGINT)
    code, out, err = _finish(proc)
    text = out.decode()
    assert code == 130, err
    assert "2 TCP connections" in text and "capture summary" in text
    assert "graceful" in text and "open_at_capture_end" in text
    assert "Aborted" not in err and "Traceback" not in err


def test_second_file_is_skipped_after_ctrl_c(tmp_path: Any) -> None:
    """With several inputs, Ctrl-C during the first ends the run: the next file is not
    started (its connections are absent), the first's are written."""
    other = tmp_path / "other.pcap"
    other.write_bytes(pcap_bytes(_graceful(41000, T0_NS)))
    proc = _start("-", str(other), "--format", "jsonl")
    assert proc.stdin is not None
    proc.stdin.write(_live_capture())
    proc.stdin.flush()
    first = json.loads(_read_line(proc))
    assert first["capture"] == "-"
    proc.send_signal(signal.SIGINT)
    code, rest, err = _finish(proc)
    assert code == 130, err
    assert {r["capture"] for r in _records(rest)} == {"-"}
