"""Retransmission exhaustion (giveup.py, fsm RETRIES_EXHAUSTED, detector retries_exhausted;
issue 15 item 10).

The captures are written here with Linux's schedule: a 200 ms initial RTO doubling up to
TCP_RTO_MAX (120 s), 15 retransmissions (tcp_retries2), after which Linux drops the
connection without FIN or RST ~924.6 s after the original transmission. Another connection
keeps the capture going (or stops it early, for the negative case).
"""

from __future__ import annotations

import io
from typing import Any

import pytest
from captures_util import ethernet, pcap_bytes, tcp_packet

from tcptrace_py.engine import Engine
from tcptrace_py.options import Options
from tcptrace_py.segment import ACK, PSH, SYN

T0 = 1_700_000_000_000_000_000
S = 1_000_000_000
CLIENT, SERVER = "192.0.2.1", "198.51.100.2"
OTHER_C, OTHER_S = "192.0.2.50", "198.51.100.60"


def linux_retransmission_times_s(first_rto_s: float = 0.2, retries: int = 15,
                                 rto_max_s: float = 120.0) -> list[float]:
    """Offsets of the retransmissions from the original transmission."""
    out, t, rto = [], 0.0, first_rto_s
    for _ in range(retries):
        t += rto
        out.append(round(t, 6))
        rto = min(2 * rto, rto_max_s)
    return out


def capture(other_until_s: float, retx_s: list[float] | None = None) -> bytes:
    """Connection 0: handshake, one exchange, then at 10 s the client's 1000 bytes go
    unanswered and are retransmitted at ``retx_s`` after the original (Linux's 15 by
    default). Connection 1: another client's request every 50 s until ``other_until_s``."""
    c, s = 1000, 5000
    ev: list[tuple[float, bytes]] = [
        (0.0, tcp_packet(CLIENT, SERVER, 40000, 80, c, 0, SYN)),
        (0.001, tcp_packet(SERVER, CLIENT, 80, 40000, s, c + 1, SYN | ACK)),
        (0.002, tcp_packet(CLIENT, SERVER, 40000, 80, c + 1, s + 1, ACK)),
        (0.003, tcp_packet(CLIENT, SERVER, 40000, 80, c + 1, s + 1, ACK | PSH, payload=b"a" * 10)),
        (0.004, tcp_packet(SERVER, CLIENT, 80, 40000, s + 1, c + 11, ACK | PSH, payload=b"b" * 10)),
        (0.005, tcp_packet(CLIENT, SERVER, 40000, 80, c + 11, s + 11, ACK)),
    ]
    data = tcp_packet(CLIENT, SERVER, 40000, 80, c + 11, s + 11, ACK | PSH, payload=b"x" * 1000)
    ev.append((10.0, data))
    for off in (linux_retransmission_times_s() if retx_s is None else retx_s):
        ev.append((10.0 + off, data))
    oc, os_ = 7000, 9000
    ev += [(1.0, tcp_packet(OTHER_C, OTHER_S, 50000, 443, oc, 0, SYN)),
           (1.001, tcp_packet(OTHER_S, OTHER_C, 443, 50000, os_, oc + 1, SYN | ACK)),
           (1.002, tcp_packet(OTHER_C, OTHER_S, 50000, 443, oc + 1, os_ + 1, ACK))]
    t, k = 50.0, 0
    while t <= other_until_s:
        ev.append((t, tcp_packet(OTHER_C, OTHER_S, 50000, 443, oc + 1 + k, os_ + 1 + k,
                                 ACK | PSH, payload=b"q")))
        ev.append((t + 0.001, tcp_packet(OTHER_S, OTHER_C, 443, 50000, os_ + 1 + k,
                                         oc + 2 + k, ACK | PSH, payload=b"r")))
        t += 50.0
        k += 1
    ev.sort(key=lambda e: e[0])
    return pcap_bytes([(T0 + round(t * S), ethernet(p)) for t, p in ev])


def run(data: bytes, **opts: Any) -> tuple[dict[str, Any], list[Any], list[Any]]:
    """Record, anomalies and events of connection 0."""
    for r in Engine(Options(**opts)).run(io.BytesIO(data)):
        if r.record["client_port"] == 40000:
            return r.record, r.anomalies, r.events
    raise AssertionError("connection 0 missing")


@pytest.mark.parametrize("idle_timeout_s", [3600.0, 300.0])
def test_linux_gives_up_after_tcp_retries2(idle_timeout_s: float) -> None:
    """The capture goes on to 2000 s: past 10 + 924.6 s, when Linux gave up. With a 300 s
    idle timeout the connection is emitted at a later packet of the other connection, which
    is as good a proof as the capture's end."""
    rec, anomalies, events = run(capture(2000.0), idle_timeout_s=idle_timeout_s)
    assert (rec["client_state"], rec["server_state"]) == ("CLOSED", "ESTABLISHED")
    (ev,) = [e for e in events if e.kind == "inferred" and e.new_state == "CLOSED"]
    assert ev.endpoint == "client" and ev.old_state == "ESTABLISHED"
    assert "gave up after 15 retransmissions over 924.6 s" in ev.reason
    assert ev.ts_ns == T0 + round((10.0 + 924.6) * S)
    (a,) = [a for a in anomalies if a.code == "retries_exhausted"]
    assert a.severity == "error"
    d = a.details
    assert (d["by"], d["retransmissions"], d["peer_state"]) == ("client", 15, "ESTABLISHED")
    assert d["gave_up_after_s"] == pytest.approx(924.6)
    assert d["next_rto_s"] == pytest.approx(120.0)
    assert d["intervals_s"][:3] == pytest.approx([0.2, 0.4, 0.8])
    assert d["intervals_s"][-1] == pytest.approx(120.0)
    assert len(d["frames"]) == 15 and a.first_frame == d["original_frame"]
    assert "half-open in ESTABLISHED" in a.summary


def test_no_inference_when_the_capture_ends_before_the_next_retransmission_was_due() -> None:
    """The capture stops 60 s after the 15th retransmission (at 10 + 804.6 s): Linux would
    still wait 60 s more before giving up, so nothing can be said."""
    rec, anomalies, events = run(capture(10.0 + 804.6 + 60.0))
    assert (rec["client_state"], rec["server_state"]) == ("ESTABLISHED", "ESTABLISHED")
    assert not [a for a in anomalies if a.code == "retries_exhausted"]
    assert not [e for e in events if e.kind == "inferred" and e.new_state == "CLOSED"]
    # The same capture going on past the due time: inferred (the negative is not vacuous).
    rec, anomalies, _ = run(capture(10.0 + 804.6 + 180.0))  # its last packet at 950 s
    assert rec["client_state"] == "CLOSED"
    assert [a.code for a in anomalies if a.code == "retries_exhausted"]


def test_no_inference_without_backoff_or_with_few_retries() -> None:
    """Equal intervals are no retransmission timer backing off (an application re-sending?),
    and two retries are below give_up_min_retransmissions."""
    for retx in ([1.0, 2.0, 3.0, 4.0, 5.0], [0.2, 0.6]):
        rec, anomalies, _ = run(capture(2000.0, retx))
        assert rec["client_state"] == "ESTABLISHED"
        assert not [a for a in anomalies if a.code == "retries_exhausted"]
    rec, _, _ = run(capture(2000.0, [0.2, 0.6, 1.4]))
    assert rec["client_state"] == "CLOSED", "three retries backing off are enough"
