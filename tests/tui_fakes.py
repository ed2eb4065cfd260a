"""Fakes for the TUI tests: a Run that starts no child, and synthetic RunStates.

Pilot and snapshot tests draw from these so they are quick and deterministic (no
children, no clocks); the smoke test uses real children.
"""

from __future__ import annotations

import asyncio
import time

from lab.tui.live import RunController
from lab.core.state import RunState, ThreadView

MACHINE = "CPython 3.11.7 (GIL on) · 2 CPUs"


class FrozenState(RunState):
    """A RunState whose clock is stopped: the pane's `RUNNING 2 s` never changes."""

    frozen_duration = 2.0

    @property
    def duration_s(self) -> float:  # type: ignore[override]
        return self.frozen_duration


class FakeRun:
    """Quacks like lab.core.runner.Run; a test ends it with finish() or the app with stop()."""

    instances: list["FakeRun"] = []

    def __init__(self, prepared) -> None:
        self.prepared = prepared
        self.state = RunState(experiment=prepared.experiment.name, params=prepared.params,
                              python=prepared.interpreter.path)
        self._end = asyncio.Event()
        self.stop_calls = 0
        FakeRun.instances.append(self)

    async def start(self) -> None:
        self.state.status = "running"
        self.state.started_at = time.monotonic()
        self.state.version += 1

    async def wait(self) -> RunState:
        await self._end.wait()
        state = self.state
        state.ended_at = time.monotonic()
        if self.stop_calls:
            state.status, state.error = "stopped", "stopped"
        else:
            state.status = "done"
        state.version += 1
        return state

    async def stop(self, reason: str = "stopped") -> None:
        self.stop_calls += 1
        self._end.set()

    def finish(self, result: dict) -> None:
        self.state.result = result
        self._end.set()


def fake_controller() -> RunController:
    FakeRun.instances = []
    return RunController(run_factory=FakeRun, save_records=False)


def _thread(state: RunState, pid: int, tid: int, name: str, cpu: float, wait: float,
            vol: float, alive: bool = True) -> None:
    state.threads[tid] = ThreadView(pid=pid, tid=tid, name=name, cpu_share=cpu,
                                    wait_share=wait, voluntary_rate=vol, alive=alive,
                                    cpu_s=1.25, voluntary=120)


def _hello(state: RunState, pid: int) -> None:
    state.apply_event({"ev": "hello", "pid": pid, "ts": 1.0,
                       "python": {"gil_enabled": True, "version": "3.11.7"}})


def gil_state() -> RunState:
    """gil-cpu in its threads phase: sequential done, two threads sharing the GIL."""
    state = FrozenState(experiment="gil-cpu", python="python",
                        params={"work": 12_000_000, "tasks": 2, "switch_interval_ms": 5.0,
                                "modes": "all"})
    state.pid, state.status = 4242, "running"
    _hello(state, 4242)
    for event in (
        {"ev": "phase", "mode": "sequential", "state": "start", "tasks": 2},
        {"ev": "phase", "mode": "sequential", "state": "end", "wall_s": 1.31, "cpu_s": 1.3},
        {"ev": "phase", "mode": "threads", "state": "start", "tasks": 2},
        {"ev": "progress", "task": 0, "done": 0.45},
        {"ev": "progress", "task": 1, "done": 0.40},
    ):
        state.apply_event(dict(event, pid=4242, ts=2.0))
    _thread(state, 4242, 4242, "main", 0.0, 0.0, 2)
    _thread(state, 4242, 4243, "cpu-1", 0.49, 0.02, 198)
    _thread(state, 4242, 4244, "cpu-2", 0.50, 0.01, 204)
    state.samples = 8
    return state


def race_state() -> RunState:
    """race part-way: naive and call done, sleep0 running, the rest waiting."""
    state = FrozenState(experiment="race", python="python",
                        params={"threads": 4, "increments": 200_000, "variant": "all",
                                "switch_interval_ms": 5.0})
    state.pid, state.status = 4300, "running"
    _hello(state, 4300)
    events = [{"ev": "phase", "variant": "naive", "state": "start", "threads": 4}]
    for expected in (200_000, 400_000, 800_000):
        events.append({"ev": "counter", "variant": "naive", "expected": expected,
                       "actual": expected})
    events.append({"ev": "phase", "variant": "naive", "state": "end", "expected": 800_000,
                   "actual": 800_000, "lost": 0, "wall_s": 0.09})
    events.append({"ev": "phase", "variant": "call", "state": "start", "threads": 4})
    for expected, actual in ((200_000, 190_112), (400_000, 371_020), (800_000, 742_310)):
        events.append({"ev": "counter", "variant": "call", "expected": expected,
                       "actual": actual})
    events.append({"ev": "phase", "variant": "call", "state": "end", "expected": 800_000,
                   "actual": 742_310, "lost": 57_690, "wall_s": 0.1})
    events.append({"ev": "phase", "variant": "sleep0", "state": "start", "threads": 4})
    events.append({"ev": "counter", "variant": "sleep0", "expected": 41_000, "actual": 10_321})
    for event in events:
        state.apply_event(dict(event, pid=4300, ts=3.0))
    for i in range(4):
        _thread(state, 4300, 4301 + i, "sleep0-%d" % (i + 1), 0.22, 0.03, 2100 + i)
    return state


