"""scale: how many threads, processes and asyncio tasks this machine holds, and at what cost."""

from __future__ import annotations

import asyncio
import os
import threading
import time

from . import _limits
from ._proto import die_with_parent, name_this_thread, own_status
from ._spec import Param, ParamError
from ._words import grouped

NAME = "scale"
TITLE = "How many can you have? Threads, processes and asyncio tasks, spawned and weighed"
LESSON = """\
Start COUNT units of each kind, all waiting on one gate, then weigh them. A thread
gets its own stack: the C library reserves a large range of address space for it
(RLIMIT_STACK, usually 8 MiB), but the kernel only backs the pages the thread
touches, so the memory really used is a small fraction. That is why a count of
threads times 8 MiB is a statement about address space, not about RAM. A process
is a copy-on-write copy of its parent: cheap to fork, but each has its own page
tables and kernel stack. An asyncio task is a Python object holding a suspended
coroutine: no kernel object at all. The caps come from the machine's own limits,
checked before anything starts, and free memory is watched while spawning.
"""
REQUIRES = ()
TIMEOUT_S = 600
LESSON_CODE = ("spawn_threads", "spawn_tasks_async")
# In the TUI it runs in turn with other CPU-bound runs: spawning thousands of units is CPU
# work, timed per unit.
CPU_BOUND = True

KINDS = ("threads", "processes", "tasks")
# Forks first, from a small parent with one thread; tasks before threads, so freed thread
# objects do not hand the tasks memory that is already resident.
RUN_ORDER = ("processes", "tasks", "threads")
PARAMS = (
    Param.int("count", 1_000, 1, 1_000_000, "units of each kind to start (capped by the machine)"),
    Param.choice("kinds", "all", ("all",) + KINDS, "which kinds to spawn"),
)

CHECK_EVERY = {"threads": 64, "processes": 16, "tasks": 4096}  # units between memory checks
SAMPLED_CHILDREN = 64  # processes whose private memory is read (evenly spread)
EXTRAPOLATE_TO = 100_000  # the article's thread count, for virtual-vs-resident arithmetic


def kinds_of(params):
    return RUN_ORDER if params["kinds"] == "all" else (params["kinds"],)


def default_stack_bytes():
    soft, _hard = _limits.rlimit("STACK")
    return threading.stack_size() or soft or 8 * _limits.MiB


def tasks_needed(params):
    """Main thread, a watcher, and `count` threads or processes (one kind at a time)."""
    spawns = any(kind in ("threads", "processes") for kind in kinds_of(params))
    return "count", 2 + (params["count"] if spawns else 0)


def check_limits(params, timeout_s):
    for kind in kinds_of(params):
        cap = _limits.tightest(kind, default_stack_bytes())
        if cap is not None and params["count"] > cap.units:
            raise ParamError("count", "parameter 'count' must be at most %s for %s here, set by "
                             "%s (got %s)" % (_limits._num(cap.units), kind, cap.describe(),
                                              _limits._num(params["count"])))


# Measuring memory ------------------------------------------------------------------------


def own_memory():
    """This process's resident and virtual size, in bytes (/proc/self/status)."""
    sizes = own_status("VmRSS", "VmSize")
    return sizes.get("VmRSS", 0) * 1024, sizes.get("VmSize", 0) * 1024


