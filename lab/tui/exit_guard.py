"""A hard deadline on leaving: once the lab is asked to go (q, ctrl+c, SIGTERM, SIGHUP, the
terminal gone), the process is gone a few seconds later whatever Textual's driver does.

Why: when the terminal disappears (a dropped SSH link, tmux kill-session), the driver's
writer thread can no longer drain, and App._shutdown may block for ever in
driver.close() -> WriterThread.stop() -> Queue.put(None). Nothing the event loop does can
help then, so the guard is a daemon thread of its own. It never forks (children are
forked from the loop's thread only: PR_SET_PDEATHSIG is tied to the forking thread).

Armed, it waits for the runs to be stopped and reaped by the normal path, then SIGKILLs
and reaps whatever is left (`sweep`), restores the terminal if it still exists, and
calls os._exit. `arm` takes no lock, starts no thread and allocates nothing shared, so it
is safe inside a signal handler even when the main thread is stuck holding a lock.
"""

from __future__ import annotations

import os
import select
import threading
import time
from typing import Callable

GONE_DEADLINE_S = 2.5  # terminal gone: the lab promises to be gone within 3 s
QUIT_DEADLINE_S = 8.0  # terminal still there: time for the clean shutdown to finish
AFTER_REAPED_S = 1.0  # terminal gone, runs reaped: time for the clean exit (records saved)
SWEEP_S = 0.4  # what the last sweep may take (SIGKILL, then reap)
POLL_S = 0.05


def terminal_gone(fd: int) -> bool:
    """True once the terminal on `fd` is hung up or its other end is closed."""
    poller = select.poll()
    try:
        poller.register(fd, select.POLLOUT)
        events = poller.poll(0)
    except (OSError, ValueError):
        return True
    return any(mask & (select.POLLHUP | select.POLLERR | select.POLLNVAL) for _, mask in events)


class ExitGuard:
    """`arm()` when leaving starts; `runs_reaped()` when the runs are all gone."""

    def __init__(self, sweep: Callable[[float], None], restore: Callable[[], None] | None = None,
                 fd: int = 1, exit_code: int = 0) -> None:
        self._sweep = sweep  # stop and reap every child, within the seconds given
        self._restore = restore  # put the terminal back (only called if it still exists)
        self._fd = fd
        self.exit_code = exit_code
        self.deadline: float | None = None
        self.gone = False
        self.reaped_at: float | None = None
        self._wake_r, self._wake_w = os.pipe()
        self._thread = threading.Thread(target=self._watch, name="conlab-exit-guard",
                                        daemon=True)
        self._thread.start()  # idle, blocked on the pipe, until armed

    @property
    def armed(self) -> bool:
        return self.deadline is not None

    def arm(self, gone: bool = False) -> None:
        """Start the clock, or shorten it (`gone`: the terminal is known to be gone)."""
        limit = time.monotonic() + (GONE_DEADLINE_S if gone else QUIT_DEADLINE_S)
        self.gone = self.gone or gone
        if self.deadline is None or limit < self.deadline:
            self.deadline = limit
        try:
            os.write(self._wake_w, b"!")
        except OSError:
            pass

    def runs_reaped(self) -> None:
        if self.reaped_at is None:
            self.reaped_at = time.monotonic()

    def _watch(self) -> None:
        os.read(self._wake_r, 1)
        while True:
            if not self.gone and terminal_gone(self._fd):
                self.arm(gone=True)
            now = time.monotonic()
            leave_at = self.deadline - SWEEP_S
            if self.gone and self.reaped_at is not None:
                leave_at = min(leave_at, self.reaped_at + AFTER_REAPED_S)
            if now >= leave_at:
                break
            time.sleep(POLL_S)
        self._leave()

    def _leave(self) -> None:
        try:
            self._sweep(SWEEP_S)
        finally:
            if self._restore is not None and not terminal_gone(self._fd):
                # A terminal that stopped reading could block the write: give up after a moment.
                restorer = threading.Thread(target=self._restore_quietly, daemon=True)
                restorer.start()
                restorer.join(0.3)
            os._exit(self.exit_code)

    def _restore_quietly(self) -> None:
        try:
            self._restore()
        except Exception:
            pass


# What Textual's driver would write on leaving: keyboard protocol off, main screen,
# cursor shown, focus events, bracketed paste and every mouse mode off.
RESTORE_SEQUENCE = (b"\x1b[<u\x1b[?1049l\x1b[?25h\x1b[?1004l\x1b[?2004l"
                    b"\x1b[?1000l\x1b[?1002l\x1b[?1003l\x1b[?1006l\x1b[?1015l\x1b[?2048l")


def restore_terminal(fd: int, attrs) -> None:
    """Terminal modes back as they were (`attrs` from termios.tcgetattr), screen restored."""
    import termios

    if attrs is not None:
        try:
            termios.tcsetattr(fd, termios.TCSANOW, attrs)
        except termios.error:
            pass
    os.write(fd, RESTORE_SEQUENCE)
