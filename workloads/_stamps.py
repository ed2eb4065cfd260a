"""Progress stamps: when each worker thread ran bytecode, and what it waited for otherwise.

A worker notes the time (perf_counter_ns) every ~0.15 ms of its work. A gap in its
notes longer than a few spacings is a time it ran no bytecode. At the first note after
a gap the thread reads its own schedstat: how much run_delay (runnable, waiting for a
CPU) grew since the last read splits the gap into waiting for a CPU and the rest,
waiting for the GIL (or asleep). The notes are folded into segments as they are taken,
so memory stays bounded however long the run:

    [tid, start_ns, end_ns, kind]   kind: "run" | "cpu" | "gil"

times relative to the timeline's origin (the run's start). A "hold" is one run segment
of one thread between two hand-offs (a thread's first and last segments are not holds).
The child sends segments in `gil_segments` events, at most ~10 a second, capped in total
(what is left out is counted), and a summary for its result. Standard library, 3.9+.
"""

from __future__ import annotations

import os
import threading
import time
from contextlib import contextmanager

SPACING_NS = 150_000  # aim: one stamp per 0.15 ms of work
GAP_FACTOR = 3  # a gap this many spacings long: the thread ran no bytecode
BATCH_NS = 100_000_000  # at most one event per 0.1 s; a long run segment is cut as often
MAX_SENT = 60_000  # segments sent per run; past it they are counted, not sent
MAX_PER_EVENT = 5_000
MAX_HOLDS = 200_000
PREEMPTED = 0.1  # a gap less than this share asleep: preempted while holding the GIL  # hold durations kept per run for the summary

now_ns = time.perf_counter_ns  # CLOCK_MONOTONIC on Linux: the same clock in every process


def _pread_holding_the_gil():
    """libc's pread called through ctypes.PyDLL, which keeps the GIL: os.pread lets go of
    it, and a thread that just got the GIL would hand it straight back (and wait a whole
    switch interval for it) only to read how long it waited. None: use os.pread."""
    try:
        import ctypes
        import ctypes.util

        libc = ctypes.PyDLL(ctypes.util.find_library("c") or "libc.so.6")
        pread = libc.pread
        pread.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_long)
        pread.restype = ctypes.c_ssize_t
    except (OSError, AttributeError, ImportError):
        return None

    def read(fd, size):
        buffer = ctypes.create_string_buffer(size)
        got = pread(fd, buffer, size, 0)
        return buffer.raw[:max(0, got)]

    return read


_PREAD = None


def _run_delay_reader():
    """(read, fd): read() gives the calling thread's run_delay in ns, or None where the
    kernel has no schedstat. One open file per thread, re-read with pread (~2 µs)."""
    global _PREAD
    if _PREAD is None:
        _PREAD = _pread_holding_the_gil() or (lambda fd, size: os.pread(fd, size, 0))
    pread = _PREAD
    for path in ("/proc/thread-self/schedstat",
                 "/proc/self/task/%d/schedstat" % threading.get_native_id()):
        try:
            fd = os.open(path, os.O_RDONLY)
            break
        except OSError:
            continue
    else:
        return (lambda: None), None

    def read():
        try:
            return int(pread(fd, 128).split()[1])
        except (OSError, ValueError, IndexError):
            return None

    return read, fd


def percentile(values, q):
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class NoStamps:
    """Stamps off: the same loops, nothing noted."""

    every = None

    def chunks(self, n):
        yield range(n)

    def blocks(self):
        pass

    def resumed(self, answered_ns=None):
        pass

    def finish(self):
        pass


NO_STAMPS = NoStamps()


def for_this_thread(timeline, name=""):
    """The calling thread's recorder, or NO_STAMPS when stamps are off (timeline None)."""
    return NO_STAMPS if timeline is None else timeline.thread(name)


def answered_at(reply):
    """The send time a peer put in the last 8 bytes of its answer (see convoy's peer)."""
    return int.from_bytes(reply[-8:], "little") if len(reply) >= 8 else None


def stamped(data):
    """`data` with its last 8 bytes replaced by the time now: when the answer left."""
    return data[:-8] + now_ns().to_bytes(8, "little")


