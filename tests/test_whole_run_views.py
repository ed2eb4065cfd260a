"""A finished run's view shows the whole run, drawn from its RunState (so a replay draws the
same): every frozen span of loop-freeze, race's lost share over time, goroutines' queued Gs
over time; and the pane says REPLAY, with the cursor's time, while a replay is shown.
Each view is fed one real short run."""

from __future__ import annotations

import asyncio
import re

import pytest
from rich.style import Style
from textual.app import App
from textual.filter import Monochrome

from lab.core import timeline
from lab.core.runner import Run, RunRequest, prepare
from lab.tui.app import LabApp
from lab.tui.screens.experiment import ExperimentScreen
from lab.tui.views import view_class
from tests.helpers import until
from tests.tui_fakes import MACHINE, fake_controller
from widgets.pane import Pane
from widgets.run_strip import RunStrip

RUNS = {
    "loop-freeze": {"duration_s": 1.0, "blocks": 3, "block_ms": 60, "period_ms": 10.0},
    "race": {"threads": 2, "increments": 20_000},
    "goroutines": {"gs": 300, "ps": 2},
}
PREPARED: dict = {}


@pytest.fixture(scope="module")
def runs():
    async def all_runs():
        states = {}
        for name, params in RUNS.items():  # one after the other: 2 cores, shared
            PREPARED[name] = prepare(RunRequest(name, params, sample_interval_s=0.05))
            states[name] = await Run(PREPARED[name]).run()
        return states

    states = asyncio.run(all_runs())
    for name, state in states.items():
        assert state.status == "done", (name, state.error)
    return states


def replay_of(state, t=None):
    """The state as a replay rebuilds it at `t` (the end by default)."""
    state.timeline.close(state)
    return timeline.state_at(state.timeline, state.timeline.duration_s if t is None else t,
                             state)


async def drawn(state, no_color=False, monkeypatch=None, size=(80, 50)) -> list[str]:
    """The view's lines as a full experiment view draws them, every segment checked to
    carry a style the monochrome filter takes."""
    view = view_class(state.experiment)(explains=False)

    class Host(App):
        def compose(self):
            yield view

    app = Host()
    async with app.run_test(size=size) as pilot:
        view.show(state)
        await pilot.pause()
        lines = []
        for y in range(view.size.height):
            strip = view.render_line(y)
            if no_color:
                assert all(isinstance(s.style, Style) for s in strip), list(strip)
                Monochrome().apply(list(strip), None)
            lines.append("".join(segment.text for segment in strip).rstrip())
    return lines


def line_starting(lines: list[str], prefix: str) -> str:
    found = [line for line in lines if line.startswith(prefix)]
    assert found, "no line starting %r in:\n%s" % (prefix, "\n".join(lines))
    return found[0]


@pytest.mark.parametrize("no_color", [False, True], ids=["colour", "NO_COLOR"])
async def test_loop_freeze_lists_every_frozen_span_of_the_run(runs, monkeypatch, no_color):
    if no_color:
        monkeypatch.setenv("NO_COLOR", "1")
    state = runs["loop-freeze"]
    spans = state.result["frozen_spans"]
    if not spans:
        pytest.skip("the run reported no frozen span (nothing to list)")
    line = line_starting(await drawn(state, no_color), "frozen %d×:" % len(spans))
    for span in spans:
        assert "%.2f" % span["start_s"] in line


async def test_race_draws_the_lost_share_across_the_whole_run(runs):
    state = runs["race"]
    counters = [e for e in state.events if e.get("ev") == "counter"]
    lines = await drawn(state)
    lost = line_starting(lines, "lost ")
    top = max(max(0, e.get("lost", e["expected"] - e["actual"])) / e["expected"]
              for e in counters if e["expected"])
    scale = " 0-%.0f%%" % (top * 100) if top >= 0.005 else " none"
    assert lost.endswith(scale + " in %.1fs" % state.timeline.duration_s)
    strip = lost[len("lost "):-len(scale + " in %.1fs" % state.timeline.duration_s)]
    assert len(strip) > 30 and strip.strip(" ") and not strip.rstrip().endswith(" ")
    variants = lines[lines.index(lost) + 1]
    started = [e["variant"] for e in state.events
               if e.get("ev") == "phase" and e.get("state") == "start"]
    assert variants.strip().startswith("|" + started[0][0])  # the first variant is marked
    assert variants.count("|") == len(started)  # every variant's start is marked
    # A replay at the end draws the same whole-run lines; half-way, blank past the cursor.
    assert lost in await drawn(replay_of(state))
    kept = timeline.from_json(timeline.to_json(state.timeline))  # as history keeps it
    from_history = line_starting(await drawn(timeline.state_at(kept, kept.duration_s, state)),
                                 "lost ")
    assert from_history.endswith(scale + " in %.1fs" % kept.duration_s)
    half = line_starting(await drawn(replay_of(state, state.timeline.duration_s / 2)), "lost ")
    assert half[len("lost "):][:len(strip)].rstrip() != strip.rstrip()


