"""The blame watchdog: a thread that notices an overdue tick and names the line the
event loop's thread is executing at that moment, while it is still stuck there.

`sys._current_frames()` maps every thread's ident to its innermost Python frame; the
watchdog needs the GIL to read it, which a CPU-bound loop thread hands over at least
once per switch interval, so the blame arrives during the block, not after it.

A tick can also be late while the loop thread runs no code at all: it sits in the
selector, woken on time by the kernel, but waiting for a CPU (other programs) or for
the GIL (other threads). Such a span is not a blocking call, so it is not blamed on the
selector line: `why_late` decides from the loop thread's own schedstat figures.
"""

from __future__ import annotations

import linecache
import os
import sys
import sysconfig
import threading
import time

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
_STDLIB = sysconfig.get_paths().get("stdlib", "")
STACK_DEPTH = 5
ONGOING_EVERY_S = 0.2  # how often a still-frozen span is re-reported


def short_path(filename):
    """`workloads/loop_freeze.py`, `asyncio/events.py`: short enough for a pane."""
    path = os.path.abspath(filename)
    if path.startswith(_PACKAGE_DIR + os.sep):
        return "workloads/" + os.path.relpath(path, _PACKAGE_DIR)
    if _STDLIB and path.startswith(_STDLIB + os.sep):
        return os.path.relpath(path, _STDLIB)
    return os.path.basename(path)


def describe_frame(frame):
    """Where a thread is: file:line, the function, and the source line itself."""
    filename, line = frame.f_code.co_filename, frame.f_lineno
    stack = []
    walker = frame
    while walker is not None and len(stack) < STACK_DEPTH:
        stack.append("%s:%d in %s" % (short_path(walker.f_code.co_filename), walker.f_lineno,
                                      walker.f_code.co_name))
        walker = walker.f_back
    return {
        "blamed": "%s:%d" % (short_path(filename), line),
        "function": frame.f_code.co_name,
        "code": linecache.getline(filename, line).strip(),
        "stack": stack,
    }


# Inside the loop's own wait (no callback running): asyncio's selector call and its loop
# machinery; a loop written in C (uvloop) shows the frame that started it.
_LOOP_FILES = ("selectors.py", os.path.join("asyncio", "base_events.py"))


def in_selector(frame, loop_codes=()):
    """Is the loop thread inside the event loop itself rather than in a callback?"""
    code = frame.f_code
    return code in loop_codes or short_path(code.co_filename) in _LOOP_FILES


class ThreadMeter:
    """The calling thread's CPU time and run_delay (time runnable but waiting for a CPU,
    from /proc/.../schedstat), and the process's CPU time: cheap enough for every tick
    (one pread of a file kept open)."""

    def __init__(self):
        try:
            self.fd = os.open("/proc/self/task/%d/schedstat" % threading.get_native_id(),
                              os.O_RDONLY)
        except (OSError, AttributeError):
            self.fd = None

    def read(self):
        """(thread CPU s, thread run_delay s or None, process CPU s)."""
        process = time.process_time()
        if self.fd is not None:
            try:
                on_cpu, waiting = os.pread(self.fd, 128, 0).split()[:2]
                return int(on_cpu) / 1e9, int(waiting) / 1e9, process
            except (OSError, ValueError):
                pass
        return time.thread_time(), None, process

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def span_figures(before, after):
    """What the loop thread did between two ThreadMeter readings, in ms: its own CPU time,
    its run_delay (None where schedstat is missing) and the other threads' CPU time."""
    loop_cpu = after[0] - before[0]
    waited = None if after[1] is None or before[1] is None else after[1] - before[1]
    others = max(0.0, (after[2] - before[2]) - loop_cpu)
    return {"run_delay_ms": None if waited is None else round(waited * 1000, 3),
            "loop_cpu_ms": round(loop_cpu * 1000, 3),
            "other_threads_cpu_ms": round(others * 1000, 3)}