class Timeline:
    """One run's stamps: calibration, the outbox of segments, the summary."""

    def __init__(self, out, origin_ns=None):
        self.out = out
        self.origin = origin_ns if origin_ns is not None else now_ns()
        self.every = 1000  # loop iterations between stamps (calibrate() sets it)
        self.spacing_ns = SPACING_NS
        self._lock = threading.Lock()
        self._outbox = []
        self._last_emit = 0
        self.sent = self.dropped = self.events = 0
        self.holds = []  # ns
        self.waits = []  # ns: blocked threads, from what they waited for until they ran
        self.resumes = 0
        self.span_ns = 0  # time inside round(): where hand-offs are counted
        self.per_thread = {}

    @property
    def gap_ns(self):
        return GAP_FACTOR * self.spacing_ns

    def calibrate(self, loop, n=200_000):
        """Time `loop(n)` (the experiment's own loop body) and set the stamp period so
        a stamp falls every ~SPACING_NS of that work."""
        started = now_ns()
        loop(n)
        per_iteration = max(1.0, (now_ns() - started) / n)
        self.every = max(50, int(SPACING_NS / per_iteration))
        self.spacing_ns = int(self.every * per_iteration)

    def thread(self, name=""):
        """A recorder for the calling thread."""
        return Recorder(self, name)

    @contextmanager
    def round(self):
        """A stretch of the run where threads contend: hand-offs per second count here."""
        started = now_ns()
        try:
            yield self
        finally:
            self.span_ns += now_ns() - started
            self.flush()

    # From the recorders ----------------------------------------------------------------
    def take(self, recorder, segments, final=False):
        """A recorder hands over its closed segments; send a batch when one is due."""
        with self._lock:
            room = MAX_SENT - self.sent - len(self._outbox)
            if room < len(segments):
                self.dropped += len(segments) - max(0, room)
                segments = segments[:max(0, room)]
            self._outbox.extend(segments)
            if final:
                self.resumes += recorder.resumes
                stats = self.per_thread.setdefault(recorder.tid, {
                    "tid": recorder.tid, "name": recorder.name, "holds": 0, "run_ms": 0.0})
                stats["holds"] += len(recorder.holds)
                stats["hold_ms_p50"] = _ms(percentile([h / 1e6 for h in recorder.holds], 0.5))
                stats["run_ms"] += recorder.run_ns / 1e6
                room = MAX_HOLDS - len(self.holds)
                self.holds.extend(recorder.holds[:max(0, room)])
                self.waits.extend(recorder.waits[:max(0, MAX_HOLDS - len(self.waits))])
            due = now_ns() - self._last_emit >= BATCH_NS
            if self._outbox and (due or len(self._outbox) >= MAX_PER_EVENT):
                self._emit()

    def flush(self):
        with self._lock:
            if self._outbox:
                self._emit()

    def _emit(self):
        batch, self._outbox = self._outbox[:MAX_PER_EVENT], self._outbox[MAX_PER_EVENT:]
        self.sent += len(batch)
        self.events += 1
        self._last_emit = now_ns()
        self.out.emit("gil_segments", origin_ns=self.origin, segments=batch)

    # The summary -----------------------------------------------------------------------
    def summary(self, switch_interval_s):
        self.flush()
        holds_ms = [h / 1e6 for h in self.holds]
        span_s = self.span_ns / 1e9
        return {
            "stamps": True,
            "handoffs_per_s": round(self.resumes / span_s, 1) if span_s else None,
            "handoffs": self.resumes,
            "hold_ms": {"p50": _ms(percentile(holds_ms, 0.5)),
                        "p95": _ms(percentile(holds_ms, 0.95)), "count": len(holds_ms)},
            "switch_interval_ms": round(switch_interval_s * 1000, 3),
            "stamp_spacing_ms": round(self.spacing_ns / 1e6, 3),
            # Holds and waits shorter than this cannot be told apart from running on.
            "resolution_ms": round(self.gap_ns / 1e6, 3),
            "segments_sent": self.sent,
            "segments_dropped": self.dropped,
            "threads": [dict(t, run_ms=round(t["run_ms"], 1))
                        for t in self.per_thread.values()],
        }


    def io_waits(self):
        """How long a thread that blocked in the kernel took to run again once its answer
        came (waiting for the GIL and for a CPU)."""
        waits = [w / 1e6 for w in self.waits]
        return {"p50": _ms(percentile(waits, 0.5)), "p95": _ms(percentile(waits, 0.95)),
                "count": len(waits)}


def _ms(value):
    return None if value is None else round(value, 3)


