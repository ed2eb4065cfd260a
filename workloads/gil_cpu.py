"""gil-cpu: the same pure-Python CPU work, run one after another, in threads, in processes."""

from __future__ import annotations

import os
import sys
import time

from ._proto import events, gil_enabled, start_process, start_thread
from ._spec import Param, ParamError

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

MODES = ("sequential", "threads", "processes")
PARAMS = (
    Param.int("work", 10_000_000, 1_000, 500_000_000, "loop iterations per task"),
    Param.int("tasks", 2, 1, 64, "how many tasks (threads / processes in those modes)"),
    Param.float("switch_interval_ms", 5.0, 0.01, 1000.0,
                "sys.setswitchinterval: how long a thread may hold a contended GIL"),
    Param.choice("modes", "all", ("all",) + MODES, "which modes to run"),
)

PARTS = 20  # each task reports its progress this many times


def check_limits(params):
    soft, _hard = _nproc_limit()
    if soft is not None and params["tasks"] > soft // 2:
        raise ParamError("tasks", "parameter 'tasks' must be at most %d here (RLIMIT_NPROC is %d)"
                         % (soft // 2, soft))


def _nproc_limit():
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NPROC)
        return (None if soft == resource.RLIM_INFINITY else soft), hard
    except (ImportError, AttributeError, ValueError):
        return None, None


# The work itself: nothing but bytecode, no I/O, no calls into C that drop the GIL.
def cpu_work(n):
    total = 0
    for i in range(n):
        total += i * i
    return total


def task(index, work):
    """One task: the work in PARTS slices, reporting progress between slices."""
    out = events()
    for part in range(PARTS):
        cpu_work(work // PARTS)
        out.latest("progress", key=str(index), task=index, done=(part + 1) / PARTS)


def run_sequential(tasks, work):
    for index in range(tasks):
        task(index, work)


def run_threads(tasks, work):
    threads = [start_thread(task, "cpu-%d" % (i + 1), "worker", (i, work)) for i in range(tasks)]
    for thread in threads:
        thread.join()


def run_processes(tasks, work):
    processes = [start_process(task, "proc-%d" % (i + 1), "worker", (i, work))[0]
                 for i in range(tasks)]
    for process in processes:
        process.join()


RUNNERS = {"sequential": run_sequential, "threads": run_threads, "processes": run_processes}


def measure(mode, tasks, work, out):
    """Wall and CPU time of one mode, CPU counted for us and our finished children."""
    out.emit("phase", mode=mode, state="start", tasks=tasks)
    before_wall, before_cpu = time.perf_counter(), os.times()
    RUNNERS[mode](tasks, work)
    wall = time.perf_counter() - before_wall
    after = os.times()
    cpu = sum(after[:4]) - sum(before_cpu[:4])  # user+system, self and reaped children
    out.flush()
    out.emit("phase", mode=mode, state="end", wall_s=wall, cpu_s=cpu)
    return {"wall_s": wall, "cpu_s": cpu, "cpu_efficiency": cpu / wall if wall else 0.0}


def run(params, out):
    sys.setswitchinterval(params["switch_interval_ms"] / 1000.0)
    modes = MODES if params["modes"] == "all" else (params["modes"],)
    # Warm up first (not measured), so the first mode does not pay alone for a CPU that is
    # still ramping up or a cold interpreter.
    cpu_work(min(params["work"], 2_000_000))
    results = {}
    for mode in modes:
        results[mode] = measure(mode, params["tasks"], params["work"], out)

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
        "cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "explanation": explain(speedup, params["tasks"]),
    }


def explain(speedup, tasks):
    """A reading of the numbers just measured, for this interpreter."""
    lines = []
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
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
    return " ".join(lines)
