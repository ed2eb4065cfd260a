"""The headless CLI: list, run (table and JSON), doctor."""

from __future__ import annotations

import json

from tests.helpers import conlab


def test_list_json_describes_every_parameter():
    done = conlab("list", "--json", timeout=60)
    assert done.returncode == 0, done.stderr
    experiments = {e["name"]: e for e in json.loads(done.stdout)}
    assert {"gil-cpu", "race"} <= set(experiments)
    tasks = next(p for p in experiments["gil-cpu"]["params"] if p["name"] == "tasks")
    assert tasks["kind"] == "int" and tasks["min"] == 1 and "from 1 to" in tasks["allowed"]


def test_run_prints_exactly_one_json_object():
    done = conlab("run", "race", "-p", "increments=1000", "-p", "variant=locked", "--json")
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)  # raises if there is anything but one object
    assert record["experiment"] == "race" and record["status"] == "done"
    assert record["params"]["increments"] == 1000
    assert record["result"]["variants"]["locked"] == {
        **record["result"]["variants"]["locked"], "expected": 4000, "actual": 4000, "lost": 0}
    assert record["machine"]["cpus"] >= 1 and "hypervisor" in record["machine"]


def test_run_table_is_readable_and_names_the_threads():
    done = conlab("run", "race", "-p", "increments=1000", "-p", "variant=call")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("race: done in")
    row = next(line for line in done.stdout.splitlines() if line.split()[:1] == ["call"])
    header = next(line for line in done.stdout.splitlines() if line.split()[:1] == ["expected"])
    assert header.split()[:3] == ["expected", "actual", "lost"], header
    assert row.split()[1:5] == ["4", "000", "4", "000"], row  # 4 threads x 1 000, grouped
    assert "call-1" in done.stdout  # the worker threads, by their OS-visible names


def test_a_failed_run_exits_1_and_says_why():
    done = conlab("run", "selftest", "-p", "behave=crash", "--json")
    assert done.returncode == 1
    record = json.loads(done.stdout)
    assert record["status"] == "failed" and "crashed on purpose" in record["error"]


def test_doctor_reports_the_machine():
    done = conlab("doctor", "--json", timeout=120)
    assert done.returncode == 0, done.stderr
    facts = json.loads(done.stdout)
    assert facts["machine"]["cpus"] >= 1
    assert any(i["implementation"] == "cpython" for i in facts["interpreters"])
    assert set(facts["go"]) == {"path", "version"} and set(facts["perf"]) == {"path", "usable"}
    done = conlab("doctor", timeout=120)
    assert "CPUs:" in done.stdout and "Interpreters" in done.stdout


def test_ctrl_c_on_run_stops_it_keeps_a_stopped_record_and_exits_130(tmp_path):
    """Ctrl-C is SIGINT to the foreground job: like SIGTERM, a `stopped` record, saved and
    printed, one line on stderr, nothing left running; and the exit code says interrupted."""
    import os
    import signal
    import subprocess
    import sys

    from tests.helpers import ROOT, alive, new_tag, wait_for, workload_processes

    tag = new_tag()
    env = {**os.environ, "CONLAB_DATA_DIR": str(tmp_path), "CONLAB_TEST_TAG": tag}
    lab = subprocess.Popen([sys.executable, "-m", "lab", "run", "selftest", "-p", "behave=spawn",
                            "-p", "workers=2", "-p", "seconds=60", "--json"],
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env)
    try:
        children = wait_for(lambda: workload_processes(tag), 60, "the run's child")
        pids = [p.pid for p in children]
        lab.send_signal(signal.SIGINT)
        out, err = lab.communicate(timeout=30)
    finally:
        if lab.poll() is None:
            lab.kill()
            lab.wait()
    assert lab.returncode == 130, err
    record = json.loads(out)
    assert record["status"] == "stopped", record
    assert len(err.strip().splitlines()) == 1 and "interrupted" in err, err
    kept = json.loads(conlab("history", "--json", env={"CONLAB_DATA_DIR": str(tmp_path)}).stdout)
    assert [r["status"] for r in kept] == ["stopped"]
    wait_for(lambda: not workload_processes(tag) and not alive(pids), 5, "no child left")
