"""A diagnosis per watched process, from the figures only, each naming the figures it rests on.

Input: per-thread deltas over a window (on-CPU, waiting for a CPU, switches), the
processes' facts, what the Python probe said, and other programs' load. Output: a list of
`{"pid", "kind", "says", "figures", "lesson"}`, most telling first. Nothing is assumed:
not a GIL (read from the probe or the interpreter's build), not the number of CPUs
(read from affinity), not a quiet machine (measured from /proc/stat).
"""

from __future__ import annotations

import os
import time
from typing import Any

from lab.core.formatting import count_of
from workloads import machine_load as _load

# Where each threshold comes from is the lab's own experiments: gil-cpu's threads on a GIL
# build share about one core with hundreds of hand-offs a second; scale counts a CPU as
# saturated once its threads wait for it a fifth of their runnable time; io-bound's
# threads are off-CPU well over 90 % of the time.
THRESHOLDS = {
    "busy_thread_cores": 0.05,  # a thread is busy above this share of one CPU
    "gil_cores_low": 0.7,  # GIL-bound: the busy threads together use about one core...
    "gil_cores_high": 1.3,
    "gil_handoffs_per_s": 50.0,  # ...handing it over this often (voluntary switches/s)...
    "gil_run_delay_share_max": 0.2,  # ...while hardly waiting for a CPU (else: the CPUs)
    "parallel_cores": 1.3,
    "saturated_run_delay_share": 0.2,  # waiting for a CPU, of the runnable time...
    "saturated_min_cores": 0.1,  # ...of a process that wants a CPU at all
    "waiting_off_cpu_share": 0.9,
    "waiting_voluntary_per_s": 2.0,
    "preempted_involuntary_share": 0.5,  # of all switches
    "preempted_switches_per_s": 50.0,
    "preempted_run_delay_share": 0.05,  # ...and the preemptions cost it time: waiting for a CPU
    "idle_cores": 0.02,
    "one_core_cores": 0.7,
}
LESSONS = {"gil-bound": "gil-cpu", "parallel": "gil-cpu", "one-core": "gil-cpu",
           "cpu-saturated": "scale", "waiting": "io-bound", "preempted": "convoy",
           "loop-blocked": "loop-freeze", "deadlock": "deadlock", "idle": None,
           "mixed": "decision"}
ORDER = ("deadlock", "loop-blocked", "gil-bound", "cpu-saturated", "parallel", "preempted",
         "one-core", "waiting", "mixed", "idle")
MAX_PROCESSES = 8  # diagnosed per watch: the root and the busiest others


# Machine load ---------------------------------------------------------------------------
def load_reading() -> tuple:
    """(monotonic, CPU ticks of the usable CPUs, this lab's own CPU seconds)."""
    times = os.times()
    cpus = _load.usable_cpus()
    return (time.monotonic(), cpus, _load.cpu_ticks(cpus), times.user + times.system)


def load_block(start: tuple | None, end: tuple, watched_cpu_s: float) -> dict[str, Any]:
    """Other programs' share of the usable CPUs between two readings: the CPUs' busy time
    minus the watched tree's and the lab's own, plus steal (the `load` block of a run)."""
    cpus = end[1]
    block: dict[str, Any] = {"other_cpu_share": None, "steal_share": None, "busy": False,
                             "usable_cpus": len(cpus), "threshold": _load.THRESHOLD,
                             "measured_s": 0.0}
    if start is None or start[2] is None or end[2] is None:
        return block
    busy, steal, total = (b - a for a, b in zip(start[2], end[2]))
    wall = end[0] - start[0]
    capacity = total * _load.TICK_S or wall * len(cpus)
    own = end[3] - start[3]
    others = max(0.0, busy * _load.TICK_S - watched_cpu_s - own) + steal * _load.TICK_S
    figures = {"capacity_s": capacity, "other_cpu_s": min(others, capacity),
               "steal_s": steal * _load.TICK_S}
    block.update(_load.shares(figures, _load.THRESHOLD), measured_s=round(wall, 3))
    return block


