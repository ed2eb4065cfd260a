"""A newcomer's tour of the TUI: every screen opened, experiments run for real, checked.

`tour(...)` drives the real app under Textual's Pilot in one colour mode and one size and
returns the problems it saw: an exception, a pane whose view failed, a line a view drew
wider than its space, a child left behind. The suite runs each experiment once, spread
over the (colour, size) combinations (tests/test_tui_tour.py); benchmarks/tour.py runs
the whole matrix.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from typing import Any

from rich.cells import cell_len

from tests.helpers import new_tag, until, workload_processes

COLOURS: dict[str, dict[str, str | None]] = {
    "no-color": {"NO_COLOR": "1", "TERM": "xterm-256color", "COLORTERM": None},
    "linux-16": {"NO_COLOR": None, "TERM": "linux", "COLORTERM": None},
    "truecolor": {"NO_COLOR": None, "TERM": "xterm-256color", "COLORTERM": "truecolor"},
}
SIZES = [(80, 24), (120, 40)]
COMBINATIONS = [(colour, size) for colour in COLOURS for size in SIZES]

# Small enough to finish in seconds, big enough to draw every part of each view.
SMALL: dict[str, dict[str, Any]] = {
    "convoy": {"requests": 10, "compare_process": True},
    "ctx-switch": {"messages": 1000},
    "deadlock": {"threads": 2, "hold_ms": 5.0, "rounds": 2},
    "decision": {"workload": "dial", "seconds": 0.1, "concurrency": 4, "job_ms": 2.0},
    "epoll": {"connections": 10, "duration_s": 0.2},
    "gil-cpu": {"work": 200_000, "tasks": 2},
    "goroutines": {"gs": 100, "work_ms": 0.5, "block_ms": 5.0},
    "interleave": {"program": "counter", "explore": True, "preemptions": 1},
    "io-bound": {"requests": 4, "delay": 0.05},
    "loop-freeze": {"duration_s": 0.5, "block_ms": 50},
    "race": {"increments": 2000},
    "scale": {"count": 30},
    "selftest": {"behave": "ok", "seconds": 0.1},
}
ENDED = ("done", "failed", "stopped", "timeout")


@contextmanager
def environment(changes: dict[str, str | None]):
    saved = {name: os.environ.get(name) for name in changes}
    try:
        for name, value in changes.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def drawn_too_wide(app) -> list[str]:
    """Lines the screen's live views drew wider than the space they have, and failed views."""
    from widgets.live_view import FoldingView, LiveView
    from widgets.pane import Pane
    from widgets.threads_view import LinesView

    found = []
    screen = type(app.screen).__name__
    for pane in app.screen.query(Pane):
        if pane.view_error:
            found.append("%s: %s view failed: %s" % (screen, pane.experiment, pane.view_error))
    from widgets.scheduler_view import SchedulerView

    for view in app.screen.query(SchedulerView):
        for line in view.plain():
            if cell_len(line.rstrip()) > view.content_size.width:
                found.append("%s: SchedulerView drew %d cells in %d: %r" % (
                    screen, cell_len(line.rstrip()), view.content_size.width, line[:100]))
    for view in app.screen.query(LiveView):
        width = view.content_size.width
        if width <= 0:
            continue
        name = type(view).__name__
        if isinstance(view, LinesView):
            state = view._state
            lines = view.lines(state, width, view.rows_budget()) if state else view.idle_lines()
            plain = [line.plain for line in lines]
        elif isinstance(view, FoldingView):
            text = view.render_width(max(24, width))
            if not text.no_wrap and text.overflow not in ("crop", "ellipsis"):
                continue  # Textual wraps it to the width: prose, nothing is lost
            plain = text.plain.split("\n")
        else:
            continue
        for line in plain:
            if cell_len(line.rstrip()) > width:
                found.append("%s: %s drew %d cells in %d: %r" % (
                    screen, name, cell_len(line.rstrip()), width, line.rstrip()[:100]))
    return found


async def settle(pilot, frames: int = 2) -> None:
    for _ in range(frames):
        pilot.app.frame()
        await pilot.pause()


async def back_to_dashboard(pilot) -> None:
    from lab.tui.screens.dashboard import DashboardScreen

    app = pilot.app
    while not isinstance(app.screen, DashboardScreen):
        app.pop_screen()
        await pilot.pause()


WATCHED = "import time; time.sleep(0.02); [time.sleep(0.05) for _ in range(200)]"


async def watch_tour(pilot, check) -> list[str]:
    """The Watch screen: its picker, then a small Python program watched until a
    diagnosis shows; leaving stops it."""
    import shlex
    import sys

    from lab.tui.screens.watch import WatchScreen
    from widgets.watch_view import WatchFactsView

    app = pilot.app
    await pilot.press("w")
    await until(pilot, lambda: isinstance(app.screen, WatchScreen) and app.screen.is_mounted,
                what="the watch screen")
    screen = app.screen
    await settle(pilot)
    check("watch (picker)")
    screen.query_one("#command").value = "%s -c %s" % (shlex.quote(sys.executable),
                                                      shlex.quote(WATCHED))
    await pilot.press("enter")
    await until(pilot, lambda: screen.watch is not None and screen.watch.state.pid,
                timeout=20, what="the watched program")
    pid = screen.watch.state.pid
    await until(pilot, lambda: any(" · see " in line.plain for line in
                                   screen.query_one(WatchFactsView)._lines),
                timeout=20, what="a diagnosis")
    check("watch")
    await pilot.press("escape")
    await until(pilot, lambda: not app.controller.adopted_keys(), timeout=20,
                what="the watched program to be reaped")
    await back_to_dashboard(pilot)
    return ["watch: pid %d left running" % pid] if os.path.exists("/proc/%d" % pid) else []


