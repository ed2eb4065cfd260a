"""loop-freeze: a blocking call freezes the event loop's timer; a watchdog names the line."""

from __future__ import annotations

import asyncio
import math
import os
import sys
import threading
import time

from ._blame import Blamer, ThreadMeter, span_figures, why_late
from ._loops import loop_description, run_on
from ._proto import (die_with_parent, events, free_threaded, gil_enabled, name_this_thread,
                     process_context, start_thread, thread_stats)
from ._spec import Param, ParamError
from ._stats import Histogram, summary_ms

NAME = "loop-freeze"
TITLE = "A blocking call freezes the event loop (and two ways out)"
LESSON = """\
One coroutine wants to tick every few milliseconds; another does blocking work now
and then. An event loop is one thread running one callback at a time, so while the
blocking call runs nobody ticks: the ticks are late by the length of the block.
A watchdog thread notices an overdue tick and asks the interpreter which line the
loop thread is on right now, so the span is blamed on the line that blocked.
Fixes: asyncio.to_thread moves the work to a thread, but on a GIL build that
thread still needs the GIL, so each tick may wait up to one switch interval (a
free-threaded build has no such wait); a process pool runs the work in another
process and the ticks stay punctual.
"""
REQUIRES = ()
REQUIRES_FOR = {"loop": {"uvloop": "uvloop"}}
TIMEOUT_S = 700  # the longest run allowed (duration_s 600) and its set-up
LESSON_CODE = ("blocker", "cpu_heavy", "sleep_block", "ticker")
# In the TUI it runs in turn with other CPU-bound runs: its blocks compute, and tick
# lateness is what a loop thread waiting for a CPU (other runs) adds to.
CPU_BOUND = True

PARAMS = (
    Param.choice("block", "cpu", ("cpu", "sleep"),
                 "what the blocking coroutine does: a pure-Python loop, or time.sleep"),
    Param.int("block_ms", 250, 1, 10_000, "how long each block lasts"),
    Param.int("blocks", 2, 0, 100, "how many blocks during the run (spread evenly)"),
    Param.choice("fix", "none", ("none", "to_thread", "process_pool"),
                 "where the blocking work runs: on the loop, asyncio.to_thread, a process pool"),
    Param.choice("loop", "asyncio", ("asyncio", "uvloop"), "the event loop implementation"),
    Param.float("period_ms", 10.0, 1.0, 1000.0,
                "the tick period (the article's timer used 500 ms)"),
    Param.float("duration_s", 3.0, 0.2, 600.0, "how long the ticker runs"),
    Param.float("switch_interval_ms", 5.0, 0.1, 100.0,
                "sys.setswitchinterval: how long the CPU thread may keep the GIL (to_thread)"),
)

def tasks_needed(params):
    """Main thread and the watchdog, plus the fix's thread, or its pool process with the
    pool's manager and queue feeder threads."""
    return "fix", 2 + {"none": 0, "to_thread": 1, "process_pool": 3}[params["fix"]]


def check_limits(params, timeout_s):
    busy_ms = params["blocks"] * params["block_ms"]
    if busy_ms > params["duration_s"] * 1000:
        raise ParamError("block_ms", "parameter 'block_ms' x 'blocks' must fit in the run: at "
                         "most duration_s x 1000 = %d ms (got %d ms)"
                         % (params["duration_s"] * 1000, busy_ms))


WINDOW_S = 0.2  # ticks are sent to the lab in batches, one per window
MAX_SPANS = 200  # frozen (and late) spans kept in the result (the counts are exact)


# The blocking work: the article's cpu_heavy, bounded by time instead of a count. --------


def cpu_heavy(ms):
    deadline = time.perf_counter() + ms / 1000
    total = 0
    while time.perf_counter() < deadline:
        for i in range(10_000):
            total += i * i
    return total


def sleep_block(ms):
    time.sleep(ms / 1000)


BLOCKS = {"cpu": cpu_heavy, "sleep": sleep_block}


# The two coroutines -----------------------------------------------------------------------


async def ticker(clock, period, duration):
    """Tick every `period` seconds on a fixed schedule; record how late each tick was."""
    n = 1
    while True:
        due = clock.start + n * period
        if due - clock.start > duration:
            return
        clock.waiting_for = (n, due)  # what the watchdog checks
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        clock.tick(n, due, time.perf_counter())
        # After a freeze, skip the ticks that can no longer be on time (they are missed).
        n = max(n + 1, int((time.perf_counter() - clock.start) / period) + 1)


