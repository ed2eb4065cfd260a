"""The runner's promises: timeouts, stops, crashes and garbage are reported; nothing outlives a run."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap

import psutil
import pytest

from lab.core.runner import Run, RunRequest, prepare, run_experiment
from tests.helpers import ROOT, alive, wait_for, wait_until


def selftest(behave: str, **params) -> Run:
    return Run(prepare(RunRequest("selftest", {"behave": behave, **params},
                                  timeout_s=params.pop("timeout_s", None))))


def descendants(pid: int) -> list[int]:
    try:
        return [p.pid for p in psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


async def test_a_clean_run_reports_hello_threads_and_result():
    state = await run_experiment(RunRequest("selftest", {"behave": "ok", "seconds": 0.3}))
    assert state.status == "done", state.error
    assert state.result == {"behaved": "ok"}
    assert state.hello["python"]["executable"]
    spinner = [t for t in state.threads.values() if t.name == "spinner"]
    assert spinner and spinner[0].final and spinner[0].cpu_s > 0.2


async def test_a_crash_is_reported_with_its_message():
    state = await run_experiment(RunRequest("selftest", {"behave": "crash"}))
    assert state.status == "failed"
    assert "crashed on purpose" in state.error


async def test_a_silent_exit_is_reported():
    state = await run_experiment(RunRequest("selftest", {"behave": "exit"}))
    assert state.status == "failed"
    assert "code 7" in state.error


async def test_garbage_on_the_event_channel_is_counted_not_fatal():
    state = await run_experiment(RunRequest("selftest", {"behave": "garbage"}))
    assert state.status == "done"
    assert state.garbage_lines >= 2


async def test_a_stray_print_stays_out_of_the_events():
    state = await run_experiment(RunRequest("selftest", {"behave": "print"}))
    assert state.status == "done"
    assert state.garbage_lines == 0
    assert any("stray print" in line for line in state.stderr_tail)


async def test_the_watchdog_stops_a_hung_child_and_its_workers():
    run = Run(prepare(RunRequest("selftest", {"behave": "spawn", "workers": 2}, timeout_s=1.5)))
    await run.start()
    await wait_until(lambda: "spawned" in run.state.last, 10, "workers to start")
    pids = [run.state.pid] + descendants(run.state.pid)
    assert len(pids) >= 3
    state = await run.wait()
    assert state.status == "timeout"
    assert "watchdog" in state.error
    assert alive(pids) == []


async def test_stop_ends_a_run_and_reaps_everything():
    run = selftest("spawn", workers=3)
    await run.start()
    await wait_until(lambda: "spawned" in run.state.last, 10, "workers to start")
    pids = [run.state.pid] + descendants(run.state.pid)
    await run.stop()
    state = await run.wait()
    assert state.status == "stopped"
    assert alive(pids) == []


async def test_several_runs_at_once():
    runs = [selftest("ok", seconds=0.2) for _ in range(3)]
    states = await asyncio.gather(*(r.run() for r in runs))
    assert [s.status for s in states] == ["done"] * 3
    assert len({s.pid for s in states}) == 3


async def test_the_sampler_sees_named_threads_and_their_cpu():
    state = await run_experiment(RunRequest("selftest", {"behave": "ok", "seconds": 1.0},
                                            sample_interval_s=0.1))
    assert state.sampler_source in ("schedstat", "psutil")
    assert state.samples >= 3
    spinner = next(t for t in state.threads.values() if t.name == "spinner")
    assert spinner.role == "worker"
    assert 0.8 < spinner.cpu_s < 1.5


PARENT = textwrap.dedent("""
    import sys
    from lab.cli.parser import main
    sys.exit(main(["run", "selftest", "-p", "behave=spawn", "-p", "workers=2", "--timeout", "60"]))
""")


@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM", "SIGHUP"])
def test_no_descendant_survives_the_lab(how):
    """Even kill -9 of the lab leaves nothing: each level has its own death signal."""
    parent = subprocess.Popen([sys.executable, "-c", PARENT], cwd=ROOT, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        # The child, its two worker processes: wait until all three exist.
        pids = wait_for(lambda: (lambda d: d if len(d) >= 3 else None)(descendants(parent.pid)),
                        20, "the lab's child and its workers")
        os.kill(parent.pid, getattr(signal, how))
        parent.wait(timeout=10)
        wait_for(lambda: alive(pids) == [], 2.0, "every descendant to die after %s" % how)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
