"""Segment: one decoded TCP segment, the unit every later stage consumes.

Why a plain slotted class and not a dataclass: the decoder builds one per packet on the hot
path, and a positional ``__init__`` on a ``__slots__`` class is the cheapest object CPython
offers that still has named, typed fields. Addresses stay as packed ``bytes`` (4 or 16 long)
until a report needs text; timestamps are integer nanoseconds since the epoch.
"""

from __future__ import annotations

# TCP header flag bits (RFC 9293 section 3.1; NS/AE from RFC 3540 / accurate ECN).
FIN = 0x01
SYN = 0x02
RST = 0x04
PSH = 0x08
ACK = 0x10
URG = 0x20
ECE = 0x40
CWR = 0x80
AE = 0x100

TS_NS_MIN = 0
TS_NS_MAX = (1 << 63) - 1
"""The times every output can hold: 1970-01-01 up to 2262-04-11 23:47:16.854775807 UTC, the
range of a signed 64-bit count of nanoseconds (numpy/pandas ``datetime64[ns]``, Arrow
``timestamp[ns]``, Parquet INT64). A pcapng interface's ``if_tsresol``/``if_tsoffset`` can
give a packet any time at all (PcapPlusPlus's ``pcapng-example.pcapng``: year 586524, a
timestamp near 2**64 units); before 1970 is no capture's time either (pcapng and pcap count
unsigned from the epoch; only a negative ``if_tsoffset`` gets there). Such times stay exact
inside the engine, where intervals between packets of one interface are still right, and
every output shows them as null/NaT (docs/robustness.md)."""


def ts_in_range(ts_ns: int) -> bool:
    """Whether ``ts_ns`` is a time the outputs can hold (:data:`TS_NS_MIN`..:data:`TS_NS_MAX`)."""
    return TS_NS_MIN <= ts_ns <= TS_NS_MAX


def ts_or_none(ts_ns: int | None) -> int | None:
    """``ts_ns`` when the outputs can hold it, else None (what every sink writes as null)."""
    return ts_ns if ts_ns is not None and TS_NS_MIN <= ts_ns <= TS_NS_MAX else None


_FLAG_LETTERS = ((SYN, "S"), (FIN, "F"), (RST, "R"), (PSH, "P"), (ACK, "A"), (URG, "U"),
                 (ECE, "E"), (CWR, "C"), (AE, "N"))


def _letters(flags: int) -> str:
    return "".join(letter for bit, letter in _FLAG_LETTERS if flags & bit) or "."


_FLAG_TEXTS = tuple(_letters(f) for f in range(0x200))
"""Every 9-bit combination, built once: events name the flags of each segment they record."""


def flags_text(flags: int) -> str:
    """Flags as tcpdump-like letters, e.g. ``SA`` for SYN+ACK, ``.`` for none."""
    return _FLAG_TEXTS[flags] if 0 <= flags < 0x200 else _letters(flags)


def addr_text(addr: bytes) -> str:
    """Packed IPv4/IPv6 address -> its canonical text form (RFC 5952 for IPv6)."""
    if len(addr) == 4:
        return f"{addr[0]}.{addr[1]}.{addr[2]}.{addr[3]}"
    import ipaddress  # only for IPv6 (and off the start-up path: docs/benchmarks.md)
    return str(ipaddress.IPv6Address(addr))


def endpoint_text(addr: bytes, port: int) -> str:
    """``addr:port``, with an IPv6 address in brackets (RFC 3986 3.2.2), so the port cannot
    be read as part of the address: ``10.0.0.1:80``, ``[2001:db8::1]:443``."""
    text = addr_text(addr)
    return f"[{text}]:{port}" if len(addr) == 16 else f"{text}:{port}"


