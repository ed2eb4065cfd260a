"""Be the scheduler: one column per thread (its line, its bytecode with a cursor on the next
instruction, what it has loaded but not stored, its status), and above them the goal, the
shared state, the locks and the schedule so far.

Drawn only from two dicts the stepper sends (`step_state` and `step_program`, see
lab/core/stepper.py), so an injected state draws the same picture as a live one. Every
state is said in a glyph or a word (▶ next, ✓ finished, ⊘ blocked, ● held); colour only
repeats it, and every segment carries a style (NO_COLOR's filter reads each one).
"""

from __future__ import annotations

from typing import Any

from rich.segment import Segment
from rich.text import Text
from textual.reactive import reactive
from textual.strip import Strip
from textual.widget import Widget

CURSOR = "▶"
STATUS_GLYPH = {"ready": "•", "blocked": "⊘", "finished": "✓"}
HEADER_MIN_ROWS = 5  # columns' own rows above the bytecode: title, line, loaded, locks, rule


def _short(text: Any, width: int) -> Text:
    line = text if isinstance(text, Text) else Text(str(text))
    if line.cell_len > width:
        line = line.copy()
        line.truncate(max(0, width), overflow="ellipsis")
    return line


def _pad(line: Text, width: int) -> Text:
    line = _short(line, width)
    if line.cell_len < width:
        line = line.copy()
        line.append(" " * (width - line.cell_len))
    return line


def goal_lines(state: dict, width: int) -> list[Text]:
    """`goal ✓ REACHED end with …`, the mark first so a long goal never hides it;
    wrapped to two lines at most."""
    import textwrap

    goal = state.get("goal") or {}
    mark, style = ("✓ REACHED", "bold reverse") if goal.get("reached") else ("○ not yet", "")
    head = len("goal ") + len(mark) + 3
    words = textwrap.wrap(str(goal.get("text") or "-"), max(8, width - head)) or ["-"]
    first = Text.assemble(("goal ", "bold"), (mark, style), " · " + words[0])
    rest = " ".join(words[1:])
    return [first] + ([Text(" " * head + rest)] if rest else [])


def shared_line(state: dict) -> Text:
    shared = state.get("shared") or {}
    text = Text("shared ", style="bold")
    parts = ["%s = %s" % (name, value if isinstance(value, str) else repr(value))
             for name, value in shared.items() if name != "locks"]
    text.append(" · ".join(parts) or "-")
    return text


def locks_line(state: dict) -> Text:
    """`locks A ● held by 1, wanted by 2 · B ○ free`."""
    locks = state.get("locks") or {}
    wanted: dict[str, list[int]] = {}
    for thread in state.get("threads") or []:
        if thread.get("wants"):
            wanted.setdefault(thread["wants"], []).append(thread.get("id"))
    text = Text("locks ", style="bold")
    if not locks:
        text.append("none")
    for index, (name, holder) in enumerate(locks.items()):
        if index:
            text.append(" · ")
        if holder is None:
            text.append("%s ○ free" % name)
        else:
            text.append("%s ● held by %s" % (name, holder))
        if wanted.get(name):
            text.append(", wanted by %s" % ", ".join(str(t) for t in wanted[name]))
    return text


def runs_of(schedule: list) -> str:
    """`1×13 2×12 1` for a schedule too long to spell out."""
    runs: list[list] = []
    for thread in schedule:
        if runs and runs[-1][0] == thread:
            runs[-1][1] += 1
        else:
            runs.append([thread, 1])
    return " ".join("%s×%d" % (t, n) if n > 1 else str(t) for t, n in runs)


def schedule_line(state: dict, width: int) -> Text:
    """`schedule 1 1 2 2 2 1`; a long schedule in runs (`1×13 2×12`), then its tail."""
    room = width - len("schedule ")
    schedule = state.get("schedule_text")
    if schedule is None:
        schedule = " ".join(str(n) for n in state.get("schedule") or [])
    if len(schedule) > room:
        schedule = runs_of(state.get("schedule") or schedule.split())
    if len(schedule) > room:
        schedule = "…" + schedule[len(schedule) - room + 1:]
    return Text.assemble(("schedule ", "bold"), schedule or "(no step yet)")


