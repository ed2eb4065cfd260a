"""gil-cpu: the same pure-Python CPU work, run one after another, in threads, in processes."""

from __future__ import annotations

import os
import sys
import sysconfig
import time

from ._load import LoadMeter, describe, own_cpu_s
from ._proto import events, gil_enabled, start_process, start_thread, thread_stats
from ._spec import Param
from ._stamps import NO_STAMPS, Timeline, for_this_thread

NAME = "gil-cpu"
TITLE = "CPU-bound work: sequential vs threads vs processes"
LESSON = """\
Each task is a plain Python loop that only computes. Run the tasks one after another,
then each in its own thread, then each in its own process. The evidence is the cores
the threads use together (their CPU-seconds per wall-second): on a build with a GIL only
one thread runs bytecode at a time, so they get one core's worth, each asleep while it
waits for the GIL rather than queuing for a core; on a free-threaded build they spread
over min(tasks, CPUs) cores. Processes each have their own interpreter, so they spread
over the cores on either build. Wall-clock speedups follow, with more noise.
"""
REQUIRES = ()
TIMEOUT_S = 300
LESSON_CODE = ("cpu_work", "run_threads")
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
    Param.bool("stamps", True,
               "threads note the time every ~0.15 ms of work: the GIL timeline (off: its cost)"),
)

PARTS = 20  # each task reports its progress this many times
EXTRA_ROUNDS = 2  # rounds added, at most, when other programs took the CPUs in every round
ONE_CORE, PARALLEL = 1.15, 1.3  # threads' cores used: at most one core / clearly more
CPU_PER_WORK_SPREAD = 0.05  # modes' CPU time per iteration further apart than this: say so


def tasks_needed(params):
    """Main thread and `tasks` workers (threads or processes, one mode at a time)."""
    return "tasks", 1 + params["tasks"]


# The work itself: nothing but bytecode, no I/O, no calls into C that drop the GIL.
def cpu_work(n, stamps=NO_STAMPS):
    total = 0
    for chunk in stamps.chunks(n):  # range(n) in slices, a progress stamp after each
        for i in chunk:
            total += i * i
    return total


def task(index, work, timeline=None):
    """One task: the work in PARTS slices, reporting progress between slices.

    Returns the calling thread's split while it worked, from the kernel's schedstat: on a
    CPU, runnable but waiting for one (run_delay), and the rest off-CPU (asleep: under a
    GIL, mostly waiting for it).
    """
    out = events()
    stamps = for_this_thread(timeline)
    started, before = time.perf_counter(), thread_stats()
    for part in range(PARTS):
        cpu_work(work // PARTS, stamps)
        out.latest("progress", key=str(index), task=index, done=(part + 1) / PARTS)
    stamps.finish()
    span, after = time.perf_counter() - started, thread_stats()
    on_cpu = after.get("cpu_s", 0.0) - before.get("cpu_s", 0.0)
    waiting = after.get("run_delay_s", 0.0) - before.get("run_delay_s", 0.0)
    return {"task": index, "span_s": span, "on_cpu_s": on_cpu, "waiting_for_cpu_s": waiting,
            "off_cpu_s": max(0.0, span - on_cpu - waiting)}


# Each mode runs the tasks its own way and returns each task's split. Only the threads
# leave progress stamps (timeline): they are the ones that take turns on the GIL.
def run_sequential(tasks, work, timeline=None):
    return [task(index, work) for index in range(tasks)]


def run_threads(tasks, work, timeline=None):
    splits = [None] * tasks

    def worker(index):
        splits[index] = task(index, work, timeline)

    threads = [start_thread(worker, "cpu-%d" % (i + 1), "worker", (i,)) for i in range(tasks)]
    for thread in threads:
        thread.join()
    return [s for s in splits if s is not None]


def run_processes(tasks, work, timeline=None):
    started = [start_process(task, "proc-%d" % (i + 1), "worker", (i, work), want_result=True)
               for i in range(tasks)]
    splits = [receiver.recv() for _process, receiver in started]
    for process, _receiver in started:
        process.join()
    return [s for s in splits if s is not None]


RUNNERS = {"sequential": run_sequential, "threads": run_threads, "processes": run_processes}


def measure(mode, tasks, work, out, meter, timeline=None):
    """One round of one mode: wall time, the workers' CPU time and split, other programs'
    share of the CPUs meanwhile."""
    out.emit("phase", mode=mode, state="start", tasks=tasks)
    cpu_before = own_cpu_s()
    with meter.window() as window:
        before_wall = time.perf_counter()
        if mode == "threads" and timeline is not None:
            with timeline.round():
                splits = run_threads(tasks, work, timeline)
        else:
            splits = RUNNERS[mode](tasks, work)
        wall = time.perf_counter() - before_wall
    cpu = own_cpu_s() - cpu_before  # this process, its threads and its reaped workers
    on_cpu = sum(s["on_cpu_s"] for s in splits)
    lived = sum(s["span_s"] for s in splits) or 1.0
    waited = sum(s["waiting_for_cpu_s"] for s in splits)
    figures = {
        "wall_s": wall, "cpu_s": cpu, "cpu_efficiency": cpu / wall if wall else 0.0,
        "cores_used": round(on_cpu / wall, 3) if wall else 0.0,
        "workers_cpu_s": round(on_cpu, 4),
        "cpu_ns_per_iteration": round(1e9 * on_cpu / (tasks * work), 2),
        "waited_for_cpu_s": waited,
        "split": {"on_cpu": round(on_cpu / lived, 3), "waiting_for_cpu": round(waited / lived, 3),
                  "off_cpu": round(sum(s["off_cpu_s"] for s in splits) / lived, 3)},
        "workers": [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in s.items()}
                    for s in splits],
        "other_cpu_share": window.figures["other_cpu_share"],
        "busy": window.figures["busy"],
    }
    out.flush()
    out.emit("phase", mode=mode, state="end", wall_s=wall, cpu_s=cpu,
             cores_used=figures["cores_used"], waited_for_cpu_s=waited,
             other_cpu_share=figures["other_cpu_share"], busy=figures["busy"])
    return figures


