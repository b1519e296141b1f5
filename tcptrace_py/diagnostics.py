"""Diagnostics: what the pipeline could not use, counted and reported, never lost silently.

Every stage that drops a frame calls :meth:`Diagnostics.skip` with a short reason code; every
problem a user should hear about becomes a :class:`CaptureWarning` (one line, naming the file
and the byte offset or frame). The core never prints: sinks (the CLI) decide how to show them.
"""

from __future__ import annotations

from collections import Counter

from tcptrace_py.lazy_dataclass import dataclass, field

MAX_KEPT_WARNINGS = 1000  # warnings kept verbatim; later ones are only counted (bounded memory)
MAX_KEPT_BACKWARDS = 20
"""Timestamp steps backwards kept with their frame and time (the ``timestamps_backwards``
finding lists them); later ones are counted in ``notes`` and only the largest is kept."""

Backwards = tuple[int, int, int]
"""A timestamp step backwards: (frame, ts_ns of that frame, how far back in ns)."""


class CaptureError(Exception):
    """A capture that cannot be read at all (missing, not a capture, empty...).

    The message is one line naming the file; the CLI prints it and exits with status 2.
    """


@dataclass(frozen=True, slots=True)
class CaptureWarning:
    """A problem found while reading or analysing; the results that could be read are kept."""

    source: str
    """File name (or ``-`` for standard input) the warning applies to."""
    message: str
    """One human-readable line, without the file name."""
    offset: int | None = None
    """Byte offset in the (decompressed) capture where the problem starts, if known."""
    frame: int | None = None
    """1-based frame number the problem applies to, if known."""
    code: str = "warning"
    """Stable snake_case code, e.g. ``truncated_record``, ``timestamp_backwards``."""

    def __str__(self) -> str:
        where = []
        if self.frame is not None:
            where.append(f"frame {self.frame}")
        if self.offset is not None:
            where.append(f"offset {self.offset}")
        loc = f" ({', '.join(where)})" if where else ""
        return f"{self.source}{loc}: {self.message}"


@dataclass(slots=True)
class Diagnostics:
    """Counters and warnings for one analysis run (possibly several files)."""

    frames: int = 0
    """Frames read from the capture(s)."""
    tcp_segments: int = 0
    """Frames that decoded to a TCP segment."""
    skipped: Counter[str] = field(default_factory=Counter)
    """Frames not analysed, by reason (``not_ip``, ``not_tcp``, ``ip_fragment``...)."""
    link_types: Counter[int] = field(default_factory=Counter)
    """Frames per link type (DLT/LINKTYPE number)."""
    warnings: list[CaptureWarning] = field(default_factory=list)
    """The first MAX_KEPT_WARNINGS warnings, in order."""
    warnings_dropped: int = 0
    """Warnings beyond MAX_KEPT_WARNINGS (counted only)."""
    first_ts_ns: int | None = None
    last_ts_ns: int | None = None
    notes: Counter[str] = field(default_factory=Counter)
    """Non-fatal observations counted per code (``truncated_frame``, ``unknown_block``...)."""
    backwards: list[Backwards] = field(default_factory=list)
    """The first MAX_KEPT_BACKWARDS timestamp steps backwards (``notes`` counts them all)."""
    backwards_max: Backwards | None = None
    """The largest timestamp step backwards."""
    backwards_last: Backwards | None = None
    """The last timestamp step backwards."""

    def skip(self, reason: str, n: int = 1) -> None:
        self.skipped[reason] += n

    def warn(self, source: str, message: str, *, offset: int | None = None,
             frame: int | None = None, code: str = "warning") -> None:
        if len(self.warnings) < MAX_KEPT_WARNINGS:
            self.warnings.append(CaptureWarning(source, message, offset, frame, code))
        else:
            self.warnings_dropped += 1

    def note_backwards(self, frame: int, ts_ns: int, back_ns: int) -> None:
        """Remember a timestamp step backwards (the reader counts it in ``notes``)."""
        step = (frame, ts_ns, back_ns)
        if len(self.backwards) < MAX_KEPT_BACKWARDS:
            self.backwards.append(step)
        if self.backwards_max is None or back_ns > self.backwards_max[2]:
            self.backwards_max = step
        self.backwards_last = step

    def merge(self, other: Diagnostics) -> None:
        """Fold another run's diagnostics into this one (multi-file and batch runs)."""
        self.frames += other.frames
        self.tcp_segments += other.tcp_segments
        self.skipped.update(other.skipped)
        self.link_types.update(other.link_types)
        self.notes.update(other.notes)
        for w in other.warnings:
            if len(self.warnings) < MAX_KEPT_WARNINGS:
                self.warnings.append(w)
            else:
                self.warnings_dropped += 1
        self.warnings_dropped += other.warnings_dropped
        self.backwards.extend(other.backwards[:MAX_KEPT_BACKWARDS - len(self.backwards)])
        if other.backwards_max is not None and (
                self.backwards_max is None or other.backwards_max[2] > self.backwards_max[2]):
            self.backwards_max = other.backwards_max
        if other.backwards_last is not None:
            self.backwards_last = other.backwards_last
        for ts in (other.first_ts_ns, other.last_ts_ns):
            if ts is None:
                continue
            if self.first_ts_ns is None or ts < self.first_ts_ns:
                self.first_ts_ns = ts
            if self.last_ts_ns is None or ts > self.last_ts_ns:
                self.last_ts_ns = ts
