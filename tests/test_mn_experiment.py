"""`goroutines` as a user runs it: `conlab run goroutines --json`, in real children."""

from __future__ import annotations

import json

import psutil
import pytest

from tests.helpers import (conlab, interpreter, new_tag, run_json, skip_if_busy, wait_for,
                           workload_processes)

SMALL = ("gs=300", "ps=2", "work_ms=1.5", "block_fraction=0.25", "block_ms=60")
KEYS = ("runtime", "gs", "ps", "max_threads", "steals", "handoffs", "spawn_us_per_g",
        "bytes_per_g")


def go_processes(tag: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            cmd = proc.info["cmdline"] or []
            if cmd and cmd[0].endswith("/goroutines") and proc.environ().get(
                    "CONLAB_TEST_TAG") == tag:
                found.append(proc)
        except psutil.Error:
            continue
    return found


@pytest.mark.timing
def test_python_runtime_headless_result():
    tag = new_tag()
    done = conlab("run", "goroutines", "--json", *sum((["-p", p] for p in SMALL), []),
                  env={"CONLAB_TEST_TAG": tag})
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    skip_if_busy(record)
    r = record["result"]
    for key in KEYS:
        assert key in r, key
    assert r["runtime"] == "python" and r["gs"] == 300 and r["ps"] == 2
    # every G completed exactly once
    assert r["completed_once"] == 300 and r["completed_twice"] == 0 and r["never_completed"] == 0
    # 75 Gs blocked in nanosleep: more Ms busy at once than there are Ps, via hand-offs
    assert r["blocking_gs"] == 75
    assert r["threads_exceeded_ps"] and r["max_busy_ms"] > 2 and r["max_threads"] > 2
    assert r["handoffs"] > 0
    assert r["queues_drained"]
    assert r["spawn_us_per_g"] > 0 and r["bytes_per_g"] is not None
    # the Ms are real OS threads the lab saw, named M0, M1, ...
    names = {t["name"] for t in record["threads"]}
    assert {"M0", "M1", "sysmon"} <= names
    wait_for(lambda: not workload_processes(tag), 5, "the workload child to be gone")


def test_under_the_gil_the_ms_use_about_one_core():
    r = run_json("goroutines", "gs=300", "ps=2", "work_ms=1", "block_fraction=0")["result"]
    if not r["gil_enabled"]:
        pytest.skip("this interpreter runs without a GIL")
    assert r["completed_once"] == 300
    assert r["ms_cpu_s"] > 0
    assert r["cores_used"] < 1.25  # however many Ms and CPUs: one runs Python at a time


def test_all_gs_readied_on_one_p_get_stolen():
    # 200 Gs fit P0's local queue (256): another P gets work only by stealing
    r = run_json("goroutines", "gs=200", "ps=2", "work_ms=0.3", "block_fraction=0")["result"]
    assert r["completed_once"] == 200
    assert r["steals"] > 0 and r["stolen_gs"] >= r["steals"]


@pytest.mark.timing
def test_runs_under_python_3_9():
    py39 = interpreter("3.9")
    if py39 is None:
        pytest.skip("no CPython 3.9 on this machine (pyenv)")
    record = run_json("goroutines", *SMALL, python=py39)
    skip_if_busy(record)
    assert record["interpreter"]["version"].startswith("3.9")
    r = record["result"]
    assert r["completed_once"] == 300 and r["threads_exceeded_ps"]


def test_spawn_mode_measures_each_kind_the_same_way():
    tag = new_tag()
    done = conlab("run", "goroutines", "--json", "-p", "mode=spawn", "-p", "units=3000",
                  "-p", "threads=300", "-p", "unit_work=100", env={"CONLAB_TEST_TAG": tag})
    assert done.returncode == 0, done.stderr
    r = json.loads(done.stdout)["result"]
    kinds = r["kinds"]
    for kind, units in (("mn_g", 3000), ("asyncio_task", 3000), ("thread", 300)):
        figures = kinds[kind]
        assert figures["units"] == units, kind
        assert figures["spawn_us_per_unit"] > 0 and figures["run_ms"] > 0, kind
    assert kinds["mn_g"]["completed_once"] == 3000
    # A thread reserves a whole stack of address space; a G or a task is a small object.
    assert kinds["thread"]["virtual_bytes_per_unit"] > 64 * 1024
    assert kinds["asyncio_task"]["virtual_bytes_per_unit"] < 64 * 1024
    assert kinds["thread"]["spawn_us_per_unit"] > kinds["mn_g"]["spawn_us_per_unit"]
    assert r["spawn_us_per_g"] == kinds["mn_g"]["spawn_us_per_unit"]
    assert "goroutine" in kinds  # measured, or skipped with how to get Go
    assert r["article_says"] and r["explanation"].startswith("Here ")
    wait_for(lambda: not workload_processes(tag) and not go_processes(tag), 5,
             "the workload child and its workers to be gone")


def test_threads_past_the_machines_cap_are_refused_before_anything_starts():
    done = conlab("run", "goroutines", "-p", "mode=spawn", "-p", "threads=1000000")
    assert done.returncode == 2
    assert "'threads'" in done.stderr and "at most" in done.stderr


def test_runtime_go_without_go_is_refused_with_how_to_get_it():
    done = conlab("run", "goroutines", "-p", "runtime=go", env={"CONLAB_GO": "none"})
    assert done.returncode == 2
    assert "'go'" in done.stderr or "`go`" in done.stderr
    assert "golang-go" in done.stderr


def test_bad_values_name_the_parameter_and_range():
    done = conlab("run", "goroutines", "-p", "block_fraction=1.5")
    assert done.returncode == 2
    assert "block_fraction" in done.stderr and "0.0 to 1.0" in done.stderr
