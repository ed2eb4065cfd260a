"""interleave: one thread moves at a time, so a schedule decides the outcome on any CPython."""

from __future__ import annotations

import json

import pytest

from tests.helpers import (conlab, free_threaded_python, interpreter, new_tag, run_json,
                           workload_processes)

INTERPRETERS = [("3.%d" % minor, lambda minor=minor: interpreter("3.%d" % minor))
                for minor in range(9, 14)] + [("3.13t", free_threaded_python)]


def result_of(*params, python=None):
    record = run_json("interleave", *params, python=python, timeout=120)
    assert record["status"] == "done", record.get("error")
    return record["result"]


def reads_before_writes(python):
    """The schedule where both threads load the counter before either stores it, read off
    the interpreter's own bytecode: a round-robin run shows after how many of its steps
    thread 1 stands before STORE_GLOBAL, and how many steps a thread takes in all."""
    trace = result_of("program=counter", python=python)["run"]["trace"]
    mine = [step for step in trace if step.get("thread") == 1]
    total = len(mine)
    to_store = next(i + 1 for i, step in enumerate(mine)
                    if step["threads"][0].get("opname") == "STORE_GLOBAL")
    return [1] * to_store + [2] * total + [1] * (total - to_store)


@pytest.mark.parametrize("name,find", INTERPRETERS, ids=[n for n, _ in INTERPRETERS])
def test_the_article_schedule_loses_exactly_one_update_on_every_interpreter(name, find):
    python = find()
    if python is None:
        pytest.skip("no CPython %s on this machine" % name)
    schedule = reads_before_writes(python)
    text = ",".join(map(str, schedule))
    result = result_of("program=counter", "schedule=" + text, python=python)
    run = result["run"]
    assert run["schedule"] == text and "continued" not in run
    assert run["shared"]["counter"] == 1 and run["expected"] == 2
    assert run["outcome"] == "lost update" and run["threads_ended"]
    assert "opcode" in result["mechanism"] or "INSTRUCTION" in result["mechanism"]
    # After both had their turn to load, both stand before their store, nothing written.
    loaded = schedule.index(2)
    both = run["trace"][2 * loaded]
    assert [t["opname"] for t in both["threads"]] == ["STORE_GLOBAL", "STORE_GLOBAL"]
    assert both["shared"]["counter"] == 0
    # The same schedule with the other thread first loses the same update.
    swapped = ",".join("2" if n == 1 else "1" for n in schedule)
    assert result_of("program=counter", "schedule=" + swapped,
                     python=python)["run"]["shared"]["counter"] == 1


def test_a_round_robin_continuation_is_said():
    run = result_of("program=counter", "schedule=2")["run"]
    assert run["schedule"].startswith("2,1,2") and "round-robin" in run["continued"]


@pytest.mark.parametrize("program,preemptions,outcome", [
    ("counter", 1, "lost update"),
    ("check-then-act", 1, "double creation"),
    ("two-locks", 1, "deadlock"),
])
def test_exploring_a_racy_program_finds_failing_schedules(program, preemptions, outcome):
    result = result_of("program=" + program, "explore=true", "preemptions=%d" % preemptions)
    report = result["explore"]
    assert report["finished"] and report["tried"] > report["failing"] > 0
    assert report["by_outcome"] == {outcome: report["failing"]}
    assert report["schedules_with_threads_left"] == 0
    shortest = report["shortest_failing"]
    assert shortest["outcome"] == outcome and shortest["preemptions"] <= preemptions
    assert result["verdict"]["figure"] == "explore.failing"
    assert result["verdict"]["value"] == report["failing"] and result["verdict"]["can_tell"]
    # The shortest failing schedule replays to the same failure.
    replay = result_of("program=" + program, "schedule=" + shortest["schedule"])["run"]
    assert replay["outcome"] == outcome and replay["threads_ended"]
    if outcome == "deadlock":
        cycle = replay["deadlock_cycle"]
        assert {(c["thread"], c["wants"], c["held_by"]) for c in cycle} == {(1, "B", 2), (2, "A", 1)}


