"""Slow motion for teaching: runs long enough to watch, measuring the same thing.

Only each experiment's *size* grows (how much work, how many round trips, how long it
runs), never what sets its figures (threads, switch interval, delays per request), so
ratios, rates and percentages stay comparable with a normal run. Work counted in loop
iterations is sized from this machine's measured loop rate, so each mode lasts about
SLOW_MODE_S here; sizes counted in seconds or round trips are stretched by FACTOR.
This is the one place that knows which parameter is an experiment's size.
"""

from __future__ import annotations

import functools
import time
from typing import Any

SLOW_MODE_S = 4.0  # each mode of a CPU-bound run lasts about this long in slow motion
FACTOR = 5.0  # sizes in seconds or in round trips are stretched this much

# experiment -> (size parameter, how it grows, parameter counting the tasks done in turn)
#   "loop":  iterations of gil-cpu's loop kind, sized from loop_rate() and the tasks
#   "times": multiplied by FACTOR
SIZES: dict[str, tuple[tuple[str, str, str | None], ...]] = {
    "gil-cpu": (("work", "loop", "tasks"),),
    "race": (("increments", "loop", "threads"),),
    "convoy": (("requests", "times", None),),
    "ctx-switch": (("messages", "times", None),),
    "io-bound": (("requests", "times", None),),
    "decision": (("seconds", "times", None),),
    "epoll": (("duration_s", "times", None),),
    "loop-freeze": (("duration_s", "times", None),),
}
RACE_COST = 4.0  # a race increment (read, add, write, sometimes a lock) vs one loop step


@functools.lru_cache(maxsize=1)
def loop_rate() -> float:
    """Iterations per CPU-second of gil-cpu's loop here: the best of a few short timings of
    the thread's own CPU time, so another program taking the CPU meanwhile does not count.
    (Timed in the lab's interpreter; a --python child may be somewhat faster or slower.)"""
    from workloads.gil_cpu import cpu_work

    best = float("inf")
    n = 100_000
    for _ in range(5):
        start = time.thread_time()
        cpu_work(n)
        best = min(best, time.thread_time() - start)
    return n / max(best, 1e-6)


def slowed(experiment: Any, params: dict[str, Any], rate: float | None = None) -> dict[str, Any]:
    """`params` with the experiment's size grown for slow motion (never shrunk), within
    each parameter's allowed range. `experiment` is a catalog.Experiment."""
    sizes = SIZES.get(experiment.name)
    if not sizes:
        return dict(params)
    out = dict(params)
    defaults = experiment.defaults()
    for name, how, tasks_param in sizes:
        param = experiment.param(name)
        value = out.get(name, defaults[name])
        if how == "loop":
            tasks = max(1, int(out.get(tasks_param, defaults.get(tasks_param, 1)) or 1))
            cost = RACE_COST if experiment.name == "race" else 1.0
            wanted = (rate or loop_rate()) * SLOW_MODE_S / tasks / cost
        else:
            wanted = value * FACTOR
        wanted = max(value, wanted)
        if param.maximum is not None:
            wanted = min(wanted, param.maximum)
        out[name] = int(wanted) if param.kind == "int" else round(float(wanted), 3)
    return out
