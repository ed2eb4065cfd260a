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
from tests.helpers import ROOT, conlab


def run(*args: str) -> dict:
    done = conlab("run", *args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("CONLAB_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


def test_the_handout_names_every_experiment_that_has_runs(data_dir, tmp_path):
    race = run("race", "-p", "increments=2000", "-p", "threads=2")
    gil = run("gil-cpu", "-p", "work=200000", "-p", "modes=threads")
    out = tmp_path / "handout"
    done = conlab("report", "-o", str(out), "--no-svg")
    assert done.returncode == 0, done.stderr
    text = (out / "report.md").read_text()

    assert "## race — " in text and "## gil-cpu — " in text
    # The figures are the measured ones, read back from history.
    assert "| variants.call.lost | %s |" % race["result"]["variants"]["call"]["lost"] in text
    assert "| modes.threads.wall_s | %s |" % report._short(
        gil["result"]["modes"]["threads"]["wall_s"]) in text
    # The article's claims are there, and labelled as the article's.
    assert text.count("**The article says** (our summary):") == 2
    # Every other experiment is listed as not measured yet, with the command to measure it.
    for name in catalog.all_experiments():
        if name.name not in ("race", "gil-cpu"):
            assert "- %s: `conlab run %s`" % (name.name, name.name) in text
    # The repeat command brings back the same parameters.
    assert "`conlab run race -p threads=2 -p increments=2000`" in text


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
    assert "Not measured on this machine yet" in text
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
    result = run("decision", "-p", "workload=dial", "-p", "job_ms=5", "-p", "seconds=0.1")["result"]
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
