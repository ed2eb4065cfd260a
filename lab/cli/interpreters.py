"""`conlab compare-interpreters NAME --python A --python B`: the headless twin of the
side-by-side screen (the logic is lab.core.interp_compare)."""

from __future__ import annotations

import argparse
import asyncio
import json
import textwrap
from typing import Any

from lab.cli.common import EXIT_FAILED, EXIT_OK, refuse
from lab.core import catalog, history
from lab.core.formatting import compare_table, format_compare
from lab.core.interp_compare import MAX_SIDE_BY_SIDE, describe, entry, keep, run_all
from lab.core.record import build_record
from lab.core.runner import Refused, RunRequest, prepare
from lab.core.catalog import ParamError



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

    try:
        states = asyncio.run(run_all(prepared, at_once=args.at_once))
    except KeyboardInterrupt:
        return 130
    records = [build_record(p, s) for p, s in zip(prepared, states)]
    entries = [entry(r, keep(r), label=describe(p.interpreter))
               for p, r in zip(prepared, records)]
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
        from lab.cli.show import print_table_or_text

        print_table_or_text(lambda: [compare_table(rows)], lambda: format_compare(rows))
        for p, r in zip(prepared, records):
            explanation = (r.get("result") or {}).get("explanation") \
                if isinstance(r.get("result"), dict) else None
            if explanation:
                print("\n" + textwrap.fill("%s: %s" % (describe(p.interpreter), explanation),
                                            79))
            if r.get("error"):
                print("\n%s: %s: %s" % (describe(p.interpreter), r["status"], r["error"]))
    return EXIT_OK if all(s.status == "done" for s in states) else EXIT_FAILED
