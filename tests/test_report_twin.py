"""The compiled twin of ``report.flow_record`` against the reference, connection by connection.

Whole-capture equivalence (test_engines) compares the pure engine with the compiled one;
here both record builders run on the same finished connections of the compiled engine, so a
difference is the twin's own: every column, its value, its type (as JSON text) and the
order of the columns, on the samples and every capture of ``../shared`` (skipped when
absent), with connections whose pairs a test replaced by lists, and with time values no
output can hold.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from test_fastpath import _captures

from tcptrace_py import implementation, report
from tcptrace_py.engine import Engine
from tcptrace_py.export import dumps
from tcptrace_py.options import Options

pytestmark = pytest.mark.skipif(implementation.compiled is None,
                                reason="compiled engine not built or not selected")

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def _all_captures() -> list[Path]:
    return (_captures(REPO / "samples") + _captures(SHARED / "captures")
            + _captures(SHARED / "scenarios"))


def _connections(path: Path, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every finished connection of ``path`` as the engine hands it to ``flow_record``."""
    import tcptrace_py.engine as engine_module

    seen: list[Any] = []

    def spy(conn: Any, codes: list[str] | None = None) -> dict[str, Any]:
        seen.append((conn, codes))
        return report.reference_flow_record(conn, codes)

    monkeypatch.setattr(engine_module, "flow_record", spy)
    try:
        for _ in Engine(Options()).run(str(path)):
            pass
    except Exception:  # noqa: BLE001 - a broken capture: the connections read so far
        pass
    return seen


def _same(conn: Any, codes: list[str] | None) -> None:
    ref = report.reference_flow_record(conn, codes)
    twin = report.flow_record(conn, codes)
    assert list(twin) == list(ref)
    assert dumps(twin) == dumps(ref)


def test_twin_is_used() -> None:
    assert report.flow_record is not report.reference_flow_record
    assert type(report.flow_record).__name__ == "FlowRecord"


@pytest.mark.parametrize("path", _all_captures(), ids=lambda p: p.name)
def test_twin_builds_the_reference_record(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for conn, codes in _connections(path, monkeypatch):
        _same(conn, codes)


def test_twin_with_lists_and_times_no_output_holds(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pairs a caller replaced by lists are indexed; times beyond the outputs' range give
    null columns, as in the reference; a connection of another class takes the reference."""
    conns = _connections(REPO / "samples" / "normal.pcap", monkeypatch)
    assert conns
    for conn, codes in conns:
        for name in ("packets", "fin_frame", "pure_syn_sent", "synack_sent", "answered_frame",
                     "rst_count", "payload_bytes", "duplicate_frames"):
            setattr(conn, name, list(getattr(conn, name)))
        _same(conn, codes)
        conn.first_ts_ns = -5
        _same(conn, codes)
        conn.last_ts_ns = 1 << 64
        _same(conn, ["x"])

    class Other:
        pass

    calls: list[Any] = []

    def reference(conn: Any, codes: list[str] | None) -> dict[str, Any]:
        calls.append((conn, codes))
        return {"other": True}

    assert implementation.compiled is not None
    twin = implementation.compiled.FlowRecord(reference, {}, report.cached_addr_text, 0, 1)
    other = Other()
    assert twin(other, ["a"]) == {"other": True} and calls == [(other, ["a"])]
