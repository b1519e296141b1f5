"""Build small pcap/pcapng captures for tests, byte by byte with ``struct``.

Why not dpkt's writers: tests must also produce what dpkt cannot (big-endian files, nanosecond
and 2.2 headers, Kuznetsov records, several pcapng sections, damaged lengths), and a test
should show exactly the bytes it feeds the reader.

Frames given to the writers are ``bytes`` (timestamp = index seconds), or tuples
``(ts_ns, data)`` / ``(ts_ns, data, wire_len)``; pcapng also takes
``(ts_ns, data, wire_len, interface_id)``.

Typical use::

    frames = [tcp_frame("10.0.0.1", "10.0.0.2", 1234, 80, 1000, 0, SYN,
                        options=opt_mss(1460) + opt_wscale(7))]
    path = write_pcap(tmp_path / "x.pcap", frames)
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, TypeAlias

FrameSpec: TypeAlias = (
    bytes | tuple[int, bytes] | tuple[int, bytes, int] | tuple[int, bytes, int, int])

MAC_A = b"\x02\x00\x00\x00\x00\x01"
MAC_B = b"\x02\x00\x00\x00\x00\x02"


# --------------------------------------------------------------------------- addresses
def ip_bytes(addr: str | bytes) -> bytes:
    """'10.0.0.1' / '2001:db8::1' -> packed bytes (bytes pass through)."""
    if isinstance(addr, bytes):
        return addr
    return ipaddress.ip_address(addr).packed


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\x00"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return int(~total & 0xFFFF)


# --------------------------------------------------------------------------- TCP options
NOP = b"\x01"
EOL = b"\x00"


def opt_mss(mss: int) -> bytes:
    return struct.pack("!BBH", 2, 4, mss)


def opt_wscale(shift: int) -> bytes:
    return struct.pack("!BBB", 3, 3, shift)


def opt_sack_perm() -> bytes:
    return b"\x04\x02"


def opt_sack(blocks: Sequence[tuple[int, int]]) -> bytes:
    return struct.pack("!BB", 5, 2 + 8 * len(blocks)) + b"".join(
        struct.pack("!II", left, right) for left, right in blocks)


def opt_ts(tsval: int, tsecr: int) -> bytes:
    return struct.pack("!BBII", 8, 10, tsval, tsecr)


def opt_raw(kind: int, value: bytes) -> bytes:
    return struct.pack("!BB", kind, 2 + len(value)) + value


# --------------------------------------------------------------------------- headers
def tcp_header(sport: int, dport: int, seq: int, ack: int, flags: int, window: int = 65535,
               options: bytes = b"", urgent: int = 0, checksum: int = 0,
               data_offset_words: int | None = None) -> bytes:
    """A TCP header; options are padded with EOL to a 4-byte multiple."""
    if len(options) % 4:
        options += EOL * (4 - len(options) % 4)
    doff = data_offset_words if data_offset_words is not None else 5 + len(options) // 4
    return struct.pack("!HHIIHHHH", sport, dport, seq, ack, (doff << 12) | (flags & 0x1FF),
                       window, checksum, urgent) + options


def ipv4_header(src: str | bytes, dst: str | bytes, proto: int, payload_len: int, *,
                ttl: int = 64, ip_id: int = 1, flags_frag: int = 0x4000,
                options: bytes = b"", total_len: int | None = None) -> bytes:
    """An IPv4 header with a valid checksum; ``total_len`` overrides the computed length."""
    if len(options) % 4:
        options += b"\x00" * (4 - len(options) % 4)
    ihl = 5 + len(options) // 4
    tl = ihl * 4 + payload_len if total_len is None else total_len
    hdr = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, tl, ip_id, flags_frag, ttl, proto, 0,
                      ip_bytes(src), ip_bytes(dst)) + options
    return hdr[:10] + struct.pack("!H", _checksum(hdr)) + hdr[12:]


def ipv6_header(src: str | bytes, dst: str | bytes, next_header: int, payload_len: int, *,
                hop_limit: int = 64) -> bytes:
    return struct.pack("!IHBB16s16s", 6 << 28, payload_len, next_header, hop_limit,
                       ip_bytes(src), ip_bytes(dst))


def ipv6_ext(next_header: int, body: bytes = b"\x00" * 6) -> bytes:
    """A generic (hop-by-hop/routing/destination) extension header: body padded to 8n-2."""
    if (len(body) + 2) % 8:
        body += b"\x00" * (8 - (len(body) + 2) % 8)
    return struct.pack("!BB", next_header, (len(body) + 2) // 8 - 1) + body


def ipv6_frag(next_header: int, offset_units: int = 0, more: bool = False,
              ident: int = 1) -> bytes:
    return struct.pack("!BBHI", next_header, 0, (offset_units << 3) | int(more), ident)


def ipv6_ah(next_header: int, icv: bytes = b"\x00" * 12) -> bytes:
    body = struct.pack("!HII", 0, 0x100, 1) + icv  # reserved, SPI, seq, ICV
    return struct.pack("!BB", next_header, (len(body) + 2) // 4 - 2) + body


def ip_packet(src: str | bytes, dst: str | bytes, proto: int, payload: bytes, *,
              ipv6: bool = False, ext: bytes = b"", ext_first: int | None = None,
              **ip_kw: Any) -> bytes:
    """IPv4 or IPv6 packet around ``payload``; ``ext`` is a prebuilt IPv6 extension chain
    whose first header type is ``ext_first`` (its last header must name ``proto``)."""
    if ipv6:
        nh = ext_first if ext and ext_first is not None else proto
        return ipv6_header(src, dst, nh, len(ext) + len(payload), **ip_kw) + ext + payload
    return ipv4_header(src, dst, proto, len(payload), **ip_kw) + payload


def ethernet(payload: bytes, ethertype: int = 0x0800, vlans: Sequence[int] = (),
             vlan_tpid: int = 0x8100, src: bytes = MAC_A, dst: bytes = MAC_B) -> bytes:
    """Ethernet II frame; each entry of ``vlans`` adds a tag (outer first) with ``vlan_tpid``
    for the outermost and 0x8100 for the rest (802.1ad QinQ when vlan_tpid=0x88a8)."""
    # Tag layout on the wire: TPID, TCI, [TPID, TCI, ...], ethertype.
    tags = b"".join(struct.pack("!HH", vlan_tpid if i == 0 else 0x8100, vid & 0x0FFF)
                    for i, vid in enumerate(vlans))
    return dst + src + tags + struct.pack("!H", ethertype) + payload


def tcp_segment(sport: int, dport: int, seq: int, ack: int, flags: int, *,
                window: int = 65535, payload: bytes = b"", options: bytes = b"",
                urgent: int = 0) -> bytes:
    return tcp_header(sport, dport, seq, ack, flags, window, options, urgent) + payload


def tcp_packet(src: str, dst: str, sport: int, dport: int, seq: int, ack: int, flags: int,
               *, window: int = 65535, payload: bytes = b"", options: bytes = b"",
               ipv6: bool = False, **ip_kw: Any) -> bytes:
    """An IP packet (no link layer) carrying one TCP segment."""
    seg = tcp_segment(sport, dport, seq, ack, flags, window=window, payload=payload,
                      options=options)
    return ip_packet(src, dst, 6, seg, ipv6=ipv6, **ip_kw)


def tcp_frame(src: str, dst: str, sport: int, dport: int, seq: int, ack: int, flags: int,
              *, window: int = 65535, payload: bytes = b"", options: bytes = b"",
              ipv6: bool = False, vlans: Sequence[int] = (), vlan_tpid: int = 0x8100,
              padding: int = 0, **ip_kw: Any) -> bytes:
    """An Ethernet frame carrying one TCP segment; ``padding`` zero bytes after the IP
    packet mimic Ethernet minimum-size padding."""
    pkt = tcp_packet(src, dst, sport, dport, seq, ack, flags, window=window, payload=payload,
                     options=options, ipv6=ipv6, **ip_kw)
    return ethernet(pkt + b"\x00" * padding, 0x86DD if ipv6 else 0x0800, vlans, vlan_tpid)


# --------------------------------------------------------------------------- pcap
def _norm(frames: Iterable[FrameSpec]) -> list[tuple[int, bytes, int, int]]:
    out = []
    for i, f in enumerate(frames):
        if isinstance(f, (bytes, bytearray)):
            out.append((i * 1_000_000_000, bytes(f), len(f), 0))
        elif len(f) == 2:
            out.append((f[0], f[1], len(f[1]), 0))
        elif len(f) == 3:
            out.append((f[0], f[1], f[2], 0))
        else:
            out.append((f[0], f[1], f[2], f[3]))
    return out


def pcap_bytes(frames: Iterable[FrameSpec], linktype: int = 1, *, nanosecond: bool = False,
               big_endian: bool = False, snaplen: int = 65535, version: tuple[int, int] = (2, 4),
               modified: bool = False) -> bytes:
    """A classic pcap file. ``modified`` writes Kuznetsov's 0xa1b2cd34 format (24-byte
    records); ``version=(2, 2)`` writes caplen/len swapped as pre-2.3 libpcap did."""
    o = ">" if big_endian else "<"
    magic = 0xA1B2CD34 if modified else (0xA1B23C4D if nanosecond else 0xA1B2C3D4)
    out = [struct.pack(o + "IHHiIII", magic, version[0], version[1], 0, 0, snaplen, linktype)]
    div = 1 if nanosecond else 1000
    for ts_ns, data, wire_len, _iface in _norm(frames):
        sec, frac = divmod(ts_ns, 1_000_000_000)
        caplen = len(data)
        a, b = (wire_len, caplen) if version < (2, 3) else (caplen, wire_len)
        out.append(struct.pack(o + "IIII", sec, frac // div, a, b))
        if modified:
            out.append(struct.pack(o + "IHBB", 1, 0x0800, 0, 0))
        out.append(data)
    return b"".join(out)


def write_pcap(path: str | Path, frames: Iterable[FrameSpec], linktype: int = 1,
               nanosecond: bool = False, big_endian: bool = False, snaplen: int = 65535,
               **kw: object) -> Path:
    """Write :func:`pcap_bytes` to ``path`` and return it as a Path."""
    p = Path(path)
    p.write_bytes(pcap_bytes(frames, linktype, nanosecond=nanosecond, big_endian=big_endian,
                             snaplen=snaplen, **kw))  # type: ignore[arg-type]
    return p


# --------------------------------------------------------------------------- pcapng
def _pad4(b: bytes) -> bytes:
    return b + b"\x00" * (-len(b) % 4)


def ng_block(btype: int, body: bytes, *, big_endian: bool = False) -> bytes:
    o = ">" if big_endian else "<"
    body = _pad4(body)
    total = 12 + len(body)
    return struct.pack(o + "II", btype, total) + body + struct.pack(o + "I", total)


def ng_option(code: int, value: bytes, *, big_endian: bool = False) -> bytes:
    o = ">" if big_endian else "<"
    return struct.pack(o + "HH", code, len(value)) + _pad4(value)


def ng_shb(*, big_endian: bool = False, options: bytes = b"") -> bytes:
    o = ">" if big_endian else "<"
    body = struct.pack(o + "IHHq", 0x1A2B3C4D, 1, 0, -1) + options
    return ng_block(0x0A0D0D0A, body, big_endian=big_endian)


def ng_idb(linktype: int = 1, snaplen: int = 65535, *, tsresol: int | None = None,
           tsoffset_s: int | None = None, big_endian: bool = False) -> bytes:
    o = ">" if big_endian else "<"
    opts = b""
    if tsresol is not None:
        opts += ng_option(9, bytes([tsresol]), big_endian=big_endian)
    if tsoffset_s is not None:
        opts += ng_option(14, struct.pack(o + "q", tsoffset_s), big_endian=big_endian)
    if opts:
        opts += struct.pack(o + "HH", 0, 0)
    return ng_block(1, struct.pack(o + "HHI", linktype, 0, snaplen) + opts,
                    big_endian=big_endian)


def ng_epb(iface: int, ts_units: int, data: bytes, wire_len: int | None = None, *,
           big_endian: bool = False) -> bytes:
    o = ">" if big_endian else "<"
    wl = len(data) if wire_len is None else wire_len
    body = struct.pack(o + "IIIII", iface, ts_units >> 32, ts_units & 0xFFFFFFFF, len(data),
                       wl) + data
    return ng_block(6, body, big_endian=big_endian)


def ng_spb(data: bytes, wire_len: int | None = None, *, big_endian: bool = False) -> bytes:
    o = ">" if big_endian else "<"
    return ng_block(3, struct.pack(o + "I", len(data) if wire_len is None else wire_len)
                    + data, big_endian=big_endian)


def ng_pb(iface: int, ts_units: int, data: bytes, *, big_endian: bool = False) -> bytes:
    """Obsolete Packet Block (type 2)."""
    o = ">" if big_endian else "<"
    body = struct.pack(o + "HHIIII", iface, 0, ts_units >> 32, ts_units & 0xFFFFFFFF,
                       len(data), len(data)) + data
    return ng_block(2, body, big_endian=big_endian)


def pcapng_bytes(frames: Iterable[FrameSpec], linktype: int = 1, *, big_endian: bool = False,
                 tsresol: int | None = None, tsoffset_s: int = 0,
                 linktypes: Sequence[int] | None = None, snaplen: int = 65535) -> bytes:
    """One section, one IDB per entry of ``linktypes`` (default ``[linktype]``), one EPB per
    frame. Frame timestamps (ns) are converted to the interface's if_tsresol units
    (default 6 = microseconds) after subtracting ``tsoffset_s``."""
    lts = list(linktypes) if linktypes is not None else [linktype]
    out = [ng_shb(big_endian=big_endian)]
    for lt in lts:
        out.append(ng_idb(lt, snaplen, tsresol=tsresol,
                          tsoffset_s=tsoffset_s if tsoffset_s else None,
                          big_endian=big_endian))
    res = 6 if tsresol is None else tsresol
    for ts_ns, data, wire_len, iface in _norm(frames):
        rel = ts_ns - tsoffset_s * 1_000_000_000
        if res & 0x80:
            units = (rel << (res & 0x7F)) // 1_000_000_000
        elif res <= 9:
            units = rel // 10 ** (9 - res)
        else:
            units = rel * 10 ** (res - 9)
        out.append(ng_epb(iface, units, data, wire_len, big_endian=big_endian))
    return b"".join(out)


def write_pcapng(path: str | Path, frames: Iterable[FrameSpec], linktype: int = 1,
                 big_endian: bool = False, **kw: object) -> Path:
    """Write :func:`pcapng_bytes` to ``path`` and return it as a Path."""
    p = Path(path)
    p.write_bytes(pcapng_bytes(frames, linktype, big_endian=big_endian,
                               **kw))  # type: ignore[arg-type]
    return p
