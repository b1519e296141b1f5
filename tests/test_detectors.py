"""Detectors on captures the tests write (captures_util -> pcap -> Engine), one per behaviour."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from captures_util import tcp_frame, write_pcap

from tcptrace_py import detectors
from tcptrace_py.detectors.handshake import backoff_pattern
from tcptrace_py.engine import Engine
from tcptrace_py.events import SEVERITY_RANK, Anomaly
from tcptrace_py.options import Options
from tcptrace_py.segment import ACK, FIN, PSH, RST, SYN

NS = 1_000_000_000
C_IP, S_IP = "10.0.0.1", "10.0.0.2"


class Talk:
    """One TCP conversation: tracks both sides' next sequence numbers so tests read like a
    ladder diagram. ``seq``/``ack`` override (retransmissions, probes, odd segments)."""

    def __init__(self, frames: list[tuple[int, bytes]], cport: int = 40000, sport: int = 80,
                 c_isn: int = 1000, s_isn: int = 5000, client: str = C_IP,
                 server: str = S_IP) -> None:
        self.frames = frames
        self.cport, self.sport, self.client, self.server = cport, sport, client, server
        self.nxt = {True: c_isn, False: s_isn}

    def send(self, t: float, from_client: bool, flags: int, n: int = 0, *,
             seq: int | None = None, ack: int | None = None, window: int = 65535) -> None:
        own = self.nxt[from_client]
        s = own if seq is None else seq
        a = self.nxt[not from_client] if ack is None else ack
        src, dst = (self.client, self.server) if from_client else (self.server, self.client)
        sp, dp = (self.cport, self.sport) if from_client else (self.sport, self.cport)
        self.frames.append((int(round(t * NS)), tcp_frame(
            src, dst, sp, dp, s, a if flags & ACK else 0, flags, window=window,
            payload=b"x" * n)))
        if seq is None:
            self.nxt[from_client] = (own + n + (1 if flags & (SYN | FIN) else 0)) & 0xFFFFFFFF

    def c(self, t: float, flags: int, n: int = 0, **kw: Any) -> None:
        self.send(t, True, flags, n, **kw)

    def s(self, t: float, flags: int, n: int = 0, **kw: Any) -> None:
        self.send(t, False, flags, n, **kw)

    def handshake(self, t: float = 0.0) -> None:
        self.c(t, SYN)
        self.s(t + 0.01, SYN | ACK)
        self.c(t + 0.02, ACK)

    def close_by_client(self, t: float) -> None:
        self.c(t, FIN | ACK)
        self.s(t + 0.01, FIN | ACK)
        self.c(t + 0.02, ACK)


def analyse(tmp_path: Path, frames: list[tuple[int, bytes]], **params: Any
            ) -> list[Anomaly]:
    frames = sorted(frames, key=lambda f: f[0])
    path = write_pcap(tmp_path / "t.pcap", frames)
    engine = Engine(Options(detector_params=params))
    found = [a for r in engine.run(str(path)) for a in r.anomalies]
    return found + engine.summary.anomalies


def analyse_results(tmp_path: Path, frames: list[tuple[int, bytes]]) -> list[Any]:
    """The engine's per-connection results (record, anomalies, events) for ``frames``."""
    path = write_pcap(tmp_path / "t.pcap", sorted(frames, key=lambda f: f[0]))
    return list(Engine(Options()).run(str(path)))


def only(found: list[Anomaly], code: str) -> Anomaly:
    hits = [a for a in found if a.code == code]
    assert len(hits) == 1, [(a.code, a.summary) for a in found]
    return hits[0]


def serious(found: list[Anomaly]) -> list[str]:
    return [a.code for a in found if SEVERITY_RANK[a.severity] >= SEVERITY_RANK["warning"]]


# ------------------------------------------------------------------------------ handshake
@pytest.mark.parametrize("times,pattern", [
    ((0, 1, 3, 7), "linux_exponential"),
    ((0, 3, 9, 21), "windows_exponential"),
    ((0, 6, 24), "bsd"),
    ((0, 1, 2, 3, 5), "linux_linear"),
])
def test_unanswered_syn_counts_attempts_and_names_backoff(tmp_path: Path,
                                                          times: tuple[int, ...],
                                                          pattern: str) -> None:
    frames: list[tuple[int, bytes]] = []
    t = Talk(frames)
    for x in times:
        t.c(x, SYN, seq=1000)
    a = only(analyse(tmp_path, frames), "unanswered_syn")
    assert a.severity == "error"
    assert a.details["attempts"] == len(times)
    assert a.details["pattern"] == pattern
    assert a.details["intervals_s"] == [b - a_ for a_, b in zip(times, times[1:], strict=False)]
    assert a.details["gave_up"] is True and a.details["gave_up_inferred"] is True
    assert (a.first_frame, a.last_frame) == (1, len(times))


