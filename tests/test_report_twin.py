"""The compiled twin of ``report.flow_record`` against the reference, connection by connection.

Whole-capture equivalence (test_engines) compares the pure engine with the compiled one;
here both record builders run on the same finished connections of the compiled engine, so a
difference is the twin's own: every column, its value, its type (as JSON text) and the
order of the columns, on the samples and every capture of ``../shared`` (skipped when
absent), with connections whose pairs a test replaced by lists, and with time values no
output can hold.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_fastpath import _captures

from tcptrace_py import export, implementation, report
from tcptrace_py.engine import Engine
from tcptrace_py.export import dumps, dumps_line
from tcptrace_py.options import Options

pytestmark = pytest.mark.skipif(implementation.compiled is None,
                                reason="compiled engine not built or not selected")

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def _all_captures() -> list[Path]:
    return (_captures(REPO / "samples") + _captures(SHARED / "captures")
            + _captures(SHARED / "scenarios"))


def _connections(path: Path, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every finished connection of ``path`` as the engine hands it to ``flow_record``."""
    import tcptrace_py.engine as engine_module

    seen: list[Any] = []

    def spy(conn: Any, codes: list[str] | None = None) -> dict[str, Any]:
        seen.append((conn, codes))
        return report.reference_flow_record(conn, codes)

    monkeypatch.setattr(engine_module, "flow_record", spy)
    try:
        for _ in Engine(Options()).run(str(path)):
            pass
    except Exception:  # noqa: BLE001 - a broken capture: the connections read so far
        pass
    return seen


def _same(conn: Any, codes: list[str] | None) -> bool:
    ref = report.reference_flow_record(conn, codes)
    twin = report.flow_record(conn, codes)
    assert list(twin) == list(ref)
    assert dumps(twin) == dumps(ref)
    return _same_line(conn, codes)


def _same_line(conn: Any, codes: list[str] | None) -> bool:
    """``export.flow_line`` (written in C by the compiled engine) gives the reference
    record's JSON line; True when the C writer wrote it (not the record dict)."""
    before = report.flow_record.lines_written  # type: ignore[attr-defined]
    line = export.flow_line(conn, codes)
    assert line == dumps_line(report.reference_flow_record(conn, codes))
    return bool(report.flow_record.lines_written > before)  # type: ignore[attr-defined]


def test_twin_is_used() -> None:
    assert report.flow_record is not report.reference_flow_record
    assert type(report.flow_record).__name__ == "FlowRecord"


