"""Views that list threads, Ms or Ps fit with 1, 2, 16 and 64 workers: in a lesson (80x24
compact, 120x40 full), on the experiment screen and in a 38-column dashboard pane. Rows
that do not fit are folded into one line that says what they add up to, never cut off.
"""

from __future__ import annotations

import pytest
from rich.cells import cell_len

from lab.lessons import tutorial as L
from lab.tui.screens.dashboard import DashboardScreen
from lab.tui.screens.experiment import ExperimentScreen
from tests.helpers import until
from tests.test_lessons_tui import cut_off, lesson_app, make_app, run_step_showing
from tests.tui_fakes import WORKER_COUNTS, gil_state_of, goroutines_state_of
from widgets.threads_view import LinesView, summary_line, thread_header, thread_rows

SIZES = [(80, 24), (120, 40)]
SIZE_IDS = ["80x24", "120x40"]
STATES = {
    "gil-threads": ("gil-cpu", lambda n: gil_state_of(n, "threads"), "parallel", "pane-0"),
    "gil-processes": ("gil-cpu", lambda n: gil_state_of(n, "processes"), "processes", "pane-0"),
    "goroutines": ("goroutines", goroutines_state_of, "mn", "pane-3"),
}


def views_fit(screen) -> list[str]:
    """Every drawn LinesView: no more lines than its budget, none wider than the view,
    none taller than the space it was given."""
    problems = []
    for view in screen.query(LinesView):
        if view._state is None or not view.size.width:
            continue
        width, budget = view.size.width, view.rows_budget()
        lines = view.lines(view._state, width, budget)
        name = "%s(%s)" % (type(view).__name__, "compact" if view.compact else "full")
        if len(lines) > budget:
            problems.append("%s drew %d lines for %d rows" % (name, len(lines), budget))
        room = getattr(view, "room", None)
        if room is not None and budget > room() and not view.compact:
            problems.append("%s budget %d beyond its room %d" % (name, budget, view.room()))
        problems += ["%s line %d is %d cells in %d: %s" % (name, i, cell_len(line.plain), width,
                                                           line.plain)
                     for i, line in enumerate(lines) if cell_len(line.plain) > width]
    return problems


def folded(screen, workers: int) -> bool:
    """Rows left out are summed up in words, not dropped in silence."""
    text = "\n".join(line.plain for view in screen.query(LinesView) for line in view._lines)
    return "more" in text or "glyph" in text or "Ps " in text


@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
@pytest.mark.parametrize("workers", WORKER_COUNTS)
@pytest.mark.parametrize("kind", sorted(STATES))
async def test_a_lesson_shows_any_number_of_workers_without_cutting(kind, workers, size,
                                                                     tmp_path, monkeypatch):
    monkeypatch.setenv("CONLAB_DATA_DIR", str(tmp_path))
    experiment, make, lesson_id, _ = STATES[kind]
    plan = L.get(lesson_id).plan()
    assert plan.experiment == experiment
    app = lesson_app(lesson_id)
    async with app.run_test(size=size) as pilot:
        screen, pane = await run_step_showing(pilot, plan, make(workers))
        assert pane.view_error is None
        assert cut_off(screen) == []
        assert views_fit(screen) == []
        if workers == 64:
            assert folded(screen, workers)


@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
@pytest.mark.parametrize("workers", WORKER_COUNTS)
@pytest.mark.parametrize("kind", sorted(STATES))
async def test_the_experiment_screen_keeps_the_view_within_its_column(kind, workers, size):
    experiment, make, _, _ = STATES[kind]
    app = make_app()
    async with app.run_test(size=size) as pilot:
        app.open_experiment(experiment)
        await until(pilot, lambda: isinstance(app.screen, ExperimentScreen)
                    and app.screen.is_mounted, what="the experiment screen")
        screen = app.screen
        app.controller.states[screen.key] = make(workers)
        app.frame()
        await pilot.pause()
        app.frame()
        await pilot.pause()
        right, pane = screen.query_one("#right"), screen.query_one("#live")
        assert pane.view_error is None
        assert pane.outer_size.height <= right.scrollable_content_region.height, (
            "the live pane is taller than its column shows")
        assert views_fit(screen) == []


@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
@pytest.mark.parametrize("workers", WORKER_COUNTS)
async def test_dashboard_panes_show_any_number_of_workers(workers, size):
    app = make_app()
    for _, make, _, pane_id in STATES.values():
        app.controller.states[pane_id] = make(workers)
    async with app.run_test(size=size) as pilot:
        await until(pilot, lambda: isinstance(app.screen, DashboardScreen)
                    and app.screen.is_mounted, what="the dashboard")
        app.frame()
        await pilot.pause()
        app.frame()
        await pilot.pause()
        assert cut_off(app.screen) == []
        assert views_fit(app.screen) == []


@pytest.mark.parametrize("workers", WORKER_COUNTS)
@pytest.mark.parametrize("width,rows", [(36, 7), (76, 18), (116, 34)])
def test_thread_rows_fold_the_quiet_threads_into_one_line(workers, width, rows):
    """The generic view: at most `rows` lines, the busiest threads listed, the rest summed."""
    state = gil_state_of(workers)
    lines = [summary_line(state, width), thread_header(width)]
    lines += thread_rows(state, width, rows - 2)
    assert len(lines) <= rows
    assert all(cell_len(line.plain) <= width for line in lines)
    shown = [line.plain for line in lines if line.plain.startswith("cpu-")]
    if workers + 1 > rows - 2:  # more threads than rows
        more = [line.plain for line in lines if line.plain.startswith("+")]
        assert len(more) == 1, lines
        # The busiest are the ones listed: the idle main thread is among those summed up.
        assert not any(line.plain.startswith("main") for line in lines)
        hidden = [t for t in state.threads.values()
                  if not any(line.startswith(t.name + " ") for line in shown)]
        assert more[0].startswith("+%d more" % len(hidden)) and "%.2f cores" % sum(
            t.cpu_share for t in hidden) in more[0], more[0]
    else:
        assert len(shown) == workers


@pytest.mark.parametrize("workers", WORKER_COUNTS)
def test_a_finished_mn_run_fits_the_34_column_screen(workers):
    """After the run the totals line replaces the rates: it fits 34 columns too."""
    from widgets.goroutines_view import GoroutinesView

    state = goroutines_state_of(workers)
    state.status = "done"
    view = GoroutinesView(explains=False)
    view.fold(view.new_events(state), state)
    lines = [line.plain for line in view.lines(state, 34, 20)]
    assert any("hand-off 21 · %d Ms" % (2 * workers) in line for line in lines), lines
    assert all(cell_len(line) <= 34 for line in lines), lines
