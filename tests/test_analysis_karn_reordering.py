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
from captures_util import opt_sack, opt_ts, pcap_bytes, tcp_frame

from tcptrace_py.analysis import flags as F
from tcptrace_py.engine import Engine, FlowResult
from tcptrace_py.options import Options
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


# ============================================================== items 5 and 6: hole fillers
CLI, SRV = "10.0.0.1", "10.0.0.2"
T0_NS = 1_700_000_000 * 10**9
CISN, SISN = 100_000, 900_000


class Conv:
    """A client->server transfer written frame by frame: MSS-sized segments numbered from 0,
    IP IDs and TSvals chosen by the test (0 / None: absent)."""

    def __init__(self, *, handshake: bool = True) -> None:
        self.frames: list[tuple[int, bytes]] = []
        if handshake:  # 10 ms to the server and back, 10 ms to the client and back
            self.pkt(0, True, CISN, 0, SYN, ip_id=1, tsval=1)
            self.pkt(10, False, SISN, CISN + 1, SYN | ACK, ip_id=1, tsval=1)
            self.pkt(20, True, CISN + 1, SISN + 1, ACK, ip_id=2, tsval=1)

    def pkt(self, t_ms: float, from_client: bool, seq: int, ack: int, flags: int, *,
            n: int = 0, ip_id: int = 0, tsval: int | None = None,
            sack: tuple[tuple[int, int], ...] = ()) -> None:
        opts = b""
        if tsval is not None:
            opts += b"\x01\x01" + opt_ts(tsval, 1)
        if sack:
            opts += b"\x01\x01" + opt_sack(sack)
        src, dst, sp, dp = (CLI, SRV, 40000, 80) if from_client else (SRV, CLI, 80, 40000)
        self.frames.append((T0_NS + int(t_ms * 1e6), tcp_frame(
            src, dst, sp, dp, seq, ack, flags, payload=b"x" * n, options=opts, ip_id=ip_id)))

    def data(self, t_ms: float, n: int, *, ip_id: int = 0, tsval: int | None = None) -> None:
        self.pkt(t_ms, True, CISN + 1 + n * MSS, SISN + 1, ACK | PSH, n=MSS, ip_id=ip_id,
                 tsval=tsval)

    def ack(self, t_ms: float, n_acked: int, *, sack_to: int = 0,
            tsval: int | None = None) -> None:
        left = CISN + 1 + (n_acked + 1) * MSS
        sack = ((left, CISN + 1 + sack_to * MSS),) if sack_to else ()
        self.pkt(t_ms, False, SISN + 1, CISN + 1 + n_acked * MSS, ACK, tsval=tsval, sack=sack)

    def run(self) -> tuple[FlowResult, dict[int, int]]:
        (res,) = list(Engine(Options(keep_packets=True)).run(pcap_bytes(self.frames)))
        assert res.packets is not None
        return res, {row[0]: row[5] for row in res.packets}


def _codes(res: FlowResult) -> set[str]:
    return {a.code for a in res.anomalies}


def _reordered(*, ip_ids: bool, tsvals: bool, fill_ms: float) -> tuple[FlowResult,
                                                                        dict[int, int]]:
    """Segments 0, 1, 3, 4, then 2 (frame 8) ``fill_ms`` after segment 3 opened the hole."""
    c = Conv()
    for n, t in ((0, 30), (1, 30.1), (3, 30.2), (4, 30.3)):
        c.data(t, n, ip_id=10 + n if ip_ids else 0, tsval=100 + n if tsvals else None)
    c.data(30.2 + fill_ms, 2, ip_id=12 if ip_ids else 0, tsval=102 if tsvals else None)
    c.ack(30.3 + fill_ms + 10, 5)
    return c.run()


