"""ICMP and ICMPv6 errors quoting TCP segments: decoding, routing to the connection, findings.

A firewall's REJECT (ICMP port unreachable), a router without a route, an expired TTL or a
smaller path MTU answer a TCP segment with ICMP. The error quotes the segment's IP header and
first 8 TCP bytes (RFC 792, RFC 4443), which is how it finds its connection. The real-socket
sample ``samples/net_unreachable.pcap`` has a Linux router's answer; the rest are built here.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import pytest
from captures_util import ethernet, ip_packet, pcap_bytes, tcp_frame, tcp_packet
from hypothesis import given, settings
from hypothesis import strategies as st

from tcptrace_py.decode import Decoder
from tcptrace_py.diagnostics import Diagnostics
from tcptrace_py.engine import Engine
from tcptrace_py.icmp import IcmpError
from tcptrace_py.segment import ACK, PSH, SYN

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
C, S, R = "10.0.0.1", "10.9.9.9", "10.0.0.254"
C6, S6, R6 = "2001:db8::1", "2001:db8:9::9", "2001:db8::fe"
T0 = 1_700_000_000_000_000_000
MS = 1_000_000


def icmp_error(reporter: str, to: str, icmp_type: int, code: int, quoted: bytes, *,
               ipv6: bool = False, rest: bytes = b"\x00" * 4) -> bytes:
    """An Ethernet frame carrying an ICMP(v6) error that quotes ``quoted`` (an IP packet)."""
    body = struct.pack("!BBH", icmp_type, code, 0) + rest + quoted
    return ethernet(ip_packet(reporter, to, 58 if ipv6 else 1, body, ipv6=ipv6),
                    0x86DD if ipv6 else 0x0800)


def syn_packet(seq: int = 100, *, ipv6: bool = False) -> bytes:
    return tcp_packet(C6 if ipv6 else C, S6 if ipv6 else S, 40000, 443, seq, 0, SYN,
                      ipv6=ipv6)


def run(frames: list[tuple[int, bytes]], tmp_path: Path) -> tuple[list[Any], Engine]:
    path = tmp_path / "t.pcap"
    path.write_bytes(pcap_bytes(frames))
    engine = Engine()
    return list(engine.run(str(path))), engine


@pytest.mark.parametrize("ipv6", [False, True], ids=["icmp", "icmpv6"])
def test_decoder_keeps_errors_quoting_tcp(ipv6: bool) -> None:
    quoted = syn_packet(ipv6=ipv6)
    unreach = (1, 4) if ipv6 else (3, 3)
    frame = icmp_error(R6 if ipv6 else R, C6 if ipv6 else C, *unreach, quoted, ipv6=ipv6)
    diag = Diagnostics()
    dec = Decoder(diag, icmp=True)
    assert dec.decode(1, frame, 7, 123, len(frame)) is None
    assert diag.skipped == {"not_tcp": 1}, "still not a TCP segment: accounting unchanged"
    (err,) = dec.icmp_errors or []
    assert isinstance(err, IcmpError)
    assert (err.frame, err.ts_ns, err.version, err.sport, err.dport, err.seq) == (
        7, 123, 6 if ipv6 else 4, 40000, 443, 100)
    assert err.name == "port unreachable" and not err.too_big
    # Only the first 8 TCP bytes are needed (RFC 792's minimum quote).
    short = icmp_error(R, C, 3, 3, syn_packet()[:28]) if not ipv6 else \
        icmp_error(R6, C6, 1, 4, syn_packet(ipv6=True)[:48], ipv6=True)
    assert dec.decode(1, short, 8, 124, len(short)) is None
    assert len(dec.icmp_errors or []) == 2


def test_decoder_ignores_what_is_not_an_error_about_tcp() -> None:
    dec = Decoder(Diagnostics(), icmp=True)
    udp_quote = ip_packet(C, S, 17, b"\x00" * 8)
    frames = [
        icmp_error(R, C, 3, 3, udp_quote),                      # quotes UDP
        icmp_error(R, C, 8, 0, syn_packet()),                   # an echo request, not an error
        icmp_error(R, C, 3, 3, syn_packet()[:27]),              # quote cut before the seq
        icmp_error(R, C, 3, 3, b"\x00" * 20),                   # no IP header in the quote
    ]
    for i, f in enumerate(frames):
        assert dec.decode(1, f, i + 1, i, len(f)) is None
    assert dec.icmp_errors == []
    assert Decoder(Diagnostics()).icmp_errors is None, "off unless asked (the engine asks)"


def test_syn_answered_by_port_unreachable_ends_the_attempt(tmp_path: Path) -> None:
    """iptables' default REJECT: the SYN draws ICMP port unreachable, the client gives up."""
    frames = [(T0, tcp_frame(C, S, 40000, 443, 100, 0, SYN)),
              (T0 + 2 * MS, icmp_error(R, C, 3, 3, syn_packet()))]
    results, engine = run(frames, tmp_path)
    rec = results[0].record
    assert (rec["open"], rec["close"], rec["client_state"]) == (
        "not_established", "unanswered", "CLOSED")
    assert rec["client_packets"] == 1 and rec["server_packets"] == 0
    codes = {a.code: a for a in results[0].anomalies}
    assert "unanswered_syn" not in codes, "the SYN was answered, by ICMP"
    a = codes["icmp_unreachable"]
    assert a.severity == "error" and a.details["ended_attempt"] is True
    assert a.details["by"] == R and a.details["kinds"] == ["port unreachable"]
    assert (a.first_frame, a.last_frame) == (2, 2)
    inferred = [e for e in results[0].events if e.kind == "inferred"]
    assert [(e.frame, e.new_state) for e in inferred] == [(2, "CLOSED")]
    assert engine.diag.notes["icmp_errors"] == 1 and not engine.diag.notes["icmp_errors_unmatched"]


