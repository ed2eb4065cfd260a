"""The code beside the picture: the functions each experiment names as its lesson
(`LESSON_CODE` in its workloads module), their source and first line, and the lines a
run blames (the loop-freeze watchdog's line, each deadlocked thread's line).

Source is read from the module files with `ast`, never by importing a sibling, so a name
in `_mn_runtime:Runtime.schedule` costs one parse. Race's bytecode is not made here: the
child reports it as its own interpreter compiled it (`result["bytecode"]`); this module
only finds the read and the write in it.
"""

from __future__ import annotations

import ast
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Iterable

import workloads
from lab.core import catalog

WORKLOADS_DIR = os.path.dirname(os.path.abspath(workloads.__file__))
BLAMED, ON_THE_WAY, WAITING = "▶", "▷", "◆"  # glyphs: the meaning never rests on colour
LEGEND = {BLAMED: "the line the run points at", ON_THE_WAY: "a call on the way to it",
          WAITING: "a thread waits here"}
READS = ("LOAD_GLOBAL", "LOAD_NAME", "LOAD_ATTR", "LOAD_DEREF", "LOAD_FROM_DICT_OR_GLOBALS")
WRITES = ("STORE_GLOBAL", "STORE_NAME", "STORE_ATTR", "STORE_DEREF")
RACE_SHARED = "counter"  # the name race's variants read and write


class SourceError(Exception):
    """An experiment names a function its files do not define."""


@dataclass(frozen=True)
class LessonFunction:
    name: str  # as declared: "naive", "Runtime.schedule"
    path: str  # "workloads/race.py", as the children's blame names files
    first_line: int  # the `def` line (or its first decorator)
    lines: tuple[str, ...]

    @property
    def last_line(self) -> int:
        return self.first_line + len(self.lines) - 1

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "path": self.path, "first_line": self.first_line,
                "source": list(self.lines)}


@dataclass(frozen=True)
class Mark:
    path: str
    line: int
    glyph: str  # BLAMED, ON_THE_WAY or WAITING
    says: str

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "line": self.line, "glyph": self.glyph, "says": self.says}


# The functions ---------------------------------------------------------------------------
def declared(experiment: str) -> tuple[str, ...]:
    """The names an experiment declares (raises catalog.UnknownExperiment)."""
    return tuple(getattr(catalog.get(experiment).module, "LESSON_CODE", ()))


def _where(experiment: str, name: str) -> tuple[str, str]:
    """(file, qualified name) of one declared name."""
    module = catalog.get(experiment).module
    if ":" in name:
        sibling, _, qualname = name.partition(":")
        return os.path.join(WORKLOADS_DIR, sibling + ".py"), qualname
    return os.path.abspath(module.__file__), name


@lru_cache(maxsize=64)
def _definitions(path: str, mtime: float) -> tuple[dict[str, tuple[int, int]], tuple[str, ...]]:
    """Every function and method in a file: qualified name -> (first line, last line)."""
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    found: dict[str, tuple[int, int]] = {}

    def visit(body: Iterable[ast.stmt], prefix: str) -> None:
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                first = min([node.lineno] + [d.lineno for d in node.decorator_list])
                found[prefix + node.name] = (first, node.end_lineno or node.lineno)
                if isinstance(node, ast.ClassDef):
                    visit(node.body, prefix + node.name + ".")

    visit(ast.parse(text, path).body, "")
    return found, tuple(text.splitlines())


def short_path(path: str) -> str:
    return "workloads/" + os.path.relpath(path, WORKLOADS_DIR)


def lesson_functions(experiment: str) -> list[LessonFunction]:
    """The source of every function the experiment declares, in its order."""
    functions = []
    for name in declared(experiment):
        path, qualname = _where(experiment, name)
        try:
            defs, lines = _definitions(path, os.path.getmtime(path))
        except OSError as exc:
            raise SourceError("%s: %s names %s, whose file cannot be read (%s)"
                              % (experiment, name, short_path(path), exc.strerror)) from None
        if qualname not in defs:
            raise SourceError("%s: LESSON_CODE names %r, which %s does not define"
                              % (experiment, name, short_path(path)))
        first, last = defs[qualname]
        functions.append(LessonFunction(name.partition(":")[2] or name, short_path(path),
                                        first, lines[first - 1:last]))
    return functions


# What a run blames -------------------------------------------------------------------------
_LOCATION = re.compile(r"^(?P<path>[^:\s]+\.py):(?P<line>\d+)")


