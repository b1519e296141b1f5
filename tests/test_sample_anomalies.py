"""The project's own samples raise exactly the anomalies samples/expected.json names.

Per connection, every code in ``anomalies`` must be reported; nothing at warning or above may
be reported that is neither in ``anomalies`` nor in ``anomalies_allowed``. Capture-wide codes
(``capture_anomalies``) must be reported with no flow.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tcptrace_py.engine import Engine

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
EXPECTED: dict[str, Any] = json.loads((SAMPLES / "expected.json").read_text())["samples"]


def _endpoint(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sample_anomalies(name: str) -> None:
    sample = EXPECTED[name]
    engine = Engine()
    results = list(engine.run(str(SAMPLES / sample["pcap"])))
    by_pair: dict[frozenset[str], list[Any]] = {}
    for r in results:
        rec = r.record
        pair = frozenset({_endpoint(rec["client_ip"], rec["client_port"]),
                          _endpoint(rec["server_ip"], rec["server_port"])})
        by_pair.setdefault(pair, []).append(r)
    problems = []
    for i, conn in enumerate(sample["connections"]):
        candidates = by_pair.get(frozenset({conn["client"], conn["server"]}), [])
        assert candidates, f"{name} #{i}: no record for {conn['client']}"
        res = candidates.pop(0)  # same 4-tuple: incarnations in order
        codes = {a.code for a in res.anomalies}
        serious = {a.code for a in res.anomalies if a.severity in ("warning", "error")}
        missing = set(conn["anomalies"]) - codes
        unexpected = serious - set(conn["anomalies"]) - set(conn["anomalies_allowed"])
        if missing or unexpected:
            problems.append((i, conn["client"], sorted(missing), sorted(unexpected)))
    capture_codes = {a.code for a in engine.summary.anomalies if a.flow_id is None}
    missing_capture = set(sample["capture_anomalies"]) - capture_codes
    assert not problems and not missing_capture, (problems, missing_capture)


def test_normal_sample_raises_no_finding_at_all() -> None:
    """The README's first command (``tcptrace-py analyze samples/normal.pcap``) shows a
    healthy connection: no finding of any severity, connection or capture-wide, and no
    warning. The sample is captured whole (``snaplen`` 0 in expected.json): the other
    samples' 200-byte snaplen cuts payloads, a ``truncated_frames`` info finding."""
    assert EXPECTED["normal"]["capture"]["snaplen"] == 0
    engine = Engine()
    results = list(engine.run(str(SAMPLES / "normal.pcap")))
    assert len(results) == 1 and results[0].record["close"] == "graceful"
    assert [a.code for r in results for a in r.anomalies] == []
    assert engine.summary.anomalies == []
    assert engine.diag.warnings == []
