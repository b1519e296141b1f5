"""RangeSet against a plain Python set model (Hypothesis)."""

from __future__ import annotations

import gc

from hypothesis import given
from hypothesis import strategies as st

from tcptrace_py.analysis.rangeset import RangeSet

ranges = st.lists(st.tuples(st.integers(0, 200), st.integers(0, 40)), max_size=40)


@given(ranges)
def test_add_reports_overlap_and_matches_model(items: list[tuple[int, int]]) -> None:
    rs = RangeSet()
    model: set[int] = set()
    for start, length in items:
        span = set(range(start, start + length))
        assert rs.overlap(start, start + length) == len(span & model)
        assert rs.add(start, start + length) == len(span & model)
        model |= span
        assert rs.covered() == len(model)
    pairs = list(rs)
    # Disjoint, sorted and never adjacent (adjacent ranges merge).
    for (s1, e1), (s2, _e2) in zip(pairs, pairs[1:], strict=False):
        assert s1 < e1 < s2
    assert {i for s, e in pairs for i in range(s, e)} == model
    for i in range(0, 245, 7):
        assert (i in rs) == (i in model)
    assert rs.holes() == max(0, len(pairs) - 1)


def test_in_order_stream_stays_one_range() -> None:
    rs = RangeSet()
    for i in range(1000):
        assert rs.add(1 + i * 1448, 1 + (i + 1) * 1448) == 0
    assert len(rs) == 1
    assert rs.bounds() == (1, 1 + 1000 * 1448)
    assert rs.add(100, 200) == 100
    assert rs.add(5, 5) == 0


@given(ranges, st.integers(0, 40))
def test_reading_the_lists_midway_changes_nothing(items: list[tuple[int, int]],
                                                  read_at: int) -> None:
    """The compiled set holds its one range in C fields and makes the reference's lists
    when they are read: reading them at any point gives the reference's lists, and later
    additions behave as if they had always been lists."""
    rs = RangeSet()
    model: set[int] = set()
    for k, (start, length) in enumerate(items):
        if k == read_at:
            starts, ends = list(rs._starts), list(rs._ends)
            assert list(zip(starts, ends, strict=True)) == list(rs)
        span = set(range(start, start + length))
        assert rs.add(start, start + length) == len(span & model)
        model |= span
    assert rs.covered() == len(model)
    assert {i for s, e in rs for i in range(s, e)} == model


def test_one_range_holds_no_lists() -> None:
    """A loss-free stream's set (one range) needs no list under the compiled engine; it
    answers every question as the reference's two lists would."""
    from tcptrace_py import implementation

    rs = RangeSet()
    assert len(rs) == 0 and list(rs) == [] and rs.bounds() is None and rs.covered() == 0
    assert rs.overlap(0, 10) == 0 and 5 not in rs and rs.merge_lowest(3) == 0
    rs.add(1, 100)
    rs.add(100, 200)
    assert rs.add(50, 60) == 10 and rs.add(0, 1) == 0  # inside it; touching its start
    if implementation.compiled is not None:
        assert not [o for o in gc.get_referents(rs) if type(o) is list]
    assert list(rs) == [(0, 200)] and len(rs) == 1 and rs.holes() == 0
    assert 150 in rs and 200 not in rs and "150" not in rs
    assert rs.covered() == 200 and rs.bounds() == (0, 200) and rs.overlap(190, 210) == 10
    assert rs.merge_lowest(2) == 0 and repr(rs) == "RangeSet([(0, 200)])"
    assert rs.add(300, 400) == 0  # a hole: two ranges
    assert rs._starts == [0, 300] and rs._ends == [200, 400] and rs.holes() == 1
    assert rs.merge_lowest(1) == 100 and list(rs) == [(0, 400)]
