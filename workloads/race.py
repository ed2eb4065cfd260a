"""race: threads incrementing one shared counter, with and without protection."""

from __future__ import annotations

import sys
import threading
import time

from ._bytecode import listing
from ._proto import free_threaded, gil_enabled, start_thread
from ._spec import Param
from ._words import grouped

NAME = "race"
TITLE = "Lost updates: four ways to race on a counter, two ways not to"
LESSON = """\
Several threads add 1 to one shared counter. `counter += 1` is a read, an add and a
write; if another thread runs between the read and the write, one increment is lost.
Whether that happens depends on where the interpreter may switch threads: CPython
3.10+ only hands the GIL over at calls and backward jumps, so a bare `+=` rarely
loses there, while a call (or a sleep) between read and write loses on every build.
On a free-threaded build the threads run at once, so even a bare `+=` loses.
A lock, or per-thread counts summed at the end, never lose anything.
"""
REQUIRES = ()
TIMEOUT_S = 300
LESSON_CODE = ("naive", "call", "sleep0", "length", "locked", "local")
# In the TUI it runs in turn with other CPU-bound runs: threads spin on one counter;
# whether they run at once decides the losses.
CPU_BOUND = True

SLEEP0_CAP = 20_000  # every sleep(0) is a syscall and a GIL hand-off: ~20 us each
VARIANTS = ("naive", "call", "sleep0", "len", "locked", "local")
PARAMS = (
    Param.int("threads", 4, 2, 64, "threads incrementing the counter"),
    Param.int("increments", 1_000_000, 100, 20_000_000,
              "increments per thread (sleep0 does at most %d: each is a system call)" % SLEEP0_CAP),
    Param.choice("variant", "all", ("all",) + VARIANTS, "which variant to run"),
    Param.float("switch_interval_ms", 5.0, 0.01, 1000.0,
                "sys.setswitchinterval: shorter means more GIL hand-offs"),
)

CHUNK = 1_000  # increments between progress updates

counter = 0
lock = threading.Lock()


def noop():
    pass


# The variants. Each adds `n` to the shared counter, or should. --------------------------


def naive(n):
    global counter
    for _ in range(n):
        counter += 1


def call(n):
    global counter
    for _ in range(n):
        value = counter
        noop()  # a Python call between read and write: a point where the GIL may move
        counter = value + 1


def sleep0(n):
    global counter
    for _ in range(n):
        value = counter
        time.sleep(0)  # drops the GIL outright
        counter = value + 1


def length(n):
    global counter
    for _ in range(n):
        value = counter
        len(())  # a call on 3.10; specialised (no hand-off) from 3.11
        counter = value + 1


def locked(n):
    global counter
    for _ in range(n):
        with lock:
            counter += 1


def local(n):
    global counter
    mine = 0
    for _ in range(n):
        mine += 1
    with lock:
        counter += mine


STEPS = {"naive": naive, "call": call, "sleep0": sleep0, "len": length, "locked": locked,
         "local": local}


def increments_for(variant, increments):
    """Increments per thread this variant really does (sleep0 is capped)."""
    return min(increments, SLEEP0_CAP) if variant == "sleep0" else increments


def run_variant(variant, threads, increments, out):
    global counter
    counter = 0
    step = STEPS[variant]
    increments = increments_for(variant, increments)
    begun = [0] * threads  # increments each thread has started (its slot only)
    done = [0] * threads  # ... and finished
    # All start together: on a busy machine (or a fast build) the first thread could
    # otherwise finish before the last one starts, and nothing would overlap.
    gate = threading.Barrier(threads)

    def worker(index):
        gate.wait()
        remaining = increments
        while remaining:
            chunk = min(CHUNK, remaining)
            begun[index] += chunk
            step(chunk)
            remaining -= chunk
            done[index] += chunk

    out.emit("phase", variant=variant, state="start", threads=threads, increments=increments)
    started = time.perf_counter()
    workers = [start_thread(worker, "%s-%d" % (variant, i + 1), "worker", (i,))
               for i in range(threads)]
    while any(w.is_alive() for w in workers):
        # Read in this order so the figures hold while threads are mid-chunk: every
        # increment in `actual` was begun before we read `begun` (actual <= expected),
        # and every one finished before we read `done` is in `actual` unless lost.
        finished = sum(done)
        actual = counter
        expected = sum(begun)
        out.latest("counter", key=variant, variant=variant, expected=expected, actual=actual,
                   lost=max(0, finished - actual))
        time.sleep(0.05)
    for w in workers:
        w.join()
    expected = threads * increments
    summary = {"expected": expected, "actual": counter, "lost": expected - counter,
               "wall_s": time.perf_counter() - started}
    out.latest("counter", key=variant, final=True, variant=variant, expected=expected,
               actual=counter)
    out.emit("phase", variant=variant, state="end", **summary)
    return summary


def tasks_needed(params):
    """Main thread and the incrementing threads (one variant at a time)."""
    return "threads", 1 + params["threads"]



