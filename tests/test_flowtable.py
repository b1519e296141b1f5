"""Flow table: roles, incarnations, expiry by packet time, the connection cap."""

from __future__ import annotations

from typing import Any

import pytest
from captures_util import pcap_bytes, tcp_frame
from hypothesis import given, settings
from hypothesis import strategies as st

from tcptrace_py import implementation
from tcptrace_py.engine import Engine
from tcptrace_py.options import Options
from tcptrace_py.segment import ACK, FIN, RST, SYN

C, S = "10.0.0.1", "10.0.0.2"
NS = 1_000_000_000


def _run(frames: list[tuple[int, bytes]], **opts: object) -> list[dict[str, object]]:
    engine = Engine(Options(**opts))  # type: ignore[arg-type]
    records = [r.record for r in engine.run(pcap_bytes(frames, nanosecond=True))]
    return sorted(records, key=lambda r: int(r["flow_id"]))


def _conn(t0: int, cport: int, isn: int = 1000, sisn: int = 5000) -> list[tuple[int, bytes]]:
    """A complete connection: handshake, one request, client closes first."""
    return [
        (t0, tcp_frame(C, S, cport, 80, isn, 0, SYN)),
        (t0 + 1000, tcp_frame(S, C, 80, cport, sisn, isn + 1, SYN | ACK)),
        (t0 + 2000, tcp_frame(C, S, cport, 80, isn + 1, sisn + 1, ACK, payload=b"x" * 10)),
        (t0 + 3000, tcp_frame(S, C, 80, cport, sisn + 1, isn + 11, ACK)),
        (t0 + 4000, tcp_frame(C, S, cport, 80, isn + 11, sisn + 1, FIN | ACK)),
        (t0 + 5000, tcp_frame(S, C, 80, cport, sisn + 1, isn + 12, FIN | ACK)),
        (t0 + 6000, tcp_frame(C, S, cport, 80, isn + 12, sisn + 2, ACK)),
    ]


def test_roles_from_synack_when_syn_missing() -> None:
    frames = _conn(NS, 40000)[1:]
    (rec,) = _run(frames)
    assert (rec["client_port"], rec["server_port"]) == (40000, 80)
    assert rec["roles_inferred"] is False
    assert rec["open"] == "three_way_handshake"


def test_roles_guessed_from_well_known_port_midstream() -> None:
    frames = [(NS, tcp_frame(S, C, 80, 40000, 7, 9, ACK, payload=b"abc")),
              (NS + 10, tcp_frame(C, S, 40000, 80, 9, 10, ACK))]
    (rec,) = _run(frames)
    assert rec["server_port"] == 80 and rec["roles_inferred"] is True
    assert rec["open"] == "midstream"
    assert rec["client_state"] == "ESTABLISHED" and rec["server_state"] == "ESTABLISHED"


def test_syn_retransmission_stays_one_flow_new_isn_starts_another() -> None:
    frames = [(NS, tcp_frame(C, S, 40000, 80, 1000, 0, SYN)),
              (2 * NS, tcp_frame(C, S, 40000, 80, 1000, 0, SYN)),  # retransmission
              (3 * NS, tcp_frame(C, S, 40000, 80, 777, 0, SYN))]  # new connect()
    recs = _run(frames)
    assert [r["client_syn_count"] for r in recs] == [2, 1]
    assert recs[1]["incarnation"] == 1


def test_port_reuse_in_time_wait_is_a_new_incarnation() -> None:
    first = _conn(NS, 40000, isn=1000)
    second = _conn(2 * NS, 40000, isn=900_000)
    recs = _run(first + second)
    assert len(recs) == 2
    assert recs[0]["client_state"] == "CLOSED"  # TIME_WAIT ended by the new SYN
    assert recs[0]["end_reason"] == "new_incarnation"
    assert recs[1]["client_state"] == "TIME_WAIT"
    assert recs[1]["incarnation"] == 1


def test_time_wait_expires_by_packet_time() -> None:
    frames = _conn(NS, 40000) + [(200 * NS, tcp_frame(C, S, 40001, 81, 1, 0, SYN))]
    recs = _run(frames, time_wait_s=60.0)
    assert recs[0]["client_state"] == "CLOSED"
    assert recs[0]["end_reason"] == "time_wait_expired"
    recs = _run(frames, time_wait_s=500.0)
    assert recs[0]["client_state"] == "TIME_WAIT"  # reported at capture end: 2MSL not over


