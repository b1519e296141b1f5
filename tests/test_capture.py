"""Capture reader: formats, byte orders, compression, sources and damaged input."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import struct
import sys
from pathlib import Path

import pytest
from captures_util import (
    ng_block,
    ng_epb,
    ng_idb,
    ng_pb,
    ng_shb,
    ng_spb,
    pcap_bytes,
    pcapng_bytes,
    tcp_frame,
    write_pcap,
    write_pcapng,
)

from tcptrace_py.capture import describe, read_frames
from tcptrace_py.diagnostics import CaptureError, Diagnostics
from tcptrace_py.segment import ACK, SYN

T0 = 1_700_000_000_123_456_789  # ns; has sub-microsecond digits on purpose


def _frames(n: int = 3, payload: bytes = b"hello") -> list[bytes]:
    return [tcp_frame("10.0.0.1", "10.0.0.2", 1000 + i, 80, i, 0, SYN if i == 0 else ACK,
                      payload=payload) for i in range(n)]


def _read(source: object, **kw: object) -> tuple[list[tuple[int, int, int, bytes, int]],
                                                  Diagnostics]:
    diag = Diagnostics()
    return list(read_frames(source, diag, **kw)), diag  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- classic pcap
@pytest.mark.parametrize("big_endian", [False, True])
@pytest.mark.parametrize("nanosecond", [False, True])
def test_pcap_byte_orders_and_precision(tmp_path: Path, big_endian: bool,
                                        nanosecond: bool) -> None:
    data = _frames()
    spec = [(T0 + i * 1_000_001, d) for i, d in enumerate(data)]
    p = write_pcap(tmp_path / "a.pcap", spec, nanosecond=nanosecond, big_endian=big_endian)
    frames, diag = _read(p)
    assert [f[0] for f in frames] == [1, 2, 3]
    expect = [ts if nanosecond else ts // 1000 * 1000 for ts, _ in spec]
    assert [f[1] for f in frames] == expect
    assert [f[3] for f in frames] == data
    assert all(f[2] == 1 and f[4] == len(f[3]) for f in frames)
    assert diag.frames == 3 and diag.link_types == {1: 3}
    assert diag.first_ts_ns == expect[0] and diag.last_ts_ns == expect[-1]
    assert not diag.warnings
    info = describe(p)
    assert info["byte_order"] == ("big" if big_endian else "little")
    assert info["ts_precision"] == ("nsec" if nanosecond else "usec")


def test_pcap_modified_kuznetsov_records(tmp_path: Path) -> None:
    data = _frames()
    frames, _ = _read(pcap_bytes(data, modified=True))
    assert [f[3] for f in frames] == data


@pytest.mark.parametrize("big_endian", [False, True])
def test_pcap_version_2_2_swapped_lengths(big_endian: bool) -> None:
    # Pre-2.3 libpcap wrote len before caplen; a snaplen-cut frame shows which is which.
    full = _frames(1, payload=b"x" * 200)[0]
    raw = pcap_bytes([(T0, full[:60], len(full))], version=(2, 2), big_endian=big_endian)
    frames, _ = _read(raw)
    assert frames[0][3] == full[:60] and frames[0][4] == len(full)


def test_pcap_snaplen_cut_frames_keep_wire_length() -> None:
    full = _frames(1, payload=b"x" * 500)[0]
    frames, diag = _read(pcap_bytes([(T0, full[:96], len(full))], snaplen=96))
    assert frames[0][3] == full[:96] and frames[0][4] == len(full)
    assert not diag.warnings


def test_chunk_boundaries_large_file(tmp_path: Path) -> None:
    # > 2 MiB so records straddle the 1 MiB read chunks.
    data = _frames(1, payload=b"y" * 1000)[0]
    n = 2500
    p = write_pcap(tmp_path / "big.pcap", [(T0 + i, data) for i in range(n)])
    assert p.stat().st_size > 2 * (1 << 20)
    frames, diag = _read(p)
    assert len(frames) == n and diag.frames == n
    assert all(f[3] == data for f in frames)
    assert frames[-1][0] == n and frames[-1][1] == (T0 + n - 1) // 1000 * 1000


# ----------------------------------------------------------------------------- compression
@pytest.mark.parametrize("kind", ["gzip", "bzip2", "xz", "zstd"])
@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
def test_compression_detected_by_magic(tmp_path: Path, kind: str, fmt: str) -> None:
    data = _frames()
    raw = pcap_bytes(data) if fmt == "pcap" else pcapng_bytes(data)
    if kind == "gzip":
        comp = gzip.compress(raw)
    elif kind == "bzip2":
        comp = bz2.compress(raw)
    elif kind == "xz":
        comp = lzma.compress(raw)
    else:
        zstandard = pytest.importorskip("zstandard")
        comp = zstandard.ZstdCompressor().compress(raw)
    p = tmp_path / "trace.pcap"  # the name says nothing about compression
    p.write_bytes(comp)
    frames, diag = _read(p)
    assert [f[3] for f in frames] == data and not diag.warnings
    assert describe(p)["compression"] == kind


def test_truncated_gzip_keeps_frames_and_warns(tmp_path: Path) -> None:
    data = _frames(50, payload=b"z" * 300)
    comp = gzip.compress(pcap_bytes(data))
    p = tmp_path / "cut.gz"
    p.write_bytes(comp[: len(comp) * 2 // 3])
    frames, diag = _read(p)
    assert 0 < len(frames) < 50
    assert diag.warnings and str(p) in str(diag.warnings[0])
    with pytest.raises(CaptureError):
        _read(p, strict=True)


# ----------------------------------------------------------------------------- sources
def test_sources_bytes_fileobj_and_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = pcap_bytes(_frames())
    assert len(_read(raw)[0]) == 3
    assert len(_read(io.BytesIO(raw))[0]) == 3

    class FakeStdin:
        buffer = io.BytesIO(gzip.compress(raw))

    monkeypatch.setattr(sys, "stdin", FakeStdin())
    frames, _ = _read("-")
    assert len(frames) == 3


def test_name_used_in_messages() -> None:
    raw = pcap_bytes(_frames())[:-3]
    _, diag = _read(raw, name="capture-x")
    assert diag.warnings[0].source == "capture-x"


# ----------------------------------------------------------------------------- pcapng
@pytest.mark.parametrize("big_endian", [False, True])
def test_pcapng_basic(tmp_path: Path, big_endian: bool) -> None:
    data = _frames()
    spec = [(T0 + i * 1000, d) for i, d in enumerate(data)]
    p = write_pcapng(tmp_path / "a.pcapng", spec, big_endian=big_endian)
    frames, diag = _read(p)
    assert [(f[0], f[1], f[2], f[3]) for f in frames] == [
        (i + 1, ts // 1000 * 1000, 1, d) for i, (ts, d) in enumerate(spec)]
    assert diag.link_types == {1: 3}
    assert describe(p)["interfaces"][0]["linktype"] == 1


@pytest.mark.parametrize("tsresol", [9, 3, 0x80 | 20, 0x80 | 30])
def test_pcapng_tsresol_and_tsoffset(tsresol: int) -> None:
    data = _frames(2)
    spec = [(T0, data[0]), (T0 + 5_000_000, data[1])]
    raw = pcapng_bytes(spec, tsresol=tsresol, tsoffset_s=1_600_000_000)
    frames, _ = _read(raw)
    if tsresol & 0x80:
        step_ns = 1_000_000_000 / (1 << (tsresol & 0x7F))
        for f, (ts, _d) in zip(frames, spec, strict=True):
            assert abs(f[1] - ts) <= step_ns + 1
    else:
        q = 10 ** (9 - tsresol)
        assert [f[1] for f in frames] == [ts // q * q for ts, _ in spec]


def test_pcapng_sections_interfaces_and_block_kinds() -> None:
    f1, f2, f3, f4 = _frames(4)
    sll = b"\x00\x00\x00\x01\x00\x06" + b"\x02" * 8 + b"\x08\x00" + f2[14:]
    raw = (ng_shb() + ng_idb(1) + ng_idb(113, tsresol=9)
           + ng_epb(0, 1_000_000, f1)             # 1 s at usec resolution
           + ng_block(0x12345678, b"\x00" * 8)    # unknown block: skipped, counted
           + ng_block(5, b"\x00" * 12)            # ISB: known, skipped
           + ng_epb(1, 2_000_000_000, sll)        # 2 s at nsec, interface 1 = SLL
           + ng_spb(f3)                           # no timestamp: previous one reused
           + ng_shb(big_endian=True) + ng_idb(101, big_endian=True)  # new section, BE
           + ng_pb(0, 3_000_000, f4[14:], big_endian=True))
    frames, diag = _read(raw)
    assert [(f[0], f[1], f[2]) for f in frames] == [
        (1, 1_000_000_000, 1), (2, 2_000_000_000, 113), (3, 2_000_000_000, 1),
        (4, 3_000_000_000, 101)]
    assert frames[2][3] == f3 and frames[3][3] == f4[14:]
    assert diag.notes["pcapng_unknown_block"] == 1
    assert diag.notes["pcapng_spb_no_timestamp"] == 1
    assert diag.link_types == {1: 2, 113: 1, 101: 1}
    assert not diag.warnings


def test_pcapng_packet_for_missing_interface_is_skipped_with_warning() -> None:
    f1 = _frames(1)[0]
    raw = ng_shb() + ng_idb(1) + ng_epb(3, 0, f1) + ng_epb(0, 0, f1)
    frames, diag = _read(raw)
    assert len(frames) == 1 and diag.notes["pcapng_bad_interface"] == 1
    assert diag.warnings[0].code == "bad_block"


def test_pcapng_block_length_corruption() -> None:
    data = _frames(3)
    raw = bytearray(pcapng_bytes(data))
    good = pcapng_bytes(data[:2])
    # Corrupt the trailing length copy of the third EPB.
    struct.pack_into("<I", raw, len(raw) - 4, 0xDEAD)
    frames, diag = _read(bytes(raw))
    assert len(frames) == 2
    w = diag.warnings[0]
    assert w.code == "bad_block_length" and w.offset == len(good) and w.frame == 3
    with pytest.raises(CaptureError, match="offset"):
        _read(bytes(raw), strict=True)
    # An absurd leading length: no allocation of that size, a warning instead.
    raw2 = bytearray(pcapng_bytes(data))
    struct.pack_into("<I", raw2, len(good) + 4, 0x7FFFFFF0)
    frames, diag = _read(bytes(raw2))
    assert len(frames) == 2 and diag.warnings[0].code == "bad_block_length"


def test_pcapng_cut_mid_block() -> None:
    raw = pcapng_bytes(_frames(3))
    frames, diag = _read(raw[:-10])
    assert len(frames) == 2 and diag.warnings[0].code == "truncated_record"
    assert "2 frames read" in diag.warnings[0].message


# ----------------------------------------------------------------------------- bad input
def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(CaptureError, match="no such file"):
        _read(tmp_path / "nope.pcap")
    with pytest.raises(CaptureError, match="directory"):
        _read(tmp_path)


@pytest.mark.parametrize(("content", "match"), [
    (b"", "empty file"),
    (b"hello world, this is text\n", "text file"),
    (b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 1234\n",
     "Git LFS pointer, not a capture"),
    (b"\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09", "unknown magic"),
    (b"\xd4\xc3\xb2\xa1\x02\x00", "cut short"),
])
def test_not_a_capture(tmp_path: Path, content: bytes, match: str) -> None:
    p = tmp_path / "bad.pcap"
    p.write_bytes(content)
    with pytest.raises(CaptureError, match=match) as exc:
        _read(p)
    assert str(p) in str(exc.value) and "\n" not in str(exc.value)


def test_gzip_of_text_is_not_a_capture(tmp_path: Path) -> None:
    p = tmp_path / "x.gz"
    p.write_bytes(gzip.compress(b"just some text in a gzip file"))
    with pytest.raises(CaptureError, match="text gzip-compressed data"):
        _read(p)


def test_header_only_is_valid_and_empty() -> None:
    for raw in (pcap_bytes([]), pcapng_bytes([])):
        frames, diag = _read(raw)
        assert frames == [] and diag.frames == 0 and not diag.warnings


def test_cut_mid_record_warns_with_offset_and_count() -> None:
    data = _frames(3)
    raw = pcap_bytes(data)
    frames, diag = _read(raw[:-5])
    assert len(frames) == 2
    w = diag.warnings[0]
    assert w.code == "truncated_record"
    assert w.offset == 24 + 2 * 16 + len(data[0]) + len(data[1])
    assert "2 frames read" in w.message and w.frame == 3
    with pytest.raises(CaptureError, match="offset"):
        _read(raw[:-5], strict=True)


@pytest.mark.parametrize("bad_len", [300 * 1024, 0xFFFFFFF0, 70000])
def test_absurd_record_length(bad_len: int) -> None:
    data = _frames(2)
    raw = bytearray(pcap_bytes(data))
    struct.pack_into("<I", raw, 24 + 16 + len(data[0]) + 8, bad_len)  # second record caplen
    frames, diag = _read(bytes(raw))
    assert len(frames) == 1
    assert diag.warnings[0].code == "bad_record_length"
    assert str(bad_len) in diag.warnings[0].message


def test_timestamps_backwards_warn_once_and_count() -> None:
    data = _frames(4)
    spec = [(T0, data[0]), (T0 - 5000, data[1]), (T0 + 1000, data[2]), (T0 - 9000, data[3])]
    frames, diag = _read(pcap_bytes(spec, nanosecond=True))
    assert len(frames) == 4
    assert [w.code for w in diag.warnings] == ["timestamp_backwards"]
    assert diag.warnings[0].frame == 2
    assert diag.notes["timestamp_backwards"] == 2
    assert diag.first_ts_ns == T0 - 9000 and diag.last_ts_ns == T0 + 1000


# --------------------------------------------------------------------------- issue 18.11
@pytest.mark.parametrize("head", [b"\n\r\r\n", b"\n\r\r\n\x1c\x00\x00\x00",
                                  b"\n\r\r\n" + b"\x00" * 40])
def test_describe_refuses_a_cut_or_bad_section_header(head: bytes) -> None:
    """describe() says what read_frames says of the same bytes: not a capture."""
    with pytest.raises(CaptureError):
        list(read_frames(head, Diagnostics()))
    with pytest.raises(CaptureError):
        describe(head)


def test_pcapng_interfaces_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    """Interface blocks beyond MAX_INTERFACES per section are counted and ignored (one
    warning); packets of the kept interfaces are read, those naming dropped ones skipped."""
    from tcptrace_py.capture import pcapng

    monkeypatch.setattr(pcapng, "MAX_INTERFACES", 3)
    frame = tcp_frame("10.0.0.1", "10.0.0.2", 1000, 80, 1, 0, SYN)
    data = ng_shb() + b"".join(ng_idb() for _ in range(10)) + ng_epb(2, 5, frame) + \
        ng_epb(7, 6, frame)
    diag = Diagnostics()
    frames = list(read_frames(data, diag))
    assert len(frames) == 1
    assert diag.notes["pcapng_interfaces_dropped"] == 7
    assert diag.notes["pcapng_bad_interface"] == 1
    capped = [w for w in diag.warnings if "interfaces in a section" in w.message]
    assert len(capped) == 1 and "more than 3 interfaces" in capped[0].message
