"""Every experiment in the catalogue, one line each; enter opens its screen."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from lab.core import catalog

LINE_W = 68
SCHEDULER = "interleave:scheduler"  # the option under interleave that opens the stepper


def option_ids(names: list[str]) -> list[str]:
    """The list's rows in order: every experiment, and the stepper under interleave."""
    return [row for name in names
            for row in ((name, SCHEDULER) if name == "interleave" else (name,))]


class ExperimentListScreen(ModalScreen[str]):
    """Dismisses with the chosen experiment's id (or None on escape)."""

    BINDINGS = [Binding("escape", "dismiss", "close"), Binding("q", "dismiss", "close", show=False)]
    DEFAULT_CSS = """
    ExperimentListScreen {
        align: center middle;
    }
    ExperimentListScreen > Vertical {
        width: 76;
        max-width: 100%;
        height: auto;
        max-height: 100%;
        border: round $foreground 60%;
        background: $surface;
    }
    ExperimentListScreen OptionList {
        height: auto;
        max-height: 18;
        border: none;
    }
    """

    def compose(self) -> ComposeResult:
        options = []
        problems = []
        import workloads

        for name in workloads.experiment_names():
            try:
                exp = catalog.get(name)
            except Exception as exc:  # a file being written right now: say so, keep going
                problems.append("%s: %s" % (name, exc))
                continue
            line = "%-12s %s" % (exp.name, exp.title)
            if len(line) > LINE_W:  # one line each: the list stays scannable at 80x24
                line = line[:LINE_W - 1] + "…"
            for row in option_ids([exp.name]):
                options.append(Option(line, id=row) if row == exp.name else Option(
                    "%-12s └ be the scheduler: step its threads yourself" % "", id=row))
        with Vertical():
            yield Static(" Experiments (enter opens, escape closes)", classes="title")
            yield OptionList(*options)
            if problems:
                yield Static("\n".join(" not loaded: " + p for p in problems))

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)
