"""Be the scheduler (issue 14): the screen's keys drive a stepper session and the view
redraws from its states. Against an in-process fake first (tests/stepper_fake.py), then
against the real child when lab/core/stepper.py is there."""

from __future__ import annotations

import pytest
from rich.style import Style
from textual.filter import Monochrome

from lab.tui.app import LabApp
from lab.tui.live import RunController
from lab.tui.screens.scheduler import SchedulerScreen
from tests.helpers import new_tag, until, workload_processes
from tests.stepper_fake import FakeStepperSession
from widgets.scheduler_view import SchedulerView, draw


def make_app() -> LabApp:
    return LabApp(controller=RunController(save_records=False), live_gauge=False)


async def open_fake(app, pilot, **kwargs) -> tuple[SchedulerScreen, FakeStepperSession]:
    sessions: list[FakeStepperSession] = []

    def factory():
        sessions.append(FakeStepperSession())
        return sessions[-1]

    screen = SchedulerScreen(session_factory=factory, **kwargs)
    app.push_screen(screen)
    await until(pilot, lambda: screen.is_mounted and screen.view.state is not None,
                what="the first state")
    return screen, sessions[-1]


def drawn(screen) -> str:
    return "\n".join(screen.view.plain())


async def wait_drawn(pilot, screen, text: str) -> None:
    await until(pilot, lambda: text in drawn(screen), what=repr(text))


# With the fake session --------------------------------------------------------------------
async def test_keys_step_undo_reset_and_toggle_call_the_session_and_the_view_redraws():
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        screen, session = await open_fake(app, pilot)
        assert session.calls[0] == ("start", "counter", 2, "instruction")
        assert "(no step yet)" in drawn(screen)
        assert "▶  86    0 LOAD_GLOBAL counter" in drawn(screen)  # line, offset, dis's words

        await pilot.press("1")
        await wait_drawn(pilot, screen, "schedule 1")
        assert "loaded 0" in drawn(screen)  # thread 1 read the counter, stored nothing
        assert "▶        2 LOAD_CONST 1" in drawn(screen)
        await pilot.press("2", "2")
        await wait_drawn(pilot, screen, "schedule 1 2 2")
        await pilot.press("u")
        await until(pilot, lambda: screen.view.state["schedule"] == [1, 2],
                    what="the undone step")
        assert "schedule 1 2\n" in drawn(screen) + "\n"
        await pilot.press("r")
        await wait_drawn(pilot, screen, "(no step yet)")
        await pilot.press("l")
        assert "by line" in str(screen.query_one("#topbar").render())
        await until(pilot, lambda: screen.view.state["unit"] == "line", what="line steps")
        await pilot.press("1")  # a line is the whole increment
        await until(pilot, lambda: screen.view.state["shared"] == {"counter": 1},
                    what="one line stepped")
        assert [c[0] for c in session.calls] == ["start", "step", "step", "step", "undo",
                                                 "reset", "unit", "step"]


async def test_the_goal_reached_is_shown_with_the_schedule_that_did_it():
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        screen, session = await open_fake(app, pilot)
        assert "○ not yet" in drawn(screen)
        # Both threads load before either stores: one increment is lost.
        for key in "1 1 1 2 2 2 2 2 1 1".split():
            await pilot.press(key)
        await until(pilot, lambda: screen.view.state["goal"]["reached"], what="the goal")
        text = drawn(screen)
        assert "✓ REACHED" in text
        assert "schedule 1 1 1 2 2 2 2 2 1 1" in text
        assert "counter = 1" in text


async def test_a_refusal_is_shown_in_one_line_and_clears_on_the_next_step():
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        screen, session = await open_fake(app, pilot)
        said = lambda: str(screen.query_one("#said").render())  # noqa: E731
        await pilot.press("u")  # nothing to undo yet: the session refuses
        await until(pilot, lambda: "refused: nothing to undo" in said(), what="the refusal")
        await pilot.press("1")
        await until(pilot, lambda: said() == "", what="the refusal to clear")
        await pilot.press("3")  # two threads: refused before asking the child
        await until(pilot, lambda: "no thread 3" in said(), what="no thread 3")
        assert ("step", 3) not in session.calls


