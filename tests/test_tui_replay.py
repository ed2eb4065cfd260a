"""Replay in the TUI: a finished run's view follows a cursor through its timeline (arrows,
space plays at 1x / 0.25x / 0.1x), the strip shows the whole run, and a kept run
replays from the history screen. One real short run feeds every test."""

from __future__ import annotations

import asyncio

import pytest

from lab.core import history
from lab.core.record import build_record, with_timeline
from lab.core.runner import Run, RunRequest, prepare
from lab.tui.app import LabApp
from lab.tui.screens.experiment import ExperimentScreen
from lab.tui.screens.history import HistoryScreen
from tests.helpers import until
from tests.tui_fakes import MACHINE, fake_controller
from widgets.pane import Pane
from widgets.run_strip import CURSOR, RunStrip

KEY = "exp:gil-cpu"


@pytest.fixture(scope="module")
def finished():
    prepared = prepare(RunRequest("gil-cpu", {"work": 400_000, "tasks": 2},
                                  sample_interval_s=0.02))
    state = asyncio.run(Run(prepared).run())
    assert state.status == "done", state.error
    return prepared, state


def make_app() -> LabApp:
    return LabApp(controller=fake_controller(), live_gauge=False, machine_line=MACHINE)


def drawn(screen) -> int:
    return screen.query_one("#live", Pane).view._drawn_state_id


async def open_finished(app, pilot, state):
    app.controller.states[KEY] = state
    app.open_experiment("gil-cpu", {"work": 400_000})
    await until(pilot, lambda: isinstance(app.screen, ExperimentScreen) and any(
        s.recording is not None for s in app.screen.query(RunStrip)), what="the strip")
    return app.screen, app.screen.query_one(RunStrip)


async def test_arrows_move_the_cursor_and_the_view_draws_that_moment(finished):
    _prepared, live = finished
    app = make_app()
    async with app.run_test(size=(80, 30)) as pilot:
        screen, strip = await open_finished(app, pilot, live)
        await until(pilot, lambda: drawn(screen) == id(live), what="the live state drawn")
        assert strip.display and strip.cursor == pytest.approx(live.timeline.duration_s)
        lines = strip.render().plain.splitlines()
        assert lines[0].startswith("replay") and "processes" in lines[0]
        assert lines[-2].rstrip().endswith(CURSOR) and lines[-1].startswith("←/→")
        assert lines[-3].startswith("modes") and lines[-3].count("|") >= 3  # 3 modes or more

        for _ in range(strip._columns() // 2):
            await pilot.press("left")
        await until(pilot, lambda: drawn(screen) != id(live), what="a replayed state drawn")
        shown = strip.player.state
        assert strip.cursor < live.timeline.duration_s * 0.6
        assert shown.samples < live.samples and shown.result is None
        assert "paused" in strip.status_line()
        assert strip.mode_at(strip.cursor) in strip.status_line()

        await pilot.press("right")
        assert strip.player.state is shown and shown.samples >= strip.player.state.samples

        await pilot.press("comma")  # 1x -> 0.25x
        assert "0.25x" in strip.status_line()
        await pilot.press("comma", "comma")  # 0.1x, back to 1x
        assert " 1x" in strip.status_line()
        before = strip.cursor
        await pilot.press("space")
        assert strip.playing
        await until(pilot, lambda: strip.cursor > before, what="the replay to move on")
        await until(pilot, lambda: not strip.playing and strip.player.state.result is not None,
                    what="the replay to reach the end", timeout=10)
        assert strip.player.state.threads == live.threads


async def test_history_replay_opens_the_record_in_the_experiment_view(finished, tmp_path,
                                                                      monkeypatch):
    monkeypatch.setenv("CONLAB_DATA_DIR", str(tmp_path))
    prepared, live = finished
    run_id = history.save(with_timeline(build_record(prepared, live), live))
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        app.push_screen(HistoryScreen())
        await until(pilot, lambda: isinstance(app.screen, HistoryScreen) and app.screen.loaded,
                    what="the history list")
        await pilot.press("p")
        await until(pilot, lambda: isinstance(app.screen, ExperimentScreen), what="replay")
        screen = app.screen
        strip = screen.query_one(RunStrip)
        assert screen.key == "replay:%d" % run_id and strip.fixed and strip.cursor == 0.0
        await pilot.press("right", "right", "right")
        await until(pilot, lambda: drawn(screen) == id(strip.player.state) and drawn(screen),
                    what="the replayed state drawn")
        assert strip.cursor > 0 and strip.player.state.experiment == "gil-cpu"


async def test_a_run_without_timeline_says_so_in_one_line(finished, tmp_path, monkeypatch):
    monkeypatch.setenv("CONLAB_DATA_DIR", str(tmp_path))
    prepared, live = finished
    history.save(build_record(prepared, live))
    app = make_app()
    notes = []
    async with app.run_test(size=(80, 24)) as pilot:
        app.push_screen(HistoryScreen())
        await until(pilot, lambda: isinstance(app.screen, HistoryScreen) and app.screen.loaded,
                    what="the history list")
        monkeypatch.setattr(app.screen, "notify", lambda text, **kw: notes.append(text))
        await pilot.press("p")
        await pilot.pause()
        assert isinstance(app.screen, HistoryScreen)
    assert len(notes) == 1 and "no timeline" in notes[0]


async def test_the_strip_reads_without_colour(finished, monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    _prepared, live = finished
    app = make_app()
    async with app.run_test(size=(80, 30)) as pilot:
        _screen, strip = await open_finished(app, pilot, live)
        await pilot.pause()
        text = strip.render().plain
        assert CURSOR in text and "modes" in text and any(g in text for g in "▁▂▃▄▅▆▇█")
        for line in strip.render_lines(strip.region.reset_offset):
            for segment in line:
                style = segment.style
                assert style is None or style.color is None or style.color.is_default


async def test_m_in_a_lesson_turns_slow_motion_on_for_its_runs(monkeypatch):
    """The lesson setting: the run started after `m` is sized larger, same other values."""
    from lab.tui.screens.lessons import LessonScreen
    from tests.tui_fakes import FakeRun

    monkeypatch.setenv("CONLAB_DATA_DIR", "/nonexistent-conlab-test")  # nothing saved
    app = LabApp(controller=fake_controller(), live_gauge=False, machine_line=MACHINE,
                 start="lessons:gil-cpu")
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, LessonScreen)
                    and app.screen.is_mounted, what="the lesson")
        plans = {p.experiment: p.params_for(app.screen.ctx) for p in app.screen.lesson.plans}
        await pilot.press("m")
        assert app.controller.slow
        await pilot.press("1")
        await until(pilot, lambda: FakeRun.instances, what="the run")
        prepared = FakeRun.instances[0].prepared
    plan_params = plans[prepared.experiment.name]
    assert prepared.params["work"] > plan_params["work"]
    assert all(prepared.params[k] == v for k, v in plan_params.items() if k != "work")
