"""Karn's rule on cumulative ACKs, reordering versus loss, and re-sends of never-captured data.

Issue 15, items 2, 5 and 6: on public captures from ../shared (skipped when absent), on the
project's samples, and on conversations built here byte by byte (IP IDs and TCP timestamps
are what tells a delayed original from a retransmission).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from analysis_feed import SHARED, Pkt, feed_file, run_pkts

from tcptrace_py.analysis import flags as F
from tcptrace_py.segment import ACK, PSH, SYN

REPO = Path(__file__).resolve().parents[1]
CAPTURES = SHARED / "captures"
SCENARIOS = SHARED / "scenarios"


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} absent")
    return path


# ============================================================== item 2: Karn, cumulative ACKs
C, S, MSS = 1000, 5000, 1000


def _handshake() -> list[Pkt]:
    return [Pkt(0.0, True, SYN, C, 0, mss=MSS), Pkt(0.010, False, SYN | ACK, S, C + 1, mss=MSS),
            Pkt(0.020, True, ACK, C + 1, S + 1)]


def _data(t: float, n: int) -> Pkt:
    return Pkt(t, True, ACK | PSH, C + 1 + n * MSS, S + 1, MSS)


def _ack(t: float, n: int) -> Pkt:
    return Pkt(t, False, ACK, S + 1, C + 1 + n * MSS)


def test_ack_covering_a_hole_filled_after_its_segment_gives_no_sample(tmp_path: Path) -> None:
    # Segment 0 never reached the capture point first time; 1 and 2 did. The ACK at 0.52
    # ends at segment 2 (sent once, at 0.1) but had to wait for segment 0, which passed the
    # capture point at 0.5: 420 ms is no round trip.
    pkts = _handshake() + [_data(0.1, 1), _data(0.1, 2), _data(0.5, 0), _ack(0.52, 3)]
    c = run_pkts(tmp_path, pkts)
    assert not c.masks[7] & F.RTT_SAMPLE
    assert c.masks[7] & F.AMBIGUOUS_ACK
    assert c.analyzer.client.rtt.count == 1  # the handshake only
    assert c.analyzer.client.ambiguous_acks == 1


def test_ack_covering_a_resend_older_than_its_segment_is_a_sample(tmp_path: Path) -> None:
    # Segment 0 re-sent at 1.2, segment 2 first sent at 1.22: the coalesced ACK at 1.25 ends at
    # segment 2, which passed after every byte the ACK covers, so 30 ms is a round trip
    # (tcptrace's rule: no transmission below the segment came after it).
    pkts = _handshake() + [_data(0.1, 0), _data(0.1, 1), _data(1.2, 0), _data(1.22, 2),
                           _ack(1.25, 3)]
    c = run_pkts(tmp_path, pkts)
    assert c.masks[8] & F.RTT_SAMPLE
    assert c.analyzer.client.rtt.max == pytest.approx(30e6, abs=1e3)


def _rtt_cols(path: Path) -> list[dict[str, Any]]:
    return [c.analyzer.columns() | {"masks": c.masks} for c in feed_file(path)]


def test_tcp_opt_frame_29_is_no_rtt_sample() -> None:
    # Frame 29 ACKs up to the end of frame 22 (sent once, 0.7066 s) but covers 2084-2692,
    # re-sent by frame 27 at 0.8822 s: today's 278 ms sample is gone; tcptrace agrees (5).
    (cols,) = _rtt_cols(_need(CAPTURES / "suricata-verify" / "tcp-opt.pcap"))
    assert cols["masks"][29] & F.AMBIGUOUS_ACK and not cols["masks"][29] & F.RTT_SAMPLE
    assert cols["client_rtt_samples"] == 5
    assert cols["client_rtt_max_ms"] == 186.783
    assert cols["client_srtt_ms"] < 130  # the estimator no longer sees 278 ms


def test_retransmit_fast009_keeps_only_the_clean_sample() -> None:
    (cols,) = _rtt_cols(_need(CAPTURES / "zeek" / "retransmit-fast009.pcap"))
    assert cols["server_rtt_samples"] == 1  # tcptrace: 1
    assert cols["server_rtt_max_ms"] == 185.385
    assert cols["server_srtt_ms"] == 185.385


def test_6syns_second_connection_has_no_1_8_s_sample() -> None:
    conns = _rtt_cols(_need(CAPTURES / "tcptrace" / "6syns.dmp.gz"))
    second = conns[1]
    assert second["masks"][66] & F.AMBIGUOUS_ACK
    assert second["client_rtt_samples"] == 13  # tcptrace: 13
    assert second["client_rtt_max_ms"] < 1100


def test_data_loss_retrans_scenario_rtt_is_the_capture_point_rtt() -> None:
    # Captured at the receiver: the data's RTT at the capture point is ~10 us. Cumulative ACKs
    # after each SACK recovery used to give 2-21 ms samples (and an SRTT of 13 ms).
    (cols,) = _rtt_cols(_need(SCENARIOS / "data_loss_retrans.pcap"))
    assert cols["server_rtt_samples"] == 75  # tcptrace: 75
    assert cols["server_rtt_max_ms"] < 0.1
    assert cols["server_srtt_ms"] < 0.1


def test_data_loss_retrans_sample_rtt_matches_the_path() -> None:
    (cols,) = _rtt_cols(REPO / "samples" / "data_loss_retrans.pcap")
    assert cols["client_rtt_samples"] == 9  # tcptrace: 9
    assert cols["client_rtt_max_ms"] == 24.501  # the handshake; no 27-40 ms samples
