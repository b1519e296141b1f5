"""Shared pieces of the format readers: limits, the frame tuple type and the damage policy."""

from __future__ import annotations

from typing import Any

from tcptrace_py.diagnostics import CaptureError, Diagnostics

# One frame as handed to the decoder: (frame_no, ts_ns, linktype, data, wire_len).
Frame = tuple[int, int, int, bytes, int]

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
    and count every occurrence in ``diag.notes``. Returns the new ``warned`` flag."""
    diag.notes["timestamp_backwards"] += 1
    if not warned:
        diag.warn(display, f"timestamp goes backwards by {last_ts_ns - ts_ns} ns "
                  "(frames kept in file order; later occurrences only counted)",
                  frame=frame_no, code="timestamp_backwards")
    return True


def update_ts_range(diag: Diagnostics, min_ts_ns: int | None, max_ts_ns: int | None) -> None:
    """Fold the min/max timestamps seen into ``diag.first_ts_ns``/``last_ts_ns``."""
    if min_ts_ns is not None and (diag.first_ts_ns is None or min_ts_ns < diag.first_ts_ns):
        diag.first_ts_ns = min_ts_ns
    if max_ts_ns is not None and (diag.last_ts_ns is None or max_ts_ns > diag.last_ts_ns):
        diag.last_ts_ns = max_ts_ns
