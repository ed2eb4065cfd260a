"""What does `conlab run` add beyond the workload itself?

Times, over several repetitions, (a) the whole `conlab run NAME --json` command and
(b) the workload as the child measured it (first event to result), and reports the
difference: interpreter start-up of the CLI and the child, validation, sampling, the record.
Also times the bare child (`python -m workloads NAME`) for comparison.

Goal: under 0.3 s.

    python benchmarks/run_overhead.py [--repeat 7]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ARGS = ["race", "-p", "variant=local", "-p", "increments=1000"]


def timed(command: list[str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT,
                          stdin=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(ROOT)})
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit("failed: %s\n%s" % (command, done.stderr))
    return elapsed, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    total, inside, bare = [], [], []
    for _ in range(args.repeat):
        elapsed, out = timed([sys.executable, "-m", "lab", "run", *ARGS, "--json"])
        record = json.loads(out)
        total.append(elapsed)
        inside.append(record["duration_s"])
        elapsed, _ = timed([sys.executable, "-m", "workloads", "race", "--params",
                            json.dumps({"variant": "local", "increments": 1000})])
        bare.append(elapsed)
    med = statistics.median
    print("conlab run (whole command)   median %.3f s" % med(total))
    print("  child lifetime, as sampled median %.3f s" % med(inside))
    print("bare python -m workloads     median %.3f s" % med(bare))
    print("overhead beyond the bare child: %.3f s (goal < 0.3 s)" % (med(total) - med(bare)))


if __name__ == "__main__":
    main()
