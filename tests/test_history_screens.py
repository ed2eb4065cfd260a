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
    plain = ["run", "race", "-p", "increments=20000", "-p", "variant=naive"]
    # The race that differs by machine (CPython 3.9 where pyenv has one, else threads=3)
    # comes first, so the newest race, the one tests open, is the same on every machine.
    runs = [plain + (["--python", PY39] if PY39 else ["-p", "threads=3"]), plain]
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
        assert any(line.split()[:1] == ["naive"] for line in text.splitlines()) and "lost" in text
        await pilot.press("o")
        await until(pilot, lambda: isinstance(app.screen, ExperimentScreen)
                    and app.screen.is_mounted, what="experiment screen")
        assert app.screen.experiment.name == "race"
        assert app.screen.query_one("#field-increments").value == "20000"


async def test_f_filters_by_a_typed_experiment_name_and_escape_clears_it(kept):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_history(pilot, app)
        await pilot.press("f")
        await until(pilot, lambda: screen.focused is screen.query_one("#filter"),
                    what="the filter field")
        await pilot.press("r")  # a prefix is enough
        await until(pilot, lambda: len(table_rows(screen)) == 2, what="race only")
        assert [r[3] for r in table_rows(screen)] == ["race", "race"]
        await pilot.press("a", "x")  # no experiment starts with "rax"
        await until(pilot, lambda: table_rows(screen) == [], what="nothing")
        await pilot.press("backspace", "backspace", "backspace", *"gil", "enter")
        await until(pilot, lambda: [r[3] for r in table_rows(screen)] == ["gil-cpu"],
                    what="gil-cpu only")
        assert screen.focused is screen.query_one("#runs")  # enter keeps it, back to the list
        assert "only gil…" in str(screen.query_one("#topbar").render())
        await pilot.press("escape")  # clears the filter; the screen stays
        await until(pilot, lambda: len(table_rows(screen)) == 3, what="every run")
        assert isinstance(app.screen, HistoryScreen)
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, DashboardScreen), what="dashboard")


async def test_the_history_says_where_it_is_kept(kept, monkeypatch):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_history(pilot, app)
        where = str(screen.query_one("#where").render())
        assert history.db_path() in where and "CONLAB_DATA_DIR" in where
    listing = conlab("history", env={"CONLAB_DATA_DIR": os.environ["CONLAB_DATA_DIR"]})
    assert listing.returncode == 0
    assert listing.stdout.splitlines()[0] == "history: " + history.where()
    assert history.db_path() in listing.stdout.splitlines()[0]


def test_without_conlab_data_dir_the_store_is_per_user_and_says_so(monkeypatch, tmp_path):
    monkeypatch.delenv("CONLAB_DATA_DIR", raising=False)
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert history.where() == ("~/.local/share/conlab/history.sqlite3 "
                               "(one per user, all checkouts)")


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


def test_the_readme_says_where_the_history_lives():
    from tests.helpers import ROOT

    readme = " ".join((ROOT / "README.md").read_text().split())
    assert "`~/.local/share/conlab/%s`" % history.DB_NAME in readme
    assert "`$CONLAB_DATA_DIR`" in readme and "one SQLite file per user" in readme


def screen_text(app) -> str:
    """Every character the screen would draw, as the terminal would get it."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


async def test_a_damaged_record_is_skipped_with_one_notification(kept, tmp_path, monkeypatch):
    copy_dir = tmp_path / "copy"
    copy_dir.mkdir()
    for name in os.listdir(os.environ["CONLAB_DATA_DIR"]):
        if name.startswith(history.DB_NAME):
            with open(os.path.join(os.environ["CONLAB_DATA_DIR"], name), "rb") as src:
                (copy_dir / name).write_bytes(src.read())
    monkeypatch.setenv("CONLAB_DATA_DIR", str(copy_dir))
    import sqlite3

    with sqlite3.connect(str(copy_dir / history.DB_NAME)) as conn:
        conn.execute("UPDATE runs SET record = substr(record, 1, 50) WHERE id = ?",
                     (kept[1]["id"],))
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_history(pilot, app)
        assert [r[1] for r in table_rows(screen)] == [str(kept[0]["id"]), str(kept[2]["id"])]
        said = [n.message for n in app._notifications]
        assert len(said) == 1 and "1 run in" in said[0] and "cut short" in said[0]
        await pilot.press("r")
        await pilot.pause()
        await until(pilot, lambda: screen.loaded, what="reload")
        assert len(list(app._notifications)) == 1  # said once, not at every reload
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, RunRecordScreen), what="record")


async def test_escapes_and_markup_in_imported_records_are_shown_not_obeyed(
        kept, tmp_path, monkeypatch):
    hostile = "\x1b[2J\x1b]0;pwned\x07[/bold][blink]\u202e"
    entries = history.get_runs([kept[1]["id"], kept[2]["id"]])
    runs = []
    for i, entry in enumerate(entries):
        record = dict(entry["record"], error="boom" + hostile)
        record["result"] = dict(record["result"], note="n" + hostile)
        record["result"]["k" + hostile] = i
        runs.append({"uid": "hostile%d" % i, "saved_at": entry["saved_at"],
                     "host": "h" + hostile, "record": record})
    exported = tmp_path / "hostile.json"
    import json

    exported.write_text(json.dumps({"format": history.EXPORT_FORMAT, "version": 1,
                                    "runs": runs}))
    monkeypatch.setenv("CONLAB_DATA_DIR", str(tmp_path / "other"))
    assert history.import_runs(str(exported)) == (2, 0)
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_history(pilot, app)
        assert len(table_rows(screen)) == 2
        for cells in table_rows(screen):
            assert not any("\x1b" in c or "\x07" in c for c in cells)
        assert "\x1b" not in screen_text(app)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, RunRecordScreen), what="record")
        text = screen_text(app)
        assert "\x1b" not in text and "\\x1b" in text and "[/bold]" in text
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, HistoryScreen), what="history")
        await pilot.press("space", "space", "c")
        await until(pilot, lambda: isinstance(app.screen, CompareScreen), what="compare")
        text = screen_text(app)
        assert "\x1b" not in text and "\\x1b" in text
        assert any(label.startswith("k\\x1b") for label in app.screen.shown_labels())


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
