"""How the CLI draws on a terminal: a run's live progress on stderr, and the formatting
module's blocks (lab.core.formatting) as Rich tables. Everywhere else (a pipe, a file,
`NO_COLOR`, `TERM=dumb`) the same blocks print as plain text, without a single escape.

What is said is decided in the core; only how it looks is decided here.
"""

from __future__ import annotations

import os
import sys
import time
from typing import IO, Any

from lab.core.formatting import Block, Para, Table, fit, render_plain
from lab.core.run_status import Status, Tracker
from lab.core.state import RunState

PLAIN_WIDTH = 80  # pipes and logs: what an SSH terminal shows
DUMB_EVERY_S = 5.0  # TERM=dumb: a plain status line at most this often


def dumb_terminal() -> bool:
    return os.environ.get("TERM", "") in ("dumb", "unknown")


def wants_colour(stream: IO) -> bool:
    """Rich tables and colour: only on a terminal that accepts them and did not ask not to."""
    return _isatty(stream) and not os.environ.get("NO_COLOR") and not dumb_terminal()


def _isatty(stream: IO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def console(stream: IO):
    from rich.console import Console

    return Console(file=stream, highlight=False, soft_wrap=False)


# Finished results -------------------------------------------------------------------------
STYLES = {"title": "bold", "verdict": "bold green", "note": "dim", "warn": "yellow",
          "error": "bold red", "text": ""}


def print_blocks(blocks: list[Block], stream: IO | None = None) -> None:
    stream = stream or sys.stdout
    if not wants_colour(stream):
        print(render_plain(blocks, PLAIN_WIDTH), file=stream)
        return
    out = console(stream)
    for index, block in enumerate(blocks):
        if isinstance(block, Para):
            if index and block.kind not in ("note", "warn"):
                out.print()
            out.print(block.text, style=STYLES.get(block.kind, ""), markup=False)
            continue
        for part in fit(block, out.width - 2):
            out.print()
            out.print(rich_table(part))


def rich_table(table: Table):
    from rich import box
    from rich.table import Table as RichTable
    from rich.text import Text

    shown = RichTable(title=table.title or None, title_justify="left", title_style="bold",
                      box=box.SIMPLE_HEAD, show_header=any(table.columns), pad_edge=False,
                      caption=table.note or None, caption_justify="left", caption_style="dim",
                      show_edge=False)
    for index, name in enumerate(table.columns):
        shown.add_column(name, style="cyan" if index == 0 else None, no_wrap=index > 0,
                         justify="left" if index == 0 or table.pairs else "right")
    for index, row in enumerate(table.rows):
        marked = index < len(table.marked) and table.marked[index]
        shown.add_row(*[Text(cell) for cell in row], style="bold yellow" if marked else None)
    return shown


def print_table_or_text(blocks, text, stream: IO | None = None) -> None:
    """Rich tables from `blocks()` on a colour terminal, else the plain `text()` the command
    always printed (kept byte for byte for scripts that read it)."""
    stream = stream or sys.stdout
    if wants_colour(stream):
        print_blocks(blocks(), stream)
    else:
        print(text(), file=stream)


def print_listing(lines: list[str], stream: IO | None = None) -> None:
    """`conlab list`: the same aligned lines; on a colour terminal the experiment names
    and the parameter settings stand out."""
    stream = stream or sys.stdout
    if not wants_colour(stream):
        print("\n".join(lines), file=stream)
        return
    from rich.text import Text

    out = console(stream)
    for line in lines:
        text = Text(line)
        if line and not line.startswith(" "):
            text.stylize("bold cyan", 0, len(line.split(" ", 1)[0]))
        elif line.startswith("    -p "):
            text.stylize("green", 4, 4 + len(line[4:].split("  ", 1)[0]))
        out.print(text)


def print_record(record: dict, stream: IO | None = None) -> None:
    from lab.core.formatting import record_blocks

    print_blocks(record_blocks(record), stream)


# Live progress ----------------------------------------------------------------------------
def wants_progress(json_output: bool, quiet: bool, stream: IO | None = None) -> bool:
    return not json_output and not quiet and _isatty(stream or sys.stderr)


class LiveProgress:
    """The run's status on stderr, redrawn in place and erased when the run ends (Rich's
    progress display); on a dumb terminal, a plain line now and then instead."""

    def __init__(self, state: RunState, choices: dict[str, tuple],
                 stream: IO | None = None) -> None:
        self.tracker = Tracker(state, choices)
        self.stream = stream or sys.stderr
        self.plain = dumb_terminal()
        self.said_at = 0.0
        self.progress: Any = None
        self.task: Any = None

    def __enter__(self) -> "LiveProgress":
        if self.plain:
            return self
        from rich.progress import (BarColumn, Progress, SpinnerColumn, TaskProgressColumn,
                                   TextColumn, TimeElapsedColumn)

        self.progress = Progress(
            SpinnerColumn(), TextColumn("[bold]{task.fields[experiment]}"),
            TextColumn("{task.description}"), BarColumn(bar_width=20), TaskProgressColumn(),
            TimeElapsedColumn(), console=console(self.stream), transient=True,
            refresh_per_second=8)
        self.progress.start()
        self.task = self.progress.add_task("starting", total=None,
                                           experiment=self.tracker.state.experiment)
        return self

    def update(self) -> Status:
        status = self.tracker.status()
        if self.plain:
            now = time.monotonic()
            if now - self.said_at >= DUMB_EVERY_S and status.elapsed_s >= 1.0:
                self.said_at = now
                print(status.line(), file=self.stream, flush=True)
            return status
        fraction = status.fraction
        self.progress.update(self.task, description=status.doing + status.steps(),
                             total=None if fraction is None else 1000,
                             completed=0 if fraction is None else round(fraction * 1000))
        return status

    def __exit__(self, *exc: Any) -> None:
        if self.progress is not None:
            self.progress.stop()  # transient: the lines are erased
