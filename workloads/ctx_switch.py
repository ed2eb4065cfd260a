"""ctx-switch: what a context switch costs, measured so that it cannot hide batching."""

from __future__ import annotations

import subprocess
import sys

from . import _go, _goswitch, _ladder, _limits, _perfbench
from ._pingpong import PLACEMENTS, oneway, ping_pong
from ._proto import cpus_available
from ._spec import Param, ParamError

NAME = "ctx-switch"
TITLE = "The cost of a context switch: one-way pipe vs ping-pong, same core vs across"
LESSON = """\
A context switch happens when a thread stops and the kernel runs another in its place.
Timing one honestly needs a workload that cannot go on without the other side: in a
ping-pong each side sends one byte and then has nothing to do until the answer comes,
so every message is one hand-off. Writing single bytes into a pipe that nobody answers
is different: the 64 KiB pipe buffer lets the writer run for a whole time slice, and
the reader drains it afterwards. That times system calls, not switches. Every figure
here carries the switches the kernel counted per message, so you can tell which is
which. Placement matters too: on one core the switch is a register swap; across cores
the sleeping side must be woken on another CPU, which can cost much more.
"""
REQUIRES = ()
TIMEOUT_S = 600
LESSON_CODE = ("_pingpong:ping", "_pingpong:pong")
# In the TUI it runs in turn with other CPU-bound runs: ping-pong keeps CPUs busy; a
# switch across cores needs an idle core.
CPU_BOUND = True

METHODS = ("oneway", "threads", "processes")
PARAMS = (
    Param.choice("method", "all", ("all",) + METHODS,
                 "oneway: the article's pipe; threads / processes: ping-pong"),
    Param.choice("placement", "all", ("all",) + PLACEMENTS,
                 "CPU placement of the two sides (cross-core needs 2 CPUs)"),
    Param.int("messages", 50_000, 1_000, 1_000_000,
              "one-way messages per run (a ping-pong does half as many round trips)"),
    Param.bool("perf", True, "also run `perf bench sched pipe` (C) with the same placement"),
    Param.bool("ladder", True, "also time generator, asyncio, uvloop and goroutine switches"),
    Param.int("requests_per_s", 10_000, 1, 10_000_000, "server arithmetic: requests per second"),
    Param.float("switches_per_request", 2.0, 0.0, 1000.0,
                "server arithmetic: context switches each request causes"),
)

LADDER_RESUMES = 200_000  # in-interpreter switches timed per rung
SINGULAR = {"threads": "thread", "processes": "process"}
PLACE_WORDS = {"same-core": "same core", "cross-core": "cross core", "unpinned": "unpinned"}


def tasks_needed(params):
    """Main thread, a ping-pong pair and its helper, perf's two tasks, then the ladder's
    Go build and program (one after another, so the largest counts)."""
    ping_pong = 1 + 3 + (2 if params["perf"] else 0)
    if params["ladder"]:
        return "ladder", max(ping_pong, 1 + _limits.go_tasks())
    return "perf", ping_pong


def check_limits(params, timeout_s):
    if params["placement"] == "cross-core" and len(cpus_available()) < 2:
        raise ParamError("placement", "parameter 'placement' cannot be cross-core here: this "
                         "process may use only CPU %s (cross-core needs 2 CPUs)"
                         % ",".join(str(c) for c in cpus_available()))


def on_a_vm():
    try:
        with open("/proc/cpuinfo") as f:
            return any(line.startswith("flags") and " hypervisor" in line for line in f)
    except OSError:
        return False


def chosen(params, allowed):
    methods = METHODS if params["method"] == "all" else (params["method"],)
    placements = PLACEMENTS if params["placement"] == "all" else (params["placement"],)
    skipped = {}
    if len(allowed) < 2 and "cross-core" in placements:
        placements = tuple(p for p in placements if p != "cross-core")
        skipped["cross-core"] = "only one CPU is usable here (CPU %d)" % allowed[0]
    return methods, placements, skipped


