"""The run history: every kept run, one line each; mark two or more to compare them.

Reading SQLite happens in a thread worker (a busy database waits for its lock there,
not on the UI loop); no child process is started from here. A database that cannot be
read is reported in words on the screen, and the rest of the lab keeps working.
"""

from __future__ import annotations

import time
from typing import Any

from rich.markup import escape
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Input, Static

from lab.core import history
from lab.core.formatting import short_python
from lab.core.safe_text import visible, visible_record
from widgets.lab_footer import LabFooter

KEYS = "space mark  c compare  ⏎ open  p replay  f filter  u unmark  esc back"
FILTER_KEYS = "type an experiment's name (its start is enough)  ⏎ keep  esc clear"
LIMIT = 500  # newest runs listed; `conlab history --limit` reaches further
MARK = "✓"
FIXED_WIDTH = 59  # the columns before `figures` (python 8 wide), with DataTable's padding


def python_cell(run: dict[str, Any], record: dict[str, Any] | None = None) -> str:
    """`3.9.18`, `3.13.0t` (free-threaded, GIL off) or `3.13.0t+GIL` (its GIL forced on)."""
    interp = (record or {}).get("interpreter")
    free = interp.get("free_threaded") if isinstance(interp, dict) else None
    return short_python(run.get("python", "?"), run.get("gil_enabled"), free)


def when_cell(saved_at: float) -> str:
    return time.strftime("%m-%d %H:%M", time.localtime(saved_at))


def cell(text: Any) -> Text:
    """Record text for a table cell: control characters shown as escapes, and a Text so
    that `[...]` in an imported string is never read as markup."""
    return Text(visible(text), no_wrap=True, end="")


