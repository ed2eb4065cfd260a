"""The bounded, per-run state that events and samples land in.

The runner writes to it; the CLI turns it into a record; widgets read it at a fixed
frame rate. Nothing here knows about Textual. Every change bumps `version`, so a
widget can skip a frame when nothing moved.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from lab.core.sampler import Sample
from lab.core.recording import EVENT, SAMPLE, Recording

EVENT_BUFFER = 4096  # experiment events kept per run; older ones are dropped
MAX_THREAD_VIEWS = 512  # threads tracked per run; past it they are counted, not kept
GIL_SEGMENTS = 40_000  # GIL timeline segments kept per run; the oldest go first
GIL_KINDS = {"run": "run", "cpu": "cpu", "gil": "gil"}  # one shared string per kind

# Event kinds the state interprets itself; everything else is experiment data.
CORE_EVENTS = {"hello", "thread", "thread_exit", "process", "process_exit", "result", "error",
               "cpu_clocks"}


@dataclass
class ThreadView:
    """One OS thread of the run, as the kernel and the child describe it."""

    pid: int
    tid: int
    name: str
    role: str = ""
    cpu_s: float = 0.0
    run_delay_s: float | None = None
    voluntary: int | None = None
    involuntary: int | None = None
    # Rates over the last sampling interval.
    cpu_share: float = 0.0  # fraction of one CPU spent running
    wait_share: float = 0.0  # fraction of the interval runnable but waiting for a CPU
    voluntary_rate: float = 0.0  # per second
    involuntary_rate: float = 0.0
    alive: bool = True
    final: bool = False  # figures reported by the thread itself as it ended (exact)
    sampled_at: float = 0.0

    def to_record(self) -> dict[str, Any]:
        return {
            "name": self.name, "native_id": self.tid, "pid": self.pid, "role": self.role,
            "cpu_s": round(self.cpu_s, 6),
            "run_delay_s": None if self.run_delay_s is None else round(self.run_delay_s, 6),
            "voluntary": self.voluntary, "involuntary": self.involuntary,
        }


@dataclass
class ProcessView:
    pid: int
    name: str
    role: str = ""
    rss_bytes: int = 0
    num_threads: int = 0
    num_fds: int = 0
    cpu_share: float = 0.0
    alive: bool = True


@dataclass
class RunState:
    experiment: str
    params: dict[str, Any]
    python: str
    # waiting (for its turn, no child yet), pending, running, done, failed, stopped, timeout
    status: str = "pending"
    started_at: float = 0.0  # monotonic
    ended_at: float = 0.0
    pid: int | None = None
    hello: dict[str, Any] | None = None
    result: dict[str, Any] | None = None
    error: str | None = None
    exit_code: int | None = None
    stderr_tail: deque = field(default_factory=lambda: deque(maxlen=40))
    threads: dict[int, ThreadView] = field(default_factory=dict)
    processes: dict[int, ProcessView] = field(default_factory=dict)
    events: deque = field(default_factory=lambda: deque(maxlen=EVENT_BUFFER))
    events_seen: int = 0  # sequence number of the newest experiment event
    last: dict[str, dict] = field(default_factory=dict)  # newest event of each kind
    garbage_lines: int = 0
    omitted_threads: set = field(default_factory=set)  # tids past MAX_THREAD_VIEWS
    cpu_clocks: dict[int, float] = field(default_factory=dict)
    sampler_source: str = ""
    overlapped_by: list = field(default_factory=list)  # other lab runs that ran meanwhile
    turn: tuple | None = None  # (n, m) while waiting: n-th of the m runs waiting their turn
    # The GIL timeline: (tid, start_ns, end_ns, kind) from `gil_segments` events, times
    # from the child's run start; kind run | cpu | gil.
    gil_segments: deque = field(default_factory=lambda: deque(maxlen=GIL_SEGMENTS))
    gil_segments_seen: int = 0  # every well-formed segment received (the deque keeps the newest)
    samples: int = 0
    version: int = 0
    # Everything applied, for replay (lab.core.timeline); None: record nothing.
    timeline: Recording | None = field(default_factory=Recording)
    # Set on a state rebuilt by replay (lab.core.timeline.Player): the recording it comes
    # from and how many seconds into the run it stands. None on a live run.
    replay_of: Recording | None = None
    replay_at: float | None = None
    _previous: Sample | None = None

    # Reading --------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.status in ("waiting", "pending", "running")

    @property
    def duration_s(self) -> float:
        if not self.started_at:
            return 0.0
        return (self.ended_at or time.monotonic()) - self.started_at

    def events_since(self, seq: int) -> tuple[int, list[dict]]:
        """Experiment events newer than `seq`, and the new sequence number."""
        newest = self.events_seen
        missing = newest - seq
        if missing <= 0:
            return newest, []
        items = list(self.events)[-missing:] if missing < len(self.events) else list(self.events)
        return newest, items

    # Writing --------------------------------------------------------------------------
    def apply_event(self, event: dict) -> None:
        kind = event.get("ev", "")
        self.version += 1
        if self.timeline is not None:
            self._record(EVENT, event)
        if kind == "gil_segments":
            event = self._on_gil_segments(event)
        if kind not in CORE_EVENTS:
            self.events.append(event)
            self.events_seen += 1
            self.last[kind] = event
            return
        handler = getattr(self, "_on_" + kind)
        handler(event)

    def _on_gil_segments(self, event: dict) -> dict:
        """Keep the segments in their own bounded store; the event list gets the event
        without them (thousands of segments per event would make it heavy)."""
        segments = event.get("segments")
        kept = 0
        for item in segments if isinstance(segments, list) else ():
            try:
                tid, start, end, kind = item
                kind = GIL_KINDS[kind]
                segment = (int(tid), int(start), int(end), kind)
            except (TypeError, ValueError, KeyError):
                continue  # a damaged segment is skipped, the rest kept
            if segment[2] < segment[1]:
                continue
            self.gil_segments.append(segment)
            kept += 1
        self.gil_segments_seen += kept
        light = {k: v for k, v in event.items() if k != "segments"}
        light["count"] = kept
        return light

    def _on_hello(self, event: dict) -> None:
        self.hello = event
        self.status = "running"

    def _on_thread(self, event: dict) -> None:
        view = self._thread(event["pid"], event["native_id"], event.get("name", "?"))
        if view is None:
            return
        view.name, view.role = event.get("name", view.name), event.get("role", "")

    def _on_process(self, event: dict) -> None:
        self._on_thread(event)
        proc = self.processes.setdefault(event["pid"], ProcessView(event["pid"], event["name"]))
        proc.name, proc.role = event["name"], event.get("role", "")

    def _on_thread_exit(self, event: dict) -> None:
        view = self._thread(event["pid"], event["native_id"], event.get("name", "?"))
        if view is None:
            return
        view.name = event.get("name", view.name)
        view.cpu_s = event.get("cpu_s", view.cpu_s)
        view.run_delay_s = event.get("run_delay_s", view.run_delay_s)
        view.voluntary = event.get("voluntary", view.voluntary)
        view.involuntary = event.get("involuntary", view.involuntary)
        view.role = event.get("role", view.role)
        view.alive, view.final = False, True

    def _on_process_exit(self, event: dict) -> None:
        self._on_thread_exit(event)
        if event["pid"] in self.processes:
            self.processes[event["pid"]].alive = False

    def _on_result(self, event: dict) -> None:
        self.result = event.get("result")

    def _on_error(self, event: dict) -> None:
        self.error = event.get("message", "error")
        if event.get("traceback"):
            self.stderr_tail.extend(event["traceback"].splitlines()[-10:])

    def _on_cpu_clocks(self, event: dict) -> None:
        self.cpu_clocks = {int(k): v for k, v in event.get("clocks", {}).items()}

    def _thread(self, pid: int, tid: int, name: str) -> ThreadView | None:
        view = self.threads.get(tid)
        if view is None:
            if len(self.threads) >= MAX_THREAD_VIEWS:
                self.omitted_threads.add(tid)
                return None
            view = self.threads[tid] = ThreadView(pid=pid, tid=tid, name=name)
        return view

    def _record(self, kind: str, payload, now: float | None = None) -> None:
        if not self.timeline.origin and self.started_at:
            self.timeline.origin = self.started_at
        self.timeline.add(kind, payload, now)

    def apply_sample(self, sample: Sample) -> None:
        if self.timeline is not None:
            self._record(SAMPLE, sample, sample.ts)  # taken then, on the same clock
        previous = self._previous
        elapsed = (sample.ts - previous.ts) if previous else 0.0
        for tid, t in sample.threads.items():
            view = self._thread(t.pid, tid, t.name)
            if view is None or view.final:
                continue
            if not view.role and t.name:
                view.name = t.name
            before = previous.threads.get(tid) if previous else None
            if before is not None and elapsed > 0:
                view.cpu_share = max(0.0, (t.cpu_s - before.cpu_s) / elapsed)
                if t.run_delay_s is not None and before.run_delay_s is not None:
                    view.wait_share = max(0.0, (t.run_delay_s - before.run_delay_s) / elapsed)
                if t.voluntary is not None and before.voluntary is not None:
                    view.voluntary_rate = (t.voluntary - before.voluntary) / elapsed
                    view.involuntary_rate = (t.involuntary - before.involuntary) / elapsed
            view.cpu_s, view.run_delay_s = t.cpu_s, t.run_delay_s
            view.voluntary, view.involuntary = t.voluntary, t.involuntary
            view.sampled_at = sample.ts
            view.alive = True
        for tid, view in self.threads.items():
            if tid not in sample.threads and not view.final and view.sampled_at:
                view.alive = False
                view.cpu_share = view.wait_share = 0.0
        for pid, p in sample.processes.items():
            proc = self.processes.setdefault(pid, ProcessView(pid, p.name))
            proc.rss_bytes, proc.num_threads, proc.num_fds = p.rss_bytes, p.num_threads, p.num_fds
            proc.cpu_share = sum(v.cpu_share for v in self.threads.values()
                                 if v.pid == pid and v.alive)
        self._previous = sample
        self.samples += 1
        self.version += 1

    # Summaries ------------------------------------------------------------------------
    def live_threads(self) -> list[ThreadView]:
        return [t for t in self.threads.values() if t.alive]

    def thread_records(self) -> list[dict[str, Any]]:
        return [t.to_record() for t in sorted(self.threads.values(), key=lambda t: (t.pid, t.tid))]
