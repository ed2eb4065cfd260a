"""Pilot tests of the History, Compare and run-record screens, over records of real runs
(small `conlab run` children saved into a private history database)."""

from __future__ import annotations

import os

import pytest

from lab.core import history
from lab.tui.screens.compare import CompareScreen
from lab.tui.screens.dashboard import DashboardScreen
from lab.tui.screens.experiment import ExperimentScreen
from lab.tui.screens.history import HistoryScreen, RunRecordScreen
from tests.helpers import conlab, interpreter
from tests.helpers import until
from tests.test_tui_pilot import make_app

PY39 = interpreter("3.9")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """Three real runs kept in a fresh history: race (lab's python, and 3.9 if present),
    then gil-cpu."""
    folder = str(tmp_path_factory.mktemp("history"))
    env = {"CONLAB_DATA_DIR": folder}
    runs = [["run", "race", "-p", "increments=20000", "-p", "variant=naive"]]
    if PY39:
        runs.append(runs[0] + ["--python", PY39])
    else:
        runs.append(runs[0] + ["-p", "threads=3"])
    runs.append(["run", "gil-cpu", "-p", "work=1000000", "-p", "tasks=2", "-p",
                 "modes=threads"])
    for args in runs:
        done = conlab(*args, env=env, timeout=120)
        assert done.returncode == 0, done.stderr
    return folder


@pytest.fixture
def kept(data_dir, monkeypatch):
    monkeypatch.setenv("CONLAB_DATA_DIR", data_dir)
    runs = history.list_runs(None)
    assert [r["experiment"] for r in runs] == ["gil-cpu", "race", "race"]
    return runs


def table_rows(screen) -> list[list[str]]:
    table = screen.query_one("#runs")
    return [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]


async def open_history(pilot, app) -> HistoryScreen:
    await pilot.press("h")
    await until(pilot, lambda: isinstance(app.screen, HistoryScreen) and app.screen.loaded,
                what="the history to load")
    return app.screen


async def test_h_lists_the_kept_runs_newest_first_with_a_headline(kept):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_history(pilot, app)
        rows = table_rows(screen)
        assert [r[1] for r in rows] == [str(r["id"]) for r in kept]
        assert [r[3] for r in rows] == ["gil-cpu", "race", "race"]
        assert [r[5] for r in rows] == ["done"] * 3
        assert rows[1][4] == kept[1]["python"].replace("cpython ", "")
        # The headline is the measured figure, from the record itself.
        lost = history.get_run(kept[1]["id"])["record"]["result"]["variants"]["naive"]["lost"]
        assert rows[1][6].startswith("naive lost %s" % str(lost)[:3])
        assert "3 runs" in str(screen.query_one("#topbar").render())
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, DashboardScreen), what="dashboard")


async def test_marking_two_runs_and_c_compares_them_side_by_side(kept):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_history(pilot, app)
        await pilot.press("down", "space", "space")  # the two race runs
        assert screen.marked == [kept[1]["id"], kept[2]["id"]]
        assert [r[0] for r in table_rows(screen)] == [" ", "✓", "✓"]
        assert "2 marked" in str(screen.query_one("#topbar").render())
        await pilot.press("c")
        await until(pilot, lambda: isinstance(app.screen, CompareScreen), what="compare")
        compare = app.screen
        table = compare.query_one("#table")
        assert len(table.columns) == 2 + 2  # mark, label, one column per run
        rows = {str(table.get_row_at(i)[1]): [str(c) for c in table.get_row_at(i)]
                for i in range(table.row_count)}
        assert rows["experiment"][0] == " " and rows["experiment"][2:] == ["race", "race"]
        assert rows["variants.naive.expected"][0] == ("*" if not PY39 else " ")
        assert rows["python"][0] == ("*" if PY39 else " ")
        assert "variants.naive.lost" in rows
        # d: only the rows that differ (and the run ids, to know which column is which).
        await pilot.press("d")
        shown = compare.shown_labels()
        assert "run" in shown and "experiment" not in shown
        assert all(rows[label][0] == "*" for label in shown if label != "run")
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, HistoryScreen), what="history")


