"""Pilot tests of the Lessons screens: keys only, 80x24, progress kept across app
instances, `conlab learn`, lessons whose experiment is missing or refused."""

from __future__ import annotations

import json
import time

import pytest
from textual.containers import ScrollableContainer
from textual.geometry import Region

from lab.lessons import tutorial as L
from lab.tui.app import LabApp
from lab.cli.parser import build_parser
from lab.tui.live import RunController
from lab.core.progress import FILE_NAME, Progress
from lab.tui.screens.dashboard import DashboardScreen
from lab.tui.screens.lessons import LessonScreen, LessonsScreen
from tests.helpers import conlab, interpreter, until
from tests.tui_fakes import MACHINE, FakeRun, fake_controller


async def until_shown(pilot, needle: str, timeout: float = 10.0) -> str:
    """Wait until the screen as drawn shows `needle`; fail with what it shows instead."""
    deadline = time.monotonic() + timeout
    while True:
        text = lessons_text(pilot.app)
        if needle in text:
            return text
        if time.monotonic() > deadline:
            raise AssertionError("%r not shown after %.1f s; the screen:\n%s"
                                 % (needle, timeout, text))
        await pilot.pause(0.02)


def make_app(controller: RunController | None = None, **kwargs) -> LabApp:
    return LabApp(controller=controller or fake_controller(), live_gauge=False,
                  machine_line=MACHINE, **kwargs)


def lesson_app(lesson_id: str, controller: RunController | None = None) -> LabApp:
    """An app that opens straight on one lesson, as `conlab learn LESSON` does."""
    return make_app(controller, start="lessons:" + lesson_id)


async def lesson_screen(pilot) -> LessonScreen:
    app = pilot.app
    await until(pilot, lambda: isinstance(app.screen, LessonScreen) and app.screen.is_mounted,
                what="the lesson screen")
    return app.screen


async def run_step_showing(pilot, plan, state):
    """The lesson's run step with `state` drawn in its pane, as the live step draws it."""
    screen = await lesson_screen(pilot)
    screen.prediction, screen.plan = 0, plan
    screen._mount_pane(plan)
    screen.show_run()
    await pilot.pause()
    pane = screen.query_one("#run > Pane")
    pane.show(state)
    await pilot.pause()
    return screen, pane


def cut_off(screen) -> list[str]:
    """Widgets that do not fit: outside the screen, outside a non-scrolling parent, or
    inside a scrolling one that would need scrolling."""
    problems = []
    whole = Region(0, 0, *screen.app.size)
    for widget in screen.walk_children():
        if not widget.display or widget.region.area == 0:
            continue
        name = "%s#%s" % (type(widget).__name__, widget.id)
        if not whole.contains_region(widget.region):
            problems.append("%s %s is off the screen" % (name, widget.region))
        if isinstance(widget, ScrollableContainer):
            if widget.max_scroll_y > 0 or widget.max_scroll_x > 0:
                problems.append("%s needs scrolling (%d rows more)" % (name,
                                                                       widget.max_scroll_y))
            continue
        parent = widget.parent
        if parent is not None and parent is not screen and not isinstance(
                parent, ScrollableContainer) and parent.region.area:
            if not parent.region.contains_region(widget.region):
                problems.append("%s %s sticks out of its parent %s" % (
                    name, widget.region, parent.region))
    return problems


def lessons_text(app) -> str:
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


@pytest.fixture(autouse=True)
def own_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("CONLAB_DATA_DIR", str(tmp_path))
    return tmp_path


# Walking a lesson -----------------------------------------------------------------------
async def test_a_lesson_walked_with_keys_only_at_80x24_on_a_real_run(own_data_dir):
    """l, arrows, enter: predict the deadlock lesson, watch it run, read the answer."""
    app = make_app(RunController(save_records=False))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("l")
        await until(pilot, lambda: isinstance(app.screen, LessonsScreen), what="lessons")
        await until_shown(pilot, "1 · Concurrency vs parallelism")
        await pilot.press(*["down"] * L.ids().index("deadlock"), "enter")
        await until(pilot, lambda: isinstance(app.screen, LessonScreen), what="the lesson")
        screen = app.screen
        assert screen.lesson.id == "deadlock" and screen.step == "predict"
        assert cut_off(screen) == []
        await pilot.press("down", "down", "enter")  # choice 3: neither finishes
        await until(pilot, lambda: screen.step == "run", what="the run to start")
        assert screen.prediction == 2
        await until_shown(pilot, "You predicted: 3")
        await until(pilot, lambda: screen.step == "answer", timeout=60, what="the answer")
        text = await until_shown(pilot, "Measured ")
        assert cut_off(screen) == []
        assert "Measured       3 neither finishes: deadlock" in text
        assert "✓ as you predicted" in text
        assert "wait-for graph" in text and "ms" in text
        assert "This machine agrees with the article." in text
        await pilot.press("v")  # the run that was just measured, then back
        assert screen.query_one("#run").display
        await pilot.press("v", "escape")
        await until(pilot, lambda: isinstance(app.screen, LessonsScreen), what="the list")
        assert "1 of 12 done" in await until_shown(pilot, "11 ✓ Deadlocks")
        await pilot.press("q")
        await until(pilot, lambda: not app.is_running, what="the app to exit")
    assert app.controller.running_keys() == []

    # A new session: the progress is remembered.
    saved = json.loads((own_data_dir / FILE_NAME).read_text())
    assert saved["lessons"]["deadlock"]["right"] is True
    again = make_app()
    async with again.run_test(size=(80, 24)) as pilot:
        again.action_lessons()
        await until(pilot, lambda: isinstance(again.screen, LessonsScreen), what="lessons")
        assert "predicted right" in await until_shown(pilot, "11 ✓ Deadlocks")


