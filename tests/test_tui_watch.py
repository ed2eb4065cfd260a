"""The Watch screen (issue 15): pick a command or a process, see its diagnosis and threads,
stop and leave without leaving anything behind, never signal an attached process.

With a fake Watch (no child) for the screen's own logic, and with lab.core.watch's real
Watch on a real sleeping Python program once that exists.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

import pytest
from rich.style import Style
from textual.filter import Monochrome

from lab.core.state import RunState, ThreadView
from lab.tui.live import RunController
from lab.tui.screens.dashboard import DashboardScreen
from lab.tui.screens.watch import OutputScreen, WatchScreen
from tests.helpers import ROOT, until, wait_for
from tests.tour import drawn_too_wide
from tests.tui_fakes import MACHINE, fake_controller
from widgets.watch_view import WatchFactsView, WatchThreadsView

SLEEPER = "import time\nwhile True: time.sleep(0.2)"


# A fake Watch: the interface of lab.core.watch.Watch, no child ------------------------------
class FakeWatch:
    made: list["FakeWatch"] = []

    def __init__(self, mode: str, argv=None, pid=None) -> None:
        self.mode, self.argv, self.log_path = mode, argv, None
        self.state = RunState(experiment="watch", params={}, python=sys.executable)
        self.state.pid = pid
        self.calls: list[str] = []
        self._end = asyncio.Event()
        FakeWatch.made.append(self)

    @classmethod
    def command(cls, argv, probe=True, timeout=None, log_path=None):
        if argv[0] == "no-such-program":
            raise ValueError("no-such-program: command not found")
        return cls("command", argv=argv)

    @classmethod
    def attach(cls, pid):
        return cls("attach", pid=pid)

    async def start(self) -> None:
        self.calls.append("start")
        state = self.state
        state.pid = state.pid or 4242
        state.status, state.started_at = "running", time.monotonic()
        for tid, name in ((state.pid, "MainThread"), (state.pid + 1, "worker-1")):
            state.threads[tid] = ThreadView(pid=state.pid, tid=tid, name=name, cpu_share=0.02,
                                            voluntary_rate=5.0)
        state.apply_event({"ev": "loop_blocked", "pid": state.pid, "tid": state.pid,
                           "lag_ms": 320.0, "where": "app.py:88 handle()", "loop": "asyncio"})
        state.apply_event({"ev": "locks", "pid": state.pid,
                           "held": {"A": state.pid, "B": state.pid + 1},
                           "waiting": {str(state.pid): "B", str(state.pid + 1): "A"},
                           "names": {str(state.pid): "MainThread",
                                     str(state.pid + 1): "worker-1"},
                           "where": {}})
        if self.mode == "command":
            self.log_path = os.path.join(os.environ["CONLAB_DATA_DIR"], "fake-watch.log")
            with open(self.log_path, "w") as log:
                log.write("hello from the watched program\n")

    async def wait(self) -> RunState:
        await self._end.wait()
        self.state.status = "stopped"
        self.state.ended_at = time.monotonic()
        self.state.version += 1
        return self.state

    async def stop(self) -> None:
        self.calls.append("stop")
        self._end.set()


def fake_diagnose(state: RunState) -> list[dict]:
    return [{"pid": state.pid, "kind": "waiting", "lesson": "gil-cpu",
             "says": "mostly waiting: 95 % off-CPU, voluntary switches",
             "figures": {"off_cpu_share": 0.95}}]


def make_app(controller: RunController | None = None):
    from lab.tui.app import LabApp

    return LabApp(controller=controller or fake_controller(), live_gauge=False,
                  machine_line=MACHINE)


@pytest.fixture
def fakes(monkeypatch, tmp_path):
    FakeWatch.made = []
    monkeypatch.setenv("CONLAB_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(WatchScreen, "WATCH_CLASS", FakeWatch)
    monkeypatch.setattr(WatchScreen, "DIAGNOSE", staticmethod(fake_diagnose))
    return FakeWatch


def drawn(app, view_type) -> list[str]:
    view = app.screen.query_one(view_type)
    return [line.plain for line in view._lines]


async def open_watch(pilot):
    app = pilot.app
    await until(pilot, lambda: isinstance(app.screen, DashboardScreen), what="the dashboard")
    await pilot.press("w")
    await until(pilot, lambda: isinstance(app.screen, WatchScreen) and app.screen.is_mounted,
                what="the watch screen")
    return app.screen


async def type_command(pilot, text: str) -> None:
    await pilot.press(*[{" ": "space"}.get(c, c) for c in text])
    await pilot.press("enter")


# With the fake -----------------------------------------------------------------------------
async def test_a_typed_command_shows_its_diagnosis_threads_loop_and_locks_at_80x24(fakes):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_watch(pilot)
        await type_command(pilot, "python app.py 'two words'")
        await until(pilot, lambda: fakes.made and "start" in fakes.made[0].calls,
                    what="the watch to start")
        watch = fakes.made[0]
        assert watch.argv == ["python", "app.py", "two words"]  # split like a shell
        await until(pilot, lambda: any("mostly waiting" in line and "pid 4242" in line
                                       for line in drawn(app, WatchFactsView)),
                    what="the diagnosis")
        facts = drawn(app, WatchFactsView)
        assert any("see gil-cpu" in line and "pid 4242" in line for line in facts), facts
        assert any("blocked 320 ms at app.py:88 handle()" in line for line in facts), facts
        assert sum("CYCLE" in line for line in facts) == 2, facts
        await until(pilot, lambda: any("worker-1" in line
                                       for line in drawn(app, WatchThreadsView)),
                    what="the threads")
        assert drawn_too_wide(app) == []
        assert screen.log_path and screen.log_path.startswith(os.environ["CONLAB_DATA_DIR"])
        await pilot.press("o")
        await until(pilot, lambda: isinstance(app.screen, OutputScreen), what="the output")
        text = str(app.screen.query_one("#output").render())
        assert "hello from the watched program" in text
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is screen, what="back from the output")
        assert watch.calls == ["start"]  # nothing stopped it yet
        await pilot.press("x")
        await until(pilot, lambda: watch.calls == ["start", "stop"], what="x to stop it")
        await until(pilot, lambda: not app.controller.adopted_keys(), what="the release")
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, DashboardScreen), what="leaving")
        assert watch.calls == ["start", "stop"]  # stopped once, not twice


async def test_escape_stops_the_command_it_started_and_quit_stops_a_running_one(fakes):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await open_watch(pilot)
        await type_command(pilot, "python app.py")
        await until(pilot, lambda: fakes.made and app.controller.adopted_keys(),
                    what="the watch to run")
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, DashboardScreen), what="leaving")
        await until(pilot, lambda: fakes.made[0].calls == ["start", "stop"],
                    what="leaving to stop the command")
        await open_watch(pilot)
        await type_command(pilot, "python other.py")
        await until(pilot, lambda: len(fakes.made) == 2 and app.controller.adopted_keys(),
                    what="the second watch to run")
        await pilot.press("q")  # not typed into anything: the live view has no input
        await until(pilot, lambda: not app.is_running, timeout=15, what="the app to quit")
    assert fakes.made[1].calls == ["start", "stop"]


async def test_a_refused_command_says_why_in_one_line_and_starts_nothing(fakes):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_watch(pilot)
        await type_command(pilot, "python 'unclosed")
        error = lambda: str(screen.query_one("#picker-error").render())  # noqa: E731
        await until(pilot, lambda: "✗ command" in error(), what="the quoting error")
        screen.query_one("#command").value = ""
        await type_command(pilot, "no-such-program")
        await until(pilot, lambda: "command not found" in error(), what="the refusal")
        assert "\n" not in error()
        assert fakes.made == [] and screen.watch is None
        assert app.focused is screen.query_one("#command")
        await pilot.press("escape")  # the command field does not keep escape
        await until(pilot, lambda: isinstance(app.screen, DashboardScreen), what="leaving")


async def test_the_screen_draws_nothing_while_covered_and_again_once_shown(fakes):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_watch(pilot)
        await type_command(pilot, "python app.py")
        await until(pilot, lambda: screen.frames >= 2, what="frames")
        app.action_help()
        await until(pilot, lambda: app.screen is not screen, what="help on top")
        ticks, frames = screen.ticks, screen.frames
        await until(pilot, lambda: screen.ticks >= ticks + 3, what="three ticks under help")
        assert screen.frames == frames
        await pilot.press("escape")
        await until(pilot, lambda: screen.frames > frames, what="a frame once shown again")


async def test_every_segment_is_styled_under_no_color(fakes, monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    app = make_app()
    assert app.no_color
    async with app.run_test(size=(80, 24)) as pilot:
        await open_watch(pilot)
        await type_command(pilot, "python app.py")
        await until(pilot, lambda: any("worker-1" in line
                                       for line in drawn(app, WatchThreadsView)),
                    what="the threads")
        for view_type in (WatchFactsView, WatchThreadsView):
            view = app.screen.query_one(view_type)
            for y in range(view.size.height):
                strip = view.render_line(y)
                assert all(isinstance(seg.style, Style) for seg in strip), (view_type, y)
                Monochrome().apply(list(strip), None)
        assert drawn_too_wide(app) == []


async def test_attaching_never_stops_the_process_and_leaving_only_stops_watching(fakes):
    sleeper = subprocess.Popen([sys.executable, "-c", SLEEPER], stdin=subprocess.DEVNULL)
    try:
        app = make_app()
        async with app.run_test(size=(80, 24)) as pilot:
            screen = await open_watch(pilot)
            table = screen.query_one("#procs")
            await until(pilot, lambda: str(sleeper.pid) in
                        [key.value for key in table.rows], what="the sleeper in the list")
            table.focus()
            table.move_cursor(row=table.get_row_index(str(sleeper.pid)), animate=False)
            await pilot.press("enter")
            await until(pilot, lambda: fakes.made and "start" in fakes.made[0].calls,
                        what="the attach")
            watch = fakes.made[0]
            assert watch.mode == "attach" and watch.state.pid == sleeper.pid
            assert app.controller._adopted[screen.key][1] is None  # no group to kill
            await pilot.press("escape")
            await until(pilot, lambda: watch.calls == ["start", "stop"], what="leaving")
        assert sleeper.poll() is None  # still running
    finally:
        sleeper.kill()
        sleeper.wait()


def test_the_last_resort_sweep_kills_an_adopted_group():
    """SIGHUP / a dead terminal: the exit guard's sweep (kill_leftovers) takes an adopted
    command's whole process group along with the runs."""
    child = subprocess.Popen([sys.executable, "-c", SLEEPER], stdin=subprocess.DEVNULL,
                             start_new_session=True)
    try:
        controller = RunController(save_records=False)
        controller.adopt("watch:1", lambda: None, child.pid)
        controller.kill_leftovers(reap_s=2.0)
        # kill_leftovers reaps the group itself, so /proc is the witness, not Popen.
        wait_for(lambda: not pid_alive(child.pid), 5, "the adopted child to die")
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


