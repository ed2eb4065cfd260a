"""Threads doing json work: pure Python-object work that holds the GIL, so on a GIL build
they share one core however many CPUs there are. `python3 json_threads.py [THREADS] [SECONDS]`."""

import json
import sys
import threading
import time

THREADS = int(sys.argv[1]) if len(sys.argv) > 1 else 2
SECONDS = float(sys.argv[2]) if len(sys.argv) > 2 else 20.0
DOCUMENT = {"items": [{"id": i, "name": "item %d" % i, "tags": ["a", "b", "c"], "price": i * 1.5}
                      for i in range(200)]}


def work(deadline):
    while time.monotonic() < deadline:
        json.loads(json.dumps(DOCUMENT))


def main():
    deadline = time.monotonic() + SECONDS
    workers = [threading.Thread(target=work, args=(deadline,), name="json-%d" % i)
               for i in range(THREADS)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()


if __name__ == "__main__":
    main()