def run(params, out):
    sys.setswitchinterval(params["switch_interval_ms"] / 1000.0)
    variants = VARIANTS if params["variant"] == "all" else (params["variant"],)
    results = {}
    for variant in variants:
        results[variant] = run_variant(variant, params["threads"], params["increments"], out)
    return {
        "variants": results,
        "threads": params["threads"],
        "increments": params["increments"],
        "switch_interval_s": sys.getswitchinterval(),
        "gil_enabled": gil_enabled(),
        "free_threaded": free_threaded(),
        "explanation": explain(results),
        "verdict": verdict(results),
        # What this interpreter runs for each variant: the read, the add, the write.
        "bytecode": {variant: listing(STEPS[variant]) for variant in VARIANTS},
    }


def verdict(results):
    """The run's verdict rests on one figure: the updates the first variant run lost."""
    name = next(v for v in VARIANTS if v in results)
    lost = results[name]["lost"]
    if name in ("locked", "local"):
        says = "%s lost %s updates%s" % (name, grouped(lost), "" if lost == 0 else ": a bug")
        expected = {"gil": 0, "free_threaded": 0}
    else:
        says = ("`%s` lost updates: threads interleaved inside a read-add-write" % name
                if lost else "`%s` lost nothing this run (it is still a race)" % name)
        expected = {"gil": "none on CPython 3.10+" if name == "naive" else "some",
                    "free_threaded": "some"}
    return {"says": says, "figure": "variants.%s.lost" % name, "value": lost,
            "expected": expected, "can_tell": True}


def explain(results):
    """Read the measured losses in the light of this interpreter's switching rules."""
    if gil_enabled():
        lines = _explain_with_gil(results)
        if free_threaded():
            lines.insert(0, "This free-threaded build ran with its GIL forced on (PYTHON_GIL=1, "
                            "or an extension that needs it), so its threads took turns as on "
                            "any GIL build.")
    else:
        lines = _explain_without_gil(results)
    for name in ("locked", "local"):
        if name in results:
            lines.append("%s lost %s (it must always be 0)."
                         % (name, grouped(results[name]["lost"])))
    return " ".join(lines)


def _explain_without_gil(results):
    """A free-threaded build: the threads run at once, so any gap between read and write
    is a window another CPU can write through; the variants differ only in its width."""
    lines = []
    why = {"naive": "the threads really ran at once on different CPUs, so two could read the "
                    "same value and both write it back plus one",
           "call": "the call widens the window between read and write that a thread running "
                   "at the same time can write through",
           "sleep0": "time.sleep(0) gives up the CPU between read and write, and other "
                     "threads write meanwhile",
           "len": "len() adds a little time between read and write, and threads running at "
                  "once write through it"}
    for name in ("naive", "call", "sleep0", "len"):
        if name not in results:
            continue
        lost = results[name]["lost"]
        if lost:
            lines.append("%s lost %s: on this free-threaded build %s." % (name, grouped(lost), why[name]))
        else:
            lines.append("%s lost nothing this run, though this free-threaded build runs "
                         "threads at once: no two threads overlapped inside a read-add-write (they may have had one "
                         "CPU between them)." % name)
    return lines


def _explain_with_gil(results):
    """Switches happen only where the GIL may change hands: calls, backward jumps."""
    version = "%s %d.%d" % (sys.implementation.name, sys.version_info[0], sys.version_info[1])
    modern = sys.version_info >= (3, 10)
    lines = []
    naive_result = results.get("naive")
    if naive_result is not None:
        lost = naive_result["lost"]
        if lost == 0 and modern and sys.implementation.name == "cpython":
            lines.append("naive lost nothing on %s: the GIL changes hands only at calls and "
                         "backward jumps, and `counter += 1` has neither between its read and "
                         "write. It is still a race; the next variants show it." % version)
        elif lost == 0:
            lines.append("naive lost nothing on %s this time; the race is real but no switch "
                         "happened inside a read-add-write." % version)
        elif not modern:
            lines.append("naive lost %s on %s: this version may switch threads between any "
                         "two bytecodes, including between the read and the write."
                         % (grouped(lost), version))
        else:
            lines.append("naive lost %s on %s." % (grouped(lost), version))
    for name, why in (("call", "a Python call between read and write is a switch point"),
                      ("sleep0", "time.sleep(0) releases the GIL between read and write")):
        if name in results and results[name]["lost"]:
            lines.append("%s lost %s: %s." % (name, grouped(results[name]["lost"]), why))
        elif name in results:
            lines.append("%s lost nothing this run, though %s." % (name, why))
    if "len" in results:
        lost = results["len"]["lost"]
        if lost == 0 and sys.version_info >= (3, 11):
            lines.append("len lost nothing: from 3.11 `len()` is specialised and no longer "
                         "offers the GIL.")
        else:
            lines.append("len lost %s: here `len()` is an ordinary call, a switch point."
                         % grouped(lost))
    return lines