@pytest.mark.parametrize("path", _all_captures(), ids=lambda p: p.name)
def test_twin_builds_the_reference_record(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conns = _connections(path, monkeypatch)
    in_c = [_same(conn, codes) for conn, codes in conns]
    # Every line but a process's first (the schema) is written in C: these captures hold
    # no value the writer refuses.
    assert sum(in_c) >= len(conns) - 1


def test_lines_are_written_in_c_once_the_numbers_are_orjsons() -> None:
    """The line writer is on (its floats are the installed orjson's), and a record's line
    comes from C, not from the dict, after the first (which gives the schema)."""
    assert export.flow_line == report.flow_record.line  # type: ignore[attr-defined]
    conns = _connections_of(REPO / "samples" / "normal.pcap")
    assert conns
    export.flow_line(*conns[0])  # the schema, if no test made it yet
    assert all(_same_line(conn, codes) for conn, codes in conns)


def _connections_of(path: Path) -> list[Any]:
    with pytest.MonkeyPatch.context() as mp:
        return _connections(path, mp)


def test_lines_the_writer_refuses_take_the_record_dict() -> None:
    """A value the C writer cannot write as orjson does (a string needing an escape or
    beyond ASCII, an integer beyond 64 bits, which makes the encoder fall back to json,
    a float that is not finite, a type it does not write): that line is the record
    dict's, the same bytes as the reference's."""
    conns = _connections_of(REPO / "samples" / "normal.pcap")
    conn, codes = conns[0]
    export.flow_line(conn, codes)
    assert _same_line(conn, codes)
    for value in ('say "hi"', "back\\slash", "tab\there", "caf\u00e9", "\u2603"):
        conn.end_reason = value
        assert not _same_line(conn, codes)
    conn.end_reason = "closed"
    assert _same_line(conn, codes)
    conn.incarnation = 1 << 64
    assert not _same_line(conn, codes)
    conn.incarnation = -(1 << 63)
    assert _same_line(conn, codes)
    conn.incarnation = 0
    assert not _same_line(conn, [(1, 2)])  # type: ignore[list-item]  # a tuple: refused
    assert _same_line(conn, ["z", "a"])
    conn.roles_inferred = float("nan")
    assert not _same_line(conn, codes)
    conn.roles_inferred = 0.25
    assert _same_line(conn, codes)
    conn.roles_inferred = False


@pytest.mark.parametrize("value", [
    0, 1, -1, 255, 2**30 - 1, 2**30, -(2**30), 2**60 - 1, 2**60, -(2**60), 2**61 + 5,
    1_700_000_000_123_456_789, -1_700_000_000_123_456_789, 7 * 2**60 + 3, 2**63 - 1,
    -(2**63), -(2**63) + 1, 2**63, -(2**63) - 1, 2**64 - 1, 2**90, True, False])
def test_integers_at_the_digit_boundaries_are_written_as_orjson(value: int) -> None:
    """The writer reads an int's common values from its digits (``_engine._exact_ll``):
    one, two and three 30-bit digits, both signs, the 63-bit edge. Every int within 64
    signed bits is written in C as orjson writes it; beyond, the line is the dict's."""
    conns = _connections_of(REPO / "samples" / "normal.pcap")
    conn, codes = conns[0]
    export.flow_line(conn, codes)  # the first line teaches the writer the columns
    conn.incarnation = value
    fits = type(value) is bool or -(2**63) <= value < 2**63
    assert _same_line(conn, codes) == fits


@settings(max_examples=2000, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_json_float_is_orjsons(x: float) -> None:
    """The writer's floats: orjson's text for every finite double (its layout changes at
    1e-5 and 1e16, which ``repr``'s does at 1e-4 and 1e16)."""
    import orjson

    assert implementation.compiled is not None
    assert implementation.compiled.json_float(x) == orjson.dumps(x)


@settings(max_examples=3000, deadline=None)
@given(st.integers(-(10 ** 16), 10 ** 16), st.integers(0, 12), st.integers(-2, 2))
def test_json_float_of_short_decimals_is_orjsons(k: int, p: int, step: int) -> None:
    """The record's floats are mostly short decimals (``round(x, 3)``, microsecond
    times): the writer's fast path for them, and the doubles next to them, which it must
    leave to dtoa or get right, against orjson."""
    import math

    import orjson

    assert implementation.compiled is not None
    x = k / 10 ** p
    for _ in range(abs(step)):
        x = math.nextafter(x, math.inf if step > 0 else -math.inf)
    assert implementation.compiled.json_float(x) == orjson.dumps(x)


def test_json_float_at_the_layout_boundaries() -> None:
    import orjson

    assert implementation.compiled is not None
    for x in export._FLOAT_PROBES + (1e-5 * (1 - 2 ** -52), 9.999999999999999e-05, 1e-05,
                                     -0.0, 1e16 * (1 - 2 ** -53), 3e-5, 4.9e-324):
        assert implementation.compiled.json_float(x) == orjson.dumps(x), x
    assert implementation.compiled.json_float(float("nan")) is None
    assert implementation.compiled.json_float(float("-inf")) is None


def test_twin_with_lists_and_times_no_output_holds(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pairs a caller replaced by lists are indexed; times beyond the outputs' range give
    null columns, as in the reference; a connection of another class takes the reference."""
    conns = _connections(REPO / "samples" / "normal.pcap", monkeypatch)
    assert conns
    for conn, codes in conns:
        for name in ("packets", "fin_frame", "pure_syn_sent", "synack_sent", "answered_frame",
                     "rst_count", "payload_bytes", "duplicate_frames"):
            setattr(conn, name, list(getattr(conn, name)))
        _same(conn, codes)
        conn.first_ts_ns = -5
        _same(conn, codes)
        conn.last_ts_ns = 1 << 64
        _same(conn, ["x"])

    class Other:
        pass

    calls: list[Any] = []

    def reference(conn: Any, codes: list[str] | None) -> dict[str, Any]:
        calls.append((conn, codes))
        return {"other": True}

    assert implementation.compiled is not None
    twin = implementation.compiled.FlowRecord(reference, {}, report.cached_addr_text, 0, 1)
    other = Other()
    assert twin(other, ["a"]) == {"other": True} and calls == [(other, ["a"])]


def test_lines_whose_columns_differ_from_the_schema_take_the_record_dict() -> None:
    """A column outside the schema, or a schema column first set out of its order, makes
    the line the record dict's (the same bytes as the reference's); a column set twice
    keeps its first place with its last value, as in the dict."""
    conns = _connections_of(REPO / "samples" / "normal.pcap")
    conn, codes = conns[0]
    export.flow_line(conn, codes)
    real = conn.analyzer

    class Extra:
        def __init__(self, write: Any) -> None:
            self.write = write

        def add_columns(self, out: Any) -> None:
            self.write(out)

        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

    def extra_key(out: Any) -> None:
        real.add_columns(out)
        out["extra_column"] = 1

    def early_key(out: Any) -> None:
        out["anomalies"] = ["early"]  # the schema's last column, set first
        real.add_columns(out)

    def set_twice(out: Any) -> None:
        real.add_columns(out)
        out["client_packets"] = 12345  # an earlier column again: its place, this value

    def raising(out: Any) -> None:
        real.add_columns(out)
        raise RuntimeError("a column failed")

    try:
        # A record whose columns raise leaves values in the writer's slots: the next
        # line drops them first and is the reference's.
        conn.analyzer = Extra(raising)
        with pytest.raises(RuntimeError, match="a column failed"):
            export.flow_line(conn, codes)
        conn.analyzer = real
        assert _same_line(conn, codes)
        conn.analyzer = Extra(extra_key)
        assert not _same_line(conn, codes)
        conn.analyzer = Extra(early_key)
        assert not _same_line(conn, codes)
        conn.analyzer = Extra(set_twice)
        assert _same_line(conn, codes)
        assert b'"client_packets":12345,' in export.flow_line(conn, codes)
    finally:
        conn.analyzer = real
    assert _same_line(conn, codes)


_NS = st.one_of(st.integers(0, 10**12), st.integers(0, 2**62),
                # a rounding tie in the record's milliseconds (x.xxx5 ms), and next to it
                st.builds(lambda k, d: k * 1000 + 500 + d, st.integers(0, 10**9),
                          st.integers(-1, 1)),
                # up to where the rounding leaves the exact steps (x * 1000 at 2**52)
                st.builds(lambda e, d: 2**e + d, st.integers(40, 62), st.integers(-9, 9)))


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(_NS, st.integers(0, 40)), min_size=2, max_size=2),
       st.lists(st.floats(0, 1e22), max_size=3), st.lists(st.floats(0, 2e15), max_size=3),
       st.lists(st.floats(0, 9), max_size=3), st.integers(-1, 2**62),
       st.integers(0, 2**50), st.integers(0, 2**40),
       st.one_of(st.none(), st.integers(0, 2**62)))
def test_direction_columns_written_from_c_values_are_the_references(
        idle: list[tuple[int, int]], rtts: list[float], intervals: list[float],
        ratios: list[float], handshake_ns: int, data_bytes: int, win_sum: int,
        srtt_ns: int | None) -> None:
    """A direction's counts and rounded figures go to the line writer as C values, not
    objects (``_engine.DirectionValues`` into ``_JsonOut.put_ll``/``put_dec``): the line is
    still the reference record's, with samples, without, at rounding ties, at zero and at
    the writer's decimal limit, and the C writer (not the dict) wrote it."""
    from tcptrace_py.analysis.rtt import RunningStats

    conns = _connections_of(REPO / "samples" / "normal.pcap")
    conn, codes = conns[0]
    export.flow_line(conn, codes)  # the first line teaches the writer the columns
    an = conn.analyzer
    for st_, state, (idle_ns, pkts) in zip((an.client, an.server), (an._c, an._s), idle,
                                           strict=True):
        st_.idle_max_ns = idle_ns
        st_.packets = pkts
        st_.data_pkts = pkts // 2
        st_.data_bytes = data_bytes
        st_.win_n = pkts // 3
        st_.win_sum = win_sum
        st_.seg_max = pkts % 5
        st_.handshake_rtt_ns = handshake_ns
        st_.rtt = RunningStats()
        for x in rtts:
            st_.rtt.add(x)
        st_.rexmit_interval = RunningStats()
        for x in intervals:
            st_.rexmit_interval.add(x)
        st_.backoff_ratio = RunningStats()
        for x in ratios:
            st_.backoff_ratio.add(x)
        state.est.srtt_ns = srtt_ns
    assert _same_line(conn, codes)


def test_the_writer_keeps_c_numbers_beside_objects() -> None:
    """``_JsonOut`` slots hold objects or C numbers (``put_ll``/``put_dec``): either kind
    replaces the other in place, reads back as the record dict's value, is written as
    orjson writes that value, and an object a number replaced is released."""
    from tcptrace_py import _engine

    w = _engine._JsonOut()
    rec = {"a": 1, "b": 0.5, "c": None, "d": 2.0}
    w.learn(rec)
    token = object()
    before = sys.getrefcount(token)
    w.begin()
    w["a"] = token
    assert sys.getrefcount(token) == before + 1
    w.set_number("a", -42)  # the object it replaces is released
    assert sys.getrefcount(token) == before and w["a"] == -42
    w.set_number("b", 1230, 3)
    assert w["b"] == 1.23 and type(w["b"]) is float
    w["c"] = None
    w.set_number("d", 20, 1)
    line = w.end()
    want = {"a": -42, "b": 1.23, "c": None, "d": 2.0}
    assert line == dumps_line(want)
    w.begin()  # numbers replaced by objects
    w.set_number("a", 7)
    w["a"] = 3
    w.set_number("b", 5, 1)
    w["b"] = 0.25
    w["c"] = "x"
    w.set_number("d", 2**52 - 1, 3)
    assert w.end() == dumps_line({"a": 3, "b": 0.25, "c": "x", "d": (2**52 - 1) / 1000})
    w.begin()  # a value the writer cannot write: no line, and every slot is let go
    w["a"] = token
    w.set_number("b", 1, 3)
    w["c"] = None
    w.set_number("d", 0, 1)
    assert w.end() is None
    assert sys.getrefcount(token) == before
    w.begin()  # columns missing: no line
    w.set_number("a", 1)
    w["b"] = token
    assert w.end() is None
    assert sys.getrefcount(token) == before


_WRITER_KEYS = ("a", "b", "c", "d", "e")
_WRITER_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, 9, 10, 99, 100, 101, 999, 1000, -1, -9, -10, -99, -100,
                     2**63 - 1, -(2**63), 2**63, 10**18, 10**19]),
    st.floats(allow_nan=False, allow_infinity=False), st.text("abcxyz", max_size=4),
    st.lists(st.one_of(st.none(), st.booleans(), st.integers(-1000, 1000)), max_size=3))


