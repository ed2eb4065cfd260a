"""The generic live view: one row per thread (grouped per process), from the kernel's figures.

Each row is a bar of one CPU's time over the last sampling interval, split three ways:
`█` on a CPU, `▒` runnable but waiting for a CPU (schedstat run_delay), `·` off-CPU
(asleep: for a thread under the GIL, mostly waiting for the GIL). Beside it the same
figures as numbers and the voluntary switches per second - for threads taking turns on
the GIL, each voluntary switch is a wait for the GIL, so this is the hand-off rate.
Glyphs and numbers carry the meaning; colour only repeats it (NO_COLOR, 16 colours).

`LinesView` is the small base the lab's views share: it draws lines of text sized to the
widget, and repaints only when the text really changed (fewer bytes over SSH).
"""

from __future__ import annotations

import math

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.geometry import Region
from textual.containers import ScrollableContainer
from textual.strip import Strip
from textual.widget import Widget

from lab.core.formatting import fmt_int  # noqa: F401  (the views import it from here)
from lab.core.state import RunState, ThreadView
from widgets.live_view import LiveView

ON, WAIT, OFF = "█", "▒", "·"
# Only "waiting for a CPU" gets a colour of its own: on-CPU and off-CPU take the line's
# style, so a row is three runs of one style each (bytes over SSH); the glyphs differ.
STYLE_ON, STYLE_WAIT, STYLE_OFF = "", "yellow", ""
STRIP = "▁▂▃▄▅▆▇█"
HISTORY_POINTS = 64