# Per process --------------------------------------------------------------------------
def process_figures(threads: list[dict], wall_s: float,
                    process_cpu_s: float | None = None) -> dict[str, Any]:
    """The figures a diagnosis rests on, for one process's threads over `wall_s`;
    `process_cpu_s` (the process's own clock, ended threads included) when known."""
    wall = max(wall_s, 1e-9)
    cpu = sum(t["cpu_s"] for t in threads)
    sampled_cpu = cpu
    if process_cpu_s is not None and process_cpu_s > cpu:
        cpu = process_cpu_s  # threads that ended between samples ran too
    delays = [t["run_delay_s"] for t in threads if t["run_delay_s"] is not None]
    delay = sum(delays) if delays else None
    busy = [t for t in threads if t["cpu_s"] / wall >= THRESHOLDS["busy_thread_cores"]]
    voluntary = sum(t["voluntary"] for t in threads)
    involuntary = sum(t["involuntary"] for t in threads)
    lifetime = sum(t.get("lifetime_s", wall) for t in threads) or wall
    runnable = sampled_cpu + (delay or 0.0)  # of the threads sampled: their time alive
    return {
        "cores": round(cpu / wall, 3),
        "run_delay_share": None if delay is None or runnable <= 0 else round(delay / runnable, 3),
        "off_cpu_share": round(min(1.0, max(0.0, 1 - runnable / lifetime)), 3),
        "voluntary_per_s": round(voluntary / wall, 1),
        "involuntary_per_s": round(involuntary / wall, 1),
        "threads": len(threads),
        "threads_alive": sum(1 for t in threads if t["alive"]),
        "busy_threads": len(busy),
        "busy_cores": round(sum(t["cpu_s"] for t in busy) / wall, 3),
        "busy_handoffs_per_s": round(sum(t["voluntary"] for t in busy) / wall, 1),
        "busy_run_delay_share": _share(sum(t["run_delay_s"] or 0.0 for t in busy),
                                       sum(t["cpu_s"] for t in busy)),
        "window_s": round(wall_s, 2),
    }


def _share(delay: float, cpu: float) -> float | None:
    return round(delay / (delay + cpu), 3) if delay + cpu > 0 else None


