"""Bad data never breaks history: unsound imports are refused whole with the field's path,
damaged stored records are skipped (and said once), text from records never drives the
terminal, a read-only store can be listed and a full disk is called by its name."""

from __future__ import annotations

import copy
import json
import os
import shutil
import sqlite3
import subprocess
import tempfile

import pytest

from lab.cli.parser import main
from lab.core import history
from tests.helpers import conlab

ESCAPES = ("\x1b", "\x07", "\x9b")


@pytest.fixture(scope="module")
def record(tmp_path_factory) -> dict:
    """The record of a real (small) race run."""
    folder = tmp_path_factory.mktemp("real")
    done = conlab("run", "race", "-p", "increments=2000", "-p", "threads=2", "--json",
                  env={"CONLAB_DATA_DIR": str(folder)}, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture
def store(tmp_path, monkeypatch) -> str:
    monkeypatch.setenv("CONLAB_DATA_DIR", str(tmp_path / "data"))
    return str(tmp_path / "data")


def cli(capsys, *args: str) -> tuple[int, str, str]:
    """`conlab ARGS` in this process (fast); an exception here is the traceback a user
    would see, so it fails the test."""
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def export_doc(*records: dict, **run_fields) -> dict:
    runs = [{"uid": "u%d" % i, "saved_at": 1700000000.0 + i, "host": "lab-a",
             "record": r, **run_fields} for i, r in enumerate(records)]
    return {"format": "conlab-runs", "version": 1, "exported_at": 1700000000.0,
            "exported_by": "lab-a", "runs": runs}


def write(tmp_path, doc_or_text, name="runs.json") -> str:
    path = tmp_path / name
    if isinstance(doc_or_text, bytes):
        path.write_bytes(doc_or_text)
    else:
        path.write_text(doc_or_text if isinstance(doc_or_text, str) else json.dumps(doc_or_text))
    return str(path)


# 7. import refuses unsound records -----------------------------------------------------
def _set(path: str, value):
    """A change to a run entry: `record.interpreter` -> value (the record is copied)."""
    def change(run: dict) -> None:
        *parents, last = path.split(".")
        target = run
        for key in parents:
            target = target[int(key) if key.isdigit() else key]
        if value is DELETE:
            del target[last]
        else:
            target[last] = value
    return change


DELETE = object()


def _nested(depth: int):
    value: object = 1
    for _ in range(depth):
        value = {"a": value}
    return value


BAD_RUNS = [
    ("saved_at", "yesterday", ".saved_at must be a number"),
    ("saved_at", 1e300, ".saved_at must be a number"),
    ("saved_at", -1e18, ".saved_at must be a number"),
    ("uid", 123, ".uid must be"),
    ("uid", "../../x", ".uid must be"),
    ("host", ["a"], ".host must be a string"),
    ("record", None, ".record must be an object"),
    ("record.interpreter", [1, 2], ".interpreter must be an object"),
    ("record.interpreter.version", "\x1b[2J", ".interpreter.version must be a version"),
    ("record.interpreter.gil_enabled", "yes", ".interpreter.gil_enabled must be"),
    ("record.duration_s", "slow", ".duration_s must be a number"),
    ("record.duration_s", 1e300, ".duration_s must be a finite number"),
    ("record.duration_s", -1, ".duration_s must be a number"),
    ("record.experiment", 123, ".experiment must be an experiment name"),
    ("record.experiment", "x\x1b]0;pwned\x07", ".experiment must be an experiment name"),
    ("record.status", None, ".status must be a status word"),
    ("record.machine", "big", ".machine must be an object"),
    ("record.machine.usable_cpus", 0, ".machine.usable_cpus must be a whole number"),
    ("record.params", [1], ".params must be an object"),
    ("record.params.threads", {"a": 1}, ".params.threads must be a number"),
    ("record.threads", {"a": 1}, ".threads must be a list"),
    ("record.threads", [{"name": 7, "native_id": 1, "cpu_s": 0}], ".threads[0].name"),
    ("record.result", [1], ".result must be an object or null"),
    ("record.result", {"x": 1e300}, ".result.x must be a finite number"),
    ("record.result", {"x": 10 ** 30}, ".result.x must be a finite number"),
    ("record.result", {"deep": _nested(40)}, "nested deeper than 32 levels"),
    ("record.result", {"x": "y" * 70000}, ".result.x is longer than 65536"),
    ("record.result", {"x%d" % i: "y" * 60000 for i in range(80)}, "larger than 4 MiB"),
    ("record.record_version", 99, ".record_version must be a whole number"),
    # found by the fuzz test: fields `history show` formats
    ("record.result.explanation", 1.5, ".result.explanation must be a string"),
    ("record.threads.0.voluntary", DELETE, ".threads[0].voluntary must be present"),
    ("record.interpreter.gil_enabled", DELETE, ".interpreter.gil_enabled must be"),
    ("record.machine.hypervisor", DELETE, ".machine.hypervisor must be"),
]


@pytest.mark.parametrize("field, value, words", BAD_RUNS,
                         ids=["%s=%s" % (f, "deleted" if v is DELETE else repr(v)[:20])
                              for f, v, _ in BAD_RUNS])
def test_import_refuses_an_unsound_field_with_its_path(record, store, tmp_path, capsys,
                                                       field, value, words):
    good, bad = copy.deepcopy(record), copy.deepcopy(record)
    doc = export_doc(good, bad)
    _set(field, value)(doc["runs"][1])
    code, out, err = cli(capsys, "import", write(tmp_path, doc))
    assert code == 2, (out, err)
    assert err.count("\n") == 1 and "record 2: " in err and words in err, err
    assert not any(e in err for e in ESCAPES)
    assert history.list_runs(None) == []  # all or nothing: the good first record is not kept


RAW_DEFECTS = [  # (field, JSON text put there, words): what json.dumps cannot write
    ("record.duration_s", "NaN", "NaN"),
    ("record.duration_s", "-Infinity", "Infinity"),
    ("host", '"\\ud800"', ".host holds a lone surrogate"),
    ("record.result", '{"\\udfff": 1}', "lone surrogate"),
    ("record.result", "[" * 100000 + "]" * 100000, "nested too deeply"),
    ("record.result", '{"a":' * 100000 + "1" + "}" * 100000, "nested too deeply"),
    ("record.result", "1" * 5000, "is not JSON"),
    ("version", '"2"', "format version must be a whole number"),
    ("version", "2", "written by a newer conlab"),
    ("version", "true", "format version must be a whole number"),
    ("runs", '{"a": 1}', "has no list of runs"),
]
SENTINEL = "@@raw@@"


@pytest.mark.parametrize("field, raw, words", RAW_DEFECTS,
                         ids=["%s=%s" % (f, r[:12]) for f, r, _ in RAW_DEFECTS])
def test_import_refuses_what_json_dumps_cannot_make(record, store, tmp_path, capsys,
                                                    field, raw, words):
    doc = export_doc(copy.deepcopy(record))
    if field in ("version", "runs"):
        doc[field] = SENTINEL
    else:
        _set(field, SENTINEL)(doc["runs"][0])
    text = json.dumps(doc).replace('"%s"' % SENTINEL, raw)
    code, out, err = cli(capsys, "import", write(tmp_path, text))
    assert code == 2, (out, err)
    assert err.count("\n") == 1 and words in err, err
    assert history.list_runs(None) == []


def test_files_that_are_not_exports_are_refused_in_one_line(store, tmp_path, capsys):
    huge = tmp_path / "huge.json"
    with open(huge, "w") as f:
        f.write("[" + "0," * (history.MAX_IMPORT_BYTES // 2) + "0]")
    cases = [
        (write(tmp_path, "", "empty.json"), "is empty"),
        (write(tmp_path, "  \n", "blank.json"), "is empty"),
        (write(tmp_path, "hello", "notes.txt"), "is not JSON"),
        (write(tmp_path, b"\x89PNG\r\n\x1a\n\x00\xff\xfe", "image.png"), "not even UTF-8"),
        (write(tmp_path, "null", "null.json"), "not a conlab export"),
        (str(huge), "larger than 32 MiB"),
        (str(tmp_path), "Is a directory"),
        ("/dev/zero", "not a regular file"),
        (str(tmp_path / "missing.json"), "cannot read"),
    ]
    for path, words in cases:
        code, out, err = cli(capsys, "import", path)
        assert code == 2 and err.count("\n") == 1 and words in err, (path, err)
    assert history.list_runs(None) == []


def test_the_real_cli_refuses_deep_nesting_without_a_traceback(record, store, tmp_path):
    text = json.dumps(export_doc(record)).replace('"result": {', '"result": {"x": '
                                                  + "[" * 100000 + "]" * 100000 + ", ", 1)
    done = conlab("import", write(tmp_path, text))
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and done.stderr.count("\n") == 1
    assert "record 1" in done.stderr or "nested too deeply" in done.stderr


def test_a_sound_export_still_round_trips(record, store, tmp_path, capsys):
    code, out, err = cli(capsys, "import", write(tmp_path, export_doc(record, record)))
    assert code == 0 and "imported 2 runs" in out, err
    assert [e["record"] for e in history.get_runs([1, 2])] == [record, record]


# 8. one damaged record does not make history unreadable --------------------------------
DAMAGE = [
    ("cut", lambda text: text[: len(text) // 2], "stored JSON is cut short or invalid"),
    ("null", lambda text: "null", "the record must be an object"),
    ("list", lambda text: "[]", "the record must be an object"),
    ("shape", lambda text: json.dumps({**json.loads(text), "interpreter": [1, 2]}),
     ".interpreter must be an object"),
    ("nan", lambda text: text.replace('"duration_s":', '"duration_s":NaN,"x":', 1), "NaN"),
    ("deep", lambda text: "[" * 100000 + "]" * 100000, "nested too deeply"),
]


def damage(store: str, run_id: int, change) -> None:
    with sqlite3.connect(os.path.join(store, history.DB_NAME)) as conn:
        text = conn.execute("SELECT record FROM runs WHERE id = ?", (run_id,)).fetchone()[0]
        conn.execute("UPDATE runs SET record = ? WHERE id = ?", (change(text), run_id))


@pytest.mark.parametrize("how, change, words", DAMAGE, ids=[d[0] for d in DAMAGE])
def test_a_damaged_record_is_skipped_and_said_once(record, store, tmp_path, capsys,
                                                   how, change, words):
    for _ in range(3):
        history.save(record)
    damage(store, 2, change)

    code, out, err = cli(capsys, "history")
    assert code == 0
    ids = [line.split()[0] for line in out.splitlines()[2:]]  # after "history: PATH" and the header
    assert ids == ["3", "1"]
    assert err.count("\n") == 1 and "1 run in" in err and "#2 " in err and words in err, err

    code, out, err = cli(capsys, "history", "--json")
    assert code == 0 and [r["id"] for r in json.loads(out)] == [3, 1]

    code, out, err = cli(capsys, "history", "show", "3")
    assert code == 0 and "race: done" in out and err == ""
    code, out, err = cli(capsys, "history", "show", "2")
    assert code == 1 and out == "" and err.count("\n") == 1
    assert "run 2 cannot be read: " in err and words in err
    code, out, err = cli(capsys, "compare", "1", "2")
    assert code == 1 and "run 2 cannot be read" in err

    exported = str(tmp_path / "out.json")
    code, out, err = cli(capsys, "export", "-o", exported)
    assert code == 0 and "exported 2 runs" in out and err.count("\n") == 1 and "#2 " in err
    assert [r["uid"] for r in json.load(open(exported))["runs"]] == [
        e["uid"] for e in history.get_runs([1, 3])]
    code, out, err = cli(capsys, "export", "2", "-o", exported)
    assert code == 1 and "run 2 cannot be read" in err


def test_a_damaged_summary_column_is_skipped_too(record, store, capsys):
    history.save(record)
    history.save(record)
    with sqlite3.connect(os.path.join(store, history.DB_NAME)) as conn:
        conn.execute("UPDATE runs SET saved_at = 'yesterday' WHERE id = 1")
    code, out, err = cli(capsys, "history")
    assert code == 0 and len(out.splitlines()) == 3 and "saved_at column" in err  # where, header, one run
    assert [r["id"] for r in history.list_runs(None)] == [2]


# 9. terminal escapes in records are shown, not obeyed ----------------------------------
HOSTILE = "\x1b[2J\x1b]0;pwned\x07\x9b31m\u202e"


def hostile_record(record: dict) -> dict:
    bad = copy.deepcopy(record)
    bad["error"] = "boom\nsecond line" + HOSTILE
    bad["interpreter"]["executable"] = "/usr/bin/python" + HOSTILE
    bad["machine"]["cpu_model"] = "cpu" + HOSTILE
    bad["result"]["note"] = "n" + HOSTILE
    bad["result"]["explanation"] = "because" + HOSTILE
    bad["result"]["k" + HOSTILE] = 1
    bad["threads"][0]["name"] = "t" + HOSTILE
    bad["params"]["threads"] = 2
    return bad


def test_text_from_records_is_printed_with_escapes_visible(record, store, tmp_path, capsys):
    bad = hostile_record(record)
    doc = export_doc(bad, bad)
    doc["runs"][0]["host"] = "h" + HOSTILE
    code, out, err = cli(capsys, "import", write(tmp_path, doc))
    assert code == 0, err
    for args in (("history",), ("history", "show", "1"), ("history", "show", "2"),
                 ("compare", "1", "2")):
        code, out, err = cli(capsys, *args)
        assert code == 0, (args, err)
        assert not any(e in out + err for e in ESCAPES + ("\u202e",)), (args, out)
        assert "\\x1b" in out, (args, out)
    code, out, _ = cli(capsys, "history", "show", "1")
    assert "boom\nsecond line" in out  # a multi-line text keeps its lines
    code, out, _ = cli(capsys, "history", "show", "1", "--json")
    assert json.loads(out)["record"]["error"] == bad["error"]  # JSON output stays exact


# Smaller: a read-only store, a full disk -----------------------------------------------
def _mount(*args: str) -> bool:
    return subprocess.run(["mount", *args], capture_output=True).returncode == 0


@pytest.fixture
def read_only_store(record, tmp_path, monkeypatch):
    """A history folder that can be read but not written."""
    folder = tempfile.mkdtemp(dir=str(tmp_path))
    monkeypatch.setenv("CONLAB_DATA_DIR", folder)
    history.save(record)
    history.save(record)
    if os.geteuid() != 0:
        os.chmod(os.path.join(folder, history.DB_NAME), 0o444)
        os.chmod(folder, 0o555)
        yield folder
        os.chmod(folder, 0o755)
        return
    view = str(tmp_path / "ro-view")
    os.mkdir(view)
    if not (_mount("--bind", folder, view) and _mount("-o", "remount,bind,ro", view)):
        _mount_cleanup(view)
        pytest.skip("root cannot make a read-only bind mount here")
    monkeypatch.setenv("CONLAB_DATA_DIR", view)
    try:
        yield view
    finally:
        _mount_cleanup(view)


def _mount_cleanup(view: str) -> None:
    subprocess.run(["umount", view], capture_output=True)


def test_a_store_that_cannot_be_written_can_still_be_listed(read_only_store, record, capsys):
    code, out, err = cli(capsys, "history")
    assert code == 0 and len(out.splitlines()) == 4, err
    code, out, err = cli(capsys, "history", "show", "2")
    assert code == 0 and "race: done" in out
    with pytest.raises(history.HistoryError, match="cannot write there"):
        history.save(record)


def test_a_missing_store_lists_nothing_and_creates_nothing(store, capsys):
    code, out, err = cli(capsys, "history")
    assert code == 0 and "no runs kept yet" in out
    assert not os.path.exists(store)


def test_disk_full_is_called_disk_full(record, store, monkeypatch):
    history.save(record)
    real_connect = sqlite3.connect

    class Full:  # what SQLite raises when the WAL cannot grow
        def __init__(self, conn):
            self.conn = conn

        def execute(self, sql, *args):
            if sql.startswith("INSERT"):
                raise sqlite3.OperationalError("database or disk is full")
            return self.conn.execute(sql, *args)

        def __getattr__(self, name):
            return getattr(self.conn, name)

    monkeypatch.setattr(sqlite3, "connect", lambda *a, **k: Full(real_connect(*a, **k)))
    with pytest.raises(history.HistoryError, match="the disk is full"):
        history.save(record)


def test_a_really_full_disk_is_called_disk_full(record, tmp_path, monkeypatch):
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tiny tmpfs needs root")
    folder = str(tmp_path / "tiny")
    os.mkdir(folder)
    if not _mount("-t", "tmpfs", "-o", "size=256k", "tmpfs", folder):
        pytest.skip("cannot mount a tmpfs here")
    try:
        monkeypatch.setenv("CONLAB_DATA_DIR", folder)
        history.save(record)
        with open(os.path.join(folder, "filler"), "wb") as f:
            try:
                f.write(b"x" * (1 << 20))
            except OSError:
                pass
        with pytest.raises(history.HistoryError, match="the disk is full"):
            history.save(record)
    finally:
        _mount_cleanup(folder)


def test_a_local_run_with_nan_is_kept_readable(record, store, capsys):
    odd = copy.deepcopy(record)
    odd["result"]["ratio"] = float("nan")  # e.g. a 0/0 a workload reported
    run_id = history.save(odd)
    assert history.get_run(run_id)["record"]["result"]["ratio"] is None
    code, out, err = cli(capsys, "history", "--json")
    assert code == 0 and err == "" and json.loads(out)[0]["id"] == run_id
