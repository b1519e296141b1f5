"""Issue 15 item 11: a bare RST is a peer without state (reset_on_data, half_open) only when
it answers a segment, i.e. follows the peer's last segment within a round trip; an unprompted
RST long after it is an abort."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_detectors import Talk, analyse, only

from tcptrace_py.engine import Engine
from tcptrace_py.segment import ACK, FIN, PSH, RST

SHARED = Path(__file__).resolve().parents[2] / "shared"
TCP_OPT = SHARED / "captures" / "suricata-verify" / "tcp-opt.pcap"


def test_bare_rst_long_after_the_peer_is_an_abort(tmp_path: Path) -> None:
    frames: list[tuple[int, bytes]] = []
    t = Talk(frames)
    t.handshake()                       # round trip 20 ms
    t.c(0.1, ACK | PSH, 100)
    t.s(0.11, ACK | PSH, 50)
    t.c(0.12, ACK)
    t.s(3.0, RST)                       # nothing from the client for 2.88 s
    found = analyse(tmp_path, frames)
    codes = [a.code for a in found]
    assert "reset_on_data" not in codes and "half_open" not in codes
    a = only(found, "abortive_close")
    assert a.details["by"] == "server" and a.details["rst_frame"] == 7
    assert a.details["since_peer_segment_s"] == pytest.approx(2.88)
    assert a.details["basis"].startswith("unprompted")


def test_bare_rst_answering_a_segment_stays_reset_on_data(tmp_path: Path) -> None:
    frames: list[tuple[int, bytes]] = []
    t = Talk(frames)
    t.handshake()
    t.c(0.1, ACK | PSH, 100)
    t.s(0.11, ACK)
    t.c(5.0, ACK | PSH, 100)
    t.s(5.03, RST)                      # 30 ms after the data: within the answer window
    found = analyse(tmp_path, frames)
    assert only(found, "reset_on_data").details["by"] == "server"
    assert only(found, "half_open").details["evidence"] == "reset_on_data"
    assert "abortive_close" not in [a.code for a in found]
    # A tighter window (0.5 round trips, 1 ms floor) makes the same RST unprompted.
    found = analyse(tmp_path, frames, **{"resets.answer_max_rtts": 0.5,
                                         "resets.answer_min_s": 0.001})
    assert "reset_on_data" not in [a.code for a in found]
    assert only(found, "abortive_close").details["basis"].startswith("unprompted")


@pytest.mark.skipif(not TCP_OPT.exists(), reason="shared captures absent")
def test_tcp_opt_frame_42_is_an_abort() -> None:
    """The client resets 1.06 s after the server's last FIN re-send (round trip ~0.21 s):
    nothing prompted it."""
    results = list(Engine().run(str(TCP_OPT)))
    found = [a for r in results for a in r.anomalies]
    codes = [a.code for a in found]
    assert "reset_on_data" not in codes and "half_open" not in codes
    a = only(found, "abortive_close")
    assert a.details["by"] == "client" and a.details["rst_frame"] == 42
    assert a.details["since_peer_segment_s"] == pytest.approx(1.06, abs=0.01)
    assert results[0].record["close"] == "rst_by_client"


def test_rst_after_own_fin_is_not_an_unprompted_abort(tmp_path: Path) -> None:
    """The new rule only replaces reset_on_data: a RST after the sender's own FIN is left to
    the close detectors as before."""
    frames: list[tuple[int, bytes]] = []
    t = Talk(frames)
    t.handshake()
    t.c(0.1, ACK | PSH, 100)
    t.s(0.11, ACK)
    t.s(0.2, FIN | ACK)
    t.c(0.21, ACK)
    t.s(3.0, RST)
    codes = [a.code for a in analyse(tmp_path, frames)]
    assert "abortive_close" not in codes and "reset_on_data" not in codes
