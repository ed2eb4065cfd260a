"""Pilot tests of the dashboard and the experiment screen, with a fake run source
(no child) except where the point is a real child misbehaving."""

from __future__ import annotations

import time

import pytest

from lab.tui.app import LabApp
from lab.tui.live import RunController
from lab.tui.screens.dashboard import DashboardScreen, PaneSpec
from lab.tui.screens.experiment import ExperimentScreen
from lab.tui.screens.help import HelpScreen
from lab.tui.screens.too_small import TooSmallScreen
from tests.helpers import until
from tests.tui_fakes import MACHINE, FakeRun, fake_controller
from widgets.pane import Pane


def status(app: LabApp, pane_id: str) -> str:
    return str(app.screen.query_one("#" + pane_id, Pane)._status)


def make_app(controller: RunController | None = None, **kwargs) -> LabApp:
    return LabApp(controller=controller or fake_controller(), live_gauge=False,
                  machine_line=MACHINE, **kwargs)


async def test_r_runs_the_focused_pane_x_stops_it_q_quits():
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        assert isinstance(app.screen, DashboardScreen)
        assert app.screen.focused.id == "pane-0"
        await pilot.press("r")
        await until(pilot, lambda: "RUNNING" in status(app, "pane-0"), what="RUNNING")
        assert len(FakeRun.instances) == 1
        run = FakeRun.instances[0]
        assert run.prepared.experiment.name == "gil-cpu"
        assert run.prepared.params["tasks"] == 2  # the pane's own small parameters
        await pilot.press("x")
        await until(pilot, lambda: "STOPPED" in status(app, "pane-0"), what="STOPPED")
        assert run.stop_calls == 1
        await pilot.press("q")
        await until(pilot, lambda: not app.is_running, what="the app to exit")
    assert app.return_code == 0


async def test_a_queues_the_cpu_bound_panes_in_turn_and_quit_mid_queue_starts_nothing_more():
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("a")
        screen = app.screen
        available = [p.id for p in screen.panes if p.available]
        assert len(available) == 4  # every dashboard pane is CPU-bound: one at a time
        await until(pilot, lambda: sorted(app.controller.running_keys()) == sorted(available),
                    what="every pane running or queued")
        await until(pilot, lambda: "RUNNING" in status(app, available[0]), what="the first")
        assert len(FakeRun.instances) == 1
        assert app.controller.waiting_keys() == available[1:]
        await until(pilot, lambda: "WAITING for its turn (1 of 3)" in status(app, available[1]),
                    what="the second to say it waits")
        assert "WAITING for its turn (3 of 3)" in status(app, available[3])
        await until(pilot, lambda: "· 1 running" in str(screen.query_one("#topbar").render()),
                    what="the top bar to count only the run going")
        FakeRun.instances[0].finish({"speedup": {"threads": 1.0}})
        await until(pilot, lambda: len(FakeRun.instances) == 2, what="the second's turn")
        assert FakeRun.instances[1].prepared.experiment.name == screen.specs[1].experiment
        await until(pilot, lambda: "WAITING for its turn (1 of 2)" in status(app, available[2]),
                    what="the queue to move up")
        await pilot.press("q")
        await until(pilot, lambda: not app.is_running, what="the app to exit")
    assert len(FakeRun.instances) == 2  # quitting with runs queued started nothing more
    assert FakeRun.instances[1].stop_calls == 1
    assert app.controller.running_keys() == [] and app.controller.waiting_keys() == []


async def test_a_finished_run_shows_done_and_its_record_is_kept(monkeypatch):
    saved = []
    monkeypatch.setattr("lab.core.record.save_run_record", saved.append)
    controller = fake_controller()
    controller.save_records = True
    app = make_app(controller)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("r")
        await until(pilot, lambda: FakeRun.instances, what="a run")
        FakeRun.instances[0].finish({"speedup": {"threads": 1.0}})
        await until(pilot, lambda: "DONE" in status(app, "pane-0"), what="DONE")
    assert len(saved) == 1 and saved[0]["experiment"] == "gil-cpu"
    assert saved[0]["result"] == {"speedup": {"threads": 1.0}}


