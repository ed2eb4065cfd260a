"""Do the lab's verdicts hold when the machine changes under them?

Runs each verdict-bearing experiment (`conlab run NAME --json`) in three conditions:

  quiet      as the machine is
  busy       beside two busy-looping processes that this script starts and stops
  one-cpu    the whole run pinned to one CPU (`taskset -c 0` semantics, via affinity)

and prints, per experiment and condition, the verdict's sentence, the figure it rests on
and the machine's load the run itself recorded. Goal: the same verdict in all three, or an
explicit "can't tell" under load — never a different verdict.

    python benchmarks/fidelity.py [--python PATH] [--only gil-cpu,race] [--markdown]

An experiment whose result carries no `verdict` block is listed as such.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Small but long enough to be stable: each run takes a few seconds.
EXPERIMENTS = {
    "gil-cpu": ["-p", "work=3000000", "-p", "tasks=2"],
    "race": ["-p", "threads=4", "-p", "increments=200000"],
    "convoy": ["-p", "requests=200"],
    "loop-freeze": ["-p", "duration_s=2"],
    "epoll": ["-p", "connections=200", "-p", "duration_s=1"],
    "decision": [],
}
CONDITIONS = ("quiet", "busy", "one-cpu")


def busy_loops(count: int = 2) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"],
                             stdin=subprocess.DEVNULL) for _ in range(count)]


def run(name: str, args: list[str], python: str | None, condition: str) -> dict:
    command = [sys.executable, "-m", "lab", "run", name, "--json", *args]
    if python:
        command += ["--python", python]
    preexec = None
    if condition == "one-cpu":
        first = min(os.sched_getaffinity(0))
        preexec = lambda: os.sched_setaffinity(0, {first})  # noqa: E731 - children inherit it
    loops = busy_loops() if condition == "busy" else []
    try:
        time.sleep(0.3 if loops else 0)  # let the loops reach full speed before measuring
        done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT,
                              stdin=subprocess.DEVNULL, preexec_fn=preexec,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    finally:
        for loop in loops:
            loop.kill()
            loop.wait()
    try:
        return json.loads(done.stdout)
    except ValueError:
        return {"status": "failed", "error": (done.stderr.strip().splitlines() or ["?"])[-1]}


def verdicts_of(result: dict) -> list[tuple[str, dict]]:
    """The run's verdicts: one for most experiments, one per row for decision."""
    if isinstance(result.get("verdict"), dict):
        return [("", result["verdict"])]
    rows = result.get("rows") if isinstance(result.get("rows"), list) else []
    return [("%s: " % row.get("id", i), row["verdict"]) for i, row in enumerate(rows)
            if isinstance(row, dict) and isinstance(row.get("verdict"), dict)]


def told(verdict: dict) -> bool:
    return verdict.get("can_tell") is not False


def summary(record: dict) -> tuple[str, str, str, list[str]]:
    """(what it says, the figures it rests on, other programs' load, comparable keys)."""
    result = record.get("result") if isinstance(record.get("result"), dict) else {}
    load = (result or {}).get("load") or {}
    share = load.get("other_cpu_share")
    load_text = "-" if share is None else "%.0f%%%s" % (100 * share, " busy" if load.get("busy") else "")
    if record.get("status") != "done":
        return "run %s: %s" % (record.get("status"), record.get("error")), "-", load_text, ["?"]
    found = verdicts_of(result)
    if not found:
        return "(no verdict block)", "-", load_text, ["?"]
    says, figures, keys = [], [], []
    for label, verdict in found:
        text = verdict.get("says", "?")
        if not told(verdict):
            text = "can't tell: " + text
        says.append(label + text)
        value = verdict.get("value")
        figures.append("%s = %s" % (verdict.get("figure", "?"), "%.3g" % value
                                     if isinstance(value, (int, float)) else value))
        # Figures and their context (in brackets) change from run to run; the verdict is
        # the sentence without them.
        sentence = verdict.get("says", "?").split(" (")[0]
        if isinstance(verdict.get("agrees"), bool):  # a verdict about the article's claim
            sentence = "agrees with the article" if verdict["agrees"] else "disagrees"
        keys.append(label + ("can't tell" if not told(verdict) else
                             re.sub(r"[0-9][0-9.,  ]*", "#", sentence)))
    return "; ".join(says), "; ".join(figures), load_text, keys


def agree(keys: list[list[str]]) -> str:
    """`same` when every condition that could tell said the same thing, row by row."""
    if any(k == ["?"] for k in keys):
        return "n/a"
    for row in zip(*keys):
        told_here = {k for k in row if not k.split(": ")[-1].startswith("can't tell")}
        if len(told_here) > 1:
            return "DIFFERENT"
    return "same"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", help="interpreter for the children")
    parser.add_argument("--only", help="comma-separated experiment ids")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = parser.parse_args()
    names = args.only.split(",") if args.only else list(EXPERIMENTS)
    rows = []
    for name in names:
        cells = []
        for condition in CONDITIONS:
            record = run(name, EXPERIMENTS.get(name, []), args.python, condition)
            cells.append(summary(record))
            print("%-12s %-8s %s | %s | others %s" % (name, condition, *cells[-1][:3]),
                  file=sys.stderr, flush=True)
        rows.append((name, cells, agree([c[3] for c in cells])))
    if args.markdown:
        print("| experiment | " + " | ".join(CONDITIONS) + " | verdicts |")
        print("|---|" + "---|" * len(CONDITIONS) + "---|")
        for name, cells, verdict in rows:
            print("| %s | %s | %s |" % (name, " | ".join(
                "%s (%s; others %s)" % c[:3] for c in cells), verdict))
    else:
        for name, cells, verdict in rows:
            print("%s: %s" % (name, verdict))
            for condition, (says, figure, load, _keys) in zip(CONDITIONS, cells):
                print("  %-8s %s — %s — others %s" % (condition, says, figure, load))


if __name__ == "__main__":
    main()
