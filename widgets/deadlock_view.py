"""Live view of `deadlock`: the wait-for graph in text, the cycle named, the stuck lines.

One row per thread: the locks it holds in brackets, then `→ lock-B (held by worker-2)`
when it waits. Threads in a cycle carry the label `CYCLE` (colour only repeats it);
a cycle of waits that all have a timeout is labelled `cycle, breaks by timeout`.
Once the watchdog reports a deadlock: how long after the cycle closed it saw it, and
the line each thread is stuck on (the innermost frame outside the lock plumbing).
"""

from __future__ import annotations

from rich.text import Text

from lab.core.state import RunState
from widgets.threads_view import fmt_int, LinesView

PLUMBING = ("_locks.py", "_proto.py")


def stuck_line(stack: list[str]) -> str:
    """The innermost frame that is the experiment's own code, not the lock's internals."""
    for frame in reversed(stack):
        if not frame.startswith(PLUMBING):
            return frame
    return stack[-1] if stack else "?"


def compact_frame(frame: str) -> str:
    """'deadlock.py:55 in opposite_order: with second:' -> 'deadlock.py:55 with second:'."""
    where, _, rest = frame.partition(" in ")
    _, _, code = rest.partition(": ")
    return "%s %s" % (where, code) if code else frame


def short(name: str) -> str:
    """worker-12 -> w12, lock-B -> B (compact pane)."""
    if name.startswith("worker-"):
        return "w" + name[len("worker-"):]
    if name.startswith("lock-"):
        return name[len("lock-"):]
    return name


class DeadlockView(LinesView):
    EXPERIMENTS = ("deadlock",)

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.reset()

    def reset(self) -> None:
        super().reset()
        self.threads: list[str] = []
        self.order: dict[str, list[str]] = {}
        self.graph: dict = {}
        self.deadlock: dict | None = None
        self.progress: dict = {}

    def fold(self, events: list[dict], state: RunState) -> None:
        for event in events:
            kind = event.get("ev")
            if kind == "setup":
                self.threads = list(event.get("threads", []))
                self.order = event.get("order", {})
            elif kind == "graph":
                self.graph = event
            elif kind == "deadlock":
                self.deadlock = event
            elif kind == "progress":
                self.progress = event

    # The graph -----------------------------------------------------------------------------
    def snapshot(self) -> tuple[dict, dict, dict, set]:
        """holds, waits, owner and the cycle; the watchdog's final word wins."""
        if self.deadlock:
            holds = {c["thread"]: c["holds"] for c in self.deadlock["cycle"]}
            waits = {c["thread"]: {"lock": c["waits_for"], "timeout": False}
                     for c in self.deadlock["cycle"]}
            owner = {c["waits_for"]: c["held_by"] for c in self.deadlock["cycle"]}
            for thread, locks in self.graph.get("holds", {}).items():
                holds.setdefault(thread, locks)
            return holds, waits, owner, {c["thread"] for c in self.deadlock["cycle"]}
        graph = self.graph
        return (graph.get("holds", {}), graph.get("waits", {}), graph.get("owner", {}),
                set(graph.get("cycle", [])))

    def thread_row(self, state: RunState, thread: str, holds, waits, owner, cycle,
                   timed_cycle: bool, narrow: bool) -> Text:
        held = holds.get(thread, [])
        wait = waits.get(thread)
        row = Text()
        if thread in cycle:  # the label comes first, so a narrow pane never cuts it off
            row.append("cycle~" if timed_cycle else "CYCLE ",
                       style="bold yellow" if timed_cycle else "bold red")
        else:
            row.append("      ")
        if narrow:
            text = "%s [%s]" % (short(thread), ",".join(short(h) for h in held))
            if wait:
                text += " → %s (%s)" % (short(wait["lock"]), short(owner.get(wait["lock"], "free")))
            elif self.finished(thread, state):
                text += " done"
        else:
            text = "%-9s holds [%s]" % (thread, ", ".join(held))
            if wait:
                text += " → %s%s, held by %s" % (
                    wait["lock"], " (with timeout)" if wait.get("timeout") else "",
                    owner.get(wait["lock"], "nobody"))
            else:
                text += " · finished" if self.finished(thread, state) else " · running"
        row.append(text)
        return row

    def finished(self, thread: str, state: RunState) -> bool:
        wanted = state.params.get("rounds")
        return wanted is not None and self.progress.get("rounds", {}).get(thread) == wanted

    def status(self, state: RunState, narrow: bool) -> Text:
        fix = state.params.get("fix", "none")
        count = state.params.get("threads", len(self.threads))
        if self.deadlock:
            text = Text("DEADLOCK", style="bold red")
            text.append(" at %.0f ms, seen %.1f ms after the cycle closed" % (
                self.deadlock["detected_at_ms"], self.deadlock["detected_after_ms"]))
            if narrow:
                text = Text("DEADLOCK", style="bold red")
                text.append(" %.0f ms (seen +%.1f ms)" % (self.deadlock["detected_at_ms"],
                                                          self.deadlock["detected_after_ms"]))
            return text
        result = state.result if isinstance(state.result, dict) else {}
        if result.get("completed"):
            return Text("✓ COMPLETED · %s threads · %s" % (count, fix), style="bold")
        return Text("%s · %s threads · %s" % (state.status, count, fix), style="bold")

    def counters(self) -> str:
        rounds = self.progress.get("rounds", {})
        retries = sum(self.progress.get("retries", {}).values())
        done = sum(rounds.values())
        return "rounds done %s · retries %s" % (fmt_int(done), fmt_int(retries))

    def lines(self, state: RunState, width: int, rows: int) -> list[Text]:
        narrow = self.compact or width < 60
        holds, waits, owner, cycle = self.snapshot()
        timed_cycle = bool(cycle) and not self.deadlock and all(
            waits.get(t, {}).get("timeout") for t in cycle)
        threads = self.threads or sorted(set(holds) | set(waits))
        out = [self.status(state, narrow)]
        if not self.compact:
            out.append(Text("thread [holds] → wants (held by)" if narrow else
                            "wait-for graph: thread, the locks it holds → the lock it waits for",
                            style="dim"))
        body = [self.thread_row(state, t, holds, waits, owner, cycle, timed_cycle, narrow)
                for t in threads]
        stacks = (self.deadlock or {}).get("stacks", {})
        stuck = [t for t in threads if t in stacks]
        if self.compact:
            room = rows - len(out) - min(2, len(stuck))
            if len(body) > room:
                body = body[:max(0, room - 1)] + [Text("… %d more threads" % (len(body) - room + 1))]
            out += body
            for thread in stuck[:max(0, rows - len(out))]:
                out.append(Text("%s @ %s" % (short(thread), compact_frame(stuck_line(stacks[thread])))))
            if not stuck and rows > len(out):
                out.append(Text(self.counters(), style="dim"))
            return out[:rows]
        out += body
        out.append(Text(self.counters(), style="dim"))
        if timed_cycle:
            out.append(Text("cycle~: every wait in it has a timeout, so it will break", style="dim"))
        if stuck:
            out.append(Text(""))
            out.append(Text("where each thread is stuck:", style="bold"))
            for thread in stuck:
                if narrow:
                    out.append(Text("%s @ %s" % (short(thread), compact_frame(stuck_line(stacks[thread])))))
                else:
                    out.append(Text("  %-9s %s" % (thread, stuck_line(stacks[thread]))))
        return out


VIEW = DeadlockView