def finished_race_state() -> RunState:
    """race run to the end, with its result record."""
    state = FrozenState(experiment="race", python="python",
                        params={"threads": 4, "increments": 200_000, "variant": "call",
                                "switch_interval_ms": 5.0})
    state.pid = 4400
    state.frozen_duration = 0.6
    _hello(state, 4400)
    state.status = "done"
    for event in (
        {"ev": "phase", "variant": "call", "state": "start", "threads": 4},
        {"ev": "counter", "variant": "call", "expected": 400_000, "actual": 380_101},
        {"ev": "phase", "variant": "call", "state": "end", "expected": 800_000,
         "actual": 744_519, "lost": 55_481, "wall_s": 0.21},
    ):
        state.apply_event(dict(event, pid=4400, ts=3.0))
    for i in range(4):
        _thread(state, 4400, 4401 + i, "call-%d" % (i + 1), 0.0, 0.0, 0, alive=False)
    state.result = {
        "variants": {"call": {"expected": 800_000, "actual": 744_519, "lost": 55_481,
                              "wall_s": 0.21}},
        "threads": 4, "increments": 200_000, "switch_interval_s": 0.005, "gil_enabled": True,
        "explanation": "call lost 55481: a Python call between read and write is a "
                       "switch point.",
    }
    state.version += 1
    return state


def loop_freeze_state() -> RunState:
    """loop-freeze 1.2 s into a run: 10 ms ticks, one 250 ms block blamed on its line."""
    state = FrozenState(experiment="loop-freeze", python="python",
                        params={"block": "cpu", "block_ms": 250, "fix": "none",
                                "loop": "asyncio", "period_ms": 10.0, "duration_s": 3.0})
    state.pid = 4600
    state.frozen_duration = 1.2
    _hello(state, 4600)
    blame = {"blamed": "workloads/loop_freeze.py:70", "function": "cpu_heavy",
             "code": "total += i * i"}
    state.apply_event({"ev": "start", "pid": 4600, "ts": 1.0, "t0": 1.0, "period_ms": 10.0,
                       "duration_s": 3.0, "threshold_ms": 20.0, "loop": "asyncio",
                       "fix": "none", "block": "cpu", "block_ms": 250})
    # Punctual ticks (1-2 ms late), then the block: the next tick is 250 ms late.
    early = [[round(0.01 * n, 3), 1.0 + (n % 3) * 0.4] for n in range(1, 50)]
    state.apply_event({"ev": "ticks", "pid": 4600, "ts": 1.5, "t0": 0.0, "t1": 0.49,
                       "ticks": early, "count": 49, "missed": 0, "spans": 0,
                       "lag_ms": {"p50": 1.4, "p99": 1.8, "max": 1.8}})
    state.apply_event(dict(blame, ev="frozen", pid=4600, ts=1.8, index=50, ongoing=False,
                           start_s=0.5, end_s=0.752, duration_ms=252.0, missed_ticks=24))
    late = [[0.752, 252.0]] + [[round(0.752 + 0.01 * n, 3), 1.2] for n in range(1, 40)]
    state.apply_event({"ev": "ticks", "pid": 4600, "ts": 2.1, "t0": 0.49, "t1": 1.142,
                       "ticks": late, "count": 89, "missed": 24, "spans": 1,
                       "lag_ms": {"p50": 1.4, "p99": 252.0, "max": 252.0}})
    return state


