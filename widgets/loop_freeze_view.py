"""Live view of `loop-freeze`: expected vs actual ticks, frozen spans named and blamed.

Compact (a dashboard pane, about 38x9): a text timeline of the whole run, one column
per slice of time, `┊` where a tick was due, `│` where one arrived, `█` where the loop
was frozen, labelled `FROZEN 253 ms` underneath, then the blamed line and the lag
percentiles. A tick that came late while the loop ran no code (its thread waited for a
CPU or for the GIL inside the selector) is drawn `░` and labelled `late 7 ms`: not a
freeze, and not blamed on a line. The full view adds a lag strip, the 1 ms lag histogram and every span.
Nothing is told by colour alone: the glyphs and labels carry it.

Drawn as lines (`LinesView`): each row is a few runs of one style (a timeline is plain
glyphs, a frozen stretch one bold run), cached as a Strip until its text changes, and
only the changed cells are repainted - a frame is a handful of bytes over SSH.
"""

from __future__ import annotations

import math
import textwrap
import time

from rich.text import Text

from lab.core import timeline
from lab.core.state import RunState
from widgets.live_view import problem
from widgets.threads_view import LinesView, fit

BINS = 1000  # ticks are folded into this many time bins over the run
STRIP = "▁▂▃▄▅▆▇█"
LABEL_W = 4  # "exp " / "got " in compact mode
COMPACT_ROWS = 9  # a dashboard pane is about 38x9
FULL_LABEL_W = 9


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 100:
        return "%.0f" % value
    if value >= 10:
        return "%.1f" % value
    return "%.2f" % value


class FreezeModel:
    """What the view knows about one run, folded from its events."""

    def __init__(self) -> None:
        self.t0: float | None = None
        self.period_s = 0.01
        self.duration_s = 3.0
        self.threshold_ms = 20.0
        self.info: dict = {}
        self.bin_count = [0] * BINS
        self.bin_lag = [0.0] * BINS
        self.hist: dict[int, int] = {}
        self.spans: dict[int, dict] = {}
        self.late: dict[int, dict] = {}  # late ticks while the loop ran no code
        self.blocks: list[tuple[float, float]] = []
        self.stats: dict = {}
        self.last_t = 0.0
        self.known_until = 0.0  # ticks surely happened until here (reported by the watchdog)
        self.start_at: float | None = None  # a replay: the `start` event's arrival offset

    def configure(self, params: dict) -> None:
        self.period_s = float(params.get("period_ms", 10.0)) / 1000
        self.duration_s = float(params.get("duration_s", 3.0))
        self.threshold_ms = max(2 * self.period_s * 1000, 5.0)
        self.info = dict(params)

    def fold(self, event: dict) -> None:
        kind = event.get("ev")
        if kind == "start":
            self.t0 = event["t0"]
            self.period_s = event["period_ms"] / 1000
            self.duration_s = event["duration_s"]
            self.threshold_ms = event["threshold_ms"]
        elif kind == "ticks":
            for t, lag in event.get("ticks", ()):
                b = self.bin_of(t)
                self.bin_count[b] += 1
                if lag > self.bin_lag[b]:
                    self.bin_lag[b] = lag
                bucket = max(0, int(lag))
                self.hist[bucket] = self.hist.get(bucket, 0) + 1
                self.last_t = max(self.last_t, t)
            self.stats = {"count": event.get("count", 0), "missed": event.get("missed", 0),
                          "lag_ms": event.get("lag_ms", {}), "spans": event.get("spans", 0)}
        elif kind in ("frozen", "late"):
            index = event.get("index", -1)
            mine, other = (self.spans, self.late) if kind == "frozen" else (self.late, self.spans)
            known = mine.get(index, other.get(index))
            if event.get("ongoing") and known is not None and not known.get("ongoing"):
                return  # a late report of a span already closed
            other.pop(index, None)  # the watchdog may change its mind: idle, then code
            mine[index] = event
            self.known_until = max(self.known_until, event.get("last_tick_s", 0.0))
        elif kind == "block":
            self.blocks.append((event["start_s"], event["end_s"]))

    def bin_of(self, t: float) -> int:
        return min(BINS - 1, max(0, int(t / self.duration_s * BINS)))

    def now(self, state: RunState) -> float:
        if self.t0 is None:
            return 0.0
        cursor = getattr(state, "replay_at", None)
        if cursor is not None:  # a replay: the cursor, less when the ticker began
            if self.start_at is None:
                starts = timeline.series(state, "start", "t0")
                self.start_at = starts[0][0] if starts else 0.0
            return max(self.last_t, min(self.duration_s, cursor - self.start_at))
        if state.running:
            return min(self.duration_s, time.monotonic() - self.t0)
        return max(self.last_t, min(self.duration_s, (state.ended_at or time.monotonic()) - self.t0))

    def span_ranges(self, now: float, late: bool = False) -> list[tuple[float, float, dict]]:
        ranges = []
        for span in (self.late if late else self.spans).values():
            start = span.get("start_s", 0.0)
            if span.get("ongoing"):
                end = max(start + span.get("so_far_ms", 0.0) / 1000, now)
            else:
                end = span.get("end_s", start + span.get("duration_ms", 0.0) / 1000)
            ranges.append((start, end, span))
        return sorted(ranges, key=lambda r: r[0])


