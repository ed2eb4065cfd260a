"""The decision live view: drawn from a real run's state; the compact form fits a
dashboard pane (38x9) and says everything in glyphs and words, not colour."""

from __future__ import annotations

import html
import re

from textual.app import App, ComposeResult

from lab.core.runner import RunRequest, run_experiment
from lab.core.state import RunState
from widgets.decision_view import DecisionView
from tests.helpers import plain_lines as plain

SMALL = {"job_ms": 5.0, "seconds": 0.1, "many": 16}


def drawn(view: DecisionView, state: RunState, width: int, rows: int) -> list[str]:
    view.fold(view.new_events(state), state)
    return plain(view.lines(state, width, rows), width)


async def test_compact_and_full_views_of_a_real_run(tmp_path, monkeypatch):
    monkeypatch.setenv("CONLAB_DATA_DIR", str(tmp_path))
    state = await run_experiment(RunRequest("decision", SMALL))
    assert state.status == "done"
    rows = state.result["rows"]

    compact = drawn(DecisionView(compact=True), state, 38, 9)
    assert len(compact) <= 9 and all(len(line) <= 38 for line in compact)
    text = "\n".join(compact)
    for row in rows:
        line = next(l for l in compact if l.startswith(row["id"][:7]))
        assert line.count("*") == len(row["winners"])  # winners marked by a glyph
        glyph = "?" if not row["verdict"]["can_tell"] else "✓" if row["agrees"] else "≠"
        assert line.endswith(glyph)
    assert "jobs/s" in text and "%d rows" % len(rows) in text

    full = drawn(DecisionView(), state, 80, 24)
    assert all(len(line) <= 80 for line in full)
    assert any(row["article_pick"] in line for row in rows for line in full)
    assert any(line.startswith("CPU-bound parallel") for line in full)  # the explanation


def test_a_row_being_measured_is_marked_until_its_figure_arrives():
    state = RunState("decision", {}, "python")
    state.status = "running"
    for event in ({"ev": "row", "state": "start", "id": "mixed", "label": "Mixed",
                   "cpu_percent": 50, "concurrency": 8, "article_pick": "process pool + asyncio"},
                  {"ev": "model", "state": "end", "row": "mixed", "model": "sequential",
                   "jobs_per_s": 41.0},
                  {"ev": "model", "state": "start", "row": "mixed", "model": "threads"}):
        state.apply_event(event)
    view = DecisionView(compact=True)
    lines = drawn(view, state, 38, 9)
    row = next(l for l in lines if l.startswith("mixed"))
    assert "41" in row and "…" in row and "·" in row
    assert any(l.startswith("▶ mixed: threads") for l in lines)


class Pane(App):
    CSS = "DecisionView { width: 38; height: 9; }"

    def compose(self) -> ComposeResult:
        yield DecisionView(compact=True)


async def test_the_view_renders_inside_textual(tmp_path, monkeypatch):
    monkeypatch.setenv("CONLAB_DATA_DIR", str(tmp_path))
    state = await run_experiment(RunRequest("decision", dict(SMALL, workload="dial")))
    app = Pane()
    async with app.run_test(size=(38, 9)) as pilot:
        view = app.query_one(DecisionView)
        view.show(state)
        await pilot.pause()
        svg = app.export_screenshot()
    words = html.unescape(" ".join(re.findall(r"<text[^>]*>(.*?)</text>", svg)))
    words = " ".join(words.replace("\xa0", " ").split())  # SVG keeps spaces as NBSP
    assert "mix seq thr proc aio a+pl dial" in words
    assert "dial" in words and "*" in words


def test_the_table_fits_the_34_column_experiment_screen_with_big_figures():
    """80x24's live column is 34 cells: the header, a winning `…230*✓` row and figures
    in the tens of thousands all fit, each figure still next to its `*`."""
    state = RunState("decision", {}, "python")
    state.status = "running"
    figures = {"sequential": 98.0, "threads": 230.0, "processes": 12_345.0,
               "asyncio": 230.0, "asyncio+pool": 1_234_567.0}
    events = [{"ev": "row", "state": "start", "id": "dial", "label": "Dial",
               "cpu_percent": 50, "concurrency": 8, "article_pick": "threads"}]
    events += [{"ev": "model", "state": "end", "row": "dial", "model": m, "jobs_per_s": v}
               for m, v in figures.items()]
    events.append({"ev": "row", "state": "end", "id": "dial", "winners": ["asyncio+pool"],
                   "agrees": True})
    for event in events:
        state.apply_event(event)
    for width, compact in ((34, False), (38, True)):
        view = DecisionView(compact=compact)
        view.fold(view.new_events(state), state)
        raw = [line.plain.rstrip() for line in view.lines(state, width, 9)]  # uncut
        assert all(len(line) <= width for line in raw), raw
        row = next(line for line in raw if line.startswith("dial"))
        assert row.endswith("1.2M*✓") and "12k" in row and "230" in row, row
        assert raw[0].split() == ["mix", "seq", "thr", "proc", "aio", "a+pl"]
