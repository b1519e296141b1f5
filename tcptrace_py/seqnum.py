"""Modulo-2**32 sequence arithmetic and unwrapping to 64-bit relative offsets.

Why: TCP sequence numbers live on a 32-bit circle (RFC 9293 section 3.4: "the sequence number
space is finite ... all arithmetic dealing with sequence numbers must be performed modulo
2**32"). Comparisons therefore look at the signed 32-bit difference, and a stream longer than
4 GiB (or an ISN just below 2**32) must be *unwrapped* against a nearby reference so that the
analysis can keep plain Python integers in a range set. Every function is pure.
"""

from __future__ import annotations

SEQ_MOD = 1 << 32
"""Size of the sequence-number space."""
SEQ_MASK = SEQ_MOD - 1
SEQ_HALF = 1 << 31
"""Half the space: differences of at least this much are read as negative (RFC 1982 style)."""


def seq_diff(a: int, b: int) -> int:
    """Signed distance ``a - b`` on the 32-bit circle, in ``[-2**31, 2**31)``."""
    return ((a - b + SEQ_HALF) & SEQ_MASK) - SEQ_HALF


def seq_lt(a: int, b: int) -> bool:
    """``a`` precedes ``b`` (RFC 9293 ``SEG.SEQ < RCV.NXT`` in modular terms)."""
    return seq_diff(a, b) < 0


def seq_le(a: int, b: int) -> bool:
    """``a`` precedes or equals ``b``."""
    return seq_diff(a, b) <= 0


def seq_gt(a: int, b: int) -> bool:
    """``a`` follows ``b``."""
    return seq_diff(a, b) > 0


def seq_ge(a: int, b: int) -> bool:
    """``a`` follows or equals ``b``."""
    return seq_diff(a, b) >= 0


def seq_add(a: int, n: int) -> int:
    """``a + n`` wrapped back onto the 32-bit circle."""
    return (a + n) & SEQ_MASK


def unwrap(seq: int, base: int, ref_rel: int) -> int:
    """Relative 64-bit offset of raw ``seq`` from ``base`` (e.g. the ISN), nearest ``ref_rel``.

    ``ref_rel`` is a relative offset already known (usually the highest one seen so far); the
    result is the unique value congruent to ``seq - base`` modulo 2**32 within 2**31 of it.
    This is how a stream can run past 4 GiB: each new number is read next to the last one.
    """
    d = (seq - base - ref_rel + SEQ_HALF) & SEQ_MASK
    return ref_rel + d - SEQ_HALF


def wrap(rel: int, base: int) -> int:
    """Inverse of :func:`unwrap`: the raw 32-bit sequence number of a relative offset."""
    return (base + rel) & SEQ_MASK
