"""`conlab watch -- CMD` and `conlab attach PID`: the lab's instruments on any program.

A watched command runs as the lab's child with an experiment's guarantees (its own
process group, killed by the kernel if the lab dies, reaped, nothing left; see
lab.core.runner). An attached process is only read, from /proc: never signalled, paused,
traced or written to. Both are sampled like an experiment (ProcSampler into a RunState),
so the thread views draw them unchanged, and both end in a run record (experiment
"watch") that history keeps.

Python commands get the standard-library probe (workloads.probe) through PYTHONPATH: its
events (thread names, loop lag, lock owners) arrive as JSON lines on a pipe.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import re
import shlex
import shutil
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from lab.core import diagnose as diagnosis
from lab.core.runner import (MAX_EVENT_LINE, GroupGuard, Refused, clear_group,
                             read_json_lines, start_child, stop_child)
from lab.core.sampler import CLOCK_TICK_S, Sample, make_sampler
from lab.core.state import RunState
from workloads import ENV_PROBE_FD, boot_dir

PROBE_EVENTS = {"probe_hello", "probe_threads", "loop_lag", "loop_blocked", "locks",
                "probe_bye"}
SAMPLE_INTERVAL_S = 0.25
LIVE_WINDOW_S = 3.0  # the live diagnosis looks at this much recent time
KEEP_LOGS = 20  # the newest program logs kept in the watch folder
PF_KTHREAD = 0x00200000  # /proc/PID/stat flags: a kernel thread
PYTHON_NAME = re.compile(r"(python|pypy)[0-9.]*[a-z]?\Z")
PYTHON_OPTIONS_WITH_VALUE = {"-W", "-X", "-Q"}


def watch_dir() -> str:
    """Where program logs go: beside the history when CONLAB_DATA_DIR is set (tests),
    else $XDG_STATE_HOME/conlab/watch (~/.local/state/conlab/watch)."""
    explicit = os.environ.get("CONLAB_DATA_DIR")
    if explicit:
        return os.path.join(os.path.abspath(os.path.expanduser(explicit)), "watch")
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local",
                                                            "state")
    return os.path.join(base, "conlab", "watch")


def _prune_logs(folder: str) -> None:
    try:
        logs = sorted((e for e in os.scandir(folder) if e.name.endswith(".log")),
                      key=lambda e: e.stat().st_mtime)
        for entry in logs[:-KEEP_LOGS]:
            os.unlink(entry.path)
    except OSError:
        pass


# What the command is ------------------------------------------------------------------
def resolve_command(argv: list[str]) -> str:
    """The executable's path; Refused (one line) if it is missing or cannot run."""
    if not argv or not argv[0]:
        raise Refused("watch needs a command after `--` (e.g. conlab watch -- python3 app.py)")
    name = argv[0]
    path = name if "/" in name else shutil.which(name)
    if path is None or not os.path.exists(path):
        raise Refused("command not found: %s" % shlex.quote(name))
    if os.path.isdir(path) or not os.access(path, os.X_OK):
        raise Refused("not executable: %s" % shlex.quote(path))
    return path


def python_interpreter(argv: list[str], path: str) -> str | None:
    """The Python interpreter that will run the program, if CMD is Python running a
    script, `-m module` or `-c code`, or a script whose shebang names Python."""
    if PYTHON_NAME.match(os.path.basename(path)):
        return path if _runs_a_program(argv[1:]) else None
    try:
        with open(path, "rb") as f:
            first = f.readline(256)
    except OSError:
        return None
    if not first.startswith(b"#!"):
        return None
    words = first[2:].decode("utf-8", "replace").split()
    if words and os.path.basename(words[0]) == "env":
        words = [w for w in words[1:] if not w.startswith("-")]
    if words and PYTHON_NAME.match(os.path.basename(words[0])):
        return shutil.which(words[0]) or words[0]
    return None


