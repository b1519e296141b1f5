"""The compiled engine and the pure-Python reference give identical results.

Why: the reference is the readable statement of every rule and the compiled twin only a
faster translation of it (tcptrace_py/_engine.pyx). These tests run every capture the tests
can reach (../shared captures and kernel scenarios, samples/, a generated benchmark mix,
Hypothesis conversations) through both and compare records, anomalies, events, packet rows,
capture-wide findings and diagnostics, as multidict's and msgpack's suites run each test
against both of their implementations.

Two ways of running the reference:
* in this process, with ``implementation.compiled`` switched off (the ``engine`` fixture):
  the front end (reader, decoder) is the reference's, the Segment type the compiled one;
* in a subprocess with ``TCPTRACE_PY_PURE=1``: the reference from end to end, including the
  Segment class, exactly as users select it.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from captures_util import (
    ethernet,
    opt_mss,
    opt_sack,
    opt_sack_perm,
    opt_ts,
    opt_wscale,
    pcap_bytes,
    tcp_frame,
    tcp_packet,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_fastpath import FUZZ, _captures, _generated, conversations

from tcptrace_py import implementation
from tcptrace_py.diagnostics import Diagnostics
from tcptrace_py.engine import Engine
from tcptrace_py.options import Options

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"

sys.path.insert(0, str(REPO / "tests" / "fuzz"))
fuzz_reader = importlib.import_module("fuzz_reader")

needs_compiled = pytest.mark.skipif(implementation.compiled is None,
                                    reason="compiled engine not built or not selected")


@pytest.mark.skipif(implementation.forced_pure, reason="TCPTRACE_PY_PURE is set")
def test_compiled_engine_is_built_where_a_compiler_is() -> None:
    """A machine with gcc builds the extension at install: running the reference there
    means a broken build (CI must test the compiled engine, not skip it)."""
    if shutil.which("gcc") is None:
        pytest.skip("no C compiler: the pure engine is the expected fallback")
    assert implementation.compiled is not None, implementation.missing_reason


def outputs(source: Any) -> str:
    """Everything an analysis produces, as one comparable text (repr keeps NaN equal)."""
    diag = Diagnostics()
    engine = Engine(Options(keep_packets=True), diag)
    out: list[Any] = []
    try:
        for r in engine.run(source):
            out.append((r.record, r.anomalies, r.events, r.packets))
    except Exception as exc:  # a broken capture must fail the same way in both engines
        out.append(("error", type(exc).__name__, str(exc)))
    out.append(engine.summary.anomalies)
    out.append((engine.summary.connections, engine.summary.peak_live_connections))
    out.append(sorted((k, repr(v)) for k, v in _diag_fields(diag).items()))
    return repr(out)


def test_two_engines_with_their_own_options_interleaved_give_their_own_results() -> None:
    """The compiled connections read their ``Options`` and ``AnalysisOptions`` values
    through caches keyed by those objects (``_engine._options_of``, ``_analysis_of``): two
    engines with different options, their segments interleaved in one process, each give
    what they give alone."""
    from tcptrace_py.analysis.options import AnalysisOptions

    tight = Options(keep_packets=True, max_events_per_connection=2,
                    duplicate_memory_segments=1, idle_timeout_s=0.5, closed_linger_s=0.1,
                    time_wait_s=0.2, analysis=AnalysisOptions(
                        max_evidence_items=1, dup_ack_threshold=1,
                        rto_initial_ns=200_000_000, max_tracked_segments=4))
    loose = Options(keep_packets=True)
    differ = 0
    for path in _captures(REPO / "samples"):
        def run(options: Options, path: Path = path) -> Any:
            return Engine(options, Diagnostics()).run(str(path))

        def seen(results: Any) -> list[Any]:
            return [(r.record, r.anomalies, r.events, r.packets) for r in results]

        alone = [seen(run(tight)), seen(run(loose))]
        together: list[list[Any]] = [[], []]
        runs = [run(tight), run(loose)]
        while runs[0] is not None or runs[1] is not None:
            for k in (0, 1):
                if runs[k] is not None:
                    r = next(runs[k], None)
                    if r is None:
                        runs[k] = None
                    else:
                        together[k].append((r.record, r.anomalies, r.events, r.packets))
        assert repr(together) == repr(alone), path.name
        differ += repr(alone[0]) != repr(alone[1])
    assert differ > 10  # the two option sets do change most samples' results


def _diag_fields(diag: Diagnostics) -> dict[str, Any]:
    return {name: getattr(diag, name) for name in diag.__slots__}


def both(source: Any, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    """(compiled, reference) outputs of one source, in this process."""
    compiled = outputs(source)
    with monkeypatch.context() as m:
        m.setattr(implementation, "compiled", None)
        reference = outputs(source)
    return compiled, reference


def _all_captures() -> list[Path]:
    return (_captures(REPO / "samples") + _captures(SHARED / "captures")
            + _captures(SHARED / "scenarios"))


@needs_compiled
def test_version_names_the_engine() -> None:
    out = subprocess.run([sys.executable, "-m", "tcptrace_py", "--version"],
                         capture_output=True, text=True, check=True).stdout
    assert "engine: compiled (Cython)" in out
    env = dict(os.environ, TCPTRACE_PY_PURE="1")
    out = subprocess.run([sys.executable, "-m", "tcptrace_py", "--version"],
                         capture_output=True, text=True, check=True, env=env).stdout
    assert "engine: pure Python (TCPTRACE_PY_PURE is set)" in out


@needs_compiled
def test_compiled_front_end_is_used() -> None:
    """The switch really selects the compiled twin (a broken build must not pass silently
    as 'identical' by running the reference twice)."""
    from tcptrace_py.segment import ReferenceSegment, Segment

    assert implementation.compiled is not None
    assert Segment is implementation.compiled.Segment
    assert Segment is not ReferenceSegment


@needs_compiled
@pytest.mark.parametrize("path", _all_captures(),
                         ids=lambda p: str(p.relative_to(p.parents[1])))
def test_capture_same_in_both_engines(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    compiled, reference = both(path, monkeypatch)
    assert compiled == reference


@needs_compiled
def test_generated_mix_same_in_both_engines(monkeypatch: pytest.MonkeyPatch) -> None:
    data = _generated(20_000, 7)
    compiled, reference = both(data, monkeypatch)
    assert compiled == reference


@needs_compiled
def test_snaplen_mix_same_in_both_engines(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every payload cut at 96 bytes: the truncated segments' steady path in both engines."""
    data = _generated(20_000, 11, snaplen=96)
    compiled, reference = both(data, monkeypatch)
    assert compiled == reference


