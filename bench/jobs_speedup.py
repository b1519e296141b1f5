#!/usr/bin/env python3
"""One capture with ``--jobs 1``, ``2``, ``3``...: time, CPU per process, peak memory, and a
digest of the whole output (records and findings, hashed as they arrive) to show it is the
same.

Why this shape: each run is a child process (start-up included) that analyses the capture
through ``tcptrace_py.parallel.engine_for`` as the CLI does and serialises every result, as
the CLI's jsonl does; the job counts alternate so machine noise hits them alike. On a shared
machine wall time is not a speed-up: the CPU of the busiest process (``cpu_parent`` or the
largest ``worker_cpu_s``) is what an idle machine with one core per worker would take, and
the load average is printed with each run.

Usage::

    python bench/jobs_speedup.py bench/out/2m.pcap --jobs 1 2 3 --rounds 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

CHILD = """
import hashlib, json, os, resource, sys, time
start = time.perf_counter()
from tcptrace_py.gcpolicy import collector_paused
from tcptrace_py.options import Options
from tcptrace_py.parallel import ParallelEngine, engine_for
path, jobs = sys.argv[1], int(sys.argv[2])
engine = engine_for(Options(keep_events=False), jobs, path)  # as analyze and anomalies
h = hashlib.sha256()
n = 0
with collector_paused():
    for r in engine.run(path):
        n += 1
        h.update(json.dumps([r.record, [a.summary for a in r.anomalies]],
                            default=repr).encode())
h.update(json.dumps([a.summary for a in engine.summary.anomalies]).encode())
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
workers = engine.worker_peak_rss_kib[1:] if isinstance(engine, ParallelEngine) else []
c = os.times()
print(json.dumps({"jobs": jobs, "connections": n, "digest": h.hexdigest()[:16],
                  "wall_s": round(time.perf_counter() - start, 2),
                  "cpu_parent_s": round(c.user + c.system, 2),
                  "cpu_workers_s": round(c.children_user + c.children_system, 2),
                  "rss_total_mib": round((rss + sum(workers)) / 1024, 1)}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("capture", type=Path)
    ap.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--rounds", type=int, default=1)
    args = ap.parse_args()
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT) + os.pathsep
               + os.environ.get("PYTHONPATH", ""))
    digests = set()
    for _ in range(args.rounds):
        for jobs in args.jobs:
            load = os.getloadavg()[0]
            out = subprocess.run([sys.executable, "-c", CHILD, str(args.capture), str(jobs)],
                                 check=True, capture_output=True, text=True, env=env).stdout
            row = json.loads(out) | {"load_1m_before": round(load, 2)}
            digests.add(row["digest"])
            print(json.dumps(row), flush=True)
    print("same output for every job count" if len(digests) == 1 else "OUTPUTS DIFFER")


if __name__ == "__main__":
    main()
