"""The M:N live view: drawn from real runs; the compact form fits a dashboard pane (38x9)
and says everything in words and glyphs, not colour."""

from __future__ import annotations

import html
import re

import pytest
from textual.app import App, ComposeResult

from lab.core.runner import RunRequest, run_experiment
from lab.core.state import RunState
from widgets.goroutines_view import GoroutinesView
from workloads import _go
from tests.helpers import plain_lines as plain, skip_if_busy

SCHEDULE = {"gs": 300, "ps": 2, "work_ms": 1.5, "block_fraction": 0.25, "block_ms": 60.0}


def drawn(view: GoroutinesView, state: RunState, width: int, rows: int) -> list[str]:
    view.fold(view.new_events(state), state)
    return plain(view.lines(state, width, rows), width)


def frames_of(state: RunState, width: int, rows: int, compact: bool) -> list[list[str]]:
    """Replay a finished run's events one `mn` at a time, as the screen would see them."""
    events = list(state.events)
    frames = []
    for i, event in enumerate(events):
        if event["ev"] != "mn":
            continue
        partial = RunState("goroutines", state.params, state.python)
        partial.status, partial.hello, partial.threads = "running", state.hello, state.threads
        for earlier in events[:i + 1]:
            partial.apply_event(earlier)
        frames.append(drawn(GoroutinesView(compact=compact), partial, width, rows))
    return frames


@pytest.mark.timing
async def test_compact_view_of_a_python_run_fits_the_pane_and_labels_everything(
        tmp_path, monkeypatch):
    monkeypatch.setenv("CONLAB_DATA_DIR", str(tmp_path))
    state = await run_experiment(RunRequest("goroutines", SCHEDULE))
    assert state.status == "done"
    skip_if_busy({"result": state.result})
    frames = frames_of(state, 38, 9, compact=True)
    assert len(frames) >= 2
    for frame in frames:
        assert len(frame) <= 9 and all(len(line) <= 38 for line in frame)
        text = "\n".join(frame)
        assert text.startswith("python P2 M")
        assert frame[1].startswith("P0 ") and frame[2].startswith("P1 ")
        assert frame[3].startswith("glob")
        assert "hand-off" in text and "steal" in text
    # at some instant an M sat in a syscall without a P: shown as words, not colour
    assert any("sys" in frame[4] for frame in frames)
    final = drawn(GoroutinesView(compact=True), state, 38, 9)
    assert "G done 300/300" in final[0]
    assert any("cores in all (GIL)" in line or "cores in all" in line for line in final)


async def test_full_view_lists_ms_and_explains(tmp_path, monkeypatch):
    monkeypatch.setenv("CONLAB_DATA_DIR", str(tmp_path))
    state = await run_experiment(RunRequest("goroutines", SCHEDULE))
    full = drawn(GoroutinesView(), state, 80, 40)
    assert all(len(line) <= 80 for line in full)
    text = "\n".join(full)
    assert "M   state P   cpu" in text and "M0 " in text
    assert "steals " in text and "hand-offs " in text
    assert any(line.startswith("75 of 300 Gs blocked") for line in full)


@pytest.mark.skipif(_go.find_go() is None, reason="no `go` command here: " + _go.HOW_TO_GET)
async def test_compact_view_of_a_go_run(tmp_path, monkeypatch):
    monkeypatch.setenv("CONLAB_DATA_DIR", str(tmp_path))
    state = await run_experiment(RunRequest("goroutines", dict(SCHEDULE, runtime="go")))
    assert state.status == "done"
    frames = frames_of(state, 38, 9, compact=True)
    assert frames
    # Go's first traces can come before main sets GOMAXPROCS: they show Go's default, the
    # CPUs the child may use (1 under `taskset -c 0`); from then on the 2 Ps asked for.
    default = len((state.hello or {}).get("affinity") or []) or 2
    heads = [frame[0].split(" M")[0] for frame in frames]
    assert heads[-1] == "go P2", heads
    assert set(heads) <= {"go P2", "go P%d" % default}, heads
    for frame in frames:
        assert len(frame) <= 9 and all(len(line) <= 38 for line in frame)
        assert "steal n/a" in "\n".join(frame)  # Go does not count steals: said, not hidden


async def test_spawn_view_lists_each_kind(tmp_path, monkeypatch):
    monkeypatch.setenv("CONLAB_DATA_DIR", str(tmp_path))
    state = await run_experiment(RunRequest("goroutines", {
        "mode": "spawn", "units": 2000, "threads": 200, "unit_work": 100}))
    assert state.status == "done"
    compact = drawn(GoroutinesView(compact=True), state, 38, 9)
    assert len(compact) <= 9 and all(len(line) <= 38 for line in compact)
    assert compact[0].startswith("spawn 2 000 units")
    rows = {line.split()[0]: line for line in compact[1:5]}
    assert set(rows) == {"goroutine", "python", "asyncio", "thread"}
    assert "µs" in rows["asyncio"] and "×200" in rows["thread"]
    full = drawn(GoroutinesView(), state, 80, 30)
    assert any(line.startswith("thread:") and "reserved" in line for line in full)
    assert any(line.startswith("the article says") for line in full)


def test_a_run_that_has_not_traced_yet_says_so():
    state = RunState("goroutines", {"runtime": "go"}, "python")
    state.status = "running"
    state.apply_event({"ev": "phase", "state": "build", "runtime": "go", "ts": 1.0})
    assert drawn(GoroutinesView(compact=True), state, 38, 9) == [
        "go: compiling the Go program (once)…"]


class Pane(App):
    CSS = "GoroutinesView { width: 38; height: 9; }"

    def compose(self) -> ComposeResult:
        yield GoroutinesView(compact=True)


async def test_the_view_renders_inside_textual(tmp_path, monkeypatch):
    monkeypatch.setenv("CONLAB_DATA_DIR", str(tmp_path))
    state = await run_experiment(RunRequest("goroutines", SCHEDULE))
    app = Pane()
    async with app.run_test(size=(38, 9)) as pilot:
        view = app.query_one(GoroutinesView)
        view.show(state)
        await pilot.pause()
        svg = app.export_screenshot()
    words = html.unescape(" ".join(re.findall(r"<text[^>]*>(.*?)</text>", svg)))
    words = " ".join(words.replace("\xa0", " ").split())  # SVG keeps spaces as NBSP
    assert "python P2 M" in words
    assert "glob" in words and "hand-off" in words and "G done 300/300" in words


async def test_a_finished_run_shows_its_busiest_moment_and_totals(tmp_path, monkeypatch):
    """Not the all-idle picture of the last snapshot: the Ps at their busiest, and the
    run's steals, hand-offs and Ms in all."""
    monkeypatch.setenv("CONLAB_DATA_DIR", str(tmp_path))
    state = await run_experiment(RunRequest("goroutines", SCHEDULE))
    assert state.status == "done"
    last = [e for e in state.events if e["ev"] == "mn"][-1]
    for compact, width, rows in ((True, 38, 9), (False, 80, 40), (False, 34, 20)):
        final = drawn(GoroutinesView(compact=compact), state, width, rows)
        assert all(len(line) <= width for line in final), final
        p_rows = [line for line in final if re.match(r"P\d+ ", line)]
        assert p_rows and not all(line.split()[1] == "idle" for line in p_rows), final
        totals = next(line for line in final if "hand-off" in line)
        assert "/s" not in totals
        from widgets.threads_view import fmt_int

        handoffs = last.get("handoffs")
        assert "hand-off %s" % ("n/a" if handoffs is None else fmt_int(handoffs)) in totals
