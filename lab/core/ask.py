"""Ask a short-lived program something (an interpreter its version, a tool its version):
bounded time, bounded output, nothing left behind.

The program is not trusted: it may print anything, print forever, hang, or fork children
that hang. So it runs in a process group of its own, led by a small guard process that
waits on a pipe from the lab: if the lab dies, even by SIGKILL, the pipe closes and the guard
kills the whole group (a death signal would reach only the program, not what it forks).
The program also asks the kernel to kill it when the lab dies (PR_SET_PDEATHSIG, set between
fork and exec by the helper the experiment children use). Once it answers, overflows or runs
out of time, the lab kills the group itself and reaps it.
"""

from __future__ import annotations

import errno
import functools
import os
import selectors
import signal
import subprocess
import time
from dataclasses import dataclass

from workloads import die_with_parent, rlimit

MAX_ANSWER_BYTES = 64 * 1024

# Leads the group: waits until the lab closes the pipe (or dies), then kills the group.
# A shell starts in a millisecond; a second Python would add tens on a busy machine.
SHELL = "/bin/sh"
_GUARD = "trap '' INT; while read -r line; do :; done; kill -s KILL 0"


class AskError(Exception):
    """No answer; the message completes "<program> ..." (e.g. "did not answer within 10 s")."""


class CannotStart(AskError):
    """The lab could not create a process at all (not the program's fault)."""


@dataclass
class Answer:
    returncode: int
    stdout: bytes


def cannot_start_message(exc: OSError) -> str:
    """One line for a fork that failed for lack of processes or memory."""
    if exc.errno == errno.EAGAIN:
        soft, _hard = rlimit("NPROC")
        if soft is not None:
            return ("cannot start a process: the user's process limit (RLIMIT_NPROC %d, "
                    "see `ulimit -u`) is reached" % soft)
        return "cannot start a process: a process limit is reached (the kernel said EAGAIN)"
    return "cannot start a process: out of memory"


def _spawn(argv: list[str], **kwargs) -> subprocess.Popen:
    try:
        return subprocess.Popen(argv, **kwargs)
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.ENOMEM):
            raise CannotStart(cannot_start_message(exc)) from None
        raise


def _start_guard() -> tuple[subprocess.Popen | None, int | None]:
    """The guard (leading a new group) and the pipe end that keeps it waiting; (None, None)
    without a shell (the program then has only its death signal)."""
    if not os.access(SHELL, os.X_OK):
        return None, None
    read_end, write_end = os.pipe()
    try:
        guard = _spawn([SHELL, "-c", _GUARD], stdin=read_end,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       env={"PATH": os.defpath}, preexec_fn=_new_group)
    except BaseException:
        os.close(write_end)
        raise
    finally:
        os.close(read_end)
    return guard, write_end


def _new_group() -> None:
    os.setpgid(0, 0)


def _join_group(pgid: int, parent: int) -> None:
    if pgid:
        os.setpgid(0, pgid)
    else:
        os.setsid()
    die_with_parent(parent)


def ask(argv: list[str], timeout_s: float, max_bytes: int = MAX_ANSWER_BYTES,
        env: dict[str, str] | None = None) -> Answer:
    """Run `argv` (stdin empty, stderr dropped) and return what it printed.

    Raises CannotStart when no process can be created, AskError when the program cannot be
    run, prints more than `max_bytes`, or has not finished within `timeout_s`.
    """
    guard, guard_fd = _start_guard()
    group = guard.pid if guard is not None else 0
    child = None
    try:
        try:
            child = _spawn(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, env=env,
                           preexec_fn=functools.partial(_join_group, group, os.getpid()))
        except OSError as exc:
            raise AskError("cannot be run: %s" % (exc.strerror or exc)) from None
        deadline = time.monotonic() + timeout_s
        out = _read_bounded(child, deadline, max_bytes, timeout_s)
        try:  # it may have closed its output and gone on running
            code = child.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            code = None
        if code is None:
            raise AskError(_late(timeout_s))
        return Answer(code, out)
    finally:
        _kill_and_reap(group or (child.pid if child else 0), [p for p in (child, guard) if p])
        if guard_fd is not None:
            os.close(guard_fd)


def _late(timeout_s: float) -> str:
    return "did not answer within %.3g s" % timeout_s


def _read_bounded(child: subprocess.Popen, deadline: float, max_bytes: int,
                  timeout_s: float) -> bytes:
    """stdout until the program ends (or closes it); AskError on overflow or timeout."""
    fd = child.stdout.fileno()
    os.set_blocking(fd, False)
    chunks, size = [], 0
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AskError(_late(timeout_s))
            exited = child.poll() is not None  # checked before reading: nothing is missed
            ready = sel.select(min(left, 0.05))
            data = _drain(fd, max_bytes - size + 1) if ready or exited else b""
            if data is None:  # end of file
                break
            chunks.append(data)
            size += len(data)
            if size > max_bytes:
                raise AskError("printed more than %d KiB" % (max_bytes // 1024))
            if exited and not data:
                break  # ended; a child it left may hold the pipe open, it is killed below
    return b"".join(chunks)


def _drain(fd: int, limit: int) -> bytes | None:
    """What can be read now, up to `limit` bytes; None at end of file."""
    chunks, size = [], 0
    while size < limit:
        try:
            data = os.read(fd, min(65536, limit - size))
        except BlockingIOError:
            break
        if not data:
            return b"".join(chunks) if chunks else None
        chunks.append(data)
        size += len(data)
    return b"".join(chunks)


def _kill_and_reap(group: int, ours: list[subprocess.Popen]) -> None:
    """SIGKILL the whole group (guard, program and whatever it forked), reap our children,
    and collect any of the group re-parented to the lab (it may be a subreaper)."""
    if group:
        try:
            os.killpg(group, signal.SIGKILL)
        except OSError:
            pass
    for process in ours:
        if process.stdout:
            process.stdout.close()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:  # stuck in the kernel; subprocess reaps it later
            pass
    deadline = time.monotonic() + 1.0
    while group and time.monotonic() < deadline:
        try:
            while os.waitpid(-group, os.WNOHANG)[0] > 0:
                pass
        except ChildProcessError:  # none of the group is ours (any more)
            return
        time.sleep(0.005)
