"""Be the scheduler, headless: a StepperSession drives an interactive interleave child."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from lab.core.stepper import StepperSession
from tests.helpers import ROOT, alive, free_threaded_python, interpreter, wait_for

INTERPRETERS = [("3.%d" % minor, lambda minor=minor: interpreter("3.%d" % minor))
                for minor in range(9, 14)] + [("3.13t", free_threaded_python)]
STEPS_CAP = 200  # no thread of these programs takes this many instructions


def run(coroutine):
    return asyncio.run(coroutine)


async def step_until(session, thread, done):
    """Step `thread` until `done(state)` holds; the count comes from the states, not from
    knowing this interpreter's bytecode."""
    for _ in range(STEPS_CAP):
        if done(session.state):
            return session.state
        await session.step(thread)
        assert session.refused is None, session.refused
    raise AssertionError("thread %d never got there" % thread)


def me(state, thread):
    return state["threads"][thread - 1]


def process_group_members(pgid):
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/stat" % entry) as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                members.append(int(entry))
    return members


@pytest.mark.parametrize("name,find", INTERPRETERS, ids=[n for n, _ in INTERPRETERS])
def test_both_threads_load_before_either_stores_and_one_update_is_lost(name, find):
    python = find()
    if python is None:
        pytest.skip("no CPython %s on this machine" % name)

    async def scenario():
        async with StepperSession() as session:
            await session.start("counter", python=python)
            assert session.program["bytecode"]["1"] and "counter += 1" in "\n".join(
                session.program["source"])
            state = await step_until(session, 1, lambda s: me(s, 1)["loaded"])
            assert me(state, 1)["loaded"] == ["0"] and me(state, 1)["loaded_names"] == ["counter"]
            assert me(state, 1)["status"] == "ready"
            state = await step_until(session, 2, lambda s: me(s, 2)["status"] == "finished")
            assert state["shared"] == {"counter": 1} and me(state, 1)["loaded"] == ["0"]
            assert state["outcome"] is None and not state["goal"]["reached"]
            state = await step_until(session, 1, lambda s: me(s, 1)["status"] == "finished")
            return session, state

    session, state = run(scenario())
    assert state["shared"] == {"counter": 1}
    assert state["outcome"]["kind"] == "lost-update"
    assert state["goal"] == {"text": "end with counter = 1 after two increments", "reached": True}
    assert state["schedule_text"] == " ".join(map(str, state["schedule"]))
    assert state["loaded_from"] == "instrumented reads"
    assert state["mechanism"] == ("settrace" if name in ("3.9", "3.10", "3.11") else
                                  "sys.monitoring")
    assert not alive([session.pid])


def test_undo_gives_back_the_state_before_the_last_step_exactly():
    async def scenario():
        async with StepperSession() as session:
            states = [await session.start("two-locks")]
            await session.set_unit("line")
            states.append(session.state)
            for thread in (1, 1, 2, 2, 1):  # both take their first lock, 1 blocks on B
                states.append(await session.step(thread))
                assert session.refused is None, session.refused
            assert me(states[-1], 1)["status"] == "blocked"
            undone = [await session.undo() for _ in range(3)]
            await session.reset()
            fresh = session.state
            await session.undo()
            return states, undone, fresh, session.refused

    states, undone, fresh, refused = run(scenario())
    assert undone == [states[-2], states[-3], states[-4]]
    assert me(states[-2], 1)["holds"] == ["A"] and me(states[-2], 2)["holds"] == ["B"]
    assert fresh["schedule"] == [] and fresh["shared"] == states[0]["shared"]
    assert refused == "nothing to undo: no step taken yet"


@pytest.mark.parametrize("line,reason", [
    (b"{not json\n", "not a JSON command"),
    (b'{"v":2,"cmd":"step","thread":1}\n', "version"),
    (b'{"v":1,"cmd":"jump"}\n', "unknown command"),
    (b'{"v":1,"cmd":"step"}\n', "'thread'"),
    (b'{"v":1,"cmd":"step","thread":9}\n', "thread 9 does not exist (threads 1 to 2)"),
    (b'{"v":1,"cmd":"unit","unit":"page"}\n', "unit must be instruction or line"),
    (b"[1, 2]\n", "JSON object"),
])
def test_bad_commands_are_refused_with_a_reason_and_the_session_goes_on(line, reason):
    async def scenario():
        async with StepperSession() as session:
            before = await session.start("counter")
            after = await session.send_raw(line)
            refused = session.refused
            moved = await session.step(1)
            return before, after, refused, moved, session.refused

    before, after, refused, moved, later = run(scenario())
    assert reason in refused and "\n" not in refused
    assert after == before
    assert moved["schedule"] == [1] and later is None


def test_stepping_a_finished_thread_is_refused():
    async def scenario():
        async with StepperSession() as session:
            await session.start("counter", unit="line")
            await step_until(session, 1, lambda s: me(s, 1)["status"] == "finished")
            finished = session.state
            again = await session.step(1)
            return finished, again, session.refused

    finished, again, refused = run(scenario())
    assert refused == "thread 1 has finished" and again == finished


