"""The Watch screen's views: what the lab makes of a program it watches, and its threads.

`WatchFactsView` draws, from the watched program's RunState: one diagnosis line per
process (its verdict, the figures it rests on, the lesson that shows the same thing),
then, where the Python probe reported them, one line per event loop (lag percentiles and
the line it was blocked on) and the lock wait-for graph. The probe's events arrive in the
state as experiment events (`loop_lag`, `loop_blocked`, `locks`, ...), so a state rebuilt
from a log draws the same picture.

`WatchThreadsView` is the lab's generic threads view without its raw event lines (the
probe's events are drawn above, in words).
"""

from __future__ import annotations

import textwrap
from typing import Any, Callable

from rich.text import Text

from lab.core.state import RunState
from widgets.threads_view import LinesView, ThreadsView, fit, summary_line, thread_header, \
    thread_rows

PROBE_EVENTS = ("probe_hello", "probe_threads", "loop_blocked", "loop_lag", "locks", "probe_bye")
# The verdict's first words carry its meaning; colour only repeats it (NO_COLOR).
KIND_STYLE = {
    "deadlock": "bold red", "loop-blocked": "bold red", "cpu-saturated": "bold yellow",
    "gil-bound": "bold yellow", "preempted": "bold yellow",
}
MAX_LOOP_LINES = 2
MAX_LOCK_LINES = 4


def default_diagnose(state: RunState) -> list[dict]:
    from lab.core.diagnose import diagnose

    return diagnose(state)


def diagnosis_line(finding: dict, width: int) -> Text:
    """`python3 812 mostly waiting: 95 % off-CPU, ... · see io-bound`, cut to `width`
    without losing the lesson: the sentence gives way (its aside in brackets first)."""
    # The sentence quotes its own figures (diagnose's contract); they are in the record too.
    says = str(finding.get("says") or finding.get("kind") or "?")
    lesson = finding.get("lesson")
    tail = " · see %s" % lesson if lesson else ""
    pid = finding.get("pid")
    who = finding.get("process") or ("pid %s" % pid if pid is not None else "")
    head = "%s " % who if who else ""
    line = Text(head, style="bold")
    room = width - len(head) - len(tail)
    if len(says) > room and says.endswith(")") and " (" in says:
        says = says[:says.rindex(" (")]  # the aside goes first, the figures stay
    body = says
    style = KIND_STYLE.get(str(finding.get("kind")), "bold")
    line.append_text(fit(Text(body, style=style), max(1, room)))
    if tail:
        line.append(tail)
    return line


class ProbeFacts:
    """The newest probe facts per process, folded from the state's events."""

    def __init__(self) -> None:
        self.hello: dict[int, dict] = {}
        self.lag: dict[tuple[int, int], dict] = {}  # (pid, tid) -> loop_lag
        self.blocked: dict[tuple[int, int], dict] = {}  # (pid, tid) -> newest loop_blocked
        self.blocked_count: dict[tuple[int, int], int] = {}
        self.locks: dict[int, dict] = {}  # pid -> newest locks event

    def fold(self, event: dict) -> None:
        kind, pid = event.get("ev"), event.get("pid")
        if kind not in PROBE_EVENTS or not isinstance(pid, int):
            return
        if kind == "probe_hello":
            self.hello[pid] = event
        elif kind == "loop_lag":
            self.lag[(pid, event.get("tid"))] = event
        elif kind == "loop_blocked":
            key = (pid, event.get("tid"))
            self.blocked[key] = event
            self.blocked_count[key] = self.blocked_count.get(key, 0) + 1
        elif kind == "locks":
            self.locks[pid] = event

    def loops(self) -> list[tuple[int, int]]:
        return sorted(set(self.lag) | set(self.blocked), key=lambda k: (k[0], k[1] or 0))


def _ms(value: Any) -> str:
    if not isinstance(value, (int, float)):
        return "-"
    return "%.0f" % value if value >= 10 else "%.1f" % value


def loop_line(facts: ProbeFacts, key: tuple[int, int], several: bool) -> Text:
    """`asyncio blocked 320 ms at app.py:88 handle() ×3 · lag p50 1.0 p99 12 max 320 ms`:
    the blocking line first, so a narrow screen cuts the percentiles, not the culprit."""
    pid, _ = key
    lag, blocked = facts.lag.get(key), facts.blocked.get(key)
    kind = (blocked or lag or {}).get("loop", "loop")
    text = Text(("%s %d " % (kind, pid)) if several else "%s " % kind, style="bold")
    if blocked:
        text.append("blocked %s ms" % _ms(blocked.get("lag_ms")), style="bold red")
        text.append(" at %s" % blocked.get("where", "?"))
        count = facts.blocked_count.get(key, 1)
        if count > 1:
            text.append(" ×%d" % count)
        if lag:
            text.append(" · ")
    if lag:
        text.append("lag p50 %s p99 %s max %s ms" % (_ms(lag.get("p50_ms")),
                                                      _ms(lag.get("p99_ms")),
                                                      _ms(lag.get("max_ms"))))
    return text


def _lock_name(name: str, narrow: bool) -> str:
    """`lock_a (app.py:7)` -> `lock_a` where columns are few: the line a thread is stuck
    on says more than the line its lock was made on."""
    if narrow and name.endswith(")") and " (" in name:
        return name[:name.rindex(" (")]
    return name


