"""A small set of half-open integer ranges ``[start, end)`` over unwrapped sequence space.

Why: tcptrace's ``rexmit.c`` keeps, per direction, every range of sequence space seen sent;
a new segment is a retransmission exactly when it overlaps that set, and out of order when it
fills a hole below the highest byte sent. Merging adjacent ranges keeps the set at one range
for a loss-free stream, so memory follows the number of holes, not the number of segments.
Modelled on aioquic's ``quic/rangeset.py`` (two sorted lists, bisect).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterator


class RangeSet:
    """Disjoint, non-adjacent, sorted ranges ``[start, end)``."""

    __slots__ = ("_starts", "_ends")

    def __init__(self) -> None:
        self._starts: list[int] = []
        self._ends: list[int] = []

    def add(self, start: int, end: int) -> int:
        """Insert ``[start, end)``; return how many of its integers were already present.

        The return value is what tcptrace calls the retransmitted byte count of a segment.
        """
        if end <= start:
            return 0
        starts = self._starts
        ends = self._ends
        # Fast path: in-order data extends (or follows) the last range.
        if not starts or start >= ends[-1]:
            if starts and start == ends[-1]:
                ends[-1] = end
            else:
                starts.append(start)
                ends.append(end)
            return 0
        # General path: find ranges that touch [start, end] (adjacent ones merge too).
        lo = bisect_left(ends, start)
        hi = bisect_right(starts, end)
        overlap = 0
        new_start = start
        new_end = end
        for i in range(lo, hi):
            s = starts[i]
            e = ends[i]
            ov = min(e, end) - max(s, start)
            if ov > 0:
                overlap += ov
            if s < new_start:
                new_start = s
            if e > new_end:
                new_end = e
        starts[lo:hi] = [new_start]
        ends[lo:hi] = [new_end]
        return overlap

    def overlap(self, start: int, end: int) -> int:
        """How many integers of ``[start, end)`` are in the set (no change)."""
        if end <= start or not self._starts:
            return 0
        starts = self._starts
        ends = self._ends
        lo = bisect_right(ends, start)
        total = 0
        for i in range(lo, len(starts)):
            s = starts[i]
            if s >= end:
                break
            total += min(ends[i], end) - max(s, start)
        return total

    def __contains__(self, value: object) -> bool:
        if not isinstance(value, int):
            return False
        i = bisect_right(self._starts, value) - 1
        return i >= 0 and value < self._ends[i]

    def covered(self) -> int:
        """Total number of integers in the set (e.g. unique bytes sent)."""
        return sum(e - s for s, e in zip(self._starts, self._ends, strict=True))

    def bounds(self) -> tuple[int, int] | None:
        """``(lowest, highest + 1)`` or None when empty."""
        if not self._starts:
            return None
        return self._starts[0], self._ends[-1]

    def merge_lowest(self, n: int) -> int:
        """Merge the lowest ``n + 1`` ranges into one (fill the ``n`` lowest holes); return
        how many integers the filled holes held. Bounds the set's size when a caller caps it;
        the caller owns the meaning of the filled integers."""
        n = min(n, len(self._starts) - 1)
        if n <= 0:
            return 0
        starts = self._starts
        ends = self._ends
        filled = sum(starts[i + 1] - ends[i] for i in range(n))
        del starts[1:n + 1]
        ends[0:n + 1] = [ends[n]]
        return filled

    def holes(self) -> int:
        """Number of gaps between the first and the last range."""
        return max(0, len(self._starts) - 1)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return iter(zip(self._starts, self._ends, strict=True))

    def __len__(self) -> int:
        return len(self._starts)

    def __repr__(self) -> str:
        return f"RangeSet({list(self)})"


# The compiled engine's twins (tcptrace_py/implementation.py, tcptrace_py/_engine.pyx).
from tcptrace_py.implementation import twin  # noqa: E402

RangeSet = twin(RangeSet, "RangeSetBase")  # type: ignore[misc]
