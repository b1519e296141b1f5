"""FIN rules of the sequence analysis (issue 15 items 3 and 4).

* A bare FIN beyond SND.NXT reveals data the capture never saw: a gap (missed bytes, a
  segment not captured), as Zeek, tcptrace and tshark count it (zeek/miss_end_data.pcap).
* A FIN re-send is spurious only once the FIN itself (its sequence number + 1) was
  acknowledged: a server whose final ACK was lost before the capture point re-sends a FIN
  nobody acknowledged, and every re-send was needed.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from captures_util import pcap_bytes, tcp_frame

from tcptrace_py.analysis import flags as AF
from tcptrace_py.engine import Engine, FlowResult
from tcptrace_py.options import Options
from tcptrace_py.segment import ACK, FIN, PSH, SYN

SHARED = Path(__file__).resolve().parents[2] / "shared" / "captures"
SAMPLES = Path(__file__).resolve().parents[1] / "samples"
T0 = 1_700_000_000_000_000_000
MS = 1_000_000
C, S = "10.0.0.1", "10.0.0.2"


def run(frames: list[tuple[float, bytes]], fast_path: bool = True) -> FlowResult:
    data = pcap_bytes([(T0 + int(t * MS), f) for t, f in frames])
    results = list(Engine(Options(keep_packets=True, fast_path=fast_path)).run(data))
    assert len(results) == 1
    return results[0]


def cli(seq: int, ack: int, flags: int, payload: bytes = b"") -> bytes:
    return tcp_frame(C, S, 40000, 80, seq, ack, flags, payload=payload)


def srv(seq: int, ack: int, flags: int, payload: bytes = b"") -> bytes:
    return tcp_frame(S, C, 80, 40000, seq, ack, flags, payload=payload)


def zeek_missed_bytes(conn_log: Path) -> int:
    fields: list[str] = []
    for line in conn_log.read_text().splitlines():
        if line.startswith("#fields"):
            fields = line.split("\t")[1:]
        elif line and not line.startswith("#"):
            return int(line.split("\t")[fields.index("missed_bytes")])
    raise AssertionError("no connection in the Zeek log")


@pytest.mark.parametrize("fast_path", [True, False])
def test_miss_end_data_counts_the_gap_before_the_fin(fast_path: bool) -> None:
    path = SHARED / "zeek" / "miss_end_data.pcap"
    if not path.exists():
        pytest.skip("shared captures not available")
    res = list(Engine(Options(fast_path=fast_path)).run(path))[0]
    rec = res.record
    expected = zeek_missed_bytes(SHARED / "expected" / "zeek" / "miss_end_data.pcap.conn.log")
    assert expected == 2902
    assert (rec["server_lost_segments"], rec["server_missed_bytes"]) == (1, expected)
    assert (rec["client_lost_segments"], rec["client_missed_bytes"]) == (0, 0)
    gap = next(a for a in res.anomalies if a.code == "segments_not_captured")
    assert gap.details == {"server_gaps": 1, "server_missed_bytes": 2902}
    assert rec["server_fin_retransmissions"] == 0 and rec["server_acks_of_unseen_data"] == 0


@pytest.mark.parametrize("fast_path", [True, False])
def test_bare_fin_beyond_snd_nxt_is_a_gap_and_one_at_snd_nxt_is_not(fast_path: bool) -> None:
    base: list[tuple[float, bytes]] = [
        (0, cli(1000, 0, SYN)),
        (10, srv(5000, 1001, SYN | ACK)),
        (20, cli(1001, 5001, ACK)),
        (21, cli(1001, 5001, PSH | ACK, b"q" * 100)),
        (30, srv(5001, 1101, ACK, b"a" * 1000)),
    ]
    # The server's next 1,500 bytes never reach the capture; its FIN does.
    gap = run(base + [(40, srv(7501, 1101, FIN | ACK)), (50, cli(1101, 7502, FIN | ACK)),
                      (60, srv(7502, 1102, ACK))], fast_path)
    assert (gap.record["server_lost_segments"], gap.record["server_missed_bytes"]) == (1, 1500)
    fin_row = next(r for r in gap.packets or [] if r[0] == 6)
    assert fin_row[5] & AF.LOST_SEGMENT
    whole = run(base + [(40, srv(6001, 1101, FIN | ACK)), (50, cli(1101, 6002, FIN | ACK)),
                        (60, srv(6002, 1102, ACK))], fast_path)
    assert (whole.record["server_lost_segments"], whole.record["server_missed_bytes"]) == (0, 0)
    assert "segments_not_captured" not in {a.code for a in whole.anomalies}


@pytest.mark.parametrize("fast_path", [True, False])
def test_data_overtaken_by_its_fin_is_reordering_not_a_gap(fast_path: bool) -> None:
    """The server's last data segment reaches the capture point after its FIN (IP IDs 11
    then 12 sent, 12 seen first): the FIN's gap is filled by the delayed original, so it is
    out-of-order delivery, not a segment the capture missed (as for a data gap)."""
    def s_id(seq: int, ack: int, flags: int, ip_id: int, payload: bytes = b"") -> bytes:
        return tcp_frame(S, C, 80, 40000, seq, ack, flags, payload=payload, ip_id=ip_id)

    frames: list[tuple[float, bytes]] = [
        (0, cli(1000, 0, SYN)),
        (10, s_id(5000, 1001, SYN | ACK, 9)),
        (20, cli(1001, 5001, ACK)),
        (21, cli(1001, 5001, PSH | ACK, b"q" * 100)),
        (30, s_id(5001, 1101, ACK, 10, b"a" * 1000)),
        (40, s_id(7001, 1101, FIN | ACK, 12)),
        (40.2, s_id(6001, 1101, PSH | ACK, 11, b"b" * 1000)),
        (50, cli(1101, 7002, FIN | ACK)),
        (60, s_id(7002, 1102, ACK, 13)),
    ]
    rec = run(frames, fast_path).record
    assert (rec["server_lost_segments"], rec["server_missed_bytes"]) == (0, 0)
    assert rec["server_out_of_order_pkts"] == 1 and rec["server_retransmitted_segments"] == 0


def lost_final_ack(final_acks_captured: bool) -> list[tuple[float, bytes]]:
    """Client closes first; its final ACK is lost, so the server re-sends its FIN five times
    (RTO backoff from 200 ms), each re-ACKed by the client's TIME_WAIT. Lost after the capture
    point, the client's ACKs of the FIN are in the capture; lost before it, they are not."""
    frames = [
        (0, cli(1000, 0, SYN)),
        (0.1, srv(5000, 1001, SYN | ACK)),
        (0.2, cli(1001, 5001, ACK)),
        (0.3, cli(1001, 5001, PSH | ACK, b"q" * 60)),
        (0.4, srv(5001, 1061, PSH | ACK, b"a" * 700)),
        (0.5, cli(1061, 5701, ACK)),
        (0.6, cli(1061, 5701, FIN | ACK)),
        (47, srv(5701, 1062, ACK)),
        (50, srv(5701, 1062, FIN | ACK)),
    ]
    t = 50.0
    for i in range(5):
        if final_acks_captured:
            frames.append((t + 0.02, cli(1062, 5702, ACK)))
        t += 200 * 2 ** i
        frames.append((t, srv(5701, 1062, FIN | ACK)))
    return frames


