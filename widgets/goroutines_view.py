"""Live view of `goroutines`: Ps with their run queues, Ms with their state and CPU,
steals and hand-offs per second; in spawn mode, the cost of one unit of each kind.

Compact (a dashboard pane, about 38x9), from a real run:

    python P2 M11 G done 786/1 000
    P0  sys  --   ██···········  39
    P1  run  M9   ███··········  61
    glob          ██··········· 108
    M run 1 sys 5 idle 5
    cpu 95% over 11 threads (GIL)
    steal 0/s hand-off 51/s

P0 is in a system call with no M (its M is blocked in the kernel), P1 runs on M9; five
Ms sit in syscalls, more Ms than Ps. With more Ps than rows, one glyph per P.
Everything is said in words and glyphs (`█` queued, `·` free); colour only repeats it.
"""

from __future__ import annotations

import textwrap

from rich.text import Text

from lab.core import timeline
from lab.core.state import RunState
from widgets.threads_view import LinesView, bar, fmt_int, fmt_rate, pct, strip

LOCAL_RUNQ = 256
RATE_WINDOW_S = 1.0  # rates are averaged over about this long
HISTORY = 48
P_WORD = {"running": "run", "syscall": "sys", "idle": "idle", "gcstop": "gc", "dead": "dead"}
M_ORDER = ("running", "syscall", "spinning", "idle", "scheduling", "other", "exited")
M_WORD = {"running": "run", "syscall": "sys", "spinning": "spin", "idle": "idle",
          "scheduling": "sched", "other": "other", "exited": "exit"}
KIND_LABEL = {"goroutine": "goroutine", "mn_g": "python G", "asyncio_task": "asyncio",
              "thread": "thread"}


def fmt_bytes(value) -> str:
    if value is None:
        return "-"
    if abs(value) >= 1 << 20:
        return "%.1fM" % (value / (1 << 20))
    if abs(value) >= 1024:
        return "%.1fK" % (value / 1024)
    return "%dB" % value


def fmt_us(value) -> str:
    if value is None:
        return "-"
    if value >= 100:
        return "%.0fµs" % value
    return "%.1fµs" % value


def queue_bar(length: int, scale: int, width: int) -> Text:
    width = max(1, width)
    filled = 0 if length <= 0 else max(1, min(width, round(length / max(1, scale) * width)))
    text = Text()
    if filled:
        text.append("█" * filled, "cyan")
    text.append("·" * (width - filled), "dim")
    return text


class MNModel:
    """What the view knows about one run, folded from `mn`, `phase` and `spawn` events."""

    def __init__(self) -> None:
        self.last: dict | None = None
        self.peak: dict | None = None  # the busiest snapshot: what a finished run shows
        self.peak_load = -1
        self.counters: list[tuple[float, int, int]] = []  # (ts, steals, handoffs)
        self.global_max = LOCAL_RUNQ
        self.busy_history: list[float] = []
        self.phase: dict = {}
        self.spawn: dict[str, dict] = {}
        self.measuring: str | None = None

    def fold(self, event: dict) -> None:
        kind = event.get("ev")
        if kind == "mn":
            self.last = event
            self.global_max = max(self.global_max, event.get("global_runq") or 0)
            self.counters.append((event.get("ts", 0.0), event.get("steals") or 0,
                                  event.get("handoffs") or 0))
            self.counters = [c for c in self.counters
                             if c[0] >= self.counters[-1][0] - RATE_WINDOW_S - 0.3]
            states = event.get("m_states") or {}
            busy = states.get("running", 0) + states.get("syscall", 0)
            load = (busy, sum(1 for s in event.get("p_status") or [] if s != "idle"),
                    sum(event.get("runq") or []) + (event.get("global_runq") or 0))
            if self.peak is None or load > self.peak_load:
                self.peak, self.peak_load = event, load
            self.busy_history.append(busy / max(1, event.get("gomaxprocs") or 1))
            del self.busy_history[:-HISTORY]
        elif kind == "phase":
            self.phase = event
            if event.get("state") == "measure":
                self.measuring = event.get("kind")
        elif kind == "spawn":
            self.spawn[event.get("kind", "?")] = event
            if self.measuring == event.get("kind"):
                self.measuring = None

    def rates(self) -> tuple[float | None, float | None]:
        """Steals and hand-offs per second over the last second or so."""
        if len(self.counters) < 2:
            return None, None
        (t0, s0, h0), (t1, s1, h1) = self.counters[0], self.counters[-1]
        if t1 <= t0:
            return None, None
        return (s1 - s0) / (t1 - t0), (h1 - h0) / (t1 - t0)


