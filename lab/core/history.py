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
import math
import os
import socket
import sqlite3
import stat
import sys
import time
import uuid
import zlib
from contextlib import closing
from typing import Any, Callable, Iterable, NamedTuple
from urllib.parse import quote

from lab.core import record_check
from lab.core.formatting import flatten
from lab.core.safe_text import visible

DB_NAME = "history.sqlite3"
SCHEMA_VERSION = 1
EXPORT_FORMAT = "conlab-runs"
EXPORT_VERSION = 1
BUSY_TIMEOUT_S = 30.0  # a writer waits this long for its turn before giving up
MAX_IMPORT_BYTES = 32 * 1024 * 1024  # thousands of runs; parsing more would cost GBs

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
# A run's replayable timeline (lab/core/timeline.py), apart from its record so listing
# never reads it. Added beside schema 1: an older lab ignores the table.
_TIMELINES = """CREATE TABLE IF NOT EXISTS timelines (
    run_id   INTEGER PRIMARY KEY,           -- runs.id
    timeline BLOB NOT NULL                  -- compact JSON, zlib-compressed
)"""
MAX_TIMELINE_CHARS = 1_100_000  # timeline.MAX_JSON_BYTES and a little room


class HistoryError(Exception):
    """History cannot be used; the message is one line naming the file and the reason."""


class DamagedRun(HistoryError):
    """One kept run cannot be read (its stored record is cut or has a wrong shape)."""

    def __init__(self, run_id: int, reason: str) -> None:
        super().__init__("run %d cannot be read: %s" % (run_id, reason))
        self.run_id, self.reason = run_id, reason


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


def where() -> str:
    """`~/.local/share/conlab/history.sqlite3 (one per user, all checkouts)`: the store is
    per user, not per checkout, which nothing else on screen would tell."""
    path, home = db_path(), os.path.expanduser("~")
    if home not in ("", "/") and path.startswith(home + os.sep):
        path = "~" + path[len(home):]
    how = "set by CONLAB_DATA_DIR" if os.environ.get("CONLAB_DATA_DIR") else (
        "one per user, all checkouts")
    return "%s (%s)" % (path, how)


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
        conn.execute(_TIMELINES)
    except sqlite3.Error as exc:
        conn.close()
        raise HistoryError("%s is not usable: %s" % (path, _reason(exc, path))) from None
    return conn


def connect_readonly(path: str | None = None) -> sqlite3.Connection | None:
    """A read-only connection (listing works on a store we may not write), or None when
    there is no store yet. Raises HistoryError."""
    path = path or db_path()
    if not os.path.exists(path):
        return None
    uri = "file:%s?mode=ro" % quote(os.path.abspath(path))
    try:
        try:
            conn, version = _open_uri(uri)
        except sqlite3.OperationalError as exc:
            if "unable to open" not in str(exc):
                raise
            # A WAL store in a folder we cannot write: SQLite cannot make its -shm file
            # there. Read the file as it stands (runs still in the -wal are not seen).
            conn, version = _open_uri(uri + "&immutable=1")
    except sqlite3.Error as exc:
        raise _unusable(exc, path) from None
    if version > SCHEMA_VERSION:
        conn.close()
        raise HistoryError("%s is not usable: written by a newer conlab (schema %d)"
                           % (path, version))
    if version < SCHEMA_VERSION:  # created but never written: no runs yet
        conn.close()
        return None
    return conn


def _open_uri(uri: str) -> tuple[sqlite3.Connection, int]:
    conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_S, isolation_level=None)
    try:
        return conn, conn.execute("PRAGMA user_version").fetchone()[0]
    except BaseException:
        conn.close()
        raise


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


def _reason(exc: Exception, path: str | None = None) -> str:
    text = str(exc)
    if getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL or "disk is full" in text:
        return "the disk is full (%s)" % text
    if "disk I/O error" in text and _disk_nearly_full(path or db_path()):
        return "the disk is full (%s)" % text  # SQLite says I/O error when -shm cannot grow
    if "not a database" in text or "malformed" in text:
        return "the file is damaged (%s); move it away and the lab starts a new one" % text
    if "readonly" in text or "unable to open" in text:
        return "cannot write there (%s)" % text
    return text


def _unusable(exc: sqlite3.Error, path: str | None) -> HistoryError:
    path = path or db_path()
    return HistoryError("%s is not usable: %s" % (path, _reason(exc, path)))


def _disk_nearly_full(path: str) -> bool:
    try:
        fs = os.statvfs(os.path.dirname(path) or ".")
    except OSError:
        return False
    return fs.f_bavail * fs.f_frsize < 1024 * 1024


# Saving --------------------------------------------------------------------------------
def host_name() -> str:
    """The name runs saved here carry in the `host` column."""
    return socket.gethostname() or "unknown"



