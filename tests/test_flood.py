"""SYN floods: a capped connection table, oldest half-open evicted first, bounded memory.

The flood is written with ``struct`` (fast: ~1 s per 100 k SYNs): unique spoofed sources,
random source ports and ISNs, 20 k SYN/s, never answered. A few established connections
opened before the flood must survive it (half-open ones are evicted first).

docs/robustness.md records the 1 M SYN measurement; here CI floods a few thousand (tens of
thousands in the memory test, in a subprocess so its peak RSS is its own).
"""

from __future__ import annotations

import json
import os
import random
import struct
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from captures_util import pcap_bytes, tcp_frame

from tcptrace_py.engine import Engine
from tcptrace_py.flowtable import DEADLINE_SLACK
from tcptrace_py.options import Options

REPO = Path(__file__).resolve().parents[1]
FLOOD_START_S = 1_700_000_000
FLOOD_GAP_US = 50  # 20 k SYN/s, as bench/gen_capture.py --syn-flood
SYN, ACK = 0x02, 0x10

MEMORY_TEST_SYNS = 25_000
MEMORY_TEST_CAP = 500
MEMORY_GROWTH_BOUND_MB = 24
"""Peak RSS growth allowed for MEMORY_TEST_SYNS SYNs through a MEMORY_TEST_CAP table: a
fixed allowance for buffers and records in flight (1 MiB read chunks, the record being
built) plus the capped table (~8.5 KB per half-open connection, measured; see
docs/robustness.md). Measured: under 1 MB; without the cap the same flood takes ~200 MB."""


def write_syn_flood(path: Path, n: int, *, established: int = 0, seed: int = 1) -> Path:
    """A pcap with ``established`` complete handshakes (to 10.9.0.x:443) then ``n`` SYNs
    from unique sources (100.64.0.0/10), random ports, to 192.0.2.80:80."""
    rng = random.Random(seed)
    rec = struct.Struct("<IIII")
    ip = struct.Struct("!BBHHHBBH4s4s")
    tcp = struct.Struct("!HHIIHHHH")
    eth = b"\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01\x08\x00"
    mss = struct.pack("!BBH", 2, 4, 1460)
    dst = bytes([192, 0, 2, 80])
    with path.open("wb") as f:
        handshakes = []
        for i in range(established):
            c, s = f"10.9.0.{i + 1}", "10.9.1.1"
            handshakes += [
                tcp_frame(c, s, 50000 + i, 443, 100, 0, SYN),
                tcp_frame(s, c, 443, 50000 + i, 900, 101, SYN | ACK),
                tcp_frame(c, s, 50000 + i, 443, 101, 901, ACK),
            ]
        f.write(pcap_bytes([(FLOOD_START_S * 10**9 - 10**9 + i * 1000, fr)
                            for i, fr in enumerate(handshakes)]))
        out: list[bytes] = []
        for i in range(n):
            src = struct.pack("!I", (100 << 24) | (64 << 16) | i)  # unique per SYN
            frame = eth + ip.pack(0x45, 0, 44, i & 0xFFFF, 0x4000, 64, 6, 0, src, dst) \
                + tcp.pack(rng.randrange(1024, 65536), 80, rng.getrandbits(32), 0,
                           (6 << 12) | SYN, 64240, 0, 0) + mss
            us = i * FLOOD_GAP_US
            out.append(rec.pack(FLOOD_START_S + us // 1_000_000, us % 1_000_000, len(frame),
                                len(frame)) + frame)
            if len(out) >= 65536:
                f.write(b"".join(out))
                out.clear()
        f.write(b"".join(out))
    return path


def test_flood_evicts_oldest_half_open_first(tmp_path: Path) -> None:
    syns, established, cap = 2500, 8, 300
    path = write_syn_flood(tmp_path / "flood.pcap", syns, established=established)
    engine = Engine(Options(max_connections=cap, keep_events=False))
    records = [r.record for r in engine.run(str(path))]
    table = engine.table

    # Every connection has a record; the counts add up.
    assert len(records) == syns + established == engine.summary.connections
    evicted = [r for r in records if r["end_reason"] == "table_full"]
    assert len(evicted) == syns + established - cap
    assert table.evicted_table_full == engine.summary.evicted_table_full == len(evicted)
    assert table.evicted_half_open == len(evicted)  # all of them half-open
    assert table.peak_live <= cap + 1

    # Established connections, though older, survive to capture end; the evicted ones are
    # the oldest SYNs, in arrival order, each an unanswered SYN.
    est = [r for r in records if r["server_port"] == 443]
    assert len(est) == established
    assert all(r["end_reason"] == "capture_end" and r["open"] == "three_way_handshake"
               for r in est)
    first_frames = [r["first_frame"] for r in evicted]
    assert first_frames == sorted(first_frames)
    assert first_frames == list(range(3 * established + 1, 3 * established + 1 + len(evicted)))
    assert all(r["close"] == "unanswered" for r in evicted)

    # Reported with counts, once.
    warnings = [w for w in engine.diag.warnings if w.code == "table_full"]
    assert len(warnings) == 1
    assert f"max {cap}" in warnings[0].message
    assert f"{len(evicted)} connections" in warnings[0].message
    assert f"{len(evicted)} of them half-open" in warnings[0].message


