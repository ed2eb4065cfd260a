"""Live view for race: expected against actual for each variant, the lost updates as a
number, and a short strip of the share lost over the run (one style, no per-cell colour).
"""

from __future__ import annotations

from rich.text import Text

from lab.core.state import RunState
from widgets.threads_view import LinesView, fmt_int, strip

HISTORY = 32


def _variants(state: RunState) -> list[str]:
    chosen = state.params.get("variant", "all")
    if chosen != "all":
        return [chosen]
    try:
        from lab.core import catalog

        return [v for v in catalog.get("race").param("variant").choices if v != "all"]
    except Exception:
        return []


class RaceView(LinesView):
    EXPERIMENTS = ("race",)

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.reset()

    def reset(self) -> None:
        super().reset()
        self.counts: dict[str, tuple[int, int]] = {}  # variant -> (expected, actual)
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
                self.counts[variant] = (0, 0)
            elif kind == "phase" and event.get("state") == "end":
                self.ended.add(variant)
                self.counts[variant] = (int(event.get("expected", 0)), int(event.get("actual", 0)))
                if self.current == variant:
                    self.current = None
            elif kind == "counter" and variant not in self.ended:  # late stale values: no
                expected, actual = int(event.get("expected", 0)), int(event.get("actual", 0))
                self.counts[variant] = (expected, actual)
                lost = max(0, expected - actual)
                series = self.history.setdefault(variant, [])
                series.append(lost / expected if expected else 0.0)
                del series[:-HISTORY]

    def marker(self, variant: str, state: RunState) -> str:
        if variant in self.ended:
            return "✓"
        if variant == self.current:
            return "▶" if state.running else "✗"
        return "·"

    def lines(self, state: RunState, width: int, rows: int) -> list[Text]:
        variants = _variants(state) or self.order
        biggest = max([c for pair in self.counts.values() for c in pair] + [
            int(state.params.get("threads", 0)) * int(state.params.get("increments", 0))])
        num_w = max(7, len(fmt_int(biggest)))
        name_w = max([len(v) for v in variants] + [6])
        fixed = 2 + name_w + 1 + num_w + 1 + num_w + 1
        worded = width - fixed >= 5 + num_w  # room for "lost 12 345" rather than a column
        lost_w = (5 + num_w) if worded else num_w
        strip_w = 0 if self.low_bandwidth else min(16, width - fixed - lost_w - 1)
        head = Text("  %s %s %s %s" % ("variant".ljust(name_w), "expected".rjust(num_w),
                                       "actual".rjust(num_w),
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
            expected, actual = self.counts[variant]
            lost = max(0, expected - actual)
            row.append("%s %s " % (fmt_int(expected).rjust(num_w), fmt_int(actual).rjust(num_w)))
            shown = ("lost " + fmt_int(lost)).ljust(lost_w) if worded else fmt_int(lost).rjust(lost_w)
            row.append(shown, style="bold red" if lost else "")
            if strip_w >= 6:
                row.append(" " + strip(self.history.get(variant, []), strip_w))
            out.append(row)
        if rows - len(out) >= 1 and state.params:
            gil = (state.hello or {}).get("python", {}).get("gil_enabled")
            out.append(Text("%s threads × %s each%s" % (
                state.params.get("threads", "?"), fmt_int(state.params.get("increments")),
                "" if gil is None else (" · GIL on" if gil else " · GIL off")), style="dim"))
        return out


VIEW = RaceView
