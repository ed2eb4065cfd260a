"""Lesson progress on disk, and the lessons' own content checked without running anything."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from lab.core import catalog
from lab.lessons import tutorial as L
from lab.core.progress import FILE_NAME, Progress, progress_path

# shared/ sits beside the checkout (as in CI): ../shared/seed/
ARTICLE = Path(__file__).resolve().parents[2] / "shared" / "seed" / "concurrency-threads-gil-event-loop.txt"


@pytest.fixture(autouse=True)
def own_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("CONLAB_DATA_DIR", str(tmp_path))
    return tmp_path


def test_progress_lives_beside_the_history_and_survives_a_new_instance(own_data_dir):
    from lab.core.history import data_dir

    assert progress_path() == os.path.join(data_dir(), FILE_NAME)
    assert progress_path().startswith(str(own_data_dir))
    first = Progress()
    first.predicted("race", 2)
    assert first.status("race") == "predicted"
    first.measured("race", 2, (0,), python="3.11.7")
    second = Progress()
    assert second.status("race") == "surprised" and second.entry("race")["measured"] == [0]
    assert second.entry("race")["python"] == "3.11.7" and second.problem is None
    second.measured("race", 0, (0,))
    assert Progress().status("race") == "right" and Progress().done_count() == 1
    leftovers = [p for p in os.listdir(own_data_dir) if p != FILE_NAME]
    assert leftovers == []  # the temporary file was renamed into place


def test_a_corrupt_progress_file_is_reported_and_replaced_on_the_next_save(own_data_dir):
    (own_data_dir / FILE_NAME).write_text("{not json")
    progress = Progress()
    assert progress.lessons == {}
    assert progress.problem.startswith("progress not read from ")
    progress.predicted("gil-cpu", 1)
    assert json.loads((own_data_dir / FILE_NAME).read_text())["lessons"]["gil-cpu"][
        "predicted"] == 1


def test_another_programs_json_is_not_taken_for_progress(own_data_dir):
    (own_data_dir / FILE_NAME).write_text(json.dumps([1, 2, 3]))
    assert "not a lessons file" in Progress().problem


def test_an_unwritable_data_folder_never_fails_the_lessons(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("CONLAB_DATA_DIR", str(blocker / "conlab"))  # under a file: ENOTDIR
    progress = Progress()
    progress.predicted("race", 1)  # no exception
    progress.measured("race", 1, (1,))
    assert progress.status("race") == "right"  # kept in memory for this session
    assert progress.problem.startswith("progress not saved to %s" % blocker)
    assert "not a directory" in progress.problem


def test_every_lessons_parameters_are_accepted_by_its_experiment():
    names = L.experiment_names()
    for cpus in (1, 2, 64):
        ctx = L.facts(cpus)
        for lesson in L.LESSONS:
            assert 2 <= len(lesson.choices) <= 4, lesson.id  # keys 1-4
            assert lesson.plans, lesson.id
            for plan in lesson.plans:
                if plan.experiment not in names:
                    continue  # not in this lab yet: the lesson says so
                catalog.get(plan.experiment).validate(plan.params_for(ctx))
            lesson.text(lesson.explain, ctx), lesson.text(lesson.question, ctx)
            lesson.choice_texts(ctx)


def test_lesson_ids_are_unique_and_follow_the_articles_path():
    assert len(set(L.ids())) == len(L.LESSONS) == 12
    assert L.ids()[0] == "parallel" and L.ids()[-1] == "choosing"
    with pytest.raises(KeyError):
        L.get("no-such-lesson")


def test_bands_accept_both_neighbours_near_an_edge():
    assert L.band(2.0, (1.6, 1.1, 0.9)) == (0,)
    assert L.band(1.3, (1.6, 1.1, 0.9)) == (1,)
    assert L.band(1.0, (1.6, 1.1, 0.9)) == (2,)
    assert L.band(0.5, (1.6, 1.1, 0.9)) == (3,)
    assert L.band(0.91, (1.6, 1.1, 0.9)) == (2, 3)  # the measurement cannot tell them apart


@pytest.mark.skipif(not ARTICLE.exists(), reason="the article is not on this machine")
def test_lesson_texts_are_our_own_words_not_the_articles():
    """No run of eight words from the article appears in any lesson text."""
    words = re.findall(r"[a-z0-9']+", ARTICLE.read_text().lower())
    shingles = {" ".join(words[i:i + 8]) for i in range(len(words) - 7)}
    ctx = L.facts(2)
    for lesson in L.LESSONS:
        for text in [lesson.explain, lesson.question, lesson.article, *lesson.choices]:
            mine = re.findall(r"[a-z0-9']+", lesson.text(text, ctx).lower())
            for i in range(len(mine) - 7):
                assert " ".join(mine[i:i + 8]) not in shingles, (lesson.id, mine[i:i + 8])
