"""Record building: the per-connection shortcuts give the columns the plain code gave.

Why: a record is built for every connection, so its builders avoid costly calls (round()
through a decimal string, per-connection dicts); each shortcut here is checked against the
plain computation it replaces, on arbitrary values and on a capture.
"""

from __future__ import annotations

import ipaddress
import math
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tcptrace_py import report
from tcptrace_py.analysis.sequence import round1, round3
from tcptrace_py.engine import Engine
from tcptrace_py.options import Options
from tcptrace_py.segment import addr_text

SAMPLES = Path(__file__).resolve().parents[1] / "samples"


def same(a: float, b: float) -> bool:
    """Bit-identical (repr tells -0.0 from 0.0 and shows NaN)."""
    return repr(a) == repr(b)


def both(x: float) -> None:
    assert same(round3(x), round(x, 3)), x
    assert same(round1(x), round(x, 1)), x


@settings(max_examples=3000, deadline=None)
@given(st.floats(allow_nan=True, allow_infinity=False))
@example(0.0)
@example(-0.0)
@example(0.0015)
@example(0.0025)
@example(0.05)
@example(0.25)
@example(-1.5)
@example(5e-324)
@example(4503599627370496.0 / 1000)
@example(1e308)
def test_round3_and_round1_of_any_float_are_round(x: float) -> None:
    both(x)


@settings(max_examples=3000, deadline=None)
@given(st.integers(min_value=0, max_value=2**60))
def test_round3_of_whole_nanoseconds_in_ms_is_round(ns: int) -> None:
    """The record's millisecond columns: whole nanosecond counts over 1e6."""
    both(ns / 1e6)
    both(float(ns) / 1e6)


@settings(max_examples=3000, deadline=None)
@given(st.integers(min_value=0, max_value=10**12), st.sampled_from((1000, 10)),
       st.integers(min_value=-3, max_value=3))
def test_round3_and_round1_next_to_ties_are_round(k: int, scale: int, ulps: int) -> None:
    """x within a few ulps of a decimal tie (k + 0.5) / scale: the margin sends them to
    round(), or decides them correctly."""
    x = (k + 0.5) / scale
    for _ in range(abs(ulps)):
        x = math.nextafter(x, math.inf if ulps > 0 else -math.inf)
    both(x)


@settings(max_examples=500, deadline=None)
@given(st.integers(min_value=-10**20, max_value=10**20))
@example(0)
@example(2**52)
def test_round3_and_round1_of_ints_are_the_references(n: int) -> None:
    """Integers take the reference's Python steps in the compiled twins too (an int
    argument gives a float, not round()'s int)."""
    from tcptrace_py.analysis import sequence

    assert same(round3(n), sequence._round_scaled(n, 1000, 3))
    assert same(round1(n), sequence._round_scaled(n, 10, 1))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 2**40), min_size=7, max_size=7),
       st.lists(st.floats(0, 1e10), max_size=4), st.lists(st.floats(0, 1e10), max_size=3),
       st.lists(st.floats(0, 8), max_size=3), st.integers(-1, 10**10), st.integers(0, 10**12),
       st.lists(st.integers(1, 10**9), max_size=3))
def test_direction_values_twin_is_the_reference(
        counts: list[int], rtts: list[float], intervals: list[float], ratios: list[float],
        handshake_ns: int, duration_ns: int, est_samples: list[int]) -> None:
    """The compiled ``_direction_values`` gives the reference's tuple, bit for bit:
    counts, the rounded averages and rates, and every RTT figure with and without samples."""
    from tcptrace_py import implementation
    from tcptrace_py.analysis import sequence
    from tcptrace_py.analysis.direction import DirectionStats, SenderState
    from tcptrace_py.analysis.rtt import NO_SAMPLES, RttEstimator, RunningStats

    if implementation.compiled is None:
        pytest.skip("compiled engine not built or not selected")
    stats = DirectionStats()
    (stats.packets, stats.data_pkts, stats.data_bytes, stats.win_n, stats.win_sum,
     stats.unique_bytes, stats.idle_max_ns) = counts
    stats.seg_max = stats.seg_min = counts[2] % 1500
    stats.handshake_rtt_ns = handshake_ns
    for x in rtts:
        stats.rtt.add(x)
    # The shared empty statistics are never added to: a writer puts its own in their place
    # first, as the analysis does (adding to them here changed later tests' records).
    if intervals:
        stats.rexmit_interval = RunningStats()
    for x in intervals:
        stats.rexmit_interval.add(x)
    if ratios:
        stats.backoff_ratio = RunningStats()
    for x in ratios:
        stats.backoff_ratio.add(x)
    assert NO_SAMPLES.count == 0
    state = SenderState(RttEstimator())
    for ns in est_samples:
        state.est.update(ns)
    twin = sequence._direction_values(stats, state, duration_ns)
    ref = sequence._reference_direction_values(stats, state, duration_ns)
    assert repr(twin) == repr(ref)


