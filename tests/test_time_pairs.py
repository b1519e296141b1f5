"""Frame numbers and times kept as C integers where they fit (issue 16).

The compiled engine keeps a segment's frame number and time, and the latest ones a
connection, its analyzer, senders and statistics hold (and the statistics' longest idle
gap), as pairs of fields: a C integer while the value is an exact int within +-2**62, the
object otherwise (``_engine._split_int``). The decoder then allocates no integer object per
packet. These tests hold the pairs to what the plain attributes were: every value reads back
as written, and a connection whose times cross 2**62 ns (the steady path's C arithmetic on
one side, Python integers on the other) gives the whole reference's outputs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from captures_util import ng_epb, ng_idb, ng_shb, tcp_frame
from test_engines import _reference_outputs, needs_compiled, outputs

from tcptrace_py.segment import ACK, FIN, PSH, SYN

EDGES = [-1, 0, 1, 2**62 - 1, 2**62, -(2**62) + 1, -(2**62), 2**63 - 1, 2**64 + 5,
         -(2**70), 10**30, True, 1.5]
"""Each side of the C range (+-2**62, exclusive), 64-bit edges, values no C integer holds,
and numbers that are not exact ints (kept as the objects they are)."""


def _holders() -> list[tuple[Any, str]]:
    """One object of each class with a paired field, and the field's name."""
    from tcptrace_py import connection
    from tcptrace_py.analysis import direction, rtt, sequence
    from tcptrace_py.options import Options
    from tcptrace_py.segment import Segment

    a, b = b"\x0a\x00\x00\x01", b"\x0a\x00\x00\x02"
    seg = Segment(3, 10**18, a, b, 40000, 80, 1000, 0, SYN, 65535, 0)
    conn = connection.Connection(0, (a, 40000, b, 80), seg, True, False, Options())
    return [(seg, "frame"), (seg, "ts_ns"), (conn, "last_frame"), (conn, "last_ts_ns"),
            (conn.analyzer, "last_ts_ns"), (direction.DirectionStats(), "last_ts_ns"),
            (direction.DirectionStats(), "idle_max_ns"),
            (direction.SenderState(rtt.RttEstimator()), "last_ts_ns"),
            (sequence.SequenceAnalyzer(), "last_ts_ns")]


@pytest.mark.parametrize("value", EDGES, ids=repr)
def test_paired_fields_read_back_what_was_written(value: object) -> None:
    """Both engines: the value, with its type (a bool stays a bool, a huge int exact)."""
    for holder, name in _holders():
        setattr(holder, name, value)
        got = getattr(holder, name)
        assert got == value and type(got) is type(value), (type(holder).__name__, name)


@needs_compiled
def test_paired_fields_refuse_none() -> None:
    """A pair tells a C value by its object being None: None itself is not a value it can
    hold, and is refused rather than read back as 0 (no code sets one: they are ints)."""
    for holder, name in _holders():
        with pytest.raises(TypeError):
            setattr(holder, name, None)


@needs_compiled
def test_a_segments_values_are_made_once_and_follow_writes() -> None:
    """The full path reads a segment's frame and time many times: one object each (made
    at the first read), and a write makes the next read give the new value.
    (tests/test_segment_reuse.py: a reused segment gives its new packet's values.)"""
    from tcptrace_py.segment import Segment

    seg = Segment(5, 10**18 + 7, b"\x0a\x00\x00\x01", b"\x0a\x00\x00\x02", 1, 2, 0, 0, ACK,
                  100, 0)
    assert seg.ts_ns is seg.ts_ns and seg.frame is seg.frame
    seg.ts_ns, seg.frame = 10**18 + 8, 6
    assert (seg.ts_ns, seg.frame) == (10**18 + 8, 6)
    seg.ts_ns = 2**70
    assert seg.ts_ns == 2**70 and seg.ts_ns is seg.ts_ns