def for_compare(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Entries whose text is visible and whose keys (the compare rows' labels, which the
    table reads as markup) are markup-escaped."""
    def keys_escaped(value: Any) -> Any:
        if isinstance(value, dict):
            return {escape(k): keys_escaped(v) for k, v in value.items()}
        if isinstance(value, list):
            return [keys_escaped(v) for v in value]
        return value

    return [{**entry, "record": keys_escaped(entry["record"])}
            for entry in visible_record(entries)]


class HistoryScreen(Screen):
    BINDINGS = [
        Binding("space", "mark", "mark"),
        Binding("c", "compare", "compare"),
        Binding("f", "filter", "filter"),
        Binding("u", "unmark", "unmark all"),
        Binding("p", "replay", "replay"),
        Binding("r", "reload", "reload", show=False),
        Binding("escape", "back", "back"),
    ]
    DEFAULT_CSS = """
    HistoryScreen #topbar {
        height: 1;
        padding: 0 1;
        background: $panel;
        text-style: bold;
    }
    HistoryScreen #where {
        height: 1;
        padding: 0 1;
        color: $text-muted;
    }
    HistoryScreen #filter {
        display: none;
        margin: 0 1;
    }
    HistoryScreen #filter.-shown {
        display: block;
    }
    HistoryScreen #problem {
        height: auto;
        padding: 0 1;
    }
    HistoryScreen DataTable {
        height: 1fr;
    }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.runs: list[dict[str, Any]] = []
        self.records: dict[int, dict[str, Any]] = {}
        self.marked: list[int] = []  # in the order marked: the compare columns follow it
        self.prefix = ""  # the filter: experiments whose name starts with it
        self.loaded = False
        self.error: str | None = None
        self.damaged_said: set[int] = set()  # damaged runs already notified

    def compose(self) -> ComposeResult:
        yield Static("History · reading…", id="topbar")
        # Every checkout of this user shares one store: say which file this is.
        yield Static("kept in " + history.where(), id="where")
        yield Input(placeholder="experiment name: its start is enough", compact=True,
                    id="filter")
        yield Static("", id="problem")
        yield DataTable(id="runs", cursor_type="row")
        yield LabFooter(KEYS, id="footer")

    def on_mount(self) -> None:
        table = self.query_one("#runs", DataTable)
        for label, key, width in ((" ", "mark", 1), ("id", "id", 5), ("saved", "when", 11),
                                  ("experiment", "experiment", 11), ("python", "python", 8),
                                  ("status", "status", 7)):
            table.add_column(label, key=key, width=width)
        table.add_column("figures", key="figures")
        table.focus()
        self.load()

    # Loading (thread worker: SQLite may wait for a lock) --------------------------------
    @work(thread=True, exclusive=True, group="history-load")
    def load(self) -> None:
        damaged: list[history.DamagedRun] = []
        try:
            entries, damaged = history.load(LIMIT)
            runs = [{k: v for k, v in e.items() if k != "record"} for e in entries]
            records = {e["id"]: e["record"] for e in entries}
            error = None
        except history.HistoryError as exc:
            runs, records, error = [], {}, str(exc)
        self.app.call_from_thread(self.show_runs, runs, records, error, damaged)

    def show_runs(self, runs: list[dict[str, Any]], records: dict[int, dict[str, Any]],
                  error: str | None, damaged: list | None = None) -> None:
        self.runs, self.records, self.error = runs, records, error
        new = [d for d in damaged or [] if d.run_id not in self.damaged_said]
        if new:  # once per damaged run, however often the list reloads
            self.damaged_said.update(d.run_id for d in new)
            self.notify(history.damaged_note(new), severity="warning", timeout=10)
        known = {r["id"] for r in runs}
        self.marked = [i for i in self.marked if i in known]
        self.loaded = True
        self.fill()

    def visible_runs(self) -> list[dict[str, Any]]:
        return [r for r in self.runs if str(r["experiment"]).startswith(self.prefix)]

    def fill(self) -> None:
        from lab.core.report import headline

        table = self.query_one("#runs", DataTable)
        cursor = self.cursor_id()
        table.clear()
        shown = [(run, visible_record(self.records.get(run["id"], {})))
                 for run in self.visible_runs()]
        wider = max([len(python_cell(run, record)) - 8 for run, record in shown] + [0])
        room = max(16, self.size.width - FIXED_WIDTH - wider)
        for run, record in shown:
            table.add_row(MARK if run["id"] in self.marked else " ",
                          "%d%s" % (run["id"], "*" if run["imported"] else ""),
                          when_cell(run["saved_at"]), cell(run["experiment"][:11]),
                          cell(python_cell(run, record)[:12]), cell(run["status"][:7]),
                          cell(headline(record, room)), key=str(run["id"]))
        if cursor is not None and str(cursor) in table.rows:
            table.move_cursor(row=table.get_row_index(str(cursor)))
        self.update_topbar()

    def update_topbar(self) -> None:
        shown = len(self.visible_runs())
        parts = ["History", "%d run%s" % (shown, "" if shown == 1 else "s")]
        if self.prefix:
            parts.append("only %s… (f: change)" % self.prefix)
        if any(r["imported"] for r in self.visible_runs()):
            parts.append("*imported")
        if self.marked:
            parts.append("%d marked: %s" % (len(self.marked),
                                            " ".join("#%d" % i for i in self.marked)))
        self.query_one("#topbar", Static).update(" · ".join(parts))
        problem = ""
        if self.error:
            problem = Text.assemble(("HISTORY UNAVAILABLE ", "bold reverse"), " " + self.error)
        elif not self.runs:
            problem = "no runs kept yet (%s): run an experiment and it appears here" % (
                history.db_path())
        elif history.problem():
            problem = Text.assemble(("NOT SAVING ", "bold reverse"), " " + history.problem())
        box = self.query_one("#problem", Static)
        box.update(problem)
        box.display = bool(problem)

    # Reading the cursor -----------------------------------------------------------------
    def cursor_id(self) -> int | None:
        table = self.query_one("#runs", DataTable)
        if table.row_count == 0:
            return None
        row_key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
        return int(row_key.value)

    # Actions ---------------------------------------------------------------------------
    def action_mark(self) -> None:
        run_id = self.cursor_id()
        if run_id is None:
            return
        if run_id in self.marked:
            self.marked.remove(run_id)
        else:
            self.marked.append(run_id)
        table = self.query_one("#runs", DataTable)
        table.update_cell(str(run_id), "mark", MARK if run_id in self.marked else " ")
        if table.cursor_row < table.row_count - 1:  # like a file manager: mark and move on
            table.action_cursor_down()
        self.update_topbar()

    def action_unmark(self) -> None:
        self.marked = []
        self.fill()

    def action_compare(self) -> None:
        if len(self.marked) < 2:
            self.notify("mark two or more runs with space, then press c", severity="warning")
            return
        try:
            entries = history.get_runs(self.marked)
        except (history.HistoryError, KeyError) as exc:
            self.notify("cannot compare: %s" % exc, severity="error")
            return
        from lab.tui.screens.compare import CompareScreen

        self.app.push_screen(CompareScreen(for_compare(entries)))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.open_run(int(event.row_key.value))

    def open_run(self, run_id: int) -> None:
        try:
            entry = history.get_run(run_id)
        except (history.HistoryError, KeyError) as exc:
            self.notify("cannot open run %s: %s" % (run_id, exc), severity="error")
            return
        self.app.push_screen(RunRecordScreen(entry))

    def action_replay(self) -> None:
        run_id = self.cursor_id()
        if run_id is not None:
            open_replay(self, run_id)

    def action_filter(self) -> None:
        """Show the filter field: the list follows each key typed there."""
        field = self.query_one("#filter", Input)
        field.add_class("-shown")
        field.focus()
        self.query_one("#footer", LabFooter).set_keys(FILTER_KEYS)

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        if event.input.id == "filter" and event.value.strip() != self.prefix:
            self.prefix = event.value.strip()
            self.fill()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.close_filter(clear=False)

    def close_filter(self, clear: bool) -> None:
        field = self.query_one("#filter", Input)
        if clear:
            field.value = ""
            self.prefix = ""
            self.fill()
        field.set_class(bool(self.prefix), "-shown")  # a kept filter stays in sight
        self.query_one("#footer", LabFooter).set_keys(KEYS)
        self.query_one("#runs", DataTable).focus()

    def action_reload(self) -> None:
        self.load()

    def action_back(self) -> None:
        if self.focused is self.query_one("#filter", Input) or self.prefix:
            self.close_filter(clear=True)  # escape clears the filter first
            return
        self.app.pop_screen()