def test_direction_values_twin_hands_huge_counts_to_the_reference() -> None:
    """Byte counts of 2**52 and more (no exact double quotient) take the reference."""
    from tcptrace_py import implementation
    from tcptrace_py.analysis import sequence
    from tcptrace_py.analysis.direction import DirectionStats, SenderState
    from tcptrace_py.analysis.rtt import RttEstimator

    if implementation.compiled is None:
        pytest.skip("compiled engine not built or not selected")
    stats = DirectionStats()
    stats.data_pkts, stats.data_bytes = 3, 2**60 + 1
    stats.win_n, stats.win_sum = 7, 2**59 + 3
    state = SenderState(RttEstimator())
    twin = sequence._direction_values(stats, state, 10**9)
    ref = sequence._reference_direction_values(stats, state, 10**9)
    assert repr(twin) == repr(ref)


def test_direction_values_put_writes_what_the_reference_writes() -> None:
    """The compiled ``_put_direction_values`` leaves the record the reference leaves: the
    same keys after the ones already there, in order, with the same values."""
    from tcptrace_py import implementation
    from tcptrace_py.analysis import sequence
    from tcptrace_py.analysis.direction import DirectionStats, SenderState
    from tcptrace_py.analysis.rtt import RttEstimator

    if implementation.compiled is None:
        pytest.skip("compiled engine not built or not selected")
    stats = DirectionStats()
    stats.packets, stats.data_pkts, stats.data_bytes, stats.seg_max = 9, 4, 4000, 1448
    stats.rtt.add(2.5e6)
    state = SenderState(RttEstimator())
    keys = sequence._PREFIXED["server_"]
    twin: dict[str, object] = {"flow_id": 1, "server_packets": -1}
    ref: dict[str, object] = {"flow_id": 1, "server_packets": -1}
    sequence._put_direction_values(twin, keys, stats, state, 10**9)
    sequence._reference_put_direction_values(ref, keys, stats, state, 10**9)
    assert sequence._put_direction_values is not sequence._reference_put_direction_values
    assert repr(twin) == repr(ref) and list(twin)[2] == "server_ack_pkts"
    with pytest.raises(ValueError):
        sequence._put_direction_values({}, keys[:-1], stats, state, 10**9)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(-2**62, 2**62), st.integers(0, 2**60)), max_size=20))
def test_range_set_covered_twin_is_the_reference(ranges: list[tuple[int, int]]) -> None:
    """``RangeSet.covered`` summed in C equals the reference's sum of Python integers,
    also for offsets too large to sum in C."""
    from tcptrace_py.analysis.rangeset import RangeSet

    rs = RangeSet()
    for start, length in ranges:
        rs.add(start, min(start + length, 2**63 - 1))
    reference = type(rs).__dict__.get("__reference__", RangeSet).covered
    assert rs.covered() == reference(rs)


def test_ms_columns_of_a_capture_are_rounded_milliseconds() -> None:
    """On a lossy sample: the millisecond columns built with round3 equal round(ns / 1e6, 3)
    of the connection's own figures."""
    conns = []

    class Keep(Engine):
        def _result(self, conn):  # type: ignore[no-untyped-def]
            conns.append(conn)
            return super()._result(conn)

    records = [r.record for r in Keep(Options()).run(str(SAMPLES / "data_loss_retrans.pcap"))]
    assert records and len(records) == len(conns)
    checked = 0
    for rec, conn in zip(records, conns, strict=True):
        for prefix, st_, state in (("client_", conn.analyzer.client, conn.analyzer._c),
                                   ("server_", conn.analyzer.server, conn.analyzer._s)):
            assert same(rec[prefix + "rto_ms"], round(state.est.rto_ns / 1e6, 3))
            if st_.rtt.count:
                assert same(rec[prefix + "rtt_min_ms"], round(st_.rtt.min / 1e6, 3))
                assert same(rec[prefix + "rtt_max_ms"], round(st_.rtt.max / 1e6, 3))
                checked += 1
            if st_.packets > 1:
                assert same(rec[prefix + "idle_max_ms"], round(st_.idle_max_ns / 1e6, 3))
            if st_.handshake_rtt_ns >= 0:
                assert same(rec[prefix + "handshake_rtt_ms"],
                            round(st_.handshake_rtt_ns / 1e6, 3))
            if st_.rexmit_interval.count:
                assert same(rec[prefix + "rexmit_interval_max_ms"],
                            round(st_.rexmit_interval.max / 1e6, 3))
    assert checked


def test_cached_addr_text_is_addr_text_and_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """The record's address columns come from a bounded memo of ``addr_text``: same text for
    IPv4 and IPv6 (RFC 5952), and never more than ``ADDR_TEXT_CACHE_MAX`` entries."""
    monkeypatch.setattr(report, "ADDR_TEXT_CACHE_MAX", 3)
    report._addr_texts.clear()
    addrs = [bytes([10, 0, 0, i]) for i in range(5)] + [
        bytes.fromhex("20010db8000000000000000000000001"), bytes(16)]
    for addr in addrs + addrs:
        assert report.cached_addr_text(addr) == addr_text(addr)
        assert len(report._addr_texts) <= 3
    report._addr_texts.clear()


def test_ipv6_record_addresses() -> None:
    records = [r.record for r in Engine(Options()).run(str(SAMPLES / "ipv6_normal.pcap"))]
    assert records
    for rec in records:
        assert ":" in rec["client_ip"] and ":" in rec["server_ip"]
        assert addr_text(ipaddress.IPv6Address(rec["client_ip"]).packed) == rec["client_ip"]