async def blocker(clock, work, ms, fix, offsets, pool):
    """At each offset, do the blocking work: on the loop, in a thread, or in a process."""
    loop = asyncio.get_running_loop()
    for offset in offsets:
        await asyncio.sleep(max(0.0, clock.start + offset - time.perf_counter()))
        began = time.perf_counter()
        if fix == "none":
            work(ms)  # blocks the loop: no await inside
        elif fix == "to_thread":
            await asyncio.to_thread(work, ms)
        else:
            await loop.run_in_executor(pool, work, ms)
        clock.block_done(began, time.perf_counter())


# Measurement -------------------------------------------------------------------------------


class TickClock:
    """Shared by the ticker, the blocker and the watchdog: the lab's measurements."""

    def __init__(self, out, period, threshold):
        self.out = out
        self.period = period
        self.threshold = threshold  # a tick this late closes a frozen span
        self.meter = ThreadMeter()  # made on the loop thread: it measures that thread
        self.begin()
        self.lags = []
        self.tick_times = []  # seconds since start, beside lags
        self.hist = Histogram(0.1)  # 0.1 ms buckets for the live percentiles
        self.missed = 0
        self.expected_next = 1
        self.window = []
        self.window_start = 0.0
        self.spans = []
        self.span_count = 0
        self.late_spans = []  # late ticks while the loop ran no code (waiting for a CPU...)
        self.late_count = 0
        self.gil = gil_enabled()
        self.blocks = []
        self.blamer = None

    def begin(self):
        """Start the schedule now: after the set-up, so the first tick is not late by the
        time it took to start the watchdog (on a busy machine, many milliseconds)."""
        self.start = time.perf_counter()
        self.mono_offset = time.monotonic() - self.start  # perf_counter -> event ts clock
        self.waiting_for = (1, self.start + self.period)
        self.mark = self.meter.read()  # the loop thread's figures at the last tick

    def rel(self, t):
        return round(t - self.start, 4)

    def tick(self, n, due, now):
        self.waiting_for = (n, math.inf)  # on time now: the watchdog stands down
        lag_ms = (now - due) * 1000
        missed = n - self.expected_next  # ticks a freeze swallowed before this one
        self.missed += missed
        self.expected_next = n + 1
        self.lags.append(lag_ms)
        self.tick_times.append(now - self.start)
        self.hist.add(lag_ms)
        self.window.append([self.rel(now), round(lag_ms, 3)])
        if now - due >= self.threshold:
            self.close_span(n, due, now, lag_ms)
        self.mark = self.meter.read()  # after `now`: the reading is not in the lateness
        if now - self.start - self.window_start >= WINDOW_S:
            self.send_window(now)

    def close_span(self, n, due, now, lag_ms):
        blame = self.blamer.blame_for(n) if self.blamer else None
        span = {"start_s": self.rel(due), "end_s": self.rel(now),
                "duration_ms": round(lag_ms, 3),
                "missed_ticks": int((now - due) / self.period)}
        span.update(span_figures(self.mark, self.meter.read()))
        late = why_late(lag_ms, span, blame, self.gil)
        if late is not None:  # no code held the loop: not a freeze, not blamed on a line
            span.update(late)
            self.late_count += 1
            if len(self.late_spans) < MAX_SPANS:
                self.late_spans.append(span)
            self.out.emit("late", index=n, ongoing=False, **span)
            return
        span.update({k: v for k, v in (blame or {"blamed": None}).items() if k != "idle"})
        self.span_count += 1
        if len(self.spans) < MAX_SPANS:
            self.spans.append(span)
        self.out.emit("frozen", index=n, ongoing=False, **span)

    def block_done(self, began, ended):
        block = {"start_s": self.rel(began), "end_s": self.rel(ended),
                 "ms": round((ended - began) * 1000, 3)}
        self.blocks.append(block)
        self.out.emit("block", **block)

    def send_window(self, now):
        top = round(self.hist.max, 3)
        p = {k: min(v, top) for k, v in self.hist.percentiles((50, 99)).items()}
        self.out.emit("ticks", t0=self.window_start, t1=self.rel(now), ticks=self.window,
                      count=len(self.lags), missed=self.missed, spans=self.span_count,
                      lag_ms={"p50": p[50], "p99": p[99], "max": top})
        self.window = []
        self.window_start = round(now - self.start, 4)


def _pool_worker_init(parent):
    """First thing in each pool worker: die with the child, name ourselves, say hello."""
    die_with_parent(parent)
    name_this_thread("pool-worker")
    events().emit("process", name="pool-worker", role="worker", ppid=parent,
                  native_id=threading.get_native_id())


def _to_thread_init():
    name_this_thread("to_thread")
    events().emit("thread", native_id=threading.get_native_id(), name="to_thread",
                  role="worker")


