"""The recording a RunState keeps of everything applied to it, within a bound.

(arrival time, kind, payload) in arrival order: each experiment event and each sample.
Past the bound, samples are thinned and the repeated "latest value" events keep only the
newest of each kind (per task, thread, loop) per time bucket; hello, result and error
are never dropped (the bucket widens until the rest fits). Replay and the JSON form are
in lab/core/timeline.py. No Textual here.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

MAX_ITEMS = 20_000  # events + samples kept live (a 60 s run at 4 Hz has ~250 samples)
KEEP = frozenset({"hello", "result", "error"})  # never thinned
# Thinned only when thinning everything else was not enough: the run's shape.
SHAPE = frozenset({"thread", "thread_exit", "process", "process_exit", "phase"})
# Fields that tell apart two streams of one event kind (per task, per thread, per loop).
IDENTITY = ("task", "key", "native_id", "tid", "name", "loop", "worker", "id", "phase",
            "mode", "run", "runtime")

EVENT, SAMPLE = "e", "s"


@dataclass
class Recording:
    """(arrival time, kind, payload) in arrival order; times are monotonic seconds."""

    items: list = field(default_factory=list)
    origin: float = 0.0  # the run's start (RunState.started_at), 0 until known
    max_items: int = MAX_ITEMS
    thinned: int = 0  # items dropped to stay within the bound
    bucket_s: float = 0.0  # the current thinning bucket (0: nothing thinned yet)
    sampled: int = 0  # samples ever added (a run the kernel was never sampled for has none)
    # How the run ended (set by `close`): replay shows it at the end.
    end_s: float | None = None
    status: str = ""
    error: str | None = None
    exit_code: int | None = None

    def add(self, kind: str, payload: Any, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        if self.items and now < self.items[-1][0]:
            now = self.items[-1][0]  # arrival order is the order replayed
        if not self.origin:
            self.origin = now
        self.items.append((now, kind, payload))
        if kind == SAMPLE:
            self.sampled += 1
        if len(self.items) > self.max_items > 0:
            self.thin()

    def offset(self, item: tuple) -> float:
        return item[0] - self.origin

    @property
    def duration_s(self) -> float:
        if self.end_s is not None:
            return self.end_s
        return self.offset(self.items[-1]) if self.items else 0.0

    def close(self, state: Any) -> None:
        """Note how the run ended (from the live RunState, when the runner finishes)."""
        if state.started_at:
            self.origin = state.started_at
        self.end_s = max(state.duration_s, self.offset(self.items[-1]) if self.items else 0.0)
        self.status, self.error, self.exit_code = state.status, state.error, state.exit_code

    # The bound ---------------------------------------------------------------------------
    def thin(self, target: int | None = None) -> None:
        """Drop items until at most `target` (default 3/4 of the bound) are left."""
        target = int(self.max_items * 0.75) if target is None else target
        if len(self.items) <= target:
            return
        span = max(1e-3, self.items[-1][0] - self.items[0][0])
        bucket = max(self.bucket_s * 2, span / max(1, target // 4))
        for thin_shape in (False, True):  # first spare the run's shape, then not
            while len(self.items) > target and bucket <= span * 4:
                before = len(self.items)
                self.items = _thin(self.items, bucket, self.origin, thin_shape)
                self.thinned += before - len(self.items)
                self.bucket_s = bucket
                bucket *= 2
            if len(self.items) <= target:
                return
            bucket = span / max(1, target // 4)


def _identity(item: tuple) -> tuple:
    _t, kind, payload = item
    if kind == SAMPLE:
        return (SAMPLE,)
    return (EVENT, payload.get("ev"), payload.get("pid")) + tuple(
        str(payload.get(k)) for k in IDENTITY if k in payload)


def _thin(items: list, bucket: float, origin: float, thin_shape: bool) -> list:
    """Keep, per time bucket, the newest item of each identity (a sample, a kind of event
    from one task or thread); hello, result and error always, the run's shape unless
    `thin_shape`."""
    always, newest = set(), {}
    for index, item in enumerate(items):
        if item[1] == EVENT:
            ev = item[2].get("ev")
            if ev in KEEP or (ev in SHAPE and not thin_shape):
                always.add(index)
                continue
        newest[(int((item[0] - origin) // bucket),) + _identity(item)] = index
    kept = always.union(newest.values())
    return [item for index, item in enumerate(items) if index in kept]


