"""The event-loop views, drawn from real runs: every frame of a run fits a dashboard pane
(38x9), says things in words and glyphs, and renders inside Textual (asyncio loop only:
uvloop never runs in a Textual process)."""

from __future__ import annotations

import asyncio
import html
import re

import pytest
from textual.app import App, ComposeResult

from lab.core.runner import RunRequest, run_experiment
from lab.core.state import RunState
from lab.tui.views import view_class
from tests.helpers import plain_lines as plain

RUNS = {
    "loop-freeze": {"block": "sleep", "block_ms": 150, "blocks": 2, "duration_s": 1.0},
    "io-bound": {"requests": 4, "delay": 0.1},
    "epoll": {"connections": 30, "duration_s": 0.3, "warmup_s": 0.1, "loop": "asyncio"},
    "convoy": {"requests": 30, "compare_process": False},
}
WORDS = {
    "loop-freeze": ["FROZEN", "sleep_block", "lag p50"],
    "io-bound": ["sequential", "threads", "asyncio", "ideal"],
    "epoll": ["1 thread", "req/s", "waits/s"],
    "convoy": ["alone", "cpu thread", "switch"],
}


@pytest.fixture(scope="module")
def states() -> dict[str, RunState]:
    """One real run of each experiment (plain asyncio.run: a sync fixture shared by all)."""
    found = {}
    for name, params in RUNS.items():
        found[name] = asyncio.run(run_experiment(RunRequest(name, params)))
        assert found[name].status == "done", (name, found[name].error)
    return found


def replay(state: RunState, upto: int) -> RunState:
    partial = RunState(state.experiment, state.params, state.python)
    partial.status, partial.hello = "running", state.hello
    partial.started_at = state.started_at
    for event in list(state.events)[:upto]:
        partial.apply_event(event)
    return partial


@pytest.mark.parametrize("name", list(RUNS))
async def test_every_frame_of_a_run_fits_the_dashboard_pane(states, name):
    state = states[name]
    events = len(state.events)
    step = max(1, events // 25)
    for upto in list(range(1, events, step)) + [events]:
        view = view_class(name)(compact=True)
        partial = replay(state, upto)
        view.draw(partial)
        lines = plain(view.render_width(38), 38)
        assert len(lines) <= 9, (upto, lines)
        assert all(len(line) <= 38 for line in lines), (upto, lines)


@pytest.mark.parametrize("name", list(RUNS))
async def test_the_finished_run_reads_in_words(states, name):
    view = view_class(name)(compact=False)
    view.draw(states[name])
    text = "\n".join(plain(view.render_width(34), 34))
    for word in WORDS[name]:
        assert word in text, (word, text)


async def test_a_running_freeze_is_labelled_while_it_lasts(states):
    """Mid-freeze (the watchdog has spoken, the span is not closed) the pane already says
    FROZEN and names the line, before the block ends."""
    state = states["loop-freeze"]
    events = list(state.events)
    ongoing = next(i for i, e in enumerate(events) if e["ev"] == "frozen" and e.get("ongoing"))
    view = view_class("loop-freeze")(compact=True)
    view.draw(replay(state, ongoing + 1))
    text = "\n".join(plain(view.render_width(38), 38))
    assert "FROZEN" in text and "…" in text and "time.sleep" in text


class Pane(App):
    CSS = "#view { width: 38; height: 9; }"

    def __init__(self, name: str) -> None:
        super().__init__()
        self.experiment = name

    def compose(self) -> ComposeResult:
        yield view_class(self.experiment)(compact=True, id="view")


@pytest.mark.parametrize("name", list(RUNS))
async def test_the_view_renders_inside_textual(states, name):
    app = Pane(name)
    async with app.run_test(size=(38, 9)) as pilot:
        app.query_one("#view").show(states[name])
        await pilot.pause()
        svg = app.export_screenshot()
    words = html.unescape(" ".join(re.findall(r"<text[^>]*>(.*?)</text>", svg)))
    words = " ".join(words.replace("\xa0", " ").split())
    assert WORDS[name][0] in words


class OneScreen(App):
    """The real experiment screen over a finished run (a fake controller holds it)."""

    def __init__(self, name: str, state: RunState) -> None:
        super().__init__()
        from tests.tui_fakes import fake_controller

        self.controller = fake_controller()
        self.controller.states["exp:" + name] = state
        self.experiment = name
        self.low_bandwidth = False

    def on_mount(self) -> None:
        from lab.tui.screens.experiment import ExperimentScreen

        self.push_screen(ExperimentScreen(self.experiment))


@pytest.mark.parametrize("name", list(RUNS))
async def test_the_experiment_screen_prints_the_explanation_once(states, name):
    state = states[name]
    explanation = state.result["explanation"]
    app = OneScreen(name, state)
    async with app.run_test(size=(120, 200)) as pilot:
        for _ in range(50):
            await pilot.pause()
            if app.screen.is_mounted and hasattr(app.screen, "refresh_live"):
                break
        app.screen.refresh_live()
        await pilot.pause()
        app.screen.refresh_live()
        await pilot.pause()
        svg = app.export_screenshot()
    rows = re.findall(r"<text[^>]*>(.*?)</text>", svg)
    text = " ".join(html.unescape(" ".join(rows)).replace("\xa0", " ").split())
    from lab.core import catalog

    lesson = " ".join(catalog.get(name).lesson.split())
    words = explanation.split()
    opening = next(" ".join(words[i:i + 4]) for i in range(len(words))
                   if " ".join(words[i:i + 4]) not in lesson)  # a phrase the lesson lacks
    assert text.count(opening) == 1, (opening, text)
