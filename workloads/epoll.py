"""epoll: one thread, one selector, many sockets - a teaching loop, asyncio and uvloop."""

from __future__ import annotations

import asyncio
import errno
import importlib.util
import os
import resource
import selectors
import socket
import time

from ._proto import free_threaded, gil_enabled, own_status, start_process, thread_stats
from ._spec import Param, ParamError
from ._tiny_loop import READ, WRITE, TinyLoop, recv_some, send_all

NAME = "epoll"
TITLE = "One thread, one selector, many sockets: a tiny loop, asyncio and uvloop"
LESSON = """\
Every connection here is a client and a server socket in this one process, on one
thread. The thread never blocks on a socket: it blocks in a single epoll_wait() that
watches all of them, and wakes with the list of those that are ready. The first run
uses a hundred-line loop built on `selectors` (workloads/_tiny_loop.py) to show that
there is no magic; then asyncio's loop, which is the same idea with callbacks and
transports; then uvloop, the same API over libuv, written in C. Watch the thread
count stay at 1 while the open file descriptors climb.
A trap worth seeing: asyncio reads each socket into a fresh 256 KiB buffer, and glibc
serves a block that big with mmap() until something makes it raise its threshold, so
a fresh process pays page faults on every read. `asyncio_tuned` is the same loop after
mallopt(M_MMAP_THRESHOLD, 1 MiB), as a long-running process often ends up. Each loop
runs in its own fresh process, so one cannot warm the heap for the next.
"""
REQUIRES = ()
REQUIRES_FOR = {"loop": {"uvloop": "uvloop"}}
TIMEOUT_S = 300
LESSON_CODE = ("_tiny_loop:TinyLoop.run", "_tiny_loop:TinyLoop._wait", "echo", "ping")
# In the TUI it runs in turn with other CPU-bound runs: one thread echoes flat out:
# requests per second is one CPU's throughput.
CPU_BOUND = True

LOOPS = ("tiny", "asyncio", "asyncio_tuned", "uvloop")
TUNED_MMAP_THRESHOLD = 1 << 20
PARAMS = (
    Param.int("connections", 200, 1, 10_000,
              "concurrent connections (each is two sockets in this process)"),
    Param.float("duration_s", 1.0, 0.2, 30.0, "how long each loop runs the echo ping-pong"),
    Param.int("message_bytes", 64, 1, 65_536, "bytes per request (echoed back)"),
    Param.float("warmup_s", 0.5, 0.0, 10.0, "ping-pong before measuring (not counted)"),
    Param.choice("loop", "all", ("all",) + LOOPS,
                 "which loop: all = tiny, asyncio, asyncio_tuned, and uvloop where installed"),
)

FD_RESERVE = 64
BATCH = 512  # connections opened at a time, well under the listen backlog
BACKLOG = 4096
REPORT_S = 0.2


def tasks_needed(params):
    """Main thread and one loop process at a time (its sockets are made by hand, so no
    resolver threads)."""
    return "loop", 2


