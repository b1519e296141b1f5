"""The committed sample captures (samples/*.pcap) agree with samples/expected.json.

Why: expected.json is the ground truth the analyzer's end-to-end tests compare against, so it
must describe exactly the connections in each capture, use only the documented vocabulary,
and the captures must really show the behaviour they are named for.  These checks read the
captures independently of the analyzer (with dpkt), so an analyzer bug cannot hide a bad
sample and a bad sample cannot pass for an analyzer bug.
"""

from __future__ import annotations

import importlib.util
import json
import re
import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import dpkt
import pytest

SAMPLES_DIR = Path(__file__).resolve().parents[1] / "samples"
EXPECTED = json.loads((SAMPLES_DIR / "expected.json").read_text())
SAMPLES: dict[str, Any] = EXPECTED["samples"]
MAX_TOTAL_BYTES = 1_000_000

REQUIRED_SAMPLES = {
    "normal", "server_closes_first", "refused", "unanswered_syn", "lost_final_ack",
    "data_loss_retrans", "rst_abort", "rst_storm", "half_close", "syn_backlog_overflow",
    "zero_window", "keepalive", "keepalive_dead_peer", "simultaneous_open", "self_connect",
    "port_reuse_time_wait", "close_wait_stuck", "ipv6_normal",
}
OPEN_KINDS = {"three_way_handshake", "simultaneous_open", "not_established"}
CLOSE_KINDS = {"graceful", "rst_by_client", "rst_by_server", "refused", "unanswered",
               "half_closed_at_capture_end", "open_at_capture_end"}
ANOMALY_CODES = {
    "unanswered_syn", "connection_refused", "synack_retransmission", "half_open", "rst_storm",
    "lost_final_ack", "retransmission_timeout", "zero_window_stall", "close_wait_stuck",
    "half_close", "abortive_close", "keepalive_timeout", "time_wait_reuse", "simultaneous_open",
    "simultaneous_close", "self_connect", "reset_on_data", "rto_backoff", "port_scan",
    "syn_flood", "data_after_close", "icmp_unreachable", "pmtu_black_hole",
    "excessive_retransmissions",
}
RFC9293_STATES = {"CLOSED", "LISTEN", "SYN_SENT", "SYN_RECEIVED", "ESTABLISHED", "FIN_WAIT_1",
                  "FIN_WAIT_2", "CLOSE_WAIT", "CLOSING", "LAST_ACK", "TIME_WAIT"}
ENDPOINT_RE = re.compile(r"^(\d{1,3}(\.\d{1,3}){3}|\[[0-9a-f:]+\]):\d{1,5}$")


@dataclass(frozen=True)
class Pkt:
    """One TCP segment of a sample, with the facts the checks below need."""

    ts: float
    src: str
    dst: str
    flags: int
    seq: int
    ack: int
    win: int
    payload_len: int


def endpoint(addr: bytes, port: int) -> str:
    if len(addr) == 16:
        return f"[{socket.inet_ntop(socket.AF_INET6, addr)}]:{port}"
    return f"{socket.inet_ntop(socket.AF_INET, addr)}:{port}"


def read_tcp(pcap: Path) -> Iterator[Pkt]:
    with pcap.open("rb") as fh:
        reader = dpkt.pcap.Reader(fh)
        assert reader.datalink() == dpkt.pcap.DLT_EN10MB
        for ts, buf in reader:
            eth = dpkt.ethernet.Ethernet(buf)
            ip = eth.data
            if not isinstance(ip, (dpkt.ip.IP, dpkt.ip6.IP6)) or not isinstance(
                ip.data, dpkt.tcp.TCP
            ):
                continue
            tcp = ip.data
            # Captures are truncated at 200 bytes: take the payload length from the IP header.
            if isinstance(ip, dpkt.ip.IP):
                payload_len = ip.len - ip.hl * 4 - tcp.off * 4
            else:
                payload_len = ip.plen - tcp.off * 4
            yield Pkt(float(ts), endpoint(ip.src, tcp.sport), endpoint(ip.dst, tcp.dport),
                      tcp.flags, tcp.seq, tcp.ack, tcp.win, payload_len)


def connections(pkts: list[Pkt]) -> list[tuple[str, str]]:
    """TCP connections as (first sender, first receiver), one per 4-tuple incarnation.

    A new incarnation starts when a SYN arrives from a sender whose SYN of the current
    incarnation had a different ISN (port reuse); retransmitted SYNs keep the ISN, and in a
    simultaneous open each side sends its own first SYN, so neither starts a new one.
    """
    conns: list[tuple[str, str]] = []
    syn_isn: dict[tuple[str, str], dict[str, int]] = {}
    for p in pkts:
        key = (min(p.src, p.dst), max(p.src, p.dst))
        isns = syn_isn.get(key)
        if p.flags & dpkt.tcp.TH_SYN and not p.flags & dpkt.tcp.TH_ACK:
            if isns is None or (p.src in isns and isns[p.src] != p.seq):
                syn_isn[key] = {p.src: p.seq}
                conns.append((p.src, p.dst))
            else:
                isns.setdefault(p.src, p.seq)
        elif isns is None:
            syn_isn[key] = {}
            conns.append((p.src, p.dst))
    return conns