async def test_a_wrong_prediction_is_marked_surprised_with_the_fake_run():
    app = lesson_app("deadlock")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await lesson_screen(pilot)
        await pilot.press("1")  # "both finish": digits predict at once
        await until(pilot, lambda: FakeRun.instances, what="the run")
        assert FakeRun.instances[0].prepared.experiment.name == "deadlock"
        FakeRun.instances[0].finish({
            "deadlocked": True, "completed": False, "detected_at_ms": 64.0,
            "detected_after_ms": 10.0, "rounds": {"worker-1": 0, "worker-2": 0},
            "cycle": [{"thread": "worker-1", "holds": ["lock-A"], "waits_for": "lock-B"},
                      {"thread": "worker-2", "holds": ["lock-B"], "waits_for": "lock-A"}]})
        await until(pilot, lambda: screen.step == "answer", what="the answer")
        await until_shown(pilot, "✗ not what you predicted")
        assert Progress().status("deadlock") == "surprised"
        await pilot.press("n")  # the next lesson
        await until(pilot, lambda: isinstance(app.screen, LessonScreen)
                    and app.screen.lesson.id == "choosing", what="the next lesson")


async def test_a_stopped_run_gives_no_answer_says_why_and_can_run_again(own_data_dir):
    app = lesson_app("race")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await lesson_screen(pilot)
        await pilot.press("3")
        await until(pilot, lambda: FakeRun.instances, what="the run")
        await pilot.press("x")
        await until(pilot, lambda: screen.step == "answer", what="the answer")
        text = await until_shown(pilot, "No answer: the run ended stopped")
        assert "r runs it again" in text
        assert Progress().status("race") == "predicted"  # nothing measured, nothing marked
        await pilot.press("r")
        await until(pilot, lambda: len(FakeRun.instances) == 2, what="the second run")
        assert screen.step == "run"


async def test_a_lesson_opened_again_recalls_last_time(own_data_dir):
    progress = Progress()
    progress.measured("deadlock", 0, (2,))
    app = lesson_app("deadlock")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await lesson_screen(pilot)
        await pilot.pause()
        await until_shown(pilot, "Last time: you said 1, it measured 3 (surprised).")
        assert cut_off(screen) == []


@pytest.mark.parametrize("lesson_id", L.ids())
async def test_every_lessons_explanation_and_prediction_fit_80x24(lesson_id):
    app = lesson_app(lesson_id)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await lesson_screen(pilot)
        text = await until_shown(pilot, "Lesson %d of %d" % (L.ids().index(lesson_id) + 1,
                                                             len(L.LESSONS)))
        assert cut_off(screen) == []
        for index, choice in enumerate(screen.choices):
            assert "%d  %s" % (index + 1, choice) in text
        assert "▶ 1" in text  # the highlighted choice is marked, not only coloured
        await pilot.press("down")
        await until_shown(pilot, "▶ 2")


async def test_the_lessons_list_fits_80x24_and_marks_every_state_in_words(own_data_dir):
    progress = Progress()
    progress.predicted("parallel", 1)
    progress.measured("threads", 1, (1,))
    progress.measured("gil-cpu", 0, (2,))
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        app.action_lessons()
        await until(pilot, lambda: isinstance(app.screen, LessonsScreen), what="lessons")
        text = await until_shown(pilot, " 1 … Concurrency vs parallelism")
        assert cut_off(app.screen) == []
        assert "predicted, not run" in text
        assert " 2 ✓ OS threads" in text and "predicted right" in text
        assert " 3 ≠ The GIL with CPU-bound work" in text and "surprised" in text
        assert " 4 · The GIL with waiting work" in text
        assert "2 of 12 done" in text  # measured, right or not


