"""The OS lab's live views, drawn from real runs' states: they fit a 38x9 dashboard pane
and the 34-column experiment pane of an 80x24 terminal, and say things in words."""

from __future__ import annotations

import asyncio

import pytest

from lab.core.runner import RunRequest, run_experiment
from lab.tui.views import view_class

PANE = (38, 9)  # the dashboard's compact pane
NARROW = 34  # the experiment screen's live column at 80x24
WIDE = 78


def draw(experiment, state, width, rows, compact):
    view = view_class(experiment)(compact=compact)
    view.fold(view.new_events(state), state)
    return [line.plain for line in view.lines(state, width, rows)]


def fits(lines, width, rows=None):
    too_wide = [line for line in lines if len(line) > width]
    assert not too_wide, "wider than %d: %r" % (width, too_wide)
    if rows is not None:
        assert len(lines) <= rows, lines


def finished_state(experiment, params):
    """A real child run to its end, through the same runner the TUI uses."""
    return asyncio.run(run_experiment(RunRequest(experiment, params)))


@pytest.fixture(scope="module")
def deadlock_state():
    return finished_state("deadlock", {"threads": 3})


@pytest.fixture(scope="module")
def ctx_state():
    return finished_state("ctx-switch", {"messages": 2000, "perf": False, "placement": "unpinned"})


@pytest.fixture(scope="module")
def scale_state():
    return finished_state("scale", {"count": 100})


def test_the_views_are_the_oslab_ones():
    for name in ("ctx-switch", "scale", "deadlock"):
        assert name in view_class(name).EXPERIMENTS


def test_deadlock_view_labels_every_thread_of_the_cycle_in_words(deadlock_state):
    assert deadlock_state.result["deadlocked"]
    for width, rows, compact in ((PANE[0], PANE[1], True), (NARROW, 40, False), (WIDE, 40, False)):
        lines = draw("deadlock", deadlock_state, width, rows, compact)
        fits(lines, width, rows if compact else None)
        assert lines[0].startswith("DEADLOCK")
        cycle_rows = [line for line in lines if line.startswith("CYCLE")]
        assert len(cycle_rows) == 3, lines  # one per thread, labelled, not coloured only
        assert any("deadlock.py:" in line for line in lines)  # where they are stuck


async def test_deadlock_view_shows_a_completed_fix_without_a_cycle():
    state = await run_experiment(RunRequest("deadlock", {"fix": "ordered", "hold_ms": 1.0,
                                                         "rounds": 3}))
    lines = draw("deadlock", state, NARROW, 40, False)
    fits(lines, NARROW)
    assert "COMPLETED" in lines[0]
    assert not any("CYCLE" in line for line in lines)


def test_ctx_switch_view_marks_the_one_way_pipe_as_batching(ctx_state):
    for width, rows, compact in ((PANE[0], PANE[1], True), (NARROW, 60, False), (WIDE, 60, False)):
        lines = draw("ctx-switch", ctx_state, width, rows, compact)
        fits(lines, width, rows if compact else None)
        oneway = [line for line in lines if line.startswith(("1way/", "oneway/"))]
        assert oneway and all("BATCH" in line for line in oneway), lines
        pingpong = [line for line in lines if line.startswith(("thr/", "threads/"))]
        assert pingpong and not any("BATCH" in line for line in pingpong), lines
    full = draw("ctx-switch", ctx_state, WIDE, 60, False)
    assert any(line.startswith("ladder") for line in full)
    assert any("generator resume" in line for line in full)


def test_scale_view_shows_each_kind_done_the_stack_and_the_caps(scale_state):
    for width, rows, compact in ((PANE[0], PANE[1], True), (NARROW, 40, False), (WIDE, 40, False)):
        lines = draw("scale", scale_state, width, rows, compact)
        fits(lines, width, rows if compact else None)
        done = [line for line in lines if "✓" in line]
        assert len(done) == 3, lines
        assert any("cap" in line for line in lines)
    full = draw("scale", scale_state, WIDE, 40, False)
    assert any("reserved" in line and "really used" in line for line in full)


async def test_the_experiment_screen_draws_a_live_deadlock_at_80x24():
    """A real child from the TUI: the screen's live pane is this view, and it says CYCLE."""
    import time

    from lab.tui.app import LabApp
    from lab.tui.screens.experiment import ExperimentScreen
    from widgets.deadlock_view import DeadlockView

    app = LabApp(live_gauge=False, machine_line="test machine")
    async with app.run_test(size=(80, 24)) as pilot:
        app.open_experiment("deadlock")
        deadline = time.monotonic() + 20
        while not (isinstance(app.screen, ExperimentScreen) and app.screen.is_mounted):
            assert time.monotonic() < deadline, "the experiment screen did not open"
            await pilot.pause(0.02)
        await pilot.press("r")
        view = app.screen.query_one(DeadlockView)

        def on_screen() -> list[str]:  # what the view paints, line by line
            return [view.render_line(y).text.rstrip() for y in range(view.size.height)]

        while not any("CYCLE" in line for line in on_screen()):
            assert time.monotonic() < deadline, "no CYCLE drawn: %r" % on_screen()
            await pilot.pause(0.05)
        lines = on_screen()
        assert lines[0].startswith("DEADLOCK")
        assert sum(line.startswith("CYCLE") for line in lines) == 2
        assert not any(line.endswith("…") for line in lines)  # nothing cut at this width
        await pilot.press("q")