def test_single_unanswered_syn_is_info_only(tmp_path: Path) -> None:
    frames: list[tuple[int, bytes]] = []
    Talk(frames).c(0, SYN)
    a = only(analyse(tmp_path, frames), "unanswered_syn")
    assert a.severity == "info" and a.details["pattern"] == "single"


def test_backoff_pattern_irregular_and_constant() -> None:
    assert backoff_pattern([5.0, 1.0, 7.0], 0.3) == "irregular"
    assert backoff_pattern([3.0, 3.0, 3.0], 0.3) == "constant"
    assert backoff_pattern([0.5, 1.0, 2.0], 0.3) == "exponential"


def test_connection_refused(tmp_path: Path) -> None:
    frames: list[tuple[int, bytes]] = []
    t = Talk(frames)
    t.c(0, SYN)
    t.s(0.001, RST | ACK, seq=0)
    a = only(analyse(tmp_path, frames), "connection_refused")
    assert a.severity == "error"
    assert (a.details["syn_frame"], a.details["rst_frame"], a.details["rst_flags"]) == (1, 2, "RA")


def test_synack_retransmission_and_half_open_after_ignored_ack(tmp_path: Path) -> None:
    # Accept queue full: the server ignores the handshake ACK and re-sends its SYN-ACK.
    frames: list[tuple[int, bytes]] = []
    t = Talk(frames)
    t.handshake()
    t.s(1.02, SYN | ACK, seq=5000)
    t.c(1.03, ACK)
    t.s(3.02, SYN | ACK, seq=5000)
    t.c(3.03, ACK)
    found = analyse(tmp_path, frames)
    r = only(found, "synack_retransmission")
    assert r.details["count"] == 2 and r.details["after_handshake_ack"] is True
    assert r.details["intervals_s"] == [1.01, 2.0]
    h = only(found, "half_open")
    assert h.severity == "error" and h.details["reason"] == "handshake_ack_ignored"
    assert h.details["handshake_ack_frame"] == 3


def test_half_open_when_client_never_acks(tmp_path: Path) -> None:
    frames: list[tuple[int, bytes]] = []
    t = Talk(frames)
    t.c(0, SYN)
    for x in (0.001, 1.0, 3.0):
        t.s(x, SYN | ACK, seq=5000)
    h = only(analyse(tmp_path, frames), "half_open")
    assert h.details["reason"] == "synack_unacknowledged"


def test_half_open_aggregated_per_server(tmp_path: Path) -> None:
    frames: list[tuple[int, bytes]] = []
    for i in range(6):
        t = Talk(frames, cport=30000 + i)
        t.c(i * 0.001, SYN)
        t.s(i * 0.001 + 0.0001, SYN | ACK)
        t.s(i * 0.001 + 1.0, SYN | ACK, seq=5000)
    found = analyse(tmp_path, frames, **{"synack.max_per_server": 2})
    per_conn = [a for a in found if a.code == "half_open" and a.flow_id is not None]
    agg = [a for a in found if a.code == "half_open" and a.flow_id is None]
    assert len(per_conn) == 2
    assert len(agg) == 1 and agg[0].details["connections"] == 6
    assert agg[0].details["not_listed"] == 4


def test_time_wait_reuse_on_new_incarnation(tmp_path: Path) -> None:
    frames: list[tuple[int, bytes]] = []
    t = Talk(frames)
    t.handshake()
    t.close_by_client(0.1)  # client in TIME_WAIT
    t2 = Talk(frames, c_isn=900_000)
    t2.handshake(0.5)
    t2.close_by_client(0.6)
    a = only(analyse(tmp_path, frames), "time_wait_reuse")
    assert a.flow_id == 1 and a.severity == "info"
    assert a.details["time_wait_side"] == "client"
    assert a.details["previous_flow_id"] == 0
    assert a.details["since_previous_s"] == pytest.approx(0.38)


