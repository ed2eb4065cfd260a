"""One byte through pipes: the article's one-way pipe, and honest ping-pong.

Ping-pong: side A writes one byte into pipe 1 and blocks reading pipe 2; side B reads
pipe 1 and answers on pipe 2. Each side has nothing to do until the other answers, so
every one-way message is one hand-off from one side to the other: a context switch
(or, on two cores, a wake-up of the other core). The one-way pipe has no answer to
wait for: the writer fills the 64 KiB pipe buffer for a whole time slice, then the
reader drains it, so most messages cross without any switch at all.

Each side counts its own voluntary and involuntary switches (the kernel's counters in
/proc/self/task/TID/status) around the timed part, so every figure carries how many
switches really happened per message.
"""

from __future__ import annotations

import os
import threading
import time

from ._proto import events, start_process, start_thread, thread_stats

PLACEMENTS = ("same-core", "cross-core", "unpinned")
BYTE = b"x"
WARMUP = 200  # round trips before timing: caches warm, both sides on their CPUs
CHUNK = 1000  # messages between progress reports
SHORT = {"oneway": "1way", "threads": "thr", "processes": "proc",
         "same-core": "same", "cross-core": "cross", "unpinned": "free"}


def cpu_sets(placement, allowed):
    """The CPUs each side may use: one shared CPU, two different CPUs, or any."""
    if placement == "same-core":
        return {allowed[0]}, {allowed[0]}
    if placement == "cross-core":
        return {allowed[0]}, {allowed[1]}
    return set(allowed), set(allowed)