def outcome_line(state: dict) -> Text | None:
    """How the program ended (a deadlock has a line of its own)."""
    outcome = state.get("outcome")
    if not outcome or state.get("deadlock"):
        return None
    return Text.assemble(("→ ", "bold"), (str(outcome.get("text") or outcome.get("kind")),
                                          "bold"))


def deadlock_line(state: dict) -> Text | None:
    deadlock = state.get("deadlock")
    if not deadlock:
        return None
    cycle = deadlock.get("cycle") or []
    words = []
    for link in cycle:
        if isinstance(link, dict):
            words.append("%s wants %s held by %s" % (link.get("thread"), link.get("wants"),
                                                      link.get("held_by")))
        else:
            words.append(str(link))
    return Text.assemble(("✗ DEADLOCK ", "bold reverse"), " " + ("; ".join(words) or
                                                                "every thread is blocked"))


def status_text(thread: dict) -> Text:
    status = thread.get("status") or "?"
    glyph = STATUS_GLYPH.get(status, "?")
    text = Text("%s thread %s " % (glyph, thread.get("id")), style="bold")
    if status == "blocked":
        what = "blocked on %s" % (thread.get("wants") or "?")
        if thread.get("blocked_by") is not None:
            what += " held by %s" % thread["blocked_by"]
        text.append(what, style="reverse")
    else:
        text.append(status)
    return text


def loaded_text(thread: dict) -> str:
    """`counter = 0`: what the thread read and has not stored yet, named where known."""
    values = [str(v) for v in thread.get("loaded") or []]
    names = thread.get("loaded_names") or []
    if len(names) == len(values):
        values = ["%s = %s" % (name, value) for name, value in zip(names, values)]
    return ", ".join(values) or "-"


