"""The lab's footer: the keys on the left, the observer's own cost on the right.

`lab 1.2% cpu · lag 3 ms` is the UI process's own CPU (children excluded) and how late
its event loop ran the last frames: the cost of watching is on screen, not hidden.
"""

from __future__ import annotations

import os
import time

from rich.text import Text
from textual.widget import Widget


class ObserverGauge:
    """The lab's own CPU share and loop lag, over windows of about a second."""

    def __init__(self) -> None:
        self._cpu0 = self._cpu()
        self._wall0 = time.monotonic()
        self._last_frame = 0.0
        self.cpu_share = 0.0
        self.lag_s = 0.0
        self._window_lag = 0.0

    @staticmethod
    def _cpu() -> float:
        times = os.times()
        return times.user + times.system  # this process only, children excluded

    def frame(self, period_s: float, window_s: float = 1.0) -> bool:
        """Call once per frame; True when a new window's figures are ready."""
        now = time.monotonic()
        if self._last_frame:
            self._window_lag = max(self._window_lag, now - self._last_frame - period_s)
        self._last_frame = now
        if now - self._wall0 < window_s:
            return False
        cpu = self._cpu()
        self.cpu_share = (cpu - self._cpu0) / (now - self._wall0)
        self.lag_s = max(0.0, self._window_lag)
        self._cpu0, self._wall0, self._window_lag = cpu, now, 0.0
        return True

    def text(self) -> str:
        return "lab %.1f%% cpu · lag %d ms" % (self.cpu_share * 100, round(self.lag_s * 1000))


def compact_keys(keys: str) -> Text:
    """`r run  a all` as `r run a all` with each key in reverse video: one column saved
    per pair, and the pairs still read apart without colour."""
    text = Text()
    for index, pair in enumerate(keys.split("  ")):
        key, _, label = pair.partition(" ")
        if index:
            text.append(" ")
        text.append(key, style="bold reverse")
        if label:
            text.append(" " + label)
    return text


class LabFooter(Widget):
    """One line: key hints, then the observer gauge flush right.

    With `gauge=False` the line keeps every column for the keys (a screen that shows the
    gauge elsewhere); `bold=False` draws the left text plain (a status line, not keys).
    """

    DEFAULT_CSS = """
    LabFooter {
        dock: bottom;
        height: 1;
        background: $panel;
    }
    """

    def __init__(self, keys: str, gauge: bool = True, bold: bool = True, **kwargs) -> None:
        super().__init__(**kwargs)
        self.keys = keys
        self.observer = ""
        self.gauge = gauge
        self.bold = bold

    def on_mount(self) -> None:
        self.set_observer(getattr(self.app, "observer_text", ""))

    def set_observer(self, text: str) -> None:
        if text != self.observer:
            self.observer = text
            if self.gauge:
                self.refresh()

    def set_keys(self, text: str) -> None:
        if text != self.keys:
            self.keys = text
            self.refresh()

    def render(self) -> Text:
        width = self.size.width or 80
        right = self.observer if self.gauge else ""
        room = width - len(right) - (1 if right else 0)
        if self.bold and len(self.keys) > room:
            text = compact_keys(self.keys)  # single spaces, each key in reverse video
        else:
            text = Text(self.keys, style="bold" if self.bold else "")
        if len(text) > room:
            text.truncate(max(0, room - 1))
            text.append("…")
        if self.gauge:
            text.append(" " * max(1, width - len(text) - len(right)))
            text.append(right)
        return text