def goroutines_state() -> RunState:
    """The Python M:N runtime mid-run: queues on both Ps, Ms in syscalls (the hand-off)."""
    state = FrozenState(experiment="goroutines", python="python",
                        params={"gs": 600, "work_ms": 2.0, "runtime": "python"})
    state.pid = 5000
    state.frozen_duration = 0.9
    _hello(state, 5000)
    ms = [{"id": i, "state": s, "p": p, "tid": 5001 + i} for i, (s, p) in enumerate(
        [("syscall", -1), ("syscall", -1), ("running", 0), ("running", 1), ("idle", -1)])]
    state.apply_event({"ev": "mn", "pid": 5000, "ts": 1.9, "runtime": "python", "t_ms": 300,
                       "gomaxprocs": 2, "threads": 5, "idle_threads": 1,
                       "spinning_threads": 0, "m_states": {"syscall": 2, "running": 2,
                                                           "idle": 1},
                       "global_runq": 12, "runq": [40, 21], "runnext": [True, False],
                       "p_status": ["running", "running"], "p_m": [2, 3], "ms": ms,
                       "gs": {"runnable": 73, "running": 2, "syscall": 2, "waiting": 0},
                       "gs_done": 223, "gs_total": 600, "steals": 3, "handoffs": 21,
                       "preemptions": 0})
    for i, m in enumerate(ms):
        _thread(state, 5000, m["tid"], "M%d" % i, 0.3 if m["state"] == "running" else 0.0,
                0.0, 40)
    return state


def dashboard_states() -> dict[str, RunState]:
    return {"pane-0": gil_state(), "pane-1": loop_freeze_state(), "pane-2": race_state(),
            "pane-3": goroutines_state()}


# Any number of workers: the views must fit with 1, 2, 16 or 64 of them -----------------
WORKER_COUNTS = (1, 2, 16, 64)


def gil_state_of(workers: int, mode: str = "threads") -> RunState:
    """gil-cpu half-way through `mode` with `workers` tasks: threads of one child, or
    one process each (the processes mode), each on its own CPU."""
    state = FrozenState(experiment="gil-cpu", python="python",
                        params={"work": 12_000_000, "tasks": workers,
                                "switch_interval_ms": 5.0, "modes": "all"})
    state.pid, state.status = 7000, "running"
    _hello(state, 7000)
    events = [{"ev": "phase", "mode": "sequential", "state": "start", "tasks": workers},
              {"ev": "phase", "mode": "sequential", "state": "end", "wall_s": 1.31, "cpu_s": 1.3}]
    if mode == "processes":
        events += [{"ev": "phase", "mode": "threads", "state": "start", "tasks": workers},
                   {"ev": "phase", "mode": "threads", "state": "end", "wall_s": 1.4,
                    "cpu_s": 1.3}]
    events.append({"ev": "phase", "mode": mode, "state": "start", "tasks": workers})
    events += [{"ev": "progress", "task": i, "done": 0.5} for i in range(workers)]
    for event in events:
        state.apply_event(dict(event, pid=7000, ts=2.0))
    _thread(state, 7000, 7000, "main", 0.0, 0.0, 2)
    for i in range(workers):
        if mode == "processes":
            pid = 7100 + i
            state.apply_event({"ev": "process", "pid": pid, "native_id": pid, "ts": 2.0,
                               "name": "cpu-%d" % i})
            _thread(state, pid, pid, "cpu-%d" % (i + 1), 0.9 - i * 0.01, 0.05, 3)
        else:
            _thread(state, 7000, 7001 + i, "cpu-%d" % (i + 1), 1.0 / workers + (i % 3) * 0.01,
                    0.02, 198)
    state.samples = 8
    return state


def goroutines_state_of(ps: int) -> RunState:
    """The Python M:N runtime with `ps` Ps, each running on an M, and as many Ms again in
    system calls or idle."""
    state = FrozenState(experiment="goroutines", python="python",
                        params={"gs": 100 * ps, "work_ms": 2.0, "runtime": "python"})
    state.pid = 8000
    state.frozen_duration = 0.9
    _hello(state, 8000)
    ms = [{"id": i, "state": "running", "p": i, "tid": 8001 + i} for i in range(ps)]
    ms += [{"id": ps + i, "state": ("syscall", "idle")[i % 2], "p": -1, "tid": 8001 + ps + i}
           for i in range(ps)]
    state.apply_event({"ev": "mn", "pid": 8000, "ts": 1.9, "runtime": "python", "t_ms": 300,
                       "gomaxprocs": ps, "threads": len(ms), "idle_threads": ps // 2,
                       "spinning_threads": 0,
                       "m_states": {"running": ps, "syscall": ps - ps // 2, "idle": ps // 2},
                       "global_runq": 12, "runq": [(7 * i) % 60 for i in range(ps)],
                       "runnext": [i % 2 == 0 for i in range(ps)],
                       "p_status": ["running"] * ps, "p_m": list(range(ps)), "ms": ms,
                       "gs": {"runnable": 73, "running": ps, "syscall": ps, "waiting": 0},
                       "gs_done": 23 * ps, "gs_total": 100 * ps, "steals": 3,
                       "handoffs": 21, "preemptions": 0})
    for m in ms:
        _thread(state, 8000, m["tid"], "M%d" % m["id"],
                min(1.0, 2.0 / ps) if m["state"] == "running" else 0.0, 0.0, 40)
    return state
