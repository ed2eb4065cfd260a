"""The SSH drop, many times: the lab's terminal is closed under it at several moments and we
count what outlives it (the lab itself, or any of its workloads) and how long it takes to go.

    python benchmarks/ssh_drop.py                      # 20 drops at each moment, in tmux
    python benchmarks/ssh_drop.py --harness pty -n 5   # a bare pty closed, as sshd does

Moments: 0.2, 0.5, 1, 2 and 3 s after `a` on the dashboard, and 0.5 s into a running
io-bound and decision experiment. `tmux` is tmux kill-session (where the hang was first
seen); `pty` closes the master of the lab's controlling pty. The lab is run with
CONLAB_DATA_DIR in a temporary folder. Exit status 1 if anything survived.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.helpers import new_tag, wait_for  # noqa: E402
from tests.terminal import Terminal, TmuxTerminal, drop_and_watch, start_runs  # noqa: E402

MOMENTS = [("run-all", 0.2), ("run-all", 0.5), ("run-all", 1.0), ("run-all", 2.0),
           ("run-all", 3.0), ("io-bound", 0.5), ("decision", 0.5)]
LIMIT_S = 3.0


def one_drop(harness, scenario: str, after: float):
    tag = new_tag()
    term = harness(tag)
    try:
        start_runs(term, scenario)
        if scenario != "run-all":
            wait_for(lambda: term.seen("RUNNING"), 30, "the run to start")
        time.sleep(after)  # the moment of the drop is the variable
        return drop_and_watch(term, tag, limit=LIMIT_S, patience=10.0)
    finally:
        term.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--runs", type=int, default=20, help="drops at each moment")
    parser.add_argument("--harness", choices=("tmux", "pty"), default="tmux")
    args = parser.parse_args()
    kind = TmuxTerminal if args.harness == "tmux" else Terminal
    harness = lambda tag: kind(tag, "--no-mouse")  # noqa: E731
    os.environ.setdefault("CONLAB_DATA_DIR", tempfile.mkdtemp(prefix="conlab-ssh-drop-"))
    print("%-14s %5s %5s %9s %9s %9s %9s" % ("moment", "drops", "hung", "survivors",
                                            "median s", "max s", "> %.0f s" % LIMIT_S))
    bad = 0
    for scenario, after in MOMENTS:
        times, hung, survivors, late = [], 0, 0, 0
        for _ in range(args.runs):
            exited, left = one_drop(harness, scenario, after)
            survivors += len(left)
            if exited is None:
                hung += 1
            else:
                times.append(exited)
                late += exited > LIMIT_S
        bad += hung + survivors + late
        name = "%s+%gs" % ("all" if scenario == "run-all" else scenario, after)
        print("%-14s %5d %5d %9d %9s %9s %9d" % (
            name, args.runs, hung, survivors,
            "%.2f" % statistics.median(times) if times else "-",
            "%.2f" % max(times) if times else "-", late), flush=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
