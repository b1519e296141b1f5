"""``--jobs N``: one capture split over N processes gives exactly the output of one.

Why: users trust ``--jobs`` only if nothing changes but the time. These tests compare jobs 1,
2 and 3 on every capture the tests can reach (../shared captures and kernel scenarios,
samples/), on a capture built here to make every capture-wide detector merge state across
workers (scan, RST storm, SYN-ACK findings capped per server), and on a generated benchmark
capture (sweeps, thousands of flow ids, streaming order), and check that each worker only
holds its own connections (the hash split) and what the processes' memory adds up to.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import asdict
from itertools import islice
from pathlib import Path
from typing import Any

import pytest
from captures_util import tcp_frame, write_pcap
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from tcptrace_py.cli import main
from tcptrace_py.engine import Engine
from tcptrace_py.flowtable import slot_of
from tcptrace_py.options import Options
from tcptrace_py.parallel import ParallelEngine, engine_for, shard_items, shard_ranges

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(__file__).resolve().parents[2] / "shared"
SUFFIXES = (".pcap", ".pcapng", ".cap", ".dmp", ".gz")

FIN, SYN, RST, ACK = 0x01, 0x02, 0x04, 0x10


def _captures() -> list[Path]:
    found = sorted(p for p in (REPO / "samples").iterdir() if p.suffix in SUFFIXES)
    for sub in ("captures", "scenarios"):
        root = SHARED / sub
        if root.is_dir():
            found += sorted(p for p in root.rglob("*") if p.is_file()
                            and p.name.endswith(SUFFIXES) and "expected" not in p.parts)
    return found


def everything(engine: Engine | ParallelEngine, path: Path,
               options: Options | None = None) -> dict[str, Any]:
    """Every output of one run: records, findings, events and packet rows in order, the
    capture-wide findings, the summary's counters and the diagnostics (or the error)."""
    try:
        results = list(engine.run(str(path)))
    except Exception as exc:  # noqa: BLE001 - the same error is the same output
        return {"error": f"{type(exc).__name__}: {exc}"}
    s, d = engine.summary, engine.diag
    out: dict[str, Any] = json.loads(json.dumps({
        "records": [r.record for r in results],
        "anomalies": [[asdict(a) for a in r.anomalies] for r in results],
        "events": [[asdict(e) for e in r.events] for r in results],
        "packets": [r.packets for r in results],
        "capture_wide": [asdict(a) for a in s.anomalies],
        "summary": [s.connections, s.tracking_capped, s.tracking_dropped,
                    s.evicted_table_full, s.peak_live_connections],
        "diag": [d.frames, d.tcp_segments, sorted(d.skipped.items()),
                 sorted(d.link_types.items()), [(str(w), w.code) for w in d.warnings],
                 d.warnings_dropped, d.first_ts_ns, d.last_ts_ns, sorted(d.notes.items())],
    }, default=repr))
    return out


def _same_for_jobs(path: Path, options: Options | None = None,
                   jobs: tuple[int, ...] = (2, 3)) -> dict[str, Any]:
    one = everything(Engine(options), path)
    for n in jobs:
        assert everything(ParallelEngine(options, n), path) == one, f"--jobs {n} differs"
    return one


CAPTURES = _captures()


