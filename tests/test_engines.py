"""The compiled engine and the pure-Python reference give identical results.

Why: the reference is the readable statement of every rule and the compiled twin only a
faster translation of it (tcptrace_py/_engine.pyx). These tests run every capture the tests
can reach (../shared captures and kernel scenarios, samples/, a generated benchmark mix,
Hypothesis conversations) through both and compare records, anomalies, events, packet rows,
capture-wide findings and diagnostics, as multidict's and msgpack's suites run each test
against both of their implementations.

Two ways of running the reference:
* in this process, with ``implementation.compiled`` switched off (the ``engine`` fixture):
  the front end (reader, decoder) is the reference's, the Segment type the compiled one;
* in a subprocess with ``TCPTRACE_PY_PURE=1``: the reference from end to end, including the
  Segment class, exactly as users select it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from test_fastpath import FUZZ, _captures, _generated, conversations

from tcptrace_py import implementation
from tcptrace_py.diagnostics import Diagnostics
from tcptrace_py.engine import Engine
from tcptrace_py.options import Options

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"

needs_compiled = pytest.mark.skipif(
    implementation.compiled is None and not implementation.forced_pure,
    reason="compiled engine not built")


def outputs(source: Any) -> str:
    """Everything an analysis produces, as one comparable text (repr keeps NaN equal)."""
    diag = Diagnostics()
    engine = Engine(Options(keep_packets=True), diag)
    out: list[Any] = []
    try:
        for r in engine.run(source):
            out.append((r.record, r.anomalies, r.events, r.packets))
    except Exception as exc:  # a broken capture must fail the same way in both engines
        out.append(("error", type(exc).__name__, str(exc)))
    out.append(engine.summary.anomalies)
    out.append((engine.summary.connections, engine.summary.peak_live_connections))
    out.append(sorted((k, repr(v)) for k, v in _diag_fields(diag).items()))
    return repr(out)


def _diag_fields(diag: Diagnostics) -> dict[str, Any]:
    return {name: getattr(diag, name) for name in diag.__slots__}


def both(source: Any, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    """(compiled, reference) outputs of one source, in this process."""
    compiled = outputs(source)
    with monkeypatch.context() as m:
        m.setattr(implementation, "compiled", None)
        reference = outputs(source)
    return compiled, reference


def _all_captures() -> list[Path]:
    return (_captures(REPO / "samples") + _captures(SHARED / "captures")
            + _captures(SHARED / "scenarios"))


@needs_compiled
def test_version_names_the_engine() -> None:
    out = subprocess.run([sys.executable, "-m", "tcptrace_py", "--version"],
                         capture_output=True, text=True, check=True).stdout
    assert "engine: compiled (Cython)" in out
    env = dict(os.environ, TCPTRACE_PY_PURE="1")
    out = subprocess.run([sys.executable, "-m", "tcptrace_py", "--version"],
                         capture_output=True, text=True, check=True, env=env).stdout
    assert "engine: pure Python (TCPTRACE_PY_PURE is set)" in out


@needs_compiled
def test_compiled_front_end_is_used() -> None:
    """The switch really selects the compiled twin (a broken build must not pass silently
    as 'identical' by running the reference twice)."""
    from tcptrace_py.segment import ReferenceSegment, Segment

    if implementation.forced_pure:
        assert Segment is ReferenceSegment
    else:
        assert implementation.compiled is not None
        assert Segment is implementation.compiled.Segment
        assert Segment is not ReferenceSegment


@needs_compiled
@pytest.mark.parametrize("path", _all_captures(),
                         ids=lambda p: str(p.relative_to(p.parents[1])))
def test_capture_same_in_both_engines(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    compiled, reference = both(path, monkeypatch)
    assert compiled == reference


@needs_compiled
def test_generated_mix_same_in_both_engines(monkeypatch: pytest.MonkeyPatch) -> None:
    data = _generated(20_000, 7)
    compiled, reference = both(data, monkeypatch)
    assert compiled == reference


@needs_compiled
@FUZZ
@given(conversations())
def test_random_conversations_same_in_both_engines(data: bytes) -> None:
    with pytest.MonkeyPatch.context() as m:
        compiled, reference = both(data, m)
    assert compiled == reference


_DUMP = """
import json, sys
sys.path.insert(0, {tests!r})
from test_engines import outputs
print(json.dumps({{p: outputs(p) for p in sys.argv[1:]}}))
"""


@needs_compiled
def test_reference_process_agrees_with_compiled(tmp_path: Path) -> None:
    """The whole reference (TCPTRACE_PY_PURE=1, pure Segment class too) in a subprocess
    against the compiled engine here, on the samples, the kernel scenarios and a generated
    mix with IPv6, SACK and losses."""
    gen = tmp_path / "mix.pcap"
    gen.write_bytes(_generated(5_000, 3))
    paths = [str(p) for p in _captures(REPO / "samples") + _captures(SHARED / "scenarios")]
    paths.append(str(gen))
    env = dict(os.environ, TCPTRACE_PY_PURE="1")
    done = subprocess.run([sys.executable, "-c", _DUMP.format(tests=str(REPO / "tests")),
                           *paths], capture_output=True, text=True, env=env, check=True)
    reference = json.loads(done.stdout)
    for p in paths:
        assert outputs(p) == reference[p], p