def make_pool(fix):
    if fix != "process_pool":
        return None
    from concurrent.futures import ProcessPoolExecutor

    kwargs = {"max_workers": 1, "initializer": _pool_worker_init, "initargs": (os.getpid(),)}
    try:
        pool = ProcessPoolExecutor(mp_context=process_context(), **kwargs)
    except TypeError:  # very old interpreters: no mp_context
        pool = ProcessPoolExecutor(**kwargs)
    pool.submit(int).result()  # start the worker now, not inside the measurement
    return pool


async def main(params, out, pool):
    period = params["period_ms"] / 1000
    threshold = max(2 * period, 0.005)
    loop = asyncio.get_running_loop()
    if params["fix"] == "to_thread":
        from concurrent.futures import ThreadPoolExecutor

        loop.set_default_executor(ThreadPoolExecutor(1, initializer=_to_thread_init))
    clock = TickClock(out, period, threshold)
    clock.blamer = Blamer(clock, threading.get_ident(), threshold, out,
                          loop_codes=(run_on.__code__,))  # uvloop's idle frame
    watchdog = start_thread(clock.blamer.watch, "watchdog", "watchdog")
    out.emit("start", t0=time.monotonic(), period_ms=params["period_ms"],
             duration_s=params["duration_s"], threshold_ms=threshold * 1000,
             loop=params["loop"], fix=params["fix"], block=params["block"],
             block_ms=params["block_ms"])
    duration = params["duration_s"]
    count = params["blocks"]
    kernel_before = thread_stats()
    offsets = [duration * (i + 0.5) / count for i in range(count)]
    work = BLOCKS[params["block"]]
    clock.begin()
    await asyncio.gather(
        ticker(clock, period, duration),
        blocker(clock, work, params["block_ms"], params["fix"], offsets, pool),
    )
    clock.send_window(time.perf_counter())
    kernel_after = thread_stats()
    # The kernel's view of the loop thread meanwhile: time it was runnable but had no CPU
    # is lateness no event loop can avoid (a busy machine), so the result keeps it apart.
    clock.loop_thread = {k: round(kernel_after[k] - kernel_before[k], 6)
                         for k in ("cpu_s", "run_delay_s", "voluntary", "involuntary")
                         if k in kernel_after and k in kernel_before}
    clock.blamer.stop()
    watchdog.join()
    clock.meter.close()
    return clock


def run(params, out):
    sys.setswitchinterval(params["switch_interval_ms"] / 1000)
    pool = make_pool(params["fix"])  # before any thread exists: fork is safe
    try:
        clock = run_on(params["loop"], lambda: main(params, out, pool))
    finally:
        if pool is not None:
            pool.shutdown(wait=True)
    return summarise(params, clock)


def summarise(params, clock):
    # Ticks well away from any block: the loop's own lateness when nothing blocks it.
    quiet, during = [], []
    for t, lag in zip(clock.tick_times, clock.lags):
        (during if _inside(t, clock.blocks, clock.threshold) else quiet).append(lag)
    result = {
        "loop": params["loop"],
        "loop_class": loop_description(params["loop"]),
        "block": params["block"],
        "block_ms": params["block_ms"],
        "fix": params["fix"],
        "period_ms": params["period_ms"],
        "switch_interval_s": sys.getswitchinterval(),
        "ticks": len(clock.lags),
        "missed_ticks": clock.missed,
        "lag_ms": summary_ms(clock.lags),
        "lag_ms_quiet": summary_ms(quiet),
        "lag_ms_during_blocks": summary_ms(during),
        "lag_histogram": {"bucket_ms": 1, "counts": Histogram.of(clock.lags, 1.0).pairs()},
        "frozen_threshold_ms": round(clock.threshold * 1000, 3),
        "frozen_spans": clock.spans,
        "frozen_count": clock.span_count,
        "late_spans": clock.late_spans,
        "late_count": clock.late_count,
        "blocks": clock.blocks,
        "loop_thread": clock.loop_thread,
        "gil_enabled": gil_enabled(),
        "free_threaded": free_threaded(),
    }
    result["explanation"] = explain(result)
    result["verdict"] = verdict(result)
    return result