# With the real Watch ----------------------------------------------------------------------
def real_watch():
    try:
        from lab.core.watch import Watch  # noqa: F401
        from lab.core.diagnose import diagnose  # noqa: F401
    except ImportError as exc:
        pytest.skip("lab.core.watch is not merged into this branch yet (%s)" % exc)


def pid_alive(pid: int) -> bool:
    try:
        with open("/proc/%d/stat" % pid) as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.slow
async def test_a_real_watched_python_program_is_mostly_waiting_and_gone_after_leaving(
        monkeypatch, tmp_path):
    real_watch()
    monkeypatch.setenv("CONLAB_DATA_DIR", str(tmp_path))
    program = ROOT / "tests" / "programs" / "sleepy.py"  # two threads that mostly sleep
    command = "%s %s 2 30" % (sys.executable, program)
    app = make_app(RunController(save_records=True))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_watch(pilot)
        screen.query_one("#command").value = command
        await pilot.press("enter")
        await until(pilot, lambda: screen.watch is not None and screen.watch.state.pid,
                    timeout=10, what="the command to start")
        pid = screen.watch.state.pid
        await until(pilot, lambda: any("mostly waiting" in line and "see " in line
                                       for line in drawn(app, WatchFactsView)),
                    timeout=15, what="a mostly-waiting diagnosis")
        # The probe names Python's threads: the kernel only knows them all as python3.
        await until(pilot, lambda: all(any(line.startswith(name)
                                           for line in drawn(app, WatchThreadsView))
                                       for name in ("MainThrea", "sleeper-0", "sleeper-1")),
                    timeout=10, what="the main thread and its two sleepers, by name")
        assert drawn_too_wide(app) == []
        await pilot.press("escape")
        await until(pilot, lambda: not pid_alive(pid), timeout=10, what="the command to end")
        await until(pilot, lambda: not app.controller.adopted_keys(), timeout=10,
                    what="the watch to be reaped")
        from lab.core import history

        # Kept like a run: the same record `conlab watch --json` saves.
        await until(pilot, lambda: history.list_runs(experiment="watch"), timeout=10,
                    what="the watch in history")


