"""SequenceAnalyzer on captures the tests write themselves (dpkt -> pcap -> reader/decoder)."""

from __future__ import annotations

from pathlib import Path

from analysis_feed import Pkt, run_pkts

from tcptrace_py.analysis import AnalysisOptions, RttEstimator, flag_names
from tcptrace_py.analysis import flags as F
from tcptrace_py.segment import ACK, FIN, PSH, SYN

C = 1000  # client ISN
S = 5000  # server ISN
MSS = 1000


def handshake(c_isn: int = C, s_isn: int = S, *, ws: bool = False, sack: bool = True,
              t: float = 0.0) -> list[Pkt]:
    wsc = 7 if ws else -1
    return [
        Pkt(t, True, SYN, c_isn, 0, mss=MSS, wscale=wsc, sack_permitted=sack),
        Pkt(t + 0.010, False, SYN | ACK, s_isn, c_isn + 1, mss=MSS, wscale=wsc,
            sack_permitted=sack),
        Pkt(t + 0.020, True, ACK, c_isn + 1, s_isn + 1),
    ]


def data(t: float, n: int, c_isn: int = C, s_isn: int = S, length: int = MSS) -> Pkt:
    """Client data segment number ``n`` (0-based)."""
    return Pkt(t, True, ACK | PSH, c_isn + 1 + n * MSS, s_isn + 1, length)


def sack_ack(t: float, n_acked: int, window: int = 65535,
             sack: tuple[tuple[int, int], ...] = ()) -> Pkt:
    """Server ACK of the first ``n_acked`` client segments."""
    return Pkt(t, False, ACK, S + 1, C + 1 + n_acked * MSS, window=window, sack=sack)


def test_rto_retransmission_names_original_and_applies_karn(tmp_path: Path) -> None:
    pkts = handshake() + [data(0.1, 0), data(0.1, 1), sack_ack(0.12, 0),
                          data(1.2, 0), sack_ack(1.21, 2)]
    c = run_pkts(tmp_path, pkts)
    a = c.analyzer
    (r,) = a.retransmissions
    assert (r.kind, r.sender, r.original_frame, r.frame, r.seq) == ("rto", "client", 4, 7, 1)
    assert r.since_original_ns == 1_100_000_000
    assert c.masks[7] & F.RETRANSMISSION and c.masks[7] & F.RTO_RETRANSMISSION
    # Karn on cumulative ACKs: the ACK at 1.21 ends at segment 2 (sent once, at 0.1) but also
    # covers segment 1, re-sent at 1.2 after it, so it waited for the re-send: no sample
    # (1.11 s would be no round trip). The ACK at 0.12 acked nothing new.
    assert a.client.rtt.count == 1  # the SYN (handshake) only
    assert a.client.ambiguous_acks == 1
    cols = a.columns()
    assert cols["retransmissions"] == 1
    assert cols["client_rexmt_data_bytes"] == MSS
    assert cols["client_unique_bytes"] == 2 * MSS
    assert cols["client_handshake_rtt_ms"] == 10.0
    assert cols["server_handshake_rtt_ms"] == 10.0


def test_karn_ambiguous_ack_is_counted_apart(tmp_path: Path) -> None:
    pkts = handshake() + [data(0.1, 0), data(1.1, 0), sack_ack(1.15, 1)]
    c = run_pkts(tmp_path, pkts)
    assert c.masks[6] & F.AMBIGUOUS_ACK and not c.masks[6] & F.RTT_SAMPLE
    assert c.analyzer.client.ambiguous_acks == 1
    assert c.analyzer.client.rtt.count == 1  # only the SYN


def test_fast_retransmission_after_three_dup_acks(tmp_path: Path) -> None:
    pkts = handshake() + [data(0.1 + i * 0.001, i) for i in range(5)]
    pkts += [sack_ack(0.15, 1)] + [sack_ack(0.151 + i * 0.001, 1) for i in range(3)]
    pkts += [data(0.16, 1), sack_ack(0.2, 5)]
    c = run_pkts(tmp_path, pkts)
    masks = [c.masks[f] for f in range(10, 13)]
    assert all(m & F.DUP_ACK for m in masks)
    assert masks[2] & F.TRIPLE_DUP_ACK and not masks[1] & F.TRIPLE_DUP_ACK
    (r,) = c.analyzer.retransmissions
    assert (r.kind, r.original_frame) == ("fast", 5)
    assert "fast_retransmission" in flag_names(c.masks[13])
    assert c.analyzer.server.dup_acks == 3 and c.analyzer.server.triple_dup_acks == 1


