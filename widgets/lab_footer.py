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


class LabFooter(Widget):
    """One line: key hints, then the observer gauge flush right."""

    DEFAULT_CSS = """
    LabFooter {
        dock: bottom;
        height: 1;
        background: $panel;
    }
    """

    def __init__(self, keys: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.keys = keys
        self.observer = ""

    def on_mount(self) -> None:
        self.set_observer(getattr(self.app, "observer_text", ""))

    def set_observer(self, text: str) -> None:
        if text != self.observer:
            self.observer = text
            self.refresh()

    def render(self) -> Text:
        width = self.size.width or 80
        right = self.observer
        left = self.keys
        room = width - len(right) - 1
        if len(left) > room:
            left = left[:max(0, room - 1)] + "…"
        text = Text(left, style="bold")
        text.append(" " * max(1, width - len(left) - len(right)))
        text.append(right)
        return text
