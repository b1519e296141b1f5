"""Test helper: feed a capture's connections through SequenceAnalyzer without the engine.

Why: the connection engine (flowtable/engine) is written in parallel; this helper groups
segments by 4-tuple with the simplest rules that the scenario captures need (client = sender of
the first SYN, else of the first segment; a client SYN with a new ISN starts a new incarnation)
so the analysis can be checked on real captures on its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tcptrace_py.analysis import AnalysisOptions, SequenceAnalyzer
from tcptrace_py.capture import read_frames
from tcptrace_py.decode import Decoder
from tcptrace_py.diagnostics import Diagnostics
from tcptrace_py.segment import ACK, SYN, Segment

SHARED = Path(__file__).resolve().parents[2] / "shared"
"""Read-only real captures (skip tests when absent)."""


@dataclass
class FedConnection:
    client: tuple[bytes, int]
    server: tuple[bytes, int]
    analyzer: SequenceAnalyzer
    client_isn: int = -1
    masks: dict[int, int] = field(default_factory=dict)
    """frame -> flag bitmask returned by on_segment."""


def read_segments(path: Path | str) -> list[Segment]:
    diag = Diagnostics()
    dec = Decoder(diag)
    out = []
    for frame_no, ts_ns, linktype, data, wire_len in read_frames(path, diag):
        seg = dec.decode(linktype, data, frame_no, ts_ns, wire_len)
        if seg is not None:
            out.append(seg)
    return out


def feed(segments: list[Segment], options: AnalysisOptions | None = None
         ) -> list[FedConnection]:
    conns: list[FedConnection] = []
    live: dict[tuple[bytes, int, bytes, int], FedConnection] = {}
    for seg in segments:
        a = (seg.src, seg.sport)
        b = (seg.dst, seg.dport)
        key = (*a, *b) if a <= b else (*b, *a)
        conn = live.get(key)
        is_client_syn = bool(seg.flags & SYN) and not seg.flags & ACK
        if conn is not None and is_client_syn and a == conn.client \
                and conn.client_isn >= 0 and seg.seq != conn.client_isn:
            conn = None  # port reuse: a new incarnation
        if conn is None:
            if is_client_syn or not seg.flags & SYN:
                client, server = a, b
            else:  # SYN-ACK first: its receiver is the client
                client, server = b, a
            conn = FedConnection(client, server, SequenceAnalyzer(options))
            live[key] = conn
            conns.append(conn)
        from_client = a == conn.client
        if is_client_syn and from_client and conn.client_isn < 0:
            conn.client_isn = seg.seq
        conn.masks[seg.frame] = conn.analyzer.on_segment(seg, from_client)
    return conns


def feed_file(path: Path | str, options: AnalysisOptions | None = None) -> list[FedConnection]:
    return feed(read_segments(path), options)


# --------------------------------------------------------------------------- synthetic captures
CLIENT_IP = bytes([10, 0, 0, 1])
SERVER_IP = bytes([10, 0, 0, 2])
CLIENT_PORT = 40000
SERVER_PORT = 80


@dataclass
class Pkt:
    """One packet of a synthetic conversation (times in seconds, raw sequence numbers)."""

    t_s: float
    from_client: bool
    flags: int
    seq: int
    ack: int = 0
    payload_len: int = 0
    window: int = 65535
    mss: int = -1
    wscale: int = -1
    sack_permitted: bool = False
    sack: tuple[tuple[int, int], ...] = ()


def _tcp_options(p: Pkt) -> bytes:
    import struct
    out = b""
    if p.mss >= 0:
        out += struct.pack("!BBH", 2, 4, p.mss)
    if p.sack_permitted:
        out += b"\x04\x02"
    if p.wscale >= 0:
        out += struct.pack("!BBB", 3, 3, p.wscale)
    if p.sack:
        out += b"\x01\x01" + struct.pack("!BB", 5, 2 + 8 * len(p.sack))
        for left, right in p.sack:
            out += struct.pack("!II", left & 0xFFFFFFFF, right & 0xFFFFFFFF)
    while len(out) % 4:
        out += b"\x01"
    return out


def write_pcap(path: Path, pkts: list[Pkt], t0_s: float = 1_700_000_000.0) -> Path:
    """Write ``pkts`` as an Ethernet pcap with dpkt (the test's own capture)."""
    import dpkt
    with open(path, "wb") as fh:
        w = dpkt.pcap.Writer(fh)
        for p in pkts:
            src, dst = (CLIENT_IP, SERVER_IP) if p.from_client else (SERVER_IP, CLIENT_IP)
            sport, dport = ((CLIENT_PORT, SERVER_PORT) if p.from_client
                            else (SERVER_PORT, CLIENT_PORT))
            opts = _tcp_options(p)
            tcp = dpkt.tcp.TCP(sport=sport, dport=dport, seq=p.seq & 0xFFFFFFFF,
                               ack=p.ack & 0xFFFFFFFF, flags=p.flags, win=p.window,
                               opts=opts, data=b"x" * p.payload_len)
            tcp.off = (20 + len(opts)) // 4
            ip = dpkt.ip.IP(src=src, dst=dst, p=dpkt.ip.IP_PROTO_TCP, data=tcp)
            ip.len = 20 + len(bytes(tcp))
            eth = dpkt.ethernet.Ethernet(src=b"\x02" * 6, dst=b"\x04" * 6,
                                         type=dpkt.ethernet.ETH_TYPE_IP, data=ip)
            w.writepkt(bytes(eth), ts=t0_s + p.t_s)
    return path


def run_pkts(tmp_path: Path, pkts: list[Pkt], options: AnalysisOptions | None = None,
             name: str = "synthetic.pcap") -> FedConnection:
    """Write, read back through the project's reader/decoder and analyse one connection."""
    conns = feed_file(write_pcap(tmp_path / name, pkts), options)
    assert len(conns) == 1
    return conns[0]