async def test_c_with_one_mark_compares_nothing(kept):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_history(pilot, app)
        await pilot.press("space", "c")
        await pilot.pause()
        assert app.screen is screen
        assert screen.marked == [kept[0]["id"]]
        await pilot.press("u")
        assert screen.marked == [] and all(r[0] == " " for r in table_rows(screen))


async def test_enter_opens_the_record_and_o_opens_its_experiment_with_its_values(kept):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await open_history(pilot, app)
        await pilot.press("down", "enter")
        await until(pilot, lambda: isinstance(app.screen, RunRecordScreen), what="record")
        text = str(app.screen.query_one("#record").render())
        assert "repeat: conlab run race -p increments=20000 -p variant=naive" in text
        assert "variants.naive.lost" in text
        await pilot.press("o")
        await until(pilot, lambda: isinstance(app.screen, ExperimentScreen)
                    and app.screen.is_mounted, what="experiment screen")
        assert app.screen.experiment.name == "race"
        assert app.screen.query_one("#field-increments").value == "20000"


async def test_f_filters_by_experiment_in_turn(kept):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_history(pilot, app)
        await pilot.press("f")
        assert [r[3] for r in table_rows(screen)] == ["gil-cpu"]
        await pilot.press("f")
        assert [r[3] for r in table_rows(screen)] == ["race", "race"]
        await pilot.press("f")
        assert len(table_rows(screen)) == 3


async def test_a_damaged_database_is_reported_and_the_lab_carries_on(tmp_path, monkeypatch):
    monkeypatch.setenv("CONLAB_DATA_DIR", str(tmp_path))
    with open(os.path.join(str(tmp_path), history.DB_NAME), "wb") as f:
        f.write(b"this is not a database" * 100)
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_history(pilot, app)
        problem = str(screen.query_one("#problem").render())
        assert "HISTORY UNAVAILABLE" in problem and "damaged" in problem
        assert table_rows(screen) == []
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, DashboardScreen), what="dashboard")


async def test_history_is_in_the_command_palette():
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert "History" in titles


async def test_imported_runs_are_starred(kept, tmp_path, monkeypatch):
    exported = str(tmp_path / "runs.json")
    assert history.export_runs([kept[1]["id"]], exported) == 1
    monkeypatch.setenv("CONLAB_DATA_DIR", str(tmp_path / "other-machine"))
    assert history.import_runs(exported)[0] == 1
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_history(pilot, app)
        rows = table_rows(screen)
        assert len(rows) == 1 and rows[0][1].endswith("*")
        assert "*imported" in str(screen.query_one("#topbar").render())


async def test_comparing_a_gil_cpu_run_with_another_lists_every_row_once(kept):
    """gil-cpu's result holds `cpus` and `duration_s`, as the compare header does: the
    table refused the second `cpus` key and the app crashed (DuplicateKey)."""
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_history(pilot, app)
        await pilot.press("space", "space")  # gil-cpu, then a race run
        assert screen.marked == [kept[0]["id"], kept[1]["id"]]
        await pilot.press("c")
        await until(pilot, lambda: isinstance(app.screen, CompareScreen), what="compare")
        labels = app.screen.shown_labels()
        assert len(labels) == len(set(labels))
        assert "cpus" in labels and "result.cpus" in labels


def test_the_cli_compare_prints_no_row_name_twice(kept):
    done = conlab("compare", str(kept[0]["id"]), str(kept[1]["id"]))
    assert done.returncode == 0, done.stderr
    names = [line[2:].split("  ")[0].strip() for line in done.stdout.splitlines()
             if line[:1] in ("*", " ") and line[2:].strip() and not line.startswith("* the")]
    assert "cpus" in names and "result.cpus" in names
    assert len(names) == len(set(names)), [n for n in names if names.count(n) > 1]
