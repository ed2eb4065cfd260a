"""What the kernel says about a run's process tree: per-thread CPU, run_delay, switches.

Primary source: /proc/PID/task/TID/schedstat (nanoseconds on a CPU and nanoseconds
runnable-but-waiting, updated at every scheduler tick and every switch) and
/proc/PID/task/TID/status (voluntary and involuntary context switches).
Fallback where schedstat is missing: psutil, whose per-thread times come in clock
ticks (10 ms), far too coarse for a 4 Hz view - the gauge says so.

Reads are a handful of small files per thread: cheap enough for the UI's loop.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

# A process with thousands of threads (the `scale` and spawn experiments) would cost the
# sampler thousands of file reads per tick and slow the very threads it measures: past
# this many, only the first (lowest-numbered: main and the earliest workers) are read.
MAX_THREADS_PER_PROCESS = 128

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
CLOCK_TICK_S = 1.0 / (os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100)


@dataclass(frozen=True)
class Gauge:
    """Where a number comes from and how fine it is."""

    name: str
    source: str
    resolution_s: float
    note: str = ""


SCHEDSTAT_GAUGES = (
    Gauge("cpu_s", "/proc/PID/task/TID/schedstat", 1e-9,
          "nanoseconds, brought up to date at each scheduler tick and switch"),
    Gauge("run_delay_s", "/proc/PID/task/TID/schedstat", 1e-9,
          "time runnable but waiting for a CPU"),
    Gauge("voluntary", "/proc/PID/task/TID/status", 1, "switches the thread asked for (waits)"),
    Gauge("involuntary", "/proc/PID/task/TID/status", 1, "preemptions by the scheduler"),
)
PSUTIL_GAUGES = (
    Gauge("cpu_s", "psutil Process.threads()", CLOCK_TICK_S, "clock ticks: too coarse for 4 Hz"),
    Gauge("run_delay_s", "unavailable", 0.0, "no run_delay without schedstat"),
)


@dataclass
class ThreadSample:
    pid: int
    tid: int
    name: str
    cpu_s: float
    run_delay_s: float | None
    voluntary: int | None
    involuntary: int | None


@dataclass
class ProcessSample:
    pid: int
    ppid: int
    name: str
    rss_bytes: int
    num_threads: int
    num_fds: int
    threads_sampled: int = 0


def first_threads(tids: list[str]) -> list[str]:
    if len(tids) <= MAX_THREADS_PER_PROCESS:
        return tids
    return sorted(tids, key=int)[:MAX_THREADS_PER_PROCESS]


@dataclass
class Sample:
    ts: float  # time.monotonic(), the same clock the child stamps its events with
    threads: dict[int, ThreadSample] = field(default_factory=dict)
    processes: dict[int, ProcessSample] = field(default_factory=dict)


def _read(path: str) -> str | None:
    """A small /proc file in one read (raw os calls: no buffered text wrapper to build)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # the thread or process ended between listing and reading
        return None
    try:
        return os.read(fd, 8192).decode("utf-8", "replace")
    except OSError:
        return None
    finally:
        os.close(fd)


def _field(text: str, key: str) -> str:
    """One `Key:\tvalue` line of a /proc status file, without parsing the other ~55."""
    start = text.find(key)
    if start < 0:
        return ""
    start += len(key)
    end = text.find("\n", start)
    return text[start:end].strip()


