"""Two commands timed in turn, A B A B ..., each as a whole process: the figures to quote
on a shared, noisy machine.

A machine shared with other work changes speed from minute to minute, so two medians taken
minutes apart compare the machine as much as the commands. Run in turn, each pair sees the
same machine, and the ratio A/B taken pair by pair (its median and range) is what holds.
Each run is ``run.run_once`` (``bench/run.py``): CPU = user + system from ``os.wait4``
(children included, so ``--jobs`` workers count), wall time around the child, peak RSS as
GNU time reports it (the largest single process).

Usage (a command is one string, split as a shell splits words, given no shell)::

    python bench/paired.py -n 11 \\
        --vs 'tcptrace -n -l -r bench/out/200k.pcap' \\
        -- tcptrace-py analyze bench/out/200k.pcap --format jsonl -o /dev/null -q
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import Run, run_once  # noqa: E402


def _cpu(r: Run) -> float:
    return r.cpu_s


def _wall(r: Run) -> float:
    return r.wall_s


def _peak_mib(r: Run) -> float:
    return r.max_rss_kib / 1024


FIGURES: tuple[tuple[str, Callable[[Run], float]], ...] = (
    ("cpu s", _cpu), ("wall s", _wall), ("peak MiB", _peak_mib))


def _row(name: str, values: list[float]) -> str:
    return (f"{name:<12} {min(values):>10.3f} {statistics.median(values):>10.3f} "
            f"{max(values):>10.3f}")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if "--" not in args:
        print("usage: paired.py [-n RUNS] [--warmup N] [--vs 'COMMAND B'] -- COMMAND A ...",
              file=sys.stderr)
        return 2
    cut = args.index("--")
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-n", type=int, default=5, help="counted runs of each command")
    p.add_argument("--warmup", type=int, default=1, help="runs not counted, first")
    p.add_argument("--vs", default="", help="the second command (B)")
    opts = p.parse_args(args[:cut])
    a = shlex.join(args[cut + 1:])
    commands = [("A", a)] + ([("B", opts.vs)] if opts.vs else [])
    runs: dict[str, list[Run]] = {k: [] for k, _ in commands}
    for i in range(opts.warmup + opts.n):
        for key, cmd in commands:
            r = run_once(cmd, Path())
            if r.returncode != 0:
                print(f"{key} exited {r.returncode}: {r.stderr_tail.strip()[-300:]}",
                      file=sys.stderr)
                return 1
            if i >= opts.warmup:
                runs[key].append(r)
    print(f"{'':<12} {'min':>10} {'median':>10} {'max':>10}")
    for key, _ in commands:
        for name, get in FIGURES:
            print(_row(f"{key} {name}", [get(r) for r in runs[key]]))
    if opts.vs:
        for name, get in FIGURES[:2]:
            print(_row(f"A/B {name.split()[0]}",
                       [get(x) / get(y) for x, y in zip(runs["A"], runs["B"], strict=True)]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
