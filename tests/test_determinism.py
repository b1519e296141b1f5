"""Determinism: the same captures give byte-identical output across runs, hash seeds and
``batch --jobs`` values.

Why subprocesses with different ``PYTHONHASHSEED``: set and dict-of-bytes iteration order
changes with the hash seed, so anything ordered by a set (anomaly codes, flows emitted in
one sweep) would show up here, not in an in-process rerun.

Captures: a project-made mix (interleaved connections on reused ports, RSTs, FINs, sequence
wrap, a small SYN flood through a capped table is covered by test_flood.py) and, when
/work/shared is present, real captures with many connections (a SYN scan).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from captures_util import opt_mss, opt_sack, opt_ts, pcap_bytes, tcp_frame

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(__file__).resolve().parents[2] / "shared"
SHARED_CAPTURES = ("captures/packets/synscan.pcapng", "captures/zeek/wikipedia.pcap",
                   "captures/zeek/ipv6.pcap")
TIMING_COLUMNS = ("elapsed_s", "cpu_s")
"""Batch bookkeeping that measures the run itself (wall and CPU time): never reproducible."""


def mixed_capture(path: Path, seed: int = 7, n: int = 400) -> Path:
    """Interleaved segments of ~20 connections between four hosts on a few ports, random
    flags and sequence numbers near the wrap: many connections, incarnations and
    anomalies, finishing in varied orders."""
    rng = random.Random(seed)
    hosts = ["10.1.0.1", "10.1.0.2", "2001:db8::1", "2001:db8::2"]
    frames = []
    ts = 1_700_000_000 * 10**9
    for _ in range(n):
        ts += rng.choice([0, 1000, 10**6, 3 * 10**8, 2 * 10**9, 15 * 10**9])
        v6 = rng.random() < 0.3
        a, b = (hosts[2], hosts[3]) if v6 else (hosts[0], hosts[1])
        if rng.random() < 0.5:
            a, b = b, a
        sport, dport = rng.choice([(40000, 80), (40001, 80), (80, 40000), (443, 50000)])
        flags = rng.choice([0x02, 0x12, 0x10, 0x18, 0x11, 0x04, 0x14, 0x10, 0x18])
        seq = (2**32 - 500 + rng.randrange(0, 3000)) % 2**32
        ack = (2**32 - 500 + rng.randrange(0, 3000)) % 2**32
        opts = rng.choice([b"", opt_mss(1460), opt_ts(rng.getrandbits(32), 0),
                           opt_sack([(ack, (ack + 100) % 2**32)])])
        frames.append((ts, tcp_frame(a, b, sport, dport, seq, ack, flags, ipv6=v6,
                                     payload=b"d" * rng.choice([0, 0, 10, 1400]),
                                     options=opts)))
    path.write_bytes(pcap_bytes(frames, nanosecond=True))
    return path


def captures(tmp_path: Path) -> list[str]:
    out = [str(mixed_capture(tmp_path / "mixed.pcap"))]
    out += [str(SHARED / c) for c in SHARED_CAPTURES if (SHARED / c).exists()]
    return out


def cli(args: list[str], hash_seed: str, cwd: Path) -> bytes:
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONHASHSEED": hash_seed}
    proc = subprocess.run([sys.executable, "-m", "tcptrace_py", *args], cwd=cwd, env=env,
                          capture_output=True, check=True, timeout=300)
    return proc.stdout


def has_command(name: str, option: str) -> bool:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "tcptrace_py", name, "--help"], env=env,
                          capture_output=True, text=True, timeout=60)
    return proc.returncode == 0 and option in proc.stdout


def test_jsonl_identical_across_runs_and_hash_seeds(tmp_path: Path) -> None:
    files = captures(tmp_path)
    first = cli(["analyze", *files, "--format", "jsonl"], "1", tmp_path)
    second = cli(["analyze", *files, "--format", "jsonl"], "2", tmp_path)
    assert first == second
    records = [json.loads(line) for line in first.splitlines()]
    assert len(records) > 20  # a capture with many connections, not a trivial one
    assert any(r["anomalies"] for r in records)


def test_parquet_identical_across_runs_and_hash_seeds(tmp_path: Path) -> None:
    if not has_command("analyze", "parquet"):
        pytest.skip("analyze --format parquet not available")
    pytest.importorskip("pyarrow")
    files = captures(tmp_path)
    cli(["analyze", *files, "--format", "parquet", "-o", "a.parquet"], "1", tmp_path)
    cli(["analyze", *files, "--format", "parquet", "-o", "b.parquet"], "3", tmp_path)
    a, b = (tmp_path / "a.parquet").read_bytes(), (tmp_path / "b.parquet").read_bytes()
    assert a == b and len(a) > 1000


def _dataset(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def test_batch_identical_across_jobs(tmp_path: Path) -> None:
    if not has_command("batch", "--jobs"):
        pytest.skip("batch --jobs not available")
    pq = pytest.importorskip("pyarrow.parquet")
    src = tmp_path / "in"
    src.mkdir()
    mixed_capture(src / "mixed1.pcap", seed=1)
    mixed_capture(src / "mixed2.pcap", seed=2)
    mixed_capture(src / "mixed3.pcap", seed=3, n=50)
    for c in SHARED_CAPTURES[1:]:
        if (SHARED / c).exists():
            (src / Path(c).name).symlink_to(SHARED / c)
    cli(["batch", str(src), "-o", str(tmp_path / "j1"), "--jobs", "1", "-q"], "1", tmp_path)
    cli(["batch", str(src), "-o", str(tmp_path / "j2"), "--jobs", "2", "-q"], "2", tmp_path)
    one, two = _dataset(tmp_path / "j1"), _dataset(tmp_path / "j2")
    assert sorted(one) == sorted(two)
    per_capture = [k for k in one if k.endswith(".parquet") and "capture_id=" in k]
    assert len(per_capture) >= 3 * 3  # flows, anomalies, events for each capture
    for name in per_capture:
        assert one[name] == two[name], name
    # The capture table and manifest also record how long each capture took: identical
    # apart from those timing columns.
    tables = [pq.read_table(tmp_path / d / "captures.parquet") for d in ("j1", "j2")]
    cols = [c for c in tables[0].column_names if c not in TIMING_COLUMNS]
    assert tables[0].select(cols).equals(tables[1].select(cols))
    manifests = []
    for d in ("j1", "j2"):
        lines = (tmp_path / d / "_manifest.jsonl").read_text().splitlines()
        manifests.append(sorted(json.dumps({k: v for k, v in json.loads(x).items()
                                            if k not in TIMING_COLUMNS}, sort_keys=True)
                                for x in lines))
    assert manifests[0] == manifests[1]
