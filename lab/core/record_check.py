"""Checking run records that come from outside this process: an imported file, a stored row.

A record is checked field by field against what the readers of history (listing, show,
compare, export, the TUI, the report) rely on: the type of each field, its range and its
size. Anything else is refused with one line naming the field's path, e.g.
`.interpreter must be an object (got a list)`.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from lab.core.safe_text import visible

RECORD_VERSION = 1  # the shape of a run record; bump when a field changes meaning

MAX_DEPTH = 32  # real records nest 5 deep; a cap keeps every reader's recursion bounded
MAX_STRING = 65536  # characters in one string (the longest real ones are explanations)
MAX_KEY = 200
MAX_NUMBER = 1e18  # any figure beyond this is not a measurement (and breaks columns)
MAX_RECORD_CHARS = 4 * 1024 * 1024  # a scale run with 500 threads is about 100 KB
LAST_TIME = 253402300799.0  # 9999-12-31: the last second strftime and localtime handle
MAX_DURATION_S = 1e7
MAX_CPUS = 1 << 20

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}\Z")  # experiment, status, versions
UID = re.compile(r"[A-Za-z0-9_-]{1,64}\Z")


class BadRecord(ValueError):
    """The message is one line: the field's path and what it must be."""


def loads(text: str) -> Any:
    """JSON without NaN/Infinity; nesting too deep for the parser is BadRecord, never a
    RecursionError; any other defect is ValueError."""
    try:
        return json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        raise BadRecord("nested too deeply to read") from None


def _no_constant(name: str) -> Any:
    raise BadRecord("%s is not a number JSON allows" % name)


# Generic values ------------------------------------------------------------------------
def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _shown(value: Any) -> str:
    text = visible(value if isinstance(value, str) else json.dumps(value)
                   if isinstance(value, (int, float, bool)) or value is None else _kind(value))
    text = repr(text) if isinstance(value, str) else text
    return text if len(text) <= 40 else text[:39] + "…"


def _clip(path: str) -> str:
    """A path short enough for one line (`.result.a.a….a.a`)."""
    return path if len(path) <= 80 else path[:40] + "…" + path[-39:]


def _path(parent: str, key: Any) -> str:
    if isinstance(key, int):
        return "%s[%d]" % (parent, key)
    name = visible(key)
    name = name if len(name) <= 40 else name[:39] + "…"
    return "%s.%s" % (parent, name)


