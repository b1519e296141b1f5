"""Detectors: findings with evidence, one module per family, registered by name.

The engine builds one :class:`DetectorSet` per capture and calls it for every finished
connection (``on_connection``), after the record is built (``on_record``) and once at the end
(``on_end``) for capture-wide findings. Every threshold is a named :class:`~.base.Param` with a
documented default; :func:`parameters` lists them for docs and the CLI. Settings come from
``Options.detector_params`` (``{"rst_storm.min_rsts": 50}``), from a TOML file
(:func:`load_config`, one section per detector) or from ``--param NAME=VALUE``
(:func:`parse_param`). Unknown names raise ``ValueError`` (the CLI exits 2).
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Mapping
from typing import Any

# Importing the family modules registers their detectors (order = report order).
from tcptrace_py.detectors import (  # noqa: F401  (imported for registration)
    capture,
    close,
    connect,
    giveup,
    handshake,
    icmp,
    protocol,
    resets,
    retransmission,
    scans,
    window,
)
from tcptrace_py.detectors.base import (
    REGISTRY,
    Code,
    Detector,
    Param,
    ParamValue,
    quiet,
    register,
)
from tcptrace_py.detectors.close import closed_quietly, max_close_delay_ns
from tcptrace_py.diagnostics import Diagnostics
from tcptrace_py.events import Anomaly
from tcptrace_py.options import Options

__all__ = ["CODES", "DEFAULTS", "REGISTRY", "Code", "Detector", "DetectorSet", "Param",
           "codes", "load_config", "parameters", "parse_param", "register", "resolve_params"]

DEFAULTS: dict[str, ParamValue] = {
    f"{name}.{p.name}": p.default for name, cls in REGISTRY.items() for p in cls.params}
"""Every parameter's default by full key ``detector.name``."""

CODES: dict[str, Code] = {c.code: c for cls in REGISTRY.values() for c in cls.codes}
"""Every anomaly code the detectors can emit."""


def parameters() -> list[tuple[str, str, ParamValue, str]]:
    """(detector, name, default, doc) for every parameter, in registry order."""
    return [(name, p.name, p.default, p.doc) for name, cls in REGISTRY.items()
            for p in cls.params]


def codes() -> list[tuple[str, str, str, str, str]]:
    """(detector, code, severity, category, doc) for every anomaly code."""
    return [(name, c.code, c.severity, c.category, c.doc) for name, cls in REGISTRY.items()
            for c in cls.codes]


def _known_key(key: str) -> str:
    if key in DEFAULTS:
        return key
    det = key.split(".", 1)[0]
    if det not in REGISTRY:
        raise ValueError(f"unknown detector parameter {key!r}: no detector {det!r} "
                         f"(detectors: {', '.join(REGISTRY)})")
    names = ", ".join(p.name for p in REGISTRY[det].params) or "none"
    raise ValueError(f"unknown detector parameter {key!r} (parameters of {det}: {names})")


MAX_PARAM_VALUE = 1e9
"""Largest value of a float detector parameter: thresholds in seconds become integer
nanoseconds (an int64 holds 9.2e9 s), and no share, ratio or factor needs more."""


def _coerce(key: str, value: Any) -> ParamValue:
    """Convert ``value`` (str from the CLI, or a TOML value) to the default's type; a value
    the detector cannot run with (negative, not finite, a ``max_*`` bound below 1) is a
    ``ValueError`` like a wrong type."""
    out = _convert(key, value)
    if isinstance(out, bool) or isinstance(out, str):
        return out
    if isinstance(out, float):
        if not (math.isfinite(out) and 0 <= out <= MAX_PARAM_VALUE):
            raise ValueError(f"bad value {value!r} for detector parameter {key!r} (expected "
                             f"a finite number from 0 to {MAX_PARAM_VALUE:g})")
        return out
    # An integer max_* bounds a table or list (0 would leave nothing to evict from).
    low = 1 if key.rpartition(".")[2].startswith("max_") else 0
    if out < low:
        raise ValueError(f"bad value {value!r} for detector parameter {key!r} (expected an "
                         f"integer >= {low})")
    return out


def _convert(key: str, value: Any) -> ParamValue:
    default = DEFAULTS[key]
    try:
        if isinstance(default, bool):
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError(text)
        if isinstance(default, int):
            if isinstance(value, bool):
                raise ValueError(value)
            if isinstance(value, float):
                if not value.is_integer():
                    raise ValueError(value)
                return int(value)
            return int(str(value).strip())
        if isinstance(default, float):
            if isinstance(value, bool):
                raise ValueError(value)
            return float(value)
        return str(value)
    except (TypeError, ValueError):
        raise ValueError(f"bad value {value!r} for detector parameter {key!r} "
                         f"(expected {type(default).__name__})") from None