async def tour(colour: str, size: tuple[int, int], experiments: list[str],
               timeout: float = 120) -> list[str]:
    """Open every screen and run `experiments`; the problems found (empty: all well)."""
    from lab.tui.app import LabApp
    from lab.tui.live import RunController
    from lab.tui.screens.compare import CompareScreen
    from lab.tui.screens.dashboard import DashboardScreen
    from lab.tui.screens.experiment import ExperimentScreen
    from lab.tui.screens.history import HistoryScreen
    from lab.tui.screens.scheduler import SchedulerScreen
    from lab.tui.screens.too_small import TooSmallScreen

    problems: list[str] = []
    tag = new_tag()
    data = tempfile.mkdtemp(prefix="conlab-tour-")
    with environment({**COLOURS[colour], "CONLAB_TEST_TAG": tag, "CONLAB_DATA_DIR": data}):
        app = LabApp(controller=RunController(), live_gauge=False)

        def check(where: str) -> None:
            problems.extend("%s: %s" % (where, p) for p in drawn_too_wide(app))

        try:
            async with app.run_test(size=size) as pilot:
                await until(pilot, lambda: isinstance(app.screen, DashboardScreen)
                            and app.screen.is_mounted, what="the dashboard")
                await settle(pilot)
                check("dashboard")
                # The event-loop pane on the dashboard, run for real.
                await pilot.press("tab", "r")
                pane = app.screen.focused.id
                await until(pilot, lambda: getattr(app.controller.state(pane), "status",
                                                   None) in ENDED,
                            timeout=timeout, what="the dashboard's event-loop run")
                await settle(pilot)
                check("dashboard after a run")
                for key, what in (("e", "experiment list"), ("question_mark", "help"),
                                  ("l", "lessons")):
                    await pilot.press(key)
                    await settle(pilot)
                    check(what)
                    await back_to_dashboard(pilot)
                app.action_lessons("blocking")
                await settle(pilot)
                check("the blocking lesson")
                await back_to_dashboard(pilot)
                for name in experiments:
                    app.open_experiment(name, SMALL[name])
                    await until(pilot, lambda: isinstance(app.screen, ExperimentScreen)
                                and app.screen.is_mounted, what="the %s screen" % name)
                    await settle(pilot)
                    check(name + " (idle)")
                    await pilot.press("r")
                    key = app.screen.key
                    await until(pilot, lambda: getattr(app.controller.state(key), "status",
                                                       None) in ENDED or
                                key in app.controller.refusals,
                                timeout=timeout, what="the %s run to end" % name)
                    await settle(pilot, 3)
                    check(name)
                    await back_to_dashboard(pilot)
                # Be the scheduler, on a real stepper child: one step, then back.
                app.action_scheduler("two-locks", 2)
                await until(pilot, lambda: isinstance(app.screen, SchedulerScreen)
                            and app.screen.is_mounted and app.screen.view.state is not None,
                            timeout=timeout, what="the scheduler's first state")
                await pilot.press("1")
                await settle(pilot)
                check("scheduler")
                await back_to_dashboard(pilot)
                await pilot.press("h")
                await until(pilot, lambda: isinstance(app.screen, HistoryScreen)
                            and app.screen.loaded, what="the history")
                await settle(pilot)
                check("history")
                await pilot.press("space", "space", "c")
                await until(pilot, lambda: isinstance(app.screen, CompareScreen),
                            what="compare")
                await settle(pilot)
                check("compare")
                await back_to_dashboard(pilot)
                await pilot.press("s")
                await settle(pilot, 3)
                check("side by side")
                await back_to_dashboard(pilot)
                problems.extend(await watch_tour(pilot, check))
                await pilot.resize_terminal(60, 20)
                await until(pilot, lambda: isinstance(app.screen, TooSmallScreen),
                            what="the too-small screen")
                await settle(pilot)
                message = str(app.screen.query_one("#message").render())
                if "60x20" not in message:
                    problems.append("too-small: says %r" % message)
                await pilot.resize_terminal(*size)
                await until(pilot, lambda: not isinstance(app.screen, TooSmallScreen),
                            what="the too-small screen to go")
                await pilot.press("q")
                await until(pilot, lambda: not app.is_running, timeout=30,
                            what="the app to exit")
        except Exception as exc:  # noqa: BLE001 - the tour reports, the caller asserts
            problems.append("exception: %s: %s" % (type(exc).__name__, exc))
        app.controller.kill_leftovers()
        left = workload_processes(tag)
        if left:
            problems.append("left behind: %s" % [p.pid for p in left])
    shutil.rmtree(data, ignore_errors=True)
    return problems
