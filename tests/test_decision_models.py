"""decision: the winners come from the run's own measurements, and the measurements show
what must hold on any machine (processes compute in parallel under the GIL; every
concurrent model overlaps waits)."""

from __future__ import annotations

import json

import pytest

from tests.helpers import conlab, interpreter, new_tag, usable_cpus, workload_processes

PY39 = interpreter("3.9")
SMALL = ("job_ms=5", "seconds=0.15")
MODELS = ("sequential", "threads", "processes", "asyncio", "asyncio+pool")


def decision(*params: str, python: str | None = None, env: dict | None = None) -> dict:
    args = ["run", "decision", "--json"]
    for p in params:
        args += ["-p", p]
    if python:
        args += ["--python", python]
    done = conlab(*args, env=env)
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    assert record["status"] == "done", record["error"]
    return record["result"]


def jobs_per_s(row: dict, model: str) -> float:
    return row["models"][model]["jobs_per_s"]


def test_the_table_rows_winners_and_verdicts_follow_from_the_measurements(tmp_path):
    tag = new_tag()
    result = decision("many=16", *SMALL, env={"CONLAB_TEST_TAG": tag,
                                               "CONLAB_DATA_DIR": str(tmp_path)})
    rows = result["rows"]
    assert [r["id"] for r in rows] == ["cpu", "io-many", "io-few", "mixed"]
    assert [r["cpu_percent"] for r in rows] == [100, 0, 0, 50]
    lines = result["explanation"].split("\n")
    busy = result["other_load_cpus_max"]
    if busy is not None and busy >= 0.5:  # the run says when other programs spoiled windows
        assert lines[-1].startswith("Other programs used up to %.1f" % busy)
        lines = lines[:-1]
    assert len(lines) == len(rows)
    for row, line in zip(rows, lines):
        loads = [row["models"][m]["other_load_cpus"] for m in MODELS]
        assert busy is None or all(0 <= x <= busy for x in loads)
        assert set(row["models"]) == set(MODELS)
        assert all(row["models"][m]["jobs"] > 0 for m in MODELS)
        best = max(jobs_per_s(row, m) for m in MODELS)
        close = {m for m in MODELS if jobs_per_s(row, m) >= best * (1 - result["tie_within"])}
        assert set(row["winners"]) == close
        assert jobs_per_s(row, row["winners"][0]) == best
        assert row["agrees"] == any(m in row["winners"] for m in row["article_models"])
        # Each row's sentence quotes this run's figures and says whether it disagrees.
        assert line.startswith(row["label"])
        assert ("DISAGREES" in line) == (not row["agrees"])
        assert row["article_pick"] in line
    # Nothing the run started is left behind (workers, pool, delay server).
    assert workload_processes(tag) == []


@pytest.mark.timing
@pytest.mark.skipif(usable_cpus() < 2, reason="one CPU: processes cannot compute in parallel")
def test_all_computing_processes_beat_threads_under_the_gil():
    ratios = []
    for _attempt in range(3):  # another program's burst can spoil one short window
        row = decision("workload=dial", "cpu_percent=100", "concurrency=4", "job_ms=10",
                       "seconds=0.4")["rows"][0]
        ratios.append(jobs_per_s(row, "processes") / jobs_per_s(row, "threads"))
        if ratios[-1] > 1.2:
            break
    assert max(ratios) > 1.2, "processes/threads throughput ratios: %s" % ratios


@pytest.mark.timing
@pytest.mark.parametrize("wait", ["socket", "sleep"])
def test_all_waiting_every_concurrent_model_overlaps_the_waits(wait):
    # Holds on one CPU too: waiting needs no CPU, so 8 jobs in flight overlap their waits.
    row = decision("workload=dial", "cpu_percent=0", "concurrency=8", "job_ms=10",
                   "seconds=0.3", "wait=" + wait)["rows"][0]
    sequential = jobs_per_s(row, "sequential")
    assert sequential <= row["ideal_jobs_per_s"] / 8 * 1.05  # one job at a time: 10 ms each
    for model in ("threads", "asyncio", "asyncio+pool"):
        assert jobs_per_s(row, model) > 3 * sequential, (model, row["models"])
    assert "sequential" not in row["winners"]


def test_bad_parameters_are_refused_before_anything_starts():
    done = conlab("run", "decision", "-p", "cpu_percent=101")
    assert done.returncode == 2
    assert "cpu_percent" in done.stderr and "0 to 100" in done.stderr
    done = conlab("run", "decision", "-p", "wait=network")
    assert done.returncode == 2 and "socket, sleep" in done.stderr


@pytest.mark.skipif(PY39 is None, reason="no CPython 3.9 under pyenv on this machine")
def test_runs_under_python_39(tmp_path):
    result = decision("workload=dial", "cpu_percent=50", *SMALL, python=PY39,
                      env={"CONLAB_DATA_DIR": str(tmp_path)})
    row = result["rows"][0]
    assert row["article_pick"] == "process pool + asyncio"
    assert all(row["models"][m]["jobs"] > 0 for m in MODELS)


def test_the_articles_table_covers_every_mix():
    from workloads.decision import article_pick_for

    assert article_pick_for(100, 4) == "multiprocessing"
    assert article_pick_for(0, 4) == "threading"
    assert article_pick_for(0, 500) == "asyncio"
    assert article_pick_for(50, 8) == "process pool + asyncio"


def test_more_connections_than_descriptors_is_refused_naming_the_limit():
    import os
    import resource
    import subprocess
    import sys

    from tests.helpers import ROOT

    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)

    def few_descriptors():
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))

    done = subprocess.run([sys.executable, "-m", "lab", "run", "decision", "-p", "many=1000"],
                          capture_output=True, text=True, cwd=ROOT, env=dict(os.environ),
                          stdin=subprocess.DEVNULL, preexec_fn=few_descriptors, timeout=60)
    assert done.returncode == 2
    assert "'many'" in done.stderr and "RLIMIT_NOFILE" in done.stderr
    assert done.stdout == ""  # refused before anything ran


async def test_stopping_mid_run_leaves_no_worker_pool_or_server(monkeypatch, tmp_path):
    import asyncio

    from lab.core.runner import Run, RunRequest, prepare

    tag = new_tag()
    monkeypatch.setenv("CONLAB_TEST_TAG", tag)  # the children inherit it
    monkeypatch.setenv("CONLAB_DATA_DIR", str(tmp_path))
    run = Run(prepare(RunRequest("decision", {"workload": "dial", "cpu_percent": 50,
                                              "job_ms": 5.0, "seconds": 1.5})))
    await run.start()
    deadline = asyncio.get_running_loop().time() + 60
    # Wait until the pool model is measuring: workers, pool and delay server all alive.
    while not any(e.get("model") == "asyncio+pool" for e in run.state.events):
        assert asyncio.get_running_loop().time() < deadline, "never reached asyncio+pool"
        await asyncio.sleep(0.05)
    while len(workload_processes(tag)) < 3:  # the child, its delay server, the pool workers
        assert asyncio.get_running_loop().time() < deadline, workload_processes(tag)
        await asyncio.sleep(0.02)
    assert not any(e.get("ev") == "row" and e.get("state") == "end" for e in run.state.events)
    await run.stop()
    state = await run.wait()
    assert state.status == "stopped"
    assert workload_processes(tag) == []
