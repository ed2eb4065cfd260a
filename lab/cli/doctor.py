"""`conlab doctor`: the machine facts a concurrency lab depends on."""

from __future__ import annotations

import argparse
import json
import os
import shutil
from typing import Any

from lab.core.ask import AskError, ask
from lab.core.interpreters import InterpreterError, find_interpreters
from lab.core.machine import machine, tool_available


def _tool_version(path: str | None, *args: str) -> str | None:
    if not path:
        return None
    try:
        done = ask([path, *args], timeout_s=10)
    except (OSError, AskError):
        return None
    lines = done.stdout.decode("utf-8", "replace").strip().splitlines()
    return "".join(c for c in lines[0] if c.isprintable())[:200] if lines else ""


def _colour_system() -> str:
    if os.environ.get("NO_COLOR"):
        return "none (NO_COLOR is set)"
    from rich.console import Console

    return str(Console().color_system or "none")


def gather() -> dict[str, Any]:
    host = machine()
    size = shutil.get_terminal_size((0, 0))
    go = tool_available("go")
    perf = tool_available("perf")
    try:
        found, why = [i.to_json() for i in find_interpreters()], None
    except InterpreterError as exc:  # no process to spare: say so, report the rest
        found, why = [], str(exc)
    return {
        "machine": host.to_json(),
        "interpreters": found,
        "interpreters_error": why,
        "go": {"path": go, "version": _tool_version(go, "version")},
        "perf": {"path": perf, "usable": _perf_usable(perf)},
        "terminal": {"columns": size.columns, "lines": size.lines,
                     "term": os.environ.get("TERM", ""), "colour_system": _colour_system()},
    }


def _perf_usable(perf: str | None) -> bool:
    if not perf:
        return False
    try:
        done = ask([perf, "bench", "sched", "pipe", "-l", "1000"], timeout_s=20)
    except (OSError, AskError):
        return False
    return done.returncode == 0


def gil_text(interp: dict[str, Any]) -> str:
    """`GIL on`, `GIL off` (a free-threaded build), or that build with its GIL forced on."""
    if interp.get("free_threaded") and interp.get("gil_enabled"):
        why = " by PYTHON_GIL=%s" % os.environ["PYTHON_GIL"] if "PYTHON_GIL" in os.environ else ""
        return "free-threaded, GIL forced on%s" % why
    return "GIL off (free-threaded)" if not interp.get("gil_enabled") else "GIL on "


def cmd_doctor(args: argparse.Namespace) -> int:
    facts = gather()
    if args.json:
        print(json.dumps(facts, indent=1))
        return 0
    from lab.cli.show import print_table_or_text

    print_table_or_text(lambda: doctor_blocks(facts), lambda: doctor_text(facts))
    return 0


def _facts(facts: dict[str, Any]) -> list[tuple[str, str]]:
    host, go, perf, term = facts["machine"], facts["go"], facts["perf"], facts["terminal"]
    return [
        ("CPUs", "%d logical, %d usable by the lab (affinity %s)%s" % (
            host["cpus"], len(host["affinity"]), host["affinity"],
            "; virtual machine (hypervisor flag)" if host["hypervisor"] else "")),
        ("CPU", "%s; kernel %s; schedstat %s" % (
            host["cpu_model"] or "?", host["kernel"],
            "yes" if host["schedstat"] else "no (coarse psutil)")),
        ("Memory available", "%.1f GiB" % (host["mem_available_bytes"] / 2**30)),
        ("go", go["version"] or "not found (apt-get install golang-go for the M:N lab)"),
        ("perf", "%s (%s)" % (perf["path"], "works" if perf["usable"] else "not permitted here")
         if perf["path"] else "not found (apt-get install linux-perf)"),
        ("terminal", "%dx%d, TERM=%s, colours: %s" % (term["columns"], term["lines"],
                                                      term["term"], term["colour_system"])),
    ]


def _interpreter_rows(facts: dict[str, Any]) -> list[list[str]]:
    return [[i["path"], i["implementation"], i["version"], gil_text(i).strip(),
             ", ".join(m for m, ok in i["modules"].items() if ok) or "no aiohttp/uvloop"]
            for i in facts["interpreters"]]


def doctor_blocks(facts: dict[str, Any]) -> list:
    """The same facts as tables, for a colour terminal (lab.cli.show draws them)."""
    from lab.core.formatting import Para, Table

    found = _facts(facts)
    blocks: list = [Table("machine", ["", ""], [list(f) for f in found[:3]], turn=False,
                          pairs=True),
                    Table("interpreters (usable with --python)",
                          ["path", "implementation", "version", "GIL", "modules"],
                          _interpreter_rows(facts), turn=False)]
    if facts["interpreters_error"]:
        blocks.append(Para("none checked: %s" % facts["interpreters_error"], "warn"))
    blocks.append(Table("tools", ["", ""], [list(f) for f in found[3:]], turn=False,
                        pairs=True))
    return blocks


def doctor_text(facts: dict[str, Any]) -> str:
    found = _facts(facts)
    lines = ["%s: %s" % pair for pair in found[:3]]
    lines += ["", "Interpreters (usable with --python):"]
    if facts["interpreters_error"]:
        lines.append("  none checked: %s" % facts["interpreters_error"])
    lines += ["  %-44s %-7s %-8s %-7s  %s" % tuple(row) for row in _interpreter_rows(facts)]
    lines += ["", "go:   %s" % found[3][1], "perf: %s" % found[4][1], "terminal: %s" % found[5][1]]
    return "\n".join(lines)
