"""Tests for tcptrace_py.fsm: the transition table as data, and the machine replayed on captures.

Two layers, as h2's ``test_state_machines.py`` does it:
- the table itself: every (state, input) pair, present or missing, is applied with Hypothesis;
  the machine never raises, missing pairs keep the state and are UNEXPECTED (fsm rule 3);
- behaviour: small captures written here (tests/captures_util.py) run through the Engine and
  each RFC 9293 scenario of issue 3 is checked on the records and events it yields.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from captures_util import pcap_bytes, tcp_frame, write_pcap
from hypothesis import given, settings
from hypothesis import strategies as st

from tcptrace_py import fsm
from tcptrace_py.engine import Engine, FlowResult
from tcptrace_py.fsm import Action, EndpointMachine, Input, TcpState
from tcptrace_py.options import Options
from tcptrace_py.segment import ACK, FIN, PSH, RST, SYN

NS = 1_000_000_000
T0_NS = 1_700_000_000 * NS

ALL_PAIRS = [(s, i) for s in TcpState for i in Input]


# =========================================================================== the table as data
def _machine_in(state: TcpState) -> EndpointMachine:
    m = EndpointMachine()
    m.state = state
    if state is TcpState.TIME_WAIT:
        m.time_wait_since_ns = 0
    return m


@given(pair=st.sampled_from(ALL_PAIRS), ts_ns=st.integers(0, 2**63 - 1))
def test_every_pair_applies_without_raising(pair: tuple[TcpState, Input], ts_ns: int) -> None:
    state, inp = pair
    m = _machine_in(state)
    action, new, reason = m.apply(inp, ts_ns)
    assert isinstance(action, Action) and isinstance(new, TcpState)
    assert m.state is new
    assert isinstance(reason, str) and reason.strip()
    row = fsm.TRANSITIONS.get(pair)
    if row is None:
        # Rule 3: a segment the table has no row for is unexpected and changes nothing.
        assert action is Action.UNEXPECTED and new is state
    else:
        assert (action, new, reason) == row
        if new is not state:
            assert m.entered_ns == ts_ns


# Sorted outside parametrize: inside its argument (typed Iterable[object]) mypy would
# infer sorted()'s element type, and so the lambdas' parameter, as object.
_PAIRS: list[tuple[TcpState, Input]] = sorted(fsm.TRANSITIONS,
                                              key=lambda p: (p[0].value, p[1].value))


def _pair_id(p: tuple[TcpState, Input]) -> str:
    return f"{p[0].value}|{p[1].value}"


@pytest.mark.parametrize("pair", _PAIRS, ids=_pair_id)
def test_every_row_is_well_formed(pair: tuple[TcpState, Input]) -> None:
    action, new, reason = fsm.TRANSITIONS[pair]
    assert isinstance(pair[0], TcpState) and isinstance(pair[1], Input)
    assert isinstance(action, Action)
    assert isinstance(new, TcpState)
    assert len(reason) >= 8, "every row says why"
    # Rows that keep the state are never plain OK transitions into another state, and an
    # UNEXPECTED or IGNORED row never moves the state (it is recorded, not obeyed).
    if action in (Action.UNEXPECTED, Action.IGNORED):
        assert new is pair[0]


def test_missing_pairs_are_unexpected() -> None:
    missing = [p for p in ALL_PAIRS if p not in fsm.TRANSITIONS]
    assert missing, "the table is expected to leave some pairs to rule 3"
    for state, inp in missing:
        action, new, reason = fsm.lookup(state, inp)
        assert action is Action.UNEXPECTED and new is state
        assert inp.value in reason and state.value in reason


@settings(max_examples=300)
@given(inputs=st.lists(st.tuples(st.sampled_from(list(Input)), st.integers(0, 10**12)),
                       max_size=40))
def test_random_input_sequences_keep_invariants(inputs: list[tuple[Input, int]]) -> None:
    m = EndpointMachine()
    for inp, ts_ns in inputs:
        old = m.state
        action, new, _ = m.apply(inp, ts_ns)
        assert m.state is new
        if action in (Action.UNEXPECTED, Action.IGNORED):
            assert new is old
        # TIME_WAIT and its 2MSL start time go together (fsm rule 5).
        assert (m.state is TcpState.TIME_WAIT) == (m.time_wait_since_ns >= 0)


def test_every_state_but_listen_is_reachable_from_inactive() -> None:
    """LISTEN has no incoming row on purpose: a capture never proves a socket listens
    (a SYN-ACK proves SYN_RECEIVED directly), see docs/state-machine.md."""
    seen = {TcpState.INACTIVE}
    frontier = [TcpState.INACTIVE]
    while frontier:
        s = frontier.pop()
        for (src, _inp), (_a, dst, _r) in fsm.TRANSITIONS.items():
            if src is s and dst not in seen:
                seen.add(dst)
                frontier.append(dst)
    assert seen == set(TcpState) - {TcpState.LISTEN}


def test_markdown_rendering_lists_every_row() -> None:
    md = fsm.transitions_markdown()
    rows = [line for line in md.splitlines() if line.startswith("| `")]
    assert len(rows) == len(fsm.TRANSITIONS)
    assert "| `TIME_WAIT` | 2MSL timeout | ok | `CLOSED` |" in md


# =========================================================================== captures
CLIENT, SERVER = "10.0.0.1", "10.0.0.2"
CPORT, SPORT = 40000, 80
CI, SI = 1000, 5000  # client / server ISNs
OUT_OF_WINDOW = 1 << 30  # far outside any window the observer assumes (RFC 5961 3.2)


class Talk:
    """A scripted conversation on one 4-tuple: ``c``/``s`` add a segment from the client or
    the server, with sequence numbers relative to that side's ISN (ack relative to the peer's).
    Time advances ``dt_s`` (default 10 ms) per segment."""

    def __init__(self, t0_ns: int = T0_NS, sport: int = SPORT, cport: int = CPORT,
                 ci: int = CI, si: int = SI) -> None:
        self.frames: list[tuple[int, bytes]] = []
        self.t_ns = t0_ns
        self.cport, self.sport, self.ci, self.si = cport, sport, ci, si

    def _add(self, frame: bytes, dt_s: float) -> Talk:
        self.t_ns += int(dt_s * NS)
        self.frames.append((self.t_ns, frame))
        return self

    def c(self, flags: int, seq: int, ack: int = 0, n: int = 0, dt_s: float = 0.01,
          raw_seq: int | None = None) -> Talk:
        s = raw_seq if raw_seq is not None else (self.ci + seq) & 0xFFFFFFFF
        a = (self.si + ack) & 0xFFFFFFFF if flags & ACK else 0
        return self._add(tcp_frame(CLIENT, SERVER, self.cport, self.sport, s, a, flags,
                                   payload=b"x" * n), dt_s)

    def s(self, flags: int, seq: int, ack: int = 0, n: int = 0, dt_s: float = 0.01,
          raw_seq: int | None = None) -> Talk:
        s = raw_seq if raw_seq is not None else (self.si + seq) & 0xFFFFFFFF
        a = (self.ci + ack) & 0xFFFFFFFF if flags & ACK else 0
        return self._add(tcp_frame(SERVER, CLIENT, self.sport, self.cport, s, a, flags,
                                   payload=b"y" * n), dt_s)

    def other(self, dt_s: float) -> Talk:
        """A lone segment on an unrelated 4-tuple: only moves packet time forward."""
        return self._add(tcp_frame("10.9.9.9", "10.9.9.8", 5555, 6666, 1, 1, ACK), dt_s)

    # -- building blocks ------------------------------------------------------------------
    def handshake(self) -> Talk:
        return self.c(SYN, 0).s(SYN | ACK, 0, 1).c(ACK, 1, 1)

    def data(self) -> Talk:
        """Client sends 10 bytes, server answers 20, client ACKs."""
        return self.c(ACK | PSH, 1, 1, 10).s(ACK | PSH, 1, 11, 20).c(ACK, 11, 21)

    def close_client_first(self) -> Talk:
        return self.c(FIN | ACK, 11, 21).s(ACK, 21, 12).s(FIN | ACK, 21, 12).c(ACK, 12, 22)

    def close_server_first(self) -> Talk:
        return self.s(FIN | ACK, 21, 11).c(ACK, 11, 22).c(FIN | ACK, 11, 22).s(ACK, 22, 12)


def run(talk: Talk | Sequence[tuple[int, bytes]], **opts: Any) -> tuple[list[FlowResult], Engine]:
    frames = talk.frames if isinstance(talk, Talk) else list(talk)
    eng = Engine(Options(**opts))
    return list(eng.run(pcap_bytes(frames))), eng


def one(talk: Talk, **opts: Any) -> FlowResult:
    res, _ = run(talk, **opts)
    mine = [r for r in res if r.record["server_port"] == SPORT or r.record["client_port"] == SPORT]
    assert len(mine) == 1, [r.record["flow_id"] for r in res]
    return mine[0]


def states(r: FlowResult) -> tuple[str, str]:
    return r.record["client_state"], r.record["server_state"]


def path_of(r: FlowResult, endpoint: str) -> list[str]:
    """The endpoint's states in order, from its transition events."""
    out = ["INACTIVE"]
    for e in r.events:
        if e.endpoint == endpoint and e.new_state != e.old_state:
            assert e.old_state == out[-1], f"event chain broken at frame {e.frame}"
            out.append(e.new_state)
    return out


