"""`conlab watch -- CMD` and `conlab attach PID`: real programs, real diagnoses, refusals,
nothing left behind."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys

import psutil
import pytest

from lab.core.record_check import RECORD_VERSION, check_record
from tests.helpers import (ROOT, alive, busy_reason, conlab, python_under_test,
                           usable_cpus, wait_for)

PROGRAMS = ROOT / "tests" / "programs"


def watch_json(*args: str, seconds: str = "1.5") -> dict:
    done = conlab("watch", "--json", "--duration", seconds, "--", *args, timeout=60)
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    check_record(record, RECORD_VERSION)  # history, show and compare accept it
    return record


def program(name: str, *args: str) -> list[str]:
    """A program of tests/programs under the tests' interpreter (a free-threaded one when
    CI's second pass sets it)."""
    return [python_under_test() or sys.executable, str(PROGRAMS / name), *args]


def kinds(record: dict, pid: int | None = None) -> list[str]:
    return [d["kind"] for d in record["diagnosis"] if pid is None or d["pid"] == pid]


@pytest.mark.timing
def test_json_threads_are_gil_bound_and_never_on_a_free_threaded_build():
    record = watch_json(*program("json_threads.py", "2", "30"))
    if record["interpreter"]["gil_enabled"] is not True:  # off, or a free-threaded build's
        assert "gil-bound" not in kinds(record), record["diagnosis"]  # state unknown
        return
    if usable_cpus() < 2:
        pytest.skip("one usable CPU: two threads cannot use more than one core anyway")
    why = busy_reason(record)
    if why:
        pytest.skip(why)
    root = record["processes"][0]
    assert "gil-bound" in kinds(record, root["pid"]), record["diagnosis"]
    found = next(d for d in record["diagnosis"] if d["kind"] == "gil-bound")
    assert found["lesson"] == "gil-cpu" and found["figures"]["busy_threads"] >= 2
    assert record["thresholds"]["gil_handoffs_per_s"] > 0  # stated in the record


@pytest.mark.timing
def test_hashlib_threads_use_several_cores_and_are_never_gil_bound():
    record = watch_json(*program("hashlib_threads.py", "2", "30"))
    assert "gil-bound" not in kinds(record), record["diagnosis"]
    if usable_cpus() < 2:
        pytest.skip("one usable CPU: no second core to use")
    why = busy_reason(record)
    if why:
        pytest.skip(why)
    root = next(p for p in record["processes"] if p["name"].startswith("python"))
    assert root["cores"] > 1.3, root
    assert "parallel" in kinds(record)


def test_sleepy_program_is_mostly_waiting():
    record = watch_json(*program("sleepy.py", "2", "30"))
    assert "waiting" in kinds(record), record["diagnosis"]
    root = next(p for p in record["processes"] if p["name"].startswith("python"))
    assert root["off_cpu_share"] > 0.9 and root["voluntary_per_s"] > 2
    assert record["ended"] == "stopped at the end of the watch"
    assert record["exit_status"] == -signal.SIGTERM


def test_process_pool_shows_several_processes():
    record = watch_json(*program("process_pool.py", "2", "30"), seconds="2")
    pythons = [p for p in record["processes"] if p["name"].startswith("python")]
    assert len(pythons) >= 3, record["processes"]  # the parent and its two workers
    workers = [p for p in pythons if p["ppid"] == record["processes"][0]["pid"] or
               p["pid"] != pythons[0]["pid"]]
    assert sum(p["cores"] for p in workers) > 0.2


def test_a_program_that_exits_ends_the_watch_with_its_status():
    done = conlab("watch", "--json", "--", sys.executable, "-c", "import sys; sys.exit(3)",
                  timeout=60)
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    assert record["exit_status"] == 3 and record["ended"] == "exited with status 3"
    done = conlab("watch", "--json", "--until-exit", "--", sys.executable, "-c",
                  "import sys; sys.exit(3)", timeout=60)
    assert done.returncode == 3  # --until-exit: watch exits with the program's status


