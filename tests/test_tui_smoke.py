"""Real children under the real app: every pane fills with live data, and however the lab
ends (q, SIGTERM, SIGHUP, kill -9) no child is left behind and the terminal is restored."""

from __future__ import annotations

import os
import signal
import time

import pytest

from lab.tui.app import LabApp
from lab.tui.live import RunController
from tests.helpers import alive, new_tag, wait_for, workload_processes
from tests.helpers import until
from tests.terminal import DRIVER_NEVER_CLOSES, Terminal, drop_and_watch, start_runs

pytestmark = pytest.mark.slow


def has_real_data(state) -> bool:
    """The child said hello, the kernel was sampled, and the experiment reported."""
    return (state is not None and state.hello is not None and state.samples >= 1
            and state.events_seen >= 1)


async def test_run_all_panes_fill_with_real_data_and_quit_leaves_no_child(monkeypatch):
    tag = new_tag()
    monkeypatch.setenv("CONLAB_TEST_TAG", tag)  # children inherit it: we find only ours
    app = LabApp(controller=RunController(save_records=False))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("a")
        panes = [p for p in app.screen.panes if p.available]
        assert len(panes) >= 3  # gil-cpu, race, processes at least
        await until(pilot, lambda: all(has_real_data(app.controller.state(p.id)) for p in panes),
                    timeout=60, what="every pane to receive real data")
        pids = [app.controller.state(p.id).pid for p in panes]
        threads = app.controller.state("pane-0").threads
        assert any(t.role == "worker" or t.name.startswith("cpu-") for t in threads.values()) or \
            app.controller.state("pane-0").last.get("phase")
        await until(pilot, lambda: all(any(word in str(p._status) for word in ("RUNNING", "DONE"))
                                       for p in panes), timeout=10, what="the panes to draw it")
        assert any(p.view._lines for p in panes if hasattr(p.view, "_lines"))
        await pilot.press("q")
        await until(pilot, lambda: not app.is_running, timeout=30, what="the app to exit")
    assert alive(pids) == []
    assert workload_processes(tag) == []


# A real terminal: `python -m lab` on a pty (tests/terminal.py) ------------------------------
@pytest.mark.parametrize("how", ["q", "ctrl+c", "SIGTERM", "SIGHUP", "SIGKILL"])
def test_a_real_terminal_session_ends_cleanly(how):
    tag = new_tag()
    term = Terminal(tag, "--no-mouse")
    try:
        wait_for(lambda: term.seen("Threads & the GIL"), 20, "the first frame")
        term.send(b"a")
        wait_for(lambda: term.seen("RUNNING"), 20, "a pane to say RUNNING")
        children = wait_for(lambda: workload_processes(tag), 20, "the children")
        pids = [p.pid for p in children]
        if how == "q":
            term.send(b"q")
        elif how == "ctrl+c":
            term.send(b"\x03")
        else:
            os.kill(term.proc.pid, getattr(signal, how))
        code = term.proc.wait(timeout=20)
        # Reaped children are gone at once; after kill -9 the kernel's death signal
        # does it, a moment later.
        # A process in the middle of exiting may already hide its environment from
        # workload_processes(): wait on both views of "gone".
        wait_for(lambda: not workload_processes(tag) and not alive(pids),
                 10 if how == "SIGKILL" else 1.0, "no child left after %s" % how)
        if how != "SIGKILL":
            assert code == 0, term.output[-2000:]
            tail = bytes(term.output[-4000:])
            assert b"\x1b[?1049l" in tail  # the alternate screen was left: terminal restored
        assert b"\x1b[?1000h" not in term.output  # --no-mouse: mouse never captured
    finally:
        term.close()


# A dropped SSH link: the terminal closed under the lab ------------------------------------
@pytest.mark.parametrize("scenario,after,prelude", [
    ("run-all", 0.2, ""), ("run-all", 3.0, ""), ("io-bound", 0.5, ""), ("decision", 0.5, ""),
    # Textual's driver stuck closing, as the drop left it: only the lab's own deadline helps
    ("run-all", 1.0, DRIVER_NEVER_CLOSES), ("io-bound", 0.5, DRIVER_NEVER_CLOSES),
    ("decision", 0.5, DRIVER_NEVER_CLOSES),
], ids=["all+0.2s", "all+3s", "io-bound", "decision", "stuck-driver-all+1s",
        "stuck-driver-io-bound", "stuck-driver-decision"])
def test_a_dropped_terminal_leaves_nothing_within_3_s(scenario, after, prelude):
    tag = new_tag()
    term = Terminal(tag, "--no-mouse", prelude=prelude)
    try:
        start_runs(term, scenario)
        if scenario != "run-all":
            wait_for(lambda: term.seen("RUNNING"), 20, "the run to start")
        # Not synchronisation: the moment of the drop is what this test varies.
        time.sleep(after)
        exited, survivors = drop_and_watch(term, tag, limit=3.0, patience=10.0)
        assert exited is not None and exited < 3.0, "the lab outlived its terminal: %s" % exited
        assert survivors == []
    finally:
        term.close()


async def test_the_children_run_under_the_python_given_with_dash_dash_python(monkeypatch):
    from lab.tui.screens.dashboard import DashboardScreen, PaneSpec
    from tests.helpers import interpreter

    python = interpreter("3.9")
    if python is None:
        pytest.skip("no CPython 3.9 under pyenv on this machine")
    tag = new_tag()
    monkeypatch.setenv("CONLAB_TEST_TAG", tag)
    app = LabApp(controller=RunController(python=python, save_records=False))
    app.get_default_screen = lambda: DashboardScreen(
        (PaneSpec("Race", "race", {"threads": 2, "increments": 2_000, "variant": "naive"}),))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("r")
        await until(pilot, lambda: (app.controller.state("pane-0") or None) is not None
                    and app.controller.state("pane-0").status == "done", timeout=60,
                    what="the 3.9 run to finish")
        state = app.controller.state("pane-0")
        assert state.hello["python"]["version"].startswith("3.9")
        assert "3.9" in app.machine_line
    assert workload_processes(tag) == []