@pytest.mark.parametrize(("ip_ids", "tsvals", "fill_ms"), [
    (True, False, 50.0),   # the IP ID (12, below the 13 of the segment after the hole)
    (False, True, 50.0),   # the TSval (102 < 103)
    (False, False, 1.0),   # timing: 1 ms after the hole, under the 20 ms round trip
])
def test_reordered_original_is_out_of_order_not_loss(ip_ids: bool, tsvals: bool,
                                                     fill_ms: float) -> None:
    res, masks = _reordered(ip_ids=ip_ids, tsvals=tsvals, fill_ms=fill_ms)
    r = res.record
    assert masks[8] & F.OUT_OF_ORDER and not masks[8] & F.RETRANSMISSION
    assert (r["client_out_of_order_pkts"], r["client_lost_segments"],
            r["client_missed_bytes"], r["retransmissions"]) == (1, 0, 0, 0)
    assert "segments_not_captured" not in _codes(res)


def test_late_filler_without_evidence_is_a_resend_of_an_uncaptured_segment() -> None:
    # No IP IDs, no timestamps, 50 ms after the hole on a 20 ms path: a re-send (the original
    # was lost before the capture point), so the hole stays a capture gap.
    res, masks = _reordered(ip_ids=False, tsvals=False, fill_ms=50.0)
    r = res.record
    assert masks[8] & F.RETRANSMISSION and not masks[8] & F.OUT_OF_ORDER
    assert (r["client_out_of_order_pkts"], r["client_lost_segments"],
            r["client_retransmitted_segments"], r["retransmissions"]) == (0, 1, 1, 1)
    # rexmt_data_* count payload the capture saw twice (tcptrace): this one it saw once.
    assert r["client_rexmt_data_pkts"] == 0
    assert r["client_data_bytes"] == r["client_unique_bytes"] + r["client_rexmt_data_bytes"]
    assert "segments_not_captured" in _codes(res)


def _fast_retransmit_race(original_first: bool) -> tuple[FlowResult, dict[int, int]]:
    """Segment 2 delayed past three dup ACKs: the sender's fast retransmit (IP ID 20, TSval
    130) and the delayed original (IP ID 12, TSval 102) both arrive, in either order."""
    c = Conv()
    for n in (0, 1, 3, 4, 5, 6):
        c.data(30 + n * 0.1, n, ip_id=10 + n, tsval=100 + n)  # frames 4-9
    for i, sack_to in enumerate((4, 5, 6, 7)):  # frames 10-13: ACK 2 with SACK 3..
        c.ack(31 + i * 0.1, 2, sack_to=sack_to)
    late = [(42.0, 12, 102), (52.0, 20, 130)]  # (time, IP ID, TSval): original, re-send
    if not original_first:
        late = [(42.0, 20, 130), (52.0, 12, 102)]
    for t, ip_id, tsval in late:  # frames 14 and 15
        c.pkt(t, True, CISN + 1 + 2 * MSS, SISN + 1, ACK | PSH, n=MSS, ip_id=ip_id,
              tsval=tsval)
        c.ack(t + 0.1, 7)  # frames 15/16 and 17
    return c.run()


@pytest.mark.parametrize("original_first", [False, True])
def test_segment_delayed_past_fast_retransmit_is_spurious_resend_plus_reordering(
        original_first: bool) -> None:
    res, masks = _fast_retransmit_race(original_first)
    r = res.record
    orig_frame, resend_frame = (14, 16) if original_first else (16, 14)
    assert masks[orig_frame] & F.OUT_OF_ORDER and not masks[orig_frame] & F.RETRANSMISSION
    assert masks[resend_frame] & F.RETRANSMISSION
    assert (r["client_out_of_order_pkts"], r["client_lost_segments"],
            r["client_missed_bytes"]) == (1, 0, 0)
    assert (r["retransmissions"], r["client_fast_retransmissions"],
            r["client_spurious_retransmissions"]) == (1, 1, 1)
    assert "segments_not_captured" not in _codes(res)
    # rexmt_data_* stay tcptrace's "payload the capture saw twice", whichever came first.
    assert (r["client_rexmt_data_pkts"], r["client_rexmt_data_bytes"]) == (1, MSS)
    assert r["client_data_bytes"] == r["client_unique_bytes"] + r["client_rexmt_data_bytes"]