def test_sack_evidence_makes_it_fast_with_one_dup_ack(tmp_path: Path) -> None:
    blk = ((C + 1 + 2 * MSS, C + 1 + 3 * MSS),)
    pkts = handshake() + [data(0.1 + i * 0.001, i) for i in range(3)]
    pkts += [sack_ack(0.15, 1), sack_ack(0.152, 1, sack=blk), data(0.16, 1)]
    c = run_pkts(tmp_path, pkts)
    (r,) = c.analyzer.retransmissions
    assert r.kind == "fast"
    assert c.masks[8] & F.SACK and not c.masks[8] & F.DSACK


def test_tail_loss_probe_then_rto_backoff(tmp_path: Path) -> None:
    pkts = handshake() + [data(0.1, 0), data(0.1, 1), sack_ack(0.12, 1),
                          data(0.35, 1), data(0.75, 1), data(1.55, 1), sack_ack(1.6, 2)]
    c = run_pkts(tmp_path, pkts)
    kinds = [r.kind for r in c.analyzer.retransmissions]
    assert kinds == ["tail_loss_probe", "rto", "rto"]
    assert c.masks[7] & F.TAIL_LOSS_PROBE
    cols = c.analyzer.columns()
    assert cols["client_rto_backoff_ratio_avg"] == 2.0
    assert cols["client_rexmit_interval_min_ms"] == 250.0
    assert cols["client_rexmit_interval_max_ms"] == 800.0


def test_spurious_when_already_acknowledged(tmp_path: Path) -> None:
    pkts = handshake() + [data(0.1, 0), sack_ack(0.11, 1), data(0.5, 0)]
    c = run_pkts(tmp_path, pkts)
    (r,) = c.analyzer.retransmissions
    assert r.kind == "spurious" and r.spurious
    assert c.masks[6] & F.SPURIOUS_RETRANSMISSION


def test_dsack_proves_a_retransmission_spurious(tmp_path: Path) -> None:
    dsack = ((C + 1, C + 1 + MSS),)
    pkts = handshake() + [data(0.1, 0), data(0.1, 1), data(0.35, 1),
                          sack_ack(0.36, 2, sack=dsack)]
    pkts[-1] = Pkt(0.36, False, ACK, S + 1, C + 1 + 2 * MSS, sack=((C + 1 + MSS, C + 1 + 2 * MSS),))
    c = run_pkts(tmp_path, pkts)
    (r,) = c.analyzer.retransmissions
    assert r.spurious and r.kind == "spurious" and r.trigger == "tail_loss_probe"
    assert c.masks[7] & F.DSACK
    assert c.analyzer.server.dsack_pkts == 1 and c.analyzer.client.rexmt_spurious == 1


def test_linux_zero_byte_zero_window_probes(tmp_path: Path) -> None:
    """0-byte probes at SND.UNA - 1 are probes, never retransmissions or keep-alives."""
    pkts = handshake() + [data(0.1, 0), data(0.1, 1), sack_ack(0.11, 2, window=0)]
    probe = C + 2 * MSS  # SND.UNA - 1
    pkts += [Pkt(0.3, True, ACK, probe, S + 1), sack_ack(0.31, 2, window=0),
             Pkt(0.7, True, ACK, probe, S + 1), sack_ack(0.71, 2, window=0),
             sack_ack(1.0, 2, window=8000), data(1.01, 2)]
    c = run_pkts(tmp_path, pkts)
    a = c.analyzer
    assert a.retransmission_total == 0
    assert a.client.zwp_pkts == 2 and a.client.keepalives == 0
    assert [p.style for p in a.zero_window_probes] == ["linux_zero_byte"] * 2
    assert a.zero_window_probes[0].answered_by_frame == 8
    assert c.masks[8] & F.ZERO_WINDOW_PROBE_ACK and c.masks[7] & F.ZERO_WINDOW_PROBE
    assert a.server.zero_window_advs == 3
    (period,) = a.zero_window_periods
    assert (period.side, period.start_frame, period.end_frame, period.probes) == ("server", 6,
                                                                                  11, 2)
    assert c.masks[11] & F.WINDOW_UPDATE


