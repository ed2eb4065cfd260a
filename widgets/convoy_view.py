"""Live view of `convoy`: round-trip latency alone, beside a CPU thread, beside a CPU process,
on one log-scale axis with the switch interval marked."""

from __future__ import annotations

import math

from rich.text import Text

from widgets.live_view import FoldingView, problem

PHASES = (("alone", "alone"), ("cpu_thread", "+cpu thread"), ("cpu_process", "+cpu proc"))
LABEL_W = 12
AXIS_MIN_MS, AXIS_MAX_MS = 0.05, 100.0


def _fmt(ms: float | None) -> str:
    if ms is None:
        return "-"
    return "%.2f" % ms if ms < 10 else "%.1f" % ms if ms < 100 else "%.0f" % ms


class ConvoyView(FoldingView):
    """p50-p99 ranges per phase on a log axis: the convoy shows as a jump to the marker."""

    EXPERIMENTS = ("convoy",)

    DEFAULT_CSS = """
    ConvoyView {
        height: auto;
        min-height: 7;
    }
    """

    def reset(self) -> None:
        self.stats: dict[str, dict] = {}
        self.current = ""

    def fold(self, event: dict) -> None:
        kind = event.get("ev")
        if kind == "latency":
            self.stats[event["phase"]] = event
        elif kind == "phase":
            self.current = event["phase"] if event["state"] == "start" else ""
            if event["state"] == "end":
                self.stats[event["phase"]] = {**self.stats.get(event["phase"], {}), **event}

    def column(self, ms: float, width: int) -> int:
        span = math.log10(AXIS_MAX_MS) - math.log10(AXIS_MIN_MS)
        x = (math.log10(max(min(ms, AXIS_MAX_MS), AXIS_MIN_MS)) - math.log10(AXIS_MIN_MS)) / span
        return min(width - 1, int(x * (width - 1) + 0.5))

    def range_row(self, stats: dict, width: int) -> str:
        """`O` at the median, `=` out to p99, on the shared log axis."""
        cells = [" "] * width
        if stats.get("p50") is None:
            return "".join(cells)
        lo, hi = self.column(stats["p50"], width), self.column(stats.get("p99", stats["p50"]), width)
        for x in range(lo, hi + 1):
            cells[x] = "="
        cells[lo] = "O"
        return "".join(cells)

    def render_width(self, width: int) -> Text:
        state = self._state
        if state is None:
            return Text("waiting for the convoy run…", style="dim")
        params = state.params
        interval = float(params.get("switch_interval_ms", 5.0))
        rows = [Text(("peer %g ms  switch interval %g ms" % (
            params.get("peer_ms", 0.2), interval))[:width], style="bold")]
        axis_w = width - LABEL_W
        for phase, label in PHASES:
            stats = self.stats.get(phase)
            if phase == "cpu_process" and not params.get("compare_process", True):
                continue
            if stats is None:
                rows.append(Text(("%-*s%s" % (LABEL_W, label, "waiting" if state.running
                                              else "-"))[:width], style="dim"))
                continue
            running = "…" if phase == self.current else ""
            rows.append(Text(("%-*sp50 %s  p99 %s ms%s" % (
                LABEL_W, label, _fmt(stats.get("p50")), _fmt(stats.get("p99")), running))[:width]))
            if not self.compact:
                rows.append(Text(" " * LABEL_W + self.range_row(stats, axis_w)))
        if self.compact:
            for phase, label in PHASES[:2]:
                stats = self.stats.get(phase)
                if stats:
                    rows.append(Text(("%-*s" % (LABEL_W, label.strip("+")[:LABEL_W - 1]))
                                     + self.range_row(stats, axis_w)))
        rows.append(self.axis_row(axis_w, interval))
        rows.append(Text(" " * LABEL_W + self.scale_row(axis_w), style="dim"))
        result = state.result or {}
        if result.get("slowdown_p50") is not None:
            rows.append(Text(("CPU thread: %.1fx slower at p50" % result["slowdown_p50"])[:width],
                             style="bold"))
        if not self.compact and self.explains and result.get("explanation"):
            rows.append(Text(""))
            rows.append(Text(result["explanation"]))
        if problem(state):
            rows.append(Text(problem(state)[:width], style="bold"))
        return Text("\n").join(rows)

    def axis_row(self, width: int, interval: float) -> Text:
        cells = ["-"] * width
        x = self.column(interval, width)
        cells[x] = "^"
        label = " switch %g ms" % interval
        row = "".join(cells)
        if x + len(label) < width:
            row = row[:x + 1] + label + row[x + 1 + len(label):]
        elif x - len(label) >= 0:
            row = row[:x - len(label)] + label[1:] + " " + row[x:]
        return Text(" " * LABEL_W + row[:width])

    def scale_row(self, width: int) -> str:
        """Tick labels on the log axis, each only where it does not touch the previous."""
        cells = [" "] * width
        free = 0
        for ms, text in ((0.1, "0.1"), (1.0, "1"), (10.0, "10"), (100.0, "100"), (0, "ms")):
            x = width - len(text) if not ms else min(self.column(ms, width), width - len(text))
            if x < free:
                continue
            cells[x:x + len(text)] = list(text)
            free = x + len(text) + 1
        return "".join(cells)[:width]


VIEW = ConvoyView
