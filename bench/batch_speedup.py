#!/usr/bin/env python3
"""Speed-up of ``tcptrace-py batch`` with 2 local workers over 1.

Why this shape: the batch is timed as users run it, as a child process (pool start-up and
the final captures table included), on the same generated captures, alternating
``--jobs 1`` and ``--jobs 2`` rounds so that cache warmth and machine noise hit both alike;
medians are reported. Captures come from bench/gen_capture.py (seeded, so reproducible).

Usage::

    python bench/batch_speedup.py                     # 4 captures x 50 k packets, 3 rounds
    python bench/batch_speedup.py --captures 8 --packets 20000 --rounds 5 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO_ROOT = BENCH.parent


def generate(directory: Path, captures: int, packets: int) -> list[Path]:
    """Write ``captures`` seeded captures of ``packets`` packets each (seed = index)."""
    paths = []
    for seed in range(captures):
        out = directory / f"gen_{packets}_{seed}.pcap"
        subprocess.run([sys.executable, str(BENCH / "gen_capture.py"), "--packets",
                        str(packets), "--seed", str(seed), "-o", str(out), "--no-meta"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        paths.append(out)
    return paths


def time_batch(inputs: Path, out: Path, jobs: int) -> float:
    """Wall seconds of one full batch (``--force``: every capture analysed again)."""
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT) + os.pathsep + os.environ.get(
        "PYTHONPATH", ""))
    start_s = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "tcptrace_py.batch_cli", str(inputs), "-o",
                           str(out), "--jobs", str(jobs), "--force", "-q"], env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    elapsed_s = time.perf_counter() - start_s
    if proc.returncode != 0:
        raise SystemExit(f"batch --jobs {jobs} failed ({proc.returncode}): {proc.stderr}")
    return elapsed_s


def worker_seconds(out: Path) -> tuple[float, float]:
    """Sum of the workers' (wall, CPU) seconds over the captures table of a batch."""
    import pyarrow.parquet as pq

    table = pq.read_table(out / "captures.parquet", columns=["elapsed_s", "cpu_s"]).to_pydict()
    return sum(table["elapsed_s"]), sum(table["cpu_s"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--captures", type=int, default=4)
    ap.add_argument("--packets", type=int, default=50_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workdir", type=Path, default=None,
                    help="keep captures and outputs here (default: a temporary directory)")
    ap.add_argument("--json", type=Path, default=None, help="write the results here")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="batch-speedup-") as tmp:
        work = args.workdir or Path(tmp)
        inputs = work / "captures"
        inputs.mkdir(parents=True, exist_ok=True)
        paths = generate(inputs, args.captures, args.packets)
        total_bytes = sum(p.stat().st_size for p in paths)
        times: dict[int, list[float]] = {1: [], 2: []}
        # Per round: (workers' wall s, workers' CPU s). CPU well under wall = the workers
        # waited for a core (a loaded machine), which caps any speed-up.
        worker: dict[int, list[tuple[float, float]]] = {1: [], 2: []}
        load: list[float] = []
        for rnd in range(args.rounds):
            for jobs in (1, 2) if rnd % 2 == 0 else (2, 1):
                load.append(os.getloadavg()[0])
                times[jobs].append(time_batch(inputs, work / f"out_j{jobs}", jobs))
                worker[jobs].append(worker_seconds(work / f"out_j{jobs}"))
        med = {j: statistics.median(t) for j, t in times.items()}
        result = {
            "captures": args.captures, "packets_per_capture": args.packets,
            "total_bytes": total_bytes, "rounds": args.rounds,
            "seconds_jobs1": times[1], "seconds_jobs2": times[2],
            "median_s_jobs1": round(med[1], 3), "median_s_jobs2": round(med[2], 3),
            "speedup": round(med[1] / med[2], 2),
            "packets_per_s_jobs2": round(args.captures * args.packets / med[2]),
            "worker_wall_cpu_s_jobs1": worker[1], "worker_wall_cpu_s_jobs2": worker[2],
            "cpus": os.cpu_count(), "load_avg_1m_before_runs": [round(x, 2) for x in load],
            "python": platform.python_version(), "machine": platform.machine(),
        }
    print(f"{args.captures} captures x {args.packets} packets ({total_bytes / 1e6:.0f} MB), "
          f"{args.rounds} rounds, {os.cpu_count()} CPUs")
    print(f"--jobs 1: median {med[1]:.2f} s   --jobs 2: median {med[2]:.2f} s   "
          f"speed-up {med[1] / med[2]:.2f}x")
    for jobs in (1, 2):
        wall = statistics.median(w for w, _ in worker[jobs])
        cpu = statistics.median(c for _, c in worker[jobs])
        print(f"--jobs {jobs}: workers' CPU {cpu:.2f} s of {wall:.2f} s worker wall "
              f"({cpu / wall:.0%} on a core)")
    print(f"load average (1 min) before each run: {', '.join(f'{x:.1f}' for x in load)}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
