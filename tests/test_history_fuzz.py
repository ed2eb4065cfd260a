"""Fuzzing `conlab import`: seeded random changes to a real export (random types at any
field, random nesting, huge and non-finite numbers, control characters, surrogates, cut
and flipped bytes). Every import must end in exit 0 or 2 with no traceback, and after any
sequence of imports (and damage to stored rows) history, show, compare and export work."""

from __future__ import annotations

import copy
import json
import os
import random
import sqlite3

import pytest

from lab.core import history
from tests.helpers import conlab
from tests.test_history_bad_data import cli, export_doc, record  # noqa: F401 (fixture)

NASTY_TEXT = ["\x1b[2J", "\x1b]0;x\x07", "\x00", "\x9b", "\ud800", "\udfff", "[/bold]",
              "\u202e", "é", "\n", "💥", "%s%d", "{}", "\\"]
NASTY_NUMBERS = [float("nan"), float("inf"), -float("inf"), 1e300, -1e18, 10 ** 30,
                 -1, 0, 2 ** 63, 1.5, -0.0, 1e-300]


def random_text(rng: random.Random) -> str:
    parts = [rng.choice(NASTY_TEXT) if rng.random() < 0.4 else
             "".join(rng.choice("abcxyz-_.09 ") for _ in range(rng.randint(0, 8)))
             for _ in range(rng.randint(0, 4))]
    text = "".join(parts)
    return text * rng.choice([1, 1, 1, 20000]) if rng.random() < 0.05 else text


def random_value(rng: random.Random, depth: int = 0):
    kind = rng.choice(["null", "bool", "int", "float", "nasty", "text", "text", "list",
                       "dict", "deep"] if depth < 4 else ["null", "int", "text", "nasty"])
    if kind == "null":
        return None
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "int":
        return rng.randint(-10 ** 6, 10 ** 6)
    if kind == "float":
        return rng.uniform(-1e6, 1e6)
    if kind == "nasty":
        return rng.choice(NASTY_NUMBERS)
    if kind == "text":
        return random_text(rng)
    if kind == "list":
        return [random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    if kind == "dict":
        return {random_text(rng): random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))}
    value = 1
    for _ in range(rng.choice([10, 33, 40, 900, 5000])):
        value = [value] if rng.random() < 0.5 else {"a": value}
    return value


def leaves(value, depth=0):
    """Every (parent, key) in a JSON tree (its top 20 levels), so that any field can be
    replaced."""
    if depth > 20:
        return
    if isinstance(value, dict):
        for key in list(value):
            yield value, key
            yield from leaves(value[key], depth + 1)
    elif isinstance(value, list):
        for index in range(len(value)):
            yield value, index
            yield from leaves(value[index], depth + 1)


def random_export(rng: random.Random, base: dict, serial: int) -> bytes:
    doc = export_doc(*[copy.deepcopy(base) for _ in range(rng.randint(1, 3))])
    for i, run in enumerate(doc["runs"]):
        run["uid"] = "fuzz%d-%d" % (serial, i)
        run["host"] = random_text(rng) or "h"
        for key in ("error",):
            run["record"][key] = random_text(rng)
    for _ in range(rng.choice([0, 1, 1, 2, 5])):  # 0: a sound file, which must import
        spots = list(leaves(doc))
        parent, key = rng.choice(spots)
        if rng.random() < 0.15 and isinstance(parent, dict):
            del parent[key]
        else:
            parent[key] = random_value(rng)
    try:
        text = json.dumps(doc, ensure_ascii=rng.random() < 0.5)
    except (RecursionError, ValueError):
        text = json.dumps({"format": "conlab-runs", "version": 1, "runs": [None]})
    data = text.encode("utf-8", "surrogatepass")
    roll = rng.random()
    if roll < 0.05:
        data = data[: rng.randint(0, len(data))]  # cut
    elif roll < 0.1 and data:
        at = rng.randrange(len(data))
        data = data[:at] + bytes([rng.randrange(256)]) + data[at + 1:]  # a flipped byte
    return data


def reads_still_work(capsys, tmp_path) -> None:
    code, out, err = cli(capsys, "history", "--limit", "1000")
    assert code == 0, err
    assert "\x1b" not in out + err and err.count("\n") <= 1
    code, out, err = cli(capsys, "history", "--json", "--limit", "1000")
    assert code == 0
    ids = [run["id"] for run in json.loads(out)]
    for run_id in ids:
        code, out, err = cli(capsys, "history", "show", str(run_id))
        assert code == 0 and "\x1b" not in out, err
    if len(ids) >= 2:
        code, out, err = cli(capsys, "compare", str(ids[0]), str(ids[-1]))
        assert code == 0 and "\x1b" not in out, err
    code, out, err = cli(capsys, "export", "-o", str(tmp_path / "all.json"))
    assert code == 0, err
    assert len(json.load(open(tmp_path / "all.json"))["runs"]) == len(ids)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_imports_end_in_0_or_2_and_history_stays_readable(
        record, tmp_path, monkeypatch, capsys, seed):  # noqa: F811
    monkeypatch.setenv("CONLAB_DATA_DIR", str(tmp_path / "data"))
    rng = random.Random(seed)
    outcomes = {0: 0, 2: 0}
    for serial in range(150):
        path = tmp_path / ("in%d.json" % serial)
        path.write_bytes(random_export(rng, record, serial))
        try:
            code, out, err = cli(capsys, "import", str(path))
        except Exception as exc:  # the traceback a user would see
            pytest.fail("seed %d, file %d: %s: %s" % (seed, serial, type(exc).__name__, exc))
        assert code in (0, 2), (seed, serial, err)
        if code == 2:
            assert err.count("\n") == 1 and out == "", (seed, serial, err)
            assert not any(c in err for c in ("\x1b", "\x07", "\x9b")), err
        outcomes[code] += 1
        if serial % 50 == 49:
            reads_still_work(capsys, tmp_path)
    assert outcomes[0] >= 10 and outcomes[2] >= 10, outcomes  # both paths were exercised

    # Damage a few stored rows with random JSON: reads skip them and carry on.
    store = os.path.join(str(tmp_path / "data"), history.DB_NAME)
    with sqlite3.connect(store) as conn:
        ids = [row[0] for row in conn.execute("SELECT id FROM runs")]
        for run_id in rng.sample(ids, min(3, len(ids))):
            try:
                text = json.dumps(random_value(rng))
            except (RecursionError, ValueError):
                text = "{"
            conn.execute("UPDATE runs SET record = ? WHERE id = ?", (text, run_id))
    reads_still_work(capsys, tmp_path)


def test_a_few_random_imports_through_the_real_cli(record, tmp_path):  # noqa: F811
    env = {"CONLAB_DATA_DIR": str(tmp_path / "data")}
    rng = random.Random(7)
    for serial in range(6):
        path = tmp_path / ("in%d.json" % serial)
        path.write_bytes(random_export(rng, record, serial))
        done = conlab("import", str(path), env=env, timeout=120)
        assert done.returncode in (0, 2) and "Traceback" not in done.stderr, done.stderr
    for args in (("history",), ("export", "-o", str(tmp_path / "out.json"))):
        done = conlab(*args, env=env, timeout=120)
        assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