def test_simultaneous_open_and_self_connect(tmp_path: Path) -> None:
    frames: list[tuple[int, bytes]] = []
    t = Talk(frames)
    t.c(0, SYN)
    t.s(0.001, SYN)
    t.c(0.002, SYN | ACK, seq=1000)
    t.s(0.003, SYN | ACK, seq=5000)
    me = Talk(frames, cport=5555, sport=5555, server=C_IP)
    me.c(1.0, SYN)
    found = analyse(tmp_path, frames)
    assert only(found, "simultaneous_open").severity == "info"
    assert only(found, "self_connect").details["port"] == 5555


# ------------------------------------------------------------------------------ resets
def refusals(frames: list[tuple[int, bytes]], n: int, spacing_s: float) -> None:
    for i in range(n):
        t = Talk(frames, cport=20000 + i, sport=1000 + i)
        t.c(i * spacing_s, SYN)
        t.s(i * spacing_s + 0.0001, RST | ACK, seq=0)


def test_rst_storm_capture_wide(tmp_path: Path) -> None:
    frames: list[tuple[int, bytes]] = []
    refusals(frames, 120, 0.004)
    storms = [a for a in analyse(tmp_path, frames) if a.code == "rst_storm"]
    assert len(storms) == 1
    a = storms[0]
    assert a.flow_id is None and a.severity == "warning"
    assert a.details["scope"] == "capture" and a.details["count"] == 120
    assert a.details["top_senders"] == [[S_IP, 120]]
    assert a.details["rate_per_s"] == 120.0
    assert (a.first_frame, a.last_frame) == (2, 240)


def test_a_handful_of_refusals_is_no_storm(tmp_path: Path) -> None:
    frames: list[tuple[int, bytes]] = []
    refusals(frames, 8, 0.01)
    found = analyse(tmp_path, frames)
    assert not [a for a in found if a.code == "rst_storm"]
    assert len([a for a in found if a.code == "connection_refused"]) == 8


def test_rst_storm_threshold_from_options(tmp_path: Path) -> None:
    frames: list[tuple[int, bytes]] = []
    refusals(frames, 8, 0.01)
    found = analyse(tmp_path, frames, **{"rst_storm.min_rsts": 8})
    assert only(found, "rst_storm").details["count"] == 8


def test_abortive_close_with_data_in_flight(tmp_path: Path) -> None:
    frames: list[tuple[int, bytes]] = []
    t = Talk(frames)
    t.handshake()
    for i in range(4):
        t.c(0.1 + i * 0.001, ACK | PSH, 1000)
    t.c(0.11, RST | ACK)                 # SO_LINGER 0: RST at SND.NXT
    t.s(0.12, ACK, ack=1001 + 1000)     # ACK in flight: only the first segment arrived yet
    t.c(0.1201, RST, seq=1001 + 1000)  # the dead socket answers it with a bare RST
    found = analyse(tmp_path, frames)
    a = only(found, "abortive_close")
    assert a.details["by"] == "client" and a.details["in_flight_bytes_at_least"] == 3000
    assert a.first_frame == 8
    assert "reset_on_data" not in [x.code for x in found]


def test_abortive_close_seen_from_the_peer(tmp_path: Path) -> None:
    """Captured at the server: its ACKs precede the client's abort in the capture, but the
    client's bare RSTs answering them afterwards echo their ACK numbers (RFC 9293 3.10.7.1):
    those ACKs were still in flight at the abort, and so was the data beyond them."""
    frames: list[tuple[int, bytes]] = []
    t = Talk(frames)
    t.handshake()
    start = t.nxt[True]
    for i in range(4):
        t.c(0.1 + i * 0.001, ACK | PSH, 1000)
        t.s(0.1005 + i * 0.001, ACK, ack=start + 1000 * (i + 1))
    t.c(0.11, RST | ACK)                           # SO_LINGER 0 at SND.NXT = start + 4000
    t.c(0.115, RST, seq=start + 1000)              # answers the server's first ACK
    t.c(0.1151, RST, seq=start + 2000)
    a = only(analyse(tmp_path, frames), "abortive_close")
    assert a.details["in_flight_bytes_at_least"] == 3000
    assert a.details["basis"].startswith("its own RSTs") and a.first_frame == 12