def kinds(r: FlowResult, endpoint: str) -> list[str]:
    return [e.kind for e in r.events if e.endpoint == endpoint]


def test_three_way_handshake_and_graceful_close_client_first() -> None:
    r = one(Talk().handshake().data().close_client_first())
    rec = r.record
    assert (rec["open"], rec["close"]) == ("three_way_handshake", "graceful")
    assert states(r) == ("TIME_WAIT", "CLOSED")
    assert path_of(r, "client") == ["INACTIVE", "SYN_SENT", "ESTABLISHED", "FIN_WAIT_1",
                                    "FIN_WAIT_2", "TIME_WAIT"]
    assert path_of(r, "server") == ["INACTIVE", "SYN_RECEIVED", "ESTABLISHED", "CLOSE_WAIT",
                                    "LAST_ACK", "CLOSED"]
    assert (rec["syn_frame"], rec["synack_frame"], rec["handshake_ack_frame"]) == (1, 2, 3)
    assert (rec["client_packets"], rec["server_packets"]) == (6, 4)
    assert (rec["client_payload_bytes"], rec["server_payload_bytes"]) == (10, 20)
    # Every transition event names the causing frame, time, direction and flags.
    ev = next(e for e in r.events if e.endpoint == "server" and e.new_state == "SYN_RECEIVED")
    assert (ev.frame, ev.direction, ev.flags, ev.kind) == (2, "sent", "SA", "transition")
    assert ev.ts_ns == T0_NS + 2 * NS // 100


