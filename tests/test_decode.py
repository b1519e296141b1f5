"""Decoder: link types, encapsulations, IP and TCP header handling, on captures written here."""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path

import pytest
from captures_util import (
    NOP,
    ethernet,
    ip_bytes,
    ip_packet,
    ipv4_header,
    ipv6_ah,
    ipv6_ext,
    ipv6_frag,
    opt_mss,
    opt_raw,
    opt_sack,
    opt_sack_perm,
    opt_ts,
    opt_wscale,
    pcap_bytes,
    tcp_frame,
    tcp_header,
    tcp_packet,
    tcp_segment,
)

from tcptrace_py.capture import read_frames
from tcptrace_py.decode import Decoder, parse_tcp_options
from tcptrace_py.diagnostics import Diagnostics
from tcptrace_py.segment import ACK, PSH, SYN, Segment

V4A, V4B = "192.0.2.1", "198.51.100.2"
V6A, V6B = "2001:db8::1", "2001:db8::2"


def decode_capture(frames: list[bytes] | list[tuple[int, bytes, int]], linktype: int = 1,
                   **kw: object) -> tuple[list[Segment | None], Diagnostics]:
    """Write a pcap in memory, read it back and decode every frame."""
    diag = Diagnostics()
    dec = Decoder(diag)
    raw = pcap_bytes(frames, linktype, **kw)  # type: ignore[arg-type]
    out = [dec.decode(lt, data, no, ts, wl) for no, ts, lt, data, wl in read_frames(raw, diag)]
    return out, diag


def one(frame: bytes, linktype: int = 1) -> tuple[Segment | None, Diagnostics]:
    segs, diag = decode_capture([frame], linktype)
    return segs[0], diag


def simple_pkt(ipv6: bool = False, payload: bytes = b"data", **kw: object) -> bytes:
    return tcp_packet(V6A if ipv6 else V4A, V6B if ipv6 else V4B, 1234, 80, 1000, 2000,
                      ACK | PSH, payload=payload, ipv6=ipv6, **kw)  # type: ignore[arg-type]


def check_simple(seg: Segment | None, ipv6: bool = False, payload_len: int = 4) -> None:
    assert seg is not None
    assert seg.src == ip_bytes(V6A if ipv6 else V4A)
    assert seg.dst == ip_bytes(V6B if ipv6 else V4B)
    assert (seg.sport, seg.dport, seg.seq, seg.ack) == (1234, 80, 1000, 2000)
    assert seg.flags == ACK | PSH and seg.payload_len == payload_len


# ----------------------------------------------------------------------------- TCP fields
def test_syn_with_all_options() -> None:
    opts = opt_mss(1460) + opt_sack_perm() + opt_ts(111, 0) + NOP + opt_wscale(7) \
        + opt_raw(34, b"\xaa" * 8)  # TFO cookie stays raw
    frame = tcp_frame(V4A, V4B, 40000, 443, 0xFFFFFFF0, 0, SYN, window=29200, options=opts,
                      ttl=57, ip_id=4321)
    seg, diag = one(frame)
    assert seg is not None
    assert (seg.mss, seg.wscale, seg.sack_permitted, seg.tsval, seg.tsecr) == (1460, 7, True,
                                                                               111, 0)
    assert seg.other_options == ((34, b"\xaa" * 8),)
    assert (seg.seq, seg.flags, seg.window, seg.ttl, seg.ip_id) == (0xFFFFFFF0, SYN, 29200, 57,
                                                                    4321)
    assert seg.payload_len == 0 and not seg.header_truncated
    assert diag.tcp_segments == 1 and seg.frame == 1


