"""A process pool doing CPU work: several processes, each with its own interpreter (and
GIL). `python3 process_pool.py [WORKERS] [SECONDS]`."""

import sys
import time
from concurrent.futures import ProcessPoolExecutor

WORKERS = int(sys.argv[1]) if len(sys.argv) > 1 else 2
SECONDS = float(sys.argv[2]) if len(sys.argv) > 2 else 20.0


def spin(seconds):
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        n += 1
    return n


def main():
    deadline = time.monotonic() + SECONDS
    with ProcessPoolExecutor(WORKERS) as pool:
        while time.monotonic() < deadline:
            list(pool.map(spin, [0.2] * WORKERS))


if __name__ == "__main__":
    main()
