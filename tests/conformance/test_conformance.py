"""The agreement table: tcptrace-py against labels, Zeek, tcptrace and tshark (issue 8).

Prints the table (also in the terminal summary, see conftest.py) and fails when any check
regresses from ``baseline.json``: a check's agreed count may only go up and its disagreements
may only go down. To record an improvement (or new checks), run

    CONFORMANCE_UPDATE=1 python -m pytest tests/conformance

(or ``cd tests && python -m conformance.peers --update``), look at the diff of baseline.json,
and update the table in docs/conformance.md (``python -m conformance.peers`` prints it).
A check whose source is absent here (no ../shared, no tshark/tcptrace) is skipped, not failed.
"""

from __future__ import annotations

import json
import os

import pytest

from conformance.peers import BASELINE, SAMPLES, SHARED, agreement, render, write_baseline

pytestmark = pytest.mark.skipif(
    not SHARED.exists() and not (SAMPLES / "expected.json").exists(),
    reason="no ../shared and no samples/expected.json: nothing to compare")


def test_agreement_does_not_regress_from_baseline() -> None:
    table = agreement()
    print(render(table))
    if os.environ.get("CONFORMANCE_UPDATE") == "1":
        write_baseline(table)
    base: dict[str, dict[str, int]] = json.loads(BASELINE.read_text())
    regressions = []
    for name, b in base.items():
        row = table.get(name)
        if row is None:
            continue  # source absent on this machine
        # Where a source is partly absent (no ../shared: live checks run on samples only) the
        # total shrinks; then only a growth in disagreements is a regression.
        lost = row.total >= b["total"] and row.agreed < b["agreed"]
        more_misses = row.total - row.agreed > b["total"] - b["agreed"]
        if lost or more_misses:
            regressions.append(f"{name}: {row.agreed}/{row.total} (baseline "
                               f"{b['agreed']}/{b['total']}); e.g. {row.misses[:3]}")
    assert not regressions, "\n".join(regressions)


def test_every_check_compares_something() -> None:
    for name, row in agreement().items():
        assert row.total > 0, name
        assert len(row.misses) == row.total - row.agreed, name
