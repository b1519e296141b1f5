"""The terminal table and ladder at fixed widths (``COLUMNS``, stdout not a terminal).

At any width the connections table keeps each connection's flow id, both endpoints, how it
closed and its anomalies, whole; a wider console only spreads them out. The captures are the
bundled samples (real Linux stacks), IPv6 included for the widest endpoints.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

import tcptrace_py
from tcptrace_py.cli import main

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
NAMES = ("rst_abort.pcap", "refused.pcap", "ipv6_normal.pcap", "half_open.pcap")

pytestmark = pytest.mark.skipif(not SAMPLES.exists(), reason="samples/ absent")


def _invoke(width: int | None, *args: str) -> str:
    env = {"COLUMNS": str(width)} if width is not None else {"COLUMNS": ""}
    res = CliRunner().invoke(main, list(args), env=env)
    assert res.exit_code == 0, res.output
    return res.stdout


def _words(text: str) -> str:
    """The table's text with borders removed and wrapped lines joined (a value split over
    two lines by the wrapping must still be found whole: rich folds at spaces)."""
    body = re.sub(r"[│┃┏┓┗┛┡┩└┘├┤┼╇╋━─┳┻┬┴═╪]", " ", text)
    return re.sub(r"\s+", " ", body)


def _expected() -> list[tuple[str, dict[str, object], list[str]]]:
    out = []
    for name in NAMES:
        res = tcptrace_py.analyze(SAMPLES / name)
        for rec in res.records:
            out.append((name, rec, list(rec["anomalies"])))
    return out


@pytest.mark.parametrize("width", [80, 100, 120, 160, 200])
def test_connections_table_fits_and_keeps_what_matters(width: int) -> None:
    paths = [str(SAMPLES / n) for n in NAMES]
    text = _invoke(width, "analyze", *paths)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= width
    words = _words(text)
    for name, rec, codes in _expected():
        client = f"{rec['client_ip']}:{rec['client_port']}"
        if ":" in str(rec["client_ip"]):
            client = f"[{rec['client_ip']}]:{rec['client_port']}"
        assert client in words, (width, name, client)
        assert str(rec["close"]) in words
        for code in codes:
            assert code in words, (width, name, code)
    # Several inputs: a short label per capture and one legend line each, not a path column.
    for i, name in enumerate(NAMES, 1):
        legend = [line for line in lines if line.startswith(f"cap {i}: ")]
        assert legend and legend[0].endswith(name), (width, lines[:6])
    assert sum(str(SAMPLES) in line for line in lines) == len(NAMES)


def test_layout_follows_the_width() -> None:
    """80: one block per connection; 120: stacked columns with the anomalies beside them;
    a pipe without COLUMNS: the full table, one column per field."""
    one = [str(SAMPLES / "rst_abort.pcap")]
    narrow = _invoke(80, "analyze", *one)
    assert "connection" in narrow and "traffic" not in narrow and "retrans-" not in narrow
    assert "close rst_by_client" in _words(narrow)
    mid = _invoke(120, "analyze", *one)
    assert "traffic" in mid and "anomalies" in mid and "→ 10.77.0.2:8080" in mid
    assert "retrans-" not in mid
    wide = _invoke(None, "analyze", *one)
    assert max(len(line) for line in wide.splitlines()) <= 200
    # One column per field, the retransmissions one (squeezed to nothing before) included.
    assert "retrans-" in wide and "anomalies" in wide and "traffic" not in wide


@pytest.mark.parametrize("width", [80, 120])
def test_flow_ladder_readable_at_width(width: int) -> None:
    text = _invoke(width, "flow", str(SAMPLES / "half_close.pcap"), "0")
    assert max(len(line) for line in text.splitlines()) <= width
    words = _words(text)
    # The transitions column's own text, its wrapped lines joined (other columns' lines
    # sit between them in the rendered rows).
    last_col = " ".join(line.rstrip("│ ").rsplit("│", 1)[-1].strip()
                        for line in text.splitlines() if line.startswith("│"))
    last_col = re.sub(r"\s+", " ", last_col)
    res = tcptrace_py.analyze(SAMPLES / "half_close.pcap", packets=True)
    frames = res.packets["frame"].tolist()
    for frame in frames:
        assert re.search(rf"\b{frame}\b", words)
    # Every transition of the connection is spelled out with its states.
    for ev in res.events.itertuples():
        assert f"{ev.endpoint}: {ev.old_state} -> {ev.new_state}" in last_col
    assert "half_close" in words


def test_anomalies_table_uses_capture_labels_at_80() -> None:
    paths = [str(SAMPLES / n) for n in ("refused.pcap", "half_open.pcap")]
    text = _invoke(80, "anomalies", *paths)
    assert max(len(line) for line in text.splitlines()) <= 80
    words = _words(text)
    for code in ("connection_refused", "half_open", "reset_on_data"):
        assert code in words
    assert [line for line in text.splitlines() if line.startswith("cap ")] == [
        f"cap 1: {paths[0]}", f"cap 2: {paths[1]}"]


# --------------------------------------------------------------------------- order
SEVERITY_ORDER = {"error": 2, "warning": 1, "info": 0}


def _cap_column(text: str) -> list[str]:
    """The ``cap`` cell of each connection row of a wide table (its first line only)."""
    rows = []
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip("│").split("│")]
        if line.startswith("│") and len(cells) > 2 and cells[0].isdigit() and cells[1].isdigit():
            rows.append(cells[0])
    return rows


def test_table_rows_by_severity_then_start_time() -> None:
    """Four samples, given in an order that is neither: the rows come worst first, equal
    severities by start time (rst_storm's info and half_close's info are ordered by time)."""
    names = ("normal.pcap", "half_close.pcap", "rst_abort.pcap", "refused.pcap",
             "zero_window.pcap")
    paths = [str(SAMPLES / n) for n in names]
    expected = []
    for i, p in enumerate(paths, 1):
        res = tcptrace_py.analyze(p)
        for rec in res.records:
            sevs = [a.severity for a in res.all_anomalies if a.flow_id == rec["flow_id"]]
            worst = max((SEVERITY_ORDER[s] for s in sevs), default=-1)
            expected.append((-worst, rec["start_ts"], str(i)))
    expected.sort()
    text = _invoke(250, "analyze", *paths)
    assert _cap_column(text) == [cap for _w, _t, cap in expected]
    assert len({w for w, _t, _c in expected}) >= 3   # the samples do span the severities


SYNSCAN = Path(__file__).resolve().parents[2] / "shared" / "captures" / "packets" / \
    "synscan.pcapng"


@pytest.mark.skipif(not SYNSCAN.exists(), reason="../shared captures absent")
def test_scan_finding_leads_the_table() -> None:
    """nmap's SYN scan of 1,000 ports: the one port_scan warning is printed before the
    1,994 connections (it was line 4,022 of 4,035), and the first connection rows are the
    errors."""
    text = _invoke(250, "analyze", str(SYNSCAN))
    lines = text.splitlines()
    scan = next(i for i, line in enumerate(lines) if "port_scan" in line)
    table = next(i for i, line in enumerate(lines) if "TCP connections" in line)
    assert scan < table
    first_row = next(line for line in lines[table:] if line.startswith("│"))
    assert "error" in first_row
    text = _invoke(250, "anomalies", str(SYNSCAN))
    rows = [line for line in text.splitlines() if line.startswith("│")]
    severities = [r.split("│")[1].strip() for r in rows if r.split("│")[1].strip()]
    ranks = [SEVERITY_ORDER[s] for s in severities]
    assert ranks == sorted(ranks, reverse=True)
    first_warning = next(r for r in rows if r.split("│")[1].strip() == "warning")
    assert "port_scan" in first_warning           # capture-wide first among equals