# Ways in ---------------------------------------------------------------------------------
async def test_conlab_learn_lesson_opens_that_lesson_above_the_list_and_dashboard():
    args = build_parser().parse_args(["learn", "race"])
    assert args.command == "learn" and args.lesson == "race"
    app = make_app(start="lessons:race")
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, LessonScreen), what="the lesson")
        assert app.screen.lesson.id == "race"
        kinds = [type(s) for s in app.screen_stack]
        assert kinds == [DashboardScreen, LessonsScreen, LessonScreen]
        await pilot.press("2")  # a run starts...
        await until(pilot, lambda: FakeRun.instances, what="the run")
        await pilot.press("l")  # ...back to the list, not a second one on top
        await until(pilot, lambda: isinstance(app.screen, LessonsScreen), what="the list")
        assert [type(s) for s in app.screen_stack] == [DashboardScreen, LessonsScreen]
        await until(pilot, lambda: FakeRun.instances[0].stop_calls == 1,
                    what="the lesson's run to stop with it")
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, DashboardScreen), what="dashboard")


def test_conlab_learn_refuses_an_unknown_lesson_with_the_known_ones():
    done = conlab("learn", "no-such-lesson", timeout=60)
    assert done.returncode == 2
    assert "unknown lesson 'no-such-lesson'" in done.stderr and "race" in done.stderr


async def test_lessons_are_in_the_command_palette():
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        commands = {c.title: c for c in app.get_system_commands(app.screen)}
        assert "Lessons" in commands and commands["Lessons"].help.startswith("l:")
        commands["Lessons"].callback()
        await until(pilot, lambda: isinstance(app.screen, LessonsScreen), what="lessons")


# Not available, refused -----------------------------------------------------------------
async def test_a_lesson_whose_experiment_is_missing_says_so_and_starts_nothing(monkeypatch):
    names = [n for n in L.experiment_names() if n != "goroutines"]
    monkeypatch.setattr(L, "experiment_names", lambda: names)
    app = lesson_app("mn")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await lesson_screen(pilot)
        await until_shown(pilot, "NOT AVAILABLE YET")
        await pilot.press("2")
        await pilot.pause()
        assert FakeRun.instances == [] and screen.step == "predict"
        assert "NOT AVAILABLE YET" in lessons_text(app)
        assert cut_off(screen) == []
        await pilot.press("escape")
        app.action_lessons()
        await until(pilot, lambda: isinstance(app.screen, LessonsScreen), what="lessons")
        assert "not available yet" in await until_shown(pilot, "8 – M:N: goroutines")


async def test_a_refused_plan_falls_back_to_the_next_one():
    """Under CPython 3.9 without aiohttp, io-bound is refused: the waiting-work lesson
    falls back to the decision experiment's waiting dial."""
    python = interpreter("3.9")
    if python is None:
        pytest.skip("no CPython 3.9 under ~/.pyenv on this machine")
    from lab.core.interpreters import probe

    if probe(python).has("aiohttp"):
        pytest.skip("this CPython 3.9 has aiohttp: nothing is refused")
    FakeRun.instances = []
    controller = RunController(python=python, run_factory=FakeRun, save_records=False)
    app = lesson_app("gil-io", controller)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await lesson_screen(pilot)
        await pilot.press("1")
        await until(pilot, lambda: FakeRun.instances, what="the fallback run")
        assert FakeRun.instances[0].prepared.experiment.name == "decision"
        assert screen.plan.experiment == "decision" and screen.step == "run"


@pytest.mark.parametrize("lesson_id", ["race", "deadlock"])  # three choices, four choices
async def test_the_lesson_footer_gives_the_questions_own_range(lesson_id):
    app = lesson_app(lesson_id)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await lesson_screen(pilot)
        count = len(screen.choices)
        text = await until_shown(pilot, "predict")
        footer = text.splitlines()[-1]
        assert "1-%d or" % count in footer, footer
        assert "1-%d" % (count + 1) not in text


def test_conlab_learn_help_lists_every_lesson_id():
    done = conlab("learn", "--help", timeout=60)
    assert done.returncode == 0
    for lesson in L.LESSONS:
        assert any(line.split()[:1] == [lesson.id] and lesson.title in line
                   for line in done.stdout.splitlines()), lesson.id


async def test_the_lessons_list_names_the_article_and_its_subject():
    from lab.core import article

    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("l")
        await until(pilot, lambda: isinstance(app.screen, LessonsScreen), what="lessons")
        text = " ".join((await until_shown(pilot, "The path follows")).split())
        assert '"%s"' % article.TITLE in text and article.SUBJECT in text
        assert cut_off(app.screen) == []