class ProcSampler:
    """Samples a process tree from /proc (Linux with schedstat)."""

    source = "schedstat"
    gauges = SCHEDSTAT_GAUGES

    # RSS and open fds move slowly and cost a directory listing: read them once a second.
    DETAIL_INTERVAL_S = 1.0

    def __init__(self, root_pid: int):
        self.root_pid = root_pid
        self._details: dict[int, tuple[float, int, int]] = {}  # pid -> (read at, rss, fds)

    def _process_details(self, pid: int, now: float) -> tuple[int, int]:
        cached = self._details.get(pid)
        if cached is not None and now - cached[0] < self.DETAIL_INTERVAL_S:
            return cached[1], cached[2]
        try:
            num_fds = len(os.listdir("/proc/%d/fd" % pid))
        except OSError:
            num_fds = 0
        statm = _read("/proc/%d/statm" % pid) or "0 0"
        rss = int(statm.split()[1]) * PAGE_SIZE
        self._details[pid] = (now, rss, num_fds)
        return rss, num_fds

    def tree(self) -> list[int]:
        """The root and all its descendants, from /proc/PID/task/TID/children."""
        found, todo = [], [self.root_pid]
        while todo:
            pid = todo.pop()
            found.append(pid)
            try:
                tids = first_threads(os.listdir("/proc/%d/task" % pid))
            except OSError:
                continue
            for tid in tids:
                text = _read("/proc/%d/task/%s/children" % (pid, tid))
                if text:
                    todo.extend(int(c) for c in text.split())
        return found

    def sample(self) -> Sample:
        sample = Sample(ts=time.monotonic())
        for pid in self.tree():
            self._sample_process(pid, sample)
        return sample

    def _sample_process(self, pid: int, sample: Sample) -> None:
        try:
            all_tids = os.listdir("/proc/%d/task" % pid)
        except OSError:
            return
        tids = first_threads(all_tids)
        status = _read("/proc/%d/status" % pid)
        if status is None:
            return
        if _field(status, "\nState:").startswith("Z"):
            return
        rss, num_fds = self._process_details(pid, sample.ts)
        sample.processes[pid] = ProcessSample(
            pid=pid,
            ppid=int(_field(status, "\nPPid:") or 0),
            name=_field(status, "Name:") or "?",
            rss_bytes=rss,
            num_threads=int(_field(status, "\nThreads:") or len(all_tids)),
            num_fds=num_fds,
            threads_sampled=len(tids),
        )
        for tid in tids:
            base = "/proc/%d/task/%s/" % (pid, tid)
            schedstat = _read(base + "schedstat")
            thread_status = _read(base + "status")
            if schedstat is None or thread_status is None:
                continue
            on_cpu, waiting, _ = schedstat.split()
            sample.threads[int(tid)] = ThreadSample(
                pid=pid,
                tid=int(tid),
                name=_field(thread_status, "Name:") or "?",
                cpu_s=int(on_cpu) / 1e9,
                run_delay_s=int(waiting) / 1e9,
                voluntary=int(_field(thread_status, "\nvoluntary_ctxt_switches:") or 0),
                involuntary=int(_field(thread_status, "\nnonvoluntary_ctxt_switches:") or 0),
            )


class PsutilSampler:
    """Portable fallback: coarse per-thread times, no run_delay."""

    source = "psutil"
    gauges = PSUTIL_GAUGES

    def __init__(self, root_pid: int):
        import psutil

        self._psutil = psutil
        self.root_pid = root_pid

    def sample(self) -> Sample:
        psutil = self._psutil
        sample = Sample(ts=time.monotonic())
        try:
            root = psutil.Process(self.root_pid)
            procs = [root] + root.children(recursive=True)
        except psutil.Error:
            return sample
        for proc in procs:
            try:
                with proc.oneshot():
                    threads = proc.threads()
                    switches = proc.num_ctx_switches() if len(threads) == 1 else None
                    sample.processes[proc.pid] = ProcessSample(
                        pid=proc.pid, ppid=proc.ppid(), name=proc.name(),
                        rss_bytes=proc.memory_info().rss, num_threads=len(threads),
                        num_fds=proc.num_fds() if hasattr(proc, "num_fds") else 0,
                    )
            except psutil.Error:
                continue
            for t in threads:
                sample.threads[t.id] = ThreadSample(
                    pid=proc.pid, tid=t.id, name=proc.name(),
                    cpu_s=t.user_time + t.system_time, run_delay_s=None,
                    voluntary=switches.voluntary if switches else None,
                    involuntary=switches.involuntary if switches else None,
                )
        return sample


def make_sampler(root_pid: int) -> ProcSampler | PsutilSampler:
    if os.path.exists("/proc/self/task/%d/schedstat" % os.getpid()):
        return ProcSampler(root_pid)
    return PsutilSampler(root_pid)


def own_cpu_seconds() -> float:
    """CPU used by this process (the lab itself), for the observer-cost gauge."""
    times = os.times()
    return times.user + times.system
