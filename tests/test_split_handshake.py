"""Issue 15 item 8: the TCP split handshake (Beardsley and Qian 2010) is one connection.

SYN / ACK / SYN / SYN-ACK / ACK: the answering host first acknowledges the SYN, then sends a
SYN of its own; the first host answers with a SYN-ACK at the ISN of its SYN. Before the rule,
the answering host's SYN (a sequence number other than its ACK's) opened a new incarnation.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from test_detectors import Talk, analyse_results

from tcptrace_py.segment import ACK, PSH, SYN

SHARED = Path(__file__).resolve().parents[2] / "shared"
FOUR_WAY = SHARED / "captures" / "suricata-verify" / "split-handshake-4whs.pcap"


@pytest.mark.parametrize("ack_seq", [7777, 5001, 5000])
def test_five_way_split_handshake_is_one_connection(tmp_path: Path, ack_seq: int) -> None:
    frames: list[tuple[int, bytes]] = []
    t = Talk(frames, c_isn=1000, s_isn=5000)
    t.c(0.0, SYN)                                   # 1: SYN, ISN 1000
    t.s(0.001, ACK, seq=ack_seq, ack=1001)          # 2: ACK of it, no SYN
    t.s(0.002, SYN, seq=5000)                       # 3: its own SYN, ISN 5000
    t.nxt[False] = 5001
    t.c(0.003, SYN | ACK, seq=1000, ack=5001)       # 4: SYN-ACK at the same ISN 1000
    t.s(0.004, ACK)                                 # 5
    t.c(0.01, ACK | PSH, 100)
    t.s(0.011, ACK | PSH, 200)
    t.c(0.012, ACK)
    results = analyse_results(tmp_path, frames)
    assert [r.record["flow_id"] for r in results] == [0]
    rec = results[0].record
    assert rec["client_packets"] == 4 and rec["server_packets"] == 4
    assert (rec["client_state"], rec["server_state"]) == ("ESTABLISHED", "ESTABLISHED")
    assert rec["open"] == "simultaneous_open" and rec["incarnation"] == 0
    assert rec["client_isn"] == 1000 and rec["server_isn"] == 5000
    assert rec["client_data_bytes"] == 100 and rec["server_data_bytes"] == 200
    split = [(e.endpoint, e.old_state, e.new_state) for e in results[0].events
             if e.frame == 3 and e.direction == "sent"]
    assert split == [("server", "ESTABLISHED", "SYN_SENT")]


def test_midstream_then_a_new_syn_is_still_a_new_incarnation(tmp_path: Path) -> None:
    """The rule needs the peer in SYN_SENT: after a mid-stream pick-up (both sides sending
    ACK/data), a SYN with another sequence number is a reuse of the 4-tuple, as before."""
    frames: list[tuple[int, bytes]] = []
    t = Talk(frames, c_isn=1000, s_isn=5000)
    t.c(0.0, ACK | PSH, 10)
    t.s(0.01, ACK | PSH, 10)
    t.c(0.02, ACK)
    t.s(0.03, SYN, seq=90000)
    results = analyse_results(tmp_path, frames)
    assert sorted(r.record["flow_id"] for r in results) == [0, 1]


@pytest.mark.skipif(not FOUR_WAY.exists(), reason="shared captures absent")
def test_four_way_split_handshake_capture_is_one_connection() -> None:
    from tcptrace_py.engine import Engine

    results = list(Engine().run(str(FOUR_WAY)))
    assert len(results) == 1 and results[0].record["open"] == "simultaneous_open"


def test_split_handshake_same_with_and_without_fast_path(tmp_path: Path) -> None:
    from captures_util import write_pcap
    from test_fastpath import _outputs

    frames: list[tuple[int, bytes]] = []
    t = Talk(frames, c_isn=1000, s_isn=5000)
    t.c(0.0, SYN)
    t.s(0.001, ACK, seq=7777, ack=1001)
    t.s(0.002, SYN, seq=5000)
    t.nxt[False] = 5001
    t.c(0.003, SYN | ACK, seq=1000, ack=5001)
    t.s(0.004, ACK)
    for i in range(5):
        t.c(0.01 + i / 100, ACK | PSH, 100)
        t.s(0.011 + i / 100, ACK | PSH, 200)
    path = write_pcap(tmp_path / "t.pcap", frames)
    fast = _outputs(str(path), True)
    assert fast == _outputs(str(path), False) and len(fast) == 2
