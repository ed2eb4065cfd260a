"""decision: one job mix under five models, throughput of each, and the winner here."""

from __future__ import annotations

import asyncio
import heapq
import os
import selectors
import socket
import struct
import threading
import time

from ._limits import TASK_LIMITS, nofile_cap, tightest
from ._load import LoadMeter, describe, own_cpu_s
from ._proto import die_with_parent, gil_enabled, name_this_thread, process_context, \
    start_process, start_thread
from ._spec import Param, ParamError

NAME = "decision"
TITLE = "Choosing a model: throughput per CPU/waiting mix, and who wins here"
LESSON = """\
Every job computes for a while and waits for a while; the dial sets how much of a job
is computing. The same jobs run five ways for the same stretch of time: one after
another, in threads, in one process per CPU, as asyncio tasks on one thread, and as
asyncio tasks that hand their computing to a process pool. Jobs finished per second
decide the winner. Waiting is a real blocking wait (a reply from a delay server on
127.0.0.1, or a sleep), which every model but `sequential` can overlap; computing
needs a core, and under the GIL only processes get more than one.
"""
REQUIRES = ()
TIMEOUT_S = 300
LESSON_CODE = ("cpu_work", "run_jobs_until", "model_threads")
# In the TUI it runs in turn with other CPU-bound runs: its jobs compute; throughput per
# model is what other runs' CPU use lowers.
CPU_BOUND = True

MODELS = ("sequential", "threads", "processes", "asyncio", "asyncio+pool")
TIE = 0.10  # models within 10 % of the best share the win: closer than run-to-run noise

PARAMS = (
    Param.choice("workload", "table", ("table", "dial"),
                 "table: the article's four workload rows; dial: one mix set by "
                 "cpu_percent and concurrency"),
    Param.int("cpu_percent", 50, 0, 100, "dial: share of a job spent computing"),
    Param.int("concurrency", 8, 1, 2000,
              "dial: jobs in flight (threads, asyncio tasks); processes use one per CPU"),
    Param.int("many", 500, 16, 2000, "table: jobs in flight in the 'many connections' row"),
    Param.float("job_ms", 20.0, 2.0, 1000.0, "one job's length on a quiet core: compute + wait"),
    Param.float("seconds", 0.8, 0.1, 30.0, "how long each model runs jobs"),
    Param.choice("wait", "socket", ("socket", "sleep"),
                 "how a job waits: a reply from a local delay server, or a sleep"),
)

# The article's table, as rows we can measure: (id, label, cpu %, jobs in flight, its pick).
TABLE = (
    ("cpu", "CPU-bound parallel", 100, 4, "multiprocessing"),
    ("io-many", "I/O-bound, many connections", 0, None, "asyncio"),  # None: the `many` param
    ("io-few", "I/O-bound, simple", 0, 4, "threading"),
    ("mixed", "Mixed CPU + I/O", 50, 8, "process pool + asyncio"),
)
# Which of our models each of the article's answers means. "multiprocessing" covers a
# process per CPU and a pool alike: both compute in several processes.
ARTICLE_MODELS = {"multiprocessing": ("processes", "asyncio+pool"), "asyncio": ("asyncio",),
                  "threading": ("threads",), "process pool + asyncio": ("asyncio+pool",)}


def usable_cpus():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def workload_rows(params):
    if params["workload"] == "dial":
        cpu, conc = params["cpu_percent"], params["concurrency"]
        rows = [{"id": "dial", "label": "Your mix", "cpu_percent": cpu, "concurrency": conc,
                 "article_pick": article_pick_for(cpu, conc)}]
    else:
        rows = [{"id": rid, "label": label, "cpu_percent": cpu,
                 "concurrency": params["many"] if conc is None else conc, "article_pick": pick}
                for rid, label, cpu, conc, pick in TABLE]
    for row in rows:
        row["article_models"] = list(ARTICLE_MODELS[row["article_pick"]])
        if row["cpu_percent"] == 0 and "asyncio" in row["article_models"]:
            # Nothing to compute: the pool stays idle and asyncio+pool runs asyncio's code.
            row["article_models"].append("asyncio+pool")
    return rows


def article_pick_for(cpu_percent, concurrency):
    """Our reading of the article's table for any mix: which row it falls in."""
    if cpu_percent >= 90:
        return "multiprocessing"
    if cpu_percent <= 10:
        return "asyncio" if concurrency >= 64 else "threading"
    return "process pool + asyncio"