def test_one_wild_timestamp_does_not_expire_live_connections() -> None:
    # Real pcapng files carry single corrupt timestamps (pcapplusplus/pcapng-example.pcapng
    # frame 2 lies 46 years ahead); the handshake must stay one connection.
    frames = _conn(NS, 40000)
    frames[1] = (NS + 46 * 365 * 86400 * NS, frames[1][1])
    recs = _run(frames)
    assert len(recs) == 1
    assert recs[0]["open"] == "three_way_handshake"


def test_idle_connections_leave_the_table() -> None:
    frames = []
    for i in range(50):
        t = (i * 20 + 1) * NS
        frames += [(t, tcp_frame(C, S, 30000 + i, 80, 1, 0, SYN)),
                   (t + 1000, tcp_frame(S, C, 80, 30000 + i, 9, 2, SYN | ACK)),
                   (t + 2000, tcp_frame(C, S, 30000 + i, 80, 2, 10, ACK))]
    engine = Engine(Options(idle_timeout_s=30.0))
    recs = list(engine.run(pcap_bytes(frames, nanosecond=True)))
    assert len(recs) == 50
    assert engine.table.peak_live <= 3
    assert sum(r.record["end_reason"] == "idle_timeout" for r in recs) >= 48


def test_connection_cap_evicts_half_open_first() -> None:
    frames = [(NS, tcp_frame(C, S, 50000, 80, 1, 0, SYN)),
              (NS + 1, tcp_frame(S, C, 80, 50000, 9, 2, SYN | ACK)),
              (NS + 2, tcp_frame(C, S, 50000, 80, 2, 10, ACK))]
    frames += [(NS + 10 + i, tcp_frame("10.9.0.1", S, 1000 + i, 80, i, 0, SYN))
               for i in range(20)]
    engine = Engine(Options(max_connections=5))
    recs = [r.record for r in engine.run(pcap_bytes(frames, nanosecond=True))]
    assert len(recs) == 21
    established = [r for r in recs if r["client_port"] == 50000]
    assert established[0]["end_reason"] == "capture_end"  # the established one survived
    assert engine.table.evicted_table_full == 16
    assert any(w.code == "table_full" for w in engine.diag.warnings)


def test_rst_refusal_and_trailing_segments_stay_in_one_flow() -> None:
    frames = [(NS, tcp_frame(C, S, 40000, 9, 1, 0, SYN)),
              (NS + 1000, tcp_frame(S, C, 9, 40000, 0, 2, RST | ACK))]
    (rec,) = _run(frames)
    assert rec["open"] == "not_established" and rec["close"] == "refused"
    assert rec["client_state"] == "CLOSED" and rec["server_state"] == "CLOSED"


def test_directional_index_follows_the_table() -> None:
    """Every live connection is found under both directional 4-tuples, and nothing else is,
    through evictions (cap 3), idle expiry, closes, a new incarnation and a self-connect."""
    frames: list[tuple[int, bytes]] = []
    for i in range(8):
        frames += _conn(NS + i * 10 * NS, 40000 + i)
    frames += _conn(200 * NS, 40000, isn=77_000)  # the first 4-tuple again, new ISN
    frames.append((201 * NS, tcp_frame(C, C, 5000, 5000, 1, 0, SYN)))  # self-connect
    frames.append((202 * NS, tcp_frame(C, S, 41000, 80, 1, 0, SYN)))  # stays half-open
    frames.sort(key=lambda f: f[0])
    engine = Engine(Options(max_connections=3, idle_timeout_s=5.0))
    table = engine.table
    seen = 0
    for _ in engine.run(pcap_bytes(frames, nanosecond=True)):
        seen += 1
        expect = {}
        for key, conn in table.live.items():
            expect[key] = conn
            expect[(key[2], key[3], key[0], key[1])] = conn
        assert table._by_dir == expect
    assert seen == 11 and not table._by_dir


