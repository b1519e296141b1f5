"""Issue 15 item 7: RFC 5961 challenge ACKs, on captures the tests write.

An in-window RST that is not at the receiver's RCV.NXT (RFC 5961 3.2), or a SYN with a new
ISN on an established connection (RFC 5961 4), is answered by a challenge ACK and does not end
the connection: one connection goes on, with a ``challenge_ack`` finding naming the injected
segments and the challenge ACKs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from test_detectors import Talk, analyse_results, only

from tcptrace_py.fsm import Action, Input, TcpState, lookup
from tcptrace_py.segment import ACK, FIN, PSH, RST, SYN


def _codes(results: list[Any]) -> list[str]:
    return [a.code for r in results for a in r.anomalies]


def _exchange(t: Talk) -> None:
    t.handshake()
    t.c(0.1, ACK | PSH, 100)
    t.s(0.11, ACK | PSH, 200)
    t.c(0.12, ACK)


def test_in_window_rst_off_rcv_nxt_then_challenge_ack_then_data(tmp_path: Path) -> None:
    frames: list[tuple[int, bytes]] = []
    t = Talk(frames)
    _exchange(t)
    rcv_nxt = t.nxt[True]
    t.c(0.2, RST, seq=rcv_nxt + 5000)       # frame 7: spoofed, in the window, not at RCV.NXT
    t.s(0.2001, ACK)                         # frame 8: the server's challenge ACK (RCV.NXT)
    t.c(0.3, ACK | PSH, 100)                 # the real client goes on
    t.s(0.31, ACK | PSH, 50)
    t.c(0.32, ACK)
    t.close_by_client(0.4)
    results = analyse_results(tmp_path, frames)
    assert len(results) == 1
    rec = results[0].record
    assert rec["close"] == "graceful" and rec["rst_frame"] is None
    assert (rec["client_state"], rec["server_state"]) == ("TIME_WAIT", "CLOSED")
    found = [a for r in results for a in r.anomalies]
    a = only(found, "challenge_ack")
    assert a.severity == "warning"
    assert a.details["kinds"] == ["rst"] and a.details["by"] == ["server"]
    assert a.details["injected_frames"] == [7] and a.details["challenge_ack_frames"] == [8]
    assert a.details["sender_went_on"] is True and "injection" in a.summary
    for code in ("data_after_rst", "half_open", "abortive_close", "reset_on_data"):
        assert code not in _codes(results), code
    server = [(e.frame, e.kind, e.old_state, e.new_state) for e in results[0].events
              if e.endpoint == "server" and e.frame in (7, 8)]
    assert server == [(7, "transition", "ESTABLISHED", "CLOSED"),
                      (8, "inferred", "CLOSED", "ESTABLISHED")]
    client = [(e.frame, e.kind, e.new_state) for e in results[0].events
              if e.endpoint == "client" and e.frame in (7, 9)]
    assert client == [(7, "transition", "CLOSED"), (9, "inferred", "ESTABLISHED")]


def test_challenged_rst_then_peer_resets_at_rcv_nxt(tmp_path: Path) -> None:
    """RFC 5961 3.2's legitimate case: a peer whose RST was off answers the challenge ACK with
    a RST at RCV.NXT, and that one ends the connection."""
    frames: list[tuple[int, bytes]] = []
    t = Talk(frames)
    _exchange(t)
    rcv_nxt = t.nxt[True]
    t.c(0.2, RST, seq=rcv_nxt + 3000)        # frame 7
    t.s(0.2001, ACK)                         # frame 8: challenge ACK
    t.c(0.2002, RST, seq=rcv_nxt)            # frame 9: exact
    results = analyse_results(tmp_path, frames)
    rec = results[0].record
    assert len(results) == 1 and rec["close"] == "rst_by_client" and rec["rst_frame"] == 9
    assert (rec["client_state"], rec["server_state"]) == ("CLOSED", "CLOSED")
    a = only([a for r in results for a in r.anomalies], "challenge_ack")
    assert a.details["reset_at_rcv_nxt_after"] is True and a.details["sender_went_on"] is False


def test_syn_on_established_then_challenge_ack(tmp_path: Path) -> None:
    frames: list[tuple[int, bytes]] = []
    t = Talk(frames)
    _exchange(t)
    rcv_nxt = t.nxt[True]
    t.c(0.2, SYN, seq=987654)                # frame 7: a SYN with a new ISN
    t.c(0.2002, SYN, seq=987654)             # frame 8: its re-send (held with it)
    t.s(0.2003, ACK)                         # frame 9: challenge ACK, ack = RCV.NXT
    t.c(0.3, ACK | PSH, 100)
    t.s(0.31, ACK)
    t.close_by_client(0.4)
    results = analyse_results(tmp_path, frames)
    assert [r.record["flow_id"] for r in results] == [0]   # no new incarnation
    rec = results[0].record
    assert rec["close"] == "graceful" and rec["incarnation"] == 0
    assert rec["client_packets"] == 9 and rec["client_syn_count"] == 1
    assert (rec["client_state"], rec["server_state"]) == ("TIME_WAIT", "CLOSED")
    a = only([a for r in results for a in r.anomalies], "challenge_ack")
    assert a.details["kinds"] == ["syn"] and a.details["injected_frames"] == [7, 8]
    assert a.details["challenge_ack_frames"] == [9] and a.details["sender_went_on"] is True
    assert "time_wait_reuse" not in _codes(results)
    assert rcv_nxt == t.nxt[True] - 100 - 1  # the challenge ACK acknowledged the old RCV.NXT


def test_syn_on_established_answered_by_synack_is_a_new_incarnation(tmp_path: Path) -> None:
    """The peer's answer decides: a SYN-ACK of the new ISN opens a new incarnation, as
    before (e.g. the capture missed the old connection's close)."""
    frames: list[tuple[int, bytes]] = []
    t = Talk(frames)
    _exchange(t)
    t.c(0.2, SYN, seq=987654)                # frame 7
    t.s(0.21, SYN | ACK, seq=777, ack=987655)
    t.c(0.22, ACK, seq=987655, ack=778)
    results = analyse_results(tmp_path, frames)
    assert [r.record["flow_id"] for r in results] == [0, 1]
    new = results[1].record
    assert new["open"] == "three_way_handshake" and new["syn_frame"] == 7
    assert new["incarnation"] == 1 and results[0].record["end_reason"] == "new_incarnation"
    assert "challenge_ack" not in _codes(results)


def test_unanswered_held_syn_opens_its_incarnation_at_capture_end(tmp_path: Path) -> None:
    frames: list[tuple[int, bytes]] = []
    t = Talk(frames)
    _exchange(t)
    t.c(0.2, SYN, seq=987654)
    t.c(1.2, SYN, seq=987654)
    results = analyse_results(tmp_path, frames)
    assert sorted(r.record["flow_id"] for r in results) == [0, 1]
    new = next(r.record for r in results if r.record["flow_id"] == 1)
    assert new["client_syn_count"] == 2 and new["syn_frame"] == 7
    assert "challenge_ack" not in _codes(results)


def test_rst_exactly_at_rcv_nxt_still_ends_it(tmp_path: Path) -> None:
    frames: list[tuple[int, bytes]] = []
    t = Talk(frames)
    _exchange(t)
    t.c(0.2, RST)                            # at RCV.NXT
    t.s(0.2001, ACK)                         # crossed it: not a challenge
    results = analyse_results(tmp_path, frames)
    rec = results[0].record
    assert rec["close"] == "rst_by_client" and rec["server_state"] == "CLOSED"
    assert "challenge_ack" not in _codes(results)


def test_off_rst_with_no_challenge_ack_ends_it(tmp_path: Path) -> None:
    """A receiver that does not answer (an RFC 793 stack obeys any in-window RST) closed."""
    frames: list[tuple[int, bytes]] = []
    t = Talk(frames)
    _exchange(t)
    t.c(0.2, RST, seq=t.nxt[True] + 5000)
    results = analyse_results(tmp_path, frames)
    assert results[0].record["close"] == "rst_by_client"
    assert "challenge_ack" not in _codes(results)


def test_rst_with_data_in_flight_is_not_challenged_by_a_crossing_ack(tmp_path: Path) -> None:
    """A RST at SND.NXT with data still in flight lands at RCV.NXT: the peer's ACK sent before
    it arrived (lower ACK number) is a crossing, not a challenge (abortive_close evidence)."""
    frames: list[tuple[int, bytes]] = []
    t = Talk(frames)
    _exchange(t)
    t.c(0.2, ACK | PSH, 1000)
    t.c(0.2001, RST | ACK)
    t.s(0.2002, ACK, ack=t.nxt[True] - 1000)
    results = analyse_results(tmp_path, frames)
    assert results[0].record["close"] == "rst_by_client"
    codes = _codes(results)
    assert "challenge_ack" not in codes and "abortive_close" in codes


def test_table_rows() -> None:
    est = TcpState.ESTABLISHED
    assert lookup(TcpState.CLOSED, Input.SEND_CHALLENGE_ACK)[:2] == (Action.INFER, est)
    assert lookup(TcpState.CLOSED, Input.SEND_AFTER_CHALLENGED_RST)[:2] == (Action.INFER, est)
    assert lookup(est, Input.SEND_SYN_NEW_ISN)[:2] == (Action.IGNORED, est)


def test_held_syn_released_when_the_connection_idles_out(tmp_path: Path) -> None:
    """Expiry by packet time releases an unanswered held SYN as its new incarnation, with the
    flow_id reserved when it arrived (a connection opened meanwhile keeps the next one)."""
    from captures_util import write_pcap

    from tcptrace_py.engine import Engine
    from tcptrace_py.options import Options

    frames: list[tuple[int, bytes]] = []
    t = Talk(frames)
    _exchange(t)
    t.c(0.2, SYN, seq=987654)                           # flow 1 reserved
    other = Talk(frames, cport=40001)
    other.handshake(0.3)                                # flow 2
    other.c(100.0, ACK | PSH, 10)                       # flow 3 (2 idled out): sweep
    path = write_pcap(tmp_path / "t.pcap", sorted(frames, key=lambda f: f[0]))
    results = list(Engine(Options(idle_timeout_s=10.0)).run(str(path)))
    by_id = {r.record["flow_id"]: r.record for r in results}
    assert sorted(by_id) == [0, 1, 2, 3]
    assert by_id[0]["end_reason"] == "new_incarnation"
    assert by_id[1]["syn_frame"] == 7 and by_id[1]["client_port"] == 40000
    assert by_id[2]["client_port"] == by_id[3]["client_port"] == 40001
    assert by_id[1]["end_reason"] == "attempt_timeout"


def _rst_then_data(t: Talk) -> None:
    _exchange(t)
    t.c(0.2, RST, seq=t.nxt[True] + 5000)
    t.s(0.2001, ACK)
    for i in range(5):
        t.c(0.3 + i / 10, ACK | PSH, 100)
        t.s(0.31 + i / 10, ACK)


def _syn_then_data(t: Talk) -> None:
    _exchange(t)
    t.c(0.2, SYN, seq=987654)
    t.s(0.2003, ACK)
    for i in range(5):
        t.c(0.3 + i / 10, ACK | PSH, 100)
        t.s(0.31 + i / 10, ACK)


def test_same_with_and_without_fast_path(tmp_path: Path) -> None:
    from captures_util import write_pcap
    from test_fastpath import _outputs

    for build in (_rst_then_data, _syn_then_data):
        frames: list[tuple[int, bytes]] = []
        build(Talk(frames))
        path = write_pcap(tmp_path / "t.pcap", frames)
        fast = _outputs(str(path), True)
        assert fast == _outputs(str(path), False)
        assert "challenge_ack" in [a.code for _r, found, _e, _p in fast[:-1] for a in found]


def test_challenged_rst_sender_closing_with_fin_is_synchronized(tmp_path: Path) -> None:
    """The apparent RST sender's first segment after the challenge is its FIN: it goes
    CLOSED -> ESTABLISHED (its RST was not its own) -> FIN_WAIT_1, and the close is graceful."""
    frames: list[tuple[int, bytes]] = []
    t = Talk(frames)
    _exchange(t)
    t.s(0.2, RST, seq=t.nxt[False] + 4000)   # frame 7: spoofed "server" RST to the client
    t.c(0.2001, ACK)                         # frame 8: the client's challenge ACK
    t.s(0.3, FIN | ACK)                      # frame 9: the real server closes
    t.c(0.31, FIN | ACK)
    t.s(0.32, ACK)
    results = analyse_results(tmp_path, frames)
    rec = results[0].record
    assert rec["close"] == "graceful"
    assert (rec["client_state"], rec["server_state"]) == ("CLOSED", "TIME_WAIT")
    server = [(e.kind, e.old_state, e.new_state) for e in results[0].events
              if e.endpoint == "server" and e.frame == 9 and e.direction == "sent"]
    assert server == [("inferred", "CLOSED", "ESTABLISHED"),
                      ("transition", "ESTABLISHED", "FIN_WAIT_1")]
    a = only([a for r in results for a in r.anomalies], "challenge_ack")
    assert a.details["by"] == ["client"] and a.details["apparent_sender"] == ["server"]
    assert "data_after_rst" not in _codes(results)


def test_host_that_lost_the_connection_reconnects(tmp_path: Path) -> None:
    """RFC 5961 4 / RFC 9293 3.5.2 figure 10 recovery: the client lost the connection and
    reconnects from the same port; the server challenges its SYN, the client resets at the
    challenge ACK's number, and its SYN re-send opens the new connection, which takes the
    flow_id reserved for the first SYN (as tcp.stream keeps both in one stream)."""
    frames: list[tuple[int, bytes]] = []
    t = Talk(frames)
    _exchange(t)
    t.c(5.0, SYN, seq=987654)                 # frame 7
    t.s(5.0001, ACK)                          # frame 8: challenge ACK, ack = RCV.NXT
    t.c(5.0002, RST, seq=t.nxt[True])         # frame 9: the client's answer, at RCV.NXT
    t.c(6.0, SYN, seq=987654)                 # frame 10: its SYN re-send
    t.s(6.0001, SYN | ACK, seq=444, ack=987655)
    t.c(6.0002, ACK, seq=987655, ack=445)
    other = Talk(frames, cport=40001)
    other.handshake(7.0)                      # the next connection
    results = analyse_results(tmp_path, frames)
    by_id = {r.record["flow_id"]: r for r in results}
    assert sorted(by_id) == [0, 1, 2]
    old, new = by_id[0].record, by_id[1].record
    assert old["close"] == "rst_by_client" and old["rst_frame"] == 9
    assert (old["client_state"], old["server_state"]) == ("CLOSED", "CLOSED")
    assert new["syn_frame"] == 10 and new["open"] == "three_way_handshake"
    assert by_id[2].record["client_port"] == 40001
    a = only(list(by_id[0].anomalies), "challenge_ack")
    assert a.details["kinds"] == ["syn"] and a.details["reset_at_rcv_nxt_after"] is True


def test_blind_rst_spray_each_challenged(tmp_path: Path) -> None:
    """A blind attacker sprays RSTs across the window: each in-window one draws a challenge
    ACK. A RST moves no SND.MAX, so the second (below the first) is still not at RCV.NXT."""
    frames: list[tuple[int, bytes]] = []
    t = Talk(frames)
    _exchange(t)
    nxt = t.nxt[True]
    t.c(0.2, RST, seq=nxt + 5000)            # frame 7
    t.s(0.2001, ACK)                         # frame 8
    t.c(0.21, RST, seq=nxt + 3000)           # frame 9
    t.s(0.2101, ACK)                         # frame 10
    t.c(0.5, ACK | PSH, 100)
    t.s(0.51, ACK)
    results = analyse_results(tmp_path, frames)
    rec = results[0].record
    assert (rec["client_state"], rec["server_state"]) == ("ESTABLISHED", "ESTABLISHED")
    assert rec["close"] == "open_at_capture_end"
    a = only([a for r in results for a in r.anomalies], "challenge_ack")
    assert a.details["injected_frames"] == [7, 9]
    assert a.details["challenge_ack_frames"] == [8, 10] and a.details["count"] == 2
    assert "half_open" not in _codes(results)


def test_segments_passing_while_a_syn_is_held_keep_frame_order(tmp_path: Path) -> None:
    from captures_util import write_pcap

    from tcptrace_py.engine import Engine
    from tcptrace_py.options import Options

    frames: list[tuple[int, bytes]] = []
    t = Talk(frames)
    _exchange(t)
    t.c(0.2, SYN, seq=987654)                # frame 7: held
    t.c(0.2001, ACK | PSH, 50)               # frame 8: the real client goes on meanwhile
    t.s(0.2003, ACK)                         # frame 9: the server answers as the connection
    path = write_pcap(tmp_path / "t.pcap", frames)
    (res,) = Engine(Options(keep_packets=True)).run(str(path))
    assert res.packets is not None
    assert [row[0] for row in res.packets] == list(range(1, 10))
    assert [e.frame for e in res.events] == sorted(e.frame for e in res.events)
    assert res.record["client_data_bytes"] == 150
    assert only(res.anomalies, "challenge_ack").details["injected_frames"] == [7]


def test_same_in_both_engines(tmp_path: Path, monkeypatch: Any) -> None:
    """The held SYN and the challenges live in reference methods the compiled routing calls
    (``_reincarnate``, ``_full_path``): both engines give the same results."""
    import pytest
    from captures_util import write_pcap
    from test_engines import both

    from tcptrace_py import implementation

    if implementation.compiled is None:
        pytest.skip("compiled engine not built")
    builders = [_rst_then_data, _syn_then_data]
    for build in builders:
        frames: list[tuple[int, bytes]] = []
        build(Talk(frames))
        path = write_pcap(tmp_path / "t.pcap", frames)
        compiled, reference = both(str(path), monkeypatch)
        assert compiled == reference and "challenge_ack" in compiled
    for name in ("reconnect", "synack"):
        frames = []
        t = Talk(frames)
        _exchange(t)
        t.c(5.0, SYN, seq=987654)
        if name == "reconnect":
            t.s(5.0001, ACK)
            t.c(5.0002, RST, seq=t.nxt[True])
            t.c(6.0, SYN, seq=987654)
        t.s(6.0001, SYN | ACK, seq=444, ack=987655)
        t.c(6.0002, ACK, seq=987655, ack=445)
        t.c(6.1, ACK | PSH, 10, seq=987655, ack=445)
        path = write_pcap(tmp_path / "t.pcap", sorted(frames, key=lambda f: f[0]))
        compiled, reference = both(str(path), monkeypatch)
        assert compiled == reference


def test_connection_closing_while_a_syn_is_held(tmp_path: Path) -> None:
    """The old connection closes while the SYN waits: the receiver's FIN is no SYN-ACK, so
    the SYN joins the connection, which then leaves the table after its TIME_WAIT."""
    from captures_util import write_pcap

    from tcptrace_py.engine import Engine
    from tcptrace_py.options import Options

    frames: list[tuple[int, bytes]] = []
    t = Talk(frames)
    _exchange(t)
    t.c(0.2, SYN, seq=987654)                # frame 7: held
    t.c(0.21, FIN | ACK)                     # frame 8: the real client closes
    t.s(0.22, FIN | ACK)                     # frame 9: the server's answer
    t.c(0.23, ACK)
    other = Talk(frames, cport=40001)
    other.handshake(100.0)                   # packet time passes TIME_WAIT (60 s)
    path = write_pcap(tmp_path / "t.pcap", sorted(frames, key=lambda f: f[0]))
    results = list(Engine(Options()).run(str(path)))
    first = results[0].record
    assert first["flow_id"] == 0 and first["close"] == "graceful"
    assert first["end_reason"] == "time_wait_expired"   # emitted before the capture's end
    assert only(results[0].anomalies, "challenge_ack").details["injected_frames"] == [7]
    assert sorted(r.record["flow_id"] for r in results) == [0, 2]


def test_challenged_syn_leaves_its_reserved_flow_id_unused() -> None:
    """The capture the pipeline fuzzer found (tests/fuzz/fuzz_pipeline.py): a SYN-ACK and
    its ACK make a connection; a SYN with a new ISN is held (flow id 1 reserved, as
    Wireshark's tcp.stream opens a stream for it), its receiver answers with a segment that
    does not acknowledge it (a challenge, RFC 5961 4), so it joins flow 0; a later SYN with
    yet another ISN opens the next incarnation as flow 2. Flow id 1 stays unused: the ids
    are unique and increase, and the gap is the challenged SYN's."""
    from captures_util import ethernet, ip_packet, pcap_bytes, tcp_header

    from tcptrace_py.engine import Engine
    from tcptrace_py.options import Options

    client, server, t0 = "10.0.0.1", "10.0.0.2", 1_700_000_000 * 10**9
    frames = []
    for i, flags in enumerate((SYN | ACK, ACK, SYN, SYN | ACK, SYN)):
        src, dst, sp, dp = (client, server, 40000, 80) if i % 2 == 0 else \
            (server, client, 80, 40000)
        seg = tcp_header(sp, dp, 1000 + 10 * i, 5000, flags) + b"x" * (i * 7 % 30)
        frames.append((t0 + i * 10**6, ethernet(ip_packet(src, dst, 6, seg))))
    results = list(Engine(Options()).run(pcap_bytes(frames, nanosecond=True)))
    assert [r.record["flow_id"] for r in results] == [0, 2]
    first, second = (r.record for r in results)
    assert first["client_packets"] + first["server_packets"] == 4
    assert (second["client_packets"], second["server_packets"]) == (1, 0)
    assert second["incarnation"] == 1
    a = only(results[0].anomalies, "challenge_ack")
    assert a.details["kinds"] == ["syn"] and a.details["injected_frames"] == [3]
