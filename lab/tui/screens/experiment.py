"""One experiment: its lesson, a parameter form, the live view, the result, and the same
run's headless command line so it can be repeated from a shell or a script.
"""

from __future__ import annotations

import shlex
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Button, Collapsible, Static

from lab.core import catalog
from lab.tui.views import extra_views, view_class
from widgets.code_view import CodeView
from widgets.lab_footer import LabFooter
from widgets.pane import Pane
from widgets.param_form import ParamForm
from widgets.result_table import ResultTable
from widgets.run_strip import RunStrip
from lab.core.catalog import ParamError

KEYS = "r run  x stop  v code  esc back  ? help  q quit"
SCHEDULER_KEYS = "r run  x stop  b be the scheduler  v code  esc back  q quit"  # interleave's screen
TALL = 36  # rows from which the lesson starts unfolded


def lesson_text(lesson: str) -> str:
    """The lesson's hard-wrapped lines joined back into paragraphs (the screen wraps)."""
    paragraphs = [" ".join(p.split()) for p in lesson.strip().split("\n\n")]
    return "\n\n".join(p for p in paragraphs if p)


def command_line(experiment: str, assignments: list[str], python: str | None) -> str:
    parts = ["conlab", "run", experiment]
    for item in assignments:
        parts += ["-p", item]
    if python:
        parts += ["--python", python]
    return " ".join(shlex.quote(p) for p in parts)


