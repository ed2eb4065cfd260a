"""`conlab report`: a Markdown handout from this machine's history, beside the article."""

from __future__ import annotations

import html
import json
import re
import sys

import pytest

from lab.core import catalog
from lab.core import history
from lab.core import report
from lab.tui import pictures
from tests.helpers import ROOT, conlab, skip_if_busy


def run(*args: str) -> dict:
    done = conlab("run", *args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("CONLAB_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


def test_the_handout_names_every_experiment_that_has_runs(data_dir, tmp_path):
    race = run("race")  # the defaults: the only runs the handout quotes
    deadlock = run("deadlock")
    out = tmp_path / "handout"
    done = conlab("report", "-o", str(out), "--no-svg")
    assert done.returncode == 0, done.stderr
    text = (out / "report.md").read_text()

    assert "## race — " in text and "## deadlock — " in text
    # The figures are the measured ones, read back from history, and name their run.
    assert "| variants.call.lost | %s |" % report._short(
        race["result"]["variants"]["call"]["lost"]) in text
    race_id = history.list_runs(None, "race")[0]["id"]
    assert "| measured here | run %d, " % race_id in text
    # The article's claims are there, and labelled as the article's.
    assert text.count("**The article says** (our summary):") == 2
    # Every other experiment is listed as not measured yet, with the command to measure it.
    for name in catalog.all_experiments():
        if name.name not in ("race", "deadlock"):
            assert "- %s: `conlab run %s`" % (name.name, name.name) in text
    assert "`conlab run race`" in text and deadlock["status"] == "done"


def test_disagreements_are_called_out_from_the_measured_figures(data_dir, tmp_path):
    race = run("race", "-p", "increments=2000", "-p", "threads=2", "-p", "variant=naive")
    naive = race["result"]["variants"]["naive"]
    text = report.build_markdown(history.latest_per_interpreter())
    section = text.split("## race")[1].split("\n## ")[0]
    if naive["lost"] / naive["expected"] < 0.01:  # what every recent CPython does here
        assert "**Where this machine disagrees with the article:**" in section
        assert "lost %s of" % naive["lost"] in section
    else:
        assert "Agrees with the article" in section


def test_only_this_machines_newest_finished_run_per_interpreter_is_used(data_dir):
    old = run("race", "-p", "increments=1000", "-p", "threads=2")
    new = run("race", "-p", "increments=3000", "-p", "threads=2")
    latest = history.latest_per_interpreter()
    assert list(latest) == ["race"]
    assert [e["record"] for e in latest["race"]] == [new]
    assert old != new


def test_an_empty_history_still_writes_a_handout(data_dir, tmp_path):
    done = conlab("report", "-o", str(tmp_path / "r"), "--no-svg")
    assert done.returncode == 0
    text = (tmp_path / "r" / "report.md").read_text()
    assert "Not measured here with the defaults yet" in text
    assert "- race: `conlab run race`" in text


def test_the_handout_stands_without_the_tui(data_dir, tmp_path, monkeypatch, capsys):
    from lab.cli import main

    monkeypatch.setitem(sys.modules, "lab.tui.pictures", None)  # importing it raises ImportError
    assert main(["report", "-o", str(tmp_path / "r")]) == 0
    assert "no screenshots" in capsys.readouterr().err
    assert (tmp_path / "r" / "report.md").exists()
    assert not list((tmp_path / "r").glob("*.svg"))


def test_report_refuses_a_folder_it_cannot_create(data_dir, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    done = conlab("report", "-o", str(blocker / "sub"), "--no-svg")
    assert done.returncode == 2
    assert "cannot write the report" in done.stderr


def test_screenshots_draw_the_newest_decision_run_from_history(data_dir, tmp_path):
    record = run("decision", "-p", "workload=dial", "-p", "job_ms=5", "-p", "seconds=0.1")
    skip_if_busy(record)  # the handout leaves out contended runs, so there would be no picture
    result = record["result"]
    # Kept as if run with the defaults (20 s of running): the screenshot draws the run the
    # handout quotes, and the handout quotes only default runs.
    history.save(dict(record, params=catalog.get("decision").defaults()))
    paths = pictures.render_svgs(str(tmp_path), dashboard=False)
    assert [p.rsplit("/", 1)[-1] for p in paths] == ["decision.svg"]
    import html
    import re

    svg = open(paths[0], encoding="utf-8").read()
    words = html.unescape(" ".join(re.findall(r"<text[^>]*>(.*?)</text>", svg)))
    words = " ".join(words.replace("\xa0", " ").split())  # SVG keeps spaces as NBSP
    assert "mix" in words and "dial" in words
    assert result["rows"][0]["article_pick"] in words


def test_the_handout_pictures_the_dashboard_after_real_runs(data_dir, tmp_path):
    """The dashboard screenshot shows every pane finished, with measured figures in it."""
    paths = pictures.render_svgs(str(tmp_path), latest={}, dashboard=True)
    assert [p.rsplit("/", 1)[-1] for p in paths] == ["dashboard.svg"]
    svg = open(paths[0], encoding="utf-8").read()
    words = html.unescape(" ".join(re.findall(r"<text[^>]*>(.*?)</text>", svg)))
    assert words.count("DONE") >= 3, words[:400]
    assert "FROZEN" in words and "lost" in words


def flat(text: str) -> str:
    return " ".join(text.split())


def test_the_handout_and_the_readme_name_the_article_and_its_subject(data_dir, tmp_path):
    from lab.core import article

    done = conlab("report", "-o", str(tmp_path / "r"), "--no-svg")
    assert done.returncode == 0
    handout = flat((tmp_path / "r" / "report.md").read_text())
    readme = flat((ROOT / "README.md").read_text())
    for text in (handout, readme):
        assert '"%s"' % article.TITLE in text
        assert article.SUBJECT in text


# Which runs the handout quotes -----------------------------------------------------------
def saved(record: dict, **changes) -> int:
    return history.save(json.loads(json.dumps(dict(record, **changes))))


def with_result(record: dict, **fields) -> dict:
    return dict(record, result=dict(record["result"], **fields))


def test_the_report_quotes_only_uncontended_default_runs_measured_here(data_dir, tmp_path,
                                                                      monkeypatch):
    clean = run("selftest")  # the defaults, measured here
    clean_id = history.list_runs(1)[0]["id"]
    other_params = saved(clean, params=dict(clean["params"], workers=3))
    busy = saved(with_result(clean, load={"other_cpu_share": 0.4, "steal_share": 0.0,
                                          "busy": True, "usable_cpus": 2, "threshold": 0.1}))
    flagged = saved(with_result(clean, contended=["threads"]))  # gil-cpu's flags
    other_box = saved(clean, machine=dict(clean["machine"], kernel="0.0-elsewhere"))
    with monkeypatch.context() as patch:  # only this save: the fixture's data dir stays
        patch.setattr(history, "host_name", lambda: "another-host")
        other_host = saved(clean)
    elsewhere = str(tmp_path / "elsewhere.sqlite3")  # an export from another machine
    history.save(clean, path=elsewhere)
    history.export_runs(None, str(tmp_path / "e.json"), path=elsewhere)
    assert history.import_runs(str(tmp_path / "e.json"))[0] == 1

    entries = {e["id"]: e for e in history.load(None).entries}
    imported = max(entries)
    reasons = {i: report.why_not_for_report(entries[i]) for i in entries}
    assert reasons[clean_id] is None and report.usable_for_report(entries[clean_id])
    assert reasons[other_params] == "other parameters"
    assert reasons[busy].startswith("contended (other programs took 40%")
    assert reasons[flagged] == "contended (threads)"
    assert reasons[other_box] == "measured with other CPUs or kernel"
    assert reasons[other_host] == "measured on another-host"
    assert reasons[imported] == "imported"

    selection = report.select_runs()
    assert [e["id"] for e in selection.chosen["selftest"]] == [clean_id]
    text = report.build_markdown(selection)
    section = text.split("## selftest")[1].split("\n## ")[0]
    assert "| measured here | run %d, " % clean_id in section
    assert "**This machine, run %d, " % clean_id in section or "explanation" not in clean["result"]


def test_an_experiment_with_only_unusable_runs_is_not_measured_here_yet(data_dir):
    record = run("selftest", "-p", "workers=3")
    run_id = history.list_runs(1)[0]["id"]
    busy_id = saved(with_result(dict(record, params=catalog.get("selftest").defaults()),
                                contended=["processes"]))
    selection = report.select_runs()
    assert "selftest" not in selection.chosen
    assert "selftest" in report.missing_experiments(selection)
    text = report.build_markdown(selection)
    assert "## selftest" not in text
    assert "## Not measured here with the defaults yet" in text
    assert ("- selftest: `conlab run selftest` (left out: run %d contended (processes); run %d "
            "other parameters)" % (busy_id, run_id)) in text


def test_run_missing_runs_the_experiments_in_turn_with_their_defaults(data_dir, capsys):
    from lab.cli.history import run_missing

    assert run_missing(["selftest", "deadlock"]) == 0
    runs = history.list_runs(None)
    assert sorted(r["experiment"] for r in runs) == ["deadlock", "selftest"]
    entries = history.load(None).entries
    assert all(e["record"]["params"] == catalog.get(e["experiment"]).defaults()
               for e in entries)
    # In turn: the second started after the first was saved.
    first, second = sorted(entries, key=lambda e: e["id"])
    assert second["saved_at"] - second["record"]["duration_s"] >= first["saved_at"] - 0.5
    chosen = report.select_runs().chosen
    assert set(chosen) == {e["experiment"] for e in entries if report.usable_for_report(e)}
    assert "running selftest with its defaults (1 of 2)" in capsys.readouterr().err