def _python_label(record: dict) -> str:
    interp = record.get("interpreter") or {}
    return "%s %s" % (interp.get("implementation", "?"), interp.get("version", "?"))


def _insert(conn: sqlite3.Connection, record: dict, *, uid: str, saved_at: float, host: str,
            imported: bool, timeline: Any = None) -> int:
    """One run; its timeline (a dict, see lab/core/timeline.py) kept beside it, if any."""
    interp = record.get("interpreter") or {}
    gil = interp.get("gil_enabled")
    cursor = conn.execute(
        "INSERT INTO runs (uid, saved_at, host, imported, experiment, status, python,"
        " gil_enabled, duration_s, record) VALUES (?,?,?,?,?,?,?,?,?,?)",
        (uid, saved_at, host, int(imported), str(record.get("experiment", "?")),
         str(record.get("status", "?")), _python_label(record),
         None if gil is None else int(bool(gil)), _finite(record.get("duration_s")),
         json.dumps(_finite(record), separators=(",", ":"), default=str)))
    run_id = int(cursor.lastrowid)
    if isinstance(timeline, dict):
        try:
            text = json.dumps(_finite(timeline), separators=(",", ":"), default=str)
        except (ValueError, RecursionError):  # an imported one nested absurdly deep
            text = ""
        if 0 < len(text) <= MAX_TIMELINE_CHARS:  # a larger one (an import) is not kept
            conn.execute("INSERT OR REPLACE INTO timelines (run_id, timeline) VALUES (?, ?)",
                         (run_id, zlib.compress(text.encode("utf-8"), 6)))
    return run_id


def _finite(value: Any) -> Any:
    """NaN and infinities as null: the store holds JSON that every reader can parse."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def save(record: dict, path: str | None = None) -> int:
    """Keep one run record; returns its id. Raises HistoryError."""
    try:
        with closing(connect(path)) as conn:
            conn.execute("BEGIN IMMEDIATE")  # take the write lock up front: no upgrade deadlock
            try:
                run_id = _insert(conn, {k: v for k, v in record.items() if k != "timeline"},
                                 uid=uuid.uuid4().hex, saved_at=time.time(),
                                 host=host_name(), imported=False,
                                 timeline=record.get("timeline"))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            return run_id
    except sqlite3.Error as exc:
        raise _unusable(exc, path) from None


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
        conn = connect_readonly(path)
        if conn is None:
            return []
        with closing(conn):
            return conn.execute(sql, tuple(args)).fetchall()
    except sqlite3.Error as exc:
        raise _unusable(exc, path) from None


def _summary(row: tuple) -> dict[str, Any]:
    """The row's columns as a dict; ValueError when a column has a type no reader expects."""
    item = dict(zip(_SUMMARY_COLUMNS, row))
    for key in ("uid", "host", "experiment", "status", "python"):
        if not isinstance(item[key], str):
            raise ValueError("its %s column is not text" % key)
    saved_at = item["saved_at"]
    if (not isinstance(saved_at, (int, float)) or not math.isfinite(saved_at)
            or not 0 <= saved_at <= record_check.LAST_TIME):
        raise ValueError("its saved_at column is not a time")
    duration = item["duration_s"]
    if duration is not None and (not isinstance(duration, (int, float))
                                 or not math.isfinite(duration)):
        raise ValueError("its duration_s column is not a number")
    item["imported"] = bool(item["imported"])
    if item["gil_enabled"] is not None:
        item["gil_enabled"] = bool(item["gil_enabled"])
    return item


def _entry(row: tuple) -> dict[str, Any]:
    """Summary + "record" from a stored row; DamagedRun says why it cannot be read."""
    run_id = row[0]
    try:
        entry = _summary(row[:-1])
        text = row[-1]
        if not isinstance(text, str):
            raise ValueError("its record is not text")
        try:
            record = record_check.loads(text)
        except record_check.BadRecord:
            raise
        except ValueError:
            raise ValueError("its stored JSON is cut short or invalid") from None
        record_check.check_record(record, record_check.RECORD_VERSION)
    except ValueError as exc:  # BadRecord is one
        raise DamagedRun(run_id, visible(str(exc))) from None
    entry["record"] = record
    return entry


def _summary_of_good(row: tuple) -> dict[str, Any] | None:
    try:
        return _summary(row)
    except ValueError:
        return None


def list_runs(limit: int | None = 50, experiment: str | None = None,
              path: str | None = None, local_only: bool = False) -> list[dict[str, Any]]:
    """Newest first: summaries (no record) of the kept runs whose columns are sound."""
    rows = _read(_select(_SUMMARY_COLUMNS, limit, experiment, local_only),
                 _select_args(experiment), path)
    return [s for s in map(_summary_of_good, rows) if s is not None]


