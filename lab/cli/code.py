"""`conlab show-code EXPERIMENT`: the lesson's functions, the lines a run blamed, and for
race the bytecode its interpreter compiles (the TUI's code panel, `v`, as text)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from lab.cli.common import EXIT_FAILED, EXIT_OK, refuse

# A race run just long enough to report its interpreter's bytecode (nothing is measured).
BYTECODE_RUN = {"threads": 2, "increments": 100, "variant": "naive"}


def add_command(sub: Any) -> None:
    code = sub.add_parser("show-code", help="the lesson's code, with the lines a run blamed")
    code.add_argument("experiment")
    code.add_argument("--run", dest="run_id", type=int, metavar="ID",
                      help="mark the lines this saved run blamed (see `conlab history`)")
    code.add_argument("--python", dest="code_python", metavar="PATH",
                      help="race: the interpreter whose bytecode to show (default: this one)")
    code.add_argument("--json", action="store_true", help="print exactly one JSON object")


def cmd_show_code(args: argparse.Namespace) -> int:
    from lab.core import catalog, source

    try:
        catalog.get(args.experiment)
    except catalog.UnknownExperiment as exc:
        return refuse(str(exc))
    result, python = None, None
    if args.run_id is not None:
        record = _saved_record(args.run_id, args.experiment)
        if isinstance(record, int):
            return record
        result, python = record.get("result"), python_of(record)
    elif args.experiment == "race":
        found = _bytecode_run(args.code_python or args.python)
        if isinstance(found, int):
            return found
        result, python = found
    try:
        listing = source.listing(args.experiment, result, python=python)
    except source.SourceError as exc:
        print("conlab: %s" % exc, file=sys.stderr)
        return EXIT_FAILED
    if args.json:
        print(json.dumps(listing, indent=1))
    else:
        print("\n".join(source.listing_lines(listing)))
    return EXIT_OK


def python_of(record: dict) -> str | None:
    interp = record.get("interpreter") if isinstance(record, dict) else None
    if not isinstance(interp, dict):
        return None
    return ("%s %s" % (interp.get("implementation") or "", interp.get("version") or "")).strip() or None


def _saved_record(run_id: int, experiment: str) -> dict | int:
    from lab.core import history

    try:
        entry = history.get_run(run_id)
    except KeyError:
        return refuse("no run with id %d in %s (see `conlab history`)" % (run_id, history.db_path()))
    except (history.DamagedRun, history.HistoryError) as exc:
        print("conlab: %s" % exc, file=sys.stderr)
        return EXIT_FAILED
    record = entry.get("record") if isinstance(entry.get("record"), dict) else {}
    if record.get("experiment") != experiment:
        return refuse("run %d is of %s, not %s" % (run_id, record.get("experiment"), experiment))
    return record


def _bytecode_run(python: str | None) -> tuple[dict, str | None] | int:
    """A tiny race run under `python`: its result carries the bytecode as that interpreter
    compiled each variant."""
    from lab.core.runner import Refused, Run, RunRequest, prepare

    try:
        prepared = prepare(RunRequest("race", dict(BYTECODE_RUN), python=python))
    except Refused as exc:
        return refuse(str(exc))

    async def go():
        run = Run(prepared)
        await run.start()
        return await run.wait()

    state = asyncio.run(go())
    if state.status != "done" or not isinstance(state.result, dict):
        print("conlab: the race child did not report its bytecode: %s"
              % (state.error or state.status), file=sys.stderr)
        return EXIT_FAILED
    hello = (state.hello or {}).get("python") or {}
    label = ("%s %s" % (hello.get("implementation") or "", hello.get("version") or "")).strip()
    return state.result, label or None