class Recorder:
    """One thread's stamps, folded into segments as they come (only that thread calls it)."""

    def __init__(self, timeline, name=""):
        self.tl = timeline
        self.name = name or threading.current_thread().name
        self.tid = threading.get_native_id()
        self.every = timeline.every
        self._read_delay, self._fd = _run_delay_reader()
        self.delay = self._read_delay()
        self.pending = []
        self.holds = []
        self.waits = []
        self.resumes = 0
        self.run_ns = 0
        self.last = now_ns()
        self.seg_start = self.hold_start = self.last  # the run segment drawn / the hold
        self.first_hold = True
        self.next_batch = self.last + BATCH_NS

    # CPU-bound work: `for chunk in stamps.chunks(n): for i in chunk: ...` -------------
    def chunks(self, n):
        """range(n) in slices of `every`, with a stamp after each slice."""
        step, gap, last = self.every, self.tl.gap_ns, self.last
        for start in range(0, n, step):
            yield range(start, min(start + step, n))
            now = now_ns()
            if now - last > gap:
                half = self.tl.spacing_ns // 2  # the gap began and ended between stamps
                self._gap(last + half, now - half)
            elif now > self.next_batch:
                self._cut(now)
            last = now
        self.last = last

    # A thread that blocks in the kernel (an I/O thread) ---------------------------------
    def blocks(self):
        """About to block (the GIL is let go): the run segment ends here."""
        self.last = now_ns()

    def resumed(self, answered_ns=None):
        """Back from the kernel holding the GIL. `answered_ns`: when what it waited for
        happened (the peer's send time); until then it was asleep (no segment drawn), from
        then on it waited for a CPU and the GIL."""
        now = now_ns()
        woke = self.last if answered_ns is None else max(self.last, min(answered_ns, now))
        if answered_ns is not None:
            self.waits.append(now - woke)
        self._close_run(self.last, hold=True)
        if not self._waits(woke, now):
            self.resumes += 1  # it let go of the GIL to block: taking it back is a hand-off
        self.seg_start = self.hold_start = now
        if now > self.next_batch:
            self._hand_over(now)
        self.last = now

    # Segments --------------------------------------------------------------------------
    def _gap(self, ended, back):
        """No stamps from `ended` to `back`. Asleep most of it: it waited for the GIL,
        which another thread held (a hand-off, the hold ends). Runnable nearly all of it:
        the kernel preempted it, and it kept the GIL meanwhile (the hold goes on)."""
        self._close_run(ended, hold=False)
        if self._waits(ended, back):
            self._end_hold(ended)
            self.hold_start = back
        self.seg_start = back
        if back > self.next_batch:
            self._hand_over(back)

    def _close_run(self, end, hold):
        if end > self.seg_start:
            self._add(self.seg_start, end, "run")
            self.run_ns += end - self.seg_start
        if hold:
            self._end_hold(end)

    def _end_hold(self, end):
        if not self.first_hold and end > self.hold_start:
            self.holds.append(end - self.hold_start)
        self.first_hold = False

    def _waits(self, start, end):
        """[start, end] without bytecode: run_delay's growth is the wait for a CPU (put
        last: a thread woken for the GIL then queues for a CPU), the rest the GIL. True
        when it waited for the GIL (a hand-off), False when it was only preempted."""
        delay = self._read_delay()
        cpu = 0
        if delay is not None and self.delay is not None:
            cpu = min(max(0, delay - self.delay), max(0, end - start))
        self.delay = delay
        if end - start - cpu < PREEMPTED * (end - start):
            cpu = end - start  # the rest is the stamps' own rounding
        if end - cpu > start:
            self._add(start, end - cpu, "gil")
        if cpu:
            self._add(end - cpu, end, "cpu")
        handed = cpu < end - start
        self.resumes += handed
        return handed

    def _cut(self, now):
        """A long run segment is sent in pieces, so the view sees it while it lasts."""
        self._close_run(now, hold=False)
        self.seg_start = now
        self._hand_over(now)

    def _add(self, start, end, kind):
        origin = self.tl.origin
        self.pending.append([self.tid, start - origin, end - origin, kind])

    def _hand_over(self, now):
        self.next_batch = now + BATCH_NS
        pending, self.pending = self.pending, []
        self.tl.take(self, pending)

    def finish(self):
        """The thread's work is done: close its last segment (not a hold) and hand over."""
        self._close_run(self.last + self.tl.spacing_ns // 2, hold=False)
        pending, self.pending = self.pending, []
        self.tl.take(self, pending, final=True)
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
