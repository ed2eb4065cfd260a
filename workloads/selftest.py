"""selftest: a child that misbehaves on purpose, so the lab's error paths can be seen and tested."""

from __future__ import annotations

import os
import sys
import threading
import time

from ._proto import start_process, start_thread
from ._spec import Param

NAME = "selftest"
TITLE = "Lab self-test: a child that crashes, hangs, floods or spawns on purpose"
LESSON = """\
Not a lesson: this experiment checks the lab itself. It can crash, hang past the
watchdog, write garbage on the event channel, print to its stdout, or start worker
processes and threads that never end, so you can see that the lab reports each case
and leaves nothing running behind it.
"""
REQUIRES = ()
TIMEOUT_S = 60
LESSON_CODE = ("spin", "sleep_forever")
# May run beside other runs: it checks the lab's error paths, not a figure.
CPU_BOUND = False

BEHAVIOURS = ("ok", "crash", "hang", "garbage", "print", "exit", "spawn")
PARAMS = (
    Param.choice("behave", "ok", BEHAVIOURS, "what the child does"),
    Param.int("workers", 2, 1, 16, "worker processes (and threads) for `spawn`"),
    Param.float("seconds", 0.2, 0.0, 3600.0, "how long `ok` keeps a thread busy"),
)


def spin(seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        pass


def sleep_forever():
    while True:
        time.sleep(3600)


def tasks_needed(params):
    """Main thread and a spinner, or `workers` threads (hang) and as many processes (spawn)."""
    per_worker = {"hang": 1, "spawn": 2}.get(params["behave"])
    return "workers", 1 + (per_worker * params["workers"] if per_worker else 1)



def run(params, out):
    behave = params["behave"]
    if behave == "crash":
        raise RuntimeError("crashed on purpose")
    if behave == "exit":
        sys.stdout.flush()
        os._exit(7)  # dies without a word on the event channel
    if behave == "garbage":
        os.write(out.fd, b"this is not JSON\n\x00\xff{half a record\n")
    if behave == "print":
        print("a stray print that must never reach the lab's terminal")
    if behave in ("hang", "spawn"):
        for i in range(params["workers"]):
            start_thread(sleep_forever, "stuck-%d" % (i + 1), "worker")
            if behave == "spawn":
                start_process(sleep_forever, "proc-%d" % (i + 1), "worker")
        out.emit("spawned", workers=params["workers"], threads=threading.active_count())
        sleep_forever()
    worker = start_thread(spin, "spinner", "worker", (params["seconds"],))
    worker.join()
    return {"behaved": behave}
