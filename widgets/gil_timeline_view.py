"""The GIL timeline: one row per thread over a time window, what each thread did.

Drawn from RunState only (`state.gil_segments`, the hello, the result), so a RunState
rebuilt from a recorded log draws the same picture. Each cell shows what took most of
its time: `█` running bytecode, `░` runnable but waiting for a CPU, `·` waiting for the
GIL (or asleep otherwise), blank where nothing was recorded (an I/O thread waiting for
its answer, a thread not started yet). Glyphs carry the meaning; colour only repeats it.

Live, the window is the newest ~100 ms; on a finished run, ~100 ms in the middle of what
was recorded. `window_ns` (0: everything kept) and `window_end_ns` (0: the default
place) are reactives, so a replay or a scrub can move the window.
"""

from __future__ import annotations

from itertools import islice

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from lab.core import gil_timeline as gt
from lab.core.state import RunState
from widgets.threads_view import LinesView

GLYPHS = {"run": "█", "cpu": "░", "gil": "·", None: " "}
STYLES = {"run": "", "cpu": "yellow", "gil": "", None: ""}
LIVE_WINDOW_NS = 100_000_000
NAME_W = 8
FOOTER_ROWS = 4  # legend, figures, switch interval, the build's note
SLACK_NS = 1_000_000_000  # live: segments may arrive this late and still be drawn


def fmt_ms(value) -> str:
    if value is None:
        return "-"
    return "%.2f" % value if value < 10 else "%.1f" % value if value < 100 else "%.0f" % value


def fmt_span(ns: int) -> str:
    ms = ns / 1e6
    return "%s ms" % fmt_ms(ms) if ms < 1000 else "%.2f s" % (ms / 1000)


def gil_enabled(state: RunState) -> bool | None:
    python = (state.hello or {}).get("python") if isinstance(state.hello, dict) else None
    value = python.get("gil_enabled") if isinstance(python, dict) else None
    return value if isinstance(value, bool) else None