@needs_compiled
@FUZZ
@given(conversations())
def test_random_conversations_same_in_both_engines(data: bytes) -> None:
    with pytest.MonkeyPatch.context() as m:
        compiled, reference = both(data, m)
    assert compiled == reference


_DUMP = """
import json, sys
sys.path.insert(0, {tests!r})
from test_engines import outputs
print(json.dumps({{p: outputs(p) for p in sys.argv[1:]}}))
"""


def _reference_outputs(paths: list[str]) -> dict[str, str]:
    """:func:`outputs` of each capture from the whole reference (``TCPTRACE_PY_PURE=1``,
    the pure Segment class too), computed in a subprocess."""
    env = dict(os.environ, TCPTRACE_PY_PURE="1")
    done = subprocess.run([sys.executable, "-c", _DUMP.format(tests=str(REPO / "tests")),
                           *paths], capture_output=True, text=True, env=env, check=True)
    result: dict[str, str] = json.loads(done.stdout)
    return result


@needs_compiled
def test_reference_process_agrees_with_compiled(tmp_path: Path) -> None:
    """The whole reference (TCPTRACE_PY_PURE=1, pure Segment class too) in a subprocess
    against the compiled engine here, on the samples, the kernel scenarios and a generated
    mix with IPv6, SACK and losses."""
    gen = tmp_path / "mix.pcap"
    gen.write_bytes(_generated(5_000, 3))
    paths = [str(p) for p in _captures(REPO / "samples") + _captures(SHARED / "scenarios")]
    paths.append(str(gen))
    reference = _reference_outputs(paths)
    for p in paths:
        assert outputs(p) == reference[p], p


@needs_compiled
def test_long_transfer_same_in_reference_process(tmp_path: Path) -> None:
    """A sender past ``max_tracked_segments`` (4096) remembered segments: the acknowledged
    ones are pruned (``SequenceAnalyzer._prune``, compiled twin ``_prune_c``), and re-sends
    of pruned and of still remembered data follow. The whole reference in a subprocess
    agrees with the compiled engine."""
    from captures_util import write_pcap
    from test_detectors import Talk

    from tcptrace_py.segment import ACK, PSH

    frames: list[tuple[int, bytes]] = []
    t = Talk(frames)
    t.handshake()
    first = t.nxt[False]
    ts = 0.1
    for i in range(5000):
        ts += 0.0001
        t.s(ts, ACK | PSH, 100)
        if i % 2:
            t.c(ts + 0.00005, ACK)
    t.s(ts + 0.3, ACK | PSH, 100, seq=first + 100 * 10)  # long pruned: no original frame
    t.s(ts + 0.4, ACK | PSH, 100, seq=t.nxt[False] - 100)  # the last one, remembered
    t.c(ts + 0.41, ACK)
    t.close_by_client(ts + 1.0)
    path = tmp_path / "long.pcap"
    write_pcap(path, sorted(frames, key=lambda f: f[0]))
    reference = _reference_outputs([str(path)])[str(path)]
    assert outputs(path) == reference
    assert "'server_retransmitted_segments': 2" in reference


