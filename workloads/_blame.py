"""The blame watchdog: a thread that notices an overdue tick and names the line the
event loop's thread is executing at that moment, while it is still stuck there.

`sys._current_frames()` maps every thread's ident to its innermost Python frame; the
watchdog needs the GIL to read it, which a CPU-bound loop thread hands over at least
once per switch interval, so the blame arrives during the block, not after it.
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


class Blamer:
    """Watches `clock.waiting_for` = (tick number, due time in perf_counter seconds)."""

    def __init__(self, clock, loop_ident, threshold, out):
        self.clock = clock
        self.loop_ident = loop_ident
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
            if n != current:
                frame = sys._current_frames().get(self.loop_ident)
                if frame is None:
                    continue
                blame = describe_frame(frame)
                del frame  # do not keep the loop thread's frames alive
                blame["blamed_after_ms"] = round(overdue * 1000, 3)
                self.blames[n] = blame
                current, last_report = n, 0.0
            if now - last_report >= ONGOING_EVERY_S:
                last_report = now
                ticks = self.clock.tick_times
                last_tick = round(ticks[-1], 4) if ticks else 0.0  # the batch not yet sent
                self.out.emit("frozen", index=n, ongoing=True, start_s=self.clock.rel(due),
                              so_far_ms=round(overdue * 1000, 3), last_tick_s=last_tick, **blame)