def test_unanswered_attempts_leave_after_the_attempt_timeout() -> None:
    # A scan: single SYNs to many ports, never answered. They leave the table after
    # attempt_timeout_s of silence, long before the hour-long idle timeout, and are reported
    # as the unanswered attempts they are.
    frames = [((i * 10 + 1) * NS, tcp_frame(C, S, 40000, 1000 + i, 1, 0, SYN)) for i in range(40)]
    engine = Engine(Options(attempt_timeout_s=60.0))
    recs = [r.record for r in engine.run(pcap_bytes(frames, nanosecond=True))]
    assert len(recs) == 40
    assert engine.table.peak_live <= 8
    early = [r for r in recs if r["end_reason"] == "attempt_timeout"]
    assert len(early) >= 33
    assert all(r["close"] == "unanswered" and r["client_state"] == "SYN_SENT" for r in early)


# -- the compiled engine's _by_dir: a hash table of C keys standing for the dict
_ADDRS = (b"\x0a\x00\x00\x01", b"\x0a\x00\x00\x02", b"\xc0\xa8\x00\x01",
          b"\x20\x01\x0d\xb8" + b"\x00" * 11 + b"\x01", b"\x20\x01\x0d\xb8" + b"\x00" * 12)
_flow_keys = st.one_of(
    st.tuples(st.sampled_from(_ADDRS), st.integers(0, 65535), st.sampled_from(_ADDRS),
              st.integers(0, 65535)),
    # shapes the decoder never makes: they must still behave as dict keys
    st.tuples(st.sampled_from(_ADDRS), st.integers(-3, 70000), st.sampled_from(_ADDRS),
              st.integers(-3, 70000)),
    st.tuples(st.just("x"), st.integers(0, 3)),
)
_operations = st.lists(st.tuples(st.sampled_from(("set", "get", "getitem", "del", "pop",
                                                   "pop_default", "in", "clear")),
                                 st.one_of(st.sampled_from([("x", 1)]), _flow_keys),
                                 st.integers(0, 5)), max_size=300)


@pytest.mark.skipif(implementation.compiled is None, reason="the reference engine runs")
@settings(max_examples=300, deadline=None)
@given(_operations)
def test_flow_index_behaves_as_the_dict_it_stands_for(ops: list[tuple[str, Any, int]]) -> None:
    """Every operation the reference's code applies to ``_by_dir`` gives the dict's
    result on the compiled ``FlowIndex``, through growth, deletion and shrinking."""
    assert implementation.compiled is not None
    index = implementation.compiled.FlowIndex()
    model: dict[Any, int] = {}
    for op, key, value in ops:
        if op == "set":
            index[key] = value
            model[key] = value
        elif op == "get":
            assert index.get(key) == model.get(key)
            assert index.get(key, -1) == model.get(key, -1)
        elif op == "getitem":
            if key in model:
                assert index[key] == model[key]
            else:
                with pytest.raises(KeyError):
                    index[key]
        elif op in ("del", "pop"):
            if key in model:
                if op == "del":
                    del index[key]
                    del model[key]
                else:
                    assert index.pop(key) == model.pop(key)
            else:
                with pytest.raises(KeyError):
                    if op == "del":
                        del index[key]
                    else:
                        index.pop(key)
        elif op == "pop_default":
            assert index.pop(key, None) == model.pop(key, None)
        elif op == "in":
            assert (key in index) == (key in model)
        else:
            index.clear()
            model.clear()
        assert len(index) == len(model)
    assert index == model and dict(index.items()) == model
    assert sorted(map(repr, index)) == sorted(map(repr, model))


@pytest.mark.skipif(implementation.compiled is None, reason="the reference engine runs")
def test_flow_index_holds_many_entries_and_their_references() -> None:
    """Thousands of entries (several rebuilds) stay reachable, and removing them releases
    the values (no reference kept)."""
    import sys

    assert implementation.compiled is not None
    index = implementation.compiled.FlowIndex()
    value = object()
    before = sys.getrefcount(value)
    keys = [(b"\x0a\x00" + bytes([i >> 8, i & 255]), 1024 + i, b"\x0a\x00\x00\x01", 80)
            for i in range(5000)]
    for k in keys:
        index[k] = value
    assert len(index) == 5000 and all(index[k] is value for k in keys)
    assert sys.getrefcount(value) == before + 5000
    for k in keys[::2]:
        del index[k]
    assert len(index) == 2500 and all(k in index for k in keys[1::2])
    index.clear()
    assert len(index) == 0 and not index and sys.getrefcount(value) == before


