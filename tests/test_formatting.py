"""Numbers in tables read at a glance, the same in the CLI and the TUI."""

from __future__ import annotations

import re

import pytest

from lab.core.formatting import format_record
from lab.core.formatting import fmt_value
_fmt = fmt_value  # the CLI's tables and the TUI's read the same function
from widgets.result_table import show_value
from workloads._words import times

CASES = [
    (966_800.3, "966 800"),
    (58538, "58 538"),
    (-4.096, "-4.096"),
    (0.5, "0.5"),
    (12.3456, "12.35"),
    (0.000059, "0.000059"),
    (999.96, "1 000"),
    (0.0, "0"),
    (True, "yes"),
    (None, "-"),
    ([1.5, 20000], "1.5, 20 000"),
]


@pytest.mark.parametrize("value, shown", CASES)
def test_the_cli_and_the_tui_show_a_value_the_same_way(value, shown):
    assert fmt_value(value) == shown
    assert _fmt(value) == shown
    assert show_value(value) == shown


@pytest.mark.parametrize("value", [1.0, 12.5, 1234.5, 9.668e5, 3.3e9, 2e-5, 0.123])
def test_no_exponent_for_ordinary_magnitudes(value):
    for text in (_fmt(value), show_value(value)):
        assert "e" not in text, text


def test_counts_in_sentences():
    assert [times(n) for n in (0, 1, 2, 3)] == ["0 times", "once", "twice", "3 times"]
    assert times(12345, "12 345") == "12 345 times"


def test_the_cli_run_table_has_no_exponents():
    record = {"experiment": "x", "status": "done", "duration_s": 1.0, "error": None,
              "interpreter": {"implementation": "cpython", "version": "3.11", "gil_enabled": True},
              "machine": {"usable_cpus": 2, "hypervisor": None},
              "result": {"a_us": 966800.25, "b": 0.00012, "c": 123456789},
              "threads": []}
    text = format_record(record)
    assert not re.search(r"\d[eE][+-]\d", text), text
    assert "966 800" in text and "123 456 789" in text


def test_microseconds_are_written_us_nowhere_people_read():
    """Sentences built by workloads, lessons and views say µs (JSON keys keep `_us`)."""
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    found = []
    for folder in ("workloads", "widgets", "lab"):
        for path in (root / folder).rglob("*.py"):
            for number, line in enumerate(path.read_text().splitlines(), 1):
                code = line.split("#", 1)[0]
                if re.search(r"(%[0-9.]*[dfgs]|\d|\}) ?us\b", code) and '"' in code:
                    found.append("%s:%d: %s" % (path.relative_to(root), number, line.strip()))
    assert not found, "\n".join(found)


def test_no_possessive_s_on_plural_names():
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    for folder in ("workloads", "widgets", "lab"):
        for path in (root / folder).rglob("*.py"):
            assert "%s's" not in path.read_text(), path


def test_lessons_carry_no_markdown_emphasis():
    """Lessons are shown as plain text: `*process*` would show its asterisks."""
    from pathlib import Path

    from lab.core import catalog

    emphasis = re.compile(r"(?<![\w*])(\*\*?|__?)[A-Za-z][^*_\n]*\1(?![\w*])")
    for exp in catalog.all_experiments():
        assert not emphasis.search(exp.lesson), (exp.name, emphasis.search(exp.lesson).group())
        assert not emphasis.search(exp.title), exp.name
    tutorial = Path(__file__).resolve().parent.parent / "lab" / "lessons" / "tutorial.py"
    found = [line for line in tutorial.read_text().splitlines()
             if emphasis.search(line.split("#", 1)[0]) and '"' in line]
    assert not found, found


def test_sentences_group_digits_like_the_tables():
    from workloads import _limits, race

    text = race.explain({"call": {"lost": 60_000}, "locked": {"lost": 0}})
    assert "call lost 60 000" in text and "locked lost 0" in text
    assert _limits._num(5005) == fmt_value(5005) == "5 005"


def test_paths_a_result_keeps_for_json_are_left_out_of_the_text_and_named():
    from lab.core.formatting import format_record

    result = {"run": {"trace": [{"step": n, "detail": "x" * 30} for n in range(50)],
                      "outcome": "lost update"}, "json_only": ["run.trace", "run.missing"]}
    record = {"experiment": "interleave", "status": "done", "result": result}
    text = format_record(record)
    assert "lost update" in text and "in --json only: run.trace" in text
    assert "xxxxxxxx" not in text and "json only" not in text.replace("--json only", "")
    assert len(result["run"]["trace"]) == 50  # the record itself stays whole


def test_the_tui_result_table_leaves_out_what_a_result_keeps_for_json_only():
    from widgets.result_table import result_rows

    result = {"run": {"trace": [{"step": i} for i in range(50)], "steps": ["1 LOAD"]},
              "counter": 1, "json_only": ["run.trace"]}
    keys = [key for key, _ in result_rows(result)]
    assert "counter" in keys and any(key.startswith("run.steps") for key in keys)
    assert not any("trace" in key or "json_only" in key for key in keys), keys
