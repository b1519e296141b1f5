"""The fused pcap reader+decoder (``read_segments``) against ``read_frames`` + ``Decoder``.

The fused path re-implements the decoder's Ethernet fast path inside the pcap record loop
(capture/pcap.py), so the property that matters is equivalence: for every capture, the same
segments (every field), the same counters and the same warnings as decoding each frame of
``read_frames`` separately. Checked on frames built here for each branch of the fast path and
its edges, on mutated frames (Hypothesis), on damaged files, and on the shared captures.
"""

from __future__ import annotations

import csv
import io
import struct
from pathlib import Path
from typing import Any

import pytest
from captures_util import (
    NOP,
    ethernet,
    ip_packet,
    ipv4_header,
    ipv6_ext,
    opt_mss,
    opt_sack,
    opt_ts,
    pcap_bytes,
    tcp_frame,
    tcp_segment,
    write_pcapng,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from tcptrace_py.capture import read_frames, read_segments
from tcptrace_py.decode import Decoder
from tcptrace_py.diagnostics import CaptureError, Diagnostics
from tcptrace_py.segment import ACK, FIELDS, FIN, PSH, SYN, Segment

SHARED = Path(__file__).resolve().parents[2] / "shared"
T0 = 1_700_000_000_000_000_000
V4A, V4B = "192.0.2.1", "198.51.100.2"
V6A, V6B = "2001:db8::1", "2001:db8::2"
TS_BLOCK = NOP + NOP + opt_ts(7, 9)


def _fields(seg: Segment) -> tuple[Any, ...]:
    return tuple(getattr(seg, name) for name in FIELDS)


def _diag_view(diag: Diagnostics) -> tuple[Any, ...]:
    return (diag.frames, diag.tcp_segments, dict(diag.skipped), dict(diag.link_types),
            diag.warnings, diag.warnings_dropped, diag.first_ts_ns, diag.last_ts_ns,
            dict(diag.notes))


def _separate(source: object, strict: bool = False) -> tuple[list[tuple[Any, ...]],
                                                               tuple[Any, ...]]:
    diag = Diagnostics()
    dec = Decoder(diag)
    segs = [dec.decode(lt, data, no, ts, wl)
            for no, ts, lt, data, wl in read_frames(source, diag, strict=strict)]
    return [_fields(s) for s in segs if s is not None], _diag_view(diag)


def _fused(source: object, strict: bool = False) -> tuple[list[tuple[Any, ...]],
                                                            tuple[Any, ...]]:
    diag = Diagnostics()
    segs = list(read_segments(source, diag, Decoder(diag), strict=strict))
    return [_fields(s) for s in segs], _diag_view(diag)


def _assert_same(source: object) -> list[tuple[Any, ...]]:
    fused = _fused(source)
    assert fused == _separate(source)
    return fused[0]


def _variants() -> list[bytes]:
    """One frame per branch of the fast path, and the frames just outside it."""
    f: list[bytes] = []
    for ipv6 in (False, True):
        a, b = (V6A, V6B) if ipv6 else (V4A, V4B)
        f += [
            tcp_frame(a, b, 1234, 80, 1, 0, SYN, options=opt_mss(1460), ipv6=ipv6),
            tcp_frame(a, b, 1234, 80, 1, 2, ACK, ipv6=ipv6),  # no options, no payload
            tcp_frame(a, b, 1234, 80, 1, 2, ACK | PSH, payload=b"x" * 100, ipv6=ipv6),
            tcp_frame(a, b, 1234, 80, 1, 2, ACK, payload=b"y" * 3, padding=20, ipv6=ipv6),
            tcp_frame(a, b, 1234, 80, 1, 2, ACK | FIN, options=TS_BLOCK, payload=b"z" * 9,
                      ipv6=ipv6),  # NOP NOP timestamp
            tcp_frame(a, b, 1234, 80, 1, 2, ACK, options=TS_BLOCK, ipv6=ipv6, padding=6),
            tcp_frame(a, b, 1234, 80, 1, 2, ACK, options=NOP + NOP + opt_sack([(5, 9)]),
                      ipv6=ipv6),  # 32-byte header that is not a timestamp block
            tcp_frame(a, b, 1234, 80, 1, 2, ACK, options=TS_BLOCK + NOP + NOP
                      + opt_sack([(5, 9)]), ipv6=ipv6),
            tcp_frame(a, b, 1234, 80, 1, 2, ACK, vlans=(7,), ipv6=ipv6),
            # One 802.1Q tag is fused (the same unpacks 4 bytes further); two are not.
            tcp_frame(a, b, 1234, 80, 1, 2, ACK | PSH, payload=b"v" * 30, vlans=(7,),
                      ipv6=ipv6, padding=8),
            tcp_frame(a, b, 1234, 80, 1, 2, ACK, options=TS_BLOCK, payload=b"w" * 5,
                      vlans=(4094,), ipv6=ipv6),
            tcp_frame(a, b, 1234, 80, 1, 2, ACK, options=NOP + NOP + opt_sack([(5, 9)]),
                      vlans=(7,), ipv6=ipv6),
            tcp_frame(a, b, 1234, 80, 1, 2, ACK, payload=b"q" * 3, vlans=(7, 8), ipv6=ipv6),
            # VLAN 2048: its tag control word reads 0x0800, the IPv4 ethertype, if misplaced.
            tcp_frame(a, b, 1234, 80, 1, 2, ACK, payload=b"r" * 7, vlans=(2048,), ipv6=ipv6),
        ]
    seg = tcp_segment(1, 2, 3, 4, ACK, payload=b"p" * 10)
    f += [
        ethernet(ip_packet(V4A, V4B, 6, seg, total_len=0)),  # TSO: IPv4 total length 0
        ethernet(ip_packet(V4A, V4B, 6, seg, total_len=30)),  # shorter than IP + TCP
        ethernet(ip_packet(V4A, V4B, 6, seg, flags_frag=0x2000 | 10)),  # non-first fragment
        ethernet(ipv4_header(V4A, V4B, 6, len(seg), options=b"\x01" * 4) + seg),  # IP options
        ethernet(ip_packet(V6A, V6B, 6, seg, ipv6=True, ext=ipv6_ext(6), ext_first=0)),
        ethernet(ip_packet(V4A, V4B, 17, b"\x00" * 12)),  # UDP
        ethernet(b"\x00" * 40, 0x0806),  # ARP
        b"\x00" * 10,  # shorter than an Ethernet header
    ]
    v6 = bytearray(tcp_frame(V6A, V6B, 1, 2, 3, 4, ACK, payload=b"q" * 8, ipv6=True))
    v6[18:20] = b"\x00\x00"  # IPv6 payload length 0 (jumbogram / TSO)
    f.append(bytes(v6))
    v6[18:20] = struct.pack("!H", 12)  # payload length shorter than the TCP header
    f.append(bytes(v6))
    return f


@pytest.mark.parametrize("big_endian", [False, True])
@pytest.mark.parametrize("nanosecond", [False, True])
def test_every_fast_path_branch_and_edge(big_endian: bool, nanosecond: bool) -> None:
    frames = _variants()
    raw = pcap_bytes([(T0 + i * 1_000, d) for i, d in enumerate(frames)],
                     big_endian=big_endian, nanosecond=nanosecond)
    segs = _assert_same(raw)
    assert 20 <= len(segs) < len(frames)  # most decode, the non-TCP ones are skipped


@pytest.mark.parametrize("snaplen", [54, 60, 66, 74, 80, 90])
def test_frames_cut_by_the_snaplen(snaplen: int) -> None:
    """Captured length below the IP length: payload and options cut at every boundary."""
    frames = [d[:snaplen] for d in _variants()]
    _assert_same(pcap_bytes([(T0, d, len(d) + 100) for d in frames], snaplen=snaplen))


def test_other_link_types_and_kuznetsov_records() -> None:
    pkt = ip_packet(V4A, V4B, 6, tcp_segment(1, 2, 3, 4, ACK, options=TS_BLOCK))
    assert len(_assert_same(pcap_bytes([(T0, pkt)], linktype=101))) == 1  # raw IP
    assert len(_assert_same(pcap_bytes([(T0, d) for d in _variants()], modified=True))) > 20


def test_damage_backwards_time_and_strict() -> None:
    frames = _variants()
    spec = [(T0 - i * 1_000 if i % 3 else T0 + i, d) for i, d in enumerate(frames)]
    raw = pcap_bytes(spec)
    _assert_same(raw)  # timestamps going backwards: warning and counters
    _assert_same(raw[:-7])  # cut mid record
    bad = bytearray(raw)
    struct.pack_into("<I", bad, 24 + 16 + len(frames[0]) + 8, 1 << 30)  # absurd caplen
    _assert_same(bytes(bad))
    with pytest.raises(CaptureError) as fused_err:
        list(read_segments(raw[:-7], Diagnostics(), Decoder(Diagnostics()), strict=True))
    with pytest.raises(CaptureError) as frames_err:
        list(read_frames(raw[:-7], Diagnostics(), strict=True))
    assert str(fused_err.value) == str(frames_err.value)


def _linux_cooked(frame: bytes, version: int) -> bytes:
    """An Ethernet frame re-framed as Linux cooked v1 (SLL) or v2 (SLL2), as ``tcpdump -i
    any`` writes it: the same ethertype and everything after the Ethernet header."""
    if len(frame) < 14:
        return frame  # too short for either header: skipped like the Ethernet one
    proto, rest = frame[12:14], frame[14:]
    if version == 1:  # pkttype, ARPHRD_ETHER, address length, address, protocol
        return struct.pack("!HHH8s", 0, 1, 6, b"\x02" * 6 + b"\0\0") + proto + rest
    # protocol, reserved, ifindex, ARPHRD_ETHER, pkttype, address length, address
    return proto + struct.pack("!HIHBB8s", 0, 2, 1, 0, 6, b"\x02" * 6 + b"\0\0") + rest


@pytest.mark.parametrize(("linktype", "version"), [(113, 1), (276, 2)])
@pytest.mark.parametrize("snaplen", [0, 60, 70, 80, 96])
def test_linux_cooked_frames_take_the_same_fast_path(linktype: int, version: int,
                                                     snaplen: int) -> None:
    """SLL and SLL2 (``tcpdump -i any``) are fused like Ethernet, at their own offsets."""
    frames = [_linux_cooked(d, version) for d in _variants()]
    if snaplen:
        frames = [d[:snaplen] for d in frames]
    raw = pcap_bytes([(T0 + i, d, len(d) + 50) for i, d in enumerate(frames)],
                     linktype=linktype, snaplen=snaplen or 65535)
    segs = _assert_same(raw)
    assert len(segs) >= (20 if not snaplen else 1)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(_variants()) - 1), st.integers(0, 96),
                          st.integers(0, 255)), min_size=1, max_size=8),
       st.sampled_from([(113, 1), (276, 2)]))