def lock_lines(event: dict, several: bool, width: int = 120) -> list[Text]:
    """The wait-for graph of one process: who holds what, who waits for what, the cycle."""
    held = event.get("held") if isinstance(event.get("held"), dict) else {}
    waiting = event.get("waiting") if isinstance(event.get("waiting"), dict) else {}
    names = event.get("names") if isinstance(event.get("names"), dict) else {}
    where = event.get("where") if isinstance(event.get("where"), dict) else {}
    if not waiting:
        return []

    def name(tid) -> str:
        return str(names.get(str(tid), names.get(tid, "tid %s" % tid)))

    holds: dict[str, list[str]] = {}
    for lock, tid in held.items():
        holds.setdefault(str(tid), []).append(str(lock))
    # Follow each waiter to the holder of its lock: coming back to itself is a cycle.
    cycle: set[str] = set()
    for start in waiting:
        seen, tid = [], str(start)
        while tid in waiting and tid not in seen:
            seen.append(tid)
            owner = held.get(waiting[tid])
            if owner is None:
                break
            tid = str(owner)
        if tid in seen:
            cycle.update(seen[seen.index(tid):])
    head = "wait-for graph%s: thread [holds] → wants (held by)" % (
        " of pid %s" % event.get("pid") if several else "")
    out = [Text(head, style="bold")]
    for tid in sorted(set(holds) | {str(t) for t in waiting}, key=lambda t: (t not in cycle, t)):
        row = Text("CYCLE " if tid in cycle else "      ",
                   style="bold red" if tid in cycle else "")
        narrow = width < 100
        row.append("%s [%s]" % (name(tid), ", ".join(_lock_name(h, narrow)
                                                     for h in holds.get(tid, []))))
        lock = waiting.get(tid)
        if lock is not None:
            owner = held.get(lock)
            row.append(" → %s (%s)" % (_lock_name(str(lock), narrow),
                                       "free" if owner is None else name(owner)))
        spot = where.get(tid)
        if spot:
            row.append(" @ %s" % spot, style="dim")
        out.append(row)
    return out


class WatchFactsView(LinesView):
    """Diagnosis, loop and lock lines for a watched program (no fixed experiment)."""

    DEFAULT_CSS = """
    WatchFactsView {
        height: auto;
        max-height: 10;
    }
    """
    MAX_ROWS = 10

    def __init__(self, diagnose: Callable[[RunState], list[dict]] | None = None,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.diagnose = diagnose or default_diagnose
        self.note = ""  # what the screen adds (e.g. what an attach cannot see)
        self.facts = ProbeFacts()
        self.findings: list[dict] = []
        self.problem: str | None = None

    def reset(self) -> None:
        super().reset()
        self.facts = ProbeFacts()

    def rows_budget(self) -> int:
        """Up to a third of the screen: the threads below keep the rest (80x24: 8 rows)."""
        height = self.screen.size.height if self.is_attached else 24
        return max(3, min(self.MAX_ROWS, height // 3))

    def fold(self, events: list[dict], state: RunState) -> None:
        for event in events:
            self.facts.fold(event)
        try:
            self.findings = list(self.diagnose(state) or [])
            self.problem = None
        except Exception as exc:  # a diagnosis that fails says so; the threads still draw
            self.findings = []
            self.problem = "no diagnosis: %s: %s" % (type(exc).__name__, exc)

    def idle_lines(self) -> list[Text]:
        return [Text("waiting for the first sample…", style="dim")]

    def lines(self, state: RunState, width: int, rows: int) -> list[Text]:
        out: list[Text] = []
        if self.problem:
            out.append(Text(self.problem, style="bold"))
        if not self.findings and not self.problem:
            out.append(Text("diagnosis after the first samples…", style="dim"))
        out += [diagnosis_line(f, width) for f in self.findings]
        loops = self.facts.loops()
        several = len({pid for pid, _ in loops} | set(self.facts.locks)) > 1
        shown = loops[:MAX_LOOP_LINES]
        out += [loop_line(self.facts, key, several) for key in shown]
        if len(loops) > len(shown):
            out.append(Text("+%d more event loops" % (len(loops) - len(shown)), style="dim"))
        for pid in sorted(self.facts.locks):
            graph = lock_lines(self.facts.locks[pid], several, width)
            if len(graph) > MAX_LOCK_LINES + 1:
                rest = len(graph) - MAX_LOCK_LINES
                graph = graph[:MAX_LOCK_LINES] + [Text("+%d more threads" % rest, style="dim")]
            out += graph
        if self.note:
            out += [Text(line, style="dim") for line in textwrap.wrap(self.note, width)[:2]]
        return [fit(line, width) for line in out[:max(1, rows)]]


class WatchThreadsView(ThreadsView):
    """Every thread of the watched tree, grouped per process; fills the space it is given."""

    def lines(self, state: RunState, width: int, rows: int) -> list[Text]:
        out = [summary_line(state, width)]
        if not state.threads:
            return out
        out.append(thread_header(width))
        out += thread_rows(state, width, max(1, rows - len(out)), history=self.cpu_strips)
        return out

    def idle_lines(self) -> list[Text]:
        return [Text("no sample yet", style="dim")]


VIEW = WatchThreadsView  # what lab.tui.views.view_class("watch") draws a watch's state with
