"""What the `conlab watch` probe costs a CPU-bound Python program, measured on this machine.

    python benchmarks/probe_cost.py                   # both programs, 5 pairs each (~45 s)
    python benchmarks/probe_cost.py --repeats 9 --python ~/.pyenv/versions/3.13.0/bin/python

Two programs, each run as a whole process with the probe at work and with the probe loaded but
idle (same interpreter, same modules loaded, the runs interleaved so a change in the
machine's load hits both sides alike):
  loop     one thread, a pure-Python loop of ~2 s;
  threads  4 threads doing the same work in quarters, each taking a shared lock (made after
           start-up, so the probe tracks it) every 200 iterations.
Why "loaded but idle" and not "no probe at all": merely loading one more module moves this
loop's speed by several per cent either way (memory layout; seen: -7 %), which would drown
the probe's own cost. What loading costs is measured on its own: the CPU time of
`python -c pass` with and without the probe (its start-up), and added to the figure.

Figures: the median of the paired ratios of CPU time (user + system, from wait4) and of
wall time, and the ratio of the best (least disturbed) CPU times of each side. On a machine
other programs share, one pair moves by several per cent either way, so use --repeats 9 or
more. The budget (2 %) is checked against the median CPU figure plus the start-up share.
Last, the one cost that grows with the program's work: `with lock:` on a tracked lock
against a plain one, in nanoseconds, in this process (the probe's lock types, not started).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BUDGET = 0.02


def spin(n, lock=None, counter=None):
    total = 0
    for i in range(n):
        total += i * i % 7
        if lock is not None and i % 200 == 0:
            with lock:
                counter[0] += 1
    return total


def child(program, n):
    if program == "loop":
        spin(n)
        return
    lock, counter = threading.Lock(), [0]
    workers = [threading.Thread(target=spin, args=(n // 4, lock, counter), name="spin-%d" % i)
               for i in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


def run_once(python, program, n, probe, idle=True):
    """(wall seconds, CPU seconds) of one whole run of the program: with the probe at work,
    or (probe=False) with it loaded but idle (its fd names no pipe, so it declines) or,
    with idle=False too, not loaded at all."""
    from workloads import ENV_PROBE_FD, boot_dir

    env = {k: v for k, v in os.environ.items() if not k.startswith("CONLAB_PROBE")}
    env["PYTHONPATH"] = boot_dir()
    read_end, write_end = os.pipe()
    null = os.open(os.devnull, os.O_WRONLY)
    if probe:
        env[ENV_PROBE_FD] = str(write_end)
    elif idle:
        env[ENV_PROBE_FD] = str(null)
    lines = []
    reader = threading.Thread(target=lambda: lines.append(_drain(read_end)), daemon=True)
    reader.start()
    command = [python, __file__, "--child", program, str(n)] if program else [python, "-c", "pass"]
    started = time.perf_counter()
    proc = subprocess.Popen(command, env=env, pass_fds=(write_end, null), stdin=subprocess.DEVNULL)
    os.close(write_end)
    os.close(null)
    _pid, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    reader.join(5)
    os.close(read_end)
    if proc.returncode != 0:
        raise SystemExit("the %s program failed (%d)" % (program, proc.returncode))
    said_hello = b'"probe_hello"' in (lines[0] if lines else b"")
    if said_hello != probe:
        raise SystemExit("the probe %s: not measuring it" % (
            "did not report" if probe else "reported while meant to be idle"))
    return wall, usage.ru_utime + usage.ru_stime


def start_up(python, repeats=20):
    """The probe's start-up: median CPU seconds of `python -c pass` with it minus without."""
    runs = {True: [], False: []}
    for _ in range(repeats):
        for probe in (False, True):
            runs[probe].append(run_once(python, None, 0, probe, idle=False)[1])
    return statistics.median(runs[True]) - statistics.median(runs[False])


def _drain(fd):
    chunks = []
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def lock_cost(rounds=300_000):
    """ns per `with lock:` for a plain lock and for the probe's tracked lock (GIL build
    path when this interpreter has a GIL), best of 5."""
    import _thread

    from workloads import probe

    check = getattr(sys, "_is_gil_enabled", None)
    tracked_type, _ = probe._make_lock_types(_thread.get_ident, threading.get_native_id,
                                             check() if check is not None else True)
    plain = threading.Lock()
    tracked = tracked_type(threading.Lock(), (__file__, 0, 1))

    def best(lock):
        times = []
        for _ in range(5):
            started = time.perf_counter()
            for _ in range(rounds):
                with lock:
                    pass
            times.append(time.perf_counter() - started)
        return min(times) / rounds * 1e9

    return best(plain), best(tracked)


def calibrate(python, seconds):
    n = 200_000
    while True:
        wall, _cpu = run_once(python, "loop", n, probe=False)
        if wall > 0.4:
            return int(n * seconds / wall)
        n *= 4


def measure(python, program, n, repeats):
    pairs = []
    for i in range(repeats):
        order = (False, True) if i % 2 == 0 else (True, False)
        runs = {probe: run_once(python, program, n, probe) for probe in order}
        pairs.append((runs[False], runs[True]))
    wall = statistics.median(w[0] / wo[0] for wo, w in pairs)
    cpu = statistics.median(w[1] / wo[1] for wo, w in pairs)
    best = min(w[1] for _wo, w in pairs) / min(wo[1] for wo, _w in pairs)
    base = statistics.median(wo[0] for wo, _w in pairs)
    return base, wall - 1.0, cpu - 1.0, best - 1.0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args(argv)
    n = calibrate(args.python, args.seconds)
    version = subprocess.run([args.python, "-c", "import sys; print(sys.version.split()[0],"
                              " 't' if 't' in sys.abiflags else '')"], capture_output=True,
                             text=True).stdout.split()
    print("probe cost, %s %s, %d interleaved pairs, load average %.2f%s"
          % (args.python, " ".join(version), args.repeats, os.getloadavg()[0],
             ", bytecode not cached" if os.environ.get("PYTHONDONTWRITEBYTECODE") else ""))
    startup = start_up(args.python)
    print("  start-up: %.1f ms of CPU time (python -c pass, median of 20 with and without)"
          % (1000 * startup))
    worst = 0.0
    for program in ("loop", "threads"):
        base, wall, cpu, best = measure(args.python, program, n, args.repeats)
        share = startup / base
        worst = max(worst, cpu + share)
        print("  %-8s %.2f s with the probe idle; at work: median pair CPU %+.1f %% "
              "(wall %+.1f %%, best-of CPU %+.1f %%) + start-up %.1f %% = %+.1f %%"
              % (program, base, 100 * cpu, 100 * wall, 100 * best, 100 * share,
                 100 * (cpu + share)))
    plain, tracked = lock_cost()
    print("  with lock: %.0f ns plain, %.0f ns tracked (+%.0f ns per lock taken)"
          % (plain, tracked, tracked - plain))
    print("  worst (median CPU + start-up) %+.1f %% (budget %.0f %%): %s"
          % (100 * worst, 100 * BUDGET, "within" if worst <= BUDGET else "OVER"))
    print("  load average after: %.2f" % os.getloadavg()[0])
    return 0 if worst <= BUDGET else 1


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        child(sys.argv[2], int(sys.argv[3]))
    else:
        sys.exit(main())
