"""Issue 15 item 12: a handshake the capture did not show whole is shown as inferred.

``open`` stays ``three_way_handshake`` when later segments prove the handshake; the record's
``handshake_inferred`` and ``handshake_seen`` (SYN / SYN-ACK / ACK marks) and the terminal
table say it was inferred and which of its segments were captured.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from captures_util import write_pcap
from click.testing import CliRunner
from test_detectors import Talk, analyse_results

from tcptrace_py.cli import main
from tcptrace_py.engine import Engine
from tcptrace_py.segment import ACK, PSH, SYN

SHARED = Path(__file__).resolve().parents[2] / "shared" / "captures"


def _talk(tmp_path: Path, skip: set[int], one_sided: bool = False) -> dict[str, Any]:
    """Handshake + one exchange, leaving out the frames (1-based) in ``skip``."""
    frames: list[tuple[int, bytes]] = []
    t = Talk(frames)
    t.handshake()
    t.c(0.1, ACK | PSH, 100)
    t.s(0.11, ACK | PSH, 200)
    t.c(0.12, ACK)
    kept = [f for i, f in enumerate(frames, 1) if i not in skip]
    if one_sided:
        kept = [f for i, f in enumerate(frames, 1) if i in (1, 3, 4, 6)]
    return dict(analyse_results(tmp_path, kept)[0].record)


def test_whole_handshake_is_observed(tmp_path: Path) -> None:
    rec = _talk(tmp_path, set())
    assert rec["open"] == "three_way_handshake"
    assert rec["handshake_seen"] == "SSA" and rec["handshake_inferred"] is False


@pytest.mark.parametrize(("skip", "seen"), [({1}, ".SA"), ({2}, "S.A")])
def test_missing_handshake_segment_is_inferred(tmp_path: Path, skip: set[int],
                                               seen: str) -> None:
    rec = _talk(tmp_path, skip)
    assert rec["open"] == "three_way_handshake"
    assert rec["handshake_seen"] == seen and rec["handshake_inferred"] is True


def test_one_sided_capture_is_inferred(tmp_path: Path) -> None:
    """Only the client's packets (asymmetric routing): its ACK after its SYN proves it."""
    rec = _talk(tmp_path, set(), one_sided=True)
    assert rec["open"] == "three_way_handshake" and rec["server_packets"] == 0
    assert rec["handshake_seen"] == "S.A" and rec["handshake_inferred"] is True


def test_midstream_is_not_a_handshake(tmp_path: Path) -> None:
    rec = _talk(tmp_path, {1, 2, 3})
    assert rec["open"] == "midstream"
    assert rec["handshake_seen"] == "..." and rec["handshake_inferred"] is False


def test_terminal_table_says_inferred(tmp_path: Path) -> None:
    frames: list[tuple[int, bytes]] = []
    t = Talk(frames)
    t.handshake()
    t.c(0.1, ACK | PSH, 100)
    path = write_pcap(tmp_path / "t.pcap", frames[1:])  # the capture starts at the SYN-ACK
    res = CliRunner().invoke(main, ["analyze", str(path)])
    assert res.exit_code == 0, res.output
    assert "three_way_handshake (inferred, seen .SA)" in res.output
    res = CliRunner().invoke(main, ["flow", str(path), "0"])
    assert res.exit_code == 0, res.output
    assert "open=three_way_handshake (inferred, seen .SA)" in res.output
    assert SYN


@pytest.mark.parametrize(("name", "flow", "seen"), [
    ("arkime/http-syn-ack.pcap", 0, ".SA"),          # starts at the SYN-ACK
    ("zeek/missing-syn.pcap", 0, ".SA"),
    ("pcapplusplus/raw_ip.pcap", 2, "S.A"),          # one-sided: the server never seen
    ("suricata-verify/input.pcap", 0, ".S."),        # only the server side
])
def test_real_captures_with_an_inferred_handshake(name: str, flow: int, seen: str) -> None:
    path = SHARED / name
    if not path.exists():
        pytest.skip("shared captures absent")
    recs = {r.record["flow_id"]: r.record for r in Engine().run(str(path))}
    rec = recs[flow]
    assert rec["open"] == "three_way_handshake"
    assert rec["handshake_seen"] == seen and rec["handshake_inferred"] is True


def test_real_capture_with_the_whole_handshake() -> None:
    path = SHARED / "packets" / "tcp_handshake.pcapng"
    if not path.exists():
        pytest.skip("shared captures absent")
    for r in Engine().run(str(path)):
        if r.record["open"] == "three_way_handshake":
            assert r.record["handshake_seen"] == "SSA"
            assert r.record["handshake_inferred"] is False
