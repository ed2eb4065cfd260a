"""Live view of `io-bound`: requests in flight, threads, CPU while waiting, wall vs ideal."""

from __future__ import annotations

from rich.text import Text

from lab.core.state import RunState
from widgets.live_view import FoldingView, problem

MODES = ("sequential", "threads", "asyncio")
STRIP = "▁▂▃▄▅▆▇█"
HISTORY = 120  # in-flight samples kept for the strip


def bar(value: float, total: float, width: int) -> str:
    """A plain text bar: `#` filled, `.` empty (reads without colour)."""
    if total <= 0 or width <= 0:
        return ""
    filled = max(0, min(width, int(round(width * value / total))))
    return "#" * filled + "." * (width - filled)


class IoBoundView(FoldingView):
    """Requests in flight per mode, the child's threads and CPU, and the wall times."""

    EXPERIMENTS = ("io-bound",)

    DEFAULT_CSS = """
    IoBoundView {
        height: auto;
        min-height: 8;
    }
    """

    def reset(self) -> None:
        self.latest: dict = {}
        self.cpu_share = 0.0
        self.history: list[int] = []
        self.phases: dict[str, dict] = {}
        self.server: dict = {}
        self._prev: tuple[float, float] | None = None

    def fold(self, event: dict) -> None:
        kind = event.get("ev")
        if kind == "io":
            if self._prev is not None and event["ts"] > self._prev[0]:
                self.cpu_share = max(0.0, (event["cpu_s"] - self._prev[1])
                                     / (event["ts"] - self._prev[0]))
            self._prev = (event["ts"], event["cpu_s"])
            self.latest = event
            self.history.append(event["in_flight"])
            del self.history[:-HISTORY]
        elif kind == "phase":
            self.phases.setdefault(event["mode"], {}).update(event)
        elif kind == "server":
            self.server = event

    def render_width(self, width: int) -> Text:
        state = self._state
        if state is None:
            return Text("waiting for the io-bound run…", style="dim")
        params = state.params
        requests = params.get("requests", 0)
        rows = [Text("%d req x %g s  127.0.0.1:%s" % (
            requests, params.get("delay", 0), self.server.get("port", "…")), style="bold")]
        live = self.latest
        mode = live.get("mode", "")
        running = state.running and mode and self.phases.get(mode, {}).get("state") == "start"
        if running:
            rows.append(Text("%s: %d in flight, %d/%d done" % (
                mode, live.get("in_flight", 0), live.get("done", 0), requests)))
            rows.append(Text("[%s]" % bar(live.get("in_flight", 0), requests, width - 2)))
        else:
            rows.append(Text("finished" if state.result else "in flight: -", style="dim"))
            rows.append(Text(""))
        rows.append(Text("threads %d  CPU %.0f%%  rss %.1f MB" % (
            live.get("threads", 0), 100 * self.cpu_share, live.get("rss_kb", 0) / 1024)))
        rows.extend(self.mode_rows(state, width))
        if not self.compact:
            rows.append(Text(""))
            rows.append(Text("requests in flight over time", style="bold"))
            rows.append(Text(self.strip(requests, width)))
            memory = (state.result or {}).get("memory_per_waiter_kb") or {}
            if memory:
                rows.append(Text("memory per waiter: " + "  ".join(
                    "%s %.0f kB" % (m, kb) for m, kb in memory.items())))
        for row in rows:
            row.truncate(width, overflow="ellipsis")
        explanation = (state.result or {}).get("explanation")
        if explanation and not self.compact and self.explains:
            rows.append(Text(""))
            rows.append(Text(explanation))  # the one block that wraps
        if problem(state):
            rows.append(Text(problem(state)[:width], style="bold"))
        return Text("\n").join(rows)

    def mode_rows(self, state: RunState, width: int) -> list[Text]:
        """Wall time against the ideal, one line per mode, with a bar on the same scale."""
        results = (state.result or {}).get("modes") or {}
        done = {m: results.get(m) or self.phases.get(m) for m in MODES}
        longest = max([d.get("wall_s", 0) for d in done.values() if d and "wall_s" in d]
                      + [0.001])
        rows = []
        for mode in MODES:
            info = done.get(mode)
            if not info:
                continue
            if "wall_s" not in info:
                rows.append(Text("%-10s running…" % mode))
                continue
            text = "%-10s %5.2fs ideal %.2f" % (mode, info["wall_s"], info.get("ideal_s", 0))
            room = width - len(text) - 1
            if room >= 4:
                text += " " + bar(info["wall_s"], longest, room).replace(".", " ")
            rows.append(Text(text[:width]))
        return rows

    def strip(self, requests: int, width: int) -> str:
        values = self.history[-width:]
        top = max(requests, 1)
        return "".join(" " if v <= 0 else STRIP[min(len(STRIP) - 1, int(v / top * (len(STRIP) - 1)
                                                                         + 0.5))]
                       for v in values)


VIEW = IoBoundView
