"""The user's limits are checked before anything starts: RLIMIT_NPROC against the user's
own threads and processes (every experiment, with the lab's own needs), RLIMIT_AS and
RLIMIT_DATA against thread stacks and tasks; typed values are ASCII and refusals short."""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import sysconfig
import tempfile

import pytest

import lab.cli.parser
from lab.core import catalog
from lab.core.runner import Refused, RunRequest, prepare
from tests.helpers import ROOT, conlab
from workloads import _limits, experiment_names, grouped
from workloads._spec import Param, ParamError


# Counting the user's tasks (no privileges needed: a fake /proc) ---------------------------
def _fake_proc(tmp_path, processes, cap_eff="0000000000000000", uid_map="0 0 4294967295"):
    for pid, (uid, threads) in processes.items():
        os.makedirs(tmp_path / str(pid))
        (tmp_path / str(pid) / "status").write_text(
            "Name:\tx\nUid:\t%d\t%d\t%d\t%d\nThreads:\t%d\n" % (uid, 0, uid, uid, threads))
    os.makedirs(tmp_path / "self", exist_ok=True)
    (tmp_path / "self" / "status").write_text("Name:\tx\nCapEff:\t%s\n" % cap_eff)
    (tmp_path / "self" / "uid_map").write_text(uid_map + "\n")
    (tmp_path / "sys").mkdir()  # not a pid: skipped
    return str(tmp_path)


def test_the_users_tasks_are_the_threads_of_processes_with_its_real_uid(tmp_path):
    proc = _fake_proc(tmp_path, {10: (1000, 5), 11: (0, 100), 12: (1000, 2), 13: (1001, 7)})
    assert _limits.user_tasks(1000, proc) == 7
    assert _limits.user_tasks(4242, proc) == 0


def test_root_and_holders_of_cap_sys_resource_or_admin_are_exempt(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "getuid", lambda: 1000)
    assert not _limits.nproc_exempt(_fake_proc(tmp_path / "a", {}))
    resource_bit = "%016x" % (1 << _limits.CAP_SYS_RESOURCE)
    assert _limits.nproc_exempt(_fake_proc(tmp_path / "b", {}, cap_eff=resource_bit))
    admin_bit = "%016x" % (1 << _limits.CAP_SYS_ADMIN)
    assert _limits.nproc_exempt(_fake_proc(tmp_path / "c", {}, cap_eff=admin_bit))
    # Inside a user namespace, capabilities do not reach the initial namespace's check.
    assert not _limits.nproc_exempt(_fake_proc(tmp_path / "d", {}, cap_eff=admin_bit,
                                               uid_map="0 100000 65536"))
    monkeypatch.setattr(os, "getuid", lambda: 0)
    assert _limits.nproc_exempt(_fake_proc(tmp_path / "e", {}))


def _nproc(monkeypatch, soft, used):
    """RLIMIT_NPROC = soft for an unprivileged user running `used` tasks, on a machine
    whose own task count is far above the limit."""
    real = _limits.rlimit
    monkeypatch.setattr(_limits, "rlimit", lambda name: (soft, soft) if name == "NPROC"
                        else real(name))
    monkeypatch.setattr(_limits, "nproc_exempt", lambda proc="/proc": False)
    monkeypatch.setattr(_limits, "user_tasks", lambda uid=None, proc="/proc": used)
    monkeypatch.setattr(_limits, "tasks_in_use", lambda: 5_000)


def test_the_nproc_cap_subtracts_the_users_tasks_not_the_machines(monkeypatch):
    _nproc(monkeypatch, soft=50, used=0)
    caps = [c for c in _limits.caps_for("threads") if c.limit == "RLIMIT_NPROC"]
    assert [c.units for c in caps] == [50]


@pytest.mark.parametrize("name", experiment_names())
def test_every_experiment_is_refused_when_its_tasks_do_not_fit(monkeypatch, name):
    experiment = catalog.get(name)
    param, needed = experiment.module.tasks_needed(experiment.defaults())
    assert needed >= 1 and param in [p.name for p in experiment.params]
    _nproc(monkeypatch, soft=needed + _limits.LAB_TASKS - 1, used=0)
    with pytest.raises(ParamError) as refused:
        experiment.validate(experiment.defaults())
    message = str(refused.value)
    assert refused.value.name == param and repr(param) in message
    assert "RLIMIT_NPROC = %s" % grouped(needed + _limits.LAB_TASKS - 1) in message
    assert grouped(needed + _limits.LAB_TASKS) in message  # the number it would need
    _nproc(monkeypatch, soft=needed + _limits.LAB_TASKS, used=0)
    experiment.validate(experiment.defaults())  # exactly enough: accepted