async def test_leaving_the_screen_closes_the_session_and_the_app_forgets_it():
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        screen, session = await open_fake(app, pilot)
        assert session in app.controller._sessions
        await pilot.press("escape")
        await until(pilot, lambda: session.closed, what="the session closed")
        assert not isinstance(app.screen, SchedulerScreen)
        assert session not in app.controller._sessions


async def test_quitting_closes_the_session():
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        screen, session = await open_fake(app, pilot)
        await pilot.press("q")
        await until(pilot, lambda: session.closed, what="the session closed on quit")


async def test_a_new_program_or_thread_count_closes_the_old_session_first():
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        screen, first = await open_fake(app, pilot)
        await pilot.press("t")
        await until(pilot, lambda: screen.session is not first and screen.session is not None
                    and len((screen.view.state or {}).get("threads", [])) == 3,
                    what="three threads")
        assert first.closed
        assert "1-3 step" in screen.query_one("#footer").keys


# The view alone ---------------------------------------------------------------------------
def fake_state(threads: int, **changes) -> tuple[dict, dict]:
    import asyncio

    session = FakeStepperSession()
    asyncio.run(session.start("counter", threads))
    for thread in (1, 1, 2):
        asyncio.run(session.step(thread))
    state = dict(session.state, **changes)
    return state, session.program


@pytest.mark.parametrize("threads,size", [(2, (78, 21)), (4, (118, 37))])
def test_the_view_fits_its_box(threads, size):
    state, program = fake_state(threads)
    lines = draw(state, program, *size)
    assert 0 < len(lines) <= size[1]
    assert all(line.cell_len <= size[0] for line in lines), [line.plain for line in lines]
    text = "\n".join(line.plain for line in lines)
    for n in range(1, threads + 1):
        assert "thread %d" % n in text


def test_the_source_under_the_columns_names_the_threads_on_each_line():
    state, program = fake_state(2)
    program = dict(program, source=["def body(me):", "    counter += 1"], first_line=85)
    state["threads"][1].update(status="finished", line=None)
    text = [line.plain for line in draw(state, program, 78, 21)]
    assert any(line.startswith("1   86  ") and "counter += 1" in line for line in text), text
    assert any(line.strip().startswith("85  def body(me):") for line in text), text


def test_blocked_threads_locks_and_a_deadlock_are_said_in_words():
    state, program = fake_state(2)
    state["threads"][0].update(status="blocked", holds=["A"], wants="B", blocked_by=2)
    state["threads"][1].update(status="blocked", holds=["B"], wants="A", blocked_by=1)
    state.update(locks={"A": 1, "B": 2}, deadlock={"cycle": ["1 wants B held by 2",
                                                             "2 wants A held by 1"]})
    text = "\n".join(line.plain for line in draw(state, program, 78, 21))
    assert "⊘ thread 1 blocked on B held by 2" in text
    assert "A ● held by 1, wanted by 2" in text
    assert "✗ DEADLOCK" in text and "1 wants B held by 2" in text


