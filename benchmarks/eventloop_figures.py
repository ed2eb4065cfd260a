"""The event-loop figures for the README, measured on this machine, as Markdown.

    python benchmarks/eventloop_figures.py            # all four, 3 repeats each (~2 min)
    python benchmarks/eventloop_figures.py --repeats 5 --only epoll

Each figure is the median of `--repeats` headless runs (`conlab run NAME --json`, the
same command the table prints), so one noisy run does not decide it. The load average
before and after is printed too: on a shared machine, throughput figures move with it.
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

FREEZE_QUIET = ["blocks=0", "duration_s=5"]
EPOLL = ["connections=500", "duration_s=2"]
CONVOY = ["requests=300"]
IO_SMALL = ["requests=20", "delay=0.5"]
IO_MANY = ["requests=1000", "delay=1", "modes=threads"]
IO_MANY_ASYNC = ["requests=1000", "delay=1", "modes=asyncio"]


def run(experiment: str, params: list[str]) -> dict:
    args = [sys.executable, "-m", "lab", "run", experiment, "--json"]
    for p in params:
        args += ["-p", p]
    done = subprocess.run(args, capture_output=True, text=True, cwd=ROOT, stdin=subprocess.DEVNULL,
                          timeout=600)
    if done.returncode != 0:
        raise SystemExit("%s failed: %s" % (" ".join(args), done.stderr.strip()))
    return json.loads(done.stdout)["result"]


def command(experiment: str, params: list[str]) -> str:
    return "conlab run %s %s" % (experiment, " ".join("-p " + p for p in params))


def median_of(results: list[dict], *path: str) -> float:
    values = []
    for result in results:
        value = result
        for key in path:
            value = value[key]
        values.append(value)
    return statistics.median(values)


def freeze(repeats: int) -> list[str]:
    lines = ["### Tick lateness when nothing blocks (loop-freeze, 10 ms ticks, 5 s)", "",
             "| loop | p50 ms | p99 ms | max ms |", "|---|---|---|---|"]
    cmds = []
    for loop in ("asyncio", "uvloop"):
        params = FREEZE_QUIET + ["loop=" + loop]
        results = [run("loop-freeze", params) for _ in range(repeats)]
        lines.append("| %s | %.3f | %.3f | %.2f |" % (
            loop, median_of(results, "lag_ms", "p50"), median_of(results, "lag_ms", "p99"),
            median_of(results, "lag_ms", "max")))
        cmds.append(command("loop-freeze", params))
    return lines + [""] + ["    " + c for c in cmds]


def epoll(repeats: int) -> list[str]:
    results = [run("epoll", EPOLL) for _ in range(repeats)]
    lines = ["### Echo throughput, one thread (epoll, 500 connections, 64-byte messages)", "",
             "| loop | requests/s | requests per CPU-second | selector waits/s | ready per wait "
             "| page faults per request |", "|---|---|---|---|---|---|"]
    for loop in ("tiny", "asyncio", "asyncio_tuned", "uvloop"):
        if loop not in results[0]["loops"]:
            continue
        waits = [r["loops"][loop].get("waits_per_s") for r in results]
        ready = [r["loops"][loop].get("ready_per_wait") for r in results]
        lines.append("| %s | %.0f | %.0f | %s | %s | %.2f |" % (
            loop, median_of(results, "loops", loop, "requests_per_s"),
            median_of(results, "loops", loop, "requests_per_cpu_s"),
            "%.0f" % statistics.median(waits) if None not in waits else "(in libuv)",
            "%.1f" % statistics.median(ready) if None not in ready else "-",
            median_of(results, "loops", loop, "page_faults_per_request")))
    if "uvloop_over_asyncio" in results[0]:
        lines += ["", "uvloop / asyncio: **%.2fx** requests/s, **%.2fx** per CPU-second; "
                  "uvloop / asyncio with glibc's mmap threshold at 1 MiB (asyncio_tuned): "
                  "**%.2fx** per CPU-second (median of %d runs; uvloop's README claims 2-4x)." % (
                      median_of(results, "uvloop_over_asyncio"),
                      median_of(results, "uvloop_over_asyncio_per_cpu_s"),
                      median_of(results, "uvloop_over_asyncio_tuned_per_cpu_s"), repeats)]
    return lines + ["", "    " + command("epoll", EPOLL)]


def convoy(repeats: int) -> list[str]:
    results = [run("convoy", CONVOY) for _ in range(repeats)]
    lines = ["### GIL convoy (round trip to a peer that answers after 0.2 ms; switch "
             "interval 5 ms)", "", "| beside the I/O thread | p50 ms | p99 ms |", "|---|---|---|"]
    for phase, label in (("alone", "nothing"), ("cpu_thread", "one CPU-bound thread"),
                         ("cpu_process", "one CPU-bound process")):
        lines.append("| %s | %.2f | %.2f |" % (
            label, median_of(results, "latency_ms", phase, "p50"),
            median_of(results, "latency_ms", phase, "p99")))
    return lines + ["", "    " + command("convoy", CONVOY)]


def io_bound(repeats: int) -> list[str]:
    small = [run("io-bound", IO_SMALL) for _ in range(repeats)]
    lines = ["### Waiting work (io-bound, local aiohttp delay server)", "",
             "| requests x delay | mode | wall s | ideal s | CPU s | memory per waiter |",
             "|---|---|---|---|---|---|"]
    for mode in ("sequential", "threads", "asyncio"):
        lines.append("| 20 x 0.5 s | %s | %.2f | %.2f | %.2f | %s |" % (
            mode, median_of(small, "modes", mode, "wall_s"), small[0]["modes"][mode]["ideal_s"],
            median_of(small, "modes", mode, "cpu_s"),
            "-" if mode == "sequential" else
            "%.0f kB" % median_of(small, "modes", mode, "rss_per_waiter_kb")))
    for params in (IO_MANY, IO_MANY_ASYNC):
        mode = params[-1].split("=")[1]
        many = [run("io-bound", params) for _ in range(repeats)]
        lines.append("| 1000 x 1 s | %s | %.2f | %.2f | %.2f | %.0f kB |" % (
            mode, median_of(many, "modes", mode, "wall_s"), 1.0,
            median_of(many, "modes", mode, "cpu_s"),
            median_of(many, "modes", mode, "rss_per_waiter_kb")))
    return lines + [""] + ["    " + command("io-bound", p) for p in (IO_SMALL, IO_MANY,
                                                                      IO_MANY_ASYNC)]


SECTIONS = {"loop-freeze": freeze, "epoll": epoll, "convoy": convoy, "io-bound": io_bound}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", choices=sorted(SECTIONS), action="append")
    args = parser.parse_args()
    before = os.getloadavg()[0]
    out = []
    for name in args.only or list(SECTIONS):
        out += SECTIONS[name](args.repeats) + [""]
    out.append("Load average %.1f before, %.1f after, on %d CPUs (median of %d runs each)."
               % (before, os.getloadavg()[0], len(os.sched_getaffinity(0)), args.repeats))
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
