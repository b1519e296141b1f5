"""The ``flow`` ladder: relative seq/ack, scaled window and SACK blocks per packet (equal
to tshark's), ``--interesting``, and the plain layout used for long connections."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

import tcptrace_py
from tcptrace_py import cli
from tcptrace_py.analysis import flags
from tcptrace_py.cli import main

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
LOSS = SAMPLES / "data_loss_retrans.pcap"   # SACK recovery, window scaling

pytestmark = pytest.mark.skipif(not LOSS.exists(), reason="samples/ absent")


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark absent")
def test_ladder_numbers_equal_tsharks() -> None:
    """Every frame of the connection: tcp.seq, tcp.ack (relative), tcp.window_size (the
    calculated, scaled window) and the SACK edges, as tshark 4 prints them."""
    out = subprocess.run(
        ["tshark", "-r", str(LOSS), "-T", "fields", "-e", "frame.number", "-e", "tcp.seq",
         "-e", "tcp.ack", "-e", "tcp.flags.ack", "-e", "tcp.window_size",
         "-e", "tcp.options.sack_le", "-e", "tcp.options.sack_re"],
        capture_output=True, text=True, check=True).stdout
    (rec,) = tcptrace_py.analyze(LOSS).records
    expected = {}
    for line in out.splitlines():
        frame_s, seq, ack, has_ack, win, les, res = line.split("\t")
        sack = " ".join(f"{a}-{b}" for a, b in zip(les.split(","), res.split(","),
                                                 strict=True)) if les else ""
        expected[int(frame_s)] = (int(seq), int(ack) if has_ack == "1" else None, int(win),
                                  sack)
    got = cli._segment_details(str(LOSS), rec, set(expected))
    assert len(got) == len(expected) == 96
    for frame, want in expected.items():
        d = got[frame]
        assert (d.seq, d.ack, d.window, d.sack) == want, frame


def _frames_shown(text: str) -> list[int]:
    return [int(line.split("│")[1]) for line in text.splitlines()
            if line.startswith("│") and line.split("│")[1].strip().isdigit()]


def test_interesting_keeps_only_packets_with_events() -> None:
    res = tcptrace_py.analyze(LOSS, packets=True)
    routine = flags.TRUNCATED | flags.RTT_SAMPLE
    event_frames = set(res.events["frame"])
    pk = res.packets
    want = [int(f) for f, m, tf in zip(pk["frame"], pk["analysis_flags"], pk["tcp_flags"],
                                       strict=True)
            if m & ~routine or tf & 0x07 or f in event_frames]
    out = CliRunner().invoke(main, ["flow", str(LOSS), "0", "--interesting", "--limit", "0"],
                             env={"COLUMNS": "250"}).stdout
    assert _frames_shown(out) == want
    assert 20 < len(want) < len(pk) // 2      # the recovery, not the whole transfer
    assert "sack 30409-31857 11585-27513" in out  # frame 60's SACK blocks


def test_long_ladder_is_printed_as_plain_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    """Above PLAIN_LADDER_MIN_ROWS rows (rich draws ~1,000 rows a second) the ladder is one
    fixed-width line per packet, with the same numbers, states and transitions."""
    monkeypatch.setattr(cli, "PLAIN_LADDER_MIN_ROWS", 10)
    out = CliRunner().invoke(main, ["flow", str(LOSS), "0", "--frames", "1-20"]).stdout
    lines = out.splitlines()
    rows = [line for line in lines if line[:8].strip().isdigit()]
    assert [int(r.split()[0]) for r in rows] == list(range(1, 21))
    assert "│" not in out.split("anomalies", 1)[-1]
    first = rows[0]
    assert "S ──▶" in first and "SYN_SENT/INACTIVE" in first and "seq 0 win 64240" in first
    assert any("client: INACTIVE -> SYN_SENT" in line for line in lines)
    assert any("◀── SA" in r and "seq 0 ack 1" in r for r in rows)
