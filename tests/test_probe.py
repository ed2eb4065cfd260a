"""The probe `conlab watch` loads into a user's Python program: what it reports, on real
programs under real interpreters (3.9, the lab's own, 3.13, free-threaded 3.13t), and that
the program cannot tell it is there (argv, __main__, exit code, output, its sitecustomize)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from lab.core.runner import reap_group

from tests.helpers import ROOT, free_threaded_python, interpreter, wait_for
from workloads import ENV_PROBE_FD, boot_dir

PROGRAMS = ROOT / "tests" / "programs"


def line_of(path, text: str) -> int:
    """The line number of the first line of a program containing `text`."""
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if text in line:
            return number
    raise AssertionError("%r not in %s" % (text, path))


class Probed:
    """A Python program run as `conlab watch` runs it: the boot first on PYTHONPATH, the
    probe's pipe passed by fd, its own process group (killed whole at the end)."""

    def __init__(self, python, args, probe=True, pythonpath=(), cwd=None):
        self.read_end, write_end = os.pipe()
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONLAB_PROBE")}
        env["PYTHONPATH"] = os.pathsep.join([boot_dir(), *map(str, pythonpath)])
        if probe:
            env[ENV_PROBE_FD] = str(write_end)
        self.proc = subprocess.Popen([python, *map(str, args)], env=env, cwd=cwd,
                                     pass_fds=(write_end,), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     start_new_session=True)
        os.close(write_end)
        os.set_blocking(self.read_end, False)
        self.buffer = b""
        self.events = []
        self.eof = False

    def poll(self):
        while not self.eof:
            try:
                chunk = os.read(self.read_end, 65536)
            except BlockingIOError:
                break
            if not chunk:
                self.eof = True
            self.buffer += chunk
        *lines, self.buffer = self.buffer.split(b"\n")
        self.events += [json.loads(line) for line in lines]  # every line is whole JSON
        return self.events

    def wait_event(self, match, timeout=10.0, what="an event"):
        def found():
            return next((e for e in self.poll() if match(e)), None)

        return wait_for(found, timeout, what)

    def finish(self, timeout=20.0):
        """Wait for the program's end and for EOF on the pipe (every writer gone)."""
        out, err = self.proc.communicate(timeout=timeout)
        wait_for(lambda: self.poll() is not None and self.eof, timeout, "EOF on the probe pipe")
        return out.decode(), err.decode()

    def close(self):
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.communicate()
        os.close(self.read_end)
        # Earlier tests in this process may have made it a subreaper: reap what comes back.
        wait_for(lambda: reap_group(self.proc.pid), 5, "the program's group to end")


@pytest.fixture
def run():
    started = []

    def start(*args, **kwargs):
        started.append(Probed(*args, **kwargs))
        return started[-1]

    yield start
    for probed in started:
        probed.close()


def _interpreters():
    found = [pytest.param(sys.executable, id="lab-python")]
    for version in ("3.9", "3.13"):
        path = interpreter(version)
        found.append(pytest.param(path, id=version, marks=pytest.mark.skipif(
            path is None, reason="no CPython %s under pyenv on this machine" % version)))
    threaded = free_threaded_python()
    found.append(pytest.param(threaded, id="3.13t", marks=pytest.mark.skipif(
        threaded is None, reason="no free-threaded CPython here")))
    return found


INTERPRETERS = _interpreters()

PLAIN = textwrap.dedent("""\
    import json, sys, threading, time

    def work(done):
        done.wait(5)

    if __name__ == "__main__":
        done = threading.Event()
        worker = threading.Thread(target=work, args=(done,), name="worker-7", daemon=True)
        worker.start()
        time.sleep(float(sys.argv[2]))  # threads are reported at most twice a second
        try:
            kind = isinstance(threading.Lock(), threading.Lock)
        except TypeError:  # before 3.13, threading.Lock is a function
            kind = "TypeError"
        waits = threading.Condition(threading.RLock())
        with waits:
            with waits:
                waits.wait(0.01)
        print(json.dumps({"argv": sys.argv, "main": __name__, "lock": kind}))
        sys.stderr.write("to stderr\\n")
        done.set()
        sys.exit(3)
    """)