def _runs_a_program(args: list[str]) -> bool:
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg in PYTHON_OPTIONS_WITH_VALUE:
            skip = True
        elif arg.startswith(("-m", "-c")) or not arg.startswith("-"):
            return True
        elif arg == "-":
            return False
    return False


def check_attach(pid: int) -> str:
    """The process's name, or Refused with one line: gone, a kernel thread, a thread of
    another process, ourselves, or another user's process whose /proc we cannot read."""
    if pid <= 0:
        raise Refused("PID must be a positive whole number (got %d)" % pid)
    stat = _read("/proc/%d/stat" % pid)
    status = _read("/proc/%d/status" % pid)
    if stat is None or status is None:
        raise Refused("no process with PID %d" % pid)
    name = stat[stat.find("(") + 1:stat.rfind(")")]
    fields = stat[stat.rfind(")") + 2:].split()
    if pid == 2 or int(fields[6]) & PF_KTHREAD or int(fields[1]) == 2:
        raise Refused("PID %d (%s) is a kernel thread: nothing of it runs in user space "
                      "to watch" % (pid, name))
    tgid = _status_field(status, "Tgid:")
    if tgid and int(tgid) != pid:
        raise Refused("PID %d is a thread of process %s; attach to %s" % (pid, tgid, tgid))
    if pid == os.getpid():
        raise Refused("PID %d is this conlab itself" % pid)
    if fields[0] == "Z":
        raise Refused("PID %d (%s) has already exited (a zombie)" % (pid, name))
    try:
        os.listdir("/proc/%d/fd" % pid)
    except PermissionError:
        uid = int((_status_field(status, "Uid:") or "0").split()[0])
        try:
            owner = pwd.getpwuid(uid).pw_name
        except KeyError:
            owner = "uid %d" % uid
        raise Refused("PID %d (%s) belongs to %s; you may not read its /proc files (run "
                      "as that user)" % (pid, name, owner)) from None
    except OSError:
        raise Refused("no process with PID %d" % pid) from None
    return name


def list_processes(limit: int = 500) -> list[dict[str, Any]]:
    """The user's own processes one may attach to (for a picker): pid, name, command line,
    threads; kernel threads and this lab left out, newest first."""
    uid, me = os.getuid(), os.getpid()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        pid = int(entry)
        status = _read("/proc/%d/status" % pid)
        stat = _read("/proc/%d/stat" % pid)
        if status is None or stat is None:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        owner = (_status_field(status, "Uid:") or "-1").split()[0]
        if int(owner) != uid and uid != 0 or int(fields[6]) & PF_KTHREAD or fields[0] == "Z":
            continue
        cmdline = (_read("/proc/%d/cmdline" % pid) or "").replace("\0", " ").strip()
        found.append({"pid": pid, "name": stat[stat.find("(") + 1:stat.rfind(")")],
                      "command": cmdline[:200],
                      "threads": int(_status_field(status, "Threads:") or 1)})
    found.sort(key=lambda p: -p["pid"])
    return found[:limit]


