"""The code beside the picture: the functions an experiment names as its lesson, highlighted,
with line numbers, and the line a run blames marked with a glyph in the gutter
(▶ blamed, ▷ a call on the way to it, ◆ a thread waits here) - never by colour alone.
For race, each variant's bytecode as the child's interpreter compiled it sits beside (or,
when narrow, under) its source, the read (R), what runs between (│) and the write (W)
marked.

Drawn from a RunState only (its result, and its newest events while it runs), so a run
rebuilt from a record draws the same. Colours come from Rich's `ansi_dark` theme, the
terminal's own 16 colours; under NO_COLOR they are dropped and the glyphs remain.
"""

from __future__ import annotations

from typing import Any

from rich.style import Style
from rich.syntax import Syntax
from rich.text import Text
from textual.containers import VerticalScroll
from textual.reactive import reactive
from textual.widgets import Static

from lab.core import source
from lab.core.state import RunState

THEME = "ansi_dark"  # named ANSI colours only: reads on a 16-colour terminal
MARKED = Style(bold=True, reverse=True)  # the gutter of a marked line (glyph carries it too)
BYTECODE_FLAGS = {"R": "R", "|": "│", "W": "W"}
RANK = {source.BLAMED: 0, source.WAITING: 0, source.ON_THE_WAY: 1}
GAP = 3  # columns between a source and its bytecode, side by side