def _facts(python):
    done = subprocess.run([python, "-c", "import sys; f = getattr(sys, '_is_gil_enabled', None);"
                           "print(f() if f else True, 't' in sys.abiflags)"],
                          capture_output=True, text=True, timeout=30)
    gil, threaded = done.stdout.split()
    return gil == "True", threaded == "True"


@pytest.mark.parametrize("python", INTERPRETERS)
def test_hello_and_thread_names_and_the_program_sees_no_difference(python, run, tmp_path):
    program = tmp_path / "plain.py"
    program.write_text(PLAIN)
    watched = run(python, [program, "a b", "0.7"])
    hello = watched.wait_event(lambda e: e["ev"] == "probe_hello", what="probe_hello")
    assert hello["pid"] == watched.proc.pid
    assert (hello["gil_enabled"], hello["free_threaded"]) == _facts(python)
    watched.wait_event(lambda e: e["ev"] == "probe_threads" and "worker-7" in
                       [t["name"] for t in e["threads"]], what="the worker's name")
    out, err = watched.finish()
    assert watched.proc.returncode == 3
    bare = subprocess.run([python, str(program), "a b", "0.7"], capture_output=True, text=True,
                          timeout=30, env={k: v for k, v in os.environ.items()
                                           if k != "PYTHONPATH"})
    assert bare.returncode == 3
    assert (out, err) == (bare.stdout, bare.stderr)  # argv, __main__ and output untouched
    assert json.loads(out)["argv"] == [str(program), "a b", "0.7"]
    assert json.loads(out)["main"] == "__main__"
    assert watched.events[-1]["ev"] == "probe_bye"
    for event in watched.events:
        assert event["pid"] == watched.proc.pid
        for thread in event.get("threads", []):
            assert thread["name"] != "conlab-probe"  # its own thread is not the program's
    listed = [t["tid"] for e in watched.events for t in e.get("threads", [])]
    assert hello["probe_tid"] not in listed


@pytest.mark.parametrize("python", INTERPRETERS)
def test_a_blocked_loop_is_named_at_the_handlers_line(python, run):
    program = PROGRAMS / "blocking_loop.py"
    watched = run(python, [program, "8"])
    where = "blocking_loop.py:%d handle()" % line_of(program, "time.sleep(0.3)  #")
    blocked = watched.wait_event(lambda e: e["ev"] == "loop_blocked" and e["lag_ms"] >= 200,
                                 timeout=8, what="a loop_blocked event of 200 ms or more")
    assert blocked["where"] == where
    assert blocked["loop"] == "asyncio" and blocked["tid"] == watched.proc.pid  # the main thread
    lag = watched.wait_event(lambda e: e["ev"] == "loop_lag" and e["max_ms"] >= 200,
                             timeout=8, what="loop_lag with the block in it")
    assert lag["p50_ms"] <= lag["p99_ms"] <= lag["max_ms"]


def test_a_uvloop_loop_is_watched_too(run, tmp_path):
    pytest.importorskip("uvloop")
    program = tmp_path / "uv.py"
    program.write_text(textwrap.dedent("""\
        import asyncio, time, uvloop

        async def handle():
            time.sleep(0.3)

        async def main():
            for _ in range(10):
                await handle()
                await asyncio.sleep(0.5)

        loop = uvloop.new_event_loop()
        loop.run_until_complete(main())
        """))
    watched = run(sys.executable, [program])
    blocked = watched.wait_event(lambda e: e["ev"] == "loop_blocked" and e["lag_ms"] >= 200,
                                 timeout=8, what="uvloop's loop_blocked")
    assert blocked["loop"] == "uvloop" and blocked["where"] == "uv.py:4 handle()"


