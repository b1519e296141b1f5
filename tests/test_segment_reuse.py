"""The compiled decoder writes a segment into the last one it built when nothing else holds
that one any more (``_engine._spare``): no allocation per packet on the common path (issue 16).

What must hold: a segment anyone still references is never rewritten (a consumer keeping
every segment sees each packet's own fields, as from the reference decoder); a segment
nobody references is reused (the allocation the change removes); and the engine's outputs
stay the reference's (tests/test_engines.py checks every capture both ways)."""

from __future__ import annotations

import gc
from typing import Any

import pytest
from captures_util import pcap_bytes, tcp_frame

from tcptrace_py import implementation
from tcptrace_py.capture import read_segments
from tcptrace_py.decode import Decoder
from tcptrace_py.diagnostics import Diagnostics
from tcptrace_py.segment import ACK, FIELDS, PSH, SYN, Segment

pytestmark = pytest.mark.skipif(implementation.compiled is None,
                                reason="compiled engine not built or not selected")

T0 = 1_700_000_000_000_000_000
A, B = "192.0.2.1", "198.51.100.2"


def _frames() -> list[bytes]:
    """A handshake and some data both ways, every field different from one frame to the
    next (ports, sequence numbers, windows, options, payload lengths)."""
    out = [tcp_frame(A, B, 40000, 80, 1000, 0, SYN, window=64240),
           tcp_frame(B, A, 80, 40000, 5000, 1001, SYN | ACK, window=65160)]
    for i in range(40):
        out.append(tcp_frame(A, B, 40000, 80, 1001 + 100 * i, 5001 + i, ACK | PSH,
                             window=500 + i, payload=bytes(100)))
        out.append(tcp_frame(B, A, 80, 40000, 5001 + i, 1101 + 100 * i, ACK, window=900 + i,
                             payload=bytes(i % 2)))
    return out


def _fields(seg: Segment) -> tuple[Any, ...]:
    return tuple(getattr(seg, name) for name in FIELDS)


def _pcap() -> bytes:
    return pcap_bytes([(T0 + 1000 * i, f) for i, f in enumerate(_frames())],
                      nanosecond=True)


def test_segments_a_consumer_keeps_are_never_rewritten() -> None:
    """Kept segments (here: every one) are distinct objects holding their own packet's
    fields: the same as the reference decoder's, frame by frame."""
    kept = list(read_segments(_pcap(), Diagnostics(), Decoder(Diagnostics())))
    ref = Decoder(Diagnostics())
    expected = [_fields(s) for s in (ref.decode(1, f, i + 1, T0 + 1000 * i, len(f))
                                     for i, f in enumerate(_frames())) if s is not None]
    assert len({id(s) for s in kept}) == len(kept) == len(_frames())
    assert [_fields(s) for s in kept] == expected


def test_a_segment_nobody_holds_is_written_again() -> None:
    """The compiled decoder's next segment is the last one when that one was let go (the
    allocation per packet the reuse removes), and a fresh object when it is still held."""
    assert implementation.compiled is not None
    dec = implementation.compiled.Decoder(Decoder(Diagnostics()))
    frames = _frames()
    first = dec.decode(1, frames[2], 3, T0, len(frames[2]))
    first_fields = _fields(first)
    second = dec.decode(1, frames[3], 4, T0 + 1, len(frames[3]))
    assert second is not first and _fields(first) == first_fields  # held: a new one
    second_fields = _fields(second)
    second_id = id(second)
    del second
    gc.collect()
    third = dec.decode(1, frames[4], 5, T0 + 2, len(frames[4]))
    assert id(third) == second_id  # let go: the same object, written again
    assert _fields(third) != second_fields and _fields(first) == first_fields
    ref = Decoder(Diagnostics()).decode(1, frames[4], 5, T0 + 2, len(frames[4]))
    assert ref is not None and _fields(third) == _fields(ref)
