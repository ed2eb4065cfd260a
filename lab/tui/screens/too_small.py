"""Shown instead of a broken layout when the terminal is below the lab's minimum."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Static

MIN_WIDTH, MIN_HEIGHT = 80, 24


def too_small(width: int, height: int) -> bool:
    return width < MIN_WIDTH or height < MIN_HEIGHT


class TooSmallScreen(Screen):
    """`terminal too small: need 80x24, have 70x20` - runs keep going underneath."""

    DEFAULT_CSS = """
    TooSmallScreen {
        align: center middle;
    }
    TooSmallScreen > Static {
        width: 100%;  /* not auto: the words wrap to the terminal instead of being cut */
        height: auto;
        text-align: center;
        text-style: bold;
    }
    """

    def compose(self) -> ComposeResult:
        yield Static(id="message")

    def on_mount(self) -> None:
        self.show_size(self.app.size.width, self.app.size.height)

    def show_size(self, width: int, height: int) -> None:
        self.query_one("#message", Static).update(
            "terminal too small: need %dx%d, have %dx%d\n(q quits)"
            % (MIN_WIDTH, MIN_HEIGHT, width, height))