def test_flood_below_cap_evicts_nothing(tmp_path: Path) -> None:
    path = write_syn_flood(tmp_path / "flood.pcap", 500, established=2)
    engine = Engine(Options(max_connections=1000))
    records = [r.record for r in engine.run(str(path))]
    assert len(records) == 502
    assert not any(r["end_reason"] == "table_full" for r in records)
    assert not any(w.code == "table_full" for w in engine.diag.warnings)


_CHILD = textwrap.dedent("""
    import json, resource, sys
    from tcptrace_py.engine import Engine
    from tcptrace_py.options import Options

    def rss_mb():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux

    path, cap, warm = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    for _ in Engine(Options()).run(warm):  # lazy imports and caches into the baseline
        pass
    base = rss_mb()
    engine = Engine(Options(max_connections=cap, keep_events=False))
    n = table_full = 0
    for result in engine.run(path):
        n += 1
        table_full += result.record["end_reason"] == "table_full"
    print(json.dumps({"records": n, "table_full": table_full, "base_mb": base,
                      "peak_mb": rss_mb(), "evicted": engine.summary.evicted_table_full}))
""")


def run_flood_child(path: Path, cap: int, warm: Path) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", _CHILD, str(path), str(cap), str(warm)],
                         capture_output=True, text=True, check=True, env=env, timeout=300)
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def test_flood_memory_is_bounded(tmp_path: Path) -> None:
    warm = write_syn_flood(tmp_path / "warm.pcap", 50, established=2)
    path = write_syn_flood(tmp_path / "flood.pcap", MEMORY_TEST_SYNS)
    res = run_flood_child(path, MEMORY_TEST_CAP, warm)
    assert res["records"] == MEMORY_TEST_SYNS
    assert res["table_full"] == res["evicted"] == MEMORY_TEST_SYNS - MEMORY_TEST_CAP
    growth_mb = res["peak_mb"] - res["base_mb"]
    assert growth_mb < MEMORY_GROWTH_BOUND_MB, res


def test_deadline_heap_stays_proportional_to_live_table(tmp_path: Path) -> None:
    """Evicted SYNs must not stay in the deadline heap until their 300 s attempt timeout
    (a 20 k SYN/s flood would keep 6 M keys there): the heap is compacted when it doubles."""
    syns, cap = 6000, 100
    path = write_syn_flood(tmp_path / "flood.pcap", syns, established=3)
    engine = Engine(Options(max_connections=cap, keep_events=False))
    largest = n = 0
    for _ in engine.run(str(path)):
        n += 1
        largest = max(largest, len(engine.table._deadlines))
    assert n == syns + 3
    assert engine.summary.evicted_table_full == syns + 3 - cap
    assert largest <= 2 * (cap + 1) + DEADLINE_SLACK + 1, largest


_FLAT_CHILD = textwrap.dedent("""
    import json, sys
    from tcptrace_py.cli import main

    def peak_mb():
        # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the forking parent (the
        # test process), so it would report pytest's size; VmHWM starts afresh at exec.
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024

    path, warm, args = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    # Warm-up on a small flood: imports and caches go into the baseline.
    main([*args, warm], standalone_mode=False)
    base = peak_mb()
    main([*args, path], standalone_mode=False)
    print(json.dumps({"base_mb": base, "peak_mb": peak_mb()}))
""")

FLAT_SMALL_SYNS = 10_000
FLAT_LARGE_SYNS = 40_000
FLAT_GROWTH_BOUND_MB = 4.0
"""Peak RSS difference allowed between a FLAT_SMALL_SYNS and a FLAT_LARGE_SYNS flood through
the same 500-connection table: memory is bounded by the cap, not by SYNs. Measured 0.1 MB
(100 k against 200 k SYNs: 41.3 / 41.4 MB). Before the deadline heap was compacted and the
streamed CLI stopped keeping every anomaly, the 30 k extra SYNs cost ~10 MB in the API and
~37 MB in ``analyze --format jsonl`` (~340 B and ~1.25 KB per SYN)."""


