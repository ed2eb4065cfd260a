"""Live view of `ctx-switch`: each method's cost beside the switches it really made.

Rows: microseconds per message and per round trip, switches per message as counted
by the kernel, and the word BATCHING where that count is far below one (the one-way
pipe), so a fast figure that is not a switch is never mistaken for one. Beside each
ping-pong, perf's C figure with the same placement when it ran. Then the cost ladder
(nanoseconds per switch, a log-scale bar) with the server arithmetic worked out for
the run's own requests/s and switches/request, and the busiest threads' voluntary and
involuntary switch rates right now, from the lab's sampler.
"""

from __future__ import annotations

import math
import textwrap

from rich.text import Text

from lab.core.state import RunState
from widgets.threads_view import LinesView, fmt_int, fmt_rate

SHORT = {"oneway": "1way", "threads": "thr", "processes": "proc",
         "same-core": "same", "cross-core": "cross", "unpinned": "free"}
LADDER_SHORT = (("ping-pong ", ""), ("thread", "thr"), ("process", "proc"),
                ("task switch", "task"), ("generator resume", "generator"), (" core", ""))
BAR = "█"
LOG_LOW, LOG_HIGH = 1.0, 5.0  # bar scale: 10 ns .. 100 us, in log10 ns


def short_run(key: str) -> str:
    method, _, placement = key.partition("/")
    return "%s/%s" % (SHORT.get(method, method), SHORT.get(placement, placement))


def short_rung(name: str) -> str:
    for long, short in LADDER_SHORT:
        name = name.replace(long, short)
    return name


def num(value: float | None, digits: int = 2) -> str:
    if value is None:
        return "-"
    if value >= 1000:
        return fmt_int(value)
    if value >= 100:
        return "%.0f" % value
    return "%.*f" % (digits, value)


def log_bar(ns: float, width: int) -> str:
    if ns is None or ns <= 0 or width <= 0:
        return ""
    level = (math.log10(ns) - LOG_LOW) / (LOG_HIGH - LOG_LOW)
    return BAR * max(1, min(width, round(level * width)))


def wrapped(text: str, width: int, indent: str = "") -> list[str]:
    return textwrap.wrap(text, max(10, width), initial_indent=indent, subsequent_indent=indent)


WIDE_ROW = 61  # cells in a wide figure row (see figure_row)


