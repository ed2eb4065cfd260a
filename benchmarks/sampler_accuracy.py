"""How close is the sampler's per-thread CPU share to the truth?

The truth: each thread's own CPU clock (pthread_getcpuclockid), read inside the child
every 50 ms and reported over the protocol. The sampler: /proc/PID/task/TID/schedstat,
read by the lab every 250 ms. For every sampler interval and every busy thread we compare
the CPU share the sampler saw with the share the thread's clock gives over the same
instants (the clock is interpolated linearly between its reports).

Goal: within 2 percentage points per 250 ms sample.

    python benchmarks/sampler_accuracy.py [--seconds 6] [--interval 0.25]
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lab.core.runner import Run, RunRequest, prepare  # noqa: E402


def interpolate(series: list[tuple[float, float]], ts: float) -> float | None:
    times = [t for t, _ in series]
    i = bisect.bisect_left(times, ts)
    if i == 0 or i >= len(series):
        return None
    (t0, v0), (t1, v1) = series[i - 1], series[i]
    return v0 + (v1 - v0) * (ts - t0) / (t1 - t0)


async def measure(seconds: float, interval: float) -> dict:
    # Two GIL-bound threads for a few seconds: shares near 50 % that move all the time.
    work = int(seconds * 12_000_000)
    prepared = prepare(RunRequest("gil-cpu", {"work": work, "tasks": 2, "modes": "threads"},
                                  sample_interval_s=interval, cpu_clocks_s=0.05))
    run = Run(prepared)
    samples: list[tuple[float, dict[int, float]]] = []
    clocks: dict[int, list[tuple[float, float]]] = {}

    apply_sample, apply_event = run.state.apply_sample, run.state.apply_event

    def on_sample(sample):
        samples.append((sample.ts, {tid: t.cpu_s for tid, t in sample.threads.items()}))
        apply_sample(sample)

    def on_event(event):
        if event.get("ev") == "cpu_clocks":
            for tid, value in event["clocks"].items():
                clocks.setdefault(int(tid), []).append((event.get("at", event["ts"]), value))
        apply_event(event)

    run.state.apply_sample, run.state.apply_event = on_sample, on_event
    state = await run.run()
    assert state.status == "done", state.error

    workers = {t.tid for t in state.threads.values() if t.name.startswith("cpu-")}
    errors = []
    for (t0, before), (t1, after) in zip(samples, samples[1:]):
        for tid in workers:
            if tid not in before or tid not in after or tid not in clocks:
                continue
            c0, c1 = interpolate(clocks[tid], t0), interpolate(clocks[tid], t1)
            if c0 is None or c1 is None:
                continue
            sampled = (after[tid] - before[tid]) / (t1 - t0)
            truth = (c1 - c0) / (t1 - t0)
            errors.append(abs(sampled - truth) * 100)
    return {
        "intervals": len(errors),
        "median_pp": statistics.median(errors) if errors else None,
        "p95_pp": sorted(errors)[int(0.95 * (len(errors) - 1))] if errors else None,
        "max_pp": max(errors) if errors else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--interval", type=float, default=0.25)
    args = parser.parse_args()
    result = asyncio.run(measure(args.seconds, args.interval))
    print("sampler vs thread CPU clocks, %d thread-intervals of %.0f ms:"
          % (result["intervals"], args.interval * 1000))
    print("  error median %.2f pp, p95 %.2f pp, max %.2f pp (goal: within 2 pp)"
          % (result["median_pp"], result["p95_pp"], result["max_pp"]))


if __name__ == "__main__":
    main()