class Segment:
    """One TCP segment as seen at the capture point.

    Fields (all set by the decoder):
      frame: 1-based frame number in the capture (Wireshark's frame.number).
      ts_ns: capture timestamp, integer nanoseconds since the Unix epoch.
      src, dst: packed IP addresses (4 bytes for IPv4, 16 for IPv6).
      sport, dport: TCP ports.
      seq, ack: raw 32-bit sequence and acknowledgment numbers.
      flags: bitmask of FIN/SYN/RST/PSH/ACK/URG/ECE/CWR/AE.
      window: raw (unscaled) advertised window field; -1 when the snaplen cut the TCP
        header before it (then ``header_truncated`` too).
      payload_len: TCP payload length taken from the IP header (not from captured bytes).
      captured_payload: payload bytes actually present in the capture (< payload_len when
        the frame was truncated by the snaplen).
      urgent: the urgent pointer field.
      mss, wscale: option values, -1 when absent.
      sack_permitted: SACK-permitted option present.
      sack: tuple of (left, right) edges from the SACK option, empty when absent.
      tsval, tsecr: timestamp option values, -1 when absent.
      ip_id: IPv4 identification (-1 for IPv6), used to spot duplicated frames.
      ttl: IPv4 TTL / IPv6 hop limit.
      header_truncated: the snaplen cut the TCP header: options parsed as far as captured,
        or (fixed header cut after the flags) no options and perhaps no window.
      other_options: tuple of (kind, raw bytes) for options not parsed above.
      checksum: the TCP checksum field (kept, not verified: offloads make it unreliable).
      ecn: the IP ECN field (RFC 3168 section 5: 0 not-ECT, 1 ECT(1), 2 ECT(0), 3 CE) of
        the innermost IP header: the low 2 bits of the IPv4 TOS / IPv6 traffic class.
    """

    __slots__ = ("frame", "ts_ns", "src", "dst", "sport", "dport", "seq", "ack", "flags",
                 "window", "payload_len", "captured_payload", "urgent", "mss", "wscale",
                 "sack_permitted", "sack", "tsval", "tsecr", "ip_id", "ttl",
                 "header_truncated", "other_options", "checksum", "ecn")

    frame: int
    ts_ns: int
    src: bytes
    dst: bytes
    sport: int
    dport: int
    seq: int
    ack: int
    flags: int
    window: int
    payload_len: int
    captured_payload: int
    urgent: int
    mss: int
    wscale: int
    sack_permitted: bool
    sack: tuple[tuple[int, int], ...]
    tsval: int
    tsecr: int
    ip_id: int
    ttl: int
    header_truncated: bool
    other_options: tuple[tuple[int, bytes], ...]
    checksum: int
    ecn: int

    def __init__(self, frame: int, ts_ns: int, src: bytes, dst: bytes, sport: int, dport: int,
                 seq: int, ack: int, flags: int, window: int, payload_len: int,
                 captured_payload: int = -1, urgent: int = 0, mss: int = -1, wscale: int = -1,
                 sack_permitted: bool = False, sack: tuple[tuple[int, int], ...] = (),
                 tsval: int = -1, tsecr: int = -1, ip_id: int = -1, ttl: int = 64,
                 header_truncated: bool = False,
                 other_options: tuple[tuple[int, bytes], ...] = (), checksum: int = 0,
                 ecn: int = 0) -> None:
        self.frame = frame
        self.ts_ns = ts_ns
        self.src = src
        self.dst = dst
        self.sport = sport
        self.dport = dport
        self.seq = seq
        self.ack = ack
        self.flags = flags
        self.window = window
        self.payload_len = payload_len
        self.captured_payload = payload_len if captured_payload < 0 else captured_payload
        self.urgent = urgent
        self.mss = mss
        self.wscale = wscale
        self.sack_permitted = sack_permitted
        self.sack = sack
        self.tsval = tsval
        self.tsecr = tsecr
        self.ip_id = ip_id
        self.ttl = ttl
        self.header_truncated = header_truncated
        self.other_options = other_options
        self.checksum = checksum
        self.ecn = ecn

    @property
    def truncated(self) -> bool:
        """True when the capture holds fewer payload bytes than the IP header announced."""
        return self.captured_payload < self.payload_len or self.header_truncated

    @property
    def seg_len(self) -> int:
        """Sequence space the segment occupies: payload plus one for SYN and one for FIN."""
        return self.payload_len + (1 if self.flags & SYN else 0) + (1 if self.flags & FIN else 0)

    def __repr__(self) -> str:
        return (f"Segment(frame={self.frame}, {addr_text(self.src)}:{self.sport} > "
                f"{addr_text(self.dst)}:{self.dport} [{flags_text(self.flags)}] seq={self.seq} "
                f"ack={self.ack} win={self.window} len={self.payload_len})")


FIELDS: tuple[str, ...] = Segment.__slots__
"""The field names in constructor order (the same for the compiled twin)."""

ReferenceSegment = Segment
"""The pure-Python class, whichever engine runs (tests compare the two)."""

# The compiled engine's extension type replaces the class for the whole process (every
# decoder, test and caller then builds the same type); see tcptrace_py/implementation.py.
from tcptrace_py import implementation as _implementation  # noqa: E402

reference_addr_text = addr_text
"""The pure-Python :func:`addr_text` (tests compare the compiled twin with it)."""

if _implementation.compiled is not None:
    Segment = _implementation.compiled.Segment  # type: ignore[misc]
    addr_text = _implementation.compiled.addr_text  # noqa: F811