def run(params, out):
    allowed = cpus_available()
    methods, placements, skipped = chosen(params, allowed)
    messages = params["messages"]
    out.emit("setup", cpus=allowed, vm=on_a_vm(), skipped=skipped)
    ladder, ladder_notes = {}, {}
    if params["ladder"]:
        ladder, ladder_notes = in_interpreter_rungs(out)

    figures = {}
    for method in methods:
        for placement in placements:
            key = "%s/%s" % (method, placement)
            out.emit("phase", run=key, state="start")
            if method == "oneway":
                fig = oneway(placement, allowed, messages)
            else:
                fig = ping_pong(method, placement, allowed, messages // 2)
            out.flush()
            figures[key] = fig
            out.emit("figure", run=key, **fig)
            out.emit("phase", run=key, state="end")
            if method != "oneway" and params["ladder"]:
                name = "%s ping-pong %s" % (SINGULAR[method], PLACE_WORDS[placement])
                ladder[name] = fig["us_per_msg"] * 1000
                out.emit("rung", name=name, ns_per_switch=ladder[name],
                         switches_per_msg=fig["switches_per_msg"])

    perf = None
    if params["perf"]:
        perf = perf_floor(methods, placements, allowed, max(1, messages // 2), out)

    ordered = dict(sorted(ladder.items(), key=lambda kv: (kv[1] is None, kv[1] or 0.0)))
    return {
        "methods": figures,
        "perf": perf,
        "ladder": ordered,
        "ladder_notes": ladder_notes,
        "server": server_arithmetic(params, ordered),
        "skipped": skipped,
        "cpus": allowed,
        "vm": on_a_vm(),
        "explanation": explain(figures, perf, ordered, ladder_notes, on_a_vm()),
    }


def in_interpreter_rungs(out):
    """Generator, asyncio, uvloop (if importable) and Go (if installed): no kernel switch."""
    ladder, notes = {}, {}
    timings = (("generator resume", lambda: _ladder.generator_resume_ns(LADDER_RESUMES)),
               ("asyncio task switch", lambda: _ladder.asyncio_switch_ns(LADDER_RESUMES // 4)),
               ("uvloop task switch", lambda: _ladder.uvloop_switch_ns(LADDER_RESUMES // 4)),
               ("goroutine switch", lambda: _goswitch.goroutine_switch_ns(LADDER_RESUMES)[0]))
    for name, timing in timings:
        try:
            ladder[name] = timing()
        except ImportError:
            ladder[name] = None
            notes[name] = "uvloop is not importable in this interpreter (%s %d.%d.%d)" % (
                (sys.implementation.name,) + tuple(sys.version_info[:3]))
        except (_go.GoError, OSError, ValueError, subprocess.SubprocessError) as exc:
            ladder[name] = None
            notes[name] = str(exc)
        out.emit("rung", name=name, ns_per_switch=ladder[name], note=notes.get(name))
    return ladder, notes


def perf_floor(methods, placements, allowed, loops, out):
    """`perf bench sched pipe` beside each ping-pong placement (processes and -T threads)."""
    path, why = _perfbench.check_perf()
    if path is None:
        out.emit("perf", available=False, reason=why)
        return {"available": False, "reason": why}
    runs = {}
    for method in [m for m in methods if m != "oneway"] or ["processes"]:
        for placement in placements:
            key = "%s/%s" % (method, placement)
            out.emit("phase", run="perf " + key, state="start")
            runs[key] = _perfbench.run_perf(path, placement, allowed, loops,
                                            threaded=(method == "threads"))
            out.emit("perf", available=True, run=key, **runs[key])
            out.emit("phase", run="perf " + key, state="end")
    return {"available": True, "path": path, "runs": runs}


def server_arithmetic(params, ladder):
    """Requests/s x switches/request x measured cost = CPU time per second spent switching."""
    rate, per_request = params["requests_per_s"], params["switches_per_request"]
    cost = {}
    for name, ns in ladder.items():
        if ns is not None:
            cost[name] = rate * per_request * ns / 1e6  # ms of CPU per second
    return {"requests_per_s": rate, "switches_per_request": per_request,
            "cpu_ms_per_s": cost}


def compare_with_perf(figures, runs):
    """perf's C ping-pong beside ours, one sentence per placement measured by both."""
    lines = []
    for placement in PLACEMENTS:
        pairs = [(figures[key]["us_per_roundtrip"], runs[key]["us_per_roundtrip"], key)
                 for key in sorted(runs) if key.endswith("/" + placement) and key in figures
                 and runs[key].get("us_per_roundtrip") is not None]
        if not pairs:
            continue
        lab, c, key = min(pairs, key=lambda p: p[1])
        if c <= lab:
            lines.append("%s: perf bench (C) %.2f µs per round trip, the lab's Python %.2f: "
                         "Python adds %.2f µs." % (key, c, lab, lab - c))
        else:
            lines.append("%s: perf bench (C) took %.2f µs per round trip, the lab's Python "
                         "%.2f: no faster in C, because the time goes to waking the other "
                         "side, not to running code." % (key, c, lab))
    return lines


def explain(figures, perf, ladder, notes, vm):
    lines = []
    for key, fig in figures.items():
        if fig["method"] == "oneway" and fig["reading"] == "batching":
            lines.append(
                "%s: %.2f µs per byte but only %.3f switches per message - batching, not "
                "switching: the pipe buffer let each side run a whole time slice, so this "
                "times two system calls, not a context switch." % (
                    key, fig["us_per_msg"], fig["switches_per_msg"]))
            break
    same = figures.get("processes/same-core") or figures.get("threads/same-core")
    cross = figures.get("processes/cross-core") or figures.get("threads/cross-core")
    if same:
        lines.append("Ping-pong on one core: %.2f µs per hand-off at %.2f switches per "
                     "message - each message really is one switch." % (
                         same["us_per_msg"], same["switches_per_msg"]))
    if same and cross:
        ratio = cross["us_per_msg"] / same["us_per_msg"] if same["us_per_msg"] else 0.0
        why = ("across cores the sleeping side is woken on another CPU by an interrupt")
        if vm:
            why += (", and in this virtual machine that CPU is a virtual one the host must "
                    "first bring back from idle")
        lines.append("Across cores: %.2f µs per hand-off, %.1fx the same-core cost: %s." % (
            cross["us_per_msg"], ratio, why))
    if perf and perf.get("available"):
        lines += compare_with_perf(figures, perf["runs"])
    elif perf is not None:
        lines.append("perf not run: %s." % perf.get("reason"))
    for name, note in notes.items():
        lines.append("%s: unavailable (%s)." % (name, note))
    return " ".join(lines)
