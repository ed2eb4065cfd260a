"""convoy: one CPU-bound thread makes an I/O thread's every request wait for the GIL."""

from __future__ import annotations

import socket
import sys
import threading
import time

from ._proto import free_threaded, gil_enabled, start_process, start_thread
from ._spec import Param, ParamError
from ._stamps import NO_STAMPS, Timeline, answered_at, for_this_thread, stamped
from ._stats import summary_ms

NAME = "convoy"
TITLE = "The GIL convoy: a CPU thread slows every request of an I/O thread"
LESSON = """\
An I/O thread sends a small message to a peer process, which answers after a short
pause, and measures each round trip. Alone, a round trip is the peer's pause plus a
few microseconds. Add one thread that only computes: every time the I/O thread
blocks in the kernel it lets go of the GIL, the CPU thread takes it, and when the
answer arrives the I/O thread must wait until the CPU thread is made to give the GIL
back - up to one switch interval (5 ms by default), sometimes twice per request.
A CPU-bound process (not a thread) does not do this: it has its own GIL. On a
free-threaded build there is no GIL to wait for, and the convoy should vanish.
"""
REQUIRES = ()
TIMEOUT_S = 180
LESSON_CODE = ("round_trips", "cpu_bound")
# In the TUI it runs in turn with other CPU-bound runs: a thread spins, and round trips
# stretch whenever a thread waits for a CPU.
CPU_BOUND = True

PHASES = ("alone", "cpu_thread", "cpu_process")
PARAMS = (
    Param.int("requests", 200, 10, 100_000, "round trips measured in each phase"),
    Param.float("peer_ms", 0.2, 0.0, 50.0, "how long the peer waits before it answers"),
    Param.float("switch_interval_ms", 5.0, 0.1, 100.0,
                "sys.setswitchinterval: how long the CPU thread may keep a contended GIL"),
    Param.bool("compare_process", True,
               "also measure with the CPU work in a process (its own GIL) as a control"),
    Param.bool("stamps", True,
               "beside the CPU thread, both threads note when they run: the GIL timeline"),
)

WORST_CASE_S = 150  # a convoyed round trip can cost two switch intervals


def tasks_needed(params):
    """Main thread, the I/O and CPU threads, the peer and (compare_process) the CPU process."""
    return "compare_process", 4 + bool(params["compare_process"])


def check_limits(params, timeout_s):
    worst = params["requests"] * (2 * params["switch_interval_ms"] + params["peer_ms"]) / 1000
    if worst > WORST_CASE_S:
        raise ParamError("requests", "parameter 'requests' must be at most %d with a %g ms "
                         "switch interval: beside the CPU thread each round trip may wait two "
                         "intervals, and the run must stay under %d s"
                         % (WORST_CASE_S * 1000 // (2 * params["switch_interval_ms"]
                                                    + params["peer_ms"]),
                            params["switch_interval_ms"], WORST_CASE_S))


MESSAGE = b"ping" * 8  # 32 bytes
WINDOW_S = 0.2
MAX_SAMPLES_PER_EVENT = 400


# The peer: another process, so its own interpreter and GIL play no part. -----------------


def peer(sock, pause_s, other_end):
    other_end.close()  # inherited by fork: keep only our end, so EOF reaches us
    while True:
        data = sock.recv(64)
        if not data:
            return
        if pause_s:
            time.sleep(pause_s)
        sock.sendall(stamped(data))  # the answer carries when it left, for the GIL timeline


# The two threads of the lesson ---------------------------------------------------------------


def round_trips(sock, count, record, timeline=None):
    """The I/O thread: send, wait for the answer, time it."""
    stamps = for_this_thread(timeline)
    for _ in range(count):
        started = time.perf_counter()
        stamps.blocks()  # the GIL is let go while the kernel waits for the answer
        sock.sendall(MESSAGE)
        reply = sock.recv(64)
        stamps.resumed(answered_at(reply))  # from the answer until now: waiting for the GIL
        record((time.perf_counter() - started) * 1000)
    stamps.finish()


