"""Detectors left out for quiet connections: the same findings, on every capture we have.

Why: ``DetectorSet`` does not call a ``quiet_skip`` detector for a connection
``detectors.base.quiet`` accepts (issue 16: an uneventful connection costs one test instead
of a call per detector). That is only right if each such detector finds nothing and keeps
nothing for those connections. These tests check it three ways on the samples, the
``../shared`` captures and kernel scenarios (skipped where absent) and a generated benchmark
mix: every skipped detector, called anyway, returns nothing and has no share; the findings
with and without the skip are identical; the compiled twins of ``quiet`` (and of the scan
detector's ``probe_outcome``) agree with the reference. And ``quiet`` must accept most
connections of an ordinary capture, or it saves nothing. The same holds for the close
detectors (``close_skip``) left out, besides, for a quiet connection
``detectors.close.closed_quietly`` accepts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from captures_util import write_pcap
from test_detectors import Talk
from test_engines import _all_captures
from test_fastpath import _generated

from tcptrace_py.detectors import DetectorSet, base, close, scans
from tcptrace_py.detectors.base import reference_quiet
from tcptrace_py.diagnostics import Diagnostics
from tcptrace_py.engine import Engine
from tcptrace_py.options import Options
from tcptrace_py.segment import ACK, FIN, PSH, RST

SOURCES: list[Any] = _all_captures()


def _ids(source: Any) -> str:
    return str(source.relative_to(source.parents[1])) if isinstance(source, Path) else "gen"


def _findings(source: Any, skip: bool, sharded: bool = False) -> str:
    """Every finding of an analysis (per connection and capture-wide), as one text."""
    engine = Engine(Options(), Diagnostics())
    engine.detectors.skip_quiet = skip
    engine.detectors.sharded = sharded
    for det in engine.detectors.detectors:
        det.sharded = sharded
    out: list[Any] = []
    try:
        for r in engine.run(source):
            out.append((r.record["flow_id"], r.anomalies))
            if sharded:
                out.append(engine.detectors.shares)
    except Exception as exc:  # a broken capture fails the same way both times
        out.append(("error", type(exc).__name__, str(exc)))
    out.append(engine.summary.anomalies)
    return repr(out)


class _Checking(DetectorSet):
    """A detector set that, for every connection ``quiet`` accepts, also calls each
    skipped detector and records what it returned (it must be nothing)."""

    seen = 0
    accepted = 0
    closed = 0
    broken: list[tuple[str, int, Any]] = []

    def on_connection(self, conn: Any) -> list[Any]:
        type(self).seen += 1
        is_quiet = base.quiet(conn)
        assert is_quiet == reference_quiet(conn), conn.flow_id  # the twin agrees
        # So does the scan detector's compiled probe_outcome, on every connection.
        assert scans.probe_outcome(conn) == scans.reference_probe_outcome(conn), \
            conn.flow_id
        if is_quiet:
            type(self).accepted += 1
            closed = close.closed_quietly(conn, self._close_delay_ns)
            assert closed == close.reference_closed_quietly(conn, self._close_delay_ns), \
                conn.flow_id  # the twin agrees
            type(self).closed += closed
            for det in self.detectors:
                if not (det.quiet_skip or (closed and det.close_skip)):
                    continue
                found = list(det.on_connection(conn))
                share = det.summarize(conn)
                if found or share is not None:
                    type(self).broken.append((det.name, conn.flow_id, found or share))
        return super().on_connection(conn)


def _check(source: Any, monkeypatch: pytest.MonkeyPatch) -> tuple[int, int]:
    """(connections, quiet ones) of one source; fails on a skipped detector's finding."""
    monkeypatch.setattr(_Checking, "seen", 0)
    monkeypatch.setattr(_Checking, "accepted", 0)
    monkeypatch.setattr(_Checking, "closed", 0)
    monkeypatch.setattr(_Checking, "broken", [])
    monkeypatch.setattr("tcptrace_py.engine.DetectorSet", _Checking)
    engine = Engine(Options(), Diagnostics())
    try:
        for _ in engine.run(source):
            pass
    except Exception:  # noqa: S110 - a damaged capture: what was read is checked
        pass
    assert not _Checking.broken
    return _Checking.seen, _Checking.accepted