def test_one_byte_zero_window_probes_are_not_retransmissions(tmp_path: Path) -> None:
    pkts = handshake() + [data(0.1, 0), sack_ack(0.11, 1, window=0),
                          Pkt(0.3, True, ACK, C + 1 + MSS, S + 1, 1),
                          Pkt(0.7, True, ACK, C + 1 + MSS, S + 1, 1),
                          sack_ack(1.0, 1, window=8000), data(1.01, 1)]
    c = run_pkts(tmp_path, pkts)
    a = c.analyzer
    assert a.retransmission_total == 0
    assert a.client.zwp_pkts == 2 and a.client.zwp_bytes == 2
    assert [p.style for p in a.zero_window_probes] == ["one_byte"] * 2
    cols = a.columns()
    assert cols["client_unique_bytes"] == 2 * MSS  # probe bytes are not unique data
    assert cols["client_data_bytes"] == 2 * MSS + 2


def test_keepalives_zero_and_one_byte(tmp_path: Path) -> None:
    pkts = handshake() + [data(0.1, 0), sack_ack(0.11, 1),
                          Pkt(10.0, True, ACK, C + MSS, S + 1), sack_ack(10.01, 1),
                          Pkt(20.0, True, ACK, C + MSS, S + 1, 1), sack_ack(20.01, 1)]
    c = run_pkts(tmp_path, pkts)
    a = c.analyzer
    assert a.retransmission_total == 0
    assert [k.payload_len for k in a.keepalives] == [0, 1]
    assert [k.answered_by_frame for k in a.keepalives] == [7, 9]
    assert a.client.keepalives == 2 and a.server.keepalive_acks == 2
    assert c.masks[6] & F.KEEPALIVE and c.masks[7] & F.KEEPALIVE_ACK
    assert a.columns()["client_idle_max_ms"] == 10000.0  # 10.0 s -> 20.0 s


def test_syn_and_fin_retransmissions(tmp_path: Path) -> None:
    pkts = [Pkt(0, True, SYN, C, mss=MSS), Pkt(1, True, SYN, C, mss=MSS),
            Pkt(3, True, SYN, C, mss=MSS),
            Pkt(3.01, False, SYN | ACK, S, C + 1, mss=MSS),
            Pkt(4.01, False, SYN | ACK, S, C + 1, mss=MSS),
            Pkt(4.02, True, ACK, C + 1, S + 1),
            Pkt(5, True, FIN | ACK, C + 1, S + 1), Pkt(5.2, True, FIN | ACK, C + 1, S + 1),
            Pkt(5.21, False, ACK, S + 1, C + 2)]
    c = run_pkts(tmp_path, pkts)
    a = c.analyzer
    assert [r.kind for r in a.retransmissions] == ["syn", "syn", "synack", "fin"]
    assert [r.original_frame for r in a.retransmissions] == [1, 1, 4, 7]
    assert a.retransmissions[-1].trigger == "tail_loss_probe"
    cols = a.columns()
    assert cols["retransmissions"] == 4
    assert cols["client_syn_retransmissions"] == 2 and cols["client_fin_retransmissions"] == 1
    assert cols["client_rto_backoff_ratio_avg"] == 2.0
    assert cols["client_handshake_rtt_ms"] == 10.0  # from the last SYN sent


def test_wraparound_near_2_32(tmp_path: Path) -> None:
    isn = 2**32 - 1500
    pkts = handshake(c_isn=isn) + [data(0.1 + i * 0.001, i, c_isn=isn) for i in range(4)]
    pkts += [data(1.2, 2, c_isn=isn), Pkt(1.3, False, ACK, S + 1, (isn + 1 + 4 * MSS))]
    c = run_pkts(tmp_path, pkts)
    (r,) = c.analyzer.retransmissions
    assert r.seq == 1 + 2 * MSS and r.original_frame == 6
    cols = c.analyzer.columns()
    assert cols["client_unique_bytes"] == 4 * MSS
    assert cols["client_out_of_order_pkts"] == 0 and cols["client_lost_segments"] == 0


def test_offsets_beyond_4_gib(tmp_path: Path) -> None:
    """Sequence numbers are read next to the last one: > 4 GiB gives 64-bit offsets."""
    step = 1_500_000_000
    pkts = handshake()
    for i in range(4):
        pkts.append(Pkt(0.1 + i, True, ACK, C + 1 + i * step, S + 1, MSS))
    pkts += [Pkt(5.0, True, ACK, C + 1 + 3 * step, S + 1, MSS),
             Pkt(5.1, False, ACK, S + 1, C + 1 + 3 * step + MSS)]
    c = run_pkts(tmp_path, pkts)
    (r,) = c.analyzer.retransmissions
    assert r.seq == 1 + 3 * step > 2**32
    assert c.analyzer.client.lost_segments == 3
    assert not c.masks[9] & F.ACK_UNSEEN