@pytest.mark.parametrize("python", INTERPRETERS)
def test_a_lock_order_deadlock_shows_as_a_cycle(python, run):
    program = PROGRAMS / "lock_order.py"
    watched = run(python, [program])

    def cycle(event):
        if event["ev"] != "locks" or len(event["waiting"]) < 2:
            return False
        holder = {name: str(tid) for name, tid in event["held"].items()}
        return all(holder.get(lock) not in (None, tid) for tid, lock in event["waiting"].items())

    event = watched.wait_event(cycle, what="a locks event with a wait-for cycle")
    a = "lock_a (lock_order.py:%d)" % line_of(program, "lock_a = ")
    b = "lock_b (lock_order.py:%d)" % line_of(program, "lock_b = ")
    by_name = {name: tid for tid, name in event["names"].items()}
    t1, t2 = by_name["T1"], by_name["T2"]
    assert event["held"] == {a: int(t1), b: int(t2)}
    assert event["waiting"] == {t1: b, t2: a}
    line = "lock_order.py:%d take()" % line_of(program, "with second:")
    assert event["where"][t1] == event["where"][t2] == line
    assert watched.proc.poll() is None  # still deadlocked: the probe changed nothing


def test_the_users_sitecustomize_still_runs(run, tmp_path):
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "sitecustomize.py").write_text(
        "import sys\nsys.stderr.write('user sitecustomize ran\\n')\n")
    program = tmp_path / "p.py"
    program.write_text("print('program ran')\n")
    for probe in (True, False):
        watched = run(sys.executable, [program], probe=probe, pythonpath=[theirs])
        out, err = watched.finish()
        assert (out, err) == ("program ran\n", "user sitecustomize ran\n")
        assert [e["ev"] for e in watched.events][:1] == (["probe_hello"] if probe else [])


def test_without_the_variable_the_boot_writes_and_imports_nothing(run, tmp_path):
    program = tmp_path / "modules.py"
    program.write_text("import sys, json\nprint(json.dumps(sorted(sys.modules)))\n")
    watched = run(sys.executable, [program], probe=False)
    out, _err = watched.finish()
    assert watched.events == [] and watched.buffer == b""
    bare = subprocess.run([sys.executable, str(program)], capture_output=True, text=True,
                          timeout=30, env={k: v for k, v in os.environ.items()
                                           if k != "PYTHONPATH"})
    extra = set(json.loads(out)) - set(json.loads(bare.stdout))
    assert extra <= {"sitecustomize"}, extra


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_a_multiprocessing_child_reports_with_its_own_pid(run, tmp_path, method):
    program = tmp_path / "pool.py"
    program.write_text(textwrap.dedent("""\
        import multiprocessing, os, sys, time

        def child(ready):
            print(os.getpid(), flush=True)
            ready.wait(10)

        if __name__ == "__main__":
            context = multiprocessing.get_context(sys.argv[1])
            ready = context.Event()
            worker = context.Process(target=child, args=(ready,), name="kid")
            worker.start()
            time.sleep(float(sys.argv[2]))  # time for the child's probe to say hello
            ready.set()
            worker.join()
        """))
    watched = run(sys.executable, [program, method, "1.0"])
    out, _err = watched.finish()
    child = int(out.split()[0])
    assert child != watched.proc.pid
    hellos = {e["pid"]: e for e in watched.events if e["ev"] == "probe_hello"}
    assert set(hellos) >= {watched.proc.pid, child}
    assert hellos[child]["ppid"] == watched.proc.pid


