"""The detectors' per-connection pre-checks: a connection just past each one's condition
still gets its finding, and one just short of it gets none.

Why: a pre-check lets a detector return before its evidence scans when the connection's
counters or end states show nothing it could report (docs/anomalies.md, "Cost per
connection"). It must skip only connections the full test would also leave without a finding;
each test below builds the smallest connection that passes the pre-check and checks the
finding is still made. Captures are written by the tests (captures_util).
"""

from __future__ import annotations

from pathlib import Path

from test_detectors import Talk, analyse, only

from tcptrace_py.segment import ACK, FIN, PSH, RST, SYN


def codes(found: list) -> list[str]:  # type: ignore[type-arg]
    return sorted(a.code for a in found)


# -- synack (SynAckTrouble): a SYN-ACK retransmission, or a server left in SYN_RECEIVED ---------
def test_one_synack_retransmission_on_a_completed_handshake(tmp_path: Path) -> None:
    """One re-sent SYN-ACK, then the handshake completes (server ESTABLISHED)."""
    frames: list[tuple[int, bytes]] = []
    t = Talk(frames)
    t.c(0, SYN)
    t.s(0.01, SYN | ACK)
    t.s(1.01, SYN | ACK, seq=5000)
    t.c(1.02, ACK)
    t.close_by_client(2.0)
    r = only(analyse(tmp_path, frames), "synack_retransmission")
    assert r.details["count"] == 1 and r.details["after_handshake_ack"] is False


def test_server_in_syn_received_after_one_synack_retransmission(tmp_path: Path) -> None:
    frames: list[tuple[int, bytes]] = []
    t = Talk(frames)
    t.c(0, SYN)
    t.s(0.01, SYN | ACK)
    t.s(1.01, SYN | ACK, seq=5000)
    found = analyse(tmp_path, frames)
    assert only(found, "half_open").details["reason"] == "synack_unacknowledged"
    assert only(found, "synack_retransmission").details["count"] == 1


def test_single_synack_without_retransmission_is_no_finding(tmp_path: Path) -> None:
    frames: list[tuple[int, bytes]] = []
    t = Talk(frames)
    t.handshake()
    t.close_by_client(1.0)
    assert not {"synack_retransmission", "half_open"} & set(codes(analyse(tmp_path, frames)))


# -- lost_final_ack (LostFinalAck): a FIN retransmission, or a side left in LAST_ACK -----------
def test_one_fin_retransmission_of_the_passive_closer(tmp_path: Path) -> None:
    frames: list[tuple[int, bytes]] = []
    t = Talk(frames)
    t.handshake()
    t.c(0.1, FIN | ACK)
    fin = t.nxt[False]
    t.s(0.12, FIN | ACK)
    t.s(0.33, FIN | ACK, seq=fin)
    t.c(0.34, ACK)
    a = only(analyse(tmp_path, frames), "lost_final_ack")
    assert a.details["fin_retransmissions"] == 1


def test_one_fin_retransmission_of_the_active_closer(tmp_path: Path) -> None:
    frames: list[tuple[int, bytes]] = []
    t = Talk(frames)
    t.handshake()
    fin = t.nxt[True]
    t.c(0.1, FIN | ACK)
    t.c(0.31, FIN | ACK, seq=fin)
    t.s(0.32, FIN | ACK)
    t.c(0.33, ACK)
    assert only(analyse(tmp_path, frames), "fin_retransmission").details["count"] == 1


def test_last_ack_just_past_min_wait_without_retransmission(tmp_path: Path) -> None:
    """No retransmission at all: only the LAST_ACK end state passes the pre-check."""
    def run(wait_s: float) -> list[str]:
        frames: list[tuple[int, bytes]] = []
        t = Talk(frames)
        t.handshake()
        t.c(0.1, FIN | ACK)
        t.s(0.12, FIN | ACK)                      # LAST_ACK; the final ACK never comes
        Talk(frames, cport=41000).handshake(0.10 + wait_s)   # ends 0.12 + wait_s
        return codes(analyse(tmp_path, frames))

    assert "lost_final_ack" in run(1.001)         # min_wait_s is 1.0
    assert "lost_final_ack" not in run(0.999)


# -- close_wait_stuck (CloseWaitStuck): no RST, a peer FIN, stuck or a late own FIN -------------
def test_own_fin_just_past_max_close_delay(tmp_path: Path) -> None:
    def run(delay_s: float) -> list[str]:
        frames: list[tuple[int, bytes]] = []
        t = Talk(frames)
        t.handshake()
        t.c(0.1, FIN | ACK)
        t.s(0.11, ACK)
        t.s(0.1 + delay_s, FIN | ACK)
        t.c(0.11 + delay_s, ACK)
        return codes(analyse(tmp_path, frames, **{"close_wait_stuck.max_close_delay_s": 2.0}))

    assert "close_wait_stuck" in run(2.001)
    assert "close_wait_stuck" not in run(1.999)