def why_late(lateness_ms, figures, blame, gil):
    """None when code ran on the loop (a real freeze); otherwise why the idle loop's tick
    was late: {"reason": "cpu" | "gil" | "unexplained", "says": ..., "where": ...}.
    `figures` are span_figures from the previous tick to this one."""
    if blame is not None and not blame.get("idle"):
        return None  # the watchdog saw a line of code holding the loop
    waited, others = figures["run_delay_ms"], figures["other_threads_cpu_ms"]
    if blame is None and figures["loop_cpu_ms"] >= 0.5 * lateness_ms:
        return None  # not caught in time, but the loop thread was computing: a freeze
    # Waiting for a CPU shows in the thread's run_delay; waiting for the GIL (asleep on it,
    # no run_delay) as other threads running meanwhile. On one CPU a late tick often
    # waited for both, one after the other: the larger names it, both figures are given.
    cpu_wait = waited or 0.0
    gil_wait = others if gil else 0.0
    cpu_part = "a CPU (run_delay %.1f ms)" % cpu_wait
    gil_part = "the GIL (other threads ran %.1f ms meanwhile)" % gil_wait
    if cpu_wait + gil_wait >= 0.5 * lateness_ms:
        reason = "cpu" if cpu_wait >= gil_wait else "gil"
        first, second = (cpu_part, gil_part) if reason == "cpu" else (gil_part, cpu_part)
        says = "loop thread waiting for " + first
        if min(cpu_wait, gil_wait) >= 0.25 * lateness_ms:
            says += ", then for " + second
    elif blame is None:
        return None  # no frame seen and no wait measured: keep it a freeze, unblamed
    else:
        reason = "unexplained"
        says = "loop thread idle in the loop yet late: not waiting for a CPU (%s)%s" % (
            "run_delay not measurable" if waited is None else "run_delay %.1f ms" % waited,
            ", nor for the GIL" if gil else ", and there is no GIL")
    return {"reason": reason, "says": says, "where": blame and blame.get("blamed")}


class Blamer:
    """Watches `clock.waiting_for` = (tick number, due time in perf_counter seconds)."""

    def __init__(self, clock, loop_ident, threshold, out, loop_codes=()):
        self.clock = clock
        self.loop_ident = loop_ident
        self.loop_codes = tuple(loop_codes)  # frames that mean "inside the loop itself"
        self.threshold = threshold
        self.out = out
        # Poll a few times per threshold; never busier than every 1 ms.
        self.poll = min(max(threshold / 4, 0.001), 0.05)
        self.blames = {}  # tick number -> blame dict
        self._stop = threading.Event()

    def stop(self):
        self._stop.set()

    def blame_for(self, n):
        return self.blames.get(n)

    def watch(self):
        current, blame, last_report = None, None, 0.0
        while not self._stop.wait(self.poll):
            n, due = self.clock.waiting_for
            now = time.perf_counter()
            overdue = now - due
            if overdue < self.threshold:
                continue
            # Look again on every poll while the loop sits in the selector: a callback that
            # starts blocking later in the span is what the span is blamed on.
            if n != current or blame.get("idle"):
                frame = sys._current_frames().get(self.loop_ident)
                if frame is None:
                    continue
                seen = describe_frame(frame)
                seen["idle"] = in_selector(frame, self.loop_codes)
                del frame  # do not keep the loop thread's frames alive
                if n != current or not seen["idle"]:  # a new span, or code after all
                    seen["blamed_after_ms"] = round(overdue * 1000, 3)
                    self.blames[n] = blame = seen
                    current, last_report = n, 0.0  # and say so at once
            if now - last_report >= ONGOING_EVERY_S:
                last_report = now
                ticks = self.clock.tick_times
                last_tick = round(ticks[-1], 4) if ticks else 0.0  # the batch not yet sent
                shown = {k: v for k, v in blame.items() if k != "idle"}
                self.out.emit("late" if blame["idle"] else "frozen", index=n, ongoing=True,
                              start_s=self.clock.rel(due), so_far_ms=round(overdue * 1000, 3),
                              last_tick_s=last_tick, **shown)
