"""Start an experiment in a child interpreter, read its events, sample it, stop it, reap it.

The same code serves the CLI (under asyncio.run) and the TUI (on Textual's loop), so a
headless run and a live one are the same run. Children are started from the event
loop's thread, which lives as long as the lab: PR_SET_PDEATHSIG fires when the *thread*
that forked the child exits, so forking from a short-lived worker thread would kill it.

Never harm the host: every child leads its own process group (so one killpg reaches the
workers it forks), asks the kernel to kill it when the lab dies (also on kill -9),
runs under a watchdog timeout, and is stopped with SIGTERM then SIGKILL. The lab is a
child subreaper, so orphaned grandchildren come back to it to be reaped.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from typing import Any, AsyncIterator

from lab.core import catalog
from lab.core.interpreters import Interpreter, InterpreterError, probe, workloads_path
from lab.core.sampler import make_sampler
from lab.core.state import RunState
from workloads import ENV_CPU_CLOCKS, ENV_EVENT_FD, ENV_PARENT_PID, ParamError, die_with_parent

PR_SET_CHILD_SUBREAPER = 36
STOP_GRACE_S = 1.0  # between SIGTERM and SIGKILL
MAX_EVENT_LINE = 4 * 1024 * 1024


class Refused(ValueError):
    """A run that must not start: the message names the parameter and what is allowed."""


@dataclass
class RunRequest:
    experiment: str
    params: dict[str, Any] = field(default_factory=dict)  # typed values, checked by prepare()
    python: str | None = None  # None: the lab's own interpreter
    timeout_s: float | None = None  # None: the experiment's own TIMEOUT_S
    sample_interval_s: float = 0.25
    cpu_clocks_s: float | None = None  # ask the child to report its thread CPU clocks
    slow: bool = False  # slow motion: the experiment's size grown to watch (lab/core/slow.py)


@dataclass
class PreparedRun:
    experiment: catalog.Experiment
    params: dict[str, Any]
    interpreter: Interpreter
    timeout_s: float
    request: RunRequest

    def command(self) -> list[str]:
        return [self.interpreter.path, "-m", "workloads", self.experiment.name,
                "--params", json.dumps(self.params, separators=(",", ":")),
                "--timeout-s", repr(float(self.timeout_s))]


def prepare(request: RunRequest) -> PreparedRun:
    """Check everything before anything starts; raises Refused with one clear line."""
    try:
        experiment = catalog.get(request.experiment)
    except catalog.UnknownExperiment as exc:
        raise Refused(str(exc)) from None
    timeout = request.timeout_s if request.timeout_s is not None else experiment.timeout_s
    if not 0 < timeout <= 24 * 3600:
        raise Refused("--timeout must be a number of seconds from 0 to 86400 (got %s)" % timeout)
    try:
        given = request.params
        if request.slow:
            from lab.core.slow import slowed

            given = slowed(experiment, resolve_known(experiment, given))
        # Limits first: they count the threads and processes this run will add to the user's.
        params = experiment.validate(given, timeout)
        interpreter = probe(sys.executable if request.python is None else request.python)
    except (ParamError, InterpreterError) as exc:
        raise Refused(str(exc)) from None
    missing = [m for m in experiment.requires_for(params) if not interpreter.has(m)]
    if missing:
        raise Refused("%s needs %s, which %s (%s) lacks" % (
            experiment.name, " and ".join(missing), interpreter.path, interpreter.label))
    return PreparedRun(experiment, params, interpreter, timeout, request)


def resolve_known(experiment: catalog.Experiment, given: dict[str, Any]) -> dict[str, Any]:
    """The given values checked (a bad one refused before it is scaled)."""
    from workloads import resolve

    resolve(experiment.params, given)
    return dict(given)


_subreaper = False


def become_subreaper() -> None:
    """Orphaned descendants are re-parented to us (not init), so we can reap them."""
    global _subreaper
    if _subreaper or not sys.platform.startswith("linux"):
        return
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    _subreaper = True


def _log_spawn(pid: int, command: list[str]) -> None:
    """With CONLAB_SPAWN_LOG=path, note every child started (lets tests prove a refusal
    started nothing, and helps debugging)."""
    path = os.environ.get("CONLAB_SPAWN_LOG")
    if path:
        with open(path, "a") as log:
            log.write("%d %s\n" % (pid, " ".join(command)))


class Run:
    """One experiment in one child; `await run.run()` or start()/wait()/stop()."""

    def __init__(self, prepared: PreparedRun):
        self.prepared = prepared
        self.state = RunState(
            experiment=prepared.experiment.name, params=prepared.params,
            python=prepared.interpreter.path,
        )
        self._process: asyncio.subprocess.Process | None = None
        self._tasks: list[asyncio.Task] = []
        self._stop_reason: str | None = None
        self._done = asyncio.Event()

    # Lifecycle -------------------------------------------------------------------------
    async def run(self) -> RunState:
        await self.start()
        return await self.wait()

    async def start(self) -> None:
        extra = {}
        if self.prepared.request.cpu_clocks_s:
            extra[ENV_CPU_CLOCKS] = str(self.prepared.request.cpu_clocks_s)
        self._process, read_fd = await spawn(self.prepared, extra)
        state = self.state
        state.pid = self._process.pid
        state.started_at = time.monotonic()
        state.status = "running"
        state.sampler_source = ""
        reader = await event_reader(read_fd)
        self._tasks = [
            asyncio.create_task(self._read_events(reader)),
            asyncio.create_task(self._read_output()),
            asyncio.create_task(self._sample()),
            asyncio.create_task(self._watchdog()),
        ]

    async def wait(self) -> RunState:
        assert self._process is not None, "start() first"
        code = await self._process.wait()
        await clear_group(self._process.pid)  # workers the child left behind
        readers = self._tasks[:2]
        done, pending = await asyncio.wait(readers, timeout=2.0)
        for task in self._tasks:
            if not task.done():
                task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._finish(code)
        self._done.set()
        return self.state

    async def stop(self, reason: str = "stopped") -> None:
        """SIGTERM the whole group, then SIGKILL what is left after a grace period."""
        if self._process is None or self._process.returncode is not None:
            return
        self._stop_reason = self._stop_reason or reason
        await stop_child(self._process)

    @property
    def finished(self) -> bool:
        return self._done.is_set()

    # Internals -------------------------------------------------------------------------
    def _finish(self, code: int) -> None:
        state = self.state
        state.exit_code = code
        state.ended_at = time.monotonic()
        if self._stop_reason:
            state.status = self._stop_reason
            state.error = state.error or (
                "stopped by the watchdog after %.0f s" % self.prepared.timeout_s
                if self._stop_reason == "timeout" else "stopped")
        elif code == 0 and state.result is not None:
            state.status = "done"
        else:
            state.status = "failed"
            if not state.error:
                tail = [line for line in state.stderr_tail if line.strip()]
                why = tail[-1] if tail else "no result"
                state.error = "child exited with code %s: %s" % (code, why)
        if state.timeline is not None:
            state.timeline.close(state)  # replay ends as the run did
        state.version += 1

    async def _read_events(self, reader: asyncio.StreamReader) -> None:
        await read_json_lines(reader, self.state)

    async def _read_output(self) -> None:
        await read_output(self._process.stdout, self.state.stderr_tail.append)

    async def _sample(self) -> None:
        """Poll, apply, then schedule the next poll: never two samples at once."""
        sampler = make_sampler(self._process.pid)
        self.state.sampler_source = sampler.source
        interval = self.prepared.request.sample_interval_s
        while self._process.returncode is None:
            self.state.apply_sample(sampler.sample())
            await asyncio.sleep(interval)

    async def _watchdog(self) -> None:
        await asyncio.sleep(self.prepared.timeout_s)
        await self.stop("timeout")



# The child's guarantees, shared by experiments and `conlab watch` -------------------------
async def start_child(argv: list[str], env: dict[str, str], *, stdout: Any, stderr: Any,
                      pass_fds: tuple[int, ...] = (), cwd: str | None = None,
                      die_with_lab: bool = False) -> asyncio.subprocess.Process:
    """Start `argv` with stdin /dev/null, leading its own process group, the lab its
    subreaper. `die_with_lab` asks the kernel to SIGKILL it if the lab dies (even by
    kill -9): experiments do that themselves, a program the user gave us cannot."""
    become_subreaper()
    preexec = functools.partial(die_with_parent, os.getpid()) if die_with_lab else None
    process = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.DEVNULL, stdout=stdout, stderr=stderr,
        pass_fds=pass_fds, start_new_session=True, env=env, cwd=cwd, preexec_fn=preexec)
    _log_spawn(process.pid, argv)
    return process


async def spawn(prepared: PreparedRun, extra_env: dict[str, str] | None = None,
                pass_fds: tuple[int, ...] = ()) -> tuple[asyncio.subprocess.Process, int]:
    """Start a prepared run's child the lab's way (see start_child), with an event pipe
    and output piped. Returns the process and the read end of its event pipe; the caller
    closes any `pass_fds` of its own after this returns."""
    read_fd, write_fd = os.pipe()
    env = dict(os.environ)
    env.update({
        ENV_EVENT_FD: str(write_fd),
        ENV_PARENT_PID: str(os.getpid()),
        "PYTHONPATH": workloads_path(),
        "PYTHONUNBUFFERED": "1",
    })
    env.pop("PYTHONHOME", None)
    env.update(extra_env or {})
    try:
        process = await start_child(
            prepared.command(), env, pass_fds=(write_fd, *pass_fds), cwd=workloads_path(),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    except BaseException:
        os.close(read_fd)
        raise
    finally:
        os.close(write_fd)
    return process, read_fd


async def event_reader(read_fd: int) -> asyncio.StreamReader:
    """The child's event pipe as a stream of lines on the running loop."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=MAX_EVENT_LINE)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader),
                                 os.fdopen(read_fd, "rb", 0))
    return reader


