"""Snapshots of the dashboard and one experiment screen, drawn from synthetic RunStates
(no children, stopped clocks, a fixed machine line), so they only change when the
drawing changes. Regenerate after a deliberate change with:

    pytest tests/test_tui_snapshots.py --snapshot-update

The dashboard's "Event loop" pane is drawn by widgets/loop_freeze_view.py (idle here):
a change there changes the dashboard snapshots too.
"""

from __future__ import annotations

import pytest

from lab.tui.app import LabApp
from tests.tui_fakes import MACHINE, dashboard_states, fake_controller, finished_race_state


def dashboard_app() -> LabApp:
    controller = fake_controller()
    controller.states.update(dashboard_states())
    return LabApp(controller=controller, live_gauge=False, machine_line=MACHINE)


async def draw(pilot) -> None:
    """Wait for the active screen to be mounted, draw one frame, let it settle."""
    for _ in range(200):
        await pilot.pause()
        if pilot.app.screen.is_mounted:
            break
    pilot.app.frame()
    await pilot.pause()
    pilot.app.frame()  # a second frame: what the first one mounted is now laid out
    await pilot.pause()


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
def test_dashboard(snap_compare, size):
    assert snap_compare(dashboard_app(), terminal_size=size, run_before=draw)


def test_dashboard_no_color(snap_compare, monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    app = dashboard_app()
    assert app.no_color
    assert snap_compare(app, terminal_size=(80, 24), run_before=draw)


def test_dashboard_first_screen_no_color(snap_compare, monkeypatch):
    """Nothing run yet: the line that says where to start, read without colour."""
    monkeypatch.setenv("NO_COLOR", "1")
    app = LabApp(controller=fake_controller(), live_gauge=False, machine_line=MACHINE)
    assert snap_compare(app, terminal_size=(80, 24), run_before=draw)


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
def test_experiment_screen(snap_compare, size):
    controller = fake_controller()
    controller.states["pane-2"] = finished_race_state()
    app = LabApp(controller=controller, live_gauge=False, machine_line=MACHINE)

    async def open_race(pilot) -> None:
        app.open_experiment("race", {"threads": 4, "increments": 200_000, "variant": "call"},
                            key="pane-2", title="Race")
        await draw(pilot)

    assert snap_compare(app, terminal_size=size, run_before=open_race)


def test_too_small(snap_compare):
    assert snap_compare(dashboard_app(), terminal_size=(60, 20), run_before=draw)