@needs_compiled
def test_compiled_constants_are_the_references() -> None:
    """The flag bits and Zeek constants compiled into the steady path are the reference's."""
    from tcptrace_py import compat, connection, duplicates, facts, flowtable, report, segment
    from tcptrace_py.analysis import direction, sequence
    from tcptrace_py.analysis import flags as af
    from tcptrace_py.segment import ACK, PSH

    assert implementation.compiled is not None
    assert implementation.compiled.CONSTANTS == {
        "MASK": 0xFFFFFFFF, "HALF": 1 << 31, "ACK": ACK, "PSH": PSH,
        "RTT_SAMPLE": af.RTT_SAMPLE, "AMBIGUOUS_ACK": af.AMBIGUOUS_ACK,
        "ACK_AT_UNA_FLAGS": (af.DUP_ACK, af.TRIPLE_DUP_ACK, af.WINDOW_UPDATE, af.SACK,
                             af.DSACK),
        "TSO_SUPERSEGMENT": af.TSO_SUPERSEGMENT,
        "WS_ACK": compat.WS_ACK, "WS_DATA": compat.WS_DATA, "HIST_DATA": compat.HIST_DATA,
        "HIST_ACK": compat.HIST_ACK, "ESTABLISHED": compat.ESTABLISHED,
        "TOO_LARGE_SEQ_DELTA": compat.TOO_LARGE_SEQ_DELTA,
        "SCALED_HISTORY_BASE": compat.SCALED_HISTORY_BASE,
        "ECN_FLAGS": facts.ECN_FLAGS,
        "COMPACT_TAIL_SEGMENTS": sequence.COMPACT_TAIL_SEGMENTS,
        "EXACT_BELOW": sequence._EXACT_BELOW, "ROUND_MARGIN": sequence._MARGIN,
        "NO_LATE": direction.NO_LATE,
        "ZEEK_STATES": (compat.INACTIVE, compat.SYN_SENT, compat.SYN_ACK_SENT, compat.PARTIAL,
                        compat.ESTABLISHED, compat.CLOSED, compat.RESET),
        "WS_BITS": (compat.WS_SYN, compat.WS_SYNACK, compat.WS_ACK, compat.WS_DATA,
                    compat.WS_FIN, compat.WS_RST),
        "HIST_BITS": (compat._HIST_SYN, compat._HIST_FIN, compat._HIST_RST,
                      compat._HIST_FIN_RST, compat._HIST_DATA, compat._HIST_ACK,
                      compat._HIST_MULTI_FLAG),
        "DUPLICATE_RULES": (duplicates.MAX_HOPS_BETWEEN_COPIES, duplicates.TIMER_MIN_RTTS,
                            duplicates.TIMER_MIN_EXTRA_NS),
        "RECORD_ROOM": report.RECORD_ROOM,
        "ECN_FACTS": (facts.ACE_FLAGS, segment.ECE, segment.CWR, facts.IP_ECN_CE,
                      facts._ACCECN_SYNACK),
        "MAX_CLOCK_JUMP_NS": flowtable.MAX_CLOCK_JUMP_NS,
        "SWEEP_INTERVAL_NS": flowtable.SWEEP_INTERVAL_NS,
        "SHARD_MIX": flowtable.SHARD_MIX, "SHARD_SLOTS": flowtable.SHARD_SLOTS,
        "WELL_KNOWN_PORT_LIMIT": flowtable.WELL_KNOWN_PORT_LIMIT,
        "DEADLINE_SLACK": flowtable.DEADLINE_SLACK,
        "TS_NS_MAX": segment.TS_NS_MAX,
        "TIME_WAIT_EXPIRED": connection.TIME_WAIT_EXPIRED,
    }


def _fields_of(obj: Any, depth: int = 0) -> Any:
    """An object's slot values, nested objects by their own slots (for comparing twins).
    The compiled ``Pair`` of per-side counters stands for the reference's two-item list."""
    compiled = implementation.compiled
    if compiled is not None and type(obj) is compiled.Pair:
        return ("list", [_fields_of(x, depth + 1) for x in obj])
    if type(obj) in (tuple, list):
        return (type(obj).__name__, [_fields_of(x, depth + 1) for x in obj])
    cls = type(obj)
    ref = getattr(cls, "__reference__", cls)
    slots = getattr(ref, "__slots__", None)
    if slots is None or depth > 8:
        return (type(obj).__name__, obj)
    return (ref.__name__, tuple((name, _fields_of(getattr(obj, name), depth + 1))
                                for name in slots))


@needs_compiled
def test_twin_constructors_build_the_references_objects() -> None:
    """The bases in ``_engine.TWIN_INITS`` construct what the reference ``__init__`` does:
    every field, its value and its type, nested objects included."""
    from tcptrace_py import compat, connection, facts
    from tcptrace_py.analysis import AnalysisOptions, direction, rangeset, rtt, sequence
    from tcptrace_py.options import Options
    from tcptrace_py.segment import Segment

    assert implementation.compiled is not None
    a, b = b"\x0a\x00\x00\x01", b"\x0a\x00\x00\x02"
    syn = Segment(3, 10**18, a, b, 40000, 80, 1000, 0, 0x02, 65535, 0)
    self_syn = Segment(4, 10**18, a, a, 5000, 5000, 1000, 0, 0x02, 65535, 0)
    cases: list[tuple[Any, tuple[Any, ...]]] = [
        (rangeset.RangeSet, ()), (rtt.RunningStats, ()), (facts.ProtocolFacts, ()),
        (direction.DirectionStats, ()), (direction.SenderState, (rtt.RttEstimator(),)),
        (compat._Endpoint, ()), (compat.PeerSummary, ()), (compat.PeerSummary, (7,)),
        (sequence.SequenceAnalyzer, ()),
        (sequence.SequenceAnalyzer, (AnalysisOptions(dup_ack_threshold=5),)),
        (sequence.SequenceAnalyzer, (AnalysisOptions(
            rto_initial_ns=3_000_000_000, rto_min_ns=200_000_000, rto_max_ns=120_000_000_000,
            clock_granularity_ns=4_000_000),)),
        (connection.Connection, (0, ("k",), syn, True, False, Options())),
        (connection.Connection, (1, ("k",), syn, False, True,
                                 Options(keep_packets=True, packet_flows=(1,))),
         ),
        (connection.Connection, (2, ("k",), self_syn, True, False,
                                 Options(keep_packets=True, packet_flows=(1,)))),
    ]
    for cls, args in cases:
        twin_obj = cls(*args)
        ref_obj = cls.__new__(cls)
        cls.__reference__.__init__(ref_obj, *args)
        assert _fields_of(twin_obj) == _fields_of(ref_obj), cls
    # RttEstimator takes keywords only.
    est = rtt.RttEstimator
    for kwargs in ({}, {"initial_rto_ns": 3_000_000_000, "min_rto_ns": 200_000_000,
                        "max_rto_ns": 120_000_000_000, "clock_granularity_ns": 4_000_000}):
        ref_est = est.__new__(est)
        est.__reference__.__init__(ref_est, **kwargs)  # type: ignore[attr-defined]
        assert _fields_of(est(**kwargs)) == _fields_of(ref_est), kwargs


