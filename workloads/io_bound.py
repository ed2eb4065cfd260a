"""io-bound: waiting work, one after another, in threads, and on one asyncio loop."""

from __future__ import annotations

import asyncio
import os
import threading
import time
import urllib.request

from ._limits import executor_threads
from ._proto import name_this_thread, own_status
from ._serverproc import DelayServer
from ._spec import Param, ParamError

NAME = "io-bound"
TITLE = "I/O-bound work: sequential vs threads vs asyncio, against a local delay server"
LESSON = """\
Each request asks a server to wait `delay` seconds before it answers; the lab runs
that server itself on 127.0.0.1 (no internet needed). Waiting needs no CPU: a thread
blocked in recv() has released the GIL, and a coroutine awaiting a socket is just an
entry in epoll's interest list. So N requests take about N x delay one after another,
but about one delay in N threads, and about one delay as N tasks on one thread.
The difference between the last two is the price of each waiter: a thread has a
kernel thread and a stack, a task is a small Python object.
"""
REQUIRES = ("aiohttp",)
TIMEOUT_S = 300
LESSON_CODE = ("fetch", "run_threads", "fetch_async", "gather_all")
# May run beside other runs: it waits on a local server; N waits vs one wait holds on busy
# CPUs.
CPU_BOUND = False

MODES = ("sequential", "threads", "asyncio")
PARAMS = (
    Param.int("requests", 10, 1, 1000, "how many requests per mode (each needs a socket)"),
    Param.float("delay", 0.3, 0.0, 5.0, "seconds the server waits before it answers"),
    Param.choice("modes", "all", ("all",) + MODES, "which modes to run"),
)

FD_RESERVE = 64
SEQUENTIAL_CAP_S = 120  # one request after another: N x delay must stay within the run  # descriptors the child needs besides one socket per request
SAMPLE_S = 0.05


def tasks_needed(params):
    """Main thread, the sampler, the delay server with its default executor, and the
    largest mode: a thread per request, or asyncio's default executor for aiohttp."""
    threads = params["requests"] if params["modes"] in ("all", "threads") else 0
    return "requests", 3 + executor_threads() + max(threads, executor_threads())


def check_limits(params, timeout_s):
    import resource

    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and params["requests"] + FD_RESERVE > soft:
        raise ParamError("requests", "parameter 'requests' must be at most %d here: each "
                         "request holds a socket and RLIMIT_NOFILE is %d"
                         % (max(1, soft - FD_RESERVE), soft))
    if params["modes"] in ("all", "sequential"):
        total = params["requests"] * params["delay"]
        if total > SEQUENTIAL_CAP_S:
            raise ParamError("requests", "parameter 'requests' x 'delay' must be at most %d s "
                             "when the sequential mode runs (got %g s); lower them or choose "
                             "modes=threads or modes=asyncio" % (SEQUENTIAL_CAP_S, total))


# The three ways to wait, as plainly as the article's examples ---------------------------

# No proxies: the lab talks to 127.0.0.1 only, whatever http_proxy says.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def fetch(url):
    with OPENER.open(url, timeout=60) as response:
        return response.read()


def run_sequential(urls, track):
    for url in urls:
        track(fetch, url)