async def test_goroutines_draw_the_queued_gs_across_the_whole_run(runs):
    state = runs["goroutines"]
    queued = [sum(e.get("runq") or []) + (e.get("global_runq") or 0)
              for e in state.events if e.get("ev") == "mn"]
    if len(queued) < 2:
        pytest.skip("the run sent fewer than two M:N snapshots")
    lines = await drawn(state)
    line = line_starting(lines, "queued ")
    assert re.search(r" 0-%s in %.1fs$" % (re.escape("{:,}".format(max(queued))
                                                     .replace(",", " ")),
                                           state.timeline.duration_s), line), line
    assert "█" in line or max(queued) == 0
    assert line in await drawn(replay_of(state))


async def test_no_color_draws_race_and_goroutines_whole_run_lines(runs, monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    assert line_starting(await drawn(runs["race"], no_color=True), "lost ")
    assert line_starting(await drawn(runs["goroutines"], no_color=True), "queued ")


async def test_the_pane_says_replay_and_the_cursor_time_during_a_replay(runs):
    state = runs["loop-freeze"]
    key = "exp:loop-freeze"
    app = LabApp(controller=fake_controller(), live_gauge=False, machine_line=MACHINE)
    async with app.run_test(size=(80, 24)) as pilot:
        app.controller.states[key] = state
        app.open_experiment("loop-freeze", dict(RUNS["loop-freeze"]))
        await until(pilot, lambda: isinstance(app.screen, ExperimentScreen) and any(
            s.recording is not None for s in app.screen.query(RunStrip)), what="the strip")
        pane, strip = app.screen.query_one("#live", Pane), app.screen.query_one(RunStrip)
        await until(pilot, lambda: pane._status.plain.startswith("DONE"), what="DONE")
        for _ in range(strip._columns() // 2):
            await pilot.press("left")
        await until(pilot, lambda: pane._status.plain.startswith("REPLAY"), what="REPLAY")
        status = pane._status.plain
        assert "%.2f/%.2f s" % (strip.cursor, strip.duration_s) in status
        assert "RUNNING" not in status
        await pilot.press("space")  # playing: still a replay, the time moves on
        await until(pilot, lambda: pane._status.plain != status, what="the time to move")
        assert pane._status.plain.startswith("REPLAY")


async def test_a_replay_inside_a_freeze_draws_it_up_to_the_cursor_not_to_the_run_end(runs):
    """The view's clock in a replay is the cursor: an ongoing freeze stops there."""
    state = runs["loop-freeze"]
    rec = state.timeline
    frozen = [(rec.offset(item), item[2]) for item in rec.items
              if item[1] == "e" and item[2].get("ev") == "frozen"]
    pairs = [(at, event) for at, event in frozen if event.get("ongoing")]
    if not pairs:
        pytest.skip("the watchdog reported no freeze while it lasted")
    at, ongoing = pairs[0]
    closed = next(t for t, e in frozen if t > at and e.get("index") == ongoing["index"]
                  and not e.get("ongoing"))
    final = next(s for s in state.result["frozen_spans"]
                 if abs(s["start_s"] - ongoing["start_s"]) < 1e-6)
    lines = await drawn(replay_of(state, (at + closed) / 2))
    label = [line for line in lines if "FROZEN" in line and "…" in line]
    assert label, "\n".join(lines)
    ms = float(re.search(r"FROZEN ([0-9.]+) ms…", label[-1]).group(1))
    assert ms <= final["duration_ms"] + 1, (ms, final["duration_ms"])


def test_series_reads_new_items_only_yet_stays_whole_through_growth_thinning_and_replay():
    from lab.core.state import RunState

    state = RunState("race", {}, "python")
    state.started_at = 100.0
    state.timeline.max_items = 400
    for i in range(300):
        state.apply_event({"ev": "counter", "variant": "naive", "expected": i})
        state.timeline.items[-1] = (100.0 + i / 100, "e", state.timeline.items[-1][2])
        assert len(timeline.series(state, "counter", "expected")) == i + 1  # every frame
    for i in range(300, 600):  # past the bound: the recording thins itself
        state.apply_event({"ev": "counter", "variant": "naive", "expected": i})
    got = timeline.series(state, "counter", "expected")
    kept = [item[2]["expected"] for item in state.timeline.items if item[1] == "e"]
    assert state.timeline.thinned and [value for _, value in got] == kept
    replayed = timeline.state_at(state.timeline, 1.0, state)
    assert [v for at, v in timeline.series(replayed, "counter", "expected")] == [
        v for at, v in got if at <= 1.0 + 1e-9]


async def test_a_history_replay_says_replay_from_its_first_frame(runs, tmp_path, monkeypatch):
    from lab.core import history
    from lab.core.record import build_record, with_timeline
    from lab.tui.screens.history import HistoryScreen

    monkeypatch.setenv("CONLAB_DATA_DIR", str(tmp_path))
    state = runs["goroutines"]
    history.save(with_timeline(build_record(PREPARED["goroutines"], state), state))
    app = LabApp(controller=fake_controller(), live_gauge=False, machine_line=MACHINE)
    async with app.run_test(size=(80, 24)) as pilot:
        app.push_screen(HistoryScreen())
        await until(pilot, lambda: isinstance(app.screen, HistoryScreen) and app.screen.loaded,
                    what="the history list")
        await pilot.press("p")
        await until(pilot, lambda: isinstance(app.screen, ExperimentScreen), what="replay")
        pane = app.screen.query_one("#live", Pane)
        await until(pilot, lambda: pane._status.plain.startswith("REPLAY 0.00/"),
                    what="REPLAY at the start")
        assert "RUNNING" not in pane._status.plain
