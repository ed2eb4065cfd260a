"""deadlock in real children: the cycle is caught within a second with every thread in it
and the line each waits on; the child ends itself; both fixes complete."""

from __future__ import annotations

import threading

import pytest

from tests.helpers import interpreter, run_json, skip_if_busy, workload_processes
from workloads._locks import LockGraph, TrackedLock, find_cycle


@pytest.fixture(scope="module")
def two_threads():
    return run_json("deadlock", timeout=60)


@pytest.mark.timing
def test_the_deadlock_is_caught_within_a_second_with_both_threads_in_the_cycle(two_threads):
    result = two_threads["result"]
    assert result["deadlocked"] is True and result["completed"] is False
    skip_if_busy(two_threads)  # only the detection time is a timing
    assert result["detected_after_ms"] < 1000
    cycle = result["cycle"]
    assert {c["thread"] for c in cycle} == {"worker-1", "worker-2"}
    holds = {c["thread"]: c["holds"] for c in cycle}
    wants = {c["thread"]: c["waits_for"] for c in cycle}
    assert holds == {"worker-1": ["lock-A"], "worker-2": ["lock-B"]}
    assert wants == {"worker-1": "lock-B", "worker-2": "lock-A"}  # opposite order


def test_each_blocked_thread_is_shown_on_the_line_where_it_waits(two_threads):
    stacks = two_threads["result"]["stacks"]
    assert set(stacks) == {"worker-1", "worker-2"}
    for thread, frames in stacks.items():
        own = [f for f in frames if f.startswith("deadlock.py:")]
        assert own and "with second" in own[-1], (thread, frames)


def test_the_child_ends_itself_rather_than_waiting_for_the_watchdog(two_threads):
    assert two_threads["status"] == "done"  # not "timeout": the experiment stopped itself
    assert two_threads["duration_s"] < 10


def test_a_ring_of_four_is_one_cycle_through_every_thread():
    result = run_json("deadlock", "threads=4", "hold_ms=30", timeout=60)["result"]
    assert result["deadlocked"]
    cycle = result["cycle"]
    assert len(cycle) == 4
    for step, following in zip(cycle, cycle[1:] + cycle[:1]):
        assert step["held_by"] == following["thread"]


def test_ordered_locking_completes_every_round():
    result = run_json("deadlock", "fix=ordered", "threads=3", "hold_ms=2", "rounds=20",
                      timeout=60)["result"]
    assert result["deadlocked"] is False and result["completed"] is True
    assert result["rounds"] == {"worker-1": 20, "worker-2": 20, "worker-3": 20}


def test_timeout_and_back_off_completes_and_counts_its_retries():
    result = run_json("deadlock", "fix=timeout", "hold_ms=20", "timeout_ms=5", "rounds=5",
                      timeout=60)["result"]
    assert result["completed"] is True and result["deadlocked"] is False
    assert result["rounds"] == {"worker-1": 5, "worker-2": 5}
    assert result["retries"] >= 1


def test_nothing_is_left_running_after_a_deadlocked_run():
    from tests.helpers import conlab, new_tag

    tag = new_tag()
    done = conlab("run", "deadlock", "--json", env={"CONLAB_TEST_TAG": tag}, timeout=60)
    assert done.returncode == 0, done.stderr
    assert workload_processes(tag) == []


def test_runs_on_python_39():
    py39 = interpreter("3.9")
    if py39 is None:
        pytest.skip("no CPython 3.9 on this machine (pyenv)")
    record = run_json("deadlock", "threads=3", python=py39, timeout=60)
    assert record["interpreter"]["version"].startswith("3.9")
    assert record["result"]["deadlocked"] and len(record["result"]["cycle"]) == 3
    fixed = run_json("deadlock", "fix=ordered", "hold_ms=1", python=py39, timeout=60)
    assert fixed["result"]["completed"]


# The graph logic itself, in-process -------------------------------------------------------


def test_a_wait_on_a_free_lock_is_no_edge_and_a_cycle_needs_every_edge():
    graph = LockGraph()
    a, b = TrackedLock("A", graph), TrackedLock("B", graph)
    got = threading.Event()

    def take_a():
        a.acquire()
        got.set()

    t = threading.Thread(target=take_a, name="t1")
    t.start()
    got.wait(5)
    t.join(5)
    owner, waiting = graph.snapshot()
    assert owner == {"A": "t1"}
    assert find_cycle(owner, {"t2": ("A", 0.0, None)}) == []  # t2 waits on t1: a chain
    ring = {"t1": ("B", 0.0, None), "t2": ("A", 0.0, None)}
    assert find_cycle({"A": "t1", "B": "t2"}, ring) == [("t1", "B", "t2"), ("t2", "A", "t1")]
    a.release()
    assert graph.snapshot()[0] == {}
    assert b.acquire(timeout=0.01) and graph.snapshot()[0] == {"B": threading.current_thread().name}
    b.release()


def test_a_fix_that_could_not_finish_in_time_is_refused_naming_rounds():
    from lab.core.runner import Refused, RunRequest, prepare

    with pytest.raises(Refused) as refused:
        prepare(RunRequest("deadlock", {"fix": "ordered", "rounds": 1000, "hold_ms": 50.0}))
    assert "'rounds'" in str(refused.value) and "at most 300 rounds" in str(refused.value)