def test_abortive_close_with_unread_data(tmp_path: Path) -> None:
    """RFC 2525 2.17: the server ACKs the client's request, never answers it, and resets:
    abortive_close by unread data. The same RST after the server answered with data, or after
    its keep-alives, is no such finding (it may have read everything; its timer fired)."""
    def run(answer: str) -> list[Anomaly]:
        frames: list[tuple[int, bytes]] = []
        t = Talk(frames)
        t.handshake()
        t.c(0.1, ACK | PSH, 200)
        t.s(0.11, ACK)
        if answer == "data":
            t.s(0.15, ACK | PSH, 50)
            t.c(0.16, ACK)
        elif answer == "keepalive":
            t.s(2.0, ACK, seq=t.nxt[False] - 1)  # a keep-alive probe, then the timer's RST
        t.s(3.0 if answer == "keepalive" else 0.2, RST | ACK)
        return analyse(tmp_path, frames)

    a = only(run("none"), "abortive_close")
    assert a.details["by"] == "server" and a.details["unanswered_peer_bytes"] == 200
    assert a.severity == "warning" and a.first_frame == 6
    for answer in ("data", "keepalive"):
        assert "abortive_close" not in [x.code for x in run(answer)], answer


def test_pmtu_black_hole_needs_full_size_segments_and_a_live_peer(tmp_path: Path) -> None:
    """Full-size segments timing out while the peer's small packets still arrive: a path-MTU
    black hole (suspected). Small segments timing out, or a peer silent since (a dead path),
    are ordinary timeouts. Re-sent smaller and acknowledged: proven."""
    def run(size: int, peer_alive: bool, shrink: bool = False) -> list[Anomaly]:
        frames: list[tuple[int, bytes]] = []
        t = Talk(frames)
        t.handshake()
        start = t.nxt[True]
        t.c(0.1, ACK | PSH, size)
        at = 0.1
        for gap in (0.25, 0.5, 1.0, 2.0):
            at += gap
            t.c(at, ACK | PSH, size, seq=start)
        if shrink:  # MTU probing: the same bytes in two smaller segments get through
            t.c(at + 4.0, ACK, 512, seq=start)
            t.s(at + 4.01, ACK, ack=start + 512)
        if peer_alive:
            t.s(at + 4.5, ACK | PSH, 1, ack=start + (512 if shrink else 0))
        return analyse(tmp_path, frames)

    a = only(run(1448, True), "pmtu_black_hole")
    assert a.details["proven"] is False and a.details["segment_bytes"] == 1448
    # The first re-send of the last segment sent is a tail-loss probe, the next three timeouts.
    assert a.details["timeouts"] == 3 and a.severity == "warning"
    b = only(run(1448, True, shrink=True), "pmtu_black_hole")
    assert b.details["proven"] is True and b.details["smaller_bytes"] == 512
    assert "pmtu_black_hole" not in [x.code for x in run(300, True)]
    assert "pmtu_black_hole" not in [x.code for x in run(1448, False)]


def test_reset_on_data_bare_rst(tmp_path: Path) -> None:
    frames: list[tuple[int, bytes]] = []
    t = Talk(frames)
    t.handshake()
    t.c(0.1, ACK | PSH, 100)
    t.s(0.11, ACK)
    t.c(5.0, ACK | PSH, 100)
    t.s(5.01, RST)  # server restarted: a bare RST at the ACK number it was sent
    a = only(analyse(tmp_path, frames), "reset_on_data")
    assert a.severity == "error" and a.details["by"] == "server"
    assert a.first_frame == 7


def test_reset_after_idle(tmp_path: Path) -> None:
    frames: list[tuple[int, bytes]] = []
    t = Talk(frames)
    t.handshake()
    t.c(0.1, ACK | PSH, 100)
    t.s(0.11, ACK | PSH, 100)
    t.c(0.12, ACK)
    t.c(400.0, ACK | PSH, 100)
    t.s(400.01, RST | ACK)
    a = only(analyse(tmp_path, frames), "reset_after_idle")
    assert a.details["idle_s"] >= 399.0 and a.details["by"] == "server"


def test_keepalive_timeout(tmp_path: Path) -> None:
    frames: list[tuple[int, bytes]] = []
    t = Talk(frames)
    t.handshake()
    t.c(0.1, ACK | PSH, 10)
    t.s(0.11, ACK)
    ka = t.nxt[True] - 1
    for x in (10.0, 11.0, 12.0):
        t.c(x, ACK, seq=ka)
    t.c(13.0, RST | ACK)
    a = only(analyse(tmp_path, frames), "keepalive_timeout")
    assert a.details["unanswered_probes"] == 3
    assert a.details["intervals_s"] == [1.0, 1.0]
    assert a.details["rst_frame"] == 9


