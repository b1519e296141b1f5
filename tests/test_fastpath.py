"""The steady-state fast path (fastpath.py) changes speed, never results.

Every capture the tests can reach is analysed twice, with ``Options.fast_path`` on and off,
and every output is compared: connection records, anomalies, events and the per-packet
table (whose analysis flags show each segment's classification). A generated capture with
loss, SACK, zero windows and resets checks the path is taken for most segments there.
"""

from __future__ import annotations

import importlib.util
import io
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import tcptrace_py.fastpath as fastpath
import tcptrace_py.flowtable as flowtable
from tcptrace_py.connection import Connection
from tcptrace_py.engine import Engine
from tcptrace_py.options import Options
from tcptrace_py.segment import Segment

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
_SKIP_SUFFIXES = (".tsv", ".json", ".md", ".py", ".txt", ".log", ".csv", ".long")


def _captures(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    return sorted(p for p in root.rglob("*")
                  if p.is_file() and not p.name.endswith(_SKIP_SUFFIXES)
                  and "expected" not in p.parts)


def _outputs(source: Any, fast: bool) -> list[Any]:
    engine = Engine(Options(keep_packets=True, fast_path=fast))
    out: list[Any] = []
    try:
        for r in engine.run(source):
            out.append((r.record, r.anomalies, r.events, r.packets))
    except Exception as exc:  # a broken capture must fail the same way on both paths
        out.append(("error", type(exc).__name__, str(exc)))
    out.append(engine.summary.anomalies)
    return out


def _generated(packets: int, seed: int) -> bytes:
    gen = sys.modules.get("gen_capture")
    if gen is None:
        spec = importlib.util.spec_from_file_location("gen_capture",
                                                      REPO / "bench" / "gen_capture.py")
        assert spec is not None and spec.loader is not None
        gen = importlib.util.module_from_spec(spec)
        sys.modules["gen_capture"] = gen  # dataclasses look their module up there
        spec.loader.exec_module(gen)
    buf = io.BytesIO()
    gen.generate(buf, packets, seed)
    return buf.getvalue()


@pytest.mark.parametrize("path", _captures(REPO / "samples"), ids=lambda p: p.name)
def test_samples_same_with_and_without_fast_path(path: Path) -> None:
    assert _outputs(path, True) == _outputs(path, False)


SHARED_CAPTURES = _captures(SHARED / "captures") + _captures(SHARED / "scenarios")


@pytest.mark.skipif(not SHARED_CAPTURES, reason="../shared not present")
def test_shared_captures_same_with_and_without_fast_path() -> None:
    differ = [p.name for p in SHARED_CAPTURES if _outputs(p, True) != _outputs(p, False)]
    assert differ == []


@pytest.fixture()
def taken(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """[segments the fast path applied, segments it handed back] during the test."""
    counts = [0, 0]
    real = fastpath.steady_segment

    def counting(conn: Connection, seg: Segment) -> int:
        mask = real(conn, seg)
        counts[0 if mask >= 0 else 1] += 1
        return mask

    monkeypatch.setattr(flowtable, "steady_segment", counting)
    yield counts


def test_generated_capture_same_and_mostly_fast(taken: list[int]) -> None:
    data = _generated(30_000, seed=7)
    fast = _outputs(io.BytesIO(data), True)
    applied = taken[0]
    assert fast == _outputs(io.BytesIO(data), False)
    assert len(fast) > 100  # hundreds of connections of every kind
    # Bulk and request/response data between ESTABLISHED endpoints: most segments.
    assert applied > 0.7 * 30_000
    assert taken == [applied, taken[1]]  # the slow run never called it


def test_fast_path_off_never_calls_it(taken: list[int]) -> None:
    _outputs(io.BytesIO(_generated(2_000, seed=3)), False)
    assert taken == [0, 0]