def tasks_needed(params):
    """Main thread, the delay server, then the largest model: one thread per job in
    flight, or a process per CPU with a pool's two helper threads."""
    biggest = max(row["concurrency"] for row in workload_rows(params))
    name = "many" if params["workload"] == "table" else "concurrency"
    return name, 2 + max(biggest, usable_cpus() + 2)


def check_limits(params, timeout_s):
    biggest = max(row["concurrency"] for row in workload_rows(params))
    name = "many" if params["workload"] == "table" else "concurrency"
    # Task limits are checked for every experiment (workloads.check); here memory and maps.
    cap = tightest("threads", without=TASK_LIMITS)
    if cap is not None and biggest + usable_cpus() + 8 > cap.units:
        raise ParamError(name, "parameter %r must be at most %d here: %s"
                         % (name, max(1, cap.units - usable_cpus() - 8), cap.describe()))
    if params["wait"] == "socket":
        fds = nofile_cap(per_unit=1)
        if fds is not None and biggest + 32 > fds.units:
            raise ParamError(name, "parameter %r must be at most %d with wait=socket here: %s"
                             % (name, max(1, fds.units - 32), fds.describe()))


# The job: compute, then wait. --------------------------------------------------------------
def cpu_work(n):
    total = 0
    for i in range(n):
        total += i * i
    return total


def calibrate():
    """Iterations of cpu_work per second on a quiet moment (best of several tries)."""
    n, best = 20_000, float("inf")
    for _ in range(7):
        started = time.perf_counter()
        cpu_work(n)
        best = min(best, time.perf_counter() - started)
    return n / best


# Waiting for real: a delay server on 127.0.0.1 (in its own process, so it never holds our
# GIL), answering each request line "<microseconds>\n" with one byte after that long.
def serve_delays(listener, stop_fd):
    selector = selectors.DefaultSelector()
    listener.setblocking(False)
    selector.register(listener, selectors.EVENT_READ)
    selector.register(stop_fd, selectors.EVENT_READ)  # readable (EOF) when the run is over
    pending, due, order = {}, [], 0
    while True:
        timeout = max(0.0, due[0][0] - time.monotonic()) if due else None
        for key, _mask in selector.select(timeout):
            if key.fileobj == stop_fd:
                return
            if key.fileobj is listener:
                try:
                    conn, _addr = listener.accept()
                except OSError:
                    continue
                conn.setblocking(False)
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                selector.register(conn, selectors.EVENT_READ)
                pending[conn] = b""
                continue
            conn = key.fileobj
            try:
                data = conn.recv(4096)
            except OSError:
                data = b""
            if not data:
                selector.unregister(conn)
                pending.pop(conn, None)
                conn.close()
                continue
            *lines, pending[conn] = (pending[conn] + data).split(b"\n")
            now = time.monotonic()
            for line in lines:
                order += 1
                heapq.heappush(due, (now + int(line) / 1e6, order, conn))
        now = time.monotonic()
        while due and due[0][0] <= now:
            _when, _order, conn = heapq.heappop(due)
            if conn in pending:
                try:
                    conn.send(b"k")
                except OSError:
                    pass


