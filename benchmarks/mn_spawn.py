"""The article's demo, measured: what one unit of concurrency costs on this machine.

Runs `goroutines` in spawn mode (as `conlab run goroutines -p mode=spawn` does): N goroutines
(real Go, when `go` is installed), N Gs of the lab's Python M:N runtime, N asyncio tasks,
and as many Python threads as this machine safely allows (capped, see --threads). Each
kind spawns its units behind a gate, in a fresh process, measured the same way: the
spawn loop's time, the time until all wait at the gate, the growth of resident and
virtual memory meanwhile, then the time to run them all.

    python benchmarks/mn_spawn.py                       # 100 000 units, 10 000 threads
    python benchmarks/mn_spawn.py --units 1000000 --repeat 3
    python benchmarks/mn_spawn.py --python ~/.pyenv/versions/3.9.18/bin/python

Prints a Markdown table (the median of --repeat runs) for the README.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lab.core.machine import machine  # noqa: E402
from lab.core.runner import Refused, RunRequest, prepare, Run  # noqa: E402

LABELS = {"goroutine": "Go goroutine", "mn_g": "Python M:N runtime G",
          "asyncio_task": "asyncio task", "thread": "Python thread"}
COLUMNS = (("spawn_us_per_unit", "spawn µs/unit"), ("ready_us_per_unit", "ready µs/unit"),
           ("bytes_per_unit", "resident B/unit"), ("virtual_bytes_per_unit", "virtual B/unit"),
           ("kernel_stack_bytes_per_unit", "kernel stack B/unit"), ("run_ms", "run ms"))


async def once(params, python):
    run = Run(prepare(RunRequest("goroutines", params, python=python, timeout_s=1800)))
    state = await run.run()
    if state.status != "done":
        raise SystemExit("run failed: %s" % state.error)
    return state


def fmt(value):
    if value is None:
        return "-"
    if isinstance(value, float) and value < 100:
        return "%.2f" % value
    return "{:,}".format(round(value)).replace(",", " ")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=100_000)
    parser.add_argument("--threads", type=int, default=10_000)
    parser.add_argument("--unit-work", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--python", default=None)
    args = parser.parse_args(argv)
    params = {"mode": "spawn", "units": args.units, "threads": args.threads,
              "unit_work": args.unit_work}
    try:
        prepare(RunRequest("goroutines", params, python=args.python))
    except Refused as exc:
        raise SystemExit("refused: %s" % exc)
    runs = []
    for i in range(args.repeat):
        state = asyncio.run(once(params, args.python))
        runs.append(state)
        print("run %d/%d done in %.1f s" % (i + 1, args.repeat, state.duration_s),
              file=sys.stderr)
    host = machine()
    python = runs[0].hello["python"]
    print("Machine: %s, %d CPUs%s; %s %s; median of %d run(s)." % (
        host.cpu_model or "?", host.usable_cpus, " (VM)" if host.hypervisor else "",
        python["implementation"], python["version"], len(runs)))
    print()
    print("| unit | units | " + " | ".join(title for _, title in COLUMNS) + " |")
    print("|---|---:|" + "---:|" * len(COLUMNS))
    for kind, label in LABELS.items():
        figures = [s.result["kinds"].get(kind) or {} for s in runs]
        if "skipped" in figures[0] or "error" in figures[0]:
            print("| %s | - | %s |" % (label, figures[0].get("skipped") or figures[0]["error"]))
            continue
        cells = []
        for key, _title in COLUMNS:
            values = [f.get(key) for f in figures if f.get(key) is not None]
            cells.append(fmt(statistics.median(values)) if values else "-")
        print("| %s | %s | %s |" % (label, fmt(figures[0]["units"]), " | ".join(cells)))
    go = runs[0].result["kinds"].get("goroutine") or {}
    if go.get("go_version"):
        print()
        print("Go: %s; its own stack accounting: %s B of stack per goroutine." % (
            go["go_version"], fmt(go.get("go_stack_bytes_per_unit"))))
    print()
    print("The article says: %s." % runs[0].result["article_says"])


if __name__ == "__main__":
    main()
