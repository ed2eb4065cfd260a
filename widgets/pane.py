"""A dashboard pane: a title, a status line (state in words, errors in full), a live view.

The status says what is going on in words (`RUNNING 3 s`, `FAILED: ...`), so it reads
without colour. A view that raises while drawing is shown as an error in its own pane;
the rest of the lab keeps going.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

from lab.core.state import RunState
from widgets.live_view import LiveView


def status_text(state: RunState | None, refusal: str | None = None,
                idle_hint: str = "idle · r run · enter open") -> Text:
    """The run's state in words; error text included in full."""
    if refusal:
        return Text.assemble(("REFUSED ", "bold reverse"), " " + refusal)
    if state is None:
        return Text(idle_hint, style="dim")
    seconds = int(state.duration_s)
    replay = getattr(state, "replay_at", None)
    if replay is not None:  # a state rebuilt from a recording: the cursor, not a run
        total = state.replay_of.duration_s if state.replay_of is not None else replay
        text = Text.assemble(("REPLAY", "bold"), " %.2f/%.2f s" % (replay, total))
        if not state.running:
            text.append(" · ended %s" % state.status)
        return text
    if state.status == "waiting":
        place, total = state.turn or (1, 1)
        return Text.assemble(("WAITING", "bold"), " for its turn (%d of %d)" % (place, total))
    if state.status == "pending":
        text = Text("STARTING…", style="bold")
    elif state.status == "running":
        text = Text.assemble(("RUNNING", "bold"), " %d s · pid %s" % (seconds, state.pid))
    elif state.status == "done":
        text = Text.assemble(("DONE", "bold"), " in %.1f s" % state.duration_s)
    elif state.status == "stopped":
        text = Text.assemble(("STOPPED", "bold"), " after %.1f s" % state.duration_s)
    elif state.status == "timeout":
        text = Text.assemble(("TIMEOUT", "bold reverse"), " %s" % (state.error or ""))
    else:
        text = Text.assemble(("FAILED", "bold reverse"), " %s" % (state.error or state.status))
    if state.garbage_lines:
        text.append(" · %d garbage line%s ignored" % (
            state.garbage_lines, "" if state.garbage_lines == 1 else "s"), style="bold")
    if state.error and state.status in ("running", "pending"):
        text.append(" · error: %s" % state.error, style="bold")
    if state.overlapped_by:
        text.append(" · %s" % overlap_words(state), style="bold")
    return text


def overlap_words(state: RunState) -> str:
    """`measured while race ran` (or `runs beside race` while it goes)."""
    names = ", ".join(state.overlapped_by)
    return ("runs beside %s" if state.running else "measured while %s ran") % names


class Pane(Vertical, can_focus=True):
    """One model on the dashboard (or the live area of an experiment screen)."""

    DEFAULT_CSS = """
    Pane {
        border: round $foreground 40%;
        border-title-style: bold;
        height: 1fr;
        padding: 0 1;
    }
    Pane:focus {
        border: double $primary;  /* not $accent: bright red in 16 colours, reads as an error */
    }
    Pane.-full {
        height: auto;
    }
    Pane > .status {
        height: auto;
        max-height: 3;
    }
    Pane > .unavailable {
        color: $text-muted;
        height: auto;
    }
    """

    def __init__(self, title: str, experiment: str, view: LiveView | None = None,
                 unavailable: str | None = None, full: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.title = title
        self.experiment = experiment
        self.view = view
        self.unavailable = unavailable if view is None else None
        self.view_error: str | None = None
        self._error_run = 0  # id() of the state the view failed on
        self._status = Text("")
        self._status_key: tuple = ()
        self._status_line = Static(classes="status")
        if full:
            self.add_class("-full")

    def compose(self) -> ComposeResult:
        yield self._status_line
        if self.view is not None:
            yield self.view
        else:
            yield Static(self.unavailable or "", classes="unavailable")

    def on_mount(self) -> None:
        self._title()

    def watch_has_focus(self, has_focus: bool) -> None:
        # Not on_focus/on_blur: they run before Textual updates `has_focus`, so they read
        # the old value (two panes marked after tab, none at start in the browser).
        super().watch_has_focus(has_focus)
        self._title()

    def _title(self) -> None:
        # The focused pane says so in its title, not only by its border colour.
        marker = "▶ " if self.has_focus else ""
        self.border_title = "%s%s" % (marker, self.title)

    @property
    def available(self) -> bool:
        return self.view is not None

    def set_view(self, view: LiveView) -> None:
        """The experiment appeared in the catalogue: swap the placeholder for its view."""
        if self.view is not None:
            return
        self.view, self.unavailable = view, None
        for old in self.query(".unavailable"):
            old.remove()
        self.mount(view)

    def set_unavailable(self, message: str) -> None:
        self.unavailable = message
        for old in self.query(".unavailable"):
            old.update(message)

    def show(self, state: RunState | None, refusal: str | None = None,
             idle_hint: str = "idle · r run · enter open") -> None:
        """One frame: status in words, then the view (which skips unchanged frames)."""
        if self.view_error and id(state) != self._error_run:
            self.view_error = None  # a new run: give the view another chance
        # The status reads whole seconds: nothing to redo unless one of these moved.
        key = (id(state), refusal, self.view_error, self.view is None) + (
            () if state is None else (state.status, state.error, state.garbage_lines,
                                      state.pid, int(state.duration_s), state.turn,
                                      len(state.overlapped_by),
                                      getattr(state, "replay_at", None)))
        if key == self._status_key:
            if (self.view is not None and state is not None and not self.view_error
                    and state.status != "waiting"):
                self._show_view(state)
            return
        self._status_key = key
        if self.view is None:
            status = Text("")
        else:
            status = status_text(state, refusal, idle_hint)
        if self.view_error:
            status = Text.assemble(("VIEW ERROR", "bold reverse"), " " + self.view_error)
        if status != self._status:
            # A layout pass only when the status may change height (an error wraps).
            width = max(1, self._status_line.size.width)
            lines = lambda t: (len(t.plain) + width - 1) // width  # noqa: E731
            relayout = lines(status) != lines(self._status) or not self._status.plain
            self._status = status
            self._status_line.update(status, layout=relayout)
        if self.view is None or state is None or self.view_error or state.status == "waiting":
            return  # a run waiting for its turn has nothing to draw yet
        self._show_view(state)

    def _show_view(self, state: RunState) -> None:
        try:
            self.view.show(state)
        except Exception as exc:  # a broken view must not take the lab down
            self.view_error = "%s: %s" % (type(exc).__name__, exc)
            self._error_run = id(state)