class Waits:
    """How a job waits `seconds`: blocking (threads, processes) or awaitable (asyncio)."""

    def __init__(self, kind, seconds, port=None, server_pid=None):
        self.kind, self.seconds, self.port, self.server_pid = kind, seconds, port, server_pid
        self.request = b"%d\n" % int(seconds * 1e6)

    def blocking(self):
        """A wait function for one worker, and its clean-up."""
        if self.seconds <= 0:
            return (lambda: None), (lambda: None)
        if self.kind == "sleep":
            return (lambda: time.sleep(self.seconds)), (lambda: None)
        sock = socket.create_connection(("127.0.0.1", self.port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def wait():
            sock.sendall(self.request)
            if not sock.recv(1):  # the GIL is released while we block here
                raise ConnectionError("the delay server went away")

        return wait, sock.close

    async def awaitable(self):
        if self.seconds <= 0:
            async def nothing():
                return None
            return nothing, (lambda: None)
        if self.kind == "sleep":
            async def sleep():
                await asyncio.sleep(self.seconds)
            return sleep, (lambda: None)
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        async def wait():
            writer.write(self.request)
            await reader.readexactly(1)  # the loop runs other tasks meanwhile

        return wait, writer.close


def run_jobs_until(deadline, iterations, wait):
    """The body every blocking model shares: jobs until the deadline; (count, end time)."""
    done = 0
    while time.monotonic() < deadline:
        if iterations:
            cpu_work(iterations)
        wait()
        done += 1
    return done, time.monotonic()


# The five models. Each gets everyone ready first, then runs jobs for `seconds`. ----------
def model_sequential(job, seconds, waits):
    wait, close = waits.blocking()
    start = time.monotonic()
    try:
        done, end = run_jobs_until(start + seconds, job["iterations"], wait)
    finally:
        close()
    return done, end - start, 1


def model_threads(job, seconds, waits):
    workers = job["concurrency"]
    ready = threading.Barrier(workers + 1)
    go = threading.Event()
    clock = {}
    results = [(0, 0.0)] * workers

    def worker(index):
        try:
            wait, close = waits.blocking()
        except BaseException:
            ready.abort()  # wake the others and the main thread: this run cannot go on
            raise
        try:
            ready.wait()
            go.wait()
            results[index] = run_jobs_until(clock["deadline"], job["iterations"], wait)
        finally:
            close()

    threads = [start_thread(worker, "job-%d" % (i + 1), "worker", (i,)) for i in range(workers)]
    ready.wait()
    clock["start"] = time.monotonic()
    clock["deadline"] = clock["start"] + seconds
    go.set()
    for thread in threads:
        thread.join()
    return sum(r[0] for r in results), max(r[1] for r in results) - clock["start"], workers


def model_processes(job, seconds, waits):
    """One process per CPU, each doing jobs one after another (a multiprocessing.Pool)."""
    workers = usable_cpus()
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()

    def worker():
        try:
            wait, close = waits.blocking()
        except BaseException:
            os.write(ready_w, b"x")  # tell the parent rather than leave it waiting
            raise
        try:
            os.write(ready_w, b"r")
            deadline = struct.unpack("d", _read_exactly(go_r, 8))[0]
            return run_jobs_until(deadline, job["iterations"], wait)
        finally:
            close()

    started = [start_process(worker, "proc-%d" % (i + 1), "worker", (), want_result=True)
               for i in range(workers)]
    try:
        if b"x" in _read_exactly(ready_r, workers):
            raise RuntimeError("a worker process could not reach the delay server")
        start = time.monotonic()
        os.write(go_w, struct.pack("d", start + seconds) * workers)  # one write: atomic
        results = [receiver.recv() for _process, receiver in started]
        for process, _receiver in started:
            process.join()
    finally:
        for fd in (ready_r, ready_w, go_r, go_w):
            os.close(fd)
    return sum(r[0] for r in results), max(r[1] for r in results) - start, workers


def _read_exactly(fd, size):
    data = b""
    while len(data) < size:
        chunk = os.read(fd, size - len(data))
        if not chunk:
            raise EOFError("pipe closed")
        data += chunk
    return data


def model_asyncio(job, seconds, waits):
    return asyncio.run(_asyncio_jobs(job, seconds, waits, pool=None))


def model_asyncio_pool(job, seconds, waits):
    """asyncio tasks that wait on the loop and send their computing to a process pool."""
    from concurrent.futures import ProcessPoolExecutor

    workers = usable_cpus()
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=process_context(),
                               initializer=_pool_worker_init, initargs=(os.getpid(),))
    try:
        # Start every worker before the clock starts, as a long-lived server would have.
        for future in [pool.submit(time.sleep, 0.05) for _ in range(workers)]:
            future.result()
        return asyncio.run(_asyncio_jobs(job, seconds, waits, pool=pool))
    finally:
        pool.shutdown(wait=True)


def _pool_worker_init(parent_pid):
    die_with_parent(parent_pid)
    name_this_thread("pool-worker")


async def _asyncio_jobs(job, seconds, waits, pool):
    loop = asyncio.get_running_loop()
    tasks = job["concurrency"]
    iterations = job["iterations"]
    opened = await asyncio.gather(*[waits.awaitable() for _ in range(tasks)])

    async def one(wait, deadline):
        done = 0
        while loop.time() < deadline:
            if iterations:
                if pool is None:
                    cpu_work(iterations)  # holds the loop: nothing else runs meanwhile
                else:
                    await loop.run_in_executor(pool, cpu_work, iterations)
            await wait()
            done += 1
        return done, loop.time()

    try:
        start = loop.time()
        results = await asyncio.gather(*[one(wait, start + seconds) for wait, _ in opened])
    finally:
        for _wait, close in opened:
            close()
    return sum(r[0] for r in results), max(r[1] for r in results) - start, tasks


RUNNERS = {"sequential": model_sequential, "threads": model_threads,
           "processes": model_processes, "asyncio": model_asyncio,
           "asyncio+pool": model_asyncio_pool}


# Measuring ---------------------------------------------------------------------------------
def measure(model, row, job, seconds, waits, out, meter):
    """One model's turn: jobs per second, CPU per job, and other programs' share of the
    CPUs meanwhile (the delay server and the pool are the run's own: not other programs)."""
    out.emit("model", row=row["id"], model=model, state="start")
    cpu_before = own_cpu_s()
    with meter.window() as window:
        done, wall, workers = RUNNERS[model](job, seconds, waits)
    cpu = own_cpu_s() - cpu_before
    figures = {"jobs": done, "wall_s": round(wall, 4), "in_flight": workers,
               "processes": usable_cpus() if model in ("processes", "asyncio+pool") else 1,
               "jobs_per_s": round(done / wall, 2) if wall > 0 else 0.0,
               "cpu_ms_per_job": round(1000 * cpu / done, 3) if done else None,
               "other_cpu_share": window.figures["other_cpu_share"],
               "busy": window.figures["busy"]}
    out.emit("model", row=row["id"], model=model, state="end", **figures)
    return figures


def winners_of(models):
    """Models within TIE of the best throughput, best first (computed, never assumed)."""
    best = max(m["jobs_per_s"] for m in models.values())
    if best <= 0:
        return []
    close = [name for name, m in models.items() if m["jobs_per_s"] >= best * (1 - TIE)]
    return sorted(close, key=lambda name: -models[name]["jobs_per_s"])


def ideal_jobs_per_s(cpu_s, wait_s, concurrency, cpus):
    """The ceiling for this mix: all jobs in flight overlap, computing spread on every CPU."""
    limits = [concurrency / (cpu_s + wait_s)]
    if cpu_s > 0:
        limits.append(cpus / cpu_s)
    return min(limits)


def start_delay_server(many):
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(max(128, many + 16))  # every client connects at once: no SYN retries
    port = listener.getsockname()[1]
    stop_r, stop_w = os.pipe()
    process, _ = start_process(serve_delays, "delay-server", "server", (listener, stop_r))
    listener.close()  # the server has its own copies
    os.close(stop_r)
    return process, port, stop_w


def stop_delay_server(process, stop_w):
    os.close(stop_w)  # the server sees end-of-file and returns, reporting its figures
    process.join(2.0)
    if process.is_alive():
        process.terminate()
        process.join()


def run(params, out):
    cpus = usable_cpus()
    meter = LoadMeter()
    rows = workload_rows(params)
    rate = calibrate()
    job_s = params["job_ms"] / 1000.0
    out.emit("calibration", iterations_per_s=round(rate), cpus=cpus)

    server = port = stop_w = None
    if params["wait"] == "socket" and any(r["cpu_percent"] < 100 for r in rows):
        server, port, stop_w = start_delay_server(max(r["concurrency"] for r in rows))
    try:
        for index, row in enumerate(rows):
            cpu_s = job_s * row["cpu_percent"] / 100.0
            wait_s = job_s - cpu_s
            job = {"iterations": int(round(rate * cpu_s)), "concurrency": row["concurrency"]}
            waits = Waits(params["wait"], wait_s, port, server.pid if server else None)
            out.emit("row", state="start", index=index, rows=len(rows), **row)
            row["models"] = {}
            for model in MODELS:
                row["models"][model] = measure(model, row, job, params["seconds"], waits, out,
                                               meter)
            row["winners"] = winners_of(row["models"])
            row["agrees"] = any(m in row["winners"] for m in row["article_models"])
            row["verdict"] = row_verdict(row, index)
            row["ideal_jobs_per_s"] = round(ideal_jobs_per_s(cpu_s, wait_s, row["concurrency"],
                                                             cpus), 2)
            row["cpu_ms"], row["wait_ms"] = round(cpu_s * 1000, 3), round(wait_s * 1000, 3)
            out.emit("row", state="end", id=row["id"], winners=row["winners"],
                     agrees=row["agrees"], can_tell=row["verdict"]["can_tell"],
                     ideal_jobs_per_s=row["ideal_jobs_per_s"])
    finally:
        if server is not None:
            stop_delay_server(server, stop_w)
    return {
        "rows": rows,
        "models": list(MODELS),
        "cpus": cpus,
        "gil_enabled": gil_enabled(),
        "iterations_per_s": round(rate),
        "job_ms": params["job_ms"],
        "seconds_per_model": params["seconds"],
        "wait": params["wait"],
        "tie_within": TIE,
        "load": meter.block(),
        "explanation": "\n".join([explain_row(row, cpus) for row in rows]
                                 + busy_note(meter.block())),
    }


# Reading the numbers -----------------------------------------------------------------------
def _rate(value):
    if value >= 100:
        return "{:,}".format(int(round(value))).replace(",", " ")
    return "%.1f" % value


def _names(names):
    names = list(names)
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def explain_row(row, cpus):
    """One row in words, every figure from this run's measurements."""
    models, winners = row["models"], row["winners"]
    mix = "%s (%d%% computing, %d in flight)" % (row["label"], row["cpu_percent"],
                                                 row["concurrency"])
    if not winners:
        return "%s: no model finished a job." % mix
    best = winners[0]
    rates = ", ".join("%s %s" % (name, _rate(models[name]["jobs_per_s"])) for name in MODELS)
    if len(winners) == 1:
        head = "%s: %s won (jobs/s: %s; ceiling for this mix %s)" % (
            mix, best, rates, _rate(row["ideal_jobs_per_s"]))
    else:
        head = "%s: %s tied within %d%% (jobs/s: %s; ceiling for this mix %s)" % (
            mix, _names(winners), TIE * 100, rates, _rate(row["ideal_jobs_per_s"]))
    pick, picked = row["article_pick"], row["article_models"]
    if row["agrees"]:
        also = [w for w in winners if w not in picked]
        return "%s. Agrees with the article's %s%s." % (
            head, pick, "; %s did as well here" % _names(also) if also else "")
    nearest = max(picked, key=lambda m: models[m]["jobs_per_s"])
    ratio = models[nearest]["jobs_per_s"] / models[best]["jobs_per_s"]
    if not row["verdict"]["can_tell"]:
        return "%s. Can't tell on a machine this busy whether it differs from the article's " \
               "%s: %s." % (head, pick, row["verdict"]["why"])
    return "%s. DISAGREES with the article's %s: %s reached %.2fx the winner's throughput%s." % (
        head, pick, nearest, ratio, _why(row, nearest, best, cpus))


def row_verdict(row, index):
    """The row's verdict rests on the winner's jobs/s against the runner-up's; a
    disagreement with the article measured while other programs took the CPUs is not one."""
    models, winners = row["models"], row["winners"]
    ranked = sorted(models, key=lambda name: -models[name]["jobs_per_s"])
    best = winners[0] if winners else ranked[0]
    runner = next((name for name in ranked if name != best), None)
    verdict = {"figure": "rows.%d.models.%s.jobs_per_s" % (index, best),
               "value": models[best]["jobs_per_s"],
               "runner_up": {"model": runner, "jobs_per_s": models[runner]["jobs_per_s"]}
               if runner else None,
               "agrees": row["agrees"],  # the row's verdict: the article's pick won or not
               "can_tell": True}
    if not winners:
        return dict(verdict, says="no model finished a job", can_tell=False,
                    why="no model finished a job")
    says = ("%s won" % best if len(winners) == 1  # a tie in a fixed order: comparable
            else "%s tied" % _names(sorted(winners, key=MODELS.index)))
    says += ", as the article says" if row["agrees"] else ", not the article's %s" % \
        row["article_pick"]
    busy = [name for name in MODELS if models[name].get("busy")]
    if not row["agrees"] and busy:
        worst = max(models[name]["other_cpu_share"] for name in busy)
        return dict(verdict, says="can't tell on a machine this busy", can_tell=False,
                    why="other programs took up to %d%% of the CPUs during %s"
                        % (round(100 * worst), "every model's turn" if len(busy) == len(MODELS)
                           else _names(busy) + "'s turn" if len(busy) == 1
                           else "the turns of " + _names(busy)))
    return dict(verdict, says=says)


def busy_note(load):
    """Other programs' share of the CPUs, said once for the run."""
    if not load.get("busy"):
        return []
    return [describe(load) + " Rows that disagree with the article while they did say "
            "\"can't tell\"; run it again on a quieter machine to trust small differences."]


def _why(row, pick, best, cpus):
    """A measured reason where one is visible in the figures."""
    models = row["models"]
    if cpus < 2 and pick in ("processes", "asyncio+pool"):
        return " (with 1 usable CPU no model can compute in parallel)"
    if not gil_enabled() and best == "threads":
        return " (this interpreter runs without a GIL, so threads compute in parallel)"
    mine, theirs = models[pick].get("cpu_ms_per_job"), models[best].get("cpu_ms_per_job")
    if mine and theirs and mine > 1.3 * theirs:
        return " (%s spent %.3f ms of CPU per job, %s %.3f ms)" % (pick, mine, best, theirs)
    return " (no cause shows in these figures: run it again to see whether it holds)"
