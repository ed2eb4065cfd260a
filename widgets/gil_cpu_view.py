"""Live view for gil-cpu: which mode runs now, the speedups as each mode ends, the threads.

Every figure comes from the run: wall times from the child's `phase` events, progress
from its `progress` events, per-thread CPU from the kernel via the sampler.
"""

from __future__ import annotations

from rich.text import Text

from lab.core.state import RunState
from widgets.threads_view import (LinesView, fmt_s, thread_header, thread_rows)

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
        self.contended: set[str] = set()  # modes that waited for a CPU: others were busy
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
                    if event.get("contended"):
                        self.contended.add(mode)
                    if self.current == mode:
                        self.current = None
            elif kind == "progress":
                self.progress[int(event.get("task", 0))] = float(event.get("done", 0.0))

    # Drawing ---------------------------------------------------------------------------
    def mode_line(self, mode: str, state: RunState, width: int) -> Text:
        label = LABELS.get(mode, mode).ljust(LABEL_W)
        if mode in self.walls:
            text = Text(("! " if mode in self.contended else "✓ ") + label)
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

    def lines(self, state: RunState, width: int, rows: int) -> list[Text]:
        modes = _modes(state) or self.seen
        out = [self.mode_line(mode, state, width) for mode in modes]
        if state.threads and rows - len(out) >= 2:
            out.append(thread_header(width))
            out += thread_rows(state, width, rows - len(out), history=self.cpu_strips)
        return out


VIEW = GilCpuView
