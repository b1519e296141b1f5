"""Shared pieces of the format readers: limits, the frame tuple type and the damage policy."""

from __future__ import annotations

from typing import Any

from tcptrace_py import units
from tcptrace_py.diagnostics import CaptureError, Diagnostics

# One frame as handed to the decoder: (frame_no, ts_ns, linktype, data, wire_len).
Frame = tuple[int, int, int, bytes, int]

# Frames whose timestamp the outputs cannot hold, per (section, interface): [count, first
# frame, first ts_ns] (see note_out_of_range).
OutOfRange = dict[tuple[int, int], list[int]]

CHUNK_BYTES = 1 << 20
"""Read size. Slicing records out of a 1 MiB buffer is ~10x faster than a read() per record,
and memory stays bounded by this (plus one record) whatever the file size."""

MAX_RECORD_BYTES = 256 * 1024
"""Largest captured length we accept for one packet. libpcap's MAXIMUM_SNAPLEN is 262144 and
Wireshark's WTAP_MAX_PACKET_SIZE_STANDARD is the same: anything bigger is damage, and we
must never allocate by a length read from an untrusted file."""

MAX_BLOCK_BYTES = 16 * 1024 * 1024
"""Largest pcapng block we buffer (Wireshark's MAX_BLOCK_SIZE is 16 MiB as well)."""


class StreamBuffer:
    """A sliding window over a stream: ``buf[pos:]`` are unread bytes, ``base`` is the
    stream offset of ``buf[0]`` (so ``base + pos`` is the byte offset for messages)."""

    __slots__ = ("stream", "buf", "pos", "base", "eof")

    def __init__(self, stream: Any, head: bytes = b"") -> None:
        self.stream = stream
        self.buf = head
        self.pos = 0
        self.base = 0
        self.eof = False

    @property
    def offset(self) -> int:
        return self.base + self.pos

    def fill(self, need: int) -> bool:
        """Make ``need`` unread bytes available; False at end of stream (short data kept)."""
        while len(self.buf) - self.pos < need:
            if self.eof:
                return False
            chunk = self.stream.read(max(CHUNK_BYTES, need))
            if not chunk:
                self.eof = True
                return False
            self.buf = self.buf[self.pos:] + bytes(chunk)
            self.base += self.pos
            self.pos = 0
        return True

    def remaining(self) -> int:
        return len(self.buf) - self.pos


def damage(diag: Diagnostics, display: str, message: str, *, offset: int | None,
           frame: int | None, strict: bool, code: str) -> None:
    """Damage after the header: warn and let the caller stop, or raise when ``strict``."""
    if strict:
        where = []
        if frame is not None:
            where.append(f"frame {frame}")
        if offset is not None:
            where.append(f"offset {offset}")
        loc = f" ({', '.join(where)})" if where else ""
        raise CaptureError(f"{display}{loc}: {message}")
    diag.warn(display, message, offset=offset, frame=frame, code=code)


def note_backwards(diag: Diagnostics, display: str, warned: bool, frame_no: int,
                   ts_ns: int, last_ts_ns: int) -> bool:
    """Timestamps going backwards: keep the frame (Wireshark does too), warn once per file
    and count every occurrence in ``diag.notes``; the first occurrences and the largest step
    are kept for the ``timestamps_backwards`` finding. Returns the new ``warned`` flag."""
    diag.notes["timestamp_backwards"] += 1
    diag.note_backwards(frame_no, ts_ns, last_ts_ns - ts_ns)
    if not warned:
        diag.warn(display, f"timestamp goes backwards by "
                  f"{units.seconds((last_ts_ns - ts_ns) / 1e9)} "
                  "(frames kept in file order; later occurrences only counted)",
                  frame=frame_no, code="timestamp_backwards")
    return True


NS_PER_YEAR = 31_556_952 * 1_000_000_000
"""A mean Gregorian year (365.2425 days), to say roughly where an impossible time lies."""


def note_out_of_range(seen: OutOfRange, section: int, interface: int, frame_no: int,
                      ts_ns: int) -> None:
    """Count a frame whose timestamp lies outside ``segment.TS_NS_MIN..TS_NS_MAX``.

    Why not a warning per frame: such a time comes from the interface's description (a bad
    ``if_tsoffset``/``if_tsresol``) or a writer's bug, so it hits every frame of the
    interface; :func:`report_out_of_range` warns once per interface with the count. Called
    only for such frames: the common path pays two integer comparisons."""
    entry = seen.get((section, interface))
    if entry is None:
        seen[(section, interface)] = [1, frame_no, ts_ns]
    else:
        entry[0] += 1


def describe_time(ts_ns: int) -> str:
    """Where an out-of-range time lies, for a warning (``year 586524``, ``8 min 25 s before
    1970``, ``63,323 years before 1970``): a date cannot be printed for it."""
    if ts_ns < 0:
        if -ts_ns < NS_PER_YEAR:
            return f"{units.seconds(-ts_ns / 1e9)} before 1970"
        return f"{-ts_ns // NS_PER_YEAR:,} years before 1970"
    return f"year {1970 + ts_ns // NS_PER_YEAR}"


def report_out_of_range(diag: Diagnostics, display: str, seen: OutOfRange,
                        several_sections: bool) -> None:
    """One ``timestamp_out_of_range`` warning per interface that had such frames, with the
    count (also summed in ``diag.notes``)."""
    for (section, interface), (count, first_frame, first_ts) in sorted(seen.items()):
        diag.notes["timestamp_out_of_range"] += count
        where = f"interface {interface}" + (f" of section {section}" if several_sections
                                            else "")
        diag.warn(display, f"{where}: {count} frame(s) with a timestamp outside 1970-2262 "
                  f"(the first one in {describe_time(first_ts)}): analysed, their times "
                  "are null in every output", frame=first_frame,
                  code="timestamp_out_of_range")


def update_ts_range(diag: Diagnostics, min_ts_ns: int | None, max_ts_ns: int | None) -> None:
    """Fold the min/max timestamps seen into ``diag.first_ts_ns``/``last_ts_ns``."""
    if min_ts_ns is not None and (diag.first_ts_ns is None or min_ts_ns < diag.first_ts_ns):
        diag.first_ts_ns = min_ts_ns
    if max_ts_ns is not None and (diag.last_ts_ns is None or max_ts_ns > diag.last_ts_ns):
        diag.last_ts_ns = max_ts_ns
