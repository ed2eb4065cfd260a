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
from typing import Any, Callable

from lab.core.runner import PreparedRun, Refused, Run, RunRequest, prepare, reap_group
from lab.core.state import RunState

SHUTDOWN_WAIT_S = 5.0  # how long quitting waits for every child to be reaped


@dataclass
class Slot:
    run: Run
    done: asyncio.Event


class RunController:
    """Runs by slot key; `states` is what the screens draw (tests may fill it by hand)."""

    def __init__(self, python: str | None = None, run_factory: Callable[[PreparedRun], Any] = Run,
                 save_records: bool = True,
                 on_finish: Callable[[str, RunState], None] | None = None) -> None:
        self.python = python
        self.run_factory = run_factory
        self.save_records = save_records
        self.on_finish = on_finish
        self.states: dict[str, RunState] = {}
        self.refusals: dict[str, str] = {}
        self.prepared: dict[str, PreparedRun] = {}
        self._slots: dict[str, Slot] = {}
        self._pids: set[int] = set()  # every child we started, for the last-resort sweep

    # Reading ---------------------------------------------------------------------------
    def state(self, key: str) -> RunState | None:
        return self.states.get(key)

    def is_running(self, key: str) -> bool:
        slot = self._slots.get(key)
        return slot is not None and not slot.done.is_set()

    def running_keys(self) -> list[str]:
        return [key for key in self._slots if self.is_running(key)]

    # Starting --------------------------------------------------------------------------
    def prepare(self, key: str, experiment: str, params: dict[str, Any],
                python: str | None = None) -> PreparedRun:
        """Validate before anything starts; a refusal is kept for the slot to show.

        `python` runs this slot under another interpreter (interpreters side by side).
        """
        try:
            prepared = prepare(RunRequest(experiment, dict(params),
                                          python=python or self.python))
        except Refused as exc:
            self.refusals[key] = str(exc)
            raise
        self.refusals.pop(key, None)
        return prepared

    async def run(self, key: str, prepared: PreparedRun) -> RunState:
        """Run one experiment in slot `key` to its end (stop() ends it early)."""
        await self.stop(key)
        run = self.run_factory(prepared)
        slot = self._slots[key] = Slot(run, asyncio.Event())
        self.states[key] = run.state
        self.prepared[key] = prepared
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
            slot.done.set()
        if state.pid:
            self._pids.discard(state.pid)
        await self._save(prepared, state)
        if self.on_finish is not None:
            self.on_finish(key, state)
        return state

    async def _save(self, prepared: PreparedRun, state: RunState) -> None:
        """Into history, off the UI's loop: a locked database may keep SQLite busy for a while."""
        if not self.save_records:
            return
        from lab.core.record import build_record, save_run_record

        try:
            await asyncio.to_thread(save_run_record, build_record(prepared, state))
        except Exception:  # history is a bonus; a run never fails because of it
            pass

    # Stopping --------------------------------------------------------------------------
    async def stop(self, key: str) -> None:
        """Stop the run in `key` and wait until its whole process group is reaped."""
        slot = self._slots.get(key)
        if slot is None or slot.done.is_set():
            return
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

    async def shutdown(self) -> None:
        """Stop every run at once and wait for them all to be reaped."""
        keys = self.running_keys()
        if keys:
            await asyncio.gather(*(self.stop(k) for k in keys), return_exceptions=True)
        self.kill_leftovers()

    def kill_leftovers(self, reap_s: float = 0.0) -> None:
        """Last resort (also after the loop is gone, from any thread): SIGKILL every group
        we started, including a run still starting, then reap them for up to `reap_s`."""
        pids = set(self._pids)
        for slot in list(self._slots.values()):
            if isinstance(slot.run, Run) and not slot.done.is_set() and slot.run.state.pid:
                pids.add(slot.run.state.pid)
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