def test_attach_reads_a_running_process_and_ends_when_it_exits():
    target = subprocess.Popen(["sleep", "2"], stdin=subprocess.DEVNULL)
    try:
        done = conlab("attach", str(target.pid), "--json", timeout=60)
        assert done.returncode == 0, done.stderr
        record = json.loads(done.stdout)
        check_record(record, RECORD_VERSION)
        assert record["ended"] == "ended" and record["exit_status"] is None
        assert record["attached_pid"] == target.pid
        assert record["processes"][0]["name"] == "sleep"
        assert "idle" in kinds(record) or "waiting" in kinds(record)
        # Read-only: the target ran to its own end, untouched by any signal.
        assert target.wait(timeout=10) == 0
    finally:
        target.kill()
        target.wait()


def kernel_thread() -> int | None:
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open("/proc/%s/stat" % name) as f:
                    text = f.read()
            except OSError:
                continue
            if int(text.rsplit(")", 1)[1].split()[6]) & 0x00200000:
                return int(name)
    return None


def refused(*args: str, spawn_log) -> str:
    done = conlab(*args, timeout=60, env={"CONLAB_SPAWN_LOG": str(spawn_log)})
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert done.stdout == "" and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not spawn_log.exists()  # nothing started
    return done.stderr


def test_refusals_are_one_line_and_start_nothing(tmp_path):
    log = tmp_path / "spawned"
    assert "no process with PID" in refused("attach", "4194304", spawn_log=log)
    kthread = kernel_thread()
    if kthread is not None:
        assert "kernel thread" in refused("attach", str(kthread), spawn_log=log)
    assert "command not found" in refused("watch", "--", "no-such-command-xyz", spawn_log=log)
    plain = tmp_path / "script.sh"
    plain.write_text("#!/bin/sh\necho hi\n")
    plain.chmod(stat.S_IRUSR | stat.S_IWUSR)
    assert "not executable" in refused("watch", "--", str(plain), spawn_log=log)
    assert "needs a command" in refused("watch", spawn_log=log)