def test_resend_proven_by_timestamps_is_a_fast_retransmission(tmp_path: Path) -> None:
    # Segment 2 lost before the capture point; after three dup ACKs its re-send arrives
    # with a newer TSval: a fast retransmission of a segment never captured.
    c = Conv()
    for n in (0, 1, 3, 4, 5):
        c.data(30 + n * 0.1, n, tsval=100 + n)  # frames 4-8
    for i, sack_to in enumerate((4, 5, 6)):  # frames 9-11
        c.ack(31 + i * 0.1, 2, sack_to=sack_to)
    c.data(52, 2, tsval=125)  # frame 12
    c.ack(52.1, 6)
    res, masks = c.run()
    assert masks[12] & F.FAST_RETRANSMISSION and not masks[12] & F.OUT_OF_ORDER
    assert masks[13] & F.AMBIGUOUS_ACK  # Karn: the ACK of a re-send
    assert res.record["client_lost_segments"] == 1  # the original never reached the capture
    path = tmp_path / "resend.pcap"
    path.write_bytes(pcap_bytes(c.frames))
    (fed,) = feed_file(path)
    (rx,) = fed.analyzer.retransmissions
    assert (rx.frame, rx.kind, rx.original_frame) == (12, "fast", -1)


def test_fill_of_a_hole_from_before_the_capture_is_a_fast_retransmission() -> None:
    # Picked up mid-stream: the server's first ACK SACKs 3-4 (segments 0-2 were sent before
    # the capture), the client's first data is segment 4, dup ACKs follow, then segment 0
    # arrives. No IP IDs, no timestamps, no RTT: only the capture start proves the re-send.
    c = Conv(handshake=False)
    c.ack(0, 0, sack_to=4)  # frame 1
    for i, n in enumerate((4, 5, 6)):  # frames 2, 4, 6 and dup ACKs 3, 5, 7
        c.data(1 + i, n)
        c.ack(1.1 + i, 0, sack_to=n + 1)
    c.data(5, 0)  # frame 8
    res, masks = c.run()
    assert masks[8] & F.RETRANSMISSION and masks[8] & F.FAST_RETRANSMISSION
    assert not masks[8] & F.OUT_OF_ORDER
    assert res.record["client_fast_retransmissions"] == 1


def test_tcp_dupack_frame_8_is_a_fast_retransmission() -> None:
    # tshark: "This frame is a (suspected) fast retransmission"; its IP ID (0xabf7) is three
    # after the 0xabf4 of frame 2, the first segment above the hole, so it was sent after it.
    path = _need(CAPTURES / "packets" / "tcp_dupack.pcapng")
    (res,) = list(Engine(Options(keep_packets=True)).run(path))
    assert res.packets is not None
    masks = {row[0]: row[5] for row in res.packets}
    assert masks[8] & F.RETRANSMISSION and masks[8] & F.FAST_RETRANSMISSION
    assert not masks[8] & F.OUT_OF_ORDER
    assert (res.record["server_out_of_order_pkts"], res.record["server_fast_retransmissions"],
            res.record["server_retransmitted_segments"]) == (0, 1, 1)


def test_urgent_fills_after_upstream_loss_are_fast_retransmissions() -> None:
    # Frame 100 opens a 4-segment hole (IP IDs 0xb61b-0xb61e never captured); frames 114-118
    # fill it repacketised, with IP IDs 0xb625-0xb628: re-sent after the dup ACKs.
    (c,) = [x for x in feed_file(_need(CAPTURES / "tcptrace" / "urgent.dmp.gz"))
            if x.analyzer.server.data_pkts > 1000]
    for frame in (114, 115, 117, 118):
        assert c.masks[frame] & F.FAST_RETRANSMISSION and not c.masks[frame] & F.OUT_OF_ORDER
    assert c.analyzer.server.ooo_pkts == 0
    assert c.analyzer.server.lost_segments == 3  # frames 100, 3863, 3888: none filled
