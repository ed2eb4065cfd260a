"""The child's side of the lab protocol: JSON lines to the parent, named threads,
processes that die with their parent, and the kernel's own figures for each thread.

Standard library only, Python 3.9+. Every event is one line, written with a single
os.write() so lines from threads and forked worker processes sharing the pipe never
interleave (writes up to PIPE_BUF bytes are atomic on a pipe).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import sysconfig
import threading
import time

PROTOCOL_VERSION = 1

# Environment the lab sets for the child.
ENV_EVENT_FD = "CONLAB_EVENT_FD"  # where to write events (else: the original stdout)
ENV_PARENT_PID = "CONLAB_PARENT_PID"  # die if this process is no longer our parent
ENV_CPU_CLOCKS = "CONLAB_CPU_CLOCKS"  # seconds between thread CPU clock reports (off if unset)
ENV_COMMAND_FD = "CONLAB_COMMAND_FD"  # the parent's commands come in on this fd (else stdin)
COMMAND_LINE_MAX = 4096  # a longer command line is refused, not read on and on

PR_SET_NAME = 15
PR_SET_PDEATHSIG = 1


def _libc():
    try:
        import ctypes
        import ctypes.util

        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except (OSError, ImportError):
        return None


_LIBC = _libc() if sys.platform.startswith("linux") else None


def die_with_parent(expected_parent=None):
    """Ask the kernel to SIGKILL this process when its parent goes away.

    The signal fires when the *thread* that forked us exits, so the lab forks from a
    long-lived thread. If the parent died before we got here, leave now.
    """
    if _LIBC is not None:
        _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if expected_parent is not None and os.getppid() != expected_parent:
        os._exit(1)


def name_this_thread(name):
    """Give the calling thread an OS-visible name (what htop and /proc/TID/comm show)."""
    if _LIBC is not None:
        _LIBC.prctl(PR_SET_NAME, name.encode("utf-8", "replace")[:15], 0, 0, 0)


def gil_enabled():
    check = getattr(sys, "_is_gil_enabled", None)
    return bool(check()) if check is not None else True


def free_threaded():
    """A build made with --disable-gil (its GIL may still be forced on: PYTHON_GIL=1)."""
    return bool(sysconfig.get_config_var("Py_GIL_DISABLED"))


def interpreter_facts():
    return {
        "executable": sys.executable,
        "version": "%d.%d.%d" % sys.version_info[:3],
        "implementation": sys.implementation.name,
        "gil_enabled": gil_enabled(),
        "free_threaded": free_threaded(),
        "switch_interval_s": sys.getswitchinterval(),
    }


def cpus_available():
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return list(range(os.cpu_count() or 1))


def thread_stats(tid=None):
    """The kernel's figures for one of our threads (default: the caller).

    schedstat: nanoseconds on a CPU, nanoseconds runnable but waiting for one, time
    slices; status: voluntary and involuntary context switches.
    """
    tid = tid or threading.get_native_id()
    base = "/proc/self/task/%d/" % tid
    stats = {"native_id": tid}
    try:
        with open(base + "schedstat") as f:
            on_cpu, waiting, _slices = f.read().split()
        stats["cpu_s"] = int(on_cpu) / 1e9
        stats["run_delay_s"] = int(waiting) / 1e9
        with open(base + "status") as f:
            for line in f:
                if line.startswith("voluntary_ctxt_switches"):
                    stats["voluntary"] = int(line.split()[1])
                elif line.startswith("nonvoluntary_ctxt_switches"):
                    stats["involuntary"] = int(line.split()[1])
    except (OSError, ValueError):
        stats["cpu_s"] = time.thread_time()
    return stats


def own_status(*keys):
    """Numeric fields of /proc/self/status (VmRSS, VmSize in kB; Threads): {} off Linux."""
    found = {}
    try:
        with open("/proc/self/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in keys:
                    found[key] = int(value.split()[0])
    except OSError:
        pass
    return found


class Events:
    """Writes protocol events; one instance per process (re-made after fork)."""

    def __init__(self, fd, experiment=""):
        self.fd = fd
        self.experiment = experiment
        self._lock = threading.Lock()
        self._last_sent = {}
        self._pending = {}

    def emit(self, ev, **fields):
        record = {"v": PROTOCOL_VERSION, "ev": ev, "ts": time.monotonic(), "pid": os.getpid()}
        record.update(fields)
        line = (json.dumps(record, separators=(",", ":"), default=str) + "\n").encode()
        with self._lock:
            view = memoryview(line)
            while view:
                written = os.write(self.fd, view)
                view = view[written:]

    def latest(self, ev, key="", interval=0.1, final=False, **fields):
        """Send at most one `ev` per `interval` seconds (per key); the newest wins.

        This keeps a hot loop from flooding the parent: the UI wants the latest state a
        few times a second, not every step. `final=True` sends now and drops any value
        still held back for that key, so nothing stale follows it; flush() sends what is
        held back at the end.
        """
        slot = (ev, key)
        now = time.monotonic()
        if final or now - self._last_sent.get(slot, 0.0) >= interval:
            self._last_sent[slot] = now
            self._pending.pop(slot, None)
            self.emit(ev, **fields)
        else:
            self._pending[slot] = fields

    def flush(self):
        for (ev, _key), fields in list(self._pending.items()):
            self.emit(ev, **fields)
        self._pending.clear()

    def _after_fork(self):
        self._lock = threading.Lock()
        self._last_sent = {}
        self._pending = {}


_events = None


def events():
    """This process's event writer (set up by `python -m workloads`)."""
    global _events
    if _events is None:
        fd = os.environ.get(ENV_EVENT_FD)
        if fd is None:
            # Run by hand: keep events on the real stdout and send stray prints to stderr,
            # so the stream stays parseable.
            fd = os.dup(1)
            os.dup2(2, 1)
        _events = Events(int(fd))
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=_events._after_fork)
    return _events