class CodeView(VerticalScroll):
    """Scrollable; `show(state)` at the screen's frame rate, redrawn only on a change."""

    DEFAULT_CSS = """
    CodeView {
        width: 1fr;
        height: 1fr;
        padding: 0 1;
        overflow-x: auto;
    }
    CodeView > #code-body {
        width: auto;
        height: auto;
    }
    """
    BESIDE_FROM = 120  # columns from which the panel sits beside the view, not over it

    experiment: reactive[str] = reactive("", init=False)
    marks: reactive[tuple] = reactive((), init=False)
    bytecode: reactive[dict] = reactive(dict, init=False)
    python: reactive[str] = reactive("", init=False)

    def __init__(self, experiment: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        try:
            self._functions = source.lesson_functions(experiment)
            self._problem = ""
        except source.SourceError as exc:  # a wrong LESSON_CODE: say so, draw the rest
            self._functions, self._problem = [], str(exc)
        self._scrolled_for: frozenset = frozenset()
        self.set_reactive(CodeView.experiment, experiment)
        self._seen: tuple[int, int] = (0, -1)  # (id of the state, its version) last read
        self.first_mark_row: int | None = None

    def compose(self):
        yield Static(self.code_text(), id="code-body")

    # Reading the run ------------------------------------------------------------------
    def show(self, state: RunState | None) -> None:
        seen = (id(state), state.version if state is not None else -1)
        if seen == self._seen:
            return
        self._seen = seen
        result = state.result if state is not None and isinstance(state.result, dict) else None
        last = state.last if state is not None else {}
        self.marks = tuple(source.marks(self.experiment, result, last))
        self.bytecode = source.race_bytecode(result) if self.experiment == "race" else {}
        hello = ((state.hello or {}).get("python") or {}) if state is not None else {}
        self.python = ("%s %s" % (hello.get("implementation") or "",
                                  hello.get("version") or "")).strip()

    def watch_marks(self) -> None:
        # Scroll to a mark only when the marked lines change, not when a still-growing
        # freeze only updates its figure (the reader may have scrolled meanwhile).
        lines = frozenset((m.path, m.line, m.glyph) for m in self.marks)
        self._redraw(scroll=bool(lines) and lines != self._scrolled_for)
        self._scrolled_for = lines

    def watch_bytecode(self) -> None:
        self._redraw()

    def watch_python(self) -> None:
        self._redraw()

    def on_resize(self) -> None:
        self._redraw()

    def _redraw(self, scroll: bool = False) -> None:
        if not self.is_mounted:
            return
        self.query_one("#code-body", Static).update(self.code_text())
        if scroll and self.first_mark_row is not None:
            # Bring the blamed line into view, a few lines of context above it.
            self.call_after_refresh(self.scroll_to, y=max(0, self.first_mark_row - 3),
                                    animate=False)

    # Drawing ---------------------------------------------------------------------------
    def code_text(self) -> Text:
        width = max(40, self.size.width - 2) if self.size.width else 80
        rows: list[Text] = []
        self.first_mark_row, first_rank = None, None  # scroll to the most telling mark
        glyphs = sorted({m.glyph for m in self.marks})
        legend = "  ".join("%s %s" % (g, source.LEGEND[g]) for g in glyphs)
        rows.append(Text(legend or "the lesson's code · a run marks the lines it blames",
                         style="dim" if not legend else ""))
        if self._problem:
            rows.append(Text("✗ " + self._problem, style="bold"))
        for mark in self.marks:
            if mark.path.startswith("workloads/"):
                first, *more = mark.says.split("; ")  # one thread per row
                rows.append(Text("%s %s:%d  %s" % (mark.glyph, mark.path, mark.line, first)))
                rows.extend(Text("  " + said) for said in more)
        for function in self._functions:
            rows.append(Text(""))
            rows.append(Text.assemble((function.name, "bold"),
                                      "  %s:%d" % (function.path, function.first_line)))
            code, marked = self._source_rows(function)
            if marked is not None and (first_rank is None or marked[1] < first_rank):
                self.first_mark_row, first_rank = len(rows) + marked[0], marked[1]
            bytecode = self._bytecode_rows(function)
            if not bytecode:
                rows.extend(code)
                continue
            left = max(len(t.plain) for t in code)
            if left + GAP + max(len(t.plain) for t in bytecode) <= width:
                rows.extend(self._side_by_side(code, bytecode, left))
            else:
                rows.extend(code)
                rows.extend(bytecode)
        if self.experiment == "race" and not self.bytecode:
            rows += [Text(""), Text("bytecode: a run reports it, as its interpreter compiles "
                                    "each variant", style="dim")]
        return Text("\n").join(rows)

    def _source_rows(self, function: source.LessonFunction) -> tuple[list[Text], tuple | None]:
        """The function's lines with their gutter, and (index, rank) of its most telling
        mark: a blamed line or a waiting thread before a call on the way."""
        by_line = source.marks_in(function, list(self.marks))
        highlighted = self._highlight("\n".join(function.lines))
        width = len(str(max(f.last_line for f in self._functions)))  # one gutter for all
        out, first = [], None
        for offset, line in enumerate(highlighted.split("\n", allow_blank=True)):
            number = function.first_line + offset
            mark = by_line.get(number)
            gutter = Text(source.gutter(number, mark, width), style=MARKED if mark else "dim")
            if mark:
                line.stylize("bold")
                rank = RANK.get(mark.glyph, len(RANK))
                if first is None or rank < first[1]:
                    first = (offset, rank)
            row = Text()  # the gutter's style stays on the gutter (not `gutter + line`)
            row.append_text(gutter)
            row.append_text(line)
            out.append(row)
        return out, first

    def _bytecode_rows(self, function: source.LessonFunction) -> list[Text]:
        rows = self.bytecode.get("len" if function.name == "length" else function.name)
        if not rows:
            return []
        between = source.read_write(rows)
        head = "bytecode" + (" · %s" % self.python if self.python else "")
        out = [Text(head + " · R read │ between W write", style="dim")]
        for index, row in enumerate(rows):
            flag = between.get(index)
            text = Text(source.bytecode_row({"offset": row[0], "opname": row[1],
                                             "argrepr": row[2], "line": row[3],
                                             "mark": flag}).rstrip())
            if flag in ("R", "W"):
                text.stylize("bold")
            out.append(text)
        return out

    @staticmethod
    def _side_by_side(code: list[Text], bytecode: list[Text], left: int) -> list[Text]:
        out = []
        for index in range(max(len(code), len(bytecode))):
            row = code[index].copy() if index < len(code) else Text("")
            row.pad_right(left + GAP - len(row.plain))
            if index < len(bytecode):
                row.append_text(bytecode[index])
            out.append(row)
        return out

    def _highlight(self, code: str) -> Text:
        text = Syntax(code, "python", theme=THEME).highlight(code)
        text.rstrip()
        if getattr(self.app, "no_color", False):
            text.spans = [span._replace(style=_without_colour(span.style)) for span in text.spans]
        return text


def _without_colour(style: Style | str) -> Style:
    style = Style.parse(style) if isinstance(style, str) else style
    return style.without_color
