"""The probe `conlab watch` loads into a user's Python program (never into the lab).

Standard library only, CPython 3.9+ (free-threaded builds too). Importing this module does
nothing; `start()` does, and only when ``CONLAB_PROBE_FD`` names a pipe (or socket). The boot
(``_probe_boot/sitecustomize.py``, whose directory the lab prepends to PYTHONPATH) calls it.

It reports, as JSON lines written with one ``os.write`` each (atomic on a pipe, so lines from
several processes sharing it never interleave): ``probe_hello``, the program's threads on change,
every running event loop's lag and the user line a blocked loop was executing, and who holds
and who waits for the locks created after start-up. Its own thread ("conlab-probe", started
with ``_thread`` so the program's ``threading.enumerate()`` does not list it) does all the
writing, a few times a second, and stops quietly when the pipe goes away.

Locks: threading.Lock/RLock made by the program's own code after start-up are thin proxies
that know their owner; the standard library's internal locks (an Event's, a Queue's) stay
plain. `locks` events list the waits (seen at two looks in a row, 250 ms apart) and, in
`held`, the owners of the locks waited for: what a wait-for graph needs.
"""

from __future__ import annotations

import os
import sys

ENV_PROBE_FD = "CONLAB_PROBE_FD"
# Set by the first probe for its descendants: the pipe's identity, and a path that reopens it
# for children whose copy of the fd was closed (subprocess, multiprocessing "spawn").
ENV_PROBE_PIPE = "CONLAB_PROBE_PIPE"
ENV_PROBE_PATH = "CONLAB_PROBE_PATH"

THREAD_NAME = "conlab-probe"
BLOCKED_S = 0.1  # a heartbeat later than this means the loop was blocked
TICK_LOOPS_S = 0.05  # how often the probe looks while a loop runs
TICK_IDLE_S = 0.25
LOCKS_EVERY_S = 0.25  # locks: at most 4 events/s
THREADS_EVERY_S = 0.5  # threads: at most 2 events/s
LAG_EVERY_S = 1.0  # loop_lag: at most 1 event/s per loop
ONGOING_EVERY_S = 1.0  # a loop still blocked is reported again at most this often
MAX_LINE = 4000  # below PIPE_BUF (4096): one write stays atomic
MAX_ITEMS = 64  # threads or locks listed in one event


