"""Be the scheduler, headless: one interactive `interleave` child per session, driven by
commands on its command pipe. The TUI's stepping screen and the tests use this; it never
imports textual.

    session = StepperSession()
    await session.start("counter", threads=2, unit="instruction")
    state = await session.step(1)       # the new step_state (dict)
    state = await session.undo()
    await session.close()

Every command returns the latest state and never hangs: a refusal (from the child, or a
reply missing after COMMAND_DEADLINE_S) leaves the state as it was and sets `.refused`
to a one-line reason. The child is spawned like every run (lab.core.runner.spawn): own
process group, death signal, stdin /dev/null; close() ends it and reaps its group.
"""

from __future__ import annotations

import asyncio
from collections import deque
import json
import os
from typing import Any

from lab.core.runner import (STOP_GRACE_S, Refused, RunRequest, clear_group, event_reader,
                             json_events, prepare, read_output, spawn, stop_child)
from workloads import ENV_COMMAND_FD

COMMAND_DEADLINE_S = 5.0
START_DEADLINE_S = 20.0  # an interpreter's start on a busy machine
PROTOCOL = 1
UNITS = ("instruction", "line")
_TRANSPORT_KEYS = ("v", "ts", "pid", "id")

__all__ = ["StepperSession", "StepperFailed", "Refused", "COMMAND_DEADLINE_S"]


class StepperFailed(RuntimeError):
    """The child did not come up (its error, or no first state in time)."""