# ------------------------------------------------------------------------------ close
def test_lost_final_ack_counts_fin_retransmissions(tmp_path: Path) -> None:
    frames: list[tuple[int, bytes]] = []
    t = Talk(frames)
    t.handshake()
    t.c(0.1, FIN | ACK)
    t.s(0.11, ACK)
    fin = t.nxt[False]
    t.s(0.12, FIN | ACK)
    t.c(0.13, ACK)
    for x in (0.33, 0.73, 1.53):
        t.s(x, FIN | ACK, seq=fin)
        t.c(x + 0.01, ACK)
    a = only(analyse(tmp_path, frames), "lost_final_ack")
    assert a.severity == "warning"
    assert a.details["fin_retransmissions"] == 3
    assert a.details["intervals_s"] == [0.21, 0.4, 0.8]
    assert a.details["final_ack_seen"] is True


def test_close_wait_stuck_to_capture_end(tmp_path: Path) -> None:
    frames: list[tuple[int, bytes]] = []
    t = Talk(frames)
    t.handshake()
    t.c(0.1, ACK | PSH, 50)
    t.s(0.11, ACK | PSH, 500)
    t.c(0.12, FIN | ACK)
    t.s(0.13, ACK)
    other = Talk(frames, cport=41000)   # the capture goes on for 5 s
    other.handshake(5.0)
    a = only(analyse(tmp_path, frames), "close_wait_stuck")
    assert a.severity == "warning" and a.details["by"] == "server"
    assert a.details["stuck_s_at_least"] == pytest.approx(5.02 - 0.12)


def test_close_wait_at_a_capture_that_stops_at_once_is_info(tmp_path: Path) -> None:
    frames: list[tuple[int, bytes]] = []
    t = Talk(frames)
    t.handshake()
    t.c(0.12, FIN | ACK)
    t.s(0.13, ACK)
    assert only(analyse(tmp_path, frames), "close_wait_stuck").severity == "info"


def test_data_after_close_is_not_a_half_close(tmp_path: Path) -> None:
    """Data after a FIN answered by the FIN's sender with a RST: it had close()d, so the data
    was discarded. A warning when the RST cut the peer off, info when the peer had sent its
    own FIN right after its data (a TLS close_notify), crossing the RST."""
    def run(peer_fin: bool) -> list[Anomaly]:
        frames: list[tuple[int, bytes]] = []
        t = Talk(frames)
        t.handshake()
        t.c(0.1, ACK | PSH, 64)
        t.s(0.11, ACK)
        t.c(0.6, FIN | ACK)                       # the client gives up
        t.s(0.61, ACK)
        t.s(1.1, ACK | PSH, 500)                  # the late response
        t.c(1.1001, RST, seq=t.nxt[True])         # the closed socket resets it
        if peer_fin:
            t.s(1.1002, FIN | ACK)                # sent before the RST arrived
        return analyse(tmp_path, frames)

    for peer_fin, severity in ((False, "warning"), (True, "info")):
        found = run(peer_fin)
        a = only(found, "data_after_close")
        assert (a.severity, a.details["by"], a.details["discarded_bytes_at_least"]) == (
            severity, "client", 500)
        assert (a.first_frame, a.last_frame) == (6, 9)
        assert "half_close" not in [x.code for x in found]


def test_data_in_flight_at_a_fin_is_not_a_half_close(tmp_path: Path) -> None:
    """The client's upload is lost (never acknowledged) when the server closes; the client only
    re-sends it afterwards. It sent nothing new after the FIN: no half_close."""
    frames: list[tuple[int, bytes]] = []
    t = Talk(frames)
    t.handshake()
    start = t.nxt[True]
    t.c(0.1, ACK | PSH, 1448)
    t.c(0.1001, ACK | PSH, 1448)
    t.s(1.0, FIN | ACK, ack=start)          # the server gives up, having received nothing
    t.c(1.2, ACK | PSH, 1448, seq=start)    # a re-send of what was sent before the FIN
    found = analyse(tmp_path, frames)
    assert "half_close" not in [a.code for a in found]


def test_half_close_counts_bytes_after_fin(tmp_path: Path) -> None:
    frames: list[tuple[int, bytes]] = []
    t = Talk(frames)
    t.handshake()
    t.c(0.1, ACK | PSH, 64)
    t.c(0.11, FIN | ACK)
    for i in range(3):
        t.s(0.2 + i * 0.1, ACK | PSH, 1000)
        t.c(0.25 + i * 0.1, ACK)
    t.s(0.6, FIN | ACK)
    t.c(0.61, ACK)
    found = analyse(tmp_path, frames)
    a = only(found, "half_close")
    assert a.severity == "info" and a.details["server_bytes_after_fin"] == 3000
    assert serious(found) == []