@settings(max_examples=500, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(range(len(_WRITER_KEYS))), _WRITER_VALUES),
                max_size=12),
       st.lists(_WRITER_VALUES, min_size=len(_WRITER_KEYS), max_size=len(_WRITER_KEYS)))
def test_the_writer_writes_what_a_dict_of_the_same_puts_gives(
        again: list[tuple[int, Any]], first: list[Any]) -> None:
    """Each key put in the schema's order, then any keys put again (a value of every kind
    the writer keeps: None, bools, ints at the digit-pair and 64-bit edges, floats,
    strings, lists, each replacing any other): the line is orjson's for the dict the same
    puts make, each value reads back as the dict holds it (a bool stays a bool), and no
    reference is kept after the line (a list's count comes back)."""
    from tcptrace_py import _engine

    w = _engine._JsonOut()
    w.learn(dict.fromkeys(_WRITER_KEYS, 0))
    token: list[Any] = []
    before = sys.getrefcount(token)
    w.begin()
    rec: dict[str, Any] = {}
    for key, value in zip(_WRITER_KEYS, first, strict=True):
        w[key] = value
        rec[key] = value
    w["a"] = token  # held, then replaced below or written and released
    rec["a"] = token
    for k, value in again:
        w[_WRITER_KEYS[k]] = value
        rec[_WRITER_KEYS[k]] = value
    for key, value in rec.items():
        got = w[key]
        assert got == value and type(got) is type(value)
    line = w.end()

    def beyond(v: Any) -> bool:  # an int the writer does not take (orjson may: u64)
        if type(v) is list:
            return any(beyond(x) for x in v)
        return type(v) is int and not -(2**63) <= v < 2**63

    if any(beyond(v) for v in rec.values()):
        assert line is None  # FlowRecord.line then encodes the record dict
    else:
        assert line == dumps_line(rec)
    del rec, got
    assert sys.getrefcount(token) == before


