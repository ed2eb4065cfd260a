"""Threads hashing big buffers: hashlib releases the GIL for large inputs, so they use
several cores at once. `python3 hashlib_threads.py [THREADS] [SECONDS]`."""

import hashlib
import sys
import threading
import time

THREADS = int(sys.argv[1]) if len(sys.argv) > 1 else 2
SECONDS = float(sys.argv[2]) if len(sys.argv) > 2 else 20.0
BUFFER = b"x" * (4 << 20)


def work(deadline):
    while time.monotonic() < deadline:
        hashlib.sha256(BUFFER).digest()


def main():
    deadline = time.monotonic() + SECONDS
    workers = [threading.Thread(target=work, args=(deadline,), name="hasher-%d" % i)
               for i in range(THREADS)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()


if __name__ == "__main__":
    main()