@pytest.mark.parametrize("fast_path", [True, False])
def test_fin_resent_before_it_was_acknowledged_is_not_spurious(fast_path: bool) -> None:
    """The final ACK lost before the capture point: the data before the FIN was
    acknowledged (5701) but the FIN (5702) never was, so none of the five re-sends is
    spurious (before: all five were, from the ACK of the data alone)."""
    res = run(lost_final_ack(final_acks_captured=False), fast_path)
    rec = res.record
    assert rec["server_fin_retransmissions"] == 5
    assert rec["server_spurious_retransmissions"] == 0
    assert "spurious_retransmission" not in {a.code for a in res.anomalies}
    resent = [r[5] for r in res.packets or [] if r[5] & AF.FIN_RETRANSMISSION]
    assert len(resent) == 5 and not any(m & AF.SPURIOUS_RETRANSMISSION for m in resent)


@pytest.mark.parametrize("fast_path", [True, False])
def test_fin_resent_after_it_was_acknowledged_is_spurious(fast_path: bool) -> None:
    """The same with the client's ACKs of the FIN captured (lost after the capture point):
    the FIN was acknowledged, so its re-sends were needless at the capture point."""
    rec = run(lost_final_ack(final_acks_captured=True), fast_path).record
    assert rec["server_fin_retransmissions"] == 5
    assert rec["server_spurious_retransmissions"] == 5


def test_lost_final_ack_sample_keeps_its_spurious_fins() -> None:
    """samples/lost_final_ack.pcap (real Linux sockets, ACKs of the FIN captured): 4
    spurious FIN re-sends, unchanged by the rule."""
    rec = next(iter(Engine().run(SAMPLES / "lost_final_ack.pcap"))).record
    assert rec["server_fin_retransmissions"] == 4
    assert rec["server_spurious_retransmissions"] == 4
