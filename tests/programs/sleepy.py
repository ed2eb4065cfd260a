"""Threads that mostly wait: short sleeps with a little work between them.
`python3 sleepy.py [THREADS] [SECONDS]`."""

import sys
import threading
import time

THREADS = int(sys.argv[1]) if len(sys.argv) > 1 else 2
SECONDS = float(sys.argv[2]) if len(sys.argv) > 2 else 20.0


def work(deadline):
    while time.monotonic() < deadline:
        time.sleep(0.02)
        sum(range(200))


def main():
    deadline = time.monotonic() + SECONDS
    workers = [threading.Thread(target=work, args=(deadline,), name="sleeper-%d" % i)
               for i in range(THREADS)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()


if __name__ == "__main__":
    main()
