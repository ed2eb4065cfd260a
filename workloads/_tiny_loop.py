"""A teaching event loop: what asyncio does, in about a hundred lines over `selectors`.

Tasks are generators. A task that would block yields what it waits for -
`("read", sock)` or `("write", sock)` - and the loop parks it in the selector
(epoll on Linux). One `select()` call waits on every parked socket at once; each
socket that becomes ready puts its task back on the ready queue. That is all an
event loop is: a queue of runnable tasks, timers, and one system call to wait.
"""

from __future__ import annotations

import heapq
import selectors
import time
from collections import deque

READ, WRITE = "read", "write"
_EVENTS = {READ: selectors.EVENT_READ, WRITE: selectors.EVENT_WRITE}


class TinyLoop:
    def __init__(self, selector=None):
        self.selector = selector or selectors.DefaultSelector()
        self.ready = deque()  # (task, value to send in)
        self.timers = []  # heap of (when, sequence, callback)
        self.waiting = {}  # fd -> task parked on it
        self._sequence = 0
        self.stopped = False

    # Scheduling ----------------------------------------------------------------------
    def spawn(self, task):
        """Start a generator task on the next turn of the loop."""
        self.ready.append((task, None))

    def call_later(self, delay, callback):
        self._sequence += 1
        heapq.heappush(self.timers, (time.monotonic() + delay, self._sequence, callback))

    def stop(self):
        self.stopped = True

    # Running -------------------------------------------------------------------------
    def run(self):
        while not self.stopped:
            self._run_ready()
            self._run_timers()
            if self.stopped:
                break
            self._wait()

    def _run_ready(self):
        for _ in range(len(self.ready)):  # only what was ready at the start of this turn
            task, value = self.ready.popleft()
            self._step(task, value)

    def _step(self, task, value):
        """Run one task until it waits again (or ends)."""
        try:
            what, sock = task.send(value)
        except StopIteration:
            return
        self._park(task, what, sock)

    def _park(self, task, what, sock):
        fd, events = sock.fileno(), _EVENTS[what]
        self.waiting[fd] = task
        try:
            key = self.selector.get_key(fd)
        except KeyError:
            self.selector.register(fd, events, sock)
        else:
            if key.events != events:
                self.selector.modify(fd, events, sock)

    def _run_timers(self):
        now = time.monotonic()
        while self.timers and self.timers[0][0] <= now:
            _when, _seq, callback = heapq.heappop(self.timers)
            callback()

    def _wait(self):
        """The one blocking call: sleep in the kernel until a socket is ready or a timer is due."""
        if self.ready:
            timeout = 0
        elif self.timers:
            timeout = max(0.0, self.timers[0][0] - time.monotonic())
        else:
            timeout = None
        for key, _mask in self.selector.select(timeout):
            task = self.waiting.pop(key.fd, None)
            if task is None:
                # Nobody waits on it any more: stop watching (registration is lazy).
                self.selector.unregister(key.fd)
                continue
            self.ready.append((task, None))

    def forget(self, sock):
        """Call before closing a socket the loop may still be watching."""
        fd = sock.fileno()
        self.waiting.pop(fd, None)
        try:
            self.selector.unregister(fd)
        except (KeyError, ValueError):
            pass

    def close(self):
        self.selector.close()


# Helpers a task uses with `yield from` ---------------------------------------------------


def send_all(sock, data):
    view = memoryview(data)
    while view:
        try:
            sent = sock.send(view)
        except BlockingIOError:
            sent = 0
        view = view[sent:]
        if view:
            yield WRITE, sock


def recv_some(sock, size=65536):
    while True:
        try:
            return sock.recv(size)
        except BlockingIOError:
            yield READ, sock
