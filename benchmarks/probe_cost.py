"""What the `conlab watch` probe costs a CPU-bound Python program, measured on this machine.

    python benchmarks/probe_cost.py                   # both programs, 5 pairs each (~45 s)
    python benchmarks/probe_cost.py --repeats 9 --python ~/.pyenv/versions/3.13.0/bin/python

Two programs, each run as a whole process with and without the probe (same interpreter,
the runs interleaved so a change in the machine's load hits both sides alike):
  loop     one thread, a pure-Python loop of ~2 s;
  threads  4 threads doing the same work in quarters, each taking a shared lock (made after
           start-up, so the probe tracks it) every 200 iterations.
Figures: the median of the paired ratios (with / without) of the process's wall time and of
its CPU time (user + system, from wait4), and the ratio of the best (least disturbed) CPU
times of each side. On a machine other programs share, a single pair moves by several
per cent either way; the best-of ratio is the steadiest, and it is what the budget (2 %) is
checked against. The probe's own start-up (loading probe.py: ~1.5 ms with its bytecode
cached, ~8 ms compiling it when PYTHONDONTWRITEBYTECODE is set) is inside every figure.
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


def run_once(python, program, n, probe):
    """(wall seconds, CPU seconds) of one whole run of the program."""
    from workloads import ENV_PROBE_FD, boot_dir

    env = {k: v for k, v in os.environ.items() if not k.startswith("CONLAB_PROBE")}
    env["PYTHONPATH"] = boot_dir()  # in both runs: only the variable differs
    read_end, write_end = os.pipe()
    if probe:
        env[ENV_PROBE_FD] = str(write_end)
    lines = []
    reader = threading.Thread(target=lambda: lines.append(_drain(read_end)), daemon=True)
    reader.start()
    started = time.perf_counter()
    proc = subprocess.Popen([python, __file__, "--child", program, str(n)], env=env,
                            pass_fds=(write_end,), stdin=subprocess.DEVNULL)
    os.close(write_end)
    _pid, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    reader.join(5)
    os.close(read_end)
    if proc.returncode != 0:
        raise SystemExit("the %s program failed (%d)" % (program, proc.returncode))
    if probe and b'"probe_hello"' not in (lines[0] if lines else b""):
        raise SystemExit("the probe did not report: not measuring it")
    return wall, usage.ru_utime + usage.ru_stime


def _drain(fd):
    chunks = []
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


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
    worst = 0.0
    for program in ("loop", "threads"):
        base, wall, cpu, best = measure(args.python, program, n, args.repeats)
        worst = max(worst, best)
        print("  %-8s %.2f s without the probe; with it: CPU best-of %+.1f %%, median pair: "
              "CPU %+.1f %%, wall %+.1f %%" % (program, base, 100 * best, 100 * cpu, 100 * wall))
    print("  worst best-of %+.1f %% (budget %.0f %%): %s"
          % (100 * worst, 100 * BUDGET, "within" if worst <= BUDGET else "OVER"))
    print("  load average after: %.2f" % os.getloadavg()[0])
    return 0 if worst <= BUDGET else 1


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        child(sys.argv[2], int(sys.argv[3]))
    else:
        sys.exit(main())
