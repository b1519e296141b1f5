"""Segment records: ``FreshSegment`` tuples give exactly the answers ``SentSegment`` gave.

Why: since round 3 of issue 7 (docs/benchmarks.md) a data segment sent once is remembered as
a plain ``(start, end, frame, ts_ns)`` tuple, and a side's records become ``SentSegment``
objects only at its first data retransmission (``SenderState.make_mutable``). These tests
run the same captures twice, once as shipped and once with every side mutable from the start
(the pre-round-3 representation), and require identical results: columns, evidence, per-frame
flags, and what pruning and compaction keep.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
from analysis_feed import SHARED, FedConnection, Pkt, feed, read_segments, write_pcap

from tcptrace_py.analysis import AnalysisOptions
from tcptrace_py.analysis.direction import SenderState
from tcptrace_py.segment import ACK, FIN, PSH, SYN

C, S, MSS = 1000, 5000, 1000
SMALL_TRACKING = AnalysisOptions(max_tracked_segments=8)
"""Prune often: acknowledged tuples and records are dropped from the left many times."""


def _conversation() -> list[Pkt]:
    """Bulk client data with ACKs every other segment, an RTO re-send, a spurious re-send of
    acknowledged data answered by a D-SACK (RFC 2883), more data, and a FIN exchange."""
    pkts = [Pkt(0.0, True, SYN, C, 0, mss=MSS, sack_permitted=True),
            Pkt(0.01, False, SYN | ACK, S, C + 1, mss=MSS, sack_permitted=True),
            Pkt(0.02, True, ACK, C + 1, S + 1)]
    t = 0.03
    for n in range(30):
        pkts.append(Pkt(t, True, ACK | PSH, C + 1 + n * MSS, S + 1, MSS))
        if n % 2 and n < 20:  # from segment 20 on, the ACKs are lost
            pkts.append(Pkt(t + 0.005, False, ACK, S + 1, C + 1 + (n + 1) * MSS))
        t += 0.01
    # No ACK for segment 20 on: RTO re-send of it, then the ACK jumps to the end.
    pkts.append(Pkt(t + 1.0, True, ACK, C + 1 + 20 * MSS, S + 1, MSS))
    pkts.append(Pkt(t + 1.01, False, ACK, S + 1, C + 1 + 30 * MSS))
    # Spurious re-send of segment 5 (acknowledged long ago), reported by a D-SACK.
    old = C + 1 + 5 * MSS
    pkts.append(Pkt(t + 1.1, True, ACK, old, S + 1, MSS))
    pkts.append(Pkt(t + 1.11, False, ACK, S + 1, C + 1 + 30 * MSS,
                    sack=((old, old + MSS),)))
    t += 1.2
    for n in range(30, 50):
        pkts.append(Pkt(t, True, ACK | PSH, C + 1 + n * MSS, S + 1, MSS))
        pkts.append(Pkt(t + 0.005, False, ACK, S + 1, C + 1 + (n + 1) * MSS))
        t += 0.01
    end = C + 1 + 50 * MSS
    pkts += [Pkt(t, True, FIN | ACK, end, S + 1), Pkt(t + 0.01, False, FIN | ACK, S + 1, end + 1),
             Pkt(t + 0.02, True, ACK, end + 1, S + 2)]
    return pkts


def _all_mutable(monkeypatch: pytest.MonkeyPatch) -> None:
    init = SenderState.__init__

    def mutable_init(self: SenderState, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        self.mutable = True

    monkeypatch.setattr(SenderState, "__init__", mutable_init)


def _result(conns: list[FedConnection]) -> list[Any]:
    out: list[Any] = []
    for c in conns:
        a = c.analyzer
        out.append((a.columns(), [asdict(r) for r in a.retransmissions],
                    [asdict(k) for k in a.keepalives], [asdict(z) for z in a.zero_window_probes],
                    [asdict(w) for w in a.window_full_events], c.masks,
                    a.compact(), sorted(a._c.by_start), sorted(a._c.by_end),
                    sorted(a._s.by_start), sorted(a._s.by_end)))
    return out


@pytest.mark.parametrize("options", [None, SMALL_TRACKING], ids=["default", "pruning"])
def test_tuple_records_answer_as_sent_segments(tmp_path: Path, options: AnalysisOptions | None,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    segs = read_segments(write_pcap(tmp_path / "conv.pcap", _conversation()))
    fast = feed(segs, options)
    (conn,) = fast
    rexmits = conn.analyzer.retransmissions
    # The capture exercises what it claims: an RTO re-send naming its original frame, a
    # spurious one whose original is a record that was a tuple until then, marked by D-SACK.
    assert [(r.trigger, r.spurious) for r in rexmits] == [("rto", False), ("rto", True)]
    if options is None:
        assert all(r.original_frame > 0 for r in rexmits)
    else:  # segment 5 was pruned long before its re-send: no original to name
        assert rexmits[0].original_frame > 0 and rexmits[1].original_frame == -1
    assert conn.analyzer._c.mutable and not conn.analyzer._s.mutable
    fast_result = _result(fast)
    _all_mutable(monkeypatch)
    assert _result(feed(segs, options)) == fast_result


def test_fresh_segments_are_tuples_until_a_data_retransmission(tmp_path: Path) -> None:
    pkts = _conversation()
    first_rexmit = next(i for i, p in enumerate(pkts) if p.t_s > 1.0)
    (conn,) = feed(read_segments(write_pcap(tmp_path / "a.pcap", pkts[:first_rexmit])))
    sender = conn.analyzer._c
    assert not sender.mutable
    assert sender.order is not None and all(type(r) is tuple for r in sender.order)
    (conn,) = feed(read_segments(write_pcap(tmp_path / "b.pcap", pkts[:first_rexmit + 1])))
    sender = conn.analyzer._c
    assert sender.mutable
    assert sender.order is not None and not any(type(r) is tuple for r in sender.order)
    # One object per segment, shared by the two indexes and the order (as before tuples).
    assert all(sender.by_start[r.start] is r for r in sender.order  # type: ignore[union-attr]
               if r.start in sender.by_start)  # type: ignore[union-attr]


@pytest.mark.skipif(not (SHARED / "scenarios").is_dir(), reason="../shared absent")
def test_scenario_captures_identical_with_tuple_records(monkeypatch: pytest.MonkeyPatch) -> None:
    paths = sorted((SHARED / "scenarios").glob("*.pcap"))
    assert paths
    segs = {p.name: read_segments(p) for p in paths}
    fast = {name: _result(feed(s, SMALL_TRACKING)) for name, s in segs.items()}
    _all_mutable(monkeypatch)
    for name, s in segs.items():
        assert _result(feed(s, SMALL_TRACKING)) == fast[name], name


def test_a_mutable_sender_keeps_in_order_data_pending(tmp_path: Path) -> None:
    """After a side's first data retransmission its records are ``SentSegment`` objects;
    the compiled twin keeps the in-order data sent afterwards as pending C records
    (``SenderStateBase._pending_record``) and makes each its ``SentSegment`` when
    ``order`` or an index is read: one object per segment, shared by the indexes, with
    the fields the reference gives a segment sent once."""
    from tcptrace_py import implementation

    if implementation.compiled is None:
        pytest.skip("compiled engine not built or not selected")
    pkts = _conversation()
    before_fin = next(i for i, p in enumerate(pkts) if p.flags & FIN)
    (conn,) = feed(read_segments(write_pcap(tmp_path / "a.pcap", pkts[:before_fin])))
    sender: Any = conn.analyzer._c
    assert sender.mutable
    # Segments 21 to 49: the RTO re-send of segment 20 made the records up to its own
    # (``record_starting``); the ACK that followed read a copy (``record_ending``).
    assert sender.pending_records() == 29
    order = sender.order
    assert sender.pending_records() == 0
    assert order is not None and all(type(r) is not tuple for r in order)
    late = [r for r in order if r.start >= 30 * MSS + 1]
    assert len(late) == 20
    for r in late:
        assert sender.by_start[r.start] is r and sender.by_end[r.end] is r
        assert (r.tx, r.control, r.rexmit_index, r.last_interval_ns) == (1, "", -1, -1)
        assert r.last_ts_ns == r.ts_ns


def _fields(rec: Any) -> tuple[Any, ...]:
    return (type(rec), rec.start, rec.end, rec.frame, rec.ts_ns, rec.tx, rec.control,
            rec.last_ts_ns, rec.rexmit_index, rec.last_interval_ns)


def test_a_lookup_makes_only_the_pending_records_up_to_its_own(tmp_path: Path) -> None:
    """``record_starting`` (what the reference's re-send path reads instead of
    ``by_start.get``) makes the pending records up to the one asked for and leaves the
    later ones pending; ``record_ending`` (the ACK path's ``by_end.get``, to read only)
    answers a pending record with a copy of the same fields and makes none; ``tracked``
    counts them without making any. Whatever is read in between, ``order`` and both
    indexes end up holding the objects a full flush makes, in the order sent, and each
    lookup answers what the index would."""
    from tcptrace_py import implementation

    if implementation.compiled is None:
        pytest.skip("compiled engine not built or not selected")
    pkts = _conversation()
    before_fin = next(i for i, p in enumerate(pkts) if p.flags & FIN)
    path = write_pcap(tmp_path / "a.pcap", pkts[:before_fin])
    (conn,) = feed(read_segments(path))
    sender: Any = conn.analyzer._c
    n0 = sender.pending_records()
    assert n0 == 29  # segments 21 to 49 (see the test above)
    total = sender.tracked()
    (whole,) = feed(read_segments(path))
    full: Any = whole.analyzer._c
    full_order = list(full.order)  # the reference's view: every record made at once
    assert total == len(full_order)
    first = 21 * MSS + 1  # the first pending record's start (relative)
    # An absent key makes nothing; so does a pending record's end, answered with a copy.
    assert sender.record_ending(first + 1) is full.by_end.get(first + 1) is None
    assert sender.pending_records() == n0
    copy = sender.record_ending(first + 5 * MSS)
    assert sender.pending_records() == n0
    assert _fields(copy) == _fields(full.by_end[first + 5 * MSS])
    # The 5th pending record's start makes five.
    fifth = sender.record_starting(first + 4 * MSS)
    assert sender.pending_records() == n0 - 5 and sender.tracked() == total
    assert (fifth.start, fifth.end) == (first + 4 * MSS, first + 5 * MSS)
    assert fifth is not copy and _fields(fifth) == _fields(copy)
    # A start among the made ones comes from the index; a later one makes up to it.
    assert sender.record_starting(first + 2 * MSS).end == first + 3 * MSS
    assert sender.pending_records() == n0 - 5
    twelfth = sender.record_starting(first + 11 * MSS)
    assert sender.pending_records() == n0 - 12 and twelfth.end == first + 12 * MSS
    assert sender.record_ending(first + 5 * MSS) is fifth  # made: the index's
    order = sender.order
    assert sender.pending_records() == 0 and len(order) == total
    assert [(r.start, r.end, r.frame, r.ts_ns, r.tx) for r in order] == \
        [(r.start, r.end, r.frame, r.ts_ns, r.tx) for r in full_order]
    assert list(sender.by_end) == list(full.by_end)
    assert list(sender.by_start) == list(full.by_start)
    assert order[-(n0 - 11)] is twelfth and order[-(n0 - 4)] is fifth  # once pending
    for r in order[-n0:]:
        assert sender.by_start[r.start] is r and sender.by_end[r.end] is r
