"""Live view of `epoll`: one thread, open fds, selector waits per second and ready sockets
per wait, requests per second for each loop, and uvloop / asyncio."""

from __future__ import annotations

from rich.text import Text

from widgets.live_view import FoldingView, problem

LOOPS = ("tiny", "asyncio", "asyncio_tuned", "uvloop")
SHORT = {"asyncio_tuned": "asyncio*"}  # * = glibc mmap threshold raised (see the lesson)
STRIP = "▁▂▃▄▅▆▇█"
HISTORY = 80


def _k(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 10_000:
        return "%.0fk" % (value / 1000)
    if value >= 1000:
        return "%.1fk" % (value / 1000)
    return "%.0f" % value


class EpollView(FoldingView):
    """The current loop's counters, a requests/s strip, and each finished loop's rate."""

    EXPERIMENTS = ("epoll",)

    DEFAULT_CSS = """
    EpollView {
        height: auto;
        min-height: 7;
    }
    """

    def reset(self) -> None:
        self.latest: dict = {}
        self.history: dict[str, list[float]] = {}
        self.finished: dict[str, dict] = {}

    def fold(self, event: dict) -> None:
        kind = event.get("ev")
        if kind == "epoll":
            self.latest = event
            if event.get("phase") == "running":
                series = self.history.setdefault(event["loop"], [])
                series.append(event.get("requests_per_s", 0.0))
                del series[:-HISTORY]
        elif kind == "phase" and event.get("state") == "end":
            self.finished[event["loop"]] = event

    def strip(self, values: list[float], width: int) -> str:
        values = values[-width:]
        top = max(values + [1.0])
        return "".join(STRIP[min(len(STRIP) - 1, int(v / top * (len(STRIP) - 1) + 0.5))]
                       if v > 0 else " " for v in values)

    def render_width(self, width: int) -> Text:
        state = self._state
        if state is None:
            return Text("waiting for the epoll run…", style="dim")
        live = self.latest
        loop = live.get("loop", "…")
        rows = [Text(("%s %s conns %s thread%s %s fds" % (
            SHORT.get(loop, loop), live.get("connections", 0), live.get("threads", "?"),
            "" if live.get("threads") == 1 else "s", live.get("fds", "?")))[:width],
            style="bold")]
        if live.get("phase") == "setup" and state.running:
            rows.append(Text(("opening connections… %s of %s" % (
                live.get("connections", 0), state.params.get("connections")))[:width]))
        else:
            rate = live.get("requests_per_s")
            if (not state.running or live.get("phase") != "running") and loop in self.finished:
                rate = self.finished[loop].get("requests_per_s")  # the measured window's figure
            label = "req/s %7s " % _k(rate)
            rows.append(Text(label + self.strip(self.history.get(loop, []), width - len(label))))
        if "waits_per_s" in live:
            rows.append(Text(("epoll waits/s %s  ready/wait %.1f" % (
                _k(live["waits_per_s"]), live.get("ready_per_wait", 0)))[:width]))
        elif live:
            rows.append(Text("epoll waits: inside libuv's C code"[:width], style="dim"))
        if live:
            blocked = live.get("blocked_share")
            rows.append(Text(("in epoll %s  on CPU %.0f%%" % (
                "-" if blocked is None else "%.0f%%" % (100 * blocked),
                min(100.0, 100 * live.get("cpu_share", 0.0))))[:width]))
        done = [name for name in LOOPS if name in self.finished]
        if done:
            line = ""
            for n in done:  # packed into as few lines as the width allows
                item = "%s %s" % (SHORT.get(n, n), _k(self.finished[n].get("requests_per_s")))
                if line and len(line) + 2 + len(item) > width:
                    rows.append(Text(line))
                    line = item
                else:
                    line = (line + "  " + item) if line else item
            rows.append(Text(line))
        result = state.result or {}
        if result.get("uvloop_over_asyncio_per_cpu_s"):
            text = "uvloop: %.1fx asyncio" % result["uvloop_over_asyncio_per_cpu_s"]
            if result.get("uvloop_over_asyncio_tuned_per_cpu_s"):
                text += ", %.1fx asyncio*" % result["uvloop_over_asyncio_tuned_per_cpu_s"]
            rows.append(Text(text + ("" if self.compact else " (per CPU-second)"), style="bold"))
        elif result.get("uvloop"):
            rows.append(Text(("uvloop: " + result["uvloop"])[:width], style="dim"))
        if not self.compact:
            rows.extend(self.table(width))
        for row in rows:
            row.truncate(width, overflow="ellipsis")
        if not self.compact and self.explains and result.get("explanation"):
            rows.append(Text(""))
            rows.append(Text(result["explanation"]))  # the one block that wraps
        if problem(state):
            rows.append(Text(problem(state)[:width], style="bold"))
        return Text("\n").join(rows)

    def table(self, width: int) -> list[Text]:
        if not self.finished:
            return []
        wide = width >= 62
        head = ("%-8s %9s %9s %8s %10s %7s %7s" if wide else "%-8s%7s%9s%9s") % (
            ("loop", "req/s", "req/CPU-s", "waits/s", "ready/wait", "faults", "threads") if wide
            else ("loop", "req/s", "/CPU-s", "faults"))
        rows = [Text(""), Text(head, style="bold")]
        for name in LOOPS:
            r = self.finished.get(name)
            if not r:
                continue
            ready = "-" if r.get("ready_per_wait") is None else "%.1f" % r["ready_per_wait"]
            faults = r.get("page_faults_per_request")
            faults = "-" if faults is None else "%.2f" % faults
            label = SHORT.get(name, name)
            if wide:
                line = "%-8s %9s %9s %8s %10s %7s %7s" % (
                    label, _k(r.get("requests_per_s")), _k(r.get("requests_per_cpu_s")),
                    _k(r.get("waits_per_s")), ready, faults, r.get("peak_threads"))
            else:
                line = "%-8s%7s%9s%9s" % (label, _k(r.get("requests_per_s")),
                                          _k(r.get("requests_per_cpu_s")), faults)
            rows.append(Text(line))
        if "asyncio_tuned" in self.finished:
            rows.append(Text("* asyncio, glibc mmap threshold 1 MiB", style="dim"))
        rows.append(Text("faults: page faults per request", style="dim"))
        return rows


VIEW = EpollView
