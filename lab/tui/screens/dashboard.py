"""The dashboard: the models side by side, each pane a real child process.

The panes are plain data (`PANES`): swap an experiment or its parameters with a one-line
change. A pane whose experiment is not in the catalogue yet says so, and picks the
experiment up by itself once its file lands in `workloads/`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid
from textual.screen import Screen
from textual.widgets import Static

import workloads
from lab.tui.views import view_class
from widgets.lab_footer import LabFooter
from widgets.pane import Pane


@dataclass(frozen=True)
class PaneSpec:
    title: str
    experiment: str
    params: dict[str, Any] = field(default_factory=dict)  # small: a few seconds per run


PANES = (
    PaneSpec("Threads & the GIL", "gil-cpu", {"work": 12_000_000, "tasks": 2, "modes": "all"}),
    PaneSpec("Event loop", "loop-freeze", {}),
    PaneSpec("Race", "race", {"threads": 4, "increments": 200_000}),
    PaneSpec("M:N (goroutines)", "goroutines", {"gs": 600, "work_ms": 2.0}),
)

CATALOG_POLL_S = 2.0  # how often a missing experiment is looked for
# Every key the dashboard answers, within 80 columns: the gauge sits on the top bar here.
KEYS = "r run  a all  x stop  ⏎ open  e list  h history  s pythons  l learn  ? help  q quit"
# Shown until the first run starts: where a newcomer begins.
START_HINT = "New here? l: the guided path · r: run this pane · a: run all · ?: help"


def pane_key(index: int) -> str:
    return "pane-%d" % index


def load_view(spec: PaneSpec):
    """The pane's compact view, or raise why it cannot be had yet."""
    from lab.core import catalog

    catalog.get(spec.experiment)  # imports the spec; raises if the file is broken
    return view_class(spec.experiment)(compact=True)


class DashboardScreen(Screen):
    BINDINGS = [
        Binding("r", "run_pane", "run"),
        Binding("a", "run_all", "run all"),
        Binding("x", "stop_all", "stop"),
        Binding("enter", "open", "open"),
        Binding("e", "experiments", "experiments"),
        Binding("w", "app.watch", "watch a program"),
        Binding("right,down", "app.focus_next", "next pane", show=False),
        Binding("left,up", "app.focus_previous", "previous pane", show=False),
    ]
    DEFAULT_CSS = """
    DashboardScreen #topbar {
        dock: top;
        height: 1;
        padding: 0 1;
        background: $panel;
    }
    DashboardScreen #start-hint {
        height: 1;
        padding: 0 1;
        text-style: bold;
    }
    DashboardScreen #panes {
        grid-size: 2 2;
        grid-gutter: 0 0;
        height: 1fr;
    }
    """

    def __init__(self, panes: tuple[PaneSpec, ...] = PANES, **kwargs) -> None:
        super().__init__(**kwargs)
        self.specs = panes
        self._topbar = ""
        self._hint_shown = True
        self._poll = None
        self._panes: list[Pane] | None = None

    def compose(self) -> ComposeResult:
        # The top bar carries the lab's own CPU and lag, so the footer has room for keys.
        yield LabFooter("conlab", bold=False, id="topbar")
        yield Static(START_HINT, id="start-hint")
        with Grid(id="panes"):
            for index, spec in enumerate(self.specs):
                try:
                    yield Pane(spec.title, spec.experiment, view=load_view(spec),
                               id=pane_key(index))
                except Exception as exc:
                    yield Pane(spec.title, spec.experiment, unavailable=_why(spec, exc),
                               id=pane_key(index))
        yield LabFooter(KEYS, gauge=False)

    def on_mount(self) -> None:
        if any(not pane.available for pane in self.panes):
            self._poll = self.set_interval(CATALOG_POLL_S, self.look_for_experiments)
        panes = self.panes
        if panes:
            panes[0].focus()

    @property
    def panes(self) -> list[Pane]:
        if self._panes is None:  # queried once: a DOM query every frame costs CPU
            self._panes = list(self.query(Pane))
        return self._panes

    def look_for_experiments(self) -> None:
        """Mount the view of any pane whose experiment has appeared since."""
        missing = [p for p in self.panes if not p.available]
        if not missing:
            if self._poll is not None:
                self._poll.stop()
            return
        importlib.invalidate_caches()
        for pane in missing:
            spec = self.specs[int(pane.id.rsplit("-", 1)[1])]
            try:
                pane.set_view(load_view(spec))
            except Exception as exc:
                pane.set_unavailable(_why(spec, exc))

    # Frames ----------------------------------------------------------------------------
    def refresh_live(self) -> None:
        """One frame: every visible pane from its RunState (views skip unchanged frames)."""
        controller = self.app.controller
        for pane in self.panes:
            if not pane.display or pane.region.area == 0:
                continue  # hidden panes cost nothing
            pane.show(controller.state(pane.id), controller.refusals.get(pane.id))
        states = [controller.state(p.id) for p in self.panes]
        # Runs waiting for their turn say so in their panes (no room here at 80 columns).
        running = sum(1 for s in states if s is not None and s.status in ("pending", "running"))
        text = "conlab · %s · %d running" % (self.app.machine_line, running)
        if text != self._topbar:
            self._topbar = text
            self.query_one("#topbar", LabFooter).set_keys(text)
        if controller.states and self._hint_shown:
            self._hint_shown = False  # a run has started somewhere: the newcomer has begun
            self.query_one("#start-hint", Static).display = False

    # Actions ---------------------------------------------------------------------------
    def focused_pane(self) -> Pane | None:
        node = self.focused
        while node is not None and not isinstance(node, Pane):
            node = node.parent
        return node

    def _start(self, pane: Pane) -> None:
        spec = self.specs[int(pane.id.rsplit("-", 1)[1])]
        if not pane.available:
            self.notify(pane.unavailable or "%s is not available" % spec.experiment,
                        severity="warning")
            return
        self.app.start_run(pane.id, spec.experiment, spec.params)

    def action_run_pane(self) -> None:
        pane = self.focused_pane()
        if pane is not None:
            self._start(pane)

    def action_run_all(self) -> None:
        """Every pane; the CPU-bound ones queue and run one after another (start_run)."""
        for pane in self.panes:
            if pane.available:
                self._start(pane)

    def action_stop_all(self) -> None:
        self.app.stop_runs([p.id for p in self.panes])

    def action_open(self) -> None:
        pane = self.focused_pane()
        if pane is None:
            return
        spec = self.specs[int(pane.id.rsplit("-", 1)[1])]
        if not pane.available:
            self.notify(pane.unavailable or "", severity="warning")
            return
        self.app.open_experiment(spec.experiment, spec.params, key=pane.id, title=spec.title)

    def action_experiments(self) -> None:
        self.app.action_experiments()


def _why(spec: PaneSpec, exc: Exception) -> str:
    if spec.experiment not in workloads.experiment_names():
        return "%s not available yet" % spec.experiment
    return "%s failed to load: %s: %s" % (spec.experiment, type(exc).__name__, exc)
