"""Pictures of the lab for the handout: SVG screenshots drawn by the real app and views.

The report (lab.core.report) knows nothing of Textual; `conlab report` hands it
`render_svgs` from here.
"""

from __future__ import annotations

import asyncio
import sys
import time

from textual.app import App, ComposeResult
from textual.widgets import Static

from lab.core.report import python_label, select_runs, version_key, state_from_record
from lab.tui.app import LabApp
from lab.tui.screens.dashboard import PANES, pane_key
from lab.tui.views import view_class


def render_svgs(directory: str, latest: dict[str, list[dict]] | None = None,
                dashboard: bool = True) -> list[str]:
    """SVG screenshots of the lab's panes for the handout (`conlab report` passes this to
    lab.core.report.write_report). Each experiment whose live view can draw a finished run from its record
    alone (a view class with `FROM_RECORD = True`) is drawn at 80x24 from this machine's
    newest run: a picture of real figures, never of an empty pane.
    """
    try:
        latest = select_runs().chosen if latest is None else latest  # the handout's runs
        paths = asyncio.run(_view_screenshots(directory, latest))
        if dashboard:
            paths += asyncio.run(_dashboard_screenshot(directory))
        return paths
    except Exception as exc:  # screenshots are a garnish: the handout stands without them
        print("conlab: report: no screenshots (%s: %s)" % (type(exc).__name__, exc),
              file=sys.stderr)
        return []


async def _dashboard_screenshot(directory: str, timeout_s: float = 120.0) -> list[str]:
    """The dashboard at 120x40 after one real run of every pane (saved to history too):
    live views draw from events, which records do not keep, so the picture is taken live."""
    app = LabApp(live_gauge=False)
    keys = [pane_key(i) for i in range(len(PANES))]

    def finished() -> bool:
        ctl = app.controller
        return all(key in ctl.refusals or (ctl.state(key) is not None and not ctl.is_running(key))
                   for key in keys)

    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("a")
        deadline = time.monotonic() + timeout_s
        while not finished():
            if time.monotonic() > deadline:
                raise TimeoutError("the dashboard's runs did not finish in %.0f s" % timeout_s)
            await asyncio.sleep(0.1)
        app.frame()
        await pilot.pause()
        path = app.save_screenshot(filename="dashboard.svg", path=directory)
    return [path]


async def _view_screenshots(directory: str, latest: dict[str, list[dict]],
                            size: tuple[int, int] = (80, 24)) -> list[str]:
    paths = []
    for name in sorted(latest):
        view_cls = view_class(name)
        if not getattr(view_cls, "FROM_RECORD", False):
            continue
        entry = sorted(latest[name], key=version_key)[-1]
        state = state_from_record(entry["record"])
        caption = "%s · %s · run %d" % (name, python_label(entry), entry["id"])

        class Shot(App):
            TITLE = "conlab: %s" % name
            CSS = "Screen { padding: 0 1; } #caption { text-style: bold; }"

            def compose(self) -> ComposeResult:
                yield Static(caption, id="caption")
                yield view_cls()

        shot = Shot()
        async with shot.run_test(size=size) as pilot:
            shot.query_one(view_cls).show(state)
            await pilot.pause()
            paths.append(shot.save_screenshot(filename="%s.svg" % name, path=directory))
    return paths


async def dashboard_mid_run(directory: str, filename: str = "dashboard-mid-run.svg",
                            samples: int = 8, timeout_s: float = 120.0,
                            size: tuple[int, int] = (120, 40)) -> str:
    """The dashboard while every pane runs (`a`), taken once the running panes have been
    sampled `samples` times each: a picture of live figures. Quitting stops the runs."""
    app = LabApp(live_gauge=False)
    async with app.run_test(size=size) as pilot:
        await pilot.press("a")
        deadline = time.monotonic() + timeout_s
        while True:
            ctl = app.controller
            running = [ctl.state(k) for k in ctl.running_keys()]
            if running and all(s is not None and s.samples >= samples for s in running):
                break
            if time.monotonic() > deadline:
                raise TimeoutError("no pane ran for %d samples in %.0f s" % (samples, timeout_s))
            await asyncio.sleep(0.1)
        app.frame()
        await pilot.pause()
        return app.save_screenshot(filename=filename, path=directory)


async def finished_view(directory: str, filename: str, entry: dict,
                        size: tuple[int, int] = (100, 32)) -> str:
    """One finished run (a history entry) drawn by its own view from its record."""
    name = entry["record"]["experiment"]
    paths = await _view_screenshots(directory, {name: [entry]}, size=size)
    if not paths:
        raise ValueError("the %s view cannot draw a run from its record" % name)
    import os

    target = os.path.join(directory, filename)
    os.replace(paths[0], target)
    return target
