"""The cheap end of the cost ladder: switches that never leave the interpreter.

A generator resume is a function-call-sized jump back into a suspended frame. An
asyncio task switch goes through the event loop: the task yields, the loop picks the
next ready callback, and resumes that task. uvloop runs the same loop in C. None of
them asks the kernel for anything, which is why they sit far below a thread switch.
"""

from __future__ import annotations

import asyncio
import time


def generator_resume_ns(resumes):
    """Nanoseconds per `next()` into a suspended generator."""

    def suspended():
        while True:
            yield

    gen = suspended()
    next(gen)
    started = time.perf_counter()
    for _ in range(resumes):
        next(gen)
    return (time.perf_counter() - started) / resumes * 1e9


async def _two_tasks(switches_each):
    async def task():
        for _ in range(switches_each):
            await asyncio.sleep(0)  # hand the loop to the other task

    started = time.perf_counter()
    await asyncio.gather(task(), task())
    return time.perf_counter() - started


def task_switch_ns(new_loop, switches):
    """Nanoseconds per hand-off between two tasks that take turns on one loop."""
    loop = new_loop()
    try:
        elapsed = loop.run_until_complete(_two_tasks(switches // 2))
    finally:
        loop.close()
    return elapsed / (2 * (switches // 2)) * 1e9


def asyncio_switch_ns(switches):
    return task_switch_ns(asyncio.new_event_loop, switches)


def uvloop_switch_ns(switches):
    """The same hand-off on uvloop; raises ImportError where this interpreter lacks it."""
    import uvloop  # optional: only where the child's interpreter has it

    return task_switch_ns(uvloop.new_event_loop, switches)
