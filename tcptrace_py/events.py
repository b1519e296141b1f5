"""Events and anomalies: the records the engine and the detectors emit.

Both are frozen, slotted value types with a stable shape: they are the public contract that
the JSON/CSV/Parquet exports and the DataFrame API expose.
"""

from __future__ import annotations

from typing import Any

from tcptrace_py.implementation import slots_factory
from tcptrace_py.lazy_dataclass import dataclass, field

SEVERITIES = ("info", "warning", "error")
SEVERITY_RANK = {name: rank for rank, name in enumerate(SEVERITIES)}


@dataclass(frozen=True, slots=True)
class Event:
    """One step of a connection's replay: a state transition or an unexpected segment."""

    flow_id: int
    """Connection the event belongs to."""
    frame: int
    """Frame number of the segment that caused it."""
    ts_ns: int
    """Timestamp of that segment, integer nanoseconds since the epoch."""
    endpoint: str
    """``client`` or ``server``: the endpoint whose machine moved or objected."""
    kind: str
    """``transition`` (state changed), ``unexpected`` (segment not valid in the state),
    ``ignored`` (e.g. out-of-window RST recorded but not obeyed) or ``timeout`` (TIME_WAIT
    expiry and similar, driven by packet time)."""
    old_state: str
    """State before the segment (RFC 9293 name or observer-only state)."""
    new_state: str
    """State after the segment."""
    direction: str
    """``sent`` when the endpoint sent the segment, ``received`` when it was addressed to it."""
    flags: str
    """Flags of the causing segment as letters (``SA``, ``FA``, ``R``...)."""
    seq: int
    """Relative sequence number of the causing segment (raw when no ISN is known)."""
    ack: int
    """Relative acknowledgment number of the causing segment."""
    payload_len: int
    """Payload bytes of the causing segment."""
    reason: str
    """Why: the table entry's explanation, citing RFC 9293 where it applies."""

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled as a constructor call: the default of slotted dataclasses (a __setstate__
        # walking fields()) costs ~20 us per object, too much for --jobs workers sending
        # every event to their parent (tcptrace_py/parallel.py).
        return (Event, (self.flow_id, self.frame, self.ts_ns, self.endpoint, self.kind,
                        self.old_state, self.new_state, self.direction, self.flags, self.seq,
                        self.ack, self.payload_len, self.reason))


new_event = slots_factory(Event)
"""``Event(...)`` for the per-segment path (positional arguments): the class under the
reference engine, a compiled constructor making the same object under the compiled one
(``implementation.slots_factory``: a dataclass ``__init__`` is interpreted Python)."""


@dataclass(frozen=True, slots=True)
class Anomaly:
    """A finding with evidence, under a stable snake_case code."""

    code: str
    """Stable snake_case code, e.g. ``unanswered_syn``."""
    severity: str
    """``info``, ``warning`` or ``error``."""
    flow_id: int | None
    """Connection it concerns; ``None`` for capture-wide findings."""
    first_frame: int
    """First frame of the evidence."""
    last_frame: int
    """Last frame of the evidence."""
    ts_ns: int
    """Time of the first evidence frame, integer nanoseconds since the epoch."""
    summary: str
    """One human-readable line."""
    details: dict[str, Any] = field(default_factory=dict)
    """Structured evidence: counts, intervals, frames... (JSON-serialisable values only)."""
    category: str = "network"
    """``network`` for faults on the wire, ``capture`` for artifacts of the capture itself,
    ``protocol`` for protocol violations, ``lifecycle`` for notable but normal behaviour."""

    def __reduce__(self) -> tuple[Any, ...]:
        # A constructor call, as Event's (fast to unpickle in the parent of --jobs workers).
        return (Anomaly, (self.code, self.severity, self.flow_id, self.first_frame,
                          self.last_frame, self.ts_ns, self.summary, self.details,
                          self.category))
