"""Live view for race: expected against actual for each variant, the lost updates as a
number, and a short strip of the share lost over the run (one style, no per-cell colour).

A finished variant gets no tick: next to a count of lost updates a ✓ would read as
"correct". Its lost cell says `none` or the number instead.
"""

from __future__ import annotations

from rich.text import Text

from lab.core import timeline
from lab.core.state import RunState
from widgets.run_strip import mode_row
from widgets.threads_view import LinesView, fmt_int, strip

HISTORY = 32


def _per_thread(variant: str, increments: int) -> int:
    """Increments per thread that variant does, as the workload decides (sleep0 is capped)."""
    try:
        from lab.core import catalog

        return int(catalog.get("race").module.increments_for(variant, increments))
    except Exception:
        return increments


def _variants(state: RunState) -> list[str]:
    chosen = state.params.get("variant", "all")
    if chosen != "all":
        return [chosen]
    try:
        from lab.core import catalog

        return [v for v in catalog.get("race").param("variant").choices if v != "all"]
    except Exception:
        return []


def _lost_share(event: dict) -> float | None:
    """Of a counter event: the increments surely lost, as a share of those expected."""
    expected = event.get("expected") or 0
    if expected <= 0:
        return None
    lost = event["lost"] if "lost" in event else expected - (event.get("actual") or 0)
    return max(0.0, lost / expected)


def _started(event: dict) -> str | None:
    """Of a phase event: the variant it starts."""
    return event.get("variant") if event.get("state") == "start" else None