def _straddling(path: Path, *, negative: bool = False) -> Path:
    """Two connections on a nanosecond pcapng interface whose times cross 2**62 ns (year
    2116, a time the outputs can hold) in mid-transfer: a handshake, data both ways with
    their ACKs, a retransmission, and a graceful close; the other interleaved with it.
    ``negative``: the same frames 10**12 s before 1970 (``if_tsoffset``), every time below
    -2**62 ns (objects throughout, and negative: not "no time yet")."""
    client, server = "10.0.0.1", "10.0.0.2"
    talks: list[list[bytes]] = []
    for k in range(2):
        cport = 40000 + k
        cseq, sseq = 1000 + k * 7, 5000 + k * 11
        talk = [tcp_frame(client, server, cport, 80, cseq, 0, SYN),
                tcp_frame(server, client, 80, cport, sseq, cseq + 1, SYN | ACK),
                tcp_frame(client, server, cport, 80, cseq + 1, sseq + 1, ACK)]
        cseq, sseq = cseq + 1, sseq + 1
        for i in range(8):
            talk.append(tcp_frame(client, server, cport, 80, cseq, sseq, PSH | ACK,
                                  payload=b"q" * 100))
            cseq += 100
            talk.append(tcp_frame(server, client, 80, cport, sseq, cseq, PSH | ACK,
                                  payload=b"r" * 300))
            sseq += 300
            talk.append(tcp_frame(client, server, cport, 80, cseq, sseq, ACK))
            if i == 5:  # the round's data sent again (another IP ID): a retransmission
                talk.append(tcp_frame(client, server, cport, 80, cseq - 100, sseq,
                                      PSH | ACK, payload=b"q" * 100, ip_id=2))
        talk += [tcp_frame(client, server, cport, 80, cseq, sseq, FIN | ACK),
                 tcp_frame(server, client, 80, cport, sseq, cseq + 1, FIN | ACK),
                 tcp_frame(client, server, cport, 80, cseq + 1, sseq + 1, ACK)]
        talks.append(talk)
    frames = [f for pair in zip(*talks, strict=True) for f in pair]
    first = 2**62 - 20 * 1_000_000  # 20 ms before the limit, 1 ms between frames
    blocks = [ng_shb(), ng_idb(1, tsresol=9, tsoffset_s=-10**12 if negative else None)]
    blocks += [ng_epb(0, first + i * 1_000_000, f) for i, f in enumerate(frames)]
    path.write_bytes(b"".join(blocks))
    return path


@needs_compiled
def test_times_across_the_c_range_give_the_references_outputs(tmp_path: Path) -> None:
    """The whole reference (TCPTRACE_PY_PURE=1) in a subprocess against the compiled engine:
    records, events, anomalies, packets and diagnostics identical. The times are exact on
    both sides of 2**62 (start, end and duration to the nanosecond)."""
    path = _straddling(tmp_path / "straddle.pcapng")
    reference = _reference_outputs([str(path)])[str(path)]
    assert outputs(path) == reference
    from tcptrace_py.engine import Engine
    from tcptrace_py.options import Options

    records = [r.record for r in Engine(Options()).run(str(path))]
    assert len(records) == 2
    frames = 2 * (3 + 8 * 3 + 1 + 3)
    first = 2**62 - 20 * 1_000_000
    starts = sorted(r["start_ts_ns"] for r in records)
    ends = sorted(r["end_ts_ns"] for r in records)
    assert starts == [first, first + 1_000_000]
    assert ends == [first + (frames - 2) * 1_000_000, first + (frames - 1) * 1_000_000]
    assert all(r["close"] == "graceful" for r in records)
    assert all(r["client_retransmitted_segments"] == 1 for r in records)
    assert all(r["server_rtt_samples"] > 0 for r in records)


@needs_compiled
def test_times_far_before_1970_give_the_references_outputs(tmp_path: Path) -> None:
    """The same conversations with every time below -2**62 ns (a pcapng interface's
    negative ``if_tsoffset``), objects throughout: the compiled tests on them are the
    reference's (its ``last_ts_ns >= 0`` reads a time before 1970 as none yet: no idle gap
    is measured), not a test of the C value's sentinel. The whole reference in a
    subprocess agrees. (This capture found a divergence older than the pairs: the
    reference's Karn test compared a negative send time with the -1 that meant "no late
    transmission" and took every ACK for ambiguous; ``_covered_late`` now says None.)"""
    path = _straddling(tmp_path / "negative.pcapng", negative=True)
    reference = _reference_outputs([str(path)])[str(path)]
    assert outputs(path) == reference
    from tcptrace_py.engine import Engine
    from tcptrace_py.options import Options

    records = [r.record for r in Engine(Options()).run(str(path))]
    assert len(records) == 2
    for r in records:
        assert r["start_ts_ns"] is None and r["end_ts_ns"] is None  # no output holds them
        assert r["close"] == "graceful" and r["server_rtt_samples"] > 0
        assert r["client_rtt_samples"] == 10 and r["client_rtt_ambiguous_acks"] == 0