def open_replay(screen: Screen, run_id: int) -> None:
    """A kept run's timeline in its experiment's screen, the cursor at its start; a run
    without one (or with a damaged one) is said in one line."""
    from lab.core import catalog

    try:
        entry = history.get_run(run_id)
        recording, problem = history.get_timeline(run_id)
    except (history.HistoryError, KeyError) as exc:
        screen.notify("cannot replay run %s: %s" % (run_id, exc), severity="error")
        return
    if recording is None:
        screen.notify(problem or "run %d has no timeline to replay (kept by an older lab)"
                      % run_id, severity="warning")
        return
    record = entry["record"]
    try:
        exp = catalog.get(record.get("experiment", ""))
    except catalog.UnknownExperiment:
        screen.notify("%s is not in this lab's catalogue" % visible(record.get("experiment")),
                      severity="warning")
        return
    from lab.core.timeline import like_record
    from lab.tui.screens.experiment import ExperimentScreen

    known = {p.name for p in exp.params}
    params = {k: v for k, v in (record.get("params") or {}).items() if k in known}
    screen.app.push_screen(ExperimentScreen(
        exp.name, params, key="replay:%d" % run_id, title="Replay of run %d" % run_id,
        replay=(recording, like_record(record))))


class RunRecordScreen(Screen):
    """One kept run in full, with the command line that repeats it."""

    BINDINGS = [
        Binding("escape", "back", "back"),
        Binding("o", "open_experiment", "open experiment"),
        Binding("p", "replay", "replay"),
    ]
    DEFAULT_CSS = """
    RunRecordScreen #topbar {
        height: 1;
        padding: 0 1;
        background: $panel;
        text-style: bold;
    }
    RunRecordScreen #record {
        padding: 0 1;
        height: auto;
    }
    """

    def __init__(self, entry: dict[str, Any], **kwargs) -> None:
        super().__init__(**kwargs)
        self.entry = entry

    def compose(self) -> ComposeResult:
        from lab.core.formatting import format_record
        from lab.core.report import repeat_command

        entry = visible_record(self.entry, keep_newlines=True)
        record = entry["record"]
        yield Static(Text("run %s · %s · saved %s on %s%s" % (
            entry["id"], record.get("experiment", "?"),
            time.strftime("%Y-%m-%d %H:%M", time.localtime(entry["saved_at"])),
            visible(entry["host"]), " (imported)" if entry.get("imported") else "")),
            id="topbar")
        try:
            body = format_record(record)
        except (KeyError, TypeError) as exc:  # an imported record from another lab version
            body = "(cannot format this record: %s)" % exc
        with VerticalScroll(id="scroll"):
            yield Static(Text("repeat: " + repeat_command(record) + "\n\n" + body),
                         id="record")
        yield LabFooter("arrows scroll  o open experiment with these values  p replay  esc back")

    def on_mount(self) -> None:
        self.query_one("#scroll").focus()

    def action_replay(self) -> None:
        open_replay(self, int(self.entry["id"]))

    def action_open_experiment(self) -> None:
        record = self.entry["record"]
        from lab.core import catalog

        name = record.get("experiment", "")
        try:
            exp = catalog.get(name)
        except catalog.UnknownExperiment:
            self.notify("%s is not in this lab's catalogue" % name, severity="warning")
            return
        known = {p.name for p in exp.params}
        params = {k: v for k, v in (record.get("params") or {}).items() if k in known}
        self.app.open_experiment(name, params)

    def action_back(self) -> None:
        self.app.pop_screen()