def test_simultaneous_close(tmp_path: Path) -> None:
    frames: list[tuple[int, bytes]] = []
    t = Talk(frames)
    t.handshake()
    cf, sf = t.nxt[True], t.nxt[False]
    t.c(0.1, FIN | ACK)
    t.s(0.1001, FIN | ACK, ack=cf)
    t.c(0.11, ACK)
    t.s(0.11, ACK)
    assert only(analyse(tmp_path, frames), "simultaneous_close").severity == "info"
    del sf


# ------------------------------------------------------------------------------ retransmission
def test_retransmission_timeout_and_backoff(tmp_path: Path) -> None:
    frames: list[tuple[int, bytes]] = []
    t = Talk(frames)
    t.handshake()
    seq = t.nxt[True]
    t.c(0.1, ACK | PSH, 500)
    # Past the 1 s RTO floor (RFC 6298 2.4), so not a tail-loss probe; then doubling.
    for x in (1.3, 3.7, 8.5):
        t.c(x, ACK | PSH, 500, seq=seq)
    t.s(8.6, ACK)
    found = analyse(tmp_path, frames)
    r = only(found, "retransmission_timeout")
    assert r.details["count"] == 3 and r.details["intervals_s"] == [1.2, 2.4, 4.8]
    b = only(found, "rto_backoff")
    assert b.details["timeouts"] == 3 and b.details["ratios"] == [2.0, 2.0]
    assert b.details["original_frame"] == 4


def test_excessive_and_spurious_retransmissions(tmp_path: Path) -> None:
    frames: list[tuple[int, bytes]] = []
    t = Talk(frames)
    t.handshake()
    x = 0.1
    for _ in range(10):
        seq = t.nxt[True]
        t.c(x, ACK | PSH, 100)
        t.s(x + 0.01, ACK)
        t.c(x + 0.5, ACK | PSH, 100, seq=seq)   # already acknowledged: spurious
        x += 1.0
    found = analyse(tmp_path, frames, **{"retransmission.excessive_min_count": 5})
    s = only(found, "spurious_retransmission")
    assert s.details["count"] == 10 and s.severity == "info"
    # Spurious ones are not counted as loss.
    assert "excessive_retransmissions" not in [a.code for a in found]


# ------------------------------------------------------------------------------ window
def test_zero_window_stall_with_probes(tmp_path: Path) -> None:
    frames: list[tuple[int, bytes]] = []
    t = Talk(frames)
    t.handshake()
    t.c(0.1, ACK | PSH, 1000)
    t.s(0.11, ACK, window=0)
    una = t.nxt[True]
    for x in (0.31, 0.71, 1.51):
        t.c(x, ACK, seq=una - 1)          # Linux probe: 0 bytes at SND.UNA - 1
        t.s(x + 0.001, ACK, window=0)
    t.s(2.11, ACK, window=65535)          # window update
    t.c(2.12, ACK | PSH, 1000)
    t.s(2.13, ACK)
    a = only(analyse(tmp_path, frames), "zero_window_stall")
    assert a.details["probes"] == 3 and a.details["reopened"] is True
    assert a.details["duration_s"] == pytest.approx(2.0)
    assert a.details["side"] == "server"


def test_short_zero_window_is_not_a_stall(tmp_path: Path) -> None:
    """Below the stall thresholds a zero window is flow control at work: info only, as
    zero_window (the sender waited) or zero_window_probe (its persist timer probed once)."""
    def run(probe: bool) -> list[Anomaly]:
        frames: list[tuple[int, bytes]] = []
        t = Talk(frames)
        t.handshake()
        t.c(0.1, ACK | PSH, 1000)
        t.s(0.11, ACK, window=0)
        if probe:
            t.c(0.31, ACK, seq=t.nxt[True] - 1)  # one Linux probe at SND.UNA - 1
            t.s(0.311, ACK, window=0)
        t.s(0.4, ACK, window=65535)
        return analyse(tmp_path, frames)

    for probe, code in ((False, "zero_window"), (True, "zero_window_probe")):
        found = run(probe)
        a = only(found, code)
        assert a.severity == "info" and a.details["side"] == "server"
        assert a.details["probes"] == (1 if probe else 0) and a.details["reopened"] is True
        assert a.details["by"] == ("client" if probe else "server")
        assert serious(found) == [], "not a stall"