def boot_dir():
    """The directory the lab prepends to PYTHONPATH to load the probe."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "_probe_boot")


_STDLIB = os.path.dirname(os.__file__) + os.sep
_HERE = (lambda: 0).__code__.co_filename  # as this file's frames name it


def _is_library(filename):
    return "site-packages" in filename or "dist-packages" in filename


def _is_stdlib(filename):
    if filename.startswith("<"):
        return filename.startswith("<frozen")  # <string> (python -c) is the user's
    return (filename.startswith(_STDLIB) and not _is_library(filename)) or filename == _HERE


def _user_frame(frame, depth=64):
    """The innermost frame of the user's own code: not the standard library (asyncio
    included), preferably not an installed package either."""
    first_outside_stdlib = None
    while frame is not None and depth > 0:
        filename = frame.f_code.co_filename
        if not _is_stdlib(filename):
            if not _is_library(filename):
                return frame
            if first_outside_stdlib is None:
                first_outside_stdlib = frame
        frame = frame.f_back
        depth -= 1
    return first_outside_stdlib


def _describe(frame):
    code = frame.f_code
    return "%s:%d %s()" % (os.path.basename(code.co_filename), frame.f_lineno,
                           getattr(code, "co_qualname", code.co_name))


def _where_is(ident):
    """'app.py:88 handle()': the user line the thread with this ident is executing."""
    frame = sys._current_frames().get(ident)
    found = _user_frame(frame) if frame is not None else None
    if found is None:
        return _describe(frame) if frame is not None else None
    return _describe(found)


class _Writer:
    """One pipe, written without ever blocking the program: a full pipe drops the line."""

    def __init__(self, fd, identity):
        self.fd, self.identity = fd, identity
        self.dropped = 0
        self.closed = False

    def still_ours(self):
        try:
            st = os.fstat(self.fd)
        except OSError:
            return False
        return (st.st_dev, st.st_ino) == self.identity

    def send(self, json, event):
        if self.closed:
            return
        if not self.still_ours():  # the program closed it, or gave its number to a file
            self.closed = True
            return
        line = json.dumps(event, separators=(",", ":"), default=str).encode() + b"\n"
        if len(line) > MAX_LINE:
            line = json.dumps(_shrunk(event), separators=(",", ":"), default=str).encode() + b"\n"
            if len(line) > MAX_LINE:
                return
        try:
            os.write(self.fd, line)
        except BlockingIOError:
            self.dropped += 1
        except OSError:
            self.closed = True  # the lab went away, or the program closed the fd: stop quietly


def _shrunk(event):
    small = {}
    for key, value in event.items():
        if isinstance(value, (list, dict)) and len(value) > 8:
            small[key] = value[:8] if isinstance(value, list) else dict(list(value.items())[:8])
            small["truncated"] = True
        elif isinstance(value, str) and len(value) > 200:
            small[key] = value[:200]
        else:
            small[key] = value
    return small


def _pipe_identity(fd):
    import stat

    try:
        st = os.fstat(fd)
    except OSError:
        return None
    if not (stat.S_ISFIFO(st.st_mode) or stat.S_ISSOCK(st.st_mode)):
        return None
    return (st.st_dev, st.st_ino)


def _open_writer(environ):
    """The pipe named by the environment, checked to be the lab's very pipe for descendants
    (a closed fd's number may have been reused by one of the program's files)."""
    try:
        fd = int(environ[ENV_PROBE_FD])
    except (KeyError, ValueError):
        return None
    expected = environ.get(ENV_PROBE_PIPE)
    identity = _pipe_identity(fd)
    if expected is None:
        if identity is None:
            return None
        environ[ENV_PROBE_PIPE] = "%d:%d" % identity
        environ[ENV_PROBE_PATH] = "/proc/%d/fd/%d" % (os.getpid(), fd)
    elif identity is None or "%d:%d" % identity != expected:
        fd = _reopen(environ.get(ENV_PROBE_PATH), expected)
        if fd is None:
            return None
        identity = _pipe_identity(fd)
    try:
        os.set_blocking(fd, False)
    except OSError:
        return None
    return _Writer(fd, identity)


def _reopen(path, expected):
    if not path:
        return None
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    identity = _pipe_identity(fd)
    if identity is None or "%d:%d" % identity != expected:
        os.close(fd)
        return None
    return fd


# --- locks -----------------------------------------------------------------------------------

_waiting = {}  # ident -> (tracked lock, "app.py:12 worker()")
_natives = {}  # ident -> native thread id, learnt where threading does not know the thread
_sites = {}  # (file, line) -> how many locks were made there


def _creation_site(frame):
    """(file, line, serial) of the user's line that made the lock, or None when the lock is
    the standard library's own (an Event's, a Queue's: held only briefly inside its methods,
    so not worth a proxy). serial > 1 for later locks made at one line: each has its name."""
    code = frame.f_code
    if _is_stdlib(code.co_filename):
        if code is not _CONDITION_INIT[0]:
            return None
        frame = frame.f_back  # a Condition the program made: its lock is the program's
        if frame is None or _is_stdlib(frame.f_code.co_filename):
            return None
    site = (frame.f_code.co_filename, frame.f_lineno)
    count = _sites.get(site, 0) + 1
    _sites[site] = count
    return site + (count,)


_CONDITION_INIT = [None]


_names = {}  # (file, line) -> "lock_a" (what the line assigns the lock to) or ""


def _lock_name(lock):
    """'lock_a (app.py:12)': the variable the lock was assigned to, where it was made."""
    filename, line, serial = lock.site
    if (filename, line) not in _names:
        import linecache
        import re

        source = linecache.getline(filename, line)
        match = re.match(r"\s*([A-Za-z_][\w.]*)\s*(?::[^=]+)?=[^=]", source)
        _names[(filename, line)] = match.group(1) if match else ""
    place = "%s:%d" % (os.path.basename(filename), line)
    if serial > 1:
        place += "#%d" % serial
    variable = _names[(filename, line)]
    return "%s (%s)" % (variable, place) if variable else place


def _make_lock_types(get_ident, get_native_id, gil):
    from operator import attrgetter

    class TrackedLock:
        """A lock that remembers the last thread to acquire it (its owner while it is
        locked) and, only when contended, which thread waits at which line.

        Only acquiring runs Python code: release and __exit__ are the lock's own C methods
        (reached through a C-level property), so the program's critical sections are no
        longer than they were and the interpreter finds no more places inside them to
        switch threads (a longer one would make threads queue on the lock)."""

        __slots__ = ("_lock", "site", "_owner", "_release", "_exit", "_enter", "__weakref__")

        def __init__(self, lock, site):
            self._lock, self.site, self._owner = lock, site, None
            self._release, self._exit, self._enter = lock.release, lock.__exit__, lock.__enter__

        def acquire(self, blocking=True, timeout=-1):
            me = get_ident()
            if self._lock.acquire(False):
                self._owner = me
                return True
            if not blocking:
                return False
            return self._wait(me, timeout)

        def __enter__(self):
            me = get_ident()
            if self._lock.acquire(False):
                self._owner = me
                return True
            return self._wait(me, -1)

        _enter_slowly = __enter__

        if gil:
            def _pick_enter(self):
                """`with lock:` under a GIL: the work is done before the lock is taken and
                the lock's own C __enter__ takes it, so no thread switch can fall between
                taking the lock and the program's first line. (If another thread takes it in
                between, this wait goes unrecorded and the owner is wrong until we get it.)"""
                me = get_ident()
                if self._lock.locked():
                    return self._enter_slowly
                self._owner = me
                return self._enter

            __enter__ = property(_pick_enter)

        def _wait(self, me, timeout):
            _natives[me] = get_native_id()
            caller = _user_frame(sys._getframe(2))
            _waiting[me] = (self, _describe(caller) if caller is not None else None)
            try:
                got = self._lock.acquire(True, timeout)
                if got:
                    self._owner = me
            finally:
                _waiting.pop(me, None)
            return got

        release = property(attrgetter("_release"))
        __exit__ = property(attrgetter("_exit"))
        acquire_lock = acquire
        release_lock = release

        def owner(self):
            """The ident of the thread holding the lock, or None."""
            owner = self._owner
            return owner if self._lock.locked() else None

        def _at_fork_reinit(self):
            self._owner = None
            self._lock._at_fork_reinit()

        def __getattr__(self, name):
            if name == "_lock":
                raise AttributeError(name)
            return getattr(self._lock, name)

        def __repr__(self):
            return repr(self._lock)  # what the program would have printed

    class TrackedRLock(TrackedLock):
        __slots__ = ()
        __enter__ = TrackedLock._enter_slowly  # its owner is known to the C lock itself

        def owner(self):
            text = repr(self._lock)  # "<locked _thread.RLock object owner=1407... count=1 ...>"
            if not text.startswith("<locked"):
                return None
            try:
                return int(text.split("owner=", 1)[1].split()[0])
            except (IndexError, ValueError):
                return self._owner

        # threading.Condition: waiting gives the lock away and takes it back.
        def _acquire_restore(self, state):
            self._lock._acquire_restore(state)
            self._owner = get_ident()

    return TrackedLock, TrackedRLock


def _track_locks(threading, _thread):
    """threading.Lock and threading.RLock now make tracked locks for the program's own code
    (the standard library's internal locks stay plain)."""
    plain_lock = threading.Lock
    plain_rlock = threading.RLock
    _CONDITION_INIT[0] = threading.Condition.__init__.__code__
    check = getattr(sys, "_is_gil_enabled", None)
    TrackedLock, TrackedRLock = _make_lock_types(_thread.get_ident, threading.get_native_id,
                                                 check() if check is not None else True)
    getframe = sys._getframe

    def Lock():
        site = _creation_site(getframe(1))
        return plain_lock() if site is None else TrackedLock(plain_lock(), site)

    def RLock(*args, **kwargs):
        site = _creation_site(getframe(1))
        return plain_rlock() if site is None else TrackedRLock(plain_rlock(), site)

    if isinstance(plain_lock, type):  # 3.13+: threading.Lock is the lock type itself
        Lock = _LockTypeStandIn(plain_lock, TrackedLock)
    Lock.__doc__ = plain_lock.__doc__
    RLock.__doc__ = plain_rlock.__doc__
    threading.Lock = Lock
    threading.RLock = RLock


def _LockTypeStandIn(plain_type, tracked_type):
    """A class standing in for threading.Lock where that is a type: calling it makes a lock
    as before, and isinstance() with it still answers for plain and tracked locks alike."""

    class LockMeta(type):
        def __instancecheck__(cls, obj):
            return isinstance(obj, (plain_type, tracked_type))

        def __call__(cls):
            site = _creation_site(sys._getframe(1))
            return plain_type() if site is None else tracked_type(plain_type(), site)

    return LockMeta("lock", (), {"__module__": plain_type.__module__})


def _locks_now():
    """{lock name: owner ident} of the locks some thread waits for, and
    {waiting ident: (lock name, where)}. Only a wait can close a cycle, so the locks
    nobody waits for are left out."""
    held, waiting = {}, {}
    for ident, (lock, where) in _waiting.copy().items():
        name = _lock_name(lock)
        waiting[ident] = (name, where)
        owner = lock.owner()
        if owner is not None:
            held[name] = owner
    return held, waiting


# --- event loops -----------------------------------------------------------------------------

class _LoopWatch:
    def __init__(self, loop, ident, native, kind):
        self.loop, self.ident, self.tid, self.kind = loop, ident, native, kind
        self.sent = None  # monotonic time the pending heartbeat was scheduled
        self.where = None  # (sent, the user line seen while that heartbeat was late)
        self.samples = []
        self.blocks = []  # (lag_s, where) to report
        self.last_lag = 0.0
        self.last_ongoing = 0.0

    def beat(self, sent, monotonic):
        lag = monotonic() - sent
        self.samples.append(lag)
        if lag > BLOCKED_S:
            where = self.where
            self.blocks.append((lag, where[1] if where and where[0] == sent else None))
        self.sent = None


_loops = {}  # ident of the thread running the loop -> _LoopWatch
_stopped = []  # loops that stopped with figures not yet reported


def _loop_started(loop, threading, _thread):
    ident = _thread.get_ident()
    if loop is None:
        watch = _loops.pop(ident, None)
        if watch is not None and (watch.blocks or watch.samples):
            _stopped.append(watch)  # its last figures are still to be reported
        return
    module = type(loop).__module__ or ""
    kind = "uvloop" if module.split(".")[0] == "uvloop" else "asyncio"
    _loops[ident] = _LoopWatch(loop, ident, threading.get_native_id(), kind)


def _hook_asyncio(asyncio, threading, _thread):
    events = asyncio.events
    original = events._set_running_loop
    if getattr(original, "_conlab", False):
        return

    def _set_running_loop(loop):
        original(loop)
        try:
            _loop_started(loop, threading, _thread)
        except Exception:
            pass

    _set_running_loop._conlab = True
    events._set_running_loop = _set_running_loop
    # uvloop reads asyncio._set_running_loop when it is imported, after asyncio.
    asyncio._set_running_loop = _set_running_loop


class _AsyncioFinder:
    """Patches asyncio right after it is first imported (so the program pays nothing for an
    asyncio it never uses) and then takes itself off sys.meta_path."""

    def __init__(self, threading, _thread):
        self.threading, self._thread = threading, _thread

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "asyncio":
            return None
        try:
            sys.meta_path.remove(self)
        except ValueError:
            pass
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            spec = find(fullname, path, target) if find is not None else None
            if spec is not None:
                break
        else:
            return None
        if spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _PatchingLoader(spec.loader, self)
        return spec

    def patch(self, module):
        try:
            _hook_asyncio(module, self.threading, self._thread)
        except Exception:
            pass


class _PatchingLoader:
    def __init__(self, loader, finder):
        self._loader, self._finder = loader, finder

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        self._finder.patch(module)

    def __getattr__(self, name):
        return getattr(self._loader, name)


# --- the probe thread ------------------------------------------------------------------------

class _Probe:
    def __init__(self, writer, threading, _thread):
        self.writer, self.threading, self._thread = writer, threading, _thread
        self.pid = os.getpid()
        self.tid = None
        self.json = None
        self.greeted = False
        self.cpu_s = 0.0  # the probe thread's own CPU time so far
        self.greeting = _thread.allocate_lock()  # hello before anything, from either thread
        self.threads = None
        self.threads_at = 0.0
        self.locks_prev = None  # the last look (only facts seen twice in a row are reported)
        self.locks_sent = ({}, {})
        self.locks_at = 0.0

    def start(self):
        self._thread.start_new_thread(self.run, ())

    def run(self):
        try:
            import time

            self.monotonic = time.monotonic
            self.tid = self.threading.get_native_id()
            self.thread_time = time.thread_time
            self._name_thread()
            self.hello()
            while not self.writer.closed and self.pid == os.getpid():
                self.tick()
                self.cpu_s = self.thread_time()
                time.sleep(TICK_LOOPS_S if _loops else TICK_IDLE_S)
        except Exception:
            pass  # never disturb the program

    def _name_thread(self):
        try:
            with open("/proc/self/task/%d/comm" % self.tid, "w") as f:
                f.write(THREAD_NAME)
        except OSError:
            pass

    def send(self, event):
        if self.json is None:
            import json

            self.json = json
        event["pid"] = self.pid
        self.writer.send(self.json, event)

    def hello(self):
        if not self.greeting.acquire(True, 1.0):
            return
        try:
            if not self.greeted:
                self._hello()
                self.greeted = True
        finally:
            self.greeting.release()

    def _hello(self):
        check = getattr(sys, "_is_gil_enabled", None)
        self.send({"ev": "probe_hello", "python": sys.executable,
                   "version": "%d.%d.%d" % sys.version_info[:3],
                   "gil_enabled": bool(check()) if check is not None else True,
                   "free_threaded": "t" in getattr(sys, "abiflags", ""),
                   "argv": list(sys.argv), "ppid": os.getppid(), "probe_tid": self.tid})

    def tick(self):
        now = self.monotonic()
        if _QUIET_FORK:
            _unquiet_fork(older_than=0.5)
        if _stopped:
            self.flush_stopped()
        if _loops:
            self.loops(now)
        if now - self.threads_at >= THREADS_EVERY_S:
            self.report_threads(now)
        if now - self.locks_at >= LOCKS_EVERY_S:
            self.report_locks(now)

    def report_threads(self, now):
        rows = sorted((t.native_id, t.name, bool(t.daemon)) for t in self.threading.enumerate()
                      if t.native_id is not None)
        if rows != self.threads:
            self.threads, self.threads_at = rows, now
            listed = [{"tid": tid, "name": name, "daemon": daemon}
                      for tid, name, daemon in rows[:MAX_ITEMS]]
            event = {"ev": "probe_threads", "threads": listed}
            if len(rows) > MAX_ITEMS:
                event["more"] = len(rows) - MAX_ITEMS
            self.send(event)

    def flush_stopped(self):
        while _stopped:
            watch = _stopped.pop(0)
            self.report_blocks(watch)
            self.report_lag(watch, self.monotonic())

    def report_blocks(self, watch):
        if watch.blocks:
            blocks, watch.blocks = watch.blocks, []
            for lag, where in blocks[-4:]:
                self.blocked(watch, lag, where, ongoing=False)

    def report_lag(self, watch, now):
        if watch.samples:
            samples, watch.samples = sorted(watch.samples), []
            watch.last_lag = now
            self.send({"ev": "loop_lag", "tid": watch.tid, "loop": watch.kind,
                       "p50_ms": _ms(_quantile(samples, 0.5)),
                       "p99_ms": _ms(_quantile(samples, 0.99)), "max_ms": _ms(samples[-1]),
                       "beats": len(samples)})

    def loops(self, now):
        for watch in list(_loops.values()):
            self.report_blocks(watch)
            sent = watch.sent  # read once: the loop's thread clears it when the beat runs
            if sent is None:
                try:
                    watch.sent = now
                    watch.loop.call_soon_threadsafe(watch.beat, now, self.monotonic)
                except Exception:  # closed, or stopped between two looks
                    _loops.pop(watch.ident, None)
                    continue
            else:
                late = now - sent
                if late > BLOCKED_S and (watch.where is None or watch.where[0] != sent):
                    watch.where = (sent, _where_is(watch.ident))
                if late > ONGOING_EVERY_S and now - watch.last_ongoing >= ONGOING_EVERY_S:
                    watch.last_ongoing = now
                    where = watch.where
                    self.blocked(watch, late, where[1] if where and where[0] == sent else None,
                                 ongoing=True)
            if now - watch.last_lag >= LAG_EVERY_S:
                self.report_lag(watch, now)

    def blocked(self, watch, lag, where, ongoing):
        self.send({"ev": "loop_blocked", "tid": watch.tid, "lag_ms": _ms(lag),
                   "where": where or "?", "loop": watch.kind, "ongoing": ongoing})

    def report_locks(self, now):
        self.locks_at = now
        held, waiting = _locks_now()
        previous, self.locks_prev = self.locks_prev, (held, waiting)
        if previous is None:
            return
        # A hold or wait seen at two looks in a row: brief ones would only be noise.
        held = {name: ident for name, ident in held.items() if previous[0].get(name) == ident}
        waiting = {ident: fact for ident, fact in waiting.items() if previous[1].get(ident) == fact}
        facts = (held, waiting)
        if facts == self.locks_sent:
            return
        self.locks_sent = facts
        known = {t.ident: t for t in self.threading.enumerate()}
        idents = set(held.values()) | set(waiting)

        def tid(ident):
            thread = known.get(ident)
            native = thread.native_id if thread is not None else None
            return str(native or _natives.get(ident) or ident)

        where = {tid(ident): place for ident, (_name, place) in waiting.items() if place}
        for ident in idents:
            if tid(ident) not in where:
                place = _where_is(ident)
                if place:
                    where[tid(ident)] = place
        self.send({"ev": "locks",
                   "held": {name: int(tid(ident)) for name, ident in
                            sorted(held.items())[:MAX_ITEMS]},
                   "waiting": {tid(ident): name for ident, (name, _p) in
                               sorted(waiting.items())[:MAX_ITEMS]},
                   "names": {tid(ident): (known[ident].name if ident in known else "?")
                             for ident in idents},
                   "where": where})

    def bye(self):
        """At exit (a program may end before the probe's thread has said hello)."""
        if self.pid == os.getpid() and not self.writer.closed:
            self.hello()
            if getattr(self, "monotonic", None) is not None:
                self.flush_stopped()
            event = {"ev": "probe_bye", "probe_cpu_ms": _ms(self.cpu_s)}
            if self.writer.dropped:
                event["dropped"] = self.writer.dropped
            self.send(event)


def _quantile(ordered, q):
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _ms(seconds):
    return round(seconds * 1000.0, 1)


_PROBE = []


def start(environ=None):
    """Start the probe in this process if the lab asked for it; True if it did."""
    environ = os.environ if environ is None else environ
    if _PROBE or ENV_PROBE_FD not in environ:
        return False
    writer = _open_writer(environ)
    if writer is None:
        return False
    import _thread
    import atexit
    import threading

    probe = _Probe(writer, threading, _thread)
    _PROBE.append(probe)
    _track_locks(threading, _thread)
    if "asyncio" in sys.modules:
        _hook_asyncio(sys.modules["asyncio"], threading, _thread)
    else:
        sys.meta_path.insert(0, _AsyncioFinder(threading, _thread))
    atexit.register(_at_exit)
    os.register_at_fork(before=_before_fork, after_in_child=_after_fork)
    probe.start()
    return True


def _at_exit():
    try:
        _PROBE[0].bye()
    except Exception:
        pass  # never a traceback in the program's stderr


_QUIET_FORK = []  # [(the warnings filter entry, when it was added)] while one is in place


def _before_fork():
    """From 3.12 os.fork() warns when the process runs other threads. A program whose only
    other thread is the probe's must not get that warning (on its stderr, or as an error
    under -W error): for that fork, a filter ignores it. CPython warns after the fork
    hooks have run, so the probe's thread takes the filter away a moment later."""
    if sys.version_info < (3, 12):
        return
    try:
        if _os_threads() > 2:
            _unquiet_fork()  # the program's own threads: the warning is the program's
        elif not _QUIET_FORK:
            import time
            import warnings

            warnings.filterwarnings("ignore", message=r"This process \(pid=\d+\) is multi-threaded",
                                    category=DeprecationWarning)
            _QUIET_FORK.append((warnings.filters[0], time.monotonic()))
    except Exception:
        pass


def _unquiet_fork(older_than=None):
    if not _QUIET_FORK:
        return
    import time
    import warnings

    entry, added = _QUIET_FORK[0]
    if older_than is not None and time.monotonic() - added < older_than:
        return
    _QUIET_FORK.clear()
    try:
        warnings.filters.remove(entry)
        mutated = getattr(warnings, "_filters_mutated", None)
        if mutated is not None:
            mutated()
    except Exception:
        pass


def _os_threads():
    """The threads of this process as the kernel counts them (what 3.12's warning counts)."""
    try:
        with open("/proc/self/stat", "rb") as f:
            return int(f.read().rsplit(b")", 1)[1].split()[17])
    except (OSError, ValueError, IndexError):
        return 0


def _after_fork():
    _unquiet_fork()  # a child does not warn
    """In a forked child: a fresh probe with the child's pid, none of the parent's threads."""
    try:
        old = _PROBE[0]
        me = old._thread.get_ident()
        _waiting.clear()
        loop = _loops.get(me)
        _loops.clear()
        if loop is not None:
            _loops[me] = _LoopWatch(loop.loop, me, old.threading.get_native_id(), loop.kind)
        probe = _Probe(old.writer, old.threading, old._thread)
        _PROBE[0] = probe
        probe.start()
    except Exception:
        pass
