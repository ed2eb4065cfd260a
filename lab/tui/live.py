"""The TUI's runs: start, stop and reap them, and keep their RunState for the screens.

No Textual here. The app launches `RunController.run(...)` from an *async* worker on its
own loop: the child is forked from the loop's thread, which lives as long as the lab
(PR_SET_PDEATHSIG is tied to the forking thread, so a thread worker would kill the child
when the worker ends). Each run lives in a named slot (a dashboard pane, an experiment
screen); starting a slot again stops the run already in it first.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from lab.core.runner import PreparedRun, Refused, Run, RunRequest, prepare, reap_group
from lab.core.state import RunState

SHUTDOWN_WAIT_S = 5.0  # how long quitting waits for every child to be reaped


@dataclass
class Slot:
    run: Any  # a Run (or the factory's stand-in); None while the slot waits for its turn
    done: asyncio.Event
    turn: asyncio.Event | None = None  # set when a waiting slot may start (or is dropped)
    dropped: bool = False  # taken out of the queue before its turn: start nothing


def _note(state: RunState, label: str) -> None:
    """`label` ran at some moment during this run."""
    if label not in state.overlapped_by:
        state.overlapped_by.append(label)
        state.version += 1


class RunController:
    """Runs by slot key; `states` is what the screens draw (tests may fill it by hand).

    CPU-bound runs go in turn: a run started with `in_turn` waits in one queue (its state
    says "waiting", with its place) until no other CPU-bound run is going, so runs that
    share the CPUs do not stretch each other's figures. Whatever overlaps anyway (a run
    started at once, a run that does not need the CPUs) is written into each run's
    `overlapped_by`, so a figure says what else was running while it was measured.
    """

    def __init__(self, python: str | None = None, run_factory: Callable[[PreparedRun], Any] = Run,
                 save_records: bool = True,
                 on_finish: Callable[[str, RunState], None] | None = None,
                 slow: bool = False) -> None:
        self.python = python
        self.slow = slow  # slow motion for every run (lab/core/slow.py)
        self.run_factory = run_factory
        self.save_records = save_records
        self.on_finish = on_finish
        self.states: dict[str, RunState] = {}
        self.refusals: dict[str, str] = {}
        self.prepared: dict[str, PreparedRun] = {}
        self._slots: dict[str, Slot] = {}
        self._pids: set[int] = set()  # every child we started, for the last-resort sweep
        self._queue: list[str] = []  # slots waiting for their turn, first first
        self._cpu: set[str] = set()  # CPU-bound (or in-turn) runs given the CPUs now
        self._active: dict[str, str] = {}  # slots with a child, and the name each goes by
        self._closing = False  # shutting down: nothing more starts
        # Other children the screens own (a stepper session): closed with the runs.
        self._sessions: set[Any] = set()
        # Children started outside the slots (a watched command): how to stop each, and
        # its process group for the last-resort sweep (None: nothing of ours to kill).
        self._adopted: dict[str, tuple[Callable[[], Any], int | None]] = {}

    # Reading ---------------------------------------------------------------------------
    def state(self, key: str) -> RunState | None:
        return self.states.get(key)

    def is_running(self, key: str) -> bool:
        """Running, starting, or waiting for its turn (not over yet)."""
        slot = self._slots.get(key)
        return slot is not None and not slot.done.is_set()

    def running_keys(self) -> list[str]:
        return [key for key in self._slots if self.is_running(key)]

    def waiting_keys(self) -> list[str]:
        return list(self._queue)

    def active_keys(self) -> list[str]:
        """Slots whose child is running now."""
        return list(self._active)

    # Starting --------------------------------------------------------------------------
    def prepare(self, key: str, experiment: str, params: dict[str, Any],
                python: str | None = None) -> PreparedRun:
        """Validate before anything starts; a refusal is kept for the slot to show.

        `python` runs this slot under another interpreter (interpreters side by side).
        """
        try:
            prepared = prepare(RunRequest(experiment, dict(params),
                                          python=python or self.python, slow=self.slow))
        except Refused as exc:
            self.refusals[key] = str(exc)
            raise
        self.refusals.pop(key, None)
        return prepared

    async def run(self, key: str, prepared: PreparedRun, in_turn: bool = False) -> RunState:
        """Run one experiment in slot `key` to its end (stop() ends it early).

        With `in_turn`, first wait until no other CPU-bound run of the lab is going.
        """
        await self.stop(key)
        slot = self._slots[key] = Slot(None, asyncio.Event())
        self.prepared[key] = prepared
        holds_cpu = in_turn or prepared.experiment.cpu_bound
        try:
            if in_turn and not await self._wait_for_turn(key, slot, prepared):
                return self._not_started(key, prepared)
            if self._closing or slot.dropped:
                return self._not_started(key, prepared)
            if holds_cpu:
                self._cpu.add(key)
            return await self._run(key, slot, prepared)
        finally:
            slot.done.set()
            if self._slots.get(key) is slot:
                if key in self._queue:  # cancelled while waiting
                    self._queue.remove(key)
                self._cpu.discard(key)
            self._next_turn()

    async def _run(self, key: str, slot: Slot, prepared: PreparedRun) -> RunState:
        run = slot.run = self.run_factory(prepared)
        self.states[key] = run.state
        self._overlap(key, run.state, self.label(prepared))
        try:
            try:
                await run.start()
            except OSError as exc:
                run.state.status = "failed"
                run.state.error = "could not start the child: %s" % exc
                run.state.version += 1
                return run.state
            if run.state.pid:
                self._pids.add(run.state.pid)
            try:
                state = await run.wait()
            except asyncio.CancelledError:
                # The app is going away under us: the child must not outlive it.
                await asyncio.shield(self._stop_and_wait(run))
                raise
        finally:
            self._active.pop(key, None)
        if state.pid:
            self._pids.discard(state.pid)
        await self._save(prepared, state)
        if self.on_finish is not None:
            self.on_finish(key, state)
        return state

    # Taking turns ----------------------------------------------------------------------
    def label(self, prepared: PreparedRun) -> str:
        """What other runs call this one: the experiment, and its interpreter when it is
        not the lab's usual one (interpreters side by side)."""
        python = prepared.request.python
        if python is None or python == self.python:
            return prepared.experiment.name
        from lab.core.interp_compare import describe

        return "%s under %s" % (prepared.experiment.name, describe(prepared.interpreter))

    def _overlap(self, key: str, state: RunState, label: str) -> None:
        """From now until it ends, this run and every run going overlap: note both ways."""
        for other, other_label in self._active.items():
            _note(state, other_label)
            other_state = self.states.get(other)
            if other_state is not None:
                _note(other_state, label)
        self._active[key] = label

    async def _wait_for_turn(self, key: str, slot: Slot, prepared: PreparedRun) -> bool:
        """Queue the slot; True when its turn comes, False if it was dropped first."""
        slot.turn = asyncio.Event()
        self.states[key] = RunState(experiment=prepared.experiment.name,
                                    params=prepared.params, python=prepared.interpreter.path,
                                    status="waiting")
        self._queue.append(key)
        self._next_turn()
        await slot.turn.wait()
        return not slot.dropped

    def _next_turn(self) -> None:
        """Give the CPUs to the first waiting slot once no CPU-bound run holds them."""
        if self._queue and not self._cpu and not self._closing:
            key = self._queue.pop(0)
            self._cpu.add(key)  # held from now: the next one must not start meanwhile
            self._slots[key].turn.set()
        self._number_queue()

    def _number_queue(self) -> None:
        total = len(self._queue)
        for place, key in enumerate(self._queue, 1):
            state = self.states.get(key)
            if state is not None and state.turn != (place, total):
                state.turn = (place, total)
                state.version += 1

    def drop_waiting(self, keys: Iterable[str] | None = None) -> None:
        """Take these slots (all if None) out of the queue: they start nothing."""
        keys = list(self._queue) if keys is None else [k for k in keys if k in self._queue]
        for key in keys:
            self._queue.remove(key)
            slot = self._slots[key]
            slot.dropped = True
            slot.turn.set()
        self._number_queue()

    def _not_started(self, key: str, prepared: PreparedRun) -> RunState:
        """The run never got a child: its pane goes back to idle."""
        state = self.states.get(key)
        if state is not None and state.status == "waiting":
            del self.states[key]
        else:
            state = RunState(experiment=prepared.experiment.name, params=prepared.params,
                             python=prepared.interpreter.path)
        state.status, state.error, state.turn = "stopped", "stopped before its turn", None
        return state

    async def _save(self, prepared: PreparedRun, state: RunState) -> None:
        """Into history, off the UI's loop: a locked database may keep SQLite busy for a while."""
        if not self.save_records:
            return
        from lab.core.record import build_record, save_run_record, with_timeline

        try:
            await asyncio.to_thread(
                lambda: save_run_record(with_timeline(build_record(prepared, state), state)))
        except Exception:  # history is a bonus; a run never fails because of it
            pass

    # Sessions (children driven step by step, not runs) ---------------------------------
    def adopt_session(self, session: Any) -> bool:
        """Keep `session` (anything with `async close()` and `pid`) to close on shutdown;
        False if the lab is already shutting down (then start nothing)."""
        if self._closing:
            return False
        self._sessions.add(session)
        return True

    def release_session(self, session: Any) -> None:
        self._sessions.discard(session)

    async def close_sessions(self) -> None:
        """Close every adopted session; each stays known (its pid swept by kill_leftovers)
        until its owner releases it, in case one was still starting its child."""
        await asyncio.gather(*(asyncio.wait_for(session.close(), SHUTDOWN_WAIT_S)
                               for session in list(self._sessions)), return_exceptions=True)

    # Stopping --------------------------------------------------------------------------
    async def stop(self, key: str) -> None:
        """Stop the run in `key` and wait until its whole process group is reaped."""
        slot = self._slots.get(key)
        if slot is None or slot.done.is_set():
            return
        if key in self._queue:
            self.drop_waiting([key])
        elif slot.run is None:
            slot.dropped = True  # its turn came but it has not started: it never will
        else:
            await slot.run.stop("stopped")
        try:
            await asyncio.wait_for(slot.done.wait(), SHUTDOWN_WAIT_S)
        except asyncio.TimeoutError:
            pass

    async def _stop_and_wait(self, run: Run) -> None:
        await run.stop("stopped")
        try:
            await asyncio.wait_for(run.wait(), SHUTDOWN_WAIT_S)
        except (asyncio.TimeoutError, AssertionError):
            pass

    # Children started elsewhere ---------------------------------------------------------
    def adopt(self, key: str, stop: Callable[[], Any], pgid: int | None) -> None:
        """Stop this too when the lab leaves: `stop()` (a coroutine) on quit, and a SIGKILL
        to process group `pgid` in the last-resort sweep (None for a read-only attach)."""
        self._adopted[key] = (stop, pgid)

    def release(self, key: str) -> None:
        """It has ended and been reaped: nothing of it is left to stop."""
        self._adopted.pop(key, None)

    def adopted_keys(self) -> list[str]:
        return list(self._adopted)

    async def shutdown(self) -> None:
        """Stop every run at once and wait for them all to be reaped; queued runs and
        runs given their turn but not started yet start nothing."""
        self._closing = True
        self.drop_waiting()
        keys = self.running_keys()
        stops = [self.stop(k) for k in keys]
        stops += [_wait_briefly(stop()) for stop, _ in list(self._adopted.values())]
        if stops or self._sessions:
            await asyncio.gather(self.close_sessions(), *stops, return_exceptions=True)
        self.kill_leftovers()

    def kill_leftovers(self, reap_s: float = 0.0) -> None:
        """Last resort (also after the loop is gone, from any thread): SIGKILL every group
        we started, including a run still starting, then reap them for up to `reap_s`."""
        pids = set(self._pids)
        pids.update(pgid for _, pgid in list(self._adopted.values()) if pgid)
        for slot in list(self._slots.values()):
            if (isinstance(slot.run, Run) and not slot.done.is_set()
                    and slot.run.state.pid):
                pids.add(slot.run.state.pid)
        for session in list(self._sessions):
            # A closed session's group is reaped: its number may belong to another now.
            if getattr(session, "pid", None) and getattr(session, "running", True):
                pids.add(session.pid)
        for pid in pids:
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        self._pids -= pids
        deadline = time.monotonic() + reap_s
        while pids:
            pids = {pid for pid in pids if not reap_group(pid)}
            if not pids or time.monotonic() >= deadline:
                break
            time.sleep(0.01)


async def _wait_briefly(stopping) -> None:
    """An adopted child's stop, for at most SHUTDOWN_WAIT_S (the sweep follows)."""
    try:
        await asyncio.wait_for(stopping, SHUTDOWN_WAIT_S)
    except asyncio.TimeoutError:
        pass