@pytest.mark.parametrize("source", SOURCES, ids=_ids)
def test_skipped_detectors_find_nothing_on_quiet_connections(
        source: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    _check(source, monkeypatch)


@pytest.mark.parametrize("source", SOURCES, ids=_ids)
def test_findings_same_with_and_without_the_skip(source: Any) -> None:
    assert _findings(source, True) == _findings(source, False)


def test_generated_mix_quiet_and_same(monkeypatch: pytest.MonkeyPatch) -> None:
    """The benchmark mix (resets, losses, zero windows, refusals among normal connections):
    same findings, same ``--jobs`` shares, nothing a skipped detector would have found, and
    most connections quiet."""
    data = _generated(20_000, 11)
    assert _findings(data, True) == _findings(data, False)
    assert _findings(data, True, sharded=True) == _findings(data, False, sharded=True)
    seen, accepted = _check(data, monkeypatch)
    assert seen > 100
    assert accepted > seen // 3, (seen, accepted)
    assert _Checking.closed > accepted // 2, (accepted, _Checking.closed)


def test_quiet_accepts_a_plain_connection_and_refuses_a_reset(tmp_path: Path) -> None:
    """The predicate itself on two small conversations: a graceful close is quiet, the
    same connection ended by a RST is not."""
    verdicts: list[bool] = []

    class Recording(DetectorSet):
        def on_connection(self, conn: Any) -> list[Any]:
            verdicts.append(base.quiet(conn))
            return super().on_connection(conn)

    for ending in ("fin", "rst"):
        frames: list[tuple[int, bytes]] = []
        t = Talk(frames)
        t.handshake()
        if ending == "fin":
            t.close_by_client(1.0)
        else:
            t.c(1.0, RST | ACK)
        path = tmp_path / f"{ending}.pcap"
        write_pcap(path, sorted(frames, key=lambda f: f[0]))
        engine = Engine(Options(), Diagnostics())
        engine.detectors = Recording(engine.options, engine.diag)
        list(engine.run(path))
    assert verdicts == [True, False]


def _closes(tmp_path: Path, name: str, talk: Any) -> list[tuple[bool, bool, list[str]]]:
    """(quiet, closed_quietly, codes found) of each connection of a conversation, both
    engines' predicate answering the same."""
    frames: list[tuple[int, bytes]] = []
    talk(Talk(frames))
    out: list[tuple[bool, bool, list[str]]] = []

    class Recording(DetectorSet):
        def on_connection(self, conn: Any) -> list[Any]:
            closed = close.closed_quietly(conn, self._close_delay_ns)
            assert closed == close.reference_closed_quietly(conn, self._close_delay_ns)
            found = super().on_connection(conn)
            out.append((base.quiet(conn), closed, sorted({a.code for a in found})))
            return found

    path = tmp_path / f"{name}.pcap"
    write_pcap(path, sorted(frames, key=lambda f: f[0]))
    engine = Engine(Options(), Diagnostics())
    engine.detectors = Recording(engine.options, engine.diag)
    list(engine.run(path))
    return out


def test_closed_quietly_accepts_a_graceful_close_and_refuses_each_close_finding(
        tmp_path: Path) -> None:
    """The close predicate on small conversations, each quiet: a graceful close is
    accepted (the close detectors are left out); a half close, a simultaneous close, a side
    left in CLOSE_WAIT and one closing 61 s after the peer's FIN are refused, and their
    finding is made."""

    def graceful(t: Any) -> None:
        t.handshake()
        t.c(0.1, ACK | PSH, 50)
        t.s(0.11, ACK | PSH, 500)
        t.close_by_client(0.2)

    def half(t: Any) -> None:
        t.handshake()
        t.c(0.11, FIN | ACK)
        t.s(0.2, ACK | PSH, 1000)
        t.c(0.25, ACK)
        t.s(0.6, FIN | ACK)
        t.c(0.61, ACK)

    def simultaneous(t: Any) -> None:
        t.handshake()
        cf = t.nxt[True]
        t.c(0.1, FIN | ACK)
        t.s(0.1001, FIN | ACK, ack=cf)
        t.c(0.11, ACK)
        t.s(0.11, ACK)

    def stuck(t: Any) -> None:
        t.handshake()
        t.c(0.12, FIN | ACK)
        t.s(0.13, ACK)

    def slow(t: Any) -> None:
        t.handshake()
        t.c(0.12, FIN | ACK)
        t.s(0.13, ACK)
        t.s(61.2, FIN | ACK)
        t.c(61.21, ACK)

    assert _closes(tmp_path, "graceful", graceful) == [(True, True, [])]
    for name, talk, code in (("half", half, "half_close"),
                             ("simultaneous", simultaneous, "simultaneous_close"),
                             ("stuck", stuck, "close_wait_stuck"),
                             ("slow", slow, "close_wait_stuck")):
        [(is_quiet, closed, found)] = _closes(tmp_path, name, talk)
        assert is_quiet and not closed and code in found, (name, found)
