"""Shared test helpers: run the CLI for real, find the lab's children, wait for events."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
PYENV = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"


ENV_FREE_THREADED = "CONLAB_FREE_THREADED_PYTHON"  # .ci/run sets it when it has a build
FREE_THREADED_CACHE = Path.home() / ".cache" / "conlab" / "python3.13t" / "bin" / "python3.13t"
ENV_TEST_PYTHON = "CONLAB_TEST_PYTHON"  # run every test's `conlab run` children under this


def _is_free_threaded(path: str) -> bool:
    try:
        done = subprocess.run([path, "-c", "import sysconfig; print(bool(sysconfig."
                               "get_config_var('Py_GIL_DISABLED')))"], capture_output=True,
                              text=True, timeout=30, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0 and done.stdout.strip() == "True"


_FREE_THREADED: list = []


def free_threaded_python() -> str | None:
    """A free-threaded CPython to run children under, or None: $CONLAB_FREE_THREADED_PYTHON,
    then the build `.ci/free-threaded-python` caches, then python3.13t on PATH."""
    if not _FREE_THREADED:
        import shutil

        found = None
        for candidate in (os.environ.get(ENV_FREE_THREADED), str(FREE_THREADED_CACHE),
                          shutil.which("python3.13t")):
            if candidate and os.access(candidate, os.X_OK) and _is_free_threaded(candidate):
                found = candidate
                break
        _FREE_THREADED.append(found)
    return _FREE_THREADED[0]


NO_FREE_THREADED = ("no free-threaded CPython here (set %s, or run .ci/free-threaded-python "
                    "to build one into %s)" % (ENV_FREE_THREADED, FREE_THREADED_CACHE.parent.parent))


def python_under_test() -> str | None:
    """The interpreter the tests' `conlab run` children use: $CONLAB_TEST_PYTHON, else the
    lab's own (None). `.ci/run` runs the experiment tests a second time under a
    free-threaded build this way."""
    return os.environ.get(ENV_TEST_PYTHON) or None


def conlab(*args: str, timeout: float = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run `python -m lab ARGS` as a user would, stdin closed. A `run` without --python
    runs its child under python_under_test() when one is set."""
    if args and args[0] == "run" and python_under_test() and "--python" not in args:
        args = (*args, "--python", python_under_test())
    return subprocess.run([sys.executable, "-m", "lab", *args], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL, cwd=ROOT,
                          env={**os.environ, **(env or {})})


def run_json(experiment: str, *params: str, python: str | None = None, timeout: float = 300) -> dict:
    args = ["run", experiment, "--json"]
    for p in params:
        args += ["-p", p]
    if python:
        args += ["--python", python]
    done = conlab(*args, timeout=timeout)
    if (done.returncode == 2 and python is None and python_under_test()
            and "lacks" in done.stderr):
        import pytest

        pytest.skip(done.stderr.strip())  # e.g. uvloop, installed for the lab's python only
    assert done.returncode == 0, "conlab %s failed (%d): %s" % (args, done.returncode, done.stderr)
    return json.loads(done.stdout)


def interpreter(version: str) -> str | None:
    """An interpreter of that minor version under pyenv, if this machine has one."""
    for candidate in sorted(PYENV.glob(version + ".*")):
        path = candidate / "bin" / "python"
        if path.exists():
            return str(path)
    return None


def workload_processes(tag: str | None = None) -> list[psutil.Process]:
    """Live (non-zombie) `-m workloads` processes; with `tag`, only those started by a
    lab that ran with CONLAB_TEST_TAG=tag in its environment (children inherit it)."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        try:
            cmd = proc.info["cmdline"] or []
            if "workloads" not in cmd or "-m" not in cmd:
                continue
            if proc.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            if tag is not None and proc.environ().get("CONLAB_TEST_TAG") != tag:
                continue
            found.append(proc)
        except psutil.Error:
            continue
    return found


def new_tag() -> str:
    import uuid

    return uuid.uuid4().hex


def wait_for(condition, timeout: float, what: str, interval: float = 0.02):
    """Poll `condition` until it returns something truthy; fail naming `what` on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.1f s waiting for %s" % (timeout, what))
        time.sleep(interval)