@pytest.mark.parametrize("program", ["counter-locked", "two-locks-ordered"])
def test_exploring_a_fixed_program_finds_no_failing_schedule(program):
    result = result_of("program=" + program, "explore=true", "preemptions=2")
    report = result["explore"]
    assert report["finished"] and report["tried"] > 10 and report["failing"] == 0
    assert report["shortest_failing"] is None and "no schedule went wrong" in result["verdict"]["says"]


def test_without_preemptions_nothing_fails():
    report = result_of("program=two-locks", "explore=true", "preemptions=0")["explore"]
    assert report["finished"] and report["tried"] == 2 and report["failing"] == 0


def test_line_steps_take_fewer_steps_than_instruction_steps():
    by_instruction = result_of("program=counter-locked")["run"]["trace_steps"]
    by_line = result_of("program=counter-locked", "step=line")["run"]["trace_steps"]
    assert 0 < by_line < by_instruction


def test_exploration_stops_at_its_time_limit_and_says_how_far_it_got():
    report = result_of("program=two-locks", "threads=4", "explore=true", "preemptions=3",
                       "explore_s=0.5")["explore"]
    assert not report["finished"] and report["left_untried"] > 0 and report["tried"] > 0


@pytest.mark.parametrize("args,expected", [
    (("-p", "schedule=1,3"), "schedule"),
    (("-p", "schedule=1,x"), "schedule"),
    (("-p", "schedule=5"), "schedule"),
    (("-p", "threads=5"), "threads"),
    (("-p", "preemptions=4"), "preemptions"),
    (("-p", "program=nope"), "program"),
    (("-p", "explore=true", "-p", "schedule=1"), "schedule"),
])
def test_bad_values_are_refused_before_anything_starts(args, expected, tmp_path):
    spawn_log = tmp_path / "spawned"
    done = conlab("run", "interleave", *args, timeout=60, env={"CONLAB_SPAWN_LOG": str(spawn_log)})
    assert done.returncode == 2, done.stderr
    assert "'%s'" % expected in done.stderr and done.stdout == ""
    assert not spawn_log.exists(), "a refused run started %s" % spawn_log.read_text()


def test_a_schedule_naming_a_finished_thread_is_refused_by_the_child():
    done = conlab("run", "interleave", "-p", "schedule=" + ",".join(["1"] * 40), "--json", timeout=60)
    assert done.returncode != 0
    assert "'schedule'" in done.stdout + done.stderr and "finished" in done.stdout + done.stderr


def test_no_process_is_left_behind():
    tag = new_tag()
    done = conlab("run", "interleave", "-p", "program=two-locks", "-p", "schedule=1,2,1,2,1,2",
                  "--json", timeout=60, env={"CONLAB_TEST_TAG": tag})
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["result"]["run"]["outcome"] == "deadlock"
    assert workload_processes(tag) == []


@pytest.mark.parametrize("program", ["counter", "two-locks-ordered"])
def test_exploring_also_runs_the_program_free_and_the_verdict_says_both(program):
    result = result_of("program=" + program, "explore=true", "preemptions=1",
                       "free_iterations=2000")
    free = result["free_running"]
    assert free["measured"] and free["threads"] == 2 and free["iterations_each"] == 2000
    assert free["increments"] == 4000 and free["counter"] + free["lost"] == free["increments"]
    assert not free["deadlocked"] and free["gil_enabled"] == result["gil_enabled"]
    says = result["verdict"]["says"]
    assert "free-running here (GIL %s) lost %d of 4000 updates" % (
        "on" if free["gil_enabled"] else "off", free["lost"]) in says
    if program == "two-locks-ordered":
        assert free["lost"] == 0  # its locks guard the increment


def test_the_plain_text_shows_one_row_per_step_and_leaves_the_full_trace_to_json():
    done = conlab("run", "interleave", "-p", "program=counter", "-p", "explore=true",
                  "-p", "preemptions=1", "-p", "free_iterations=1000", timeout=60)
    assert done.returncode == 0, done.stderr
    text = done.stdout
    assert "run · trace ·" not in text and "in --json only: run.trace" in text
    assert "STORE_GLOBAL counter" in text and "free-running here" in text
    assert len(text.splitlines()) < 90
