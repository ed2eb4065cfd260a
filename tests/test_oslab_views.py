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
def ctx_state_without_go():
    """The same, on a machine with no `go` command (CONLAB_GO=none hides it)."""
    import os

    before = os.environ.get("CONLAB_GO")
    os.environ["CONLAB_GO"] = "none"
    try:
        return finished_state("ctx-switch", {"messages": 1000, "perf": False,
                                             "method": "threads", "placement": "same-core"})
    finally:
        if before is None:
            del os.environ["CONLAB_GO"]
        else:
            os.environ["CONLAB_GO"] = before


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


def test_ctx_switch_without_go_says_why_inside_the_pane(ctx_state_without_go):
    state = ctx_state_without_go
    assert state.status == "done", state.error
    assert state.result["ladder"]["goroutine switch"] is None
    for width in (NARROW, WIDE, 60, 61):
        lines = draw("ctx-switch", state, width, 80, False)
        fits(lines, width)
        assert any(line.startswith("goroutine switch") and "unavailable" in line
                   for line in lines), lines
    text = " ".join(" ".join(draw("ctx-switch", state, WIDE, 80, False)).split())
    assert " ".join(state.result["ladder_notes"]["goroutine switch"].split()) in text


def test_a_finished_ctx_switch_says_what_was_measured_not_switching_now(ctx_state):
    for width, compact in ((NARROW, False), (WIDE, False)):
        lines = draw("ctx-switch", ctx_state, width, 80, compact)
        assert not any("switching now" in line for line in lines), lines
        assert any("whole run" in line for line in lines), lines


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


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
async def test_ctx_switch_fits_its_experiment_screen(ctx_state, size):
    """The view's lines at the width the screen really gives it (no cut table)."""
    from textual.app import App

    from lab.tui.screens.experiment import ExperimentScreen
    from tests.tui_fakes import fake_controller
    from widgets.ctx_switch_view import CtxSwitchView

    class OneScreen(App):
        def __init__(self) -> None:
            super().__init__()
            self.controller = fake_controller()
            self.controller.states["exp:ctx-switch"] = ctx_state
            self.low_bandwidth = False

        def on_mount(self) -> None:
            self.push_screen(ExperimentScreen("ctx-switch"))

    app = OneScreen()
    async with app.run_test(size=size) as pilot:
        for _ in range(50):
            await pilot.pause()
            if app.screen.query(CtxSwitchView):
                break
        app.screen.refresh_live()
        await pilot.pause()
        view = app.screen.query_one(CtxSwitchView)
        width = view.size.width
        assert width > 0
        lines = [line.plain for line in view.lines(ctx_state, width, 200)]
    fits(lines, width)


def test_ctx_switch_notes_wrap_inside_the_pane():
    from lab.core.state import RunState

    state = RunState("ctx-switch", {"requests_per_s": 10_000, "switches_per_request": 2.0},
                     "python3")
    why = ("perf is not installed here, or kernel.perf_event_paranoid forbids it for "
           "unprivileged users (it is 4 on this machine)")
    for event in ({"ev": "setup", "vm": True, "skipped": {"cross-core": "only one usable CPU: "
                                                           "a second core is needed to cross"}},
                  {"ev": "perf", "available": False, "reason": why}):
        state.apply_event(event)
    state.status = "done"
    for width in (NARROW, 61, 74, WIDE):
        lines = draw("ctx-switch", state, width, 80, False)
        fits(lines, width)
        assert "kernel.perf_event_paranoid" in " ".join(lines)


def test_the_vm_note_and_the_figures_wrap_inside_a_34_column_pane():
    """On a VM with a cross-core figure the note is wrapped, not cut at 34 columns."""
    from lab.core.state import RunState

    state = RunState("ctx-switch", {}, "python3")
    state.apply_event({"ev": "setup", "vm": True, "skipped": {}})
    for run in ("processes/same-core", "processes/cross-core"):
        state.apply_event({"ev": "figure", "run": run, "us_per_msg": 12.5,
                           "us_per_roundtrip": 25.0, "switches_per_msg": 1.0})
    state.status = "done"
    for width in (NARROW, 61, WIDE):
        lines = draw("ctx-switch", state, width, 80, False)
        fits(lines, width)
        assert "idle virtual CPU" in " ".join(lines)


async def test_the_longest_parameter_name_keeps_a_gap_before_its_value_at_80x24():
    """`switches_per_request` (20 letters) used to run into its field: `...reques2.0`."""
    from textual.app import App
    from textual.widgets import Input, Label

    from lab.tui.screens.experiment import ExperimentScreen
    from tests.tui_fakes import fake_controller

    class OneScreen(App):
        def __init__(self) -> None:
            super().__init__()
            self.controller = fake_controller()
            self.low_bandwidth = False

        def on_mount(self) -> None:
            self.push_screen(ExperimentScreen("ctx-switch"))

    app = OneScreen()
    async with app.run_test(size=(80, 24)) as pilot:
        for _ in range(50):
            await pilot.pause()
            if app.screen.query("#field-switches_per_request"):
                break
        await pilot.pause()
        for label in app.screen.query("ParamForm Label.name"):
            name = str(label.render())
            field = app.screen.query_one("#field-" + name)
            assert label.region.width >= len(name) + 1, (name, label.region)
            assert label.region.right <= field.region.x, (name, label.region, field.region)
        assert isinstance(app.screen.query_one("#field-switches_per_request"), Input)
        assert app.screen.query(Label)