async def test_enter_opens_the_panes_experiment_and_escape_returns():
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("down", "down")  # to the race pane
        assert app.screen.focused.id == "pane-2"
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, ExperimentScreen) and app.screen.is_mounted,
                    what="screen")
        screen = app.screen
        assert screen.experiment.name == "race" and screen.key == "pane-2"
        command = str(screen.query_one("#command").render())
        assert "conlab run race -p increments=200000" in command
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, DashboardScreen), what="dashboard")


async def test_a_bad_value_is_shown_beside_its_field_with_the_range_and_nothing_starts():
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        app.open_experiment("gil-cpu")
        await until(pilot, lambda: isinstance(app.screen, ExperimentScreen) and app.screen.is_mounted,
                    what="screen")
        screen = app.screen
        field = screen.query_one("#field-work")
        field.value = "12x"
        await pilot.pause()
        assert "a field is not valid" in str(screen.query_one("#command").render())
        await pilot.press("r")
        await pilot.pause()
        error = screen.query_one("#error-work")
        assert error.has_class("-shown")
        assert "an integer from 1000 to 500_000_000" in str(error.render())
        assert "'12x'" in str(error.render())
        assert FakeRun.instances == []
        assert app.controller.state(screen.key) is None

        field.value = "999"  # below the minimum: the same inline message
        field.focus()
        await pilot.press("enter")  # enter in a field = run
        await pilot.pause()
        assert "got 999" in str(screen.query_one("#error-work").render())
        assert FakeRun.instances == []

        field.value = "5000"
        await pilot.press("enter")
        await until(pilot, lambda: FakeRun.instances, what="the run to start")
        assert not screen.query_one("#error-work").has_class("-shown")
        assert FakeRun.instances[0].prepared.params["work"] == 5000
        assert "-p work=5000" in str(screen.query_one("#command").render())


async def test_a_refused_run_says_why_in_its_pane():
    controller = RunController(python="/nonexistent/python3", run_factory=FakeRun,
                               save_records=False)
    FakeRun.instances = []
    app = make_app(controller)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("r")
        await until(pilot, lambda: "REFUSED" in status(app, "pane-0"), what="REFUSED")
        assert "does not exist" in status(app, "pane-0")
        assert FakeRun.instances == []


async def test_a_crashing_and_a_garbage_printing_child_show_as_errors_and_the_ui_lives_on():
    panes = (PaneSpec("Crash", "selftest", {"behave": "crash"}),
             PaneSpec("Garbage", "selftest", {"behave": "garbage"}))
    app = make_app(RunController(save_records=False))
    app.get_default_screen = lambda: DashboardScreen(panes)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("a")
        await until(pilot, lambda: "FAILED" in status(app, "pane-0"), what="FAILED")
        assert "crashed on purpose" in status(app, "pane-0")
        await until(pilot, lambda: not app.controller.running_keys(), what="both runs to end")
        assert "garbage line" in status(app, "pane-1")
        await pilot.press("question_mark")  # the UI still answers
        await until(pilot, lambda: isinstance(app.screen, HelpScreen), what="help")
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, DashboardScreen), what="dashboard")


async def test_below_80x24_the_too_small_screen_replaces_the_layout():
    app = make_app()
    async with app.run_test(size=(70, 20)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, TooSmallScreen), what="too small")
        text = str(app.screen.query_one("#message").render())
        assert "terminal too small: need 80x24, have 70x20" in text
        await pilot.resize_terminal(80, 24)
        await until(pilot, lambda: isinstance(app.screen, DashboardScreen), what="dashboard")
        await pilot.resize_terminal(79, 30)  # and back below the minimum, from a big one
        await until(pilot, lambda: isinstance(app.screen, TooSmallScreen), what="too small")
        assert "have 79x30" in str(app.screen.query_one("#message").render())


async def test_a_pane_whose_experiment_is_missing_says_so_and_picks_it_up_later(monkeypatch):
    from lab.tui.screens import dashboard

    panes = (PaneSpec("Threads", "gil-cpu", {}), PaneSpec("Coming", "not-yet-written", {}))
    app = make_app()
    app.get_default_screen = lambda: DashboardScreen(panes)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        pane = screen.query_one("#pane-1", Pane)
        assert not pane.available
        assert "not-yet-written not available yet" in str(
            pane.query_one(".unavailable").render())
        await pilot.press("tab", "r")  # running it is refused politely, nothing starts
        assert FakeRun.instances == []

        real = dashboard.load_view  # the experiment lands: the next poll mounts its view
        monkeypatch.setattr(dashboard, "load_view",
                            lambda spec: real(PaneSpec(spec.title, "gil-cpu", {})))
        screen.look_for_experiments()
        await until(pilot, lambda: pane.available, what="the view to be mounted")


