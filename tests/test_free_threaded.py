"""A free-threaded CPython for real: threads compute in parallel, `+=` loses updates, the
convoy vanishes, and no explanation speaks of a GIL that is not there. Each test skips,
saying why, when this machine has no free-threaded build (`.ci/free-threaded-python`)."""

from __future__ import annotations

import json
import re

import pytest

from tests.helpers import conlab, run_json, usable_cpus

GIL_WORD = re.compile(r"GIL")
# Saying that there is no GIL is true on this build; any other mention of one is not.
NO_GIL = re.compile(r"without (a|the|any) GIL|no GIL|GIL (is )?off|free-threaded")


def speaks_of_a_gil(text: str) -> bool:
    return bool(GIL_WORD.search(NO_GIL.sub("", text)))


def texts(value, key=""):
    """Every sentence a result says: explanations, verdicts and their reasons, warnings."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from texts(v, k)
    elif isinstance(value, list):
        for v in value:
            yield from texts(v, key)
    elif isinstance(value, str) and key in ("explanation", "says", "why", "warning", "note",
                                           "verdict", "careful", "caution"):
        yield value


def free(record):
    interp = record["interpreter"]
    assert interp["free_threaded"] is True and interp["gil_enabled"] is False, interp
    return record


@pytest.mark.timing
def test_threads_use_more_than_one_and_a_half_cores_on_two_cpus(free_threaded_python):
    if usable_cpus() < 2:
        pytest.skip("one CPU: two threads cannot use more than one core here")
    record = free(run_json("gil-cpu", "work=3000000", "tasks=2", "modes=threads",
                           python=free_threaded_python))
    threads = [t for t in record["threads"] if t["name"].startswith("cpu-")]
    assert len(threads) == 2, record["threads"]
    wall = sum(record["result"]["modes"]["threads"]["wall_s_rounds"])
    cpu = sum(t["cpu_s"] for t in threads)
    waited = sum(t["run_delay_s"] for t in threads)
    if cpu / wall <= 1.5 and waited > 0.25 * wall:
        pytest.skip("other programs took the CPUs: the threads waited %.2f s for one in "
                    "%.2f s (%.2f cores used)" % (waited, wall, cpu / wall))
    assert cpu / wall > 1.5, "threads used %.2f CPU-s in %.2f s" % (cpu, wall)


def test_a_bare_increment_loses_updates(free_threaded_python):
    if usable_cpus() < 2:
        pytest.skip("one CPU: the threads never overlap; a loss needs a preemption inside "
                    "a read-add-write, which a short run may not see")
    # A million each: long enough that the four threads overlap even when they start
    # one by one on a busy machine.
    record = free(run_json("race", "increments=1000000", "variant=naive",
                           python=free_threaded_python))
    result = record["result"]
    assert result["variants"]["naive"]["lost"] > 0, result["variants"]
    assert result["verdict"]["figure"] == "variants.naive.lost"
    assert result["verdict"]["value"] == result["variants"]["naive"]["lost"]
    assert "free-threaded" in result["explanation"]


@pytest.mark.timing
def test_the_convoy_disappears(free_threaded_python):
    if usable_cpus() < 2:
        pytest.skip("one CPU: the CPU thread and the I/O thread would share one core")
    record = free(run_json("convoy", "requests=100", "compare_process=false",
                           python=free_threaded_python))
    result = record["result"]
    lat = result["latency_ms"]
    verdict = result["verdict"]
    assert verdict["figure"] == "slowdown_p50" and verdict["value"] == result["slowdown_p50"]
    if not verdict["can_tell"]:
        pytest.skip(verdict["why"])
    # Under a GIL this is tens of times slower (switch intervals); here a small factor.
    assert lat["cpu_thread"]["p50"] < 3 * lat["alone"]["p50"] + 0.5, lat


# Every experiment, small, under the free-threaded build: no sentence mentions a GIL. ----
SMALL = {
    "convoy": ["requests=30"],
    "ctx-switch": ["messages=2000", "perf=false", "ladder=false"],
    "deadlock": ["rounds=3"],
    "decision": ["job_ms=5", "seconds=0.15", "many=16"],
    "epoll": ["connections=20", "duration_s=0.2", "warmup_s=0"],
    "gil-cpu": ["work=1000000", "tasks=4"],
    "goroutines": ["gs=300", "ps=2", "work_ms=1.5", "block_fraction=0.25", "block_ms=60"],
    "interleave": ["program=counter", "explore=true", "preemptions=1"],
    "io-bound": ["requests=4", "delay=0.05"],
    "loop-freeze cpu to_thread": ["fix=to_thread", "block_ms=100", "blocks=1", "duration_s=0.5"],
    "loop-freeze sleep to_thread": ["fix=to_thread", "block=sleep", "block_ms=100", "blocks=1",
                                    "duration_s=0.5"],
    "loop-freeze process_pool": ["fix=process_pool", "block_ms=100", "blocks=1",
                                 "duration_s=0.5"],
    "race": ["increments=20000"],
    "scale": ["count=100"],
    "selftest": [],
}
SILENT = {"selftest"}  # checks the lab itself: it explains nothing


def run_or_skip(experiment, params, python):
    """The record, or a skip when the interpreter lacks a module the experiment needs."""
    args = ["run", experiment, "--json", "--python", python]
    for p in params:
        args += ["-p", p]
    done = conlab(*args)
    if done.returncode == 2 and "lacks" in done.stderr:
        pytest.skip(done.stderr.strip())
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_every_experiment_is_listed_here():
    listed = {name.split()[0] for name in SMALL}
    done = conlab("list", "--json")
    assert done.returncode == 0, done.stderr
    assert {e["name"] for e in json.loads(done.stdout)} == listed


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(SMALL))
def test_no_explanation_mentions_a_gil_that_is_not_there(free_threaded_python, case):
    name = case.split()[0]
    record = free(run_or_skip(name, SMALL[case], free_threaded_python))
    said = list(texts(record["result"]))
    assert said or name in SILENT, "the result explains nothing: %s" % sorted(record["result"])
    wrong = [text for text in said if speaks_of_a_gil(text)]
    assert not wrong, wrong


def test_a_forced_gil_is_told_apart_from_a_free_build(free_threaded_python):
    """PYTHON_GIL=1 turns the GIL back on in a free-threaded build: the record keeps
    both facts, and the explanation reads the GIL that ran."""
    done = conlab("run", "race", "--json", "-p", "increments=20000", "-p", "variant=naive",
                  "--python", free_threaded_python, env={"PYTHON_GIL": "1"})
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    assert record["interpreter"]["free_threaded"] is True
    assert record["interpreter"]["gil_enabled"] is True
    assert "GIL forced on" in record["result"]["explanation"]


# The lab's own words for a build, on any machine. --------------------------------------
def test_history_labels_a_free_threaded_run_whole():
    from lab.core.formatting import short_python

    assert short_python("cpython 3.13.15", False, True) == "3.13.15t"
    assert short_python("cpython 3.13.15", True, True) == "3.13.15t+GIL"
    assert short_python("cpython 3.13.15", False) == "3.13.15t"  # records before the field
    assert short_python("cpython 3.12.1", True, False) == "3.12.1"
    assert all(len(short_python("cpython 3.13.15", g, f)) <= 12
               for g in (True, False) for f in (True, False, None))


def test_doctor_marks_a_free_threaded_build_whose_gil_is_forced_on(monkeypatch):
    from lab.cli.doctor import gil_text

    monkeypatch.setenv("PYTHON_GIL", "1")
    assert "forced on by PYTHON_GIL=1" in gil_text({"free_threaded": True, "gil_enabled": True})
    assert gil_text({"free_threaded": True, "gil_enabled": False}).startswith("GIL off")
    assert gil_text({"free_threaded": False, "gil_enabled": True}).strip() == "GIL on"


def test_a_hard_linked_interpreter_is_listed_once(tmp_path, monkeypatch):
    """A free-threaded build installs python3.13 and python3.13t as one file (a hard link):
    the list of interpreters shows it once, under its most specific name."""
    import os
    import sys

    from lab.core import interpreters

    real = os.path.realpath(sys.executable)
    folder = tmp_path / "bin"
    folder.mkdir()
    try:
        os.link(real, folder / "python3.99")
        os.link(real, folder / "python3.99t")
    except OSError as exc:
        pytest.skip("cannot hard-link %s here: %s" % (real, exc))
    monkeypatch.setenv("PATH", str(folder))
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path / "no-pyenv"))
    monkeypatch.setenv("CONLAB_FT_PREFIX", str(tmp_path / "no-cache"))
    found = [i.path for i in interpreters.find_interpreters()]
    ours = [p for p in found if p.startswith(str(folder))]
    # sys.executable may be the same file too (then it stands for all of them).
    assert len(ours) <= 1, found
    assert ours == [str(folder / "python3.99t")] or os.path.samefile(found[0], real), found


def test_the_history_listing_keeps_the_free_threaded_mark():
    from lab.cli.history import format_listing

    run = {"id": 7, "saved_at": 0.0, "experiment": "race", "status": "done",
           "python": "cpython 3.13.15", "gil_enabled": False, "duration_s": 1.0,
           "host": "here", "imported": False}
    record = {"experiment": "race", "interpreter": {"version": "3.13.15", "gil_enabled": False,
                                                    "free_threaded": True}, "result": {}}
    row = format_listing([run], [{"record": record}]).splitlines()[1]
    assert " 3.13.15t " in row and "nogi" not in row, row
    forced = dict(record, interpreter=dict(record["interpreter"], gil_enabled=True))
    row = format_listing([dict(run, gil_enabled=True)], [{"record": forced}]).splitlines()[1]
    assert " 3.13.15t+GIL " in row, row


def test_the_gil_check_tells_denial_from_assumption():
    assert not speaks_of_a_gil("this interpreter runs without a GIL, so threads compute in parallel")
    assert speaks_of_a_gil("the thread holds the GIL and the loop waits for it")
    assert speaks_of_a_gil("runs without a GIL, yet each thread must wait for the GIL")
