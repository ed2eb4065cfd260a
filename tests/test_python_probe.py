"""`--python` is probed as an untrusted program: whatever a fake interpreter prints, however
long it hangs and whatever it forks, the lab refuses it in one line naming --python, exits 2,
starts nothing and leaves none of the fake's processes behind (also when the lab itself is
killed with SIGKILL in the middle of the probe)."""

from __future__ import annotations

import json
import math
import os
import random
import signal
import subprocess
import sys
import time
import uuid

import pytest

from lab.core import interpreters
from tests.helpers import ROOT, conlab, wait_for

MARK = "CONLAB_FAKE_MARK"  # inherited by every process a fake starts
PROBE_TIMEOUT = "1"  # seconds; the real default stays 10 s
CLI_DEADLINE_S = 8.0  # probe timeout + the lab's own start-up, generously


def write_fake(tmp_path, name: str, body: str, data: bytes | None = None) -> str:
    """An executable /bin/sh script; `data`, if given, is what `$0.out` holds."""
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)
    if data is not None:
        (tmp_path / (name + ".out")).write_bytes(data)
    return str(path)


def printing(tmp_path, name: str, data: bytes) -> str:
    return write_fake(tmp_path, name, 'cat "$0.out"', data)


def marked(mark: str, exclude: int | None = None) -> list[int]:
    """Live processes whose environment carries MARK=mark."""
    needle = ("%s=%s" % (MARK, mark)).encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in (os.getpid(), exclude):
            continue
        try:
            with open("/proc/%s/environ" % entry, "rb") as f:
                if needle in f.read().split(b"\0"):
                    found.append(int(entry))
        except OSError:
            continue
    return found


def gone(mark: str) -> None:
    """Wait for the fake's processes to end; kill any left (the test has failed then)."""
    try:
        wait_for(lambda: not marked(mark), 5, "the fake's processes to be gone")
    except AssertionError:
        left = marked(mark)
        described = [_cmdline(pid) for pid in left]
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        raise AssertionError("left behind: %s" % described) from None


def _cmdline(pid: int) -> str:
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")[:100]
    except OSError:
        return "?"


def assert_refused(fake: str, *command: str, tmp_path) -> str:
    """`conlab COMMAND --python FAKE` is refused well; returns the line."""
    mark = uuid.uuid4().hex
    log = tmp_path / ("spawned-%s.log" % mark)
    args = list(command) or ["run", "race"]
    started = time.monotonic()
    try:
        done = conlab(*args, "--python", fake, timeout=60,
                      env={MARK: mark, "CONLAB_PROBE_TIMEOUT_S": PROBE_TIMEOUT,
                           "CONLAB_SPAWN_LOG": str(log)})
    finally:
        took = time.monotonic() - started
        if took >= CLI_DEADLINE_S:
            gone(mark)
    lines = done.stderr.splitlines()
    assert done.returncode == 2, (fake, done.returncode, done.stderr[-2000:])
    assert len(lines) == 1 and "--python" in lines[0], (fake, done.stderr[-2000:])
    assert "Traceback" not in done.stderr and done.stdout == ""
    assert took < CLI_DEADLINE_S, "refusing %s took %.1f s" % (fake, took)
    assert not log.exists(), "a child was started: %s" % log.read_text()
    gone(mark)
    return lines[0]


# Fakes that misbehave in every way but a wrong JSON shape --------------------------------
FIXED = {
    "garbage": ("printing", b"\xff\xfe\x00\x1b[2J\x80junk\n"),
    "ff-only": ("printing", b"\xff"),
    "empty": ("script", "exit 0"),
    "exit-1": ("script", "echo '{}'; exit 1"),
    "stderr-only": ("script", "echo 'I am python' >&2"),
    "flood": ("script", "yes 0123456789012345678901234567890123456789"),
    "flood-one-line": ("script", "cat /dev/zero"),
    "deep": ("printing", b"[" * 200000),
    "hang": ("script", "sleep 300"),
    "hang-with-child": ("script", "sleep 301 & sleep 302; wait"),
    "answers-then-child-holds-pipe": ("script", "sleep 303 & echo '[1,2]'"),
    "ignores-term": ("script", "trap '' TERM INT HUP; sleep 304"),
    "hang-after-closing-output": ("script", "exec >&-; sleep 305"),
}


