"""Run history: every finished run kept in SQLite, for listing, comparing and moving.

The database is `history.sqlite3` in the lab's data folder: `$CONLAB_DATA_DIR` if set,
else `$XDG_DATA_HOME/conlab`, else `~/.local/share/conlab`. Several lab processes may
save at once (a class running the same lesson on one server): WAL journaling lets
readers and one writer proceed together, and a generous busy timeout makes writers
queue instead of failing, so nothing is lost.

History is a convenience, never a requirement: if the file is corrupt or cannot be
written, `save_quietly` says so once (one line) and the lab carries on without it.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import sys
import time
import uuid
from contextlib import closing
from typing import Any, Callable, Iterable

from lab.core.record import flatten

DB_NAME = "history.sqlite3"
SCHEMA_VERSION = 1
EXPORT_FORMAT = "conlab-runs"
EXPORT_VERSION = 1
BUSY_TIMEOUT_S = 30.0  # a writer waits this long for its turn before giving up

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    uid         TEXT NOT NULL UNIQUE,   -- survives export/import, so a run is never doubled
    saved_at    REAL NOT NULL,          -- unix time
    host        TEXT NOT NULL,          -- the machine the run was measured on
    imported    INTEGER NOT NULL DEFAULT 0,
    experiment  TEXT NOT NULL,
    status      TEXT NOT NULL,
    python      TEXT NOT NULL,          -- e.g. "cpython 3.12.1"
    gil_enabled INTEGER,
    duration_s  REAL,
    record      TEXT NOT NULL           -- the run record as JSON (lab/record.py)
);
CREATE INDEX IF NOT EXISTS runs_by_experiment ON runs (experiment, saved_at);
"""


class HistoryError(Exception):
    """History cannot be used; the message is one line naming the file and the reason."""


# Where ---------------------------------------------------------------------------------
def data_dir() -> str:
    explicit = os.environ.get("CONLAB_DATA_DIR")
    if explicit:
        return os.path.abspath(os.path.expanduser(explicit))
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local",
                                                           "share")
    return os.path.join(base, "conlab")


def db_path() -> str:
    return os.path.join(data_dir(), DB_NAME)


# Opening -------------------------------------------------------------------------------
def connect(path: str | None = None) -> sqlite3.Connection:
    """An open, checked, schema-ready connection; raises HistoryError with the reason."""
    path = path or db_path()
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
    except OSError as exc:
        raise HistoryError("cannot create the history folder %s: %s"
                           % (os.path.dirname(path), exc.strerror or exc)) from None
    try:
        conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
    except sqlite3.Error as exc:
        raise HistoryError("cannot open %s: %s" % (path, exc)) from None
    try:
        conn.execute("PRAGMA busy_timeout = %d" % int(BUSY_TIMEOUT_S * 1000))
        _use_wal(conn)
        _ensure_schema(conn)
    except sqlite3.Error as exc:
        conn.close()
        raise HistoryError("%s is not usable: %s" % (path, _reason(exc))) from None
    return conn


def _use_wal(conn: sqlite3.Connection) -> None:
    # Switching to WAL needs a moment of exclusive access; another process doing the same
    # may hold it (the busy handler does not cover this step everywhere), so retry briefly.
    for attempt in range(50):
        try:
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            break
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            time.sleep(0.01 * (attempt + 1))
    else:
        mode = ""
    if str(mode).lower() == "wal":
        conn.execute("PRAGMA synchronous = NORMAL")  # safe with WAL; much cheaper commits


def _ensure_schema(conn: sqlite3.Connection) -> None:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version == SCHEMA_VERSION:
        return
    if version > SCHEMA_VERSION:
        raise sqlite3.DatabaseError("written by a newer conlab (schema %d)" % version)
    conn.execute("BEGIN IMMEDIATE")
    try:
        # One statement at a time: executescript() would commit our transaction first.
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.execute("PRAGMA user_version = %d" % SCHEMA_VERSION)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _reason(exc: Exception) -> str:
    text = str(exc)
    if "not a database" in text or "malformed" in text:
        return "the file is damaged (%s); move it away and the lab starts a new one" % text
    if "readonly" in text or "unable to open" in text:
        return "cannot write there (%s)" % text
    return text