# -- the compiled engine's live table: an OrderedDict whose order lives in the connections
_live_ops = st.lists(st.tuples(st.sampled_from(("set", "get", "getitem", "del", "pop",
                                                "pop_default", "in", "move_to_end",
                                                "move_to_front", "clear", "touch_all")),
                               st.integers(0, 7), st.integers(0, 9)), max_size=200)


def _bare_connections(n: int) -> list[Any]:
    """Compiled connections with nothing but a key (the table needs no more)."""
    assert implementation.compiled is not None
    base = implementation.compiled.ConnectionBase
    conns = [base.__new__(base) for _ in range(n)]
    for i, c in enumerate(conns):
        c.key = ("k", i % 8)
    return conns


@pytest.mark.skipif(implementation.compiled is None, reason="the reference engine runs")
@settings(max_examples=300, deadline=None)
@given(_live_ops)
def test_live_table_behaves_as_the_ordered_dict_it_stands_for(
        ops: list[tuple[str, int, int]]) -> None:
    """Every operation the reference's code applies to ``live`` gives the OrderedDict's
    result, order included, on the compiled ``LiveTable``."""
    from collections import OrderedDict

    assert implementation.compiled is not None
    table = implementation.compiled.LiveTable()
    model: OrderedDict[Any, Any] = OrderedDict()
    conns = _bare_connections(10)
    for op, k, v in ops:
        key = ("k", k)
        if op == "set":
            value = conns[v]
            if any(c is value for kk, c in model.items() if kk != key):
                with pytest.raises(ValueError):  # one table place per connection
                    table[key] = value
            else:
                table[key] = value
                model[key] = value
        elif op == "get":
            assert table.get(key) is model.get(key)
            assert table.get(key, -1) is model.get(key, -1)
        elif op == "getitem":
            if key in model:
                assert table[key] is model[key]
            else:
                with pytest.raises(KeyError):
                    table[key]
        elif op in ("del", "pop", "move_to_end", "move_to_front"):
            if key not in model:
                with pytest.raises(KeyError):
                    if op == "del":
                        del table[key]
                    elif op == "pop":
                        table.pop(key)
                    else:
                        table.move_to_end(key, last=op == "move_to_end")
            elif op == "del":
                del table[key]
                del model[key]
            elif op == "pop":
                assert table.pop(key) is model.pop(key)
            else:
                table.move_to_end(key, last=op == "move_to_end")
                model.move_to_end(key, last=op == "move_to_end")
        elif op == "pop_default":
            assert table.pop(key, None) is model.pop(key, None)
        elif op == "in":
            assert (key in table) == (key in model)
        elif op == "touch_all":  # the oldest first, as a run of segments would
            for kk in list(model)[::-1]:
                table.move_to_end(kk)
                model.move_to_end(kk)
        else:
            table.clear()
            model.clear()
        assert len(table) == len(model) and bool(table) == bool(model)
        assert list(table) == list(model)
        assert list(table.keys()) == list(model.keys())
        assert [id(c) for c in table.values()] == [id(c) for c in model.values()]
        assert [(kk, id(c)) for kk, c in table.items()] == \
            [(kk, id(c)) for kk, c in model.items()]


def _changed_under_iterator(table: Any, conns: list[Any]) -> None:
    """Each change during an iteration makes the iterator raise RuntimeError."""
    for change in ("move_to_end", "pop", "add"):
        it = iter(table.items())
        next(it)
        if change == "move_to_end":
            table.move_to_end(conns[0].key)
        elif change == "pop":
            table.pop(conns[2].key)
        else:
            table[("k", 9)] = _bare_connections(1)[0]
        with pytest.raises(RuntimeError):
            next(it)


@pytest.mark.skipif(implementation.compiled is None, reason="the reference engine runs")
def test_live_table_refuses_changes_under_an_iterator_and_releases_connections() -> None:
    """As an OrderedDict: changing the table while iterating raises RuntimeError (a
    move to the end too); its references go with the entries, and connections that
    outlive the table can join another one."""
    import sys

    assert implementation.compiled is not None
    live_table = implementation.compiled.LiveTable
    conns = _bare_connections(3)
    before = [sys.getrefcount(c) for c in conns]
    tables = [live_table()]
    for conn in conns:
        tables[0][conn.key] = conn
    _changed_under_iterator(tables[0], conns)
    with pytest.raises(TypeError):
        tables[0][("k", 5)] = object()
    tables[0].clear()
    del conn
    assert [sys.getrefcount(c) for c in conns] == before
    for c in conns:
        tables[0][c.key] = c
    tables.clear()  # the table goes with its connections in it
    again = live_table()
    for c in conns[::-1]:
        again[c.key] = c
    assert list(again.values()) == conns[::-1]
    again.clear()
    del c
    assert [sys.getrefcount(c) for c in conns] == before


