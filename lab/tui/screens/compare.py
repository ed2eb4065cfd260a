"""Two or more runs side by side: one row per figure, one column per run.

The rows come from `lab.core.history.compare` (who, where, with what interpreter, the
parameters, then every result figure). Rows whose values differ are marked `*` in their
own column, so the difference reads without colour; `d` hides the rows that agree.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Static

from lab.core import history
from widgets.lab_footer import LabFooter

KEYS = "d differing only  arrows scroll  esc back  q quit"
MAX_CELL = 24  # a long value (a list, a path) is clipped; the full run is one key away


def fmt(value: Any) -> str:
    """A figure as the CLI prints it (`800 000`, `0.1811`, `-` for missing)."""
    from lab.core.formatting import fmt_value

    text = fmt_value(value)
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"


def cell(value: Any) -> Text:
    """Numbers right-aligned, so their magnitudes line up down a column."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    return Text(fmt(value), justify="right" if number else "left")


def differs(label: str, values: list[Any]) -> bool:
    return label not in ("run", "saved") and len({repr(v) for v in values}) > 1


def column_title(entry: dict[str, Any]) -> str:
    """`#12 3.9.18` (or `3.13.0 nogil`): which run, under which interpreter."""
    interp = (entry.get("record") or {}).get("interpreter") or {}
    version = str(interp.get("version", "?"))
    if interp.get("gil_enabled") is False:
        version += " nogil"
    label = entry.get("label")
    if label:
        return "%s %s" % (label, version)
    return "#%s %s" % (entry.get("id", "?"), version)


class CompareScreen(Screen):
    """`entries` are history entries (summary + "record"), or records wrapped like them."""

    BINDINGS = [
        Binding("escape", "back", "back"),
        Binding("d", "toggle_differing", "differing only"),
    ]
    DEFAULT_CSS = """
    CompareScreen #topbar {
        height: 1;
        padding: 0 1;
        background: $panel;
        text-style: bold;
    }
    CompareScreen #note {
        height: auto;
        padding: 0 1;
    }
    CompareScreen DataTable {
        height: 1fr;
    }
    """

    def __init__(self, entries: list[dict[str, Any]], title: str | None = None,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.entries = entries
        self.title_text = title
        self.rows = history.compare(entries)
        self.differing_only = False

    def compose(self) -> ComposeResult:
        experiments = sorted({str((e.get("record") or {}).get("experiment")) for e in self.entries})
        title = self.title_text or "Compare %d runs of %s" % (len(self.entries),
                                                               ", ".join(experiments))
        yield Static(title, id="topbar")
        note = "* the runs differ on this row"
        if len(experiments) > 1:
            note += " · different experiments: only shared rows line up"
        yield Static(note, id="note")
        yield DataTable(id="table", fixed_columns=2, cursor_type="row", zebra_stripes=False)
        yield LabFooter(KEYS)

    def on_mount(self) -> None:
        table = self.query_one("#table", DataTable)
        table.add_column(" ", key="mark", width=1)
        table.add_column("figure", key="label", width=min(30, max(
            10, max(len(label) for label, _ in self.rows))))
        for index, entry in enumerate(self.entries):
            table.add_column(column_title(entry), key="run-%d" % index)
        self.fill()
        table.focus()

    def fill(self) -> None:
        table = self.query_one("#table", DataTable)
        table.clear()
        for label, values in self.rows:
            mark = "*" if differs(label, values) else " "
            if self.differing_only and mark != "*" and label != "run":
                continue
            table.add_row(mark, label, *[cell(v) for v in values], key=label)

    def shown_labels(self) -> list[str]:
        table = self.query_one("#table", DataTable)
        return [str(table.get_row_at(i)[1]) for i in range(table.row_count)]

    def action_toggle_differing(self) -> None:
        self.differing_only = not self.differing_only
        self.fill()
        self.notify("showing %s" % ("only rows that differ" if self.differing_only
                                    else "every row"), timeout=2)

    def action_back(self) -> None:
        self.app.pop_screen()