# Saving --------------------------------------------------------------------------------
def _host() -> str:
    return socket.gethostname() or "unknown"


def _python_label(record: dict) -> str:
    interp = record.get("interpreter") or {}
    return "%s %s" % (interp.get("implementation", "?"), interp.get("version", "?"))


def _insert(conn: sqlite3.Connection, record: dict, *, uid: str, saved_at: float, host: str,
            imported: bool) -> int:
    interp = record.get("interpreter") or {}
    gil = interp.get("gil_enabled")
    cursor = conn.execute(
        "INSERT INTO runs (uid, saved_at, host, imported, experiment, status, python,"
        " gil_enabled, duration_s, record) VALUES (?,?,?,?,?,?,?,?,?,?)",
        (uid, saved_at, host, int(imported), str(record.get("experiment", "?")),
         str(record.get("status", "?")), _python_label(record),
         None if gil is None else int(bool(gil)), record.get("duration_s"),
         json.dumps(record, separators=(",", ":"), default=str)))
    return int(cursor.lastrowid)


def save(record: dict, path: str | None = None) -> int:
    """Keep one run record; returns its id. Raises HistoryError."""
    try:
        with closing(connect(path)) as conn:
            conn.execute("BEGIN IMMEDIATE")  # take the write lock up front: no upgrade deadlock
            try:
                run_id = _insert(conn, record, uid=uuid.uuid4().hex, saved_at=time.time(),
                                 host=_host(), imported=False)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            return run_id
    except sqlite3.Error as exc:
        raise HistoryError("%s is not usable: %s" % (path or db_path(), _reason(exc))) from None


_problem: str | None = None
_problem_handler: Callable[[str], None] | None = None


def set_problem_handler(handler: Callable[[str], None] | None) -> None:
    """Where `save_quietly` reports a problem (default: one line on stderr).

    The TUI points this at a notification: a line on stderr would scribble on the screen.
    """
    global _problem_handler
    _problem_handler = handler


def problem() -> str | None:
    """The history problem met in this process, if any (for a status line)."""
    return _problem


def save_quietly(record: dict) -> int | None:
    """Save if we can; otherwise say why once per process and go on. Never raises."""
    global _problem
    try:
        return save(record)
    except HistoryError as exc:
        message = "history not saved: %s" % exc
    except Exception as exc:  # a bug here must not cost the user their run
        message = "history not saved: %s: %s" % (type(exc).__name__, exc)
    if _problem is None:
        _problem = message
        if _problem_handler is not None:
            _problem_handler(message)
        else:
            print("conlab: %s" % message, file=sys.stderr)
    return None


# Reading -------------------------------------------------------------------------------
_SUMMARY_COLUMNS = ("id", "uid", "saved_at", "host", "imported", "experiment", "status",
                    "python", "gil_enabled", "duration_s")


def _read(sql: str, args: Iterable[Any] = (), path: str | None = None) -> list[tuple]:
    try:
        with closing(connect(path)) as conn:
            return conn.execute(sql, tuple(args)).fetchall()
    except sqlite3.Error as exc:
        raise HistoryError("%s is not usable: %s" % (path or db_path(), _reason(exc))) from None


def _summary(row: tuple) -> dict[str, Any]:
    item = dict(zip(_SUMMARY_COLUMNS, row))
    item["imported"] = bool(item["imported"])
    if item["gil_enabled"] is not None:
        item["gil_enabled"] = bool(item["gil_enabled"])
    return item


