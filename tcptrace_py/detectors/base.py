"""Detector framework: parameters, the registry and the base class every detector extends.

Theory of operation
-------------------
1. A detector is a small class registered by name with :func:`register`. It declares its
   thresholds as :class:`Param` (name, default, why) and the codes it can emit as
   :class:`Code` (code, severity, category, meaning). Docs and the CLI list both.
2. The engine calls, through :class:`tcptrace_py.detectors.DetectorSet`, ``on_connection`` once
   per *finished* connection (never per packet: detectors read the evidence the connection and
   the sequence analyzer already kept) and ``on_end`` once at capture end for capture-wide
   findings. Detectors that need cross-connection state (RST storms, TIME_WAIT reuse) keep it
   bounded: a sliding window or a per-key memo that is popped when used.
3. Parameters are looked up as ``detector.name``; unknown names raise ``ValueError`` so a typo
   in a config file or on the command line is an error, not a silently ignored setting.
4. Anomalies carry evidence (frames, times, counts) in JSON-serialisable ``details``; capture
   artifacts are category ``capture`` and never severity ``error``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from tcptrace_py import units
from tcptrace_py.connection import Connection
from tcptrace_py.diagnostics import Diagnostics
from tcptrace_py.events import Anomaly
from tcptrace_py.fsm import TcpState
from tcptrace_py.implementation import slots_factory
from tcptrace_py.lazy_dataclass import dataclass
from tcptrace_py.options import Options

NS_PER_S = 1_000_000_000

ParamValue = int | float | bool | str


@dataclass(frozen=True, slots=True)
class Param:
    """One named threshold of a detector."""

    name: str
    """Parameter name inside its detector (the full key is ``detector.name``)."""
    default: ParamValue
    """Default value; its type is the type a setting is converted to."""
    doc: str
    """What it means and why the default is what it is."""


@dataclass(frozen=True, slots=True)
class Code:
    """One anomaly code a detector can emit."""

    code: str
    """Stable snake_case code (the public contract scripts filter on)."""
    severity: str
    """Default severity: ``info``, ``warning`` or ``error``."""
    category: str
    """``network``, ``capture``, ``protocol`` or ``lifecycle``."""
    doc: str
    """What the finding means."""


class Detector:
    """Base class: override ``on_connection`` and/or ``on_end``."""

    name: ClassVar[str] = ""
    """Registry name (also the TOML section and the prefix of parameter keys)."""
    params: ClassVar[tuple[Param, ...]] = ()
    codes: ClassVar[tuple[Code, ...]] = ()
    quiet_skip: ClassVar[bool] = False
    """True for a detector whose ``on_connection`` finds nothing and keeps nothing (and whose
    :meth:`summarize` has no share) for a connection :func:`quiet` accepts: its own first
    tests are among that function's. :class:`~tcptrace_py.detectors.DetectorSet` then does
    not call it for such a connection, so an uneventful connection costs one test instead of
    a call per detector (issue 16). Each detector that sets it names, beside it, the tests of
    :func:`quiet` it relies on; ``tests/test_detector_quiet.py`` checks the claim on every
    connection of the test captures."""
    close_skip: ClassVar[bool] = False
    """True, besides :attr:`quiet_skip`, for a close detector that finds nothing for a
    quiet connection :func:`tcptrace_py.detectors.close.closed_quietly` accepts (no
    simultaneous close, nothing sent after the first FIN, no side slow to close or left in
    CLOSE_WAIT): a graceful close then costs one test instead of two detectors' evidence
    reads. ``tests/test_detector_quiet.py`` checks it as it checks :attr:`quiet_skip`."""
    capture_wide: ClassVar[bool] = False
    """True for a detector whose findings depend on more than one connection (state kept
    across ``on_connection`` calls, read in order, or findings in ``on_end``). With
    ``--jobs`` (tcptrace_py/parallel.py) such a detector runs split: each worker's copy is
    ``sharded`` and only :meth:`summarize` s each connection; the parent's copy
    :meth:`fold` s those shares in the order one engine would have finished the
    connections, then runs ``on_end``, so the findings are the same as with one worker."""

    def __init__(self, values: Mapping[str, ParamValue], options: Options) -> None:
        self.p: dict[str, Any] = dict(values)
        """Resolved parameter values by short name."""
        self.options = options
        self.diag: Diagnostics | None = None
        """The run's diagnostics, when the engine passes them (capture end time)."""
        self._codes = {c.code: c for c in self.codes}
        self.sharded = False
        """In a ``--jobs`` worker: keep no capture-wide state (see :attr:`capture_wide`)."""

    def summarize(self, conn: Connection) -> Any:
        """In a worker (``sharded``), after :meth:`on_connection`: this connection's share
        of the capture-wide state (picklable, compact), or None when it has none."""
        return None

    def fold(self, share: Any, anomalies: list[Anomaly]) -> list[Anomaly]:
        """In the parent: fold one connection's :meth:`summarize` share into the
        capture-wide state; returns which of this detector's ``anomalies`` on that
        connection stand (a detector that caps its per-connection findings decides here)."""
        return anomalies

    def end_ns_of(self, conn: Connection) -> int:
        """Packet time the connection was observed until.

        The capture end for connections still open when the capture ended (``end_reason ==
        capture_end``), else its last segment (plus the idle timeout for connections that
        expired idle). "Stuck" findings need it: their duration runs to the capture end.
        """
        if conn.end_reason == "capture_end" and self.diag is not None \
                and self.diag.last_ts_ns is not None:
            return max(self.diag.last_ts_ns, conn.last_ts_ns)
        if conn.end_reason == "idle_timeout":
            return conn.last_ts_ns + self.options.idle_timeout_ns
        return conn.last_ts_ns

    def on_connection(self, conn: Connection) -> Iterable[Anomaly]:
        """Findings on one finished connection."""
        return ()

    def on_end(self, end_ns: int, diag: Diagnostics) -> Iterable[Anomaly]:
        """Capture-wide findings, once, after the last connection."""
        return ()

    def make(self, code: str, flow_id: int | None, first_frame: int, last_frame: int,
             ts_ns: int, summary: str, details: dict[str, Any] | None = None, *,
             severity: str | None = None) -> Anomaly:
        """An anomaly under one of this detector's declared codes (severity/category from it)."""
        spec = self._codes[code]
        return _new_anomaly(code, severity or spec.severity, flow_id, first_frame, last_frame,
                            ts_ns, summary, details or {}, spec.category)