_HEXTETS = st.lists(st.sampled_from([0, 0, 0, 1, 0xFFFF, 0x0DB8, 0x2001, 0xFE80, 0x10]) |
                    st.integers(0, 0xFFFF), min_size=8, max_size=8)
"""Eight hextets, mostly zeros and a few values: runs of zeros of every length and place
(RFC 5952 compression), and the IPv4-mapped prefix."""


@needs_compiled
@given(st.one_of(st.binary(min_size=4, max_size=4), st.binary(min_size=16, max_size=16),
                 _HEXTETS.map(lambda h: b"".join(x.to_bytes(2, "big") for x in h))))
def test_addr_text_twin_is_the_references(addr: bytes) -> None:
    """The compiled ``addr_text`` (IPv4 and IPv6 in C, an IPv4-mapped IPv6 address by the
    reference) gives the reference's text, and the modules that format addresses use
    it."""
    from tcptrace_py import report, segment

    assert segment.addr_text is implementation.compiled.addr_text  # type: ignore[union-attr]
    assert vars(report)["addr_text"] is segment.addr_text
    assert segment.addr_text(addr) == segment.reference_addr_text(addr)
    for edge in (b"\x00\x00\x00\x00", b"\xff\xff\xff\xff", b"\x0a\x00\x00\x01",
                 bytes(16), bytes(15) + b"\x01", b"\x00\x01" + bytes(14),
                 bytes(10) + b"\xff\xff\x0a\x00\x00\x01", b"\xff" * 16,
                 bytes.fromhex("20010db8000100000000000100000000"),
                 bytes.fromhex("20010db8000000010000000000000001")):
        assert segment.addr_text(edge) == segment.reference_addr_text(edge), edge.hex()


@needs_compiled
def test_twins_keep_every_reference_attribute() -> None:
    """Each twin class offers every slot and method of its reference (a field added to the
    reference appears in the twin; a compiled base shadows only what it re-implements)."""
    from tcptrace_py import compat, connection, facts, flowtable
    from tcptrace_py.analysis import direction, rangeset, rtt, sequence

    for module, name in ((rtt, "RttEstimator"), (rtt, "RunningStats"),
                         (rangeset, "RangeSet"), (direction, "DirectionStats"),
                         (direction, "SenderState"), (sequence, "SequenceAnalyzer"),
                         (compat, "_Endpoint"), (compat, "PeerSummary"),
                         (facts, "ProtocolFacts"),
                         (connection, "Connection"), (flowtable, "FlowTable")):
        cls = getattr(module, name)
        reference = cls.__reference__
        assert cls.__mro__[1].__module__ == "tcptrace_py._engine", name
        assert reference.__module__ == module.__name__
        for attr in (*vars(reference), *vars(reference).get("__slots__", ())):
            assert hasattr(cls, attr) or attr in ("__dict__", "__weakref__"), (name, attr)


# ------------------------------------------------------------------ the compiled decoder
@st.composite
def tcp_frames(draw: st.DrawFn) -> tuple[int, bytes]:
    """(link type, frame): a valid TCP/IP frame with random header fields and options,
    under a random link layer, then possibly cut and with a few bytes flipped."""
    ipv6 = draw(st.booleans())
    src, dst = ("2001:db8::1", "2001:db8::2") if ipv6 else ("10.0.0.1", "10.0.0.2")
    opts = draw(st.lists(st.sampled_from([
        b"\x01", b"\x00", opt_mss(1460), opt_wscale(7), b"\x04\x02", opt_ts(1, 2),
        opt_sack([(100, 200)]), opt_sack([(1, 2), (3, 4), (5, 6)]), b"\x22\x04ab",
        b"\x05\x03x", b"\x08", b"\x02\x01", b"\xfe\x00"]), max_size=6))
    options = b"".join(opts)
    options += b"\x00" * (-len(options) % 4)
    options = options[:40]
    pkt = tcp_packet(src, dst, draw(st.integers(0, 65535)), draw(st.integers(0, 65535)),
                     draw(st.integers(0, 2**32 - 1)), draw(st.integers(0, 2**32 - 1)),
                     draw(st.integers(0, 0x1FF)), window=draw(st.integers(0, 65535)),
                     payload=b"p" * draw(st.sampled_from([0, 1, 10, 1400])),
                     options=options, ipv6=ipv6)
    link = draw(st.sampled_from(["eth", "vlan", "qinq", "raw", "null", "sll", "sll2"]))
    et = b"\x86\xdd" if ipv6 else b"\x08\x00"
    if link == "eth":
        linktype, frame = 1, ethernet(pkt, 0x86DD if ipv6 else 0x0800)
    elif link == "vlan":
        linktype, frame = 1, ethernet(pkt, 0x86DD if ipv6 else 0x0800, [7])
    elif link == "qinq":
        linktype, frame = 1, ethernet(pkt, 0x86DD if ipv6 else 0x0800, [7, 8], 0x88A8)
    elif link == "raw":
        linktype, frame = draw(st.sampled_from([101, 12, 14, 229 if ipv6 else 228])), pkt
    elif link == "null":
        family = draw(st.sampled_from([10, 24, 28, 30])) if ipv6 else 2
        order = draw(st.sampled_from(["<", ">"]))
        linktype, frame = draw(st.sampled_from([0, 108])), struct.pack(order + "I",
                                                                       family) + pkt
    elif link == "sll":
        linktype, frame = 113, b"\x00" * 14 + et + pkt
    else:
        linktype, frame = 276, et + b"\x00" * 18 + pkt
    frame = frame + b"\x00" * draw(st.sampled_from([0, 0, 6]))  # Ethernet padding
    if draw(st.booleans()):
        frame = frame[:draw(st.integers(0, len(frame)))]
    for _ in range(draw(st.integers(0, 3))):
        if frame:
            i = draw(st.integers(0, len(frame) - 1))
            frame = frame[:i] + bytes([draw(st.integers(0, 255))]) + frame[i + 1:]
    return linktype, frame