def list_runs(limit: int | None = 50, experiment: str | None = None,
              path: str | None = None, local_only: bool = False) -> list[dict[str, Any]]:
    """Newest first: summaries (no record) of the kept runs."""
    where, args = [], []
    if experiment:
        where.append("experiment = ?")
        args.append(experiment)
    if local_only:
        where.append("imported = 0")
    sql = "SELECT %s FROM runs%s ORDER BY saved_at DESC, id DESC" % (
        ", ".join(_SUMMARY_COLUMNS), " WHERE " + " AND ".join(where) if where else "")
    if limit is not None:
        sql += " LIMIT %d" % int(limit)
    return [_summary(row) for row in _read(sql, args, path)]


def get_runs(ids: Iterable[int], path: str | None = None) -> list[dict[str, Any]]:
    """Full entries (summary + "record"), in the order asked; KeyError names a missing id."""
    ids = [int(i) for i in ids]
    if not ids:
        return []
    rows = _read("SELECT %s, record FROM runs WHERE id IN (%s)"
                 % (", ".join(_SUMMARY_COLUMNS), ",".join("?" * len(ids))), ids, path)
    found = {}
    for row in rows:
        entry = _summary(row[:-1])
        entry["record"] = json.loads(row[-1])
        found[entry["id"]] = entry
    for run_id in ids:
        if run_id not in found:
            raise KeyError(run_id)
    return [found[i] for i in ids]


def get_run(run_id: int, path: str | None = None) -> dict[str, Any]:
    return get_runs([run_id], path)[0]


def all_ids(experiment: str | None = None, path: str | None = None) -> list[int]:
    return [r["id"] for r in reversed(list_runs(None, experiment, path))]


def latest_per_interpreter(path: str | None = None,
                           status: str = "done") -> dict[str, list[dict[str, Any]]]:
    """This machine's newest finished run of each (experiment, interpreter), by experiment.

    Imported runs are left out: they were measured elsewhere.
    """
    newest: dict[tuple, int] = {}
    for run in list_runs(None, path=path, local_only=True):  # newest first
        if run["status"] == status:
            newest.setdefault((run["experiment"], run["python"], run["gil_enabled"]), run["id"])
    by_experiment: dict[str, list[dict[str, Any]]] = {}
    for (experiment, _python, _gil), run_id in sorted(newest.items(), key=lambda kv: (
            kv[0][0], kv[0][1], str(kv[0][2]))):
        by_experiment.setdefault(experiment, []).append(run_id)
    return {name: get_runs(ids, path) for name, ids in by_experiment.items()}


# Comparing -----------------------------------------------------------------------------
def compare(entries: list[dict[str, Any]]) -> list[tuple[str, list[Any]]]:
    """Rows (label, one value per run) for runs side by side: who, where, with what, result."""
    records = [e["record"] for e in entries]
    rows: list[tuple[str, list[Any]]] = [
        ("run", [e["id"] for e in entries]),
        ("experiment", [r.get("experiment") for r in records]),
        ("saved", [time.strftime("%Y-%m-%d %H:%M", time.localtime(e["saved_at"]))
                   for e in entries]),
        ("host", [e["host"] + (" (imported)" if e["imported"] else "") for e in entries]),
        ("python", [_python_label(r) for r in records]),
        ("gil", [(r.get("interpreter") or {}).get("gil_enabled") for r in records]),
        ("cpus", [(r.get("machine") or {}).get("usable_cpus") for r in records]),
        ("cpu model", [(r.get("machine") or {}).get("cpu_model") for r in records]),
        ("status", [r.get("status") for r in records]),
        ("duration_s", [r.get("duration_s") for r in records]),
    ]
    params = [r.get("params") if isinstance(r.get("params"), dict) else {} for r in records]
    rows += _union_rows([_leaves(flatten(p, "param")) for p in params])
    results = []
    for r in records:
        result = r.get("result") if isinstance(r.get("result"), dict) else {}
        results.append(_leaves((k, v) for k, v in flatten(result) if k != "explanation"))
    taken = {label for label, _ in rows}
    # A result figure keeps its own name unless a row above has it (gil-cpu's `cpus`,
    # a `duration_s`): then it is `result.NAME`, so no label is ever shown twice.
    for label, values in _union_rows(results):
        rows.append((_unique(label if label not in taken else "result." + label, taken),
                     values))
    return rows


