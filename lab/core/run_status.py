"""Where a running experiment is, read from its own events: the phase or mode it is in,
how many of its phases it has started and, where it can be known, the share done.

The CLI draws this on stderr while `conlab run` waits (lab.cli.show); nothing here draws.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lab.core.state import RunState

# The field of a `phase` event that names what runs, in the order the workloads use them.
PHASE_NAMES = ("mode", "variant", "run", "loop", "phase", "runtime", "kind")


@dataclass
class Status:
    experiment: str
    doing: str  # "threads", "row cpu · model asyncio", "starting", ...
    step: int  # phases started so far
    total: int | None  # phases expected, when the parameters say
    fraction: float | None  # 0..1 when it can be known
    elapsed_s: float
    finished: bool = False

    def line(self) -> str:
        """The status as one plain line: `gil-cpu · threads (2 of 3) · 41% · 3.1 s`."""
        parts = [self.experiment, self.doing + self.steps()]
        if self.fraction is not None:
            parts.append("%d%%" % round(self.fraction * 100))
        parts.append("%.1f s" % self.elapsed_s)
        return " · ".join(parts)

    def steps(self) -> str:
        if self.total and self.step:
            return " (%d of %d)" % (min(self.step, self.total), self.total)
        return ""


def expected_phases(params: dict[str, Any], choices: dict[str, tuple]) -> int | None:
    """Phases a run will start, from its parameters: every choice parameter set to `all`
    multiplies by its other choices, `repeat` by its rounds. None when nothing says."""
    total, known = 1, False
    for name, options in choices.items():
        if params.get(name) == "all" and "all" in options:
            total *= len(options) - 1
            known = True
    if isinstance(params.get("repeat"), int) and params["repeat"] > 1:
        total *= params["repeat"]
        known = True
    return total if known else None


class Tracker:
    """Reads a run's new events each time it is asked; cheap enough for 10 Hz."""

    def __init__(self, state: RunState, choices: dict[str, tuple] | None = None) -> None:
        self.state = state
        self.total = expected_phases(state.params, choices or {})
        self.seq = 0
        self.started = 0
        self.doing = "starting"
        self.tasks = 0  # tasks of the current phase, when its start event says
        self.task_done: dict[Any, float] = {}
        self.rows: tuple[int, int] | None = None  # (index, rows) of a table of rows

    def status(self) -> Status:
        state = self.state
        self.seq, events = state.events_since(self.seq)
        for event in events:
            self._read(event)
        step = self.rows[0] + 1 if self.rows else self.started
        return Status(state.experiment, self.doing if state.running else state.status,
                      step, self._total(), self._fraction(), state.duration_s,
                      finished=not state.running)

    def _read(self, event: dict) -> None:
        kind, when = event.get("ev"), event.get("state")
        if kind == "phase" and when in ("start", "measure", "build", "spawned"):
            name = next((str(event[k]) for k in PHASE_NAMES if isinstance(event.get(k), str)), "")
            if when == "start":
                self.started += 1
                self.tasks = event.get("tasks") if isinstance(event.get("tasks"), int) else 0
                self.task_done = {}
            self.doing = name or when
        elif kind == "row" and when == "start":
            index, rows = event.get("index"), event.get("rows")
            if isinstance(index, int) and isinstance(rows, int) and rows > 0:
                self.rows = (index, rows)
            self.doing = "row %s" % event.get("id", (index or 0) + 1)
        elif kind == "model" and when == "start":
            self.doing = "%s · %s" % (self.doing.split(" · ")[0], event.get("model", "?"))
        elif kind == "progress" and isinstance(event.get("done"), (int, float)):
            self.task_done[event.get("task", event.get("key"))] = float(event["done"])

    def _total(self) -> int | None:
        if self.rows:
            return self.rows[1]
        if self.total and self.started > self.total:
            return None  # the parameters did not tell the whole story
        return self.total

    def _fraction(self) -> float | None:
        if self.rows:
            return min(1.0, self.rows[0] / self.rows[1])
        total = self._total()
        if not total or not self.started:
            return None
        within = 0.0
        if self.tasks and self.task_done:
            within = min(1.0, sum(self.task_done.values()) / self.tasks)
        return min(1.0, (self.started - 1 + within) / total)