def _location(text: Any) -> tuple[str, int] | None:
    match = _LOCATION.match(text) if isinstance(text, str) else None
    return (match["path"], int(match["line"])) if match else None


def marks(experiment: str, result: dict | None = None,
          last: dict[str, dict] | None = None) -> list[Mark]:
    """The lines a run blames, from its result or (while it runs) its newest events."""
    result = result if isinstance(result, dict) else {}
    last = last or {}
    if experiment == "loop-freeze":
        return _freeze_marks(result, last)
    if experiment == "deadlock":
        cycle = result.get("cycle") or (last.get("deadlock") or {}).get("cycle") or []
        stacks = result.get("stacks") or (last.get("deadlock") or {}).get("stacks") or {}
        return _deadlock_marks(cycle, stacks)
    if experiment == "interleave":
        return _interleave_marks(result)
    return []


def _interleave_marks(result: dict) -> list[Mark]:
    """Where each unfinished thread stands at the end of the schedule shown."""
    trace = (result.get("run") or {}).get("trace") if isinstance(result.get("run"), dict) else None
    if not isinstance(trace, list) or not trace or not isinstance(trace[-1], dict):
        return []
    path = short_path(os.path.join(WORKLOADS_DIR, "interleave.py"))
    by_line: dict[tuple[str, int], list[str]] = {}
    for thread in trace[-1].get("threads") or []:
        if not isinstance(thread, dict) or not isinstance(thread.get("line"), int):
            continue
        state = thread.get("state", "?")
        if state == "done":
            continue
        blocked = state == "blocked"
        says = "thread %s %s" % (thread.get("thread", "?"), "waits for lock %s" % thread.get(
            "wants", "?") if blocked else "is next at %s" % (thread.get("opname") or "this line"))
        by_line.setdefault((WAITING if blocked else BLAMED, thread["line"]), []).append(says)
    return [Mark(path, line, glyph, "; ".join(says))
            for (glyph, line), says in sorted(by_line.items(), key=lambda kv: kv[0][1])]


def _freeze_marks(result: dict, last: dict[str, dict]) -> list[Mark]:
    spans = [s for s in result.get("frozen_spans") or [] if isinstance(s, dict)]
    if not spans and isinstance(last.get("frozen"), dict):
        spans = [last["frozen"]]  # the run goes on: the span the watchdog sees now
    found: dict[tuple[str, int], Mark] = {}
    for span in spans:
        where = _location(span.get("blamed"))
        if where is None:
            continue
        took = span.get("duration_ms") or span.get("so_far_ms")
        says = "the loop thread was here when the watchdog looked"
        if isinstance(took, (int, float)):
            says += " (ticks %.0f ms late)" % took
        found.setdefault(where, Mark(where[0], where[1], BLAMED, says))
        for frame in (span.get("stack") or [])[1:]:
            caller = _location(frame)  # the experiment's own frames, not asyncio's
            if caller is not None and caller[0].startswith("workloads/") and caller not in found:
                found[caller] = Mark(caller[0], caller[1], ON_THE_WAY, "called from here")
    return list(found.values())


def _deadlock_marks(cycle: list, stacks: dict) -> list[Mark]:
    path = short_path(os.path.join(WORKLOADS_DIR, "deadlock.py"))
    by_line: dict[int, list[str]] = {}
    for entry in cycle:
        if not isinstance(entry, dict):
            continue
        line = entry.get("line")
        if not isinstance(line, int):  # a record from before the line was reported
            line = _stack_line(stacks.get(entry.get("thread")) or [], "deadlock.py")
        if line is None:
            continue
        by_line.setdefault(line, []).append("%s holds %s, waits for %s" % (
            entry.get("thread", "?"), ", ".join(entry.get("holds") or []) or "nothing",
            entry.get("waits_for", "?")))
    return [Mark(path, line, WAITING, "; ".join(says)) for line, says in sorted(by_line.items())]


def _stack_line(stack: list, filename: str) -> int | None:
    """The innermost `deadlock.py:77 in ...` of a stack given as text."""
    for frame in reversed(stack):
        where = _location(frame)
        if where and os.path.basename(where[0]) == filename:
            return where[1]
    return None


def marks_in(function: LessonFunction, found: list[Mark]) -> dict[int, Mark]:
    """The marks that fall inside one function, by line number."""
    return {m.line: m for m in found
            if m.path == function.path and function.first_line <= m.line <= function.last_line}


