"""Crashes and wrong marks of the TUI found by trying it as a newcomer would (issue 10):
NO_COLOR drawing, the scale view, the focus marker, the stop message."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios
import threading

import pytest
from rich.style import Style
from rich.text import Text
from textual.filter import Monochrome, monochrome_style

from lab.tui.app import LabApp
from lab.tui.live import RunController
from tests.helpers import ROOT, new_tag, until, wait_for, workload_processes
from widgets.threads_view import LinesView


# NO_COLOR ---------------------------------------------------------------------------------
class Lines(LinesView):
    def lines(self, state, width, rows):
        return []

    def idle_lines(self):
        return [Text("first", style="bold"), Text(""), Text("after a blank line")]


async def test_every_segment_a_lines_view_draws_has_a_style_the_monochrome_filter_takes():
    """An empty line became a segment with no style; Monochrome read `.color` of None."""
    from textual.app import App

    class Host(App):
        def compose(self):
            yield Lines()

    app = Host()
    async with app.run_test(size=(40, 6)) as pilot:
        view = app.query_one(Lines)
        view.repaint(force=True)
        await pilot.pause()
        for y in range(4):
            strip = view.render_line(y)
            assert all(isinstance(segment.style, Style) for segment in strip), list(strip)
            Monochrome().apply(list(strip), None)  # raised AttributeError on the blank line
            assert all(monochrome_style(segment.style) for segment in strip)


async def test_no_color_event_loop_pane_runs_to_the_end(monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    tag = new_tag()
    monkeypatch.setenv("CONLAB_TEST_TAG", tag)
    app = LabApp(controller=RunController(save_records=False), live_gauge=False)
    assert app.no_color
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("tab", "r")
        state = lambda: app.controller.state("pane-1")  # noqa: E731
        await until(pilot, lambda: state() is not None and state().status == "done",
                    timeout=60, what="the event-loop run to finish")
        for _ in range(3):  # draw the finished pane (the crash came while drawing)
            app.frame()
            await pilot.pause()
        assert app.is_running
    assert workload_processes(tag) == []


COLOUR_SGR = re.compile(rb"\x1b\[([0-9;:]*)m")


def colour_codes(output: bytes) -> set[str]:
    """Every SGR parameter that sets a colour (30-37, 40-47, 90-107, 38;..., 48;...)."""
    found = set()
    for params in COLOUR_SGR.findall(output):
        parts = params.decode().replace(":", ";").split(";")
        i = 0
        while i < len(parts):
            part = parts[i]
            if part in ("38", "48"):
                found.add(";".join(parts[i:i + 3]))
                i += 3
                continue
            if part.isdigit() and (30 <= int(part) <= 37 or 40 <= int(part) <= 47
                                   or 90 <= int(part) <= 107):
                found.add(part)
            i += 1
    return found


def test_colour_codes_reads_every_kind_of_colour():
    assert colour_codes(b"\x1b[1;38;5;237m\x1b[48;2;1;2;3m\x1b[31m\x1b[0m\x1b[1m") == {
        "38;5;237", "48;2;1", "31"}


@pytest.mark.slow
def test_no_color_sends_no_colour_escape_to_a_real_terminal():
    """On a 256-colour terminal, NO_COLOR drew greys (38;5;NNN): colour all the same."""
    tag = new_tag()
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    env = {**os.environ, "TERM": "xterm-256color", "NO_COLOR": "1", "CONLAB_TEST_TAG": tag}
    proc = subprocess.Popen([sys.executable, "-m", "lab", "--no-mouse"], stdin=slave,
                            stdout=slave, stderr=slave, cwd=ROOT, env=env,
                            start_new_session=True)
    os.close(slave)
    output = bytearray()

    def drain():
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                return
            if not chunk:
                return
            output.extend(chunk)

    threading.Thread(target=drain, daemon=True).start()
    try:
        wait_for(lambda: b"Threads & the GIL" in output, 20, "the first frame")
        os.write(master, b"\t")
        wait_for(lambda: b"\xe2\x96\xb6 Event loop" in output or b"Event loop" in output, 5,
                 "the focus to move")
        os.write(master, b"r")
        wait_for(lambda: b"DONE" in output, 60, "the event-loop run to finish")
        os.write(master, b"q")
        assert proc.wait(timeout=20) == 0, bytes(output[-2000:])
        assert colour_codes(bytes(output)) == set()
        assert b"Traceback" not in output
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    wait_for(lambda: not workload_processes(tag), 5, "no child left")


# The scale view on its experiment screen ----------------------------------------------------
@pytest.mark.parametrize("no_color", [True, False], ids=["NO_COLOR", "colour"])
async def test_a_real_scale_run_draws_on_its_experiment_screen(monkeypatch, no_color):
    """ScaleView's blank separator lines crashed render_lines under NO_COLOR; the app then
    died with the run still live ("Event loop is closed")."""
    from lab.tui.screens.experiment import ExperimentScreen
    from widgets.scale_view import ScaleView

    if no_color:
        monkeypatch.setenv("NO_COLOR", "1")
    else:
        monkeypatch.delenv("NO_COLOR", raising=False)
    tag = new_tag()
    monkeypatch.setenv("CONLAB_TEST_TAG", tag)
    app = LabApp(controller=RunController(save_records=False), live_gauge=False)
    async with app.run_test(size=(120, 40)) as pilot:
        app.open_experiment("scale", {"count": 30})
        await until(pilot, lambda: isinstance(app.screen, ExperimentScreen)
                    and app.screen.is_mounted, what="the scale screen")
        await pilot.press("r")
        await until(pilot, lambda: any(s is not None and s.status == "done"
                                       for s in app.controller.states.values()),
                    timeout=90, what="the scale run to finish")
        for _ in range(3):
            app.frame()
            await pilot.pause()
        view = app.screen.query_one(ScaleView)
        drawn = [line.plain for line in view._lines]
        assert any(line.startswith("caps, set before starting") for line in drawn), drawn
        assert "" in drawn  # the blank separators that crashed
        assert all(len(line) <= 120 for line in drawn)
        assert app.is_running
    assert workload_processes(tag) == []


# The focused pane's marker ------------------------------------------------------------------
def marked(app) -> list[str]:
    from widgets.pane import Pane

    return [p.id for p in app.screen.query(Pane) if str(p.border_title).startswith("▶")]


async def test_exactly_the_focused_pane_carries_the_marker():
    """on_focus/on_blur read `has_focus` before Textual had updated it: after tab two panes
    showed ▶, and at start (as in the browser) none did."""
    from tests.test_tui_pilot import make_app

    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.screen.focused is not None, what="a focused pane")
        await pilot.pause()
        assert marked(app) == [app.screen.focused.id] == ["pane-0"]
        for key, expected in (("tab", "pane-1"), ("tab", "pane-2"), ("shift+tab", "pane-1"),
                              ("down", "pane-2")):
            await pilot.press(key)
            await pilot.pause()
            assert app.screen.focused.id == expected
            assert marked(app) == [expected], key


# A stopped run is not an error ---------------------------------------------------------------
@pytest.mark.parametrize("module", ["convoy_view", "epoll_view", "io_bound_view",
                                    "loop_freeze_view"])
@pytest.mark.parametrize("compact", [True, False], ids=["pane", "full"])
async def test_a_run_stopped_with_x_says_stopped_not_error(module, compact):
    import importlib

    from textual.app import App

    from lab.core.state import RunState
    from tests.helpers import plain_lines

    view_class = importlib.import_module("widgets." + module).VIEW
    view = view_class(compact=compact)

    class Host(App):
        def compose(self):
            yield view

    state = RunState(experiment="x", params={}, python="python")
    state.status, state.error = "stopped", "stopped"  # what Run._finish records after x
    async with Host().run_test(size=(80, 24)) as pilot:
        view.show(state)
        await pilot.pause()
        drawn = "\n".join(plain_lines(view.render_width(78)))
    assert "error" not in drawn
    assert "stopped" in drawn


# Found by the tour -----------------------------------------------------------------------------
def test_the_threads_summary_fits_the_narrow_column_of_an_80x24_experiment_screen():
    """selftest's view at 80x24 has 36 cells: the summary drew 54 (cut by an ellipsis)."""
    from tests.tui_fakes import gil_state
    from widgets.threads_view import summary_line

    state = gil_state()
    for width in (34, 36, 60, 80):
        line = summary_line(state, width)
        assert line.cell_len <= width, (width, line.plain)
    assert "waiting for cpu" in summary_line(state, 80).plain  # the long form where it fits
