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
    assert "variants.call.lost" in done.stdout
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