def _read(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            return f.read(65536).decode("utf-8", "replace")
    except OSError:
        return None


def _status_field(status: str, key: str) -> str:
    for line in status.splitlines():
        if line.startswith(key):
            return line[len(key):].strip()
    return ""


def _process_cpu_s(pid: int) -> float | None:
    """CPU seconds of all of a process's threads, the ended ones included (/proc/PID/stat
    utime + stime, in clock ticks)."""
    text = _read("/proc/%d/stat" % pid)
    if text is None:
        return None
    try:
        fields = text[text.rfind(")") + 2:].split()
        return (int(fields[11]) + int(fields[12])) * CLOCK_TICK_S
    except (IndexError, ValueError):
        return None


def _exe(pid: int) -> str | None:
    try:
        return os.readlink("/proc/%d/exe" % pid).replace(" (deleted)", "")
    except OSError:
        return None


# What the probe said ----------------------------------------------------------------
@dataclass
class ProbeFacts:
    """The probe's latest word per process (pid -> event); `worst_block` keeps the
    longest loop stall seen, `status` says whether a probe runs and why not."""

    status: str = "off"
    hello: dict[int, dict] = field(default_factory=dict)
    threads: dict[int, dict[int, str]] = field(default_factory=dict)  # pid -> tid -> name
    loop_lag: dict[int, dict] = field(default_factory=dict)
    loop_blocked: dict[int, dict] = field(default_factory=dict)  # the newest
    worst_block: dict[int, dict] = field(default_factory=dict)
    locks: dict[int, dict] = field(default_factory=dict)
    blocks: deque = field(default_factory=lambda: deque(maxlen=256))  # (monotonic, event)
    bye: set = field(default_factory=set)
    events: int = 0
    dropped: int = 0  # lines that were not probe events

    def apply(self, event: dict) -> None:
        """Keep one probe event; the program could write anything on the pipe, so a
        malformed event is counted and dropped, never raised."""
        kind, pid = event.get("ev"), event.get("pid")
        if kind not in PROBE_EVENTS or not isinstance(pid, int) or isinstance(pid, bool):
            self.dropped += 1
            return
        self.events += 1
        if kind == "probe_hello":
            self.hello[pid] = event
        elif kind == "probe_threads":
            listed = event.get("threads")
            self.threads[pid] = {t["tid"]: str(t.get("name", "?"))[:100]
                                 for t in (listed if isinstance(listed, list) else [])
                                 if isinstance(t, dict) and isinstance(t.get("tid"), int)}
        elif kind == "loop_lag":
            self.loop_lag[pid] = event
        elif kind == "loop_blocked":
            event = dict(event, where=str(event.get("where", "?"))[:300],
                         lag_ms=_num(event.get("lag_ms")))
            self.loop_blocked[pid] = event
            self.blocks.append((time.monotonic(), event))
            worst = self.worst_block.get(pid)
            if worst is None or event["lag_ms"] >= worst["lag_ms"]:
                self.worst_block[pid] = event
        elif kind == "locks":
            self.locks[pid] = {key: event.get(key) if isinstance(event.get(key), dict) else {}
                               for key in ("held", "waiting", "names", "where")}
        elif kind == "probe_bye":
            self.bye.add(pid)

    def worst_block_since(self, pid: int, since: float | None) -> dict | None:
        """The longest loop stall of `pid` reported after `since` (None: ever)."""
        if since is None:
            return self.worst_block.get(pid)
        recent = [e for at, e in self.blocks if at >= since and e.get("pid") == pid]
        return max(recent, key=lambda e: _num(e.get("lag_ms")), default=None)

    def gil_enabled(self, pid: int) -> bool | None:
        value = (self.hello.get(pid) or {}).get("gil_enabled")
        return value if isinstance(value, bool) else None

    def thread_name(self, tid: int) -> str | None:
        for names in self.threads.values():
            if tid in names:
                return names[tid]
        return None


def _num(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0


# The watch ---------------------------------------------------------------------------
class Watch:
    """One watched command or attached process. Build with Watch.command() or
    Watch.attach() (both raise Refused before anything starts), then, on the event loop's
    own thread (the kernel's death signal follows the thread that forked): `await start()`,
    `await wait()` (until the target ends) or `await stop()`, then `to_record()`.

    While it runs: `.state` (a RunState: threads, processes, samples, as the thread views
    draw them), `.probe` (ProbeFacts), `diagnose()` over the last few seconds,
    `figures()`; at the end `.ended` (in words), `.exit_status` (our child only),
    `.log_path`, `.finished`."""

    def __init__(self, mode: str, *, argv: list[str] | None = None, pid: int | None = None,
                 probe: bool = False, timeout: float | None = None,
                 log_path: str | None = None, passthrough: bool = False,
                 python: str | None = None, name: str = "") -> None:
        self.mode = mode  # "command" or "attach"
        self.argv = list(argv or [])
        self.target_pid = pid
        self.timeout = timeout
        self.log_path = log_path
        self.passthrough = passthrough
        self.python = python  # the interpreter running it, when known to be Python
        self.name = name
        self.probe = ProbeFacts()
        self.probe_wanted = probe
        shown = shlex.join(self.argv) if mode == "command" else "attach %d (%s)" % (pid, name)
        self.state = RunState(experiment="watch", params={"mode": mode, "command": shown},
                              python=python or "")
        self.exit_status: int | None = None  # the program's own, only for our child
        self.ended: str | None = None  # why the watch ended, in words
        self.started_wall = 0.0
        self._process: asyncio.subprocess.Process | None = None
        self._guard: GroupGuard | None = None
        self._tasks: list[asyncio.Task] = []
        self._stop_reason: str | None = None
        self._gone = asyncio.Event()  # the target is gone (or we stopped watching)
        self._samples: deque = deque(maxlen=int(LIVE_WINDOW_S / SAMPLE_INTERVAL_S) + 4)
        self._first: Sample | None = None
        self._first_seen: dict[int, float] = {}  # tid -> when a sample first saw it
        self._process_cpu: dict[float, dict[int, float]] = {}  # sample ts -> pid -> cpu s
        self._process_cpu_last: dict[int, float] = {}
        self._load_start: tuple | None = None
        self._load_end: tuple | None = None
        # The CPUs' reading taken with the newest sample: the watched tree's CPU is known
        # only up to that sample, so other programs' share is measured up to it too.
        self._load_at_sample: tuple | None = None
        self._interpreters: dict[str, Any] = {}
        self._done = False

    # Construction (every refusal before anything starts) -------------------------------
    @classmethod
    def command(cls, argv: list[str], probe: bool = True, timeout: float | None = None,
                log_path: str | None = None, passthrough: bool = False) -> "Watch":
        path = resolve_command(argv)
        if timeout is not None and not 0 < timeout <= 24 * 3600:
            raise Refused("--timeout must be a number of seconds from 0 to 86400 (got %g)"
                          % timeout)
        if log_path is not None:
            folder = os.path.dirname(os.path.abspath(log_path))
            if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
                raise Refused("--log %s: its folder does not exist or is not writable"
                              % shlex.quote(log_path))
        python = python_interpreter(argv, path)
        watch = cls("command", argv=[path] + list(argv[1:]), probe=probe, timeout=timeout,
                    log_path=log_path, passthrough=passthrough, python=python,
                    name=os.path.basename(path))
        watch.argv[0] = argv[0]  # shown and run as the user typed it (PATH lookup is the same)
        watch.state.params["command"] = shlex.join(watch.argv)
        return watch

    @classmethod
    def attach(cls, pid: int) -> "Watch":
        name = check_attach(pid)
        exe = _exe(pid)
        python = exe if exe and PYTHON_NAME.match(os.path.basename(exe)) else None
        return cls("attach", pid=pid, python=python, name=name)

    # Lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        self._load_start = self._load_now()
        self.started_wall = time.time()
        if self.mode == "command":
            await self._start_command()
        else:
            self.state.pid = self.target_pid
            self.state.started_at = time.monotonic()
            self.probe.status = ("not available on attach: the probe is loaded at start-up, "
                                 "and reading Python's own state from outside would mean "
                                 "ptrace or pausing the process")
        self.state.status = "running"
        if self._stop_reason and self._process is not None:  # stopped while it started
            await stop_child(self._process)
        self._tasks.append(asyncio.create_task(self._sample()))
        if self.timeout:
            self._tasks.append(asyncio.create_task(self._watchdog()))

    async def _start_command(self) -> None:
        env = dict(os.environ)  # the user's own environment: only the probe adds to it
        pass_fds: tuple[int, ...] = ()
        read_fd = write_fd = None
        if self.python and self.probe_wanted:
            read_fd, write_fd = os.pipe()
            env[ENV_PROBE_FD] = str(write_fd)
            env["PYTHONPATH"] = os.pathsep.join(
                [boot_dir()] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
            pass_fds = (write_fd,)
            self.probe.status = "on"
        elif self.python:
            self.probe.status = "off: --no-probe"
        else:
            self.probe.status = "off: not a Python program"
        log = None
        if not self.passthrough:
            try:
                log = self._open_log()
            except OSError as exc:
                for fd in (read_fd, write_fd):
                    if fd is not None:
                        os.close(fd)
                raise Refused("cannot write the program's log %s: %s" % (
                    self.log_path, exc.strerror or exc)) from None
        # Passed through: the terminal's stdout, or stderr when our stdout carries JSON.
        out = log if log is not None else (2 if self.passthrough == "stderr" else None)
        try:
            self._process = await start_child(self.argv, env, stdout=out,
                                              stderr=log if log is not None else None,
                                              pass_fds=pass_fds, die_with_lab=True)
        except OSError as exc:
            if read_fd is not None:
                os.close(read_fd)
            raise Refused("cannot start %s: %s" % (shlex.quote(self.argv[0]),
                                                   exc.strerror or exc)) from None
        finally:
            if write_fd is not None:
                os.close(write_fd)
            if log is not None:
                log.close()
        self.state.pid = self._process.pid
        self.state.started_at = time.monotonic()
        try:
            self._guard = await GroupGuard.start(self._process.pid)
        except OSError:
            await stop_child(self._process)  # without a guard it could outlive us
            raise Refused("cannot start the watchman that stops %s with the lab"
                          % shlex.quote(self.argv[0])) from None
        self._tasks.append(asyncio.create_task(self._reap()))
        if read_fd is not None:
            loop = asyncio.get_running_loop()
            reader = asyncio.StreamReader(limit=MAX_EVENT_LINE)
            await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader),
                                         os.fdopen(read_fd, "rb", 0))
            self._tasks.append(asyncio.create_task(
                read_json_lines(reader, self.state, self.probe.apply, PROBE_EVENTS)))

    def _open_log(self):
        if self.log_path is None:
            folder = watch_dir()
            os.makedirs(folder, exist_ok=True)
            _prune_logs(folder)
            self.log_path = os.path.join(folder, "%s-%s.log" % (
                time.strftime("%Y%m%d-%H%M%S"), re.sub(r"[^\w.-]", "_", self.name)[:40]))
        return open(self.log_path, "ab")

    async def wait(self) -> RunState:
        """Until the target ends or stop() is called; then the figures are final."""
        await self._gone.wait()
        if self._process is not None:
            await self._process.wait()
            await clear_group(self._process.pid)
            if self._guard is not None:
                await self._guard.release()
        self._load_end = self._load_end or self._load_now()
        for task in self._tasks:
            if not task.done():
                task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._finish()
        return self.state

    async def stop(self, reason: str = "stopped") -> None:
        """Stop watching; a watched command is stopped too (SIGTERM, then SIGKILL to its
        group). An attached process is left alone."""
        if self._gone.is_set():
            return
        self._stop_reason = self._stop_reason or reason
        self._load_end = self._load_now()
        if self._process is not None:
            await stop_child(self._process)
        elif self.mode == "attach":
            self._gone.set()  # an attached process is left alone: we only stop looking

    @property
    def finished(self) -> bool:
        return self._done

    # Internals -------------------------------------------------------------------------
    async def _reap(self) -> None:
        self.exit_status = await self._process.wait()
        self._gone.set()

    async def _watchdog(self) -> None:
        await asyncio.sleep(self.timeout)
        await self.stop("timeout")

    async def _sample(self) -> None:
        sampler = make_sampler(self.state.pid)
        self.state.sampler_source = sampler.source
        while not self._gone.is_set():
            sample = sampler.sample()
            if self.mode == "attach" and self.state.pid not in sample.processes:
                self._gone.set()  # it ended (or is a zombie waiting for its parent)
                return
            if sample.processes or sample.threads:
                self._apply(sample)
            await asyncio.sleep(SAMPLE_INTERVAL_S)

    def _apply(self, sample: Sample) -> None:
        if self._first is None:
            self._first = sample
        for tid in sample.threads:
            self._first_seen.setdefault(tid, sample.ts)
        # A process's own CPU clock counts its ended threads too (a server's thread per
        # request lives less than a sampling interval); keyed by the sample's time.
        self._process_cpu[sample.ts] = {pid: cpu for pid in sample.processes
                                        for cpu in [_process_cpu_s(pid)] if cpu is not None}
        self._process_cpu_last.update(self._process_cpu[sample.ts])
        kept = {s.ts for s in self._samples} | {self._first.ts, sample.ts}
        for ts in [ts for ts in self._process_cpu if ts not in kept]:
            del self._process_cpu[ts]
        self.state.apply_sample(sample)
        for pid, proc in sample.processes.items():  # a name changes at exec (a shim, a wrapper)
            self.state.processes[pid].name = proc.name
        for tid, view in self.state.threads.items():  # Python's names beat the kernel's
            name = self.probe.thread_name(tid)
            if name:
                view.name = name
        self._samples.append(sample)
        self._load_at_sample = self._load_now()

    def _finish(self) -> None:
        state = self.state
        state.ended_at = time.monotonic()
        state.exit_code = self.exit_status
        reason = self._stop_reason
        if reason == "timeout":
            self.ended = "stopped by --timeout after %g s" % self.timeout
            state.status, state.error = "timeout", self.ended
        elif reason == "interrupted":
            self.ended = "interrupted"
            state.status = "stopped"
        elif reason is not None:
            self.ended = ("stopped at the end of the watch" if self.mode == "command"
                          else "watch ended; the process runs on")
            state.status = "done"
        elif self.mode == "command":
            code = self.exit_status
            self.ended = ("exited with status %d" % code if code is not None and code >= 0
                          else "killed by signal %d" % -(code or 0))
            state.status = "done"
        else:
            self.ended = "ended"  # not our child: its exit status is its parent's to read
            state.status = "done"
        state.version += 1
        self._done = True

    def _load_now(self) -> tuple:
        return diagnosis.load_reading()

    # Figures ---------------------------------------------------------------------------
    def figures(self, window_s: float | None = None) -> dict[str, Any]:
        """Per-thread deltas over the last `window_s` seconds (None: the whole watch), with
        the processes' latest RSS, fds and thread counts: what diagnose() reads."""
        state = self.state
        if not self._samples:
            return {"wall_s": 0.0, "threads": [], "processes": {}, "root": state.pid}
        newest = self._samples[-1]
        if window_s is None:
            # A command's threads started from zero with it; an attached process had a past.
            base = self._first if self.mode == "attach" else None
            start = self._first.ts if base is not None else state.started_at
            views = state.threads.values()
        else:
            base = next((s for s in self._samples if s.ts >= newest.ts - window_s),
                        self._samples[0])
            if base is newest and len(self._samples) > 1:
                base = self._samples[-2]
            start = base.ts
            views = [v for tid, v in state.threads.items() if tid in newest.threads]
        end = newest.ts if (window_s is not None or not state.ended_at) else max(
            newest.ts, min(state.ended_at, newest.ts + SAMPLE_INTERVAL_S))
        threads = []
        for view in views:
            before = base.threads.get(view.tid) if base is not None else None
            if before is None and base is not None and window_s is None and self._first \
                    and view.sampled_at and view.sampled_at <= self._first.ts:
                continue  # cannot happen often: seen first but missing from the first sample
            first = self._first_seen.get(view.tid, start)
            if self.mode == "command" and self._first and first <= self._first.ts:
                first = min(first, state.started_at)  # there since the program started
            last = end if view.alive else min(view.sampled_at + SAMPLE_INTERVAL_S / 2, end)
            threads.append({
                "pid": view.pid, "tid": view.tid, "name": view.name, "alive": view.alive,
                "lifetime_s": max(SAMPLE_INTERVAL_S / 2, last - max(first, start)),
                "cpu_s": max(0.0, view.cpu_s - (before.cpu_s if before else 0.0)),
                "run_delay_s": None if view.run_delay_s is None else max(
                    0.0, view.run_delay_s - ((before.run_delay_s or 0.0) if before else 0.0)),
                "voluntary": max(0, (view.voluntary or 0) - ((before.voluntary or 0)
                                                              if before else 0)),
                "involuntary": max(0, (view.involuntary or 0) - ((before.involuntary or 0)
                                                                  if before else 0)),
            })
        processes = {}
        cpu_then = self._process_cpu.get(base.ts, {}) if base is not None else {}
        cpu_now = self._process_cpu_last if window_s is None else self._process_cpu.get(
            newest.ts, {})
        for pid, proc in state.processes.items():
            process_cpu = None
            if pid in cpu_now and (base is None or pid in cpu_then or
                                   self._first_seen_process(pid, base.ts)):
                process_cpu = max(0.0, cpu_now[pid] - cpu_then.get(pid, 0.0))
            processes[pid] = {
                "process_cpu_s": process_cpu,
                "pid": pid, "name": proc.name, "alive": pid in newest.processes,
                "ppid": newest.processes[pid].ppid if pid in newest.processes else None,
                "rss_bytes": proc.rss_bytes, "num_fds": proc.num_fds,
                "threads_now": proc.num_threads,
                "python": self._python_facts(pid),
            }
        return {"wall_s": max(0.0, end - start), "threads": threads, "processes": processes,
                "root": state.pid, "since": None if window_s is None else start}

    def _first_seen_process(self, pid: int, since: float) -> bool:
        """Did `pid` appear after `since` (so its CPU clock started inside the window)?"""
        return all(pid not in cpu for ts, cpu in self._process_cpu.items() if ts <= since)

    def _python_facts(self, pid: int) -> dict[str, Any] | None:
        """Is this process Python, and does it have a GIL? From the probe when it spoke,
        else from its executable's build (a free-threaded build's GIL state is unknown)."""
        hello = self.probe.hello.get(pid)
        if hello:
            return {"gil_enabled": self.probe.gil_enabled(pid),
                    "free_threaded": hello.get("free_threaded"), "source": "probe"}
        exe = _exe(pid) if pid != self.state.pid or not self.python else self.python
        if not exe or not PYTHON_NAME.match(os.path.basename(exe)):
            return None
        interp = self._interpreter(exe)
        if interp is None:
            return {"gil_enabled": None, "free_threaded": None, "source": "executable name"}
        return {"gil_enabled": None if interp.free_threaded else interp.gil_enabled,
                "free_threaded": interp.free_threaded, "source": "interpreter build",
                "version": interp.version_text, "implementation": interp.implementation,
                "executable": interp.executable}

    def _interpreter(self, exe: str):
        if exe not in self._interpreters:
            from lab.core.interpreters import InterpreterError, probe

            try:
                self._interpreters[exe] = probe(exe)
            except (InterpreterError, OSError):
                self._interpreters[exe] = None
        return self._interpreters[exe]

    def load(self) -> dict[str, Any]:
        """Other programs' share of the usable CPUs while we watched."""
        end = self._load_at_sample or self._load_end or self._load_now()
        figures = self.figures()
        watched = sum(t["cpu_s"] for t in figures["threads"])
        return diagnosis.load_block(self._load_start, end, watched)

    def diagnose(self, window_s: float | None = LIVE_WINDOW_S) -> list[dict[str, Any]]:
        """The diagnosis per process over the last `window_s` seconds (None: all of it)."""
        return diagnosis.diagnose_figures(self.figures(window_s), self.probe,
                                          self.load() if window_s is None else None)

    def to_record(self) -> dict[str, Any]:
        from lab.core.watch_record import build_watch_record

        return build_watch_record(self)