def usable_cpus():
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def free_threaded():
    return bool(sysconfig.get_config_var("Py_GIL_DISABLED"))


def summarise(measured):
    """A mode's figures: its median round among those other programs left alone (all
    rounds if none was), with every round's wall time and load beside it."""
    quiet = [m for m in measured if not m["busy"]]
    pool = quiet or measured
    median = sorted(pool, key=lambda m: m["wall_s"])[len(pool) // 2]
    return dict(median, wall_s_rounds=[m["wall_s"] for m in measured],
                other_cpu_share_rounds=[m["other_cpu_share"] for m in measured],
                quiet_rounds=len(quiet))


def run(params, out):
    sys.setswitchinterval(params["switch_interval_ms"] / 1000.0)
    modes = MODES if params["modes"] == "all" else (params["modes"],)
    tasks, work = params["tasks"], params["work"]
    meter = LoadMeter()
    timeline = Timeline(out) if params["stamps"] else None
    # Warm up first (not measured), so the first mode does not pay alone for a CPU that is
    # still ramping up or a cold interpreter; the warm loop also sets the stamps' period.
    cpu_work(min(work, 2_000_000))
    if timeline is not None:
        timeline.calibrate(cpu_work)
    # Rounds interleave the modes, so a burst of noise from the machine lands on one
    # round of each rather than on one mode. When other programs took a real share of the
    # CPUs in every round of the mode the verdict reads, a few more rounds are run.
    rounds = {mode: [] for mode in modes}
    judged = "threads" if "threads" in modes else None
    planned, extra = params["repeat"], 0
    while True:
        for mode in modes:
            rounds[mode].append(measure(mode, tasks, work, out, meter, timeline))
        if len(rounds[modes[0]]) < planned:
            continue
        if judged is None or any(not m["busy"] for m in rounds[judged]) \
                or extra >= EXTRA_ROUNDS:
            break
        extra += 1
        out.emit("retry", extra=extra, most=EXTRA_ROUNDS,
                 other_cpu_share=rounds[judged][-1]["other_cpu_share"])
    results = {mode: summarise(measured) for mode, measured in rounds.items()}

    speedup = {}
    if "sequential" in results:
        base = results["sequential"]["wall_s"]
        for mode in ("threads", "processes"):
            if mode in results:
                speedup[mode] = base / results[mode]["wall_s"]
    load = meter.block()
    facts = {"tasks": tasks, "cpus": usable_cpus(), "gil_enabled": gil_enabled(),
             "free_threaded": free_threaded(), "extra_rounds": extra}
    judgement = verdict(results, facts)
    return dict(
        facts,
        modes=results,
        speedup=speedup,
        work=work,
        switch_interval_s=sys.getswitchinterval(),
        gil_timeline=timeline.summary(sys.getswitchinterval()) if timeline is not None else
        {"stamps": False, "switch_interval_ms": round(sys.getswitchinterval() * 1000, 3)},
        load=load,
        verdict=judgement,
        explanation=explain(speedup, results, facts, load, judgement),
    )


# Reading the numbers ----------------------------------------------------------------------
def verdict(results, facts):
    """What the threads' cores used say, or None when threads did not run."""
    threads = results.get("threads")
    if threads is None:
        return None
    cores = threads["cores_used"]
    lanes = min(facts["tasks"], facts["cpus"])
    judged = {"figure": "modes.threads.cores_used", "value": cores,
              "expected": {"gil": 1.0, "free_threaded": float(lanes)}, "can_tell": True}
    if not threads["quiet_rounds"]:
        share = max(x for x in threads["other_cpu_share_rounds"] if x is not None)
        return dict(judged, says="can't tell on a machine this busy", can_tell=False,
                    why="other programs took %d%% of the usable CPUs in every threads round"
                        % round(100 * share))
    if lanes < 2:
        what = "%d task%s" % (facts["tasks"], "" if facts["tasks"] == 1 else "s") \
            if facts["tasks"] < 2 else "1 usable CPU"
        # Nothing to tell apart here: with one lane a GIL build and a free-threaded one
        # both take turns, and the sentence says why.
        return dict(judged, says="threads took turns on one core (%.2f cores; %s, so with or "
                                 "without a GIL)" % (cores, what))
    if cores >= PARALLEL:
        return dict(judged, says="threads ran in parallel on %.2f cores" % cores)
    if cores <= ONE_CORE:
        return dict(judged, says="threads took turns on one core (%.2f cores)" % cores)
    return dict(judged, says="can't tell: %.2f cores is neither one core nor clearly more"
                % cores, can_tell=False,
                why="the threads used between %.2f and %.2f cores" % (ONE_CORE, PARALLEL))


def explain(speedup, results, facts, load, judgement):
    """A reading of the numbers just measured, for this interpreter, said once."""
    lines = []
    tasks, cpus = facts["tasks"], facts["cpus"]
    lanes = min(tasks, cpus)
    threads = results.get("threads")
    if threads is not None:
        split = threads["split"]
        lines.append("Threads: together the %d threads used %.2f cores (CPU-seconds per "
                     "wall-second); each was on a CPU %d%% of its time, waiting for a CPU "
                     "%d%%, off-CPU %d%%." % (tasks, threads["cores_used"],
                                             round(100 * split["on_cpu"]),
                                             round(100 * split["waiting_for_cpu"]),
                                             round(100 * split["off_cpu"])))
        lines.append(build_reading(threads["cores_used"], facts, lanes,
                                   told=judgement is not None and judgement["can_tell"]))
    if speedup:
        parts = ["%s %.2fx" % (mode, value) for mode, value in speedup.items()]
        lines.append("Wall time against sequential: %s, the consequence of the cores used "
                     "(and noisier)." % ", ".join(parts))
    processes = results.get("processes")
    if processes is not None:
        lines.append("Processes used %.2f cores of the %d CPU%s: each has its own "
                     "interpreter, so they run side by side up to the number of CPUs."
                     % (processes["cores_used"], cpus, "" if cpus == 1 else "s"))
    lines += cpu_per_work_note(results)
    lines += load_note(load, judgement, facts)
    return " ".join(line for line in lines if line)


def build_reading(cores, facts, lanes, told):
    """Why the threads used what they used, for the interpreter that ran them; a surprise
    is pointed out only when the figure can be trusted (`told`)."""
    if facts["gil_enabled"]:
        forced = " (a free-threaded build with its GIL switched on)" if facts["free_threaded"] \
            else ""
        text = ("This interpreter has a GIL%s: only the thread holding it runs Python "
                "bytecode, the others sleep until it is handed over, so threads get one "
                "core's worth however many CPUs there are." % forced)
        if told and cores >= PARALLEL:
            text += (" Yet they used %.2f cores here: more than the GIL allows for pure "
                     "bytecode, so something else ran in them." % cores)
        return text
    text = ("This free-threaded build runs threads side by side, so they can use up to "
            "min(tasks, CPUs) = %d core%s." % (lanes, "" if lanes == 1 else "s"))
    if told and lanes >= 2 and cores <= ONE_CORE:
        text += (" They used only %.2f here: something (a CPU quota, other programs) kept "
                 "them to one core." % cores)
    return text


def cpu_per_work_note(results):
    """The same work should cost the same CPU time in every mode; say when it did not."""
    costs = {mode: r["cpu_ns_per_iteration"] for mode, r in results.items()
             if r["cpu_ns_per_iteration"] > 0}
    if len(costs) < 2 or max(costs.values()) <= min(costs.values()) * (1 + CPU_PER_WORK_SPREAD):
        return []
    parts = ", ".join("%s %.1f ns" % (mode, cost) for mode, cost in costs.items())
    return ["The same work took different CPU time per iteration (%s): the CPU ran faster "
            "or slower from one mode to the next (clock boost, caches, other load), and "
            "that moves wall-clock speedups too; the verdict reads cores used instead."
            % parts]


def load_note(load, judgement, facts):
    """Other programs' share of the CPUs, once for the whole run."""
    if not load.get("busy"):
        return []
    text = describe(load)
    if judgement is not None and not judgement["can_tell"] and \
            judgement["says"].startswith("can't tell on a machine this busy"):
        text += (" Every threads round was contended%s: can't tell on a machine this busy."
                 % (" (%d more round%s tried)" % (facts["extra_rounds"],
                                                  "" if facts["extra_rounds"] == 1 else "s")
                    if facts["extra_rounds"] else ""))
    elif judgement is not None:
        text += " The verdict rests on the rounds they left alone."
    else:
        text += " Wall times are inflated by that much or more."
    return [text]
