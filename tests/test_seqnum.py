"""Modulo-2**32 arithmetic and unwrapping (Hypothesis)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tcptrace_py.seqnum import (
    SEQ_HALF,
    seq_add,
    seq_diff,
    seq_ge,
    seq_gt,
    seq_le,
    seq_lt,
    unwrap,
    wrap,
)

u32 = st.integers(0, 2**32 - 1)
near = st.integers(-(2**31) + 1, 2**31 - 1)


@given(u32, near)
def test_diff_inverts_add(a: int, n: int) -> None:
    assert seq_diff(seq_add(a, n), a) == n


@given(u32, near)
def test_order_is_consistent(a: int, n: int) -> None:
    b = seq_add(a, n)
    assert seq_lt(a, b) == (n > 0)
    assert seq_gt(b, a) == (n > 0)
    assert seq_le(a, b) == (n >= 0)
    assert seq_ge(b, a) == (n >= 0)


@given(u32, st.integers(0, 2**40), st.integers(-(2**31) + 1, 2**31 - 1))
def test_unwrap_recovers_64bit_offsets(base: int, ref_rel: int, delta: int) -> None:
    """Any offset within 2**31 of the reference comes back exactly, past 4 GiB too."""
    rel = ref_rel + delta
    assert unwrap(wrap(rel, base), base, ref_rel) == rel


def test_isn_just_below_wrap() -> None:
    base = 2**32 - 10
    assert unwrap(5, base, 1) == 15
    assert seq_lt(2**32 - 1, 3)
    assert seq_diff(0, 2**32 - 1) == 1
    assert seq_diff(SEQ_HALF, 0) == -SEQ_HALF
