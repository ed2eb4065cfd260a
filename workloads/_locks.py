"""Locks that say who holds them and who waits, so a watchdog can see a deadlock form.

A `TrackedLock` is a `threading.Lock` that records, in one shared `LockGraph`, its owner
and every thread blocked on it. Both facts change under the graph's own guard, so a
snapshot is consistent: if it shows thread T waiting for lock L held by U, T really is
blocked (or about to block) and U really holds L. From such a snapshot the wait-for
graph follows: T -> U whenever T waits for a lock U holds. Each thread waits for at
most one lock at a time, so a cycle is found by walking from each waiting thread.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import traceback


class LockGraph:
    """Owners and waiters of every tracked lock."""

    def __init__(self):
        self.guard = threading.Lock()
        self.owner = {}  # lock name -> thread name
        self.waiting = {}  # thread name -> (lock name, since (monotonic), timeout or None)
        self.idents = {}  # thread name -> thread ident (for its stack)

    def snapshot(self):
        with self.guard:
            return dict(self.owner), dict(self.waiting)


class TrackedLock:
    def __init__(self, name, graph):
        self.name = name
        self.graph = graph
        self._lock = threading.Lock()

    def acquire(self, blocking=True, timeout=-1):
        me = threading.current_thread().name
        graph = self.graph
        with graph.guard:
            graph.waiting[me] = (self.name, time.monotonic(), timeout if timeout >= 0 else None)
            graph.idents[me] = threading.get_ident()
        got = False
        try:
            got = self._lock.acquire(blocking, timeout)
        finally:
            with graph.guard:
                graph.waiting.pop(me, None)
                if got:
                    graph.owner[self.name] = me
        return got

    def release(self):
        with self.graph.guard:
            self.graph.owner.pop(self.name, None)
        self._lock.release()

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc):
        self.release()


def find_cycle(owner, waiting):
    """[(thread, lock it waits for, thread holding that lock), ...] forming a cycle, or []."""
    for start in sorted(waiting):
        path, seen = [], {}
        thread = start
        while thread in waiting and thread not in seen:
            lock = waiting[thread][0]
            holder = owner.get(lock)
            if holder is None:
                break
            seen[thread] = len(path)
            path.append((thread, lock, holder))
            thread = holder
        if thread in seen:
            return path[seen[thread]:]
    return []


def holdings(owner):
    held = {}
    for lock, thread in sorted(owner.items()):
        held.setdefault(thread, []).append(lock)
    return held


HERE = os.path.dirname(os.path.abspath(__file__))


def stack_of(ident, limit=6):
    """A blocked thread's stack, innermost last, as 'file.py:LINE in func: code'."""
    frame = sys._current_frames().get(ident)
    if frame is None:
        return []
    lines = []
    for entry in traceback.extract_stack(frame):
        if not os.path.abspath(entry.filename).startswith(HERE):
            continue  # threading.py and friends: not where the bug is
        lines.append("%s:%d in %s: %s" % (os.path.basename(entry.filename), entry.lineno,
                                           entry.name, (entry.line or "").strip()))
    return lines[-limit:]


def waiting_at(ident, filename):
    """{"line", "function"} of a thread's innermost frame in `filename` (the experiment's
    own line where it waits, below the lock's machinery), or None."""
    frame = sys._current_frames().get(ident)
    target = os.path.abspath(filename)
    while frame is not None:
        if os.path.abspath(frame.f_code.co_filename) == target:
            return {"line": frame.f_lineno, "function": frame.f_code.co_name}
        frame = frame.f_back
    return None
