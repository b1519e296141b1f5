"""The column reference (tcptrace_py/columns.py) covers every column of every table, in
order, and docs/columns.md is generated from it: neither can drift from the code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import tcptrace_py
from tcptrace_py import columns, detectors, frames
from tcptrace_py.batch import CAPTURE_COLUMN_KINDS
from tcptrace_py.cli import main

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "samples"
SCENARIOS = REPO.parent / "shared" / "scenarios"


def _captures() -> list[Path]:
    found = sorted(SAMPLES.glob("*.pcap"))
    if SCENARIOS.is_dir():
        found += sorted(SCENARIOS.rglob("*.pcap"))
    return found


def test_every_record_column_is_defined_in_record_order() -> None:
    """Every capture's records (samples, and the kernel scenarios when present) have
    exactly the defined columns, in the defined order."""
    names = [c.name for c in columns.flow_columns()]
    assert len(names) == len(set(names)) >= 180
    seen = 0
    for path in _captures():
        for rec in tcptrace_py.iter_flows(path):
            assert list(rec) == names, path
            seen += 1
    assert seen > 30


def test_frames_and_kinds_agree_with_the_reference() -> None:
    res = tcptrace_py.analyze(SAMPLES / "rst_abort.pcap", packets=True)
    assert list(res.flows.columns) == [c.name for c in columns.flow_columns()]
    assert columns.table_kinds("flows") == frames.flow_schema()
    assert list(res.anomalies.columns) == [c.name for c in columns.table_columns("anomalies")
                                           if c.name != "capture"]
    assert list(res.events.columns) == [c.name for c in columns.table_columns("events")
                                        if c.name != "capture"]
    assert list(res.packets.columns) == [c.name for c in columns.table_columns("packets")]
    assert [c.name for c in columns.table_columns("captures")] == list(CAPTURE_COLUMN_KINDS)


def test_every_definition_says_something() -> None:
    for table in columns.TABLE_NAMES:
        for c in columns.table_columns(table):
            assert c.meaning.endswith((".", ")")) and len(c.meaning) > 8, c
    units = {c.name: c.unit for c in columns.flow_columns()}
    assert units["client_idle_max_ms"] == "ms" and units["duration_s"] == "s"
    assert units["server_throughput_bytes_per_s"] == "bytes/s"
    peers = {c.name: c for c in columns.flow_columns()}
    assert peers["client_unique_bytes"].tcptrace == "unique bytes sent (a2b)"
    assert peers["server_unique_bytes"].tcptrace == "unique bytes sent (b2a)"
    assert peers["flow_id"].tshark == "tcp.stream"
    assert peers["server_packets"].zeek == "resp_pkts"


def test_docs_columns_md_is_generated_from_the_reference() -> None:
    """Regenerate with: tcptrace-py columns --format markdown > docs/columns.md"""
    assert (REPO / "docs" / "columns.md").read_text() == columns.markdown()


def test_columns_command() -> None:
    res = CliRunner().invoke(main, ["columns", "--format", "json"])
    assert res.exit_code == 0
    rows = json.loads(res.output)
    by_name = {r["column"]: r for r in rows}
    assert by_name["client_tail_loss_probes"]["unit"] == "packets"
    assert by_name["server_segment_max_bytes"]["kind"] == "int?"
    assert by_name["client_rtt_avg_ms"]["kind"] == "float"
    for table in ("anomalies", "events", "packets", "captures"):
        res = CliRunner().invoke(main, ["columns", table], env={"COLUMNS": "120"})
        assert res.exit_code == 0 and "meaning" in res.output
    res = CliRunner().invoke(main, ["columns", "nope"])
    assert res.exit_code == 2


@pytest.mark.parametrize("fmt", ["json", "table"])
def test_codes_command_lists_every_code_with_its_parameters(fmt: str) -> None:
    res = CliRunner().invoke(main, ["codes", "--format", fmt], env={"COLUMNS": "200"})
    assert res.exit_code == 0
    if fmt == "table":
        for code in detectors.CODES:
            assert code in res.output
        assert "rst_storm.min_rsts=100" in res.output
        return
    rows = json.loads(res.output)
    assert {r["code"] for r in rows} == set(detectors.CODES)
    storm = next(r for r in rows if r["code"] == "rst_storm")
    assert storm["severity"] == detectors.CODES["rst_storm"].severity
    assert {"name": "rst_storm.min_rsts", "default": 100} in [
        {k: p[k] for k in ("name", "default")} for p in storm["parameters"]]
