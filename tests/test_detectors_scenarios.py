"""Detectors against the labelled real-kernel scenarios and clean real captures (../shared).

Every labelled anomaly must be found on the right connection under an accepted code with the
labelled counts; the clean scenarios and complete clean captures raise nothing at warning or
above. Skipped when ../shared is absent.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tcptrace_py.engine import Engine
from tcptrace_py.events import SEVERITY_RANK, Anomaly

SHARED = Path(__file__).resolve().parents[2] / "shared"
SCEN = SHARED / "scenarios"
CAPS = SHARED / "captures"

pytestmark = pytest.mark.skipif(not (SCEN / "labels.json").exists(),
                                reason="../shared/scenarios not available")

# Label type -> codes that satisfy it (the scorer's map, restricted to what we emit).
ACCEPT = {"final_ack_lost": {"lost_final_ack"}, "fin_retransmission": {"lost_final_ack"},
          "synack_retransmission": {"synack_retransmission"}, "half_open": {"half_open"},
          "port_reuse": {"time_wait_reuse"}, "syn_to_time_wait": {"time_wait_reuse"},
          "time_wait_reuse": {"time_wait_reuse"}, "zero_window": {"zero_window_stall"},
          "zero_window_probe": {"zero_window_stall"}, "close_wait_stuck": {"close_wait_stuck"},
          "half_close": {"half_close"}, "data_in_flight_at_abort": {"abortive_close"},
          "connect_timeout": {"unanswered_syn"}}


def _labels() -> dict[str, Any]:
    if not (SCEN / "labels.json").exists():
        return {}
    return dict(json.loads((SCEN / "labels.json").read_text())["scenarios"])


def _run(path: Path) -> tuple[list[dict[str, Any]], list[Anomaly], list[Anomaly]]:
    engine = Engine()
    records, per_conn = [], []
    for r in engine.run(str(path)):
        records.append(r.record)
        per_conn.extend(r.anomalies)
    return records, per_conn, engine.summary.anomalies


def _endpoint(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def _flow(records: list[dict[str, Any]], conn: dict[str, Any], used: set[int]) -> int:
    pair = {conn["client"], conn["server"]}
    for rec in records:
        ends = {_endpoint(rec["client_ip"], rec["client_port"]),
                _endpoint(rec["server_ip"], rec["server_port"])}
        if ends == pair and rec["flow_id"] not in used:
            used.add(rec["flow_id"])
            return int(rec["flow_id"])
    raise AssertionError(f"no record for {conn['client']} -> {conn['server']}")


def _check_counts(label: dict[str, Any], found: list[Anomaly]) -> None:
    kind = label["type"]
    by = {a.code: a for a in found}
    if kind == "fin_retransmission":
        assert by["lost_final_ack"].details["fin_retransmissions"] == label["count"]
        gaps = by["lost_final_ack"].details["intervals_s"]
        assert gaps == pytest.approx(label["observed_gaps_between_fins_s"], abs=0.01)
    elif kind == "synack_retransmission":
        assert by["synack_retransmission"].details["count"] == label["count"]
    elif kind == "zero_window_probe":
        assert by["zero_window_stall"].details["probes"] == label["count"]
    elif kind == "zero_window":
        assert by["zero_window_stall"].details["zero_window_advertisements"] == label["count"]
    elif kind == "half_close":
        assert by["half_close"].details["bytes_after_fin"] == \
            label["server_bytes_after_client_fin"]


@pytest.mark.parametrize("name", sorted(_labels()))
def test_labelled_anomalies_found_with_counts(name: str) -> None:
    sc = _labels()[name]
    records, per_conn, wide = _run(SCEN / sc.get("pcap", name + ".pcap"))
    everything = per_conn + wide
    used: set[int] = set()
    for conn in sc["expected"]["connections"]:
        flow = _flow(records, conn, used)
        mine = [a for a in everything if a.flow_id == flow]
        codes = {a.code for a in mine}
        for label in conn.get("anomalies", []):
            want = ACCEPT.get(label["type"])
            if label["type"] == "syn_retransmission" and conn["close"] == "unanswered":
                want = {"unanswered_syn"}
                a = next(x for x in mine if x.code == "unanswered_syn")
                assert a.details["attempts"] == label["count"] + 1
                assert a.details["intervals_s"] == pytest.approx(
                    [b - x for x, b in zip([0] + label["expected_times_after_first_syn_s"],
                                           label["expected_times_after_first_syn_s"],
                                           strict=False)], rel=0.1)
                assert a.details["pattern"] == "linux_exponential"
                assert a.details["gave_up"] is True
            if label["type"] == "rst" and conn["close"] == "refused":
                want = {"connection_refused"}
            if not want:
                continue
            assert codes & want, f"{name} flow {flow}: {label['type']} not in {sorted(codes)}"
            _check_counts(label, mine)
    if name == "rst_storm":
        storms = [a for a in wide if a.code == "rst_storm" and a.details["scope"] == "capture"]
        assert len(storms) == 1
        assert storms[0].details["count"] == sc["expected"]["anomaly_totals"]["rst_packets"]
        assert storms[0].details["top_senders"][0] == ["10.99.11.2", 200]
    if not any(c.get("anomalies") for c in sc["expected"]["connections"]):
        bad = [(a.code, a.severity) for a in everything
               if SEVERITY_RANK[a.severity] >= SEVERITY_RANK["warning"]]
        assert bad == [], f"clean scenario {name} raised {bad}"


CLEAN = ["zeek/tcp-http-with-padding.pcap", "dpkt/http.pcap", "packets/tcp_handshake.pcapng",
         "packets/tcp_teardown.pcapng", "pcapplusplus/four_ipv6_http_streams.pcap",
         "zeek/wikipedia.pcap", "packets/http_ip4and6.pcapng", "zeek/ipv6.pcap"]


@pytest.mark.parametrize("rel", CLEAN)
def test_clean_real_captures_raise_nothing_serious(rel: str) -> None:
    path = CAPS / rel
    if not path.exists():
        pytest.skip(f"{rel} not available")
    _, per_conn, wide = _run(path)
    bad = [(a.code, a.severity, a.summary) for a in per_conn + wide
           if SEVERITY_RANK[a.severity] >= SEVERITY_RANK["warning"]]
    assert bad == []


def test_capture_artifacts_in_real_captures_are_never_errors() -> None:
    for rel in ("zeek/zero-length-bodies-with-drops.pcap", "zeek/missing-syn.pcap",
                "pcapplusplus/pcapng-example.pcapng", "tcpdump/tcp_rst_data-trunc.pcap"):
        path = CAPS / rel
        if not path.exists():
            continue
        _, per_conn, wide = _run(path)
        for a in per_conn + wide:
            if a.category == "capture":
                assert a.severity != "error", (rel, a)