FLAT_ARGS = ["--max-connections", str(MEMORY_TEST_CAP), "-q",
             # The scan detector's own bound (max_targets distinct sources per server, ~40 MB
             # at its default) is lowered so that the small flood already reaches it.
             "--param", "scan.max_targets=1000"]


def _flat_child(path: Path, warm: Path, args: list[str]) -> tuple[dict[str, Any], str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    res = subprocess.run([sys.executable, "-c", _FLAT_CHILD, str(path), str(warm),
                          json.dumps(args)],
                         capture_output=True, text=True, check=True, env=env, timeout=600)
    *output, last = res.stdout.splitlines()
    result: dict[str, Any] = json.loads(last)
    return result, "\n".join(output)


def _floods(tmp_path: Path) -> tuple[Path, Path, Path]:
    return (write_syn_flood(tmp_path / "warm.pcap", 2000, established=2),
            write_syn_flood(tmp_path / "small.pcap", FLAT_SMALL_SYNS, seed=2),
            write_syn_flood(tmp_path / "large.pcap", FLAT_LARGE_SYNS, seed=3))


def test_streamed_cli_memory_flat_in_flood_size(tmp_path: Path) -> None:
    """``analyze --format jsonl`` (issue 18.1): peak RSS does not grow with SYNs beyond the
    connection cap. Each run in its own process so each peak is its own."""
    warm, small, large = _floods(tmp_path)
    out = tmp_path / "out.jsonl"
    peaks = {}
    for name, path, syns in (("small", small, FLAT_SMALL_SYNS),
                             ("large", large, FLAT_LARGE_SYNS)):
        peaks[name], _ = _flat_child(path, warm,
                                     ["analyze", "--format", "jsonl", "-o", str(out),
                                      *FLAT_ARGS])
        assert len(out.read_text().splitlines()) == syns
    growth = peaks["large"]["peak_mb"] - peaks["small"]["peak_mb"]
    assert growth < FLAT_GROWTH_BOUND_MB, peaks


def test_summary_memory_flat_in_flood_size(tmp_path: Path) -> None:
    """``summary`` (issue 18.3) streams: it counts records and anomalies as they come, so
    its peak RSS, like analyze's, does not grow with the connections of the capture (it kept
    every record and finding: ~1.6 KB per SYN)."""
    warm, small, large = _floods(tmp_path)
    peaks = {}
    for name, path, syns in (("small", small, FLAT_SMALL_SYNS),
                             ("large", large, FLAT_LARGE_SYNS)):
        peaks[name], out = _flat_child(path, warm, ["summary", "--format", "json",
                                                    *FLAT_ARGS])
        summary = json.loads(out.splitlines()[-1])
        assert summary["connections"] == syns
        assert summary["by_close"] == {"unanswered": syns}
        assert summary["anomalies_by_code"]["unanswered_syn"] == syns
    growth = peaks["large"]["peak_mb"] - peaks["small"]["peak_mb"]
    assert growth < FLAT_GROWTH_BOUND_MB, peaks


def test_summary_takes_max_connections(tmp_path: Path) -> None:
    """``summary --max-connections`` caps the table as analyze does: the same counts as the
    records of the API with that cap, and the table_full warning on stderr."""
    from click.testing import CliRunner

    from tcptrace_py.cli import main
    from tcptrace_py.export import capture_summary

    syns, cap = 1500, 200
    path = write_syn_flood(tmp_path / "flood.pcap", syns, established=4)
    res = CliRunner().invoke(main, ["summary", "--format", "json", "--max-connections",
                                    str(cap), str(path)])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    engine = Engine(Options(max_connections=cap, keep_events=False))
    results = list(engine.run(str(path), name=str(path)))
    expected = capture_summary(engine.diag, [r.record for r in results],
                               [a for r in results for a in r.anomalies] +
                               engine.summary.anomalies)
    assert summary == json.loads(json.dumps(expected))
    assert summary["connections"] == syns + 4 and summary["warnings"] == 1
    assert f"connection table full (max {cap}): {syns + 4 - cap} connections" in res.stderr
    bad = CliRunner().invoke(main, ["summary", "--max-connections", "0", str(path)])
    assert bad.exit_code == 2