async def test_every_experiment_is_in_the_command_palette():
    from lab.core import catalog

    app = make_app()
    async with app.run_test(size=(80, 24)):
        titles = [c.title for c in app.get_system_commands(app.screen)]
    for exp in catalog.all_experiments():
        assert "Experiment: %s" % exp.name in titles
    assert {"Run all panes", "Stop all", "Run focused pane", "Help"} <= set(titles)


@pytest.mark.parametrize("hz", [4.0, 10.0])
async def test_frames_come_from_one_timer_at_the_refresh_rate(hz):
    app = make_app(refresh_hz=hz)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.frames >= 2, what="the clock to start")
        start, frames = time.monotonic(), app.frames
        await until(pilot, lambda: app.frames - frames >= 4, what="four frames")
        elapsed = time.monotonic() - start
    # `start` is seen up to one interval after a tick, so four more ticks take between
    # three and four intervals: the timer's pace, not once per event or faster.
    assert elapsed >= 2.9 / hz


async def test_low_bandwidth_caps_the_rate_and_uses_the_terminals_colours():
    app = make_app(low_bandwidth=True, refresh_hz=4.0)
    assert app.refresh_hz == 1.0 and app.ansi_color


async def test_a_view_that_raises_shows_an_error_in_its_pane_and_the_rest_keeps_drawing():
    from widgets.threads_view import ThreadsView

    class Broken(ThreadsView):
        def lines(self, state, width, rows):
            raise ZeroDivisionError("broken on purpose")

    from tests.tui_fakes import gil_state, race_state

    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        pane0 = screen.query_one("#pane-0", Pane)
        pane0.view.lines = Broken.lines.__get__(pane0.view)  # this pane's view breaks
        app.controller.states["pane-0"] = gil_state()
        app.controller.states["pane-2"] = race_state()
        await until(pilot, lambda: "VIEW ERROR" in status(app, "pane-0"), what="VIEW ERROR")
        assert "broken on purpose" in status(app, "pane-0")
        await until(pilot, lambda: "RUNNING" in status(app, "pane-2"), what="race drawn")
        race_view = screen.query_one("#pane-2", Pane).view
        assert any("sleep0" in line.plain for line in race_view._lines)


async def test_the_footer_shows_the_labs_own_cpu_and_loop_lag():
    import re

    from widgets.lab_footer import LabFooter

    app = LabApp(controller=fake_controller(), machine_line=MACHINE)  # live gauge on
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("r")  # a run going: the gauge refreshes every second
        footer = app.screen.query_one(LabFooter)
        await until(pilot, lambda: footer.observer, timeout=10, what="the gauge")
        assert re.fullmatch(r"lab \d+\.\d% cpu · lag \d+ ms", footer.observer)


def test_a_mode_other_programs_took_the_cpus_from_is_marked_not_ticked():
    """The mark follows the child's load meter: `!` when other programs took a real share
    of the CPUs in every round of a mode, or when the verdict could not be told."""
    from lab.core.state import RunState
    from widgets.gil_cpu_view import GilCpuView

    view = GilCpuView(compact=True)
    state = RunState("gil-cpu", {}, "python")
    events = [{"ev": "phase", "mode": "sequential", "state": "end", "wall_s": 1.0,
               "other_cpu_share": 0.4, "busy": True},
              {"ev": "phase", "mode": "threads", "state": "end", "wall_s": 1.1,
               "other_cpu_share": 0.01, "busy": False}]
    view.fold(events, state)
    assert view.mode_line("sequential", state, 38).plain.startswith("! sequential")
    assert view.mode_line("threads", state, 38).plain.startswith("✓ threads")
    # The finished record decides: threads contended in every round -> can't tell.
    state.result = {"modes": {"sequential": {"quiet_rounds": 1}, "threads": {"quiet_rounds": 0}},
                    "load": {"busy": True, "other_cpu_share": 0.42},
                    "verdict": {"says": "can't tell on a machine this busy", "can_tell": False,
                                "figure": "modes.threads.cores_used", "value": 0.6}}
    assert view.mode_line("sequential", state, 38).plain.startswith("✓ sequential")
    assert view.mode_line("threads", state, 38).plain.startswith("! threads")
    lines = [line.plain for line in view.lines(state, 60, 10)]
    assert "! can't tell on a machine this busy · other programs 42%" in lines