def page_table_bytes(pid="self"):
    """One process's own page tables (VmPTE), in bytes, or None where /proc lacks it.
    Not /proc/meminfo's PageTables: that is the whole machine's, and any other program
    exiting meanwhile makes the difference negative."""
    try:
        with open("/proc/%s/status" % pid) as f:
            for line in f:
                if line.startswith("VmPTE:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def snapshot():
    info = _limits.meminfo()
    rss, vm = own_memory()
    return {"rss": rss, "vm": vm, "available": _limits.available_bytes(info) or 0,
            "kernel_stack": info.get("KernelStack", 0), "page_tables": page_table_bytes(),
            "at": time.perf_counter()}


class Watch:
    """Stops a spawn loop before MemAvailable falls under the reserve."""

    def __init__(self, kind, count, out):
        self.kind, self.count, self.out = kind, count, out
        self.reserve = _limits.memory_reserve()
        self.stop_reason = None
        self.started = time.perf_counter()

    def check(self, spawned):
        snap = snapshot()
        if snap["available"] and snap["available"] < self.reserve:
            self.stop_reason = (
                "stopped at %d %s: available memory (MemAvailable, or the cgroup's room) "
                "fell to %d MiB, under the %d MiB reserve"
                % (spawned, self.kind, snap["available"] >> 20, self.reserve >> 20))
        self.out.latest("spawn", key=self.kind, kind=self.kind, spawned=spawned,
                        target=self.count, elapsed_s=time.perf_counter() - self.started,
                        rss_bytes=snap["rss"], vm_bytes=snap["vm"],
                        mem_available_bytes=snap["available"], reserve_bytes=self.reserve)
        return self.stop_reason is None


def per_unit(before, after, spawned):
    n = float(max(1, spawned))
    return {
        "count": spawned,
        "spawn_us_per_unit": (after["at"] - before["at"]) / n * 1e6,
        "rss_bytes_per_unit": (after["rss"] - before["rss"]) / n,
        "virtual_bytes_per_unit": (after["vm"] - before["vm"]) / n,
        "kernel_stack_bytes_per_unit": (after["kernel_stack"] - before["kernel_stack"]) / n,
        "page_table_bytes_per_unit": (None if None in (before["page_tables"], after["page_tables"])
                                      else (after["page_tables"] - before["page_tables"]) / n),
        "mem_available_drop_per_unit": (before["available"] - after["available"]) / n,
    }


# Threads ---------------------------------------------------------------------------------


def stack_of_this_thread():
    """(stack bytes, guard bytes) the C library gave the calling thread, or None."""
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        attr = ctypes.create_string_buffer(256)  # larger than pthread_attr_t anywhere
        if libc.pthread_getattr_np(ctypes.c_ulong(threading.get_ident()), attr) != 0:
            return None
        base, size, guard = ctypes.c_void_p(), ctypes.c_size_t(), ctypes.c_size_t()
        libc.pthread_attr_getstack(attr, ctypes.byref(base), ctypes.byref(size))
        libc.pthread_attr_getguardsize(attr, ctypes.byref(guard))
        libc.pthread_attr_destroy(attr)
        return size.value, guard.value
    except (OSError, AttributeError):
        return None


def spawn_threads(count, out):
    gate = threading.Event()
    measured = {}

    def first(gate):
        measured["stack"] = stack_of_this_thread()
        unit(gate)

    def unit(gate):
        name_this_thread("unit")  # in /proc and top: a spawned unit, not another "main"
        gate.wait()

    watch = Watch("threads", count, out)
    threads = []
    before = snapshot()
    for i in range(count):
        # The unit: a thread that does nothing but wait for the gate.
        thread = threading.Thread(target=first if i == 0 else unit, args=(gate,), daemon=True)
        try:
            thread.start()  # returns once the new thread is running
        except RuntimeError as exc:  # the kernel or the C library said no
            watch.stop_reason = "stopped at %d threads: %s" % (len(threads), exc)
            break
        threads.append(thread)
        if (i + 1) % CHECK_EVERY["threads"] == 0 and not watch.check(i + 1):
            break
    after = snapshot()
    watch.check(len(threads))
    figures = per_unit(before, after, len(threads))
    stack = measured.get("stack")
    figures["stack_reserved_bytes"] = stack[0] if stack else default_stack_bytes()
    figures["guard_bytes"] = stack[1] if stack else None
    figures["stack_source"] = "pthread_getattr_np" if stack else "RLIMIT_STACK"
    figures["stopped_early"] = watch.stop_reason
    gate.set()
    for thread in threads:
        thread.join()
    return figures


# Processes -------------------------------------------------------------------------------


def private_memory(pid):
    """(private bytes, resident bytes) of one process, from smaps_rollup (or None)."""
    fields = {}
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 2 and parts[0].endswith(":"):
                    try:
                        fields[parts[0][:-1]] = int(parts[1]) * 1024
                    except ValueError:
                        continue
    except OSError:
        return None
    if "Rss" not in fields:
        return None
    return fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0), fields["Rss"]


def child(gate_r, gate_w, ready_w, parent):
    """The unit: a forked copy of this interpreter that waits for the gate, then leaves."""
    try:
        name_this_thread("unit")  # first: a sample between fork and here still says "main"
        die_with_parent(parent)
        os.close(gate_w)
        os.write(ready_w, b"x")
        os.read(gate_r, 1)  # returns at EOF, when the parent closes its end
    finally:
        os._exit(0)


