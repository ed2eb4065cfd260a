"""Live view for gil-cpu: which mode runs now, the speedups as each mode ends, the threads.

Every figure comes from the run: wall times from the child's `phase` events, progress
from its `progress` events, per-thread CPU from the kernel via the sampler.
"""

from __future__ import annotations

from rich.text import Text

from lab.core.state import RunState
from widgets.threads_view import (LinesView, fmt_int, fmt_s, thread_header, thread_rows)

LABELS = {"sequential": "sequential", "threads": "threads", "processes": "processes"}
LABEL_W = 11


def _modes(state: RunState) -> list[str]:
    chosen = state.params.get("modes", "all")
    if chosen != "all":
        return [chosen]
    try:
        from lab.core import catalog

        return [m for m in catalog.get("gil-cpu").param("modes").choices if m != "all"]
    except Exception:  # the catalogue is the source of truth; fall back to what ran
        return []


class GilCpuView(LinesView):
    EXPERIMENTS = ("gil-cpu",)

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.reset()

    def reset(self) -> None:
        super().reset()
        self.current: str | None = None
        self.tasks = 0
        self.progress: dict[int, float] = {}
        self.walls: dict[str, float] = {}
        # Rounds in which other programs took a real share of the CPUs (the child's load
        # meter), and modes with at least one round they left alone.
        self.busy: set[str] = set()
        self.quiet: set[str] = set()
        self.seen: list[str] = []

    def fold(self, events: list[dict], state: RunState) -> None:
        for event in events:
            kind = event.get("ev")
            if kind == "phase":
                mode = event.get("mode", "?")
                if mode not in self.seen:
                    self.seen.append(mode)
                if event.get("state") == "start":
                    self.current, self.tasks, self.progress = mode, event.get("tasks", 0), {}
                elif event.get("state") == "end":
                    self.walls[mode] = float(event.get("wall_s", 0.0))
                    (self.busy if event.get("busy") else self.quiet).add(mode)
                    if self.current == mode:
                        self.current = None
            elif kind == "progress":
                self.progress[int(event.get("task", 0))] = float(event.get("done", 0.0))

    def spoiled(self, mode: str, state: RunState) -> bool:
        """Other programs took the CPUs in every round of this mode, or the verdict that
        reads it could not be told."""
        result = state.result if isinstance(state.result, dict) else {}
        verdict = result.get("verdict") if isinstance(result.get("verdict"), dict) else {}
        if mode == "threads" and verdict.get("can_tell") is False:
            return True
        figures = (result.get("modes") or {}).get(mode)
        if isinstance(figures, dict) and "quiet_rounds" in figures:
            return not figures["quiet_rounds"]
        return mode in self.busy and mode not in self.quiet

    # Drawing ---------------------------------------------------------------------------
    def mode_line(self, mode: str, state: RunState, width: int) -> Text:
        label = LABELS.get(mode, mode).ljust(LABEL_W)
        if mode in self.walls:
            text = Text(("! " if self.spoiled(mode, state) else "✓ ") + label)
            text.append(fmt_s(self.walls[mode]).rjust(8))
            base = self.walls.get("sequential")
            if mode != "sequential" and base and self.walls[mode] > 0:
                word = "speedup " if width >= 36 else ""
                text.append("  %s×%.2f" % (word, base / self.walls[mode]), style="bold")
            return text
        if mode == self.current and state.running:
            done = (sum(self.progress.values()) / self.tasks) if self.tasks else 0.0
            tail = " %3d%%  %d task%s" % (round(done * 100), self.tasks,
                                          "" if self.tasks == 1 else "s")
            if width - 2 - LABEL_W - 2 - len(tail) < 4:  # a narrow pane: the short form
                tail = " %3d%% ×%d" % (round(done * 100), self.tasks)
            bar_w = max(4, min(20, width - 2 - LABEL_W - 2 - len(tail)))
            cells = round(min(1.0, done) * bar_w)
            text = Text("▶ " + label, style="bold")
            text.append("▕" + "█" * cells + "·" * (bar_w - cells) + "▏")
            text.append(tail)
            return text
        if mode == self.current:
            return Text("✗ " + label + "did not finish", style="bold")
        return Text("· " + label + "waiting", style="dim")

    def switch_line(self, state: RunState, width: int) -> Text | None:
        """Both context-switch counters of the workers so far, summed: which one climbs."""
        workers = [t for t in state.threads.values()
                   if t.role == "worker" and t.voluntary is not None]
        if not workers:
            return None
        vol = sum(t.voluntary or 0 for t in workers)
        inv = sum(t.involuntary or 0 for t in workers)
        text = "worker switches  voluntary %s · involuntary %s" % (fmt_int(vol), fmt_int(inv))
        if len(text) > width:
            text = "switches vol %s · invol %s" % (fmt_int(vol), fmt_int(inv))
        return Text(text[:width])

    def lines(self, state: RunState, width: int, rows: int) -> list[Text]:
        modes = _modes(state) or self.seen
        out = [self.mode_line(mode, state, width) for mode in modes]
        said = verdict_line(state.result, width)
        if said is not None and rows - len(out) >= 1:
            out.append(said)
        switches = self.switch_line(state, width)
        if switches is not None and rows - len(out) >= 3:
            out.append(switches)
        if state.threads and rows - len(out) >= 2:
            out.append(thread_header(width))
            out += thread_rows(state, width, rows - len(out), history=self.cpu_strips)
        return out


def verdict_line(result, width: int) -> Text | None:
    """`✓ threads took turns on one core (1.02 cores)`, or `!` and why it can't tell; other
    programs' share of the CPUs once, when they took a real one."""
    if not isinstance(result, dict) or not isinstance(result.get("verdict"), dict):
        return None
    verdict, load = result["verdict"], result.get("load") or {}
    told = verdict.get("can_tell") is not False
    text = Text("✓ " if told else "! ", style="" if told else "bold")
    text.append(str(verdict.get("says") or ""))
    if load.get("busy") and isinstance(load.get("other_cpu_share"), (int, float)):
        text.append(" · other programs %d%%" % round(100 * load["other_cpu_share"]))
    text.truncate(max(1, width), overflow="ellipsis")
    return text


VIEW = GilCpuView
