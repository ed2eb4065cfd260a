"""deadlock: threads taking two locks in opposite order, caught live by a watchdog."""

from __future__ import annotations

import random
import threading
import time

from ._locks import LockGraph, TrackedLock, find_cycle, holdings, stack_of, waiting_at
from ._proto import name_this_thread, start_thread
from ._spec import Param, ParamError
from ._words import times

NAME = "deadlock"
TITLE = "Deadlock: locks taken in opposite order, the wait-for graph, and two fixes"
LESSON = """\
Each thread takes its own first lock, pauses, then reaches for the lock its neighbour
took first. With two threads that is lock A then B against B then A; with more it is
a ring, like philosophers each holding one fork. Once every thread holds one lock and
waits for the next, none can move again: that is a deadlock, and plain locks never
time out. Here the locks record who holds them and who waits, so a watchdog draws the
wait-for graph (thread -> the thread holding what it wants), finds the cycle, and
shows where each thread is stuck. Fix `ordered` makes every thread take the locks in
one global order, so no cycle can form. Fix `timeout` gives up after a while, lets
go of what it holds, backs off and tries again: it completes, at the price of retries.
"""
REQUIRES = ()
TIMEOUT_S = 60
LESSON_CODE = ("opposite_order", "back_off_and_retry", "plan")
# May run beside other runs: its threads wait on locks; the wait-for graph does not depend
# on CPUs.
CPU_BOUND = False

FIXES = ("none", "ordered", "timeout")
PARAMS = (
    Param.int("threads", 2, 2, 16, "2: two locks in opposite order; 3 or more: a ring"),
    Param.choice("fix", "none", FIXES, "none: deadlocks; ordered / timeout: the two fixes"),
    Param.float("hold_ms", 50.0, 0.0, 1000.0,
                "how long a thread holds its first lock before reaching for the second"),
    Param.int("rounds", 10, 1, 10_000, "times each thread takes both locks (if it can)"),
    Param.float("timeout_ms", 20.0, 1.0, 10_000.0, "fix=timeout: how long to wait for the second lock"),
)

def tasks_needed(params):
    """Main thread, the watchdog and one thread per lock holder."""
    return "threads", 2 + params["threads"]


def check_limits(params, timeout_s):
    """Every lock is taken by two threads, each holding it hold_ms per round: at least
    2 x rounds x hold_ms of waiting, which must fit well inside the run's time limit."""
    least_s = 2 * params["rounds"] * params["hold_ms"] / 1000.0
    if params["fix"] != "none" and least_s > timeout_s / 2:
        raise ParamError("rounds", "parameter 'rounds' x 'hold_ms' is too large: %d rounds "
                         "holding %g ms take at least %.0f s, over half the %g s limit "
                         "(at most %d rounds at this hold_ms)" % (
                             params["rounds"], params["hold_ms"], least_s, timeout_s,
                             timeout_s / 2 * 1000.0 / (2 * params["hold_ms"])))


WATCH_EVERY_S = 0.01  # the watchdog's look at the lock graph
GRAPH_EVERY_S = 0.1  # live graph events


def lock_names(count):
    return ["lock-%s" % chr(ord("A") + i) for i in range(count)]


# The workers: what the article's two threads do, in a loop -------------------------------


def opposite_order(first, second, hold_s, rounds, progress):
    """Take my lock, pause, take my neighbour's: deadlocks when every thread does it."""
    for _ in range(rounds):
        with first:
            time.sleep(hold_s)  # room for the neighbour to take its first lock
            with second:
                progress["rounds"] += 1


def back_off_and_retry(first, second, hold_s, rounds, progress, timeout_s):
    """Fix: wait a bounded time for the second lock; if it does not come, let go of the
    first, sleep a random moment and start over."""
    done = 0
    while done < rounds:
        with first:
            time.sleep(hold_s)
            if second.acquire(timeout=timeout_s):
                try:
                    done += 1
                    progress["rounds"] = done
                finally:
                    second.release()
                continue
        progress["retries"] += 1
        time.sleep(random.uniform(0, max(hold_s, 0.001)))  # so the threads stop colliding


def plan(fix, index, locks):
    """Which lock each thread takes first: its own, or (ordered) the lower of the two."""
    mine, neighbours = locks[index], locks[(index + 1) % len(locks)]
    if fix == "ordered" and index == len(locks) - 1:
        return neighbours, mine  # the last thread's neighbour is lock A: take it first
    return mine, neighbours


# The watchdog -----------------------------------------------------------------------------


