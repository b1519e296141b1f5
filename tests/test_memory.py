"""Memory of connections waiting out TIME_WAIT: compaction of their per-segment history.

A closed connection stays in the flow table for TIME_WAIT (2*MSL of packet time) so late FIN
re-sends and re-ACKs land in it. Before compaction it also kept every acknowledged
``SentSegment`` for that minute, so memory followed connections closed per minute (issue 7,
docs/benchmarks.md "Memory: compaction of closed connections"). These tests write captures of
many connections closing inside one TIME_WAIT window and check that compaction runs, what it
keeps, that results do not change, and how many bytes a waiting connection still holds.
"""

from __future__ import annotations

import tracemalloc
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
from captures_util import tcp_frame, write_pcap

from tcptrace_py.analysis.sequence import COMPACT_TAIL_SEGMENTS
from tcptrace_py.capture import read_frames
from tcptrace_py.connection import Connection
from tcptrace_py.decode import Decoder
from tcptrace_py.diagnostics import Diagnostics
from tcptrace_py.engine import Engine
from tcptrace_py.flowtable import FlowTable
from tcptrace_py.options import Options
from tcptrace_py.segment import Segment

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
START_NS = 1_700_000_000 * 10**9
GAP_NS = 1_000_000  # 1 ms between packets: 200 connections close within ~10 s, < TIME_WAIT
SEG_BYTES = 1000
CLIENT_ISN, SERVER_ISN = 1000, 50_000

CLOSED_WAITING_BYTES_BOUND = 14_000
"""Bytes a compacted connection waiting out TIME_WAIT may hold (tracemalloc over the whole
flow table, divided by connections). Measured 11.8-12.5 KB on CPython 3.11 whether the
connection sent 5 or 60 segments: the connection, two endpoint machines, analyzer counters
and RTT statistics, events and notable packets (the evidence), the range set and the kept
SYN/FIN/tail records. Uncompacted the same connections held 13.8 KB (5 segments), 20.2 KB
(30) and 28.0 KB (60): every acknowledged segment stayed, up to max_tracked_segments."""

GROWTH_PER_SEGMENT_BYTES_BOUND = 40
"""Growth of the bytes a compacted waiting connection holds per extra segment it sent.
Measured ~13 B (Zeek history letters repeat at 10^n counts, the flow table's key tuples);
uncompacted it was ~257 B (a SentSegment plus two index entries)."""


def _connection(i: int, data_segments: int) -> list[bytes]:
    """Client request, server response of ``data_segments`` segments, the last carrying the
    server's FIN; the client answers with its FIN, the server sends the final ACK (server in
    TIME_WAIT, client CLOSED)."""
    c, s = f"10.1.{i // 250}.{i % 250 + 1}", "10.2.0.1"
    cp = 40000 + i
    cseq, sseq = CLIENT_ISN, SERVER_ISN
    frames = [
        tcp_frame(c, s, cp, 80, cseq, 0, SYN),
        tcp_frame(s, c, 80, cp, sseq, cseq + 1, SYN | ACK),
        tcp_frame(c, s, cp, 80, cseq + 1, sseq + 1, ACK),
        tcp_frame(c, s, cp, 80, cseq + 1, sseq + 1, PSH | ACK, payload=b"G" * 100),
    ]
    cseq += 101
    sseq += 1
    for k in range(data_segments):
        last = k == data_segments - 1
        frames.append(tcp_frame(s, c, 80, cp, sseq, cseq, (FIN | PSH | ACK) if last else ACK,
                                payload=b"d" * SEG_BYTES))
        sseq += SEG_BYTES
        if not last:
            frames.append(tcp_frame(c, s, cp, 80, cseq, sseq, ACK))
    sseq += 1  # the FIN
    frames.append(tcp_frame(c, s, cp, 80, cseq, sseq, FIN | ACK))
    frames.append(tcp_frame(s, c, 80, cp, sseq, cseq + 1, ACK))
    return frames


def _write(path: Path, frames: list[bytes]) -> Path:
    return write_pcap(path, [(START_NS + i * GAP_NS, f) for i, f in enumerate(frames)])