def test_window_scaling_needs_both_syns_and_skips_syn(tmp_path: Path) -> None:
    pkts = handshake(ws=True) + [Pkt(0.1, False, ACK, S + 1, C + 1, window=100)]
    a = run_pkts(tmp_path, pkts).analyzer
    assert a.server.win_max == 65535  # the SYN-ACK's field is never scaled
    assert a.server.win_min == 100 << 7
    pkts = handshake() + [Pkt(0.1, False, ACK, S + 1, C + 1, window=100)]
    b = run_pkts(tmp_path, pkts, name="nows.pcap").analyzer
    assert b.server.win_min == 100


def test_mid_stream_out_of_order_lost_and_ack_unseen(tmp_path: Path) -> None:
    pkts = [Pkt(0, True, ACK, 7000, 9000, MSS), Pkt(0.01, True, ACK, 7000 + 2 * MSS, 9000, MSS),
            Pkt(0.02, True, ACK, 7000 + MSS, 9000, MSS),
            Pkt(0.03, False, ACK, 9000, 7000 + 5 * MSS)]
    c = run_pkts(tmp_path, pkts)
    a = c.analyzer
    assert a.client.midstream and c.masks[2] & F.LOST_SEGMENT and c.masks[3] & F.OUT_OF_ORDER
    assert c.masks[4] & F.ACK_UNSEEN
    assert a.retransmission_total == 0
    assert a.columns()["client_missed_bytes"] == MSS


def test_evidence_lists_are_capped_and_overflow_counted(tmp_path: Path) -> None:
    pkts = handshake() + [data(0.1, 0)] + [data(1.0 + i, 0) for i in range(5)]
    c = run_pkts(tmp_path, pkts, AnalysisOptions(max_evidence_items=2))
    assert len(c.analyzer.retransmissions) == 2
    assert c.analyzer.evidence_dropped == {"retransmissions": 3}
    assert c.analyzer.columns()["retransmissions"] == 5


def test_rtt_estimator_follows_rfc6298() -> None:
    est = RttEstimator(min_rto_ns=0, clock_granularity_ns=1_000_000)
    assert est.rto_ns == 1e9  # (2.1)
    est.update(100_000_000)  # (2.2)
    assert (est.srtt_ns, est.rttvar_ns, est.rto_ns) == (1e8, 5e7, 3e8)
    est.update(200_000_000)  # (2.3): RTTVAR with the old SRTT first
    assert est.rttvar_ns == 0.75 * 5e7 + 0.25 * 1e8
    assert est.srtt_ns == 0.875 * 1e8 + 0.125 * 2e8
    assert est.rto_ns == est.srtt_ns + 4 * est.rttvar_ns
    est.on_timeout()  # (5.5)
    assert est.rto_ns == 2 * (est.srtt_ns + 4 * est.rttvar_ns)
    floor = RttEstimator()
    floor.update(1_000)
    assert floor.rto_ns == 1e9  # (2.4) rounded up to 1 s


def test_rtt_estimator_equals_the_rfc6298_formulas_on_random_samples() -> None:
    """update() writes RFC 6298's arithmetic out for speed; every value must still be the
    formulas' own, bit for bit (granularity and RTO bounds of all kinds included)."""
    import random

    rng = random.Random(6298)
    for _ in range(500):
        g, lo, hi = (rng.choice([0, 1_000_000]), rng.choice([0, 200_000_000, 10**9]),
                     rng.choice([10**9, 60 * 10**9]))
        est = RttEstimator(min_rto_ns=lo, max_rto_ns=hi, clock_granularity_ns=g)
        srtt: float | None = None
        var = 0.0
        for _ in range(rng.randint(1, 30)):
            r = rng.choice([0, 1, rng.randint(0, 10**6), rng.randint(0, 10**11)])
            if srtt is None:
                srtt, var = float(r), r / 2.0
            else:
                var = (1 - 1 / 4) * var + 1 / 4 * abs(srtt - r)
                srtt = (1 - 1 / 8) * srtt + 1 / 8 * r
            rto = min(max(srtt + max(float(g), 4 * var), float(lo)), float(hi))
            est.update(r)
            assert (est.srtt_ns, est.rttvar_ns, est.rto_ns) == (srtt, var, rto)


def test_flag_names_are_snake_case_in_bit_order() -> None:
    assert flag_names(F.SACK | F.RETRANSMISSION) == ["retransmission", "sack"]
    assert flag_names(0) == []