def test_the_refusal_says_how_far_the_parameter_may_go(monkeypatch):
    _nproc(monkeypatch, soft=20, used=3)  # room for 17: 3 for the lab, race's main + 13
    with pytest.raises(ParamError, match=r"'threads' must be at most 13 here: .*threads=64 "
                       r"would run 68 .* only 14 fit: RLIMIT_NPROC = 20 .*: 3\)"):
        catalog.get("race").validate({"threads": 64})
    catalog.get("race").validate({"threads": 13})


# For real, as an unprivileged user under prlimit --nproc ----------------------------------
def _unprivileged():
    """(command prefix, environment) that runs this checkout's lab as an unprivileged user,
    or skip saying why not."""
    if not sys.platform.startswith("linux") or shutil.which("prlimit") is None:
        pytest.skip("needs Linux and prlimit")
    home = tempfile.mkdtemp(prefix="conlab-nproc-")
    os.chmod(home, 0o777)
    # Only this checkout and its venv's packages: nobody may not read root's home.
    paths = [str(ROOT)] + [p for p in (sysconfig.get_paths()["purelib"],
                                       sysconfig.get_paths()["platlib"]) if p]
    env = {"PATH": "/usr/bin:/bin", "HOME": home, "CONLAB_DATA_DIR": home + "/data",
           "PYTHONPATH": os.pathsep.join(paths), "LANG": "C.UTF-8",
           "CONLAB_SPAWN_LOG": home + "/spawned"}
    if os.geteuid() != 0:
        return [], sys.executable, env, home
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: cannot become an unprivileged user")
    become = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    version = "python%d.%d" % sys.version_info[:2]
    for python in (sys.executable, "/usr/bin/" + version, "/usr/local/bin/" + version):
        if not os.path.exists(python):
            continue
        # Exactly as the test will run it: setpriv itself may still exec what nobody cannot.
        probe = subprocess.run(become + ["prlimit", "--nproc=64", python, "-c",
                                         "import lab.cli.parser"], env=env,
                               cwd=home, capture_output=True, timeout=60)
        if probe.returncode == 0:
            return become, python, env, home
    pytest.skip("user 65534 can run no %s that imports this checkout (its files or the "
                "interpreter are not readable by others)" % version)


def _run_unprivileged(nproc, *args):
    become, python, env, home = _unprivileged()
    done = subprocess.run(become + ["prlimit", "--nproc=%d" % nproc, python, "-m", "lab", *args],
                          env=env, cwd=home, capture_output=True, text=True, timeout=240,
                          stdin=subprocess.DEVNULL)
    spawned = os.path.exists(home + "/spawned")
    shutil.rmtree(home, ignore_errors=True)
    return done, spawned


@pytest.mark.parametrize("args, param", [
    (("race", "-p", "threads=64"), "threads"),
    (("deadlock", "-p", "threads=16", "-p", "fix=ordered"), "threads"),
    (("selftest", "-p", "behave=spawn", "-p", "workers=16"), "workers"),
    (("loop-freeze", "-p", "fix=process_pool"), "fix"),
])
def test_an_unprivileged_user_under_nproc_is_refused_before_anything_starts(args, param):
    done, spawned = _run_unprivileged(8, "run", *args)
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and repr(param) in lines[0] and "RLIMIT_NPROC = 8" in lines[0]
    assert not spawned, "a refused run started a child"


def test_a_user_with_few_tasks_gets_the_room_its_own_limit_leaves():
    # 50 tasks for a user that runs none: 20 threads fit, whatever the machine runs.
    done, _ = _run_unprivileged(50, "run", "scale", "-p", "kinds=threads", "-p", "count=20",
                                "--json")
    assert done.returncode == 0, done.stderr


# RLIMIT_AS and RLIMIT_DATA ----------------------------------------------------------------
def _limit_address_space(kib):
    def apply():
        resource.setrlimit(resource.RLIMIT_AS, (kib * 1024, resource.getrlimit(
            resource.RLIMIT_AS)[1]))
    return apply