class GilTimelineView(LinesView):
    """Which thread ran bytecode, and which waited for the GIL or for a CPU, moment by
    moment."""

    DEFAULT_CSS = """
    GilTimelineView {
        height: auto;
        border: round $foreground 40%;
        border-title-style: bold;
        padding: 0 1;
        margin-top: 1;
    }
    """
    MAX_ROWS = 14

    window_ns: reactive[int] = reactive(LIVE_WINDOW_NS)
    window_end_ns: reactive[int] = reactive(0)

    def __init__(self, *, dial_keys: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.dial_keys = dial_keys  # the screen has `[` `]` for the switch interval
        self.border_title = "GIL timeline"

    def watch_window_ns(self) -> None:
        self._moved()

    def watch_window_end_ns(self) -> None:
        self._moved()

    def _moved(self) -> None:
        if self._state is not None and self.is_mounted:
            self.repaint(force=True)

    def room(self) -> int:
        """Below the experiment's own view in a scrolling column: it may take as many rows
        as that column shows at once (scrolled to, it is seen whole)."""
        column = self.parent
        if isinstance(column, Widget) and column.size.height:
            frame = self.outer_size.height - self.size.height
            return max(1, column.scrollable_content_region.height - frame)
        return self.MAX_ROWS

    def rows_budget(self) -> int:
        return max(1, min(self.MAX_ROWS, self.room()))

    def idle_lines(self) -> list[Text]:
        return [Text("run to see the GIL change hands", style="dim")]

    # The window ------------------------------------------------------------------------
    def segments(self, state: RunState, live: bool) -> list[tuple]:
        store = state.gil_segments
        if not live or not store or self.window_ns <= 0:
            return list(store)
        newest = max(s[2] for s in islice(reversed(store), 200))
        keep_after = newest - max(self.window_ns, LIVE_WINDOW_NS) - SLACK_NS
        recent = []
        for segment in reversed(store):  # batches arrive in time order, roughly
            if segment[2] < keep_after:
                break
            recent.append(segment)
        return recent

    def window(self, segments: list[tuple], live: bool) -> tuple[int, int]:
        first, last = gt.span(segments)
        width = self.window_ns if self.window_ns > 0 else max(1, last - first)
        if self.window_end_ns:
            end = self.window_end_ns
        elif live:
            end = reported_until(segments, last)
        else:  # the middle of what was kept: where the threads contend, not their ends
            starts = sorted(s[1] for s in segments)
            end = min(last, starts[len(starts) // 2] + width // 2)
            end = max(end, min(last, first + width))
        return end - width, end

    # Drawing ---------------------------------------------------------------------------
    def lines(self, state: RunState, width: int, rows: int) -> list[Text]:
        result = state.result if isinstance(state.result, dict) else {}
        summary = result.get("gil_timeline") if isinstance(result.get("gil_timeline"), dict) \
            else None
        if state.params.get("stamps") is False or (summary and summary.get("stamps") is False):
            return [Text("off: the run left no stamps (stamps=false)", style="dim")]
        live = state.running and not self.window_end_ns
        segments = self.segments(state, live)
        if not segments:
            return [Text("no segments yet" if state.running
                         else "no segments: only threads that take turns leave them",
                         style="dim")]
        start, end = self.window(segments, live)
        inside = gt.clip(segments, start, end)
        out = [self.header(state, segments, start, end, width, live)]
        out += self.rows(state, inside, start, end, width, rows - 1 - FOOTER_ROWS)
        out.append(legend(width, gil_enabled(state) is not False))
        out += self.figures(state, summary, inside, start, end, width)
        for line in out:  # figures wider than a narrow column are cut, never spilled
            line.truncate(width, overflow="ellipsis")
        return out

    def header(self, state, segments, start, end, width, live) -> Text:
        if live:
            text = "last %s" % fmt_span(end - start)
        else:
            first, last = gt.span(segments)
            text = "%s of %s" % (fmt_span(end - start), fmt_span(last - first))
            text += " · at %s" % fmt_span(max(0, start))
        cells = max(1, width - NAME_W - 1)
        more = " · cell %s" % fmt_span((end - start) // cells)
        if len(text) + len(more) <= width:
            text += more
        return Text(text, style="bold")

    def rows(self, state, inside, start, end, width, room) -> list[Text]:
        threads = gt.by_thread(inside)
        order = [tid for tid in state.threads if tid in threads]
        order += sorted(tid for tid in threads if tid not in state.threads)
        room = max(1, room)
        shown = order if len(order) <= room else order[:room - 1]
        cells = max(1, width - NAME_W - 1)
        out = []
        for tid in shown:
            view = state.threads.get(tid)
            name = view.name if view is not None else str(tid)
            line = Text(name[:NAME_W].ljust(NAME_W) + " ")
            kinds = gt.cell_kinds(threads[tid], start, end, cells)
            run_kind, run_len = kinds[0] if kinds else None, 0
            for kind in kinds + ["end"]:  # one span per run of a glyph: fewer escapes
                if kind == run_kind:
                    run_len += 1
                    continue
                line.append(GLYPHS[run_kind] * run_len, STYLES[run_kind])
                run_kind, run_len = kind, 1
            out.append(line)
        if len(shown) < len(order):
            out.append(Text("+%d more threads" % (len(order) - len(shown)), style="dim"))
        return out

    def figures(self, state, summary, inside, start, end, width) -> list[Text]:
        """Hand-offs and holds (the run's own summary once it ended, else this window's),
        beside the switch interval; what the build means for the picture."""
        if summary and summary.get("hold_ms"):
            rate, holds, where = summary.get("handoffs_per_s"), summary["hold_ms"], "run"
        else:
            figures = gt.window_figures(inside, start, end)
            rate, holds, where = figures["handoffs_per_s"], figures["hold_ms"], "window"
        interval = (summary or {}).get("switch_interval_ms", state.params.get(
            "switch_interval_ms"))
        handed = "hand-offs %s/s" % ("-" if rate is None else "%d" % round(rate))
        held = "hold p50 %s p95 %s ms" % (fmt_ms(holds.get("p50")), fmt_ms(holds.get("p95")))
        if len(handed) + 3 + len(held) <= width:
            out = [Text(handed + " · " + held)]
        else:
            out = [Text(handed), Text(held)]
        line = "switch interval %s ms" % ("-" if interval is None else "%g" % interval)
        if self.dial_keys and len(line) + 8 <= width:
            line += " ([ ])"
        if len(line) + len(" · in this %s" % where) <= width:
            line += " · in this %s" % where
        out.append(Text(line))
        overlap = gt.overlap_share(inside)
        gil = gil_enabled(state)
        if gil is False:
            note = "no GIL (free-threaded): rows run at the same time"
            if overlap is not None:
                note += ", %d%% of it together" % round(100 * overlap)
            if len(note) > width:
                note = "no GIL: rows run at once" + (
                    "" if overlap is None else " (%d%%)" % round(100 * overlap))
            out.append(Text(note, style="bold"))
        elif gil and overlap is not None and overlap < 0.1:
            out.append(Text("GIL: one row runs at a time", style="bold"))
        waits = (summary or {}).get("io_gil_wait_ms")
        if isinstance(waits, dict) and waits.get("p50") is not None:
            line = "I/O thread, each answer to running: p50 %s p95 %s ms" % (
                fmt_ms(waits["p50"]), fmt_ms(waits.get("p95")))
            if len(line) > width:
                line = "I/O wait p50 %s p95 %s ms" % (fmt_ms(waits["p50"]),
                                                    fmt_ms(waits.get("p95")))
            out.append(Text(line))
        return out


def reported_until(segments: list[tuple], last: int) -> int:
    """Live, the time up to which every thread still going has sent its segments (each
    sends its own every ~0.1 s): past it a row would look idle only because its news is
    still on the way."""
    newest: dict[int, int] = {}
    for tid, _start, end, _kind in segments:
        if end > newest.get(tid, -1):
            newest[tid] = end
    going = [end for end in newest.values() if end >= last - SLACK_NS // 2]
    return min(going) if going else last


def legend(width: int, gil: bool = True) -> Text:
    """What each glyph means. Without a GIL a thread that ran no bytecode and queued for
    no CPU was asleep (a lock, the collector), so `·` says that."""
    asleep = "waits GIL" if gil else "asleep"
    words = (("run", "bytecode"), ("cpu", "waits CPU"), ("gil", asleep))
    if sum(len(w) + 3 for _k, w in words) > width:
        words = (("run", "run"), ("cpu", "CPU"), ("gil", "GIL" if gil else "asleep"))
    text = Text()
    for kind, word in words:
        if text.plain:
            text.append(" ")
        text.append(GLYPHS[kind], STYLES[kind])
        text.append(" " + word, "dim")
    return text


def mounted_on(experiment: str) -> bool:
    """The experiments whose threads leave the stamps this view draws."""
    return experiment in ("gil-cpu", "convoy")


DIAL_MS = (0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0)


def dial(current: float, step: int, low: float, high: float) -> float:
    """The next switch interval on the dial, `step` notches up or down, within the
    parameter's range."""
    notches = [v for v in DIAL_MS if low <= v <= high] or [current]
    if step > 0:
        bigger = [v for v in notches if v > current + 1e-9]
        return bigger[0] if bigger else notches[-1]
    smaller = [v for v in notches if v < current - 1e-9]
    return smaller[-1] if smaller else notches[0]
