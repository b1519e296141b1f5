"""Reading a capture file through a mapping (``source._Prefixed.mapped``).

The compiled pcap reader takes a file's bytes from a read-only mapping instead of copying
them into its buffer (``readinto``). What must hold: the same segments, counters and
warnings as any other way of reading the same bytes; a file that grows while it is read is
read to its new end, as ``readinto`` reads it; a file truncated while it is read ends with
the damage warning of the shorter file, not SIGBUS; and the pages read are dropped, so the
mapping adds a few MiB to the resident set whatever the file's size. The pure engine reads
with ``readinto`` only: the same tests hold it to the same results.
"""

from __future__ import annotations

import io
import mmap
import os
from pathlib import Path
from typing import Any

import pytest
from captures_util import pcap_bytes, tcp_frame
from hypothesis import given, settings
from hypothesis import strategies as st

from tcptrace_py import implementation
from tcptrace_py.capture import read_segments, source
from tcptrace_py.decode import Decoder
from tcptrace_py.diagnostics import CaptureError, Diagnostics
from tcptrace_py.segment import ACK, FIELDS, Segment

T0 = 1_700_000_000_000_000_000
HEADER_BYTES = 24


def _frames(n: int, payload: int = 1400, first: int = 0) -> list[tuple[int, bytes]]:
    return [(T0 + (first + i) * 1000,
             tcp_frame("192.0.2.1", "198.51.100.2", 40000, 80, 1 + (first + i) * payload, 1,
                       ACK, payload=bytes([i % 251]) * payload))
            for i in range(n)]


def _view(segs: list[Segment], diag: Diagnostics) -> tuple[Any, ...]:
    """Segments (every field) and diagnostics, without the source's name in warnings."""
    return ([tuple(getattr(s, f) for f in FIELDS) for s in segs],
            diag.frames, diag.tcp_segments, dict(diag.skipped), dict(diag.link_types),
            [(w.message, w.offset, w.frame, w.code) for w in diag.warnings],
            diag.first_ts_ns, diag.last_ts_ns, dict(diag.notes))


def _read(src: object) -> tuple[Any, ...]:
    diag = Diagnostics()
    return _view(list(read_segments(src, diag, Decoder(diag))), diag)