def test_graceful_close_server_first() -> None:
    r = one(Talk().handshake().data().close_server_first())
    assert r.record["close"] == "graceful"
    assert states(r) == ("CLOSED", "TIME_WAIT")
    assert path_of(r, "server")[-3:] == ["FIN_WAIT_1", "FIN_WAIT_2", "TIME_WAIT"]
    assert path_of(r, "client")[-3:] == ["CLOSE_WAIT", "LAST_ACK", "CLOSED"]


def test_fin_that_acks_fin_goes_straight_to_time_wait() -> None:
    # Server answers the client's FIN with FIN+ACK at once (RFC 9293 3.10.7.4, FIN bit).
    t = Talk().handshake().data()
    t.c(FIN | ACK, 11, 21).s(FIN | ACK, 21, 12).c(ACK, 12, 22)
    r = one(t)
    assert states(r) == ("TIME_WAIT", "CLOSED")
    assert "FIN_WAIT_2" not in path_of(r, "client")


def test_simultaneous_open() -> None:
    t = Talk().c(SYN, 0).s(SYN, 0).s(SYN | ACK, 0, 1).c(SYN | ACK, 0, 1)
    t.c(ACK, 1, 1).s(ACK, 1, 1)
    r = one(t)
    assert r.record["open"] == "simultaneous_open"
    assert states(r) == ("ESTABLISHED", "ESTABLISHED")
    assert r.record["close"] == "open_at_capture_end"
    for side in ("client", "server"):
        assert path_of(r, side)[:3] == ["INACTIVE", "SYN_SENT", "SYN_RECEIVED"]