@pytest.fixture(scope="module")
def packets() -> dict[str, list[Pkt]]:
    return {name: list(read_tcp(SAMPLES_DIR / s["pcap"])) for name, s in SAMPLES.items()}


def from_client(pkts: list[Pkt], conn: dict[str, Any]) -> list[Pkt]:
    return [p for p in pkts if p.src == conn["client"] and p.dst == conn["server"]]


def from_server(pkts: list[Pkt], conn: dict[str, Any]) -> list[Pkt]:
    return [p for p in pkts if p.src == conn["server"] and p.dst == conn["client"]]


def test_required_behaviours_are_covered() -> None:
    assert REQUIRED_SAMPLES <= set(SAMPLES)
    codes = {c for s in SAMPLES.values() for c in s["capture_anomalies"]}
    codes |= {c for s in SAMPLES.values() for conn in s["connections"] for c in conn["anomalies"]}
    allowed = {c for s in SAMPLES.values() for conn in s["connections"]
               for c in conn["anomalies_allowed"]}
    # RTO backoff appears only as an allowed code here.
    assert codes == ANOMALY_CODES - {"rto_backoff"}
    assert codes | allowed == ANOMALY_CODES


def test_generator_lists_exactly_the_committed_samples() -> None:
    spec = importlib.util.spec_from_file_location("make_samples", SAMPLES_DIR / "make_samples.py")
    assert spec is not None and spec.loader is not None
    module: ModuleType = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    assert {s.name for s in module.SCENARIOS} == set(SAMPLES)
    assert set(module.ANOMALY_CODES) == ANOMALY_CODES


def test_samples_are_small() -> None:
    total = sum(p.stat().st_size for p in SAMPLES_DIR.glob("*.pcap"))
    assert 0 < total < MAX_TOTAL_BYTES
    assert {p.name for p in SAMPLES_DIR.glob("*.pcap")} == {s["pcap"] for s in SAMPLES.values()}


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_expected_entry_uses_the_documented_schema(name: str) -> None:
    sample = SAMPLES[name]
    assert sample["self_check"]["ok"], sample["self_check"]["problems"]
    assert sample["tcp_connections"] == len(sample["connections"]) > 0
    assert set(sample["capture_anomalies"]) <= ANOMALY_CODES
    for conn in sample["connections"]:
        assert ENDPOINT_RE.match(conn["client"]) and ENDPOINT_RE.match(conn["server"])
        assert conn["open"] in OPEN_KINDS and conn["close"] in CLOSE_KINDS
        assert conn["client_state"] in RFC9293_STATES
        assert conn["server_state"] in RFC9293_STATES
        assert set(conn["anomalies"]) <= ANOMALY_CODES
        assert set(conn["anomalies_allowed"]) <= ANOMALY_CODES
        assert not set(conn["anomalies"]) & set(conn["anomalies_allowed"])
        if conn["open"] == "not_established":
            assert conn["close"] in {"refused", "unanswered"}
    assert set(sample["kernel"]["counters"]) == {"client_ns", "server_ns"}


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_capture_holds_exactly_the_expected_connections(
    name: str, packets: dict[str, list[Pkt]]
) -> None:
    sample = SAMPLES[name]
    found = connections(packets[name])
    assert len(found) == sample["tcp_connections"]
    expected = [(c["client"], c["server"]) for c in sample["connections"]]
    # Order of first segments; the first sender is the client except in a simultaneous open,
    # where either SYN may come first.
    assert [frozenset(f) for f in found] == [frozenset(e) for e in expected]


def test_states_match_the_kernel_socket_table() -> None:
    """client_state/server_state are what ss reported (CLOSED when it listed nothing)."""
    for sample in SAMPLES.values():
        socks = sample["kernel"]["sockets_at_capture_end"]
        for conn in sample["connections"]:
            if conn.get("state_note"):
                assert conn["client_state"] == conn["server_state"] == "CLOSED"
                continue
            listed = {(s["local"], s["peer"]): s["state"] for ns in socks.values() for s in ns}
            for side, peer in (("client", "server"), ("server", "client")):
                state = listed.get((conn[side], conn[peer]), "CLOSED")
                assert conn[f"{side}_state"] == state