def test_close_wait_stuck_when_the_peer_also_reset_later_is_no_finding(tmp_path: Path) -> None:
    """A RST anywhere on the connection: the pre-check skips, as the side loop did."""
    frames: list[tuple[int, bytes]] = []
    t = Talk(frames)
    t.handshake()
    t.c(0.12, FIN | ACK)
    t.s(0.13, ACK)
    t.c(0.2, RST, seq=t.nxt[True])
    assert "close_wait_stuck" not in codes(analyse(tmp_path, frames))


def test_close_wait_stuck_with_one_byte_sent_after_the_fin_is_no_finding(tmp_path: Path) -> None:
    """extra == 0 is still required after the pre-check (one byte after the FIN: none)."""
    frames: list[tuple[int, bytes]] = []
    t = Talk(frames)
    t.handshake()
    t.c(0.12, FIN | ACK)
    t.s(0.13, ACK)
    t.s(0.14, ACK | PSH, 1)
    Talk(frames, cport=41000).handshake(5.0)
    assert "close_wait_stuck" not in codes(analyse(tmp_path, frames))


# -- close_kinds (CloseKinds): a RST after the closer's FIN, or bytes after it ------------------
def test_one_byte_discarded_after_close(tmp_path: Path) -> None:
    frames: list[tuple[int, bytes]] = []
    t = Talk(frames)
    t.handshake()
    t.c(0.6, FIN | ACK)
    t.s(0.61, ACK)
    t.s(1.1, ACK | PSH, 1)
    t.c(1.1001, RST, seq=t.nxt[True])
    a = only(analyse(tmp_path, frames), "data_after_close")
    assert a.details["discarded_bytes_at_least"] == 1


def test_one_byte_after_a_fin_is_a_half_close(tmp_path: Path) -> None:
    frames: list[tuple[int, bytes]] = []
    t = Talk(frames)
    t.handshake()
    t.c(0.11, FIN | ACK)
    t.s(0.2, ACK | PSH, 1)
    t.c(0.25, ACK)
    t.s(0.6, FIN | ACK)
    t.c(0.61, ACK)
    a = only(analyse(tmp_path, frames), "half_close")
    assert a.details["server_bytes_after_fin"] == 1


# -- capture (CaptureArtifacts): a lost segment, an ACK of unseen data --------------------------
def test_one_segment_not_captured(tmp_path: Path) -> None:
    frames: list[tuple[int, bytes]] = []
    t = Talk(frames)
    t.handshake()
    start = t.nxt[True]
    t.c(0.1, ACK | PSH, 100, seq=start + 100)   # the first 100 bytes never captured
    t.s(0.11, ACK, ack=start + 200)
    a = only(analyse(tmp_path, frames), "segments_not_captured")
    assert a.details == {"client_gaps": 1, "client_missed_bytes": 100}


def test_one_ack_of_unseen_data(tmp_path: Path) -> None:
    frames: list[tuple[int, bytes]] = []
    t = Talk(frames)
    t.handshake()
    t.c(0.1, ACK | PSH, 100)
    t.s(0.11, ACK, ack=t.nxt[True] + 50)       # acknowledges 50 bytes never captured
    a = only(analyse(tmp_path, frames), "acks_of_unseen_data")
    assert a.details == {"server_acks": 1}



def test_server_in_syn_received_without_any_retransmission(tmp_path: Path) -> None:
    """After the handshake the server sends a SYN-ACK with another ISN (not a
    retransmission): its SYN_RECEIVED is inferred and only that end state passes the
    pre-check."""
    frames: list[tuple[int, bytes]] = []
    t = Talk(frames)
    t.handshake()
    t.s(0.5, SYN | ACK, seq=4000)
    found = analyse(tmp_path, frames)
    assert "synack_retransmission" not in codes(found)
    h = only(found, "half_open")
    assert h.details["inferred_frames"] == [4]


# -- connection_refused (ConnectionRefused): a first obeyed RST from the server -----------------
def test_one_syn_refused_by_the_server(tmp_path: Path) -> None:
    frames: list[tuple[int, bytes]] = []
    t = Talk(frames)
    t.c(0, SYN)
    t.s(0.001, RST | ACK, seq=0)
    r = only(analyse(tmp_path, frames), "connection_refused")
    assert r.details["syn_attempts"] == 1 and r.details["rst_flags"] == "RA"


def test_a_client_rst_to_its_own_syn_is_no_refusal(tmp_path: Path) -> None:
    frames: list[tuple[int, bytes]] = []
    t = Talk(frames)
    t.c(0, SYN)
    t.c(0.5, RST, seq=t.nxt[True])
    assert "connection_refused" not in codes(analyse(tmp_path, frames))


# -- window (WindowDetector): window_full_min_events=0 means "any", and a connection with
# none has no finding (it used to index the first of no events).
def test_window_full_min_events_zero_on_a_plain_connection(tmp_path: Path) -> None:
    frames: list[tuple[int, bytes]] = []
    t = Talk(frames)
    t.handshake()
    t.close_by_client(1.0)
    found = analyse(tmp_path, frames, **{"window.window_full_min_events": 0})
    assert "window_full" not in codes(found)