# The guard reads its stdin to EOF: "done" means the group ended normally; anything else
# (EOF alone: the lab died, even by kill -9) means kill the whole group.
_GUARD = ("import os, signal, sys\n"
          "said = sys.stdin.buffer.read()\n"
          "if not said.startswith(b'done'):\n"
          "    try:\n"
          "        os.killpg(int(sys.argv[1]), signal.SIGKILL)\n"
          "    except OSError:\n"
          "        pass\n")


class GroupGuard:
    """Kills a child's whole process group if the lab dies. An experiment's workers die
    with their parent by themselves; a program the user gave us (a process pool's
    workers, a shell's jobs) would outlive us as orphans, so a small watchman process,
    holding the read end of a pipe only the lab writes, kills the group on EOF."""

    def __init__(self, process: asyncio.subprocess.Process, write_fd: int) -> None:
        self._process, self._write_fd = process, write_fd

    @classmethod
    async def start(cls, pgid: int) -> "GroupGuard":
        read_fd, write_fd = os.pipe()  # both close-on-exec: no other child inherits them
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-I", "-S", "-c", _GUARD, str(pgid), stdin=read_fd,
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
                start_new_session=True)
        except BaseException:
            os.close(write_fd)
            raise
        finally:
            os.close(read_fd)
        return cls(process, write_fd)

    async def release(self) -> None:
        """The group is gone: the guard leaves without killing anything."""
        if self._write_fd >= 0:
            try:
                os.write(self._write_fd, b"done")
            except OSError:
                pass
            os.close(self._write_fd)
            self._write_fd = -1
        await self._process.wait()


def signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


async def stop_child(process: asyncio.subprocess.Process, grace_s: float = STOP_GRACE_S) -> None:
    """SIGTERM the child's whole group, then SIGKILL what is left after the grace period."""
    if process.returncode is not None:
        return
    signal_group(process.pid, signal.SIGTERM)
    try:
        await asyncio.wait_for(asyncio.shield(process.wait()), grace_s)
    except asyncio.TimeoutError:
        signal_group(process.pid, signal.SIGKILL)


async def clear_group(pgid: int) -> None:
    """After the child's exit: kill what its group left behind and reap it (at most 2 s)."""
    signal_group(pgid, signal.SIGKILL)
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        if reap_group(pgid, gone_if_not_ours=True):
            return
        await asyncio.sleep(0.01)


async def json_events(reader: asyncio.StreamReader, kinds: set | None = None,
                      on_garbage: Any = None) -> AsyncIterator[dict]:
    """JSON object lines with an "ev" key (one of `kinds`, if given) until EOF; anything
    else (an over-long line, not JSON, another kind) goes to `on_garbage`, never raised."""
    while True:
        try:
            line = await reader.readline()
        except ValueError:  # a line over MAX_EVENT_LINE: protocol broken
            line, event = b"-", None
        else:
            if not line:
                return
            try:
                event = json.loads(line)
            except ValueError:
                event = None
        if not isinstance(event, dict) or "ev" not in event or (
                kinds is not None and event["ev"] not in kinds):
            if on_garbage is not None:
                on_garbage()
            continue
        yield event


async def read_json_lines(reader: asyncio.StreamReader, state: RunState,
                          on_event: Any = None, kinds: set | None = None) -> None:
    """The events into `state` (and `on_event`) until EOF; garbage is counted in it."""
    def garbage() -> None:
        state.garbage_lines += 1

    async for event in json_events(reader, kinds, garbage):
        state.apply_event(event)
        if on_event is not None:
            on_event(event)


async def read_output(stream: asyncio.StreamReader, keep: Any) -> None:
    """A child's stdout and stderr, line by line (300 characters at most) to `keep`: kept
    for error reports, never shown raw."""
    while True:
        line = await stream.readline()
        if not line:
            return
        keep(line.decode("utf-8", "replace").rstrip()[:300])


async def run_experiment(request: RunRequest) -> RunState:
    """Prepare, run to the end, return the final state (Refused before anything starts)."""
    return await Run(prepare(request)).run()


def reap_group(pgid: int, gone_if_not_ours: bool = False) -> bool:
    """Collect what has died in process group `pgid` (the lab is a subreaper, so its
    orphaned workers come back to it); True once nothing of the group is left. A group we
    may no longer signal counts as gone only if `gone_if_not_ours`."""
    try:
        while os.waitpid(-pgid, os.WNOHANG)[0] > 0:
            pass
    except ChildProcessError:
        pass
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return gone_if_not_ours
    return False