_BIG = 1 << 62  # the compiled heap's C range ends here (``_engine._time_c``)
_deadline_ops = st.lists(st.one_of(
    st.tuples(st.just("push"),
              st.one_of(st.integers(-5, 40), st.sampled_from([_BIG - 1, _BIG, -_BIG, 10**30])),
              st.integers(0, 12)),
    st.tuples(st.just("pop"), st.just(0), st.just(0)),
    st.tuples(st.just("due"), st.one_of(st.integers(-5, 45), st.just(10**31)), st.just(0)),
    st.tuples(st.just("retain"), st.integers(0, 3), st.just(0))), max_size=60)


@pytest.mark.skipif(implementation.compiled is None, reason="the reference engine runs")
@settings(max_examples=400, deadline=None)
@given(_deadline_ops)
def test_deadline_heap_pops_as_the_reference(ops: list[tuple[str, int, int]]) -> None:
    """The compiled ``DeadlineHeap`` (C records, or the reference's tuples once a number
    leaves the C range) against ``flowtable.DeadlineHeap``: the same entries, in the same
    order, the same answers to ``due`` and ``len``, the same ones kept by ``retain``; and
    every key it held is released."""
    import sys

    from tcptrace_py import flowtable

    assert implementation.compiled is not None
    ref = flowtable.ReferenceDeadlineHeap()
    twin = implementation.compiled.DeadlineHeap()
    keys = [(b"\n\0\0\1", 1000 + i, b"\n\0\0\2", 80) for i in range(13)]  # ids 0..12
    before = [sys.getrefcount(k) for k in keys]
    for op, a, b in ops:
        if op == "push":
            ref.push(a, b, keys[b])
            twin.push(a, b, keys[b])
        elif op == "pop":
            if len(ref):
                assert twin.pop() == ref.pop()
            else:
                with pytest.raises(IndexError):
                    twin.pop()
        elif op == "due":
            assert twin.due(a) == ref.due(a)
        else:
            def keep(flow_id: int, key: object, m: int = a) -> bool:
                return flow_id % 4 != m

            ref.retain(keep)
            twin.retain(keep)
        assert len(twin) == len(ref)
    drained = []
    while len(ref):
        drained.append(ref.pop())
        assert twin.pop() == drained[-1]
    assert len(twin) == 0 and not twin.due(10**40)
    del drained
    for op, a, b in ops[:3]:
        if op == "push":
            twin.push(a, b, keys[b])
    del twin  # the heap goes with the entries still in it
    assert [sys.getrefcount(k) for k in keys] == before


@pytest.mark.skipif(implementation.compiled is None, reason="the reference engine runs")
def test_deadline_heap_keeps_what_a_failing_filter_did_not_judge() -> None:
    """``retain`` whose test raises: the entries it had not judged stay, the error goes on."""
    assert implementation.compiled is not None
    heap = implementation.compiled.DeadlineHeap()
    for i in range(6):
        heap.push(100 - i, i, ("k", i))

    def keep(flow_id: int, key: object) -> bool:
        if flow_id == 3:
            raise KeyError(flow_id)
        return flow_id % 2 == 0

    with pytest.raises(KeyError):
        heap.retain(keep)
    left = [heap.pop()[1] for _ in range(len(heap))]
    assert left == sorted(left, reverse=True)  # still a heap: deadline 100 - flow_id
    assert {0, 2, 3, 4} <= set(left) <= {0, 1, 2, 3, 4, 5}  # 1 and 5: judged or not


_KEY_ADDRS = st.one_of(st.sampled_from([b"\x0a\x00\x00\x01", b"\x0a\x00\x00\x02", b"\xff" * 4,
                                    b"\x00" * 4, b"\x0a\x00\x00\x01" + bytes(12)]),
                   st.binary(min_size=4, max_size=4), st.binary(min_size=16, max_size=16))


@settings(max_examples=500, deadline=None)
@given(_KEY_ADDRS, _KEY_ADDRS, st.sampled_from([0, 1, 80, 443, 65535]) | st.integers(0, 65535),
       st.sampled_from([0, 1, 80, 443, 65535]) | st.integers(0, 65535))