_LINE_VALUES = st.one_of(
    st.sampled_from([None, True, False, 0, 1, -1, 10**18, "x", 0.5]),
    st.integers(min_value=-3, max_value=3))
_LINE_NUMBERS = st.one_of(  # put_dec takes 0 <= k < 2**52 (what _round_k gives)
    st.tuples(st.integers(min_value=-3, max_value=3), st.just(0)),
    st.tuples(st.integers(min_value=0, max_value=3), st.sampled_from([1, 3])))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(
    st.lists(st.one_of(_LINE_VALUES, _LINE_NUMBERS), min_size=len(_WRITER_KEYS),
             max_size=len(_WRITER_KEYS)),
    st.sampled_from(["whole", "unwritable", "missing"])), min_size=1, max_size=8))
def test_consecutive_lines_are_each_the_dicts_line(
        lines: list[tuple[list[Any], str]]) -> None:
    """Lines written one after another by one writer (``finish`` copies the runs of
    columns holding the C value they held in the previous whole line from that line's
    text): each is orjson's line for its own dict, whatever the line before held (the
    same values, other values of the same kind, other kinds, a failed line, a line with
    a column missing); values drawn from a few so that runs repeat."""
    from tcptrace_py import _engine

    w = _engine._JsonOut()
    w.learn(dict.fromkeys(_WRITER_KEYS, 0))
    for values, how in lines:
        w.begin()
        rec: dict[str, Any] = {}
        for key, value in zip(_WRITER_KEYS, values, strict=True):
            if how == "missing" and key == "e":
                break
            if type(value) is tuple:  # a C number: an int, or a decimal of 1 or 3 digits
                k, digits = value
                w.set_number(key, k, digits)
                rec[key] = k if not digits else k / 10**digits
            else:
                w[key] = value
                rec[key] = value
        if how == "unwritable":
            w["c"] = object()
        line = w.end()
        if how == "whole":
            assert line == dumps_line(rec)
        else:
            assert line is None