def check_limits(params, timeout_s):
    import resource

    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = 2 * params["connections"] + FD_RESERVE
    if soft != resource.RLIM_INFINITY and needed > soft:
        raise ParamError("connections", "parameter 'connections' must be at most %d here: each "
                         "connection is two sockets in one process and RLIMIT_NOFILE is %d"
                         % ((soft - FD_RESERVE) // 2, soft))


# What we count -------------------------------------------------------------------------


class CountingSelector(selectors.DefaultSelector):
    """The platform's selector (epoll on Linux), counting its waits and what they return."""

    def __init__(self):
        super().__init__()
        self.waits = 0
        self.ready = 0
        self.waited_s = 0.0

    def select(self, timeout=None):
        started = time.perf_counter()
        events = super().select(timeout)
        self.waited_s += time.perf_counter() - started
        self.waits += 1
        self.ready += len(events)
        return events


class Stats:
    def __init__(self, message):
        self.message = message
        self.round_trips = 0
        self.connected = 0  # client sockets whose connect() finished
        self.accepted = 0  # server sockets accept() returned
        self.closed = 0  # transports whose socket is closed
        self.running = True


def open_fds():
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return -1


def proc_status():
    return own_status("VmRSS", "Threads")


class Meter:
    """Snapshots taken on the loop's own thread: the lab sees rates, never every event."""

    def __init__(self, out, loop_name, stats, selector):
        self.out, self.loop_name, self.stats, self.selector = out, loop_name, stats, selector
        self.phase = "setup"
        self.peak_fds = self.peak_threads = 0
        self.last = self.snapshot()

    def snapshot(self):
        kernel = thread_stats()
        usage = resource.getrusage(resource.RUSAGE_SELF)  # one thread: the process's own
        return {"t": time.perf_counter(), "round_trips": self.stats.round_trips,
                "faults": usage.ru_minflt,
                "waits": self.selector.waits if self.selector else None,
                "ready": self.selector.ready if self.selector else None,
                "waited_s": self.selector.waited_s if self.selector else None,
                "voluntary": kernel.get("voluntary"), "cpu_s": kernel.get("cpu_s")}

    def rates(self, before, after):
        elapsed = max(after["t"] - before["t"], 1e-9)
        rates = {"requests_per_s": round((after["round_trips"] - before["round_trips"]) / elapsed, 1),
                 "seconds": round(elapsed, 4)}
        if after["waits"] is not None:
            waits = after["waits"] - before["waits"]
            rates["waits_per_s"] = round(waits / elapsed, 1)
            rates["ready_per_wait"] = round((after["ready"] - before["ready"]) / max(waits, 1), 2)
            rates["blocked_share"] = round((after["waited_s"] - before["waited_s"]) / elapsed, 3)
        trips = after["round_trips"] - before["round_trips"]
        if trips > 0:
            rates["page_faults_per_request"] = round((after["faults"] - before["faults"]) / trips, 3)
        if after["voluntary"] is not None and before["voluntary"] is not None:
            rates["voluntary_per_s"] = round((after["voluntary"] - before["voluntary"]) / elapsed, 1)
        if after["cpu_s"] is not None and before["cpu_s"] is not None:
            cpu = after["cpu_s"] - before["cpu_s"]
            rates["cpu_share"] = round(cpu / elapsed, 3)
            if cpu > 0:  # robust to a busy machine: work done per second the loop really ran
                rates["requests_per_cpu_s"] = round(
                    (after["round_trips"] - before["round_trips"]) / cpu, 1)
        return rates

    def report(self):
        now = self.snapshot()
        status = proc_status()
        fds = open_fds()
        self.peak_fds = max(self.peak_fds, fds)
        self.peak_threads = max(self.peak_threads, status.get("Threads", 0))
        self.out.emit("epoll", loop=self.loop_name, phase=self.phase,
                      connections=self.stats.connected, fds=fds,
                      threads=status.get("Threads", 0), rss_kb=status.get("VmRSS", 0),
                      **self.rates(self.last, now))
        self.last = now


# The workload on the teaching loop: generator tasks ---------------------------------------


def accept_forever(loop, listener, stats, servers):
    while True:
        yield READ, listener
        while True:  # drain the backlog: one wake-up can mean many connections
            try:
                conn, _ = listener.accept()
            except BlockingIOError:
                break
            conn.setblocking(False)
            servers.append(conn)
            stats.accepted += 1
            loop.spawn(echo(conn))


def echo(conn):
    while True:
        data = yield from recv_some(conn)
        if not data:
            return
        yield from send_all(conn, data)


def connected(sock, stats):
    yield WRITE, sock  # writable = the non-blocking connect() has finished
    error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if error:
        raise OSError(error, os.strerror(error))
    stats.connected += 1


def ping(sock, stats):
    size = len(stats.message)
    while stats.running:
        yield from send_all(sock, stats.message)
        got = 0
        while got < size:
            chunk = yield from recv_some(sock)
            if not chunk:
                return
            got += len(chunk)
        stats.round_trips += 1


def run_tiny(params, out):
    stats = Stats(b"x" * params["message_bytes"])
    selector = CountingSelector()
    loop = TinyLoop(selector)
    meter = Meter(out, "tiny", stats, selector)
    listener = _listener()
    listener.setblocking(False)
    address = listener.getsockname()
    servers, clients = [], []
    loop.spawn(accept_forever(loop, listener, stats, servers))
    marks = {}

    def open_batch():
        for _ in range(min(BATCH, params["connections"] - len(clients))):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            sock.connect_ex(address)
            clients.append(sock)
            loop.spawn(connected(sock, stats))
        loop.call_later(0, wait_for_batch)

    def wait_for_batch():
        if min(stats.connected, stats.accepted) < len(clients):
            loop.call_later(0.001, wait_for_batch)
        elif len(clients) < params["connections"]:
            open_batch()
        else:
            marks["setup"] = time.perf_counter()
            begin_measuring()

    def begin_measuring():
        for sock in clients:  # everyone connected: now all of them talk at once
            loop.spawn(ping(sock, stats))
        meter.phase = "warmup"
        loop.call_later(params["warmup_s"], open_window)

    def open_window():
        meter.phase = "running"
        marks["before"] = meter.snapshot()
        loop.call_later(params["duration_s"], finish)

    def finish():
        marks["after"] = meter.snapshot()
        stats.running = False
        loop.stop()

    def tick():
        meter.report()
        if not loop.stopped:
            loop.call_later(REPORT_S, tick)

    started = time.perf_counter()
    rss_before = proc_status().get("VmRSS", 0)
    loop.call_later(0, open_batch)
    loop.call_later(REPORT_S, tick)
    loop.run()
    meter.report()
    rss_after = proc_status().get("VmRSS", 0)
    for sock in [listener] + servers + clients:
        loop.forget(sock)
        sock.close()
    loop.close()
    return summarise(meter, marks, started, rss_before, rss_after, params)


def _listener():
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(BACKLOG)
    return sock


# The same workload on asyncio / uvloop: protocols (callbacks, like the loop itself) --------


class EchoServer(asyncio.Protocol):
    def __init__(self, stats):
        self.stats = stats

    def connection_made(self, transport):
        self.transport = transport
        self.stats.accepted += 1

    def data_received(self, data):
        self.transport.write(data)

    def connection_lost(self, exc):
        self.stats.closed += 1


class PingClient(asyncio.Protocol):
    def __init__(self, stats):
        self.stats = stats
        self.got = 0

    def connection_made(self, transport):
        self.transport = transport
        self.stats.connected += 1

    def start(self):
        self.transport.write(self.stats.message)

    def data_received(self, data):
        self.got += len(data)
        if self.got >= len(self.stats.message):
            self.got = 0
            self.stats.round_trips += 1
            if self.stats.running:
                self.transport.write(self.stats.message)

    def connection_lost(self, exc):
        self.stats.closed += 1


async def connect(loop, address, stats):
    """Connect our own non-blocking socket and hand it to the loop. (loop.sock_connect
    would do, but uvloop resolves even a numeric address on libuv's thread pool, and
    this experiment is about one thread.)"""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    error = sock.connect_ex(address)
    if error == errno.EINPROGRESS:
        done = loop.create_future()
        loop.add_writer(sock.fileno(), lambda: done.done() or done.set_result(None))
        try:
            await done  # writable = the handshake finished
        finally:
            loop.remove_writer(sock.fileno())
        error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if error:
        sock.close()
        raise OSError(error, os.strerror(error))
    return await loop.create_connection(lambda: PingClient(stats), sock=sock)


async def drive(loop_name, params, out, selector):
    loop = asyncio.get_running_loop()
    stats = Stats(b"x" * params["message_bytes"])
    meter = Meter(out, loop_name, stats, selector)
    marks = {}

    def tick():
        meter.report()
        handle[0] = loop.call_later(REPORT_S, tick)

    handle = [loop.call_later(REPORT_S, tick)]
    started = time.perf_counter()
    rss_before = proc_status().get("VmRSS", 0)
    listener = _listener()  # our own socket again: no name lookup for the server either
    listener.setblocking(False)
    server = await loop.create_server(lambda: EchoServer(stats), sock=listener, backlog=BACKLOG)
    port = listener.getsockname()[1]
    transports = []
    remaining = params["connections"]
    while remaining:
        batch = min(BATCH, remaining)
        made = await asyncio.gather(*(connect(loop, ("127.0.0.1", port), stats)
                                      for _ in range(batch)))
        transports.extend(t for t, _p in made)
        remaining -= batch
        while stats.accepted < len(transports):  # a finished connect() may not be accepted yet
            await asyncio.sleep(0.001)
    marks["setup"] = time.perf_counter()
    for transport in transports:  # everyone connected: now all of them talk at once
        transport.get_protocol().start()
    meter.phase = "warmup"
    await asyncio.sleep(params["warmup_s"])
    meter.phase = "running"
    marks["before"] = meter.snapshot()
    await asyncio.sleep(params["duration_s"])
    marks["after"] = meter.snapshot()
    stats.running = False
    meter.report()
    rss_after = proc_status().get("VmRSS", 0)
    handle[0].cancel()
    for transport in transports:
        transport.close()
    server.close()
    await server.wait_closed()
    deadline = time.monotonic() + 5
    while stats.closed < 2 * len(transports) and time.monotonic() < deadline:
        await asyncio.sleep(0.001)  # sockets close on the loop's next turns: let them
    return summarise(meter, marks, started, rss_before, rss_after, params)


def run_asyncio(params, out, label="asyncio"):
    selector = CountingSelector()
    loop = asyncio.SelectorEventLoop(selector)  # asyncio's own loop, on our counting epoll
    try:
        return loop.run_until_complete(drive(label, params, out, selector))
    finally:
        loop.close()


def run_uvloop(params, out):
    import uvloop  # optional: checked before the run

    loop = uvloop.new_event_loop()  # libuv calls epoll_wait in C: no Python selector to count
    try:
        return loop.run_until_complete(drive("uvloop", params, out, None))
    finally:
        loop.close()


def run_asyncio_tuned(params, out):
    applied = set_mmap_threshold(TUNED_MMAP_THRESHOLD)
    result = run_asyncio(params, out, "asyncio_tuned")
    result["mmap_threshold_bytes"] = TUNED_MMAP_THRESHOLD if applied else None
    return result


RUNNERS = {"tiny": run_tiny, "asyncio": run_asyncio, "asyncio_tuned": run_asyncio_tuned,
           "uvloop": run_uvloop}


def summarise(meter, marks, started, rss_before, rss_after, params):
    result = {"connections": params["connections"],
              "setup_s": round(marks["setup"] - started, 4),
              "peak_fds": meter.peak_fds, "peak_threads": meter.peak_threads,
              "rss_per_connection_bytes": round(max(0, rss_after - rss_before) * 1024
                                                / params["connections"])}
    result.update(meter.rates(marks["before"], marks["after"]))
    return result


M_MMAP_THRESHOLD = -3  # mallopt() parameter number in glibc's malloc.h


def set_mmap_threshold(size):
    """Raise glibc's mmap threshold (True if applied; False on another C library)."""
    try:
        import ctypes

        return bool(ctypes.CDLL("libc.so.6").mallopt(M_MMAP_THRESHOLD, size))
    except (OSError, AttributeError):
        return False


def one_loop(name, params):
    """Body of the fresh process each loop runs in."""
    from ._proto import events

    return RUNNERS[name](params, events())


def run(params, out):
    if params["loop"] == "all":
        names = [n for n in LOOPS if n != "uvloop" or importlib.util.find_spec("uvloop")]
    else:
        names = [params["loop"]]
    results = {}
    for name in names:
        out.emit("phase", loop=name, state="start")
        # A fresh process per loop: same pristine heap for each, and the one loop thread
        # is alone in its process.
        process, receiver = start_process(one_loop, "loop-" + name.replace("_", "-")[:10],
                                          "loop", (name, params), want_result=True)
        results[name] = receiver.recv()
        process.join()
        out.emit("phase", loop=name, state="end", **results[name])
    result = {"loops": results, "connections": params["connections"],
              "message_bytes": params["message_bytes"], "duration_s": params["duration_s"],
              "warmup_s": params["warmup_s"]}
    if "uvloop" not in results and params["loop"] == "all":
        result["uvloop"] = "not installed for this interpreter"
    for name, base in (("uvloop", "asyncio"), ("uvloop", "asyncio_tuned"), ("tiny", "asyncio"),
                       ("asyncio_tuned", "asyncio")):
        if name in results and base in results:
            key = "%s_over_%s" % (name, base)
            result[key] = _ratio(results, name, base, "requests_per_s")
            result[key + "_per_cpu_s"] = _ratio(results, name, base, "requests_per_cpu_s")
    result["gil_enabled"], result["free_threaded"] = gil_enabled(), free_threaded()
    result["explanation"] = explain(result)
    if "asyncio" in results:
        result["verdict"] = verdict(result)
    return result


FAULTS = 0.5  # page faults per request from which fresh buffers are the story


def verdict(result):
    """Whether asyncio's fresh 256 KiB read buffers cost page faults: asyncio's page
    faults per request (and the tuned loop's, when it ran)."""
    loops = result["loops"]
    faults = loops["asyncio"].get("page_faults_per_request")
    tuned = loops.get("asyncio_tuned", {}).get("page_faults_per_request")
    found = {"figure": "loops.asyncio.page_faults_per_request", "value": faults,
             "can_tell": faults is not None}
    if faults is None:
        found.update(says="page faults were not measured here", why="no getrusage figures")
    elif faults >= FAULTS:
        found["says"] = ("asyncio's fresh read buffers cost %.2f page faults per request%s" % (
            faults, "" if tuned is None else "; %.2f with glibc's mmap threshold raised" % tuned))
    else:
        found["says"] = "asyncio's reads did not fault pages in (%.2f per request)" % faults
    if "asyncio_tuned" in loops and loops["asyncio_tuned"].get("mmap_threshold_bytes") is None:
        found["can_tell"] = False
        found["why"] = "not glibc: its mmap threshold could not be raised"
    return found


def _ratio(results, name, base, key):
    mine, theirs = results[name].get(key), results[base].get(key)
    if not mine or not theirs:
        return None
    return round(mine / theirs, 2)


def explain(result):
    loops = result["loops"]
    lines = []
    for name, r in loops.items():
        text = "%s: %.0f requests/s over %d connections on %d thread(s), %d fds open" % (
            name, r["requests_per_s"], r["connections"], r["peak_threads"], r["peak_fds"])
        if "waits_per_s" in r:
            text += "; %.0f selector waits/s returning %.1f ready sockets each" % (
                r["waits_per_s"], r["ready_per_wait"])
        if r.get("cpu_share", 1.0) < 0.8:
            text += " (it got only %.0f%% of a CPU: other processes wanted the cores)" % (
                100 * r["cpu_share"])
        lines.append(text + ".")
    if result.get("uvloop_over_asyncio"):
        lines.append("uvloop did %.2fx asyncio's requests per second here, %.2fx per CPU-second "
                     "(its README claims 2-4x): the same epoll underneath, with the per-event "
                     "bookkeeping done in C instead of Python." % (
                         result["uvloop_over_asyncio"],
                         result.get("uvloop_over_asyncio_per_cpu_s") or 0))
    if result.get("asyncio_tuned_over_asyncio_per_cpu_s"):
        lines.append(_explain_tuning(result))
    if result.get("tiny_over_asyncio"):
        lines.append("The hundred-line loop did %.2fx asyncio's rate: it does less (no "
                     "transports, no flow control, no error handling)." % result["tiny_over_asyncio"])
    return " ".join(lines)


def _explain_tuning(result):
    """What raising glibc's mmap threshold did, read from the page-fault figures."""
    loops = result["loops"]
    before = loops["asyncio"].get("page_faults_per_request", 0)
    after = loops["asyncio_tuned"].get("page_faults_per_request", 0)
    speed = result["asyncio_tuned_over_asyncio_per_cpu_s"]
    uvloop = ("Against the tuned loop, uvloop's lead is %.2fx per CPU-second."
              % result["uvloop_over_asyncio_tuned_per_cpu_s"]
              if result.get("uvloop_over_asyncio_tuned_per_cpu_s") else "")
    if before >= FAULTS and after < before / 2:
        text = ("Raising glibc's mmap threshold made asyncio %.2fx as fast per CPU-second: page "
                "faults per request fell from %.2f to %.2f, as its 256 KiB read buffers stopped "
                "being fresh mmap()s." % (speed, before, after))
    elif before >= FAULTS:
        text = ("Raising glibc's mmap threshold left asyncio's page faults per request at %.2f "
                "(from %.2f), %.2fx as fast per CPU-second: these faults come from somewhere "
                "else." % (after, before, speed))
    else:
        text = ("asyncio's reads did not fault pages in here (%.2f per request; %.2f with "
                "glibc's mmap threshold raised), so the threshold had nothing to fix (%.2fx per "
                "CPU-second after it)." % (before, after, speed))
        if result.get("free_threaded"):
            text += (" This free-threaded build takes its objects, the read buffers among "
                     "them, from its own allocator (mimalloc), not from glibc's malloc.")
    return (text + " " + uvloop).strip()