def spawn_processes(count, out):
    gate_r, gate_w = os.pipe()
    ready_r, ready_w = os.pipe()
    me = os.getpid()
    watch = Watch("processes", count, out)
    pids = []
    try:
        before = snapshot()
        for i in range(count):
            try:
                pid = os.fork()
            except OSError as exc:  # EAGAIN: a process limit we could not see in advance
                watch.stop_reason = "stopped at %d processes: fork failed: %s" % (len(pids), exc)
                break
            if pid == 0:
                child(gate_r, gate_w, ready_w, me)
            pids.append(pid)
            os.read(ready_r, 1)  # it is running
            if (i + 1) % CHECK_EVERY["processes"] == 0 and not watch.check(i + 1):
                break
        after = snapshot()
        watch.check(len(pids))
        figures = per_unit(before, after, len(pids))
        step = max(1, len(pids) // SAMPLED_CHILDREN)
        weighed = [m for m in (private_memory(p) for p in pids[::step]) if m]
        if weighed:
            # A child's RSS counts pages it shares with us; its private pages are its cost.
            figures["rss_bytes_per_unit"] = sum(m[0] for m in weighed) / float(len(weighed))
            figures["rss_each_as_top_shows"] = sum(m[1] for m in weighed) / float(len(weighed))
            figures["rss_source"] = "private pages (smaps_rollup) of %d children" % len(weighed)
        figures["virtual_bytes_per_unit"] = own_memory()[1]  # a fork maps all of our space
        tables = [t for t in (page_table_bytes(p) for p in pids[::step]) if t is not None]
        # Each child has page tables of its own; ours do not grow when we fork.
        figures["page_table_bytes_per_unit"] = sum(tables) / float(len(tables)) if tables else None
        figures["stopped_early"] = watch.stop_reason
    finally:
        os.close(gate_w)  # every child reads EOF and exits
        for pid in pids:
            os.waitpid(pid, 0)
        for fd in (gate_r, ready_r, ready_w):
            os.close(fd)
    return figures


# asyncio tasks ---------------------------------------------------------------------------


async def spawn_tasks_async(count, out):
    gate = asyncio.Event()

    async def unit():
        await gate.wait()

    watch = Watch("tasks", count, out)
    tasks = []
    before = snapshot()
    for i in range(count):
        tasks.append(asyncio.ensure_future(unit()))
        if (i + 1) % CHECK_EVERY["tasks"] == 0 and not watch.check(i + 1):
            break
    await asyncio.sleep(0)  # one loop pass: every task runs up to its first await
    after = snapshot()
    watch.check(len(tasks))
    figures = per_unit(before, after, len(tasks))
    figures["stopped_early"] = watch.stop_reason
    gate.set()
    await asyncio.gather(*tasks)
    return figures


def spawn_tasks(count, out):
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(spawn_tasks_async(count, out))
    finally:
        loop.close()


SPAWNERS = {"threads": spawn_threads, "processes": spawn_processes, "tasks": spawn_tasks}


def run(params, out):
    caps = {}
    for kind in kinds_of(params):
        cap = _limits.tightest(kind, default_stack_bytes())
        caps[kind] = cap.to_json() if cap else None
    out.emit("limits", caps=caps, machine=_limits.machine_limits())
    units = {}
    for kind in kinds_of(params):
        base = snapshot()
        out.emit("phase", run=kind, state="start", target=params["count"], rss_bytes=base["rss"],
                 vm_bytes=base["vm"], mem_available_bytes=base["available"])
        units[kind] = SPAWNERS[kind](params["count"], out)
        out.flush()
        out.emit("units", kind=kind, **units[kind])
        out.emit("phase", run=kind, state="end")
    return {
        "units": units,
        "caps": caps,
        "limits": _limits.machine_limits(),
        "extrapolated": extrapolate(units),
        "explanation": explain(units),
    }


def extrapolate(units):
    """What EXTRAPOLATE_TO threads would reserve (address space) and really use (RAM)."""
    threads = units.get("threads")
    if not threads:
        return None
    resident = threads["rss_bytes_per_unit"] + max(0.0, threads["kernel_stack_bytes_per_unit"])
    return {"threads": EXTRAPOLATE_TO,
            "stack_reserved_bytes": threads["stack_reserved_bytes"] * EXTRAPOLATE_TO,
            "resident_bytes": resident * EXTRAPOLATE_TO}


def explain(units):
    lines = []
    threads = units.get("threads")
    if threads:
        lines.append("Each thread reserved %s of stack address space but added only %s "
                     "resident (plus %s of kernel stack): %s threads x %s is address space, "
                     "the RAM they use is about %s." % (
                         _limits._bytes(threads["stack_reserved_bytes"]),
                         _limits._bytes(max(0, threads["rss_bytes_per_unit"])),
                         _limits._bytes(max(0, threads["kernel_stack_bytes_per_unit"])),
                         grouped(EXTRAPOLATE_TO), _limits._bytes(threads["stack_reserved_bytes"]),
                         _limits._bytes(max(0, extrapolate(units)["resident_bytes"]))))
    processes = units.get("processes")
    if processes:
        lines.append("A process took %s µs to fork and start and holds %s of private pages; "
                     "top would show %s resident for each, most of it shared with the parent." % (
                         grouped(processes["spawn_us_per_unit"]),
                         _limits._bytes(max(0, processes["rss_bytes_per_unit"])),
                         _limits._bytes(processes.get("rss_each_as_top_shows", 0))))
    tasks = units.get("tasks")
    if tasks:
        lines.append("An asyncio task took %.1f µs and %s: no kernel object, no stack of its own." % (
            tasks["spawn_us_per_unit"], _limits._bytes(max(0, tasks["rss_bytes_per_unit"]))))
    for kind, figures in units.items():
        if figures.get("stopped_early"):
            lines.append("%s %s." % (kind, figures["stopped_early"]))
    return " ".join(lines)
