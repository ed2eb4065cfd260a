"""One experiment under several interpreters: which ones qualify, which to offer first,
and `conlab compare-interpreters` (the headless twin of the side-by-side screen).

No Textual here. Interpreters are probed (a subprocess each, no experiment started);
every run is a real child of the lab, as with `conlab run`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import sys
import textwrap
import time
from dataclasses import dataclass
from typing import Any

from lab.core import catalog
from lab.core.interpreters import Interpreter

EXIT_OK, EXIT_FAILED, EXIT_REFUSED = 0, 1, 2
MAX_SIDE_BY_SIDE = 4  # panes on one screen; also the CLI's cap (2 CPUs are shared by all)


@dataclass(frozen=True)
class Offer:
    """An interpreter found on this machine, and why it cannot run this experiment."""

    interpreter: Interpreter
    missing: tuple[str, ...] = ()

    @property
    def usable(self) -> bool:
        return not self.missing

    @property
    def reason(self) -> str:
        return "needs %s" % " and ".join(self.missing) if self.missing else ""


def offers(experiment: catalog.Experiment, params: dict[str, Any],
           found: list[Interpreter]) -> list[Offer]:
    """Every interpreter found, each with what it lacks for these parameter values."""
    needed = experiment.requires_for(params)
    return [Offer(i, tuple(m for m in needed if not i.has(m))) for i in found]


def describe(interp: Interpreter) -> str:
    """`3.9.18`, `3.13.0 free-threaded`, `pypy 3.10.14`: short enough for a pane title."""
    impl = "" if interp.implementation == "cpython" else interp.implementation + " "
    text = impl + interp.version_text
    if interp.free_threaded:
        text += " free-threaded" if not interp.gil_enabled else " free-threaded (GIL on)"
    return text


def default_choice(usable: list[Interpreter], own: str = sys.executable) -> list[str]:
    """What to show first: the oldest, the lab's own, the newest, and a free-threaded build
    (the builds where a race or the GIL behave differently), without repeats."""
    if not usable:
        return []
    by_version = sorted(usable, key=lambda i: (i.version, i.free_threaded))
    with_gil = [i for i in by_version if not i.free_threaded] or by_version
    mine = [i for i in usable if os.path.realpath(i.path) == os.path.realpath(own)]
    picks = [with_gil[0]] + mine[:1] + [with_gil[-1]]
    picks += [i for i in by_version if i.free_threaded][-1:]
    chosen: list[str] = []
    versions = set()
    for interp in picks:
        key = (interp.version[:2], interp.free_threaded)
        if interp.path in chosen or key in versions:
            continue
        chosen.append(interp.path)
        versions.add(key)
    return chosen[:MAX_SIDE_BY_SIDE]


def entry(record: dict[str, Any], run_id: Any = None, label: str | None = None,
          saved_at: float | None = None) -> dict[str, Any]:
    """A record wrapped like a history entry, so `history.compare` can line it up."""
    return {"id": "-" if run_id is None else run_id, "label": label,
            "saved_at": saved_at or time.time(), "host": socket.gethostname() or "?",
            "imported": False, "record": record}


def keep(record: dict[str, Any]) -> int | None:
    """Save to history (as every run is); the id, or None if history is unavailable."""
    try:
        from lab.core import history
    except ImportError:
        return None
    return history.save_quietly(record)


# `conlab compare-interpreters NAME --python A --python B` ------------------------------
def add_command(sub: Any) -> None:
    cmd = sub.add_parser("compare-interpreters",
                         help="one experiment under several interpreters, side by side")
    cmd.add_argument("experiment")
    cmd.add_argument("--python", dest="pythons", action="append", default=[],
                     metavar="PATH", help="an interpreter (repeat: two or more)")
    cmd.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE",
                     help="a parameter (repeatable); see `conlab list`")
    cmd.add_argument("--at-once", action="store_true",
                     help="run them all at the same time (default: one after another, so "
                          "they do not share the CPUs)")
    cmd.add_argument("--timeout", type=float, default=None, metavar="S",
                     help="stop each run after S seconds (default: the experiment's own)")
    cmd.add_argument("--json", action="store_true", help="print exactly one JSON object")


def cmd_compare_interpreters(args: argparse.Namespace) -> int:
    from lab.core.runner import Refused, RunRequest, prepare
    from workloads._spec import ParamError

    def refuse(message: str) -> int:
        print("conlab: %s" % message, file=sys.stderr)
        return EXIT_REFUSED

    if len(args.pythons) < 2:
        return refuse("compare-interpreters needs two or more --python PATH (see "
                      "`conlab doctor` for the interpreters found)")
    if len(args.pythons) > MAX_SIDE_BY_SIDE:
        return refuse("--python given %d times; at most %d interpreters side by side"
                      % (len(args.pythons), MAX_SIDE_BY_SIDE))
    try:
        experiment = catalog.get(args.experiment)
        given = experiment.parse_assignments(args.param)
        # Every interpreter is checked before any child starts: all run, or none.
        prepared = [prepare(RunRequest(experiment.name, given, python=python,
                                       timeout_s=args.timeout)) for python in args.pythons]
    except catalog.UnknownExperiment as exc:
        return refuse(str(exc))
    except (ParamError, Refused) as exc:
        return refuse(str(exc))

    from lab.core.record import build_record

    try:
        states = asyncio.run(run_all(prepared, at_once=args.at_once))
    except KeyboardInterrupt:
        return 130
    records = [build_record(p, s) for p, s in zip(prepared, states)]
    entries = [entry(r, keep(r), label=describe(p.interpreter))
               for p, r in zip(prepared, records)]
    from lab.core import history
    from lab.cli.history import format_compare

    rows = history.compare(entries)
    if args.json:
        print(json.dumps({"experiment": experiment.name, "at_once": args.at_once,
                          "records": records,
                          "rows": [{"label": label, "values": values}
                                   for label, values in rows]}, indent=1, default=str))
    else:
        print("%s under %d interpreters, %s" % (
            experiment.name, len(records), "at once" if args.at_once else "one after another"))
        print()
        print(format_compare(rows))
        for p, r in zip(prepared, records):
            explanation = (r.get("result") or {}).get("explanation") \
                if isinstance(r.get("result"), dict) else None
            if explanation:
                print("\n" + textwrap.fill("%s: %s" % (describe(p.interpreter), explanation),
                                            79))
            if r.get("error"):
                print("\n%s: %s: %s" % (describe(p.interpreter), r["status"], r["error"]))
    return EXIT_OK if all(s.status == "done" for s in states) else EXIT_FAILED


async def run_all(prepared: list, at_once: bool = False) -> list:
    """Run each prepared run (in turn, or together); SIGTERM/SIGHUP stop them all."""
    from lab.core.runner import Run

    runs = [Run(p) for p in prepared]
    stopping = False

    def stop_all() -> None:
        nonlocal stopping
        stopping = True
        for run in runs:
            asyncio.ensure_future(run.stop("stopped"))

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, stop_all)

    async def one(run):
        await run.start()
        if stopping:  # the signal came while this child was being started
            await run.stop("stopped")
        return await run.wait()

    try:
        if at_once:
            return list(await asyncio.gather(*(one(r) for r in runs)))
        states = []
        for run in runs:
            if stopping:  # a stop before this run's turn: it never starts
                run.state.status, run.state.error = "stopped", "stopped before it started"
                states.append(run.state)
                continue
            states.append(await one(run))
        return states
    except asyncio.CancelledError:
        for run in runs:
            if run.state.pid:
                await run.stop("stopped")
                await run.wait()
        raise