def test_syn_and_synack_retransmissions_stay_one_connection() -> None:
    t = Talk().c(SYN, 0).c(SYN, 0, dt_s=1.0).s(SYN | ACK, 0, 1).s(SYN | ACK, 0, 1, dt_s=1.0)
    t.c(ACK, 1, 1).data()
    res, _ = run(t)
    assert len(res) == 1
    r = res[0]
    assert (r.record["client_syn_count"], r.record["server_synack_count"]) == (2, 2)
    assert r.record["open"] == "three_way_handshake"
    assert states(r) == ("ESTABLISHED", "ESTABLISHED")
    assert kinds(r, "client").count("retransmission") == 1
    assert kinds(r, "server").count("retransmission") == 1


def test_synack_retransmitted_after_handshake_ack_proves_ack_lost() -> None:
    # The handshake ACK was captured, yet the server repeats its SYN-ACK: the ACK never
    # reached it (lost after the capture point), so the server is back in SYN_RECEIVED.
    t = Talk().handshake().s(SYN | ACK, 0, 1, dt_s=1.0)
    r = one(t)
    assert r.record["server_state"] == "SYN_RECEIVED"
    assert "inferred" in kinds(r, "server")


def test_simultaneous_close_goes_through_closing() -> None:
    t = Talk().handshake().data()
    t.c(FIN | ACK, 11, 21).s(FIN | ACK, 21, 11).c(ACK, 12, 22).s(ACK, 22, 12)
    r = one(t)
    assert r.record["close"] == "graceful"
    assert states(r) == ("TIME_WAIT", "TIME_WAIT")
    assert path_of(r, "client")[-3:] == ["FIN_WAIT_1", "CLOSING", "TIME_WAIT"]
    # The server's FIN does not ACK the client's: it was sent from FIN_WAIT_1, never from
    # CLOSE_WAIT/LAST_ACK (the FINs crossed, RFC 9293 figure 13).
    server = path_of(r, "server")
    assert "FIN_WAIT_1" in server and "LAST_ACK" not in server and server[-1] == "TIME_WAIT"


def test_half_close_at_capture_end() -> None:
    t = Talk().handshake().data()
    t.c(FIN | ACK, 11, 21).s(ACK, 21, 12)
    t.s(ACK | PSH, 21, 12, 100).c(ACK, 12, 121).s(ACK | PSH, 121, 12, 100).c(ACK, 12, 221)
    r = one(t)
    assert r.record["close"] == "half_closed_at_capture_end"
    assert states(r) == ("FIN_WAIT_2", "CLOSE_WAIT")
    assert r.record["server_payload_bytes"] == 220
    assert "unexpected" not in kinds(r, "client") + kinds(r, "server")


def test_fin_retransmission_in_last_ack() -> None:
    t = Talk().handshake().data()
    t.c(FIN | ACK, 11, 21).s(ACK, 21, 12).s(FIN | ACK, 21, 12).s(FIN | ACK, 21, 12, dt_s=0.3)
    r = one(t)
    assert r.record["server_state"] == "LAST_ACK"
    ev = [e for e in r.events if e.endpoint == "server" and e.kind == "retransmission"]
    assert len(ev) == 1 and ev[0].old_state == ev[0].new_state == "LAST_ACK"
    # The client (in TIME_WAIT) sees the FIN again: re-ACK and restart 2MSL, not a new state.
    assert r.record["client_state"] == "TIME_WAIT"


def test_fin_retransmitted_after_captured_final_ack_infers_last_ack() -> None:
    # Lost final ACK: captured at the client, but the server repeats its FIN (fsm rule 4).
    t = Talk().handshake().data().close_client_first()
    t.s(FIN | ACK, 21, 12, dt_s=0.3)
    r = one(t)
    assert r.record["server_state"] == "LAST_ACK"
    inferred = [e for e in r.events if e.endpoint == "server" and e.kind == "inferred"]
    assert [(e.old_state, e.new_state, e.frame) for e in inferred] == [
        ("CLOSED", "LAST_ACK", 11)]
    # The client re-ACKs from TIME_WAIT, which closes the server for good.
    r = one(t.c(ACK, 12, 22))
    assert states(r) == ("TIME_WAIT", "CLOSED")