def check_value(value: Any, path: str, depth: int = 0) -> None:
    """Any JSON value: bounded nesting, finite numbers of sane size, strings that are
    valid Unicode and not huge."""
    if depth > MAX_DEPTH:
        raise BadRecord("%s is nested deeper than %d levels"
                        % (_clip(path) or "the record", MAX_DEPTH))
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise BadRecord("%s has a key that is not a string" % (path or "the record"))
            _check_string(key, _clip(_path(path, key)) + " (the key)", MAX_KEY)
            check_value(item, _path(path, key), depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            check_value(item, _path(path, index), depth + 1)
    elif isinstance(value, str):
        _check_string(value, _clip(path) or "the record", MAX_STRING)
    elif isinstance(value, bool) or value is None:
        pass
    elif isinstance(value, (int, float)):
        if not (isinstance(value, int) or math.isfinite(value)) or abs(value) > MAX_NUMBER:
            raise BadRecord("%s must be a finite number of at most %g in size (got %s)"
                            % (_clip(path) or "the record", MAX_NUMBER, _shown(value)))
    else:
        raise BadRecord("%s is not a JSON value" % (path or "the record"))


def _check_string(text: str, path: str, limit: int) -> None:
    if len(text) > limit:
        raise BadRecord("%s is longer than %d characters" % (path, limit))
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise BadRecord("%s holds a lone surrogate (not valid Unicode)" % path) from None


# Typed fields --------------------------------------------------------------------------
def _need(ok: bool, path: str, what: str, value: Any) -> None:
    if not ok:
        raise BadRecord("%s must be %s (got %s)" % (_clip(path), what, _shown(value)))


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _object(parent: dict, key: str, path: str = "") -> dict:
    value = parent.get(key)
    _need(isinstance(value, dict), "%s.%s" % (path, key), "an object", value)
    return value


def _string(parent: dict, key: str, path: str, *, pattern: re.Pattern | None = None,
            optional: bool = False, what: str = "a string") -> None:
    value = parent.get(key)
    if optional and value is None:
        return
    _need(isinstance(value, str) and (pattern is None or pattern.match(value) is not None),
          "%s.%s" % (path, key), what, value)


def _in_range(parent: dict, key: str, path: str, low: float, high: float, *,
              integer: bool = False, optional: bool = False) -> None:
    value = parent.get(key)
    if optional and value is None:
        return
    ok = (isinstance(value, int) if integer else _number(value)) and not isinstance(value, bool)
    ok = ok and (isinstance(value, int) or math.isfinite(value)) and low <= value <= high
    _need(ok, "%s.%s" % (path, key),
          "%s from %g to %g" % ("a whole number" if integer else "a number", low, high), value)


def check_record(record: Any, newest_version: int) -> None:
    """A run record as `lab.core.record.build_record` makes it."""
    _need(isinstance(record, dict), "the record", "an object", record)
    check_value(record, "")
    if len(json.dumps(record, separators=(",", ":"))) > MAX_RECORD_CHARS:
        raise BadRecord("the record is larger than %d MiB" % (MAX_RECORD_CHARS >> 20))
    _in_range(record, "record_version", "", 1, newest_version, integer=True, optional=True)
    _string(record, "experiment", "", pattern=NAME, what="an experiment name")
    _string(record, "status", "", pattern=NAME, what="a status word")
    _string(record, "error", "", optional=True)
    _in_range(record, "duration_s", "", 0, MAX_DURATION_S)
    params = record.get("params")
    if params is not None:
        _need(isinstance(params, dict), ".params", "an object", params)
        for key, value in params.items():
            _need(value is None or isinstance(value, (bool, int, float, str)),
                  _path(".params", key), "a number, a string or true/false", value)
    interp = _object(record, "interpreter")
    _string(interp, "implementation", ".interpreter", pattern=NAME, what="a name")
    _string(interp, "version", ".interpreter", pattern=NAME, what="a version")
    _string(interp, "executable", ".interpreter", optional=True)
    _need("gil_enabled" in interp and interp["gil_enabled"] in (None, True, False),
          ".interpreter.gil_enabled", "true, false or null", interp.get("gil_enabled"))
    _need(interp.get("free_threaded") in (None, True, False), ".interpreter.free_threaded",
          "true, false or null", interp.get("free_threaded"))
    host = _object(record, "machine")
    _in_range(host, "cpus", ".machine", 1, MAX_CPUS, integer=True, optional=True)
    _in_range(host, "usable_cpus", ".machine", 1, MAX_CPUS, integer=True)
    _need("hypervisor" in host and host["hypervisor"] in (None, True, False),
          ".machine.hypervisor", "true, false or null", host.get("hypervisor"))
    _string(host, "cpu_model", ".machine", optional=True)
    _string(host, "kernel", ".machine", optional=True)
    for key in ("sampler", "result"):
        _need(record.get(key) is None or isinstance(record.get(key), dict), "." + key,
              "an object or null", record.get(key))
    if isinstance(record.get("result"), dict):
        _string(record["result"], "explanation", ".result", optional=True)
    overlapped = record.get("overlapped_by")
    if overlapped is not None:
        _need(isinstance(overlapped, list) and len(overlapped) <= 64, ".overlapped_by",
              "a list of at most 64 run names", overlapped)
        for index, name in enumerate(overlapped):
            _need(isinstance(name, str) and len(name) <= 200, ".overlapped_by[%d]" % index,
                  "a run name", name)
    _in_range(record, "threads_omitted", "", 0, MAX_NUMBER, integer=True, optional=True)
    threads = record.get("threads")
    if threads is not None:
        _need(isinstance(threads, list), ".threads", "a list", threads)
        for index, thread in enumerate(threads):
            path = ".threads[%d]" % index
            _need(isinstance(thread, dict), path, "an object", thread)
            _string(thread, "name", path)
            _in_range(thread, "native_id", path, 0, MAX_NUMBER, integer=True)
            _in_range(thread, "cpu_s", path, 0, MAX_NUMBER)
            for key in ("run_delay_s", "voluntary", "involuntary"):  # shown, may be null
                _need(key in thread, "%s.%s" % (path, key), "present (a number or null)",
                      None)
                _in_range(thread, key, path, 0, MAX_NUMBER, optional=True)


def check_run(run: Any, newest_version: int) -> None:
    """One entry of an export file: uid, saved_at, host and the record."""
    _need(isinstance(run, dict), "the entry", "an object with uid, saved_at, host and record",
          run)
    _string(run, "uid", "", pattern=UID, what="1 to 64 letters, digits, - or _")
    _in_range(run, "saved_at", "", 0, LAST_TIME, optional=True)
    _string(run, "host", "", optional=True)
    check_value(run.get("host"), ".host")
    if isinstance(run.get("host"), str) and len(run["host"]) > 255:
        raise BadRecord(".host is longer than 255 characters")
    _need(isinstance(run.get("record"), dict), ".record", "an object (a run record)",
          run.get("record"))
    check_record(run["record"], newest_version)  # its paths start at the record: .params