@needs_compiled
@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tcp_frames())
def test_compiled_decoder_matches_reference(case: tuple[int, bytes]) -> None:
    """Differential: every structured frame (cut, flipped) decodes to the same segment,
    field for field, with the same counters, in both decoders."""
    linktype, frame = case
    index = fuzz_reader.LINKTYPES.index(linktype)
    fuzz_reader.check_frame(bytes([index]) + frame)


@needs_compiled
def test_quiet_deadline_twin_is_the_references() -> None:
    """``ConnectionBase.quiet_deadline_ns`` against ``Connection.quiet_deadline_ns`` for
    every pair of endpoint states, in and out of TIME_WAIT's clock, in C integers (with the
    longest options) and with a time beyond them (the Python integers' version)."""
    from tcptrace_py import connection
    from tcptrace_py.fsm import TcpState
    from tcptrace_py.options import Options
    from tcptrace_py.segment import Segment

    syn = Segment(1, 5 * 10**9, b"\x0a\x00\x00\x01", b"\x0a\x00\x00\x02", 40000, 80, 1000, 0,
                  0x02, 65535, 0)
    key = (syn.src, syn.sport, syn.dst, syn.dport)
    conn = connection.Connection(0, key, syn, True, False,
                                 Options(time_wait_s=30.0, attempt_timeout_s=20.0))
    # The longest options there are (1e9 s): their sums with a time still fit C integers.
    huge = connection.Connection(0, key, syn, True, False,
                                 Options(time_wait_s=1e9, attempt_timeout_s=1e9,
                                         idle_timeout_s=1e9, closed_linger_s=1e9))
    reference = connection.Connection.__reference__.quiet_deadline_ns  # type: ignore[attr-defined]
    checked = 0
    for c in (conn, huge):
        for cs in TcpState:
            for ss in TcpState:
                for tw_since in (-1, 6 * 10**9, 2**62 + 6):
                    for last in (7 * 10**9, 2**62 + 7):
                        c.client.state, c.server.state = cs, ss
                        c.client.time_wait_since_ns = tw_since
                        c.server.time_wait_since_ns = \
                            tw_since + 10**9 if tw_since >= 0 else -1
                        c.last_ts_ns = last
                        assert c.quiet_deadline_ns() == reference(c), (cs, ss, tw_since, last)
                        checked += 1
    assert checked == 2 * 3 * 2 * len(TcpState) ** 2


