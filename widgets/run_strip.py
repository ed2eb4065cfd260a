"""The whole of a finished run on a few lines, and a cursor to replay it by.

One sparkline per thread: its share of one CPU across the whole run (all modes), the
modes marked where the run entered them, and the cursor. Moving the cursor (or playing
at 1x, 0.25x, 0.1x) replays the run's recorded timeline into a RunState
(lab.core.timeline.Player), and the screen feeds that state to the run's view: every
view draws the moment at the cursor. Glyphs carry the meaning (NO_COLOR, 16 colours).
"""

from __future__ import annotations

import time
from typing import Any

from rich.text import Text
from textual.widget import Widget

from lab.core import timeline
from lab.core.state import RunState

SPEEDS = (1.0, 0.25, 0.1)
LEVELS = "·▁▂▃▄▅▆▇█"  # 0 (asleep) to a whole CPU
CURSOR = "▲"
LABEL = 10  # columns for a thread's name
MAX_THREADS = 6  # rows shown: the busiest threads of the run
KEYS = "←/→ move · space play · , . speed"


def sparkline(shares: list[float]) -> str:
    cells = []
    for share in shares:
        if share < 0.01:
            cells.append(LEVELS[0])
        else:
            cells.append(LEVELS[1 + min(7, int(min(1.0, share) * 7.999))])
    return "".join(cells)


def mode_row(modes: list[tuple[float, str]], span: float, width: int) -> str:
    """The modes' names written from the column where each began (`|threads`)."""
    row = [" "] * width
    for index, (at, name) in enumerate(modes):
        col = min(width - 1, int(at / max(span, 1e-9) * width))
        nxt = width
        if index + 1 < len(modes):
            nxt = min(width, int(modes[index + 1][0] / max(span, 1e-9) * width))
        label = ("|" + name)[:max(1, nxt - col)]
        for offset, char in enumerate(label):
            if col + offset < width:
                row[col + offset] = char
    return "".join(row)


