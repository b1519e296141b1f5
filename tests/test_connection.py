"""Connection: the observer's inference rules on captures written by the test."""

from __future__ import annotations

from typing import Any

from captures_util import pcap_bytes, tcp_frame

from tcptrace_py.engine import Engine
from tcptrace_py.segment import ACK, FIN, RST, SYN

C, S = "10.0.0.1", "10.0.0.2"
NS = 1_000_000_000
MS = 1_000_000


def _records(frames: list[tuple[int, bytes]]) -> list[Any]:
    return list(Engine().run(pcap_bytes(frames, nanosecond=True)))


def _established(t0: int) -> list[tuple[int, bytes]]:
    return [(t0, tcp_frame(C, S, 40000, 80, 100, 0, SYN)),
            (t0 + MS, tcp_frame(S, C, 80, 40000, 500, 101, SYN | ACK)),
            (t0 + 2 * MS, tcp_frame(C, S, 40000, 80, 101, 501, ACK))]


def test_rst_after_unanswered_keepalives_keeps_the_silent_peer_state() -> None:
    # Keep-alive probes (seq = SND.NXT - 1, no data) to a peer that no longer answers, then
    # the client's RST (Linux tcp_keepalive_timer): the RST went into silence.
    frames = _established(NS)
    for i in range(3):
        frames.append(((2 + i) * NS, tcp_frame(C, S, 40000, 80, 100, 501, ACK)))
    frames.append((6 * NS, tcp_frame(C, S, 40000, 80, 101, 501, RST | ACK)))
    (res,) = _records(frames)
    rec = res.record
    assert rec["close"] == "rst_by_client"
    assert (rec["client_state"], rec["server_state"]) == ("CLOSED", "ESTABLISHED")
    assert any(e.kind == "ignored" and "silence" in e.reason for e in res.events)


def test_rst_after_answered_traffic_is_obeyed() -> None:
    frames = _established(NS)
    frames += [(NS + 3 * MS, tcp_frame(C, S, 40000, 80, 101, 501, ACK, payload=b"x" * 10)),
               (NS + 4 * MS, tcp_frame(S, C, 80, 40000, 501, 111, ACK)),
               (NS + 5 * MS, tcp_frame(C, S, 40000, 80, 111, 501, RST | ACK))]
    (res,) = _records(frames)
    assert (res.record["client_state"], res.record["server_state"]) == ("CLOSED", "CLOSED")


def test_crossed_fins_end_both_in_time_wait() -> None:
    # Capture at the client: the server's FIN does not ack the client's FIN (ack 101), so the
    # server sent it from ESTABLISHED: a simultaneous close (RFC 9293 figure 13).
    frames = _established(NS)
    frames += [(NS + 3 * MS, tcp_frame(C, S, 40000, 80, 101, 501, FIN | ACK)),
               (NS + 4 * MS, tcp_frame(S, C, 80, 40000, 501, 101, FIN | ACK)),
               (NS + 5 * MS, tcp_frame(C, S, 40000, 80, 102, 502, ACK)),
               (NS + 6 * MS, tcp_frame(S, C, 80, 40000, 502, 102, ACK))]
    (res,) = _records(frames)
    rec = res.record
    assert (rec["client_state"], rec["server_state"]) == ("TIME_WAIT", "TIME_WAIT")
    assert rec["close"] == "graceful"


def test_self_connect_is_one_graceful_connection() -> None:
    a = "127.0.0.1"
    frames = [(NS, tcp_frame(a, a, 47000, 47000, 9, 0, SYN)),
              (NS + 1, tcp_frame(a, a, 47000, 47000, 9, 10, SYN | ACK)),
              (NS + 2, tcp_frame(a, a, 47000, 47000, 10, 10, ACK)),
              (NS + 3, tcp_frame(a, a, 47000, 47000, 10, 10, FIN | ACK)),
              (NS + 4, tcp_frame(a, a, 47000, 47000, 11, 11, ACK))]
    (res,) = _records(frames)
    rec = res.record
    assert rec["open"] == "simultaneous_open" and rec["close"] == "graceful"
    assert rec["client_state"] == rec["server_state"] == "TIME_WAIT"
    assert rec["retransmissions"] == 0  # the SYN-ACK of a self-connect is not a resend


def test_unanswered_syn_retries_mean_the_client_gave_up() -> None:
    frames = [(NS, tcp_frame(C, S, 40000, 80, 7, 0, SYN)),
              (2 * NS, tcp_frame(C, S, 40000, 80, 7, 0, SYN)),
              (4 * NS, tcp_frame(C, S, 40000, 80, 7, 0, SYN))]
    (res,) = _records(frames)
    assert res.record["close"] == "unanswered"
    assert res.record["client_state"] == "CLOSED"
    assert res.record["server_state"] == "INACTIVE"
    # A single SYN proves nothing about giving up: still SYN_SENT at capture end.
    (res,) = _records(frames[:1])
    assert res.record["client_state"] == "SYN_SENT"
