"""Writing the results: ``outfile.LineBatch`` (JSON lines gathered into ~1 MiB writes) and
``outfile.write_all`` (``os.writev`` until every part is out), used by ``analyze``'s
jsonl stream and by ``--jobs`` workers."""

from __future__ import annotations

import io
import os
import random
import threading
from pathlib import Path
from typing import Any

import pytest

from tcptrace_py import outfile


def _lines(n: int, seed: int = 3) -> list[bytes]:
    rng = random.Random(seed)
    return [b'{"flow_id":%d,"x":"%s"}\n' % (k, b"y" * rng.randrange(0, 9000))
            for k in range(n)]


def test_line_batch_writes_every_line_in_order_after_what_the_stream_held(
        tmp_path: Path) -> None:
    """Into a file: what the buffered stream held first, then every line, in order, through
    gathered writes (several: more than LINE_BATCH_BYTES and more than WRITEV_PARTS lines);
    nothing before ``flush`` beyond the last full batch."""
    path = tmp_path / "out.jsonl"
    lines = _lines(3000)
    with open(path, "wb") as raw:
        raw.write(b"head\n")  # still in the stream's buffer
        batch = outfile.LineBatch(raw)
        assert batch.fd == raw.fileno()
        for line in lines:
            batch.write(line)
        assert batch.parts  # the tail waits for flush
        written = path.stat().st_size
        assert 0 < written < len(b"head\n") + sum(map(len, lines))
        batch.flush()
        assert not batch.parts and batch.size == 0
        batch.flush()  # nothing gathered: nothing written
    assert path.read_bytes() == b"head\n" + b"".join(lines)


def test_line_batch_without_a_file_descriptor_joins_its_lines() -> None:
    """A stream without a descriptor (a test runner's captured output) gets each batch as
    one joined write, through its own buffer."""
    sink = io.BytesIO()
    raw = io.BufferedWriter(sink)
    batch = outfile.LineBatch(raw)
    assert batch.fd is None
    lines = _lines(500)
    for line in lines:
        batch.write(line)
    batch.flush()
    raw.flush()
    assert sink.getvalue() == b"".join(lines)


def test_write_all_goes_on_after_a_part_written_in_part(monkeypatch: pytest.MonkeyPatch,
                                                          tmp_path: Path) -> None:
    """``os.writev`` may write less than asked (a signal, a nearly full pipe): the rest of
    the part it stopped in, then the parts after it, follow; empty parts are skipped."""
    real = os.writev
    calls = []

    def short(fd: int, parts: Any) -> int:
        calls.append(len(parts))
        # Never more than 7,000 bytes a call: stops inside parts, and between them.
        take, kept = 7000, []
        for p in parts:
            if take <= 0:
                break
            kept.append(memoryview(p)[:take])
            take -= len(p)
        return real(fd, kept)

    monkeypatch.setattr(os, "writev", short)
    parts: list[Any] = [b"", *_lines(40), b"", b"end\n", b""]
    path = tmp_path / "parts"
    with open(path, "wb") as f:
        outfile.write_all(f.fileno(), list(parts))
    assert path.read_bytes() == b"".join(parts)
    assert len(calls) > 20  # it went on, part by part


def test_write_all_through_a_pipe_larger_than_its_buffer() -> None:
    """Parts larger than a pipe's buffer, a reader reading meanwhile: all of it, in order."""
    r, w = os.pipe()
    parts = [os.urandom(300_000), b"x", os.urandom(1 << 20)]
    got = bytearray()

    def reader() -> None:
        while chunk := os.read(r, 1 << 16):
            got.extend(chunk)

    thread = threading.Thread(target=reader)
    thread.start()
    outfile.write_all(w, list(parts))
    os.close(w)
    thread.join()
    os.close(r)
    assert bytes(got) == b"".join(parts)


def test_the_stream_gathers_lines_except_for_a_reader_waiting_on_each() -> None:
    """``analyze``'s jsonl stream gathers its lines for a file or a pipe, and writes each at
    once for live input or a terminal (someone is watching each line arrive)."""
    from tcptrace_py.cli import _line_batch

    class Terminal(io.BufferedWriter):
        def isatty(self) -> bool:
            return True

    plain = io.BufferedWriter(io.BytesIO())
    assert isinstance(_line_batch(plain, live=False), outfile.LineBatch)
    assert _line_batch(plain, live=True) is None
    assert _line_batch(Terminal(io.BytesIO()), live=False) is None
    assert _line_batch(None, live=False) is None


def test_write_all_without_writev_joins_its_parts(monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path) -> None:
    """Where ``os.writev`` is missing (Windows), the parts go out joined, still whole and in
    order (a short ``os.write`` included)."""
    real = os.write
    monkeypatch.delattr(os, "writev")
    monkeypatch.setattr(os, "write", lambda fd, data: real(fd, bytes(data)[:5000]))
    parts: list[Any] = [*_lines(30), b"", b"end\n"]
    path = tmp_path / "joined"
    with open(path, "wb") as f:
        outfile.write_all(f.fileno(), list(parts))
    assert path.read_bytes() == b"".join(parts)