def pin_this_thread(cpus):
    """On Linux, pid 0 means the calling thread, so each side pins only itself."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, cpus)


def switches():
    stats = thread_stats()
    return stats.get("voluntary", 0), stats.get("involuntary", 0)


def thread_name(side, method, placement):
    return "%s-%s-%s" % (side, SHORT[method], SHORT[placement])  # at most 15 characters


# The two sides of a ping-pong ------------------------------------------------------------


def ping(send, receive, messages, cpus, label, report):
    """Send a byte, wait for the answer; time `messages` round trips."""
    pin_this_thread(cpus)
    out = events()
    for _ in range(WARMUP):
        os.write(send, BYTE)
        os.read(receive, 1)
    vol, invol = switches()
    started = time.perf_counter()
    done = 0
    while done < messages:
        chunk = min(CHUNK, messages - done)
        for _ in range(chunk):
            os.write(send, BYTE)
            os.read(receive, 1)
        done += chunk
        out.latest("progress", key=label, run=label, done=done, total=messages)
    elapsed = time.perf_counter() - started
    vol2, invol2 = switches()
    report.update(elapsed_s=elapsed, voluntary=vol2 - vol, involuntary=invol2 - invol)


def pong(receive, send, messages, cpus, report=None, unused=()):
    """Answer every byte; returns this side's switch counts over the timed part.

    Stops early at end of file: if the other side fails, closing its pipe ends frees us.
    """
    for fd in unused:  # a forked pong drops its copies of the other side's ends
        os.close(fd)
    pin_this_thread(cpus)
    for _ in range(WARMUP):
        if not os.read(receive, 1):
            return {}
        os.write(send, BYTE)
    vol, invol = switches()
    for _ in range(messages):
        if not os.read(receive, 1):
            break
        os.write(send, BYTE)
    vol2, invol2 = switches()
    counts = {"voluntary": vol2 - vol, "involuntary": invol2 - invol}
    if report is not None:
        report.update(counts)
    return counts


def ping_pong(method, placement, allowed, messages):
    """Round trips between two threads of this process, or this process and a child."""
    cpus_a, cpus_b = cpu_sets(placement, allowed)
    label = "%s/%s" % (method, placement)
    there_r, there_w = os.pipe()  # A -> B
    back_r, back_w = os.pipe()  # B -> A
    a, b = {}, {}
    try:
        if method == "threads":
            other = start_thread(pong, thread_name("pong", method, placement), "pong",
                                 (there_r, back_w, messages, cpus_b, b))
            ping_thread = start_thread(ping, thread_name("ping", method, placement), "ping",
                                       (there_w, back_r, messages, cpus_a, label, a))
            ping_thread.join()
            if "elapsed_s" in a:
                other.join()  # else it stays blocked: a daemon thread, gone with the run
        else:
            # Forked from this (main, long-lived) thread, so its death signal stays armed.
            process, receiver = start_process(pong, thread_name("pong", method, placement),
                                              "pong", (there_r, back_w, messages, cpus_b, None,
                                                       (there_w, back_r)),
                                              want_result=True)
            ping_thread = start_thread(ping, thread_name("ping", method, placement), "ping",
                                       (there_w, back_r, messages, cpus_a, label, a))
            ping_thread.join()
            if "elapsed_s" not in a:  # the ping side failed: let the pong see end of file
                os.close(there_w)
                there_w = None
            b = receiver.recv()
            process.join()
    finally:
        for fd in (there_r, there_w, back_r, back_w):
            if fd is not None:
                os.close(fd)
    if "elapsed_s" not in a:
        raise RuntimeError("the ping side of %s failed (see its traceback)" % label)
    return figure(method, placement, messages, 2 * messages, a["elapsed_s"], a, b)


# The article's method ---------------------------------------------------------------------


def writer(send, messages, cpus, report):
    pin_this_thread(cpus)
    vol, invol = switches()
    for _ in range(messages):
        os.write(send, BYTE)
    vol2, invol2 = switches()
    report.update(voluntary=vol2 - vol, involuntary=invol2 - invol)


def reader(receive, messages, cpus, label, report, ready):
    try:
        pin_this_thread(cpus)
    finally:
        ready.set()  # even on failure: the main thread must not wait forever
    out = events()
    vol, invol = switches()
    started = time.perf_counter()
    done = 0
    while done < messages:
        chunk = min(CHUNK, messages - done)
        for _ in range(chunk):
            os.read(receive, 1)
        done += chunk
        out.latest("progress", key=label, run=label, done=done, total=messages)
    elapsed = time.perf_counter() - started
    vol2, invol2 = switches()
    report.update(elapsed_s=elapsed, voluntary=vol2 - vol, involuntary=invol2 - invol)


def oneway(placement, allowed, messages):
    """One thread writes single bytes, another reads them: timed from the reader."""
    cpus_w, cpus_r = cpu_sets(placement, allowed)
    label = "oneway/%s" % placement
    r, w = os.pipe()
    wrote, read = {}, {}
    ready = threading.Event()
    try:
        reading = start_thread(reader, thread_name("read", "oneway", placement), "reader",
                               (r, messages, cpus_r, label, read, ready))
        ready.wait()
        writing = start_thread(writer, thread_name("write", "oneway", placement), "writer",
                               (w, messages, cpus_w, wrote))
        reading.join()
        if "elapsed_s" not in read:  # the reader failed: a closed pipe stops the writer
            os.close(r)
            r = None
        writing.join()
    finally:
        for fd in (r, w):
            if fd is not None:
                os.close(fd)
    if "elapsed_s" not in read:
        raise RuntimeError("the reader of %s failed (see its traceback)" % label)
    return figure("oneway", placement, messages, messages, read["elapsed_s"], read, wrote)


# The figure -------------------------------------------------------------------------------

BATCHING_BELOW = 0.5  # switches per message: under this, the pipe batched the messages


def figure(method, placement, round_trips, one_way_messages, elapsed, side_a, side_b):
    voluntary = side_a.get("voluntary", 0) + side_b.get("voluntary", 0)
    involuntary = side_a.get("involuntary", 0) + side_b.get("involuntary", 0)
    per_msg = (voluntary + involuntary) / float(one_way_messages)
    result = {
        "method": method,
        "placement": placement,
        "messages": one_way_messages,
        "elapsed_s": elapsed,
        "us_per_msg": elapsed / one_way_messages * 1e6,
        "us_per_roundtrip": None if method == "oneway" else elapsed / round_trips * 1e6,
        "switches_per_msg": per_msg,
        "voluntary": voluntary,
        "involuntary": involuntary,
        "reading": "batching" if per_msg < BATCHING_BELOW else "switching",
    }
    return result