def test_mutated_linux_cooked_headers(edits: list[tuple[int, int, int]],
                                      link: tuple[int, int]) -> None:
    frames = [_linux_cooked(d, link[1]) for d in _variants()]
    out = []
    for idx, pos, value in edits:
        frame = bytearray(frames[idx])
        if pos < len(frame):
            frame[pos] = value
        out.append((T0, bytes(frame)))
    _assert_same(pcap_bytes(out, linktype=link[0]))


def test_pcapng_goes_through_the_decoder(tmp_path: Path) -> None:
    p = write_pcapng(tmp_path / "a.pcapng", [(T0 + i, d) for i, d in enumerate(_variants())])
    assert len(_assert_same(p)) > 20


def test_counters_span_chunks(tmp_path: Path) -> None:
    """More than one 1 MiB chunk: per-chunk counter flushes add up to the same totals."""
    frame = tcp_frame(V4A, V4B, 1, 2, 3, 4, ACK, payload=b"d" * 1400, options=TS_BLOCK)
    p = tmp_path / "big.pcap"
    p.write_bytes(pcap_bytes([(T0 + i, frame) for i in range(1600)]))
    assert len(_assert_same(p)) == 1600


class _ReadOnly:
    """A stream with ``read`` only (no ``readinto``): the reader's other refill path."""

    def __init__(self, data: bytes) -> None:
        self._io = io.BytesIO(data)

    def read(self, n: int = -1) -> bytes:
        return self._io.read(n)


