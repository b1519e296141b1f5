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