def parse_param(text: str) -> tuple[str, ParamValue]:
    """``"rst_storm.min_rsts=50"`` -> ``("rst_storm.min_rsts", 50)`` (typed by the default)."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ValueError(f"bad detector parameter {text!r}: expected NAME=VALUE, "
                         "e.g. rst_storm.min_rsts=50")
    _known_key(key)
    return key, _coerce(key, value)


def load_config(path: str | os.PathLike[str]) -> dict[str, ParamValue]:
    """Read detector parameters from a TOML file: one table per detector.

    Example::

        [rst_storm]
        min_rsts = 50
        window_s = 2.0

    The tables may also sit under a ``[detectors]`` table (``[detectors.rst_storm]``).
    """
    # Imported here, not at start-up: only --config reads TOML.
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10: the same parser, packaged as tomli
        import tomli as tomllib
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise ValueError(f"cannot read detector config {str(path)!r}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"bad TOML in detector config {str(path)!r}: {exc}") from None
    nested = data.get("detectors", {})
    if not isinstance(nested, dict):
        raise ValueError(f"detector config {str(path)!r}: [detectors] must be a table")
    tables = [(k, v) for k, v in data.items() if k != "detectors"] + list(nested.items())
    out: dict[str, ParamValue] = {}
    for det, table in tables:
        if not isinstance(table, dict):
            raise ValueError(f"detector config {str(path)!r}: {det!r} must be a table "
                             "of parameters")
        for name, value in table.items():
            key = _known_key(f"{det}.{name}")
            out[key] = _coerce(key, value)
    return out


def resolve_params(params: Mapping[str, Any]) -> dict[str, ParamValue]:
    """Defaults overlaid with ``params`` (validated and typed)."""
    values = dict(DEFAULTS)
    for key, value in params.items():
        known = _known_key(key)
        values[known] = _coerce(known, value)
    return values


class DetectorSet:
    """All enabled detectors, fed every finished connection and the capture end."""

    def __init__(self, options: Options, diag: Diagnostics | None = None, *,
                 sharded: bool = False) -> None:
        self.options = options
        self.diag = diag
        self.sharded = sharded
        """In a ``--jobs`` worker: capture-wide detectors only summarize (see
        :attr:`Detector.capture_wide`); :attr:`shares` holds the last connection's."""
        self.shares: list[tuple[int, Any, int, int]] = []
        """(detector index, share, start, end) per capture-wide detector with a share of the
        last connection: its findings are ``anomalies[start:end]`` of that connection."""
        values = resolve_params(options.detector_params)
        for name in options.disabled_detectors:
            if name not in REGISTRY:
                raise ValueError(f"cannot disable unknown detector {name!r} "
                                 f"(detectors: {', '.join(REGISTRY)})")
        self.detectors: list[Detector] = []
        for name, cls in REGISTRY.items():
            if name in options.disabled_detectors:
                continue
            mine = {p.name: values[f"{name}.{p.name}"] for p in cls.params}
            det = cls(mine, options)
            det.diag = diag
            det.sharded = sharded
            self.detectors.append(det)
        self.skip_quiet = True
        """Leave the :attr:`Detector.quiet_skip` detectors out for a connection
        :func:`~tcptrace_py.detectors.base.quiet` accepts (False: call every detector, as a
        test does to show the findings are the same)."""
        self._all = list(enumerate(self.detectors))
        self._for_quiet = [(i, d) for i, d in self._all if not d.quiet_skip]
        self._for_closed = [(i, d) for i, d in self._for_quiet if not d.close_skip]
        """For a quiet connection :func:`~tcptrace_py.detectors.close.closed_quietly`
        accepts, too."""
        self._close_skips = len(self._for_closed) != len(self._for_quiet)
        """Whether a ``close_skip`` detector runs (else ``closed_quietly`` is not asked)."""
        self._close_delay_ns = next(
            (max_close_delay_ns(d.p) for d in self.detectors if d.name == "close_wait_stuck"),
            -1)
        """``close_wait_stuck``'s ``max_close_delay_s`` (ns); -1 without that detector, a
        delay every late close exceeds (so only ``close_kinds`` can be left out)."""

    def on_connection(self, conn: Any) -> list[Anomaly]:
        """Findings on one finished connection."""
        out: list[Anomaly] = []
        if self.skip_quiet and quiet(conn):
            dets = self._for_quiet
            if self._close_skips and closed_quietly(conn, self._close_delay_ns):
                dets = self._for_closed
        else:
            dets = self._all
        if self.sharded:
            shares = self.shares = []
            for i, det in dets:
                start = len(out)
                out.extend(det.on_connection(conn))
                if det.capture_wide:
                    share = det.summarize(conn)
                    if share is not None:
                        shares.append((i, share, start, len(out)))
            return out
        for _, det in dets:
            out.extend(det.on_connection(conn))
        return out

    def fold(self, shares: list[tuple[int, Any, int, int]],
             anomalies: list[Anomaly]) -> list[Anomaly]:
        """In the parent of ``--jobs`` workers: fold one connection's :attr:`shares` (taken
        in a worker) into the capture-wide detectors; returns the connection's findings
        that stand (``anomalies`` itself when all do)."""
        if not shares:
            return anomalies
        out: list[Anomaly] = []
        done = 0
        for i, share, start, end in shares:
            out.extend(anomalies[done:start])
            out.extend(self.detectors[i].fold(share, anomalies[start:end]))
            done = end
        out.extend(anomalies[done:])
        return out

    def on_record(self, conn: Any, record: dict[str, Any]) -> None:
        """Hook after the record is built (no detector needs it yet)."""
        return None

    def on_end(self, end_ns: int, diag: Diagnostics) -> list[Anomaly]:
        """Capture-wide findings."""
        out: list[Anomaly] = []
        for det in self.detectors:
            out.extend(det.on_end(end_ns, diag))
        return out