# The threads lesson asks which switch counter climbs: its view shows both -----------------
@pytest.mark.parametrize("width", [30, 38, 76, 118])
def test_the_gil_cpu_view_shows_both_switch_counters_of_the_workers(width):
    from lab.core.state import RunState, ThreadView
    from widgets.gil_cpu_view import GilCpuView

    state = RunState("gil-cpu", {"modes": "processes", "tasks": 4}, "python")
    state.threads[1] = ThreadView(pid=1, tid=1, name="main", voluntary=999, involuntary=999)
    for i in range(4):
        state.threads[10 + i] = ThreadView(pid=10 + i, tid=10 + i, name="proc-%d" % (i + 1),
                                           role="worker", voluntary=3, involuntary=1250,
                                           alive=i < 2)
    class Detached(GilCpuView):  # drawn without an app: no CPU history strips
        cpu_strips = {}

    lines = [line.plain for line in Detached(compact=True).lines(state, width, 12)]
    counters = [line for line in lines if "invol" in line]
    assert len(counters) == 1, lines
    assert "12" in counters[0] and "5 000" in counters[0]  # the workers' sums, not main's
    assert "vol" in counters[0].replace("invol", "")
    assert all(len(line) <= width for line in lines)


# The picture stays on screen after the run ------------------------------------------------
DEADLOCK = {
    "deadlocked": True, "completed": False, "detected_at_ms": 64.0, "detected_after_ms": 10.0,
    "rounds": {"worker-1": 0, "worker-2": 0},
    "cycle": [{"thread": "worker-1", "holds": ["lock-A"], "waits_for": "lock-B"},
              {"thread": "worker-2", "holds": ["lock-B"], "waits_for": "lock-A"}]}


async def answered_deadlock(pilot) -> LessonScreen:
    """The deadlock lesson predicted, its (fake) run finished, the answer shown."""
    screen = await lesson_screen(pilot)
    await pilot.press("3")
    await until(pilot, lambda: FakeRun.instances, what="the run")
    FakeRun.instances[0].finish(DEADLOCK)
    await until(pilot, lambda: screen.step == "answer", what="the answer")
    await until_shown(pilot, "Measured ")
    return screen


def view_lines(screen) -> list[str]:
    """The finished run's picture as its view draws it at its width: non-blank lines."""
    view = screen.query_one("#run > Pane").view
    if hasattr(view, "render_width"):  # a FoldingView: one Text for its width
        drawn = list(view.render_width(view.content_size.width).split())
    else:  # a LinesView: the lines it fitted to its box
        drawn = view._lines
    return [line.plain.rstrip() for line in drawn if line.plain.strip()]


async def test_a_tall_screen_keeps_the_finished_runs_picture_beside_the_answer():
    app = lesson_app("deadlock")
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await answered_deadlock(pilot)
        await pilot.pause()
        text = lessons_text(app)
        assert "Measured       3 neither finishes: deadlock" in text
        assert "This machine agrees with the article." in text
        assert "You predicted: " not in text  # said once, in the verdict
        lines = view_lines(screen)
        assert len(lines) >= 3, lines
        for line in lines:  # the whole finished picture, the same pane that drew it live
            assert line.strip() in text, "%r not on screen:\n%s" % (line, text)
        assert cut_off(screen) == []
        assert all(len(row) <= 120 for row in text.splitlines())
        footer = text.splitlines()[-1]
        assert "v: the run" not in text and "v run only" in footer, footer
        await pilot.press("v")  # the picture alone, then both again
        await pilot.pause()
        assert not screen.query_one("#body").display and screen.query_one("#run").display
        assert "v the answer" in lessons_text(app).splitlines()[-1]
        await pilot.press("v")
        await pilot.pause()
        assert screen.query_one("#body").display and screen.query_one("#run").display
        assert cut_off(screen) == []


async def test_at_80x24_the_answer_fits_and_v_shows_the_picture():
    app = lesson_app("deadlock")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await answered_deadlock(pilot)
        await pilot.pause()
        text = lessons_text(app)
        assert not screen.query_one("#run").display  # the answer has the room
        assert cut_off(screen) == []
        assert "v the run" in text.splitlines()[-1]
        await pilot.press("v")
        await pilot.pause()
        text = lessons_text(app)
        assert screen.query_one("#run").display and not screen.query_one("#body").display
        assert "v the answer" in text.splitlines()[-1]
        assert cut_off(screen) == []
        lines = view_lines(screen)
        assert lines and all(line.strip() in text for line in lines[:3]), text
        await pilot.press("v")
        await pilot.pause()
        assert screen.query_one("#body").display and not screen.query_one("#run").display