class RunStrip(Widget):
    """A finished run's strip and replay cursor; hidden while nothing can be replayed."""

    DEFAULT_CSS = """
    RunStrip {
        height: auto;
        padding: 0 1;
        display: none;
    }
    RunStrip.-shown {
        display: block;
    }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.recording: timeline.Recording | None = None
        self.player: timeline.Player | None = None
        self.source_id = 0  # id() of the live state the recording came from
        self.fixed = False  # a recording from history: no live run behind it
        self.cursor = 0.0
        self.moved = False  # the user moved the cursor or played: show the replayed state
        self.speed = SPEEDS[0]
        self.playing_since: tuple[float, float] | None = None  # (wall clock, cursor) at play
        self._shares: tuple[int, dict] = (0, {})

    # Feeding -----------------------------------------------------------------------------
    def load(self, recording: timeline.Recording, like: Any, fixed: bool = False) -> None:
        """Replay this recording (of a run like `like`: its experiment, params, python)."""
        self.recording, self.player = recording, timeline.Player(recording, like)
        self.fixed = fixed
        self.cursor = 0.0 if fixed else recording.duration_s
        self.moved, self.playing_since = fixed, None
        self._shares = (0, {})
        self.add_class("-shown")
        self.refresh(layout=True)

    def follow(self, live: RunState | None) -> RunState | None:
        """The state the view should draw this frame: the live run while it runs, the
        state at the cursor once it has ended (or for a run from history)."""
        if self.fixed:
            if live is None:
                self._advance()
                return self.player.seek(self.cursor)
            self._unload()  # a run started on this screen takes over from the replay
        if live is None:
            return None
        if live.running or live.timeline is None or not live.timeline.sampled:
            if self.recording is not None:
                self._unload()
            return live
        if id(live) != self.source_id:
            if not live.timeline.status:
                live.timeline.close(live)
            self.load(live.timeline, live)
            self.source_id = id(live)
        self._advance()
        if not self.moved:
            return live  # at the end, untouched: the live state itself
        return self.player.seek(self.cursor)

    def _unload(self) -> None:
        self.recording = self.player = None
        self.fixed, self.source_id = False, 0
        self.remove_class("-shown")

    # Moving -------------------------------------------------------------------------------
    @property
    def duration_s(self) -> float:
        return self.recording.duration_s if self.recording is not None else 0.0

    @property
    def playing(self) -> bool:
        return self.playing_since is not None

    def step_s(self) -> float:
        """One column of the strip."""
        return self.duration_s / max(1, self._columns())

    def move(self, direction: int) -> bool:
        if self.recording is None:
            return False
        self.playing_since = None
        self.cursor = max(0.0, min(self.duration_s, self.cursor + direction * self.step_s()))
        self.moved = True
        self.refresh()
        return True

    def toggle_play(self) -> bool:
        if self.recording is None:
            return False
        if self.playing:
            self._advance()
            self.playing_since = None
        else:
            if self.cursor >= self.duration_s - 1e-9:
                self.cursor = 0.0  # from the start again
            self.playing_since = (time.monotonic(), self.cursor)
            self.moved = True
        self.refresh()
        return True

    def cycle_speed(self, direction: int = 1) -> bool:
        if self.recording is None:
            return False
        self._advance()
        index = (SPEEDS.index(self.speed) + direction) % len(SPEEDS)
        self.speed = SPEEDS[index]
        if self.playing:
            self.playing_since = (time.monotonic(), self.cursor)
        self.refresh()
        return True

    def _advance(self) -> None:
        if self.playing_since is None:
            return
        began, at = self.playing_since
        self.cursor = min(self.duration_s, at + (time.monotonic() - began) * self.speed)
        if self.cursor >= self.duration_s:
            self.playing_since = None  # played to the end
        self.refresh()

    # Drawing ------------------------------------------------------------------------------
    def _columns(self) -> int:
        return max(8, (self.size.width or 80) - LABEL - 3)

    def _thread_rows(self, width: int) -> list[tuple[str, list[float]]]:
        """The busiest threads; threads of one name (cpu-1 of each round) share a row."""
        if self._shares[0] != width:
            by_name: dict[str, list[float]] = {}
            for name, shares in timeline.thread_shares(self.recording, width).values():
                row = by_name.setdefault(name, [0.0] * width)
                by_name[name] = [max(a, b) for a, b in zip(row, shares)]
            rows = sorted(by_name.items(), key=lambda row: -sum(row[1]))[:MAX_THREADS]
            self._shares = (width, dict(enumerate(rows)))
        return list(self._shares[1].values())

    def mode_at(self, t: float) -> str:
        name = "-"
        for at, mode in timeline.modes(self.recording):
            if at <= t + 1e-9:
                name = mode
        return name

    def status_line(self) -> str:
        """The cursor's time and mode, in one line."""
        state = "playing" if self.playing else "paused" if self.moved else "end"
        return "replay %.2f/%.2f s · %s · %s %gx" % (
            self.cursor, self.duration_s, self.mode_at(self.cursor), state, self.speed)

    def render(self) -> Text:
        if self.recording is None:
            return Text("")
        width = self._columns()
        room = width + LABEL + 1  # every line cut to the widget: nothing wraps
        span = self.duration_s
        col = min(width - 1, int(self.cursor / max(span, 1e-9) * width))
        lines = ["%-*s %s" % (LABEL, name[:LABEL], sparkline(shares))
                 for name, shares in self._thread_rows(width)]
        lines.append("%-*s %s" % (LABEL, "modes", mode_row(timeline.modes(self.recording),
                                                              span, width)))
        lines.append("%-*s %s%s" % (LABEL, "cursor", " " * col, CURSOR))
        lines.append(KEYS)
        text = Text(self.status_line()[:room], style="bold")
        for line in lines:
            text.append("\n" + line[:room])
        return text