def test_sack_blocks_and_timestamp_fast_path() -> None:
    f1 = tcp_frame(V4A, V4B, 1, 2, 5, 6, ACK, options=NOP + NOP + opt_ts(7, 8))
    f2 = tcp_frame(V4A, V4B, 1, 2, 5, 6, ACK,
                   options=NOP + NOP + opt_sack([(100, 200), (300, 400)]))
    segs, _ = decode_capture([f1, f2])
    assert segs[0] is not None and (segs[0].tsval, segs[0].tsecr) == (7, 8)
    assert segs[1] is not None and segs[1].sack == ((100, 200), (300, 400))


@pytest.mark.parametrize("bad", [b"\x02\x00\x05\xb4", b"\x02\x01\x05\xb4", b"\x08\x0a\x00\x00",
                                 b"\x01\x01\x01\x05"])
def test_malformed_option_stops_parsing_without_raising(bad: bytes) -> None:
    frame = tcp_frame(V4A, V4B, 1, 2, 5, 6, ACK, options=opt_wscale(3) + NOP + bad)
    seg, diag = one(frame)
    assert seg is not None and seg.wscale == 3
    assert diag.notes["malformed_tcp_option"] == 1


def test_eol_stops_option_parsing() -> None:
    mss, *_rest, other = parse_tcp_options(b"\x00" + opt_mss(1200) + b"\x00\x00\x00")
    assert mss == -1 and other == ()


def test_data_offset_below_five_is_malformed() -> None:
    pkt = ip_packet(V4A, V4B, 6, tcp_header(1, 2, 3, 4, ACK, data_offset_words=4) + b"xx")
    seg, diag = one(ethernet(pkt))
    assert seg is None and diag.skipped["malformed"] == 1 and diag.tcp_segments == 0


# ----------------------------------------------------------------------------- lengths
def test_ethernet_padding_not_payload() -> None:
    seg, _ = one(tcp_frame(V4A, V4B, 1, 2, 3, 4, ACK, padding=6))
    assert seg is not None and seg.payload_len == 0 and seg.captured_payload == 0


@pytest.mark.parametrize("ipv6", [False, True])
def test_snaplen_cut_payload(ipv6: bool) -> None:
    full = ethernet(simple_pkt(ipv6, payload=b"p" * 1000), 0x86DD if ipv6 else 0x0800)
    cut = 14 + (40 if ipv6 else 20) + 20 + 10
    segs, diag = decode_capture([(0, full[:cut], len(full))], snaplen=cut)
    seg = segs[0]
    check_simple(seg, ipv6, 1000)
    assert seg is not None and seg.captured_payload == 10 and seg.truncated
    assert not seg.header_truncated


def test_options_cut_by_snaplen() -> None:
    full = tcp_frame(V4A, V4B, 1, 2, 3, 4, SYN,
                     options=opt_mss(1460) + opt_sack_perm() + opt_ts(1, 0) + NOP + opt_wscale(2))
    segs, diag = decode_capture([(0, full[:14 + 20 + 26], len(full))])
    seg = segs[0]
    assert seg is not None and seg.header_truncated and seg.mss == 1460
    assert seg.tsval == -1 and seg.wscale == -1
    assert diag.notes["malformed_tcp_option"] == 0  # truncation, not malformation


def test_too_short_for_tcp_header() -> None:
    full = tcp_frame(V4A, V4B, 1, 2, 3, 4, ACK)
    segs, diag = decode_capture([(0, full[:14 + 20 + 12], len(full)),
                                 (0, full[:14 + 10], len(full))])
    assert segs == [None, None] and diag.skipped["truncated_header"] == 2


def test_ip_total_length_zero_tso() -> None:
    seg_bytes = tcp_segment(1, 2, 3, 4, ACK, payload=b"q" * 50)
    pkt = ipv4_header(V4A, V4B, 6, len(seg_bytes), total_len=0) + seg_bytes
    seg, diag = one(ethernet(pkt))
    assert seg is not None and seg.payload_len == 50
    assert diag.notes["ip_total_length_zero"] == 1