class ExperimentScreen(Screen):
    BINDINGS = [
        Binding("r", "run", "run"),
        Binding("x", "stop", "stop"),
        Binding("escape", "back", "back"),
        Binding("b", "scheduler", "be the scheduler", show=False),
        Binding("left_square_bracket", "dial(-1)", "switch interval down", show=False),
        Binding("right_square_bracket", "dial(1)", "switch interval up", show=False),
        # Replay a finished run (widgets/run_strip.py); inert while nothing can be replayed.
        Binding("left", "replay('move', -1)", "back in time", show=False),
        Binding("right", "replay('move', 1)", "on in time", show=False),
        Binding("space", "replay('toggle_play')", "replay", show=False),
        Binding("comma", "replay('cycle_speed', 1)", "slower", show=False),
        Binding("full_stop", "replay('cycle_speed', -1)", "faster", show=False),
        Binding("v", "toggle_code", "code"),
    ]
    AUTO_FOCUS = None  # focus goes to Run without scrolling the lesson away (on_mount)
    DEFAULT_CSS = """
    ExperimentScreen #topbar {
        height: 1;
        padding: 0 1;
        background: $panel;
        text-style: bold;
    }
    ExperimentScreen #cols {
        height: 1fr;
    }
    ExperimentScreen #left {
        width: 40;
        padding: 0 1;
        border-right: vkey $foreground 30%;
    }
    ExperimentScreen.-wide #left {
        width: 56;
    }
    ExperimentScreen #right {
        width: 1fr;
    }
    ExperimentScreen .heading {
        text-style: bold;
        margin-top: 1;
    }
    ExperimentScreen #lesson-box {
        border: none;
        padding: 0;
        margin-bottom: 1;
    }
    ExperimentScreen #lesson-box Contents {
        padding: 0 0 0 1;
    }
    ExperimentScreen #buttons {
        height: 1;
        margin-top: 1;
    }
    ExperimentScreen #buttons Button {
        margin-right: 2;
    }
    ExperimentScreen #form-error {
        text-style: bold;
        color: $error;
        height: auto;
    }
    ExperimentScreen #command {
        height: auto;
    }
    ExperimentScreen #explanation {
        height: auto;
        padding: 0 1;
    }
    /* v: the lesson's code in place of the form; below 120 columns, of the view too */
    ExperimentScreen #code {
        display: none;
        width: 2fr;
        border-left: vkey $foreground 30%;
    }
    ExperimentScreen.-code #code {
        display: block;
    }
    ExperimentScreen.-code #left, ExperimentScreen.-code.-narrow #right {
        display: none;
    }
    """

    def __init__(self, experiment: str, params: dict[str, Any] | None = None,
                 key: str | None = None, title: str | None = None, replay: Any = None,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.replay = replay  # (Recording, the run's record) from history, or None
        self.experiment = catalog.get(experiment)
        self.key = key or "exp:" + experiment
        self.initial = dict(params or {})
        self.pane_title = title
        self._shown_result: Any = None
        self._shown_state = 0

    def compose(self) -> ComposeResult:
        exp = self.experiment
        yield Static("%s · %s" % (exp.name, exp.title), id="topbar")
        with Horizontal(id="cols"):
            with VerticalScroll(id="left"):
                # Below 36 rows the lesson starts folded (enter on its title opens it), so
                # the form and the Run button are on screen at 80x24.
                short = self.app.size.height < TALL
                with Collapsible(title="Lesson", collapsed=short, id="lesson-box"):
                    yield Static(lesson_text(exp.lesson), id="lesson")
                yield Static("Parameters", classes="heading")
                yield ParamForm(exp.params, self.initial, id="form")
                yield Static("", id="form-error")
                with Horizontal(id="buttons"):
                    yield Button("Run (r)", id="run", compact=True)
                    yield Button("Stop (x)", id="stop", compact=True)
                yield Static("The same run, headless:", classes="heading")
                yield Static(id="command")
            with VerticalScroll(id="right"):
                yield Pane(self.pane_title or "Live", exp.name, view=view_class(exp.name)(explains=False),
                           full=True, id="live")
                yield from extra_views(exp.name)
                yield RunStrip(id="strip")
                yield Static(id="explanation")
                yield Static("Result", classes="heading")
                yield ResultTable(id="result")
            yield CodeView(exp.name, id="code")
        yield LabFooter(SCHEDULER_KEYS if exp.name == "interleave" else KEYS)

    def on_mount(self) -> None:
        if self.replay is not None:
            self.query_one(RunStrip).load(*self.replay, fixed=True)
            self.call_after_refresh(self.refresh_live)  # its first frame now, not a tick later
        self.update_command()
        self.set_focus(self.query_one("#run", Button), scroll_visible=False)

    @property
    def form(self) -> ParamForm:
        return self.query_one("#form", ParamForm)

    # Frames ----------------------------------------------------------------------------
    def refresh_live(self) -> None:
        controller = self.app.controller
        state = self.query_one(RunStrip).follow(controller.state(self.key))
        self.query_one("#live", Pane).show(state, controller.refusals.get(self.key),
                                           idle_hint="idle · r run")
        for view in self.query("#right > LiveView"):
            view.show(state)
        if self.has_class("-code"):  # a hidden panel costs nothing per frame
            self.query_one(CodeView).show(state)
        if state is None or state.running:
            result = None
        else:
            result = state.result if isinstance(state.result, dict) else None
        if result is not self._shown_result:
            self._shown_result = result
            self.query_one("#result", ResultTable).show(result)
            explanation = (result or {}).get("explanation") or ""
            self.query_one("#explanation", Static).update(explanation)

    # The command line follows the form -------------------------------------------------
    def update_command(self) -> None:
        if not self.is_mounted:
            return
        assignments = self.form.changed_from_defaults()
        if assignments is None:
            text = Text("(a field is not valid: see ✗ in the form)", style="bold")
        else:
            text = Text("$ " + command_line(self.experiment.name, assignments,
                                            self.app.controller.python))
        self.query_one("#command", Static).update(text)

    def on_param_form_changed(self, event: ParamForm.Changed) -> None:
        self.update_command()

    def on_param_form_submitted(self, event: ParamForm.Submitted) -> None:
        self.action_run()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "run":
            self.action_run()
        elif event.button.id == "stop":
            self.action_stop()

    # Actions ---------------------------------------------------------------------------
    def action_run(self) -> bool:
        """Start a run with the form's values; a bad value starts nothing."""
        form = self.form
        error = self.query_one("#form-error", Static)
        values = form.read()
        if values is None:
            error.update("✗ not started: fix the field%s marked ✗"
                         % ("s" if len(form.errors_shown) > 1 else ""))
            return False
        try:
            self.experiment.validate(values)  # the machine's caps, named by parameter
        except ParamError as exc:
            form.show_error(exc.name, str(exc))
            error.update("✗ not started: %s" % exc)
            return False
        error.update("")
        started = self.app.start_run(self.key, self.experiment.name, values)
        if not started:
            error.update("✗ not started: %s" % self.app.controller.refusals.get(self.key, ""))
        return started

    def action_dial(self, step: int) -> None:
        """`[` `]`: the switch interval one notch down or up, in the form."""
        from widgets.gil_timeline_view import dial

        param = next((p for p in self.experiment.params if p.name == "switch_interval_ms"), None)
        if param is None:
            return
        field = self.query_one("#field-switch_interval_ms")
        try:
            current = float(field.value)
        except ValueError:
            current = float(param.default)
        field.value = "%g" % dial(current, step, param.minimum, param.maximum)

    def action_stop(self) -> None:
        self.app.stop_runs([self.key])

    def action_scheduler(self) -> None:
        """interleave only: step the form's program by hand."""
        if self.experiment.name != "interleave":
            return
        values = self.form.read() or {}
        self.app.action_scheduler(values.get("program", "counter"), values.get("threads", 2))

    def action_replay(self, what: str, *args: int) -> None:
        strip = self.query_one(RunStrip)
        if getattr(strip, what)(*args):
            self.refresh_live()

    def action_toggle_code(self) -> None:
        self.toggle_class("-code")
        code = self.query_one(CodeView)
        if self.has_class("-code"):
            self.refresh_live()  # the panel draws the current run at once
        self.set_focus(code if self.has_class("-code") else self.query_one("#run", Button),
                       scroll_visible=False)

    def action_back(self) -> None:
        self.app.pop_screen()