def squares(n, stamps=NO_STAMPS):
    total = 0
    for chunk in stamps.chunks(n):  # range(n) in slices, a progress stamp after each
        for i in chunk:
            total += i * i
    return total


def cpu_bound(stop, timeline=None):
    """Only computes; checks the flag now and then."""
    stamps = for_this_thread(timeline)
    while not stop.is_set():
        squares(10_000, stamps)
    stamps.finish()


def cpu_bound_in_process(stop_sock, other_end):
    """The same work in a process, until the main process closes the socket."""
    other_end.close()
    stop_sock.setblocking(False)
    total = 0
    while True:
        for i in range(10_000):
            total += i * i
        try:
            if stop_sock.recv(1) == b"":
                return
        except BlockingIOError:
            continue


# Measurement ---------------------------------------------------------------------------------


class Recorder:
    def __init__(self, out, phase):
        self.out, self.phase = out, phase
        self.all, self.window = [], []
        self.window_start = time.perf_counter()

    def __call__(self, ms):
        self.all.append(ms)
        self.window.append(ms)
        if time.perf_counter() - self.window_start >= WINDOW_S:
            self.send()

    def send(self):
        if not self.window:
            return
        stats = summary_ms(self.all)
        self.out.emit("latency", phase=self.phase, count=len(self.all),
                      samples=[round(v, 3) for v in self.window[:MAX_SAMPLES_PER_EVENT]],
                      p50=stats["p50"], p99=stats["p99"], max=stats["max"])
        self.window = []
        self.window_start = time.perf_counter()


def measure(phase, sock, count, out, timeline=None):
    out.emit("phase", phase=phase, state="start")
    record = Recorder(out, phase)
    io = start_thread(round_trips, "io-" + phase.replace("_", ""), "io",
                      (sock, count, record, timeline))
    io.join()
    record.send()
    stats = summary_ms(record.all)
    out.emit("phase", phase=phase, state="end", **stats)
    return stats


def run(params, out):
    sys.setswitchinterval(params["switch_interval_ms"] / 1000)
    mine, theirs = socket.socketpair()
    _peer, _ = start_process(peer, "peer", "peer", (theirs, params["peer_ms"] / 1000, mine))
    theirs.close()
    count = params["requests"]
    results = {}
    timeline = Timeline(out) if params["stamps"] else None
    if timeline is not None:
        timeline.calibrate(squares)
    try:
        measure("warmup", mine, min(20, count), out)
        results["alone"] = measure("alone", mine, count, out)

        stop = threading.Event()
        cpu = start_thread(cpu_bound, "cpu", "cpu", (stop, timeline))
        try:
            if timeline is None:
                results["cpu_thread"] = measure("cpu_thread", mine, count, out)
            else:
                with timeline.round():
                    results["cpu_thread"] = measure("cpu_thread", mine, count, out, timeline)
        finally:
            stop.set()
            cpu.join()

        if params["compare_process"]:
            keep, give = socket.socketpair()
            worker, _ = start_process(cpu_bound_in_process, "cpu-proc", "cpu", (give, keep))
            give.close()
            try:
                results["cpu_process"] = measure("cpu_process", mine, count, out)
            finally:
                keep.close()  # the worker sees EOF and stops
                worker.join(5)
    finally:
        mine.close()  # the peer sees EOF and stops
        _peer.join(5)
    interval_ms = sys.getswitchinterval() * 1000
    result = {
        "latency_ms": results,
        "requests": count,
        "peer_ms": params["peer_ms"],
        "switch_interval_ms": round(interval_ms, 3),
        "gil_enabled": gil_enabled(),
        "free_threaded": free_threaded(),
        "slowdown_p50": _slowdown(results, "cpu_thread"),
        "gil_timeline": gil_summary(timeline, interval_ms),
    }
    if "cpu_process" in results:
        result["slowdown_p50_process"] = _slowdown(results, "cpu_process")
    result["explanation"] = explain(result)
    result["verdict"] = verdict(result)
    return result


