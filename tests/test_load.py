"""workloads/_load.py against real busy programs: a busy loop outside the run is other
programs' demand; the run's own busy threads and children are not."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.helpers import ROOT, wait_for

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="no /proc/stat here")

# The measured "run": optionally busy threads, a busy child kept alive and a busy child
# that ends (and is reaped) inside the window; it prints the window's figures and its own
# independent reading of those busy tasks' CPU time (schedstat and /proc/PID/stat).
RUN = r"""
import json, os, sys, threading, time
from workloads._load import LoadMeter, TICK_S

args = json.loads(sys.argv[1])
stop = threading.Event()

def spin():
    while not stop.is_set():
        pass

def thread_cpu(tid):
    with open("/proc/self/task/%d/schedstat" % tid) as f:
        return int(f.read().split()[0]) / 1e9

def proc_cpu(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * TICK_S

threads = [threading.Thread(target=spin) for _ in range(args["threads"])]
for t in threads:
    t.start()
children = []
if args["own_children"]:
    child = os.fork()
    if child == 0:
        while True:
            pass
    children.append(child)
tids = [t.native_id for t in threads]
meter = LoadMeter()
before = sum(thread_cpu(t) for t in tids) + sum(proc_cpu(c) for c in children)
hog_before = proc_cpu(args["hog"]) if args["hog"] else 0.0
with meter.window() as window:
    if args["own_children"]:
        short = os.fork()
        if short == 0:
            end = time.monotonic() + 0.3
            while time.monotonic() < end:
                pass
            os._exit(0)
        os.waitpid(short, 0)  # its time is now in our reaped children
    time.sleep(args["seconds"])
    after = sum(thread_cpu(t) for t in tids) + sum(proc_cpu(c) for c in children)
    hog_after = proc_cpu(args["hog"]) if args["hog"] else 0.0
stop.set()
for child in children:
    os.kill(child, 9)
    os.waitpid(child, 0)
print(json.dumps({"window": window.figures, "block": meter.block(),
                  "busy_tasks_cpu_s": after - before, "hog_cpu_s": hog_after - hog_before}))
"""


def cpu_s(pid: int) -> float:
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def first_cpu() -> int:
    return min(os.sched_getaffinity(0))


def measure(cpus=None, threads=0, own_children=False, hog=None, seconds=1.0) -> dict:
    def pin():
        if cpus is not None:
            os.sched_setaffinity(0, cpus)

    args = {"threads": threads, "own_children": own_children, "hog": hog, "seconds": seconds}
    done = subprocess.run([sys.executable, "-c", RUN, json.dumps(args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL, preexec_fn=pin)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture
def hog():
    """A busy loop that is not part of the measured run (started and killed here)."""
    def start(cpus=None):
        def pin():
            if cpus is not None:
                os.sched_setaffinity(0, cpus)

        proc = subprocess.Popen([sys.executable, "-c", "while True: pass"],
                                stdin=subprocess.DEVNULL, preexec_fn=pin,
                                start_new_session=True)
        started.append(proc)
        wait_for(lambda: cpu_s(proc.pid) > 0.05, timeout=30, what="the busy loop to run")
        return proc

    started: list[subprocess.Popen] = []
    yield start
    for proc in started:
        proc.kill()
        proc.wait()


def test_a_busy_loop_outside_the_run_is_other_programs_demand(hog):
    """Pinned to the run's only CPU, the busy loop keeps it busy all the window: ~1 CPU."""
    cpu = first_cpu()
    loop = hog({cpu})
    figures = measure(cpus={cpu}, hog=loop.pid)
    block, window = figures["block"], figures["window"]
    assert block["usable_cpus"] == 1 and block["windows"] == 1
    assert window["own_cpu_s"] < 0.1, window
    assert block["other_cpu_share"] > 0.85, block
    assert block["busy"] is True
    # Other programs' time includes the loop's own, read independently.
    assert window["other_cpu_s"] >= 0.9 * figures["hog_cpu_s"] - 0.03, figures


def test_an_unpinned_busy_loop_shows_up_in_other_programs_time(hog):
    loop = hog()
    figures = measure(hog=loop.pid)
    window = figures["window"]
    if figures["hog_cpu_s"] < 0.1:
        pytest.skip("the busy loop hardly got a CPU (%.2f s): the machine is saturated"
                    % figures["hog_cpu_s"])
    assert window["other_cpu_s"] >= 0.9 * figures["hog_cpu_s"] - 0.03, figures
    assert figures["block"]["usable_cpus"] == len(os.sched_getaffinity(0))


def test_the_runs_own_busy_threads_and_children_are_not_other_programs():
    """Two busy threads, a busy child and a reaped one, all on one CPU: that CPU is busy
    the whole window, and the time of all of them is the run's own."""
    cpu = first_cpu()
    figures = measure(cpus={cpu}, threads=2, own_children=True)
    window = figures["window"]
    capacity = window["capacity_s"]
    # Everything the busy tasks got (plus the reaped child) is counted as the run's own.
    assert window["own_cpu_s"] >= 0.9 * figures["busy_tasks_cpu_s"] - 0.03, figures
    if window["own_cpu_s"] < 0.1:
        pytest.skip("the busy tasks hardly got CPU %d (%.2f s): the machine is saturated"
                    % (cpu, window["own_cpu_s"]))
    # ...and none of it as other programs': only what the run did not use can be theirs.
    assert window["other_cpu_s"] <= capacity - window["own_cpu_s"] + 0.05, figures
    if window["other_cpu_s"] > 0.1 * capacity:
        pytest.skip("other programs really took %.0f%% of CPU %d during the window"
                    % (100 * window["other_cpu_share"], cpu))
    assert figures["block"]["busy"] is False


def test_the_block_sums_windows_and_says_nothing_without_proc_stat(monkeypatch):
    from workloads import _load

    meter = _load.LoadMeter(threshold=0.25)
    for _ in range(2):
        with meter.window():
            pass
    block = meter.block()
    assert block["windows"] == 2 and block["threshold"] == 0.25
    assert set(block) >= {"other_cpu_share", "steal_share", "busy", "usable_cpus", "threshold"}

    monkeypatch.setattr(_load, "cpu_ticks", lambda cpus: None)
    meter = _load.LoadMeter()
    with meter.window() as window:
        pass
    assert window.figures["other_cpu_share"] is None
    assert meter.block()["busy"] is False and meter.block()["other_cpu_share"] is None
    assert _load.describe(meter.block()) == ""


def test_describe_names_the_share_and_the_cpus():
    from workloads._load import describe

    text = describe({"other_cpu_share": 0.42, "steal_share": 0.0, "usable_cpus": 2})
    assert "42%" in text and "2 usable CPUs" in text and "0.8 CPU" in text
    one = describe({"other_cpu_share": 0.5, "steal_share": 0.0, "usable_cpus": 1})
    assert "1 usable CPU " in one