def _segments(path: Path) -> list[Segment]:
    diag = Diagnostics()
    decode = Decoder(diag).decode
    segs = [decode(lt, data, no, ts, wl) for no, ts, lt, data, wl in read_frames(path, diag)]
    return [s for s in segs if s is not None]


def _table_after(segs: list[Segment]) -> tuple[FlowTable, list[Connection], int]:
    """Feed the segments to a flow table (no drain); also return traced bytes it holds."""
    tracemalloc.start()
    try:
        table = FlowTable(Options())
        finished: list[Connection] = []
        for seg in segs:
            table.on_segment(seg, finished)
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    return table, finished, held


def _no_compaction(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Connection, "compact", lambda self: False)


def _dump(path: Path) -> list[Any]:
    eng = Engine(Options(keep_packets=True))
    out: list[Any] = []
    for r in eng.run(path):
        out.append((r.record, [asdict(a) for a in r.anomalies], [asdict(e) for e in r.events],
                    r.packets))
    out.append([asdict(a) for a in eng.summary.anomalies])
    return out


def test_connections_waiting_in_time_wait_are_compacted(tmp_path: Path) -> None:
    n, data_segments = 40, 12
    frames = [f for i in range(n) for f in _connection(i, data_segments)]
    table, finished, _ = _table_after(_segments(_write(tmp_path / "close.pcap", frames)))
    assert not finished  # all inside one TIME_WAIT window
    assert len(table.live) == n
    for conn in table.live.values():
        assert (conn.client.state.value, conn.server.state.value) == ("CLOSED", "TIME_WAIT")
        assert conn.compacted
        sender = conn.analyzer._s  # what the server sent: data_segments acknowledged segments
        assert sender.order is None  # nothing unacknowledged or retransmitted
        assert sorted(sender.by_start) == [1 + SEG_BYTES * k for k in
                                           range(data_segments - COMPACT_TAIL_SEGMENTS,
                                                 data_segments)]
        assert sender.syn_rec is not None and sender.fin_rec is not None
        assert sender.ranges.covered() == data_segments * SEG_BYTES  # bytes sent stay known


def test_syn_only_connections_never_allocate_segment_lists(tmp_path: Path) -> None:
    frames = [tcp_frame(f"10.3.0.{i + 1}", "10.2.0.1", 30000 + i, 80, 7 + i, 0, SYN)
              for i in range(20)]
    table, _, _ = _table_after(_segments(_write(tmp_path / "syns.pcap", frames)))
    assert len(table.live) == 20
    for conn in table.live.values():
        assert conn.analyzer._c.order is None and conn.analyzer._s.order is None
        assert conn.analyzer._c.syn_rec is not None


