"""ECN and TCP Fast Open per connection (facts.py; issue 15 item 14).

Ground truth: the kernel scenarios ``ecn_negotiated.pcap`` (a relay marking CE on 4 server
data segments, counted by the scenario's labels) and ``tfo.pcap`` (a cookie request, then a
SYN with 64 bytes the server accepted), and conversations written here, each run with the
steady-state fast path on and off (CE, ECE and CWR ride on steady segments).
"""

from __future__ import annotations

import io
import json
import struct
from pathlib import Path
from typing import Any

import pytest
from captures_util import ethernet, opt_mss, opt_raw, pcap_bytes, tcp_packet
from hypothesis import given, settings
from hypothesis import strategies as st

import tcptrace_py.engine as engine_module
import tcptrace_py.fastpath as fastpath
import tcptrace_py.flowtable as flowtable
from tcptrace_py import implementation
from tcptrace_py.connection import Connection
from tcptrace_py.decode import Decoder
from tcptrace_py.diagnostics import Diagnostics
from tcptrace_py.engine import Engine
from tcptrace_py.options import Options
from tcptrace_py.segment import ACK, AE, CWR, ECE, FIN, PSH, SYN, Segment

SCENARIOS = Path(__file__).resolve().parents[2] / "shared" / "scenarios"
CLIENT, SERVER = "192.0.2.10", "198.51.100.20"
CLIENT6, SERVER6 = "2001:db8::10", "2001:db8::20"


def records(source: Any, fast: bool = True) -> list[dict[str, Any]]:
    return [r.record for r in Engine(Options(fast_path=fast)).run(source)]


def with_ecn(pkt: bytes, ecn: int) -> bytes:
    """Set the IP ECN field of an IPv4 (TOS low bits) or IPv6 (traffic class) packet."""
    if pkt[0] >> 4 == 4:
        return pkt[:1] + bytes([pkt[1] | ecn]) + pkt[2:]
    (vtcfl,) = struct.unpack_from("!I", pkt)
    return struct.pack("!I", vtcfl | (ecn << 20)) + pkt[4:]


@pytest.mark.skipif(not (SCENARIOS / "ecn_negotiated.pcap").exists(),
                    reason="shared scenarios absent")
@pytest.mark.parametrize("fast", [True, False])
def test_ecn_scenario_counts_match_the_labels(fast: bool) -> None:
    labels = json.loads((SCENARIOS / "labels.json").read_text())
    expected = labels["scenarios"]["ecn_negotiated"]["expected"]["connections"][0]
    by_type = {a["type"]: a for a in expected["anomalies"]}
    (rec,) = records(SCENARIOS / "ecn_negotiated.pcap", fast)
    assert rec["ecn_negotiated"] is by_type["ecn"]["negotiated"] is True
    assert rec["ecn_mode"] == "classic"
    assert rec["server_ecn_ce_segments"] == by_type["ecn_ce_mark"]["count"] == 4
    assert rec["client_ecn_ece_segments"] == by_type["ecn_echo"]["count"] == 77
    assert rec["server_ecn_cwr_segments"] == by_type["ecn_cwr"]["count"] == 3
    # ECT(0) on every server data segment; 4 of them arrived marked CE instead.
    assert rec["server_ecn_ect_segments"] + rec["server_ecn_ce_segments"] == \
        by_type["ecn"]["server_data_segments_ect0"]
    assert rec["client_ecn_ect_segments"] == by_type["ecn"]["client_data_segments_ect"]
    assert (rec["client_ecn_ce_segments"], rec["server_ecn_ece_segments"],
            rec["client_ecn_cwr_segments"]) == (0, 0, 0)


ACCECN = SCENARIOS.parent / "captures" / "tcpdump" / "accecn_handshake.pcap"


