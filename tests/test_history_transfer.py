"""Moving runs between machines (export/import) and comparing runs side by side,
including the same experiment under two interpreters."""

from __future__ import annotations

import json

import pytest

from lab.core import history
from tests.helpers import conlab, interpreter

PY39 = interpreter("3.9")


def run_race(*extra: str) -> dict:
    done = conlab("run", "race", "-p", "increments=2000", "-p", "threads=2", "--json", *extra)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_export_then_import_elsewhere_round_trips(tmp_path, monkeypatch):
    here, there = tmp_path / "laptop", tmp_path / "server"
    monkeypatch.setenv("CONLAB_DATA_DIR", str(here))
    first, second = run_race(), run_race("-p", "variant=locked")
    originals = history.get_runs([1, 2])

    out = tmp_path / "runs.json"
    done = conlab("export", "-o", str(out))
    assert done.returncode == 0 and "exported 2 runs" in done.stdout
    only_one = tmp_path / "one.json"
    assert conlab("export", "2", "-o", str(only_one)).returncode == 0
    assert [r["record"] for r in json.loads(only_one.read_text())["runs"]] == [second]

    monkeypatch.setenv("CONLAB_DATA_DIR", str(there))
    done = conlab("import", str(out))
    assert done.returncode == 0 and "imported 2 runs" in done.stdout
    imported = history.get_runs([1, 2])
    assert [e["record"] for e in imported] == [first, second]
    for mine, theirs in zip(originals, imported):
        assert theirs["uid"] == mine["uid"]
        assert theirs["saved_at"] == pytest.approx(mine["saved_at"])
        assert theirs["host"] == mine["host"]
        assert theirs["imported"] and not mine["imported"]

    again = conlab("import", str(out))  # the same file twice: nothing doubles
    assert again.returncode == 0 and "imported 0 runs" in again.stdout
    assert "2 already in history" in again.stdout
    assert len(history.list_runs(None)) == 2
    # Imported runs were measured elsewhere: the handout of *this* machine leaves them out.
    assert history.latest_per_interpreter() == {}


def test_import_refuses_what_is_not_an_export(tmp_path, monkeypatch):
    monkeypatch.setenv("CONLAB_DATA_DIR", str(tmp_path))
    not_json = tmp_path / "notes.txt"
    not_json.write_text("hello")
    wrong = tmp_path / "other.json"
    wrong.write_text(json.dumps({"runs": []}))
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"format": "conlab-runs", "version": 1,
                                  "runs": [{"uid": "x", "record": {}}]}))
    for path, words in ((not_json, "not JSON"), (wrong, "not a conlab export"),
                        (broken, "record 1: .experiment must be an experiment name"),
                        (tmp_path / "missing.json", "cannot read")):
        done = conlab("import", str(path))
        assert done.returncode == 2, path
        assert words in done.stderr
    assert history.list_runs() == []


def test_compare_needs_two_runs_that_exist(tmp_path, monkeypatch):
    monkeypatch.setenv("CONLAB_DATA_DIR", str(tmp_path))
    run_race()
    one = conlab("compare", "1")
    assert one.returncode == 2 and "at least two" in one.stderr
    missing = conlab("compare", "1", "7")
    assert missing.returncode == 2 and "no run with id 7" in missing.stderr


@pytest.mark.skipif(PY39 is None, reason="no CPython 3.9 under pyenv on this machine")
def test_compare_the_race_across_two_interpreters(tmp_path, monkeypatch):
    monkeypatch.setenv("CONLAB_DATA_DIR", str(tmp_path))
    old, new = run_race("--python", PY39), run_race()
    assert old["interpreter"]["version"].startswith("3.9.")
    assert old["interpreter"]["version"] != new["interpreter"]["version"]

    done = conlab("compare", "1", "2")
    assert done.returncode == 0, done.stderr
    rows = {line[2:].split()[0]: line for line in done.stdout.splitlines() if line[2:].strip()}
    assert old["interpreter"]["version"] in rows["python"]
    assert new["interpreter"]["version"] in rows["python"]
    assert rows["python"].startswith("*")  # marked: the runs differ here
    assert not rows["param.increments"].startswith("*")
    lost = [old["result"]["variants"]["call"]["lost"], new["result"]["variants"]["call"]["lost"]]
    assert rows["variants.call.lost"].split()[-2:] == [_cell(v) for v in lost]

    as_json = json.loads(conlab("compare", "1", "2", "--json").stdout)
    by_label = {row["label"]: row["values"] for row in as_json}
    assert by_label["variants.naive.lost"] == [old["result"]["variants"]["naive"]["lost"],
                                               new["result"]["variants"]["naive"]["lost"]]
    assert by_label["run"] == [1, 2]


def _cell(value: int) -> str:
    return "{:,}".format(value).replace(",", " ") if value >= 10000 else str(value)
