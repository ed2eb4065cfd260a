"""This machine's OS-lab figures, for the README: the cost ladder beside `perf bench sched
pipe`, what a thread / process / task costs to start and to keep, and how fast the
deadlock watchdog sees a cycle.

Runs the experiments exactly as a user would (`conlab run NAME --json`), repeats the
ctx-switch run and keeps the median of each figure (the machine is shared and noisy),
and prints Markdown tables with the commands that produced them.

    python benchmarks/oslab_figures.py [--repeat 3] [--messages 50000] [--count 2000]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def conlab_json(*args: str) -> dict:
    command = [sys.executable, "-m", "lab", "run", *args, "--json"]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT,
                          stdin=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(ROOT)})
    if done.returncode != 0:
        raise SystemExit("failed: %s\n%s" % (" ".join(command), done.stderr))
    return json.loads(done.stdout)


def shown(args) -> str:
    return "conlab run " + " ".join(args)


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def ctx_switch(repeat: int, messages: int) -> None:
    args = ["ctx-switch", "-p", "messages=%d" % messages]
    runs = [conlab_json(*args)["result"] for _ in range(repeat)]
    first = runs[0]
    print("## Context switches (median of %d runs)\n" % repeat)
    print("`%s`%s\n" % (shown(args), " — a VM" if first["vm"] else ""))
    print("| method/placement | µs per message | µs per round trip | switches/msg | reading "
          "| perf bench µs/round trip |")
    print("|---|---:|---:|---:|---|---:|")
    perf_runs = (first.get("perf") or {}).get("runs", {})
    for key in first["methods"]:
        per_msg = median([r["methods"][key]["us_per_msg"] for r in runs])
        per_rt = median([r["methods"][key]["us_per_roundtrip"] for r in runs])
        switches = median([r["methods"][key]["switches_per_msg"] for r in runs])
        perf = median([((r.get("perf") or {}).get("runs", {}).get(key) or {}).get("us_per_roundtrip")
                       for r in runs]) if key in perf_runs else None
        print("| %s | %.2f | %s | %.3f | %s | %s |" % (
            key, per_msg, "-" if per_rt is None else "%.2f" % per_rt, switches,
            first["methods"][key]["reading"], "-" if perf is None else "%.2f" % perf))
    print("\n### The ladder (ns per switch) and the server arithmetic\n")
    server = first["server"]
    print("| rung | ns per switch | CPU ms/s at %s req/s × %g switches/req |" % (
        "{:,}".format(server["requests_per_s"]), server["switches_per_request"]))
    print("|---|---:|---:|")
    rungs = [(name, median([r["ladder"].get(name) for r in runs])) for name in first["ladder"]]
    for name, ns in sorted(rungs, key=lambda kv: (kv[1] is None, kv[1] or 0.0)):
        if ns is None:
            print("| %s | unavailable | - |" % name)
            continue
        cost = server["requests_per_s"] * server["switches_per_request"] * ns / 1e6
        print("| %s | %s | %.1f |" % (name, "{:,}".format(round(ns)), cost))
    if perf_runs:
        print("\nperf commands, e.g.: " + "; ".join(
            "`%s`" % run["command"] for key, run in perf_runs.items() if "command" in run
            and key.endswith("same-core")))
    print()


def scale(count: int) -> None:
    args = ["scale", "-p", "count=%d" % count]
    result = conlab_json(*args)["result"]
    print("## Threads, processes, tasks\n\n`%s`\n" % shown(args))
    print("| kind | spawn µs/unit | resident bytes/unit | reserved |")
    print("|---|---:|---:|---|")
    for kind, fig in result["units"].items():
        reserved = "-"
        if kind == "threads":
            reserved = "%.1f MiB stack" % (fig["stack_reserved_bytes"] / 2**20)
        print("| %s | %.1f | %s | %s |" % (kind, fig["spawn_us_per_unit"],
                                          "{:,}".format(round(fig["rss_bytes_per_unit"])), reserved))
    ext = result.get("extrapolated")
    if ext:
        print("\n100 000 threads: %.0f GB of stack reserved, about %.1f GB resident." % (
            ext["stack_reserved_bytes"] / 1e9, ext["resident_bytes"] / 1e9))
    caps = result["caps"]
    print("\nCaps: " + "; ".join("%s ≤ %s (%s)" % (k, "{:,}".format(v["max"]), v["limit"])
                                 for k, v in caps.items() if v))
    print()


def deadlock(repeat: int) -> None:
    args = ["deadlock"]
    after = []
    for _ in range(repeat):
        result = conlab_json(*args)["result"]
        assert result["deadlocked"], result
        after.append(result["detected_after_ms"])
    print("## Deadlock detection\n\n`%s` × %d: the watchdog saw the cycle %.1f ms (median, "
          "max %.1f ms) after it closed.\n" % (shown(args), repeat, statistics.median(after),
                                             max(after)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--count", type=int, default=2_000)
    args = parser.parse_args()
    ctx_switch(args.repeat, args.messages)
    scale(args.count)
    deadlock(max(5, args.repeat))


if __name__ == "__main__":
    main()
