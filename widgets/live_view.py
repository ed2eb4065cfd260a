"""The contract every experiment's live view follows.

A live view draws one run from its `RunState`. The screen that owns it calls
`show(state)` at the lab's refresh rate (default 4 Hz), never once per event, and only
when `state.version` moved. Views keep their own cursor into `state.events` (see
`RunState.events_since`) to fold new experiment events into whatever they draw.
"""

from __future__ import annotations

from textual.widget import Widget

from lab.core.state import RunState


def problem(state: RunState) -> str | None:
    """The line a view shows about how the run ended badly, if it did. A run the user
    stopped (x, quit) ended as asked: it says "stopped", not "error: stopped"."""
    if not state.error:
        return None
    if state.status == "stopped":
        return "stopped" if state.error == "stopped" else "stopped: " + state.error
    return "error: " + state.error


class LiveView(Widget):
    """Base class: subclasses implement `draw(state)`; `show` skips unchanged frames."""

    DEFAULT_CSS = """
    LiveView {
        height: auto;
    }
    """

    #: Experiment ids this view knows how to draw (informational).
    EXPERIMENTS: tuple[str, ...] = ()

    def __init__(self, *, compact: bool = False, explains: bool = True, **kwargs) -> None:
        super().__init__(**kwargs)
        self.compact = compact  # 80x24 dashboard pane: fewer rows, no history strips
        # Draw the result's explanation under the figures? Not where the screen shows it
        # in a panel of its own (the experiment screen), or it is printed twice.
        self.explains = explains
        self._drawn_version = -1
        self._drawn_state_id = 0
        self.event_cursor = 0

    def show(self, state: RunState | None) -> None:
        """Draw `state` if it changed since the last frame (cheap to call every frame)."""
        if state is None:
            return
        if id(state) != self._drawn_state_id:  # a new run: start reading events afresh
            self._drawn_state_id = id(state)
            self._drawn_version = -1
            self.event_cursor = 0
            self.reset()
        if state.version == self._drawn_version:
            return
        self._drawn_version = state.version
        self.draw(state)

    def new_events(self, state: RunState) -> list[dict]:
        """Experiment events that arrived since this view last looked."""
        self.event_cursor, events = state.events_since(self.event_cursor)
        return events

    def reset(self) -> None:
        """Forget what was drawn for the previous run."""

    def draw(self, state: RunState) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


class FoldingView(LiveView):
    """A view that folds each new event into a small model of its own (`fold`) and draws
    the whole picture as one Text for its width (`render_width`)."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.reset()
        self._state: RunState | None = None

    def draw(self, state: RunState) -> None:
        for event in self.new_events(state):
            self.fold(event)
        self._state = state
        self.refresh(layout=not self.compact)

    def fold(self, event: dict) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def render(self):
        return self.render_width(max(24, self.content_size.width or 38))

    def render_width(self, width: int):  # pragma: no cover - abstract
        raise NotImplementedError