def _select(columns: Iterable[str], limit: int | None, experiment: str | None,
            local_only: bool) -> str:
    where = (["experiment = ?"] if experiment else []) + (["imported = 0"] if local_only else [])
    sql = "SELECT %s FROM runs%s ORDER BY saved_at DESC, id DESC" % (
        ", ".join(columns), " WHERE " + " AND ".join(where) if where else "")
    return sql + (" LIMIT %d" % int(limit) if limit is not None else "")


def _select_args(experiment: str | None) -> list[Any]:
    return [experiment] if experiment else []


class Loaded(NamedTuple):
    entries: list[dict[str, Any]]  # newest first, each summary + "record"
    damaged: list[DamagedRun]  # the rows that could not be read, skipped


def load(limit: int | None = 50, experiment: str | None = None, path: str | None = None,
         local_only: bool = False) -> Loaded:
    """The newest kept runs in full; a damaged one is skipped and listed in `damaged`."""
    rows = _read(_select(_SUMMARY_COLUMNS + ("record",), limit, experiment, local_only),
                 _select_args(experiment), path)
    entries, damaged = [], []
    for row in rows:
        try:
            entries.append(_entry(row))
        except DamagedRun as exc:
            damaged.append(exc)
    return Loaded(entries, damaged)


def damaged_note(damaged: list[DamagedRun], path: str | None = None) -> str:
    """One line: how many runs were skipped and why (the first two reasons)."""
    reasons = "; ".join("#%d %s" % (d.run_id, d.reason) for d in damaged[:2])
    if len(damaged) > 2:
        reasons += "; …"
    text = "%d run%s in %s could not be read and %s skipped (%s)" % (
        len(damaged), "" if len(damaged) == 1 else "s", path or db_path(),
        "was" if len(damaged) == 1 else "were", reasons)
    return text if len(text) <= 300 else text[:299] + "…"


def get_runs(ids: Iterable[int], path: str | None = None) -> list[dict[str, Any]]:
    """Full entries (summary + "record"), in the order asked; KeyError names a missing id,
    DamagedRun one whose record cannot be read."""
    ids = [int(i) for i in ids]
    if not ids:
        return []
    rows = _read("SELECT %s, record FROM runs WHERE id IN (%s)"
                 % (", ".join(_SUMMARY_COLUMNS), ",".join("?" * len(ids))), ids, path)
    by_id = {row[0]: row for row in rows}
    for run_id in ids:
        if run_id not in by_id:
            raise KeyError(run_id)
    return [_entry(by_id[i]) for i in ids]


def get_run(run_id: int, path: str | None = None) -> dict[str, Any]:
    return get_runs([run_id], path)[0]


def timeline_text(run_id: int, path: str | None = None) -> str | None:
    """The stored timeline of a run as JSON text, or None (an older run, an older store);
    ValueError when what is stored cannot be inflated."""
    try:
        rows = _read("SELECT timeline FROM timelines WHERE run_id = ?", (int(run_id),), path)
    except HistoryError as exc:
        if "no such table" in str(exc):
            return None
        raise
    stored = rows[0][0] if rows else None
    if isinstance(stored, bytes):  # compressed JSON; never inflated past its bound
        try:
            inflater = zlib.decompressobj()
            raw = inflater.decompress(stored, MAX_TIMELINE_CHARS * 4 + 1)
            if len(raw) > MAX_TIMELINE_CHARS * 4 or not inflater.eof:
                raise ValueError("too large or cut short")
            return raw.decode("utf-8")
        except (zlib.error, UnicodeDecodeError):
            raise ValueError("not compressed JSON") from None
    return stored if isinstance(stored, str) else None


def get_timeline(run_id: int, path: str | None = None):
    """(Recording, None) for a run with a sound timeline; (None, None) without one;
    (None, one line why) when it is damaged (the run itself still opens)."""
    from lab.core import timeline

    try:
        text = timeline_text(run_id, path)
        if text is None:
            return None, None
        document = record_check.loads(text)
    except ValueError as exc:
        return None, "run %d: its timeline is damaged (%s) and was skipped" % (
            run_id, visible(str(exc))[:80] if str(exc) else "not JSON")
    recording, problem = timeline.load_json(document)
    if problem:
        return None, "run %d: its timeline is damaged (%s) and was skipped" % (
            run_id, visible(problem))
    return recording, None


def all_ids(experiment: str | None = None, path: str | None = None) -> list[int]:
    return [r["id"] for r in reversed(list_runs(None, experiment, path))]