@pytest.fixture(autouse=True)
def _workers_forked(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Workers start as the command line starts them: by fork (its process runs no other
    thread), so a classic pcap file goes through the rings the calling process fills. A
    thread another test module leaves running would make ``start_method`` choose forkserver
    in this process, and the rings would go untested. The tests of that choice keep it
    (``@pytest.mark.real_start_method``)."""
    if request.node.get_closest_marker("real_start_method") is None:
        from tcptrace_py import parallel

        monkeypatch.setattr(parallel, "start_method", lambda: "fork")


@pytest.mark.parametrize("path", CAPTURES, ids=[p.name for p in CAPTURES])
def test_every_capture_same_output_on_1_2_3_jobs(path: Path) -> None:
    _same_for_jobs(path)


def test_reached_shared_captures() -> None:
    if not (SHARED / "captures").is_dir():
        pytest.skip("../shared absent")
    assert len(CAPTURES) > 100  # samples, public captures and kernel scenarios


def _merge_capture(path: Path) -> Path:
    """Connections whose capture-wide findings need every worker's share, spread over many
    4-tuples (so over every shard): a port scan (40 refused probes from one source), an RST
    storm (150 connections reset within a second), and 30 half-open connections to one
    server whose SYN-ACK is retransmitted (per-server cap: ``synack.max_per_server``)."""
    t0 = 1_700_000_000 * 10**9
    frames: list[tuple[int, bytes]] = []
    ms = 1_000_000

    def at(ts: int, frame: bytes) -> None:
        frames.append((ts, frame))

    scanner, target = "203.0.113.9", "10.0.0.1"
    for i in range(40):
        at(t0 + i * ms, tcp_frame(scanner, target, 40000, 1000 + i, 7, 0, SYN))
        at(t0 + i * ms + 100, tcp_frame(target, scanner, 1000 + i, 40000, 0, 8, RST | ACK))
    base = t0 + 100 * ms
    for i in range(150):
        c, s, cp = f"10.1.{i // 200}.{i % 200 + 1}", "10.2.0.1", 30000 + i
        ts = base + i * 4 * ms
        at(ts, tcp_frame(c, s, cp, 443, 100, 0, SYN))
        at(ts + 10, tcp_frame(s, c, 443, cp, 500, 101, SYN | ACK))
        at(ts + 20, tcp_frame(c, s, cp, 443, 101, 501, ACK))
        at(ts + 30, tcp_frame(s, c, 443, cp, 501, 101, RST))
    base = t0 + 5000 * ms
    for i in range(30):
        c, s, cp = f"10.3.0.{i + 1}", "10.4.0.1", 20000 + i
        ts = base + i * 10 * ms
        at(ts, tcp_frame(c, s, cp, 8080, 9000, 0, SYN))
        at(ts + 100, tcp_frame(s, c, 8080, cp, 7000, 9001, SYN | ACK))
        at(ts + 1000 * ms, tcp_frame(s, c, 8080, cp, 7000, 9001, SYN | ACK))
    frames.sort(key=lambda f: f[0])
    return write_pcap(path, frames)


def test_capture_wide_findings_merged_from_every_worker(tmp_path: Path) -> None:
    path = _merge_capture(tmp_path / "merge.pcap")
    options = Options(detector_params={"synack.max_per_server": 5})
    one = _same_for_jobs(path, options)
    wide = {a["code"]: a for a in one["capture_wide"]}
    assert {"port_scan", "rst_storm", "synack_retransmission", "half_open"} <= set(wide)
    assert wide["synack_retransmission"]["details"]["not_listed"] == 25
    listed = [a for per in one["anomalies"] for a in per
              if a["code"] == "synack_retransmission"]
    assert len(listed) == 5  # the cap counted over every worker, in one engine's order
    # The capture's connections really are spread over the workers.
    assert len(one["records"]) == 220
    assert all(1 < sum(1 for r in one["records"] if _shard(r, 3) == k) for k in range(3))


def _shard(rec: dict[str, Any], shards: int) -> int:
    import ipaddress

    c = ipaddress.ip_address(rec["client_ip"]).packed
    s = ipaddress.ip_address(rec["server_ip"]).packed
    slot = slot_of(c, rec["client_port"], s, rec["server_port"])
    assert slot == slot_of(s, rec["server_port"], c, rec["client_port"])  # symmetric
    return next(k for k, (lo, hi) in enumerate(shard_ranges(shards)) if lo <= slot < hi)


def test_each_worker_analyses_only_its_own_connections() -> None:
    """The split is by connection: the shards' connections partition one engine's, each
    is the shard its 4-tuple hashes to (both directions), and each frame is counted once."""
    path = REPO / "samples" / "rst_storm.pcap"
    one = everything(Engine(), path)
    by_start = {(r["first_frame"], r["client_port"]): r for r in one["records"]}
    seen: list[tuple[int, int]] = []
    for k in range(3):
        engine = Engine(shard=(k, *shard_ranges(3)[k]))
        mine = [it[3].record for it in shard_items(engine, str(path), None, False)
                if it[0] == "r"]
        assert mine and all(_shard(r, 3) == k for r in mine)
        assert engine.table.peak_live < len(one["records"])
        seen += [(r["first_frame"], r["client_port"]) for r in mine]
    assert sorted(seen) == sorted(by_start)


def test_incarnation_ended_by_a_held_syns_answer_keeps_its_place(tmp_path: Path) -> None:
    """A SYN with a new ISN on an established connection is held until the server answers;
    a SYN-ACK ends the old incarnation, which one flow table hands over at its next step
    (here: another connection's new incarnation, in another worker). The workers must put
    it first, as one table does."""
    srv, ca, cf, pa = "10.0.0.1", "10.0.0.2", "10.0.0.3", 40000
    pf = next(p for p in range(41000, 42000)
              if all(_worker_of(cf, p, srv, 80, n) != _worker_of(ca, pa, srv, 80, n)
                     for n in (2, 3)))
    ms, t0 = 1_000_000, 1_700_000_000 * 10**9
    frames = [
        (0, tcp_frame(ca, srv, pa, 80, 1000, 0, SYN)),
        (1, tcp_frame(srv, ca, 80, pa, 5000, 1001, SYN | ACK)),
        (2, tcp_frame(ca, srv, pa, 80, 1001, 5001, ACK, payload=b"x" * 10)),
        (3, tcp_frame(srv, ca, 80, pa, 5001, 1011, ACK)),
        (10, tcp_frame(cf, srv, pf, 80, 100, 0, SYN)),
        (11, tcp_frame(srv, cf, 80, pf, 700, 101, SYN | ACK)),
        (12, tcp_frame(cf, srv, pf, 80, 101, 701, ACK)),
        (13, tcp_frame(cf, srv, pf, 80, 101, 701, FIN | ACK)),
        (14, tcp_frame(srv, cf, 80, pf, 701, 102, FIN | ACK)),
        (15, tcp_frame(cf, srv, pf, 80, 102, 702, ACK)),  # the client in TIME_WAIT
        (500, tcp_frame(ca, srv, pa, 80, 90000, 0, SYN)),  # new ISN: held
        (501, tcp_frame(srv, ca, 80, pa, 77000, 90001, SYN | ACK)),  # answered: released
        (502, tcp_frame(cf, srv, pf, 80, 5555, 0, SYN)),  # TIME_WAIT reuse: ends F
        (503, tcp_frame(srv, cf, 80, pf, 8888, 5556, SYN | ACK)),
        (504, tcp_frame(cf, srv, pf, 80, 5556, 8889, ACK)),
    ]
    path = write_pcap(tmp_path / "held.pcap", [(t0 + t * ms, f) for t, f in frames])
    one = _same_for_jobs(path)
    assert [(r["client_port"], r["incarnation"], r["end_reason"]) for r in one["records"]] \
        == [(pa, 0, "new_incarnation"), (pf, 0, "new_incarnation"), (pa, 1, "capture_end"),
            (pf, 1, "capture_end")]


def test_icmp_error_counted_once_by_its_connections_worker() -> None:
    path = REPO / "samples" / "net_unreachable.pcap"
    one = _same_for_jobs(path)
    assert dict(map(tuple, one["diag"][-1]))["icmp_errors"] == 1
    assert [a["code"] for a in one["anomalies"][0]] == ["icmp_unreachable"]


def test_cli_streams_the_same_bytes(tmp_path: Path) -> None:
    path = _merge_capture(tmp_path / "merge.pcap")
    runner = CliRunner()
    for cmd in (["analyze", "--format", "jsonl"], ["anomalies", "--format", "jsonl"],
                ["summary", "--format", "json"], ["analyze", "--format", "csv"]):
        outs = [runner.invoke(main, [*cmd, str(path), "--jobs", str(n)]) for n in (1, 2, 3)]
        assert all(o.exit_code == 0 for o in outs), [o.output for o in outs]
        assert outs[0].output and outs[1].output == outs[0].output == outs[2].output


def test_api_jobs_keyword(tmp_path: Path) -> None:
    import tcptrace_py

    path = _merge_capture(tmp_path / "merge.pcap")
    one = list(tcptrace_py.iter_flows(path))
    assert list(tcptrace_py.iter_flows(path, jobs=2)) == one
    res = tcptrace_py.analyze(str(path), jobs=3)
    assert res.flows.flow_id.tolist() == [r["flow_id"] for r in one]
    # Bytes and file objects are read once: jobs is then ignored, never an error.
    assert list(tcptrace_py.iter_flows(path.read_bytes(), jobs=2)) == one


def test_packet_rows_renumbered_and_packet_flows_run_once(tmp_path: Path) -> None:
    path = _merge_capture(tmp_path / "merge.pcap")
    one = _same_for_jobs(path, Options(keep_packets=True), jobs=(2,))
    assert all(row[2] == rec["flow_id"] for rec, rows in zip(one["records"], one["packets"],
                                                            strict=True) for row in rows)
    # packet_flows names flow ids, which a worker does not know: one process runs it.
    chosen = Options(keep_packets=True, packet_flows=(7,))
    assert type(engine_for(chosen, 2, path)) is Engine
    with pytest.raises(ValueError, match="packet_flows"):
        ParallelEngine(chosen, 2)


GENERATED_PACKETS = 200_000
"""Packets of the generated capture of the memory test: a few seconds of analysis, ~300
connections live at once, 2 700 connections (sweeps hand over connections in every phase)."""

MEMORY_RATIO_BOUND = 1.5
"""Peak RSS of every process of --jobs 2, added up, over --jobs 1's (the issue's bound).
Measured 1.37 on 200 k packets (74 MB for one process; 54 + 47 MB for two: each worker
holds only its own connections, but both carry an interpreter)."""

_RSS_SCRIPT = """
import hashlib, json, resource, sys
from tcptrace_py.gcpolicy import collector_paused
from tcptrace_py.options import Options
from tcptrace_py.parallel import ParallelEngine, engine_for
path, jobs = sys.argv[1], int(sys.argv[2])
engine = engine_for(Options(), jobs, path)
h = hashlib.sha256()
with collector_paused():
    for r in engine.run(path):
        h.update(json.dumps([r.record, [a.summary for a in r.anomalies]],
                            default=repr).encode())
h.update(json.dumps([a.summary for a in engine.summary.anomalies]).encode())
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
if isinstance(engine, ParallelEngine):
    rss += sum(engine.worker_peak_rss_kib[1:])
print(json.dumps({"digest": h.hexdigest(), "rss_kib": rss}))
"""


def test_generated_capture_same_output_and_memory(tmp_path: Path) -> None:
    path = tmp_path / "gen.pcap"
    subprocess.run([sys.executable, str(REPO / "bench" / "gen_capture.py"), "--packets",
                    str(GENERATED_PACKETS), "-o", str(path), "--no-meta"], check=True)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    runs = {}
    for jobs in (1, 2):
        out = subprocess.run([sys.executable, "-c", _RSS_SCRIPT, str(path), str(jobs)],
                             check=True, capture_output=True, text=True, env=env).stdout
        runs[jobs] = json.loads(out)
    assert runs[2]["digest"] == runs[1]["digest"]
    assert runs[2]["rss_kib"] <= MEMORY_RATIO_BOUND * runs[1]["rss_kib"], runs


def test_full_connection_table_is_said_to_differ() -> None:
    """Evictions when the table is full depend on every live connection; a worker only sees
    its own, so the run says its early emissions may differ from --jobs 1."""
    path = REPO / "samples" / "syn_flood.pcap"
    small = Options(max_connections=20)
    engine = ParallelEngine(small, 2)
    results = list(engine.run(str(path)))
    codes = [w.code for w in engine.diag.warnings]
    assert "table_full" in codes and "jobs_table_full" in codes
    assert sum(r.record["end_reason"] == "table_full" for r in results) == \
        engine.summary.evicted_table_full > 0
    roomy = ParallelEngine(Options(), 2)
    list(roomy.run(str(path)))
    assert "jobs_table_full" not in [w.code for w in roomy.diag.warnings]


def test_damaged_capture_same_warning_or_error(tmp_path: Path) -> None:
    """A capture cut mid-record: the same warning (counted once) without --strict, the
    same CaptureError with it, from the calling process or a worker."""
    from tcptrace_py.diagnostics import CaptureError

    data = _merge_capture(tmp_path / "merge.pcap").read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(data[: len(data) - 30])
    one = _same_for_jobs(cut)
    assert [c for _, c in one["diag"][4]] == ["truncated_record"]
    with pytest.raises(CaptureError) as single:
        list(Engine().run(str(cut), strict=True))
    for n in (2, 3):
        with pytest.raises(CaptureError) as split:
            list(ParallelEngine(None, n).run(str(cut), strict=True))
        assert str(split.value) == str(single.value)


# --------------------------------------------------------------- other workers' segments
# A worker drops the segments of other workers' connections before building them (the
# compiled pcap loop) or at the flow table's slot test (the reference); either way after
# the packet clock and the sweep saw them, and after the decoder counted what it counts.

def _as_pcapng(path: Path) -> Path:
    """The same frames as a pcapng file (Enhanced Packet Blocks: the compiled block loop)."""
    from captures_util import write_pcapng

    from tcptrace_py.capture import read_frames
    from tcptrace_py.diagnostics import Diagnostics

    frames = [(ts, data, wire) for _, ts, _, data, wire in read_frames(path, Diagnostics())]
    return write_pcapng(path.with_suffix(".pcapng"), frames)


def _worker_of(c: str, cp: int, s: str, sp: int, n: int) -> int:
    import ipaddress

    slot = slot_of(ipaddress.ip_address(c).packed, cp, ipaddress.ip_address(s).packed, sp)
    return next(k for k, (lo, hi) in enumerate(shard_ranges(n)) if lo <= slot < hi)


def _odd_frames_capture(path: Path) -> Path:
    """Connections on every worker whose segments carry what the decoder counts: malformed
    TCP options (a length below 2, a length past the header), a header cut by the snaplen
    inside its options, a UDP datagram; and valid options."""
    from captures_util import ethernet, ip_packet, opt_mss, opt_sack, opt_ts

    t0, ms = 1_700_000_000 * 10**9, 1_000_000
    frames: list[tuple[int, bytes, int]] = []
    srv = "10.9.0.1"
    for i in range(24):
        c, cp = f"10.9.1.{i + 1}", 50000 + i
        ts = t0 + i * 10 * ms

        def add(dt: int, frame: bytes, wire: int | None = None, ts: int = ts) -> None:
            frames.append((ts + dt, frame, len(frame) if wire is None else wire))

        add(0, tcp_frame(c, srv, cp, 80, 100, 0, SYN, options=opt_mss(1460)))
        add(1, tcp_frame(srv, c, 80, cp, 900, 101, SYN | ACK, options=opt_mss(1400)))
        add(2, tcp_frame(c, srv, cp, 80, 101, 901, ACK, options=b"\x13\x01\x00\x00"))
        add(3, tcp_frame(srv, c, 80, cp, 901, 101, ACK, payload=b"y" * 20,
                         options=b"\x02\x08\x05\xb4"))
        add(4, tcp_frame(c, srv, cp, 80, 101, 921, ACK,
                         options=opt_ts(5, 6) + b"\x01\x01" + opt_sack([(1, 2)])
                         + b"\x00\x00"))
        cut = tcp_frame(c, srv, cp, 80, 101, 921, ACK | 0x08, payload=b"z" * 30,
                        options=opt_ts(7, 8) + b"\x01\x01")
        add(5, cut[:14 + 20 + 26], len(cut))  # header cut inside its options
        add(6, ethernet(ip_packet(c, srv, 17, b"\x00\x35\x00\x35\x00\x0c\x00\x00abcd")))
    frames.sort(key=lambda f: f[0])
    return write_pcap(path, frames)


def _diag_without_engine_counts(d: Any) -> list[Any]:
    """What every worker's reading must count alike (``Diagnostics``, less the engine's
    ICMP counts and capture-wide warnings, which the parent makes)."""
    from tcptrace_py.parallel import ENGINE_NOTES

    wide = {"table_full", "tracking_capped"}
    return [d.frames, d.tcp_segments, sorted(d.skipped.items()), sorted(d.link_types.items()),
            [(str(w), w.code) for w in d.warnings if w.code not in wide],
            d.warnings_dropped, d.first_ts_ns, d.last_ts_ns,
            sorted((k, v) for k, v in d.notes.items() if k not in ENGINE_NOTES and v)]


def test_worker_owning_no_connection_counts_what_one_engine_counts(tmp_path: Path) -> None:
    """A worker whose slots hold no connection builds none of the capture's segments, yet
    its diagnostics (frames, segments, skips, malformed options, warnings, time range) and
    its capture end are one engine's: it is worker 0's reading that the output reports."""
    from tcptrace_py.diagnostics import CaptureError

    built = _odd_frames_capture(tmp_path / "odd.pcap")
    for path in [built, _as_pcapng(built), *CAPTURES]:
        one = Engine()
        try:
            list(one.run(str(path)))
        except CaptureError:
            continue  # not a capture (test_damaged_capture_same_warning_or_error)
        idle = Engine(shard=(0, SHARD_SLOTS_ALL, SHARD_SLOTS_ALL))
        items = list(shard_items(idle, str(path), None, False))
        assert [it[0] for it in items] == ["e"], path
        assert _diag_without_engine_counts(idle.diag) == \
            _diag_without_engine_counts(one.diag), path
        assert items[-1][6] == one.end_ns, path
    counted = Engine()
    list(counted.run(str(built)))
    notes = counted.diag.notes
    assert notes["malformed_tcp_option"] == 48 and counted.diag.skipped, notes


@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
def test_odd_frames_same_output_on_1_2_3_jobs(tmp_path: Path, fmt: str) -> None:
    path = _odd_frames_capture(tmp_path / "odd.pcap")
    one = _same_for_jobs(path if fmt == "pcap" else _as_pcapng(path))
    assert len(one["records"]) == 24
    assert {_worker_of(r["client_ip"], r["client_port"], r["server_ip"], 80, 2)
            for r in one["records"]} == {0, 1}


@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
def test_other_workers_segment_sweeps_this_workers_connection(tmp_path: Path,
                                                              fmt: str) -> None:
    """Connection A goes quiet; only connection B, another worker's, has segments later.
    One flow table ends A at the sweep one of B's segments triggers (idle timeout): A's
    worker, which never builds B's segments, must advance its clock and sweep on them."""
    srv, ca, cb, pa = "10.7.0.1", "10.7.0.2", "10.7.0.3", 40000
    pb = next(p for p in range(41000, 42000)
              if all(_worker_of(cb, p, srv, 80, n) != _worker_of(ca, pa, srv, 80, n)
                     for n in (2, 3)))
    s, t0 = 1_000_000_000, 1_700_000_000 * 10**9
    frames = [
        (0, tcp_frame(ca, srv, pa, 80, 1000, 0, SYN)),
        (1, tcp_frame(srv, ca, 80, pa, 5000, 1001, SYN | ACK)),
        (2, tcp_frame(ca, srv, pa, 80, 1001, 5001, ACK, payload=b"a" * 10)),
        (3, tcp_frame(srv, ca, 80, pa, 5001, 1011, ACK)),
        (10, tcp_frame(cb, srv, pb, 80, 100, 0, SYN)),
        (11, tcp_frame(srv, cb, 80, pb, 700, 101, SYN | ACK)),
        (12, tcp_frame(cb, srv, pb, 80, 101, 701, ACK)),
    ]
    for k in range(1, 12):  # B alone, one segment a second
        frames.append((k * 1000 + 500, tcp_frame(cb, srv, pb, 80, 101 + k, 701, ACK,
                                                 payload=b"b")))
    path = write_pcap(tmp_path / "sweep.pcap",
                      [(t0 + t * s // 1000, f) for t, f in frames])
    if fmt == "pcapng":
        path = _as_pcapng(path)
    options = Options(idle_timeout_s=5.0)
    one = _same_for_jobs(path, options)
    recs = [(r["client_port"], r["end_reason"]) for r in one["records"]]
    assert recs == [(pa, "idle_timeout"), (pb, "capture_end")]
    # A's worker alone: A ends in the sweep (its deadline heap: phase 1) of frame 12, B's
    # segment at 5.5 s, which this worker never built.
    k = _worker_of(ca, pa, srv, 80, 2)
    engine = Engine(options, shard=(k, *shard_ranges(2)[k]))
    ended = [it for it in shard_items(engine, str(path), None, False) if it[0] == "r"]
    assert [(it[3].record["client_port"], it[1][:2]) for it in ended] == [(pa, (12, 1))]


@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
def test_other_workers_segments_never_reach_the_flow_table(tmp_path: Path, fmt: str) -> None:
    """With the compiled engine a worker's flow table sees only its own connections'
    segments: the others are dropped in the pcap loop (or pcapng's loop over Enhanced
    Packet Blocks), before a Segment is built."""
    from tcptrace_py import implementation

    if implementation.compiled is None:
        pytest.skip("the reference reader builds every segment (its flow table drops them)")
    path = _merge_capture(tmp_path / "merge.pcap")
    if fmt == "pcapng":
        path = _as_pcapng(path)
    from tcptrace_py.capture import read_segments
    from tcptrace_py.decode import Decoder
    from tcptrace_py.diagnostics import Diagnostics

    diag = Diagnostics()
    slots = [slot_of(g.src, g.sport, g.dst, g.dport)
             for g in read_segments(str(path), diag, Decoder(diag))]
    for k, (lo, hi) in enumerate(shard_ranges(2)):
        engine = Engine(shard=(k, lo, hi))
        table = engine.table
        seen: list[int] = []

        def counting(seg: Any, finished: list[Any], table: Any = table,
                     seen: list[int] = seen) -> Any:
            seen.append(slot_of(seg.src, seg.sport, seg.dst, seg.dport))
            return type(table).on_segment(table, seg, finished)

        table.on_segment = counting  # type: ignore[method-assign]  # the Router's call
        list(shard_items(engine, str(path), None, False))
        assert seen == [x for x in slots if lo <= x < hi]
        assert 0 < len(seen) < len(slots)


def test_router_calls_the_compiled_on_segment_directly_unless_it_is_replaced() -> None:
    """The compiled pcap loop's Router calls the table's compiled ``on_segment`` without
    the per-segment lookup of an override, and the override when the instance (the test
    above) or the class replaces it."""
    from tcptrace_py import implementation

    if implementation.compiled is None:
        pytest.skip("no Router without the compiled engine")
    engine = Engine()
    assert engine.router([], []).direct
    table = engine.table
    table.on_segment = lambda seg, finished: None  # type: ignore[method-assign]
    assert not engine.router([], []).direct

    class Replaced(type(table)):  # type: ignore[misc]
        def on_segment(self, seg: Any, finished: list[Any]) -> Any:
            return None

    engine.table = Replaced(engine.options)
    assert not engine.router([], []).direct


SHARD_SLOTS_ALL = 4096
"""``flowtable.SHARD_SLOTS``: a worker whose range is [4096, 4096) owns no slot."""


def test_calling_process_runs_ahead_while_a_worker_is_behind() -> None:
    """While a worker's batch is pending, the calling process computes its own items ahead
    (``_RunAhead``) instead of idling; the merge still sees every item once, in order."""
    import pickle
    import threading
    import time
    from multiprocessing import Pipe

    from tcptrace_py import parallel

    own_items = [("a", (i, 3, -1, 0), 0, i, 1) for i in range(10)]
    own = parallel._RunAhead(iter(own_items))
    recv, send = Pipe(duplex=False)
    theirs = [("a", (i, 3, -1, 1), 1, i, 1) for i in range(3)] + [("e", (1 << 62,), 1)]

    def late_worker() -> None:
        time.sleep(0.2)
        parallel._write_message(send.fileno(), pickle.dumps((theirs, [])), [])

    thread = threading.Thread(target=late_worker)
    thread.start()
    stream = parallel._WorkerStream(recv, own).items()
    first = next(stream)
    thread.join()
    # Waiting for the worker's batch, the calling process computed all of its items.
    assert own.done and list(own.ahead) == own_items
    assert first == theirs[0] and list(stream) == theirs[1:]
    assert list(own) == own_items


def test_readiness_says_what_pipe_poll_says() -> None:
    """The run-ahead loop's cheap check agrees with ``Connection.poll()``: nothing yet, a
    batch waiting, and the worker's end of the pipe closed (the read then raises EOF)."""
    from multiprocessing import Pipe

    from tcptrace_py import parallel

    recv, send = Pipe(duplex=False)
    arrived = parallel._readiness(recv)
    assert not arrived() and not recv.poll()
    send.send_bytes(b"batch")
    assert arrived() and recv.poll()
    assert recv.recv_bytes() == b"batch"
    assert not arrived() and not recv.poll()
    send.close()
    assert arrived() and recv.poll()
    with pytest.raises(EOFError):
        recv.recv_bytes()
    recv.close()


@pytest.mark.parametrize("widen", [False, True])
def test_recv_message_reads_what_write_message_wrote(widen: bool) -> None:
    """The calling process reads a worker's messages itself (``_recv_message`` into one
    buffer kept for every pickled part, ``Inbox``; the lines behind it into a buffer of
    their own): the same bytes ``_write_message`` wrote, pickled parts and lines small,
    larger than the pipe's buffer and empty, a small one after a large one, in order, from
    a sender that writes while the reader reads; at the worker's end of the pipe, EOFError
    as ``recv_bytes`` raises it."""
    import random
    import threading
    from multiprocessing import Pipe

    from tcptrace_py import parallel

    recv, send = Pipe(duplex=False)
    if widen:
        parallel._widen(recv)
    rng = random.Random(7)
    messages = [(b"", []), (b"x", [b"a\n"]), (rng.randbytes(70_000), []),
                (rng.randbytes(3 << 20), [rng.randbytes(5000) for _ in range(300)]),
                (b"end", [b"", b"b\n", rng.randbytes(2 << 20)]),
                (rng.randbytes(1 << 20), [b"c\n"] * 1500)]

    def worker() -> None:
        for pickled, lines in messages:
            parallel._write_message(send.fileno(), pickled, lines)
        send.close()

    thread = threading.Thread(target=worker)
    thread.start()
    inbox = parallel.Inbox()
    got = []
    for _ in messages:
        with parallel._recv_message(recv.fileno(), inbox) as view:
            pickled = bytes(view)
        got.append((pickled, bytes(inbox.lines(recv.fileno()))))
    thread.join()
    assert got == [(pickled, b"".join(lines)) for pickled, lines in messages]
    assert len(inbox.buf) == 3 << 20  # one buffer, grown to the largest pickled part
    with pytest.raises(EOFError):
        parallel._recv_message(recv.fileno(), inbox)
    recv.close()


def test_a_batch_s_lines_travel_beside_it_and_come_back_in_order() -> None:
    """A worker's batch is pickled without its records' lines (``_lines_apart``: each
    ``EncodedResult.line`` emptied, the lines in the batch's order), and the calling process
    puts each line back as a view of the bytes that followed (``_lines_back``); results that
    are not lines (``FlowResult``) and other items pass as they are. The views splice as
    bytes do (``EncodedResult.set_flow_id``, ``record``)."""
    import pickle

    from tcptrace_py import parallel
    from tcptrace_py.encoded import EncodedResult
    from tcptrace_py.engine import FlowResult
    from tcptrace_py.export import dumps_line

    recs = [{"flow_id": k, "x": "y" * k, "anomalies": []} for k in range(5)]
    plain = FlowResult({"flow_id": 9}, [], [], None)
    batch: list[Any] = [("a", (1, 3, -1, 0), 1, 0, 1)]
    for k, rec in enumerate(recs):
        batch.append(("r", (k + 2, 3, 0), 1, EncodedResult.of(FlowResult(rec, [], [], None)),
                      [], 1))
        if k == 2:
            batch.append(("r", (k + 2, 3, 1), 1, plain, [], 1))
    lines = parallel._lines_apart(batch)
    assert lines == [dumps_line(rec) for rec in recs]
    sent = pickle.loads(pickle.dumps((batch, [len(line) for line in lines])))
    parallel._lines_back(sent[0], sent[1], bytearray(b"".join(lines)))
    got = [item[3] for item in sent[0] if item[0] == "r"]
    assert [bytes(r.line) for r in got if isinstance(r, EncodedResult)] == lines
    assert got[3].record == {"flow_id": 9}
    first = got[0]
    assert isinstance(first, EncodedResult) and isinstance(first.line, memoryview)
    assert first.record == recs[0]
    first.set_flow_id(1234)
    assert first.line == dumps_line({**recs[0], "flow_id": 1234})
    assert isinstance(first.line, bytes)


def test_a_widened_pipe_holds_a_mebibyte_where_linux_allows() -> None:
    fcntl = pytest.importorskip("fcntl")
    if not hasattr(fcntl, "F_GETPIPE_SZ"):
        pytest.skip("no F_GETPIPE_SZ here")
    from multiprocessing import Pipe

    from tcptrace_py import parallel

    recv, send = Pipe(duplex=False)
    before = fcntl.fcntl(recv.fileno(), fcntl.F_GETPIPE_SZ)
    parallel._widen(recv)
    after = fcntl.fcntl(recv.fileno(), fcntl.F_GETPIPE_SZ)
    with open("/proc/sys/fs/pipe-max-size") as f:
        allowed = int(f.read())
    # Above the limit only a privileged process gets it; then the default stays.
    assert after == parallel.PIPE_BYTES or (allowed < parallel.PIPE_BYTES and after == before)
    recv.close()
    send.close()


def test_run_ahead_stops_at_its_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    from tcptrace_py import parallel

    monkeypatch.setattr(parallel, "RUN_AHEAD_ITEMS", 3)
    own = parallel._RunAhead(iter(range(5)))  # type: ignore[arg-type]
    assert [own.step() for _ in range(4)] == [True, True, True, False]
    assert not own.done and len(own.ahead) == 3
    rest: list[Any] = list(own)
    assert rest == [0, 1, 2, 3, 4]
    assert not own.step() and own.done


def test_streamed_lines_encoded_by_the_workers_are_one_engines(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``analyze --format jsonl --jobs N`` streams records the workers encoded
    (``EncodedResult``): flow ids spliced in, findings a capture-wide detector dropped
    rewritten, limits and filters as with one engine."""
    from tcptrace_py import encoded

    path = _merge_capture(tmp_path / "merge.pcap")
    folded: list[list[str]] = []
    real = encoded.EncodedResult.set_anomaly_codes

    def spy(self: encoded.EncodedResult, codes: list[str]) -> None:
        if codes != self.codes:
            folded.append(codes)
        real(self, codes)

    monkeypatch.setattr(encoded.EncodedResult, "set_anomaly_codes", spy)
    runner = CliRunner()
    base = ["analyze", str(path), "--format", "jsonl", "--param", "synack.max_per_server=5"]
    for extra in ([], ["--limit", "7"], ["--anomaly", "synack_retransmission"],
                  ["--port", "8080"]):
        outs = [runner.invoke(main, [*base, *extra, "--jobs", str(n)]) for n in (1, 2, 3)]
        assert all(o.exit_code == 0 for o in outs), [o.output for o in outs]
        assert outs[0].output and outs[1].output == outs[0].output == outs[2].output
        if not extra:
            assert folded  # the per-server cap dropped findings of encoded records
    assert len(runner.invoke(main, [*base, "--limit", "7", "--jobs", "2"]).output
               .splitlines()) == 7


def test_encoded_result_patches_its_line() -> None:
    import pickle

    from tcptrace_py.encoded import EncodedResult
    from tcptrace_py.engine import FlowResult
    from tcptrace_py.export import dumps, dumps_line

    rec = {"flow_id": 12, "client_ip": "10.0.0.1", "end_reason": "closed", "rtt": 0.25,
           "none": None, "anomalies": ["a"], "note": "caf\u00e9"}
    enc = EncodedResult.of(FlowResult(dict(rec), [], [], None))
    # The line a byte stream takes: UTF-8 with its newline, the text of dumps.
    assert enc.line == dumps_line(rec) == (dumps(rec) + "\n").encode()
    assert (enc.flow_id, enc.end_reason) == (12, "closed")
    enc.set_flow_id(3)
    assert enc.line == dumps_line({**rec, "flow_id": 3}) and enc.flow_id == 3
    enc.set_flow_id(12345)  # a longer id than the one spliced out
    assert enc.line == dumps_line({**rec, "flow_id": 12345}) and enc.flow_id == 12345
    enc.set_flow_id(3)
    line = enc.line
    enc.set_anomaly_codes(["a"])  # unchanged: the line is kept as it is
    assert enc.line is line
    enc.set_anomaly_codes(["b", "c"])
    assert enc.codes == ["b", "c"] and enc.record == {**rec, "flow_id": 3, "anomalies": ["b", "c"]}
    assert enc.line == dumps_line({**rec, "flow_id": 3, "anomalies": ["b", "c"]})
    back = pickle.loads(pickle.dumps(enc, pickle.HIGHEST_PROTOCOL))
    assert (back.line, back.flow_id, back.end_reason) == (enc.line, 3, "closed")
    # The event log and packet rows stay in the worker: the line stream writes neither.
    assert (back.events, back.packets, back.codes) == ((), None, ["b", "c"])
    # A line not laid out as dumps_line writes it is rebuilt, not spliced.
    odd = EncodedResult(b'{"client_ip":"x","flow_id":5}\n', 5, None, [], [])
    odd.set_flow_id(1234)
    assert odd.record == {"client_ip": "x", "flow_id": 1234}
    assert odd.line == dumps_line({"client_ip": "x", "flow_id": 1234})
    # A flow id that only starts like the old one ("1" in "12") is not spliced.
    near = EncodedResult(dumps_line({"flow_id": 12, "x": 1}), 1, None, [], [])
    near.set_flow_id(7)
    assert near.record == {"flow_id": 7, "x": 1}


_SPLICE_EDGES = [b'{"flow_id":12,"x":1}\n', b'{"flow_id":12}\n', b'{"flow_id":12', b'{"flow_id":1',
                 b'{"flow_id":123,"x":1}\n', b'{"flow_id":-12,"x":1}\n', b'{"flow_id":12 ,"x":1}',
                 b'{"flow_ID":12,"x":1}', b'{"flow_id":', b"", b"{", b' {"flow_id":12,"x":1}',
                 b'{"flow_id":012,"x":1}', b'{"flow_id":12}', b'{"flow_id":12,', b'{"flow_id":12]']


_IDS = st.integers(-2**63, 2**63 - 1)
_LINES = st.one_of(
    st.sampled_from(_SPLICE_EDGES),
    st.builds(lambda fid, sep, tail: b'{"flow_id":%d' % fid + sep + tail,
              _IDS, st.sampled_from([b",", b"}", b"", b" ", b"0"]), st.binary(max_size=12)),
    st.binary(max_size=30))


@given(_LINES, _IDS | st.sampled_from([0, 1, 12, -12, 123]),
       _IDS | st.sampled_from([0, 7, 12345]))
@settings(max_examples=600, deadline=None)
def test_the_flow_id_splice_is_the_references(line: bytes, old: int, new: int) -> None:
    """``spliced_flow_id`` (compiled where the compiled engine runs) gives the reference's
    bytes or None for any line and ids: the merge renumbers every record through it."""
    from tcptrace_py.encoded import reference_spliced_flow_id, spliced_flow_id

    for fid in (old, _leading_id(line)):
        if fid is None:
            continue
        want = reference_spliced_flow_id(line, fid, new)
        assert spliced_flow_id(line, fid, new) == want
        # A worker's line arrives as a view of its batch (parallel._lines_back).
        view = memoryview(bytearray(b"--" + line))[2:]
        assert reference_spliced_flow_id(view, fid, new) == want
        assert spliced_flow_id(view, fid, new) == want
        if want is not None:
            assert want == b'{"flow_id":%d' % new + line[len(b'{"flow_id":%d' % fid):]


def _leading_id(line: bytes) -> int | None:
    """The integer ``line`` begins with after ``{"flow_id":``, if any (so the generated
    cases splice as well as refuse)."""
    digits = line[len(b'{"flow_id":'):].split(b",")[0].split(b"}")[0]
    try:
        value = int(digits)
    except ValueError:
        return None
    return value if -2**63 <= value < 2**63 else None


@pytest.mark.real_start_method
def test_workers_start_by_forkserver_when_threads_run() -> None:
    """A process running threads cannot fork safely: the workers start from a fork server
    instead, which pickles the worker function and its arguments (the compiled module's
    functions too) and gives the same results."""
    import threading

    from tcptrace_py import parallel

    path = REPO / "samples" / "rst_storm.pcap"
    one = [r.record for r in Engine(Options(keep_events=False)).run(path)]
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        assert parallel.start_method() in ("forkserver", "spawn")
        two = [r.record for r in ParallelEngine(Options(keep_events=False), 2).run(path)]
    finally:
        stop.set()
        thread.join()
    assert two == one


# --------------------------------------------------------------------------- rings
def _ports_of(owner: int, jobs: int, src: str, dst: str, dport: int) -> Iterator[int]:
    """Client ports whose connection (``src`` -> ``dst:dport``) worker ``owner`` analyses."""
    from captures_util import ip_bytes

    lo, hi = shard_ranges(jobs)[owner]
    sport = 1024
    while True:
        sport += 1
        if lo <= slot_of(ip_bytes(src), sport, ip_bytes(dst), dport) < hi:
            yield sport


def _ring_stress_capture(path: Path, long_owner: int, jobs: int) -> Path:
    """Three connections of worker ``long_owner`` that last the whole capture (a data
    segment every 40 frames), 240 short ones of the other workers, and a 30 KB UDP frame
    (left to the reference decoder: copied whole into every ring) every 8 frames: a
    2 MiB ring fills within a few dozen frames of a worker lagging behind."""
    from captures_util import ethernet, ip_packet

    t0 = 1_700_000_000 * 10**9
    us = 1000
    frames: list[bytes] = []
    c, s = "10.9.0.1", "10.9.0.2"
    long_ports = list(islice(_ports_of(long_owner, jobs, c, s, 5432), 3))
    others = [k for k in range(jobs) if k != long_owner]
    short_ports = [p for k in others
                   for p in islice(_ports_of(k, jobs, c, s, 443), 240 // len(others))]
    udp = ethernet(ip_packet("10.9.0.3", "10.9.0.4", 17, b"\x00\x35\x00\x35" + bytes(30000)))
    seq = {p: 1000 for p in long_ports}
    for p in long_ports:
        frames += [tcp_frame(c, s, p, 5432, 999, 0, SYN), tcp_frame(s, c, 5432, p, 5000, 1000,
                   SYN | ACK), tcp_frame(c, s, p, 5432, 1000, 5001, ACK)]
    for i, p in enumerate(short_ports):
        frames += [tcp_frame(c, s, p, 443, 100, 0, SYN), tcp_frame(s, c, 443, p, 700, 101,
                   SYN | ACK), tcp_frame(c, s, p, 443, 101, 701, ACK),
                   tcp_frame(c, s, p, 443, 101, 701, FIN | ACK),
                   tcp_frame(s, c, 443, p, 701, 102, FIN | ACK),
                   tcp_frame(c, s, p, 443, 102, 702, ACK)]
        if i % 2 == 0:
            frames.append(udp)
        if i % 7 == 0:
            p_long = long_ports[i % 3]
            frames.append(tcp_frame(c, s, p_long, 5432, seq[p_long], 5001, ACK,
                                    payload=b"x" * 100))
            seq[p_long] += 100
    for p in long_ports:
        frames += [tcp_frame(c, s, p, 5432, seq[p], 5001, FIN | ACK),
                   tcp_frame(s, c, 5432, p, 5001, seq[p] + 1, FIN | ACK),
                   tcp_frame(c, s, p, 5432, seq[p] + 1, 5002, ACK)]
    return write_pcap(path, [(t0 + i * 50 * us, f) for i, f in enumerate(frames)])


needs_rings = pytest.mark.skipif(
    __import__("tcptrace_py.implementation").implementation.compiled is None,
    reason="the rings are the compiled engine's")


@needs_rings
@pytest.mark.parametrize("jobs", [2, 3])
@pytest.mark.parametrize("long_owner", [0, 1], ids=["calling-process-waits", "worker-waits"])
def test_small_rings_and_run_ahead_never_deadlock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  jobs: int, long_owner: int) -> None:
    """With the smallest rings and a run-ahead of two items, both ways one process can wait
    on another: the calling process owns the long connections (its first item comes last,
    so the merge pulls it through the whole capture while the workers' rings fill: it must
    read their batches meanwhile), or a worker owns them (the calling process's run-ahead
    fills at once and it waits on a worker that has nothing to say until it reads on: the
    worker's watermarks). Same output as one engine, and no hang (an alarm fails the test)."""
    import signal

    from tcptrace_py import parallel

    path = _ring_stress_capture(tmp_path / "stress.pcap", long_owner, jobs)
    monkeypatch.setattr(parallel, "RING_BYTES", 1 << 21)  # the smallest: a power of two
    monkeypatch.setattr(parallel, "RUN_AHEAD_ITEMS", 2)
    old = signal.signal(signal.SIGALRM, lambda *_: pytest.fail("--jobs run hung"))
    signal.alarm(120)
    try:
        one = everything(Engine(), path)
        assert len(one["records"]) == 243
        assert everything(ParallelEngine(None, jobs), path) == one
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@needs_rings
def test_workers_read_their_rings_not_the_capture(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """With a classic pcap file the calling process alone reads the capture: a worker that
    opened it would fail here (the run would raise its error), and the output is one
    engine's. A pcapng file is still read by every worker (no rings)."""
    from tcptrace_py import parallel

    path = _ring_stress_capture(tmp_path / "stress.pcap", 1, 2)
    one = everything(Engine(), path)
    parent = os.getpid()
    real = parallel.route_segments  # type: ignore[attr-defined]

    def calling_process_only(*args: Any, **kwargs: Any) -> Any:
        if os.getpid() != parent:
            raise AssertionError("a --jobs worker read the capture")
        return real(*args, **kwargs)

    monkeypatch.setattr(parallel, "route_segments", calling_process_only)
    assert everything(ParallelEngine(None, 2), path) == one
    assert parallel._rings(str(path), None, shard_ranges(2)) is not None
    from captures_util import write_pcapng

    ng = write_pcapng(tmp_path / "stress.pcapng",
                      [tcp_frame("10.0.0.1", "10.0.0.2", 1025, 80, 1, 0, SYN)])
    assert parallel._rings(str(ng), None, shard_ranges(2)) is None


@needs_rings
@pytest.mark.parametrize("codec", ["gzip", "bzip2", "xz", "zstd"])
def test_a_compressed_capture_leaves_the_calling_process_fewer_connections(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, codec: str) -> None:
    """Through the rings the calling process decompresses a compressed capture for every
    worker, so it takes the smaller share of ``COMPRESSED_PARENT_SHARE`` (never an empty
    range); the output is still one engine's, with 2 and 3 jobs."""
    import bz2
    import gzip
    import lzma

    from tcptrace_py import parallel

    plain = _ring_stress_capture(tmp_path / "stress.pcap", 1, 2).read_bytes()
    if codec == "zstd":
        zstandard = pytest.importorskip("zstandard")
        packed = zstandard.ZstdCompressor().compress(plain)
    else:
        packed = {"gzip": gzip, "bzip2": bz2, "xz": lzma}[codec].compress(plain)
    path = tmp_path / f"stress.pcap.{codec}"
    path.write_bytes(packed)
    share = parallel.COMPRESSED_PARENT_SHARE[codec]
    assert parallel.parent_share(str(path)) == share < parallel.PARENT_SHARE
    assert parallel.parent_share(str(tmp_path / "stress.pcap")) == parallel.PARENT_SHARE
    seen: list[list[tuple[int, int]]] = []
    real = parallel._rings

    def recorded(path: str, name: str | None, ranges: list[tuple[int, int]]) -> Any:
        seen.append(ranges)
        return real(path, name, ranges)

    monkeypatch.setattr(parallel, "_rings", recorded)
    one = everything(Engine(), path)
    for jobs in (2, 3):
        assert everything(ParallelEngine(None, jobs), path) == one
        assert seen[-1] == shard_ranges(jobs, share)
        lo, hi = seen[-1][0]
        assert lo == 0 < hi < shard_ranges(jobs)[0][1]


def test_no_rings_without_the_compiled_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    from tcptrace_py import implementation, parallel

    monkeypatch.setattr(implementation, "compiled", None)
    assert parallel._rings(str(REPO / "samples" / "normal.pcap"), None, shard_ranges(2)) is None


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.tuples(st.integers(0, 20), st.integers(0, 3))), max_size=4))
def test_key_order_merge_is_heapqs(streams: list[list[tuple[int, int]]]) -> None:
    """``parallel.in_key_order`` gives ``heapq.merge``'s order (ties to the earlier
    stream, each stream's own order kept) on sorted streams with repeated keys."""
    import heapq
    from operator import itemgetter

    from tcptrace_py.parallel import in_key_order

    items = [sorted((("r", key, shard, n) for n, key in enumerate(s)), key=itemgetter(1))
             for shard, s in enumerate(streams)]
    expected = list(heapq.merge(*items, key=itemgetter(1)))
    assert list(in_key_order([iter(x) for x in items])) == expected


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 6), max_size=6), st.lists(st.integers(0, 6), max_size=6))
def test_two_way_merge_advances_its_streams_as_the_heap_does(first: list[int],
                                                             second: list[int]) -> None:
    """With two streams (``--jobs 2``) ``in_key_order`` compares the two next keys instead
    of keeping a heap; each stream is still asked for its next item at the same moments
    (a worker's stream may block on its pipe then, the calling process's computes): the
    same log of requests and items as the heap's loop (reached here with an empty third
    stream, which it drops at once)."""
    from tcptrace_py.parallel import in_key_order

    def logged(keys: list[int], shard: int, log: list[Any]) -> Iterator[tuple[Any, ...]]:
        for n, key in enumerate(sorted(keys)):
            log.append(("next", shard))
            yield ("r", (key,), shard, n)
        log.append(("next", shard))

    logs: list[list[Any]] = [[], []]
    for log, extra in zip(logs, ([], [iter(())]), strict=True):
        merged = in_key_order([logged(first, 0, log), logged(second, 1, log), *extra])
        for item in merged:
            log.append(("item", item))
    assert logs[0] == logs[1]


@needs_rings
@pytest.mark.parametrize("how", ["exits", "raises"])
def test_a_worker_lost_mid_capture_stops_the_run_with_its_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    """A worker that dies (or fails) while the calling process fills its ring: the calling
    process, waiting for room in the full ring, reads the worker's pipe and raises what
    happened instead of waiting forever (an alarm fails the test)."""
    import signal

    from tcptrace_py import parallel

    path = _ring_stress_capture(tmp_path / "stress.pcap", 0, 2)
    monkeypatch.setattr(parallel, "RING_BYTES", 1 << 21)
    real = parallel.shard_items

    def failing(engine: Engine, *args: Any) -> Any:
        for n, item in enumerate(real(engine, *args)):
            if engine.shard is not None and engine.shard[0] == 1 and n == 20:
                if how == "exits":
                    os._exit(3)
                raise ValueError("worker failed on purpose")
            yield item

    monkeypatch.setattr(parallel, "shard_items", failing)
    old = signal.signal(signal.SIGALRM, lambda *_: pytest.fail("--jobs run hung"))
    signal.alarm(60)
    try:
        expected = "a --jobs worker process died" if how == "exits" else "failed on purpose"
        with pytest.raises((RuntimeError, ValueError), match=expected):
            list(ParallelEngine(None, 2).run(str(path)))
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@needs_rings
def test_rings_refuse_what_a_byte_cannot_name() -> None:
    """A slot's owner is a byte: more than 255 rings, or an owner beyond them, is refused
    (and ``_rings`` leaves such a run to the workers reading the file)."""
    import mmap

    from tcptrace_py import implementation, parallel

    rings = implementation.compiled.Rings  # type: ignore[union-attr]
    owners = [0] * SHARD_SLOTS_ALL
    with pytest.raises(ValueError, match="1 to 255"):
        rings(mmap.mmap(-1, rings.mapping_bytes(256, 1 << 21)), 256, 1 << 21, owners)
    with pytest.raises(ValueError, match="owners"):
        rings(mmap.mmap(-1, rings.mapping_bytes(1, 1 << 21)), 1, 1 << 21, [2] * SHARD_SLOTS_ALL)
    with pytest.raises(ValueError, match="power of two"):
        rings(mmap.mmap(-1, rings.mapping_bytes(1, 3 << 20)), 1, 3 << 20, owners)
    assert parallel._rings(str(REPO / "samples" / "normal.pcap"), None,
                           [(k, k + 1) for k in range(257)]) is None
    assert parallel._rings(str(REPO / "samples" / "normal.pcap"), None,
                           shard_ranges(2)) is not None


def test_ipv6_segments_without_a_payload_length_same_on_1_2_3_jobs(tmp_path: Path) -> None:
    """IPv6 segments whose payload length is 0 (TSO, a jumbogram: the frame's size is the only
    length) carry their payload's length in the frame alone: a worker fed through a ring
    must get the whole frame, not its headers (the headers alone said no payload)."""
    from captures_util import ethernet, ipv6_header, tcp_segment

    t0 = 1_700_000_000 * 10**9
    frames: list[bytes] = []
    c, s = "2001:db8::1", "2001:db8::2"

    def tso(src: str, dst: str, sport: int, dport: int, seq: int, ack: int, flags: int,
            payload: bytes = b"") -> bytes:
        seg = tcp_segment(sport, dport, seq, ack, flags, payload=payload)
        return ethernet(ipv6_header(src, dst, 6, 0) + seg, 0x86DD)

    for port in range(40000, 40012):
        frames += [tso(c, s, port, 443, 99, 0, SYN), tso(s, c, 443, port, 499, 100, SYN | ACK),
                   tso(c, s, port, 443, 100, 500, ACK),
                   tso(c, s, port, 443, 100, 500, ACK, b"x" * 1400),
                   tso(s, c, 443, port, 500, 1500, ACK, b"y" * 3000),
                   tso(c, s, port, 443, 1500, 3500, FIN | ACK),
                   tso(s, c, 443, port, 3500, 1501, FIN | ACK),
                   tso(c, s, port, 443, 1501, 3501, ACK)]
    path = write_pcap(tmp_path / "tso6.pcap", [(t0 + i * 10**6, f) for i, f in enumerate(frames)])
    one = _same_for_jobs(path)
    assert [r["client_payload_bytes"] for r in one["records"]] == [1400] * 12
    assert [r["server_payload_bytes"] for r in one["records"]] == [3000] * 12
