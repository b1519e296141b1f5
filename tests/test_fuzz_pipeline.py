"""Fuzz tests (Hypothesis) for the whole pipeline: engine, every writer, the DataFrames.

Each input is a capture built with structure (so it reaches past the header checks) and
damaged where the audit of issue 18 found trouble: pcap record lengths, pcapng block
lengths, ``if_tsresol``/``if_tsoffset`` and 64-bit timestamps, IPv6 extension-header chains,
TCP data offsets and options, sequence numbers wrapping at 2**32. Every input goes through
``tests/fuzz/fuzz_pipeline.check_pipeline``: the engine, the flows/anomalies/events/packets
DataFrames, json/jsonl/csv/parquet/zeek writers read back, with the frame and segment
accounting (frames read = decoded + every skip counter) and the time invariants (a time is
a real date or NaT, never a wrapped 1969) asserted. With the compiled engine built, each
input also runs on the reference reader and decoder and must give the same results; the
suite's ``TCPTRACE_PY_PURE=1`` run covers the reference end to end.

Budget: a few seconds per engine (``FUZZ_SCALE=10`` multiplies the example counts).
"""

from __future__ import annotations

import importlib
import os
import struct
import sys
from pathlib import Path

import pytest
from captures_util import (
    ethernet,
    ip_packet,
    ipv6_ah,
    ipv6_ext,
    ipv6_frag,
    ng_block,
    ng_idb,
    ng_shb,
    opt_mss,
    opt_sack,
    opt_sack_perm,
    opt_ts,
    opt_wscale,
    pcap_bytes,
    tcp_frame,
    tcp_header,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tcptrace_py import implementation
from tcptrace_py.engine import Engine
from tcptrace_py.options import Options
from tcptrace_py.segment import ACK, FIN, PSH, SYN

sys.path.insert(0, str(Path(__file__).resolve().parent / "fuzz"))
fuzz_pipeline = importlib.import_module("fuzz_pipeline")
seeds = importlib.import_module("seeds")

FUZZ_SCALE = int(os.environ.get("FUZZ_SCALE", "1"))
"""Multiply example counts for a longer local run (``FUZZ_SCALE=10 pytest ...``)."""


def fuzz(examples: int) -> settings:
    return settings(max_examples=examples * FUZZ_SCALE, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz_pipeline")


def run_everywhere(data: bytes, workdir: Path, outputs: bool | None = None) -> str:
    """The pipeline on the session's engine (outputs on a share of the inputs:
    ``fuzz_pipeline.outputs_for``) and, when it is compiled, the engine on the reference
    front end too: the same results (or both CaptureError)."""
    if outputs is None:
        outputs = fuzz_pipeline.outputs_for(data)
    digest = fuzz_pipeline.check_pipeline(data, workdir, outputs)
    if implementation.compiled is not None:
        with fuzz_pipeline.front_end("reference"):
            assert fuzz_pipeline.check_pipeline(data, workdir, outputs=False) == digest
    return str(digest)


CLIENT, SERVER = "10.0.0.1", "10.0.0.2"


def conversation(isn_c: int = 1000, isn_s: int = 9000, sport: int = 40000,
                 data_segments: int = 3, size: int = 100, ipv6: bool = False) -> list[bytes]:
    """Handshake with options, ``data_segments`` client segments each ACKed, FIN close."""
    c, s = ("2001:db8::1", "2001:db8::2") if ipv6 else (CLIENT, SERVER)
    m = 2**32
    syn_opts = opt_mss(1460) + opt_sack_perm() + opt_ts(1, 0) + opt_wscale(7)
    out = [tcp_frame(c, s, sport, 80, isn_c, 0, SYN, options=syn_opts, ipv6=ipv6),
           tcp_frame(s, c, 80, sport, isn_s, (isn_c + 1) % m, SYN | ACK, options=syn_opts,
                     ipv6=ipv6),
           tcp_frame(c, s, sport, 80, (isn_c + 1) % m, (isn_s + 1) % m, ACK, ipv6=ipv6)]
    seq = isn_c + 1
    for _ in range(data_segments):
        out.append(tcp_frame(c, s, sport, 80, seq % m, (isn_s + 1) % m, PSH | ACK,
                             payload=b"d" * size, ipv6=ipv6))
        seq += size
        out.append(tcp_frame(s, c, 80, sport, (isn_s + 1) % m, seq % m, ACK, ipv6=ipv6))
    out += [tcp_frame(c, s, sport, 80, seq % m, (isn_s + 1) % m, FIN | ACK, ipv6=ipv6),
            tcp_frame(s, c, 80, sport, (isn_s + 1) % m, (seq + 1) % m, FIN | ACK, ipv6=ipv6),
            tcp_frame(c, s, sport, 80, (seq + 1) % m, (isn_s + 2) % m, ACK, ipv6=ipv6)]
    return out


T0_NS = 1_700_000_000 * 10**9


# --------------------------------------------------------------------------- seeds
@pytest.mark.parametrize("name", sorted(seeds.seed_inputs()))
def test_pipeline_target_on_seeds(name: str, workdir: Path) -> None:
    """The atheris target's checks on each seed of the reader target, whole and cut."""
    data = seeds.seed_inputs()[name]
    run_everywhere(data, workdir, outputs=True)
    run_everywhere(data[:len(data) // 2], workdir)


def test_pipeline_target_entry_point() -> None:
    """``TestOneInput`` (what atheris calls) runs the checks with its own directory."""
    fuzz_pipeline.TestOneInput(pcap_bytes(conversation()))
    fuzz_pipeline.TestOneInput(b"\x00" * 40)


# --------------------------------------------------------------------------- pcap records
_RECORD_DAMAGE = st.sampled_from(["none", "none", "none", "zero", "short", "long",
                                  "above_snaplen", "huge", "wire_smaller", "frac_overflow"])


@fuzz(20)
@given(st.lists(st.tuples(_RECORD_DAMAGE, st.integers(0, 8)), min_size=1, max_size=12),
       st.booleans(), st.sampled_from([65535, 96, 0]), st.integers(0, 64))
def test_pcap_record_lengths(workdir: Path, damage: list[tuple[str, int]],
                             nanosecond: bool, snaplen: int, cut: int) -> None:
    """Record headers whose captured length is 0, shorter or longer than the bytes that
    follow, above the snaplen or the 256 KiB limit, smaller than the wire length, or whose
    fraction is 1 s or more; the file possibly cut at the end."""
    frames = conversation(data_segments=4)
    o = "<"
    out = [struct.pack(o + "IHHiIII", 0xA1B23C4D if nanosecond else 0xA1B2C3D4, 2, 4, 0, 0,
                       snaplen, 1)]
    for i, (kind, k) in enumerate(damage):
        data = frames[i % len(frames)]
        caplen = wire = len(data)
        frac = (i * 1000) % (10**9 if nanosecond else 10**6)
        if kind == "zero":
            caplen = 0
        elif kind == "short":
            caplen = max(0, caplen - 1 - k)
        elif kind == "long":
            caplen += 1 + k
        elif kind == "above_snaplen":
            caplen = (snaplen or 65535) + 1 + k
        elif kind == "huge":
            caplen = 0xFFFFFFFF - k
        elif kind == "wire_smaller":
            wire = max(0, caplen - 1 - k)
        elif kind == "frac_overflow":
            frac = (10**9 if nanosecond else 10**6) + k
        out.append(struct.pack(o + "IIII", 1_700_000_000 + i, frac, caplen, wire) + data)
    blob = b"".join(out)
    run_everywhere(blob[:len(blob) - cut] if cut else blob, workdir)


# --------------------------------------------------------------------------- pcapng blocks
_TSRESOL = st.one_of(st.sampled_from([None, 0, 3, 6, 9, 12, 19, 0x80 | 20, 0x80 | 63,
                                      0x80 | 127]), st.integers(0, 255))
_TSOFFSET = st.one_of(st.sampled_from([None, 0, -1, 10**10, -(10**10), 2**63 - 1, -(2**63),
                                       -1_700_000_000]),
                      st.integers(-(2**63), 2**63 - 1))
_UNITS = st.one_of(st.sampled_from([0, 1, 2**32 - 1, 2**32, 2**63 - 1, 2**63, 2**64 - 1,
                                    1_700_000_000 * 10**6, 1_700_000_000 * 10**9]),
                   st.integers(0, 2**64 - 1))
_BLOCK = st.sampled_from(["epb", "epb", "epb", "spb", "pb", "idb", "unknown", "shb",
                          "bad_len", "bad_trailer", "len_not_4", "bad_iface", "big_caplen"])


def _epb(iface: int, units: int, data: bytes, caplen: int | None = None) -> bytes:
    body = struct.pack("<IIIII", iface, units >> 32, units & 0xFFFFFFFF,
                       len(data) if caplen is None else caplen, len(data)) + data
    return ng_block(6, body)


def _raw_block(btype: int, body: bytes, total: int, trailer: int) -> bytes:
    body += b"\x00" * (-len(body) % 4)
    return struct.pack("<II", btype, total) + body + struct.pack("<I", trailer)


@fuzz(20)
@given(st.lists(st.tuples(_TSRESOL, _TSOFFSET), min_size=1, max_size=3),
       st.lists(st.tuples(_BLOCK, _UNITS, st.integers(0, 40)), min_size=1, max_size=14),
       st.integers(0, 16))
def test_pcapng_blocks_and_timestamps(workdir: Path,
                                      ifaces: list[tuple[int | None, int | None]],
                                      blocks: list[tuple[str, int, int]], cut: int) -> None:
    """Interfaces with any if_tsresol/if_tsoffset (times past 2262, between 2**63 and
    2**64 ns, before 1970), packets with any 64-bit timestamp, Simple and obsolete Packet
    Blocks, unknown blocks, new sections, and block lengths that are too small, not a
    multiple of 4, or differ from their trailing copy; the file possibly cut."""
    frames = conversation(data_segments=3) + conversation(sport=40001, ipv6=True)
    out = [ng_shb()]
    for resol, offset in ifaces:
        out.append(ng_idb(1, tsresol=resol, tsoffset_s=offset))
    for i, (kind, units, k) in enumerate(blocks):
        data = frames[i % len(frames)]
        iface = k % len(ifaces)
        if kind == "epb":
            out.append(_epb(iface, units, data))
        elif kind == "spb":
            out.append(ng_block(3, struct.pack("<I", len(data)) + data))
        elif kind == "pb":
            out.append(ng_block(2, struct.pack("<HHIIII", iface, 0, units >> 32,
                                               units & 0xFFFFFFFF, len(data), len(data))
                                + data))
        elif kind == "idb":
            out.append(ng_idb(113 if k % 2 else 1, tsresol=k % 12))
        elif kind == "unknown":
            out.append(ng_block(0x0BAD0000 + k, b"x" * k))
        elif kind == "shb":
            out.append(ng_shb() + ng_idb(1, tsresol=6))
        elif kind == "bad_len":
            out.append(_raw_block(6, b"\x00" * 20, k % 12, k % 12))
        elif kind == "bad_trailer":
            blk = _epb(iface, units, data)
            out.append(blk[:-4] + struct.pack("<I", len(blk) + 4 * (1 + k)))
        elif kind == "len_not_4":
            out.append(_raw_block(6, b"\x00" * 24, 36 + 1 + k % 3, 36 + 1 + k % 3))
        elif kind == "bad_iface":
            out.append(_epb(len(ifaces) + k, units, data))
        else:  # big_caplen: the captured length runs past the block
            out.append(_epb(iface, units, data, caplen=len(data) + 4 + k))
    blob = b"".join(out)
    run_everywhere(blob[:len(blob) - cut] if cut else blob, workdir)


@fuzz(12)
@given(_TSRESOL, _TSOFFSET, _UNITS, st.lists(st.integers(0, 10**7), min_size=4,
                                             max_size=12))
def test_pcapng_time_resolution_and_offset(workdir: Path, resol: int | None,
                                           offset: int | None, first: int,
                                           steps: list[int]) -> None:
    """A whole connection on one interface with any resolution and offset: whatever its
    times, it is one connection with every segment in it, and its record's times are a real
    date or null."""
    frames = conversation(data_segments=3)
    units = first
    out = [ng_shb(), ng_idb(1, tsresol=resol, tsoffset_s=offset)]
    for i, data in enumerate(frames):
        out.append(_epb(0, units % 2**64, data))
        units += steps[i % len(steps)]
    run_everywhere(b"".join(out), workdir)


# --------------------------------------------------------------------------- IPv6 chains
_EXT = st.sampled_from(["hop", "dest", "routing", "frag0", "frag_later", "ah", "none"])


@fuzz(20)
@given(st.lists(st.tuples(_EXT, st.integers(0, 5)), max_size=12), st.integers(0, 60),
       st.booleans())
def test_ipv6_extension_header_chains(workdir: Path, chain: list[tuple[str, int]],
                                      cut: int, wrong_length: bool) -> None:
    """Chains of extension headers (hop-by-hop, routing, destination, fragments first or
    later, AH, no-next-header) in front of a connection's segments, possibly cut or with a
    payload length that does not match; the segments either decode or are counted."""
    numbers = {"hop": 0, "dest": 60, "routing": 43, "frag0": 44, "frag_later": 44, "ah": 51,
               "none": 59}
    ext = b""
    nexts = [numbers[c] for c, _ in chain[1:]] + [6]
    for (name, pad), nh in zip(chain, nexts, strict=False):
        if name == "frag0":
            ext += ipv6_frag(nh)
        elif name == "frag_later":
            ext += ipv6_frag(nh, offset_units=1 + pad, more=True)
        elif name == "ah":
            ext += ipv6_ah(nh)
        else:
            ext += ipv6_ext(nh, b"\x00" * (6 + 8 * pad))
    frames = []
    for i, flags in enumerate((SYN, SYN | ACK, ACK, PSH | ACK, FIN | ACK)):
        src, dst, sp, dp = ("2001:db8::1", "2001:db8::2", 40000, 80) if i % 2 == 0 else \
            ("2001:db8::2", "2001:db8::1", 80, 40000)
        seg = tcp_header(sp, dp, 1000 + i, 2000 + i, flags,
                         options=opt_mss(1400) if flags & SYN else b"") + (
            b"p" * 50 if flags & PSH else b"")
        pkt = ip_packet(src, dst, 6, seg, ipv6=True, ext=ext,
                        ext_first=numbers[chain[0][0]] if chain else None)
        if wrong_length and i == 3:
            pkt = pkt[:4] + struct.pack("!H", len(pkt) + cut) + pkt[6:]
        frame = ethernet(pkt, 0x86DD)
        frames.append((T0_NS + i * 10**6, frame[:len(frame) - cut] if i == 4 else frame))
    run_everywhere(pcap_bytes(frames, nanosecond=True), workdir)


# --------------------------------------------------------------------------- TCP header
_OPTION = st.one_of(
    st.sampled_from([b"\x01", b"\x00", opt_mss(1200), opt_wscale(14), opt_wscale(255),
                     opt_sack_perm(), opt_ts(5, 6), opt_sack([(1, 2), (3, 4)])]),
    st.tuples(st.integers(2, 254), st.integers(0, 255), st.binary(max_size=10)).map(
        lambda t: bytes([t[0], t[1]]) + t[2]))


@fuzz(15)
@given(st.lists(st.tuples(st.integers(0, 15), st.lists(_OPTION, max_size=6),
                          st.sampled_from([SYN, SYN | ACK, ACK, PSH | ACK, FIN | ACK,
                                           0x1FF, 0])), min_size=1, max_size=8))
def test_tcp_data_offsets_and_options(
        workdir: Path, segments: list[tuple[int, list[bytes], int]]) -> None:
    """TCP data offsets from 0 to 15 words (below the fixed header, beyond the packet) with
    any option list: each frame is a segment or a counted skip, nothing else."""
    frames = []
    for i, (doff, opts, flags) in enumerate(segments):
        raw = b"".join(opts)[:40]
        src, dst, sp, dp = (CLIENT, SERVER, 40000, 80) if i % 2 == 0 else \
            (SERVER, CLIENT, 80, 40000)
        seg = tcp_header(sp, dp, 1000 + 10 * i, 5000, flags, options=raw,
                         data_offset_words=doff) + b"x" * (i * 7 % 30)
        frames.append((T0_NS + i * 10**6, ethernet(ip_packet(src, dst, 6, seg))))
    run_everywhere(pcap_bytes(frames, nanosecond=True), workdir)


# --------------------------------------------------------------------------- 2**32 wrap
@fuzz(10)
@given(st.integers(1, 3000), st.integers(1, 3000), st.integers(1, 8),
       st.sampled_from([1, 100, 1460]))
def test_sequence_wrap_at_2_32(workdir: Path, before_c: int, before_s: int, count: int,
                               size: int) -> None:
    """Both ISNs just below 2**32, so the data crosses the wrap: one connection, every byte
    unique (no retransmission, no gap, nothing out of order), closed gracefully."""
    frames = conversation(isn_c=2**32 - before_c, isn_s=2**32 - before_s,
                          data_segments=count, size=size)
    blob = pcap_bytes([(T0_NS + i * 10**6, f) for i, f in enumerate(frames)],
                      nanosecond=True)
    run_everywhere(blob, workdir)
    [result] = list(Engine(Options()).run(blob))
    rec = result.record
    assert rec["close"] == "graceful" and rec["open"] == "three_way_handshake"
    assert rec["client_unique_bytes"] == count * size
    assert rec["retransmissions"] == 0 and rec["client_lost_segments"] == 0
    assert rec["client_out_of_order_pkts"] == 0


def test_finding_rtt_sample_beyond_64_bits(workdir: Path) -> None:
    """Found by test_pcapng_blocks_and_timestamps: a SYN at time 0 and its SYN-ACK at
    2**63-1 microseconds (year ~292 million) made an RTT sample no C long long holds; the
    compiled RTT estimator raised OverflowError where the reference computed in floats."""
    frames = conversation(data_segments=1)
    blob = ng_shb() + ng_idb(1) + _epb(0, 0, frames[0]) + _epb(0, 2**63 - 1, frames[1])
    run_everywhere(blob, workdir, outputs=True)
    [result] = list(Engine(Options()).run(blob))
    assert result.record["client_rtt_samples"] == 1
    assert result.record["start_ts"] == 0.0 and result.record["end_ts"] is None
    assert result.record["duration_s"] is None  # one end in range, the other not
