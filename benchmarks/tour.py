"""The full tour: every experiment run for real in every (colour mode, size), every screen
opened, under Textual's Pilot. Prints one row per combination: problems found, or ok.

    python benchmarks/tour.py            # the whole matrix (several minutes)
    python benchmarks/tour.py race scale # only these experiments
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.tour import COMBINATIONS, SMALL, tour  # noqa: E402


def main(names: list[str]) -> int:
    names = names or sorted(SMALL)
    print("%-10s %-7s %7s  %s" % ("colour", "size", "secs", "result"))
    failed = 0
    for colour, size in COMBINATIONS:
        start = time.monotonic()
        problems = asyncio.run(tour(colour, size, names))
        took = time.monotonic() - start
        print("%-10s %-7s %7.1f  %s" % (colour, "%dx%d" % size, took,
                                        "ok" if not problems else "%d problem(s)" % len(problems)))
        for problem in problems:
            print("    - " + problem)
        failed += bool(problems)
        sys.stdout.flush()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