@needs_compiled
def test_acks_at_snd_una_are_counted_in_c_as_the_reference_counts_them(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Duplicate ACKs, window updates and SACK blocks at SND.UNA (a D-SACK below the ACK
    marking a retransmission spurious, one inside the second block, several blocks) take the
    compiled twin of ``SequenceAnalyzer._on_ack`` (``_engine._ack_at_una``), not the
    reference method, and give the reference's results: per-packet flags, counts, events
    and anomalies."""
    from tcptrace_py.analysis import sequence
    from tcptrace_py.segment import ACK, PSH, SYN

    a, b = "10.0.0.1", "10.0.0.2"
    t0 = 1_700_000_000 * 10**9
    frames: list[tuple[int, bytes]] = []

    def emit(src_is_client: bool, seq: int, ack: int, flags: int, n: int = 0,
             window: int = 1000, options: bytes = b"") -> None:
        src, dst = (a, b) if src_is_client else (b, a)
        sport, dport = (40000, 80) if src_is_client else (80, 40000)
        frames.append((t0 + 1_000_000 * len(frames), tcp_frame(
            src, dst, sport, dport, seq, ack, flags, window=window, payload=b"x" * n,
            options=options)))

    def sack(*blocks: tuple[int, int]) -> bytes:
        return b"\x01\x01" + opt_sack(list(blocks))

    emit(True, 1000, 0, SYN, options=opt_mss(1000) + opt_sack_perm() + b"\x01\x01")
    emit(False, 5000, 1001, SYN | ACK, options=opt_mss(1000) + opt_sack_perm() + b"\x01\x01")
    emit(True, 1001, 5001, ACK)
    emit(True, 1001, 5001, ACK | PSH, 1000)
    emit(False, 5001, 2001, ACK)  # new data acknowledged
    emit(True, 1001, 5001, ACK | PSH, 1000)  # a retransmission of it (spurious)
    emit(False, 5001, 2001, ACK, options=sack((1001, 2001)))  # D-SACK below the ACK
    emit(True, 2001, 5001, ACK | PSH, 1000)
    emit(True, 3001, 5001, ACK | PSH, 1000)
    emit(True, 4001, 5001, ACK | PSH, 1000)
    for blocks in ([(3001, 4001)], [(3001, 5001)], [(3001, 5001)]):  # SACKed dup ACKs
        emit(False, 5001, 2001, ACK, options=sack(*blocks))
    emit(False, 5001, 2001, ACK, options=sack((3101, 3201), (3001, 5001)))  # inside: D-SACK
    emit(False, 5001, 2001, ACK)  # a plain duplicate ACK
    emit(False, 5001, 2001, ACK, window=2000)  # a window update
    emit(True, 2001, 5001, ACK | PSH, 1000)  # the hole filled
    emit(False, 5001, 5001, ACK, window=2000)
    data = pcap_bytes(frames, nanosecond=True)

    fallbacks: list[int] = []
    real = sequence.SequenceAnalyzer._on_ack

    def counting(self: Any, seg: Any, *args: Any) -> int:
        fallbacks.append(seg.frame)
        return real(self, seg, *args)

    monkeypatch.setattr(sequence.SequenceAnalyzer, "_on_ack", counting)
    compiled = outputs(data)
    assert fallbacks and not {7, 11, 12, 13, 14, 15, 16} & set(fallbacks)
    with monkeypatch.context() as m:
        m.setattr(implementation, "compiled", None)
        assert outputs(data) == compiled
    record = next(iter(Engine(Options()).run(data))).record
    got = {k: record[k] for k in ("server_sack_pkts", "server_dsack_pkts", "server_dup_acks",
                                  "server_window_updates", "client_spurious_retransmissions",
                                  "server_max_sack_blocks")}
    assert got == {"server_sack_pkts": 5, "server_dsack_pkts": 2, "server_dup_acks": 5,
                   "server_window_updates": 1, "client_spurious_retransmissions": 0,
                   "server_max_sack_blocks": 2}


@needs_compiled
def test_steady_path_checks_the_types_it_reads() -> None:
    """The compiled steady path casts what it reads (the connection, its analyzer, sender
    states, statistics, peer summary, endpoints) through a checked cast that takes the
    twin classes, their subclasses and None, and raises TypeError for anything else, as
    Cython's ``<T?>`` did: never a wrong C layout read as the right one."""
    from tcptrace_py import connection
    from tcptrace_py.options import Options
    from tcptrace_py.segment import Segment

    assert implementation.compiled is not None
    steady = implementation.compiled.steady_segment
    a, b = b"\x0a\x00\x00\x01", b"\x0a\x00\x00\x02"
    syn = Segment(1, 10**9, a, b, 40000, 80, 1000, 0, 0x02, 65535, 0)
    ack = Segment(2, 2 * 10**9, a, b, 40000, 80, 1001, 5001, 0x10, 65535, 0)
    with pytest.raises(TypeError, match="ConnectionBase"):
        steady(object(), ack)
    conn = connection.Connection(0, (a, 40000, b, 80), syn, True, False, Options())
    assert steady(conn, ack) == -1  # a connection in its handshake: the full path's
    subclass = type("Sub", (connection.Connection,), {"__slots__": ()})
    sub = subclass(0, (a, 40000, b, 80), syn, True, False, Options())
    assert steady(sub, ack) == -1  # not a direct subclass of the base: accepted too
    conn.analyzer = object()  # type: ignore[assignment]
    with pytest.raises(TypeError, match="SequenceAnalyzerBase"):
        steady(conn, ack)


def _syn_connection_maker() -> tuple[Callable[[], Any], Any]:
    """A maker of fresh connections opened by a client's SYN at 5 s (TIME_WAIT 30 s), and
    the reference ``Connection`` class: the set-up of the timer twins' tests."""
    from tcptrace_py import connection
    from tcptrace_py.options import Options
    from tcptrace_py.segment import Segment

    syn = Segment(1, 5 * 10**9, b"\x0a\x00\x00\x01", b"\x0a\x00\x00\x02", 40000, 80, 1000, 0,
                  0x02, 65535, 0)
    key = (syn.src, syn.sport, syn.dst, syn.dport)
    options = Options(time_wait_s=30.0)

    def make() -> Any:
        return connection.Connection(0, key, syn, True, False, options)

    return make, getattr(connection.Connection, "__reference__", connection.Connection)


def test_check_timers_twin_is_the_references() -> None:
    """``ConnectionBase.check_timers`` against ``Connection.check_timers``: for every pair
    of endpoint states, TIME_WAIT clocks started or not, before and after 2MSL, a
    self-connect or not: the same states, expiry flag and events (both engines)."""
    from tcptrace_py import connection
    from tcptrace_py.fsm import TcpState

    make, reference = _syn_connection_maker()

    def run(check: Any, cs: TcpState, ss: TcpState, since: int, now: int,
            self_connect: bool) -> tuple[Any, ...]:
        conn = make()
        conn.self_connect = self_connect
        conn.client.state, conn.server.state = cs, ss
        conn.client.time_wait_since_ns = since
        conn.server.time_wait_since_ns = since + 10**9 if since >= 0 else -1
        before = len(conn.events)
        check(conn, now)
        return (conn.client.state, conn.server.state, conn.time_wait_expired,
                conn.events[before:])

    checked = 0
    for cs in TcpState:
        for ss in TcpState:
            for since, now in ((-1, 10**12), (6 * 10**9, 30 * 10**9), (6 * 10**9, 36 * 10**9),
                               (6 * 10**9, 37 * 10**9)):
                for self_connect in (False, True):
                    args = (cs, ss, since, now, self_connect)
                    assert run(connection.Connection.check_timers, *args) == \
                        run(reference.check_timers, *args), args
                    checked += 1
    assert checked == len(TcpState) ** 2 * 8


def test_finalize_twin_is_the_references() -> None:
    """``ConnectionBase.finalize`` against ``Connection.finalize`` (both engines): for every
    client state (SYN_SENT with one SYN or several, answered or not), with and without a
    retransmission run and a TIME_WAIT due by the end: the same states, events and
    ``gave_up``. The compiled one calls the reference only where it can infer something."""
    from tcptrace_py import connection
    from tcptrace_py.fsm import TcpState
    from tcptrace_py.giveup import RetransmissionRun

    make, reference = _syn_connection_maker()

    def run(finalize: Any, cs: TcpState, syns: int, answered: bool, run_: bool,
            since: int) -> tuple[Any, ...]:
        conn = make()
        conn.client.state = cs
        conn.client.time_wait_since_ns = since
        conn.pure_syn_sent = [syns, 0]
        if answered:
            conn.packets = [syns, 1]
        if run_:
            r = RetransmissionRun()  # five, backing off (1, 2, 4, 8 s apart), into silence
            t = 6 * 10**9
            for i in range(5):
                r.add(2 + i, t, 1, t - 5 * 10**9)
                t += 2**i * 10**9
            conn.retx_runs = [r, None]
            conn.last_frame = 6
            conn.silent_probes = [5, 0]
        finalize(conn, 100 * 10**9)
        return (conn.client.state, conn.server.state, conn.gave_up, list(conn.events))

    differ = gave_up = 0
    for cs in TcpState:
        for syns, answered, run_, since in ((1, False, False, -1), (3, False, False, -1),
                                            (3, True, False, -1), (1, True, True, -1),
                                            (1, True, False, 6 * 10**9)):
            args = (cs, syns, answered, run_, since)
            mine = run(connection.Connection.finalize, *args)
            assert mine == run(reference.finalize, *args), args
            differ += mine[:3] != (cs, TcpState.LISTEN, None)
            gave_up += mine[2] is not None
    assert differ > gave_up > 0  # inferences and expiries happened: the reference's cases


@needs_compiled
def test_classify_twin_is_the_references() -> None:
    """``ConnectionBase._classify_c`` gives ``Connection._classify``'s inputs for every
    flag combination of SYN, FIN, RST, ACK and PSH, from every pair of endpoint states,
    with and without FINs sent and ACKed (each side), a SYN-ACK after the ACK and a split
    SYN's count."""
    import itertools

    from tcptrace_py import connection
    from tcptrace_py.fsm import TcpState
    from tcptrace_py.options import Options
    from tcptrace_py.segment import Segment

    assert implementation.compiled is not None
    twin_classify = implementation.compiled.connection_classify
    reference = connection.Connection.__reference__._classify  # type: ignore[attr-defined]
    a, b = b"\x0a\x00\x00\x01", b"\x0a\x00\x00\x02"
    syn = Segment(1, 10**9, a, b, 40000, 80, 1000, 0, 0x02, 65535, 0)
    conn = connection.Connection(0, (a, 40000, b, 80), syn, True, False, Options())
    snd, rcv = conn.client, conn.server
    states = list(TcpState)
    checked = 0
    for flags in (0x02, 0x12, 0x03, 0x01, 0x11, 0x19, 0x10, 0x18, 0x00, 0x04, 0x14, 0x06):
        for s_state, r_state in itertools.product(states, states):
            for fins, synack_after_ack, syn_count in itertools.product(
                    range(4), (False, True), (1, 2)):
                snd.state, rcv.state = s_state, r_state
                snd.fin_sent, snd.fin_seq = bool(fins & 1), 1100
                rcv.fin_sent, rcv.fin_seq = bool(fins & 2), 5000
                rcv.synack_after_ack, rcv.handshake_ack = synack_after_ack, 1001
                conn.pure_syn_sent[0] = syn_count
                for ack, plen in ((5001, 0), (4000, 0), (1001, 0), (5001, 100)):
                    seg = Segment(2, 2 * 10**9, a, b, 40000, 80, 1000, ack, flags, 65535,
                                  plen)
                    want = reference(conn, seg, snd, rcv, 0)
                    assert twin_classify(conn, seg, snd, rcv, 0) == want, (
                        flags, s_state, r_state, fins, synack_after_ack, ack, plen)
                    checked += 1
    assert checked == 12 * len(states) ** 2 * 16 * 4


@needs_compiled
def test_is_done_twin_is_the_references() -> None:
    """``ConnectionBase.is_done`` decides as ``Connection.is_done`` for every pair of
    endpoint states."""
    import itertools

    from tcptrace_py import connection
    from tcptrace_py.fsm import TcpState
    from tcptrace_py.segment import Segment

    reference = connection.Connection.__reference__.is_done  # type: ignore[attr-defined]
    a, b = b"\x0a\x00\x00\x01", b"\x0a\x00\x00\x02"
    syn = Segment(1, 10**9, a, b, 40000, 80, 1000, 0, 0x02, 65535, 0)
    conn = connection.Connection(0, (a, 40000, b, 80), syn, True, False, Options())
    done = 0
    for cs, ss in itertools.product(TcpState, TcpState):
        conn.client.state, conn.server.state = cs, ss
        assert conn.is_done() is reference(conn), (cs, ss)
        done += conn.is_done()
    assert done > 0


@needs_compiled
def test_update_steady_twin_is_the_references() -> None:
    """``ConnectionBase.update_steady`` (with ``PeerSummary.steady`` inlined) decides as
    ``Connection.update_steady`` for every pair of endpoint states and each of the
    connection's and the Zeek endpoints' conditions on and off."""
    import itertools
    import random

    from tcptrace_py import connection
    from tcptrace_py.fsm import TcpState
    from tcptrace_py.segment import Segment

    reference = connection.Connection.__reference__.update_steady  # type: ignore[attr-defined]
    a, b = b"\x0a\x00\x00\x01", b"\x0a\x00\x00\x02"
    syn = Segment(1, 10**9, a, b, 40000, 80, 1000, 0, 0x02, 65535, 0)
    conn = connection.Connection(0, (a, 40000, b, 80), syn, True, False, Options())
    c, s, peer = conn.client, conn.server, conn.peer
    o, r = peer._eps
    rnd = random.Random(5)
    states = list(TcpState)
    seen = {True: 0, False: 0}
    for cs, ss in itertools.product(states, states):
        for _ in range(40):
            c.state, s.state = cs, ss
            if rnd.random() < 0.5:  # most draws near the steady case, to reach it
                c.state = s.state = TcpState.ESTABLISHED
            c.fin_sent, s.fin_sent = rnd.random() < 0.2, rnd.random() < 0.2
            c.time_wait_since_ns = rnd.choice([-1, -1, -1, 5])
            s.time_wait_since_ns = rnd.choice([-1, -1, -1, 5])
            conn.handshake_done_frame = rnd.choice([-1, 3, 3])
            conn.synack_sent[1] = rnd.choice([0, 1, 1])
            peer._orig = rnd.choice([-1, 0, 0])
            peer._n = rnd.choice([0, 2, 2])
            o.state = rnd.choice([4, 4, 4, 1])
            r.state = rnd.choice([4, 4, 4, 5])
            o.first_seen, r.first_seen = rnd.random() < 0.9, rnd.random() < 0.9
            reference(conn)
            want = conn.steady
            conn.steady = not want
            conn.update_steady()
            assert conn.steady == want, (cs, ss)
            seen[want] += 1
    assert seen[True] > 100 and seen[False] > 100


@needs_compiled
def test_pair_behaves_as_the_two_item_list_it_stands_for() -> None:
    """``_engine.Pair`` (a connection's per-side counters in the compiled engine) answers
    what the reference's ``[client, server]`` list does for the code that reads it."""
    import pickle

    compiled = implementation.compiled
    assert compiled is not None
    p, ref = compiled.Pair(3, -1), [3, -1]
    assert (p[0], p[1], p[-1], p[-2], len(p), list(p)) == \
        (ref[0], ref[1], ref[-1], ref[-2], len(ref), list(ref))
    assert p == ref and ref == p and p == compiled.Pair(3, -1) and p != [3, 0]
    assert repr(p) == repr(ref) and str(p) == str(ref)
    p[1] += 5
    ref[1] += 5
    assert p == ref
    for bad in (2, -3):
        with pytest.raises(IndexError):
            p[bad]
        with pytest.raises(IndexError):
            p[bad] = 0
    assert pickle.loads(pickle.dumps(p)) == p
    with pytest.raises(TypeError):
        hash(p)  # unhashable, as a list


@needs_compiled
def test_connection_pairs_are_views_of_its_fields() -> None:
    """A compiled connection keeps its [client, server] pairs as C fields: each read of
    ``conn.packets`` (or ``facts.ect``...) is a Pair viewing them, so the reference's
    ``conn.packets[side] += 1`` changes the connection, an assigned list is copied in, and
    a pickled view is a copy that does not follow the connection."""
    import pickle

    from tcptrace_py.connection import Connection
    from tcptrace_py.options import Options
    from tcptrace_py.segment import Segment

    seg = Segment(frame=1, ts_ns=10**18, src=b"\x0a\x00\x00\x01", dst=b"\x0a\x00\x00\x02",
                  sport=40000, dport=80, seq=100, ack=0, flags=0x02, window=1000,
                  payload_len=0)
    conn = Connection(0, (seg.src, 40000, seg.dst, 80), seg, True, False, Options())
    names = ("packets", "payload_bytes", "pure_syn_sent", "synack_sent", "fin_frame",
             "base_seq", "win_raw", "wscale", "rst_count", "silent_probes",
             "answered_frame", "peer_sent_at_fin", "duplicate_frames")
    initial = {n: list(getattr(conn, n)) for n in names}
    for k, name in enumerate(names):
        view = getattr(conn, name)
        view[1] += 1000 + k  # the reference's idiom, through a view
        assert getattr(conn, name)[1] == initial[name][1] + 1000 + k
    for k, name in enumerate(names):  # no pair shares another's fields
        assert list(getattr(conn, name)) == [initial[name][0], initial[name][1] + 1000 + k]
    conn.packets = [7, 9]
    kept = pickle.loads(pickle.dumps(conn.packets))
    assert conn.packets == [7, 9] and kept == [7, 9]
    conn.packets[0] = 8
    assert kept == [7, 9] and conn.packets == [8, 9]
    facts = conn.facts
    for name in ("ect", "ce", "ece", "cwr", "ecn_syn"):
        getattr(facts, name)[0] += 3
    assert [list(getattr(facts, n)) for n in ("ect", "ce", "ece", "cwr", "ecn_syn")] == \
        [[3, 0]] * 5