@pytest.mark.parametrize("chunk", [1, 7, 100, 1500, 4096])
def test_records_across_chunk_refills(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      chunk: int) -> None:
    """Chunks far smaller than a record: every record is refilled across several reads
    (the compiled reader reuses one buffer when the stream has ``readinto``), and a file
    cut inside a record reports the same left-over bytes and offset. Compared with the
    default 1 MiB chunk, for a path, a stream with ``readinto`` and one without."""
    frames = [tcp_frame(V4A, V4B, 1, 2, 3 + i, 4, ACK, payload=b"d" * (i * 97 % 1400),
                        options=TS_BLOCK) for i in range(40)]
    data = pcap_bytes([(T0 + i, f) for i, f in enumerate(frames + _variants())])
    cut = data[:len(data) - 30]
    expected = [_fused(d) for d in (data, cut)]
    monkeypatch.setattr("tcptrace_py.capture.common.CHUNK_BYTES", chunk)
    monkeypatch.setattr("tcptrace_py.capture.pcap.CHUNK_BYTES", chunk)
    for d, want in zip((data, cut), expected, strict=True):
        path = tmp_path / "c.pcap"
        path.write_bytes(d)
        for kind in ("path", "readinto", "read only"):
            for read in (_fused, _separate):
                source: object = (path if kind == "path" else io.BytesIO(d)
                                  if kind == "readinto" else _ReadOnly(d))
                assert _unnamed(read(source)) == _unnamed(want)
    assert [w.message for w in expected[1][1][4]] == [
        "file ends in the middle of a record (68 bytes left over; 77 frames read)"]