def make_fixed(tmp_path, name: str) -> str:
    kind, what = FIXED[name]
    if kind == "printing":
        return printing(tmp_path, name, what)
    return write_fake(tmp_path, name, what)


@pytest.mark.parametrize("name", sorted(FIXED))
def test_a_misbehaving_python_is_refused_in_one_line(tmp_path, name):
    line = assert_refused(make_fixed(tmp_path, name), tmp_path=tmp_path)
    if "hang" in name or name == "ignores-term":
        assert "within 1 s" in line
    if name.startswith("flood"):
        assert "more than 64 KiB" in line


# Wrong JSON shapes from a seeded generator -----------------------------------------------
VALID = {"executable": "/usr/bin/python3", "version": [3, 12, 1], "implementation": "cpython",
         "gil_enabled": True, "free_threaded": False,
         "modules": {"aiohttp": False, "uvloop": False}}


def junk(rng: random.Random, depth: int = 0):
    """A random JSON value of a random type (never a valid answer)."""
    kinds = ["int", "huge", "float", "nan", "str", "bool", "null", "list", "dict"]
    kind = rng.choice(kinds if depth < 4 else kinds[:7])
    if kind == "int":
        return rng.randint(-10, 5000)
    if kind == "huge":
        return rng.choice([10 ** 40, -(10 ** 30), 2 ** 63, 10 ** 300])
    if kind == "float":
        return rng.choice([3.12, 1e308, -0.0, 1e-300])
    if kind == "nan":
        return rng.choice([math.nan, math.inf, -math.inf])
    if kind == "str":
        return rng.choice(["", "3.12.1", "cpython\x1b[2J", "x" * 5000, "\u202e\u0000"])
    if kind == "bool":
        return rng.choice([True, False])
    if kind == "null":
        return None
    if kind == "list":
        return [junk(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {rng.choice(list(VALID) + ["x", ""]): junk(rng, depth + 1)
            for _ in range(rng.randint(0, 4))}


def acceptable(answer) -> bool:
    """The test's own statement of a usable answer (CPython or PyPy 3.9+)."""
    def is_bool(v):
        return isinstance(v, bool)

    def small(v):
        return type(v) is int and 0 <= v < 1000

    return (isinstance(answer, dict)
            and isinstance(answer.get("executable"), str)
            and 0 < len(answer["executable"]) <= 4096 and answer["executable"].isprintable()
            and isinstance(answer.get("version"), list) and len(answer["version"]) == 3
            and all(small(v) for v in answer["version"]) and answer["version"] >= [3, 9]
            and answer.get("implementation") in ("cpython", "pypy")
            and is_bool(answer.get("gil_enabled")) and is_bool(answer.get("free_threaded"))
            and isinstance(answer.get("modules"), dict)
            and set(answer["modules"]) == {"aiohttp", "uvloop"}
            and all(is_bool(v) for v in answer["modules"].values()))


def wrong_shape(rng: random.Random):
    """Random junk, or a valid answer with one field wrong or missing; never acceptable."""
    while True:
        if rng.random() < 0.3:
            answer = junk(rng)
        else:
            answer = json.loads(json.dumps(VALID))
            field = rng.choice(list(VALID))
            value = junk(rng)
            if field == "version" and rng.random() < 0.5:
                value = [3, 12, value]
            if field == "modules" and rng.random() < 0.5:
                value = {"aiohttp": value, "uvloop": False}
            if rng.random() < 0.2:
                del answer[field]
            else:
                answer[field] = value
        if not acceptable(answer):
            return answer


def shapes(seed: int, count: int) -> list[bytes]:
    rng = random.Random(seed)
    return [json.dumps(wrong_shape(rng)).encode() + b"\n" for _ in range(count)]


def test_the_fixed_answer_is_accepted_so_the_fuzz_can_fail(tmp_path):
    """Guards the generator: the template itself must pass, or every shape 'fails' for free."""
    assert acceptable(VALID)
    fake = printing(tmp_path, "valid", json.dumps(VALID).encode() + b"\n")
    interp = interpreters.probe(fake)
    assert interp.version == (3, 12, 1) and interp.implementation == "cpython"


def test_many_wrong_shapes_are_refused_by_the_probe(tmp_path):
    for i, data in enumerate(shapes(seed=1010, count=120)):
        fake = printing(tmp_path, "shape%d" % i, data)
        with pytest.raises(interpreters.InterpreterError) as refused:
            interpreters.probe(fake)
        message = str(refused.value)
        assert message.startswith("--python ") and "\n" not in message, (data[:200], message)
        assert "\x1b" not in message


@pytest.mark.parametrize("i,data", list(enumerate(shapes(seed=20240, count=6))),
                         ids=lambda value: str(value) if isinstance(value, int) else "")
def test_wrong_shapes_are_refused_by_conlab_run(tmp_path, i, data):
    assert_refused(printing(tmp_path, "cli-shape%d" % i, data), tmp_path=tmp_path)


# The lab killed during the probe ---------------------------------------------------------
@pytest.mark.parametrize("name", ["hang", "hang-with-child", "ignores-term"])
def test_nothing_of_a_hanging_python_survives_a_kill_9_of_the_lab(tmp_path, name):
    fake = make_fixed(tmp_path, name)
    mark = uuid.uuid4().hex
    lab = subprocess.Popen([sys.executable, "-m", "lab", "run", "race", "--python", fake],
                           cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL,
                           env={**os.environ, MARK: mark, "CONLAB_PROBE_TIMEOUT_S": "60"})
    try:
        want = 4 if name == "hang-with-child" else 2  # the lab, the fake (, its 2 sleeps)
        wait_for(lambda: len(marked(mark)) >= want, 30, "the fake to be running")
        lab.send_signal(signal.SIGKILL)
        lab.wait(timeout=10)
    finally:
        if lab.poll() is None:
            lab.kill()
            lab.wait()
        gone(mark)


# Empty --python, no process to spare --------------------------------------------------
@pytest.mark.parametrize("where", ["run", "global"])
def test_an_empty_python_is_refused_not_taken_as_the_default(tmp_path, where):
    log = tmp_path / "spawned.log"
    args = ["run", "race", "--python", ""] if where == "run" else ["--python", "", "run", "race"]
    done = conlab(*args, timeout=60, env={"CONLAB_SPAWN_LOG": str(log)})
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "--python" in done.stderr
    assert "empty" in done.stderr and not log.exists()


def test_no_process_to_spare_blames_the_limit_not_python(monkeypatch):
    import errno

    from lab.core import ask

    def no_fork(*args, **kwargs):
        raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")

    monkeypatch.setattr(ask.subprocess, "Popen", no_fork)
    interpreters._probe_cached.cache_clear()
    with pytest.raises(interpreters.NoProcess) as refused:
        interpreters.probe(sys.executable)
    assert str(refused.value).startswith("cannot start a process: ")
    assert "--python" not in str(refused.value)
    with pytest.raises(interpreters.NoProcess):  # not hidden as "no interpreter found"
        interpreters.find_interpreters()


def test_under_a_real_process_limit_the_refusal_names_the_limit():
    """As an unprivileged user whose RLIMIT_NPROC is used up by the probing process itself
    (root ignores the limit, so the test needs root to become someone else)."""
    setpriv, prlimit = (shutil_which("setpriv"), shutil_which("prlimit"))
    if os.geteuid() != 0 or not (setpriv and prlimit):
        pytest.skip("needs root (to become an unprivileged user), setpriv and prlimit")
    uid = 65534
    script = ("from lab.core.interpreters import probe, InterpreterError\n"
              "try:\n    probe(%r)\nexcept InterpreterError as exc:\n"
              "    print(type(exc).__name__, exc)\n")

    def as_nobody(python: str, nproc: int) -> subprocess.CompletedProcess:
        return subprocess.run(
            [setpriv, "--reuid", str(uid), "--regid", str(uid), "--clear-groups",
             prlimit, "--nproc=%d" % nproc, "--", python, "-c", script % python],
            cwd="/", stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
            env={"PATH": os.defpath, "PYTHONPATH": str(ROOT)})

    for python in (sys.executable, "/usr/bin/python3"):
        if as_nobody(python, 1000).returncode == 0:
            break
    else:
        pytest.skip("no interpreter here that user %d may run with the lab on its path" % uid)
    in_use = sum(1 for p in os.listdir("/proc") if p.isdigit() and _uid_of(p) == uid)
    done = as_nobody(python, in_use + 1)
    assert done.stdout.startswith("NoProcess cannot start a process: the user's process "
                                  "limit (RLIMIT_NPROC"), done.stdout + done.stderr
    assert "--python" not in done.stdout and done.stdout.count("\n") == 1


def shutil_which(name: str) -> str | None:
    import shutil

    return shutil.which(name)


def _uid_of(pid: str) -> int | None:
    try:
        return os.stat("/proc/%s" % pid).st_uid
    except OSError:
        return None


# Other places that probe interpreters ------------------------------------------------------
def test_compare_interpreters_refuses_a_bad_python(tmp_path):
    fake = make_fixed(tmp_path, "hang-with-child")
    line = assert_refused(fake, "compare-interpreters", "race", "--python", sys.executable,
                          tmp_path=tmp_path)
    assert "within 1 s" in line


@pytest.mark.parametrize("command", [["serve"], []], ids=["serve", "tui"])
def test_the_tui_and_serve_check_the_global_python_before_starting(tmp_path, command):
    fake = make_fixed(tmp_path, "hang-with-child")
    mark = uuid.uuid4().hex
    try:
        done = conlab("--python", fake, *command, timeout=30,
                      env={MARK: mark, "CONLAB_PROBE_TIMEOUT_S": PROBE_TIMEOUT})
    finally:
        gone(mark)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr[-2000:]
    assert "--python" in done.stderr and "within 1 s" in done.stderr
    done = conlab("--python", "", *command, timeout=60)
    assert done.returncode == 2 and "empty" in done.stderr, done.stderr[-2000:]


def test_doctor_skips_bad_pythons_on_path_and_leaves_nothing(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, version in [("hang-with-child", "3.97"), ("flood", "3.98"), ("garbage", "3.99")]:
        make_fixed(bin_dir, name)
        os.rename(bin_dir / name, bin_dir / ("python" + version))
        if (bin_dir / (name + ".out")).exists():
            os.rename(bin_dir / (name + ".out"), bin_dir / ("python%s.out" % version))
    mark = uuid.uuid4().hex
    started = time.monotonic()
    try:
        done = conlab("doctor", "--json", timeout=120,
                      env={MARK: mark, "CONLAB_PROBE_TIMEOUT_S": PROBE_TIMEOUT,
                           "PATH": "%s:%s" % (bin_dir, os.environ["PATH"])})
    finally:
        gone(mark)
    assert done.returncode == 0, done.stderr
    paths = [i["path"] for i in json.loads(done.stdout)["interpreters"]]
    assert not [p for p in paths if p.startswith(str(bin_dir))]
    assert time.monotonic() - started < 60


def test_a_subreaper_lab_reaps_what_the_fake_forked(tmp_path):
    """In the TUI the lab is a child subreaper after its first run: the fake's orphans come
    back to it and must be reaped, not left as zombies."""
    fake = make_fixed(tmp_path, "hang-with-child")
    script = (
        "import os\n"
        "from lab.core.runner import become_subreaper\n"
        "from lab.core.interpreters import probe, InterpreterError\n"
        "become_subreaper()\n"
        "try:\n    probe(%r)\nexcept InterpreterError as exc:\n    print(exc)\n"
        "def parent(p):\n"
        "    try:\n"
        "        return open('/proc/%%s/stat' %% p).read().rsplit(')', 1)[1].split()[1]\n"
        "    except OSError:\n"
        "        return None\n"
        "kids = [p for p in os.listdir('/proc') if p.isdigit() and parent(p) == str(os.getpid())]\n"
        "print('children', len(kids))\n" % fake)
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL,
                          env={**os.environ, "CONLAB_PROBE_TIMEOUT_S": PROBE_TIMEOUT})
    assert done.returncode == 0, done.stderr
    assert "within 1 s" in done.stdout and done.stdout.endswith("children 0\n"), done.stdout
