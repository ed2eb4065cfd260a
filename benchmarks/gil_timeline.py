"""How true the GIL timeline is, and what its stamps cost.

1. Accuracy: gil-cpu, 2 CPU-bound threads, at switch intervals of 1, 5 and 20 ms: the
   median hold the stamps measured against the interval (aim: within 20 %).
2. Cost: gil-cpu's threads-mode wall time with stamps on and off, interleaved runs, the
   medians compared (aim: at most 3 %); and the same loop timed in one process, one
   thread, with and without stamps (the cost without the noise of a whole run).

Every run's other-programs share of the CPUs is printed beside it: on a busy machine a
waiting thread queues for a CPU before it can ask for the GIL, and holds stretch.

    python benchmarks/gil_timeline.py [--reps 5] [--work 10000000] [--python PY]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def gil_cpu(python: str, work: int, **params) -> dict:
    given = {"work": work, "tasks": 2, "modes": "threads", **params}
    done = subprocess.run([python, "-m", "workloads", "gil-cpu", "--params", json.dumps(given)],
                          capture_output=True, text=True, cwd=ROOT, stdin=subprocess.DEVNULL,
                          timeout=600)
    if done.returncode != 0:
        raise SystemExit("gil-cpu failed: %s" % done.stdout[-500:])
    return json.loads(done.stdout.splitlines()[-1])["result"]


def accuracy(python: str, work: int, reps: int) -> bool:
    print("Median hold against the switch interval (2 CPU-bound threads, %d runs each)" % reps)
    print("%8s %10s %10s %8s %10s %s" % ("interval", "hold p50", "hold p95", "off by",
                                          "hand-offs", "others' CPU share per run"))
    good = True
    for interval in (1.0, 5.0, 20.0):
        results = [gil_cpu(python, work, switch_interval_ms=interval) for _ in range(reps)]
        quiet = [r for r in results if not r["load"]["busy"]] or results
        p50 = statistics.median(r["gil_timeline"]["hold_ms"]["p50"] for r in quiet)
        p95 = statistics.median(r["gil_timeline"]["hold_ms"]["p95"] for r in quiet)
        rate = statistics.median(r["gil_timeline"]["handoffs_per_s"] for r in quiet)
        off = p50 / interval - 1
        good &= abs(off) <= 0.2
        print("%6g ms %7.2f ms %7.2f ms %+7.0f%% %8.0f/s  %s%s" % (
            interval, p50, p95, 100 * off, rate,
            " ".join("%.0f%%" % (100 * r["load"]["other_cpu_share"]) for r in results),
            "" if len(quiet) == len(results) else " (median of the %d quiet runs)" % len(quiet)))
    return good


def run_cost(python: str, work: int, reps: int) -> float:
    walls = {True: [], False: []}
    for pair in range(reps):
        for stamps in ((True, False) if pair % 2 == 0 else (False, True)):  # on first, off first
            walls[stamps].append(gil_cpu(python, work, stamps=stamps)["modes"]["threads"]["wall_s"])
    on, off = statistics.median(walls[True]), statistics.median(walls[False])
    cost = on / off - 1
    print("gil-cpu threads mode, %d interleaved runs each: stamps on %.3f s, off %.3f s "
          "(medians): %+.1f %%" % (reps, on, off, 100 * cost))
    return cost


def loop_cost(python: str, reps: int) -> float:
    code = r"""
import json, statistics, time
from workloads._stamps import Timeline
from workloads.gil_cpu import cpu_work
class Quiet:
    def emit(self, *a, **k): pass
timeline = Timeline(Quiet())
cpu_work(2_000_000)
timeline.calibrate(cpu_work)
n, on, off = 3_000_000, [], []
for _ in range(%d):
    t = time.perf_counter(); cpu_work(n); off.append(time.perf_counter() - t)
    stamps = timeline.thread()
    t = time.perf_counter(); cpu_work(n, stamps); on.append(time.perf_counter() - t)
    stamps.finish()
print(json.dumps([statistics.median(on), statistics.median(off), timeline.spacing_ns]))
""" % (4 * reps)
    done = subprocess.run([python, "-c", code], capture_output=True, text=True, cwd=ROOT,
                          stdin=subprocess.DEVNULL, timeout=600)
    on, off, spacing = json.loads(done.stdout)
    cost = on / off - 1
    print("the loop alone, one thread, %d interleaved timings each: %.1f ms with stamps "
          "(one per %.3f ms), %.1f ms without: %+.1f %%" % (
              4 * reps, on * 1000, spacing / 1e6, off * 1000, 100 * cost))
    return cost


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--work", type=int, default=10_000_000)
    parser.add_argument("--python", default=sys.executable)
    args = parser.parse_args()
    started = time.monotonic()
    print("python: %s" % args.python)
    good = accuracy(args.python, args.work, args.reps)
    cost = run_cost(args.python, args.work, args.reps)
    loop = loop_cost(args.python, args.reps)
    print("accuracy within 20 %%: %s · stamps cost within 3 %%: %s (run), %s (loop) · %.0f s"
          % ("yes" if good else "NO", "yes" if cost <= 0.03 else "NO",
             "yes" if loop <= 0.03 else "NO", time.monotonic() - started))
    return 0


if __name__ == "__main__":
    sys.exit(main())
