"""Port scans and SYN floods (detectors/scans.py) on captures the tests write."""

from __future__ import annotations

from pathlib import Path

from test_detectors import Talk, analyse, only

from tcptrace_py.segment import ACK, PSH, RST, SYN

SCANNER = "10.9.9.9"
TARGET = "10.0.0.2"


def _probe(frames: list[tuple[int, bytes]], t: float, outcome: str, port: int,
           host: str = TARGET, source: str = SCANNER, sport: int = 50000) -> None:
    """One probe from ``source`` to ``host:port``: refused, unanswered, abandoned (SYN-ACK,
    then the source resets, as a SYN scan does) or open (a full handshake, then RST)."""
    talk = Talk(frames, cport=sport, sport=port, client=source, server=host)
    talk.c(t, SYN)
    if outcome == "refused":
        talk.s(t + 0.001, RST | ACK, seq=0)
    elif outcome == "abandoned":
        talk.s(t + 0.001, SYN | ACK)
        talk.c(t + 0.002, RST)
    elif outcome == "open":
        talk.s(t + 0.001, SYN | ACK)
        talk.c(t + 0.002, ACK)
        talk.c(t + 0.003, RST | ACK)


def test_vertical_syn_scan_with_every_outcome(tmp_path: Path) -> None:
    frames: list[tuple[int, bytes]] = []
    outcomes = ["refused"] * 20 + ["unanswered"] * 8 + ["abandoned"] * 2 + ["open"] * 3
    for i, outcome in enumerate(outcomes):
        _probe(frames, i * 0.01, outcome, 1000 + i, sport=50000 + i)
    scan = only(analyse(tmp_path, frames), "port_scan")
    d = scan.details
    assert (scan.flow_id, scan.severity, d["source"], d["kind"]) == (None, "warning", SCANNER,
                                                                     "vertical")
    assert (d["probes"], d["targets"], d["hosts"], d["ports"]) == (33, 33, 1, 33)
    assert d["outcomes"] == {"refused": 20, "unanswered": 8, "abandoned": 2, "open": 3}
    assert d["sample_ports"][:3] == [1000, 1001, 1002] and len(d["sample_ports"]) == 20
    assert scan.first_frame == 1 and d["rate_per_s"] > 90
    assert "33 ports of 10.0.0.2" in scan.summary


def test_horizontal_scan_of_one_port(tmp_path: Path) -> None:
    frames: list[tuple[int, bytes]] = []
    for i in range(25):
        _probe(frames, i * 0.02, "unanswered", 22, host=f"10.1.0.{i + 1}", sport=40000 + i)
    found = analyse(tmp_path, frames)
    scan = only(found, "port_scan")
    assert (scan.details["kind"], scan.details["hosts"], scan.details["ports"]) == (
        "horizontal", 25, 1)
    assert "port 22 on 25 hosts" in scan.summary
    assert not [a for a in found if a.code == "syn_flood"]  # one source per server


def test_few_failures_or_successful_handshakes_are_no_scan(tmp_path: Path) -> None:
    frames: list[tuple[int, bytes]] = []
    for i in range(12):  # below min_targets
        _probe(frames, i * 0.01, "refused", 2000 + i, sport=41000 + i)
    for i in range(30):  # a health checker: handshakes to 30 servers, no data, all open
        _probe(frames, 1 + i * 0.01, "open", 443, host=f"10.2.0.{i + 1}",
               source="10.8.8.8", sport=42000 + i)
    for i in range(30):  # a busy client: 30 short connections with data
        talk = Talk(frames, cport=43000 + i, sport=80, client="10.7.7.7",
                    server=f"10.3.0.{i + 1}")
        talk.handshake(2 + i * 0.01)
        talk.c(2 + i * 0.01 + 0.03, ACK | PSH, 100)
        talk.close_by_client(2 + i * 0.01 + 0.05)
    found = analyse(tmp_path, frames)
    assert not [a for a in found if a.code in ("port_scan", "syn_flood")]


def test_spoofed_syn_flood(tmp_path: Path) -> None:
    frames: list[tuple[int, bytes]] = []
    for i in range(150):
        _probe(frames, i * 0.001, "unanswered", 80, host="192.0.2.80",
               source=f"198.18.{i // 250}.{i % 250 + 1}", sport=1024 + i)
    flood = only(analyse(tmp_path, frames), "syn_flood")
    d = flood.details
    assert (d["server"], d["attempts"], d["single_syn_share"]) == ("192.0.2.80:80", 150, 1.0)
    assert d["sources"] == 150 and not d["sources_capped"]
    assert "spoofed" in flood.summary and flood.last_frame == 150
    assert "from 150 sources" in flood.summary
    # Distinct sources are remembered up to max_targets per server...
    capped = only(analyse(tmp_path, frames, **{"scan.max_targets": 60}), "syn_flood")
    assert (capped.details["sources"], capped.details["sources_capped"]) == (60, True)
    assert "from 60+ sources" in capped.summary and capped.details["attempts"] == 150
    # ... and up to max_keys over all entries (each source entry holds one target too).
    tight = only(analyse(tmp_path, frames, **{"scan.max_keys": 200}), "syn_flood")
    assert tight.details["sources_capped"] and tight.details["sources"] < 150


def test_clients_retrying_to_a_dead_server(tmp_path: Path) -> None:
    frames: list[tuple[int, bytes]] = []
    for i in range(110):
        talk = Talk(frames, cport=30000 + i, sport=443, client=f"10.4.{i // 200}.{i % 200 + 1}",
                    server="10.0.0.5")
        talk.c(i * 0.01, SYN)
        talk.c(i * 0.01 + 1.0, SYN, seq=1000)
    flood = only(analyse(tmp_path, frames, **{"scan.max_targets": 500}), "syn_flood")
    assert (flood.details["sources"], flood.details["single_syn_share"]) == (110, 0.0)
    assert not flood.details["sources_capped"] and "clients retried" in flood.summary
    assert not [a for a in analyse(tmp_path, frames, **{"scan.min_attempts": 200})
                if a.code == "syn_flood"]


def test_memory_is_bounded_and_a_steady_scanner_is_still_found(tmp_path: Path) -> None:
    """Spoofed single-SYN sources push each other out of the LRU table; the scanner, active
    all along, stays in it."""
    frames: list[tuple[int, bytes]] = []
    for i in range(300):
        _probe(frames, i * 0.01, "unanswered", 80, host="192.0.2.80",
               source=f"198.19.{i // 250}.{i % 250 + 1}", sport=2000 + i)
        if i % 10 == 0:
            _probe(frames, i * 0.01 + 0.005, "refused", 3000 + i, sport=60000 + i)
    found = analyse(tmp_path, frames, **{"scan.max_tracked": 40})
    scan = only(found, "port_scan")
    assert scan.details["source"] == SCANNER and scan.details["probes"] == 30