def test_bytes_held_per_closed_waiting_connection(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    n, few, many = 100, 5, 60
    held: dict[int, float] = {}
    segs: dict[int, list[Segment]] = {}
    for k in (few, many):
        frames = [f for i in range(n) for f in _connection(i, k)]
        segs[k] = _segments(_write(tmp_path / f"close{k}.pcap", frames))
        table, finished, total = _table_after(segs[k])
        assert len(table.live) == n and not finished
        assert all(c.compacted for c in table.live.values())
        held[k] = total / n
    assert held[many] < CLOSED_WAITING_BYTES_BOUND, held
    assert held[many] - held[few] < GROWTH_PER_SEGMENT_BYTES_BOUND * (many - few), held
    # The same capture without compaction: memory follows the segments each connection
    # sent, and the bound is not met (so the capture exercises what compaction frees).
    _no_compaction(monkeypatch)
    table, _, total = _table_after(segs[many])
    assert not any(c.compacted for c in table.live.values())
    assert total / n > CLOSED_WAITING_BYTES_BOUND
    assert total / n - held[many] > 100 * many  # >= ~100 B per forgotten segment


def test_results_identical_with_and_without_compaction(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    frames = [f for i in range(30) for f in _connection(i, 6)]
    path = _write(tmp_path / "close.pcap", frames)
    compacted = _dump(path)
    _no_compaction(monkeypatch)
    assert _dump(path) == compacted


def test_late_resends_after_both_ends_closed(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The final ACK is lost beyond the capture point: the server re-sends its last data+FIN
    segment (kept tail: same original frame as without compaction), then an old segment from
    the middle (still a retransmission with the same byte counts; its original is forgotten,
    as docs/sequence-analysis.md "Compaction" documents)."""
    data_segments = 8
    frames = _connection(0, data_segments)
    c, s, cp = "10.1.0.1", "10.2.0.1", 40000
    fin_seg_seq = SERVER_ISN + 1 + SEG_BYTES * (data_segments - 1)
    mid_seq = SERVER_ISN + 1 + SEG_BYTES * 2
    cseq = CLIENT_ISN + 101
    frames.append(tcp_frame(s, c, 80, cp, fin_seg_seq, cseq, FIN | PSH | ACK,
                            payload=b"d" * SEG_BYTES))
    frames.append(tcp_frame(c, s, cp, 80, cseq + 1, fin_seg_seq + SEG_BYTES + 1, ACK))
    frames.append(tcp_frame(s, c, 80, cp, mid_seq, cseq, ACK, payload=b"d" * SEG_BYTES))
    # The re-sends come by the retransmission timer, 200 ms on: byte-identical frames (IP ID
    # and checksum fixed by tcp_frame) 1 ms apart would be copies of the originals (see
    # duplicates.py), not re-sends.
    path = write_pcap(tmp_path / "late.pcap",
                      [(START_NS + i * GAP_NS + (200_000_000 if i >= len(frames) - 3 else 0), f)
                       for i, f in enumerate(frames)])
    original_fin_frame = 4 + 2 * (data_segments - 1) + 1
    original_mid_frame = 4 + 2 * 2 + 1

    def run() -> tuple[dict[str, Any], list[Any]]:
        eng = Engine(Options())
        (res,) = list(eng.run(path))
        segs = _segments(path)
        table = FlowTable(Options())
        for seg in segs:
            table.on_segment(seg, [])
        (conn,) = table.live.values()
        return res.record, list(conn.analyzer.retransmissions)

    record, rexmits = run()
    _no_compaction(monkeypatch)
    record_full, rexmits_full = run()

    assert [r.frame for r in rexmits] == [len(frames) - 2, len(frames)]
    fin_r, mid_r = rexmits
    assert fin_r == rexmits_full[0]  # tail kept: identical, original frame included
    assert fin_r.original_frame == original_fin_frame and fin_r.kind == "fin"
    assert rexmits_full[1].original_frame == original_mid_frame
    assert mid_r.original_frame == -1 and mid_r.since_original_ns == -1  # documented
    assert (mid_r.kind, mid_r.seq, mid_r.payload_len, mid_r.spurious) == (
        rexmits_full[1].kind, rexmits_full[1].seq, rexmits_full[1].payload_len, True)
    differs = {k for k in record if record[k] != record_full[k]}
    assert differs <= {"server_rexmit_interval_min_ms", "server_rexmit_interval_max_ms",
                       "server_rexmit_interval_avg_ms"}
    assert record["server_rexmt_data_pkts"] == 2
    assert record["server_rexmt_data_bytes"] == 2 * SEG_BYTES
    assert record["server_retransmitted_segments"] == 2


def test_rare_statistics_share_one_empty_object_until_sampled(tmp_path: Path) -> None:
    """``rexmit_interval`` and ``backoff_ratio`` of a side start as the shared ``NO_SAMPLES``
    (no object a side for what only retransmissions sample), a side that retransmits gets
    its own at its first sample, and the shared one is never added to, on either engine."""
    from tcptrace_py.analysis.rtt import NO_SAMPLES

    frames = [tcp_frame(f"10.3.0.{i + 1}", "10.2.0.1", 30000 + i, 80, 7 + i, 0, SYN)
              for i in range(3)]
    table, _, _ = _table_after(_segments(_write(tmp_path / "syns.pcap", frames)))
    for conn in table.live.values():
        for st in (conn.analyzer.client, conn.analyzer.server):
            assert st.rexmit_interval is NO_SAMPLES and st.backoff_ratio is NO_SAMPLES
    samples = Path(__file__).resolve().parents[1] / "samples"
    (rto,) = [r.record for r in Engine(Options()).run(samples / "retransmission_timeout.pcap")]
    assert (rto["client_rexmit_interval_min_ms"], rto["client_rexmit_interval_max_ms"],
            rto["client_rexmit_interval_avg_ms"], rto["client_rto_backoff_ratio_avg"]) == (
        210.727, 423.994, 282.242, 2.0)
    assert rto["server_rexmit_interval_avg_ms"] is None
    assert rto["server_rto_backoff_ratio_avg"] is None
    for name in sorted(samples.glob("*.pcap")):
        list(Engine(Options()).run(name))
    assert (NO_SAMPLES.count, NO_SAMPLES.min, NO_SAMPLES.max, NO_SAMPLES.mean) == (0, 0, 0, 0)


def _read_logs_after_each_segment(segs: list[Segment]) -> FlowTable:
    """A flow table whose connections have their events and notable packets read after
    every segment (so each log is a list from its first item on)."""
    table = FlowTable(Options())
    finished: list[Connection] = []
    for seg in segs:
        conn = table.on_segment(seg, finished)
        if conn is not None:
            assert isinstance(conn.events, list) and isinstance(conn.notable, list)
    assert not finished
    return table


def test_evidence_stays_packed_until_read_and_reads_as_the_lists(tmp_path: Path) -> None:
    """The compiled engine keeps a live connection's events and notable packets as packed
    C records (``_engine.EvRec``/``NoteRec``, ~56 bytes each against ~250 for the objects
    and their integers) until something reads them; the lists then read are those of a
    connection read after every segment, including values too large for the records
    (frame numbers beyond 2**63, which are kept as objects)."""
    from tcptrace_py import implementation

    if implementation.compiled is None:
        pytest.skip("the pure engine keeps lists")
    frames = [f for i in range(12) for f in _connection(i, 3)]
    segs = _segments(_write(tmp_path / "close.pcap", frames))
    huge = 2**64 + 5  # a frame number no C field holds: that event is kept as an object
    first_of_last = len(segs) - len(_connection(11, 3))
    segs[first_of_last].frame = huge
    table, _, _ = _table_after(segs)
    eager = _read_logs_after_each_segment(segs)
    assert len(table.live) == len(eager.live) == 12
    for key, conn in table.live.items():
        other: Any = eager.live[key]
        packed_events, packed_notable = conn.packed_evidence()  # type: ignore[attr-defined]
        assert other.packed_evidence() == (0, 0)
        if conn.first_frame == huge:
            assert packed_events == 0  # its first event did not fit: a list from there on
        else:
            assert packed_events >= 5 and packed_notable >= 4  # SYN, SYN-ACK, 2 FINs
        assert conn.events == other.events and conn.notable == other.notable
        assert conn.packed_evidence() == (0, 0)  # type: ignore[attr-defined]
        assert [(e.endpoint, e.new_state) for e in conn.events][-2:] == [
            ("server", "TIME_WAIT"), ("client", "CLOSED")]
        assert {p.sender for p in conn.notable} == {"client", "server"}


def test_fin_queries_and_the_record_keep_the_notable_packets_packed(tmp_path: Path) -> None:
    """A graceful close's FINs (``Connection.first_notable``, the close detectors'
    ``first_fin``) and the record's SYN frame and time are read from the compiled
    engine's packed notable packets without making them; the answers and the records are
    those of a connection whose packets were made after every segment (and the
    reference's: the test runs on both)."""
    from tcptrace_py import implementation
    from tcptrace_py.detectors.close import first_fin
    from tcptrace_py.report import flow_record
    from tcptrace_py.segment import FIN, RST

    frames = [f for i in range(5) for f in _connection(i, 3)]
    segs = _segments(_write(tmp_path / "close.pcap", frames))
    table, _, _ = _table_after(segs)
    eager = _read_logs_after_each_segment(segs)
    for key, conn in table.live.items():
        other: Any = eager.live[key]
        got: Any = conn
        packed = got.packed_evidence()[1] if implementation.compiled is not None else 0
        for side in (0, 1):
            fin = first_fin(conn, side)
            assert fin is not None and fin == first_fin(other, side)
            assert fin.frame == conn.fin_frame[side] and fin.flags & FIN
        assert conn.first_notable(conn.fin_frame[0], FIN | RST) is None
        assert conn.first_notable(-7, 0) is None
        assert flow_record(conn) == flow_record(other)
        if implementation.compiled is not None:
            assert packed >= 4 and got.packed_evidence()[1] == packed  # none made
        assert conn.notable == other.notable


def test_history_letters_are_shared_tuples(tmp_path: Path) -> None:
    """A connection's Zeek history holds one shared ``(letter, side)`` tuple per letter and
    side (``compat.history_entry``), not a tuple of its own per letter, on either engine;
    the history read from them is Zeek's."""
    from tcptrace_py.compat import history_entry

    frames = [f for i in range(5) for f in _connection(i, 3)]
    table, _, _ = _table_after(_segments(_write(tmp_path / "close.pcap", frames)))
    entries = [e for conn in table.live.values() for e in conn.peer._letters]
    assert len(entries) >= 5 * 6
    assert len({id(e) for e in entries}) <= 2 * len({e[0] for e in entries})
    for conn in table.live.values():
        assert conn.peer.history() == "ShADdfFa"
    assert history_entry("D", 1) == ("D", 1) and history_entry("D", 2) == ("D", 2)


def test_compacted_tail_is_packed_until_read(tmp_path: Path) -> None:
    """The compiled engine packs a compacted side's tail (its last acknowledged first
    transmissions, in ``by_start`` and ``by_end``) into C records; reading either index
    makes both dicts again, holding one tuple per record under its start and its end, as
    compaction left them."""
    from tcptrace_py import implementation

    if implementation.compiled is None:
        pytest.skip("the pure engine keeps its dicts")
    n, data_segments = 10, 6
    frames = [f for i in range(n) for f in _connection(i, data_segments)]
    table, _, _ = _table_after(_segments(_write(tmp_path / "close.pcap", frames)))
    for conn in table.live.values():
        sender: Any = conn.analyzer._s
        client: Any = conn.analyzer._c
        assert sender.packed_records() == COMPACT_TAIL_SEGMENTS
        assert client.packed_records() == 1  # the request, its one data segment
        ends = [1 + SEG_BYTES * (k + 1) for k in range(data_segments - COMPACT_TAIL_SEGMENTS,
                                                       data_segments)]
        assert list(sender.by_end) == ends  # made in the order they were sent
        assert sender.packed_records() == -1
        starts = [e - SEG_BYTES for e in ends]
        assert list(sender.by_start) == starts
        for start, end in zip(starts, ends, strict=True):
            rec = sender.by_start[start]
            assert rec is sender.by_end[end] and rec[:2] == (start, end)
        assert rec[2] > 0 and rec[3] > START_NS  # frame and time kept


def test_compacted_syn_and_fin_records_are_packed_until_read(tmp_path: Path) -> None:
    """The compiled engine packs a compacted side's SYN and FIN records (``SentSegment``s
    held by nothing but ``syn_rec``/``fin_rec``) into C fields; reading either makes the
    record again with every field it had, and a record in an index stays an object."""
    from tcptrace_py import implementation

    if implementation.compiled is None:
        pytest.skip("the pure engine keeps its records")
    frames = [f for i in range(4) for f in _connection(i, 3)]
    segs = _segments(_write(tmp_path / "close.pcap", frames))
    table, _, _ = _table_after(segs)
    first_frame = {s.frame for s in segs if s.flags & (SYN | ACK) == SYN}
    for conn in table.live.values():
        client: Any = conn.analyzer._c
        assert client.packed_controls() == (True, True)
        syn, fin = client.syn_rec, client.fin_rec
        assert client.packed_controls() == (False, False)
        assert (syn.start, syn.end, syn.control, syn.tx, syn.rexmit_index) == (0, 1, "syn", 1, -1)
        assert syn.frame in first_frame and syn.last_ts_ns == syn.ts_ns >= START_NS
        assert fin.control == "fin" and fin.end == fin.start + 1 and fin.frame > syn.frame
        assert client.syn_rec is syn  # made once


def test_timer_events_and_transition_queries_keep_the_log_packed(tmp_path: Path) -> None:
    """A timer's event (TIME_WAIT expiry) joins the compiled engine's packed log, and a
    detector's question (``transition_frames``) is answered from it, so an uneventful
    connection's ``Event``s are never made unless events are kept; both answer as a log
    read after every segment does (and as the reference: the test runs on both)."""
    from tcptrace_py import implementation

    frames = [f for i in range(6) for f in _connection(i, 3)]
    segs = _segments(_write(tmp_path / "close.pcap", frames))
    table, _, _ = _table_after(segs)
    eager = _read_logs_after_each_segment(segs)
    later = segs[-1].ts_ns + Options().time_wait_ns + 1
    for key, conn in table.live.items():
        other: Any = eager.live[key]
        for c in (conn, other):
            c.check_timers(later)  # the server's TIME_WAIT expires: a "timeout" event
        got: Any = conn
        if implementation.compiled is not None:
            packed, _ = got.packed_evidence()
            assert packed >= 6
        assert conn.transition_frames("TIME_WAIT") == other.transition_frames("TIME_WAIT")
        assert len(conn.transition_frames("TIME_WAIT")) == 1
        assert conn.transition_frames("CLOSING") == [] and conn.transition_frames("NOPE") == []
        if implementation.compiled is not None:
            assert got.packed_evidence()[0] == packed  # answered without making events
        assert conn.events == other.events
        last = conn.events[-1]
        assert (last.kind, last.direction, last.flags, last.old_state, last.new_state) == (
            "timeout", "timer", "", "TIME_WAIT", "CLOSED")


def _index_view(sender: Any) -> tuple[Any, ...]:
    """A sender's indexes and ``order`` by value, keys in their order (reading them makes
    the compiled engine's pending and packed records enter them)."""

    def rec(r: Any) -> tuple[Any, ...]:
        return tuple(r) if type(r) is tuple else ("sent", r.start, r.end, r.frame, r.ts_ns,
                                                   r.control, r.tx)

    order = sender.order
    return ([(k, rec(v)) for k, v in sender.by_start.items()],
            [(k, rec(v)) for k, v in sender.by_end.items()],
            None if order is None else [rec(r) for r in order])


@pytest.mark.parametrize("tracked", [4096, 6])
@pytest.mark.parametrize("close", [False, True])
def test_pending_index_entries_read_as_if_entered_at_once(tmp_path: Path, tracked: int,
                                                          close: bool) -> None:
    """The compiled engine keeps in-order data records out of the sender's ``by_start`` and
    ``by_end`` until something reads them (``SenderStateBase._flush``); the ACK path, the
    prune (``tracked`` 6 prunes every few segments) and the compaction (``close``) take
    them as the indexes' last entries. Fed the same segments, a table whose indexes are
    read after every segment (nothing ever waits) ends with the same indexes, key for key
    and in the same order, and the same ``order``; so do the records both write."""
    from tcptrace_py import implementation
    from tcptrace_py.analysis import AnalysisOptions

    frames = [f for i in range(3) for f in _connection(i, 20)]
    if not close:  # drop each connection's last data segment (with its FIN) and the close
        frames = [f for i in range(3) for f in _connection(i, 20)[:-3]]
    segs = _segments(_write(tmp_path / "pending.pcap", frames))
    options = Options(analysis=AnalysisOptions(max_tracked_segments=tracked))
    untouched, read = FlowTable(options), FlowTable(options)
    done_untouched: list[Connection] = []
    done_read: list[Connection] = []
    for seg in segs:
        untouched.on_segment(seg, done_untouched)
        read.on_segment(seg, done_read)
        for conn in read.live.values():
            sender: Any
            for sender in (conn.analyzer._c, conn.analyzer._s):
                sender.by_end  # noqa: B018 - the read completes the indexes
                assert implementation.compiled is None or sender.pending_records() == 0
    assert len(untouched.live) == len(read.live) == 3
    conns = list(untouched.live.values())
    if implementation.compiled is not None and not close:
        senders: list[Any] = [c.analyzer._s for c in conns]
        assert all(s.pending_records() > 0 for s in senders)
    for a, b in zip(conns, read.live.values(), strict=True):
        assert a.compacted == b.compacted == close
        for side in ("_c", "_s"):
            assert _index_view(getattr(a.analyzer, side)) == \
                _index_view(getattr(b.analyzer, side))
        assert a.analyzer.columns() == b.analyzer.columns()