def gil_summary(timeline, interval_ms):
    """The timeline's figures; the I/O thread's holds are a few microseconds and the CPU
    thread's a switch interval, so each thread's median is given beside the mixed one."""
    if timeline is None:
        return {"stamps": False, "switch_interval_ms": round(interval_ms, 3)}
    summary = timeline.summary(interval_ms / 1000)
    summary["io_gil_wait_ms"] = timeline.io_waits()
    return summary


def _slowdown(results, phase):
    return round(results[phase]["p50"] / max(results["alone"]["p50"], 1e-6), 2)


CONVOY = 2.0  # p50 beside a CPU thread at least this many times alone's: a convoy
NO_CONVOY = 1.5  # at most this: requests kept their pace


def verdict(result):
    """The convoy is read from one figure: p50 with a CPU thread over p50 alone. The
    process phase is the control: if it slowed requests as much, CPUs were short (the
    machine), not a lock, and the run cannot tell."""
    slow = result["slowdown_p50"]
    if slow >= CONVOY:
        says = "a CPU thread slowed each request %.1fx: a convoy" % slow
    elif slow <= NO_CONVOY:
        says = "no convoy: beside a CPU thread requests kept their pace (%.2fx)" % slow
    else:
        says = "a CPU thread slowed requests a little (%.2fx), short of a convoy" % slow
    found = {"says": says, "figure": "slowdown_p50", "value": slow,
             "expected": {"gil": "several times (switch intervals)", "free_threaded": 1.0},
             "can_tell": True}
    control = result.get("slowdown_p50_process")
    if slow >= NO_CONVOY and control is not None and control >= 0.7 * slow:
        found["can_tell"] = False
        found["why"] = ("the same work in a process slowed requests %.1fx too: the CPUs were "
                        "short, which hides whether the thread itself convoyed" % control)
    return found


def explain(result):
    lat, interval = result["latency_ms"], result["switch_interval_ms"]
    alone, with_cpu = lat["alone"], lat["cpu_thread"]
    slow = result["slowdown_p50"]
    lines = ["Alone, a round trip took %.2f ms at the median (p99 %.2f ms) for a peer that "
             "pauses %.2f ms." % (alone["p50"], alone["p99"], result["peer_ms"])]
    if result["gil_enabled"] and slow >= NO_CONVOY:
        lines.append("With one CPU-bound thread it took %.2f ms (p99 %.2f ms), %.1fx slower: "
                     "%.1f switch intervals of %.1f ms. Each time the I/O thread blocks it drops "
                     "the GIL, and getting it back means waiting for the CPU thread to be told "
                     "to let go." % (with_cpu["p50"], with_cpu["p99"], slow,
                                     with_cpu["p50"] / interval, interval))
    elif result["gil_enabled"]:
        lines.append("With one CPU-bound thread it took %.2f ms (%.2fx): under the GIL a "
                     "convoy was expected, yet the I/O thread got the GIL back quickly this run."
                     % (with_cpu["p50"], slow))
    elif slow <= NO_CONVOY:
        lines.append("With a CPU-bound thread it took %.2f ms (%.2fx): on this free-threaded "
                     "build the I/O thread waits for no interpreter lock, only for a CPU when "
                     "none is free."
                     % (with_cpu["p50"], slow))
    else:
        lines.append("With a CPU-bound thread it took %.2f ms, %.1fx slower, on a free-threaded "
                     "build whose threads share no interpreter lock: the I/O thread waited for "
                     "a CPU." % (
                         with_cpu["p50"], slow))
    if result["gil_enabled"] and result.get("free_threaded"):
        lines.append("(A free-threaded build, run with its GIL forced on.)")
    if "cpu_process" in lat:
        proc = lat["cpu_process"]
        shared = ("it has its own GIL, so only the CPUs are shared" if result["gil_enabled"]
                  else "a process shares only the CPUs, as the thread did on this build")
        lines.append("With the same work in a process instead: %.2f ms (p99 %.2f ms, %.2fx "
                     "alone); %s." % (proc["p50"], proc["p99"], result["slowdown_p50_process"],
                                      shared))
    return " ".join(lines)
