"""Library entry points raise the collector's thresholds during an analysis and restore the
caller's afterwards, however the call ends."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest

import tcptrace_py
from tcptrace_py.diagnostics import CaptureError
from tcptrace_py.gcpolicy import ANALYSIS_THRESHOLDS, fewer_collections

SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "rst_storm.pcap"
CALLER = (321, 7, 9)


@pytest.fixture(autouse=True)
def caller_thresholds() -> Iterator[None]:
    saved = gc.get_threshold()
    gc.set_threshold(*CALLER)
    yield
    gc.set_threshold(*saved)


def test_analyze_restores_the_callers_thresholds() -> None:
    res = tcptrace_py.analyze(SAMPLE)
    assert len(res.flows) == 140 and gc.get_threshold() == CALLER


def test_iter_flows_raises_them_while_iterating_and_restores_when_done_or_abandoned() -> None:
    it = tcptrace_py.iter_flows(SAMPLE)
    next(it)
    assert gc.get_threshold() == ANALYSIS_THRESHOLDS
    assert sum(1 for _ in it) == 139 and gc.get_threshold() == CALLER
    it = tcptrace_py.iter_flows(SAMPLE)
    next(it)
    it.close()  # the caller stops early
    assert gc.get_threshold() == CALLER


def test_restored_after_an_error() -> None:
    with pytest.raises(CaptureError):
        tcptrace_py.analyze(b"not a capture at all")
    with pytest.raises(ZeroDivisionError), fewer_collections():
        assert gc.get_threshold() == ANALYSIS_THRESHOLDS
        _ = 1 / 0
    assert gc.get_threshold() == CALLER
