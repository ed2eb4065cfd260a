"""Real Go beside the Python runtime: the build, the schedtrace reading, the same shapes,
and a Go process that never outlives the lab. Skipped (with the reason) without `go`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from tests.helpers import ROOT, alive, run_json, skip_if_busy, wait_for
from workloads import _go

SMALL = ("gs=300", "ps=2", "work_ms=1.5", "block_fraction=0.25", "block_ms=60")
needs_go = pytest.mark.skipif(_go.find_go() is None,
                              reason="no `go` command here: " + _go.HOW_TO_GET)

# What Go 1.19 prints with GODEBUG=schedtrace=100,scheddetail=1 (trimmed).
TRACE = """\
SCHED 203ms: gomaxprocs=2 idleprocs=0 threads=11 spinningthreads=0 idlethreads=5 runqueue=134 gcwaiting=0 nmidlelocked=0 stopwait=0 sysmonwait=0
  P0: status=2 schedtick=313 syscalltick=19 m=-1 runqsize=93 gfreecnt=31 timerslen=1
  P1: status=1 schedtick=166 syscalltick=33 m=7 runqsize=107 gfreecnt=30 timerslen=0
  M7: p=1 curg=79 mallocing=0 throwing=0 preemptoff= locks=0 dying=0 spinning=false blocked=false lockedg=-1
  M6: p=-1 curg=82 mallocing=0 throwing=0 preemptoff= locks=0 dying=0 spinning=false blocked=false lockedg=-1
  M5: p=-1 curg=326 mallocing=0 throwing=0 preemptoff= locks=0 dying=0 spinning=false blocked=false lockedg=-1
  M4: p=-1 curg=86 mallocing=0 throwing=0 preemptoff= locks=0 dying=0 spinning=false blocked=false lockedg=-1
  M3: p=-1 curg=-1 mallocing=0 throwing=0 preemptoff= locks=0 dying=0 spinning=false blocked=true lockedg=-1
  M1: p=-1 curg=-1 mallocing=0 throwing=0 preemptoff= locks=2 dying=0 spinning=false blocked=false lockedg=-1
  G1: status=4(semacquire) m=-1 lockedm=-1
  G2: status=4(force gc (idle)) m=-1 lockedm=-1
  G79: status=2() m=7 lockedm=-1
  G82: status=3() m=6 lockedm=-1
  G86: status=3() m=4 lockedm=-1
  G326: status=3() m=5 lockedm=-1
  G400: status=1() m=-1 lockedm=-1
SCHED 306ms: gomaxprocs=2 idleprocs=0 threads=11 spinningthreads=0 idlethreads=3 runqueue=0 [0 0]
"""


def test_schedtrace_is_read_into_the_python_runtimes_shape():
    parser = _go.SchedTrace()
    snapshots = [s for s in map(parser.feed, TRACE.splitlines()) if s] + [parser.finish()]
    assert len(snapshots) == 2
    first, second = snapshots
    assert first["gomaxprocs"] == 2 and first["threads"] == 11 and first["global_runq"] == 134
    assert [p["runq"] for p in first["ps"]] == [93, 107]
    assert [p["status"] for p in first["ps"]] == ["syscall", "running"]
    states = {m["id"]: m["state"] for m in first["ms"]}
    assert states == {1: "other", 3: "idle", 4: "syscall", 5: "syscall", 6: "syscall",
                      7: "running"}
    # runtime Gs (force gc) are left out; main's semacquire wait is the program's
    assert first["gs"] == {"runnable": 1, "running": 1, "syscall": 3, "waiting": 1}
    # three Ms in syscalls, one P still reserved for one of them: two lost their P
    assert first["handoffs"] == 2
    # without scheddetail only the queues are known
    assert second["ms"] is None and [p["runq"] for p in second["ps"]] == [0, 0]
    assert second["steals"] is None


@needs_go
def test_the_program_is_built_once_into_the_cache():
    first = _go.build()
    stamp = os.stat(first).st_mtime_ns
    assert _go.build() == first and os.stat(first).st_mtime_ns == stamp
    assert first.startswith(_go.cache_root())


@pytest.mark.timing
@needs_go
def test_go_runtime_headless_result():
    record = run_json("goroutines", "runtime=go", *SMALL)
    skip_if_busy(record)
    r = record["result"]
    assert r["runtime"] == "go" and r["gs"] == 300 and r["ps"] == 2
    assert r["completed_once"] == 300 and r["completed_twice"] == 0 and r["never_completed"] == 0
    assert r["threads_exceeded_ps"] and r["max_busy_ms"] > 2 and r["max_threads"] > 2
    assert r["handoffs"] > 0
    assert r["queues_drained"]
    assert r["steals"] is None and r["steals_note"]
    assert r["spawn_us_per_g"] > 0 and r["bytes_per_g"] > 0


@pytest.mark.timing
@needs_go
def test_python_and_go_traces_agree_in_shape():
    """Same workload, both runtimes: more busy Ms than Ps while Gs block, queues that fill
    when the gate opens, then drain."""
    records = {rt: run_json("goroutines", "runtime=" + rt, *SMALL) for rt in ("python", "go")}
    for record in records.values():
        skip_if_busy(record)
    results = {rt: record["result"] for rt, record in records.items()}
    for runtime, r in results.items():
        assert r["completed_once"] == 300, runtime
        assert r["threads_exceeded_ps"], runtime
        assert r["max_busy_ms"] > r["ps"], runtime
        assert r["max_global_runq"] + r["max_local_runq"] > 0, runtime
        assert r["queues_drained"], runtime
        assert r["trace_snapshots"] >= 2, runtime


# A Python parent that starts the Go program quietly (no trace, no progress: nothing to
# write that would fail with SIGPIPE once we are gone), prints its pid, and waits.
PARENT = """
import sys, time
from workloads import _go
proc = _go.start(sys.argv[1], ["-gs", 4, "-ps", 1, "-work", 0, "-block-fraction", 1,
                               "-block-ms", 20000, "-progress-ms", 0], schedtrace_ms=0)
print(proc.pid, flush=True)
time.sleep(60)
"""


@needs_go
def test_the_go_process_dies_with_its_parent():
    binary = _go.build()
    parent = subprocess.Popen([sys.executable, "-c", PARENT, binary], stdout=subprocess.PIPE,
                              text=True, cwd=ROOT, stdin=subprocess.DEVNULL)
    try:
        go_pid = int(parent.stdout.readline())
        assert alive([go_pid])
        parent.kill()  # SIGKILL: no cleanup code runs; only the kernel's death signal
        parent.wait()
        wait_for(lambda: not alive([go_pid]), 3.0, "the Go process to die with its parent")
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        if "go_pid" in locals():
            if alive([go_pid]):  # the test failed: do not leave it behind
                os.kill(go_pid, signal.SIGKILL)
            try:
                os.waitpid(go_pid, os.WNOHANG)  # reap it if it came to us (a subreaper)
            except ChildProcessError:
                pass
