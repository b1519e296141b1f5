"""The cyclic collector is paused while a capture is analysed, and the analysis leaves no
cyclic garbage that grows with the capture (tcptrace_py/gcpolicy.py says why both matter).

Library entry points restore the caller's setting afterwards, however the call ends."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest
from captures_util import tcp_frame, write_pcap
from click.testing import CliRunner

import tcptrace_py
from tcptrace_py.diagnostics import CaptureError
from tcptrace_py.engine import Engine
from tcptrace_py.gcpolicy import collector_paused
from tcptrace_py.options import Options

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
SAMPLE = SAMPLES / "rst_storm.pcap"
SYN = 0x02

RUN_GARBAGE = 60
"""Cyclic garbage one run may leave whatever its size: the reader's and its diagnostics'
(about 40 objects, bound methods kept by the objects they belong to)."""


@pytest.fixture(autouse=True)
def collector_on() -> Iterator[None]:
    was = gc.isenabled()
    gc.enable()
    yield
    if not was:
        gc.disable()


def _garbage_after(path: Path) -> int:
    """Cyclic garbage left by one engine run over ``path`` with the collector paused."""
    gc.collect()
    with collector_paused():
        engine = Engine(Options())
        flows = sum(1 for _ in engine.run(path))
        assert flows
        del engine
        return gc.collect()


def test_analyze_restores_the_callers_setting() -> None:
    res = tcptrace_py.analyze(SAMPLE)
    assert len(res.flows) == 140 and gc.isenabled()
    gc.disable()
    try:
        tcptrace_py.analyze(SAMPLE)
        assert not gc.isenabled()  # a caller that had it off keeps it off
    finally:
        gc.enable()


def test_iter_flows_pauses_it_only_while_the_engine_computes(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The caller's loop body runs with its own setting (it may make cycles); the engine
    runs with the collector paused; abandoning the iteration closes the engine's run."""
    during: list[bool] = []
    real_run = Engine.run

    def run(self: Engine, *args: object, **kwargs: object) -> Iterator[object]:
        try:
            for result in real_run(self, *args, **kwargs):  # type: ignore[arg-type]
                during.append(gc.isenabled())
                yield result
        finally:
            during.append(gc.isenabled())

    monkeypatch.setattr(Engine, "run", run)
    between = [gc.isenabled() for _ in tcptrace_py.iter_flows(SAMPLE)]
    assert len(between) == 140 and all(between)
    assert len(during) == 141 and not any(during)
    it = tcptrace_py.iter_flows(SAMPLE)
    next(it)
    during.clear()
    it.close()  # the caller stops early: the engine's generator is closed too
    assert gc.isenabled() and during == [True]


def test_restored_after_an_error() -> None:
    with pytest.raises(CaptureError):
        tcptrace_py.analyze(b"not a capture at all")
    with pytest.raises(ZeroDivisionError), collector_paused():
        assert not gc.isenabled()
        _ = 1 / 0
    assert gc.isenabled()


def test_the_command_line_pauses_it_around_the_analysis(monkeypatch: pytest.MonkeyPatch) -> None:
    from tcptrace_py import cli

    seen: list[bool] = []
    real_run = Engine.run

    def run(self: Engine, *args: object, **kwargs: object) -> Iterator[object]:
        for result in real_run(self, *args, **kwargs):  # type: ignore[arg-type]
            seen.append(gc.isenabled())
            yield result

    monkeypatch.setattr(Engine, "run", run)
    out = CliRunner().invoke(cli.main, ["analyze", str(SAMPLE), "--format", "jsonl", "-q"])
    assert out.exit_code == 0, out.output
    assert len(seen) == 140 and not any(seen)


@pytest.mark.parametrize("path", sorted(SAMPLES.glob("*.pcap")), ids=lambda p: p.name)
def test_no_sample_leaves_more_than_a_runs_garbage(path: Path) -> None:
    assert _garbage_after(path) <= RUN_GARBAGE


def test_cyclic_garbage_does_not_grow_with_connections(tmp_path: Path) -> None:
    """Hundreds of connections of every kind the samples hold, and SYNs retried on a
    schedule (the backoff pattern's classification once made a cycle per connection),
    leave what one run leaves."""
    frames = []
    for i in range(300):  # unanswered SYNs retried after 1 and 2 s: linux_exponential
        for k, at in enumerate((0.0, 1.0, 3.0)):
            ts = int((i * 0.01 + at) * 1e9)
            frames.append((ts, tcp_frame("10.0.0.1", "10.0.0.2", 20000 + i, 80, 1000 * i, 0,
                                         SYN, ip_id=k + 1)))
    frames.sort(key=lambda f: f[0])
    retried = write_pcap(tmp_path / "retried.pcap", frames)
    assert _garbage_after(retried) <= RUN_GARBAGE
    assert _garbage_after(SAMPLES / "syn_flood.pcap") <= RUN_GARBAGE