# --------------------------------------------------------------------------- behaviour
# Each sample shows, on the wire, the behaviour it is named for.

S, A, F, R = dpkt.tcp.TH_SYN, dpkt.tcp.TH_ACK, dpkt.tcp.TH_FIN, dpkt.tcp.TH_RST


def only(sample: str) -> dict[str, Any]:
    conns: list[dict[str, Any]] = SAMPLES[sample]["connections"]
    assert len(conns) == 1
    return conns[0]


def test_normal_and_ipv6_are_clean_handshake_and_fin_exchange(
    packets: dict[str, list[Pkt]]
) -> None:
    for name in ("normal", "ipv6_normal"):
        conn = only(name)
        pkts = packets[name]
        assert [p.flags & (S | A) for p in pkts[:3]] == [S, S | A, A]
        assert any(p.flags & F for p in from_client(pkts, conn))
        assert any(p.flags & F for p in from_server(pkts, conn))
        assert not any(p.flags & R for p in pkts)
        assert (conn["client_state"], conn["server_state"]) == ("TIME_WAIT", "CLOSED")
    assert only("ipv6_normal")["client"].startswith("[")


def test_server_closes_first(packets: dict[str, list[Pkt]]) -> None:
    conn = only("server_closes_first")
    fins = [p for p in packets["server_closes_first"] if p.flags & F]
    assert fins[0].src == conn["server"]
    assert (conn["client_state"], conn["server_state"]) == ("CLOSED", "TIME_WAIT")


def test_refused_and_unanswered_syn(packets: dict[str, list[Pkt]]) -> None:
    pkts = packets["refused"]
    assert [p.flags & (S | A | R) for p in pkts] == [S, R | A]
    syns = packets["unanswered_syn"]
    assert len(syns) == 3 and all(p.flags == S for p in syns)
    gaps = [round(b.ts - a.ts) for a, b in zip(syns, syns[1:], strict=False)]
    assert gaps == [1, 2]  # exponential backoff from the 1 s initial RTO (RFC 6298)


def test_synack_retransmission(packets: dict[str, list[Pkt]]) -> None:
    conn = only("synack_retransmission")
    synacks = [p for p in from_server(packets["synack_retransmission"], conn) if p.flags & S]
    assert len(synacks) == 2 and synacks[0].seq == synacks[1].seq
    assert 0.9 < synacks[1].ts - synacks[0].ts < 1.5


def test_lost_final_ack_server_retransmits_fin(packets: dict[str, list[Pkt]]) -> None:
    conn = only("lost_final_ack")
    fins = [p for p in from_server(packets["lost_final_ack"], conn) if p.flags & F]
    assert len(fins) >= 3 and len({p.seq for p in fins}) == 1
    counters = SAMPLES["lost_final_ack"]["kernel"]["counters"]["server_ns"]
    assert counters["TcpRetransSegs"] == len(fins) - 1


def seg_retransmissions(pkts: list[Pkt]) -> int:
    """Data segments whose byte range was already sent (tcptrace's rexmit.c idea)."""
    seen: set[tuple[int, int]] = set()
    count = 0
    for p in pkts:
        if p.payload_len:
            count += (p.seq, p.payload_len) in seen
            seen.add((p.seq, p.payload_len))
    return count


def test_loss_scenarios_retransmit_as_the_kernel_counted(packets: dict[str, list[Pkt]]) -> None:
    for name in ("data_loss_retrans", "retransmission_timeout"):
        conn = only(name)
        rexmits = seg_retransmissions(from_client(packets[name], conn))
        assert rexmits == SAMPLES[name]["kernel"]["counters"]["client_ns"]["TcpRetransSegs"] > 0
    counters = SAMPLES["data_loss_retrans"]["kernel"]["counters"]["client_ns"]
    assert counters["TcpExtTCPFastRetrans"] > 0


def test_rst_abort_and_rst_storm(packets: dict[str, list[Pkt]]) -> None:
    conn = only("rst_abort")
    client = from_client(packets["rst_abort"], conn)
    assert any(p.flags & R for p in client) and not any(p.flags & F for p in client)
    storm = packets["rst_storm"]
    rsts = [p for p in storm if p.flags & R]
    assert len(rsts) >= 100 and rsts[-1].ts - rsts[0].ts < 2.0
    assert SAMPLES["rst_storm"]["capture_anomalies"] == ["rst_storm", "port_scan"]
    ports = {p.dst.rsplit(":", 1)[1] for p in storm if p.flags & S and not p.flags & A}
    assert len(ports) > 100  # one client probing 100 closed ports and the listener: a scan