# ------------------------------------------------------------------------------ protocol
def test_protocol_violations(tmp_path: Path) -> None:
    frames: list[tuple[int, bytes]] = []
    scan = Talk(frames, cport=50000)
    scan.c(0, SYN | FIN)
    t = Talk(frames)
    t.handshake(1.0)
    t.c(1.1, FIN | ACK)
    t.c(1.2, ACK | PSH, 10, seq=t.nxt[True])   # data after its own FIN
    t.s(1.3, RST, seq=t.nxt[False] + 10_000_000)  # far outside the window
    found = analyse(tmp_path, frames)
    assert only(found, "invalid_flags").details["frames"] == [1]
    assert only(found, "data_after_fin").first_frame == 6
    oow = only(found, "out_of_window_rst")
    assert oow.first_frame == 7 and oow.severity == "warning"


def test_tcp_fast_open_syn_is_info(tmp_path: Path) -> None:
    frames: list[tuple[int, bytes]] = []
    t = Talk(frames)
    t.c(0, SYN, 20)
    t.s(0.01, SYN | ACK, ack=1000 + 21)
    t.c(0.02, ACK)
    a = only(analyse(tmp_path, frames), "syn_with_data")
    assert a.severity == "info" and a.details["tcp_fast_open"] is True
    assert a.details["data_acknowledged"] is True


def test_data_after_rst_ignores_crossing_segments(tmp_path: Path) -> None:
    """The RST's sender going on is a violation; its receiver's segment sent before the RST
    could arrive is a crossing, not a violation."""
    frames: list[tuple[int, bytes]] = []
    t = Talk(frames)
    t.handshake()
    t.c(0.1, RST | ACK)
    t.s(0.1001, ACK | PSH, 10)   # crossed the RST in flight
    t.c(0.2, ACK | PSH, 10, seq=t.nxt[True])  # the RST's sender sends data after its RST
    a = only(analyse(tmp_path, frames), "data_after_rst")
    assert a.details["frames"] == [6]


def test_sending_long_after_a_rst_proves_it_never_arrived(tmp_path: Path) -> None:
    """A receiver that sends data long after an in-window RST never got it (lost after the
    capture point, or an RFC 5961 challenge): it is still ESTABLISHED, the connection is
    half-open, and neither its crossing segment nor its later data is a violation."""
    frames: list[tuple[int, bytes]] = []
    t = Talk(frames)
    t.handshake()
    t.c(0.1, RST | ACK)
    t.s(0.1001, ACK | PSH, 10)   # crossed the RST in flight
    t.s(2.0, ACK | PSH, 10)      # sent long after: the RST did not take
    results = analyse_results(tmp_path, frames)
    rec = results[0].record
    assert (rec["client_state"], rec["server_state"]) == ("CLOSED", "ESTABLISHED")
    assert rec["close"] == "rst_by_client"
    found = [a for r in results for a in r.anomalies]
    assert not [a for a in found if a.code == "data_after_rst"]
    half = only(found, "half_open")
    assert half.details["evidence"] == "rst_not_taken" and half.details["sent_after_frame"] == 6
    inferred = [e for e in results[0].events if e.kind == "inferred" and e.endpoint == "server"]
    assert [(e.frame, e.old_state, e.new_state) for e in inferred] == [
        (6, "CLOSED", "ESTABLISHED")]


# ------------------------------------------------------------------------------ capture
def test_duplicate_frames_are_capture_artifacts(tmp_path: Path) -> None:
    frames: list[tuple[int, bytes]] = []
    t = Talk(frames)
    t.handshake()
    seq = t.nxt[True]
    t.c(0.1, ACK | PSH, 100)
    t.c(0.100001, ACK | PSH, 100, seq=seq)
    t.s(0.11, ACK)
    found = analyse(tmp_path, frames)
    a = only(found, "duplicate_frames")
    assert a.category == "capture" and a.severity == "info" and a.details["frames"] == [5]