@pytest.mark.slow
async def test_the_probe_s_blocking_line_and_lock_cycle_reach_the_screen(monkeypatch, tmp_path):
    """Real programs under the real probe: an asyncio handler calling time.sleep, and two
    threads taking two locks in opposite order."""
    real_watch()
    monkeypatch.setenv("CONLAB_DATA_DIR", str(tmp_path))
    programs = ROOT / "tests" / "programs"
    app = make_app(RunController(save_records=False))
    async with app.run_test(size=(80, 24)) as pilot:
        for program, expected in (
                ("blocking_loop.py", lambda lines: any(
                    "blocked" in line and "at blocking_loop.py:9 handle()" in line
                    for line in lines)),
                ("lock_order.py", lambda lines: sum(
                    line.startswith("CYCLE T") and "lock_order.py" in line
                    for line in lines) == 2)):
            screen = await open_watch(pilot)
            screen.query_one("#command").value = "%s %s" % (sys.executable, programs / program)
            await pilot.press("enter")
            await until(pilot, lambda: screen.watch is not None and screen.watch.state.pid,
                        timeout=10, what="%s to start" % program)
            pid = screen.watch.state.pid
            await until(pilot, lambda: expected(drawn(app, WatchFactsView)), timeout=15,
                        what="what the probe saw in %s" % program)
            assert drawn_too_wide(app) == []
            await pilot.press("escape")
            await until(pilot, lambda: not pid_alive(pid), timeout=10,
                        what="%s to end" % program)


