"""Sequence analysis against the labelled real-kernel scenarios in ../shared/scenarios.

Ground truth is labels.json (kernel counters and the scenario design), never another tool.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from analysis_feed import SHARED, FedConnection, feed_file

from tcptrace_py.segment import addr_text

LABELS = SHARED / "scenarios" / "labels.json"
pytestmark = pytest.mark.skipif(not LABELS.exists(), reason="../shared/scenarios absent")

SCENARIOS: dict[str, Any] = (json.loads(LABELS.read_text())["scenarios"]
                             if LABELS.exists() else {})
_CACHE: dict[str, list[FedConnection]] = {}

# label anomaly type -> (DirectionStats attribute of the side named in "by")
COUNTED = {
    "data_retransmission": "rexmt_data_pkts",
    "fast_retransmission": "rexmt_fast",
    "fin_retransmission": "fin_rexmt",
    "syn_retransmission": "syn_rexmt",
    "synack_retransmission": "syn_rexmt",
    "zero_window": "zero_window_advs",
    "zero_window_probe": "zwp_pkts",
    "keepalive_probe": "keepalives",
    "keepalive_ack": "keepalive_acks",
    "dup_ack": "dup_acks",
    "sack_blocks": "sack_pkts",
}


def conns(name: str) -> list[FedConnection]:
    if name not in _CACHE:
        _CACHE[name] = feed_file(SHARED / "scenarios" / SCENARIOS[name]["pcap"])
    return _CACHE[name]


def endpoint(c: FedConnection) -> str:
    ip = addr_text(c.client[0])
    return f"[{ip}]:{c.client[1]}" if ":" in ip else f"{ip}:{c.client[1]}"


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_retransmission_total_equals_kernel_ground_truth(name: str) -> None:
    expected = SCENARIOS[name]["expected"]["retransmitted_segments_total"][
        "pcap_syn+synack+fin+data_retransmissions"]
    got = [c.analyzer.columns()["retransmissions"] for c in conns(name)]
    assert sum(got) == expected  # type: ignore[arg-type]
    assert got == [c.analyzer.retransmission_total for c in conns(name)]


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_labelled_per_connection_counts(name: str) -> None:
    by_client = {endpoint(c): c for c in conns(name)}
    checked = 0
    for lc in SCENARIOS[name]["expected"]["connections"]:
        fed = by_client.get(lc["client"])
        assert fed is not None, lc["client"]
        for an in lc.get("anomalies", []):
            attr = COUNTED.get(an["type"])
            if attr is None or "count" not in an:
                continue
            stats = fed.analyzer.client if an["by"] == "client" else fed.analyzer.server
            assert getattr(stats, attr) == an["count"], (lc["client"], an["type"])
            checked += 1
    no_counts = all("count" not in a or a["type"] not in COUNTED
                    for lc in SCENARIOS[name]["expected"]["connections"]
                    for a in lc.get("anomalies", []))
    assert checked or no_counts


def test_lost_final_ack_first_fin_resend_is_a_tail_loss_probe() -> None:
    (c,) = conns("lost_final_ack")
    rs = c.analyzer.retransmissions
    assert [r.kind for r in rs] == ["fin"] * 5
    assert [r.trigger for r in rs] == ["tail_loss_probe"] + ["rto"] * 4
    # The client's ACK of the FIN was captured before each resend: lost after the capture point.
    assert all(r.spurious for r in rs)
    assert c.analyzer.server.backoff_ratio.mean == pytest.approx(2.0, abs=0.05)


def test_unanswered_syn_backoff_intervals() -> None:
    (c,) = conns("unanswered_syn")
    labelled = next(a for a in SCENARIOS["unanswered_syn"]["expected"]["connections"][0][
        "anomalies"] if a["type"] == "syn_retransmission")
    since_s = [r.since_original_ns / 1e9 for r in c.analyzer.retransmissions]
    assert since_s == pytest.approx(labelled["observed_times_after_first_syn_s"], abs=0.01)
    assert c.analyzer.client.backoff_ratio.mean == pytest.approx(2.0, abs=0.1)


def test_zero_window_tlp_proven_spurious_by_dsack_and_probes_not_keepalives() -> None:
    (c,) = conns("zero_window")
    a = c.analyzer
    (r,) = a.retransmissions
    assert r.trigger == "tail_loss_probe" and r.spurious and r.sender == "client"
    assert a.client.keepalives == 0
    assert {p.style for p in a.zero_window_probes} == {"linux_zero_byte"}
    assert a.zero_window_periods[0].probes == a.client.zwp_pkts


def test_data_loss_retrans_classification_matches_kernel_counters() -> None:
    (c,) = conns("data_loss_retrans")
    a = c.analyzer
    labels = SCENARIOS["data_loss_retrans"]["expected"]["connections"][0]["anomalies"]
    fast = next(x["count"] for x in labels if x["type"] == "fast_retransmission")
    kinds = [r.kind for r in a.retransmissions if r.sender == "server"]
    assert kinds.count("fast") == fast == len(kinds)  # kernel TCPFastRetrans (server)
    client = [r for r in a.retransmissions if r.sender == "client"]
    assert [r.kind for r in client] == ["tail_loss_probe"]  # kernel TCPLossProbes = 1
    assert all(r.original_frame > 0 for r in a.retransmissions)