def _unnamed(result: tuple[Any, Any]) -> tuple[Any, Any]:
    """A reading's segments and diagnostics without the source's name in its warnings."""
    segs, view = result
    warnings = [(w.message, w.offset, w.frame, w.code) for w in view[4]]
    return segs, (*view[:4], warnings, *view[5:])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(_variants()) - 1), st.integers(0, 90),
                          st.integers(0, 255)), min_size=1, max_size=12))
def test_mutated_headers(edits: list[tuple[int, int, int]]) -> None:
    """Any byte of the first 91 of a frame overwritten: still the same as the decoder."""
    frames = _variants()
    out = []
    for idx, pos, value in edits:
        frame = bytearray(frames[idx])
        if pos < len(frame):
            frame[pos] = value
        out.append((T0, bytes(frame)))
    _assert_same(pcap_bytes(out))


def _shared_pcaps() -> list[Path]:
    if not SHARED.is_dir():
        return []
    files = sorted((SHARED / "scenarios").glob("*.pcap"))
    manifest = SHARED / "captures" / "MANIFEST.tsv"
    if manifest.is_file():
        with manifest.open() as fh:
            files += [SHARED / "captures" / row["file"]
                      for row in csv.DictReader(fh, delimiter="\t")]
    return [f for f in files if f.is_file() and f.stat().st_size < 4_000_000]


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared not present")
def test_shared_captures() -> None:
    files = _shared_pcaps()
    assert files
    for path in files:
        try:
            fused = _fused(path)
        except CaptureError as exc:
            with pytest.raises(CaptureError, match=str(exc).split(":")[0]):
                _separate(path)
            continue
        assert fused == _separate(path), path