def run_threads(urls, track):
    def worker(index, url):
        name_this_thread("io-%d" % index)
        track(fetch, url)

    threads = [threading.Thread(target=worker, args=(i, url), daemon=True)
               for i, url in enumerate(urls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


async def fetch_async(session, url):
    async with session.get(url) as response:
        return await response.read()


async def gather_all(urls, track_async):
    import aiohttp

    # limit=0: no connection cap, so every request is in flight at once (the default is 100).
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(track_async(fetch_async, session, url) for url in urls))


def run_asyncio(urls, track):
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(gather_all(urls, track.async_call))
    finally:
        loop.close()


RUNNERS = {"sequential": run_sequential, "threads": run_threads, "asyncio": run_asyncio}


# Measurement -----------------------------------------------------------------------------


def proc_status():
    """This process's resident and virtual memory (kB) and thread count, from /proc."""
    found = own_status("VmRSS", "VmSize", "Threads")
    found.setdefault("Threads", threading.active_count())
    return found


class Tracker:
    """Counts requests in flight and done; a sampler thread reports them a few times a
    second with memory and thread counts, and keeps each mode's peaks."""

    def __init__(self, out):
        self.out = out
        self.lock = threading.Lock()
        self.mode = ""
        self.in_flight = self.done = self.requests = 0
        self.peak = {}
        self._stop = threading.Event()

    def __call__(self, function, *args):
        with self.lock:
            self.in_flight += 1
        try:
            return function(*args)
        finally:
            with self.lock:
                self.in_flight -= 1
                self.done += 1

    async def async_call(self, function, *args):
        self.in_flight += 1  # one thread: no lock needed on the loop
        try:
            return await function(*args)
        finally:
            self.in_flight -= 1
            self.done += 1

    def begin(self, mode, requests):
        with self.lock:
            self.mode, self.requests, self.in_flight, self.done = mode, requests, 0, 0
        base = proc_status()
        self.peak = {"in_flight": 0, "VmRSS": base.get("VmRSS", 0),
                     "VmSize": base.get("VmSize", 0), "Threads": base.get("Threads", 1),
                     "base": base}

    def sample(self):
        status = proc_status()
        peak = self.peak
        in_flight = self.in_flight
        if in_flight >= peak["in_flight"]:
            peak["in_flight"] = in_flight
            # Memory is compared at the moment most requests were waiting at once.
            peak["at_peak"] = status
        for key in ("VmRSS", "VmSize", "Threads"):
            peak[key] = max(peak[key], status.get(key, 0))
        times = os.times()
        self.out.emit("io", mode=self.mode, in_flight=in_flight, done=self.done,
                      requests=self.requests, threads=status.get("Threads", 0),
                      rss_kb=status.get("VmRSS", 0), vm_kb=status.get("VmSize", 0),
                      cpu_s=round(times.user + times.system, 4))

    def watch(self):
        name_this_thread("io-sampler")
        while not self._stop.wait(SAMPLE_S if self.requests else 0.2):
            if self.mode:
                self.sample()

    def stop(self):
        self._stop.set()


def measure(mode, urls, delay, tracker, out):
    out.emit("phase", mode=mode, state="start", requests=len(urls))
    tracker.begin(mode, len(urls))
    cpu_before, started = os.times(), time.perf_counter()
    RUNNERS[mode](urls, tracker)
    wall = time.perf_counter() - started
    cpu_after = os.times()
    tracker.sample()
    peak = tracker.peak
    base = peak["base"]
    at_peak = peak.get("at_peak", base)
    waiting = max(1, peak["in_flight"])
    summary = {
        "wall_s": round(wall, 4),
        "ideal_s": round(delay * (len(urls) if mode == "sequential" else 1), 4),
        "cpu_s": round(sum(cpu_after[:2]) - sum(cpu_before[:2]), 4),
        "peak_in_flight": peak["in_flight"],
        "peak_threads": peak["Threads"],
        "rss_per_waiter_kb": round((at_peak.get("VmRSS", 0) - base.get("VmRSS", 0)) / waiting, 1),
        "virtual_per_waiter_kb": round(
            (at_peak.get("VmSize", 0) - base.get("VmSize", 0)) / waiting, 1),
    }
    out.emit("phase", mode=mode, state="end", **summary)
    return summary


def run(params, out):
    import aiohttp  # noqa: F401  (loaded before any baseline: its import is not a task's cost)

    requests, delay = params["requests"], params["delay"]
    modes = MODES if params["modes"] == "all" else (params["modes"],)
    tracker = Tracker(out)
    sampler = threading.Thread(target=tracker.watch, name="io-sampler", daemon=True)
    with DelayServer(out) as server:
        urls = [server.url("/delay/%g" % delay)] * requests
        sampler.start()
        results = {}
        for mode in modes:
            server.stats(reset=True)
            results[mode] = measure(mode, urls, delay, tracker, out)
            results[mode]["server_max_in_flight"] = server.stats().get("max_in_flight")
        tracker.stop()
        sampler.join()
        server_info = {"host": server.host, "port": server.port, "pid": server.pid}
    result = {
        "modes": results,
        "requests": requests,
        "delay_s": delay,
        "ideal_s": {"sequential": round(requests * delay, 4), "concurrent": delay},
        "server": server_info,
        "memory_per_waiter_kb": {m: results[m]["rss_per_waiter_kb"] for m in results
                                 if m != "sequential"},
    }
    result["explanation"] = explain(result)
    return result


def stack_kb():
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_STACK)
    size = threading.stack_size() or (soft if soft != resource.RLIM_INFINITY else 8 << 20)
    return size // 1024


def explain(result):
    modes, n, delay = result["modes"], result["requests"], result["delay_s"]
    lines = []
    for mode in MODES:
        if mode not in modes:
            continue
        m = modes[mode]
        lines.append("%s: %.2f s for %d requests of %.2f s (ideal %.2f s), %.2f CPU-s." % (
            mode, m["wall_s"], n, delay, m["ideal_s"], m["cpu_s"]))
    if "threads" in modes and "asyncio" in modes:
        lines.append("While waiting, each thread added about %.0f kB of resident memory and "
                     "reserved %.0f kB of address space (a stack of up to %d kB, plus the C "
                     "allocator's per-thread arenas); each task added about %.1f kB."
                     % (modes["threads"]["rss_per_waiter_kb"],
                        modes["threads"]["virtual_per_waiter_kb"], stack_kb(),
                        modes["asyncio"]["rss_per_waiter_kb"]))
    lines.append("Waiting costs no CPU: the work is the server's sleep, not ours.")
    return " ".join(lines)
