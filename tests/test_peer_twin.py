"""The compiled twin of ``PeerSummary.on_segment`` (Wireshark completeness, Zeek's endpoint
machines and history letters) against the reference, segment by segment.

Whole-capture equivalence (test_engines) covers the conversations real stacks have; here
Hypothesis drives both with arbitrary segment streams: any flag combination (SYN+FIN,
RST+ACK, none), sequence and ACK numbers near each other, across the 32-bit wrap and far
apart, zero windows, payload cut by the snaplen, and ports that make Zeek flip the roles.
After every segment the two must hold the same state: every field of both endpoints, the
letters, the role and partial status, and the history, conn_state and completeness read
from them.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tcptrace_py import compat, implementation
from tcptrace_py.segment import Segment

pytestmark = pytest.mark.skipif(implementation.compiled is None,
                                reason="compiled engine not built or not selected")

A, B = b"\x0a\x00\x00\x01", b"\x0a\x00\x00\x02"

segment = st.tuples(
    st.booleans(),  # from the client
    st.sampled_from([0x02, 0x12, 0x10, 0x18, 0x11, 0x19, 0x04, 0x14, 0x03, 0x06, 0x05,
                     0x00, 0x01, 0x07, 0x16]),
    st.integers(-3, 3000),  # seq offset from the sender's base
    st.integers(-3, 3000),  # ack offset from the receiver's base
    st.sampled_from([0, 1, 100, 1460]),  # payload
    st.sampled_from([0, 1, 512, 65535]),  # window
    st.booleans(),  # payload captured in full
)


def _state(ps: Any) -> tuple[Any, ...]:
    eps = tuple(tuple(getattr(e, name) if name != "blocks" else [list(b) for b in e.blocks]
                      for name in compat._Endpoint.__reference__.__slots__)  # type: ignore[attr-defined]
                for e in ps._eps)
    return (eps, list(ps._letters), ps._orig, ps._partial, ps._flips, ps._n, ps._ws,
            ps._ws_prev, ps.history(), ps.conn_state(), ps.completeness())


@settings(max_examples=400, deadline=None)
@given(st.lists(segment, min_size=1, max_size=25),
       st.sampled_from([(40000, 80), (80, 40000), (443, 8080), (5000, 6000)]),
       st.sampled_from([0, 0xFFFFF000, 0x7FFFFF00]), st.sampled_from([0, 0xFFFFFF00, 12345]))
def test_twin_follows_the_reference(segs: list[tuple[Any, ...]], ports: tuple[int, int],
                                    cbase: int, sbase: int) -> None:
    reference = compat.PeerSummary.__reference__  # type: ignore[attr-defined]
    twin, ref = compat.PeerSummary(), compat.PeerSummary()
    assert type(twin).on_segment is not reference.on_segment
    for i, (from_client, flags, dseq, dack, plen, win, whole) in enumerate(segs):
        sbase_ = cbase if from_client else sbase
        rbase = sbase if from_client else cbase
        src, dst = (A, B) if from_client else (B, A)
        sport, dport = ports if from_client else ports[::-1]
        seg = Segment(i + 1, 1_000_000 * i, src, dst, sport, dport,
                      (sbase_ + dseq) & 0xFFFFFFFF, (rbase + dack) & 0xFFFFFFFF, flags, win,
                      plen, plen if whole else plen // 2)
        twin.on_segment(seg, from_client)
        reference.on_segment(ref, seg, from_client)
        assert _state(twin) == _state(ref), i


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(list("SHADFRWTICQG^xz[@")
                                          + ["\u00c9", "ab", ""]),
                          st.integers(0, 1)), max_size=80),
       st.integers(-1, 1), st.one_of(st.integers(0, 3), st.integers(60, 70)))
def test_history_twin_is_the_references(letters: list[tuple[str, int]], orig: int,
                                        flips: int) -> None:
    """The compiled ``history`` (written in C up to 64 characters of one-character ASCII
    letters, else the list and the join with a cache for the lower case) spells what the
    reference's does for any letters (the characters around A-Z, non-ASCII, longer or
    empty ones), originator and role flips, either side of 64 characters."""
    twin = compat.PeerSummary()
    twin._letters, twin._orig, twin._flips = list(letters), orig, flips
    assert twin.history() == compat.PeerSummary.__reference__.history(twin)  # type: ignore[attr-defined]


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**40), st.integers(0, 2**40),
       st.dictionaries(st.sampled_from(["unacked_segments", "sequence_holes", "other"]),
                       st.integers(0, 2**40)))
def test_count_properties_are_the_references(holes_a: int, holes_b: int,
                                             dropped: dict[str, int]) -> None:
    """The counts the engine reads of every finished connection (``Engine._result``) are
    compiled properties: ``PeerSummary.holes_filled`` and ``SequenceAnalyzer.
    tracking_capped`` give the reference properties' values, before any count (the shared
    empty ``NO_DROPS``) and after."""
    from tcptrace_py.analysis.options import AnalysisOptions
    from tcptrace_py.analysis.sequence import NO_DROPS, SequenceAnalyzer

    peer = compat.PeerSummary()
    ref_peer = type(peer).__reference__.holes_filled.fget  # type: ignore[attr-defined]
    assert peer.holes_filled == ref_peer(peer) == 0
    peer._eps[0].holes_filled = holes_a
    peer._eps[1].holes_filled = holes_b
    assert peer.holes_filled == ref_peer(peer) == holes_a + holes_b

    an = SequenceAnalyzer(AnalysisOptions())
    ref_an = type(an).__reference__.tracking_capped.fget  # type: ignore[attr-defined]
    assert an.evidence_dropped is NO_DROPS
    assert an.tracking_capped == ref_an(an) == 0
    an.evidence_dropped = dict(dropped)
    assert an.tracking_capped == ref_an(an) == (dropped.get("unacked_segments", 0)
                                                 + dropped.get("sequence_holes", 0))


@settings(max_examples=400, deadline=None)
@given(st.integers(-1, 1), st.integers(0, 6), st.integers(0, 6),
       st.lists(st.integers(-5, 2**32 + 5), min_size=6, max_size=6),
       st.integers(0, 2), st.integers(0, 2),
       st.lists(st.tuples(st.sampled_from(list("SHADFRGIQ^")), st.integers(0, 1)),
                max_size=6))
def test_conn_state_twin_is_the_references(orig: int, os_: int, rs: int, seqs: list[int],
                                           fin_o: int, fin_r: int,
                                           letters: list[tuple[str, int]]) -> None:
    """The compiled ``conn_state`` (from the endpoints' C fields, ``_Endpoint.size`` in C)
    names Zeek's state as the reference does for every pair of endpoint states, either
    originator or none, sizes around zero and across the 32-bit wrap (REJ of two empty
    resets), FINs, and histories that do and do not match RSTOS0's pattern; and
    ``completeness`` is the reference's."""
    peer = compat.PeerSummary()
    reference = type(peer).__reference__  # type: ignore[attr-defined]
    assert type(peer).conn_state is not reference.conn_state
    peer._orig = orig
    for e, state, fin, (start, last, ack) in zip(peer._eps, (os_, rs), (fin_o, fin_r),
                                                  (seqs[:3], seqs[3:]), strict=True):
        e.state = state
        e.start_seq, e.last_seq, e.ack_seq = (v & 0xFFFFFFFF for v in (start, last, ack))
        e.fin_cnt = fin
    peer._letters = list(letters)
    peer._ws = 0x2F
    assert peer.conn_state() == reference.conn_state(peer)
    assert peer.completeness() == reference.completeness(peer) == 0x2F
