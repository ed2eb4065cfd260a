"""Run history: every run is kept, several writers lose nothing, a broken store never
breaks a run. Every test points CONLAB_DATA_DIR at its own tmp_path."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys

import pytest

from lab.core import history
from tests.helpers import ROOT, conlab


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("CONLAB_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(history, "_problem", None)
    return tmp_path


@pytest.fixture(scope="module")
def race_record(tmp_path_factory):
    """A record from a real, small run of race (saved into a throwaway folder)."""
    folder = tmp_path_factory.mktemp("race-record")
    done = conlab("run", "race", "-p", "increments=1000", "-p", "threads=2", "--json",
                  env={"CONLAB_DATA_DIR": str(folder)})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_data_folder_follows_conlab_data_dir_then_xdg(monkeypatch, tmp_path):
    monkeypatch.delenv("CONLAB_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert history.db_path() == str(tmp_path / "xdg" / "conlab" / "history.sqlite3")
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert history.db_path() == str(tmp_path / "home" / ".local" / "share" / "conlab" /
                                    "history.sqlite3")
    monkeypatch.setenv("CONLAB_DATA_DIR", str(tmp_path / "mine"))
    assert history.db_path() == str(tmp_path / "mine" / "history.sqlite3")


def test_a_headless_run_is_saved_exactly_as_printed(data_dir):
    done = conlab("run", "race", "-p", "increments=1000", "-p", "threads=2", "--json")
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    runs = history.list_runs()
    assert [r["experiment"] for r in runs] == ["race"]
    assert runs[0]["python"] == "cpython %s" % printed["interpreter"]["version"]
    assert history.get_run(runs[0]["id"])["record"] == printed

    listing = conlab("history")
    assert listing.returncode == 0
    assert "race" in listing.stdout and "naive lost" in listing.stdout
    shown = conlab("history", "show", str(runs[0]["id"]))
    assert shown.returncode == 0
    assert "conlab run race -p threads=2 -p increments=1000" in shown.stdout
    assert any(line.split()[:1] == ["naive"] for line in shown.stdout.splitlines())  # its row
    assert "lost" in shown.stdout
    as_json = json.loads(conlab("history", "--json", "--experiment", "race").stdout)
    assert [r["id"] for r in as_json] == [runs[0]["id"]]
    assert json.loads(conlab("history", "--json", "--experiment", "gil-cpu").stdout) == []


def test_unknown_ids_and_experiments_are_refused_with_exit_2(data_dir):
    missing = conlab("history", "show", "42")
    assert missing.returncode == 2
    assert "no run with id 42" in missing.stderr
    unknown = conlab("history", "--experiment", "nope")
    assert unknown.returncode == 2 and "nope" in unknown.stderr
    bad = conlab("history", "show", "zero")
    assert bad.returncode == 2 and "positive whole number" in bad.stderr


WRITER = r"""
import json, sys
from lab.core import history
record = json.load(open(sys.argv[1]))
sys.stdin.readline()  # wait for the starting gun so every writer overlaps
ids = [history.save(dict(record, params=dict(record["params"], writer=int(sys.argv[2]), n=n)))
       for n in range(int(sys.argv[3]))]
print(json.dumps(ids))
"""


def test_several_processes_saving_at_once_lose_nothing(data_dir, race_record):
    writers, each = 6, 25
    source = data_dir / "record.json"
    source.write_text(json.dumps(race_record))
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(source), str(w), str(each)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, cwd=ROOT)
             for w in range(writers)]
    for proc in procs:  # all started: fire
        proc.stdin.write("go\n")
        proc.stdin.flush()
    outputs = [proc.communicate(timeout=120) for proc in procs]
    for proc, (out, err) in zip(procs, outputs):
        assert proc.returncode == 0, err
    ids = [i for out, _err in outputs for i in json.loads(out)]
    assert len(ids) == len(set(ids)) == writers * each

    runs = history.list_runs(limit=None)
    assert len(runs) == writers * each
    saved = {(e["record"]["params"]["writer"], e["record"]["params"]["n"])
             for e in history.get_runs(ids)}
    assert saved == {(w, n) for w in range(writers) for n in range(each)}
    with sqlite3.connect(history.db_path()) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_corrupt_database_is_reported_once_and_the_run_still_succeeds(data_dir):
    db = data_dir / "history.sqlite3"
    db.write_bytes(b"this is not an SQLite database, it is a lesson plan\n" * 100)
    done = conlab("run", "race", "-p", "increments=1000", "-p", "threads=2", "--json")
    assert done.returncode == 0
    assert json.loads(done.stdout)["status"] == "done"
    problem = done.stderr.strip().splitlines()
    assert len(problem) == 1, done.stderr
    assert "history not saved" in problem[0] and str(db) in problem[0]
    assert "damaged" in problem[0]
    assert db.read_bytes().startswith(b"this is not")  # we never overwrite the user's file

    listing = conlab("history")
    assert listing.returncode == 1
    assert str(db) in listing.stderr and "damaged" in listing.stderr


def test_an_unwritable_folder_is_reported_and_the_run_still_succeeds(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("CONLAB_DATA_DIR", str(blocker / "conlab"))  # cannot mkdir under a file
    done = conlab("run", "race", "-p", "increments=1000", "-p", "threads=2")
    assert done.returncode == 0
    assert "naive" in done.stdout
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot create the history folder" in lines[0]


def test_save_quietly_says_it_once_per_process(data_dir, race_record, capsys):
    (data_dir / "history.sqlite3").write_bytes(b"\0garbage" * 512)
    assert history.save_quietly(race_record) is None
    assert history.save_quietly(race_record) is None
    err = capsys.readouterr().err
    assert err.count("history not saved") == 1
    assert history.problem() and "damaged" in history.problem()


def test_a_problem_handler_replaces_stderr(data_dir, race_record, capsys, monkeypatch):
    (data_dir / "history.sqlite3").write_bytes(b"\0garbage" * 512)
    heard = []
    monkeypatch.setattr(history, "_problem_handler", heard.append)
    assert history.save_quietly(race_record) is None
    assert capsys.readouterr().err == ""
    assert len(heard) == 1 and "history not saved" in heard[0]


def test_save_quietly_returns_each_new_id(data_dir, race_record):
    assert history.save_quietly(race_record) == 1
    assert history.save_quietly(race_record) == 2
    assert os.path.exists(history.db_path())
    assert history.problem() is None


def test_compare_labels_are_unique_whatever_the_records_hold():
    """Result keys that shadow header rows, params, or each other once flattened."""
    def entry(run_id, result, params):
        return {"id": run_id, "saved_at": 0, "host": "h", "imported": False,
                "record": {"experiment": "x", "params": params, "result": result,
                           "machine": {"usable_cpus": 2}, "duration_s": 1.0}}

    weird = {"cpus": 4, "duration_s": 2.0, "run": 9, "result": {"cpus": 5},
             "param": {"n": 1}, "a.b": 1, "a": {"b": 2}}
    rows = history.compare([entry(1, weird, {"n": 3}), entry(2, {"cpus": 8}, {"n": 4})])
    labels = [label for label, _ in rows]
    assert len(labels) == len(set(labels)), labels
    by_label = dict(rows)
    assert by_label["cpus"] == [2, 2]          # the machine's, as before
    assert by_label["run"] == [1, 2]
    assert by_label["param.n"] == [3, 4]
    assert by_label["result.cpus"] == [4, 8]   # the result's, named apart
    # every value of the result is still shown somewhere
    values = [v for _, vs in rows for v in vs]
    assert 5 in values and 9 in values and 2.0 in values
