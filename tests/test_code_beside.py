"""The code beside the picture (issue 13 §3): every experiment names its lesson's functions,
their source is read with the right line numbers, race's bytecode comes from the child's
own interpreter, real runs blame lines the code panel marks, and `conlab show-code` prints
the same headless."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import re

import pytest
from rich.style import Style
from textual.app import App
from textual.filter import Monochrome

import workloads
from lab.core import source
from lab.core.runner import RunRequest, run_experiment
from lab.core.state import RunState
from tests.helpers import conlab, interpreter
from widgets.code_view import CodeView

EXPERIMENTS = workloads.experiment_names()


def real_run(experiment: str, params: dict, python: str | None = None) -> RunState:
    state = asyncio.run(run_experiment(RunRequest(experiment, params, python=python)))
    assert state.status == "done", (experiment, state.error, list(state.stderr_tail))
    return state


# 1-2. Declarations and source ---------------------------------------------------------------
@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_declares_functions_that_exist_with_their_first_line(experiment):
    names = source.declared(experiment)
    assert names, "%s declares no LESSON_CODE" % experiment
    functions = source.lesson_functions(experiment)
    assert len(functions) == len(names)
    for declared, function in zip(names, functions):
        # The same function, imported: inspect must agree on its first line and its text.
        sibling, _, qualname = declared.rpartition(":")
        module = importlib.import_module("workloads." + (sibling or workloads.module_name(experiment)))
        target = module
        for part in qualname.split("."):
            target = getattr(target, part)
        lines, first = inspect.getsourcelines(target)
        assert function.first_line == first, (declared, function.first_line, first)
        assert list(function.lines) == [line.rstrip("\n") for line in lines], declared
        assert function.lines[0].lstrip().startswith(("def ", "async def ", "@"))


def test_a_name_no_file_defines_is_refused_with_the_experiment_and_the_name(monkeypatch):
    module = workloads.load("gil-cpu")
    monkeypatch.setattr(module, "LESSON_CODE", ("cpu_work", "no_such_loop"))
    with pytest.raises(source.SourceError, match="gil-cpu.*no_such_loop.*workloads/gil_cpu.py"):
        source.lesson_functions("gil-cpu")
    panel = CodeView("gil-cpu")  # the experiment screen still opens, and says why
    assert "✗ gil-cpu: LESSON_CODE names 'no_such_loop'" in panel.code_text().plain


# 3. Race's bytecode, from the child's interpreter ------------------------------------------
RACE = {"threads": 2, "increments": 100, "variant": "naive"}


def race_bytecode(version: str) -> dict[str, list]:
    python = interpreter(version)
    if python is None:
        pytest.skip("no CPython %s under pyenv on this machine" % version)
    return source.race_bytecode(real_run("race", RACE, python=python).result)


def test_race_reports_each_variants_bytecode_as_its_own_interpreter_compiles_it():
    old, new = race_bytecode("3.9"), race_bytecode("3.13")
    for listing in (old, new):
        assert set(listing) == set(workloads.load("race").VARIANTS)
        for variant in ("naive", "call", "len"):
            marked = source.read_write(listing[variant])
            assert "R" in marked.values() and "W" in marked.values(), (variant, listing[variant])
    # 3.9 adds with INPLACE_ADD, 3.13 with BINARY_OP (the lab itself runs neither's compiler)
    opnames = lambda listing: {row[1] for row in listing["naive"]}  # noqa: E731
    assert "INPLACE_ADD" in opnames(old) and "BINARY_OP" not in opnames(old)
    assert "BINARY_OP" in opnames(new) and "INPLACE_ADD" not in opnames(new)
    assert old["naive"] != new["naive"]
    # Between the read and the write of `call` sits the call to noop(), on both.
    for listing in (old, new):
        rows, marked = listing["call"], source.read_write(listing["call"])
        between = [rows[i][2] for i, flag in marked.items() if flag == "|"]
        assert any("noop" in argrepr for argrepr in between), rows


# 4. Real runs blame lines; the code panel marks them --------------------------------------
async def draw(experiment: str, state: RunState, size=(80, 24)) -> list[str]:
    class Host(App):
        def compose(self):
            yield CodeView(experiment)

    app = Host()
    async with app.run_test(size=size) as pilot:
        view = app.query_one(CodeView)
        view.show(state)
        await pilot.pause()
        return view.code_text().plain.split("\n")


def marked(row: str, glyph: str, line: int) -> bool:
    """A source row whose gutter carries `glyph` and the line number."""
    return re.match(r"%s +%d  " % (re.escape(glyph), line), row) is not None


def test_a_real_loop_freeze_run_blames_the_blocking_line_and_the_panel_marks_it():
    state = real_run("loop-freeze", {"block": "sleep", "block_ms": 120, "blocks": 1,
                                     "duration_s": 0.4})
    line = next(n for n, text in enumerate(open(workloads.load("loop-freeze").__file__), 1)
                if "time.sleep(ms / 1000)" in text)
    found = source.marks("loop-freeze", state.result)
    assert source.Mark("workloads/loop_freeze.py", line, source.BLAMED, found[0].says) in found, found
    assert any(m.glyph == source.ON_THE_WAY and m.path == "workloads/loop_freeze.py"
               for m in found), found  # blocker()'s call of the work
    drawn = asyncio.run(draw("loop-freeze", state))
    assert any(marked(row, source.BLAMED, line) and "time.sleep" in row for row in drawn), drawn
    # While the block still runs, the watchdog's first word already marks it.
    events = list(state.events)
    ongoing = next(i for i, e in enumerate(events) if e["ev"] == "frozen" and e.get("ongoing"))
    partial = RunState(state.experiment, state.params, state.python)
    for event in events[:ongoing + 1]:
        partial.apply_event(event)
    assert partial.result is None
    assert [m.line for m in source.marks("loop-freeze", None, partial.last)
            if m.glyph == source.BLAMED] == [line]


def test_a_real_deadlock_marks_the_line_where_each_thread_waits():
    state = real_run("deadlock", {"threads": 2, "hold_ms": 100, "rounds": 2})
    if not state.result["deadlocked"]:
        pytest.skip("the threads did not collide this time (a busy machine)")
    for entry in state.result["cycle"]:
        assert entry["function"] == "opposite_order"
    line = state.result["cycle"][0]["line"]
    assert "with second:" in open(workloads.load("deadlock").__file__).read().splitlines()[line - 1]
    (mark,) = source.marks("deadlock", state.result)
    assert (mark.line, mark.glyph) == (line, source.WAITING)
    assert "worker-1" in mark.says and "worker-2" in mark.says
    drawn = asyncio.run(draw("deadlock", state))
    assert any(marked(row, source.WAITING, line) and "with second:" in row for row in drawn), drawn


def test_the_interleave_program_marks_where_each_thread_stands():
    state = real_run("interleave", {"program": "two-locks", "threads": 2})
    if not state.result["run"]["deadlock_cycle"]:
        pytest.skip("this schedule did not deadlock: %s" % state.result["run"]["schedule"])
    lines = open(workloads.load("interleave").__file__).read().splitlines()
    found = source.marks("interleave", state.result)
    assert found and all(m.glyph == source.WAITING for m in found), found
    assert all(lines[m.line - 1].strip() in ("with first:", "with second:") for m in found)
    assert "thread 1" in " ".join(m.says for m in found) and "thread 2" in " ".join(
        m.says for m in found)


# 5. The widget at 80x24 under NO_COLOR, on the experiment screen --------------------------
async def test_the_code_panel_replaces_the_view_at_80x24_and_sits_beside_it_at_120(monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    from lab.tui.app import LabApp
    from lab.tui.screens.experiment import ExperimentScreen
    from tests.tui_fakes import fake_controller

    class OneScreen(App):
        HORIZONTAL_BREAKPOINTS = LabApp.HORIZONTAL_BREAKPOINTS  # -narrow below 120 columns

        def __init__(self):
            super().__init__()
            self.controller = fake_controller()
            self.low_bandwidth = False

        def on_mount(self):
            self.push_screen(ExperimentScreen("race"))

    for size, beside in (((80, 24), False), ((120, 40), True)):
        app = OneScreen()
        assert app.no_color
        async with app.run_test(size=size) as pilot:
            await pilot.pause()
            screen = app.screen
            code, right = screen.query_one(CodeView), screen.query_one("#right")
            assert not code.display
            await pilot.press("v")
            await pilot.pause()
            assert code.display and code.region.width > 0
            assert right.display is beside, size
            for y in range(code.region.height):
                strip = code.render_line(y)
                assert all(isinstance(segment.style, Style) for segment in strip), list(strip)
                Monochrome().apply(list(strip), None)
            text = code.code_text()
            assert "def naive(n):" in text.plain
            assert all(span.style.color is None for span in text.spans
                       if isinstance(span.style, Style)), "NO_COLOR: a colour was kept"
            await pilot.press("v")
            await pilot.pause()
            assert not code.display and right.display


# 6. Headless parity ---------------------------------------------------------------------------
def test_show_code_prints_the_lesson_and_race_its_bytecode():
    done = conlab("show-code", "loop-freeze", timeout=60)
    assert done.returncode == 0, done.stderr
    assert "def cpu_heavy(ms):" in done.stdout and "workloads/loop_freeze.py:" in done.stdout
    race = conlab("show-code", "race", "--json", timeout=60)
    assert race.returncode == 0, race.stderr
    import json

    found = json.loads(race.stdout)
    naive = next(f for f in found["functions"] if f["name"] == "naive")
    assert [row["mark"] for row in naive["bytecode"] if row["mark"] in ("R", "W")] == ["R", "W"]


def test_show_code_of_an_unknown_experiment_says_one_line_and_exits_2():
    done = conlab("show-code", "no-such-thing", timeout=60)
    assert done.returncode == 2
    assert done.stdout == "" and len(done.stderr.strip().splitlines()) == 1
    assert "no-such-thing" in done.stderr


def test_a_saved_run_marks_the_same_lines_headless(tmp_path):
    env = {"CONLAB_DATA_DIR": str(tmp_path)}
    done = conlab("run", "deadlock", "-p", "hold_ms=100", "-p", "rounds=2", "--code", "--json",
                  timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    import json

    record = json.loads(done.stdout)
    if not record["result"]["deadlocked"]:
        pytest.skip("the threads did not collide this time (a busy machine)")
    line = record["result"]["cycle"][0]["line"]
    assert [(m["line"], m["glyph"]) for m in record["code"]["marks"]] == [(line, source.WAITING)]
    shown = conlab("show-code", "deadlock", "--run", "1", timeout=60, env=env)
    assert shown.returncode == 0, shown.stderr
    assert any(marked(row, source.WAITING, line) for row in shown.stdout.splitlines()), shown.stdout
    other = conlab("show-code", "race", "--run", "1", timeout=60, env=env)
    assert other.returncode == 2 and "run 1 is of deadlock, not race" in other.stderr
