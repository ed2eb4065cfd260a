"""Entry point of a child: ``python -m workloads NAME --params JSON``.

Exit codes: 0 done, 1 the experiment failed, 2 refused parameters, 3 the interpreter
lacks something the experiment needs.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import traceback

from . import _limits, check, experiment_names, load, required_modules
from ._proto import (
    ENV_CPU_CLOCKS,
    ENV_PARENT_PID,
    cpus_available,
    die_with_parent,
    events,
    interpreter_facts,
    name_this_thread,
    thread_stats,
    start_cpu_clock_reporter,
)
from ._spec import ParamError, resolve


def describe():
    """Every experiment's spec as JSON, for tools that cannot import this package."""
    catalogue = []
    for name in experiment_names():
        module = load(name)
        catalogue.append({
            "name": name,
            "title": module.TITLE,
            "requires": list(getattr(module, "REQUIRES", ())),
            "params": [p.to_json() for p in module.PARAMS],
        })
    return catalogue


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m workloads")
    parser.add_argument("experiment", nargs="?", choices=experiment_names())
    parser.add_argument("--params", default="{}", help="parameters as a JSON object")
    parser.add_argument("--list", action="store_true", help="print the catalogue as JSON")
    parser.add_argument("--timeout-s", type=float, default=None,
                        help="the run's time limit, for checks that depend on it")
    args = parser.parse_args(argv)

    parent = os.environ.get(ENV_PARENT_PID)
    die_with_parent(int(parent) if parent else None)

    if args.list or not args.experiment:
        print(json.dumps(describe(), indent=1))
        return 0

    out = events()
    module = load(args.experiment)
    out.experiment = args.experiment
    try:
        given = json.loads(args.params)
        if not isinstance(given, dict):
            raise ParamError("--params", "--params must be a JSON object")
        params = resolve(module.PARAMS, given)
        _limits.IN_WORKLOAD_PROCESS = True  # the checks now count what this process holds
        check(module, params, args.timeout_s)
    except (ParamError, ValueError) as exc:
        out.emit("error", kind="params", message=str(exc))
        return 2
    missing = [m for m in required_modules(module, params) if importlib.util.find_spec(m) is None]
    if missing:
        out.emit("error", kind="requires", message="this interpreter lacks %s" % ", ".join(missing))
        return 3

    name_this_thread("main")
    out.emit("hello", experiment=args.experiment, params=params, ppid=os.getppid(),
             python=interpreter_facts(), cpus=os.cpu_count(), affinity=cpus_available())
    interval = os.environ.get(ENV_CPU_CLOCKS)
    if interval:
        start_cpu_clock_reporter(float(interval))
    try:
        result = module.run(params, out)
    except Exception as exc:  # report any failure as an event, then exit non-zero
        out.flush()
        out.emit("error", kind="crash", message="%s: %s" % (type(exc).__name__, exc),
                 traceback=traceback.format_exc())
        return 1
    out.flush()
    out.emit("thread_exit", name="main", role="main", **thread_stats())
    out.emit("result", result=result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