@pytest.mark.parametrize("kinds, count", [("tasks", 1_000_000), ("threads", 200)])
def test_scale_past_the_address_space_limit_is_refused_up_front(kinds, count):
    """`ulimit -v 1000000`: a million tasks (16 KiB each) or 200 threads (8 MiB stacks)
    cannot fit; the lab says so at once, naming RLIMIT_AS, and starts nothing."""
    home = tempfile.mkdtemp(prefix="conlab-as-")
    done = subprocess.run(
        [sys.executable, "-m", "lab", "run", "scale", "-p", "kinds=" + kinds,
         "-p", "count=%d" % count], capture_output=True, text=True, timeout=120,
        stdin=subprocess.DEVNULL, cwd=ROOT, preexec_fn=_limit_address_space(1_000_000),
        env={**os.environ, "CONLAB_SPAWN_LOG": home + "/spawned"})
    spawned = os.path.exists(home + "/spawned")
    shutil.rmtree(home, ignore_errors=True)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "'count'" in done.stderr and "RLIMIT_AS" in done.stderr
    assert not spawned


def test_threads_are_weighed_with_their_stacks_and_arenas(monkeypatch):
    monkeypatch.setattr(_limits, "rlimit", lambda name: (1000 << 20, None) if name == "AS"
                        else (None, None))
    monkeypatch.setattr(_limits, "_arena_max", lambda: 16)
    caps = {c.limit: c for c in _limits.address_space_caps("threads", 8 << 20)}
    # (1000 MiB - 64 MiB mapped) / (8 MiB stack + 64 MiB arena) = 13 threads
    assert caps["RLIMIT_AS"].units == 13
    assert _limits.address_space_caps("processes") == []


# Typed values -------------------------------------------------------------------------
@pytest.mark.parametrize("text", ["\u0664", "1_0", "1_00_0", "_10", "\uff14", "0x10", "4.0"])
def test_integers_are_ascii_digits_only(text):
    with pytest.raises(ParamError, match="'threads' must be an integer"):
        Param.int("threads", 4, 2, 64, "").parse(text)


@pytest.mark.parametrize("text", ["\u0664", "1_0", "1e", "inf", "nan"])
def test_numbers_are_ascii_only(text):
    with pytest.raises(ParamError):
        Param.float("x", 1.0, -5.0, 5.0, "").parse(text)


@pytest.mark.parametrize("text, value", [("+4", 4), ("-2.5e0", -2.5), (".5", 0.5), ("5.", 5.0),
                                         ("-1_000", -1000)])
def test_signs_decimals_and_exponents_in_ascii_are_fine(text, value):
    if isinstance(value, int):
        param = Param.int("x", 4, -10_000, 10_000, "")
    else:
        param = Param.float("x", 1.0, -5.0, 5.0, "")
    assert param.parse(text) == value


def test_a_huge_value_is_cut_in_the_refusal():
    done = conlab("run", "race", "-p", "threads=" + "7" * 5000, timeout=60)
    assert done.returncode == 2
    assert len(done.stderr) < 200 and "7" * 20 + "\u2026" in done.stderr


# The deadlock refusal names the real timeout ----------------------------------------------
def test_the_deadlock_refusal_names_the_timeout_given():
    with pytest.raises(Refused, match="over half the 120 s limit"):
        prepare(RunRequest("deadlock", {"fix": "ordered", "rounds": 1000, "hold_ms": 50.0},
                           timeout_s=120))
    # 40 s of holding fits in half of 120 s: accepted, and the child is told the limit.
    prepared = prepare(RunRequest("deadlock", {"fix": "ordered", "rounds": 400, "hold_ms": 50.0},
                                  timeout_s=120))
    assert prepared.command()[-2:] == ["--timeout-s", "120.0"]


# conlab list -----------------------------------------------------------------------------
def test_list_aligns_every_description_within_80_columns():
    lines = lab.cli.parser.list_lines(catalog.all_experiments())
    assert all(len(line) <= 80 for line in lines), [line for line in lines if len(line) > 80]
    starts = set()
    for line in lines:
        if line.startswith("    -p ") and "  " in line[7:]:
            setting_end = line.index("  ", 7)
            starts.add(len(line) - len(line[setting_end:].lstrip()))
    assert len(starts) == 1, starts