def test_key_of_twin_is_the_reference(src: bytes, dst: bytes, sport: int, dport: int) -> None:
    """A new connection's 4-tuple (``FlowTable.key_of``: the lower ``(address, port)`` end
    first) is built in C from the segment's fields by the compiled table: the reference's
    tuple for equal addresses, equal ports, a self-connect, IPv4 and IPv6 (and mixed
    lengths, which tuples order by their bytes, then their length)."""
    from tcptrace_py.flowtable import FlowTable
    from tcptrace_py.segment import Segment

    seg = Segment(frame=1, ts_ns=0, src=src, dst=dst, sport=sport, dport=dport, seq=0, ack=0,
                  flags=SYN, window=0, payload_len=0)
    want = getattr(FlowTable, "__reference__", FlowTable).key_of(seg)
    assert FlowTable.key_of(seg) == want
    assert (src, sport) <= (dst, dport) and want == (src, sport, dst, dport) \
        or want == (dst, dport, src, sport)


@pytest.mark.skipif(implementation.compiled is None, reason="compiled engine not built")
def test_first_incarnations_open_in_c_and_later_ones_by_the_reference(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The compiled table opens a connection seen for the first time itself
    (``FlowTableBase._open_c``) and hands an incarnation replacing a live one to the
    reference's ``_open``; records are the same either way (the engines' equivalence tests
    run every capture). Here: three connections, one of them reused in TIME_WAIT while its
    first incarnation is live, one closed and expired before its 4-tuple returns (the
    reference's ``_last_end``: incarnation 1 without a live predecessor)."""
    from tcptrace_py.flowtable import FlowTable

    reference = FlowTable.__reference__  # type: ignore[attr-defined]
    calls: list[object] = []
    original = reference._open

    def counting(self: Any, key: Any, seg: Any, finished: Any, previous: Any = None) -> Any:
        calls.append(previous)
        return original(self, key, seg, finished, previous)

    monkeypatch.setattr(reference, "_open", counting)
    frames = (_conn(NS, 40000, isn=1000) + _conn(2 * NS, 40000, isn=900_000)
              + _conn(NS, 40001) + _conn(NS + 10_000, 40002)
              + _conn(400 * NS, 40002, isn=77_000))
    recs = _run(sorted(frames, key=lambda f: f[0]))
    assert len(calls) == 1 and calls[0] is not None  # only the reuse of a live 4-tuple
    by_port = {(r["client_port"], r["incarnation"]): r for r in recs}
    assert set(by_port) == {(40000, 0), (40000, 1), (40001, 0), (40002, 0), (40002, 1)}
    assert [r["flow_id"] for r in recs] == [0, 1, 2, 3, 4]
    assert by_port[(40002, 1)]["open"] == "three_way_handshake"


@pytest.mark.skipif(implementation.compiled is None, reason="compiled engine not built")
def test_deadline_compaction_twin_keeps_what_the_reference_keeps() -> None:
    """``FlowTableBase._compact_deadlines`` (the filter in C) against the reference's
    (a Python closure through ``DeadlineHeap.retain``) on two tables fed the same
    segments: 300 connections, a third closed and their 4-tuples opened again (the old
    incarnation's timer stale: another flow id under the key), a third still in their
    handshake, a third open, in a table capped at 150 (the evicted ones' timers stale);
    the same entries survive, in the same pop order, and the next compaction point is the
    same."""
    from tcptrace_py.capture import read_segments
    from tcptrace_py.decode import Decoder
    from tcptrace_py.diagnostics import Diagnostics
    from tcptrace_py.flowtable import FlowTable

    frames: list[tuple[int, bytes]] = []
    for i in range(300):
        t0 = NS + i * 1_000_000
        conn = _conn(t0, 20000 + i)
        frames += conn if i % 3 == 0 else conn[:1] if i % 3 == 1 else conn[:4]
        if i % 3 == 0:  # the 4-tuple again, a new ISN, while the first is in TIME_WAIT
            frames += _conn(t0 + 100_000, 20000 + i, isn=900_000)[:1]
    frames.sort(key=lambda f: f[0])
    data = pcap_bytes(frames, nanosecond=True)
    tables = []
    for _ in range(2):
        table = FlowTable(Options(max_connections=150))
        finished: list[Any] = []
        for seg in read_segments(data, Diagnostics(), Decoder(Diagnostics())):
            table.on_segment(seg, finished)
        tables.append(table)
    twin, ref = tables
    before = len(twin._deadlines)
    twin._compact_deadlines()
    FlowTable.__reference__._compact_deadlines(ref)  # type: ignore[attr-defined]
    after = len(twin._deadlines)
    assert 0 < after < before
    assert twin._deadlines_compact_at == ref._deadlines_compact_at
    popped = [[h.pop() for _ in range(len(h))]
              for h in (twin._deadlines, ref._deadlines)]
    assert popped[0] == popped[1] and len(popped[0]) == after


@pytest.mark.skipif(implementation.compiled is None, reason="compiled engine not built")
def test_sweep_entry_twin_ends_what_the_reference_ends(monkeypatch: pytest.MonkeyPatch) -> None:
    """``FlowTableBase._sweep_entry`` (the deadline, done and attempt tests in C, the
    table's removal and remembered end inlined) against the reference's, on the same
    frames: connections closed (TIME_WAIT runs out), left in their handshake (the attempt
    timeout), open and idle (their deadline pushed back, then the LRU scan), a 4-tuple
    opened again after its TIME_WAIT (the remembered end gives incarnation 1), and a
    late segment that sweeps them all: the same records in the same order, with the same
    end reasons, and the same remembered ends."""
    from tcptrace_py.flowtable import FlowTable

    frames: list[tuple[int, bytes]] = []
    for i in range(60):
        t0 = NS + i * 7_000_000
        conn = _conn(t0, 30000 + i, isn=1000 + i)
        frames += conn if i % 3 == 0 else conn[:1] if i % 3 == 1 else conn[:4]
    frames += _conn(200 * NS, 30000, isn=500_000)  # after the first one's TIME_WAIT
    frames += _conn(5000 * NS, 39999)  # hours later: every idle one swept first
    frames.sort(key=lambda f: f[0])
    options = {"idle_timeout_s": 900.0, "attempt_timeout_s": 30.0}

    def run() -> tuple[list[dict[str, object]], list[Any]]:
        table: Any = None
        original = FlowTable.__init__

        def keep(self: Any, *args: Any, **kwargs: Any) -> None:
            nonlocal table
            original(self, *args, **kwargs)
            table = self

        with monkeypatch.context() as m:
            m.setattr(FlowTable, "__init__", keep)
            recs = _run(frames, **options)
        return recs, sorted(table._last_end.items())

    reference_entry = FlowTable.__reference__._sweep_entry  # type: ignore[attr-defined]
    assert FlowTable._sweep_entry is not reference_entry  # the compiled one runs first
    twin = run()
    monkeypatch.setattr(FlowTable, "_sweep_entry",
                        FlowTable.__reference__._sweep_entry)  # type: ignore[attr-defined]
    reference = run()
    assert twin == reference
    reasons = {r["end_reason"] for r in twin[0]}
    assert {"time_wait_expired", "attempt_timeout"} <= reasons
    assert any(r["incarnation"] == 1 for r in twin[0])
    monkeypatch.undo()
    assert FlowTable._sweep_entry is not reference_entry

    # The twin remembers that the classes keep the reference's _remove and _remember_end
    # (_keeps_reference): a method replaced afterwards, on the twin class or on the
    # reference, sends the entries to the reference's _sweep_entry again.
    calls: list[int] = []

    def counting(self: Any, *args: Any) -> Any:
        calls.append(1)
        return reference_entry(self, *args)

    for owner in (FlowTable, FlowTable.__reference__):  # type: ignore[attr-defined]
        calls.clear()
        with monkeypatch.context() as m:
            m.setattr(FlowTable.__reference__, "_sweep_entry", counting)  # type: ignore[attr-defined]
            assert run() == reference and not calls  # both keep it: the twin's path
            m.setattr(owner, "_remove", lambda self, key: owner_remove(self, key))
            assert run() == reference and calls  # replaced: the reference's path


def owner_remove(table: Any, key: Any) -> Any:
    """``FlowTable._remove`` as the reference's (a stand-in replacing it in a test)."""
    from tcptrace_py.flowtable import FlowTable

    return FlowTable.__reference__.__dict__["_remove"](table, key)  # type: ignore[attr-defined]