@pytest.mark.parametrize("layout", ["contiguous", "reversed", "set_before", "missing"])
def test_direction_columns_into_the_writer_keep_the_dicts_order(layout: str) -> None:
    """``DirectionValues`` stores a direction's columns straight into the writer's slots
    when they are the schema's next keys (``_JsonOut.run_start``), a leading key set
    before (``client_packets``) replaced in its place; in any other layout each column
    goes through ``put``: the line is the dict's whenever the writer can write it (else
    no line), never columns in another order."""
    from tcptrace_py import _engine
    from tcptrace_py.analysis import sequence

    conn, _codes = _connections_of(REPO / "samples" / "normal.pcap")[0]
    an = conn.analyzer
    keys = sequence._PREFIXED["client_"]
    rec: dict[str, Any] = {"flow_id": 1}
    if layout == "set_before":
        rec[keys[0]] = -5  # set again by the run, keeping its place
        rec["gap"] = "x"
    sequence._reference_put_direction_values(rec, keys, an.client, an._c, 10**9)
    if layout == "reversed":
        rec = {"flow_id": 1, **dict(reversed(list(rec.items())[1:]))}
    rec["after"] = True
    w = _engine._JsonOut()
    w.learn(rec)
    for again in range(3):  # the run is verified, then remembered (run_start's cache)
        w.begin()
        w["flow_id"] = 1
        if layout == "set_before" and again < 2:
            w[keys[0]] = -5
            w["gap"] = "x"
        if layout == "missing":
            w["after"] = True  # the schema's direction columns never came first: no line
        sequence._put_direction_values(w, keys, an.client, an._c, 10**9)
        if layout != "missing":
            w["after"] = True
        line = w.end()
        if layout == "contiguous" or (layout == "set_before" and again < 2):
            assert line == dumps_line(rec)
        else:  # not the schema's order (the third set_before line sets the leading key
            assert line is None  # late): the record dict is encoded instead


