"""The compiled twin of ``SenderState.make_mutable`` builds what the reference builds.

The first data retransmission of a side turns its remembered ``FreshSegment`` tuples into
``SentSegment`` objects. Whole-capture equivalence (test_engines) sees it once per lossy
sender; here both run on the same histories: tuples shared by ``order`` and both indexes,
tuples in one index only, records that are already ``SentSegment`` objects, no ``order``.
"""

from __future__ import annotations

import sys
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tcptrace_py import implementation
from tcptrace_py.analysis.direction import SenderState, SentSegment
from tcptrace_py.analysis.rtt import RttEstimator

pytestmark = pytest.mark.skipif(implementation.compiled is None,
                                reason="compiled engine not built or not selected")

record = st.tuples(st.integers(0, 60), st.integers(1, 12), st.booleans(), st.booleans(),
                   st.booleans())
"""(start, length, a tuple (else a SentSegment), in ``order``, in ``by_start``)."""


def _state(specs: list[tuple[int, int, bool, bool, bool]], no_order: bool) -> Any:
    state: Any = SenderState(RttEstimator())
    order = []
    for i, (start, length, as_tuple, in_order, in_start) in enumerate(specs):
        rec: Any = ((start, start + length, 100 + i, 1000 + i) if as_tuple
                    else SentSegment(start, start + length, 100 + i, 1000 + i, "x"))
        if in_order:
            order.append(rec)
        if in_start:
            state.by_start.setdefault(start, rec)
        state.by_end[start + length] = rec
    state.order = None if no_order else list(order)
    return state


def _view(state: Any) -> tuple[Any, ...]:
    """Every record's fields, and which containers share one object."""
    seen: dict[int, int] = {}

    def rec(r: Any) -> tuple[Any, ...]:
        n = seen.setdefault(id(r), len(seen))
        return (n, type(r).__name__, r.start, r.end, r.frame, r.ts_ns, r.last_ts_ns, r.tx,
                r.last_interval_ns, r.rexmit_index, r.control)

    order = None if state.order is None else [rec(r) for r in state.order]
    return (state.mutable, type(state.order), order,
            [(k, rec(r)) for k, r in state.by_start.items()],
            [(k, rec(r)) for k, r in state.by_end.items()])


@settings(max_examples=300, deadline=None)
@given(st.lists(record, max_size=30), st.booleans())
def test_twin_builds_what_the_reference_builds(specs: list[tuple[int, int, bool, bool, bool]],
                                               no_order: bool) -> None:
    reference = SenderState.__reference__.make_mutable  # type: ignore[attr-defined]
    twin = SenderState.make_mutable
    assert twin is not reference
    a, b = _state(specs, no_order), _state(specs, no_order)
    twin(a)
    reference(b)
    assert _view(a) == _view(b)
    assert all(type(r) is SentSegment for r in a.by_end.values())


def test_a_tuple_shared_by_three_containers_becomes_one_object() -> None:
    state: Any = SenderState(RttEstimator())
    rec = (1, 11, 7, 70)
    state.order, state.by_start, state.by_end = [rec], {1: rec}, {11: rec}
    state.make_mutable()
    new = state.order[0]
    assert state.by_start[1] is new and state.by_end[11] is new
    assert (new.start, new.end, new.frame, new.ts_ns, new.last_ts_ns, new.tx) == \
        (1, 11, 7, 70, 70, 1)
    assert state.mutable
    # held by the three containers and ``new`` (and getrefcount's argument): the table
    # that made it (the twin's identity map) let it go
    assert sys.getrefcount(new) == 5