def test_a_client_that_retries_after_the_error_did_not_give_up(tmp_path: Path) -> None:
    """Some stacks treat the error as soft and retry the SYN: the later SYNs, unanswered,
    are still unanswered_syn, and the ICMP error is only a warning."""
    frames = [(T0, tcp_frame(C, S, 40000, 443, 100, 0, SYN)),
              (T0 + 2 * MS, icmp_error(R, C, 3, 1, syn_packet())),
              (T0 + 3000 * MS, tcp_frame(C, S, 40000, 443, 100, 0, SYN)),
              (T0 + 9000 * MS, tcp_frame(C, S, 40000, 443, 100, 0, SYN))]
    results, _ = run(frames, tmp_path)
    codes = {a.code: a for a in results[0].anomalies}
    assert codes["icmp_unreachable"].severity == "warning"
    assert codes["icmp_unreachable"].details["ended_attempt"] is False
    assert codes["unanswered_syn"].details["attempts"] == 3


def test_packet_too_big_on_an_established_connection(tmp_path: Path) -> None:
    """PMTU discovery (ICMPv6 packet too big, MTU 1280) is information, not a failure."""
    c, s = C6, S6
    frames = [(T0, tcp_frame(c, s, 40000, 443, 100, 0, SYN, ipv6=True)),
              (T0 + MS, tcp_frame(s, c, 443, 40000, 700, 101, SYN | ACK, ipv6=True)),
              (T0 + 2 * MS, tcp_frame(c, s, 40000, 443, 101, 701, ACK, ipv6=True)),
              (T0 + 3 * MS, tcp_frame(c, s, 40000, 443, 101, 701, ACK | PSH,
                                      payload=b"x" * 1400, ipv6=True)),
              (T0 + 4 * MS, icmp_error(R6, c, 2, 0, tcp_packet(
                  c, s, 40000, 443, 101, 701, ACK | PSH, payload=b"x" * 1400, ipv6=True)[:120],
                  ipv6=True, rest=struct.pack("!I", 1280)))]
    results, _ = run(frames, tmp_path)
    (a,) = results[0].anomalies
    assert (a.code, a.severity, a.details["mtu"], a.details["segment_sender"]) == (
        "icmp_packet_too_big", "info", [1280], "client")
    assert results[0].record["client_state"] == "ESTABLISHED"


def test_errors_for_segments_never_captured_are_counted_only(tmp_path: Path) -> None:
    frames = [(T0, icmp_error(R, C, 3, 3, syn_packet())),
              (T0 + MS, tcp_frame("10.1.1.1", "10.2.2.2", 5000, 80, 1, 0, SYN))]
    results, engine = run(frames, tmp_path)
    assert len(results) == 1 and not [a for r in results for a in r.anomalies
                                      if a.code.startswith("icmp")]
    assert engine.diag.notes["icmp_errors_unmatched"] == 1


def test_real_router_net_unreachable_sample() -> None:
    """samples/net_unreachable.pcap: a Linux router (the server namespace, forwarding on, no
    route onward) answers the SYN with ICMP network unreachable; connect() failed at once."""
    engine = Engine()
    (res,) = list(engine.run(str(SAMPLES / "net_unreachable.pcap")))
    assert (res.record["close"], res.record["client_state"]) == ("unanswered", "CLOSED")
    (a,) = [x for x in res.anomalies if x.code == "icmp_unreachable"]
    assert a.severity == "error" and a.details["kinds"] == ["network unreachable"]
    assert a.details["by"] == "10.77.0.2"


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=0, max_size=120), st.integers(0, 119), st.booleans())
def test_damaged_errors_never_raise(tail: bytes, cut: int, ipv6: bool) -> None:
    """Any bytes after an ICMP(v6) error header, cut anywhere: the decoder keeps a valid quote
    or nothing, and always counts the frame as one skip."""
    frame = icmp_error(R6 if ipv6 else R, C6 if ipv6 else C, 1 if ipv6 else 3, 3,
                       syn_packet(ipv6=ipv6)[:20] + tail, ipv6=ipv6)
    frame = frame[:len(frame) - cut] if cut < len(frame) else frame
    diag = Diagnostics()
    dec = Decoder(diag, icmp=True)
    assert dec.decode(1, frame, 1, 0, len(frame)) is None
    assert sum(diag.skipped.values()) == 1
    for err in dec.icmp_errors or []:
        assert 0 <= err.sport < 65536 and 0 <= err.dport < 65536 and 0 <= err.seq < 2**32