def latest_per_interpreter(path: str | None = None,
                           status: str = "done") -> dict[str, list[dict[str, Any]]]:
    """This machine's newest finished run of each (experiment, interpreter), by experiment.

    Imported runs are left out: they were measured elsewhere.
    """
    newest: dict[tuple, dict[str, Any]] = {}
    for run in load(None, path=path, local_only=True).entries:  # newest first, readable
        if run["status"] == status:
            newest.setdefault((run["experiment"], run["python"], run["gil_enabled"]), run)
    by_experiment: dict[str, list[dict[str, Any]]] = {}
    for (experiment, _python, _gil), run in sorted(newest.items(), key=lambda kv: (
            kv[0][0], kv[0][1], str(kv[0][2]))):
        by_experiment.setdefault(experiment, []).append(run)
    return by_experiment


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
        # Prose and race's bytecode listings are not figures to line up.
        results.append(_leaves((k, v) for k, v in flatten(result)
                               if k != "explanation" and not k.startswith("bytecode.")))
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
def export_runs(ids: Iterable[int] | None, out_path: str, path: str | None = None, *,
                experiment: str | None = None, skipped: list | None = None) -> int:
    """Write the runs to a JSON file; returns how many. Without ids: every readable run
    (of `experiment`, if given), oldest first, the damaged ones appended to `skipped`."""
    if ids is None:
        loaded = load(None, experiment, path)
        entries = loaded.entries[::-1]
        if skipped is not None:
            skipped.extend(loaded.damaged)
    else:
        entries = get_runs(ids, path)
    document = {
        "format": EXPORT_FORMAT,
        "version": EXPORT_VERSION,
        "exported_at": time.time(),
        "exported_by": host_name(),
        "runs": [_with_timeline({"uid": e["uid"], "saved_at": e["saved_at"],
                                 "host": e["host"], "record": e["record"]}, e["id"], path)
                 for e in entries],
    }
    tmp = out_path + ".tmp-%d" % os.getpid()
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(document, f, indent=1, default=str)
            f.write("\n")
        os.replace(tmp, out_path)  # a reader never sees half a file
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)  # e.g. a full disk: leave no half file behind
        raise
    return len(entries)


def _with_timeline(run: dict, run_id: int, path: str | None) -> dict:
    """An export entry with the run's timeline beside its record, when it has a readable
    one (so replay travels too)."""
    try:
        text = timeline_text(run_id, path)
        if text is not None:
            run["timeline"] = record_check.loads(text)
    except ValueError:
        pass
    return run


class ImportRefused(ValueError):
    """The file is not a conlab export, or a record in it is unsound; one line says why."""


def read_export(in_path: str) -> list[dict[str, Any]]:
    """The runs of an export file, every field checked; ImportRefused names the first
    defect (`FILE: record 3: .interpreter must be an object (got a list)`)."""
    name = visible(in_path)
    try:
        with open(in_path, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise ImportRefused("%s is not a regular file" % name)
            data = f.read(MAX_IMPORT_BYTES + 1)
    except OSError as exc:
        raise ImportRefused("cannot read %s: %s" % (name, exc.strerror or exc)) from None
    if len(data) > MAX_IMPORT_BYTES:
        raise ImportRefused("%s is larger than %d MiB: not an export of this lab"
                            % (name, MAX_IMPORT_BYTES >> 20))
    if not data.strip():
        raise ImportRefused("%s is empty" % name)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ImportRefused("%s is not JSON: not even UTF-8 text" % name) from None
    try:
        document = record_check.loads(text)
    except record_check.BadRecord as exc:
        raise ImportRefused("%s is not a conlab export: %s" % (name, exc)) from None
    except ValueError as exc:
        raise ImportRefused("%s is not JSON: %s" % (name, visible(exc)[:120])) from None
    if not isinstance(document, dict) or document.get("format") != EXPORT_FORMAT:
        raise ImportRefused("%s is not a conlab export (made by `conlab export`)" % name)
    version = document.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ImportRefused("%s: its format version must be a whole number from 1 to %d"
                            % (name, EXPORT_VERSION))
    if version > EXPORT_VERSION:
        raise ImportRefused("%s was written by a newer conlab (format version %d)"
                            % (name, version))
    runs = document.get("runs")
    if not isinstance(runs, list):
        raise ImportRefused("%s has no list of runs" % name)
    for i, run in enumerate(runs):
        try:
            record_check.check_run(run, record_check.RECORD_VERSION)
        except record_check.BadRecord as exc:
            raise ImportRefused("%s: record %d: %s" % (name, i + 1, exc)) from None
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
                    saved_at = run.get("saved_at")
                    _insert(conn, run["record"], uid=run["uid"],
                            saved_at=time.time() if saved_at is None else float(saved_at),
                            host=str(run.get("host") or "unknown"), imported=True,
                            timeline=run.get("timeline"))
                    added += 1
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
    except sqlite3.Error as exc:
        raise _unusable(exc, path) from None
    return added, len(runs) - added
