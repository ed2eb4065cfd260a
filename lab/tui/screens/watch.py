"""Watch: the lab's instruments on any program - a command it starts, or a running process.

First a picker: type a command (split like a shell would, run as the lab's child with its
output going to a log file) or choose one of your own processes to attach to (read-only:
the lab only reads /proc, it never signals, pauses or writes to the target). Then the
live view: the diagnosis per process at the top, the loop and lock lines the Python probe
reported, every thread below.

The screen draws on its own clock: poll the watch's state, draw, and only then schedule
the next frame, so two frames never overlap; a screen that is covered (help on top)
skips the drawing. The watch runs in an app-level worker (a screen's workers die with the
screen) and is adopted by the RunController, so quitting, SIGTERM and SIGHUP stop it and
reap it like any run; leaving the screen stops a command it started, never an attached PID.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import time
from dataclasses import dataclass
from typing import Any, Callable

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable, Input, Static

from lab.core.safe_text import visible
from widgets.lab_footer import LabFooter
from widgets.watch_view import WatchFactsView, WatchThreadsView

PICKER_KEYS = "⏎ start or attach  tab next  r refresh  esc back"
COMMAND_KEYS = "x stop  o output  esc leave  ? help  q quit"
ATTACH_KEYS = "x stop watching  esc leave  ? help  q quit"
LIST_REFRESH_S = 2.0  # the process list's CPU column is measured over this window
PROBE_GRACE_S = 3.0  # a Python program's probe says hello well within this
OUTPUT_TAIL_BYTES = 64 * 1024
OUTPUT_LINES = 200


# The user's own processes ---------------------------------------------------------------
@dataclass
class ProcRow:
    pid: int
    name: str
    threads: int
    cpu_s: float
    command: str


def own_processes(skip: set[int] | None = None) -> list[ProcRow]:
    """Every live process of this user that has a command line (kernel threads have none),
    read-only through psutil; `skip`: pids not worth offering (the lab itself)."""
    import psutil

    uid, skip = os.getuid(), skip or set()
    rows = []
    for proc in psutil.process_iter(["pid", "name", "uids", "num_threads", "cpu_times",
                                     "cmdline", "status"]):
        info = proc.info
        try:
            uids, cmdline = info.get("uids"), info.get("cmdline")
            if uids is None or uids.real != uid or not cmdline or info["pid"] in skip:
                continue
            if info.get("status") == psutil.STATUS_ZOMBIE:
                continue
            times = info.get("cpu_times")
            cpu = (times.user + times.system) if times is not None else 0.0
            rows.append(ProcRow(info["pid"], info.get("name") or "?",
                                info.get("num_threads") or 0, cpu,
                                " ".join(cmdline)))
        except (psutil.Error, AttributeError, TypeError):
            continue
    return rows


def short_path(path: str, width: int) -> str:
    home = os.path.expanduser("~")
    if home not in ("", "/") and path.startswith(home + os.sep):
        path = "~" + path[len(home):]
    if len(path) > width:
        path = "…" + path[-(width - 1):]
    return path


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return visible(text)


def tail_lines(path: str, count: int = OUTPUT_LINES) -> list[str]:
    """The last lines of a log, made safe to draw (escapes shown, tabs expanded)."""
    try:
        with open(path, "rb") as log:
            log.seek(0, os.SEEK_END)
            size = log.tell()
            log.seek(max(0, size - OUTPUT_TAIL_BYTES))
            data = log.read()
    except OSError as exc:
        return ["cannot read %s: %s" % (path, exc.strerror or exc)]
    lines = data.decode("utf-8", "replace").splitlines()
    if size > OUTPUT_TAIL_BYTES and lines:
        lines = lines[1:]  # the first one is cut
    return [visible(line.expandtabs(4)) for line in lines[-count:]]


# The output viewer ------------------------------------------------------------------------
class OutputScreen(ModalScreen):
    """The last lines of the watched program's output (the file keeps all of it)."""

    BINDINGS = [Binding("escape", "dismiss", "close"), Binding("o", "dismiss", "close"),
                Binding("q", "dismiss", "close", show=False)]
    DEFAULT_CSS = """
    OutputScreen {
        align: center middle;
    }
    OutputScreen > Vertical {
        width: 100%;
        height: 100%;
        border: round $foreground 60%;
        background: $surface;
    }
    OutputScreen #output-title {
        height: 1;
        text-style: bold;
    }
    """

    def __init__(self, path: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.path = path

    def compose(self) -> ComposeResult:
        lines = tail_lines(self.path)
        with Vertical():
            yield Static(Text(" last %d lines of %s · esc closes" % (
                len(lines), short_path(self.path, 40)), style="bold"), id="output-title")
            with VerticalScroll(id="output-scroll"):
                yield Static(Text("\n".join(lines) if lines else "(no output yet)"),
                             id="output")

    def on_mount(self) -> None:
        scroll = self.query_one("#output-scroll", VerticalScroll)
        scroll.focus()
        self.call_after_refresh(scroll.scroll_end, animate=False)

    def action_dismiss(self) -> None:  # type: ignore[override]
        self.dismiss()


# The Watch screen -------------------------------------------------------------------------
class WatchScreen(Screen):
    BINDINGS = [
        Binding("escape", "leave", "leave"),
        Binding("x", "stop", "stop"),
        Binding("s", "stop", "stop", show=False),
        Binding("o", "output", "output"),
        Binding("r", "refresh_list", "refresh", show=False),
    ]
    AUTO_FOCUS = "#command"
    # What a screen opened without arguments uses (None: lab.core's Watch and diagnose);
    # tests put fakes here to drive the screen from the dashboard's key.
    WATCH_CLASS: Any = None
    DIAGNOSE: Callable | None = None
    DEFAULT_CSS = """
    WatchScreen #topbar {
        height: 1;
        padding: 0 1;
        background: $panel;
        text-style: bold;
    }
    WatchScreen #picker, WatchScreen #live {
        height: 1fr;
        padding: 0 1;
    }
    WatchScreen .heading {
        text-style: bold;
        height: 1;
    }
    WatchScreen #intro {
        height: auto;
    }
    WatchScreen #procs-heading {
        margin-top: 1;
    }
    WatchScreen #command-row {
        height: 1;
        margin-top: 1;
    }
    WatchScreen #prompt {
        width: 2;
        text-style: bold;
    }
    WatchScreen #command {
        width: 1fr;
    }
    WatchScreen #picker-error {
        height: auto;
        text-style: bold;
    }
    WatchScreen #procs {
        height: 1fr;
    }
    WatchScreen #threads {
        height: 1fr;
    }
    WatchScreen #logline {
        height: 1;
    }
    """

    def __init__(self, watch_class: Any = None,
                 diagnose: Callable | None = None, period_s: float | None = None,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self._watch_class = watch_class or type(self).WATCH_CLASS
        self._diagnose = diagnose or type(self).DIAGNOSE
        self._period_s = period_s
        self.watch: Any = None
        self.mode = ""  # "command" or "attach" once started
        self.label = ""
        self.log_path: str | None = None
        self.key = "watch:%d" % id(self)
        self.frames = 0  # frames drawn
        self.ticks = 0  # clock ticks (a covered screen ticks without drawing)
        self._cpu_before: dict[int, tuple[float, float]] = {}  # pid -> (cpu_s, when)
        self._rows: list[ProcRow] = []
        self._stopping = False
        self._leaving = False

    # Layout ------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Static("watch · a command, or one of your processes", id="topbar")
        with Vertical(id="picker"):
            yield Static("Type a command and press ⏎ to run and watch it (its output goes "
                         "to a log file):", id="intro")
            with Horizontal(id="command-row"):
                yield Static("$ ", id="prompt")
                yield Input(placeholder="python app.py --port 8000", id="command",
                            compact=True)
            yield Static("", id="picker-error")
            yield Static("Or attach to one of your processes, read-only (tab, arrows, ⏎):",
                         classes="heading", id="procs-heading")
            yield DataTable(id="procs", cursor_type="row", zebra_stripes=False)
        with Vertical(id="live"):
            yield WatchFactsView(diagnose=self._diagnose, id="facts")
            yield WatchThreadsView(compact=True, id="threads")
            yield Static("", id="logline")
        yield LabFooter(PICKER_KEYS, id="footer")

    def on_mount(self) -> None:
        self.query_one("#live").display = False
        self.query_one("#picker-error").display = False
        table = self.query_one("#procs", DataTable)
        table.add_column("pid", width=7, key="pid")
        table.add_column("thr", width=4, key="thr")
        table.add_column("cpu", width=5, key="cpu")
        table.add_column("command", key="command")
        self.run_worker(self.refresh_list(), group="list", exclusive=True)

    @property
    def period_s(self) -> float:
        if self._period_s is not None:
            return self._period_s
        return 1.0 / max(0.5, float(getattr(self.app, "refresh_hz", 4.0)))

    @property
    def live(self) -> bool:
        return self.watch is not None

    # The picker --------------------------------------------------------------------------
    async def refresh_list(self) -> None:
        """Read the processes off the loop, fill the table, then schedule the next read."""
        if self.live or not self.is_mounted:
            return
        if self.app.screen is self:
            skip = {os.getpid()}
            try:
                rows = await asyncio.to_thread(own_processes, skip)
            except Exception as exc:  # psutil missing or /proc unreadable: say so
                self.show_error("cannot list processes: %s" % one_line(exc))
                rows = []
            if self.live or not self.is_mounted:
                return
            self.fill_table(rows)
        # The CPU column needs two readings: the second comes soon after the first.
        self.set_timer(LIST_REFRESH_S if self._cpu_before else 1.0, self._next_list)

    def _next_list(self) -> None:
        if not self.live and self.is_mounted:
            self.run_worker(self.refresh_list(), group="list", exclusive=True)

    def fill_table(self, rows: list[ProcRow]) -> None:
        now = time.monotonic()
        shares: dict[int, float | None] = {}
        for row in rows:
            before = self._cpu_before.get(row.pid)
            shares[row.pid] = (None if before is None or now <= before[1]
                               else max(0.0, (row.cpu_s - before[0]) / (now - before[1])))
        self._cpu_before = {row.pid: (row.cpu_s, now) for row in rows}
        rows.sort(key=lambda r: (-(shares[r.pid] or 0.0), -r.pid))
        self._rows = rows
        table = self.query_one("#procs", DataTable)
        chosen = None
        if table.row_count and table.cursor_row is not None:
            try:
                chosen = table.coordinate_to_cell_key((table.cursor_row, 0)).row_key.value
            except Exception:
                chosen = None
        table.clear()
        room = max(10, table.size.width - 26)  # no sideways scrolling at 80 columns
        for row in rows:
            share = shares[row.pid]
            table.add_row(str(row.pid), str(row.threads),
                          "-" if share is None else "%d%%" % round(share * 100),
                          _cut(visible(row.command), room), key=str(row.pid))
        if chosen is not None:
            try:
                table.move_cursor(row=table.get_row_index(chosen), animate=False)
            except Exception:
                pass

    def show_error(self, text: str) -> None:
        error = self.query_one("#picker-error", Static)
        error.update(Text(text, style="bold") if text else "")
        error.display = bool(text)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "command":
            self.start_command(event.value)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.row_key is not None and event.row_key.value:
            self.start_attach(int(event.row_key.value))

    def _watch_api(self):
        if self._watch_class is None:
            from lab.core.watch import Watch

            self._watch_class = Watch
        return self._watch_class

    def start_command(self, text: str) -> bool:
        """Split `text` like a shell, and run it as the lab's child, watched."""
        if self.live:
            return False
        try:
            argv = shlex.split(text)
        except ValueError as exc:
            self.show_error("✗ command: %s" % one_line(exc))
            return False
        if not argv:
            self.show_error("✗ command: type one, e.g. python app.py")
            return False
        try:
            # The log goes where the watch keeps its logs (it prunes the old ones).
            watch = self._watch_api().command(argv, probe=True)
        except Exception as exc:  # a refusal: one line, nothing started
            self.show_error("✗ not started: %s" % one_line(exc))
            return False
        self.begin(watch, "command", " ".join(shlex.quote(a) for a in argv))
        return True

    def start_attach(self, pid: int) -> bool:
        """Watch a running process, read-only."""
        if self.live:
            return False
        name = next((r.name for r in self._rows if r.pid == pid), "")
        try:
            watch = self._watch_api().attach(pid)
        except Exception as exc:
            self.show_error("✗ cannot attach to %d: %s" % (pid, one_line(exc)))
            return False
        self.begin(watch, "attach", ("%s %d" % (name, pid)).strip())
        return True

    def picker_shown(self, shown: bool) -> None:
        """Hidden, its fields are disabled too: nothing focuses them (a modal closing
        would give the focus back to the command field, which would then eat x and q)."""
        self.query_one("#picker").display = shown
        for widget in self.query("#picker Input, #picker DataTable"):
            widget.disabled = not shown

    # Going live ----------------------------------------------------------------------------
    def begin(self, watch: Any, mode: str, label: str) -> None:
        self.watch, self.mode, self.label = watch, mode, label
        self.show_error("")
        self.picker_shown(False)
        self.query_one("#live").display = True
        self.query_one("#footer", LabFooter).set_keys(
            COMMAND_KEYS if mode == "command" else ATTACH_KEYS)
        facts = self.query_one("#facts", WatchFactsView)
        if self._diagnose is None and callable(getattr(watch, "diagnose", None)):
            # The watch's own: over its recent window, with what the probe said.
            facts.diagnose = lambda state: watch.diagnose()
        self.query_one("#logline", Static).display = mode == "command"
        self.set_focus(None)
        # An app-level worker: a screen's own workers are cancelled when it is popped,
        # and the watch must be stopped and reaped, not abandoned.
        self.app.run_worker(self._run(watch, mode), group=self.key, exit_on_error=False)
        self.frame()
        self._schedule()

    async def _run(self, watch: Any, mode: str) -> None:
        controller = self.app.controller
        try:
            await watch.start()
        except Exception as exc:
            self.failed_to_start(one_line(exc))
            return
        state = watch.state
        controller.adopt(self.key, watch.stop,
                         state.pid if mode == "command" and state.pid else None)
        try:
            await watch.wait()
        except asyncio.CancelledError:
            await asyncio.shield(watch.stop())  # the app is going: nothing outlives it
            raise
        finally:
            controller.release(self.key)
        await self._save(watch)

    async def _save(self, watch: Any) -> None:
        """The watch goes into history like a run (the CLI's `conlab watch` does the same)."""
        to_record = getattr(watch, "to_record", None)
        if to_record is None or not getattr(self.app.controller, "save_records", True):
            return
        from lab.core.record import save_run_record

        try:
            await asyncio.to_thread(save_run_record, to_record())
        except Exception:  # history is a bonus; a watch never fails because of it
            pass

    def failed_to_start(self, why: str) -> None:
        """Back to the picker with the reason (a command not found, no such PID...)."""
        self.watch, self.mode = None, ""
        if not self.is_mounted:
            return
        self.query_one("#live").display = False
        self.picker_shown(True)
        self.query_one("#footer", LabFooter).set_keys(PICKER_KEYS)
        self.show_error("✗ not started: %s" % why)
        self.query_one("#command", Input).focus()
        self.run_worker(self.refresh_list(), group="list", exclusive=True)

    # Frames: poll, draw, then schedule ----------------------------------------------------
    def _schedule(self) -> None:
        if self.is_mounted and not self._leaving:
            self.set_timer(self.period_s, self._tick)

    def _tick(self) -> None:
        self.ticks += 1
        try:
            if self.app.screen is self:  # covered (help, output on top): nothing to draw
                self.frame()
        finally:
            self._schedule()

    def frame(self) -> None:
        watch = self.watch
        if watch is None:
            return
        state = watch.state
        self.frames += 1
        facts = self.query_one("#facts", WatchFactsView)
        facts.note = self.probe_note(state, facts)
        facts.show(state)
        self.query_one("#threads", WatchThreadsView).show(state)
        self.query_one("#topbar", Static).update(self.topbar_text(state))
        self.log_path = getattr(watch, "log_path", None)
        if self.mode == "command" and self.log_path:
            width = max(20, self.size.width - 2)
            room = width - len("output → ") - len(" · o: last lines")
            self.query_one("#logline", Static).update(Text(
                "output → %s · o: last lines" % short_path(self.log_path, max(10, room))))

    def probe_note(self, state, facts: WatchFactsView) -> str:
        """What the Python probe cannot tell here, and why (its status, in the watch's
        words), or that it has not spoken yet."""
        status = getattr(getattr(self.watch, "probe", None), "status", "on")
        if self.mode == "attach":
            note = "attached read-only from /proc, never signalled"
            return note + ("; probe " + status if isinstance(status, str)
                           and status not in ("on", "off") else "")
        if isinstance(status, str) and status != "on":
            return "probe %s" % status if status.startswith("off") else status
        if not facts.facts.hello and state.running and state.duration_s > PROBE_GRACE_S:
            return "the Python probe has not reported yet"
        return ""

    def topbar_text(self, state) -> Text:
        what = "watch" if self.mode == "command" else "attach (read-only)"
        pid = " · pid %d" % state.pid if state.pid else ""
        if state.running:
            status = "%s %.0f s" % (state.status, state.duration_s)
        elif getattr(self.watch, "ended", None):
            status = str(self.watch.ended)
        elif self._stopping and self.mode == "command":
            status = "stopped"
        elif state.exit_code is not None:
            status = "exited, code %s" % state.exit_code
        else:
            status = state.status
        width = max(20, self.size.width - 2)
        tail = "%s · %s" % (pid, status)
        head = "%s · " % what
        label = self.label
        room = width - len(head) - len(tail)
        if len(label) > room:
            label = label[:max(1, room - 1)] + "…"
        return Text(head + label + tail, style="bold")

    # Actions -------------------------------------------------------------------------------
    def action_stop(self) -> None:
        """Stop the watched command (a TERM, then KILL, to its own process group), or stop
        watching an attached process (never signalled)."""
        watch = self.watch
        if watch is None or self._stopping or not watch.state.running:
            return
        self._stopping = True
        self.app.run_worker(watch.stop(), group="stop:" + self.key, exit_on_error=False)

    def action_output(self) -> None:
        if self.mode == "command" and self.log_path:
            self.app.push_screen(OutputScreen(self.log_path))

    def action_refresh_list(self) -> None:
        if not self.live:
            self.run_worker(self.refresh_list(), group="list", exclusive=True)

    def action_leave(self) -> None:
        """Back to where we came from; a command started here is stopped and reaped."""
        self._leaving = True
        if self.watch is not None and self.watch.state.running and not self._stopping:
            self.action_stop()
        self.app.pop_screen()


def open_watch(app) -> None:
    """The Watch screen over whatever is showing (one at a time)."""
    if not isinstance(app.screen, WatchScreen):
        app.push_screen(WatchScreen())