# Formatting helpers (shared by the lab's views) -------------------------------------------
def fmt_rate(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 1000:
        return "%d" % round(value)
    if value < 100_000:
        return "%.1fk" % (value / 1000)
    return "%dk" % round(value / 1000)


def fmt_s(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 1:
        return "%.0f ms" % (seconds * 1000)
    if seconds < 100:
        return "%.2f s" % seconds
    return "%.0f s" % seconds


def pct(fraction: float) -> str:
    return "%d%%" % round(fraction * 100)


def bar(on: float, wait: float, width: int) -> Text:
    """`width` cells of one CPU: on-CPU, waiting for a CPU, the rest off-CPU."""
    width = max(1, width)
    on_cells = min(width, round(max(0.0, on) * width))
    wait_cells = min(width - on_cells, round(max(0.0, wait) * width))
    off_cells = width - on_cells - wait_cells
    text = Text()
    if on_cells:
        text.append(ON * on_cells, STYLE_ON)
    if wait_cells:
        text.append(WAIT * wait_cells, STYLE_WAIT)
    if off_cells:
        text.append(OFF * off_cells, STYLE_OFF)
    return text


def strip(values: list[float], width: int, top: float = 1.0, linear: bool = False) -> str:
    """A one-style text strip of the newest `width` values scaled to 0..top.

    Linear for shares of a CPU; square-root otherwise, so small non-zero values (a few
    lost updates) still lift off the floor.
    """
    if width <= 0 or not values:
        return ""
    cells = []
    for value in values[-width:]:
        if value is None:  # no figure there (before the first, past a replay's cursor)
            cells.append(" ")
            continue
        if value <= 0 or top <= 0:
            cells.append(STRIP[0])
            continue
        share = min(1.0, value / top)
        if linear:
            level = round(share * (len(STRIP) - 1))
        else:
            level = 1 + int(math.sqrt(share) * (len(STRIP) - 2))
        cells.append(STRIP[max(0, min(level, len(STRIP) - 1))])
    return "".join(cells)


def fit(text: Text | str, width: int) -> Text:
    """One line, cut to `width` cells."""
    if isinstance(text, Text) and text.cell_len <= width:
        return text
    line = Text(text) if isinstance(text, str) else text.copy()
    line.truncate(max(0, width), overflow="ellipsis")
    return line


def _cells(text: Text, width: int) -> list[tuple[str, str]]:
    """(character, style) per cell; the lab's glyphs are all one cell wide."""
    styles = [str(text.style)] * len(text.plain)
    for span in text.spans:
        for i in range(span.start, min(span.end, len(styles))):
            styles[i] = "%s+%s" % (styles[i], span.style)
    cells = list(zip(text.plain, styles))
    return cells + [(" ", "")] * max(0, width - len(cells))


def changed_span(old: Text, new: Text, width: int) -> tuple[int, int]:
    """The smallest [start, end) column range outside which the two lines agree."""
    a, b = _cells(old, width), _cells(new, width)
    if len(a) != len(b):
        return 0, width
    start = 0
    while start < len(a) and a[start] == b[start]:
        start += 1
    end = len(a)
    while end > start and a[end - 1] == b[end - 1]:
        end -= 1
    return start, end


# The base view ---------------------------------------------------------------------------
class LinesView(LiveView):
    """A live view drawn as lines of text; repaints only when the lines changed.

    Compact (a dashboard pane): fills the space it is given and draws as many rows as fit.
    Full (an experiment screen): as tall as its content, up to MAX_ROWS.
    """

    DEFAULT_CSS = """
    LinesView {
        height: auto;
    }
    LinesView.-compact {
        height: 1fr;
    }
    """
    MAX_ROWS = 40

    def __init__(self, *, compact: bool = False, **kwargs) -> None:
        super().__init__(compact=compact, **kwargs)
        if compact:
            self.add_class("-compact")
        self._state: RunState | None = None
        self._lines: list[Text] = []
        self._strips: dict[tuple[int, int], Strip] = {}
        self._base_style: Style | None = None  # the widget's rich_style, looked up once
        self.cpu_history: dict[int, list[float]] = {}  # tid -> CPU share per sample
        self._samples_seen = 0

    # LiveView contract
    def draw(self, state: RunState) -> None:
        self._state = state
        self.fold(self.new_events(state), state)
        if state.samples != self._samples_seen:  # one history point per kernel sample
            self._samples_seen = state.samples
            for t in state.threads.values():
                if t.alive:
                    series = self.cpu_history.setdefault(t.tid, [])
                    series.append(t.cpu_share)
                    del series[:-HISTORY_POINTS]
        self.repaint()

    def reset(self) -> None:
        self._state = None
        self.cpu_history = {}
        self._samples_seen = 0

    @property
    def cpu_strips(self) -> dict[int, list[float]] | None:
        """CPU history for the strips, unless on a slow link."""
        return None if self.low_bandwidth else self.cpu_history

    # For subclasses
    def fold(self, events: list[dict], state: RunState) -> None:
        """Take in the experiment events that arrived since the last frame."""

    def lines(self, state: RunState, width: int, rows: int) -> list[Text]:
        raise NotImplementedError

    def idle_lines(self) -> list[Text]:
        """What to show before the first run is drawn."""
        return []

    @property
    def low_bandwidth(self) -> bool:
        return bool(getattr(self.app, "low_bandwidth", False))

    # Drawing
    def rows_budget(self) -> int:
        if self.compact:
            return max(1, self.size.height)
        return max(1, min(self.MAX_ROWS, self.room()))

    def room(self) -> int:
        """Rows a full view may take without running past what its box shows: the rest of
        a fixed-height parent (a lesson's pane), or the viewport of the scrolling column a
        growing pane sits in (the experiment screen). Unknown yet: MAX_ROWS."""
        box = self.parent
        if not isinstance(box, Widget) or not box.size.height:
            return self.MAX_ROWS
        others = sum(w.outer_size.height for w in box.children
                     if w is not self and w.display)
        frame = box.outer_size.height - box.content_size.height  # border and padding
        if box.styles.height is None or not box.styles.height.is_auto:
            return box.content_size.height - others
        scroller = box.parent
        if isinstance(scroller, ScrollableContainer) and scroller.size.height:
            return scroller.scrollable_content_region.height - frame - others
        return self.MAX_ROWS

    def repaint(self, force: bool = False) -> None:
        if self._state is None:
            new = [fit(line, self.size.width or 40) for line in self.idle_lines()]
        else:
            width = self.size.width or 40
            new = [fit(line, width) for line in self.lines(self._state, width,
                                                            self.rows_budget())]
            new = new[:self.rows_budget()]
        if new == self._lines and not force:
            return
        old, self._lines = self._lines, new
        self._strips = {}  # rebuilt lazily, line by line, in render_line
        self._base_style = None
        if len(new) != len(old) and not self.compact:
            self.refresh(layout=True)  # height: auto, so the size changes
            return
        # Repaint only the cells that changed: over SSH every unchanged cell is bytes saved
        # (Textual writes just the dirty regions).
        width = self.size.width
        if not width:
            self.refresh()
            return
        changed = []
        for y in range(max(len(new), len(old))):
            if force or y >= len(new) or y >= len(old):
                changed.append(Region(0, y, width, 1))
            elif new[y] != old[y]:
                start, end = changed_span(old[y], new[y], width)
                if end > start:
                    changed.append(Region(start, y, end - start, 1))
        if changed:
            self.refresh(*changed)

    def on_resize(self) -> None:
        try:
            self.repaint(force=True)
        except Exception as exc:  # outside a frame, nobody else would catch it
            self._lines = [Text("VIEW ERROR %s: %s" % (type(exc).__name__, exc), style="bold")]
            self._strips = {}
            self.refresh()

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._strips = {}  # a new theme or CSS: the cached strips carry the old colours
        self._base_style = None

    # Textual's line API: each line is one Strip made straight from its Text, so a frame
    # costs only the lines that changed (no whole-widget layout of the content).
    def render_line(self, y: int) -> Strip:
        width = self.size.width
        key = (y, width)
        strip = self._strips.get(key)
        if strip is not None:
            return strip
        style = self._base_style
        if style is None:  # walks the ancestors for their backgrounds: once per change
            style = self._base_style = self.rich_style
        if y >= len(self._lines):
            strip = Strip.blank(width, style)
        else:
            line = self._lines[y].copy()
            line.stylize_before(style)
            line.no_wrap = True
            strip = Strip(list(line.render(self.app.console)), line.cell_len)
            # One segment per run of a style (rich splits at every span edge): fewer escapes.
            strip = strip.crop_extend(0, width, style).simplify()
            # An empty line renders as a segment with no style at all; Textual's NO_COLOR
            # filter (Monochrome) reads `.color` of every style, so give it the base one.
            if any(segment.style is None for segment in strip):
                strip = Strip([Segment(text, style if seg_style is None else seg_style, control)
                               for text, seg_style, control in strip], strip.cell_length)
        self._strips[key] = strip
        return strip

    def get_content_height(self, container, viewport, width: int) -> int:
        return len(self._lines)


# Thread rows -----------------------------------------------------------------------------
NAME_W = 9
WIDE = 50  # from this width on, the number columns get labels of their own


def _right_w(width: int) -> int:
    return 20 if width >= WIDE else 16


def _right(cpu: float, wait: float, vol: float | None, width: int) -> str:
    if width >= WIDE:
        return " %4s w%4s %6s/s" % (pct(cpu), pct(wait), fmt_rate(vol))  # 20 cells
    return " %4s %4s %5s" % (pct(cpu), pct(wait), fmt_rate(vol))  # 16 cells


def _bar_w(width: int) -> int:
    return max(4, width - NAME_W - 1 - _right_w(width))


def thread_header(width: int) -> Text:
    bar_w = _bar_w(width)
    legend = "%scpu %swait %soff" % (ON, WAIT, OFF)
    if len(legend) > bar_w:
        legend = "of 1 CPU"
    text = Text("thread".ljust(NAME_W) + " ", style="bold")
    text.append(legend[:bar_w].ljust(bar_w), style="bold")
    if width >= WIDE:
        text.append(" %4s %5s %8s" % ("cpu", "wait", "vol"), style="bold")
    else:
        text.append(" %4s %4s %5s" % ("cpu", "wait", "vol/s"), style="bold")
    return text


def thread_row(name: str, cpu: float, wait: float, vol: float | None, width: int,
               indent: int = 0) -> Text:
    label = (" " * indent + name)[:NAME_W].ljust(NAME_W)
    text = Text(label + " ")
    text.append_text(bar(cpu, wait, _bar_w(width)))
    text.append(_right(cpu, wait, vol, width))
    return text


def ended_row(t: ThreadView, width: int, indent: int = 0) -> Text:
    label = (" " * indent + t.name)[:NAME_W].ljust(NAME_W)
    text = "%s ✓ ended · cpu %s" % (label, fmt_s(t.cpu_s))
    more = " · vol %s" % fmt_int(t.voluntary)
    if len(text) + len(more) <= width:
        text += more
    return Text(text, style="dim")


def process_name(state: RunState, pid: int) -> str:
    proc = state.processes.get(pid)
    if pid == state.pid:
        return "child"
    return proc.name if proc is not None else "pid %d" % pid


def busiest(items: list, rows: int, key=lambda t: t.cpu_share) -> tuple[list, list]:
    """More items than rows: the busiest rows-1 in their own order, and the rest (one row
    is left for a line that sums them up)."""
    if len(items) <= rows:
        return items, []
    keep = max(0, rows - 1)
    chosen = set(sorted(range(len(items)), key=lambda i: -key(items[i]))[:keep])
    return ([x for i, x in enumerate(items) if i in chosen],
            [x for i, x in enumerate(items) if i not in chosen])


def more_line(threads: list[ThreadView], noun: str, width: int, count: int | None = None) -> Text:
    """`+12 more threads, together 3.40 cores`: what the rows left out add up to."""
    count = len(threads) if count is None else count
    cores = sum(t.cpu_share for t in threads)
    wait = sum(t.wait_share for t in threads)
    plural = noun + ("es" if noun.endswith("s") else "s") if count != 1 else noun
    text = "+%d more %s, together %.2f cores" % (count, plural, cores)
    if wait >= 0.005:
        text += ", %.2f waiting" % wait
    if len(text) > width:
        text = "+%d more: %.2f cores" % (count, cores)
    return Text(text, style="dim")


HISTORY_MIN_WIDTH = 50  # CPU history strips only where there is room for them


def thread_rows(state: RunState, width: int, rows: int, show_ended: bool = True,
                history: dict[int, list[float]] | None = None) -> list[Text]:
    """Rows for the run's threads, grouped per process, cut down to `rows` lines.

    With `history` (and room: wide enough, two lines per thread), each thread gets a
    one-style strip of its recent CPU share beneath its bar.
    """
    if rows <= 0:
        return []
    # Stable order: the child first, then by pid and thread id (which grow as they start).
    ordered = sorted(state.threads.values(), key=lambda t: (t.pid != state.pid, t.pid, t.tid))
    alive = [t for t in ordered if t.alive]
    ended = [t for t in ordered if not t.alive] if show_ended else []
    pids = []
    for t in alive:
        if t.pid not in pids:
            pids.append(t.pid)
    several = len(pids) > 1
    items: list[tuple[Text, int | None]] = []  # (row, tid the row draws)
    if not several:
        shown, rest = busiest(alive, rows)
        items = [(thread_row(t.name, t.cpu_share, t.wait_share, t.voluntary_rate, width), t.tid)
                 for t in shown]
        if rest:
            items.append((more_line(rest, "thread", width), None))
    else:
        for pid in pids:
            mine = [t for t in alive if t.pid == pid]
            name = "%s %d" % (process_name(state, pid), pid)
            head = Text("▸ %s" % name, style="bold")
            head.append("  %d thread%s" % (len(mine), "" if len(mine) == 1 else "s"))
            items.append((head, None))
            items += [(thread_row(t.name, t.cpu_share, t.wait_share, t.voluntary_rate, width, 2),
                       t.tid) for t in mine]
        if len(items) > rows:  # not enough room: one row per process
            groups = [[t for t in alive if t.pid == pid] for pid in pids]
            shown, rest = busiest(groups, rows, key=lambda g: sum(t.cpu_share for t in g))
            items = [(thread_row(process_name(state, g[0].pid), sum(t.cpu_share for t in g),
                                 sum(t.wait_share for t in g),
                                 sum(t.voluntary_rate for t in g), width), None)
                     for g in shown]
            if rest:
                items.append((more_line([t for g in rest for t in g], "process", width,
                                        len(rest)), None))
    threads_shown = sum(1 for _, tid in items if tid is not None)
    if (history and width >= HISTORY_MIN_WIDTH and threads_shown
            and len(items) + threads_shown <= rows):
        with_strips: list[tuple[Text, int | None]] = []
        for row, tid in items:
            with_strips.append((row, tid))
            if tid is not None:
                line = Text(" " * NAME_W + " ")
                line.append(strip(history.get(tid, []), _bar_w(width), linear=True).ljust(_bar_w(width)),
                            style="dim")
                line.append(" cpu history", style="dim")
                with_strips.append((line, None))
        items = with_strips
    out = [row for row, _ in items]
    if len(out) > rows:
        hidden = len(out) - (rows - 1)
        out = out[:rows - 1] + [Text("… %d more rows (enter: full view)" % hidden, style="dim")]
        return out
    room = rows - len(out)
    if room > 0 and ended:
        shown = ended[-room:] if len(ended) <= room else ended[-(room - 1):]
        out += [ended_row(t, width) for t in shown]
        if len(ended) > len(shown):
            out.append(Text("… %d threads ended" % (len(ended) - len(shown)), style="dim"))
    return out


def summary_line(state: RunState, width: int = 80) -> Text:
    alive = state.live_threads()
    pids = {t.pid for t in alive}
    cpu = sum(t.cpu_share for t in alive)
    wait = sum(t.wait_share for t in alive)
    text = "%d thread%s in %d process%s · cpu %s · waiting for cpu %s" % (
        len(alive), "" if len(alive) == 1 else "s", len(pids), "" if len(pids) == 1 else "es",
        pct(cpu), pct(wait))
    if len(text) > width:  # a narrow column (80x24 experiment screen): the short form
        text = "%d thr/%d proc · cpu %s · wait %s" % (len(alive), len(pids), pct(cpu), pct(wait))
    return Text(text)


def event_line(kind: str, event: dict) -> Text:
    fields = " ".join("%s=%s" % (k, _short(v)) for k, v in event.items()
                      if k not in ("v", "ev", "ts", "pid"))
    text = Text(kind + " ", style="bold")
    text.append(fields)
    return text


def _short(value) -> str:
    if isinstance(value, float):
        return "%.4g" % value
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10000:
        return fmt_int(value)
    text = str(value)
    return text if len(text) <= 24 else text[:23] + "…"


class ThreadsView(LinesView):
    """Any experiment: its threads and processes, then its newest events."""

    EXPERIMENTS = ()

    def lines(self, state: RunState, width: int, rows: int) -> list[Text]:
        out = [summary_line(state, width)]
        if not state.threads:
            return out
        out.append(thread_header(width))
        room = rows - len(out)
        extra = list(state.last.items())
        body = thread_rows(state, width, max(1, room - min(len(extra), 3)), history=self.cpu_strips)
        out += body
        room = rows - len(out)
        for kind, event in extra[:max(0, room)]:
            out.append(fit(event_line(kind, event), width))  # an event's fields can be long
        return out


VIEW = ThreadsView
