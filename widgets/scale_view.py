"""Live view of `scale`: units spawned of each kind, what each cost, and where the caps are.

While a kind spawns, its row fills from the child's throttled `spawn` events (count,
time so far, the process's resident and virtual size); when it ends the row shows the
measured figures. Below: the caps computed before starting, each with the limit that
set it, free memory against the reserve the run will not cross, and for threads the
address space reserved for stacks against what they really made resident.
"""

from __future__ import annotations

from rich.text import Text

from lab.core.state import RunState
from widgets.threads_view import LinesView, fmt_int

KINDS = ("threads", "processes", "tasks")
SHORT = {"threads": "thr", "processes": "proc", "tasks": "task"}


def size(n: float | None, short: bool = False) -> str:
    """Bytes for people: 16 KiB, 8.0 MiB (16K, 8.0M when short)."""
    if n is None:
        return "-"
    n = max(0.0, float(n))
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            value = n / scale
            text = ("%.1f" % value) if value < 100 else ("%.0f" % value)
            return text + (unit[0] if short else " " + unit)
    return "%d%s" % (n, "" if short else " B")


def gigabytes(n: float) -> str:
    """Decimal GB, the unit the article's claim uses."""
    return "%.1f GB" % (n / 1e9) if n < 1e11 else "%.0f GB" % (n / 1e9)