# Race's bytecode -----------------------------------------------------------------------------
def race_bytecode(result: dict | None) -> dict[str, list[list]]:
    """{variant: [[offset, opname, argrepr, line], ...]} as the child's interpreter compiled
    it; rows that are not of that shape are dropped (damaged or foreign records)."""
    found = (result or {}).get("bytecode") if isinstance(result, dict) else None
    if not isinstance(found, dict):
        return {}
    clean = {}
    for variant, rows in found.items():
        if isinstance(rows, list):
            clean[str(variant)] = [list(r) for r in rows
                                   if isinstance(r, (list, tuple)) and len(r) == 4]
    return clean


def _names(argrepr: Any, name: str) -> bool:
    """`counter`, `NULL + counter` (3.11), `counter + NULL` (3.13) all name `counter`."""
    parts = [p.strip() for p in str(argrepr).split("+")]
    return name in parts


def read_write(rows: list[list], name: str = RACE_SHARED) -> dict[int, str]:
    """Row index -> "R" (the read of `name`), "|" (between) or "W" (the write back)."""
    marked: dict[int, str] = {}
    reading = None
    for index, (_offset, opname, argrepr, _line) in enumerate(rows):
        if opname in READS and _names(argrepr, name):
            reading = index
        elif opname in WRITES and _names(argrepr, name) and reading is not None:
            marked[reading] = "R"
            for between in range(reading + 1, index):
                marked[between] = "|"
            marked[index] = "W"
            reading = None
    return marked


# Text for the CLI (the widget draws the same facts with highlighting) ----------------------
def listing(experiment: str, result: dict | None = None, last: dict | None = None,
            python: str | None = None) -> dict[str, Any]:
    """Everything the code panel shows, as JSON."""
    found = marks(experiment, result, last)
    bytecode = race_bytecode(result) if experiment == "race" else {}
    functions = []
    for function in lesson_functions(experiment):
        entry = function.to_json()
        entry["marks"] = [m.to_json() for m in marks_in(function, found).values()]
        rows = bytecode.get(_variant_of(function.name))
        if rows is not None:
            between = read_write(rows)
            entry["bytecode"] = [{"offset": r[0], "opname": r[1], "argrepr": r[2], "line": r[3],
                                  "mark": between.get(i)} for i, r in enumerate(rows)]
        functions.append(entry)
    return {"experiment": experiment, "python": python, "functions": functions,
            "marks": [m.to_json() for m in found]}


def _variant_of(function_name: str) -> str:
    return "len" if function_name == "length" else function_name


def gutter(line: int, mark: Mark | None, width: int) -> str:
    return "%s %*d  " % (mark.glyph if mark else " ", width, line)


def bytecode_row(row: dict[str, Any]) -> str:
    flag = {"R": "R", "|": "│", "W": "W"}.get(row.get("mark") or "", " ")
    line = "" if row.get("line") is None else "line %s" % row["line"]
    return "%s %4s %-20s %-16s %s" % (flag, row["offset"], row["opname"], row["argrepr"] or "",
                                      line)


def listing_lines(found: dict[str, Any]) -> list[str]:
    """The listing as plain text: every function with its line numbers and marks."""
    lines = ["%s · the lesson's code" % found["experiment"]]
    glyphs = sorted({m["glyph"] for m in found["marks"]})
    if glyphs:
        lines.append("  ".join("%s %s" % (g, LEGEND[g]) for g in glyphs))
    for mark in found["marks"]:
        first, *more = mark["says"].split("; ")  # one thread per line
        lines.append("%s %s:%d  %s" % (mark["glyph"], mark["path"], mark["line"], first))
        lines.extend("  " + said for said in more)
    width = max((len(str(f["first_line"] + len(f["source"]))) for f in found["functions"]),
                default=1)
    for function in found["functions"]:
        lines += ["", "%s  (%s:%d)" % (function["name"], function["path"], function["first_line"])]
        by_line = {m["line"]: Mark(**m) for m in function["marks"]}
        for offset, text in enumerate(function["source"]):
            number = function["first_line"] + offset
            lines.append(gutter(number, by_line.get(number), width) + text)
        if "bytecode" in function:
            lines.append("  bytecode%s: R reads %s, │ between, W writes it back" % (
                " (%s)" % found["python"] if found.get("python") else "", RACE_SHARED))
            lines += ["  " + bytecode_row(row) for row in function["bytecode"]]
    if found["experiment"] == "race" and not any("bytecode" in f for f in found["functions"]):
        lines += ["", "(the bytecode comes from a run: its interpreter compiles the variants)"]
    return lines