class Watchdog:
    """Looks at the lock graph every few ms; on a cycle that cannot break, reports it."""

    def __init__(self, graph, out, started, finished):
        self.graph, self.out, self.started, self.finished = graph, out, started, finished
        self.report = None
        self.transient = set()  # cycles of waits that have a timeout: they break by themselves
        self._last_drawn = None
        self._last_drawn_at = 0.0

    def run(self):
        name_this_thread("watchdog")
        while not self.finished.is_set():
            owner, waiting = self.graph.snapshot()
            now = time.monotonic()
            cycle = find_cycle(owner, waiting)
            self.draw(owner, waiting, cycle, now)
            if cycle:
                if all(waiting[t][2] is not None for t, _lock, _holder in cycle):
                    self.transient.add(tuple(sorted((t, waiting[t][1]) for t, _l, _h in cycle)))
                else:
                    self.caught(cycle, waiting, now)
                    return
            self.finished.wait(WATCH_EVERY_S)

    def draw(self, owner, waiting, cycle, now, force=False):
        """The graph as an event, when it changed (at most every GRAPH_EVERY_S)."""
        shape = (tuple(sorted(owner.items())), tuple(sorted((t, w[0]) for t, w in waiting.items())))
        if not force and shape == self._last_drawn and now - self._last_drawn_at < 1.0:
            return
        if not force and now - self._last_drawn_at < GRAPH_EVERY_S and not cycle:
            return
        self._last_drawn, self._last_drawn_at = shape, now
        self.out.emit("graph", owner=owner, holds=holdings(owner),
                      waits={t: {"lock": w[0], "for_ms": (now - w[1]) * 1000,
                                 "timeout": w[2] is not None} for t, w in waiting.items()},
                      cycle=[t for t, _l, _h in cycle], at_ms=(now - self.started) * 1000)

    def caught(self, cycle, waiting, now):
        formed = max(waiting[t][1] for t, _l, _h in cycle)  # the wait that closed the cycle
        stacks = {t: stack_of(self.graph.idents[t]) for t, _l, _h in cycle}
        held = holdings(self.graph.snapshot()[0])
        # Each thread's own line in this file where it waits: the code panel marks it.
        where = {t: waiting_at(self.graph.idents[t], __file__) or {} for t, _l, _h in cycle}
        self.report = {
            "detected_after_ms": (now - formed) * 1000,
            "detected_at_ms": (now - self.started) * 1000,
            "cycle": [dict({"thread": t, "holds": held.get(t, []), "waits_for": lock,
                            "held_by": holder}, **where[t])
                      for t, lock, holder in cycle],
            "stacks": stacks,
        }
        self.out.emit("deadlock", **self.report)
        self.finished.set()


# The run ---------------------------------------------------------------------------------


def run(params, out):
    count, fix = params["threads"], params["fix"]
    hold_s, timeout_s = params["hold_ms"] / 1000.0, params["timeout_ms"] / 1000.0
    graph = LockGraph()
    locks = [TrackedLock(name, graph) for name in lock_names(count)]
    progress = [{"rounds": 0, "retries": 0} for _ in range(count)]
    finished = threading.Event()
    started = time.monotonic()
    watchdog = Watchdog(graph, out, started, finished)
    watcher = threading.Thread(target=watchdog.run, name="watchdog", daemon=True)
    watcher.start()

    left = [count]
    left_guard = threading.Lock()

    def worker(index):
        first, second = plan(fix, index, locks)
        if fix == "timeout":
            back_off_and_retry(first, second, hold_s, params["rounds"], progress[index], timeout_s)
        else:
            opposite_order(first, second, hold_s, params["rounds"], progress[index])
        with left_guard:
            left[0] -= 1
            if left[0] == 0:
                finished.set()

    names = ["worker-%d" % (i + 1) for i in range(count)]
    out.emit("setup", threads=names, locks=[lock.name for lock in locks], fix=fix,
             order={names[i]: [plan(fix, i, locks)[0].name, plan(fix, i, locks)[1].name]
                    for i in range(count)})
    # Daemon threads: a deadlocked worker never returns, and must not keep the child alive.
    for i in range(count):
        start_thread(worker, names[i], "worker", (i,))
    while not finished.wait(0.1):
        out.latest("progress", rounds={names[i]: p["rounds"] for i, p in enumerate(progress)},
                   retries={names[i]: p["retries"] for i, p in enumerate(progress)})
    watcher.join(1.0)
    if watchdog.report is None:  # the final picture: every lock free, nobody waiting
        owner, waiting = graph.snapshot()
        watchdog.draw(owner, waiting, [], time.monotonic(), force=True)
    elapsed = time.monotonic() - started
    out.emit("progress", rounds={names[i]: p["rounds"] for i, p in enumerate(progress)},
             retries={names[i]: p["retries"] for i, p in enumerate(progress)})

    report = watchdog.report
    result = {
        "fix": fix,
        "threads": count,
        "deadlocked": report is not None,
        "completed": report is None,
        "detected_after_ms": report["detected_after_ms"] if report else None,
        "detected_at_ms": report["detected_at_ms"] if report else None,
        "cycle": report["cycle"] if report else [],
        "stacks": report["stacks"] if report else {},
        "rounds": {names[i]: p["rounds"] for i, p in enumerate(progress)},
        "retries": sum(p["retries"] for p in progress),
        "transient_cycles": len(watchdog.transient),
        "wall_s": elapsed,
    }
    result["explanation"] = explain(result, params)
    return result


def explain(result, params):
    if result["deadlocked"]:
        ring = " -> ".join("%s (holds %s, wants %s)" % (c["thread"], ", ".join(c["holds"]),
                                                         c["waits_for"]) for c in result["cycle"])
        return ("Deadlock after %.0f ms, seen by the watchdog %.1f ms after the cycle closed: %s "
                "-> back to the start. No thread in the cycle can ever move again; the "
                "experiment ends itself and leaves them behind." % (
                    result["detected_at_ms"], result["detected_after_ms"], ring))
    if params["fix"] == "ordered":
        return ("Every thread took the locks in one global order (A before B ...), so no thread "
                "ever held a later lock while waiting for an earlier one: no cycle, all %d rounds "
                "done by each thread." % params["rounds"])
    if params["fix"] == "timeout":
        return ("The threads still collided, but each wait had a deadline: %s a thread gave "
                "up, let go of its first lock and backed off (%d short-lived cycles seen), and "
                "every round completed." % (times(result["retries"]), result["transient_cycles"]))
    return ("No deadlock this time: the timing let threads take both locks before a neighbour "
            "took its first. The bug is still there; a longer hold_ms makes it certain.")