def test_kill_9_of_watch_leaves_nothing(tmp_path):
    """The program and the workers it forked die with conlab, even by kill -9."""
    watcher = subprocess.Popen(
        [sys.executable, "-m", "lab", "watch", "--log", str(tmp_path / "out.log"), "--",
         *program("process_pool.py", "2", "60")], cwd=ROOT, stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def pool() -> list[int]:
        found = [c.pid for c in psutil.Process(watcher.pid).children(recursive=True)
                 if "process_pool.py" in " ".join(c.cmdline())]
        return found if len(found) >= 3 else []

    try:
        watched = wait_for(pool, 30, "the program and its two workers to start")
    finally:
        watcher.kill()
        watcher.wait()
    try:
        wait_for(lambda: not alive(watched), 10, "the program and its workers to die with conlab")
    finally:
        for pid in alive(watched):  # a failed run must not leave them for the next test
            os.kill(pid, signal.SIGKILL)


def test_no_probe_runs_the_program_untouched(tmp_path):
    out = tmp_path / "seen.json"
    code = ("import json, os, sys; json.dump({'argv': sys.argv, 'env': dict(os.environ)}, "
            "open(%r, 'w'))" % str(out))
    done = conlab("watch", "--json", "--no-probe", "--", sys.executable, "-c", code, "x",
                  timeout=60)
    assert done.returncode == 0, done.stderr
    seen = json.loads(out.read_text())
    assert seen["argv"] == ["-c", "x"]
    assert seen["env"] == dict(os.environ)  # not one variable added, changed or removed
    record = json.loads(done.stdout)
    assert record["result"]["probe"]["status"] == "off: --no-probe"
    try:
        import workloads.probe  # noqa: F401  (another branch brings it)
    except ImportError:
        return
    done = conlab("watch", "--json", "--", sys.executable, "-c", code, "x", timeout=60)
    seen = json.loads(out.read_text())
    assert "CONLAB_PROBE_FD" in seen["env"] and seen["argv"] == ["-c", "x"]


# The diagnosis itself, on figures (any machine: no timing involved) ----------------------
def figures_of(threads: list[tuple[float, float, int, int]], python: dict | None,
               wall: float = 2.0) -> dict:
    """Threads as (cpu_s, run_delay_s, voluntary, involuntary) of one process, pid 10."""
    return {"wall_s": wall, "root": 10, "since": None,
            "processes": {10: {"pid": 10, "name": "app", "alive": True, "python": python,
                               "process_cpu_s": None}},
            "threads": [{"pid": 10, "tid": 10 + i, "name": "t%d" % i, "alive": True,
                         "lifetime_s": wall, "cpu_s": c, "run_delay_s": d, "voluntary": v,
                         "involuntary": n} for i, (c, d, v, n) in enumerate(threads)]}


TWO_CPUS = {"usable_cpus": 2, "other_cpu_share": 0.0}
SHARING_ONE_CORE = [(0.0, 0.0, 2, 0), (1.0, 0.05, 400, 10), (1.0, 0.05, 400, 10)]


def test_threads_sharing_one_core_are_gil_bound_only_with_a_gil():
    from lab.core.diagnose import diagnose_figures

    gil = {"gil_enabled": True, "free_threaded": False}
    found = diagnose_figures(figures_of(SHARING_ONE_CORE, gil), None, TWO_CPUS)
    assert found[0]["kind"] == "gil-bound" and found[0]["lesson"] == "gil-cpu"
    assert found[0]["figures"]["busy_cores"] == 1.0
    free = {"gil_enabled": False, "free_threaded": True}
    assert "gil-bound" not in kinds({"diagnosis": diagnose_figures(
        figures_of(SHARING_ONE_CORE, free), None, TWO_CPUS)})
    one_cpu = {"usable_cpus": 1, "other_cpu_share": 0.0}
    assert "gil-bound" not in kinds({"diagnosis": diagnose_figures(
        figures_of(SHARING_ONE_CORE, gil), None, one_cpu)})
    native = diagnose_figures(figures_of(SHARING_ONE_CORE, None), None, TWO_CPUS)
    assert native[0]["kind"] == "one-core" and "not Python" in native[0]["says"]


def test_waiting_for_a_cpu_is_saturation_not_the_gil():
    from lab.core.diagnose import diagnose_figures

    gil = {"gil_enabled": True, "free_threaded": False}
    busy = [(1.0, 0.9, 400, 300), (1.0, 0.9, 400, 300)]
    found = kinds({"diagnosis": diagnose_figures(figures_of(busy, gil), None, TWO_CPUS)})
    assert "cpu-saturated" in found and "gil-bound" not in found


def test_probe_findings_name_the_line_and_the_cycle():
    from lab.core.diagnose import diagnose_figures, wait_cycle
    from lab.core.watch import ProbeFacts

    probe = ProbeFacts()
    probe.apply({"ev": "loop_blocked", "pid": 10, "tid": 10, "lag_ms": 320,
                 "where": "app.py:88 handle()", "loop": "asyncio"})
    probe.apply({"ev": "locks", "pid": 10, "held": {"A": 11, "B": 12},
                 "waiting": {"11": "B", "12": "A"}, "names": {"11": "T1", "12": "T2"},
                 "where": {"11": "app.py:12 worker()", "12": "app.py:20 other()"}})
    found = diagnose_figures(figures_of([(0.0, 0.0, 5, 0)] * 3, None), probe, TWO_CPUS)
    assert [d["kind"] for d in found[:2]] == ["deadlock", "loop-blocked"]
    assert found[0]["says"] == ("deadlock: T1 holds A and waits for B; "
                                "T2 holds B and waits for A")
    assert "320 ms at app.py:88 handle()" in found[1]["says"]
    assert wait_cycle({"held": {"A": 11}, "waiting": {"12": "A"}}) == []


def test_attach_refuses_a_thread_id_and_a_process_it_may_not_read(monkeypatch):
    import threading

    from lab.core import watch
    from lab.core.runner import Refused

    ready, leave = threading.Event(), threading.Event()
    worker = threading.Thread(target=lambda: (ready.set(), leave.wait(30)))
    worker.start()
    try:
        ready.wait(10)
        with pytest.raises(Refused, match="is a thread of process %d" % os.getpid()):
            watch.check_attach(worker.native_id)
    finally:
        leave.set()
        worker.join()
    real = os.listdir

    def denied(path):  # what a process of another user looks like to a normal user
        if str(path).endswith("/fd"):
            raise PermissionError(13, "Permission denied")
        return real(path)

    target = subprocess.Popen(["sleep", "30"], stdin=subprocess.DEVNULL)
    try:
        monkeypatch.setattr(watch.os, "listdir", denied)
        with pytest.raises(Refused, match="you may not read its /proc files"):
            watch.check_attach(target.pid)
    finally:
        target.kill()
        target.wait()


def test_the_process_list_offers_ones_own_processes_and_no_kernel_threads():
    from lab.core.watch import list_processes

    target = subprocess.Popen(["sleep", "30"], stdin=subprocess.DEVNULL)
    try:
        listed = {p["pid"]: p for p in list_processes(limit=100000)}
        assert listed[target.pid]["command"] == "sleep 30"
        assert os.getpid() not in listed
        kthread = kernel_thread()
        assert kthread is None or kthread not in listed
    finally:
        target.kill()
        target.wait()


SHORT_THREADS = """
import threading, time
def burn():
    end = time.thread_time() + 0.01
    while time.thread_time() < end:
        pass
stop = time.monotonic() + 30
while time.monotonic() < stop:
    t = threading.Thread(target=burn)
    t.start()
    t.join()
"""


def test_threads_that_end_between_samples_still_count():
    """A thread per request that lives 10 ms is rarely sampled; the process's own clock
    counts it anyway, so the cores in use are not lost with it."""
    record = watch_json(python_under_test() or sys.executable, "-c", SHORT_THREADS)
    root = record["processes"][0]
    sampled = sum(t["cpu_s"] for t in record["threads"] if t["pid"] == root["pid"])
    assert root["cores"] * root["window_s"] > 1.5 * sampled + 0.05, (root, sampled)


def test_whatever_a_program_writes_on_the_probe_pipe_never_breaks_the_watch():
    from lab.core.diagnose import diagnose_figures
    from lab.core.watch import ProbeFacts

    probe = ProbeFacts()
    for event in ({"ev": "result", "pid": 10}, {"ev": "locks", "pid": "10"},
                  {"ev": "probe_threads", "pid": 10, "threads": 7},
                  {"ev": "loop_blocked", "pid": 10, "lag_ms": "slow", "where": ["x"]},
                  {"ev": "locks", "pid": 10, "held": [], "waiting": "A", "names": 3},
                  {"ev": "locks", "pid": 10, "held": {"A": "x", "B": None},
                   "waiting": {"x": "B", "12": ["A"]}}):
        probe.apply(event)
    assert probe.dropped == 2
    found = diagnose_figures(figures_of([(0.0, 0.0, 5, 0)], None), probe, TWO_CPUS)
    assert found and all(isinstance(d["says"], str) for d in found)


def test_preemption_is_said_only_when_it_costs_the_threads_waiting_time():
    from lab.core.diagnose import diagnose_figures

    # Two busy threads preempted 40 times a second each on an otherwise idle machine:
    # the switches are involuntary, but the threads hardly waited (0.5 %): nothing to say.
    cheap = [(1.6, 0.008, 10, 80), (1.6, 0.008, 10, 80)]
    assert "preempted" not in kinds({"diagnosis": diagnose_figures(
        figures_of(cheap, None), None, TWO_CPUS)})
    # The same switches while they waited for a CPU a tenth of their runnable time (under
    # the cpu-saturated threshold, which would explain them itself).
    costly = [(1.8, 0.2, 10, 80), (1.8, 0.2, 10, 80)]
    found = diagnose_figures(figures_of(costly, None), None, TWO_CPUS)
    said = next(d for d in found if d["kind"] == "preempted")
    assert "run_delay_share" in said["figures"] and "waited for a CPU" in said["says"]


def test_headless_watch_shows_a_live_line_each_second_and_the_diagnosis_in_80_columns():
    done = conlab("watch", "--duration", "2.5", "--", *program("sleepy.py", "2", "30"),
                  timeout=60)
    assert done.returncode == 0, done.stderr
    live = [line for line in done.stderr.splitlines() if " cores " in line]
    assert live and all(len(line) <= 80 for line in live), done.stderr
    lines = done.stdout.splitlines()
    assert "diagnosis:" in lines and "mostly waiting" in done.stdout
    assert all(len(line) <= 80 for line in lines if not line.startswith("program output"))