# ----------------------------------------------------------------------------- IPv4 / IPv6
def test_ipv4_options() -> None:
    pkt = simple_pkt(options=b"\x94\x04\x00\x00" + b"\x01" * 4)  # router alert + NOPs
    seg, _ = one(ethernet(pkt))
    check_simple(seg)


def test_ipv4_fragments() -> None:
    seg_bytes = tcp_segment(1234, 80, 1000, 2000, ACK | PSH, payload=b"f" * 16)
    first = ipv4_header(V4A, V4B, 6, len(seg_bytes), flags_frag=0x2000) + seg_bytes
    later = ipv4_header(V4A, V4B, 6, 16, flags_frag=0x0005) + b"g" * 16
    segs, diag = decode_capture([ethernet(first), ethernet(later)])
    check_simple(segs[0], payload_len=16)
    assert segs[1] is None and diag.skipped["ip_fragment"] == 1


@pytest.mark.parametrize("chain", ["hop", "routing", "dstopts", "ah", "frag0", "all"])
def test_ipv6_extension_headers(chain: str) -> None:
    seg_bytes = tcp_segment(1234, 80, 1000, 2000, ACK | PSH, payload=b"data")
    builders: dict[str, tuple[int, Callable[[int], bytes]]] = {
        "hop": (0, ipv6_ext), "routing": (43, ipv6_ext), "dstopts": (60, ipv6_ext),
        "ah": (51, ipv6_ah), "frag0": (44, ipv6_frag)}
    names = list(builders) if chain == "all" else [chain]
    ext = b""
    nxt = 6
    for name in reversed(names):
        code, build = builders[name]
        ext = build(nxt) + ext
        nxt = code
    pkt = ip_packet(V6A, V6B, 6, seg_bytes, ipv6=True, ext=ext, ext_first=nxt)
    seg, _ = one(ethernet(pkt, 0x86DD))
    check_simple(seg, ipv6=True)


def test_ipv6_non_first_fragment_skipped() -> None:
    pkt = ip_packet(V6A, V6B, 6, b"x" * 16, ipv6=True, ext=ipv6_frag(6, offset_units=3),
                    ext_first=44)
    seg, diag = one(ethernet(pkt, 0x86DD))
    assert seg is None and diag.skipped["ip_fragment"] == 1


def test_not_ip_and_not_tcp() -> None:
    arp = ethernet(b"\x00" * 28, 0x0806)
    udp = ethernet(ip_packet(V4A, V4B, 17, struct.pack("!HHHH", 53, 53, 8, 0)))
    segs, diag = decode_capture([arp, udp])
    assert segs == [None, None]
    assert diag.skipped["not_ip"] == 1 and diag.skipped["not_tcp"] == 1


# ----------------------------------------------------------------------------- layer 2 stacks
@pytest.mark.parametrize(("vlans", "tpid"), [((10,), 0x8100), ((100, 200), 0x88A8),
                                             ((1, 2, 3), 0x9100)])
def test_vlan_stacks(vlans: tuple[int, ...], tpid: int) -> None:
    seg, _ = one(ethernet(simple_pkt(), 0x0800, vlans, tpid))
    check_simple(seg)


@pytest.mark.parametrize("ipv6", [False, True])
@pytest.mark.parametrize("ethertype", [0x8847, 0x8848])
def test_mpls_stack(ipv6: bool, ethertype: int) -> None:
    labels = struct.pack("!I", (100 << 12) | 64) + struct.pack("!I", (200 << 12) | 0x100 | 64)
    seg, _ = one(ethernet(labels + simple_pkt(ipv6), ethertype))
    check_simple(seg, ipv6)


def test_llc_snap_and_pppoe() -> None:
    pkt = simple_pkt()
    snap = b"\xaa\xaa\x03\x00\x00\x00\x08\x00" + pkt
    llc = ethernet(snap, len(snap))
    pppoe = ethernet(struct.pack("!BBHH", 0x11, 0, 1, len(pkt) + 2) + b"\x00\x21" + pkt, 0x8864)
    segs, _ = decode_capture([llc, pppoe])
    check_simple(segs[0])
    check_simple(segs[1])


