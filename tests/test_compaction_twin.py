"""The compiled twin of ``SequenceAnalyzer._compact_sender`` keeps what the reference keeps.

Compaction runs once per closed connection and changes only what a late segment can find
(docs/sequence-analysis.md, "Compaction"), so whole-capture equivalence (test_engines) sees
few of its cases. Here both run on the same sender histories: records of either kind
(``SentSegment`` and the steady path's tuples), equal ends (the tail's tie rule), re-sent
records, any SND.UNA, and index keys that miss records.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tcptrace_py import implementation
from tcptrace_py.analysis import sequence
from tcptrace_py.analysis.direction import SenderState, SentSegment
from tcptrace_py.analysis.rtt import RttEstimator

pytestmark = pytest.mark.skipif(implementation.compiled is None,
                                reason="compiled engine not built or not selected")

record = st.tuples(st.integers(0, 40), st.integers(1, 12), st.booleans(),
                   st.integers(-1, 2))
"""(start, length, kept as a tuple, rexmit_index) of one remembered segment; up to 40 a
sender, past the 16 identities the twin holds without a set."""


def _state(specs: list[tuple[int, int, bool, int]], una: int, extra_keys: list[int],
           empty_order: bool) -> tuple[Any, list[Any]]:
    state: Any = SenderState(RttEstimator())
    state.snd_una = una
    recs: list[Any] = []
    for i, (start, length, as_tuple, rexmit) in enumerate(specs):
        rec: Any
        if as_tuple:
            rec = (start, start + length, 100 + i, 1000 + i)
        else:
            rec = SentSegment(start, start + length, 100 + i, 1000 + i, "")
            rec.rexmit_index = rexmit
        recs.append(rec)
        state.by_start.setdefault(start, rec)
        state.by_end[start + length] = rec
    for k in extra_keys:  # an index key whose record is not in ``order``
        state.by_end.setdefault(k, recs[0] if recs else ("x", k))
    state.order = None if empty_order and not recs else list(recs)
    return state, recs


def _view(state: Any, recs: list[Any]) -> tuple[Any, ...]:
    def index(v: Any) -> int:
        # The twin may pack a tail of tuples held nowhere else (``SenderStateBase._pack``)
        # and make equal ones when the index is read: a tuple is matched by value.
        found = next((i for i, r in enumerate(recs) if r is v), -1)
        if found < 0 and type(v) is tuple:
            found = next((i for i, r in enumerate(recs) if type(r) is tuple and r == v), -1)
        return found

    def ids(d: dict[int, Any]) -> list[tuple[int, int]]:
        return [(k, index(v)) for k, v in d.items()]

    order = state.order
    return (ids(state.by_end), ids(state.by_start),
            None if order is None else [next(i for i, r in enumerate(recs) if r is v)
                                        for v in order], type(order))


@settings(max_examples=300, deadline=None)
@given(st.lists(record, max_size=40), st.integers(0, 50), st.lists(st.integers(0, 60),
                                                                    max_size=3),
       st.booleans())
def test_twin_keeps_what_the_reference_keeps(specs: list[tuple[int, int, bool, int]],
                                             una: int, extra_keys: list[int],
                                             empty_order: bool) -> None:
    reference = sequence.SequenceAnalyzer.__reference__._compact_sender  # type: ignore[attr-defined]
    twin = sequence.SequenceAnalyzer._compact_sender
    assert twin is not reference
    a, recs_a = _state(specs, una, extra_keys, empty_order)
    b, recs_b = _state(specs, una, extra_keys, empty_order)
    assert twin(a) == reference(b)
    assert _view(a, recs_a) == _view(b, recs_b)


def test_tail_ties_keep_the_later_records() -> None:
    """Three records ending at the same byte, all acknowledged: the tail keeps the last two
    sent (stable sort order), as the reference's ``sorted(...)[-2:]``."""
    specs = [(0, 10, False, -1), (5, 5, False, -1), (8, 2, False, -1), (0, 4, True, -1)]
    a, recs = _state(specs, 50, [], False)
    sequence.SequenceAnalyzer._compact_sender(a)
    kept = {id(r) for r in a.by_start.values()}
    assert kept == {id(recs[1]), id(recs[2])}


@settings(max_examples=300, deadline=None)
@given(st.lists(record, max_size=40), st.integers(0, 50), st.lists(st.integers(0, 60),
                                                                    max_size=3),
       st.booleans())
def test_prune_twin_forgets_what_the_reference_forgets(
        specs: list[tuple[int, int, bool, int]], una: int, extra_keys: list[int],
        empty_order: bool) -> None:
    """``SequenceAnalyzer._prune`` (a bulk sender past ``max_tracked_segments``): the twin
    pops the same acknowledged records and drops the same index entries (only those that
    hold the popped record itself)."""
    reference = sequence.SequenceAnalyzer.__reference__._prune  # type: ignore[attr-defined]
    twin = sequence.SequenceAnalyzer._prune
    assert twin is not reference
    a, recs_a = _state(specs, una, extra_keys, empty_order)
    b, recs_b = _state(specs, una, extra_keys, empty_order)
    twin(a)
    reference(b)
    assert _view(a, recs_a) == _view(b, recs_b)