# Threads and processes that report themselves ------------------------------------------


def start_thread(target, name, role="worker", args=()):
    """Start a named thread that announces itself and reports its kernel figures at exit."""

    def body():
        name_this_thread(name)
        out = events()
        out.emit("thread", native_id=threading.get_native_id(), name=name, role=role)
        try:
            target(*args)
        finally:
            out.emit("thread_exit", name=name, role=role, **thread_stats())

    thread = threading.Thread(target=body, name=name, daemon=True)
    thread.start()
    return thread


def _process_body(parent_pid, name, role, target, args, conn):
    die_with_parent(parent_pid)
    name_this_thread(name)
    out = events()
    out.emit("process", name=name, role=role, ppid=parent_pid,
             native_id=threading.get_native_id())
    value = None
    try:
        value = target(*args)
    finally:
        times = os.times()
        out.emit("process_exit", name=name, role=role, process_cpu_s=times.user + times.system,
                 **thread_stats())
        if conn is not None:
            conn.send(value)
            conn.close()


def process_context():
    """multiprocessing with fork where it exists: no resource tracker, no re-import."""
    import multiprocessing

    try:
        return multiprocessing.get_context("fork")
    except ValueError:
        return multiprocessing.get_context()


def start_process(target, name, role="worker", args=(), want_result=False):
    """Start a worker process (multiprocessing, like the article) that dies with us.

    Returns (process, receiver); receiver.recv() gives target's return value when
    want_result is true.
    """
    context = process_context()
    receiver = sender = None
    if want_result:
        receiver, sender = context.Pipe(duplex=False)
    process = context.Process(
        target=_process_body, args=(os.getpid(), name, role, target, args, sender), name=name,
        daemon=True,
    )
    process.start()
    if sender is not None:
        sender.close()
    return process, receiver


# Optional: exact per-thread CPU clocks, reported by the child itself ---------------------


def start_cpu_clock_reporter(interval):
    """Report every thread's CPU clock (pthread_getcpuclockid: exact, no tick rounding).

    Used to check the parent's sampler; off unless the lab asks for it, since the
    reporter thread needs the GIL a few times a second.
    """

    def report():
        name_this_thread("cpu-clocks")
        out = events()
        while True:
            clocks = {}
            read_at = time.monotonic()  # we hold the GIL: the other threads' clocks stand still
            for thread in threading.enumerate():
                try:
                    clock = time.pthread_getcpuclockid(thread.ident)
                    clocks[str(thread.native_id)] = time.clock_gettime(clock)
                except (OSError, AttributeError, TypeError):
                    continue
            out.emit("cpu_clocks", clocks=clocks, at=read_at)
            time.sleep(interval)

    threading.Thread(target=report, name="cpu-clocks", daemon=True).start()


# Commands: the parent -> child direction ---------------------------------------------------


class CommandRefused(ValueError):
    """A command line the child cannot follow; str() is the one-line reason."""

    def __init__(self, reason, cmd=None, ident=None):
        super().__init__(reason)
        self.cmd = cmd
        self.ident = ident


def parse_command(line, known):
    """One command line -> its dict, checked against `known` ({name: required fields}).

    Raises CommandRefused with a one-line reason for anything else: not JSON, not an
    object, a version this child does not speak, an unknown command, a missing field.
    """
    if len(line) > COMMAND_LINE_MAX:
        raise CommandRefused("command longer than %d bytes" % COMMAND_LINE_MAX)
    try:
        command = json.loads(line.decode("utf-8", "replace") if isinstance(line, bytes) else line)
    except ValueError:
        raise CommandRefused("not a JSON command: %s" % _clip(line)) from None
    if not isinstance(command, dict):
        raise CommandRefused("a command is a JSON object, got %s" % _clip(line))
    cmd, ident = command.get("cmd"), command.get("id")
    if command.get("v") != PROTOCOL_VERSION:
        raise CommandRefused("protocol version %r not understood (this child speaks v=%d)"
                             % (command.get("v"), PROTOCOL_VERSION), cmd, ident)
    if cmd not in known:
        raise CommandRefused("unknown command %r (known: %s)" % (cmd, ", ".join(sorted(known))),
                             cmd, ident)
    for name in known[cmd]:
        if name not in command:
            raise CommandRefused("command %r needs the field %r" % (cmd, name), cmd, ident)
    return command


def _clip(line, width=60):
    text = line.decode("utf-8", "replace") if isinstance(line, bytes) else str(line)
    text = text.strip()
    return text if len(text) <= width else text[:width] + "..."


def command_lines():
    """The parent's command lines, one bytes line at a time, until EOF (the parent closed
    its end or died). Blocking reads: the caller has nothing else to do meanwhile."""
    fd = os.environ.get(ENV_COMMAND_FD)
    stream = os.fdopen(int(fd) if fd else os.dup(0), "rb", 0)
    with stream:
        while True:
            line = stream.readline(COMMAND_LINE_MAX + 1)
            if not line:
                return
            if len(line) > COMMAND_LINE_MAX and not line.endswith(b"\n"):
                while line and not line.endswith(b"\n"):  # drop the rest of the long line
                    line = stream.readline(COMMAND_LINE_MAX + 1)
                yield b"x" * (COMMAND_LINE_MAX + 1)
                continue
            if line.strip():
                yield line
