"""Two threads take the same two locks in opposite order and deadlock; the main thread
joins them, so the program hangs until it is stopped."""

import threading
import time

lock_a = threading.Lock()
lock_b = threading.Lock()
both_hold_one = threading.Barrier(2)


def take(first, second):
    with first:
        both_hold_one.wait()  # each thread holds its first lock before wanting the second
        with second:
            time.sleep(0.01)


def main():
    t1 = threading.Thread(target=take, args=(lock_a, lock_b), name="T1")
    t2 = threading.Thread(target=take, args=(lock_b, lock_a), name="T2")
    t1.start()
    t2.start()
    t1.join()
    t2.join()


if __name__ == "__main__":
    main()
