"""ICMP errors that quote a TCP segment: a router's or host's answer for a connection.

Why: a firewall that rejects with ICMP port-unreachable (iptables' default REJECT), a router
with no route, an expired TTL or a too-small MTU answer a TCP segment with an ICMP or ICMPv6
error, not with TCP. Without them a SYN looks unanswered, when the path in fact refused it and
the client's stack gave up at once (Linux ``tcp_v4_err`` ends a SYN_SENT socket on any
destination-unreachable or time-exceeded error). RFC 792 and RFC 4443 make every such error
quote the offending packet's IP header and at least the first 8 bytes of its payload: the TCP
ports and sequence number, enough to find the connection and the segment.

The decoder parses the error (:func:`parse_error`) and hands an :class:`IcmpError` to the
engine, which gives it to the connection of the quoted 4-tuple; the frame itself is still
counted as ``not_tcp`` (it is not a TCP segment), so frame accounting is unchanged.
"""

from __future__ import annotations

import struct

from tcptrace_py.lazy_dataclass import dataclass

_V4_QUOTE = struct.Struct("!BxHHHBB2x4s4s").unpack_from
"""Quoted IPv4 header: version/IHL, total length, id, flags/fragment, TTL, protocol, addresses."""
_V6_QUOTE = struct.Struct("!I2xBx16s16s").unpack_from
"""Quoted IPv6 header: version/class/label, next header, addresses."""
_TCP_QUOTE = struct.Struct("!HHI").unpack_from
"""The 8 quoted TCP bytes used: ports and sequence number."""
_U16 = struct.Struct("!H").unpack_from
_U32 = struct.Struct("!I").unpack_from

ICMP4_ERRORS = frozenset({3, 11, 12})
"""Destination unreachable, time exceeded, parameter problem (RFC 792)."""
ICMP6_ERRORS = frozenset({1, 2, 3, 4})
"""Destination unreachable, packet too big, time exceeded, parameter problem (RFC 4443)."""
PROTO_ICMP = 1
PROTO_ICMPV6 = 58

_V4_NAMES = {
    (3, 0): "network unreachable", (3, 1): "host unreachable",
    (3, 2): "protocol unreachable", (3, 3): "port unreachable",
    (3, 4): "fragmentation needed", (3, 5): "source route failed",
    (3, 6): "destination network unknown", (3, 7): "destination host unknown",
    (3, 9): "network administratively prohibited", (3, 10): "host administratively prohibited",
    (3, 11): "network unreachable for TOS", (3, 12): "host unreachable for TOS",
    (3, 13): "communication administratively prohibited",
    (11, 0): "TTL exceeded in transit", (11, 1): "fragment reassembly time exceeded",
}
_V6_NAMES = {
    (1, 0): "no route to destination", (1, 1): "communication administratively prohibited",
    (1, 2): "beyond scope of source address", (1, 3): "address unreachable",
    (1, 4): "port unreachable", (1, 5): "source address failed ingress/egress policy",
    (1, 6): "reject route to destination", (2, 0): "packet too big",
    (3, 0): "hop limit exceeded in transit", (3, 1): "fragment reassembly time exceeded",
}


@dataclass(frozen=True, slots=True)
class IcmpError:
    """One ICMP/ICMPv6 error and the TCP segment it quotes."""

    frame: int
    ts_ns: int
    reporter: bytes
    """Packed address of the host or router that sent the error."""
    version: int
    """4 for ICMP, 6 for ICMPv6."""
    type: int
    code: int
    mtu: int
    """Next-hop MTU of a fragmentation-needed / packet-too-big error, else -1."""
    src: bytes
    """The quoted segment's sender: address and port."""
    sport: int
    dst: bytes
    dport: int
    seq: int
    """Raw sequence number of the quoted segment."""

    @property
    def name(self) -> str:
        """``port unreachable``, ``TTL exceeded in transit``... (RFC 792 / RFC 4443 names)."""
        names = _V4_NAMES if self.version == 4 else _V6_NAMES
        return names.get((self.type, self.code),
                         f"ICMP{'v6' if self.version == 6 else ''} type {self.type} code "
                         f"{self.code}")

    @property
    def too_big(self) -> bool:
        """Path MTU discovery (RFC 1191 / RFC 8201), not a failure of the connection."""
        return (self.version, self.type, self.code) in ((4, 3, 4), (6, 2, 0))


def parse_error(data: bytes, l4: int, ip_end: int, version: int, reporter: bytes, frame: int,
                ts: int) -> IcmpError | None:
    """The :class:`IcmpError` at ``data[l4:ip_end]`` if it is an error quoting TCP, else None.

    Every read is bounded by the captured bytes: a cut or malformed quote gives None (the
    frame stays a plain ``not_tcp`` skip)."""
    end = ip_end if ip_end < len(data) else len(data)
    if l4 + 8 > end:
        return None
    icmp_type, code = data[l4], data[l4 + 1]
    if icmp_type not in (ICMP4_ERRORS if version == 4 else ICMP6_ERRORS):
        return None
    mtu = -1
    if version == 4 and icmp_type == 3 and code == 4:
        mtu = _U16(data, l4 + 6)[0]
    elif version == 6 and icmp_type == 2:
        mtu = _U32(data, l4 + 4)[0]
    q = l4 + 8
    if q + 1 > end:
        return None
    quoted_version = data[q] >> 4
    if quoted_version == 4:
        if q + 20 > end:
            return None
        vihl, _total, _ip_id, frag, _ttl, proto, src, dst = _V4_QUOTE(data, q)
        ihl = (vihl & 0x0F) << 2
        if proto != 6 or ihl < 20 or frag & 0x1FFF:
            return None
        tcp = q + ihl
    elif quoted_version == 6:
        if q + 40 > end:
            return None
        _vtcfl, nh, src, dst = _V6_QUOTE(data, q)
        if nh != 6:
            return None
        tcp = q + 40
    else:
        return None
    if tcp + 8 > end:
        return None
    sport, dport, seq = _TCP_QUOTE(data, tcp)
    return IcmpError(frame, ts, reporter, version, icmp_type, code, mtu, src, sport, dst,
                     dport, seq)
