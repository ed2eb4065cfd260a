"""The Textual app: screens, the frame clock, runs launched from async workers, clean exit.

Drawing: one interval timer at --refresh-hz (4 Hz by default) asks the *active* screen to
draw its panes from their RunStates; views skip frames whose state did not change, and
nothing animates while idle. Runs: started from async workers on the app's own loop
(never thread workers: the child's death signal is tied to the thread that forked it).
Quitting (q, ctrl+c, SIGTERM, SIGHUP) stops every run and waits until it is reaped; an
exit guard (lab/tui/exit_guard.py) makes sure the process then leaves even if Textual's
driver cannot (a terminal that is gone), within 3 s of a hang-up.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import threading
from functools import lru_cache
from typing import Any, Iterable

from rich.segment import Segment
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.css.query import NoMatches
from textual.filter import LineFilter, Monochrome, NoColor
from textual.screen import Screen

from lab.tui.exit_guard import ExitGuard, restore_terminal
from lab.tui.live import RunController
from lab.core.formatting import count_of
from lab.core.runner import Refused
from lab.tui.screens.dashboard import DashboardScreen
from lab.tui.screens.too_small import TooSmallScreen, too_small
from widgets.lab_footer import LabFooter, ObserverGauge

LOW_BANDWIDTH_HZ = 1.0
IDLE_GAUGE_S = 5.0


class MergeRuns(LineFilter):
    """Join neighbouring cells that look the same into one segment.

    Textual tags each rendered cell with its offset (for mouse selection), so a view that
    appends a strip cell by cell costs one escape sequence per cell on the wire (~25 bytes
    for a 3-byte glyph). Merged, a run costs one; the run keeps its first cell's tags.
    """

    def apply(self, segments: list[Segment], background) -> list[Segment]:
        out: list[Segment] = []
        for segment in segments:
            if out and not segment.control and not out[-1].control:
                last = out[-1]
                if last.style is segment.style or _looks(last.style) == _looks(segment.style):
                    out[-1] = Segment(last.text + segment.text, last.style)
                    continue
            out.append(segment)
        return out


@lru_cache(maxsize=4096)
def _looks(style):
    """A style without its metadata: what the terminal is actually sent."""
    return None if style is None else style.clear_meta_and_links()


class LabApp(App[int]):
    TITLE = "conlab"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (120, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (36, "-tall")]
    BINDINGS = [
        Binding("l", "lessons", "lessons"),
        Binding("q", "quit", "quit"),
        Binding("ctrl+c", "quit", "quit", show=False, priority=True),
        Binding("question_mark", "help", "help"),
        Binding("h", "history", "history"),
        Binding("s", "side_by_side", "interpreters side by side"),
    ]
    CSS = """
    Screen {
        background: $background;
    }
    /* NO_COLOR: no colour reaches the terminal, so what a background marked (the row
       under the cursor, the highlighted choice, the focused button) is reversed. */
    DataTable:nocolor > .datatable--cursor,
    OptionList:nocolor > .option-list--option-highlighted,
    SelectionList:nocolor > .option-list--option-highlighted,
    Button:nocolor:focus {
        text-style: reverse;
    }
    """

    def __init__(self, python: str | None = None, refresh_hz: float = 4.0,
                 low_bandwidth: bool = False, controller: RunController | None = None,
                 handle_signals: bool = False, live_gauge: bool = True,
                 machine_line: str | None = None, start: str | None = None,
                 slow: bool = False) -> None:
        # Low bandwidth: the terminal's own 16 colours (short escapes), 1 Hz, no strips.
        super().__init__(ansi_color=low_bandwidth)
        if self.no_color:
            # Textual's Monochrome filter turns colours into greys (38;5;NNN on a 256-colour
            # terminal): NO_COLOR asks for no colour at all, so colours become the defaults.
            self._filters = [NoColor() if isinstance(f, Monochrome) else f
                             for f in self._filters]
        self._filters.append(MergeRuns())  # fewer bytes to the terminal, same picture
        self.low_bandwidth = low_bandwidth
        self.refresh_hz = min(refresh_hz, LOW_BANDWIDTH_HZ) if low_bandwidth else refresh_hz
        self.controller = controller or RunController(python=python, slow=slow)
        self.handle_signals = handle_signals
        self.live_gauge = live_gauge
        # What every footer shows on its right; a footer mounted later starts from it, so
        # the first frame does not depend on which was mounted first.
        self.observer_text = "" if live_gauge else "lab -% cpu · lag - ms"
        self.gauge = ObserverGauge()
        self._machine_line = machine_line
        self._quitting = False
        self._signals: dict[int, Any] = {}  # the handlers ours replaced
        self._excepthook = None
        self.exit_guard: ExitGuard | None = None
        self.frames = 0
        self.start = start  # "lessons" or "lessons:ID": opened on top of the dashboard

    # Start-up --------------------------------------------------------------------------
    def get_default_screen(self) -> Screen:
        return DashboardScreen()

    def on_mount(self) -> None:
        if self.low_bandwidth:
            self.theme = "ansi-dark"  # the terminal's own palette: the shortest escapes
        self.set_interval(1.0 / self.refresh_hz, self.frame)
        if self.start:
            self.action_lessons(self.start.partition(":")[2] or None)
        if self.handle_signals:
            self._guard_the_exit()
        self.call_after_refresh(self.check_size)
        self.call_after_refresh(self.frame)
        self._report_history_problems()

    def on_unmount(self) -> None:
        from lab.core import history

        history.set_problem_handler(None)
        # The signal handlers and the thread hook stay: the driver closes after unmount,
        # and a hang-up then must still end the process (handle_signals: one app per process).

    def _report_history_problems(self) -> None:
        """History trouble becomes a notification: a line on stderr would scribble on the
        screen. Records are saved from a thread, so hop back onto the loop first."""
        from lab.core import history

        loop = asyncio.get_running_loop()

        def tell(message: str) -> None:
            loop.call_soon_threadsafe(lambda: self.notify(message, severity="warning", timeout=8))

        history.set_problem_handler(tell)

    # Leaving for sure: signals, a terminal that is gone ---------------------------------
    def _guard_the_exit(self) -> None:
        """Plain signal handlers rather than loop.add_signal_handler: they run even while
        the loop's thread is blocked (e.g. on the driver's full output queue)."""
        driver = self._driver
        out = getattr(getattr(driver, "_file", None), "fileno", lambda: 2)()
        self.exit_guard = ExitGuard(
            sweep=lambda seconds: self.controller.kill_leftovers(reap_s=seconds),
            restore=lambda: restore_terminal(out, getattr(self._driver, "attrs_before", None)),
            fd=out)
        self._loop_for_signals = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGCONT):
            self._signals[sig] = signal.getsignal(sig)
            signal.signal(sig, self._on_signal)
        self._excepthook = threading.excepthook
        threading.excepthook = self._on_thread_error

    def _on_signal(self, sig: int, frame) -> None:
        if sig == signal.SIGCONT:
            # The hang-up also sends SIGCONT, and Textual's handler would restart the
            # driver on a dead terminal; once leaving, there is nothing to resume.
            previous = self._signals.get(sig)
            if self.exit_guard.armed or not callable(previous):
                return
            previous(sig, frame)
            return
        self.exit_guard.arm(gone=sig == signal.SIGHUP)
        self._quit_from_anywhere()

    def _on_thread_error(self, args) -> None:
        """The driver's writer thread dies on EIO/EPIPE when the terminal is gone: leave."""
        thread = args.thread
        if (thread is not None and thread.name == "textual-output"
                and issubclass(args.exc_type, OSError)):
            self.exit_guard.arm(gone=True)
            self._quit_from_anywhere()
            return  # nowhere to print it
        self._excepthook(args)

    def _quit_from_anywhere(self) -> None:
        try:
            self._loop_for_signals.call_soon_threadsafe(self.call_later, self.action_quit)
        except RuntimeError:  # the loop is already closed: the guard does the rest
            pass

    @property
    def machine_line(self) -> str:
        """`CPython 3.11 (GIL on) · 2 CPUs` for the children's interpreter (probed once)."""
        if self._machine_line is None:
            from lab.core.interpreters import probe
            from lab.core.machine import machine

            try:
                interp = probe(self.controller.python or __import__("sys").executable)
                name = "%s %s (GIL %s)" % (
                    "CPython" if interp.implementation == "cpython" else interp.implementation,
                    interp.version_text, "on" if interp.gil_enabled else "off")
            except Exception as exc:
                name = "interpreter? %s" % exc
            self._machine_line = "%s · %s" % (name, count_of(machine().usable_cpus, "CPU"))
        return self._machine_line

    # The frame clock -------------------------------------------------------------------
    def frame(self) -> None:
        """One tick at refresh_hz: draw the active screen's live parts, then the gauge."""
        self.frames += 1
        screen = self.screen
        draw = getattr(screen, "refresh_live", None)
        if draw is not None and screen.is_mounted:
            try:
                draw()
            except NoMatches:  # its widgets are still being mounted: nothing to draw yet
                pass
        # Idle, the gauge refreshes every few seconds only: nothing animates while idle.
        window = 1.0 if self.controller.running_keys() else IDLE_GAUGE_S
        if self.live_gauge and self.gauge.frame(1.0 / self.refresh_hz, window):
            self._set_footer(self.gauge.text())

    def _set_footer(self, text: str) -> None:
        self.observer_text = text
        for footer in self.screen.query(LabFooter):
            footer.set_observer(text)

    # Size ------------------------------------------------------------------------------
    def on_resize(self, event) -> None:
        self.check_size(event.size.width, event.size.height)  # app.size lags the event

    def check_size(self, width: int | None = None, height: int | None = None) -> None:
        if width is None or height is None:
            width, height = self.size
        small = isinstance(self.screen, TooSmallScreen)
        if too_small(width, height):
            if small:
                self.screen.show_size(width, height)
            else:
                self.push_screen(TooSmallScreen())
        elif small:
            self.pop_screen()

    # Runs ------------------------------------------------------------------------------
    def start_run(self, key: str, experiment: str, params: dict[str, Any],
                  python: str | None = None, in_turn: bool | None = None) -> bool:
        """Validate, then run in an async worker; False (and the reason kept) if refused.

        A CPU-bound experiment waits for its turn (`in_turn` None: as the catalogue says),
        so that runs sharing the CPUs do not stretch each other's figures.
        """
        if self._quitting:
            return False
        try:
            prepared = self.controller.prepare(key, experiment, params, python)
        except Refused:
            self.frame()
            return False
        if in_turn is None:
            in_turn = prepared.experiment.cpu_bound
        self.run_worker(self.controller.run(key, prepared, in_turn=in_turn),
                        group="run:" + key, exit_on_error=False)
        return True

    def stop_runs(self, keys: Iterable[str]) -> None:
        """Stop these runs; those still waiting for their turn are dropped first, at once,
        so that stopping the running one does not hand the CPUs to the next."""
        keys = list(keys)
        self.controller.drop_waiting(keys)
        for key in keys:
            if self.controller.is_running(key):
                self.run_worker(self.controller.stop(key), group="stop:" + key,
                                exit_on_error=False)

    # Screens ---------------------------------------------------------------------------
    def open_experiment(self, name: str, params: dict[str, Any] | None = None,
                        key: str | None = None, title: str | None = None) -> None:
        from lab.tui.screens.experiment import ExperimentScreen

        try:
            screen = ExperimentScreen(name, params, key=key, title=title)
        except Exception as exc:
            self.notify("cannot open %s: %s" % (name, exc), severity="error")
            return
        self.push_screen(screen)

    def action_help(self) -> None:
        from lab.tui.screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_lessons(self, lesson: str | None = None) -> None:
        from lab.tui.screens.lessons import open_lessons

        open_lessons(self, lesson)

    def action_history(self) -> None:
        from lab.tui.screens.history import HistoryScreen

        if not isinstance(self.screen, HistoryScreen):
            self.push_screen(HistoryScreen())

    def action_side_by_side(self) -> None:
        from lab.tui.screens.side_by_side import open_side_by_side

        open_side_by_side(self)

    def action_scheduler(self, program: str = "counter", threads: int = 2,
                         note: str | None = None) -> None:
        """Be the scheduler: step a program's threads by hand (issue 14)."""
        from lab.tui.screens.scheduler import open_scheduler

        open_scheduler(self, program, threads, note=note)

    def action_watch(self) -> None:
        from lab.tui.screens.watch import open_watch

        open_watch(self)

    def action_experiments(self) -> None:
        from lab.tui.screens.experiments import SCHEDULER, ExperimentListScreen

        def chosen(name: str | None) -> None:
            if name == SCHEDULER:
                self.action_scheduler()
            elif name:
                self.open_experiment(name)

        self.push_screen(ExperimentListScreen(), chosen)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        dashboard = screen if isinstance(screen, DashboardScreen) else None
        if dashboard is not None:
            yield SystemCommand("Run focused pane", "r: run the focused pane's experiment",
                                dashboard.action_run_pane)
            yield SystemCommand("Run all panes", "a: run every pane at once",
                                dashboard.action_run_all)
            yield SystemCommand("Stop all", "x: stop every run", dashboard.action_stop_all)
            yield SystemCommand("Open focused pane", "enter: the pane's experiment screen",
                                dashboard.action_open)
        run = getattr(screen, "action_run", None)
        if dashboard is None and run is not None:
            yield SystemCommand("Run", "r: run with the form's values", run)
            yield SystemCommand("Stop", "x: stop this run", screen.action_stop)
        from lab.core import catalog

        for exp in _experiments(catalog):
            yield SystemCommand("Experiment: %s" % exp.name, exp.title,
                                lambda name=exp.name: self.open_experiment(name))
        yield SystemCommand("Be the scheduler",
                            "interleave: step the threads yourself, lose an update on purpose",
                            self.action_scheduler)
        yield SystemCommand("Experiments list", "e: every experiment", self.action_experiments)
        yield SystemCommand("History", "h: kept runs; mark two or more to compare",
                            self.action_history)
        yield SystemCommand("Interpreters side by side",
                            "s: this experiment under several Pythons at once",
                            self.action_side_by_side)
        yield SystemCommand("Watch a program",
                            "w: any command or one of your processes, with a diagnosis",
                            self.action_watch)
        yield SystemCommand("Lessons", "l: the guided path: predict, run, compare",
                            self.action_lessons)
        yield SystemCommand("Help", "?: keys and glyphs", self.action_help)
        yield from super().get_system_commands(screen)

    # Quitting --------------------------------------------------------------------------
    async def action_quit(self) -> None:
        """Stop every run, wait until each is reaped, then leave."""
        if self._quitting:
            return
        self._quitting = True
        if self.exit_guard is not None:
            self.exit_guard.arm()
        if self.controller.running_keys():
            self.notify("stopping every run…", timeout=5)
        await self.controller.shutdown()
        if self.exit_guard is not None:
            self.exit_guard.runs_reaped()
        self.exit(0)


def _experiments(catalog):
    found = []
    import workloads

    for name in workloads.experiment_names():
        try:
            found.append(catalog.get(name))
        except Exception:
            continue
    return found


def run_app(args: argparse.Namespace) -> int:
    """`conlab` with no sub-command: the dashboard. Returns the process exit code."""
    app = LabApp(python=args.python, refresh_hz=args.refresh_hz,
                 low_bandwidth=args.low_bandwidth, handle_signals=True,
                 start=getattr(args, "start", None),
                 slow=bool(getattr(args, "slow", False) or getattr(args, "learn_slow", False)))
    try:
        app.run(mouse=not args.no_mouse)
    finally:
        app.controller.kill_leftovers()  # whatever happened above, no child outlives us
    return app.return_code or 0