def screen_lines(app: LabApp) -> list[str]:
    return [strip.text for strip in app.screen._compositor.render_strips()]


@pytest.mark.parametrize("no_color", [False, True], ids=["colour", "NO_COLOR"])
async def test_the_first_screen_says_where_to_start_until_the_first_run(monkeypatch, no_color):
    if no_color:
        monkeypatch.setenv("NO_COLOR", "1")
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        app.frame()
        await pilot.pause()
        lines = screen_lines(app)
        start = [line for line in lines if "guided path" in line]
        assert len(start) == 1, "\n".join(lines)
        for key in ("l:", "r:", "a:", "?:"):
            assert key in start[0]
        assert all(len(line.rstrip()) <= 80 for line in lines)
        await pilot.press("r")  # the newcomer has begun: the line makes room for the panes
        await until(pilot, lambda: not any("guided path" in line for line in screen_lines(app)),
                    what="the start line to go")


async def test_the_dashboard_footer_shows_every_key_at_80_columns():
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        app.frame()
        await pilot.pause()
        footer = screen_lines(app)[-1]
        assert "…" not in footer, footer
        for pair in ("r run", "a all", "x stop", "⏎ open", "e list", "h history", "s pythons",
                     "l learn", "? help", "q quit"):
            assert pair in footer, (pair, footer)


@pytest.mark.parametrize("no_color", [False, True], ids=["colour", "NO_COLOR"])
async def test_the_focused_field_is_marked_and_the_help_line_follows_it(monkeypatch, no_color):
    if no_color:
        monkeypatch.setenv("NO_COLOR", "1")
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        app.open_experiment("race")
        await until(pilot, lambda: isinstance(app.screen, ExperimentScreen) and app.screen.is_mounted,
                    what="screen")
        screen = app.screen
        names = [p.name for p in screen.experiment.params]
        for name in reversed(names):  # shift+tab walks up from the Run button
            await pilot.press("shift+tab")
            await until(pilot, lambda: screen.form.focused_param == name, what=name)
            lines = screen_lines(app)
            marked = [line for line in lines if line.lstrip().startswith("▶ ")
                      and "Lesson" not in line]
            assert len(marked) == 1 and marked[0].split()[1] == name, "\n".join(lines)
            hint = str(screen.query_one("#hint").render())
            assert hint.startswith(name + ":"), (name, hint)
        await pilot.press("tab", "tab", "tab", "tab")  # back to Run: no field is marked
        await until(pilot, lambda: screen.form.focused_param is None, what="no mark")


async def test_focus_is_never_drawn_in_red_in_16_colours():
    """A focused pane's border must not turn bright red (the error colour) when a
    16-colour terminal downgrades the theme's colours."""
    from rich.color import ColorSystem

    def red(color) -> bool:
        return color.rich_color.downgrade(ColorSystem.STANDARD).number in (1, 9)

    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        pane = app.screen.focused
        assert isinstance(pane, Pane)
        assert not red(pane.styles.border_top[1]), pane.styles.border_top
        app.open_experiment("race")
        await until(pilot, lambda: isinstance(app.screen, ExperimentScreen) and app.screen.is_mounted,
                    what="screen")
        live = app.screen.query_one("#live", Pane)
        live.focus()
        await pilot.pause()
        assert not red(live.styles.border_top[1]), live.styles.border_top


async def test_help_names_the_article_and_its_subject():
    from lab.core import article

    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen), what="help")
        await pilot.pause()
        text = " ".join(" ".join(line.strip(" │╭╮╰╯▊▎") for line in screen_lines(app)).split())
        assert '"%s"' % article.TITLE in text
        assert article.SUBJECT.split(", what")[0] in text  # the opening, on screen at 80x24