class StepperSession:
    def __init__(self) -> None:
        self.state: dict[str, Any] | None = None  # the latest step_state
        self.program: dict[str, Any] | None = None  # the step_program (source, bytecode)
        self.refused: str | None = None  # why the last command was refused, else None
        self.result: dict[str, Any] | None = None  # the child's result, once it ended
        self.error: str | None = None  # the child's error event, if any
        self.pid: int | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._command_fd: int | None = None
        self._tasks: list[asyncio.Task] = []
        self._lock = asyncio.Lock()
        self._waiting: tuple[int, asyncio.Future] | None = None
        self._first_state: asyncio.Future | None = None
        self._next_id = 0
        self._output: deque = deque(maxlen=20)

    # Lifecycle -----------------------------------------------------------------------
    async def start(self, program: str, threads: int = 2, unit: str = "instruction",
                    python: str | None = None) -> dict[str, Any]:
        """Start the child; returns the first state. Raises Refused for bad values
        (nothing started) and StepperFailed when the child does not come up."""
        prepared = prepare(RunRequest("interleave", {"program": program, "threads": threads,
                                                     "step": unit, "interactive": True},
                                      python=python))
        loop = asyncio.get_running_loop()
        self._first_state = loop.create_future()
        command_read, command_write = os.pipe()
        try:
            self._process, read_fd = await spawn(prepared, {ENV_COMMAND_FD: str(command_read)},
                                                 pass_fds=(command_read,))
        except BaseException:
            os.close(command_write)
            raise
        finally:
            os.close(command_read)
        self.pid = self._process.pid
        self._command_fd = command_write
        os.set_blocking(command_write, False)
        reader = await event_reader(read_fd)
        self._tasks = [asyncio.create_task(self._read_events(reader)),
                       asyncio.create_task(self._read_output())]
        try:
            await asyncio.wait_for(asyncio.shield(self._first_state), START_DEADLINE_S)
        except asyncio.TimeoutError:
            await self.close()
            raise StepperFailed("the stepper child sent no state in %.0f s" % START_DEADLINE_S)
        if self.state is None:
            await self.close()
            raise StepperFailed(self.error or "the stepper child ended before its first state"
                                + (": " + self._output[-1] if self._output else ""))
        return self.state

    async def close(self) -> None:
        """End the child (EOF on its command pipe; then SIGTERM, SIGKILL) and reap its group."""
        if self._command_fd is not None:
            os.close(self._command_fd)
            self._command_fd = None
        process = self._process
        if process is not None:
            try:
                await asyncio.wait_for(asyncio.shield(process.wait()), STOP_GRACE_S)
            except asyncio.TimeoutError:
                await stop_child(process)  # SIGTERM, then SIGKILL after the grace period
            await process.wait()
            await clear_group(process.pid)  # anything of the group still there, reaped
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=1.0)
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            self._tasks = []

    async def __aenter__(self) -> "StepperSession":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.returncode is None

    # Commands ------------------------------------------------------------------------
    async def step(self, thread: int) -> dict[str, Any] | None:
        return await self._command("step", thread=thread)

    async def undo(self) -> dict[str, Any] | None:
        return await self._command("undo")

    async def reset(self) -> dict[str, Any] | None:
        return await self._command("reset")

    async def set_unit(self, unit: str) -> dict[str, Any] | None:
        return await self._command("unit", unit=unit)

    async def send_raw(self, line: bytes) -> dict[str, Any] | None:
        """Send one line as it is (for tests of the child's refusals); the reply is the
        next step_state or command_refused, whatever its id."""
        return await self._exchange(line, None)

    async def _command(self, cmd: str, **fields: Any) -> dict[str, Any] | None:
        self._next_id += 1
        line = json.dumps({"v": PROTOCOL, "cmd": cmd, "id": self._next_id, **fields})
        return await self._exchange(line.encode() + b"\n", self._next_id)

    async def _exchange(self, line: bytes, ident: int | None) -> dict[str, Any] | None:
        async with self._lock:
            if self._command_fd is None or not self.running:
                return self._refuse("the stepper session has ended")
            future = asyncio.get_running_loop().create_future()
            self._waiting = (ident, future)
            try:
                if os.write(self._command_fd, line) != len(line):
                    return self._refuse("the stepper child is not reading its commands")
            except BlockingIOError:
                return self._refuse("the stepper child is not reading its commands")
            except OSError:
                return self._refuse("the stepper child is gone")
            try:
                reply = await asyncio.wait_for(future, COMMAND_DEADLINE_S)
            except asyncio.TimeoutError:
                return self._refuse("no answer from the stepper child in %g s"
                                    % COMMAND_DEADLINE_S)
            finally:
                self._waiting = None
            if reply.get("ev") == "command_refused":
                return self._refuse(str(reply.get("reason") or "refused"))
            self.refused = None
            self.state = _clean(reply)
            return self.state

    def _refuse(self, reason: str) -> dict[str, Any] | None:
        self.refused = reason
        return self.state

    # Reading the child ---------------------------------------------------------------
    async def _read_events(self, reader: asyncio.StreamReader) -> None:
        try:
            async for event in json_events(reader):
                self._apply(event)
        finally:
            ended = "the stepper child ended" + (": %s" % self.error if self.error else "")
            if self._waiting is not None and not self._waiting[1].done():
                self._waiting[1].set_result({"ev": "command_refused", "reason": ended})
            if self._first_state is not None and not self._first_state.done():
                self._first_state.set_result(None)

    def _apply(self, event: dict) -> None:
        kind = event.get("ev")
        if kind == "step_program":
            self.program = _clean(event)
        elif kind == "error":
            self.error = str(event.get("message"))
        elif kind == "result":
            self.result = event.get("result")
        elif kind in ("step_state", "command_refused"):
            if self._first_state is not None and not self._first_state.done():
                if kind == "step_state":
                    self.state = _clean(event)
                    self._first_state.set_result(None)
                return
            waiting = self._waiting
            if waiting is not None and not waiting[1].done() and (
                    waiting[0] is None or event.get("id") in (waiting[0], None)):
                waiting[1].set_result(event)

    async def _read_output(self) -> None:
        await read_output(self._process.stdout, self._output.append)


def _clean(event: dict) -> dict:
    return {k: v for k, v in event.items() if k not in _TRANSPORT_KEYS}
