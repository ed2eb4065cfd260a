"""`perf bench sched pipe`: the same ping-pong written in C, as the floor to compare with.

perf's benchmark passes an int back and forth over two pipes between two processes
(or two threads with -T) and reports microseconds per round trip. It has no option to
place its two sides, so this module does it with CPU affinity: both sides start on
CPU A (inherited from us through fork), and for `cross-core` the second side is moved
to CPU B as soon as it appears. The few round trips before that move ran on one core;
`repinned_after_ms` says how long that was, so the figure can be judged.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time

from ._pingpong import cpu_sets
from ._proto import die_with_parent

USECS = re.compile(r"([0-9.]+)\s+usecs/op")


def perf_path():
    return shutil.which("perf")


def check_perf():
    """(path, None) if `perf bench sched pipe` runs here, else (None, reason)."""
    path = perf_path()
    if path is None:
        return None, "perf is not installed"
    try:
        done = subprocess.run([path, "bench", "sched", "pipe", "-l", "10"], capture_output=True,
                              text=True, timeout=20, stdin=subprocess.DEVNULL,
                              preexec_fn=die_with_parent)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, "perf did not run: %s" % exc
    if done.returncode != 0 or not USECS.search(done.stdout):
        why = (done.stderr or done.stdout).strip().splitlines()
        return None, "perf bench failed: %s" % (why[-1] if why else "exit %d" % done.returncode)
    return path, None


def _start_on(cpus):
    def before_exec():
        die_with_parent()
        if hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, cpus)

    return before_exec


def _second_side(proc, threaded):
    """The task to move: perf's forked child, or its second worker thread."""
    if threaded:
        try:
            tids = sorted(int(t) for t in os.listdir("/proc/%d/task" % proc.pid))
        except OSError:
            return None
        workers = [t for t in tids if t != proc.pid]  # the main thread only waits
        return workers[-1] if len(workers) == 2 else None
    try:
        with open("/proc/%d/task/%d/children" % (proc.pid, proc.pid)) as f:
            kids = f.read().split()
    except OSError:
        return None
    return int(kids[0]) if kids else None


def command_text(command, placement, cpus_a, cpus_b):
    """The command a person would type to repeat this run."""
    text = "perf " + " ".join(command[1:])
    if placement == "unpinned":
        return text
    text = "taskset -c %d %s" % (min(cpus_a), text)
    if cpus_a != cpus_b:
        text += "  (second side moved to CPU %d once started)" % min(cpus_b)
    return text


def run_perf(path, placement, allowed, loops, threaded=False):
    """One `perf bench sched pipe` run with the given placement; a figure dict."""
    cpus_a, cpus_b = cpu_sets(placement, allowed)
    command = [path, "bench", "sched", "pipe", "-l", str(loops)] + (["-T"] if threaded else [])
    started = time.monotonic()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True, preexec_fn=_start_on(cpus_a))
    repinned_after = None
    if cpus_a != cpus_b:
        while proc.poll() is None:
            task = _second_side(proc, threaded)
            if task is not None:
                try:
                    os.sched_setaffinity(task, cpus_b)
                    repinned_after = time.monotonic() - started
                except OSError:
                    pass
                break
            time.sleep(0.0005)
    try:
        stdout, stderr = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return {"error": "perf bench took over 120 s"}
    total = time.monotonic() - started
    match = USECS.search(stdout)
    if proc.returncode != 0 or not match:
        return {"error": (stderr.strip() or "perf exited %d" % proc.returncode)[:200]}
    figure = {
        "us_per_roundtrip": float(match.group(1)),
        "loops": loops,
        "mode": "threads" if threaded else "processes",
        "command": command_text(command, placement, cpus_a, cpus_b),
        "wall_s": total,
    }
    if cpus_a != cpus_b:
        figure["repinned_after_ms"] = None if repinned_after is None else repinned_after * 1000
        figure["moved_to_cpu"] = sorted(cpus_b)[0]
    return figure