def micros(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 100:
        return fmt_int(value)
    return "%.1f" % value


class ScaleView(LinesView):
    EXPERIMENTS = ("scale",)

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.reset()

    def reset(self) -> None:
        super().reset()
        self.order: list[str] = []
        self.base: dict[str, dict] = {}  # kind -> phase start event (memory before)
        self.live: dict[str, dict] = {}  # kind -> newest spawn event
        self.done: dict[str, dict] = {}  # kind -> units event
        self.caps: dict[str, dict | None] = {}
        self.current: str | None = None

    def fold(self, events: list[dict], state: RunState) -> None:
        for event in events:
            kind, run = event.get("ev"), event.get("run") or event.get("kind")
            if kind == "limits":
                self.caps = event.get("caps", {})
            elif kind == "phase" and event.get("state") == "start":
                self.current = run
                self.base[run] = event
                if run not in self.order:
                    self.order.append(run)
            elif kind == "phase":
                self.current = None
            elif kind == "spawn":
                self.live[run] = event
            elif kind == "units":
                self.done[run] = event

    # One kind's figures: final if done, else the live estimate so far ------------------------
    def figures(self, kind: str) -> dict:
        if kind in self.done:
            return self.done[kind]
        live, base = self.live.get(kind), self.base.get(kind)
        if not live or not base or not live.get("spawned"):
            return {}
        n = float(live["spawned"])
        figures = {"count": live["spawned"], "spawn_us_per_unit": live["elapsed_s"] / n * 1e6}
        if kind != "processes":  # a child's memory is its own; our RSS says nothing of it
            figures["rss_bytes_per_unit"] = (live["rss_bytes"] - base.get("rss_bytes", 0)) / n
        return figures

    def mark(self, kind: str, state: RunState) -> str:
        if kind in self.done:
            return "✗" if self.done[kind].get("stopped_early") else "✓"
        if kind == self.current:
            return "▶" if state.running else "✗"
        return "·"

    def kinds(self, state: RunState) -> list[str]:
        chosen = state.params.get("kinds", "all")
        listed = self.order + [k for k in ("processes", "tasks", "threads") if k not in self.order]
        return listed if chosen == "all" else [chosen]

    def row(self, kind: str, state: RunState, target: int, narrow: bool) -> Text:
        fig = self.figures(kind)
        count = fig.get("count", 0)
        mark = self.mark(kind, state)
        if narrow:
            if not fig:
                return Text("%-4s %8s" % (SHORT[kind], "waiting" if mark == "·" else mark),
                            style="dim" if mark == "·" else "")
            text = "%-4s %7s%s %6s %6s" % (SHORT[kind], fmt_int(count), mark,
                                            micros(fig.get("spawn_us_per_unit")),
                                            size(fig.get("rss_bytes_per_unit"), short=True))
            return Text(text, style="dim" if mark == "·" else "")
        reserved = "-"
        if kind == "threads" and "stack_reserved_bytes" in fig:
            reserved = size(fig["stack_reserved_bytes"]) + " stack"
        elif kind == "processes" and "virtual_bytes_per_unit" in fig:
            reserved = size(fig["virtual_bytes_per_unit"]) + " mapped"
        text = "%s %-9s %15s %9s %10s %s" % (
            mark, kind, "%s/%s" % (fmt_int(count) if fig else "-", fmt_int(target)),
            micros(fig.get("spawn_us_per_unit")), size(fig.get("rss_bytes_per_unit")), reserved)
        return Text(text, style="dim" if mark == "·" else "")

    def memory_line(self, state: RunState, narrow: bool) -> Text | None:
        newest = None
        for kind in self.order:
            event = self.live.get(kind)
            if event and (newest is None or event["ts"] > newest["ts"]):
                newest = event
        if newest is None:
            return None
        text = "MemAvailable %s · never below %s" % (size(newest.get("mem_available_bytes")),
                                                      size(newest.get("reserve_bytes")))
        if narrow:
            text = "free %s (floor %s)" % (size(newest.get("mem_available_bytes"), True),
                                          size(newest.get("reserve_bytes"), True))
        return Text(text)

    def caps_lines(self, narrow: bool) -> list[Text]:
        out = []
        for kind in KINDS:
            cap = self.caps.get(kind)
            if not cap:
                continue
            if narrow:
                out.append(Text("cap %s %s (%s)" % (SHORT[kind], fmt_int(cap["max"]), cap["limit"])))
            else:
                value = size(cap["value"]) if cap["limit"] == "MemAvailable" else fmt_int(cap["value"])
                out.append(Text("  %-9s at most %s, set by %s = %s" % (
                    kind, fmt_int(cap["max"]), cap["limit"], value)))
        return out

    def stack_lines(self, state: RunState, narrow: bool) -> list[Text]:
        threads = self.done.get("threads")
        extrapolated = (state.result or {}).get("extrapolated") if isinstance(state.result, dict) else None
        if not threads:
            return []
        resident = max(0.0, threads.get("rss_bytes_per_unit", 0)) + \
            max(0.0, threads.get("kernel_stack_bytes_per_unit", 0))
        if narrow:
            out = [Text("thr stack %s virt / %s real" % (
                size(threads.get("stack_reserved_bytes"), True), size(resident, True)))]
            if extrapolated and not self.compact:
                out.append(Text("%s threads: %s reserved," % (
                    fmt_int(extrapolated["threads"]),
                    gigabytes(extrapolated["stack_reserved_bytes"])), style="bold"))
                out.append(Text("  ~%s really used" % gigabytes(extrapolated["resident_bytes"]),
                                style="bold"))
                out.append(Text("(the article: ~800 GB of stack", style="dim"))
                out.append(Text(" for 100 000: the reserved one)", style="dim"))
            return out
        out = [Text("thread stack: %s reserved, %s resident + %s kernel stack" % (
            size(threads.get("stack_reserved_bytes")), size(threads.get("rss_bytes_per_unit")),
            size(threads.get("kernel_stack_bytes_per_unit"))))]
        if extrapolated:
            out.append(Text("%s threads: %s of address space reserved, ~%s really used" % (
                fmt_int(extrapolated["threads"]), gigabytes(extrapolated["stack_reserved_bytes"]),
                gigabytes(extrapolated["resident_bytes"])), style="bold"))
            out.append(Text("(the article says ~800 GB of stack for 100 000 threads: "
                            "the reserved figure)", style="dim"))
        return out

    def lines(self, state: RunState, width: int, rows: int) -> list[Text]:
        target = int(state.params.get("count", 0))
        narrow = self.compact or width < 60
        if narrow:
            out = [Text("scale × %s each · %s" % (fmt_int(target), state.status), style="bold")]
            out.append(Text("%-4s %8s %6s %6s" % ("kind", "started", "µs/u", "RSS/u"), style="bold"))
        else:
            out = [Text("scale · %s of each kind · %s" % (fmt_int(target), state.status),
                        style="bold")]
            out.append(Text("  %-9s %15s %9s %10s %s" % ("kind", "started", "µs/unit",
                                                         "RSS/unit", "reserved"), style="bold"))
        out += [self.row(k, state, target, narrow) for k in self.kinds(state)]
        memory = self.memory_line(state, narrow) if state.running or not self.compact else None
        if memory is not None:
            out.append(memory)
        for kind, fig in self.done.items():
            if fig.get("stopped_early"):
                out.append(Text("✗ %s %s" % (kind, fig["stopped_early"]), style="bold"))
        if self.compact:
            out += self.stack_lines(state, True) + self.caps_lines(True)
            return out[:rows]
        stack = self.stack_lines(state, narrow)
        if stack:
            out.append(Text(""))
            out += stack
        caps = self.caps_lines(narrow)
        if caps:
            out.append(Text(""))
            out.append(Text("caps, set before starting:", style="bold"))
            out += caps
        return out


VIEW = ScaleView
