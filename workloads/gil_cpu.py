"""gil-cpu: the same pure-Python CPU work, run one after another, in threads, in processes."""

from __future__ import annotations

import os
import sys
import time

from ._proto import events, gil_enabled, start_process, start_thread, thread_stats
from ._spec import Param

NAME = "gil-cpu"
TITLE = "CPU-bound work: sequential vs threads vs processes"
LESSON = """\
Each task is a plain Python loop that only computes. Run the tasks one after another,
then each in its own thread, then each in its own process, and compare wall time.
On a build with a GIL only one thread runs Python bytecode at a time, so threads take
turns on a single core's worth of CPU: the kernel shows each thread near 1/N of a CPU,
sleeping (voluntary switches) while it waits for the GIL, not queuing for a core.
Processes each have their own interpreter and GIL, so they spread over the cores.
"""
REQUIRES = ()
TIMEOUT_S = 300
# In the TUI it runs in turn with other CPU-bound runs: every mode computes on all the
# CPUs it can get; its figure is cores used.
CPU_BOUND = True

MODES = ("sequential", "threads", "processes")
PARAMS = (
    Param.int("work", 10_000_000, 1_000, 500_000_000, "loop iterations per task"),
    Param.int("tasks", 2, 1, 64, "how many tasks (threads / processes in those modes)"),
    Param.float("switch_interval_ms", 5.0, 0.01, 1000.0,
                "sys.setswitchinterval: how long a thread may hold a contended GIL"),
    Param.choice("modes", "all", ("all",) + MODES, "which modes to run"),
    Param.int("repeat", 1, 1, 15,
              "rounds of all the modes, interleaved; each mode reports its median round"),
)

PARTS = 20  # each task reports its progress this many times
CONTENDED_SHARE = 0.1  # a mode whose workers waited this share of the time for a CPU is flagged


def tasks_needed(params):
    """Main thread and `tasks` workers (threads or processes, one mode at a time)."""
    return "tasks", 1 + params["tasks"]


# The work itself: nothing but bytecode, no I/O, no calls into C that drop the GIL.
def cpu_work(n):
    total = 0
    for i in range(n):
        total += i * i
    return total


def task(index, work):
    """One task: the work in PARTS slices, reporting progress between slices.

    Returns how long this thread was runnable but had no CPU (the kernel's run_delay):
    time that other programs took from it, which would inflate its wall time.
    """
    out = events()
    before = thread_stats().get("run_delay_s", 0.0)
    for part in range(PARTS):
        cpu_work(work // PARTS)
        out.latest("progress", key=str(index), task=index, done=(part + 1) / PARTS)
    return thread_stats().get("run_delay_s", 0.0) - before


# Each mode runs the tasks its own way and returns the seconds they waited for a CPU.
def run_sequential(tasks, work):
    return sum(task(index, work) for index in range(tasks))


def run_threads(tasks, work):
    waited = [0.0] * tasks

    def worker(index):
        waited[index] = task(index, work)

    threads = [start_thread(worker, "cpu-%d" % (i + 1), "worker", (i,)) for i in range(tasks)]
    for thread in threads:
        thread.join()
    return sum(waited)


def run_processes(tasks, work):
    started = [start_process(task, "proc-%d" % (i + 1), "worker", (i, work), want_result=True)
               for i in range(tasks)]
    waited = sum(receiver.recv() or 0.0 for _process, receiver in started)
    for process, _receiver in started:
        process.join()
    return waited


RUNNERS = {"sequential": run_sequential, "threads": run_threads, "processes": run_processes}


def measure(mode, tasks, work, out):
    """Wall and CPU time of one mode, CPU counted for us and our finished children."""
    out.emit("phase", mode=mode, state="start", tasks=tasks)
    before_wall, before_cpu = time.perf_counter(), os.times()
    waited = RUNNERS[mode](tasks, work)
    wall = time.perf_counter() - before_wall
    after = os.times()
    cpu = sum(after[:4]) - sum(before_cpu[:4])  # user+system, self and reaped children
    busy = contended(mode, waited, wall, tasks)
    out.flush()
    out.emit("phase", mode=mode, state="end", wall_s=wall, cpu_s=cpu, waited_for_cpu_s=waited,
             contended=busy)
    return {"wall_s": wall, "cpu_s": cpu, "cpu_efficiency": cpu / wall if wall else 0.0,
            "waited_for_cpu_s": waited, "contended": busy}


def usable_cpus():
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def contended(mode, waited, wall, tasks):
    """Did other programs take a noticeable share of the CPU time this mode could use?

    Threads under the GIL wait for the GIL asleep, not in run_delay, so any run_delay is
    someone else's doing; processes beyond the number of CPUs queue by design.
    """
    if mode == "processes" and tasks > usable_cpus():
        return False
    lanes = min(tasks, usable_cpus()) if mode == "processes" else 1
    return wall > 0 and waited / (wall * lanes) > CONTENDED_SHARE


def run(params, out):
    sys.setswitchinterval(params["switch_interval_ms"] / 1000.0)
    modes = MODES if params["modes"] == "all" else (params["modes"],)
    # Warm up first (not measured), so the first mode does not pay alone for a CPU that is
    # still ramping up or a cold interpreter.
    cpu_work(min(params["work"], 2_000_000))
    # Rounds interleave the modes, so a burst of noise from the machine lands on one
    # round of each rather than on one mode; each mode reports its median round.
    rounds = {mode: [] for mode in modes}
    for _round in range(params["repeat"]):
        for mode in modes:
            rounds[mode].append(measure(mode, params["tasks"], params["work"], out))
    results = {}
    for mode, measured in rounds.items():
        median = sorted(measured, key=lambda m: m["wall_s"])[len(measured) // 2]
        results[mode] = dict(median, wall_s_rounds=[m["wall_s"] for m in measured])

    speedup = {}
    if "sequential" in results:
        base = results["sequential"]["wall_s"]
        for mode in ("threads", "processes"):
            if mode in results:
                speedup[mode] = base / results[mode]["wall_s"]
    return {
        "modes": results,
        "speedup": speedup,
        "tasks": params["tasks"],
        "work": params["work"],
        "switch_interval_s": sys.getswitchinterval(),
        "gil_enabled": gil_enabled(),
        "cpus": usable_cpus(),
        "contended": [mode for mode in modes if results[mode]["contended"]],
        "explanation": explain(speedup, params["tasks"], results),
    }


def explain(speedup, tasks, results):
    """A reading of the numbers just measured, for this interpreter."""
    lines = []
    cpus = usable_cpus()
    threads, processes = speedup.get("threads"), speedup.get("processes")
    if threads is not None:
        if gil_enabled():
            lines.append("Threads ran at %.2fx the sequential speed: with the GIL only one of the "
                         "%d threads executes bytecode at any moment." % (threads, tasks))
        else:
            lines.append("Threads ran at %.2fx: this interpreter runs without a GIL, so threads "
                         "can use several cores." % threads)
    if processes is not None:
        lines.append("Processes ran at %.2fx with %d CPU(s) available: each has its own "
                     "interpreter, so they run in parallel up to the number of cores."
                     % (processes, cpus))
    for mode, figures in results.items():
        if figures["contended"]:
            lines.append("Careful: other programs took CPU time during %s (its workers waited "
                         "%.2f s for a CPU in %.2f s), so that time is inflated and the "
                         "speedups are not clean; run it alone on a quiet machine."
                         % (mode, figures["waited_for_cpu_s"], figures["wall_s"]))
    return " ".join(lines)