class GoroutinesView(LinesView):
    EXPERIMENTS = ("goroutines",)

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.model = MNModel()

    def reset(self) -> None:
        super().reset()
        self.model = MNModel()

    def fold(self, events: list[dict], state: RunState) -> None:
        for event in events:
            self.model.fold(event)

    # Rendering -----------------------------------------------------------------------
    def lines(self, state: RunState, width: int, rows: int) -> list[Text]:
        if state.params.get("mode") == "spawn":
            return self.spawn_lines(state, width, rows)
        last = self.model.last
        if last is None:
            return [self.waiting_line(state)]
        # Once the run is over its last snapshot is all idle Ps: show the busiest one
        # instead, and the run's totals rather than rates.
        ended = not state.running and self.model.peak is not None
        event = self.model.peak if ended else last
        out = [self.header(state, last)]
        ps = self.p_lines(event, width, rows)
        out += ps
        out.append(self.global_line(event, width))
        out.append(self.m_line(event))
        out.append(self.cpu_line(state, last))
        out.append(self.totals_line(last, width) if ended else self.rate_line(last))
        queue = self.queue_line(state, width)
        if queue is not None and (not self.compact or len(out) < rows):
            out.append(queue)
        if not self.compact:
            out += self.full_extra(state, event, width, rows - len(out))
        return out[:rows]

    def queue_line(self, state: RunState, width: int) -> Text | None:
        """Gs waiting in the run queues (local + global) across the whole run, from the
        run's timeline: `queued ▁▃█▅▁ 0-198 in 0.9s` (█ is the run's longest queue)."""
        points = timeline.series(state, "mn", _queued)
        if len(points) < 2:
            return None
        span, until = timeline.run_span(state)
        top = max(value for _, value in points)
        scale = " 0-%s in %.1fs" % (fmt_int(top), span)
        cols = width - len("queued ") - len(scale)
        if cols < 8:
            return None
        values = timeline.resample(points, span, cols, until=until)
        return Text("queued " + strip(values, cols, top=max(1, top), linear=True) + scale)

    def waiting_line(self, state: RunState) -> Text:
        phase = self.model.phase
        runtime = state.params.get("runtime", "python")
        if phase.get("state") == "build":
            return Text("go: compiling the Go program (once)…", style="dim")
        if state.status in ("pending", "running"):
            return Text("%s: starting…" % runtime, style="dim")
        return Text("%s: no trace (%s)" % (runtime, state.status), style="dim")

    def header(self, state: RunState, e: dict) -> Text:
        done, total = e.get("gs_done"), e.get("gs_total")
        text = Text("%s" % e.get("runtime", "?"), style="bold")
        text.append(" P%s M%s" % (e.get("gomaxprocs"), e.get("threads")))
        if done is not None:
            text.append(" G done %s/%s" % (fmt_int(done), fmt_int(total)))
        return text

    def p_lines(self, e: dict, width: int, rows: int) -> list[Text]:
        runq = e.get("runq") or []
        status = e.get("p_status") or [None] * len(runq)
        p_m = e.get("p_m") or [None] * len(runq)
        runnext = e.get("runnext") or [None] * len(runq)
        # Full: leave room for the five lines below the Ps and the first three of the rest.
        room = max(1, rows - 5) if self.compact else max(1, min(16, rows - 8))
        if len(runq) > room:  # too many Ps for a row each: one glyph per P (or per group)
            words = ["%s %d" % (P_WORD.get(w, w), status.count(w))
                     for w in ("running", "syscall", "idle") if status.count(w)]
            tail = " max %d · %s" % (max(runq or [0]), " ".join(words))
            room_w = max(4, width - 3 - len(tail))
            if len(runq) <= room_w:
                return [Text("Ps %s%s" % (strip([min(1.0, n / LOCAL_RUNQ) for n in runq],
                                                len(runq)), tail))]
            per = -(-len(runq) // room_w)  # Ps per glyph: the fullest queue of each group
            groups = [max(runq[i:i + per]) for i in range(0, len(runq), per)]
            cells = strip([min(1.0, n / LOCAL_RUNQ) for n in groups], len(groups))
            return [Text("Ps %s%s" % (cells, tail)),
                    Text("(one glyph per %d Ps)" % per, style="dim")][:max(1, room)]
        bar_w = max(4, width - 21)
        out = []
        for i, n in enumerate(runq):
            word = P_WORD.get(status[i], status[i] or "?")
            mid = p_m[i]
            m_text = "M%d" % mid if isinstance(mid, int) and mid >= 0 else "--"
            line = Text("P%-2d %-4s %-4s " % (i, word[:4], m_text[:4]))
            line.append_text(queue_bar(n, LOCAL_RUNQ, bar_w))
            line.append(" %3d%s" % (n, "+1" if runnext[i] else ""))
            out.append(line)
        return out

    def global_line(self, e: dict, width: int) -> Text:
        n = e.get("global_runq") or 0
        line = Text("glob" + " " * 10)
        line.append_text(queue_bar(n, self.model.global_max, max(4, width - 21)))
        line.append(" %3d" % n)
        return line

    def m_line(self, e: dict) -> Text:
        states = e.get("m_states")
        if states is None:  # Go without scheddetail (many Gs): only the header's counts
            return Text("M idle %s spin %s" % (e.get("idle_threads"), e.get("spinning_threads")))
        parts = ["%s %d" % (M_WORD[s], states[s]) for s in M_ORDER if states.get(s)]
        return Text("M " + " ".join(parts) if parts else "M none")

    def m_threads(self, state: RunState, e: dict):
        """The OS threads behind the Ms: by tid for Python, the Go process's for Go."""
        if e.get("runtime") == "go":
            return [t for t in state.threads.values() if t.pid == e.get("os_pid") and t.alive]
        tids = {m.get("tid") for m in e.get("ms") or [] if m.get("tid")}
        return [t for tid, t in state.threads.items() if tid in tids and t.alive]

    def cpu_line(self, state: RunState, e: dict) -> Text:
        gil = ((state.hello or {}).get("python") or {}).get("gil_enabled")
        result = state.result if isinstance(state.result, dict) else {}
        if result.get("cores_used") is not None:  # finished: the whole run's average
            text = Text("used %.2f cores in all" % result["cores_used"])
            if e.get("runtime") == "python" and gil:
                text.append(" (GIL)", style="bold")
            return text
        threads = self.m_threads(state, e)
        total = sum(t.cpu_share for t in threads)
        text = Text("cpu %s over %d thread%s" % (pct(total), len(threads),
                                                 "" if len(threads) == 1 else "s"))
        if e.get("runtime") == "python" and gil:
            text.append(" (GIL)", style="bold")
        return text

    def rate_line(self, e: dict) -> Text:
        steals, handoffs = self.model.rates()
        if e.get("runtime") == "go":
            steal_text = "steal n/a"  # Go's trace does not count steals
        else:
            steal_text = "steal %s/s" % fmt_rate(steals)
        return Text("%s hand-off %s/s" % (steal_text, fmt_rate(handoffs)))

    def totals_line(self, e: dict, width: int) -> Text:
        """A finished run: Ps above at their busiest; the run's counts in all."""
        steals = "n/a" if e.get("runtime") == "go" else _n(e.get("steals"))
        counts = "steal %s hand-off %s · %s Ms" % (steals, _n(e.get("handoffs")),
                                                    _n(e.get("threads")))
        with_note = "peak above · " + counts
        return Text(with_note if len(with_note) <= width else counts)

    def full_extra(self, state: RunState, e: dict, width: int, room: int) -> list[Text]:
        out: list[Text] = []
        gs = e.get("gs")
        if gs:  # the program's Gs by state (runnable = waiting in a queue)
            out.append(Text("G ready %s run %s sys %s wait %s" % (
                fmt_int(gs.get("runnable")), fmt_int(gs.get("running")),
                fmt_int(gs.get("syscall")), fmt_int(gs.get("waiting")))))
        out.append(Text("steals %s hand-offs %s preempt %s" % (
            _n(e.get("steals")), _n(e.get("handoffs")), _n(e.get("preemptions")))))
        if self.model.busy_history:
            out.append(Text("busy Ms/P %s" % strip(self.model.busy_history,
                                                   min(HISTORY, width - 10), top=4.0)))
        by_tid = {t.tid: t for t in state.threads.values()}
        ms = e.get("ms") or []
        # Leave a line for the tail (go threads or the explanation's first line).
        m_room = min(12, room - len(out) - 2)
        if ms and m_room >= 2:
            out.append(Text("M   state P   cpu", style="bold"))
            listed = ms if len(ms) <= m_room - 1 else ms[:m_room - 2]
            for m in listed:
                thread = by_tid.get(m.get("tid"))
                p = m.get("p")
                line = Text("M%-2d %-5s %-3s " % (
                    m["id"], M_WORD.get(m["state"], m["state"]),
                    "P%d" % p if isinstance(p, int) and p >= 0 else "--"))
                if thread is not None and thread.alive:
                    line.append("%4s " % pct(thread.cpu_share))
                    line.append_text(bar(thread.cpu_share, thread.wait_share,
                                         max(4, min(20, width - 20))))
                else:
                    line.append("   -")
                out.append(line)
            if len(listed) < len(ms):
                states: dict[str, int] = {}
                for m in ms[len(listed):]:
                    word = M_WORD.get(m["state"], m["state"])
                    states[word] = states.get(word, 0) + 1
                more = "… %d more Ms" % (len(ms) - len(listed))
                detail = ": " + " ".join("%s %d" % kv for kv in states.items())
                out.append(Text(more + detail if len(more + detail) <= width else more,
                                style="dim"))
        if e.get("runtime") == "go":
            threads = self.m_threads(state, e)
            if threads:
                out.append(Text("go threads cpu: " + " ".join(
                    pct(t.cpu_share) for t in sorted(threads, key=lambda t: -t.cpu_share)[:10])))
        out += self.explanation(state, width)
        return out[:max(0, room)]

    def explanation(self, state: RunState, width: int) -> list[Text]:
        result = state.result if isinstance(state.result, dict) else {}
        text = result.get("explanation")
        if not text or not self.explains:
            return []
        return [Text("")] + [Text(line) for line in textwrap.wrap(text, max(20, width))]

    # Spawn mode ------------------------------------------------------------------------
    def spawn_lines(self, state: RunState, width: int, rows: int) -> list[Text]:
        units = state.params.get("units")
        out = [Text("spawn %s units: start · memory" % fmt_int(units), style="bold")]
        for kind in ("goroutine", "mn_g", "asyncio_task", "thread"):
            figures = self.model.spawn.get(kind)
            label = KIND_LABEL[kind].ljust(9)
            if figures is None:
                mark = "▶ measuring…" if self.model.measuring == kind else "· waiting"
                out.append(Text("%s %s" % (label, mark), style="dim"))
                continue
            if figures.get("skipped") or figures.get("error"):
                why = figures.get("skipped") or figures.get("error")
                out.append(Text("%s %s" % (label, why)))
                continue
            line = Text("%s %7s %6s" % (label, fmt_us(figures.get("spawn_us_per_unit")),
                                        fmt_bytes(figures.get("bytes_per_unit"))))
            if kind == "thread" or figures.get("units") != units:
                line.append(" ×%s" % fmt_int(figures.get("units")))
            out.append(line)
        result = state.result if isinstance(state.result, dict) else {}
        if result.get("article_says") and rows - len(out) > 1:
            out.append(Text("the article says: " + result["article_says"], style="dim"))
        if not self.compact:
            thread = self.model.spawn.get("thread") or {}
            if thread.get("virtual_bytes_per_unit"):
                out.append(Text("thread: %s reserved, %s kernel stack each" % (
                    fmt_bytes(thread["virtual_bytes_per_unit"]),
                    fmt_bytes(thread.get("kernel_stack_bytes_per_unit")))))
            out += self.explanation(state, width)
        return out[:rows]


def _queued(event: dict) -> int:
    """Of an `mn` snapshot: the Gs waiting in every run queue, local and global."""
    return sum(event.get("runq") or []) + (event.get("global_runq") or 0)


def _n(value) -> str:
    return "n/a" if value is None else fmt_int(value)


VIEW = GoroutinesView