def verdict(result):
    """Read from the ticks' lateness while the blocking work ran (p99), against the
    block's length and the loop's lateness when nothing ran."""
    during = result["lag_ms_during_blocks"]
    quiet = result["lag_ms_quiet"]
    late, block = during["p99"], result["block_ms"]
    punctual = _punctual_ms(result)
    if not during["n"]:
        return {"says": "no tick fell inside a block", "figure": "lag_ms_during_blocks.p99",
                "value": None, "can_tell": False, "why": "no blocks ran, or no tick met one"}
    if late >= 0.5 * block:
        says = "the loop froze while the work ran (ticks %.0f ms late)" % late
    elif late > punctual:
        says = "the loop kept ticking, late (%.1f ms at p99), while the work ran" % late
    else:
        says = "the ticks stayed punctual while the work ran (%.1f ms at p99)" % late
    on_loop = result["fix"] == "none"
    gil_wait = result["fix"] == "to_thread" and result["block"] == "cpu"
    expected = {"gil": block if on_loop else (result["switch_interval_s"] * 1000 if gil_wait
                                              else round(quiet["p99"], 3)),
                "free_threaded": block if on_loop else round(quiet["p99"], 3)}
    found = {"says": says, "figure": "lag_ms_during_blocks.p99", "value": late,
             "expected": expected, "can_tell": True}
    waited = result["loop_thread"].get("run_delay_s", 0.0) * 1000
    if not on_loop and late > punctual and waited >= 0.5 * late:
        found["can_tell"] = False
        found["why"] = ("the loop thread waited %.1f ms for a CPU during the run: the lateness "
                        "may be the machine's, not the fix's" % waited)
    return found


def _punctual_ms(result):
    """Lateness while the work ran that still counts as the loop's usual: its p99 when
    nothing ran, with some slack (the quiet p99 comes from few ticks)."""
    return 1.5 * result["lag_ms_quiet"]["p99"] + 2.0


def _explain_cpu_thread(result):
    """to_thread with CPU work: under a GIL the loop thread waits for it at every return
    from the kernel; without one it needs only a CPU. The figures say which happened."""
    during = result["lag_ms_during_blocks"]
    interval = result["switch_interval_s"] * 1000
    waited = result["loop_thread"].get("run_delay_s", 0.0) * 1000
    head = ("The CPU work ran in a thread, so the loop kept ticking; while it ran ticks were "
            "%.1f ms late at p99 (max %.1f ms)." % (during["p99"], during["max"]))
    late = during["p99"] > _punctual_ms(result)
    if result["gil_enabled"] and late:
        return head + (" That is %.1f switch intervals of %.1f ms: the thread holds the GIL, and "
                       "each time the loop thread enters the kernel (epoll, a write) it lets go "
                       "and must wait for the GIL to come back." % (during["p99"] / interval,
                                                                     interval))
    if result["gil_enabled"]:
        return head + (" That is about as late as outside the blocks: the GIL could have held "
                       "the loop up to a switch interval (%.1f ms) each time, and this run it "
                       "came back sooner." % interval)
    cpu = (" The loop thread waited %.1f ms for a CPU over the run (its run_delay): with the "
           "worker and other programs on the CPUs, that is where the lateness came from."
           % waited if late and waited >= 0.5 * during["p99"] else "")
    if late and not cpu:
        cpu = (" The loop thread waited only %.1f ms for a CPU over the run, so the lateness "
               "is not explained by CPU shortage alone." % waited)
    return head + " On this free-threaded build the loop thread needs only a CPU, not a " \
                  "lock the worker holds." + cpu


def _inside(t, blocks, margin):
    return any(b["start_s"] - margin <= t <= b["end_s"] + margin for b in blocks)


def explain(result):
    lines = []
    lag = result["lag_ms"]
    spans = result["frozen_spans"]
    if result["fix"] == "none" and spans:
        worst = max(spans, key=lambda s: s["duration_ms"])
        where = worst.get("blamed") or "a line the watchdog did not catch"
        lines.append("The loop froze %d time(s); the longest span was %.0f ms, blamed on %s "
                     "(%s). While it ran, no other coroutine could." % (
                         result["frozen_count"], worst["duration_ms"], where,
                         worst.get("code") or "?"))
    elif result["fix"] == "to_thread" and result["block"] == "cpu":
        lines.append(_explain_cpu_thread(result))
    elif result["fix"] == "process_pool":
        whose = ", whose interpreter has its own GIL" if result["gil_enabled"] else ""
        lines.append("The work ran in another process%s; the loop's max lag was %.1f ms."
                     % (whose, lag["max"]))
    elif result["block"] == "sleep" and result["fix"] == "to_thread":
        why = ("time.sleep in a thread releases the GIL and needs no CPU" if result["gil_enabled"]
               else "time.sleep in a thread needs no CPU")
        lines.append("%s; the loop's max lag was %.1f ms." % (why, lag["max"]))
    quiet = result["lag_ms_quiet"]
    lines.append("Outside the blocks a tick was %.2f ms late at the median and %.2f ms at p99 "
                 "on %s." % (quiet["p50"], quiet["p99"], result["loop"]))
    if result["loop"] == "asyncio":
        lines.append("asyncio's selector rounds its wait up to whole milliseconds, so sleeps "
                     "tend to end up to 1 ms late.")
    return " ".join(lines)