def test_opposite_lock_orders_reach_the_deadlock_goal_with_its_cycle():
    async def scenario():
        async with StepperSession() as session:
            await session.start("two-locks")
            await step_until(session, 1, lambda s: me(s, 1)["holds"])
            await step_until(session, 2, lambda s: me(s, 2)["holds"])
            await step_until(session, 1, lambda s: me(s, 1)["status"] == "blocked")
            state = await step_until(session, 2, lambda s: s["deadlock"])
            await session.step(1)
            return state, session.refused

    state, refused = run(scenario())
    assert state["goal"] == {"text": "get both threads stuck", "reached": True}
    assert {(c["thread"], c["wants"], c["held_by"]) for c in state["deadlock"]["cycle"]} == {
        (1, "B", 2), (2, "A", 1)}
    assert [(t["status"], t["holds"], t["wants"], t["blocked_by"]) for t in state["threads"]] == [
        ("blocked", ["A"], "B", 2), ("blocked", ["B"], "A", 1)]
    assert state["locks"] == {"A": 1, "B": 2} and state["outcome"]["kind"] == "deadlock"
    assert "deadlocked" in refused


def test_a_fixed_program_says_it_cannot_be_broken():
    async def scenario():
        async with StepperSession() as session:
            return await session.start("two-locks-ordered")

    assert "you can't" in run(scenario())["goal"]["text"]


def test_closing_the_session_leaves_no_process():
    async def scenario():
        session = StepperSession()
        await session.start("two-locks")
        await step_until(session, 1, lambda s: me(s, 1)["holds"])
        pid = session.pid
        assert os.path.exists("/proc/%d" % pid)
        await session.close()
        return pid, await session.step(2), session.refused

    pid, state, refused = run(scenario())
    assert not os.path.exists("/proc/%d" % pid) and process_group_members(pid) == []
    assert refused == "the stepper session has ended" and state is not None


def test_the_child_ends_cleanly_on_eof_of_its_command_pipe():
    command_read, command_write = os.pipe()
    events_read, events_write = os.pipe()
    env = {**os.environ, "CONLAB_COMMAND_FD": str(command_read),
           "CONLAB_EVENT_FD": str(events_write), "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen([sys.executable, "-m", "workloads", "interleave", "--params",
                              '{"interactive": true}'], pass_fds=(command_read, events_write),
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, env=env)
    os.close(command_read)
    os.close(events_write)
    with os.fdopen(events_read, "rb") as events:
        os.write(command_write, b'{"v":1,"cmd":"step","thread":1}\n')
        os.close(command_write)  # what a parent's death does to the pipe
        seen = [json.loads(line)["ev"] for line in events]
    assert child.wait(timeout=30) == 0
    assert seen.count("step_state") == 2 and seen[-1] == "result"


def test_the_child_goes_when_its_parent_is_killed():
    parent_code = textwrap.dedent("""
        import asyncio, sys
        from lab.core.stepper import StepperSession
        async def main():
            session = StepperSession()
            await session.start("counter")
            print(session.pid, flush=True)
            await asyncio.sleep(120)
        asyncio.run(main())
    """)
    parent = subprocess.Popen([sys.executable, "-c", parent_code], stdout=subprocess.PIPE,
                              stdin=subprocess.DEVNULL, cwd=ROOT, text=True)
    try:
        child = int(parent.stdout.readline())
        assert alive([child])
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=30)
    wait_for(lambda: not alive([child]), 15, "the stepper child to end after its parent died")


def test_a_child_that_does_not_answer_is_refused_in_time_not_waited_for(monkeypatch):
    import lab.core.stepper as stepper

    monkeypatch.setattr(stepper, "COMMAND_DEADLINE_S", 0.3)

    async def scenario():
        async with StepperSession() as session:
            before = await session.start("counter")
            os.kill(session.pid, signal.SIGSTOP)  # it can read no command now
            try:
                after = await session.step(1)
                refused = session.refused
            finally:
                os.kill(session.pid, signal.SIGCONT)
            return before, after, refused

    before, after, refused = run(scenario())
    assert after == before and refused == "no answer from the stepper child in 0.3 s"


def test_bad_values_refuse_the_session_before_anything_starts(tmp_path, monkeypatch):
    from lab.core.runner import Refused

    spawn_log = tmp_path / "spawned"
    monkeypatch.setenv("CONLAB_SPAWN_LOG", str(spawn_log))
    for program, threads, unit, expected in (("nope", 2, "instruction", "'program'"),
                                             ("counter", 5, "instruction", "'threads'"),
                                             ("counter", 2, "page", "'step'")):
        with pytest.raises(Refused, match=expected):
            run(StepperSession().start(program, threads=threads, unit=unit))
    assert not spawn_log.exists()