async def test_no_color_every_segment_of_the_view_has_a_style(monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        screen, session = await open_fake(app, pilot)
        await pilot.press("1")
        await wait_drawn(pilot, screen, "schedule 1")
        view = screen.query_one(SchedulerView)
        for y in range(view.size.height):  # blank rows below the picture included
            strip = view.render_line(y)
            assert all(isinstance(seg.style, Style) for seg in strip), (y, list(strip))
            Monochrome().apply(list(strip), None)


# With the real child ----------------------------------------------------------------------
async def open_on_the_real_child(app, pilot, program: str) -> SchedulerScreen:
    """The scheduler screen on a real stepper child, once its first state has arrived."""
    screen = SchedulerScreen(program, 2)
    app.push_screen(screen)
    await until(pilot, lambda: screen.is_mounted and screen.view.state is not None,
                timeout=20, what="the child's first state")
    return screen


async def test_by_hand_on_the_real_child_the_counter_loses_an_update(monkeypatch):
    tag = new_tag()
    monkeypatch.setenv("CONLAB_TEST_TAG", tag)
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_on_the_real_child(app, pilot, "counter")
        assert workload_processes(tag), "the test should see the stepper's child"

        def thread(n):
            return screen.view.state["threads"][n - 1]

        async def step(n):
            before = screen.view.state
            await pilot.press(str(n))
            await until(pilot, lambda: screen.view.state is not before, timeout=10,
                        what="the state after stepping %d" % n)

        # Thread 1 up to its store (it has loaded the counter), thread 2 all the way, then
        # thread 1 stores the stale value: read from the states, not counted by hand.
        while not (thread(1)["next"] or {}).get("opname", "").startswith("STORE"):
            await step(1)
        assert thread(1)["loaded"], "thread 1 should hold the value it read"
        while thread(2)["status"] != "finished":
            await step(2)
        while thread(1)["status"] != "finished":
            await step(1)
        state = screen.view.state
        assert state["shared"]["counter"] == 1
        assert state["goal"]["reached"] is True
        assert "✓ REACHED" in drawn(screen)
        assert state["schedule_text"] in drawn(screen)
        await pilot.press("escape")
        await until(pilot, lambda: not workload_processes(tag), timeout=10,
                    what="the child gone after leaving")
    assert workload_processes(tag) == []


# The ways in ------------------------------------------------------------------------------
@pytest.fixture
def fake_sessions(monkeypatch) -> list[FakeStepperSession]:
    """Every session the screen opens by itself is a fake one (no child)."""
    import lab.tui.screens.scheduler as module

    made: list[FakeStepperSession] = []

    def factory():
        made.append(FakeStepperSession())
        return made[-1]

    monkeypatch.setattr(module, "real_session", factory)
    return made


async def scheduler_open(pilot, program: str) -> SchedulerScreen:
    app = pilot.app
    await until(pilot, lambda: isinstance(app.screen, SchedulerScreen) and app.screen.is_mounted
                and app.screen.view.state is not None, what="the scheduler screen")
    assert app.screen.view.state["program"] == program
    return app.screen


@pytest.mark.parametrize("lesson_id,program", [("race", "counter"), ("deadlock", "two-locks")])
async def test_the_race_and_deadlock_lessons_end_with_now_be_the_scheduler(
        fake_sessions, lesson_id, program):
    from tests.test_lessons_tui import lesson_app, lesson_screen, until_shown
    from tests.tui_fakes import FakeRun

    app = lesson_app(lesson_id)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await lesson_screen(pilot)
        await pilot.press("b")  # before the run: not yet
        await pilot.press("1")
        await until(pilot, lambda: FakeRun.instances, what="the run")
        FakeRun.instances[0].finish({})  # no figures: the answer says so, the step stays
        await until(pilot, lambda: screen.step == "answer", what="the answer")
        assert not isinstance(app.screen, SchedulerScreen)
        text = await until_shown(pilot, "Now be the scheduler")
        assert "b be the scheduler" in text.splitlines()[-1]
        await pilot.press("b")
        scheduler = await scheduler_open(pilot, program)
        assert scheduler.note and scheduler.note.startswith("Now be the scheduler")
        assert scheduler.query_one("#note").display
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is screen, what="back to the lesson")
        await until(pilot, lambda: fake_sessions[-1].closed, what="the session closed")


async def test_a_lesson_without_a_scheduler_step_has_no_b(fake_sessions):
    from lab.lessons import tutorial as L

    assert L.get("race").scheduler and L.get("deadlock").scheduler
    assert L.get("gil-cpu").scheduler is None


async def test_the_experiment_list_palette_and_interleave_screen_open_the_scheduler(
        fake_sessions):
    from lab.tui.screens.experiment import ExperimentScreen
    from lab.tui.screens.experiments import SCHEDULER, ExperimentListScreen

    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("e")
        await until(pilot, lambda: isinstance(app.screen, ExperimentListScreen),
                    what="the list")
        app.screen.dismiss(SCHEDULER)
        await scheduler_open(pilot, "counter")
        await pilot.press("escape")
        commands = {c.title: c for c in app.get_system_commands(app.screen)}
        commands["Be the scheduler"].callback()
        await scheduler_open(pilot, "counter")
        await pilot.press("escape")
        app.open_experiment("interleave", {"program": "two-locks"})
        await until(pilot, lambda: isinstance(app.screen, ExperimentScreen)
                    and app.screen.is_mounted, what="interleave's screen")
        await pilot.press("b")
        await scheduler_open(pilot, "two-locks")


