"""`conlab` on a real pseudo-terminal, as a login would run it: the pty is the lab's
controlling terminal, so closing our end (hang_up) is what a dropped SSH link does: the
kernel sends SIGHUP and every later write to the terminal fails with EIO.

Used by the pty tests and by benchmarks/ssh_drop.py.
"""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import termios
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Runs in the new session (start_new_session) before the lab: the slave on fd 0 becomes
# its controlling terminal, as login does (a wrapper rather than preexec_fn, which is
# unsafe in a threaded parent). Then `prelude` (test code run inside the lab's process),
# and the lab itself: exec'd, or run in place when there is a prelude.
_TAKE_TERMINAL = "import fcntl, os, sys, termios; fcntl.ioctl(0, termios.TIOCSCTTY, 0)\n"
_EXEC_LAB = "os.execv(sys.executable, [sys.executable, '-m', 'lab'] + sys.argv[1:])\n"
_RUN_LAB = "import runpy; runpy.run_module('lab', run_name='__main__', alter_sys=True)\n"

# A prelude for the lab: Textual's driver never finishes closing (its output thread can
# no longer drain), the state the SSH drop left it in. The lab must leave anyway.
DRIVER_NEVER_CLOSES = ("import threading, textual.drivers._writer_thread as w\n"
                       "w.WriterThread.stop = lambda self: threading.Event().wait()\n")


class Terminal:
    """`python -m lab ARGS` on an 80x24 pty; output drained in the background."""

    def __init__(self, tag: str, *args: str, size: tuple[int, int] = (80, 24),
                 prelude: str = "") -> None:
        master, slave = pty.openpty()
        cols, rows = size
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        env = {**os.environ, "TERM": "xterm-256color", "CONLAB_TEST_TAG": tag}
        env.pop("NO_COLOR", None)
        code = _TAKE_TERMINAL + (prelude + _RUN_LAB if prelude else _EXEC_LAB)
        self.proc = subprocess.Popen([sys.executable, "-c", code, *args], stdin=slave,
                                     stdout=slave, stderr=slave, cwd=ROOT, env=env,
                                     start_new_session=True)
        os.close(slave)
        self.master = master
        self.output = bytearray()
        self._stop = threading.Event()
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def _drain(self) -> None:
        # select with a timeout, never a blocking read: a read in progress holds the
        # master open, and hang_up() must be able to close it for real.
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([self.master], [], [], 0.05)
                if not ready:
                    continue
                chunk = os.read(self.master, 65536)
            except (OSError, ValueError):
                return
            if not chunk:
                return
            self.output += chunk

    def send(self, keys: bytes) -> None:
        os.write(self.master, keys)

    def seen(self, text: str) -> bool:
        return text.encode() in self.output

    def hang_up(self, signal_first: bool = False) -> None:
        """Close the terminal under the lab, as sshd does when the link drops (the kernel
        sends SIGHUP). `signal_first`: SIGHUP the lab's process group a moment before,
        as tmux kill-session and a login shell's own SIGHUP forwarding do."""
        if signal_first:
            try:
                os.killpg(self.proc.pid, signal.SIGHUP)
            except ProcessLookupError:
                pass
        self._stop.set()
        self._reader.join()
        self._close_master()

    def _close_master(self) -> None:
        if self.master >= 0:
            try:
                os.close(self.master)
            except OSError:
                pass
            self.master = -1

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._stop.set()
        self._reader.join()
        self._close_master()


# Dropping the link at a chosen moment ------------------------------------------------------
SCENARIOS = ("run-all", "io-bound", "decision")


def start_runs(term: Terminal, scenario: str, timeout: float = 30.0) -> None:
    """From the first frame: `a` on the dashboard, or open an experiment and `r`.
    Returns as soon as the key that starts the runs has been sent."""
    import workloads
    from lab.tui.screens.experiments import option_ids
    from tests.helpers import wait_for

    wait_for(lambda: term.seen("Threads & the GIL"), timeout, "the first frame")
    if scenario == "run-all":
        term.send(b"a")
        return
    term.send(b"e")
    wait_for(lambda: term.seen("Experiments (enter opens"), timeout, "the experiment list")
    term.send(b"\x1b[B" * option_ids(workloads.experiment_names()).index(scenario) + b"\r")
    wait_for(lambda: term.seen(scenario + " \u00b7"), timeout, "the %s screen" % scenario)
    term.send(b"r")