# ----------------------------------------------------------------------------- link types
def _sll(pkt: bytes, proto: int) -> bytes:
    return struct.pack("!HHH8sH", 0, 1, 6, b"\x02" * 8, proto) + pkt


def _sll2(pkt: bytes, proto: int) -> bytes:
    return struct.pack("!HHIHBB8s", proto, 0, 3, 1, 0, 6, b"\x02" * 8) + pkt


LINK_CASES = [
    ("sll-v4", 113, lambda p6: _sll(simple_pkt(p6), 0x86DD if p6 else 0x0800)),
    ("sll2", 276, lambda p6: _sll2(simple_pkt(p6), 0x86DD if p6 else 0x0800)),
    ("null-le", 0, lambda p6: struct.pack("<I", 30 if p6 else 2) + simple_pkt(p6)),
    ("null-be", 0, lambda p6: struct.pack(">I", 24 if p6 else 2) + simple_pkt(p6)),
    ("null-28", 0, lambda p6: struct.pack("<I", 28 if p6 else 2) + simple_pkt(p6)),
    ("loop", 108, lambda p6: struct.pack(">I", 24 if p6 else 2) + simple_pkt(p6)),
    ("raw101", 101, lambda p6: simple_pkt(p6)),
    ("raw12", 12, lambda p6: simple_pkt(p6)),
    ("raw14", 14, lambda p6: simple_pkt(p6)),
    ("ppp-hdlc", 9, lambda p6: b"\xff\x03" + (b"\x00\x57" if p6 else b"\x00\x21")
     + simple_pkt(p6)),
    ("ppp-bare", 9, lambda p6: (b"\x00\x57" if p6 else b"\x00\x21") + simple_pkt(p6)),
    ("ppp-pfc", 50, lambda p6: (b"\x57" if p6 else b"\x21") + simple_pkt(p6)),
    ("ppp50-hdlc", 50, lambda p6: b"\xff\x03" + (b"\x00\x57" if p6 else b"\x00\x21")
     + simple_pkt(p6)),
    ("cisco-hdlc", 104, lambda p6: b"\x0f\x00" + (b"\x86\xdd" if p6 else b"\x08\x00")
     + simple_pkt(p6)),
    ("nflog", 239, lambda p6: bytes([10 if p6 else 2, 0, 0, 1])
     + struct.pack("<HH", 8, 1) + b"\x08\x00\x01\x00"  # NFULA_PACKET_HDR (padded)
     + struct.pack("<HH", 4 + len(simple_pkt(p6)), 9) + simple_pkt(p6)),
]


@pytest.mark.parametrize("ipv6", [False, True])
@pytest.mark.parametrize(("name", "linktype", "build"), LINK_CASES, ids=[c[0] for c in LINK_CASES])
def test_link_types(name: str, linktype: int, build: object, ipv6: bool) -> None:
    seg, diag = one(build(ipv6), linktype)  # type: ignore[operator]
    check_simple(seg, ipv6)
    assert diag.link_types == {linktype: 1}


def test_raw_ipv4_and_ipv6_linktypes() -> None:
    assert one(simple_pkt(), 228)[0] is not None
    assert one(simple_pkt(True), 229)[0] is not None


def test_unsupported_linktype_counted() -> None:
    seg, diag = one(simple_pkt(), 147)
    assert seg is None and diag.skipped["unsupported_linktype"] == 1


def test_radiotap_80211_via_dpkt_fallback() -> None:
    radiotap = struct.pack("<BBHI", 0, 0, 8, 0)
    wlan = struct.pack("<HH6s6s6sH", 0x0208, 0, b"\x01" * 6, b"\x02" * 6, b"\x03" * 6, 0)
    llc = b"\xaa\xaa\x03\x00\x00\x00\x08\x00"
    seg, _ = one(radiotap + wlan + llc + simple_pkt(), 127)
    check_simple(seg)