def diagnose_figures(figures: dict[str, Any], probe: Any = None,
                     load: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every diagnosis for the processes in `figures` (Watch.figures()), most telling first."""
    by_pid: dict[int, list[dict]] = {}
    for thread in figures["threads"]:
        by_pid.setdefault(thread["pid"], []).append(thread)
    wall = figures["wall_s"]
    if wall <= 0:
        return []
    ranked = sorted(by_pid, key=lambda pid: -sum(t["cpu_s"] for t in by_pid[pid]))
    out: list[dict[str, Any]] = []
    root = figures.get("root")
    for pid in ranked[:MAX_PROCESSES]:
        facts = figures["processes"].get(pid, {})
        figs = process_figures(by_pid[pid], wall, facts.get("process_cpu_s"))
        gone = not facts.get("alive", True)
        if pid != root and gone and figs["cores"] < THRESHOLDS["idle_cores"]:
            continue  # a short-lived helper (a shell, a shim): nothing to say about it
        out += diagnose_process(pid, facts, figs, probe, load, figures.get("since"))
    out += _tree_findings(figures, by_pid, out)
    out.sort(key=lambda d: ORDER.index(d["kind"]))
    return out


def diagnose_process(pid: int, facts: dict, figs: dict, probe: Any = None,
                     load: dict | None = None, since: float | None = None
                     ) -> list[dict[str, Any]]:
    name = "%s %d" % (facts.get("name") or "pid", pid)
    found: list[dict[str, Any]] = []

    def say(kind: str, text: str, **used: Any) -> None:
        shown = {k: figs[k] for k in used.pop("keys", ())}
        shown.update(used)
        found.append({"pid": pid, "process": name, "kind": kind, "says": text,
                      "figures": shown, "lesson": LESSONS[kind]})

    if probe is not None:
        _probe_findings(pid, probe, say, since)
    t = THRESHOLDS
    cores, delay_share = figs["cores"], figs["run_delay_share"]
    python = facts.get("python")
    gil = python.get("gil_enabled") if python else None
    one_core = (figs["busy_threads"] >= 2
                and t["gil_cores_low"] <= figs["busy_cores"] <= t["gil_cores_high"]
                and figs["busy_handoffs_per_s"] >= t["gil_handoffs_per_s"]
                and (figs["busy_run_delay_share"] or 0.0) <= t["gil_run_delay_share_max"])
    usable = (load or {}).get("usable_cpus") or len(_load.usable_cpus())
    if one_core and usable >= 2 and python and gil is True:
        say("gil-bound", "GIL-bound: %d Python threads busy, together %.2f core, %.0f "
            "hand-offs/s, hardly waiting for a CPU (%s) - threads cannot add CPU here; "
            "processes can" % (figs["busy_threads"], figs["busy_cores"],
                               figs["busy_handoffs_per_s"], _pct(figs["busy_run_delay_share"])),
            keys=("busy_threads", "busy_cores", "busy_handoffs_per_s", "busy_run_delay_share"),
            gil_enabled=gil, usable_cpus=usable)
    elif one_core and usable >= 2:
        why = ("a free-threaded build: not the GIL, so a lock or a queue" if python and
               python.get("free_threaded") and gil is not True else
               "GIL state unknown" if python else "not Python: a lock or a queue")
        say("one-core", "%d threads busy, together %.2f core, %.0f hand-offs/s: they take "
            "turns (%s)" % (figs["busy_threads"], figs["busy_cores"],
                            figs["busy_handoffs_per_s"], why),
            keys=("busy_threads", "busy_cores", "busy_handoffs_per_s"), gil_enabled=gil)
    if delay_share is not None and delay_share > t["saturated_run_delay_share"] \
            and cores >= t["saturated_min_cores"]:
        other = (load or {}).get("other_cpu_share")
        say("cpu-saturated", "CPU-saturated: runnable threads waited for a CPU %s of the time"
            "%s" % (_pct(delay_share), "" if other is None else
                    "; other programs took %s of the %s" % (_pct(other), count_of(usable, "usable CPU"))),
            keys=("run_delay_share", "cores"), other_cpu_share=other, usable_cpus=usable)
    if cores > t["parallel_cores"]:
        say("parallel", "parallel: %.2f cores in use by %d busy threads" % (
            cores, figs["busy_threads"]), keys=("cores", "busy_threads"), usable_cpus=usable)
    switches = figs["voluntary_per_s"] + figs["involuntary_per_s"]
    # A busy thread is preempted at every tick someone else wants the CPU; that is only
    # worth saying when it dominates the switches *and* costs the threads waiting time,
    # and not again when cpu-saturated already explains it.
    saturated = any(d["kind"] == "cpu-saturated" for d in found)
    if not saturated and switches >= t["preempted_switches_per_s"] and \
            figs["involuntary_per_s"] / switches > t["preempted_involuntary_share"] and \
            (delay_share or 0.0) >= t["preempted_run_delay_share"]:
        say("preempted", "preempted: involuntary switches dominate (%.0f/s against %.0f/s "
            "voluntary) and runnable threads waited for a CPU %s of the time: they want to "
            "run longer than the scheduler lets them" % (
                figs["involuntary_per_s"], figs["voluntary_per_s"], _pct(delay_share)),
            keys=("involuntary_per_s", "voluntary_per_s", "run_delay_share"))
    if not any(d["kind"] in ("gil-bound", "one-core", "cpu-saturated") for d in found) \
            and figs["busy_threads"] >= 1 and cores >= t["one_core_cores"] \
            and cores <= t["parallel_cores"]:
        say("one-core", "one core busy (%.2f): %d busy thread%s" % (
            cores, figs["busy_threads"], "" if figs["busy_threads"] == 1 else "s"),
            keys=("cores", "busy_threads"))
    if cores < t["idle_cores"] and figs["voluntary_per_s"] < t["waiting_voluntary_per_s"]:
        say("idle", "idle: %.2f cores, %.1f voluntary switches/s" % (
            cores, figs["voluntary_per_s"]),
            keys=("cores", "voluntary_per_s"))
    elif figs["off_cpu_share"] > t["waiting_off_cpu_share"] and \
            figs["voluntary_per_s"] >= t["waiting_voluntary_per_s"]:
        say("waiting", "mostly waiting: %s off-CPU, %.0f voluntary switches/s (it sleeps, "
            "reads or waits on locks)" % (_pct(figs["off_cpu_share"]), figs["voluntary_per_s"]),
            keys=("off_cpu_share", "voluntary_per_s"))
    if not found:
        say("mixed", "no single pattern: %.2f cores, %s off-CPU, waited for a CPU %s of its "
            "runnable time, %.0f voluntary and %.0f involuntary switches/s" % (
                cores, _pct(figs["off_cpu_share"]), _pct(delay_share),
                figs["voluntary_per_s"], figs["involuntary_per_s"]),
            keys=("cores", "off_cpu_share", "run_delay_share", "voluntary_per_s",
                  "involuntary_per_s"))
    return found


def _tree_findings(figures: dict, by_pid: dict, found: list) -> list[dict[str, Any]]:
    """Processes that together use several cores (a process pool): parallel as a tree."""
    root = figures.get("root")
    wall = max(figures["wall_s"], 1e-9)
    busy = {pid: max(sum(t["cpu_s"] for t in threads),
                     (figures["processes"].get(pid) or {}).get("process_cpu_s") or 0.0) / wall
            for pid, threads in by_pid.items()}
    cores = sum(busy.values())
    working = [pid for pid, c in busy.items() if c >= THRESHOLDS["busy_thread_cores"]]
    if root is None or len(working) < 2 or cores <= THRESHOLDS["parallel_cores"] or any(
            d["kind"] == "parallel" for d in found):
        return []
    name = "%s %d" % ((figures["processes"].get(root) or {}).get("name") or "pid", root)
    return [{"pid": root, "process": name + " and its children", "kind": "parallel",
             "says": "parallel: the process tree uses %.2f cores across %d busy processes"
             % (cores, len(working)),
             "figures": {"tree_cores": round(cores, 3), "busy_processes": len(working)},
             "lesson": LESSONS["parallel"]}]


def _probe_findings(pid: int, probe: Any, say: Any, since: float | None) -> None:
    block = probe.worst_block_since(pid, since)
    if block:
        lag = _num(block.get("lag_ms"))
        say("loop-blocked", "event loop blocked %.0f ms at %s" % (lag, block.get("where", "?")),
            lag_ms=lag, where=block.get("where"), loop=block.get("loop"))
    locks = probe.locks.get(pid)
    if locks:
        cycle = wait_cycle(locks)
        if cycle:
            names = locks.get("names") or {}
            parts = ["%s holds %s and waits for %s" % (
                str(names.get(str(tid), "thread %s" % tid))[:100], held, wanted)
                     for tid, held, wanted in cycle]
            say("deadlock", "deadlock: " + "; ".join(parts),
                cycle=[{"tid": tid, "holds": held, "waits_for": wanted,
                        "where": _text((locks.get("where") or {}).get(str(tid)))}
                       for tid, held, wanted in cycle])


def wait_cycle(locks: dict) -> list[tuple[int, str, str]]:
    """A cycle in the wait-for graph of a `locks` event, as (tid, a lock it holds, the lock
    it waits for); [] if there is none."""
    held = locks.get("held") or {}
    waiting = {int(k): str(v)[:100] for k, v in (locks.get("waiting") or {}).items()
               if str(k).lstrip("-").isdigit()}
    owner = {str(name)[:100]: int(tid) for name, tid in held.items()
             if isinstance(tid, (int, str)) and str(tid).lstrip("-").isdigit()}
    holds: dict[int, list[str]] = {}
    for name, tid in owner.items():
        holds.setdefault(tid, []).append(name)
    for start in sorted(waiting):
        path, tid = [], start
        while tid in waiting and tid not in path:
            path.append(tid)
            tid = owner.get(waiting[tid], -1)
        if tid in path:
            loop = path[path.index(tid):]
            return [(t, _held_for(t, holds, waiting, owner), waiting[t]) for t in loop]
    return []


def _held_for(tid: int, holds: dict, waiting: dict, owner: dict) -> str:
    """The lock of `tid` that the previous thread in the cycle waits for (else any held)."""
    wanted_by_others = {lock for t, lock in waiting.items() if t != tid}
    mine = holds.get(tid, [])
    for lock in mine:
        if lock in wanted_by_others:
            return lock
    return mine[0] if mine else "?"


def diagnose(state: Any, probe: Any = None, load: dict | None = None) -> list[dict[str, Any]]:
    """The diagnosis of a RunState's whole run (threads counted from zero: a command we
    started). Watch.diagnose() does the same over a recent window."""
    threads = [{"pid": v.pid, "tid": v.tid, "name": v.name, "alive": v.alive,
                "cpu_s": v.cpu_s, "run_delay_s": v.run_delay_s, "voluntary": v.voluntary or 0,
                "involuntary": v.involuntary or 0} for v in state.threads.values()]
    processes = {pid: {"pid": pid, "name": p.name} for pid, p in state.processes.items()}
    return diagnose_figures({"wall_s": state.duration_s, "threads": threads,
                             "processes": processes}, probe, load)


def _text(value: Any) -> str | None:
    return None if value is None else str(value)[:300]


def _pct(share: float | None) -> str:
    return "?" if share is None else "%d %%" % round(100 * share)


def _num(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0