_new_anomaly = slots_factory(Anomaly, complete=True)
"""``Anomaly(...)`` with every field given (what :meth:`Detector.make` passes), made as
``events.new_event`` makes events (the class itself under the reference engine)."""

_LAST_ACK = TcpState.LAST_ACK
_SYN_RECEIVED = TcpState.SYN_RECEIVED


def quiet(conn: Connection) -> bool:
    """True when the connection holds nothing any :attr:`Detector.quiet_skip` detector looks
    for: one SYN at most from the client and none from the server, one SYN-ACK at most,
    packets from both sides, no RST, no retransmission, keepalive, zero window or full
    window, nothing the capture missed or cut, no duplicated frame, no protocol oddity or
    ICMP error kept as evidence, no side given up on, left in LAST_ACK, or (the server)
    in SYN_RECEIVED.

    Each test is one a detector starts with (the union of their early exits, nothing
    stricter), so for a connection that passes, skipping those detectors changes no finding.
    Most connections of a capture pass: a handshake, data, a close.
    """
    if conn.self_connect or conn.gave_up is not None or conn.first_rst_frame >= 0 \
            or conn.first_rst_sender:
        return False
    n = conn.packets
    if not n[0] or not n[1]:
        return False
    n = conn.rst_count
    if n[0] or n[1]:
        return False
    n = conn.pure_syn_sent
    if n[0] > 1 or n[1] or conn.synack_sent[1] > 1:
        return False
    if conn.invalid_flags or conn.syn_with_data or conn.data_after_fin or conn.after_rst \
            or conn.out_of_window_rsts or conn.challenges or conn.icmp_errors \
            or conn.duplicates:
        return False
    if conn.client.state is _LAST_ACK or conn.server.state is _LAST_ACK \
            or conn.server.state is _SYN_RECEIVED:
        return False
    a = conn.analyzer
    if a.retransmissions or a.keepalives or a.zero_window_periods or a.window_full_events:
        return False
    c = a.client
    s = a.server
    return not (c.lost_segments or s.lost_segments or c.acks_unseen or s.acks_unseen
                or c.truncated_pkts or s.truncated_pkts)


REGISTRY: dict[str, type[Detector]] = {}
"""Detector classes by name, in registration order."""


def register(cls: type[Detector]) -> type[Detector]:
    """Class decorator: add a detector to :data:`REGISTRY` under ``cls.name``."""
    if not cls.name or cls.name in REGISTRY:
        raise ValueError(f"detector name missing or registered twice: {cls.name!r}")
    seen = {c.code for other in REGISTRY.values() for c in other.codes}
    dup = seen & {c.code for c in cls.codes}
    if dup:
        raise ValueError(f"anomaly codes already owned by another detector: {sorted(dup)}")
    REGISTRY[cls.name] = cls
    return cls


def seconds(ns: int) -> float:
    """Integer nanoseconds -> seconds rounded to the microsecond (for details)."""
    return round(ns / NS_PER_S, 6)


def human(ns: int) -> str:
    """Integer nanoseconds as a reader's duration (``175 ms``, ``2 min 5 s``) for summaries;
    details keep :func:`seconds`."""
    return units.seconds(ns / NS_PER_S)


def intervals_s(ts_ns: list[int]) -> list[float]:
    """Gaps between consecutive timestamps, in seconds."""
    return [seconds(b - a) for a, b in zip(ts_ns, ts_ns[1:], strict=False)]


# The compiled engine's twin of quiet (tcptrace_py/_engine.pyx): the same tests on C fields.
from tcptrace_py.implementation import compiled as _compiled  # noqa: E402

reference_quiet = quiet
if _compiled is not None:
    quiet = _compiled.quiet  # noqa: F811
