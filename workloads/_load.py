"""How much of the CPUs other programs took while the run measured (stdlib, 3.9+).

Over each measured window: the busy time of the CPUs this process may use (/proc/stat:
user, nice, system, irq, softirq), minus the CPU time of the run's own process tree (this
process's threads, its reaped children, its live descendants), plus steal (time the
hypervisor gave our virtual CPUs to someone else). Divided by the CPU time those CPUs had
in the window, that is other programs' share. The run's own threads or processes waiting
for a CPU (more tasks than CPUs) take nothing from it: their time is their own.

    meter = LoadMeter()
    with meter.window() as window:
        ...                       # one mode
    window.figures["other_cpu_share"]
    result["load"] = meter.block()  # one block per run, over every window

Off Linux (no /proc/stat) the figures are None and `busy` is false: nothing was seen.
"""

from __future__ import annotations

import os
import time
from contextlib import contextmanager

THRESHOLD = 0.10  # other programs above this share of the usable CPU time: a busy machine

_BUSY_FIELDS = (0, 1, 2, 5, 6)  # user nice system irq softirq (guest is inside user)
_STEAL = 7


def usable_cpus():
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return list(range(os.cpu_count() or 1))


def _tick_s():
    try:
        return 1.0 / os.sysconf("SC_CLK_TCK")
    except (ValueError, OSError, AttributeError):
        return 0.01


TICK_S = _tick_s()


def cpu_ticks(cpus):
    """(busy, steal, total) clock ticks of these CPUs so far, or None without /proc/stat."""
    wanted = set("cpu%d" % c for c in cpus)
    busy = steal = total = 0
    seen = 0
    try:
        with open("/proc/stat") as f:
            for line in f:
                if not line.startswith("cpu"):
                    break
                fields = line.split()
                if fields[0] not in wanted:
                    continue
                ticks = [int(v) for v in fields[1:9]] + [0] * (9 - len(fields))
                busy += sum(ticks[i] for i in _BUSY_FIELDS)
                steal += ticks[_STEAL]
                total += sum(ticks[:8])  # guest and guest_nice are already in user/nice
                seen += 1
    except (OSError, ValueError):
        return None
    return (busy, steal, total) if seen else None


def _stat_fields(pid):
    """Fields of /proc/PID/stat after the command name (which may hold spaces)."""
    with open("/proc/%d/stat" % pid) as f:
        return f.read().rsplit(")", 1)[1].split()


def _children(pid):
    """Direct children of a process: /proc/PID/task/*/children, else a scan of /proc."""
    found = []
    try:
        for tid in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/children" % (pid, tid)) as f:
                found += [int(c) for c in f.read().split()]
        return found
    except FileNotFoundError:
        pass
    except OSError:
        return found
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if int(_stat_fields(int(name))[1]) == pid:
                    found.append(int(name))
            except (OSError, ValueError, IndexError):
                continue
    return found


def own_cpu_s():
    """CPU seconds of this process's threads and of the children it has reaped."""
    try:
        import resource
    except ImportError:
        return sum(os.times()[:4])
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


def tree_cpu_s():
    """CPU seconds of this process's tree: its own threads and reaped children (rusage,
    microseconds) plus every live descendant's own and reaped-children time (/proc)."""
    root = os.getpid()
    total = own_cpu_s()
    stack = _children(root)
    seen = set()
    while stack:
        pid = stack.pop()
        if pid in seen:
            continue
        seen.add(pid)
        try:
            fields = _stat_fields(pid)
            # utime stime of its threads, cutime cstime of the children it has reaped
            total += sum(int(v) for v in fields[11:15]) * TICK_S
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile: its time is now in its parent's reaped children
        stack += _children(pid)
    return total


class Window:
    """One measured stretch; `figures` is filled when it ends."""

    def __init__(self, cpus, threshold):
        self.cpus = cpus
        self.threshold = threshold
        self.figures = None
        self._start = None

    def start(self):
        self._start = (time.monotonic(), cpu_ticks(self.cpus), tree_cpu_s())
        return self

    def stop(self):
        wall0, ticks0, own0 = self._start
        ticks1, own1 = cpu_ticks(self.cpus), tree_cpu_s()
        wall = time.monotonic() - wall0
        figures = {"wall_s": wall, "own_cpu_s": own1 - own0, "capacity_s": None,
                   "other_cpu_s": None, "steal_s": None}
        if ticks0 is not None and ticks1 is not None:
            busy, steal, total = (b - a for a, b in zip(ticks0, ticks1))
            # The CPUs' own tick count is the capacity; wall x CPUs if the ticks stood still.
            capacity = total * TICK_S or wall * len(self.cpus)
            others = max(0.0, busy * TICK_S - figures["own_cpu_s"]) + steal * TICK_S
            figures.update(capacity_s=capacity, other_cpu_s=min(others, capacity),
                           steal_s=steal * TICK_S)
        figures.update(shares(figures, self.threshold))
        self.figures = figures
        return figures


def shares(figures, threshold):
    capacity = figures.get("capacity_s")
    if not capacity or figures.get("other_cpu_s") is None:
        return {"other_cpu_share": None, "steal_share": None, "busy": False}
    other = figures["other_cpu_s"] / capacity
    return {"other_cpu_share": round(other, 3),
            "steal_share": round(figures["steal_s"] / capacity, 3),
            "busy": other > threshold}


class LoadMeter:
    """Collects the windows of one run and sums them into its `load` block."""

    def __init__(self, threshold=THRESHOLD, cpus=None):
        self.cpus = sorted(cpus) if cpus else usable_cpus()
        self.threshold = threshold
        self.windows = []

    def start(self):
        window = Window(self.cpus, self.threshold).start()
        self.windows.append(window)
        return window

    @contextmanager
    def window(self):
        window = self.start()
        try:
            yield window
        finally:
            window.stop()

    def block(self, windows=None):
        """The run's `load` block over these windows (default: all that ended)."""
        done = [w.figures for w in (windows or self.windows) if w.figures is not None]
        summed = {"wall_s": sum(f["wall_s"] for f in done)}
        for key in ("capacity_s", "other_cpu_s", "steal_s"):
            values = [f[key] for f in done]
            summed[key] = None if not done or None in values else sum(values)
        block = shares(summed, self.threshold)
        block.update(usable_cpus=len(self.cpus), threshold=self.threshold,
                     measured_s=round(summed["wall_s"], 3), windows=len(done))
        return block


def describe(block):
    """One sentence naming other programs' share, or '' when nothing was seen."""
    share = block.get("other_cpu_share")
    if share is None:
        return ""
    cpus = block.get("usable_cpus") or 1
    text = "Other programs took %d%% of the %d usable CPU%s while this run measured" % (
        round(100 * share), cpus, "" if cpus == 1 else "s")
    if cpus > 1:
        text += " (%.1f CPU on average)" % (share * cpus)
    stolen = round(100 * (block.get("steal_share") or 0.0) / share) if share else 0
    if stolen:
        text += "; the hypervisor stole %d%% of that" % stolen
    return text + "."