def test_the_probe_stops_quietly_when_its_fd_is_closed_and_reused(run, tmp_path):
    """The program closes the probe's fd and opens a file that gets the same number:
    the probe must not write a byte into the program's file."""
    program = tmp_path / "closer.py"
    program.write_text(textwrap.dedent("""\
        import os, sys, threading, time
        fd = int(os.environ["CONLAB_PROBE_FD"])
        mine = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT | os.O_TRUNC)
        os.dup2(mine, fd)  # the pipe's number now names the program's file
        os.write(fd, b"program data\\n")
        workers = [threading.Thread(target=time.sleep, args=(0.2,), name="w%d" % i)
                   for i in range(3)]  # a change of threads the probe would report
        for worker in workers:
            worker.start()
        time.sleep(1.0)
        """))
    data = tmp_path / "data.txt"
    watched = run(sys.executable, [program, data])
    out, err = watched.finish()
    assert (watched.proc.returncode, err) == (0, "")
    assert data.read_bytes() == b"program data\n"


def test_the_program_runs_on_when_the_lab_stops_reading(run, tmp_path):
    program = tmp_path / "long.py"
    program.write_text(textwrap.dedent("""\
        import threading, time
        for i in range(6):
            threading.Thread(target=time.sleep, args=(0.05,), name="t%d" % i).start()
            time.sleep(0.1)
        print("done")
        """))
    watched = run(sys.executable, [program])
    watched.wait_event(lambda e: e["ev"] == "probe_hello", what="probe_hello")
    os.close(watched.read_end)  # the lab went away: writes now fail with EPIPE
    watched.read_end = os.open(os.devnull, os.O_RDONLY)  # for close()
    out, err = watched.proc.communicate(timeout=20)
    assert (watched.proc.returncode, out, err) == (0, b"done\n", b"")


def test_with_lock_runs_no_probe_code_while_the_lock_is_held(run, tmp_path):
    """`with lock:` (the common way to take a lock) under a GIL: Python code of the probe
    inside a critical section gives the interpreter
    more places to switch threads while the lock is held, and threads start queueing on it
    (measured: +4..10 % CPU on benchmarks/probe_cost.py's threaded program)."""
    program = tmp_path / "hold.py"
    program.write_text(textwrap.dedent("""\
        import sys, threading
        lock = threading.Lock()
        assert type(lock).__name__ == "TrackedLock", type(lock)
        seen = []

        def profile(frame, event, arg):
            if event in ("call", "return") and "probe" in frame.f_code.co_filename:
                seen.append((frame.f_code.co_name, event, lock.locked()))

        sys.setprofile(profile)
        with lock:
            pass
        sys.setprofile(None)
        print([entry for entry in seen if entry[2]])
        """))
    watched = run(sys.executable, [program])
    out, err = watched.finish()
    assert (out, err) == ("[]\n", "")


@pytest.mark.parametrize("python", INTERPRETERS[2:])  # 3.13 and 3.13t: fork warns from 3.12
@pytest.mark.parametrize("threads", [0, 1])
def test_os_fork_warns_exactly_as_without_the_probe(run, tmp_path, python, threads):
    """3.12+ warns when a multi-threaded process forks; the probe's own thread must not
    make a single-threaded program warn, and must not hide the warning from one that is not."""
    program = tmp_path / "forker.py"
    program.write_text(textwrap.dedent("""\
        import os, sys, threading, time
        done = threading.Event()
        for _ in range(int(sys.argv[1])):
            threading.Thread(target=done.wait).start()
        time.sleep(0.2)  # the probe's thread is up
        pid = os.fork()
        if pid == 0:
            time.sleep(0.3)  # time for the child's probe to say hello
            os._exit(0)
        os.waitpid(pid, 0)
        print(pid)
        done.set()
        """))
    watched = run(python, [program, threads])
    out, err = watched.finish()
    bare = subprocess.run([python, str(program), str(threads)], capture_output=True, text=True,
                          timeout=30, env={k: v for k, v in os.environ.items()
                                           if k != "PYTHONPATH"})
    assert ("multi-threaded" in err) == ("multi-threaded" in bare.stderr) == bool(threads)
    if not threads:
        assert err == bare.stderr == ""
    assert int(out) in {e["pid"] for e in watched.events if e["ev"] == "probe_hello"}