# ----------------------------------------------------------------------------- tunnels
INNER_V4 = ("10.1.1.1", "10.2.2.2")


def _inner(ipv6: bool = False) -> bytes:
    return tcp_packet(*(("fd00::1", "fd00::2") if ipv6 else INNER_V4), 5555, 22, 1, 2, ACK,
                      payload=b"in", ipv6=ipv6)


def _check_inner(seg: Segment | None, ipv6: bool = False) -> None:
    assert seg is not None
    exp = ("fd00::1", "fd00::2") if ipv6 else INNER_V4
    assert (seg.src, seg.dst) == (ip_bytes(exp[0]), ip_bytes(exp[1]))
    assert (seg.sport, seg.dport, seg.payload_len) == (5555, 22, 2)


def test_ip_in_ip_and_6in4_and_4in6() -> None:
    f1 = ethernet(ip_packet(V4A, V4B, 4, _inner()))
    f2 = ethernet(ip_packet(V4A, V4B, 41, _inner(True)))
    f3 = ethernet(ip_packet(V6A, V6B, 4, _inner(), ipv6=True), 0x86DD)
    segs, _ = decode_capture([f1, f2, f3])
    _check_inner(segs[0])
    _check_inner(segs[1], True)
    _check_inner(segs[2])


@pytest.mark.parametrize(("flags", "extra"), [(0x0000, b""), (0x8000, b"\x00" * 4),
                                              (0xB000, b"\x00" * 12), (0x2000, b"\x00" * 4)])
def test_gre(flags: int, extra: bytes) -> None:
    gre4 = struct.pack("!HH", flags, 0x0800) + extra + _inner()
    gre6 = struct.pack("!HH", flags, 0x86DD) + extra + _inner(True)
    greeth = struct.pack("!HH", flags, 0x6558) + extra + ethernet(_inner())
    segs, _ = decode_capture([ethernet(ip_packet(V4A, V4B, 47, g)) for g in (gre4, gre6, greeth)])
    _check_inner(segs[0])
    _check_inner(segs[1], True)
    _check_inner(segs[2])


def test_vxlan() -> None:
    inner_eth = ethernet(_inner(), 0x0800, (7,))
    vx = struct.pack("!BxxxI", 0x08, 42 << 8) + inner_eth
    udp = struct.pack("!HHHH", 50000, 4789, 8 + len(vx), 0) + vx
    seg, _ = one(ethernet(ip_packet(V4A, V4B, 17, udp), 0x0800, (3,)))
    _check_inner(seg)


def test_tunnel_depth_is_bounded() -> None:
    pkt = _inner()
    for _ in range(20):
        pkt = ip_packet(V4A, V4B, 4, pkt)
    seg, diag = one(ethernet(pkt))
    assert seg is None and diag.skipped["malformed"] == 1


# ----------------------------------------------------------------------------- robustness
def test_random_garbage_never_raises(tmp_path: Path) -> None:
    import random

    rnd = random.Random(1234)
    base = tcp_frame(V4A, V4B, 1, 2, 3, 4, SYN, options=opt_mss(1460) + opt_ts(1, 2))
    frames = []
    for _ in range(3000):
        b = bytearray(base)
        for _ in range(rnd.randint(1, 6)):
            b[rnd.randrange(len(b))] = rnd.randrange(256)
        frames.append(bytes(b[: rnd.randint(0, len(b))]))
    diag = Diagnostics()
    dec = Decoder(diag)
    for lt in (1, 0, 101, 113, 276, 9, 239, 127, 228, 229):
        for i, fr in enumerate(frames):
            dec.decode(lt, fr, i + 1, 0, len(fr))
    assert sum(diag.skipped.values()) + diag.tcp_segments == 10 * len(frames)