def _leaves(pairs: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    """Flattened leaves by label; two leaves that flatten alike (`{"a.b"}`, `{"a": {"b"}}`)
    both stay, the second under `a.b#2`."""
    leaves: dict[str, Any] = {}
    for key, value in pairs:
        leaves[_unique(key, leaves)] = value
    return leaves


def _unique(label: str, taken) -> str:
    """`label`, or `label#2`, `label#3`...: the first not in `taken` (which it joins if a set)."""
    candidate, n = label, 1
    while candidate in taken:
        n += 1
        candidate = "%s#%d" % (label, n)
    if isinstance(taken, set):
        taken.add(candidate)
    return candidate


def _union_rows(per_run: list[dict[str, Any]]) -> list[tuple[str, list[Any]]]:
    keys: list[str] = []
    seen = set()
    for leaves in per_run:
        for key in leaves:
            if key not in seen:
                seen.add(key)
                keys.append(key)
    return [(key, [leaves.get(key) for leaves in per_run]) for key in keys]


# Moving between machines ---------------------------------------------------------------
def export_runs(ids: Iterable[int] | None, out_path: str, path: str | None = None) -> int:
    """Write the runs (all if ids is None) to a JSON file; returns how many."""
    ids = all_ids(path=path) if ids is None else list(ids)
    entries = get_runs(ids, path)
    document = {
        "format": EXPORT_FORMAT,
        "version": EXPORT_VERSION,
        "exported_at": time.time(),
        "exported_by": _host(),
        "runs": [{"uid": e["uid"], "saved_at": e["saved_at"], "host": e["host"],
                  "record": e["record"]} for e in entries],
    }
    tmp = out_path + ".tmp-%d" % os.getpid()
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(document, f, indent=1, default=str)
        f.write("\n")
    os.replace(tmp, out_path)  # a reader never sees half a file
    return len(entries)


class ImportRefused(ValueError):
    """The file is not a conlab export; the message says what is wrong."""


def read_export(in_path: str) -> list[dict[str, Any]]:
    try:
        with open(in_path, encoding="utf-8") as f:
            document = json.load(f)
    except OSError as exc:
        raise ImportRefused("cannot read %s: %s" % (in_path, exc.strerror or exc)) from None
    except ValueError as exc:
        raise ImportRefused("%s is not JSON: %s" % (in_path, exc)) from None
    if not isinstance(document, dict) or document.get("format") != EXPORT_FORMAT:
        raise ImportRefused("%s is not a conlab export (made by `conlab export`)" % in_path)
    if document.get("version", 0) > EXPORT_VERSION:
        raise ImportRefused("%s was written by a newer conlab (format version %s)"
                            % (in_path, document.get("version")))
    runs = document.get("runs")
    if not isinstance(runs, list):
        raise ImportRefused("%s has no list of runs" % in_path)
    for i, run in enumerate(runs):
        if (not isinstance(run, dict) or not isinstance(run.get("record"), dict)
                or not isinstance(run.get("uid"), str) or not run["record"].get("experiment")):
            raise ImportRefused("%s: run #%d is not a run record" % (in_path, i + 1))
    return runs


def import_runs(in_path: str, path: str | None = None) -> tuple[int, int]:
    """Add the runs of an export file; returns (added, already present). All or nothing."""
    runs = read_export(in_path)
    added = 0
    try:
        with closing(connect(path)) as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                for run in runs:
                    exists = conn.execute("SELECT 1 FROM runs WHERE uid = ?",
                                          (run["uid"],)).fetchone()
                    if exists:
                        continue
                    _insert(conn, run["record"], uid=run["uid"],
                            saved_at=float(run.get("saved_at") or time.time()),
                            host=str(run.get("host") or "unknown"), imported=True)
                    added += 1
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
    except sqlite3.Error as exc:
        raise HistoryError("%s is not usable: %s" % (path or db_path(), _reason(exc))) from None
    return added, len(runs) - added
