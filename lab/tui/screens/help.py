"""Keys and the meaning of every glyph (so nothing depends on colour)."""

from __future__ import annotations

import textwrap

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from lab.core import article

HELP = """\
conlab - every concurrency model live, measured on this machine

ARTICLE

Keys (dashboard)
  r        run the focused pane        a      run every pane (CPU-bound
                                              ones in turn: WAITING n of m)
  x        stop every run              enter  open the pane's experiment
  tab      next pane (arrows too)      e      list all experiments
  ?        this help                   q      quit (stops every run first)
  ctrl+p   command palette: every action, every experiment
  h        history: space marks runs, c compares them, f filters by name
  s        this experiment under several interpreters, side by side
           (there: r runs them in turn, t switches to all at once)
  l        lessons: predict, run, compare with what was measured
  w        watch a program: type a command, or attach to one of your
           processes (read-only); a diagnosis per process, its threads

Keys (watch screen)
  x        stop the command (an attached process is never signalled)
  o        the command's last lines of output (the log file keeps all)
  escape   leave (stops a command started there)

Keys (experiment screen)
  r        run with the form's values  x      stop
  enter    in a field: run             escape back to the dashboard
  v        the lesson's code: ▶ the line the run points at, ▷ a call on the
           way, ◆ a thread waits there; race: R read │ between W write

Keys (be the scheduler: e, then interleave's second line; b on interleave)
  1-4      let that thread run to its next instruction (or line)
  u        undo the last step     r      start again     l  line / instruction
  p        next program           t      2, 3 or 4 threads
  ▶ the next instruction   ⊘ blocked on a lock   ● held   ○ free   ✓ finished

Thread rows
  █ on a CPU    ▒ runnable, waiting for a CPU (run_delay)    · off-CPU
  cpu, wait     share of one CPU over the last sample (4 a second)
  vol           voluntary context switches per second; under the GIL
                each is a thread waiting for the GIL: its hand-off rate
  ▸ name pid    a process; its threads are indented beneath it

Markers
  ▶ running   ✓ finished   · waiting   ✗ did not finish
  !           finished, but other programs took CPU time meanwhile: inflated
  RUNNING DONE STOPPED FAILED TIMEOUT REFUSED WAITING: the run's state
  measured while X ran: another lab run X shared the CPUs with this one
  ▶ before a pane's title: the pane that r and enter act on

The lab's own cost (the dashboard's top line, other screens' footer)
  lab N% cpu    this UI's own CPU (its children not included)
  lag N ms      how late the UI's event loop drew its last frames

Every figure comes from a real child process and the kernel.
escape, q or ? closes this help.
""".replace("ARTICLE", textwrap.fill("The lab is built around " + article.named() + " Where this machine "
                    "disagrees with the article, the lab says so and why.", 78))


class HelpScreen(ModalScreen):
    BINDINGS = [
        Binding("escape", "dismiss", "close"),
        Binding("q", "dismiss", "close", show=False),
        Binding("question_mark", "dismiss", "close", show=False),
    ]
    DEFAULT_CSS = """
    HelpScreen {
        align: center middle;
    }
    HelpScreen > VerticalScroll {
        width: 84;
        max-width: 100%;
        height: auto;
        max-height: 100%;
        border: round $foreground 60%;
        padding: 0 1;
        background: $surface;
    }
    """

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static(HELP)