def _finished_connections(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The finished connections of samples/normal.pcap, as the engine hands them over."""
    from pathlib import Path

    import tcptrace_py.engine as engine_module
    from tcptrace_py import report
    from tcptrace_py.engine import Engine
    from tcptrace_py.options import Options

    seen: list[Any] = []

    def spy(conn: Any, codes: list[str] | None = None) -> dict[str, Any]:
        seen.append(conn)
        return report.flow_record(conn, codes)

    with monkeypatch.context() as m:
        m.setattr(engine_module, "flow_record", spy)
        path = Path(__file__).resolve().parents[1] / "samples" / "normal.pcap"
        for _ in Engine(Options()).run(str(path)):
            pass
    return seen


def _analyzer_view(conn: Any) -> tuple[Any, ...]:
    out: list[Any] = []
    for state in (conn.analyzer._c, conn.analyzer._s):
        order = state.order
        out.append((list(state.by_end), list(state.by_start),
                    None if order is None else len(order)))
    return tuple(out)


def test_connection_compact_twin_follows_the_reference(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """``Connection.compact`` and ``SequenceAnalyzer.compact`` (the full path calls their
    compiled entry points): for every pair of end states, compacted or not, the same answer,
    the same flag and the same analyzer afterwards."""
    from tcptrace_py.connection import Connection
    from tcptrace_py.fsm import TcpState

    reference = Connection.__reference__.compact  # type: ignore[attr-defined]
    assert Connection.compact is not reference
    assert sequence.SequenceAnalyzer.compact is not \
        sequence.SequenceAnalyzer.__reference__.compact  # type: ignore[attr-defined]
    twins, refs = _finished_connections(monkeypatch), _finished_connections(monkeypatch)
    assert twins and len(twins) == len(refs)
    for a, b in zip(twins, refs, strict=True):
        for cs in TcpState:
            for ss in TcpState:
                for compacted in (False, True):
                    for conn in (a, b):
                        conn.client.state, conn.server.state = cs, ss
                        conn.compacted = compacted
                    assert a.compact() == reference(b)
                    assert a.compacted == b.compacted
                    assert _analyzer_view(a) == _analyzer_view(b)


def _fed_conversation(variant: str) -> list[Any]:
    """A client's bulk data, each segment acknowledged, then its FIN; ``variant``:
    ``acked`` (everything acknowledged), ``last_unacked`` (neither the last segment nor
    the FIN), ``fin_unacked`` (not the FIN), ``resent`` (segment 3 sent again: the
    sender's records become mutable)."""
    from analysis_feed import Pkt

    from tcptrace_py.segment import ACK, FIN, PSH, SYN

    c, s, mss = 1000, 5000, 1000
    pkts = [Pkt(0.0, True, SYN, c, 0, mss=mss), Pkt(0.01, False, SYN | ACK, s, c + 1, mss=mss),
            Pkt(0.02, True, ACK, c + 1, s + 1)]
    t = 0.03
    for n in range(8):
        pkts.append(Pkt(t, True, ACK | PSH, c + 1 + n * mss, s + 1, mss))
        if not (variant == "last_unacked" and n == 7):
            pkts.append(Pkt(t + 0.005, False, ACK, s + 1, c + 1 + (n + 1) * mss))
        t += 0.01
    if variant == "resent":
        pkts.append(Pkt(t, True, ACK, c + 1 + 3 * mss, s + 1, mss))
        t += 0.01
    end = c + 1 + 8 * mss
    pkts.append(Pkt(t, True, FIN | ACK, end, s + 1))
    if variant in ("acked", "resent"):
        pkts.append(Pkt(t + 0.01, False, ACK, s + 1, end + 1))
    return pkts


def _fields(v: Any) -> Any:
    if type(v) is tuple:
        return v
    return (v.start, v.end, v.frame, v.ts_ns, v.tx, v.control, v.rexmit_index)


@pytest.mark.parametrize("variant", ["acked", "last_unacked", "fin_unacked", "resent"])
def test_a_fed_senders_compaction_twin_keeps_what_the_reference_keeps(
        tmp_path: Any, variant: str) -> None:
    """Senders the compiled path filled (pending in-order records, a pending FIN record),
    compacted by the twin and by the reference: the same count, then the same records
    under the same keys and in ``order``. All acknowledged is the twin's shortcut
    (``_keeps_nothing``: only the packed tail is left); an unacknowledged last segment or
    FIN, or a sender that re-sent data (mutable), takes its general path."""
    from analysis_feed import feed, read_segments, write_pcap

    path = write_pcap(tmp_path / "c.pcap", _fed_conversation(variant))
    (a,) = feed(read_segments(path))
    (b,) = feed(read_segments(path))
    twin_state: Any = a.analyzer._c
    ref_state: Any = b.analyzer._c
    if variant != "resent":
        assert twin_state.pending_records() == 8  # the in-order data, never made
    reference = sequence.SequenceAnalyzer.__reference__._compact_sender  # type: ignore[attr-defined]
    assert sequence.SequenceAnalyzer._compact_sender(twin_state) == reference(ref_state)
    for name in ("by_end", "by_start"):
        mine, theirs = getattr(twin_state, name), getattr(ref_state, name)
        assert [(k, _fields(v)) for k, v in mine.items()] == \
            [(k, _fields(v)) for k, v in theirs.items()], name
    mine_order, ref_order = twin_state.order, ref_state.order
    assert (None if mine_order is None else [_fields(v) for v in mine_order]) == \
        (None if ref_order is None else [_fields(v) for v in ref_order])
    if variant == "acked":
        assert mine_order is None and len(twin_state.by_end) == 2  # the packed tail