# --- RST in every state, with the RFC 5961 window check ------------------------------------
# name -> (prefix builder, who sends the RST, relative seq of the RST, the receiver's state
#          before it). The receiver is the endpoint whose state the RST tests.
def _rst_cases() -> dict[str, tuple[Talk, str, int, int, str]]:
    cases: dict[str, tuple[Talk, str, int, int, str]] = {}
    cases["SYN_SENT"] = (Talk().c(SYN, 0), "s", 0, 1, "SYN_SENT")
    cases["SYN_RECEIVED"] = (Talk().c(SYN, 0).s(SYN | ACK, 0, 1), "c", 1, 1, "SYN_RECEIVED")
    cases["ESTABLISHED"] = (Talk().handshake().data(), "c", 11, 21, "ESTABLISHED")
    cases["FIN_WAIT_1"] = (Talk().handshake().data().c(FIN | ACK, 11, 21), "s", 21, 11,
                           "FIN_WAIT_1")
    cases["FIN_WAIT_2"] = (Talk().handshake().data().c(FIN | ACK, 11, 21).s(ACK, 21, 12), "s",
                           21, 12, "FIN_WAIT_2")
    cases["CLOSE_WAIT"] = (Talk().handshake().data().c(FIN | ACK, 11, 21).s(ACK, 21, 12), "c",
                           12, 21, "CLOSE_WAIT")
    cases["CLOSING"] = (Talk().handshake().data().c(FIN | ACK, 11, 21).s(FIN | ACK, 21, 11),
                        "s", 22, 11, "CLOSING")
    cases["LAST_ACK"] = (Talk().handshake().data().c(FIN | ACK, 11, 21).s(ACK, 21, 12)
                         .s(FIN | ACK, 21, 12), "c", 12, 22, "LAST_ACK")
    cases["TIME_WAIT"] = (Talk().handshake().data().close_client_first(), "s", 22, 12,
                          "TIME_WAIT")
    return cases


def _receiver_state(r: FlowResult, rst_sender: str) -> str:
    state: str = r.record["server_state" if rst_sender == "c" else "client_state"]
    return state


@pytest.mark.parametrize("state", list(_rst_cases()))
def test_in_window_rst_closes_every_state(state: str) -> None:
    talk, who, seq, ack, before = _rst_cases()[state]
    flags = RST | ACK
    (talk.c if who == "c" else talk.s)(flags, seq, ack)
    r = one(talk)
    assert _receiver_state(r, who) == "CLOSED"
    rst_frame = len(talk.frames)
    ev = [e for e in r.events if e.frame == rst_frame and e.direction == "received"]
    assert [(e.old_state, e.new_state, e.kind) for e in ev] == [(before, "CLOSED", "transition")]
    if state == "SYN_SENT":
        assert r.record["close"] == "refused"
    elif state in ("CLOSING", "LAST_ACK", "TIME_WAIT"):
        # Both FINs came before the RST: the close was graceful, the RST a footnote
        # (report.classify_close).
        assert r.record["close"] == "graceful"
    else:
        assert r.record["close"] == ("rst_by_client" if who == "c" else "rst_by_server")
        assert r.record["rst_frame"] == rst_frame


@pytest.mark.parametrize("state", list(_rst_cases()))
def test_out_of_window_rst_is_recorded_not_obeyed(state: str) -> None:
    talk, who, seq, ack, before = _rst_cases()[state]
    if state == "SYN_SENT":
        # In SYN-SENT acceptability is "acknowledges our SYN" (RFC 9293 3.10.7.3).
        talk.s(RST | ACK, 0, 1 + OUT_OF_WINDOW)
    else:
        (talk.c if who == "c" else talk.s)(RST | ACK, seq + OUT_OF_WINDOW, ack)
    r = one(talk)
    assert _receiver_state(r, who) == before
    rst_frame = len(talk.frames)
    ev = [e for e in r.events if e.frame == rst_frame and e.direction == "received"]
    assert [(e.old_state, e.new_state, e.kind) for e in ev] == [(before, before, "ignored")]
    assert r.record["rst_frame"] is None
    assert not r.record["close"].startswith("rst_by")


