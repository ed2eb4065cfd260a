"""Reading GIL timeline segments: (tid, start_ns, end_ns, kind), kind run | cpu | gil.

Pure functions over the segments a RunState keeps, for the view, the tests and the
benchmark. A child cuts a long run segment into pieces (so it is seen while it lasts);
pieces that touch are one run here. A hold is one merged run of one thread between two
waits for the GIL of its own (a thread's first and last runs are not holds; a wait for a
CPU alone does not end one: preempted, the thread kept the GIL).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Iterable

Segment = tuple  # (tid, start_ns, end_ns, kind)


def by_thread(segments: Iterable[Segment]) -> dict[int, list[Segment]]:
    """Each thread's segments in time order."""
    threads: dict[int, list[Segment]] = defaultdict(list)
    for segment in segments:
        threads[segment[0]].append(segment)
    for items in threads.values():
        items.sort(key=lambda s: s[1])
    return dict(threads)


def runs(items: list[Segment]) -> list[tuple[int, int, bool]]:
    """One thread's holds: run pieces merged where they touch or where only a wait for a
    CPU lies between (preempted, it kept the GIL): (start, end, after_a_gil_wait)."""
    merged: list[list] = []
    waited = preempted = False
    for _tid, start, end, kind in items:
        if kind == "gil":
            waited = True
            continue
        if kind == "cpu":
            preempted = True
            continue
        if merged and not waited and (preempted or start - merged[-1][1] <= 1000):
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end, waited and bool(merged)])
        waited = preempted = False
    return [(a, b, w) for a, b, w in merged]


def holds_ns(segments: Iterable[Segment]) -> list[int]:
    """Every hold: a thread's runs between two waits of its own."""
    out = []
    for items in by_thread(segments).values():
        periods = runs(items)
        for start, end, after_wait in periods[1:-1]:
            if after_wait:
                out.append(end - start)
    return out


def handoffs(segments: Iterable[Segment]) -> int:
    """Runs that began after the thread waited for the GIL: each one took it back."""
    return sum(1 for items in by_thread(segments).values()
               for _s, _e, after_wait in runs(items) if after_wait)


def percentile(values: list, q: float):
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def overlap_share(segments: Iterable[Segment]) -> float | None:
    """Of the time at least one thread ran bytecode, the share two or more ran at once
    (under a GIL: close to 0; free-threaded with CPUs to spare: large)."""
    edges = []
    for _tid, start, end, kind in segments:
        if kind == "run" and end > start:
            edges.append((start, 1))
            edges.append((end, -1))
    if not edges:
        return None
    edges.sort()
    running, last, any_run, both = 0, edges[0][0], 0, 0
    for at, step in edges:
        if running >= 1:
            any_run += at - last
        if running >= 2:
            both += at - last
        running += step
        last = at
    return both / any_run if any_run else None


def span(segments: Iterable[Segment]) -> tuple[int, int] | None:
    first = last = None
    for _tid, start, end, _kind in segments:
        first = start if first is None else min(first, start)
        last = end if last is None else max(last, end)
    return None if first is None else (first, last)


def clip(segments: Iterable[Segment], start: int, end: int) -> list[Segment]:
    """The segments inside [start, end), cut at its edges."""
    return [(t, max(s, start), min(e, end), k) for t, s, e, k in segments
            if e > start and s < end]


def cell_kinds(items: list[Segment], start: int, end: int, width: int) -> list[str | None]:
    """One thread's window in `width` cells: what took most of each cell's time (run,
    cpu, gil), or None where mostly nothing was recorded (asleep otherwise, not started)."""
    width = max(1, width)
    cell = max(1, (end - start)) / width
    cover = [{"run": 0.0, "cpu": 0.0, "gil": 0.0} for _ in range(width)]
    for _tid, s, e, kind in items:
        s, e = max(s, start), min(e, end)
        if e <= s:
            continue
        first, last = int((s - start) / cell), min(width - 1, int((e - start) / cell))
        for x in range(first, last + 1):
            lo, hi = start + x * cell, start + (x + 1) * cell
            cover[x][kind] += max(0.0, min(e, hi) - max(s, lo))
    out: list[str | None] = []
    for c in cover:
        kind = max(c, key=c.get)
        empty = cell - sum(c.values())
        out.append(kind if c[kind] > 0 and c[kind] >= empty else None)
    return out


def window_figures(segments: list[Segment], start: int, end: int) -> dict:
    """Hand-offs per second, holds and overlap inside one window."""
    inside = clip(segments, start, end)
    holds = [h / 1e6 for h in holds_ns(inside)]
    seconds = max(1, end - start) / 1e9
    return {"handoffs_per_s": handoffs(inside) / seconds,
            "hold_ms": {"p50": percentile(holds, 0.5), "p95": percentile(holds, 0.95),
                        "count": len(holds)},
            "overlap": overlap_share(inside)}