@pytest.mark.parametrize(("linktype", "frame_of"), [
    (1, lambda d: d),  # untagged and with one 802.1Q tag (the frames below)
    (113, lambda d: _linux_cooked(d, 1)),
    (276, lambda d: _linux_cooked(d, 2)),
])
def test_common_frames_never_reach_the_decoder(linktype: int, frame_of: Any,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Equivalence alone would pass if the fused path handed everything to the decoder: the
    frames it is meant for (no options or NOP NOP timestamp, IPv4 or IPv6, untagged or with
    one 802.1Q tag) must never reach ``Decoder.decode``."""
    calls: list[int] = []
    real = Decoder.decode

    def counting(self: Decoder, *args: Any) -> Segment | None:
        calls.append(1)
        return real(self, *args)

    monkeypatch.setattr(Decoder, "decode", counting)
    frames = []
    for ipv6 in (False, True):
        a, b = (V6A, V6B) if ipv6 else (V4A, V4B)
        for vlans in ((), (7,)) if linktype == 1 else ((),):
            frames += [
                tcp_frame(a, b, 1, 2, 3, 4, ACK, vlans=vlans, ipv6=ipv6),
                tcp_frame(a, b, 1, 2, 3, 4, ACK | PSH, payload=b"p" * 40, padding=6,
                          vlans=vlans, ipv6=ipv6),
                tcp_frame(a, b, 1, 2, 3, 4, ACK, options=TS_BLOCK, payload=b"t" * 9,
                          vlans=vlans, ipv6=ipv6),
            ]
    raw = pcap_bytes([(T0 + i, frame_of(d)) for i, d in enumerate(frames)], linktype=linktype)
    assert len(_fused(raw)[0]) == len(frames) and calls == []


def _decode_both(linktype: int, frame: bytes) -> tuple[Any, Any]:
    """``Decoder.decode`` (fast path first) and the link handler it would otherwise use."""
    fast_diag, slow_diag = Diagnostics(), Diagnostics()
    fast = Decoder(fast_diag).decode(linktype, frame, 1, T0, len(frame))
    slow = Decoder(slow_diag)._link[linktype](frame, 1, T0)
    return ((None if fast is None else _fields(fast), _diag_view(fast_diag)),
            (None if slow is None else _fields(slow), _diag_view(slow_diag)))


@pytest.mark.parametrize(("linktype", "version"), [(1, 0), (113, 1), (276, 2)])
@pytest.mark.parametrize("snaplen", [0, 56, 62, 70, 78, 90])
def test_decoder_fast_path_matches_its_general_path(linktype: int, version: int,
                                                    snaplen: int) -> None:
    """Decoder.decode's own fast path (used for pcapng and every unfused frame) against the
    link handler it short-cuts, for Ethernet (untagged, one and two VLAN tags), SLL, SLL2."""
    for frame in _variants():
        data = frame if version == 0 else _linux_cooked(frame, version)
        if snaplen:
            data = data[:snaplen]
        fast, slow = _decode_both(linktype, data)
        assert fast == slow, (linktype, data.hex())


@settings(max_examples=60, deadline=None)
@given(st.integers(0, len(_variants()) - 1), st.sampled_from([(1, 0), (113, 1), (276, 2)]),
       st.lists(st.tuples(st.integers(0, 96), st.integers(0, 255)), min_size=1, max_size=6))
def test_decoder_fast_path_on_mutated_frames(idx: int, link: tuple[int, int],
                                             edits: list[tuple[int, int]]) -> None:
    frame = _variants()[idx]
    data = bytearray(frame if link[1] == 0 else _linux_cooked(frame, link[1]))
    for pos, value in edits:
        if pos < len(data):
            data[pos] = value
    fast, slow = _decode_both(link[0], bytes(data))
    assert fast == slow
