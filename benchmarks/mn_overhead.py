"""What the readable Python M:N runtime costs per scheduling step, beside asyncio's.

    python benchmarks/mn_overhead.py [--n 200000] [--ps 1]

Measures, in this interpreter (the runtime is standard library only, so any 3.9+ works):
  - spawn+run of an empty G (newproc, a pass through the run queue, goexit),
  - one gosched() round trip (to the global queue and back),
  - one bare yield point (sysmon's preemption check, nothing else),
and, for scale, asyncio's `await asyncio.sleep(0)` and an empty task.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from workloads._mn_runtime import Runtime, WaitGroup, gosched  # noqa: E402


def per_op(seconds, n):
    return seconds * 1e6 / n


def mn_spawn(n, ps):
    rt = Runtime(ps)

    def empty(wg):
        wg.done()
        return
        yield

    def main():
        wg = WaitGroup(rt, n)
        for _ in range(n):
            rt.go(empty, wg)
        yield wg.wait()

    start = time.perf_counter()
    rt.run(main, trace_every=1.0)
    return per_op(time.perf_counter() - start, n)


def mn_gosched(n, ps):
    rt = Runtime(ps)

    def main():
        for _ in range(n):
            yield gosched()

    start = time.perf_counter()
    rt.run(main, trace_every=1.0)
    return per_op(time.perf_counter() - start, n)


def mn_yield(n, ps):
    rt = Runtime(ps)

    def main():
        for _ in range(n):
            yield

    start = time.perf_counter()
    rt.run(main, trace_every=1.0)
    return per_op(time.perf_counter() - start, n)


def asyncio_sleep0(n):
    async def main():
        for _ in range(n):
            await asyncio.sleep(0)

    start = time.perf_counter()
    asyncio.run(main())
    return per_op(time.perf_counter() - start, n)


def asyncio_spawn(n):
    async def empty():
        pass

    async def main():
        await asyncio.gather(*[asyncio.ensure_future(empty()) for _ in range(n)])

    start = time.perf_counter()
    asyncio.run(main())
    return per_op(time.perf_counter() - start, n)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--ps", type=int, default=1)
    args = parser.parse_args(argv)
    print("CPython %s, ps=%d, n=%d" % (sys.version.split()[0], args.ps, args.n))
    rows = (
        ("M:N runtime: spawn+run an empty G", mn_spawn(args.n, args.ps)),
        ("M:N runtime: gosched() round trip", mn_gosched(args.n, args.ps)),
        ("M:N runtime: bare yield point", mn_yield(args.n, args.ps)),
        ("asyncio: spawn+run an empty task", asyncio_spawn(args.n)),
        ("asyncio: await sleep(0)", asyncio_sleep0(args.n)),
    )
    for label, us in rows:
        print("%-38s %8.3f µs" % (label, us))


if __name__ == "__main__":
    main()