def test_capture_artifacts_never_errors(tmp_path: Path) -> None:
    frames: list[tuple[int, bytes]] = []
    t = Talk(frames)
    t.handshake()
    t.c(0.1, ACK | PSH, 100)
    t.nxt[True] += 500                 # 500 bytes never captured
    t.c(0.11, ACK | PSH, 100)
    t.s(0.12, ACK)
    path = write_pcap(tmp_path / "t.pcap", frames + [(frames[0][0], frames[0][1])])
    engine = Engine()
    found = [a for r in engine.run(str(path)) for a in r.anomalies] + engine.summary.anomalies
    codes = {a.code: a for a in found}
    assert "segments_not_captured" in codes and "timestamps_backwards" in codes
    for a in found:
        if a.category == "capture":
            assert a.severity != "error"


def test_clean_connection_raises_nothing(tmp_path: Path) -> None:
    frames: list[tuple[int, bytes]] = []
    t = Talk(frames)
    t.handshake()
    t.c(0.1, ACK | PSH, 64)
    t.s(0.11, ACK | PSH, 3000)
    t.c(0.12, ACK)
    t.close_by_client(0.2)
    assert analyse(tmp_path, frames) == []


# ------------------------------------------------------------------------------ framework
def test_parameters_are_documented_and_typed() -> None:
    params = detectors.parameters()
    assert ("rst_storm", "min_rsts", 100) in [p[:3] for p in params]
    for det, name, default, doc in params:
        assert det in detectors.REGISTRY and doc and len(doc) > 40
        assert detectors.DEFAULTS[f"{det}.{name}"] == default
    for _det, code, severity, category, doc in detectors.codes():
        assert severity in SEVERITY_RANK and doc
        if category == "capture":
            assert severity != "error", code


def test_parse_param_and_errors() -> None:
    assert detectors.parse_param("rst_storm.min_rsts=50") == ("rst_storm.min_rsts", 50)
    assert detectors.parse_param("rst_storm.window_s = 2") == ("rst_storm.window_s", 2.0)
    for bad in ("rst_storm.nope=1", "nodetector.x=1", "rst_storm.min_rsts", "rst_storm.min_rsts=x"):
        with pytest.raises(ValueError):
            detectors.parse_param(bad)
    with pytest.raises(ValueError, match="unknown detector parameter"):
        Engine(Options(detector_params={"rst_storm.min_rst": 5}))
    with pytest.raises(ValueError):
        Engine(Options(disabled_detectors=("no_such",)))


def test_load_config_toml(tmp_path: Path) -> None:
    cfg = tmp_path / "d.toml"
    cfg.write_text("[rst_storm]\nmin_rsts = 8\nwindow_s = 2\n\n[detectors.window]\n"
                   "min_probes = 4\n")
    got = detectors.load_config(cfg)
    assert got == {"rst_storm.min_rsts": 8, "rst_storm.window_s": 2.0, "window.min_probes": 4}
    bad = tmp_path / "bad.toml"
    bad.write_text("[rst_storm]\nmin_rsts_typo = 8\n")
    with pytest.raises(ValueError, match="min_rsts_typo"):
        detectors.load_config(bad)
    with pytest.raises(ValueError):
        detectors.load_config(tmp_path / "missing.toml")


def test_disabled_detector_is_not_run(tmp_path: Path) -> None:
    frames: list[tuple[int, bytes]] = []
    t = Talk(frames)
    t.c(0, SYN)
    t.s(0.001, RST | ACK, seq=0)
    path = write_pcap(tmp_path / "t.pcap", frames)
    engine = Engine(Options(disabled_detectors=("connection_refused",)))
    assert [a for r in engine.run(str(path)) for a in r.anomalies] == []


def test_truncated_frames_evidence_names_the_cut_frames(tmp_path: Path) -> None:
    frames: list[tuple[int, bytes]] = []
    t = Talk(frames)
    t.handshake()
    t.c(0.1, ACK | PSH, 1000)  # frame 4: cut by a 100-byte snaplen below
    t.s(0.11, ACK)
    t.c(0.2, ACK | PSH, 1000)  # frame 6: cut too
    t.s(0.21, ACK)
    t.close_by_client(0.3)
    cut = [(ts, data[:100], len(data)) if len(data) > 100 else (ts, data)
           for ts, data in frames]
    path = write_pcap(tmp_path / "cut.pcap", cut, snaplen=100)
    engine = Engine()
    list(engine.run(str(path)))
    a = only(engine.summary.anomalies, "truncated_frames")
    assert (a.first_frame, a.last_frame) == (4, 6)
    assert a.ts_ns == int(round(0.1 * NS))
    assert a.details["snaplen_truncated_segments"] == 2
    assert a.severity == "info" and a.category == "capture"