def listing_rows(listing: list[dict], offset: Any, rows: int, width: int) -> list[Text]:
    """The thread's bytecode, `rows` of it around the cursor (▶ before the next one)."""
    if rows <= 0:
        return []
    at = next((i for i, ins in enumerate(listing) if ins.get("offset") == offset), None)
    start = 0
    if at is not None and len(listing) > rows:
        start = max(0, min(at - rows // 3, len(listing) - rows))
    out = []
    for i in range(start, min(len(listing), start + rows)):
        ins = listing[i]
        mark = CURSOR if i == at else " "
        # The source line where an instruction starts one, as dis prints it.
        first = ins.get("starts_line") or (i == 0 and ins.get("line") is not None)
        line_no = ins.get("line") if first and ins.get("line") is not None else ""
        line = Text("%s%4s %4s %s %s" % (mark, line_no, ins.get("offset", ""),
                                         ins.get("opname", ""), ins.get("argrepr") or ""),
                    style="bold reverse" if i == at else "")
        out.append(_short(line, width))
    return out


def column(thread: dict, listing: list[dict], width: int, rows: int) -> list[Text]:
    """One thread's column, `rows` tall at most."""
    nxt = thread.get("next") or {}
    finished = thread.get("status") == "finished"
    lines = [status_text(thread)]
    source = str(thread.get("source") or "").strip()
    if finished:
        lines.append(Text("line -  (done)"))
    else:
        lines.append(Text.assemble(("line %s " % (thread.get("line") or "-"), "bold"), source))
    lines.append(Text.assemble(("loaded ", "bold"), loaded_text(thread)))
    holds = ", ".join(thread.get("holds") or []) or "-"
    lock_text = Text.assemble(("holds ", "bold"), holds)
    if thread.get("wants"):
        lock_text.append(" · wants %s" % thread["wants"])
    lines.append(lock_text)
    lines.append(Text("─" * width))
    room = rows - len(lines)
    if listing:
        lines += listing_rows(listing, None if finished else nxt.get("offset"), room, width)
    elif nxt and not finished:
        lines.append(Text("%s%4s %s %s" % (CURSOR, nxt.get("offset", ""), nxt.get("opname", ""),
                                           nxt.get("argrepr") or ""), style="bold reverse"))
    return [_short(line, width) for line in lines[:rows]]


def source_rows(state: dict, program: dict | None, width: int) -> list[Text]:
    """The program's source with the threads now on each line named at its left."""
    source = (program or {}).get("source") or []
    first = (program or {}).get("first_line")
    if not source or not isinstance(first, int):
        return []
    at: dict[int, list[str]] = {}
    for thread in state.get("threads") or []:
        if thread.get("status") != "finished" and thread.get("line") is not None:
            at.setdefault(thread["line"], []).append(str(thread.get("id")))
    marks_w = max([len(" ".join(m)) for m in at.values()] + [1])
    title = "── source · threads at their line "
    rows = [_short(Text(title + "─" * max(0, width - len(title)), style="bold"), width)]
    for index, code in enumerate(source):
        number = first + index
        marks = " ".join(at.get(number, []))
        line = Text("%*s %4d  %s" % (marks_w, marks, number, code.rstrip()),
                    style="bold" if marks else "")
        rows.append(_short(line, width))
    return rows


def draw(state: dict | None, program: dict | None, width: int, height: int) -> list[Text]:
    """The whole picture as lines no wider than `width`, at most `height` of them."""
    if width <= 0 or height <= 0:
        return []
    if not state:
        return [Text("starting the stepper…")]
    top = goal_lines(state, width) + [shared_line(state), locks_line(state),
                                      schedule_line(state, width)]
    top += [line for line in (outcome_line(state), deadlock_line(state)) if line is not None]
    top = [_short(line, width) for line in top]
    threads = state.get("threads") or []
    bytecode = (program or {}).get("bytecode") or {}
    rows = max(HEADER_MIN_ROWS, height - len(top) - 1)
    lines = top + [Text("═" * width)]
    if threads:
        count = len(threads)
        col_w = max(8, (width - (count - 1)) // count)
        listings = [bytecode.get(str(t.get("id"))) or bytecode.get(t.get("id")) or []
                    for t in threads]
        # Below the columns, the whole source when the longest listing leaves room for it.
        source = source_rows(state, program, width)
        longest = HEADER_MIN_ROWS + max(len(listing) for listing in listings)
        if source and longest + len(source) <= rows:
            rows -= len(source)
        else:
            source = []
        columns = [column(t, listing, col_w, rows) for t, listing in zip(threads, listings)]
        depth = max(len(c) for c in columns)
        for y in range(depth):
            line = Text()
            for index, col in enumerate(columns):
                if index:
                    line.append("│")
                cell = col[y] if y < len(col) else Text("")
                line.append_text(_pad(cell, col_w) if index < count - 1 else cell)
            lines.append(_short(line, width))
        lines += source
    return lines[:height]


class SchedulerView(Widget):
    """Set `program` once and `state` after every step; the view redraws itself."""

    DEFAULT_CSS = """
    SchedulerView {
        height: 1fr;
    }
    """

    state: reactive[dict | None] = reactive(None, always_update=True)
    program: reactive[dict | None] = reactive(None, always_update=True)

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._lines: list[Text] | None = None
        self._key: tuple[int, int] = (0, 0)

    def watch_state(self) -> None:
        self._lines = None

    def watch_program(self) -> None:
        self._lines = None

    def lines(self) -> list[Text]:
        size = (self.content_size.width, self.content_size.height)
        if self._lines is None or size != self._key:
            self._key = size
            self._lines = draw(self.state, self.program, *size)
        return self._lines

    def plain(self) -> list[str]:
        """The picture as plain text (tests, and reading it over a slow link)."""
        return [line.plain for line in self.lines()]

    def render_line(self, y: int) -> Strip:
        width = self.content_size.width
        base = self.rich_style
        lines = self.lines()
        if y >= len(lines):
            return Strip.blank(width, base)
        line = lines[y].copy()
        line.stylize_before(base)
        line.no_wrap = True
        strip = Strip(list(line.render(self.app.console)), line.cell_len)
        strip = strip.crop_extend(0, width, base)
        # Padding cells and empty lines come back without a style: give them the base one,
        # since Textual's NO_COLOR filter reads every segment's style.
        segments = [Segment(text, base if style is None else style, control)
                    for text, style, control in strip]
        return Strip(segments, width).simplify()