def test_syn_flood_sample_is_many_sources_retrying(packets: dict[str, list[Pkt]]) -> None:
    syns = [p for p in packets["syn_flood"] if p.flags & S]
    sources = {p.src.rsplit(":", 1)[0] for p in syns}
    targets = {p.dst for p in syns}
    assert len(sources) == 60 and len(targets) == 1 and len(syns) == 240  # each SYN twice
    assert not [p for p in packets["syn_flood"] if not p.flags & S]  # nothing answered
    assert SAMPLES["syn_flood"]["capture_anomalies"] == ["syn_flood"]


def test_half_close_server_sends_after_client_fin(packets: dict[str, list[Pkt]]) -> None:
    conn = only("half_close")
    pkts = packets["half_close"]
    client_fin = next(p for p in from_client(pkts, conn) if p.flags & F)
    after = [p for p in from_server(pkts, conn) if p.ts > client_fin.ts and p.payload_len]
    assert sum(p.payload_len for p in after) == 5000


def test_syn_backlog_overflow(packets: dict[str, list[Pkt]]) -> None:
    conns = SAMPLES["syn_backlog_overflow"]["connections"]
    pkts = packets["syn_backlog_overflow"]
    for conn in conns:
        answered = any(p.flags & S for p in from_server(pkts, conn))
        assert answered == (conn["open"] == "three_way_handshake")
    assert SAMPLES["syn_backlog_overflow"]["kernel"]["counters"]["server_ns"][
        "TcpExtListenOverflows"] > 0


def test_zero_window_and_keepalive_probes(packets: dict[str, list[Pkt]]) -> None:
    conn = only("zero_window")
    assert any(p.win == 0 and not p.flags & R for p in from_server(packets["zero_window"], conn))
    for name in ("keepalive", "keepalive_dead_peer"):
        conn = only(name)
        client = from_client(packets[name], conn)
        high = 0
        probes = 0
        for p in client:  # keep-alive probe: 0 bytes at SND.NXT - 1 (Linux)
            if p.payload_len == 0 and not p.flags & (S | F | R) and high and p.seq == high - 1:
                probes += 1
            high = max(high, p.seq + p.payload_len + bool(p.flags & (S | F)))
        assert probes == SAMPLES[name]["kernel"]["counters"]["client_ns"]["TcpExtTCPKeepAlive"]
        assert probes >= 3
    dead = only("keepalive_dead_peer")
    assert from_client(packets["keepalive_dead_peer"], dead)[-1].flags & R
    assert dead["server_state"] == "ESTABLISHED"


def test_simultaneous_open_close_and_self_connect(packets: dict[str, list[Pkt]]) -> None:
    conn = only("simultaneous_open")
    pkts = packets["simultaneous_open"]
    bare_syns = {p.src for p in pkts if p.flags & (S | A) == S}
    assert bare_syns == {conn["client"], conn["server"]}
    conn = only("simultaneous_close")
    pkts = packets["simultaneous_close"]
    c_fin = next(p for p in from_client(pkts, conn) if p.flags & F)
    s_fin = next(p for p in from_server(pkts, conn) if p.flags & F)
    # Neither FIN acknowledges the other: they crossed.
    assert s_fin.ack == c_fin.seq and c_fin.ack == s_fin.seq
    assert (conn["client_state"], conn["server_state"]) == ("TIME_WAIT", "TIME_WAIT")
    conn = only("self_connect")
    assert conn["client"] == conn["server"]
    syns = [p for p in packets["self_connect"] if p.flags & S]
    assert [p.flags & (S | A) for p in syns] == [S, S | A] and syns[0].seq == syns[1].seq


def test_port_reuse_and_close_wait(packets: dict[str, list[Pkt]]) -> None:
    conns = SAMPLES["port_reuse_time_wait"]["connections"]
    assert len({(c["client"], c["server"]) for c in conns}) == 1
    syns = [p for p in packets["port_reuse_time_wait"] if p.flags & (S | A) == S]
    assert len({p.seq for p in syns}) == 3
    conn = only("close_wait_stuck")
    pkts = packets["close_wait_stuck"]
    assert any(p.flags & F for p in from_client(pkts, conn))
    assert not any(p.flags & F for p in from_server(pkts, conn))
    assert (conn["client_state"], conn["server_state"]) == ("FIN_WAIT_2", "CLOSE_WAIT")


def test_half_open_answered_by_bare_rst(packets: dict[str, list[Pkt]]) -> None:
    conn = only("half_open")
    server = from_server(packets["half_open"], conn)
    assert server[-1].flags & (R | A) == R  # RFC 9293 3.10.7.1: no ACK on a reply-RST
    last_client_data = [p for p in from_client(packets["half_open"], conn) if p.payload_len][-1]
    assert server[-1].seq == last_client_data.ack