@pytest.fixture
def maps(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """What every ``_Prefixed.mapped`` call returned, in order."""
    seen: list[object] = []
    real = source._Prefixed.mapped

    def spy(self: source._Prefixed, consumed: int) -> mmap.mmap | None:
        got = real(self, consumed)
        seen.append(got)
        return got

    monkeypatch.setattr(source._Prefixed, "mapped", spy)
    return seen


def test_a_path_is_read_through_a_mapping(tmp_path: Path, maps: list[object]) -> None:
    data = pcap_bytes(_frames(900))  # ~1.3 MB: the limit moves on past one chunk
    path = tmp_path / "a.pcap"
    path.write_bytes(data)
    got = _read(path)
    assert got == _read(io.BytesIO(data))
    assert len(got[0]) == 900
    if implementation.compiled is not None:
        assert isinstance(maps[0], mmap.mmap)  # the path's; BytesIO's reading is not mapped
        assert maps[1:] == [None]
        assert maps[0].closed  # released when the reading ended
    else:
        assert maps == []  # the reference reads with readinto only


def test_streams_and_compressed_files_are_not_mapped(tmp_path: Path,
                                                     maps: list[object]) -> None:
    import gzip

    data = pcap_bytes(_frames(20))
    (tmp_path / "a.pcap.gz").write_bytes(gzip.compress(data))
    want = _read(io.BytesIO(data))
    with (tmp_path / "b.pcap").open("wb") as fh:
        fh.write(data)
    with (tmp_path / "b.pcap").open("rb") as fh:  # a file object handed over: read as given
        assert _read(fh) == want
    assert _read(tmp_path / "a.pcap.gz") == want
    assert all(m is None for m in maps)


def test_the_command_lines_gated_file_is_mapped_and_still_stops_at_ctrl_c(
        tmp_path: Path, maps: list[object]) -> None:
    """``analyze FILE`` reads the file through its Ctrl-C gate (``cli._GatedReader``): the
    gate lends the reader the regular file's descriptor, so the file is mapped all the
    same, and a pending Ctrl-C stops the reading at the next mebibyte, as at a read."""
    from tcptrace_py import cli

    data = pcap_bytes(_frames(2100))  # ~3.1 MB: three chunks
    path = tmp_path / "a.pcap"
    path.write_bytes(data)
    gate = cli._InterruptGate()
    with path.open("rb") as fh:
        assert _read(gate.wrap(fh)) == _read(io.BytesIO(data))
    diag = Diagnostics()
    with path.open("rb") as fh:
        segs = read_segments(gate.wrap(fh), diag, Decoder(diag))
        got = [next(segs)]
        gate.pending = True
        with pytest.raises(KeyboardInterrupt):
            got.extend(segs)
    assert 1 <= len(got) < 1000  # stopped within the first chunk's frames
    if implementation.compiled is not None:
        assert isinstance(maps[0], mmap.mmap) and isinstance(maps[2], mmap.mmap), maps


def test_a_file_growing_while_read_is_read_to_its_new_end(tmp_path: Path,
                                                          maps: list[object]) -> None:
    """A capture still being written: what was appended after the mapping was made is read
    with ``readinto`` from the mapping's end, as a reader of the whole stream reads it."""
    path = tmp_path / "live.pcap"
    path.write_bytes(pcap_bytes(_frames(3)))
    more = pcap_bytes(_frames(4, first=3))[HEADER_BYTES:]
    diag = Diagnostics()
    segs = read_segments(path, diag, Decoder(diag))
    first = [next(segs)]
    with path.open("ab") as fh:
        fh.write(more)
    got = _view(first + list(segs), diag)
    assert got == _read(io.BytesIO(path.read_bytes()))
    assert len(got[0]) == 7
    if implementation.compiled is not None:
        assert isinstance(maps[0], mmap.mmap)


def test_a_file_truncated_while_read_ends_as_the_shorter_file(tmp_path: Path,
                                                              maps: list[object]) -> None:
    """Cut inside a record beyond the chunk being read: no SIGBUS (the reader checks the
    size before it reads on), and the same frames and warning as reading the cut file."""
    data = pcap_bytes(_frames(2100))  # ~3.1 MB
    cut = 1_500_000 + 37
    path = tmp_path / "cut.pcap"
    path.write_bytes(data)
    diag = Diagnostics()
    segs = read_segments(path, diag, Decoder(diag))
    first = [next(segs)]
    os.truncate(path, cut)
    got = _view(first + list(segs), diag)
    want = _read(io.BytesIO(data[:cut]))
    assert got == want
    assert 1000 < len(got[0]) < 1100
    assert [(w[0].split(" (")[0], w[3]) for w in got[5]] == [
        ("file ends in the middle of a record", "truncated_record")]
    if implementation.compiled is not None:
        assert isinstance(maps[0], mmap.mmap)


def _rss_file_kib() -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("RssFile:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


@pytest.mark.skipif(_rss_file_kib() is None, reason="no /proc/self/status RssFile")
def test_pages_read_leave_the_resident_set(tmp_path: Path) -> None:
    """A 48 MB capture adds at most a few MiB of mapped pages at any point of its reading
    (the reader drops those behind it every 4 MiB): without the drops the whole file would
    be resident by the end."""
    frame = _frames(1, payload=60_000)[0][1]
    n = 800
    path = tmp_path / "big.pcap"
    path.write_bytes(pcap_bytes([(T0 + i, frame) for i in range(n)]))
    assert path.stat().st_size > 48_000_000
    diag = Diagnostics()
    before = _rss_file_kib()
    assert before is not None
    peak = 0
    count = 0
    for _seg in read_segments(path, diag, Decoder(diag)):
        count += 1
        if count % 50 == 0:
            now = _rss_file_kib()
            assert now is not None
            peak = max(peak, now - before)
    assert count == n
    assert peak < 20 * 1024, f"{peak} KiB of the file resident"


_SOUND = pcap_bytes(_frames(30, payload=700))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(_SOUND) - 1), st.integers(0, 255)),
                max_size=6),
       st.integers(24, len(_SOUND)))
def test_damaged_files_read_as_their_bytes(tmp_path_factory: pytest.TempPathFactory,
                                           edits: list[tuple[int, int]], cut: int) -> None:
    """Bytes overwritten anywhere (record lengths, times, headers) and the file cut: the
    mapped reading gives what reading the same bytes from a stream gives."""
    data = bytearray(_SOUND[:cut])
    for pos, value in edits:
        if pos < len(data):
            data[pos] = value
    path = tmp_path_factory.mktemp("fuzz") / "f.pcap"
    path.write_bytes(bytes(data))
    try:
        want: object = _read(io.BytesIO(bytes(data)))
    except CaptureError as exc:
        want = str(exc).split(": ", 1)[1]
    try:
        got: object = _read(path)
    except CaptureError as exc:
        got = str(exc).split(": ", 1)[1]
    assert got == want


@pytest.mark.parametrize("refused", ["MADV_SEQUENTIAL", "MADV_DONTNEED"])
def test_a_file_system_refusing_madvise(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        maps: list[object], refused: str) -> None:
    """``madvise`` failing: read-ahead refused, the file is read with ``readinto``; the
    pages' drop refused, the reading goes on from the mapping and keeps them."""
    calls: list[int] = []

    class Refusing(mmap.mmap):
        def madvise(self, option: int, *args: int) -> None:
            calls.append(option)
            if option == getattr(mmap, refused):
                raise OSError(22, "Invalid argument")
            super().madvise(option, *args)

    monkeypatch.setattr(mmap, "mmap", Refusing)
    data = pcap_bytes(_frames(7000))  # ~10 MB: past the first drop
    path = tmp_path / "a.pcap"
    path.write_bytes(data)
    got = _read(path)
    monkeypatch.undo()
    assert got == _read(io.BytesIO(data))
    if implementation.compiled is not None:
        if refused == "MADV_SEQUENTIAL":
            assert maps[:1] == [None]
        else:
            assert isinstance(maps[0], Refusing)
            assert calls.count(mmap.MADV_DONTNEED) == 1  # refused once, then not asked
