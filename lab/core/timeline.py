"""A run's timeline: everything that changed its RunState, in order, so any moment replays.

Every view draws only from a RunState, so replaying a run is rebuilding a RunState at a
time t: `state_at(recording, t, like)` feeds a fresh state the recorded events and samples
up to t. The recording itself (kept by every RunState, bounded) is lab/core/recording.py.
History keeps it as compact JSON (`to_json`/`from_json`), printed by `describe`.

No Textual here.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from typing import Any

from lab.core.recording import EVENT, KEEP, MAX_ITEMS, SAMPLE, SHAPE, Recording  # noqa: F401
from lab.core.sampler import ProcessSample, Sample, ThreadSample
from lab.core.state import RunState

FORMAT_VERSION = 1
MAX_JSON_BYTES = 1_000_000  # a record's timeline, compact JSON
# Fields naming the mode an experiment is in when it emits a `phase` start.
MODE_FIELDS = ("mode", "phase", "run", "loop", "runtime", "variant")
_NAMING = ("thread", "process", "thread_exit", "process_exit")  # events that name a thread


# Replay ------------------------------------------------------------------------------------
def _fresh(state_like: Any) -> RunState:
    state = RunState(experiment=state_like.experiment, params=dict(state_like.params),
                     python=state_like.python)
    state.sampler_source = getattr(state_like, "sampler_source", "")
    state.status = "running"
    state.pid = getattr(state_like, "pid", None)
    state.started_at = 1.0  # any non-zero base: duration_s is what views read
    state.ended_at = state.started_at
    state.timeline = None  # a replayed state records nothing of its own
    return state


class Player:
    """Replays a recording into one RunState; moving forward continues the same state
    (views fold only the new events), moving back rebuilds from the start."""

    def __init__(self, recording: Recording, like: Any):
        self.recording = recording
        self.like = like  # experiment, params, python of the run
        self.state = None
        self.index = 0
        self.t = -1.0

    @property
    def duration_s(self) -> float:
        return self.recording.duration_s

    def seek(self, t: float) -> Any:
        rec = self.recording
        t = max(0.0, min(t, self.duration_s))
        if self.state is not None and t == self.t:
            return self.state  # nothing moved: the views skip the frame
        if self.state is None or t < self.t:
            self.state, self.index = _fresh(self.like), 0
        state, items = self.state, rec.items
        while self.index < len(items) and rec.offset(items[self.index]) <= t + 1e-9:
            _t, kind, payload = items[self.index]
            if kind == EVENT:
                state.apply_event(payload)
            else:
                state.apply_sample(payload)
            self.index += 1
        self.t = state.replay_at = t
        state.replay_of = rec
        if state.pid is None and state.hello:  # the status line names the run's process
            state.pid = state.hello.get("pid")
        state.ended_at = state.started_at + t
        if t >= self.duration_s and rec.status:
            state.status, state.error, state.exit_code = rec.status, rec.error, rec.exit_code
        else:
            state.status = "running"
        state.version += 1
        return state


def state_at(recording: Recording, t: float, like: Any) -> Any:
    """A fresh RunState as the run stood `t` seconds after its start."""
    return Player(recording, like).seek(t)


def recording_of(state: Any) -> tuple[Recording | None, float]:
    """The recording behind a state and how far into it the state stands: a live run's
    own timeline (all of it), or the one a replayed state was rebuilt from, up to its cursor."""
    replayed = getattr(state, "replay_of", None)
    if replayed is not None:
        return replayed, float(getattr(state, "replay_at", None) or 0.0)
    return getattr(state, "timeline", None), math.inf


def series(state: Any, kind: str, value: Any) -> list[tuple[float, Any]]:
    """(offset s, value(event)) of every `kind` event of the run so far, in order: the whole
    run for a finished state, up to the cursor for a replayed one. `value` is a field name
    or a module-level function of the event (it keys a cache: it must read only the event);
    events where it gives None are skipped. Each call reads only the items added since the
    last one, so a live view can ask every frame."""
    recording, until = recording_of(state)
    if recording is None:
        return []
    cache = recording.__dict__.setdefault("_series", {})
    mark = (recording.thinned, recording.origin)
    scanned, seen, found = cache.get((kind, value), (0, None, []))
    if seen != mark or scanned > len(recording.items):
        scanned, found = 0, []  # thinned, or a new origin: read the items afresh
    get = (lambda event: event.get(value)) if isinstance(value, str) else value
    items = recording.items
    for item in items[scanned:]:
        if item[1] == EVENT and item[2].get("ev") == kind:
            got = get(item[2])
            if got is not None:
                found.append((recording.offset(item), got))
    cache[(kind, value)] = (len(items), mark, found)
    end = len(found)
    while end and found[end - 1][0] > until + 1e-9:  # a replay: only up to its cursor
        end -= 1
    return found[:end]


def run_span(state: Any) -> tuple[float, float]:
    """(the run's length in seconds, how far into it the state stands): a series is drawn
    over the whole run, blank past a replay's cursor."""
    recording, until = recording_of(state)
    if recording is None:
        return max(state.duration_s, 0.0), math.inf
    if until == math.inf:  # a live run: as long as it has gone on
        return max(recording.duration_s, state.duration_s), until
    span = recording.duration_s
    return span, min(until, span)


def resample(points: list[tuple[float, float]], span: float, columns: int,
             pick: Any = max, until: float = math.inf) -> list[float | None]:
    """`points` (offset, value) folded into `columns` equal slices of `span` seconds:
    `pick` of the values in each slice; a slice with none holds the previous value
    (None before the first point, and from the slice past `until` on)."""
    columns = max(1, columns)
    span = max(span, 1e-9)
    slots: list[list[float]] = [[] for _ in range(columns)]
    for at, value in points:
        slots[min(columns - 1, max(0, int(at / span * columns)))].append(value)
    out: list[float | None] = []
    held = None
    for index, slot in enumerate(slots):
        if index * span / columns > until + 1e-9:
            held = None
        elif slot:
            held = pick(slot)
        out.append(held)
    return out


def modes(recording: Recording) -> list[tuple[float, str]]:
    """(offset, name) of each mode the run entered, from its `phase` start events."""
    found = []
    for item in recording.items:
        if item[1] != EVENT or item[2].get("ev") != "phase":
            continue
        event = item[2]
        if event.get("state") not in (None, "start"):
            continue
        name = next((str(event[k]) for k in MODE_FIELDS if event.get(k) is not None), None)
        if name:
            found.append((recording.offset(item), name))
    return found


def thread_shares(recording: Recording, points: int) -> dict[int, tuple[str, list[float]]]:
    """Each thread's CPU share (fraction of one CPU) in `points` equal slices of the run:
    tid -> (name, shares), from consecutive samples' CPU seconds."""
    span = max(recording.duration_s, 1e-6)
    points = max(1, points)
    busy: dict[int, list[float]] = {}
    names: dict[int, str] = {}
    previous = previous_at = None
    for item in recording.items:
        if item[1] != SAMPLE:
            if item[1] == EVENT and item[2].get("ev") in _NAMING:
                names[item[2].get("native_id")] = str(item[2].get("name", "?"))
            continue
        sample, at = item[2], recording.offset(item)
        if previous is not None and sample.ts > previous.ts:
            elapsed = sample.ts - previous.ts
            # The share holds over the whole interval between the two samples.
            first = min(points - 1, int(previous_at / span * points))
            last = min(points - 1, int(at / span * points))
            for tid, t in sample.threads.items():
                before = previous.threads.get(tid)
                if before is None:
                    continue
                share = max(0.0, t.cpu_s - before.cpu_s) / elapsed
                row = busy.setdefault(tid, [0.0] * points)
                for slot in range(first, last + 1):
                    row[slot] = max(row[slot], share)
                names.setdefault(tid, t.name)
        previous, previous_at = sample, at
    return {tid: (names.get(tid, "?"), row) for tid, row in busy.items()}


# Compact JSON ---------------------------------------------------------------------------------
def _r(value: Any, places: int = 6) -> Any:
    return round(value, places) if isinstance(value, float) else value


def to_json(recording: Recording, max_bytes: int = MAX_JSON_BYTES) -> dict[str, Any]:
    """The recording as a JSON-ready dict of at most `max_bytes` (thinned further if
    needed). Samples are rows: names once per thread, figures per sample."""
    rec = recording
    while True:
        document = _document(rec)
        size = len(json.dumps(document, separators=(",", ":")))
        if size <= max_bytes or len(rec.items) <= 8:
            return document
        smaller = dataclasses.replace(rec, items=list(rec.items))
        smaller.thin(int(len(rec.items) * min(0.7, max_bytes / size)))
        if len(smaller.items) >= len(rec.items):
            return document
        rec = smaller


def _document(rec: Recording) -> dict[str, Any]:
    names: dict[str, str] = {}
    items = []
    for item in rec.items:
        t = round(rec.offset(item), 4)
        if item[1] == EVENT:
            items.append([t, item[2]])
            continue
        sample = item[2]
        threads = []
        for tid, s in sample.threads.items():
            names.setdefault(str(tid), s.name)
            threads.append([tid, s.pid, _r(s.cpu_s), _r(s.run_delay_s), s.voluntary,
                            s.involuntary])
        procs = []
        for pid, p in sample.processes.items():
            names.setdefault("p%d" % pid, p.name)
            procs.append([pid, p.ppid, p.rss_bytes, p.num_threads, p.num_fds])
        items.append([t, round(sample.ts - rec.origin, 6), threads, procs])
    return {"v": FORMAT_VERSION, "duration_s": round(rec.duration_s, 4), "status": rec.status,
            "error": rec.error, "exit_code": rec.exit_code, "thinned": rec.thinned,
            "names": names, "items": items}


class BadTimeline(ValueError):
    """One line: what is wrong with a stored timeline."""


def from_json(document: Any) -> Recording:
    """A Recording from `to_json`'s dict; BadTimeline names the first defect."""
    if not isinstance(document, dict):
        raise BadTimeline("the timeline is not an object")
    if document.get("v") != FORMAT_VERSION:
        raise BadTimeline("the timeline has an unknown format version %r"
                          % (document.get("v"),))
    names, items = document.get("names"), document.get("items")
    if not isinstance(names, dict) or not isinstance(items, list):
        raise BadTimeline("the timeline has no names or no items")
    duration = document.get("duration_s")
    if not _finite(duration) or duration < 0:
        raise BadTimeline("the timeline's duration_s is not a number of seconds")
    rec = Recording(origin=1.0)
    rec.end_s = float(duration)
    rec.status = document.get("status") if isinstance(document.get("status"), str) else ""
    rec.error = document.get("error") if isinstance(document.get("error"), str) else None
    rec.exit_code = document.get("exit_code") if isinstance(document.get("exit_code"),
                                                              int) else None
    last = 0.0
    for index, item in enumerate(items):
        try:
            rec.items.append(_item(item, names, rec.origin))
        except (TypeError, ValueError, KeyError, IndexError):
            raise BadTimeline("the timeline's item %d is damaged" % index) from None
        if rec.items[-1][0] < last:
            raise BadTimeline("the timeline's item %d goes back in time" % index)
        last = rec.items[-1][0]
    rec.sampled = sum(1 for item in rec.items if item[1] == SAMPLE)
    return rec


def _finite(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


def _item(item: Any, names: dict, origin: float) -> tuple:
    if not isinstance(item, list) or not _finite(item[0]):
        raise ValueError
    at = origin + float(item[0])
    if len(item) == 2:
        event = item[1]
        if not isinstance(event, dict) or not isinstance(event.get("ev"), str):
            raise ValueError
        return (at, EVENT, event)
    _t, ts, threads, procs = item
    if not _finite(ts):
        raise ValueError
    sample = Sample(ts=origin + float(ts))
    for tid, pid, cpu_s, delay, vol, invol in threads:
        if not (isinstance(tid, int) and isinstance(pid, int) and _finite(cpu_s)):
            raise ValueError
        for value in (delay, vol, invol):
            if value is not None and not _finite(value):
                raise ValueError
        sample.threads[tid] = ThreadSample(pid, tid, str(names.get(str(tid), "?")),
                                           float(cpu_s), delay, vol, invol)
    for pid, ppid, rss, num_threads, fds in procs:
        if not all(isinstance(v, int) for v in (pid, ppid, rss, num_threads, fds)):
            raise ValueError
        sample.processes[pid] = ProcessSample(pid, ppid, str(names.get("p%d" % pid, "?")),
                                              rss, num_threads, fds)
    return (at, SAMPLE, sample)


def load_json(document: Any) -> tuple[Recording | None, str | None]:
    """(recording, None), or (None, one line why) for a damaged one; (None, None) if absent."""
    if document is None:
        return None, None
    try:
        return from_json(document), None
    except BadTimeline as exc:
        return None, str(exc)
    except RecursionError:
        return None, "the timeline is nested too deeply"


# As text ------------------------------------------------------------------------------------
def _figures(event: dict, limit: int = 4) -> str:
    """An event's scalar figures, briefly (`counter=1998 expected=2000`)."""
    parts = []
    for key, value in event.items():
        if key in ("v", "ev", "ts", "pid") or isinstance(value, (dict, list)):
            continue
        if isinstance(value, float):
            value = "%.4g" % value
        parts.append("%s=%s" % (key, value))
        if len(parts) == limit:
            break
    return " ".join(parts)


def describe(recording: Recording, step_s: float | None = None) -> list[str]:
    """The timeline as lines: per slice of the run (a second, finer for short runs) the
    mode, each thread's CPU share, and the events that arrived with their latest figures."""
    span = recording.duration_s
    if step_s is None:
        step_s = 1.0 if span >= 8 else max(0.05, span / 8)
    slices = max(1, math.ceil(span / step_s - 1e-9))
    samples = sum(1 for item in recording.items if item[1] == SAMPLE)
    lines = ["timeline: %.2f s, %d samples, %d events%s, one line per %.2f s" % (
        span, samples, len(recording.items) - samples,
        " (%d thinned)" % recording.thinned if recording.thinned else "", step_s)]
    shares = thread_shares(recording, slices)
    mode_starts = modes(recording)
    events: list[list[dict]] = [[] for _ in range(slices)]
    for item in recording.items:
        if item[1] == EVENT:
            events[min(slices - 1, int(recording.offset(item) / step_s))].append(item[2])
    for index in range(slices):
        start = index * step_s
        mode = [name for at, name in mode_starts if at < start + step_s]
        threads = sorted(((row[index], name) for name, row in shares.values()), reverse=True)
        busy = " ".join("%s %d%%" % (name, round(share * 100)) for share, name in threads[:6]
                        if share >= 0.005) or "no thread on a CPU"
        lines.append("%7.2f s  %-12s %s" % (start, (mode[-1] if mode else "-")[:12], busy))
        for at, name in mode_starts:  # every change of mode, however short the slice
            if start <= at < start + step_s or (index == slices - 1 and at >= start):
                lines.append("           mode %s from %.2f s" % (name, at))
        if events[index]:
            counts: dict[str, int] = {}
            newest: dict[str, dict] = {}
            for event in events[index]:
                kind = str(event.get("ev"))
                counts[kind] = counts.get(kind, 0) + 1
                newest[kind] = event
            for kind, count in counts.items():
                figures = _figures(newest[kind])
                lines.append("           %s%s%s" % (kind, " x%d" % count if count > 1 else "",
                                                    ": " + figures if figures else ""))
    if recording.status:
        lines.append("%7.2f s  ended: %s%s" % (span, recording.status,
                                                ": " + recording.error if recording.error else ""))
    return lines


def like_record(record: dict) -> Any:
    """What a replayed RunState takes from a history record: experiment, params, python."""
    from types import SimpleNamespace

    interp = record.get("interpreter") if isinstance(record.get("interpreter"), dict) else {}
    sampler = record.get("sampler") if isinstance(record.get("sampler"), dict) else {}
    return SimpleNamespace(experiment=str(record.get("experiment", "?")),
                           params=dict(record.get("params") or {}),
                           python=str(interp.get("executable") or ""),
                           sampler_source=str(sampler.get("source") or ""))