@pytest.mark.slow
async def test_attaching_for_real_leaves_the_process_running(monkeypatch, tmp_path):
    real_watch()
    monkeypatch.setenv("CONLAB_DATA_DIR", str(tmp_path))
    sleeper = subprocess.Popen([sys.executable, "-c", SLEEPER], stdin=subprocess.DEVNULL)
    try:
        app = make_app(RunController(save_records=False))
        async with app.run_test(size=(80, 24)) as pilot:
            screen = await open_watch(pilot)
            table = screen.query_one("#procs")
            await until(pilot, lambda: str(sleeper.pid) in [k.value for k in table.rows],
                        timeout=10, what="the sleeper in the list")
            table.focus()
            table.move_cursor(row=table.get_row_index(str(sleeper.pid)), animate=False)
            await pilot.press("enter")
            await until(pilot, lambda: any("see " in line
                                           for line in drawn(app, WatchFactsView)),
                        timeout=15, what="a diagnosis of the attached process")
            await pilot.press("escape")
            await until(pilot, lambda: not app.controller.adopted_keys(), timeout=10,
                        what="the watch to end")
        assert pid_alive(sleeper.pid) and sleeper.poll() is None  # read-only: untouched
    finally:
        sleeper.kill()
        sleeper.wait()


@pytest.mark.slow
def test_a_dropped_terminal_takes_the_watched_command_with_the_lab(tmp_path):
    """`python -m lab` on a pty, a command watched, the terminal closed under it (a dropped
    SSH link): the lab and the command it started are both gone within 3 s."""
    real_watch()
    import psutil

    from tests.helpers import new_tag
    from tests.terminal import Terminal

    tag = new_tag()
    program = ROOT / "tests" / "programs" / "sleepy.py"
    term = Terminal(tag, "--no-mouse")
    try:
        wait_for(lambda: term.seen("Threads & the GIL"), 20, "the first frame")
        term.send(b"w")
        wait_for(lambda: term.seen("Type a command"), 10, "the watch screen")
        term.send(("%s %s 1 60\r" % (sys.executable, program)).encode())

        def watched():
            for proc in psutil.process_iter(["cmdline"]):
                try:
                    if (str(program) in (proc.info["cmdline"] or [])
                            and proc.environ().get("CONLAB_TEST_TAG") == tag):
                        return proc.pid
                except psutil.Error:
                    continue
            return None

        pid = wait_for(watched, 15, "the watched command")
        wait_for(lambda: term.seen("mostly waiting"), 15, "its diagnosis on screen")
        dropped = time.monotonic()
        term.hang_up()
        wait_for(lambda: term.proc.poll() is not None, 10, "the lab to exit")
        wait_for(lambda: not pid_alive(pid), 3.0, "the watched command to be gone")
        assert time.monotonic() - dropped < 3.5
    finally:
        term.close()
