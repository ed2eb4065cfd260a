"""The README's pictures, taken by the lab's own screenshot code (lab/tui/pictures.py)
from real runs on this machine:

    benchmarks/pictures/dashboard-mid-run.svg   the dashboard while every pane runs
    benchmarks/pictures/finished-run.svg        a finished `decision` run, drawn by its view from its record

    python benchmarks/screenshots.py            # the README's pictures, into benchmarks/pictures/
    python benchmarks/screenshots.py --quick    # small runs, into a folder of your choice
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FULL = ["-p", "workload=table"]
QUICK = ["-p", "workload=dial", "-p", "seconds=0.2", "-p", "concurrency=4"]


def finished_entry(params: list[str]) -> dict:
    """Run `decision` for real through the CLI (it keeps the run in history) and return
    that history entry."""
    done = subprocess.run([sys.executable, "-m", "lab", "run", "decision", *params, "--json"],
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, cwd=ROOT,
                          timeout=600)
    if done.returncode != 0:
        raise SystemExit("screenshots: the decision run failed: %s" % done.stderr.strip())
    record = json.loads(done.stdout)
    from lab.core import history

    entries, _damaged = history.load(20, "decision")
    for entry in entries:
        if entry["record"].get("started_at") == record.get("started_at") and \
                entry["record"] == record:
            return entry
    raise SystemExit("screenshots: the run was not found in history")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small runs (for the tests)")
    parser.add_argument("-o", "--output", default=str(ROOT / "benchmarks" / "pictures"), metavar="DIR")
    args = parser.parse_args(argv)
    from lab.tui.pictures import dashboard_mid_run, finished_view

    os.makedirs(args.output, exist_ok=True)
    entry = finished_entry(QUICK if args.quick else FULL)
    paths = [asyncio.run(finished_view(args.output, "finished-run.svg", entry))]
    paths.append(asyncio.run(dashboard_mid_run(args.output, samples=2 if args.quick else 12)))
    for path in paths:
        print("wrote %s" % os.path.relpath(path))
    return 0


if __name__ == "__main__":
    sys.exit(main())
