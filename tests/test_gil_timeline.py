"""The GIL timeline (issue 13 §1): progress stamps in gil-cpu and convoy, the segments in
RunState, the view that draws them, the switch-interval dial."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from rich.style import Style
from textual.app import App
from textual.filter import Monochrome, monochrome_style

from lab.core import gil_timeline as gt
from lab.core.state import GIL_SEGMENTS, RunState
from tests.helpers import (NO_FREE_THREADED, ROOT, conlab, free_threaded_python, skip_if_busy,
                           usable_cpus)
from widgets.gil_timeline_view import GilTimelineView, dial


def child(experiment: str, params: dict, python: str | None = None) -> tuple[int, list[dict]]:
    """Run one child as the lab does (stdin closed) and read its events."""
    done = subprocess.run([python or sys.executable, "-m", "workloads", experiment,
                           "--params", json.dumps(params)], capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL, cwd=ROOT)
    return done.returncode, [json.loads(line) for line in done.stdout.splitlines() if line]


def state_of(experiment: str, params: dict, events: list[dict]) -> RunState:
    state = RunState(experiment, params, "python")
    for event in events:
        state.apply_event(event)
    state.status = "done"
    return state


def result_of(events: list[dict]) -> dict:
    return next(e["result"] for e in events if e["ev"] == "result")


def workers(events: list[dict]) -> list[int]:
    return [e["native_id"] for e in events if e["ev"] == "thread" and e.get("role") == "worker"]


def gil_cpu(work: int, python: str | None = None, **extra) -> tuple[RunState, dict, list[int]]:
    params = {"work": work, "tasks": 2, "modes": "threads", **extra}
    code, events = child("gil-cpu", params, python)
    assert code == 0, events[-1:]
    return state_of("gil-cpu", params, events), result_of(events), workers(events)


# The child ---------------------------------------------------------------------------------
def test_a_short_gil_cpu_run_leaves_segments_for_both_workers():
    state, result, tids = gil_cpu(400_000)
    assert len(tids) >= 2  # two per round; a busy machine adds rounds
    threads = gt.by_thread(state.gil_segments)
    for tid in tids:
        assert any(kind == "run" for _t, _s, _e, kind in threads.get(tid, [])), tid
    summary = result["gil_timeline"]
    assert summary["stamps"] is True and summary["segments_dropped"] == 0
    assert summary["segments_sent"] == state.gil_segments_seen > 0
    assert {"handoffs_per_s", "hold_ms", "switch_interval_ms"} <= set(summary)
    # The events list keeps the event without its (heavy) segments.
    kept = [e for e in state.events if e["ev"] == "gil_segments"]
    assert kept and all("segments" not in e for e in kept)


def test_stamps_off_sends_no_segments():
    state, result, _tids = gil_cpu(100_000, stamps=False)
    assert not state.gil_segments and result["gil_timeline"]["stamps"] is False


def test_convoy_shows_the_io_thread_waiting_after_each_answer():
    params = {"requests": 20, "peer_ms": 0.2, "compare_process": False}
    code, events = child("convoy", params)
    assert code == 0
    state = state_of("convoy", params, events)
    io = [e["native_id"] for e in events if e["ev"] == "thread" and e.get("name") == "io-cputhread"]
    waits = result_of(events)["gil_timeline"]["io_gil_wait_ms"]
    assert waits["count"] == 20
    kinds = {k for _t, _s, _e, k in gt.by_thread(state.gil_segments)[io[0]]}
    assert "run" in kinds and kinds & {"gil", "cpu"}


@pytest.mark.parametrize("value", ["0", "1001"])
def test_a_switch_interval_out_of_range_is_refused(value):
    done = conlab("run", "gil-cpu", "-p", "switch_interval_ms=" + value)
    assert done.returncode == 2
    assert "switch_interval_ms" in done.stderr and "0.01" in done.stderr


def _gil_build() -> bool:
    check = getattr(sys, "_is_gil_enabled", None)
    return check() if check is not None else True


@pytest.mark.timing
def test_under_a_gil_the_two_workers_take_turns():
    if not _gil_build() or usable_cpus() < 2:
        pytest.skip("needs a GIL build and 2 CPUs (one CPU takes turns anyway)")
    state, result, _tids = gil_cpu(3_000_000)
    skip_if_busy({"result": result})
    overlap = gt.overlap_share(state.gil_segments)
    assert overlap is not None and overlap < 0.1, overlap
    assert result["gil_timeline"]["handoffs"] > 0


@pytest.mark.timing
def test_free_threaded_workers_run_at_the_same_time():
    python = free_threaded_python()
    if python is None:
        pytest.skip(NO_FREE_THREADED)
    if usable_cpus() < 2:
        pytest.skip("one CPU: threads take turns on any build")
    state, result, _tids = gil_cpu(3_000_000, python=python)
    skip_if_busy({"result": result})
    overlap = gt.overlap_share(state.gil_segments)
    assert overlap is not None and overlap > 0.5, overlap


@pytest.mark.timing
def test_the_switch_interval_sets_the_median_hold():
    if not _gil_build() or usable_cpus() < 2:
        pytest.skip("needs a GIL build and 2 CPUs")
    medians = {}
    for interval in (5.0, 20.0):
        _state, result, _tids = gil_cpu(5_000_000, switch_interval_ms=interval)
        skip_if_busy({"result": result})
        medians[interval] = result["gil_timeline"]["hold_ms"]["p50"]
    assert medians[20.0] > 2 * medians[5.0], medians


# RunState ----------------------------------------------------------------------------------
def test_run_state_keeps_a_bounded_store_and_skips_damaged_segments():
    state = RunState("gil-cpu", {}, "python")
    state.apply_event({"ev": "gil_segments", "segments": [
        [1, 0, 10, "run"], [1, 10, 5, "run"], ["x", 0, 1, "run"], [1, 0, 1, "nap"], 7,
        [2, 0, 10, "gil"]]})
    assert list(state.gil_segments) == [(1, 0, 10, "run"), (2, 0, 10, "gil")]
    state.apply_event({"ev": "gil_segments", "segments": "damaged"})
    big = [[1, i, i + 1, "run"] for i in range(GIL_SEGMENTS + 10)]
    state.apply_event({"ev": "gil_segments", "segments": big})
    assert len(state.gil_segments) == GIL_SEGMENTS
    assert state.gil_segments[-1] == (1, GIL_SEGMENTS + 9, GIL_SEGMENTS + 10, "run")


# The view ----------------------------------------------------------------------------------
MS = 1_000_000


def taking_turns(gil_enabled: bool = True) -> RunState:
    """Two threads handing a 5 ms GIL back and forth for 200 ms; thread 2 queues 1 ms
    for a CPU each time it gets the GIL back."""
    state = RunState("gil-cpu", {"switch_interval_ms": 5.0}, "python")
    state.apply_event({"ev": "hello", "python": {"gil_enabled": gil_enabled}})
    for tid, name in ((11, "cpu-1"), (12, "cpu-2")):
        state.apply_event({"ev": "thread", "pid": 1, "native_id": tid, "name": name,
                           "role": "worker"})
    segments = []
    for turn in range(40):
        start, end = turn * 5 * MS, (turn + 1) * 5 * MS
        runner, waiter = (11, 12) if turn % 2 == 0 else (12, 11)
        segments.append([runner, start, end, "run"])
        if waiter == 12:
            segments += [[12, start, end - MS, "gil"], [12, end - MS, end, "cpu"]]
        else:
            segments.append([11, start, end, "gil"])
    state.apply_event({"ev": "gil_segments", "segments": segments})
    state.status = "done"
    return state


class Host(App):
    def compose(self):
        yield GilTimelineView()


async def draw(state: RunState, window_ns: int = 100 * MS) -> list[list]:
    app = Host()
    async with app.run_test(size=(80, 24)) as pilot:
        view = app.query_one(GilTimelineView)
        view.window_ns = window_ns
        view.show(state)
        await pilot.pause()
        assert view.outer_size.height <= 24 and view.outer_size.width <= 80
        return [list(view.render_line(y)) for y in range(view.size.height)]


def text_of(strips) -> list[str]:
    return ["".join(segment.text for segment in strip).rstrip() for strip in strips]


async def test_the_view_draws_each_thread_with_its_own_glyphs():
    lines = text_of(await draw(taking_turns()))
    rows = {line.split()[0]: line[9:] for line in lines if line.startswith("cpu-")}
    assert set(rows) == {"cpu-1", "cpu-2"}
    one, two = rows["cpu-1"], rows["cpu-2"]
    # Where one runs the other waits: never both █ in the same cell (a cell or two of
    # rounding at the edges of a turn aside).
    both = sum(1 for a, b in zip(one, two) if a == b == "█")
    assert both <= 2 and one.count("█") > 10 and two.count("█") > 10
    assert "·" in one and "·" in two and "░" in two and "░" not in one
    text = "\n".join(lines)
    assert "waits GIL" in text and "waits CPU" in text and "switch interval 5 ms" in text
    assert "hold p50 5.00" in text and "one row runs at a time" in text


async def test_the_view_says_when_rows_run_together_without_a_gil():
    state = taking_turns(gil_enabled=False)
    state.apply_event({"ev": "gil_segments", "segments": [[11, 0, 200 * MS, "run"],
                                                          [12, 0, 200 * MS, "run"]]})
    text = "\n".join(text_of(await draw(state)))
    assert "no GIL (free-threaded): rows run at the same time" in text
    assert "waits GIL" not in text and "· asleep" in text


async def test_the_view_moves_with_its_window_reactives():
    state = taking_turns()
    app = Host()
    async with app.run_test(size=(80, 24)) as pilot:
        view = app.query_one(GilTimelineView)
        view.show(state)
        await pilot.pause()
        view.window_ns, view.window_end_ns = 10 * MS, 10 * MS  # the first two turns
        await pilot.pause()
        lines = text_of([view.render_line(y) for y in range(view.size.height)])
        row = next(line for line in lines if line.startswith("cpu-1"))[9:]
        half = len(row) // 2
        assert set(row[:half - 1]) == {"█"} and "█" not in row[half + 1:]


async def test_the_view_styles_every_segment_for_no_color(monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    for strip in await draw(taking_turns()):
        assert all(isinstance(segment.style, Style) for segment in strip)
        Monochrome().apply(strip, None)
        assert all(monochrome_style(segment.style) for segment in strip)


def test_the_dial_steps_within_the_range():
    assert dial(5.0, 1, 0.01, 1000) == 10.0 and dial(5.0, -1, 0.01, 1000) == 2.0
    assert dial(3.0, 1, 0.01, 1000) == 5.0 and dial(100.0, 1, 0.1, 100) == 100.0
    assert dial(0.5, -1, 0.01, 1000) == 0.5


async def test_the_experiment_screen_mounts_the_timeline_and_turns_the_dial():
    from lab.tui.app import LabApp
    from lab.tui.live import RunController
    from lab.tui.screens.experiment import ExperimentScreen

    app = LabApp(controller=RunController(save_records=False), live_gauge=False)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = ExperimentScreen("gil-cpu")
        await app.push_screen(screen)
        await pilot.pause()
        assert len(screen.query(GilTimelineView)) == 1
        field = screen.query_one("#field-switch_interval_ms")
        await pilot.press("right_square_bracket")
        assert field.value == "10"
        await pilot.press("left_square_bracket", "left_square_bracket")
        assert field.value == "2"
        app.controller.state = lambda key: taking_turns()
        screen.refresh_live()
        await pilot.pause()
        view = screen.query_one(GilTimelineView)
        assert any(line.startswith("cpu-1") for line in text_of(
            [view.render_line(y) for y in range(view.size.height)]))
        await app.push_screen(ExperimentScreen("race"))
        await pilot.pause()
        assert len(app.screen.query(GilTimelineView)) == 0
