"""RangeSet against a plain Python set model (Hypothesis)."""

from __future__ import annotations

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
