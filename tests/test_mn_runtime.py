"""The Python M:N runtime, in this process: Gs complete exactly once, blocked Ms lose their
P to new Ms, idle Ps steal, sysmon preempts, and nothing is left running afterwards."""

from __future__ import annotations

import os
import threading
import time

import pytest

from workloads._mn_runtime import LOCAL_RUNQ, Runtime, WaitGroup, gosched, syscall

UNBLOCK_AFTER_S = 5.0  # the failure path of the liveness tests: give up, then assert


def spin(n):
    for start in range(0, n, 500):
        for _ in range(start, min(n, start + 500)):
            pass
        yield


def busy_ms(snapshot):
    return sum(1 for m in snapshot["ms"] if m["state"] in ("running", "syscall"))


def run_program(ps, gs, work, blocks=lambda i: False, block_s=0.03):
    """Main spawns `gs` Gs from P0 behind a gate, opens it, waits for all."""
    rt = Runtime(ps)
    completed = [0] * gs
    snapshots = []

    def worker(i, gate, finished):
        yield gate.wait()
        yield from spin(work)
        if blocks(i):
            yield syscall(time.sleep, block_s)
        yield from spin(work)
        completed[i] += 1
        finished.done()

    def main():
        gate, finished = WaitGroup(rt, 1), WaitGroup(rt, gs)
        for i in range(gs):
            rt.go(worker, i, gate, finished)
        gate.done()
        yield finished.wait()

    rt.run(main, trace=snapshots.append, trace_every=0.01)
    return rt, completed, snapshots


def test_every_g_completes_exactly_once_and_the_queues_drain():
    rt, completed, snapshots = run_program(ps=3, gs=600, work=2000, blocks=lambda i: i % 7 == 0)
    assert completed == [1] * 600
    final = rt.schedtrace()
    assert final["gs_done"] == final["gs_created"] == 600  # main (G1) is not counted
    last = snapshots[-1]
    assert last["global_runq"] == 0 and all(p["runq"] == 0 and not p["runnext"]
                                            for p in last["ps"])
    assert max(s["global_runq"] for s in snapshots) > 0  # 600 > 256: the overflow went global


@pytest.mark.timing
def test_blocking_gs_make_more_busy_threads_than_ps():
    rt, completed, snapshots = run_program(ps=2, gs=60, work=500, blocks=lambda i: i % 2 == 0,
                                           block_s=0.05)
    assert completed == [1] * 60
    assert max(busy_ms(s) for s in snapshots) > 2
    assert len(rt.allm) > 2 and rt.handoffs > 0


def test_without_blocking_no_more_ms_run_gs_than_there_are_ps():
    rt, completed, snapshots = run_program(ps=2, gs=200, work=3000)
    assert completed == [1] * 200
    assert rt.handoffs == 0
    assert all(busy_ms(s) <= 2 for s in snapshots)


def test_idle_ps_steal_from_the_p_that_readied_every_g():
    # 200 Gs fit P0's local queue (256), so the other Ps can only get work by stealing.
    rt, completed, _ = run_program(ps=4, gs=200, work=2000)
    assert 200 <= LOCAL_RUNQ
    assert completed == [1] * 200
    assert rt.steals > 0 and rt.stolen_gs >= rt.steals


def test_a_blocked_m_hands_its_p_over_so_the_g_that_unblocks_it_can_run():
    """One P. G1 reads a pipe (its M blocks in the kernel); G2, queued on the same P, is the
    writer. Only sysmon's hand-off lets G2 run; without it the read would wait for the
    watchdog's byte."""
    rt = Runtime(1)
    r, w = os.pipe()
    got = []
    watchdog = threading.Timer(UNBLOCK_AFTER_S, os.write, (w, b"w"))
    watchdog.start()

    def reader(finished):
        got.append((yield syscall(os.read, r, 1)))
        finished.done()

    def writer(finished):
        yield from spin(1000)
        yield syscall(os.write, w, b"g")
        finished.done()

    def main():
        finished = WaitGroup(rt, 2)
        rt.go(writer, finished)
        rt.go(reader, finished)  # runnext: runs first, blocks the only M
        yield finished.wait()

    try:
        rt.run(main)
    finally:
        watchdog.cancel()
        os.close(r)
        os.close(w)
    assert got == [b"g"]
    assert rt.handoffs >= 1 and len(rt.allm) >= 2


@pytest.mark.timing
def test_sysmon_preempts_a_g_that_never_gives_up_its_p():
    """One P. The hog only yields at yield points and never gosched()s; the other G can only
    run if sysmon asks the hog to yield."""
    rt = Runtime(1)
    flag = []

    def hog(finished):
        deadline = time.monotonic() + UNBLOCK_AFTER_S
        while not flag and time.monotonic() < deadline:
            yield  # a yield point, nothing more
        finished.done()

    def setter(finished):
        flag.append(True)
        finished.done()

    def main():
        finished = WaitGroup(rt, 2)
        rt.go(setter, finished)
        rt.go(hog, finished)  # runnext: the hog runs first
        yield finished.wait()

    started = time.monotonic()
    rt.run(main)
    assert flag == [True]
    assert rt.preemptions >= 1
    assert time.monotonic() - started < UNBLOCK_AFTER_S


def test_gosched_and_plain_functions_and_errors():
    rt = Runtime(2)
    seen = []

    def polite():
        seen.append("before")
        yield gosched()
        seen.append("after")

    def plain(x):
        seen.append(x)

    def broken():
        yield
        raise ValueError("boom")

    def failing_syscall():
        try:
            yield syscall(os.read, -1, 1)
        except OSError:
            seen.append("EBADF")

    def main():
        for fn, args in ((polite, ()), (plain, ("plain",)), (broken, ()), (failing_syscall, ())):
            rt.go(fn, *args)
        while rt.gs_done < 4:
            yield gosched()

    rt.run(main)
    assert sorted(seen) == ["EBADF", "after", "before", "plain"]


def test_no_thread_is_left_behind():
    before = set(threading.enumerate())
    rt, completed, _ = run_program(ps=2, gs=40, work=100, blocks=lambda i: i % 4 == 0)
    assert completed == [1] * 40
    left = [t for t in threading.enumerate() if t not in before and t.is_alive()]
    assert left == []
    assert all(m.exited for m in rt.allm)


@pytest.mark.parametrize("ps", [1, 2, 5])
def test_ps_count_bounds_the_gs_running_at_once(ps):
    rt, completed, snapshots = run_program(ps=ps, gs=100, work=2000)
    assert completed == [1] * 100
    assert all(sum(1 for p in s["ps"] if p["status"] == "running") <= ps for s in snapshots)
    assert all(busy_ms(s) <= ps for s in snapshots)