def drop_and_watch(term: Terminal, tag: str, limit: float = 3.0, patience: float = 10.0,
                   signal_first: bool = False):
    """Hang up the terminal; return (seconds until the lab exited, or None if it was still
    there after `patience` s; the pids of its workloads alive when we stopped looking:
    once the lab and its workloads are gone, or `limit` s after the drop, or at `patience`)."""
    import time

    from tests.helpers import alive, workload_processes

    children = [p.pid for p in workload_processes(tag)]
    term.hang_up(signal_first)
    dropped = time.monotonic()
    exited = None
    while time.monotonic() - dropped < patience:
        if exited is None and term.proc.poll() is not None:
            exited = time.monotonic() - dropped
        if exited is not None and time.monotonic() - dropped >= limit:
            break
        if exited is not None and not workload_processes(tag) and not alive(children):
            break
        time.sleep(0.02)
    survivors = sorted(set(alive(children)) | {p.pid for p in workload_processes(tag)})
    return exited, survivors


class TmuxTerminal:
    """The same lab in a tmux session of its own server: `hang_up` is tmux kill-server,
    the way the SSH drop was first seen. Same interface as Terminal."""

    def __init__(self, tag: str, *args: str, size: tuple[int, int] = (80, 24)) -> None:
        import shlex

        import psutil

        self.socket = "conlab-test-" + tag[:12]
        env = {"CONLAB_TEST_TAG": tag}
        if os.environ.get("CONLAB_DATA_DIR"):
            env["CONLAB_DATA_DIR"] = os.environ["CONLAB_DATA_DIR"]
        command = "exec env %s %s -m lab %s" % (
            " ".join("%s=%s" % (k, shlex.quote(v)) for k, v in env.items()),
            shlex.quote(sys.executable), " ".join(shlex.quote(a) for a in args))
        self._tmux("new-session", "-d", "-s", "lab", "-x", str(size[0]), "-y", str(size[1]),
                   "-c", str(ROOT), command)
        pid = int(self._tmux("display-message", "-p", "-t", "lab", "#{pane_pid}").strip())
        self.proc = _Watched(psutil.Process(pid))
        self._screen = ""

    def _tmux(self, *args: str) -> str:
        done = subprocess.run(["tmux", "-L", self.socket, "-f", "/dev/null", *args],
                              capture_output=True, text=True, stdin=subprocess.DEVNULL,
                              timeout=10)
        return done.stdout if done.returncode == 0 else ""

    def send(self, keys: bytes) -> None:
        names = {b"\r": "Enter", b"\x1b[B": "Down", b"\x03": "C-c"}
        for key in [keys] if keys in names else _split(keys):
            if key in names:
                self._tmux("send-keys", "-t", "lab", names[key])
            else:
                self._tmux("send-keys", "-t", "lab", "-l", key.decode())

    def seen(self, text: str) -> bool:
        if text not in self._screen:
            self._screen = self._tmux("capture-pane", "-p", "-t", "lab")
        return text in self._screen

    def hang_up(self, signal_first: bool = False) -> None:
        self._tmux("kill-session", "-t", "lab")

    def close(self) -> None:
        self._tmux("kill-server")
        if self.proc.poll() is None:
            self.proc.kill()


def _split(keys: bytes) -> list[bytes]:
    out, rest = [], keys
    while rest:
        for special in (b"\x1b[B", b"\r"):
            if rest.startswith(special):
                out.append(special)
                rest = rest[len(special):]
                break
        else:
            out.append(rest[:1])
            rest = rest[1:]
    return out


class _Watched:
    """poll/kill/pid for a process that is not our child (tmux's)."""

    def __init__(self, process) -> None:
        self._process = process
        self.pid = process.pid
        self.returncode = None

    def poll(self):
        import psutil

        try:
            if self._process.status() != psutil.STATUS_ZOMBIE:
                return None
        except psutil.NoSuchProcess:
            pass
        self.returncode = 0 if self.returncode is None else self.returncode
        return self.returncode

    def kill(self) -> None:
        try:
            self._process.kill()
        except Exception:
            pass
