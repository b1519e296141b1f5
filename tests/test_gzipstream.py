"""``capture.gzipstream.GzipStream`` against the standard library's gzip reader.

A sound stream must decompress to the same bytes whatever the read sizes (members one after
the other, zero padding, empty members); a damaged one must hand out a prefix of the data,
no shorter than the standard reader's by more than one inflater call's output, then raise
an error the capture reader treats as damage. Run with the standard ``zlib`` and, when the
package is installed, ISA-L's inflater (the one used then).
"""

from __future__ import annotations

import gzip
import io
import zlib
from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tcptrace_py.capture.gzipstream import OUT_BYTES, GzipStream
from tcptrace_py.capture.source import decompression_errors

INFLATERS: list[ModuleType] = [zlib]
try:
    from isal import isal_zlib

    INFLATERS.append(isal_zlib)
except ImportError:  # pragma: no cover - isal is a dependency; a platform may lack it
    pass

RAW = b"".join(i.to_bytes(4, "little") * (1 + i % 7) for i in range(40_000))  # ~640 KB


def _drain(stream: object, sizes: list[int]) -> tuple[bytes, BaseException | None]:
    """Read until the end (b"") or an error; the bytes read and the error."""
    out = bytearray()
    k = 0
    try:
        while True:
            n = sizes[k % len(sizes)] if sizes else -1
            k += 1
            chunk = stream.read1(n)  # type: ignore[attr-defined]
            if not chunk:
                return bytes(out), None
            assert n < 0 or len(chunk) <= n
            out += chunk
    except Exception as exc:  # noqa: BLE001 - what the caller checks
        return bytes(out), exc


@pytest.mark.parametrize("inflater", INFLATERS, ids=lambda m: m.__name__)
@pytest.mark.parametrize("layout", ["one", "three members", "padded", "empty member"])
def test_sound_streams_give_the_same_bytes(inflater: ModuleType, layout: str) -> None:
    if layout == "one":
        data = gzip.compress(RAW)
    elif layout == "three members":
        data = gzip.compress(RAW[:1000]) + gzip.compress(RAW[1000:5000]) + \
            gzip.compress(RAW[5000:], compresslevel=1)
    elif layout == "padded":
        data = gzip.compress(RAW) + bytes(1000)
    else:
        data = gzip.compress(b"") + gzip.compress(RAW) + gzip.compress(b"")
    for sizes in ([], [1], [7, 32, 100_000], [1 << 20]):
        got, err = _drain(GzipStream(io.BytesIO(data), inflater), sizes)
        assert err is None and got == RAW
    s = GzipStream(io.BytesIO(data), inflater)
    assert s.read(10) == RAW[:10] and s.read() == RAW[10:] and s.read(5) == b""
    buf = bytearray(4096)
    s = GzipStream(io.BytesIO(data), inflater)
    n = s.readinto1(buf)
    assert 0 < n <= 4096 and bytes(buf[:n]) == RAW[:n]


@settings(max_examples=40, deadline=None)
@given(st.binary(max_size=5000), st.lists(st.integers(1, 3000), min_size=1, max_size=5),
       st.integers(0, len(INFLATERS) - 1))
def test_any_data_and_read_sizes(raw: bytes, sizes: list[int], which: int) -> None:
    got, err = _drain(GzipStream(io.BytesIO(gzip.compress(raw)), INFLATERS[which]), sizes)
    assert err is None and got == raw


@pytest.mark.parametrize("inflater", INFLATERS, ids=lambda m: m.__name__)
def test_a_cut_stream_keeps_what_the_standard_reader_keeps(inflater: ModuleType) -> None:
    data = gzip.compress(RAW)
    for cut in range(10, len(data), max(1, len(data) // 40)):
        got, err = _drain(GzipStream(io.BytesIO(data[:cut]), inflater), [1 << 20])
        std, std_err = _drain(gzip.GzipFile(fileobj=io.BytesIO(data[:cut])), [1 << 20])
        assert isinstance(err, EOFError) and isinstance(std_err, EOFError)
        assert RAW.startswith(got)
        assert len(got) >= len(std) - OUT_BYTES, cut


@pytest.mark.parametrize("inflater", INFLATERS, ids=lambda m: m.__name__)
def test_garbage_after_a_member(inflater: ModuleType) -> None:
    """Every byte of the sound member first, then the standard reader's error."""
    for tail in (b"garbage", b"\x00\x00x", b"\x1f"):
        got, err = _drain(GzipStream(io.BytesIO(gzip.compress(RAW) + tail), inflater),
                          [1 << 20])
        assert got == RAW
        assert isinstance(err, OSError) and "Not a gzipped file" in str(err)


def _decoded_until_error(data: bytes) -> bytes:
    """What zlib decodes of a damaged member, 1 KiB at a time, before it raises: deflate
    decoding is deterministic, so every reader decodes these bytes; they need not be the
    original data (a flipped bit changes literals before the CRC is checked)."""
    d = zlib.decompressobj(31)
    out = bytearray()
    rest = data
    try:
        while rest and not d.eof:
            out += d.decompress(rest, 1024)
            rest = d.unconsumed_tail
    except zlib.error:
        pass
    return bytes(out)


@pytest.mark.parametrize("inflater", INFLATERS, ids=lambda m: m.__name__)
def test_corrupt_data_is_damage_after_what_was_decoded(inflater: ModuleType) -> None:
    data = gzip.compress(RAW)
    errors = decompression_errors()
    for pos in range(len(data) // 4, len(data), len(data) // 25):
        bad = bytearray(data)
        bad[pos] ^= 0x55
        got, err = _drain(GzipStream(io.BytesIO(bytes(bad)), inflater), [1 << 20])
        if err is None:  # a flip the inflater cannot see would still fail the CRC
            pytest.fail(f"flipped byte {pos} went unnoticed")
        assert isinstance(err, errors), type(err)
        ref = _decoded_until_error(bytes(bad))
        assert ref.startswith(got) or got.startswith(ref)
        assert len(got) >= len(ref) - OUT_BYTES - 1024  # at most one call's output lost
