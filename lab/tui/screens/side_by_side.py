"""One experiment under several interpreters, in adjacent panes.

The interpreters are the ones `conlab doctor` finds, probed once in a thread worker
(each probe is a short subprocess; no experiment child is started there). Those that
lack what the experiment needs with these parameters (aiohttp, uvloop) are listed as
skipped, with the reason. The runs themselves start from async workers on the app's
loop, like every other run in the lab. `r` runs them one after another, so their
timings do not share the CPUs; `t` switches to all at once (a race shows its lost
updates either way), and each pane then says which runs it was measured beside.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Callable

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import SelectionList, Static
from textual.widgets.selection_list import Selection

from lab.core import catalog
from lab.core.interp_compare import MAX_SIDE_BY_SIDE, Offer, default_choice, describe, entry, offers
from lab.core.interpreters import Interpreter, find_interpreters
from lab.tui.views import view_class
from widgets.lab_footer import LabFooter
from widgets.pane import Pane
from widgets.param_form import ParamForm
from lab.core.catalog import ParamError

# The footer names the way `r` runs them now, and what `t` switches to.
KEYS = {False: "r run: in turn  t at once  x stop  c compare  esc back",
        True: "r run: at once  t in turn  x stop  c compare  esc back"}
HINT = "i interpreters · p parameters · e experiment"

_found: list[Interpreter] | None = None  # probed once per lab process


def found_interpreters() -> list[Interpreter]:
    global _found
    if _found is None:
        _found = find_interpreters()
    return _found


def slot_key(experiment: str, path: str) -> str:
    return "side:%s:%s" % (experiment, path)


class SideBySideScreen(Screen):
    BINDINGS = [
        Binding("r", "run_all", "run all"),
        Binding("t", "toggle_at_once", "in turn / at once"),
        Binding("x", "stop", "stop"),
        Binding("c", "compare", "compare"),
        Binding("i", "interpreters", "interpreters"),
        Binding("p", "params", "parameters"),
        Binding("e", "experiment", "experiment"),
        Binding("escape", "back", "back"),
        Binding("right,down", "app.focus_next", "next pane", show=False),
        Binding("left,up", "app.focus_previous", "previous pane", show=False),
    ]
    DEFAULT_CSS = """
    SideBySideScreen #topbar {
        height: 1;
        padding: 0 1;
        background: $panel;
        text-style: bold;
    }
    SideBySideScreen #hint {
        height: auto;
        max-height: 3;
        padding: 0 1;
    }
    SideBySideScreen #panes {
        height: 1fr;
        grid-gutter: 0 0;
    }
    SideBySideScreen #summary {
        height: auto;
        max-height: 5;
        padding: 0 1;
    }
    """

    def __init__(self, experiment: str = "race", params: dict[str, Any] | None = None,
                 pythons: list[str] | None = None,
                 finder: Callable[[], list[Interpreter]] = found_interpreters,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.experiment = catalog.get(experiment)
        self.params = dict(params or {})
        self.finder = finder
        self.found: list[Interpreter] | None = None  # None: still probing
        self.offers: list[Offer] = []
        self.chosen: list[str] = list(pythons or [])
        self.probe_error: str | None = None
        self._summary = ""
        self._topbar = ""
        self.at_once = False  # in turn by default: figures measured alone

    def compose(self) -> ComposeResult:
        yield Static(id="topbar")
        yield Static(id="hint")
        yield Grid(id="panes")
        yield Static(id="summary")
        yield LabFooter(KEYS[self.at_once], id="footer")

    def on_mount(self) -> None:
        self.query_one("#topbar", Static).update(
            "%s · looking for interpreters…" % self.experiment.name)
        self.probe()

    # Interpreters (thread worker: probing runs a short subprocess per interpreter) -----
    @work(thread=True, exclusive=True, group="side-probe")
    def probe(self) -> None:
        try:
            found, error = list(self.finder()), None
        except Exception as exc:  # a broken PATH entry must not take the screen down
            found, error = [], "%s: %s" % (type(exc).__name__, exc)
        self.app.call_from_thread(self.probed, found, error)

    async def probed(self, found: list[Interpreter], error: str | None) -> None:
        self.found, self.probe_error = found, error
        await self.reconsider()

    async def reconsider(self) -> None:
        """The experiment or its parameters changed: who qualifies, then the panes."""
        if self.found is None:
            return
        self.offers = offers(self.experiment, self._validated() or {}, self.found)
        usable = [o.interpreter for o in self.offers if o.usable]
        paths = {i.path for i in usable}
        kept = [p for p in self.chosen if p in paths]
        self.chosen = kept or default_choice(usable)
        await self.rebuild_panes()

    def _validated(self) -> dict[str, Any] | None:
        try:
            return self.experiment.validate(self.params)
        except ParamError:
            return None

    def interpreter(self, path: str) -> Interpreter | None:
        for interp in self.found or []:
            if interp.path == path:
                return interp
        return None

    def pane_title(self, path: str) -> str:
        interp = self.interpreter(path)
        text = describe(interp) if interp else path
        if os.path.realpath(path) == os.path.realpath(sys.executable):
            text += " (the lab's own)"
        return text

    # Panes -----------------------------------------------------------------------------
    @property
    def keys(self) -> list[str]:
        return [slot_key(self.experiment.name, path) for path in self.chosen]

    @property
    def panes(self) -> list[Pane]:
        return list(self.query_one("#panes", Grid).query(Pane))

    async def rebuild_panes(self) -> None:
        grid = self.query_one("#panes", Grid)
        await grid.remove_children()  # before mounting: the new panes reuse the ids
        count = len(self.chosen)
        # Three or more at 80 columns: two per row, so each pane keeps a readable width.
        columns = count if count <= 2 or self.app.size.width >= 120 else 2
        grid.styles.grid_size_columns = max(1, columns)
        view = view_class(self.experiment.name)
        panes = [Pane(self.pane_title(path), self.experiment.name, view=view(compact=True),
                      id="side-%d" % index) for index, path in enumerate(self.chosen)]
        if panes:
            await grid.mount_all(panes)
            panes[0].focus()
        else:
            await grid.mount(Static(self.no_interpreter_text()))
        self.update_hint()
        self.refresh_live()

    def no_interpreter_text(self) -> str:
        if self.probe_error:
            return "could not look for interpreters: %s" % self.probe_error
        return ("no interpreter found here can run %s with these parameters (see the "
                "reasons above; p changes the parameters)" % self.experiment.name)

    def update_hint(self) -> None:
        skipped = [o for o in self.offers if not o.usable]
        text = Text(HINT)
        if len([o for o in self.offers if o.usable]) < 2:
            text.append(" · only one interpreter can run this here", style="bold")
        if skipped:
            text.append("\nskipped: ", style="bold")
            text.append("; ".join("%s (%s)" % (describe(o.interpreter), o.reason)
                                  for o in skipped))
        self.query_one("#hint", Static).update(text)

    # Frames ----------------------------------------------------------------------------
    def refresh_live(self) -> None:
        if not self.is_mounted:
            return
        controller = self.app.controller
        running = waiting = 0
        lines = []
        beside = False
        for pane, key, path in zip(self.panes, self.keys, self.chosen):
            state = controller.state(key)
            pane.show(state, controller.refusals.get(key), idle_hint="idle · r run all")
            if state is not None and state.status == "waiting":
                waiting += 1
            elif state is not None and state.running:
                running += 1
            elif state is not None and isinstance(state.result, dict):
                lines.append("%-14s %s" % (self.pane_title(path).split(" (")[0][:14],
                                           headline_of(self.experiment.name, state.result)))
                beside = beside or bool(state.overlapped_by)
        if beside:
            lines.append("! measured while other runs shared the CPUs (t: run in turn)")
        if self.found is not None:
            topbar = "%s under %d interpreter%s · %s · %d running" % (
                self.experiment.name, len(self.chosen), "" if len(self.chosen) == 1 else "s",
                "at once" if self.at_once else "in turn", running)
            if waiting:
                topbar += " · %d waiting" % waiting
            if topbar != self._topbar:
                self._topbar = topbar
                self.query_one("#topbar", Static).update(topbar)
        summary = "\n".join(lines)
        if summary != self._summary:
            self._summary = summary
            self.query_one("#summary", Static).update(summary)

    # Running ---------------------------------------------------------------------------
    def _ready(self) -> dict[str, Any] | None:
        if not self.chosen:
            self.notify("no interpreter chosen (i)", severity="warning")
            return None
        try:
            return self.experiment.validate(self.params)
        except ParamError as exc:
            self.notify("not started: %s" % exc, severity="error")
            return None

    def action_run_all(self) -> None:
        """Every chosen interpreter: one after another (the controller's queue), or all
        at once when toggled (then each figure names the runs it shared the CPUs with)."""
        params = self._ready()
        if params is None:
            return
        self.app.stop_runs(self.keys)  # a run still queued from last time starts nothing
        for key, path in zip(self.keys, self.chosen):
            self.app.start_run(key, self.experiment.name, params, python=path,
                               in_turn=not self.at_once)

    def action_toggle_at_once(self) -> None:
        self.at_once = not self.at_once
        self.query_one("#footer", LabFooter).set_keys(KEYS[self.at_once])
        self._topbar = ""
        self.refresh_live()
        self.notify("r now runs the interpreters %s" % (
            "all at once: their figures share the CPUs" if self.at_once
            else "one after another"), timeout=3)

    def action_stop(self) -> None:
        self.app.stop_runs(self.keys)

    def finished_entries(self) -> list[dict[str, Any]]:
        from lab.core.record import build_record

        controller = self.app.controller
        entries = []
        for key, path in zip(self.keys, self.chosen):
            state, prepared = controller.state(key), controller.prepared.get(key)
            if state is None or prepared is None or state.running:
                continue
            entries.append(entry(build_record(prepared, state),
                                 label=self.pane_title(path).split(" (")[0]))
        return entries

    def action_compare(self) -> None:
        entries = self.finished_entries()
        if len(entries) < 2:
            self.notify("compare needs two or more finished runs here (r runs them)",
                        severity="warning")
            return
        from lab.tui.screens.compare import CompareScreen

        self.app.push_screen(CompareScreen(entries, title="%s under %d interpreters" % (
            self.experiment.name, len(entries))))

    # Choosing --------------------------------------------------------------------------
    def action_interpreters(self) -> None:
        if self.found is None:
            self.notify("still looking for interpreters…")
            return

        async def chosen(paths: list[str] | None) -> None:
            if paths and paths != self.chosen:
                self.chosen = paths
                await self.rebuild_panes()

        self.app.push_screen(InterpreterChooser(self.offers, self.chosen), chosen)

    def action_params(self) -> None:
        async def given(values: dict[str, Any] | None) -> None:
            if values is not None:
                self.params = values
                await self.reconsider()

        self.app.push_screen(ParamsModal(self.experiment, self.params), given)

    def action_experiment(self) -> None:
        from lab.tui.screens.experiments import ExperimentListScreen

        async def chosen(name: str | None) -> None:
            if name and name != self.experiment.name:
                self.experiment = catalog.get(name)
                self.params = default_params(name)
                await self.reconsider()

        self.app.push_screen(ExperimentListScreen(), chosen)

    def action_back(self) -> None:
        self.app.pop_screen()


def headline_of(experiment: str, result: dict[str, Any]) -> str:
    from lab.core.report import headline

    return headline({"experiment": experiment, "result": result}, 60)


def default_params(experiment: str) -> dict[str, Any]:
    """The dashboard's small parameters for this experiment when it has a pane, else the
    experiment's own defaults: a side-by-side run should take seconds."""
    from lab.tui.screens.dashboard import PANES

    for spec in PANES:
        if spec.experiment == experiment:
            return dict(spec.params)
    return {}


class InterpreterChooser(ModalScreen[list]):
    """space toggles an interpreter; escape keeps the choice (at least one, at most 4)."""

    BINDINGS = [Binding("escape", "done", "done")]
    DEFAULT_CSS = """
    InterpreterChooser {
        align: center middle;
    }
    InterpreterChooser > Vertical {
        width: 76;
        max-width: 100%;
        height: auto;
        max-height: 100%;
        border: round $foreground 60%;
        background: $surface;
    }
    InterpreterChooser SelectionList {
        height: auto;
        max-height: 14;
        border: none;
    }
    """

    def __init__(self, offers: list[Offer], chosen: list[str], **kwargs) -> None:
        super().__init__(**kwargs)
        self.offers = offers
        self.chosen = chosen

    def compose(self) -> ComposeResult:
        selections = []
        for offer in self.offers:
            interp = offer.interpreter
            prompt = "%-24s %s" % (describe(interp), interp.path)
            if not offer.usable:
                prompt = "%-24s skipped: %s" % (describe(interp), offer.reason)
            selections.append(Selection(prompt, interp.path, interp.path in self.chosen,
                                        disabled=not offer.usable))
        with Vertical():
            yield Static(" Interpreters (space toggles, at most %d; escape done)"
                         % MAX_SIDE_BY_SIDE)
            yield SelectionList(*selections, id="choices")

    def action_done(self) -> None:
        picked = list(self.query_one("#choices", SelectionList).selected)
        if not picked:
            self.notify("choose at least one interpreter", severity="warning")
            return
        if len(picked) > MAX_SIDE_BY_SIDE:
            self.notify("at most %d side by side (%d chosen)" % (MAX_SIDE_BY_SIDE, len(picked)),
                        severity="warning")
            return
        order = [o.interpreter.path for o in self.offers]
        self.dismiss(sorted(picked, key=order.index))


class ParamsModal(ModalScreen[dict]):
    """The experiment's parameter form; enter in a field applies, escape cancels."""

    BINDINGS = [Binding("escape", "cancel", "cancel")]
    DEFAULT_CSS = """
    ParamsModal {
        align: center middle;
    }
    ParamsModal > Vertical {
        width: 76;
        max-width: 100%;
        height: auto;
        max-height: 100%;
        border: round $foreground 60%;
        background: $surface;
        padding: 0 1;
    }
    ParamsModal #modal-error {
        text-style: bold;
        height: auto;
    }
    """

    def __init__(self, experiment: catalog.Experiment, values: dict[str, Any],
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.experiment = experiment
        self.values = values

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static("%s parameters (enter applies, escape cancels)" % self.experiment.name)
            yield ParamForm(self.experiment.params, self.values, id="modal-form")
            yield Static("", id="modal-error")

    def on_param_form_submitted(self, event: ParamForm.Submitted) -> None:
        form = self.query_one("#modal-form", ParamForm)
        values = form.read()
        error = self.query_one("#modal-error", Static)
        if values is None:
            error.update("✗ fix the fields marked ✗")
            return
        try:
            self.experiment.validate(values)
        except ParamError as exc:
            form.show_error(exc.name, str(exc))
            error.update("✗ %s" % exc)
            return
        self.dismiss(values)

    def action_cancel(self) -> None:
        self.dismiss(None)


def open_side_by_side(app, experiment: str | None = None,
                      params: dict[str, Any] | None = None) -> None:
    """Push the screen for `experiment`, or for what the user is looking at: the focused
    dashboard pane, the experiment screen's form values; race otherwise."""
    screen = app.screen
    if isinstance(screen, SideBySideScreen):
        return
    if experiment is None:
        focused_pane = getattr(screen, "focused_pane", None)
        pane = focused_pane() if callable(focused_pane) else None
        specs = getattr(screen, "specs", None)
        form_experiment = getattr(screen, "experiment", None)
        if pane is not None and specs is not None and pane.id and pane.id.startswith("pane-"):
            spec = specs[int(pane.id.rsplit("-", 1)[1])]
            experiment, params = spec.experiment, dict(spec.params)
        elif isinstance(form_experiment, catalog.Experiment):
            experiment = form_experiment.name
            try:
                params = screen.form.parse()[0]
            except Exception:
                params = None
    experiment = experiment or "race"
    if params is None:
        params = default_params(experiment)
    try:
        app.push_screen(SideBySideScreen(experiment, params))
    except catalog.UnknownExperiment as exc:
        app.notify(str(exc), severity="error")