def runs(cells: list[tuple[str, str]]) -> Text:
    """One line from (glyph, style) cells, with one span per run of a style, never one
    per cell: a timeline of plain glyphs is a single segment on the wire."""
    text = Text()
    run: list[str] = []
    style = ""
    for glyph, cell_style in cells:
        if cell_style != style and run:
            text.append("".join(run), style)
            run = []
        style = cell_style
        run.append(glyph)
    if run:
        text.append("".join(run), style)
    return text


class LoopFreezeView(LinesView):
    """Tick timeline with frozen spans; compact for the dashboard's event-loop pane."""

    EXPERIMENTS = ("loop-freeze",)
    MAX_ROWS = 64  # full view: every span (up to six) with its blame, then the histogram

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.model = FreezeModel()
        self.unlabelled = 0

    def reset(self) -> None:
        super().reset()
        self.model = FreezeModel()

    # LinesView contract ----------------------------------------------------------------
    def fold(self, events: list[dict], state: RunState) -> None:
        if not self.model.info:
            self.model.configure(state.params)
        for event in events:
            self.model.fold(event)

    def idle_lines(self) -> list[Text]:
        return [Text("no run yet", style="dim")]  # fits the narrowest pane

    def lines(self, state: RunState, width: int, rows: int) -> list[Text]:
        width = max(20, width)
        if self.compact:
            return self.compact_lines(state, width, rows)
        return self.full_lines(state, width)

    # For tests and text output: the same lines as one Text
    def render_width(self, width: int) -> Text:
        if self._state is None:
            return Text("\n").join(fit(line, width) for line in self.idle_lines())
        rows = COMPACT_ROWS if self.compact else self.MAX_ROWS
        return Text("\n").join(fit(line, width) for line in self.lines(self._state, width, rows))

    def render_compact(self, state: RunState, width: int) -> Text:
        return Text("\n").join(fit(line, width)
                               for line in self.compact_lines(state, width, COMPACT_ROWS))

    # Pieces ----------------------------------------------------------------------------
    def header(self, width: int) -> str:
        info = self.model.info
        fix = {"none": "on loop", "to_thread": "to_thread", "process_pool": "proc pool"}.get(
            info.get("fix"), "?")
        tick = _ms(self.model.period_s * 1000).rstrip("0").rstrip(".")
        text = "%s tick %sms %s %dms %s" % (info.get("loop", "?"), tick, info.get("block", "?"),
                                          info.get("block_ms", 0), fix)
        if len(text) > width:
            text = text.replace(" tick ", " ")
        return text[:width]

    def timeline(self, width: int, now: float) -> tuple[Text, Text, Text]:
        """Rows: expected ticks, actual ticks (frozen spans as █), span labels."""
        m = self.model
        width = max(1, width)
        per_col = m.duration_s / width
        ranges = m.span_ranges(now)
        late = m.span_ranges(now, late=True)
        expected: list[tuple[str, str]] = []
        actual: list[tuple[str, str]] = []
        for col in range(width):
            a, b = col * per_col, (col + 1) * per_col
            due = math.ceil(a / m.period_s) * m.period_s
            if due == 0:
                due = m.period_s
            has_due = due < b
            expected.append(("┊" if has_due else " ", "dim" if a > now else ""))
            if a > now:
                actual.append((" ", ""))
                continue
            frozen = any(s < b and e > a for s, e, _ in ranges)
            lo, hi = m.bin_of(a), max(m.bin_of(a) + 1, m.bin_of(b))
            ticked = any(m.bin_count[i] for i in range(lo, min(hi, BINS)))
            if frozen:
                actual.append(("█", "bold red"))
            elif any(s < b and e > a for s, e, _ in late):
                actual.append(("░", "yellow"))
            elif ticked:
                actual.append(("│", ""))
            elif b <= m.known_until and not (has_due and b <= m.last_t):
                actual.append(("│", ""))  # ticks the child still holds (the watchdog vouched)
            elif has_due and b <= m.last_t:
                actual.append(("·", "yellow"))  # a tick was due here and none came
            else:
                actual.append((" ", ""))
        labels = [(" ", "")] * width
        taken = -1
        self.unlabelled = len(ranges)  # frozen spans the label row had no room to name
        marked = sorted([(s, e, span, "FROZEN ", "bold red") for s, e, span in ranges]
                        + [(s, e, span, "late ", "yellow") for s, e, span in late],
                        key=lambda r: r[0])
        for start, end, span, word, style in marked:
            ms = span.get("duration_ms") if not span.get("ongoing") else (end - start) * 1000
            tail = "…" if span.get("ongoing") else ""
            start_col = max(min(int(start / per_col), width - 1), taken + 2 if taken >= 0 else 0)
            # A freeze keeps its word when short of room; a late tick gives it up first.
            shorter = "%s ms%s" % (_ms(ms), tail)
            for label in ("%s%s ms%s" % (word, _ms(ms), tail),
                          shorter if word.startswith("F") else "~" + shorter):
                col = min(start_col, width - len(label))
                if col >= 0 and (taken < 0 or col > taken + 1):
                    break
            else:
                continue  # no room left on this row: the full view lists every span
            labels[col:col + len(label)] = [(c, style) for c in label]
            taken = col + len(label) - 1
            self.unlabelled -= word.startswith("F")
        return runs(expected), runs(actual), runs(labels)

    def worst_span(self) -> dict | None:
        spans = list(self.model.spans.values())
        if not spans:
            return None
        ongoing = [s for s in spans if s.get("ongoing")]
        if ongoing:
            return ongoing[-1]
        return max(spans, key=lambda s: s.get("duration_ms", 0.0))

    def lag_line(self, state: RunState) -> str:
        lag = (state.result or {}).get("lag_ms") or self.model.stats.get("lag_ms") or {}
        return "lag p50 %s p99 %s max %s ms" % (
            _ms(lag.get("p50")), _ms(lag.get("p99")), _ms(lag.get("max")))

    def count_line(self, state: RunState, now: float) -> str:
        result = state.result or {}
        ticks = result.get("ticks", self.model.stats.get("count", 0))
        missed = result.get("missed_ticks", self.model.stats.get("missed", 0))
        status = "%.1f/%.1f s" % (now, self.model.duration_s) if state.running else state.status
        return "ticks %d  missed %d  %s" % (ticks, missed, status)

    def spans_line(self, now: float, width: int) -> Text:
        """Every frozen span of the run so far, by its start: `frozen 3×: 0.17 0.51 0.84 s`;
        short of room the last ones give way to `+N` (the count stays whole)."""
        starts = ["%.2f" % start for start, _end, _span in self.model.span_ranges(now)]
        if not starts:
            return Text("frozen 0×" if self.model.stats else "", style="dim")
        head = "frozen %d×:" % len(starts)
        shown = list(starts)
        while True:
            more = len(starts) - len(shown)
            line = " ".join([head] + shown + (["+%d" % more] if more else []) + ["s"])
            if len(line) <= width or not shown:
                return Text(line[:width], style="bold")
            shown.pop()

    def blame_lines(self, width: int) -> list[Text]:
        span = self.worst_span()
        if span is None and self.model.late:
            worst = max(self.model.late.values(), key=lambda s: s.get("duration_ms", 0.0))
            return [Text(("no freeze; %d late tick(s), loop idle" % len(self.model.late))[:width]),
                    Text(("  " + (worst.get("says") or "late while in the selector"))[:width],
                         style="italic")]
        if span is None:
            return [Text("no frozen span yet", style="dim"), Text("")]
        if not span.get("blamed"):
            return [Text("blame: not caught in time"[:width]), Text("")]
        where = span["blamed"].replace("workloads/", "")
        first = Text("blame ", style="bold")
        first.append(("%s %s" % (where, span.get("function", "")))[: width - 6])
        return [first, Text(("  " + (span.get("code") or ""))[:width], style="italic")]

    # Frames ----------------------------------------------------------------------------
    def compact_lines(self, state: RunState, width: int, rows: int) -> list[Text]:
        """About 38x9. Short of rows, the least telling lines go first (the code line,
        then the counts ...); the timeline, its FROZEN labels and the blame stay."""
        now = self.model.now(state)
        expected, actual, labels = self.timeline(width - LABEL_W, now)
        blame, code = self.blame_lines(width)
        ranked = [  # (rank: lower is kept longer, line)
            (4, Text(self.header(width), style="bold")),
            (2, Text("exp ") + expected),
            (0, Text("got ") + actual),
            (1, Text(" " * LABEL_W) + labels),
        ]
        if self.unlabelled:  # the label row left some out: every span, by its start
            ranked.append((5.5, self.spans_line(now, width)))
        ranked += [
            (3, blame),
            (7, code),
            (5, Text(self.lag_line(state)[:width])),
            (6, Text(self.count_line(state, now)[:width])),
        ]
        if problem(state):
            ranked.append((8, Text(problem(state)[:width], style="bold")))
        rows = max(1, min(rows, COMPACT_ROWS))
        keep = sorted(rank for rank, _ in ranked)[:rows]
        return [line for rank, line in ranked if rank in keep]

    def full_lines(self, state: RunState, width: int) -> list[Text]:
        """Timeline, then the spans and their blame, then the histogram: most telling first,
        every line cut to the width (a narrow experiment screen is about 34 cells)."""
        m = self.model
        now = m.now(state)
        label_w = FULL_LABEL_W if width >= 60 else LABEL_W
        cols = width - label_w
        expected, actual, labels = self.timeline(cols, now)
        pad = " " * label_w
        names = ("expected ", "actual ", "max lag ", "blocking ") if label_w == FULL_LABEL_W \
            else ("exp ", "got ", "lag ", "blk ")
        rows = [Text(self.header(width), style="bold"),
                Text(names[0].ljust(label_w)) + expected,
                Text(names[1].ljust(label_w)) + actual,
                Text(pad) + labels,
                Text(names[2].ljust(label_w) + self.lag_strip(cols, now)),
                Text(names[3].ljust(label_w) + self.block_row(cols, now)),
                Text(pad + "0 s".ljust(cols - 6) + ("%.1f s" % m.duration_s).rjust(6), style="dim"),
                Text(self.lag_line(state)),
                Text(self.count_line(state, now)),
                self.spans_line(now, width),
                Text(""),
                Text("frozen: a tick >= %s ms late" % _ms(m.threshold_ms), style="bold")]
        spans = m.span_ranges(now)
        if not spans:
            rows.append(Text("  none", style="dim"))
        for start, end, span in spans[-6:]:
            ongoing = span.get("ongoing")
            ms = (end - start) * 1000 if ongoing else span.get("duration_ms")
            rows.append(Text("%5.2f s  FROZEN %s ms%s" % (start, _ms(ms), "…" if ongoing else ""),
                             style="bold"))
            where = span.get("blamed") or "not caught in time"
            rows.append(Text("  %s %s" % (where.replace("workloads/", ""),
                                          span.get("function", ""))))
            if span.get("code"):
                rows.append(Text("  " + span["code"], style="italic"))
            if span.get("blamed_after_ms") is not None:
                rows.append(Text("  named %s ms into the freeze" % _ms(span["blamed_after_ms"]),
                                 style="dim"))
        if len(spans) > 6:
            rows.append(Text("  … %d more (see the result)" % (len(spans) - 6), style="dim"))
        late = m.span_ranges(now, late=True)
        if late:
            rows.append(Text("late, no code on the loop: %d tick(s)" % len(late), style="bold"))
        for start, end, span in late[-4:]:
            ongoing = span.get("ongoing")
            ms = (end - start) * 1000 if ongoing else span.get("duration_ms")
            says = span.get("says") or "loop idle in %s" % (span.get("blamed") or "the loop")
            rows.append(Text("%5.2f s  late %s ms%s: %s" % (start, _ms(ms), "…" if ongoing else "",
                                                            says)))
        if len(late) > 4:
            rows.append(Text("  … %d more (see the result)" % (len(late) - 4), style="dim"))
        rows.append(Text(""))
        rows.append(Text("lag histogram, 1 ms buckets", style="bold"))
        rows.extend(self.histogram_rows(width))
        explanation = (state.result or {}).get("explanation") if self.explains else None
        if explanation:
            rows.append(Text(""))  # the one block that wraps, to the width
            rows += [Text(line) for line in textwrap.wrap(explanation, width)]
        if problem(state):
            rows += [Text(line, style="bold") for line in textwrap.wrap(problem(state), width)]
        return rows

    def lag_strip(self, cols: int, now: float) -> str:
        """Max lag per column on a log scale: ▁ ~0.1 ms ... █ >= 1 s."""
        m = self.model
        per_col = m.duration_s / max(1, cols)
        out = []
        for col in range(cols):
            a, b = col * per_col, (col + 1) * per_col
            if a > now:
                out.append(" ")
                continue
            lo, hi = m.bin_of(a), max(m.bin_of(a) + 1, m.bin_of(b))
            lag = max(m.bin_lag[lo:min(hi, BINS)] or [0.0])
            if lag <= 0:
                out.append(" ")
                continue
            level = (math.log10(max(lag, 0.1)) + 1) / 4  # 0.1 ms -> 0, 1000 ms -> 1
            out.append(STRIP[min(len(STRIP) - 1, max(0, int(level * len(STRIP))))])
        return "".join(out)

    def block_row(self, cols: int, now: float) -> str:
        m = self.model
        per_col = m.duration_s / max(1, cols)
        out = []
        for col in range(cols):
            a, b = col * per_col, (col + 1) * per_col
            busy = any(s < b and e > a for s, e in m.blocks)
            out.append("━" if busy else " ")
        return "".join(out)

    def histogram_rows(self, width: int) -> list[Text]:
        m = self.model
        buckets = max(10, width - 8)
        counts = [0] * buckets
        for ms, count in m.hist.items():
            counts[min(ms, buckets - 1)] += count
        top = max(counts) or 1
        strip = []
        for count in counts:
            if not count:
                strip.append(" ")
            else:
                level = math.log1p(count) / math.log1p(top)
                strip.append(STRIP[min(len(STRIP) - 1, int(level * (len(STRIP) - 1) + 0.5))])
        axis = "0 ms".ljust(buckets - 8) + ("%d+ ms" % (buckets - 1)).rjust(8)
        return [Text("".join(strip)), Text(axis, style="dim")]


VIEW = LoopFreezeView