def test_segments_after_rst_are_recorded_and_change_nothing() -> None:
    t = Talk().handshake().data().c(RST | ACK, 11, 21)
    t.c(ACK | PSH, 11, 21, 10).s(ACK | PSH, 21, 11, 10).s(FIN | ACK, 31, 11)
    r = one(t)
    assert states(r) == ("CLOSED", "CLOSED")
    assert r.record["close"] == "rst_by_client"
    late = [e for e in r.events if e.frame > 7]
    assert late and all(e.new_state == e.old_state == "CLOSED" for e in late)
    assert {e.kind for e in late} <= {"unexpected", "ignored"}
    assert any(e.kind == "unexpected" and e.direction == "sent" for e in late)


# --- TIME_WAIT by packet time ----------------------------------------------------------------
def test_time_wait_reported_at_capture_end_when_2msl_not_passed() -> None:
    t = Talk().handshake().data().close_client_first().other(dt_s=30.0)
    r = one(t)
    assert r.record["client_state"] == "TIME_WAIT"
    assert r.record["end_reason"] == "capture_end"


def test_time_wait_expires_by_packet_time_default_60s() -> None:
    t = Talk().handshake().data().close_client_first().other(dt_s=61.0).other(dt_s=1.0)
    r = one(t)
    assert r.record["client_state"] == "CLOSED"
    assert r.record["end_reason"] == "time_wait_expired"
    ev = [e for e in r.events if e.kind == "timeout"]
    assert [(e.endpoint, e.old_state, e.new_state) for e in ev] == [
        ("client", "TIME_WAIT", "CLOSED")]
    # The expiry is stamped at TIME_WAIT entry + 2MSL, not at the packet that revealed it.
    entered = next(e.ts_ns for e in r.events if e.new_state == "TIME_WAIT")
    assert ev[0].ts_ns == entered + 60 * NS


@pytest.mark.parametrize("time_wait_s, gap_s, expect", [
    (10.0, 11.0, "CLOSED"), (10.0, 9.0, "TIME_WAIT"), (120.0, 90.0, "TIME_WAIT"),
    (120.0, 121.0, "CLOSED")])
def test_time_wait_s_is_configurable(time_wait_s: float, gap_s: float, expect: str) -> None:
    t = Talk().handshake().data().close_client_first().other(dt_s=gap_s)
    r = one(t, time_wait_s=time_wait_s)
    assert r.record["client_state"] == expect


def test_syn_hitting_time_wait_starts_new_incarnation() -> None:
    t = Talk().handshake().data().close_client_first()
    t.c(SYN, 0, raw_seq=CI + 100_000, dt_s=1.0)
    t.s(SYN | ACK, 0, 0, raw_seq=SI + 100_000)
    res, _ = run(t)
    res = sorted(res, key=lambda r: r.record["flow_id"])
    assert [r.record["flow_id"] for r in res] == [0, 1]
    old, new = res
    assert old.record["end_reason"] == "new_incarnation"
    assert old.record["last_frame"] == 10 and new.record["first_frame"] == 11
    assert (old.record["incarnation"], new.record["incarnation"]) == (0, 1)
    ends = [e for e in old.events if "new incarnation" in e.reason]
    assert {(e.endpoint, e.old_state, e.new_state) for e in ends} == {
        ("client", "TIME_WAIT", "CLOSED")}
    assert states(new) == ("ESTABLISHED", "SYN_RECEIVED")


