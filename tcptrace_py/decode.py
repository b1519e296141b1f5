"""decode: one captured frame -> one :class:`Segment` (or None, with the reason counted).

Theory of operation (this is the hot path, so the rules are about speed as much as shape):
1. Dispatch by link type through a dict of bound methods; Ethernet+IPv4 is tested first.
2. Every header is read with a precompiled ``struct.Struct.unpack_from`` on the frame's bytes;
   no dpkt objects, no slicing copies, no exceptions as control flow on the fast path. Length
   checks come before every unpack, so short frames are skipped with a reason instead.
3. Lengths come from the IP header (IPv4 total length, IPv6 payload length), never from the
   frame size: Ethernet padding is not payload, and a frame cut by the snaplen still reports
   its true payload length (``captured_payload`` says how much is really there).
4. Tunnels (IP-in-IP, IPv6-in-IP, GRE incl. transparent Ethernet, VXLAN on UDP 4789, MPLS)
   are followed down to the innermost IP header that carries TCP; its addresses are the
   segment's. Nesting deeper than MAX_ENCAP_DEPTH is counted as ``malformed``.
5. Link types without a fast path go to dpkt (radiotap/802.11, PPPoE): slow but correct;
   anything else is ``unsupported_linktype``, and its first frame a warning (``Decoder(strict=
   True)``: a ``CaptureError``), so a capture nobody can read does not pass for an empty one.
   Every link type tcptrace reads is decoded (its tcpdump.c: Ethernet, IEEE 802 token ring,
   SLIP, PPP, FDDI, null/loopback, ATM RFC 1483, raw IP, Linux SLL, 802.11, Cisco HDLC).

6. ICMP/ICMPv6 errors quoting a TCP segment are kept (``Decoder(icmp=True)``, see
   ``tcptrace_py/icmp.py``) for the engine to give to their connection; their frames are
   still counted as ``not_tcp``.

Skip reasons (``diag.skip``): ``not_ip``, ``not_tcp``, ``ip_fragment``, ``malformed``,
``truncated_header``, ``unsupported_linktype``. Notes (``diag.notes``):
``malformed_tcp_option``, ``ip_total_length_zero``.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from tcptrace_py.diagnostics import CaptureError, Diagnostics
from tcptrace_py.icmp import PROTO_ICMP, PROTO_ICMPV6, IcmpError, parse_error
from tcptrace_py.segment import Segment

MAX_ENCAP_DEPTH = 8  # tunnels inside tunnels beyond this are treated as malformed input

ETH_IPV4 = 0x0800
ETH_IPV6 = 0x86DD
ETH_VLAN_TAGS = frozenset({0x8100, 0x88A8, 0x9100, 0x9200})  # 802.1Q, 802.1ad, old QinQ
ETH_MPLS = frozenset({0x8847, 0x8848})  # unicast, multicast
ETH_PPPOE_SESSION = 0x8864
ETH_TRANSPARENT = 0x6558  # transparent Ethernet bridging (GRE/NVGRE)
ETH_ERSPAN_II = 0x88BE
ETH_LLC_MAX = 1500  # ethertype/length field values up to this are 802.3 lengths
VXLAN_UDP_PORT = 4789  # RFC 7348

MAX_PENDING_ICMP = 4096
"""ICMP errors kept between two TCP segments; more are counted (``icmp_errors_dropped``)."""
PROTO_IPIP = 4
PROTO_TCP = 6
PROTO_UDP = 17
PROTO_IPV6 = 41
PROTO_GRE = 47
IPV6_EXT_GENERIC = frozenset({0, 43, 60, 135, 139, 140})  # (len+1)*8 byte headers
IPV6_FRAGMENT = 44
IPV6_AH = 51

PPP_IPV4 = 0x0021
PPP_IPV6 = 0x0057
PPP_MPLS = frozenset({0x0281, 0x0283})

# BSD loopback address families: AF_INET is 2 everywhere; AF_INET6 differs per OS
# (Linux 10, NetBSD/OpenBSD 24, FreeBSD 28, Darwin 30) - Wireshark accepts all of them.
AF_INET = 2
AF_INET6_VALUES = frozenset({10, 24, 28, 30})

NFULA_PAYLOAD = 9

FDDI_HEADER_BYTES = 13  # frame control(1) + destination(6) + source(6); LLC/SNAP follows
TOKEN_RING_HEADER_BYTES = 14  # access control(1) + frame control(1) + destination + source
SLIP_HEADER_BYTES = 16  # libpcap's DLT_SLIP pseudo-header (direction + compression history)
LLC_FOLLOWS = 0
"""An 802.3 length in place of an ethertype: :meth:`Decoder._ether` then reads the LLC/SNAP
header at the offset (FDDI, token ring and ATM RFC 1483 frames carry IP that way)."""

_U16 = struct.Struct("!H").unpack_from
_U32 = struct.Struct("!I").unpack_from
_U32LE = struct.Struct("<I").unpack_from
_U16LE = struct.Struct("<H").unpack_from
_IPV4 = struct.Struct("!xBHHHBB2x4s4s")  # tos, total_len, id, frag, ttl, proto, src, dst
_IPV6 = struct.Struct("!IHBB16s16s")  # vtcfl, payload_len, next_header, hop_limit, src, dst
_TCP = struct.Struct("!HHIIHHHH")  # sport, dport, seq, ack, off_flags, window, csum, urp
_TS_OPT = struct.Struct("!II").unpack_from
_IPV4_UNPACK = _IPV4.unpack_from
_IPV6_UNPACK = _IPV6.unpack_from
_TCP_UNPACK = _TCP.unpack_from
_TCP_CUT_UNPACK = struct.Struct("!HHIIH").unpack_from
"""The first 14 bytes of a TCP header: ports, SEQ, ACK, data offset and flags."""
FUSED_LINK_OFFSETS: dict[int, tuple[int, int]] = {
    1: (12, 14),  # Ethernet: type at 12, IP at 14 (what _link_ethernet hands to _ether)
    113: (14, 16),  # Linux cooked v1 (tcpdump -i any): protocol at 14, IP at 16
    276: (0, 20),  # Linux cooked v2: protocol at 0, IP at 20
}
"""Link types whose frames carry an ethertype at a fixed offset before the IP header:
(ethertype offset, IP header offset). The decoder hands all three to ``_ether`` with that
IP offset, so its fast path and the fused pcap reader treat them alike (see
:func:`fused_unpackers`)."""


Unpackers = tuple[int, Callable[[Any, int], tuple[Any, ...]],
                  Callable[[Any, int], tuple[Any, ...]]]
"""(IP offset, IPv4+TCP unpack, IPv6+TCP unpack) of one link type (:func:`fused_unpackers`)."""


def _unpackers(et_off: int, ip_off: int) -> Unpackers:
    """One unpack for the ethertype, a 20-byte IPv4 header (its TOS byte for the ECN field)
    and the fixed TCP header (the overwhelmingly common frame), and one for the fixed IPv6
    and TCP headers (IPv6 carrying TCP directly; the ethertype is skipped, the IPv4 unpack
    has read it)."""
    v4 = struct.Struct(f"!{et_off}xH{ip_off - et_off - 2}xBBHHHBB2x4s4sHHIIHHHH")
    v6 = struct.Struct(f"!{ip_off}xIHBB16s16sHHIIHHHH")
    return ip_off, v4.unpack_from, v6.unpack_from


def fused_unpackers(linktype: int) -> Unpackers | None:
    """The unpackers (:func:`_unpackers`) for a link type of :data:`FUSED_LINK_OFFSETS` at
    its offsets, else None."""
    offsets = FUSED_LINK_OFFSETS.get(linktype)
    return None if offsets is None else _unpackers(*offsets)


ETHERNET_UNPACKERS = _unpackers(*FUSED_LINK_OFFSETS[1])
VLAN_UNPACKERS = _unpackers(16, 18)
"""Ethernet with one 802.1Q tag: the inner ethertype at 16, IP at 18."""


_NOP_NOP_TS = b"\x01\x01\x08\x0a"  # the usual 12-byte option block of established Linux flows
NOP_NOP_TS_WORD = 0x0101080A
"""``_NOP_NOP_TS`` as the big-endian word read by ``TCP_TS_BLOCK_UNPACK``."""
TCP_TS_BLOCK_UNPACK = struct.Struct("!III").unpack_from
"""A 12-byte option block: its first word (NOP NOP kind len) and the tsval/tsecr after it."""

_LinkHandler = Callable[[bytes, int, int], "Segment | None"]


def parse_tcp_options(opts: bytes, diag: Diagnostics | None = None) -> tuple[
        int, int, bool, tuple[tuple[int, int], ...], int, int, tuple[tuple[int, bytes], ...]]:
    """TCP options (RFC 9293 3.2, RFC 7323, RFC 2018) -> (mss, wscale, sack_permitted, sack,
    tsval, tsecr, other_options). Absent values are -1 / False / ().

    A length of 0 or 1 on a non-EOL/NOP option, or one running past the header, stops
    parsing (what we have so far is kept) and counts ``malformed_tcp_option``: Wireshark
    likewise flags and stops; it never raises.
    """
    mss = wscale = tsval = tsecr = -1
    sack_ok = False
    sack: tuple[tuple[int, int], ...] = ()
    other: list[tuple[int, bytes]] = []
    i = 0
    n = len(opts)
    while i < n:
        kind = opts[i]
        if kind == 0:  # EOL
            break
        if kind == 1:  # NOP
            i += 1
            continue
        if i + 1 >= n:
            if diag is not None:
                diag.notes["malformed_tcp_option"] += 1
            break
        olen = opts[i + 1]
        if olen < 2 or i + olen > n:
            if diag is not None:
                diag.notes["malformed_tcp_option"] += 1
            break
        if kind == 8 and olen == 10:
            tsval, tsecr = _TS_OPT(opts, i + 2)
        elif kind == 2 and olen == 4:
            mss = _U16(opts, i + 2)[0]
        elif kind == 3 and olen == 3:
            wscale = opts[i + 2]
        elif kind == 4 and olen == 2:
            sack_ok = True
        elif kind == 5 and (olen - 2) % 8 == 0:
            sack = tuple(_TS_OPT(opts, j) for j in range(i + 2, i + olen, 8))
        else:
            other.append((kind, bytes(opts[i + 2:i + olen])))
        i += olen
    return mss, wscale, sack_ok, sack, tsval, tsecr, tuple(other)


class Decoder:
    """Frame -> Segment. One per analysis run; holds only the diagnostics and dispatch table."""

    def __init__(self, diag: Diagnostics, *, icmp: bool = False, strict: bool = False,
                 source: str = "capture") -> None:
        self.diag = diag
        self.strict = strict
        """An unsupported link type raises ``CaptureError`` instead of a warning."""
        self.source = source
        """File name for warnings (``capture.source_name``)."""
        self.unsupported: set[int] = set()
        """Link types met that no decoder reads (each warned about once)."""
        self.icmp_errors: list[IcmpError] | None = [] if icmp else None
        """With ``icmp``: ICMP/ICMPv6 errors quoting a TCP segment, in frame order, for the
        engine to take (``tcptrace_py.icmp``); their frames are still ``not_tcp`` skips."""
        raw = self._link_raw
        self._link: dict[int, _LinkHandler] = {
            1: self._link_ethernet,
            0: self._link_null,
            108: self._link_null,
            101: raw, 12: raw, 14: raw,
            228: self._link_ipv4,
            229: self._link_ipv6,
            113: self._link_sll,
            276: self._link_sll2,
            9: self._link_ppp, 50: self._link_ppp,
            104: self._link_chdlc,
            239: self._link_nflog,
            10: self._link_fddi,
            6: self._link_token_ring,
            8: self._link_slip,
            100: self._link_atm_rfc1483, 11: self._link_atm_rfc1483,
        }
        self._dpkt_classes: dict[int, Any] | None = None
        self._fast: dict[int, Unpackers] = {
            lt: _unpackers(*offsets) for lt, offsets in FUSED_LINK_OFFSETS.items()}
        """Link types with an ethertype at a fixed offset: the fast path below serves them
        all (and Ethernet with one 802.1Q tag), at their own offsets."""

    # ------------------------------------------------------------------ entry point
    def decode(self, linktype: int, data: bytes, frame_no: int, ts_ns: int,
               wire_len: int) -> Segment | None:
        """Decode one frame; None when skipped (reason counted in ``diag.skipped``)."""
        n = len(data)
        fast = self._fast.get(linktype)
        if fast is not None and n >= fast[0] + 40:
            l2, v4_unpack, v6_unpack = fast
            fields = v4_unpack(data, 0)
            if fields[0] == 0x8100 and linktype == 1 and n >= 58:
                # One 802.1Q tag: the same headers 4 bytes further (as _ether skips it).
                l2, v4_unpack, v6_unpack = VLAN_UNPACKERS
                fields = v4_unpack(data, 0)
            (et, vihl, tos, total_len, ip_id, frag, ttl, proto, src, dst, sport, dport, seq,
             ack, off_flags, window, csum, urp) = fields
            # Literals, not the named constants: this test runs for every frame.
            if et == 0x0800 and vihl == 0x45 and proto == 6 and not frag & 0x1FFF \
                    and total_len >= 40:
                # Fast path: same rules as _ipv4 + _tcp, specialised for ihl=20.
                thl = (off_flags >> 12) << 2
                payload_len = total_len - 20 - thl
                ip_end = l2 + total_len
                if thl == 20:
                    self.diag.tcp_segments += 1
                    return Segment(frame_no, ts_ns, src, dst, sport, dport, seq, ack,
                                   off_flags & 0x1FF, window, payload_len,
                                   (ip_end if ip_end < n else n) - l2 - 40, urp, -1, -1, False,
                                   (), -1, -1, ip_id, ttl, False, (), csum, tos & 3)
                if thl == 32 and payload_len >= 0 and ip_end <= n \
                        and data[l2 + 40:l2 + 44] == _NOP_NOP_TS:
                    self.diag.tcp_segments += 1
                    tsval, tsecr = _TS_OPT(data, l2 + 44)
                    return Segment(frame_no, ts_ns, src, dst, sport, dport, seq, ack,
                                   off_flags & 0x1FF, window, payload_len, payload_len, urp,
                                   -1, -1, False, (), tsval, tsecr, ip_id, ttl, False, (),
                                   csum, tos & 3)
                return self._tcp(data, l2 + 20, ip_end, src, dst, ip_id, ttl, frame_no, ts_ns,
                                 tos & 3)
            elif et == 0x86DD and n >= l2 + 60:
                # Fast path for IPv6 carrying TCP directly: same rules as _ipv6 + _tcp when
                # the payload length is set (0 means jumbogram/TSO) and covers the TCP header.
                (vtcfl, plen, nh, hlim, src, dst, sport, dport, seq, ack, off_flags, window,
                 csum, urp) = v6_unpack(data, 0)
                if vtcfl >> 28 == 6 and nh == 6 and plen >= 20:
                    thl = (off_flags >> 12) << 2
                    ip_end = l2 + 40 + plen
                    if thl == 20:
                        self.diag.tcp_segments += 1
                        return Segment(frame_no, ts_ns, src, dst, sport, dport, seq, ack,
                                       off_flags & 0x1FF, window, plen - 20,
                                       (ip_end if ip_end < n else n) - l2 - 60, urp, -1, -1,
                                       False, (), -1, -1, -1, hlim, False, (), csum,
                                       (vtcfl >> 20) & 3)
                    return self._tcp(data, l2 + 40, ip_end, src, dst, -1, hlim, frame_no,
                                     ts_ns, (vtcfl >> 20) & 3)
        handler = self._link.get(linktype)
        if handler is None:
            return self._link_dpkt(linktype, data, frame_no, ts_ns)
        return handler(data, frame_no, ts_ns)

    # ------------------------------------------------------------------ link layers
    def _link_ethernet(self, data: bytes, frame: int, ts: int) -> Segment | None:
        if len(data) < 14:
            self.diag.skip("truncated_header")
            return None
        return self._ether(_U16(data, 12)[0], data, 14, frame, ts, 0)

    def _link_null(self, data: bytes, frame: int, ts: int) -> Segment | None:
        if len(data) < 4:
            self.diag.skip("truncated_header")
            return None
        family = _U32LE(data, 0)[0]
        if family > 0xFFFF:  # written in the other byte order (DLT_NULL is host order)
            family = _U32(data, 0)[0]
        if family == AF_INET:
            return self._ipv4(data, 4, frame, ts, 0)
        if family in AF_INET6_VALUES:
            return self._ipv6(data, 4, frame, ts, 0)
        self.diag.skip("not_ip")
        return None

    def _link_raw(self, data: bytes, frame: int, ts: int) -> Segment | None:
        return self._ip_by_version(data, 0, frame, ts, 0)

    def _link_ipv4(self, data: bytes, frame: int, ts: int) -> Segment | None:
        return self._ipv4(data, 0, frame, ts, 0)

    def _link_ipv6(self, data: bytes, frame: int, ts: int) -> Segment | None:
        return self._ipv6(data, 0, frame, ts, 0)

    def _link_sll(self, data: bytes, frame: int, ts: int) -> Segment | None:
        # Linux cooked v1: pkttype(2) arphrd(2) addrlen(2) addr(8) protocol(2).
        if len(data) < 16:
            self.diag.skip("truncated_header")
            return None
        return self._ether(_U16(data, 14)[0], data, 16, frame, ts, 0)

    def _link_sll2(self, data: bytes, frame: int, ts: int) -> Segment | None:
        # Linux cooked v2: protocol(2) reserved(2) ifindex(4) arphrd(2) pkttype(1)
        # addrlen(1) addr(8).
        if len(data) < 20:
            self.diag.skip("truncated_header")
            return None
        return self._ether(_U16(data, 0)[0], data, 20, frame, ts, 0)

    def _link_ppp(self, data: bytes, frame: int, ts: int) -> Segment | None:
        if len(data) >= 4 and data[0] in (0x0F, 0x8F) and data[1] == 0:
            # Cisco HDLC framing, which LINKTYPE_PPP_HDLC captures may carry (Wireshark too).
            return self._ether(_U16(data, 2)[0], data, 4, frame, ts, 0)
        return self._ppp(data, 0, frame, ts, 0)

    def _link_chdlc(self, data: bytes, frame: int, ts: int) -> Segment | None:
        if len(data) < 4:
            self.diag.skip("truncated_header")
            return None
        return self._ether(_U16(data, 2)[0], data, 4, frame, ts, 0)

    def _link_fddi(self, data: bytes, frame: int, ts: int) -> Segment | None:
        # FDDI (LINKTYPE_FDDI 10): frame control, destination, source, then 802.2 LLC/SNAP.
        if len(data) < FDDI_HEADER_BYTES:
            self.diag.skip("truncated_header")
            return None
        return self._ether(LLC_FOLLOWS, data, FDDI_HEADER_BYTES, frame, ts, 0)

    def _link_token_ring(self, data: bytes, frame: int, ts: int) -> Segment | None:
        # IEEE 802.5 (LINKTYPE_IEEE802_5 6): AC, FC, destination, source; a source address
        # with its top bit set is followed by a routing information field whose length is
        # the low 5 bits of its first byte (802.5 source routing); then 802.2 LLC/SNAP.
        off = TOKEN_RING_HEADER_BYTES
        if len(data) < off + 1:
            self.diag.skip("truncated_header")
            return None
        if data[8] & 0x80:
            off += data[off] & 0x1F
        return self._ether(LLC_FOLLOWS, data, off, frame, ts, 0)

    def _link_slip(self, data: bytes, frame: int, ts: int) -> Segment | None:
        # LINKTYPE_SLIP 8: libpcap's 16-byte pseudo-header, then the IP packet.
        return self._ip_by_version(data, SLIP_HEADER_BYTES, frame, ts, 0)

    def _link_atm_rfc1483(self, data: bytes, frame: int, ts: int) -> Segment | None:
        # LINKTYPE_ATM_RFC1483 100 (DLT 11 on old systems): an 802.2 LLC/SNAP header, then IP.
        return self._ether(LLC_FOLLOWS, data, 0, frame, ts, 0)

    def _link_nflog(self, data: bytes, frame: int, ts: int) -> Segment | None:
        # NFLOG: family(1) version(1) resource_id(2), then TLVs whose length/type fields are
        # in host byte order (little-endian on every capture we know; big-endian accepted).
        n = len(data)
        if n < 4:
            self.diag.skip("truncated_header")
            return None
        family = data[0]
        off = 4
        while off + 4 <= n:
            tlv_len, tlv_type = _U16LE(data, off)[0], _U16LE(data, off + 2)[0]
            if tlv_len < 4 or off + tlv_len > n:
                tlv_len, tlv_type = _U16(data, off)[0], _U16(data, off + 2)[0]
                if tlv_len < 4 or off + tlv_len > n:
                    break
            if tlv_type & 0x7FFF == NFULA_PAYLOAD:
                payload = data[off + 4:off + tlv_len]
                if family == AF_INET:
                    return self._ipv4(payload, 0, frame, ts, 0)
                if family in AF_INET6_VALUES:
                    return self._ipv6(payload, 0, frame, ts, 0)
                return self._ip_by_version(payload, 0, frame, ts, 0)
            off += (tlv_len + 3) & ~3
        self.diag.skip("not_ip")
        return None

    def _link_dpkt(self, linktype: int, data: bytes, frame: int, ts: int) -> Segment | None:
        """Slow path: let dpkt peel link layers we have no fast path for, then find the IP
        header inside the original bytes and decode it with the fast code."""
        classes = self._dpkt_classes
        if classes is None:
            classes = self._dpkt_classes = _dpkt_link_classes()
        cls = classes.get(linktype)
        if cls is None:
            self.diag.skip("unsupported_linktype")
            if linktype not in self.unsupported:
                self._unsupported(linktype, frame)
            return None
        import dpkt

        try:
            obj: Any = cls(data)
            for _ in range(MAX_ENCAP_DEPTH * 2):
                if isinstance(obj, (dpkt.ip.IP, dpkt.ip6.IP6)):
                    break
                obj = getattr(obj, "data", None)
                if isinstance(obj, bytes) and obj and data.endswith(obj):
                    # dpkt stops at an undecoded payload (802.11 data frames keep their
                    # LLC/SNAP header as bytes): continue from there with the fast code.
                    off = len(data) - len(obj)
                    if obj[:3] == b"\xaa\xaa\x03" and len(obj) >= 8:
                        return self._ether(_U16(data, off + 6)[0], data, off + 8, frame, ts,
                                           0)
                    return self._ip_by_version(data, off, frame, ts, 0)
                if not isinstance(obj, dpkt.Packet):
                    self.diag.skip("not_ip")
                    return None
            else:
                self.diag.skip("not_ip")
                return None
            raw = bytes(obj.pack_hdr())
        except (dpkt.UnpackError, struct.error, ValueError, IndexError, KeyError,
                TypeError, AttributeError):
            self.diag.skip("malformed")
            return None
        idx = data.find(raw)
        if idx < 0:
            self.diag.skip("malformed")
            return None
        return self._ip_by_version(data, idx, frame, ts, 0)

    def _unsupported(self, linktype: int, frame: int) -> None:
        """The first frame of a link type no decoder reads: a warning naming it (its frames
        are counted as ``unsupported_linktype`` skips), or ``CaptureError`` when strict."""
        self.unsupported.add(linktype)
        msg = (f"link type {linktype} is not supported: its frames are not decoded "
               "(see tcptrace-py summary for the count)")
        if self.strict:
            raise CaptureError(f"{self.source} (frame {frame}): {msg}")
        self.diag.warn(self.source, msg, frame=frame, code="unsupported_linktype")

    # ------------------------------------------------------------------ layer 2.5
    def _ether(self, et: int, data: bytes, off: int, frame: int, ts: int,
               depth: int) -> Segment | None:
        """Dispatch on an ethertype at ``data[off:]``; follows VLAN/QinQ, MPLS, LLC/SNAP,
        PPPoE session and transparent-Ethernet encapsulations."""
        n = len(data)
        while True:
            if et == ETH_IPV4:
                return self._ipv4(data, off, frame, ts, depth)
            if et == ETH_IPV6:
                return self._ipv6(data, off, frame, ts, depth)
            if et in ETH_VLAN_TAGS:
                if off + 4 > n:
                    break
                et = _U16(data, off + 2)[0]
                off += 4
                continue
            if et in ETH_MPLS:
                return self._mpls(data, off, frame, ts, depth)
            if et <= ETH_LLC_MAX:
                # 802.3 length field: only LLC/SNAP (AA AA 03 + OUI + ethertype) carries IP.
                if off + 8 <= n and data[off] == 0xAA and data[off + 1] == 0xAA \
                        and data[off + 2] == 3:
                    et = _U16(data, off + 6)[0]
                    off += 8
                    if et <= ETH_LLC_MAX:
                        self.diag.skip("not_ip")
                        return None
                    continue
                self.diag.skip("not_ip")
                return None
            if et == ETH_PPPOE_SESSION:
                # RFC 2516: ver/type(1) code(1) session(2) length(2), then PPP protocol.
                return self._ppp(data, off + 6, frame, ts, depth)
            if et == ETH_TRANSPARENT:
                return self._ethernet_at(data, off, frame, ts, depth + 1)
            self.diag.skip("not_ip")
            return None
        self.diag.skip("truncated_header")
        return None

    def _ethernet_at(self, data: bytes, off: int, frame: int, ts: int,
                     depth: int) -> Segment | None:
        if depth > MAX_ENCAP_DEPTH:
            self.diag.skip("malformed")
            return None
        if off + 14 > len(data):
            self.diag.skip("truncated_header")
            return None
        return self._ether(_U16(data, off + 12)[0], data, off + 14, frame, ts, depth)

    def _mpls(self, data: bytes, off: int, frame: int, ts: int, depth: int) -> Segment | None:
        # RFC 3032 label stack entries until the bottom-of-stack bit; MPLS does not say what
        # follows, so guess by the IP version nibble as Wireshark's heuristics do.
        n = len(data)
        while True:
            if off + 4 > n:
                self.diag.skip("truncated_header")
                return None
            bos = data[off + 2] & 1
            off += 4
            if bos:
                break
        return self._ip_by_version(data, off, frame, ts, depth)

    def _ppp(self, data: bytes, off: int, frame: int, ts: int, depth: int) -> Segment | None:
        n = len(data)
        if off + 2 <= n and data[off] == 0xFF and data[off + 1] == 0x03:
            off += 2  # HDLC address/control bytes (RFC 1662), present or not
        if off + 1 > n:
            self.diag.skip("truncated_header")
            return None
        if data[off] & 1:  # protocol field compression (RFC 1661 6.5): one byte
            proto = data[off]
            off += 1
        else:
            if off + 2 > n:
                self.diag.skip("truncated_header")
                return None
            proto = _U16(data, off)[0]
            off += 2
        if proto == PPP_IPV4:
            return self._ipv4(data, off, frame, ts, depth)
        if proto == PPP_IPV6:
            return self._ipv6(data, off, frame, ts, depth)
        if proto in PPP_MPLS:
            return self._mpls(data, off, frame, ts, depth)
        self.diag.skip("not_ip")
        return None

    def _ip_by_version(self, data: bytes, off: int, frame: int, ts: int,
                       depth: int) -> Segment | None:
        if off >= len(data):
            self.diag.skip("truncated_header")
            return None
        version = data[off] >> 4
        if version == 4:
            return self._ipv4(data, off, frame, ts, depth)
        if version == 6:
            return self._ipv6(data, off, frame, ts, depth)
        self.diag.skip("not_ip")
        return None

    # ------------------------------------------------------------------ IP
    def _ipv4(self, data: bytes, off: int, frame: int, ts: int, depth: int) -> Segment | None:
        n = len(data)
        if off + 20 > n:
            self.diag.skip("truncated_header")
            return None
        b0 = data[off]
        ihl = (b0 & 0x0F) << 2
        if b0 >> 4 != 4 or ihl < 20:
            self.diag.skip("malformed")
            return None
        tos, total_len, ip_id, frag, ttl, proto, src, dst = _IPV4_UNPACK(data, off)
        if frag & 0x1FFF:
            # Non-first fragment: no TCP header here. Like tcptrace we do not reassemble.
            self.diag.skip("ip_fragment")
            return None
        if total_len == 0:
            # TSO/LSO captures on the sending host leave total length 0 (Wireshark: "0
            # (probably TSO)"); the frame size is the only length we have.
            self.diag.notes["ip_total_length_zero"] += 1
            ip_end = n
        elif total_len < ihl:
            self.diag.skip("malformed")
            return None
        else:
            ip_end = off + total_len
        l4 = off + ihl
        if proto == PROTO_TCP:
            return self._tcp(data, l4, ip_end, src, dst, ip_id, ttl, frame, ts, tos & 3)
        if proto == PROTO_ICMP and self.icmp_errors is not None:
            self._icmp(data, l4, ip_end, 4, src, frame, ts)
        return self._l4_other(proto, data, l4, ip_end, frame, ts, depth)

    def _ipv6(self, data: bytes, off: int, frame: int, ts: int, depth: int) -> Segment | None:
        n = len(data)
        if off + 40 > n:
            self.diag.skip("truncated_header")
            return None
        vtcfl, plen, nh, hlim, src, dst = _IPV6_UNPACK(data, off)
        if vtcfl >> 28 != 6:
            self.diag.skip("malformed")
            return None
        # Payload length 0: jumbogram (RFC 2675) or TSO; use what was captured.
        ip_end = off + 40 + plen if plen else n
        p = off + 40
        cap_end = ip_end if ip_end < n else n
        # RFC 8200 4.1: extension headers in a chain, each naming the next.
        while nh != PROTO_TCP:
            if nh in IPV6_EXT_GENERIC:
                if p + 2 > cap_end:
                    self.diag.skip("truncated_header")
                    return None
                nh, p = data[p], p + ((data[p + 1] + 1) << 3)
            elif nh == IPV6_FRAGMENT:
                if p + 8 > cap_end:
                    self.diag.skip("truncated_header")
                    return None
                if _U16(data, p + 2)[0] & 0xFFF8:
                    self.diag.skip("ip_fragment")
                    return None
                nh, p = data[p], p + 8
            elif nh == IPV6_AH:
                if p + 2 > cap_end:
                    self.diag.skip("truncated_header")
                    return None
                nh, p = data[p], p + ((data[p + 1] + 2) << 2)  # RFC 4302: 4-octet units
            else:
                if nh == PROTO_ICMPV6 and self.icmp_errors is not None:
                    self._icmp(data, p, ip_end, 6, src, frame, ts)
                return self._l4_other(nh, data, p, ip_end, frame, ts, depth)
        return self._tcp(data, p, ip_end, src, dst, -1, hlim, frame, ts, (vtcfl >> 20) & 3)

    def _icmp(self, data: bytes, l4: int, ip_end: int, version: int, reporter: bytes,
              frame: int, ts: int) -> None:
        """Keep an ICMP error quoting TCP for the engine (bounded: a flood of them between
        two TCP segments is counted, not kept)."""
        err = parse_error(data, l4, ip_end, version, reporter, frame, ts)
        if err is None:
            return
        pending = self.icmp_errors
        assert pending is not None
        if len(pending) < MAX_PENDING_ICMP:
            pending.append(err)
        else:
            self.diag.notes["icmp_errors_dropped"] += 1

    def _l4_other(self, proto: int, data: bytes, l4: int, ip_end: int, frame: int, ts: int,
                  depth: int) -> Segment | None:
        """Non-TCP payloads of an IP header: tunnels are followed, the rest is ``not_tcp``."""
        if proto in (PROTO_IPIP, PROTO_IPV6, PROTO_GRE, PROTO_UDP):
            if depth >= MAX_ENCAP_DEPTH:
                self.diag.skip("malformed")
                return None
            # Inner headers must not read the outer frame's trailer/padding as theirs.
            inner = data[:ip_end] if ip_end < len(data) else data
            if proto == PROTO_IPIP:
                return self._ipv4(inner, l4, frame, ts, depth + 1)
            if proto == PROTO_IPV6:
                return self._ipv6(inner, l4, frame, ts, depth + 1)
            if proto == PROTO_GRE:
                return self._gre(inner, l4, frame, ts, depth + 1)
            if l4 + 16 <= len(inner) and _U16(inner, l4 + 2)[0] == VXLAN_UDP_PORT \
                    and inner[l4 + 8] & 0x08:
                # RFC 7348: UDP(8) + VXLAN(8, I flag set) + inner Ethernet frame.
                return self._ethernet_at(inner, l4 + 16, frame, ts, depth + 1)
        self.diag.skip("not_tcp")
        return None

    def _gre(self, data: bytes, off: int, frame: int, ts: int, depth: int) -> Segment | None:
        n = len(data)
        if off + 4 > n:
            self.diag.skip("truncated_header")
            return None
        flags = _U16(data, off)[0]
        proto = _U16(data, off + 2)[0]
        version = flags & 0x7
        if version == 0:
            # RFC 2784/2890: optional checksum+reserved (C), key (K), sequence number (S).
            if flags & 0x4000:  # RFC 1701 source routing: rare, not followed
                self.diag.skip("not_ip")
                return None
            hlen = 4 + (4 if flags & 0x8000 else 0) + (4 if flags & 0x2000 else 0) \
                + (4 if flags & 0x1000 else 0)
        elif version == 1:
            # RFC 2637 enhanced GRE (PPTP): key always, optional sequence and ack numbers.
            hlen = 8 + (4 if flags & 0x1000 else 0) + (4 if flags & 0x0080 else 0)
            if proto == 0x880B:
                return self._ppp(data, off + hlen, frame, ts, depth)
        else:
            self.diag.skip("not_ip")
            return None
        off += hlen
        if proto == ETH_ERSPAN_II:
            return self._ethernet_at(data, off + 8, frame, ts, depth)
        return self._ether(proto, data, off, frame, ts, depth)

    # ------------------------------------------------------------------ TCP
    def _tcp(self, data: bytes, l4: int, ip_end: int, src: bytes, dst: bytes, ip_id: int,
             ttl: int, frame: int, ts: int, ecn: int = 0) -> Segment | None:
        n = len(data)
        cap_end = ip_end if ip_end < n else n
        if l4 + 20 > cap_end:
            return self._tcp_cut(data, l4, ip_end, cap_end, src, dst, ip_id, ttl, frame, ts,
                                 ecn)
        sport, dport, seq, ack, off_flags, window, csum, urp = _TCP_UNPACK(data, l4)
        thl = (off_flags >> 12) << 2
        if thl < 20:
            self.diag.skip("malformed")
            return None
        payload_len = ip_end - l4 - thl
        if payload_len < 0:
            # The IP length does not even cover the TCP header: bogus, as Wireshark says.
            self.diag.skip("malformed")
            return None
        data_start = l4 + thl
        captured = cap_end - data_start
        if captured < 0:
            captured = 0
        hdr_trunc = data_start > cap_end
        diag = self.diag
        diag.tcp_segments += 1
        if thl == 20:
            return Segment(frame, ts, src, dst, sport, dport, seq, ack, off_flags & 0x1FF,
                           window, payload_len, captured, urp, -1, -1, False, (), -1, -1,
                           ip_id, ttl, hdr_trunc, (), csum, ecn)
        opt_end = data_start if data_start <= cap_end else cap_end
        if thl == 32 and not hdr_trunc and data[l4 + 20:l4 + 24] == _NOP_NOP_TS:
            tsval, tsecr = _TS_OPT(data, l4 + 24)
            return Segment(frame, ts, src, dst, sport, dport, seq, ack, off_flags & 0x1FF,
                           window, payload_len, captured, urp, -1, -1, False, (), tsval, tsecr,
                           ip_id, ttl, hdr_trunc, (), csum, ecn)
        mss, wscale, sack_ok, sack, tsval, tsecr, other = parse_tcp_options(
            data[l4 + 20:opt_end], None if hdr_trunc else diag)
        return Segment(frame, ts, src, dst, sport, dport, seq, ack, off_flags & 0x1FF,
                       window, payload_len, captured, urp, mss, wscale, sack_ok, sack, tsval,
                       tsecr, ip_id, ttl, hdr_trunc, other, csum, ecn)


    def _tcp_cut(self, data: bytes, l4: int, ip_end: int, cap_end: int, src: bytes,
                 dst: bytes, ip_id: int, ttl: int, frame: int, ts: int,
                 ecn: int = 0) -> Segment | None:
        """A TCP header the snaplen cut inside its fixed 20 bytes.

        The old tcpdump default of 68 bytes leaves an IPv6 packet (14 + 40) 14 bytes of TCP:
        ports, sequence and acknowledgment numbers, data offset and flags, which is all the
        state machine and the sequence analysis need. Such a segment is kept with the
        window unknown (-1, or read when its 2 bytes are there), no options and
        ``header_truncated`` set, so a whole capture at that snaplen is not lost. Fewer than
        14 bytes (no flags) cannot make a segment.
        """
        if l4 + 14 > cap_end:
            self.diag.skip("truncated_header")
            return None
        sport, dport, seq, ack, off_flags = _TCP_CUT_UNPACK(data, l4)
        thl = (off_flags >> 12) << 2
        payload_len = ip_end - l4 - thl
        if thl < 20 or payload_len < 0:
            self.diag.skip("malformed")
            return None
        window = _U16(data, l4 + 14)[0] if l4 + 16 <= cap_end else -1
        self.diag.tcp_segments += 1
        return Segment(frame, ts, src, dst, sport, dport, seq, ack, off_flags & 0x1FF, window,
                       payload_len, 0, 0, -1, -1, False, (), -1, -1, ip_id, ttl, True, (), -1,
                       ecn)


def _dpkt_link_classes() -> dict[int, Any]:
    """Link types dpkt can peel for the slow path (imported lazily: dpkt is slow to import)."""
    import dpkt

    return {
        127: dpkt.radiotap.Radiotap,  # LINKTYPE_IEEE802_11_RADIOTAP
        105: dpkt.ieee80211.IEEE80211,  # LINKTYPE_IEEE802_11
        51: dpkt.pppoe.PPPoE,  # LINKTYPE_PPP_ETHER
    }
