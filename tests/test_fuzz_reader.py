"""Fuzz tests (Hypothesis) for the capture readers and the decoder: hostile and broken input.

Properties, for every input:
1. Nothing escapes but ``CaptureError``, and that only when the start of the file is
   unreadable (no header, or a first pcapng section that cannot be parsed).
2. Every frame read is accounted for: a TCP segment or a counted skip reason
   (``diag.frames == diag.tcp_segments + sum(diag.skipped.values())``).
3. Damage after the header stops reading with a counted warning, and every frame before the
   damage is kept, byte for byte.

Example counts are small and ``deadline=None`` (CI machines vary): the whole suite stays at a
few seconds. The long-running coverage-guided fuzzer is tests/fuzz/fuzz_reader.py.
"""

from __future__ import annotations

import importlib
import os
import struct
import sys
from pathlib import Path

import pytest
from captures_util import (
    EOL,
    NOP,
    ethernet,
    ip_packet,
    ipv4_header,
    ipv6_ah,
    ipv6_ext,
    ipv6_frag,
    ipv6_header,
    ng_block,
    ng_epb,
    ng_idb,
    ng_shb,
    opt_mss,
    opt_wscale,
    pcap_bytes,
    pcapng_bytes,
    tcp_header,
    tcp_segment,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tcptrace_py.capture import MAX_RECORD_BYTES, read_frames
from tcptrace_py.decode import Decoder
from tcptrace_py.diagnostics import CaptureError, Diagnostics
from tcptrace_py.segment import Segment

# tests/fuzz/ is a directory of scripts (run directly by atheris), not a package.
sys.path.insert(0, str(Path(__file__).resolve().parent / "fuzz"))
fuzz_reader = importlib.import_module("fuzz_reader")
seeds = importlib.import_module("seeds")

FUZZ_SCALE = int(os.environ.get("FUZZ_SCALE", "1"))
"""Multiply example counts for a longer local run (``FUZZ_SCALE=50 pytest ...``)."""
FUZZ = settings(max_examples=100 * FUZZ_SCALE, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
SYN, ACK = 0x02, 0x10

CONVERSATION = seeds.conversation()
SMALL_PCAP = pcap_bytes(CONVERSATION)
SMALL_PCAPNG = pcapng_bytes(CONVERSATION)
PCAP_HEADER = SMALL_PCAP[:24]
PCAPNG_HEADER = ng_shb() + ng_idb(1)


def pcap_boundaries(frames: list[bytes]) -> list[int]:
    """Byte offset where each record of :func:`pcap_bytes` (usec, 16-byte headers) ends."""
    ends, pos = [], 24
    for f in frames:
        pos += 16 + len(f)
        ends.append(pos)
    return ends


def pcapng_boundaries(frames: list[bytes]) -> tuple[int, list[int]]:
    """(end of SHB+IDB, end offset of each EPB) for :func:`pcapng_bytes` of ``frames``."""
    pos = len(PCAPNG_HEADER)
    start, ends = pos, []
    for f in frames:
        pos += 32 + len(f) + (-len(f) % 4)
        ends.append(pos)
    return start, ends


def consume(data: bytes, *, strict: bool = False) -> tuple[list[tuple[int, int, int, bytes, int]],
                                                           list[Segment], Diagnostics]:
    """Read and decode every frame of ``data``; asserts the accounting property (2)."""
    diag = Diagnostics()
    decode = Decoder(diag).decode
    frames, segments = [], []
    for frame in read_frames(data, diag, strict=strict, name="fuzz"):
        frames.append(frame)
        seg = decode(frame[2], frame[3], frame[0], frame[1], frame[4])
        if seg is not None:
            assert 0 <= seg.captured_payload <= seg.payload_len
            segments.append(seg)
    assert diag.frames == len(frames)
    assert diag.frames == diag.tcp_segments + sum(diag.skipped.values()), dict(diag.skipped)
    assert [f[0] for f in frames] == list(range(1, len(frames) + 1))
    return frames, segments, diag


def consume_or_error(data: bytes) -> tuple[list[tuple[int, int, int, bytes, int]],
                                           Diagnostics] | None:
    try:
        frames, _, diag = consume(data)
    except CaptureError as exc:
        assert str(exc).startswith("fuzz")  # one line naming the source
        return None
    return frames, diag


def codes(diag: Diagnostics) -> set[str]:
    return {w.code for w in diag.warnings}


# --------------------------------------------------------------------------- whole files
@FUZZ
@given(st.binary(max_size=2048))
def test_random_bytes_after_pcap_header(tail: bytes) -> None:
    result = consume_or_error(PCAP_HEADER + tail)
    assert result is not None  # a valid global header is never a CaptureError


@FUZZ
@given(st.binary(max_size=2048))
def test_random_bytes_after_pcapng_header(tail: bytes) -> None:
    result = consume_or_error(PCAPNG_HEADER + tail)
    assert result is not None  # the first section is whole: later damage is a warning


@FUZZ
@given(st.binary(max_size=512))
def test_random_bytes_are_rejected_or_read(data: bytes) -> None:
    consume_or_error(data)


@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
def test_truncation_at_every_offset_keeps_complete_frames(fmt: str) -> None:
    data = SMALL_PCAP if fmt == "pcap" else SMALL_PCAPNG
    if fmt == "pcap":
        header_end, ends = 24, pcap_boundaries(CONVERSATION)
    else:
        header_end, ends = pcapng_boundaries(CONVERSATION)
    _, full_segments, _ = consume(data)
    assert len(full_segments) == len(CONVERSATION)
    for cut in range(len(data)):
        result = consume_or_error(data[:cut])
        if cut < header_end and (fmt == "pcap" or cut < len(ng_shb())):
            # Inside the header (pcap) or the first section header block (pcapng).
            assert result is None, cut
            continue
        assert result is not None, cut
        frames, diag = result
        complete = sum(1 for e in ends if e <= cut)
        assert len(frames) == complete, cut
        assert [f[3] for f in frames] == CONVERSATION[:complete]
        block_ends = {header_end, *ends} | ({len(ng_shb())} if fmt == "pcapng" else set())
        at_boundary = cut in block_ends
        assert (codes(diag) == {"truncated_record"}) != at_boundary, (cut, diag.warnings)


@FUZZ
@given(st.data())
def test_bit_flips_never_crash(data: st.DataObject) -> None:
    base = bytearray(data.draw(st.sampled_from([SMALL_PCAP, SMALL_PCAPNG])))
    for _ in range(data.draw(st.integers(1, 8))):
        pos = data.draw(st.integers(0, len(base) - 1))
        base[pos] ^= 1 << data.draw(st.integers(0, 7))
    consume_or_error(bytes(base))


@FUZZ
@given(st.data())
def test_bit_flips_in_packet_bytes_keep_every_frame(data: st.DataObject) -> None:
    """Damage inside packet data (not record headers) is a decode matter: every frame is
    still read, in order, with its flipped bytes."""
    ends = pcap_boundaries(CONVERSATION)
    k = data.draw(st.integers(0, len(CONVERSATION) - 1))
    start = ends[k] - len(CONVERSATION[k])
    pos = data.draw(st.integers(start, ends[k] - 1))
    buf = bytearray(SMALL_PCAP)
    buf[pos] ^= 1 << data.draw(st.integers(0, 7))
    frames, _, diag = consume(bytes(buf))
    assert len(frames) == len(CONVERSATION)
    assert frames[k][3] != CONVERSATION[k]
    assert not diag.warnings


@FUZZ
@given(k=st.integers(0, len(CONVERSATION) - 1),
       caplen=st.sampled_from([MAX_RECORD_BYTES + 1, 0xFFFFFFFF, 1 << 31, 65536]))
def test_pcap_huge_record_length_keeps_frames_before(k: int, caplen: int) -> None:
    buf = bytearray(SMALL_PCAP)
    rec = ([24] + pcap_boundaries(CONVERSATION))[k]
    struct.pack_into("<I", buf, rec + 8, caplen)
    frames, _, diag = consume(bytes(buf))
    assert [f[3] for f in frames] == CONVERSATION[:k]
    assert codes(diag) == {"bad_record_length"}
    with pytest.raises(CaptureError):
        consume(bytes(buf), strict=True)


@pytest.mark.parametrize("k", range(len(CONVERSATION)))
def test_pcap_zero_record_length_keeps_frames_before(k: int) -> None:
    buf = bytearray(SMALL_PCAP)
    rec = ([24] + pcap_boundaries(CONVERSATION))[k]
    struct.pack_into("<I", buf, rec + 8, 0)
    frames, _, diag = consume(bytes(buf))
    # The zero-length record is a frame (skipped as truncated); the packet bytes after it
    # are then read as record headers: garbage, but nothing before record k is lost.
    assert [f[3] for f in frames[:k + 1]] == CONVERSATION[:k] + [b""]
    assert diag.skipped["truncated_header"] >= 1


@FUZZ
@given(k=st.integers(0, len(CONVERSATION) - 1),
       blen=st.sampled_from([0, 4, 13, 0xFFFFFFFC, 17 * 1024 * 1024]),
       field=st.sampled_from(["leading", "trailing", "caplen"]))
def test_pcapng_bad_lengths_keep_frames_before(k: int, blen: int, field: str) -> None:
    start, ends = pcapng_boundaries(CONVERSATION)
    block = ([start] + ends)[k]
    buf = bytearray(SMALL_PCAPNG)
    if field == "leading":
        struct.pack_into("<I", buf, block + 4, blen)
    elif field == "trailing":
        struct.pack_into("<I", buf, ends[k] - 4, blen)
    else:
        struct.pack_into("<I", buf, block + 20, blen)
    frames, _, diag = consume(bytes(buf))
    if field == "caplen" and blen <= len(CONVERSATION[k]):
        # A shorter captured length is legal (the rest of the block is padding): every
        # frame is read, frame k cut to that length.
        assert [f[3] for f in frames] == (CONVERSATION[:k] + [CONVERSATION[k][:blen]]
                                          + CONVERSATION[k + 1:])
        assert not diag.warnings
        return
    assert [f[3] for f in frames] == CONVERSATION[:k]
    assert len(diag.warnings) == 1
    assert codes(diag) <= {"bad_block_length", "bad_record_length"}


def test_pcapng_damage_in_later_section_keeps_first() -> None:
    second = ng_shb() + ng_idb(1) + ng_block(6, b"\x00" * 8)[:8] + b"\x00" * 4
    frames, _, diag = consume(SMALL_PCAPNG + second)
    assert [f[3] for f in frames] == CONVERSATION
    assert diag.warnings


def test_pcapng_packet_before_interface_is_counted() -> None:
    data = ng_shb() + ng_epb(0, 0, CONVERSATION[0]) + ng_idb(1) + ng_epb(0, 0, CONVERSATION[1])
    frames, _, diag = consume(data)
    assert [f[3] for f in frames] == [CONVERSATION[1]]
    assert diag.notes["pcapng_bad_interface"] == 1


# --------------------------------------------------------------------------- decoder
def decode_one(linktype: int, frame: bytes) -> tuple[Segment | None, Diagnostics]:
    diag = Diagnostics()
    seg = Decoder(diag).decode(linktype, frame, 1, 0, len(frame))
    if seg is None:
        assert sum(diag.skipped.values()) == 1 and diag.tcp_segments == 0
    else:
        assert diag.tcp_segments == 1 and not diag.skipped
        assert 0 <= seg.captured_payload <= seg.payload_len
    return seg, diag


@FUZZ
@given(st.sampled_from(fuzz_reader.LINKTYPES + (0xFFFF, 2**31)), st.binary(max_size=300))
def test_random_frames_every_linktype(linktype: int, frame: bytes) -> None:
    decode_one(linktype, frame)


@FUZZ
@given(st.lists(st.sampled_from([0x8100, 0x88A8, 0x9100]), max_size=200),
       st.integers(0, 0x0FFF), st.booleans())
def test_deep_vlan_stacks(tpids: list[int], vid: int, cut: bool) -> None:
    pkt = ip_packet("10.0.0.1", "10.0.0.2", 6, tcp_segment(1, 2, 3, 4, SYN))
    # On the wire: TPID1 (in the ethertype slot), TCI1, TPID2, TCI2, ..., 0x0800, IP.
    tags = b"".join(struct.pack("!HH", vid, t) for t in tpids[1:] + [0x0800]) if tpids \
        else b""
    frame = ethernet(tags + pkt, tpids[0] if tpids else 0x0800)
    if cut:
        frame = frame[:14 + 4 * len(tpids) - 1]
    seg, diag = decode_one(1, frame)
    if cut:
        assert seg is None and diag.skipped["truncated_header"] == 1
    else:
        assert seg is not None and (seg.sport, seg.dport) == (1, 2)


@FUZZ
@given(st.integers(0, 300), st.booleans(), st.sampled_from([0x45, 0x60, 0x00, 0xFF]))
def test_deep_mpls_stacks(depth: int, bottom: bool, first_byte: int) -> None:
    pkt = ip_packet("10.0.0.1", "10.0.0.2", 6, tcp_segment(1, 2, 3, 4, SYN))
    labels = [struct.pack("!I", (i << 12) | 64) for i in range(depth)]
    labels.append(struct.pack("!I", (depth << 12) | (0x100 if bottom else 0) | 64))
    inner = pkt if first_byte == 0x45 else bytes([first_byte]) + pkt[1:]
    seg, diag = decode_one(1, ethernet(b"".join(labels) + inner, 0x8847))
    if bottom and first_byte == 0x45:
        assert seg is not None and (seg.sport, seg.dport) == (1, 2)
    else:
        assert seg is None


_EXT = st.sampled_from(["hop", "dest", "routing", "frag0", "ah"])


@FUZZ
@given(st.lists(_EXT, max_size=40), st.integers(0, 3))
def test_ipv6_extension_chains(chain: list[str], pad_words: int) -> None:
    """Long chains of extension headers in front of TCP decode to the TCP segment."""
    numbers = {"hop": 0, "dest": 60, "routing": 43, "frag0": 44, "ah": 51}
    ext = b""
    nexts = [numbers[c] for c in chain[1:]] + [6]
    for name, nh in zip(chain, nexts, strict=False):
        if name == "frag0":
            ext += ipv6_frag(nh)
        elif name == "ah":
            ext += ipv6_ah(nh)
        else:
            ext += ipv6_ext(nh, b"\x00" * (6 + 8 * pad_words))
    seg_bytes = tcp_segment(1, 2, 3, 4, SYN, options=opt_mss(1400))
    pkt = ip_packet("2001:db8::1", "2001:db8::2", 6, seg_bytes, ipv6=True, ext=ext,
                    ext_first=numbers[chain[0]] if chain else None)
    seg, _ = decode_one(229, pkt)
    assert seg is not None and seg.mss == 1400


@FUZZ
@given(st.sampled_from([0, 43, 60, 51]), st.integers(0, 255), st.integers(0, 2000))
def test_ipv6_looping_next_header(nh: int, hdr_len: int, body_len: int) -> None:
    """A header naming itself as next until the packet ends: skipped, never a hang."""
    body = bytes([nh, hdr_len]) * (body_len // 2 + 1)
    pkt = ipv6_header("2001:db8::1", "2001:db8::2", nh, len(body)) + body
    seg, diag = decode_one(229, pkt)
    assert seg is None and diag.skipped["truncated_header"] == 1


@FUZZ
@given(st.lists(st.one_of(
    st.just(NOP), st.just(opt_mss(1200)), st.just(opt_wscale(3)),
    st.tuples(st.integers(2, 254), st.integers(0, 255), st.binary(max_size=12)).map(
        lambda t: bytes([t[0], t[1]]) + t[2])), max_size=10))
def test_tcp_options_any_lengths(opts: list[bytes]) -> None:
    """Option lengths of 0, 1 or past the header: the segment decodes, options before the
    damage are kept, the damage is counted."""
    raw = b"".join(opts)[:40]
    frame = ethernet(ip_packet("10.0.0.1", "10.0.0.2", 6, tcp_header(1, 2, 3, 4, SYN,
                                                                     options=raw)))
    seg, diag = decode_one(1, frame)
    assert seg is not None
    # Walk the options as the RFC says, to know where damage (if any) starts.
    i, bad, mss = 0, False, -1
    padded = raw + EOL * (-len(raw) % 4)
    while i < len(padded) and padded[i] != 0:
        if padded[i] == 1:
            i += 1
            continue
        if i + 1 >= len(padded) or padded[i + 1] < 2 or i + padded[i + 1] > len(padded):
            bad = True
            break
        if padded[i] == 2 and padded[i + 1] == 4 and mss < 0:
            mss = struct.unpack_from("!H", padded, i + 2)[0]
        i += padded[i + 1]
    assert diag.notes["malformed_tcp_option"] == int(bad)
    assert seg.mss == mss


@pytest.mark.parametrize("olen", [0, 1, 41, 255])
def test_tcp_option_length_examples(olen: int) -> None:
    raw = opt_mss(1460) + bytes([8, olen]) + b"\x00" * 6
    seg, diag = decode_one(1, ethernet(ip_packet("10.0.0.1", "10.0.0.2", 6,
                                                 tcp_header(1, 2, 3, 4, SYN, options=raw))))
    assert seg is not None and seg.mss == 1460 and seg.tsval == -1
    assert diag.notes["malformed_tcp_option"] == 1


@FUZZ
@given(ihl_words=st.integers(0, 15), total_len=st.integers(0, 0xFFFF),
       doff_words=st.integers(0, 15), payload=st.binary(max_size=64),
       padding=st.integers(0, 20), cut=st.integers(0, 120))
def test_ip_and_tcp_lengths_inconsistent_with_frame(ihl_words: int, total_len: int,
                                                    doff_words: int, payload: bytes,
                                                    padding: int, cut: int) -> None:
    tcp = tcp_header(1, 2, 3, 4, ACK, data_offset_words=doff_words) + payload
    ip = bytearray(ipv4_header("10.0.0.1", "10.0.0.2", 6, len(tcp), total_len=total_len))
    ip[0] = 0x40 | ihl_words
    frame = ethernet(bytes(ip) + tcp + b"\x00" * padding)
    seg, _ = decode_one(1, frame)
    decode_one(1, frame[:cut])
    if seg is not None:
        assert seg.payload_len >= 0


@FUZZ
@given(st.integers(0, 0xFFFF), st.binary(max_size=80), st.integers(0, 100))
def test_ipv6_payload_length_inconsistent_with_frame(plen: int, tail: bytes, cut: int) -> None:
    pkt = ipv6_header("2001:db8::1", "2001:db8::2", 6, plen) + tcp_segment(1, 2, 3, 4, SYN) \
        + tail
    decode_one(229, pkt)
    decode_one(229, pkt[:cut])


# --------------------------------------------------------------------------- atheris target
@pytest.mark.parametrize("name", sorted(seeds.seed_inputs()))
def test_fuzz_target_seeds(name: str) -> None:
    """The atheris target's ``TestOneInput`` runs (and checks its invariants) on each seed,
    whole and cut in half, without atheris installed."""
    data = seeds.seed_inputs()[name]
    fuzz_reader.TestOneInput(data)
    fuzz_reader.TestOneInput(data[:len(data) // 2])


def test_fuzz_target_accepts_garbage() -> None:
    for data in (b"", b"\x00", b"\xd4\xc3\xb2\xa1", PCAP_HEADER, PCAPNG_HEADER,
                 b"\x1f\x8b" + b"\x00" * 30):
        fuzz_reader.TestOneInput(data)


# --------------------------------------------------------------------------- compressed
def test_corrupt_gzip_deflate_data_keeps_frames_before() -> None:
    """A damaged deflate stream raises ``zlib.error`` (not an OSError) from gzip: found by
    the atheris target; it must be damage like any other, with the frames before kept."""
    import gzip

    raw = pcap_bytes(CONVERSATION * 60)
    gz = gzip.compress(raw, mtime=0)
    kept_with_warning = 0
    for pos in range(len(gz) // 2, len(gz) - 8, max(1, len(gz) // 120)):
        buf = bytearray(gz)
        buf[pos] ^= 0xFF
        result = consume_or_error(bytes(buf))
        assert result is not None  # the gzip header and first frames are intact
        frames, diag = result
        if codes(diag) & {"read_error"}:
            assert frames, "frames decoded before the damage are kept"
            kept_with_warning += 1
    assert kept_with_warning