def test_self_connect_is_one_connection() -> None:
    # Linux self-connect (connect() to its own ephemeral port): SYN, SYN-ACK, ACK, all
    # from and to the same address and port.
    port = 45678
    frames = [(T0_NS + i * NS // 100, tcp_frame(CLIENT, CLIENT, port, port, s, a, f))
              for i, (s, a, f) in enumerate([(CI, 0, SYN), (CI, CI + 1, SYN | ACK),
                                             (CI + 1, CI + 1, ACK)])]
    res, _ = run(frames)
    assert len(res) == 1
    rec = res[0].record
    assert rec["open"] == "simultaneous_open"
    assert (rec["client_ip"], rec["client_port"]) == (rec["server_ip"], rec["server_port"])
    assert states(res[0]) == ("ESTABLISHED", "ESTABLISHED")


def test_midstream_pickup_infers_established(tmp_path: Path) -> None:
    t = Talk().data()
    path = write_pcap(tmp_path / "mid.pcap", t.frames)
    res = list(Engine().run(str(path)))
    rec = res[0].record
    assert rec["open"] == "midstream" and rec["roles_inferred"]
    assert states(res[0]) == ("ESTABLISHED", "ESTABLISHED")
    assert {e.kind for e in res[0].events} == {"inferred"}


# --- property: any flag soup on one 4-tuple replays without raising --------------------------
_FLAGS = st.sampled_from([SYN, SYN | ACK, ACK, ACK | PSH, FIN | ACK, RST, RST | ACK, FIN,
                          SYN | FIN, 0, FIN | PSH | ACK])


@settings(max_examples=60, deadline=None)
@given(steps=st.lists(st.tuples(st.booleans(), _FLAGS, st.integers(0, 40), st.integers(0, 40),
                                st.integers(0, 3)), min_size=1, max_size=25))
def test_any_segment_sequence_replays_with_consistent_events(
        steps: list[tuple[bool, int, int, int, int]]) -> None:
    t = Talk()
    for from_client, flags, seq, ack, n in steps:
        (t.c if from_client else t.s)(flags, seq, ack, n)
    res, eng = run(t)
    assert res and sum(r.record["client_packets"] + r.record["server_packets"]
                       for r in res) == len(steps)
    for r in res:
        for side in ("client", "server"):
            if r.record["client_port"] == r.record["server_port"] and \
                    r.record["client_ip"] == r.record["server_ip"]:
                continue
            chain = path_of(r, side)  # asserts old_state follows the previous new_state
            assert chain[-1] == r.record[f"{side}_state"]


def test_docs_state_machine_table_is_current() -> None:
    """docs/state-machine.md embeds the generated table; regenerate it when the table changes
    (``python -m tcptrace_py.fsm --markdown``)."""
    doc = Path(__file__).resolve().parents[1] / "docs" / "state-machine.md"
    assert fsm.transitions_markdown() in doc.read_text()


_SLOTS = EndpointMachine.__slots__


def _machine_fields(m: EndpointMachine) -> tuple[Any, ...]:
    return tuple(getattr(m, name) for name in _SLOTS)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(list(TcpState)),
       st.lists(st.tuples(st.sampled_from(list(Input)), st.integers(0, 10**12)), max_size=40))
def test_compiled_apply_moves_a_machine_as_the_reference(
        start: TcpState, inputs: list[tuple[Input, int]]) -> None:
    """The compiled engine's ``_apply`` (the state replay's step) gives the rows, states and
    timers of ``EndpointMachine.apply`` from any state on any input sequence, missing pairs
    included."""
    from tcptrace_py import implementation

    if implementation.compiled is None:
        pytest.skip("compiled engine not built or not selected")
    twin, ref = EndpointMachine(), EndpointMachine()
    twin.state = ref.state = start
    for inp, ts_ns in inputs:
        assert implementation.compiled.machine_apply(twin, inp, ts_ns) == ref.apply(inp, ts_ns)
        assert _machine_fields(twin) == _machine_fields(ref)


def test_compiled_apply_gives_every_cell_of_the_table() -> None:
    """Every (state, input) pair, in the table or not, gives the reference's row through
    the compiled engine's C-indexed table."""
    from tcptrace_py import implementation

    if implementation.compiled is None:
        pytest.skip("compiled engine not built or not selected")
    for state in TcpState:
        for inp in Input:
            twin, ref = EndpointMachine(), EndpointMachine()
            twin.state = ref.state = state
            assert implementation.compiled.machine_apply(twin, inp, 5) == ref.apply(inp, 5)
            assert _machine_fields(twin) == _machine_fields(ref)