@pytest.mark.skipif(not ACCECN.exists(), reason="shared captures absent")
def test_accurate_ecn_handshake() -> None:
    """tcpdump's AccECN capture: SYN with AE+CWR+ECE, SYN-ACK with CWR only (RFC 9768 table
    2: AccECN, the SYN arrived not-ECT); afterwards the ACE bits count CE marks, and reading
    them as ECE/CWR flags would invent echoes and window reductions."""
    (rec,) = records(ACCECN)
    assert (rec["ecn_negotiated"], rec["ecn_mode"]) == (True, "accecn")
    assert [rec[f"{side}_ecn_{k}_segments"] for side in ("client", "server")
            for k in ("ece", "cwr")] == [0, 0, 0, 0]
    assert (rec["client_ecn_ect_segments"], rec["server_ecn_ect_segments"]) == (1, 2)


@pytest.mark.skipif(not (SCENARIOS / "tfo.pcap").exists(), reason="shared scenarios absent")
def test_tfo_scenario() -> None:
    first, second = sorted(records(SCENARIOS / "tfo.pcap"), key=lambda r: r["first_frame"])
    assert (first["tfo_option"], first["tfo_syn_data_bytes"], first["tfo_syn_data_acked"]) \
        == ("cookie_request", 0, False)
    assert (second["tfo_option"], second["tfo_syn_data_bytes"],
            second["tfo_syn_data_acked"]) == ("cookie", 64, True)
    assert not first["ecn_negotiated"] and not second["ecn_negotiated"]


def ecn_conversation(ipv6: bool = False, syn_flags: int = SYN | ECE | CWR,
                     synack_flags: int = SYN | ACK | ECE) -> bytes:
    """Handshake, then 20 server data segments ECT(0) with the 5th and 12th marked CE; the
    client echoes ECE on its ACK of each, the server's next data segment carries CWR."""
    cip, sip = (CLIENT6, SERVER6) if ipv6 else (CLIENT, SERVER)
    et = 0x86DD if ipv6 else 0x0800
    frames: list[tuple[int, bytes]] = []
    t = 1_700_000_000_000_000_000

    def add(pkt: bytes) -> None:
        nonlocal t
        t += 1_000_000
        frames.append((t, ethernet(pkt, et)))

    def cli(seq: int, ack: int, flags: int, ecn: int = 0, payload: bytes = b"") -> None:
        add(with_ecn(tcp_packet(cip, sip, 40000, 80, seq, ack, flags, payload=payload,
                                ipv6=ipv6), ecn))

    def srv(seq: int, ack: int, flags: int, ecn: int = 0, payload: bytes = b"") -> None:
        add(with_ecn(tcp_packet(sip, cip, 80, 40000, seq, ack, flags, payload=payload,
                                ipv6=ipv6), ecn))

    c, s = 1000, 9000
    cli(c, 0, syn_flags)
    srv(s, c + 1, synack_flags)
    cli(c + 1, s + 1, ACK)
    cli(c + 1, s + 1, ACK | PSH, 2, b"GET")
    echo = cwr_due = False
    nxt = s + 1
    for i in range(20):
        marked = i in (4, 11)
        flags = ACK | (CWR if cwr_due else 0)
        cwr_due = False
        if flags & CWR:
            echo = False
        srv(nxt, c + 4, flags, 3 if marked else 2, b"x" * 100)
        nxt += 100
        echo = echo or marked
        cwr_due = cwr_due or marked
        cli(c + 4, nxt, ACK | (ECE if echo else 0))
    cli(c + 4, nxt, ACK | FIN)
    srv(nxt, c + 5, ACK | FIN)
    cli(c + 5, nxt + 1, ACK)
    return pcap_bytes(frames)


