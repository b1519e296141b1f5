"""Record building: the per-connection shortcuts give the columns the plain code gave.

Why: a record is built for every connection, so its builders avoid costly calls (round()
through a decimal string, per-connection dicts); each shortcut here is checked against the
plain computation it replaces, on arbitrary values and on a capture.
"""

from __future__ import annotations

from pathlib import Path

from hypothesis import example, given, settings
from hypothesis import strategies as st

from tcptrace_py.analysis.sequence import MS_EXACT_BELOW_NS, ms3
from tcptrace_py.engine import Engine
from tcptrace_py.options import Options

SAMPLES = Path(__file__).resolve().parents[1] / "samples"


def same(a: float, b: float) -> bool:
    """Bit-identical (repr tells -0.0 from 0.0)."""
    return repr(a) == repr(b)


@settings(max_examples=3000, deadline=None)
@given(st.integers(min_value=-10**6, max_value=2 * MS_EXACT_BELOW_NS))
@example(1500)
@example(2500)
@example(-1500)
@example(0)
@example(MS_EXACT_BELOW_NS - 1)
@example(MS_EXACT_BELOW_NS - 500)
@example(MS_EXACT_BELOW_NS)
def test_ms3_of_whole_nanoseconds_is_round(ns: int) -> None:
    assert same(ms3(ns), round(ns / 1e6, 3))
    assert same(ms3(float(ns)), round(float(ns) / 1e6, 3))


@settings(max_examples=3000, deadline=None)
@given(st.integers(min_value=0, max_value=MS_EXACT_BELOW_NS // 1000),
       st.sampled_from((0, 1, 499, 500, 501, 999)))
def test_ms3_next_to_ties_is_round(k: int, rest: int) -> None:
    ns = k * 1000 + rest
    assert same(ms3(ns), round(ns / 1e6, 3))


@settings(max_examples=2000, deadline=None)
@given(st.floats(allow_nan=True, allow_infinity=True))
def test_ms3_of_any_float_is_round(ns: float) -> None:
    want = round(ns / 1e6, 3) if ns == ns and abs(ns) != float("inf") else None
    if want is None:  # round() of NaN/inf raises or returns them: ms3 does the same
        try:
            got: object = ms3(ns)
        except (ValueError, OverflowError) as exc:
            got = type(exc)
        try:
            expected: object = round(ns / 1e6, 3)
        except (ValueError, OverflowError) as exc:
            expected = type(exc)
        assert repr(got) == repr(expected)
        return
    assert same(ms3(ns), want)


def test_ms_columns_of_a_capture_are_rounded_milliseconds() -> None:
    """On a lossy sample: every millisecond column built with ms3 equals round(ns / 1e6, 3)
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
