"""The lab's experiments. Standard library only, runnable by any CPython 3.9+ (or PyPy).

Each experiment is one module named after its id (``gil-cpu`` -> ``gil_cpu.py``) with:

    NAME       the id
    TITLE      one line
    LESSON     a short explanation, in plain words
    PARAMS     a tuple of ``_spec.Param``
    REQUIRES   optional modules the interpreter must have (e.g. ``("aiohttp",)``)
    REQUIRES_FOR  optional: modules needed only for some parameter values,
               ``{"loop": {"uvloop": "uvloop"}}`` = loop=uvloop needs module uvloop
    TIMEOUT_S  how long a run with default parameters may take before the watchdog stops it
    LESSON_CODE  the functions that are the lesson, shown beside the picture: names in the
               module (`"cpu_work"`, `"Class.method"`) or in a sibling (`"_loops:run_on"`)
    CPU_BOUND  optional (default False): the run keeps CPUs busy or its figures are times
               that other runs' CPU use would stretch; the TUI runs such runs in turn
    run(params, events) -> dict   the result record
    check_limits(params, timeout_s)  optional: raise ``_spec.ParamError`` past the machine's
               caps; timeout_s is the run's real time limit
    tasks_needed(params) -> (param, count)  the most threads and processes the child runs
               at once, its main thread included, and the parameter that sets the count

Run one with ``python -m workloads NAME --params '{"tasks": 2}'``; events are JSON lines.
"""

from __future__ import annotations

import importlib
import os

# What the lab may use of the workloads' internals: the parameter specs and the protocol's
# environment names. Everything else here is the children's own business.
from workloads._proto import (ENV_COMMAND_FD, ENV_CPU_CLOCKS, ENV_EVENT_FD, ENV_PARENT_PID,
                              die_with_parent)
from workloads._limits import rlimit
from workloads import _load as machine_load  # other programs' CPU share (conlab watch)
from workloads._spec import Param, ParamError, resolve
from workloads._words import grouped, times

__all__ = ["ENV_COMMAND_FD", "ENV_CPU_CLOCKS", "ENV_EVENT_FD", "ENV_PARENT_PID", "ENV_PROBE_FD",
           "boot_dir", "die_with_parent", "machine_load", "Param", "ParamError", "resolve", "rlimit",
           "grouped", "times",
           "experiment_names", "load", "module_name", "required_modules"]

_HERE = os.path.dirname(os.path.abspath(__file__))
NOT_EXPERIMENTS = ("probe.py",)  # the probe `conlab watch` loads into users' programs


def module_name(experiment):
    return experiment.replace("-", "_")


def experiment_names():
    """Every experiment id, found from the files beside this one (no imports)."""
    names = []
    for entry in sorted(os.listdir(_HERE)):
        if entry.endswith(".py") and not entry.startswith("_") and entry not in NOT_EXPERIMENTS:
            names.append(entry[:-3].replace("_", "-"))
    return names


def load(experiment):
    """Import one experiment module (its spec and run function; importing runs nothing)."""
    if experiment not in experiment_names():
        raise KeyError(experiment)
    return importlib.import_module(__name__ + "." + module_name(experiment))


def required_modules(module, params):
    """The optional modules an experiment needs with these parameter values."""
    needed = list(getattr(module, "REQUIRES", ()))
    for param, by_value in getattr(module, "REQUIRES_FOR", {}).items():
        extra = by_value.get(params.get(param))
        if extra and extra not in needed:
            needed.append(extra)
    return needed


def check(module, params, timeout_s=None):
    """Every check before a start, the same in the lab and in the child: the threads and
    processes the run needs against the user's and the machine's task limits, then the
    experiment's own limits. Raises ``_spec.ParamError`` naming the parameter."""
    from ._limits import check_tasks

    name, needed = module.tasks_needed(params)
    check_tasks(module, params, name, needed)
    check_limits = getattr(module, "check_limits", None)
    if check_limits is not None:
        check_limits(params, timeout_s or getattr(module, "TIMEOUT_S", 120))


def __getattr__(name):
    """`ENV_PROBE_FD` and `boot_dir` come from the probe on first use: every experiment
    child imports this package, and none of them needs the probe's code."""
    if name in ("ENV_PROBE_FD", "boot_dir"):
        from workloads import probe

        return getattr(probe, name)
    raise AttributeError("module 'workloads' has no attribute %r" % name)
