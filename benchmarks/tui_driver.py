"""Helpers for the TUI benchmarks: the lab's real app with a chosen pane list (run inside
a pseudo-terminal), and a pty harness that counts the bytes an app writes.

    python benchmarks/tui_driver.py --panes long --autorun     # the app itself (in a pty)
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import pty
import struct
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CLK_TCK = os.sysconf("SC_CLK_TCK")


def pane_sets():
    from lab.tui.screens.dashboard import PANES, PaneSpec  # noqa: E402

    gil = PaneSpec("Threads & the GIL", "gil-cpu",
                   {"work": 30_000_000, "tasks": 2, "modes": "all"})
    long = (
        PaneSpec("Threads & the GIL", "gil-cpu",
                 {"work": 60_000_000, "tasks": 2, "modes": "all"}),
        PaneSpec("Event loop", "loop-freeze", {"duration_s": 30.0, "blocks": 10}),
        PaneSpec("Race", "race", {"threads": 4, "increments": 2_000_000}),
        PaneSpec("Processes", "gil-cpu",
                 {"work": 120_000_000, "tasks": 4, "modes": "processes"}),
    )
    return {
        "long": long,
        # The same, with the event-loop pane left idle: what the lab's own views cost.
        "long-no-loop": long[:1] + (PaneSpec("Event loop", "-idle-", {}),) + long[2:],
        "default": PANES,
        # One gil-cpu run drawn live, the other panes idle: the observer-effect benchmark.
        "gil": (gil,) + tuple(PANES[1:]),
    }


def run_app(argv: list[str]) -> int:
    """The real LabApp, with the chosen panes; optionally runs them all once drawn."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--panes", default="default")
    parser.add_argument("--autorun", action="store_true")
    parser.add_argument("--refresh-hz", type=float, default=4.0)
    parser.add_argument("--low-bandwidth", action="store_true")
    parser.add_argument("--results", help="append one JSON line per finished run here")
    parser.add_argument("--only", type=int, default=None, help="run only this pane index")
    args = parser.parse_args(argv)

    from lab.tui.app import LabApp
    from lab.tui.live import RunController
    from lab.tui.screens.dashboard import DashboardScreen

    panes = pane_sets()[args.panes]

    def finished(key, state):
        if args.results:
            with open(args.results, "a") as out:
                out.write(json.dumps({"key": key, "experiment": state.experiment,
                                      "status": state.status, "result": state.result}) + "\n")

    class BenchApp(LabApp):
        def get_default_screen(self):
            return DashboardScreen(panes)

        def on_ready(self) -> None:
            if args.only is not None:
                screen = self.screen
                screen._start(screen.panes[args.only])
            elif args.autorun:
                self.screen.action_run_all()

    app = BenchApp(refresh_hz=args.refresh_hz, low_bandwidth=args.low_bandwidth,
                   handle_signals=True,
                   controller=RunController(save_records=False, on_finish=finished))
    try:
        app.run(mouse=False)
    finally:
        app.controller.kill_leftovers()
    return 0


class PtyProcess:
    """A command on an 80x24 pseudo-terminal; counts what it writes, timestamped."""

    def __init__(self, command: list[str], cols: int = 80, rows: int = 24,
                 env: dict | None = None) -> None:
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        full_env = {**os.environ, "TERM": "xterm-256color", **(env or {})}
        self.started = time.monotonic()
        self.proc = subprocess.Popen(command, stdin=slave, stdout=slave, stderr=slave,
                                     env=full_env, cwd=ROOT, start_new_session=True)
        os.close(slave)
        self.master = master
        self.output = bytearray()
        self.bytes = 0
        self._lock = threading.Lock()
        self._marks: list[tuple[str, float]] = []
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        while True:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:
                return
            if not chunk:
                return
            with self._lock:
                self.bytes += len(chunk)
                if len(self.output) < 4_000_000:
                    self.output += chunk

    def wait_for(self, text: bytes, timeout: float) -> float:
        """Seconds from start until `text` appeared in the output."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if text in self.output:
                    return time.monotonic() - self.started
            time.sleep(0.005)
        raise TimeoutError("%r not seen within %.0f s" % (text, timeout))

    def send(self, data: bytes) -> None:
        os.write(self.master, data)

    def cpu_seconds(self) -> float:
        """The process's own user+system CPU (its children are not included)."""
        with open("/proc/%d/stat" % self.proc.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime

    def stop(self, keys: bytes | None = b"q", timeout: float = 20) -> int:
        if self.proc.poll() is None and keys:
            self.send(keys)
            try:
                return self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        try:
            os.close(self.master)
        except OSError:
            pass
        return self.proc.returncode


def app_command(*args: str) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), *args]


if __name__ == "__main__":
    sys.exit(run_app(sys.argv[1:]))