@pytest.mark.parametrize("ipv6", [False, True])
def test_ecn_marks_on_steady_segments_both_paths(ipv6: bool,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """CE, ECE and CWR on segments between two ESTABLISHED endpoints: the fast path takes
    them and must count them as the full path does."""
    applied: list[int] = []
    real = fastpath.steady_segment

    def counting(conn: Connection, seg: Segment) -> int:
        mask = real(conn, seg)
        if mask >= 0 and (seg.ecn == 3 or seg.flags & (ECE | CWR)):
            applied.append(seg.frame)
        return mask

    monkeypatch.setattr(flowtable, "steady_segment", counting)
    # The compiled flow table calls its compiled steady path directly: count through the
    # reference's routing (``real`` is the compiled steady path when that engine runs).
    monkeypatch.setattr(engine_module, "FlowTable", flowtable.ReferenceFlowTable)
    data = ecn_conversation(ipv6)
    (fast,) = records(io.BytesIO(data), True)
    assert applied, "the fast path took some marked segments"
    (slow,) = records(io.BytesIO(data), False)
    assert fast == slow
    assert fast["ecn_negotiated"] is True
    # 20 data segments: 18 ECT(0), 2 CE; the client's request ECT(0).
    assert (fast["server_ecn_ect_segments"], fast["server_ecn_ce_segments"]) == (18, 2)
    assert (fast["client_ecn_ect_segments"], fast["client_ecn_ce_segments"]) == (1, 0)
    # Each mark echoed on the ACK of the marked segment, answered by CWR on the server's
    # next data segment: 2 marks -> 2 ECE, 2 CWR. The SYN's ECE/CWR are not counted.
    assert (fast["client_ecn_ece_segments"], fast["server_ecn_cwr_segments"]) == (2, 2)
    assert (fast["server_ecn_ece_segments"], fast["client_ecn_cwr_segments"]) == (0, 0)


@pytest.mark.parametrize(("syn", "synack"), [
    (SYN, SYN | ACK | ECE),  # the client did not ask
    (SYN | ECE | CWR, SYN | ACK),  # the server declined
    (SYN | ECE | CWR, SYN | ACK | ECE | CWR),  # not an ECN-setup SYN-ACK (RFC 3168 6.1.1)
    (SYN | ECE | CWR, SYN | ACK | CWR),  # an AccECN answer to a SYN that did not ask for it
])
def test_ecn_not_negotiated(syn: int, synack: int) -> None:
    (rec,) = records(io.BytesIO(ecn_conversation(syn_flags=syn, synack_flags=synack)))
    assert rec["ecn_negotiated"] is False


@pytest.mark.parametrize("fast", [True, False])
def test_accurate_ecn_bits_are_not_counted_as_flags(fast: bool) -> None:
    (rec,) = records(io.BytesIO(ecn_conversation(syn_flags=SYN | AE | CWR | ECE,
                                                 synack_flags=SYN | ACK | AE)), fast)
    assert (rec["ecn_negotiated"], rec["ecn_mode"]) == (True, "accecn")
    assert (rec["server_ecn_ce_segments"], rec["client_ecn_ece_segments"],
            rec["server_ecn_cwr_segments"]) == (2, 0, 0)


def test_decoder_keeps_the_ip_ecn_field() -> None:
    for ipv6 in (False, True):
        for ecn in range(4):
            pkt = with_ecn(tcp_packet(CLIENT6 if ipv6 else CLIENT, SERVER6 if ipv6 else SERVER,
                                      1, 2, 3, 4, ACK, ipv6=ipv6), ecn)
            for frame, lt in ((ethernet(pkt, 0x86DD if ipv6 else 0x0800), 1), (pkt, 101)):
                seg = Decoder(Diagnostics()).decode(lt, frame, 1, 0, len(frame))
                assert seg is not None and seg.ecn == ecn
            # The fused pcap reader (Ethernet) reads it too.
            (rec,) = records(io.BytesIO(pcap_bytes(
                [(1, ethernet(pkt, 0x86DD if ipv6 else 0x0800))])))
            ce = rec["client_ecn_ce_segments"] + rec["server_ecn_ce_segments"]
            ect = rec["client_ecn_ect_segments"] + rec["server_ecn_ect_segments"]
            assert (ect, ce) == ((1 if ecn in (1, 2) else 0), (1 if ecn == 3 else 0))


def test_tfo_data_refused_by_the_server() -> None:
    """The server ignores the SYN's data (no valid cookie): its SYN-ACK acknowledges the
    SYN only and the client sends the data again after the handshake (RFC 7413 4.2)."""
    c, s = 5000, 7000
    cookie = opt_raw(34, b"\x01\x02\x03\x04\x05\x06\x07\x08")
    pkts = [
        tcp_packet(CLIENT, SERVER, 40001, 80, c, 0, SYN, payload=b"hello",
                   options=opt_mss(1460) + cookie),
        tcp_packet(SERVER, CLIENT, 80, 40001, s, c + 1, SYN | ACK, options=opt_mss(1460)),
        tcp_packet(CLIENT, SERVER, 40001, 80, c + 1, s + 1, ACK | PSH, payload=b"hello"),
        tcp_packet(SERVER, CLIENT, 80, 40001, s + 1, c + 6, ACK),
    ]
    (rec,) = records(io.BytesIO(pcap_bytes([(i * 1000, ethernet(p))
                                            for i, p in enumerate(pkts)])))
    assert (rec["tfo_option"], rec["tfo_syn_data_bytes"], rec["tfo_syn_data_acked"]) == \
        ("cookie", 5, False)


# -- the compiled engine's twin against the reference
_fact_segment = st.tuples(
    st.integers(0, 1),  # side
    st.sampled_from([0x02, 0x12, 0x10, 0x18, 0x42, 0xC2, 0x1C2, 0x52, 0x92, 0x112, 0x192,
                     0x50, 0x90, 0xD0, 0x11]),  # SYN / SYN-ACK / ACK with AE, CWR, ECE bits
    st.integers(0, 3),  # IP ECN codepoint
    st.sampled_from([0, 1, 100]),  # payload
    st.sampled_from([(), ((34, b""),), ((34, b"\x01\x02"),), ((254, b"\xf9\x89"),),
                     ((254, b"\xf9\x89\x07"),), ((254, b"\x00\x00"),)]),
    st.integers(0, 2**32 - 1),  # seq
    st.integers(0, 2**32 - 1),  # ack
)


@pytest.mark.skipif(implementation.compiled is None, reason="the reference engine runs")
@settings(max_examples=300, deadline=None)
@given(st.lists(_fact_segment, max_size=12))
def test_protocol_facts_twin_is_the_references(
        segments: list[tuple[int, int, int, int, tuple[tuple[int, bytes], ...], int, int]]
) -> None:
    """The compiled ``ProtocolFacts`` (on_handshake, on_marked, add_columns) holds and
    writes what the reference does for any handshake and marked segments."""
    from tcptrace_py import facts

    twin = facts.ProtocolFacts()
    ref = facts.ProtocolFacts.__reference__()  # type: ignore[attr-defined]
    a, b = b"\x0a\x00\x00\x01", b"\x0a\x00\x00\x02"
    for side, flags, ecn, plen, options, seq, ack in segments:
        seg = Segment(1, 10**18, a, b, 40000, 80, seq, ack, flags, 65535, plen,
                      other_options=options, ecn=ecn)
        if flags & 0x02:
            twin.on_handshake(seg, side)
            ref.on_handshake(seg, side)
        if ecn or flags & (0x40 | 0x80):
            twin.on_marked(seg, side)
            ref.on_marked(seg, side)
        for name in facts.ProtocolFacts.__reference__.__slots__:  # type: ignore[attr-defined]
            mine, theirs = getattr(twin, name), getattr(ref, name)
            if isinstance(theirs, list):
                mine = list(mine)  # a Pair stands for the two-item list
            assert (mine, type(mine)) == (theirs, type(theirs)), name
    rec_twin: dict[str, object] = {}
    rec_ref: dict[str, object] = {}
    twin.add_columns(rec_twin)
    ref.add_columns(rec_ref)
    assert list(rec_twin.items()) == list(rec_ref.items())
    assert [type(v) for v in rec_twin.values()] == [type(v) for v in rec_ref.values()]