def test_facts_and_peer_columns_written_in_c_are_the_references() -> None:
    """``FlowRecord._build`` writes the ECN and Fast Open facts, Zeek's conn_state and
    history and Wireshark's completeness through the compiled methods in C
    (``ProtocolFactsBase._add_columns_c``, ``PeerSummaryBase._conn_state_c``): with every
    fact set and each Zeek state pair, the line is still the reference record's; a class
    that replaces one of those methods has its own method called."""
    conns = _connections_of(REPO / "samples" / "normal.pcap")
    conn, codes = conns[0]
    facts, peer = conn.facts, conn.peer
    facts.ecn_mode = "rfc3168"
    facts.tfo_option = "cookie"
    facts.syn_data_bytes = 7
    facts.syn_data_acked = True
    for i, name in enumerate(("ect", "ce", "ece", "cwr")):
        setattr(facts, name, [i + 1, 2**40 + i])
    assert _same_line(conn, codes)
    o, r = peer._eps[peer._orig], peer._eps[1 - peer._orig]
    saved = (o.state, r.state)
    try:
        for os_ in range(7):
            for rs in range(7):
                o.state, r.state = os_, rs
                assert _same_line(conn, codes), (os_, rs)
    finally:
        o.state, r.state = saved

    class OwnPeer(type(peer)):  # type: ignore[misc]
        __slots__ = ()

        def conn_state(self) -> str:
            return "MINE"

        def completeness(self) -> int:
            return 99

    peer.__class__ = OwnPeer
    try:
        line = export.flow_line(conn, codes)
        assert b'"conn_state":"MINE"' in line and b'"completeness":99,' in line
    finally:
        peer.__class__ = OwnPeer.__mro__[1]
    assert _same_line(conn, codes)
    # The class itself changed after a line was written (the check remembers the class
    # it found keeping the compiled method): its new method is called.
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(type(peer), "conn_state", lambda self: "PATCHED", raising=False)
        assert b'"conn_state":"PATCHED"' in export.flow_line(conn, codes)
    assert _same_line(conn, codes)