class RaceView(LinesView):
    EXPERIMENTS = ("race",)

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.reset()

    def reset(self) -> None:
        super().reset()
        self.counts: dict[str, tuple[int, int, int]] = {}  # variant -> (expected, actual, lost)
        self.increments: dict[str, int] = {}  # variant -> per thread, from its start event
        self.ended: set[str] = set()
        self.current: str | None = None
        self.history: dict[str, list[float]] = {}
        self.order: list[str] = []

    def fold(self, events: list[dict], state: RunState) -> None:
        for event in events:
            kind, variant = event.get("ev"), event.get("variant")
            if variant is None:
                continue
            if variant not in self.order:
                self.order.append(variant)
            if kind == "phase" and event.get("state") == "start":
                self.current = variant
                self.counts[variant] = (0, 0, 0)
                if event.get("increments") is not None:
                    self.increments[variant] = int(event["increments"])
            elif kind == "phase" and event.get("state") == "end":
                self.ended.add(variant)
                expected, actual = int(event.get("expected", 0)), int(event.get("actual", 0))
                self.counts[variant] = (expected, actual, max(0, expected - actual))
                if self.current == variant:
                    self.current = None
            elif kind == "counter" and variant not in self.ended:  # late stale values: no
                expected, actual = int(event.get("expected", 0)), int(event.get("actual", 0))
                # Mid-run the workload sends what is surely lost (finished increments not
                # in the counter); expected - actual also counts increments in flight.
                lost = int(event["lost"]) if "lost" in event else max(0, expected - actual)
                self.counts[variant] = (expected, actual, lost)
                series = self.history.setdefault(variant, [])
                series.append(lost / expected if expected else 0.0)
                del series[:-HISTORY]

    def marker(self, variant: str, state: RunState) -> str:
        if variant in self.ended:
            return " "
        if variant == self.current:
            return "▶" if state.running else "✗"
        return "·"

    def lines(self, state: RunState, width: int, rows: int) -> list[Text]:
        variants = _variants(state) or self.order
        biggest = max([c for pair in self.counts.values() for c in pair] + [
            int(state.params.get("threads", 0)) * int(state.params.get("increments", 0))])
        name_w = max([len(v) for v in variants] + [4])
        label = "variant" if name_w >= 7 else "name"
        num = fmt_int
        if 2 + name_w + 3 * (max(8, len(fmt_int(biggest))) + 1) > width:  # 64 000 000 in a 38-column pane
            num = lambda n: "%d" % n  # noqa: E731
        heads = ("expected", "actual")
        num_w = max(len("expected"), len(num(biggest)))
        if 2 + name_w + 3 * (num_w + 1) > width:  # 34 columns (80x24): shorter headings
            heads = ("want", "got")
            num_w = max(len("lost"), len(num(biggest)))
        fixed = 2 + name_w + 1 + num_w + 1 + num_w + 1
        worded = width - fixed >= 5 + num_w  # room for "lost 12 345" rather than a column
        lost_w = (5 + num_w) if worded else num_w
        strip_w = 0 if self.low_bandwidth else min(16, width - fixed - lost_w - 1)
        head = Text("  %s %s %s %s" % (label.ljust(name_w), heads[0].rjust(num_w),
                                       heads[1].rjust(num_w),
                                       "lost".ljust(lost_w) if worded else "lost".rjust(lost_w)),
                    style="bold")
        if strip_w >= 6:
            head.append(" share lost", style="bold")
        out = [head]
        for variant in variants:
            mark = self.marker(variant, state)
            row = Text("%s %s " % (mark, variant.ljust(name_w)),
                       style="dim" if mark == "·" else "")
            if variant not in self.counts:
                row.append("waiting")
                out.append(row)
                continue
            expected, actual, lost = self.counts[variant]
            row.append("%s %s " % (num(expected).rjust(num_w), num(actual).rjust(num_w)))
            if variant in self.ended and not lost:
                shown = "none lost".ljust(lost_w) if worded else "none".rjust(lost_w)
            else:
                shown = ("lost " + num(lost)).ljust(lost_w) if worded else num(lost).rjust(lost_w)
            row.append(shown, style="bold red" if lost else "")
            if strip_w >= 6:
                row.append(" " + strip(self.history.get(variant, []), strip_w))
            out.append(row)
        if rows - len(out) >= 2:
            out += self.run_lines(state, width)
        if rows - len(out) >= 1 and state.params:
            out += self.footer(state, variants, width)[:rows - len(out)]
        return out

    def run_lines(self, state: RunState, width: int) -> list[Text]:
        """The share of expected increments lost, across the whole run (every variant in
        turn, from the run's timeline), and where each variant began:
            lost ▁▁▁▃▆█▁▁▁▁ 0-12% in 1.9s
                 |naive|call|sleep0…"""
        points = timeline.series(state, "counter", _lost_share)
        if len(points) < 2:
            return []
        span, until = timeline.run_span(state)
        top = max(share for _, share in points)
        scale = (" 0-%.0f%%" % (top * 100) if top >= 0.005 else " none") + " in %.1fs" % span
        cols = width - 5 - len(scale)
        if cols < 8:
            return []
        values = timeline.resample(points, span, cols, until=until)
        starts = timeline.series(state, "phase", _started)
        return [Text("lost " + strip(values, cols, top=top or 1.0) + scale),
                Text("     " + mode_row(starts, span, cols), style="dim")]

    def footer(self, state: RunState, variants: list[str], width: int) -> list[Text]:
        """`4 threads × 200 000 each · sleep0 × 20 000 · GIL on`, wrapped at " · "."""
        asked = int(state.params.get("increments") or 0)
        counts = {v: self.increments.get(v, _per_thread(v, asked)) for v in variants}
        usual = counts.get(variants[0], asked) if len(variants) == 1 else asked
        parts = ["%s threads × %s each" % (state.params.get("threads", "?"), fmt_int(usual))]
        parts += ["%s × %s" % (v, fmt_int(n)) for v, n in counts.items() if n != usual]
        gil = (state.hello or {}).get("python", {}).get("gil_enabled")
        if gil is not None:
            parts.append("GIL on" if gil else "GIL off")
        lines = [parts[0]]
        for part in parts[1:]:
            if len(lines[-1]) + 3 + len(part) <= width:
                lines[-1] += " · " + part
            else:
                lines.append(part)
        return [Text(line, style="dim") for line in lines]


VIEW = RaceView
