"""goroutines: M:N scheduling - a small Python M:N runtime, and real Go beside it."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time

from . import _go, _limits
from ._mn_runtime import Runtime, WaitGroup, syscall
from ._proto import cpus_available, gil_enabled, start_process, start_thread
from ._spec import Param, ParamError
from ._words import times

NAME = "goroutines"
TITLE = "M:N scheduling: goroutines on a few threads (Python runtime, and Go)"
LESSON = """\
Go runs many goroutines (G) on a few OS threads (M). A thread may only run Go code while
it holds a P, a logical processor; there are GOMAXPROCS Ps. Each P keeps its own queue
of runnable Gs, an idle P steals half of a busy P's queue, and a global queue catches
the overflow. When a G blocks in a system call its thread blocks with it, so a monitor
(sysmon) takes the P away and gives it to another thread: the thread count climbs past
the P count while the Gs keep running. The Python runtime here does the same with the
same names; under the GIL its threads still take turns, so together they use about one
core, while Go's use one core per P. Spawn mode measures what one unit of concurrency
costs: a goroutine, a Python thread, an asyncio task, a G of the Python runtime.
"""
REQUIRES = ()
TIMEOUT_S = 600
LESSON_CODE = (
    "goroutine",
    "spin",
    "_mn_runtime:Runtime.schedule",
    "_mn_runtime:Runtime.findrunnable",
)
# In the TUI it runs in turn with other CPU-bound runs: goroutines compute on GOMAXPROCS
# threads; its figure is cores used.
CPU_BOUND = True

PARAMS = (
    Param.choice("mode", "schedule", ("schedule", "spawn"),
                 "schedule: watch Gs, Ms and Ps; spawn: time and memory per unit, 4 ways"),
    Param.choice("runtime", "python", ("python", "go"),
                 "the Python M:N runtime, or real Go (needs the `go` command)"),
    Param.int("gs", 1000, 1, 20_000, "goroutines to run (schedule mode)"),
    Param.int("ps", 0, 0, 64, "Ps, i.e. GOMAXPROCS (0: the CPUs this process may use)"),
    Param.float("work_ms", 2.0, 0.0, 100.0,
                "CPU milliseconds of loop work per G (each runtime calibrates its own loop)"),
    Param.float("block_fraction", 0.2, 0.0, 1.0,
                "fraction of Gs that block in a real system call halfway through"),
    Param.float("block_ms", 50.0, 0.0, 2000.0, "how long that blocking call (nanosleep) lasts"),
    Param.int("units", 100_000, 1, 1_000_000,
              "goroutines, asyncio tasks and Python-runtime Gs to spawn (spawn mode)"),
    Param.int("threads", 10_000, 0, 1_000_000,
              "Python threads to spawn (spawn mode; refused past this machine's safe limit)"),
    Param.int("unit_work", 1000, 0, 1_000_000,
              "loop iterations each spawned unit runs (spawn mode; the article's loop is 1000)"),
)

YIELD_EVERY = 1000  # loop iterations between yield points in a Python G
TRACE_EVERY_S = 0.1  # like GODEBUG=schedtrace=100
GO_DETAIL_MAX_GS = 4000  # scheddetail prints every G: beyond this, queues only
EVENT_MS_MAX = 64  # Ms listed per event
LINGER_MS = 250  # Go waits this long at the end so its trace records the drained queues
ARTICLE_SAYS = ("goroutine stacks start at 2-8 KB where an OS thread gets 1-8 MB; "
                "100 000 goroutines take about 400 MB and finish in milliseconds")


# Machine limits -----------------------------------------------------------------------------
def _read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def _meminfo(field):
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return None


def thread_cap():
    """(how many more threads this process may safely start, why). Half of the headroom
    under every limit that applies: the host keeps the other half."""
    limits = []
    tasks = None
    loadavg = _read("/proc/loadavg").split()
    if len(loadavg) >= 4 and "/" in loadavg[3]:
        tasks = int(loadavg[3].split("/")[1])  # threads running on the whole machine
    nproc = _limits.nproc_cap()  # the user's own tasks count here, not the machine's,
    if nproc is not None:  # and all of its headroom is the user's (hence the doubling)
        limits.append((2 * nproc.units, nproc.describe()))
    for path, label in (("/proc/sys/kernel/threads-max", "threads-max"),
                        ("/proc/sys/kernel/pid_max", "pid_max")):
        text = _read(path).strip()
        if text.isdigit():
            limits.append((int(text) - (tasks or 0), "%s %s" % (label, text)))
    maps_max = _read("/proc/sys/vm/max_map_count").strip()
    if maps_max.isdigit():  # each thread stack is two mappings (stack and guard page)
        used = len(_read("/proc/self/maps").splitlines())
        limits.append(((int(maps_max) - used) // 2, "vm.max_map_count %s" % maps_max))
    available = _meminfo("MemAvailable")
    if available:  # resident stack pages, kernel stack, page tables: 64 KiB is generous
        limits.append((available // (64 * 1024), "%d MiB available" % (available >> 20)))
    if _read("/proc/sys/vm/overcommit_memory").strip() == "2":  # strict: stacks count in full
        commit = (_meminfo("CommitLimit") or 0) - (_meminfo("Committed_AS") or 0)
        limits.append((commit // (8 << 20), "strict overcommit, %d MiB committable"
                       % (commit >> 20)))
    for path in _cgroup_pids_files():
        text = _read(path).strip()
        current = _read(os.path.join(os.path.dirname(path), "pids.current")).strip()
        if text.isdigit() and current.isdigit():
            limits.append((int(text) - int(current), "cgroup pids.max %s" % text))
    if not limits:
        return 1000, "no limits readable; 1000 assumed"
    headroom, why = min(limits)
    return max(0, headroom // 2), why + (" with %d threads running" % tasks if tasks else "")


def _cgroup_pids_files():
    found = []
    for line in _read("/proc/self/cgroup").splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        if parts[1] == "" or "pids" in parts[1].split(","):
            base = "/sys/fs/cgroup" if parts[1] == "" else "/sys/fs/cgroup/pids"
            found.append(base + parts[2].rstrip("/") + "/pids.max")
    return found


def blocking(index, fraction):
    """Whether G `index` blocks: round(gs*fraction) of them, evenly spread (same rule in Go)."""
    return int((index + 1) * fraction) > int(index * fraction)


def count_blocking(gs, fraction):
    return sum(1 for i in range(gs) if blocking(i, fraction))


def gomaxprocs(params):
    return params["ps"] or len(cpus_available())


def tasks_needed(params):
    """Schedule: main thread, the blocked Gs' Ms, one per P, sysmon and readers (or a Go
    build and program). Spawn: a fresh process with `threads` threads, then Go."""
    go = 1 + _limits.go_tasks() if _go.find_go() is not None else 0
    if params["mode"] == "schedule":
        ms = count_blocking(params["gs"], params["block_fraction"]) if params["block_ms"] else 0
        python = 1 + ms + gomaxprocs(params) + 8
        if params["runtime"] == "python":
            return "gs", python
        return "gs", max(go, python + 1)
    return "threads", max(go, 2 + params["threads"])


def check_limits(params, timeout_s):
    if params["runtime"] == "go" and _go.find_go() is None:
        raise ParamError("runtime", "runtime=go needs the `go` command, which is not on PATH: "
                         + _go.HOW_TO_GET)
    cap, why = thread_cap()
    if params["mode"] == "schedule":
        # Every G blocked in a syscall at once holds a thread: at most this many Ms.
        needed = count_blocking(params["gs"], params["block_fraction"]) + gomaxprocs(params) + 8
        if params["block_ms"] > 0 and needed > cap:
            raise ParamError("gs", "parameter 'gs' x 'block_fraction' could need %d threads; "
                             "this machine allows at most %d here (%s)" % (needed, cap, why))
        return
    if params["threads"] > cap:
        raise ParamError("threads", "parameter 'threads' must be at most %d on this machine "
                         "(%s; the lab leaves half for the host)" % (cap, why))
    available = _meminfo("MemAvailable")
    if available and params["units"] * 16 * 1024 > available // 2:
        raise ParamError("units", "parameter 'units' must be at most %d here: at up to 16 KiB "
                         "each, more would not fit in half the available memory (%d MiB)"
                         % (available // 2 // (16 * 1024), available >> 20))


# Measuring --------------------------------------------------------------------------------------
def memory():
    """(resident, virtual) bytes of this process, from the kernel."""
    fields = _read("/proc/self/statm").split()
    page = os.sysconf("SC_PAGE_SIZE")
    if len(fields) < 2:
        return 0, 0
    return int(fields[1]) * page, int(fields[0]) * page


def cpu_loop(n):
    total = 0
    for i in range(n):
        total += i * i
    return total


def iterations_per_ms():
    """How many iterations of a G's loop make a millisecond here (work_ms means the same
    CPU time in Go, which calibrates its own loop)."""
    n = 10_000
    while True:
        start = time.perf_counter()
        for _ in spin(n):  # the very loop a G runs, yield points included
            pass
        took = time.perf_counter() - start
        if took >= 0.02:
            return n / (took * 1000)
        n *= 2


# The Python runtime's goroutines ---------------------------------------------------------------
def spin(n):
    """The CPU work inside a G, with a yield point every YIELD_EVERY iterations."""
    total = 0
    for start in range(0, n, YIELD_EVERY):
        for i in range(start, min(n, start + YIELD_EVERY)):
            total += i * i
        yield  # a yield point: sysmon's "please yield" takes effect here
    return total


def goroutine(index, work, blocks, block_s, gate, arrived, finished, completed):
    arrived.done()
    yield gate.wait()  # everyone starts together, from one P
    yield from spin(work // 2)
    if blocks:
        yield syscall(time.sleep, block_s)  # the M sleeps in the kernel, holding its G
    yield from spin(work - work // 2)
    completed[index] += 1
    finished.done()


def main_goroutine(rt, gs, work, fraction, block_s, completed, measured, out):
    """G1: spawn every G from this P, wait until all wait at the gate, then open it."""
    gate, arrived, finished = WaitGroup(rt, 1), WaitGroup(rt, gs), WaitGroup(rt, gs)
    rss0, vm0 = memory()
    start = time.perf_counter()
    for i in range(gs):
        rt.go(goroutine, i, work, blocking(i, fraction), block_s, gate, arrived, finished,
              completed)
    measured["spawn_s"] = time.perf_counter() - start
    yield arrived.wait()
    measured["ready_s"] = time.perf_counter() - start
    measured["rss_before"], measured["vm_before"] = rss0, vm0
    measured["rss_after"], measured["vm_after"] = memory()
    if out is not None:
        out.emit("phase", state="spawned", gs=gs, spawn_s=measured["spawn_s"],
                 ready_s=measured["ready_s"])
    measured["run_start"] = time.perf_counter()
    gate.done()  # readies every G into this P's runnext and queue; the overflow goes global
    yield finished.wait()
    measured["run_s"] = time.perf_counter() - measured["run_start"]


def _m_thread(target, name, args):
    return start_thread(target, name, "sysmon" if name == "sysmon" else "M", args)


def run_python(params, out):
    ps = gomaxprocs(params)
    per_ms = iterations_per_ms()
    work = int(params["work_ms"] * per_ms)
    gs = params["gs"]
    rt = Runtime(ps, start_thread=_m_thread, max_ms=max(ps + 1, thread_cap()[0]))
    shape = Shape(ps)
    completed = [0] * gs
    measured = {}
    started = time.monotonic()

    def trace(snapshot):
        snapshot["t_ms"] = int((time.monotonic() - started) * 1000)
        shape.add(snapshot)
        out.emit("mn", **mn_event("python", snapshot, os.getpid(), gs))

    out.emit("phase", state="start", runtime="python", gs=gs, ps=ps, work=work,
             iterations_per_ms=round(per_ms))
    rt.run(main_goroutine, rt, gs, work, params["block_fraction"], params["block_ms"] / 1000,
           completed, measured, out, trace=trace, trace_every=TRACE_EVERY_S)
    cpu = sum(m.cpu_s for m in rt.allm)
    final = rt.schedtrace()
    result = common_result(params, "python", ps, gs, measured, shape)
    result.update({
        "iterations_per_ms": round(per_ms), "work_iterations": work,
        "steals": final["steals"], "stolen_gs": final["stolen_gs"],
        "handoffs": final["handoffs"], "handoffs_source": "counted by the runtime",
        "preemptions": final["preemptions"],
        "completed_once": completed.count(1), "completed_twice": sum(1 for c in completed if c > 1),
        "never_completed": completed.count(0),
        "ms_cpu_s": round(cpu, 4), "cores_used": round(cpu / measured["run_s"], 3)
        if measured.get("run_s") else None,
        "gil_enabled": gil_enabled(),
    })
    return result


# Real Go ---------------------------------------------------------------------------------------
def run_go(params, out):
    ps = gomaxprocs(params)
    gs = params["gs"]
    out.emit("phase", state="build", runtime="go")
    binary = _go.build()
    detail = gs <= GO_DETAIL_MAX_GS
    args = ["-gs", gs, "-ps", ps, "-work-ms", params["work_ms"] or 0,
            "-block-fraction", params["block_fraction"], "-block-ms", params["block_ms"],
            "-max-threads", max(ps + 16, thread_cap()[0]), "-linger-ms", LINGER_MS]
    if not params["work_ms"]:
        args += ["-work", 0]
    shape = Shape(ps)
    progress = {"done": 0}
    lines = run_go_program(binary, args, out, shape, progress, gs, trace=True, detail=detail)
    spawned, final = lines.get("spawned", {}), lines.get("result", {})
    measured = {
        "spawn_s": spawned.get("spawn_ns", 0) / 1e9, "ready_s": spawned.get("ready_ns", 0) / 1e9,
        "rss_before": spawned.get("rss_before", 0), "rss_after": spawned.get("rss_after", 0),
        "vm_before": spawned.get("vm_before", 0), "vm_after": spawned.get("vm_after", 0),
        "run_s": final.get("run_ns", 0) / 1e9,
    }
    result = common_result(params, "go", final.get("gomaxprocs", ps), gs, measured, shape)
    cpu = final.get("cpu_ns", 0) / 1e9
    result.update({
        "iterations_per_ms": round(final.get("iterations_per_ms", 0)),
        "work_iterations": final.get("work"),
        "steals": None, "stolen_gs": None,
        "steals_note": "Go does not report steals; see the Ps' schedticks",
        "schedticks": shape.last_schedticks(),
        "handoffs": shape.handoffs, "handoffs_source": "estimated from schedtrace (lower bound)",
        "preemptions": None,
        "completed_once": final.get("completed_once"),
        "completed_twice": final.get("completed_twice"),
        "never_completed": final.get("never_completed"),
        "process_cpu_s": round(cpu, 4),
        "cores_used": round(cpu / measured["run_s"], 3) if measured["run_s"] else None,
        "go_version": final.get("go_version"),
        "trace_detail": detail,
    })
    return result


def run_go_program(binary, args, out, shape, progress, gs, trace, detail=True):
    """Start the Go program from this (the main) thread, turn its trace into events, and
    return its JSON lines by kind. It dies with us; we kill it if we fail first."""
    proc = _go.start(binary, args, schedtrace_ms=100 if trace else 0, detail=detail)
    lines = {}
    stderr_tail = []
    parser = _go.SchedTrace()

    def read_trace():
        for line in proc.stderr:
            snapshot = parser.feed(line)
            if snapshot is None and not line.startswith(("SCHED", " ")):
                stderr_tail.append(line.rstrip()[:200])
                del stderr_tail[:-10]
            if snapshot is not None:
                emit_go(snapshot)
        snapshot = parser.finish()
        if snapshot is not None:
            emit_go(snapshot)

    def emit_go(snapshot):
        snapshot["gs_done"] = progress["done"]
        shape.add(snapshot)
        out.emit("mn", **mn_event("go", snapshot, proc.pid, gs))

    reader = start_thread(read_trace, "go-trace", "reader")
    try:
        for line in proc.stdout:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            kind = record.pop("ev", "")
            lines[kind] = record
            if kind == "progress":
                progress["done"] = record.get("done", 0)
            elif kind == "spawned":
                out.emit("phase", state="spawned", gs=record.get("gs"),
                         spawn_s=record.get("spawn_ns", 0) / 1e9,
                         ready_s=record.get("ready_ns", 0) / 1e9)
        code = proc.wait()
        reader.join(5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if code != 0 or "result" not in lines:
        raise RuntimeError("the Go program failed (exit %s): %s" % (code, " | ".join(stderr_tail)))
    progress["done"] = lines["result"].get("completed_once", progress["done"])
    return lines


# What both runtimes report ----------------------------------------------------------------------
class Shape:
    """Folds trace snapshots into the figures the two runtimes are compared by."""

    def __init__(self, ps):
        self.ps = ps
        self.snapshots = 0
        self.max_threads = 0
        self.max_busy_ms = 0  # Ms running a G or inside a syscall, at one instant
        self.max_syscall_ms = 0
        self.max_global_runq = 0
        self.max_local_runq = 0
        self.handoffs = 0
        self.last = None
        self.drained_after_peak = False

    def add(self, snapshot):
        self.snapshots += 1
        self.last = snapshot
        self.max_threads = max(self.max_threads, snapshot.get("threads") or 0)
        ms = snapshot.get("ms") or []
        busy = sum(1 for m in ms if m["state"] in ("running", "syscall"))
        self.max_busy_ms = max(self.max_busy_ms, busy)
        self.max_syscall_ms = max(self.max_syscall_ms,
                                  sum(1 for m in ms if m["state"] == "syscall"))
        queued = snapshot.get("global_runq") or 0
        local = max([p["runq"] for p in snapshot["ps"]] or [0])
        if queued or local:
            self.drained_after_peak = False
        elif self.max_global_runq or self.max_local_runq:
            self.drained_after_peak = True
        self.max_global_runq = max(self.max_global_runq, queued)
        self.max_local_runq = max(self.max_local_runq, local)
        if snapshot.get("handoffs") is not None:
            self.handoffs = snapshot["handoffs"]

    def last_schedticks(self):
        if not self.last:
            return None
        return [p.get("schedtick") for p in self.last["ps"]]


def common_result(params, runtime, ps, gs, measured, shape):
    spawn_s = measured.get("spawn_s") or 0.0
    grown = measured.get("rss_after", 0) - measured.get("rss_before", 0)
    return {
        "mode": "schedule", "runtime": runtime, "gs": gs, "ps": ps,
        "work_ms": params["work_ms"], "block_fraction": params["block_fraction"],
        "block_ms": params["block_ms"], "blocking_gs": count_blocking(gs, params["block_fraction"]),
        "spawn_us_per_g": round(spawn_s * 1e6 / gs, 3) if gs else None,
        "ready_us_per_g": round(measured.get("ready_s", 0) * 1e6 / gs, 3) if gs else None,
        "bytes_per_g": round(grown / gs) if gs else None,
        "run_s": round(measured.get("run_s", 0), 4),
        "max_threads": shape.max_threads, "max_busy_ms": shape.max_busy_ms,
        "max_syscall_ms": shape.max_syscall_ms,
        "threads_exceeded_ps": shape.max_busy_ms > ps,
        "max_global_runq": shape.max_global_runq, "max_local_runq": shape.max_local_runq,
        "queues_drained": shape.drained_after_peak, "trace_snapshots": shape.snapshots,
    }


def mn_event(runtime, snapshot, os_pid, gs_total):
    """One `mn` event: the scheduler at one instant, the same fields for both runtimes."""
    ms = snapshot.get("ms")
    states = {}
    for m in ms or []:
        states[m["state"]] = states.get(m["state"], 0) + 1
    return {
        "runtime": runtime, "os_pid": os_pid, "t_ms": snapshot.get("t_ms"),
        "gomaxprocs": snapshot["gomaxprocs"], "threads": snapshot.get("threads"),
        "idle_threads": snapshot.get("idle_threads"),
        "spinning_threads": snapshot.get("spinning_threads"),
        "m_states": states if ms is not None else None,
        "global_runq": snapshot.get("global_runq"),
        "runq": [p["runq"] for p in snapshot["ps"]],
        "runnext": [p["runnext"] for p in snapshot["ps"]],
        "p_status": [p["status"] for p in snapshot["ps"]],
        "p_m": [p["m"] for p in snapshot["ps"]],
        "ms": [{"id": m["id"], "state": m["state"], "p": m["p"], "tid": m["tid"]}
               for m in (ms or [])[:EVENT_MS_MAX]] if ms is not None else None,
        "gs": snapshot.get("gs"), "gs_done": snapshot.get("gs_done"), "gs_total": gs_total,
        "steals": snapshot.get("steals"), "handoffs": snapshot.get("handoffs"),
        "preemptions": snapshot.get("preemptions"),
    }


# Spawn mode: what one unit of concurrency costs, measured the same way for each -------------------
#
# Every kind spawns N units that each wait at a gate. Spawn time = the loop creating them;
# ready time = until all have reached the gate; memory = growth of this process's resident
# set meanwhile (and of its virtual size, and of the kernel's thread stacks). Then the gate
# opens, each unit runs `unit_work` loop iterations, and we time the finish.
# Each Python kind runs in a fresh forked process, so one kind's freed memory cannot
# flatter the next.

def _kernel_stack():
    return _meminfo("KernelStack") or 0


def _figures(n, spawn_s, ready_s, before, after, run_s):
    (rss0, vm0, ks0), (rss1, vm1, ks1) = before, after
    kernel = None
    if ks0 is not None and ks1 is not None:  # system-wide: only telling for threads
        kernel = round((ks1 - ks0) / n)
    return {
        "units": n, "spawn_us_per_unit": round(spawn_s * 1e6 / n, 3),
        "ready_us_per_unit": round(ready_s * 1e6 / n, 3),
        "bytes_per_unit": round((rss1 - rss0) / n),
        "virtual_bytes_per_unit": round((vm1 - vm0) / n),
        "kernel_stack_bytes_per_unit": kernel,
        "run_ms": round(run_s * 1000, 3), "total_ms": round((ready_s + run_s) * 1000, 3),
    }


def _snapshot(kernel=False):
    return memory() + (_kernel_stack() if kernel else None,)


def measure_threads(n, work):
    gate, all_arrived, lock = threading.Event(), threading.Event(), threading.Lock()
    arrived = [0]

    def unit():
        with lock:
            arrived[0] += 1
            if arrived[0] == n:
                all_arrived.set()
        gate.wait()
        cpu_loop(work)

    threads = []
    before = _snapshot(kernel=True)
    start = time.perf_counter()
    try:
        for _ in range(n):
            thread = threading.Thread(target=unit, daemon=True)
            thread.start()  # returns once the new thread is running
            threads.append(thread)
    except RuntimeError as exc:  # "can't start new thread": stop here, release the rest
        gate.set()
        raise RuntimeError("thread %d of %d could not start: %s" % (len(threads) + 1, n, exc))
    spawn_s = time.perf_counter() - start
    all_arrived.wait()
    ready_s = time.perf_counter() - start
    after = _snapshot(kernel=True)
    run_start = time.perf_counter()
    gate.set()
    for thread in threads:
        thread.join()
    return _figures(n, spawn_s, ready_s, before, after, time.perf_counter() - run_start)


def measure_asyncio(n, work):
    async def main():
        gate, all_arrived = asyncio.Event(), asyncio.Event()
        arrived = [0]

        async def unit():
            arrived[0] += 1
            if arrived[0] == n:
                all_arrived.set()
            await gate.wait()
            cpu_loop(work)

        before = _snapshot()
        start = time.perf_counter()
        tasks = [asyncio.ensure_future(unit()) for _ in range(n)]
        spawn_s = time.perf_counter() - start
        await all_arrived.wait()
        ready_s = time.perf_counter() - start
        after = _snapshot()
        run_start = time.perf_counter()
        gate.set()
        await asyncio.gather(*tasks)
        return _figures(n, spawn_s, ready_s, before, after, time.perf_counter() - run_start)

    return asyncio.run(main())


def measure_mn(n, work, ps):
    rt = Runtime(ps, start_thread=_m_thread)
    completed = [0] * n
    measured = {}
    rt.run(main_goroutine, rt, n, work, 0.0, 0.0, completed, measured,
           None, trace_every=1.0)
    after = (measured["rss_after"], measured["vm_after"], None)  # measured by main itself
    before = (measured["rss_before"], measured["vm_before"], None)
    figures = _figures(n, measured["spawn_s"], measured["ready_s"], before, after,
                       measured["run_s"])
    final = rt.schedtrace()
    figures.update({"ps": ps, "steals": final["steals"], "handoffs": final["handoffs"],
                    "max_threads": len(rt.allm), "completed_once": completed.count(1)})
    return figures


def _in_fresh_process(name, target, *args):
    process, receiver = start_process(_report_errors, name, "spawn", (target,) + args,
                                      want_result=True)
    try:
        value = receiver.recv()
    except EOFError:
        value = {"error": "the %s process died without a result" % name}
    process.join()
    return value


def _report_errors(target, *args):
    try:
        return target(*args)
    except Exception as exc:
        return {"error": "%s: %s" % (type(exc).__name__, exc)}


def measure_goroutines(n, work, ps, out):
    binary = _go.build()
    args = ["-gs", n, "-ps", ps, "-work", work, "-block-fraction", 0,
            "-max-threads", max(ps + 16, 64), "-progress-ms", 0]
    lines = run_go_program(binary, args, out, Shape(ps), {"done": 0}, n, trace=False)
    spawned, final = lines["spawned"], lines["result"]
    figures = _figures(n, spawned["spawn_ns"] / 1e9, spawned["ready_ns"] / 1e9,
                       (spawned["rss_before"], spawned["vm_before"], None),
                       (spawned["rss_after"], spawned["vm_after"], None), final["run_ns"] / 1e9)
    figures["go_stack_bytes_per_unit"] = round(
        (spawned["stack_after"] - spawned["stack_before"]) / n)
    figures.update({"ps": final["gomaxprocs"], "completed_once": final["completed_once"],
                    "go_version": final["go_version"]})
    return figures


def run_spawn(params, out):
    n, work, ps = params["units"], params["unit_work"], gomaxprocs(params)
    kinds = {}

    def record(kind, figures):
        kinds[kind] = figures
        out.emit("spawn", kind=kind, **figures)

    out.emit("phase", state="start", mode="spawn", units=n, threads=params["threads"])
    if _go.find_go() is not None:
        out.emit("phase", state="measure", kind="goroutine")
        try:
            record("goroutine", measure_goroutines(n, work, ps, out))
        except (_go.GoError, RuntimeError) as exc:
            record("goroutine", {"units": n, "error": str(exc)})
    else:
        record("goroutine", {"units": n, "skipped": "no `go` command: " + _go.HOW_TO_GET})
    for kind, target, count, extra in (
            ("mn_g", measure_mn, n, (ps,)),
            ("asyncio_task", measure_asyncio, n, ()),
            ("thread", measure_threads, params["threads"], ())):
        if count == 0:
            continue
        out.emit("phase", state="measure", kind=kind)
        record(kind, _in_fresh_process("spawn-" + kind.replace("_", "-"), target, count, work,
                                       *extra))
    own = kinds.get("goroutine" if params["runtime"] == "go" else "mn_g", {})
    mn = kinds.get("mn_g", {})
    return {
        "mode": "spawn", "runtime": params["runtime"], "gs": n, "ps": ps,
        "units": n, "threads": params["threads"], "unit_work": work,
        "spawn_us_per_g": own.get("spawn_us_per_unit"), "bytes_per_g": own.get("bytes_per_unit"),
        "max_threads": mn.get("max_threads"), "steals": mn.get("steals"),
        "handoffs": mn.get("handoffs"),
        "kinds": kinds, "article_says": ARTICLE_SAYS, "explanation": explain_spawn(kinds),
    }


def explain_spawn(kinds):
    def ok(kind):
        figures = kinds.get(kind) or {}
        return figures if "bytes_per_unit" in figures else None

    parts = []
    names = (("goroutine", "a goroutine"), ("mn_g", "a Python-runtime G"),
             ("asyncio_task", "an asyncio task"), ("thread", "a Python thread"))
    for kind, label in names:
        f = ok(kind)
        if f:
            parts.append("%s cost %s resident and %.2f µs to start (%s units)" % (
                label, _kib(f["bytes_per_unit"]), f["spawn_us_per_unit"],
                "{:,}".format(f["units"]).replace(",", " ")))
    text = "Here " + "; ".join(parts) + "." if parts else ""
    thread = ok("thread")
    if thread:
        text += (" Each thread reserved %s of address space for its stack but touched only "
                 "a few pages of it; the kernel kept another %s per thread outside the "
                 "process." % (_kib(thread["virtual_bytes_per_unit"]),
                               _kib(thread["kernel_stack_bytes_per_unit"])))
    skipped = (kinds.get("goroutine") or {}).get("skipped")
    if skipped:
        text += " Go was not measured: " + skipped
    return text.strip()


def _kib(value):
    if value is None:
        return "-"
    if abs(value) >= 1 << 20:
        return "%.1f MiB" % (value / (1 << 20))
    return "%.1f KiB" % (value / 1024)


# Entry -------------------------------------------------------------------------------------------
def run(params, out):
    if params["mode"] == "spawn":
        return run_spawn(params, out)
    result = run_go(params, out) if params["runtime"] == "go" else run_python(params, out)
    result["explanation"] = explain_schedule(result)
    return result


def explain_schedule(r):
    lines = []
    if r["blocking_gs"] and r["block_ms"] > 0:
        if r["threads_exceeded_ps"]:
            lines.append("%d of %d Gs blocked in nanosleep: up to %d Ms were busy at once with "
                         "only %d Ps, because the P of a blocked M was handed to another M "
                         "(%s hand-offs, %s)." % (r["blocking_gs"], r["gs"], r["max_busy_ms"],
                                                  r["ps"], r["handoffs"], r["handoffs_source"]))
        else:
            lines.append("No more Ms than Ps were seen busy at once: the blocking calls were too "
                         "short or too few for the trace to catch a hand-off.")
    if r.get("steals"):
        lines.append("Idle Ps stole %s (%d Gs) from the P that readied every G."
                     % (times(r["steals"]), r["stolen_gs"]))
    cores = r.get("cores_used")
    if cores is not None:
        if r["runtime"] == "python" and r.get("gil_enabled"):
            lines.append("The Ms used %.2f cores together: under the GIL only one runs Python "
                         "at a time." % cores)
        else:
            lines.append("The threads used %.2f cores together on %d Ps." % (cores, r["ps"]))
    if r.get("iterations_per_ms"):
        lines.append("The loop ran %s iterations per ms here." % (
            "{:,}".format(r["iterations_per_ms"]).replace(",", " ")))
    return " ".join(lines)