async def wait_until(condition, timeout: float, what: str, pause=None):
    """The async twin of wait_for: between polls, await `pause()` (e.g. a Textual pilot's
    pause, which lets the app run) or a short asyncio sleep."""
    import asyncio

    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.1f s waiting for %s" % (timeout, what))
        await (pause() if pause is not None else asyncio.sleep(0.02))


async def until(pilot, condition, timeout: float = 10.0, what: str = "condition"):
    """Let a Textual app run until `condition()` holds (no blind sleeps)."""
    return await wait_until(condition, timeout, what, pause=lambda: pilot.pause(0.02))


def alive(pids) -> list[int]:
    """The pids still running (zombies count as gone: they hold no CPU and no memory)."""
    left = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                left.append(pid)
        except psutil.NoSuchProcess:
            continue
    return left


def plain_lines(drawn, width: int | None = None) -> list[str]:
    """What a view drew (one Text, or a list of lines), as plain lines, never re-wrapped:
    so a test's width check sees a line that is too long instead of its wrapped halves.
    With `width`, a line is cut there, as a pane of that width would show it."""
    from rich.cells import cell_len, set_cell_size

    texts = drawn if isinstance(drawn, list) else [drawn]
    lines = [line for text in texts for line in text.plain.split("\n")]
    while lines and not lines[-1].strip():
        lines.pop()
    if width is not None:
        lines = [set_cell_size(line, width).rstrip() if cell_len(line) > width else line.rstrip()
                 for line in lines]
    return lines


def usable_cpus() -> int:
    return len(os.sched_getaffinity(0))


def busy_reason(record: dict) -> str | None:
    """Why this run's own record says its timings are not clean, or None.

    Reads the `load` block ({"busy": bool, "other_cpu_share": ...}) and `verdict.can_tell`
    once the experiments carry them, and today's gil-cpu flags (`contended`: the modes
    whose workers waited for a CPU that other programs held)."""
    result = record.get("result") if isinstance(record, dict) else None
    if not isinstance(result, dict):
        return None
    load = result.get("load") if isinstance(result.get("load"), dict) else {}
    if load.get("busy"):
        share = load.get("other_cpu_share")
        return "other programs took %s of the usable CPU time during the run" % (
            "%.0f%%" % (100 * share) if isinstance(share, (int, float)) else "a real share")
    verdict = result.get("verdict") if isinstance(result.get("verdict"), dict) else {}
    if verdict.get("can_tell") is False:
        return "the run could not tell: %s" % (verdict.get("why") or "machine too busy")
    modes = result.get("modes") if isinstance(result.get("modes"), dict) else {}
    flagged = list(result.get("contended") or []) if isinstance(result.get("contended"), list) \
        else []
    flagged += [m for m, f in modes.items()
                if isinstance(f, dict) and f.get("contended") and m not in flagged]
    if flagged or result.get("contended") is True:
        return "other programs took CPU time during %s" % (", ".join(flagged) or "the run")
    return None


def skip_if_busy(record: dict) -> None:
    """A timing test skips, naming the figure, when its run's record flags the machine as
    busy: a contended timing is not evidence either way."""
    import pytest

    reason = busy_reason(record)
    if reason:
        pytest.skip("the record flags a busy machine: " + reason)


def child_cpus(record: dict) -> int:
    """The CPUs the child could use, as it reported them (affinity may differ from the
    parent's os.cpu_count()); the lab's own count of the machine when the result has none."""
    result = record.get("result") if isinstance(record.get("result"), dict) else {}
    for value in (result.get("cpus"), result.get("usable_cpus"),
                  (result.get("load") or {}).get("usable_cpus") if isinstance(
                      result.get("load"), dict) else None,
                  (record.get("machine") or {}).get("usable_cpus")):
        if isinstance(value, int) and value > 0:
            return value
    return usable_cpus()
