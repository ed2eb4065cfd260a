"""Bad input is refused before anything starts, with the parameter's name and range."""

from __future__ import annotations

import pytest

from lab.core import catalog
from lab.core.runner import Refused, RunRequest, prepare
from tests.helpers import conlab, interpreter
from workloads._spec import Param, ParamError, resolve

TASKS = Param.int("tasks", 2, 1, 64, "how many")
RATIO = Param.float("ratio", 0.5, 0.0, 1.0, "share")
MODE = Param.choice("mode", "a", ("a", "b"), "which")
FLAG = Param.bool("flag", False, "on or off")


@pytest.mark.parametrize("param,text,value", [
    (TASKS, "4", 4), (TASKS, "64", 64), (RATIO, "0.25", 0.25),
    (MODE, "b", "b"), (FLAG, "yes", True), (FLAG, "0", False),
])
def test_values_typed_by_a_person_are_parsed(param, text, value):
    assert param.parse(text) == value


@pytest.mark.parametrize("param,text", [
    (TASKS, "0"), (TASKS, "65"), (TASKS, "2.5"), (TASKS, "many"), (RATIO, "nan"),
    (RATIO, "1.5"), (MODE, "c"), (FLAG, "maybe"),
])
def test_bad_values_name_the_parameter_and_its_range(param, text):
    with pytest.raises(ParamError) as err:
        param.parse(text)
    message = str(err.value)
    assert repr(param.name) in message and param.allowed() in message


def test_json_values_are_type_checked():
    with pytest.raises(ParamError):
        TASKS.check(True)  # a bool is not an int here
    with pytest.raises(ParamError, match="unknown parameter 'nope'"):
        resolve((TASKS,), {"nope": 1})
    assert resolve((TASKS, MODE), {"tasks": 3}) == {"tasks": 3, "mode": "a"}


def test_prepare_refuses_before_starting_anything():
    with pytest.raises(Refused, match="unknown experiment"):
        prepare(RunRequest("no-such-thing"))
    with pytest.raises(Refused, match="'threads' must be an integer from 2 to 64"):
        prepare(RunRequest("race", {"threads": 1}))
    with pytest.raises(Refused, match="does not exist"):
        prepare(RunRequest("race", python="/no/such/python"))
    assert catalog.get("race").validate({})["variant"] == "all"


@pytest.mark.parametrize("args,expected", [
    (["run", "race", "-p", "threads=500"], "parameter 'threads' must be an integer from 2 to 64"),
    (["run", "race", "-p", "variant=bogus"], "parameter 'variant' must be one of"),
    (["run", "race", "-p", "nonsense"], "expected NAME=VALUE"),
    (["run", "race", "-p", "colour=red"], "unknown parameter 'colour'"),
    (["run", "nope"], "unknown experiment 'nope'"),
    (["run", "race", "--python", "/bin/false"], "is not a Python 3.9+ interpreter"),
    (["run", "race", "--python", "/no/such/python"], "does not exist"),
    (["run", "race", "--timeout", "-1"], "--timeout must be"),
    (["run"], "the following arguments are required"),
])
def test_cli_refusals_exit_2_with_one_clear_line(args, expected, tmp_path):
    spawn_log = tmp_path / "spawned"
    done = conlab(*args, timeout=60, env={"CONLAB_SPAWN_LOG": str(spawn_log)})
    assert done.returncode == 2, done.stderr
    assert expected in done.stderr
    assert len(done.stderr.strip().splitlines()) <= 2  # argparse adds a usage line
    assert done.stdout == ""
    assert not spawn_log.exists(), "a refused run started %s" % spawn_log.read_text()


def test_the_spawn_log_does_see_an_accepted_run(tmp_path):
    spawn_log = tmp_path / "spawned"
    done = conlab("run", "race", "-p", "increments=100", "-p", "variant=local",
                  env={"CONLAB_SPAWN_LOG": str(spawn_log)})
    assert done.returncode == 0, done.stderr
    assert "-m workloads race" in spawn_log.read_text()


@pytest.mark.parametrize("version", ["3.6", "2.7"])
def test_an_old_interpreter_is_refused(version):
    old = interpreter(version)
    if old is None:
        pytest.skip("no Python %s on this machine to refuse" % version)
    done = conlab("run", "race", "--python", old, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "3.9" in done.stderr and done.stdout == ""