async def test_by_hand_on_the_real_child_two_locks_deadlock_and_the_cycle_is_shown(monkeypatch):
    tag = new_tag()
    monkeypatch.setenv("CONLAB_TEST_TAG", tag)
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_on_the_real_child(app, pilot, "two-locks")

        def thread(n):
            return screen.view.state["threads"][n - 1]

        async def step(n):
            before = screen.view.state
            await pilot.press(str(n))
            await until(pilot, lambda: screen.view.state is not before, timeout=10,
                        what="the state after stepping %d" % n)

        # Each thread takes its first lock, then each reaches for its second.
        while not thread(1)["holds"]:
            await step(1)
        while not thread(2)["holds"]:
            await step(2)
        while thread(1)["status"] != "blocked":
            await step(1)
        while thread(2)["status"] != "blocked":
            await step(2)
        assert screen.view.state["goal"]["reached"] is True
        text = drawn(screen)
        assert "✓ REACHED" in text and "✗ DEADLOCK" in text
        assert "1 wants %s held by 2" % thread(1)["wants"] in text
        await pilot.press("1")  # nobody can move now: the child refuses, in one line
        await until(pilot, lambda: "refused" in str(screen.query_one("#said").render()),
                    timeout=10, what="the refusal")
        session = screen.session
        await pilot.press("q")  # quitting from the screen: the app's exit path closes it
        await until(pilot, lambda: not session.running, timeout=10, what="the child ended")
    assert workload_processes(tag) == []


async def test_the_exit_guards_sweep_kills_an_adopted_sessions_child(monkeypatch):
    """SIGHUP with a stuck driver ends in RunController.kill_leftovers (the exit guard's
    sweep), not in close(): the sweep must know the stepper's child too."""
    from lab.core.stepper import StepperSession

    tag = new_tag()
    monkeypatch.setenv("CONLAB_TEST_TAG", tag)
    controller = RunController(save_records=False)
    session = StepperSession()
    assert controller.adopt_session(session)
    await session.start("counter", threads=2)
    assert workload_processes(tag)
    controller.kill_leftovers(reap_s=3.0)
    assert workload_processes(tag) == []
    await session.close()  # reaps nothing more, raises nothing
    controller.release_session(session)


# One snapshot: 80x24, NO_COLOR, the goal reached (fake session: the same on every Python) --
def test_snapshot_goal_reached_80x24_no_color(snap_compare, monkeypatch):
    from tests.tui_fakes import MACHINE, fake_controller

    monkeypatch.setenv("NO_COLOR", "1")
    app = LabApp(controller=fake_controller(), live_gauge=False, machine_line=MACHINE)

    async def reach_the_goal(pilot):
        screen = SchedulerScreen(session_factory=FakeStepperSession)
        app.push_screen(screen)
        await until(pilot, lambda: screen.is_mounted and screen.view.state is not None,
                    what="the first state")
        for key in "1 1 1 2 2 2 2 2 1 1".split():
            before = screen.view.state
            await pilot.press(key)
            await until(pilot, lambda: screen.view.state is not before, what="a step")
        assert screen.view.state["goal"]["reached"]
        await pilot.pause()

    assert snap_compare(app, terminal_size=(80, 24), run_before=reach_the_goal)


def test_a_long_schedule_is_said_in_runs_and_never_outgrows_its_line():
    from widgets.scheduler_view import schedule_line

    schedule = [1] * 13 + [2] * 12 + [1] * 3 + [2] * 3
    state = {"schedule": schedule, "schedule_text": " ".join(map(str, schedule))}
    assert schedule_line(state, 40).plain == "schedule 1×13 2×12 1×3 2×3"
    assert schedule_line(state, 78).plain == "schedule " + state["schedule_text"]
    for width in (20, 38, 78):
        assert len(schedule_line(state, width).plain) <= width