class CtxSwitchView(LinesView):
    EXPERIMENTS = ("ctx-switch",)

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.reset()

    def reset(self) -> None:
        super().reset()
        self.figures: dict[str, dict] = {}
        self.perf: dict[str, dict] = {}
        self.perf_missing: str | None = None
        self.ladder: dict[str, float | None] = {}
        self.ladder_notes: dict[str, str] = {}
        self.current: str | None = None
        self.progress: dict[str, tuple[int, int]] = {}
        self.setup: dict = {}

    def fold(self, events: list[dict], state: RunState) -> None:
        for event in events:
            kind = event.get("ev")
            if kind == "setup":
                self.setup = event
            elif kind == "phase":
                self.current = event.get("run") if event.get("state") == "start" else None
            elif kind == "progress":
                self.progress[event.get("run", "")] = (event.get("done", 0), event.get("total", 0))
            elif kind == "figure":
                self.figures[event["run"]] = event
            elif kind == "perf":
                if event.get("available") is False:
                    self.perf_missing = event.get("reason", "unavailable")
                elif event.get("run"):
                    self.perf[event["run"]] = event
            elif kind == "rung":
                self.ladder[event["name"]] = event.get("ns_per_switch")
                if event.get("note"):
                    self.ladder_notes[event["name"]] = event["note"]

    # Pieces ------------------------------------------------------------------------------
    def status(self, state: RunState) -> str:
        cpus = len((state.hello or {}).get("affinity") or []) or "?"
        vm = self.setup.get("vm")
        where = "%s CPUs%s" % (cpus, " · VM" if vm else "")
        if self.current and state.running:
            done, total = self.progress.get(self.current, (0, 0))
            now = "▶ %s" % (short_run(self.current) if self.compact else self.current)
            if total:
                now += " %s/%s" % (fmt_rate(done), fmt_rate(total))
            return "%s · %s" % (now, where)
        return "%s · %s" % (state.status, where)

    def figure_row(self, key: str, fig: dict, narrow: bool) -> Text:
        batching = fig.get("reading") == "batching"
        per_msg = num(fig.get("switches_per_msg"), 3 if batching else 2)
        if narrow:
            row = Text("%-10s %6s %5s " % (short_run(key), num(fig.get("us_per_msg")), per_msg))
            row.append("BATCH" if batching else "", style="bold yellow")
            return row
        perf = self.perf.get(key, {})
        row = Text("%-20s %7s %7s %6s " % (key, num(fig.get("us_per_msg")),
                                          num(fig.get("us_per_roundtrip")), per_msg))
        row.append("%-9s" % ("BATCHING" if batching else "switching"),
                   style="bold yellow" if batching else "")
        row.append(" %7s" % num(perf.get("us_per_roundtrip")))
        return row

    def busiest(self, state: RunState, count: int) -> list:
        """The threads switching most right now (the sampler's last interval)."""
        busy = [t for t in state.live_threads() if t.voluntary_rate + t.involuntary_rate > 0]
        busy.sort(key=lambda t: -(t.voluntary_rate + t.involuntary_rate))
        return busy[:count]

    def thread_rates(self, state: RunState, rows: int, narrow: bool) -> list[Text]:
        form = "%-14s %5s v/s %5s i/s" if narrow else "%-15s %6s vol/s %6s invol/s"
        return [Text(form % (t.name[:15], fmt_rate(t.voluntary_rate), fmt_rate(t.involuntary_rate)))
                for t in self.busiest(state, rows)]

    def ladder_rows(self, state: RunState, width: int, narrow: bool) -> list[Text]:
        rate = state.params.get("requests_per_s", 0)
        per_request = state.params.get("switches_per_request", 0.0)
        rungs = sorted(self.ladder.items(), key=lambda kv: (kv[1] is None, kv[1] or 0.0))
        if narrow:
            out = [Text("ladder: ns/switch, CPU ms/s", style="bold"),
                   Text("at %s req/s × %g sw/req" % (fmt_int(rate), per_request), style="dim")]
        else:
            out = [Text(line, style="bold") for line in wrapped(
                "ladder: ns per switch · CPU ms/s at %s req/s × %g switches/req" % (
                    fmt_int(rate), per_request), width)]
        bar_w = max(4, width - 38 - 13)  # name 28, ns 8, spaces; "  12.3 ms/s" 13
        for name, ns in rungs:
            label = short_rung(name)[:17] if narrow else name[:28]
            if ns is None:
                out.append(Text("%-17s unavailable" % label if narrow else
                                "%-28s unavailable" % label, style="dim"))
                if not narrow and self.ladder_notes.get(name):  # why, wrapped under it
                    out += [Text(line, style="dim")
                            for line in wrapped(self.ladder_notes[name], width, "  ")]
                continue
            cost = num(rate * per_request * ns / 1e6, 1)
            if narrow:
                out.append(Text("%-17s %7s %6s" % (label, fmt_int(ns), cost)))
                continue
            row = Text("%-28s %8s " % (label, fmt_int(ns)))
            row.append(log_bar(ns, bar_w).ljust(bar_w))
            row.append(" %7s ms/s" % cost)
            out.append(row)
        return out

    def perf_rows(self) -> list[Text]:
        """Narrow panes: perf's C figures as their own rows, beside the lab's."""
        out = []
        for key, run in self.perf.items():
            mine = self.figures.get(key, {}).get("us_per_roundtrip")
            if run.get("us_per_roundtrip") is not None:
                out.append(Text("%-10s C %6s  lab %6s" % (short_run(key), num(run["us_per_roundtrip"]),
                                                          num(mine))))
        return out

    # The frame -----------------------------------------------------------------------------
    def lines(self, state: RunState, width: int, rows: int) -> list[Text]:
        narrow = self.compact or width < WIDE_ROW  # the wide table needs all its columns
        if self.compact:
            return self.compact_lines(state, width, rows)
        out = [Text(("" if narrow else "ctx-switch · ") + self.status(state), style="bold")]
        if narrow:
            out.append(Text("%-10s %6s %5s" % ("run", "µs/msg", "sw/msg"), style="bold"))
        else:
            out.append(Text("%-20s %7s %7s %6s %-9s %7s" % (
                "method/placement", "µs/msg", "µs/rt", "sw/msg", "reading", "C µs/rt"),
                style="bold"))
        out += [self.figure_row(key, fig, narrow) for key, fig in self.figures.items()]
        if self.setup.get("vm") and any(k.endswith("/cross-core") for k in self.figures):
            note = ("VM: crossing cores also wakes an idle virtual CPU" if narrow else
                    "In a VM a cross-core wake-up also has to wake an idle virtual CPU.")
            out += [Text(line, style="dim") for line in wrapped(note, width)]
        for placement, why in self.setup.get("skipped", {}).items():
            out += [Text(line, style="dim")
                    for line in wrapped("%s skipped: %s" % (placement, why), width)]
        if narrow and self.perf:
            out.append(Text(""))
            out.append(Text("perf bench (C), µs/round trip", style="bold"))
            out += self.perf_rows()
        if self.perf_missing:
            out += [Text(line, style="dim")
                    for line in wrapped("perf (C floor): %s" % self.perf_missing, width)]
        if self.ladder:
            out.append(Text(""))
            out += self.ladder_rows(state, width, narrow)
        rates = self.thread_rates(state, 4, narrow) if state.running else []
        if rates:
            out.append(Text(""))
            out.append(Text("switching now (per second)", style="bold"))
            out += rates
        elif not state.running:
            totals = self.thread_totals(state, 4, narrow)
            if totals:
                out.append(Text(""))
                out.append(Text("switches per thread, whole run", style="bold"))
                out += totals
        return out

    def thread_totals(self, state: RunState, rows: int, narrow: bool) -> list[Text]:
        """After the run: what each thread measured in all (the kernel's counts)."""
        ran = [t for t in state.threads.values() if (t.voluntary or 0) + (t.involuntary or 0) > 0]
        ran.sort(key=lambda t: -((t.voluntary or 0) + (t.involuntary or 0)))
        form = "%-12s %6s vol %6s inv" if narrow else "%-15s %9s voluntary %9s involuntary"
        return [Text(form % (t.name[:12 if narrow else 15], fmt_int(t.voluntary),
                             fmt_int(t.involuntary))) for t in ran[:rows]]

    def compact_lines(self, state: RunState, width: int, rows: int) -> list[Text]:
        out = [Text(self.status(state), style="bold")]
        busy = self.busiest(state, 1) if state.running else []
        room = rows - 2 - len(busy)
        if self.figures:
            out.append(Text("%-10s %6s %5s" % ("run", "µs/msg", "sw/msg"), style="bold"))
            shown = list(self.figures.items())
            if len(shown) > room:
                shown = shown[-room:]
            out += [self.figure_row(k, f, True) for k, f in shown]
        elif self.ladder and room > 0:
            out += [Text("%-20s %8s ns" % (short_rung(n)[:20], fmt_int(v) if v else "n/a"))
                    for n, v in list(self.ladder.items())[:room + 1]]
        out += self.thread_rates(state, len(busy), True) if busy else []
        return out[:rows]


VIEW = CtxSwitchView
