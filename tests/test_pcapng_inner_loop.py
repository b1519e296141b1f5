"""The pcapng reader's inner loop over whole EPBs reads exactly what the general loop reads.

``capture/pcapng.py`` takes runs of well-formed Enhanced Packet Blocks through a tight inner
loop and leaves every other block, and every block it has any doubt about, to the general
loop. So the property is equivalence: with ``EPB_INNER_LOOP`` on and off, the same frames
(every field), segments, counters, warnings and errors, on files that mix every block kind,
both byte orders, several sections and interfaces, timestamp resolutions, damage at every
byte offset, random byte edits (Hypothesis), a stream that arrives in small reads, and the
shared captures.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from captures_util import (
    ng_block,
    ng_epb,
    ng_idb,
    ng_pb,
    ng_shb,
    ng_spb,
    opt_ts,
    pcapng_bytes,
    tcp_frame,
)
from hypothesis import given, settings
from hypothesis import strategies as st

import tcptrace_py.capture.pcapng as pcapng
from tcptrace_py.capture import read_frames, read_segments
from tcptrace_py.decode import Decoder
from tcptrace_py.diagnostics import CaptureError, Diagnostics
from tcptrace_py.segment import ACK, FIELDS

SHARED = Path(__file__).resolve().parents[2] / "shared"
T0 = 1_700_000_000_000_000


def _frame(i: int, size: int = 40) -> bytes:
    return tcp_frame("192.0.2.1", "198.51.100.2", 1000 + i % 3, 80, i * 100, 7, ACK,
                     payload=bytes([i % 251]) * size, options=b"\x01\x01" + opt_ts(i, 1))


def _mixed(big_endian: bool = False) -> bytes:
    """Two sections; interfaces with other resolutions and an offset; EPBs interleaved with
    SPB, PB, NRB, an unknown block, a packet on a missing interface, an SLL interface."""
    be = big_endian
    o = ">" if be else "<"
    out = [ng_shb(big_endian=be), ng_idb(1, big_endian=be),
           ng_idb(113, big_endian=be, tsresol=9, tsoffset_s=10)]
    sll = struct.pack("!HHH8sH", 0, 1, 6, b"\x02" * 8, 0x0800) + _frame(99)[14:]
    for i in range(30):
        out.append(ng_epb(0, T0 + i * 1000, _frame(i), big_endian=be))
        if i % 7 == 3:
            out.append(ng_epb(1, (T0 + i) * 1000, sll, big_endian=be))
        if i == 5:
            out.append(ng_spb(_frame(i), big_endian=be))
        if i == 9:
            out.append(ng_pb(0, T0 + 9 * 1000 + 1, _frame(i), big_endian=be))
        if i == 11:
            out.append(ng_block(4, struct.pack(o + "HH", 0, 0), big_endian=be))  # NRB
        if i == 13:
            out.append(ng_block(0x1234, b"\x00" * 8, big_endian=be))  # unknown
        if i == 17:
            out.append(ng_epb(5, T0, _frame(i), big_endian=be))  # no interface 5
        if i == 19:
            out.append(ng_epb(0, T0 - 10**9, _frame(i), big_endian=be))  # backwards
    out.append(ng_shb(big_endian=not be))
    out.append(ng_idb(1, big_endian=not be, tsresol=0x80 | 20))
    out += [ng_epb(0, (T0 // 1_000_000 + i) << 20, _frame(i, 1200), big_endian=not be)
            for i in range(5)]
    return b"".join(out)


class _Trickle(io.RawIOBase):
    """A stream that returns at most ``step`` bytes per read (pipes, slow decompressors)."""

    def __init__(self, data: bytes, step: int) -> None:
        self._data = data
        self._pos = 0
        self._step = step

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        k = self._step if n < 0 else min(n, self._step)
        out = self._data[self._pos:self._pos + k]
        self._pos += len(out)
        return out


def _view(diag: Diagnostics) -> tuple[Any, ...]:
    return (diag.frames, diag.tcp_segments, dict(diag.skipped), dict(diag.link_types),
            diag.warnings, diag.first_ts_ns, diag.last_ts_ns, dict(diag.notes))


def _read(source: Any, inner: bool, segments: bool = False,
          strict: bool = False) -> tuple[Any, ...]:
    pcapng.EPB_INNER_LOOP = inner
    try:
        diag = Diagnostics()
        out: list[Any] = []
        it: Iterator[Any] = (read_segments(source, diag, Decoder(diag), strict=strict)
                             if segments else read_frames(source, diag, strict=strict))
        try:
            for x in it:
                out.append(tuple(getattr(x, f) for f in FIELDS)
                           if segments else x)
        except CaptureError as exc:
            out.append(("error", str(exc)))
        return tuple(out), _view(diag)
    finally:
        pcapng.EPB_INNER_LOOP = True


def _same(make: Any, segments: bool = False, strict: bool = False) -> tuple[Any, ...]:
    fast = _read(make(), True, segments, strict)
    assert fast == _read(make(), False, segments, strict)
    return fast


@pytest.mark.parametrize("big_endian", [False, True])
@pytest.mark.parametrize("segments", [False, True])
def test_every_block_kind_both_orders(big_endian: bool, segments: bool) -> None:
    raw = _mixed(big_endian)
    frames, view = _same(lambda: raw, segments)
    assert len(frames) > 30
    assert view[4]  # the missing interface and the backwards timestamp were warned about


@pytest.mark.parametrize("step", [1, 7, 100, 4096])
def test_stream_arriving_in_small_reads(step: int) -> None:
    raw = _mixed()
    _same(lambda: _Trickle(raw, step), segments=True)


def test_cut_at_every_offset() -> None:
    raw = _mixed()
    for cut in range(0, len(raw), 13):
        _same(lambda c=cut: raw[:c])
    _same(lambda: raw[:-5], strict=True)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2_000), st.integers(0, 255)), min_size=1,
                max_size=6))
def test_random_byte_edits(edits: list[tuple[int, int]]) -> None:
    raw = bytearray(_mixed())
    for pos, value in edits:
        raw[pos % len(raw)] = value
    data = bytes(raw)
    _same(lambda: data, segments=True)


def test_large_capture_in_many_chunks() -> None:
    """More than the 1 MiB read size: runs end at chunk borders and resume."""
    raw = pcapng_bytes([(T0 * 1000 + i, _frame(i, 1400)) for i in range(1500)])
    frames, view = _same(lambda: raw, segments=True)
    assert len(frames) == 1500 and view[0] == 1500


def _shared_pcapngs() -> list[Path]:
    if not SHARED.is_dir():
        return []
    return sorted(p for p in (SHARED / "captures").rglob("*")
                  if p.is_file() and p.stat().st_size < 8_000_000
                  and p.read_bytes()[:4] == b"\x0a\x0d\x0d\x0a")


@pytest.mark.skipif(not _shared_pcapngs(), reason="../shared not present")
def test_shared_pcapng_captures() -> None:
    for path in _shared_pcapngs():
        _same(lambda p=path: p, segments=True)
