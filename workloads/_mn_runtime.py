"""A small M:N scheduler with the names and the shape of Go's (runtime/proc.go), in Python.

    G       a goroutine: a generator and its status. Inside a G,
              `yield`                        is a yield point: sysmon's preemption request
                                             is honoured here (Go checks at function entry),
              `yield syscall(fn, *args)`     makes a blocking system call,
              `yield gosched()`              gives the P to someone else (runtime.Gosched),
              `yield wg.wait()`              parks the G until the WaitGroup reaches zero.
    M       a machine: one OS thread. It runs Gs, but only while it holds a P.
    P       a processor: the right to run Gs. GOMAXPROCS of them, each with a local run
            queue of 256 slots and a `runnext` slot for the G it readied last.
    sched   the global run queue, the idle Ps, the idle Ms, the spinning-M count.
    sysmon  a thread with no P. It (a) asks a G that has run for 10 ms to yield at its
            next yield point, and (b) retakes the P of an M stuck in a system call and
            hands it to another M, starting a new one if none is idle - which is how a Go
            program ends up with more threads than GOMAXPROCS.

Left out: the netpoller, timers, the garbage collector, signal-based preemption, and
lock-free queues (each P's queue has a small lock instead). Under a GIL the Ms take turns
running Python; they only overlap inside system calls that release the GIL.
Standard library only, Python 3.9+.
"""

from __future__ import annotations

import collections
import inspect
import itertools
import random
import threading
import time

LOCAL_RUNQ = 256  # len(p.runq) in Go
GLOBAL_CHECK_EVERY = 61  # every 61st schedule looks at the global queue first (fairness)
FORCE_PREEMPT_S = 0.010  # forcePreemptNS: a G may run this long before sysmon asks it to yield
SYSCALL_RETAKE_S = 0.010  # retake an idle-looking P from a syscall after this long anyway
SYSMON_MIN_S = 0.001  # Go starts at 20 us; a Python thread cannot usefully wake that often
SYSMON_MAX_S = 0.010
STEAL_ROUNDS = 4  # stealWork tries every P this many times

# G status (Go: _Grunnable, _Grunning, _Gsyscall, _Gwaiting, _Gdead)
RUNNABLE, RUNNING, SYSCALL, WAITING, DEAD = "runnable", "running", "syscall", "waiting", "dead"
# P status (Go: _Pidle, _Prunning, _Psyscall)
P_IDLE, P_RUNNING, P_SYSCALL = "idle", "running", "syscall"


# What a G can yield ------------------------------------------------------------------------
class Syscall:
    __slots__ = ("fn", "args")

    def __init__(self, fn, args):
        self.fn, self.args = fn, args


def syscall(fn, *args):
    """`result = yield syscall(os.read, fd, 1)`: a call that may block this M in the kernel."""
    return Syscall(fn, args)


GOSCHED = "gosched"


def gosched():
    """`yield gosched()`: put this G on the global queue and let the P run something else."""
    return GOSCHED


class Park:
    __slots__ = ("waitq",)

    def __init__(self, waitq):
        self.waitq = waitq


class WaitGroup:
    """sync.WaitGroup: add(n), done() from any G or thread, `yield wg.wait()` in a G."""

    def __init__(self, rt, count=0):
        self.rt = rt
        self.lock = threading.Lock()
        self.count = count
        self.waiters = []

    def add(self, n=1):
        with self.lock:
            self.count += n

    def done(self):
        with self.lock:
            self.count -= 1
            if self.count < 0:
                raise RuntimeError("negative WaitGroup counter")
            if self.count:
                return
            waiters, self.waiters = self.waiters, []
        for g in waiters:
            self.rt.goready(g)

    def wait(self):
        return Park(self)

    def try_park(self, g):
        """gopark: queue `g` here unless the count is already zero (then it runs on)."""
        with self.lock:
            if self.count == 0:
                return False
            g.status = WAITING
            self.waiters.append(g)
            return True


# G, M, P -------------------------------------------------------------------------------------
class G:
    __slots__ = ("goid", "coro", "status", "m", "preempt", "sendval", "throwval", "error")

    def __init__(self, goid, coro):
        self.goid = goid
        self.coro = coro
        self.status = RUNNABLE
        self.m = None
        self.preempt = False  # set by sysmon; honoured at the next yield point
        self.sendval = None  # what the G's pending `yield` evaluates to (a syscall's result)
        self.throwval = None  # or the exception it raises
        self.error = None


class P:
    __slots__ = ("id", "status", "m", "runq", "runnext", "lock", "schedtick", "syscalltick",
                 "seen_schedtick", "seen_schedwhen", "seen_syscalltick", "seen_syscallwhen")

    def __init__(self, pid):
        self.id = pid
        self.status = P_IDLE
        self.m = None
        self.runq = collections.deque()  # at most LOCAL_RUNQ Gs
        self.runnext = None
        self.lock = threading.Lock()  # Go uses atomics on head/tail; a lock reads easier
        self.schedtick = 0  # incremented on every schedule
        self.syscalltick = 0  # incremented on every system call return (and retake)
        # what sysmon saw last time (Go: p.sysmontick)
        self.seen_schedtick = self.seen_syscalltick = -1
        self.seen_schedwhen = self.seen_syscallwhen = 0.0

    def has_work(self):
        return self.runnext is not None or bool(self.runq)


class M:
    __slots__ = ("id", "p", "nextp", "oldp", "curg", "spinning", "idle", "park", "tid",
                 "cpu_s", "exited")

    def __init__(self, mid):
        self.id = mid
        self.p = None
        self.nextp = None  # the P startm handed us, acquired when we wake
        self.oldp = None  # the P we held when we entered a system call
        self.curg = None
        self.spinning = False  # looking for work to steal
        self.idle = False  # parked on sched.midle
        self.park = threading.Event()  # Go: m.park note
        self.tid = None
        self.cpu_s = 0.0
        self.exited = False


def _as_generator(fn, args):
    """A G's body. A generator function's generator, else a generator that makes the call
    when the G first runs (and follows it if it returns a generator)."""
    if inspect.isgeneratorfunction(fn):
        return fn(*args)
    return _deferred(fn, args)


def _deferred(fn, args):
    result = fn(*args)
    if hasattr(result, "send") and hasattr(result, "throw"):
        result = yield from result
    return result


def _plain_thread(target, name, args):
    thread = threading.Thread(target=target, name=name, args=args, daemon=True)
    thread.start()
    return thread


# The runtime -----------------------------------------------------------------------------------
class Runtime:
    """One scheduler: `Runtime(gomaxprocs).run(main, *args)` runs `main` as G1 until it returns."""

    def __init__(self, gomaxprocs, start_thread=None, max_ms=10_000):
        self.gomaxprocs = gomaxprocs
        self.allp = [P(i) for i in range(gomaxprocs)]
        self.allm = []
        self.lock = threading.Lock()  # sched.lock: global queue, pidle, midle, counters
        self.runq = collections.deque()  # the global run queue
        self.pidle = []  # idle Ps
        self.midle = []  # idle Ms, parked
        self.nmspinning = 0
        self.allgs = {}  # live Gs by goid
        self.goidgen = itertools.count(1)
        self.max_ms = max_ms  # Go: debug.SetMaxThreads (Go aborts past it; we stop starting Ms)
        self.exiting = False
        self.main_g = None
        self.main_done = threading.Event()
        self.crash = None
        self._start_thread = start_thread or _plain_thread
        self._threads = []
        self.tls = threading.local()
        # counters for the trace (changed under self.lock)
        self.gs_created = self.gs_done = 0
        self.steals = self.stolen_gs = self.handoffs = 0
        self.preempt_requests = self.preemptions = self.mcap_hits = 0

    # Spawning and readying Gs ---------------------------------------------------------------
    def go(self, fn, *args):
        """newproc: make a G for fn(*args) and put it in this P's runnext (the newest G runs next)."""
        g = G(next(self.goidgen), _as_generator(fn, args))
        with self.lock:
            self.allgs[g.goid] = g
            self.gs_created += 1
        self._ready(g)
        return g

    def goready(self, g):
        """A parked G can run again: into the current P's runnext, like Go's ready()."""
        g.status = RUNNABLE
        self._ready(g)

    def _ready(self, g):
        m = getattr(self.tls, "m", None)
        if m is not None and m.p is not None:
            self.runqput(m.p, g, next=True)
        else:  # readied from outside the runtime (no P): the global queue
            with self.lock:
                self.runq.append(g)
        self.wakep()

    # Run queues -------------------------------------------------------------------------------
    def runqput(self, p, g, next=False):
        """Into p's runnext (kicking the old one to the tail) or the tail of its local queue;
        a full queue sends half of itself, plus g, to the global queue (runqputslow)."""
        with p.lock:
            if next:
                g, p.runnext = p.runnext, g
                if g is None:
                    return
            if len(p.runq) < LOCAL_RUNQ:
                p.runq.append(g)
                return
            batch = [p.runq.popleft() for _ in range(LOCAL_RUNQ // 2)]
        batch.append(g)
        with self.lock:
            self.runq.extend(batch)

    def runqget(self, p):
        """(g, inherit_time): runnext first (it inherits the time slice), then the queue head."""
        with p.lock:
            if p.runnext is not None:
                g, p.runnext = p.runnext, None
                return g, True
            if p.runq:
                return p.runq.popleft(), False
        return None, False

    def globrunqget(self, p, most=0):
        """Take a fair share of the global queue: one to run, the rest into p's local queue.
        Caller holds self.lock."""
        if not self.runq:
            return None
        n = min(len(self.runq), len(self.runq) // self.gomaxprocs + 1, LOCAL_RUNQ // 2)
        if most:
            n = min(n, most)
        g = self.runq.popleft()
        with p.lock:
            for _ in range(min(n - 1, LOCAL_RUNQ - len(p.runq))):
                p.runq.append(self.runq.popleft())
        return g

    def runqsteal(self, p, victim, steal_runnext):
        """Take half of victim's local queue (rounded up) into p's; return one to run."""
        with victim.lock:
            n = len(victim.runq) - len(victim.runq) // 2
            stolen = [victim.runq.popleft() for _ in range(n)]
            if not stolen and steal_runnext and victim.runnext is not None:
                stolen, victim.runnext = [victim.runnext], None
        if not stolen:
            return None
        with p.lock:
            p.runq.extend(stolen[1:])
        with self.lock:
            self.steals += 1
            self.stolen_gs += len(stolen)
        return stolen[0]

    # Finding work --------------------------------------------------------------------------------
    def findrunnable(self, m):
        """A G for m to run, or None after m gave its P back (then m stops)."""
        p = m.p
        if p.schedtick % GLOBAL_CHECK_EVERY == 0 and self.runq:
            with self.lock:
                g = self.globrunqget(p, 1)
            if g is not None:
                return self.found(m, g, False)
        g, inherit = self.runqget(p)
        if g is not None:
            return self.found(m, g, inherit)
        if self.runq:
            with self.lock:
                g = self.globrunqget(p)
            if g is not None:
                return self.found(m, g, False)
        # Steal - unless half the busy Ps already have a spinning M (they would only fight).
        if m.spinning or 2 * self.nmspinning < self.gomaxprocs - len(self.pidle):
            if not m.spinning:
                with self.lock:
                    m.spinning = True
                    self.nmspinning += 1
            g = self.stealwork(m)
            if g is not None:
                return self.found(m, g, False)
        # Nothing anywhere: give the P back.
        with self.lock:
            g = self.globrunqget(p)
            if g is None:
                self.releasep(m)
                self.pidle.append(p)
                if m.spinning:
                    m.spinning = False
                    self.nmspinning -= 1
        if g is not None:
            return self.found(m, g, False)
        # Work queued after we looked may have seen no idle P (ours was not idle yet) and
        # no reason to wake anyone: look once more now that our P is idle, as Go does.
        if any(other.has_work() for other in self.allp):
            with self.lock:
                if self.pidle and not self.exiting:
                    self.acquirep(m, self.pidle.pop())
                    m.spinning = True
                    self.nmspinning += 1
        return None, False

    def stealwork(self, m):
        """Visit the other Ps in a random order, a few rounds, taking half a queue."""
        count = self.gomaxprocs
        for attempt in range(STEAL_ROUNDS):
            start = random.randrange(count)
            for i in range(count):
                victim = self.allp[(start + i) % count]
                if victim is m.p:
                    continue
                g = self.runqsteal(m.p, victim, steal_runnext=attempt == STEAL_ROUNDS - 1)
                if g is not None:
                    return g
            if self.runq or self.exiting:
                return None
        return None

    def found(self, m, g, inherit):
        if m.spinning:
            self.resetspinning(m)
        return g, inherit

    def resetspinning(self, m):
        """A spinning M found work: stop spinning and, if it was the last, wake another."""
        with self.lock:
            m.spinning = False
            self.nmspinning -= 1
        self.wakep()

    def wakep(self):
        """There is new work: if a P is idle and no M is already looking, start one looking."""
        with self.lock:
            if not self.pidle or self.nmspinning != 0 or self.exiting:
                return
            self.nmspinning += 1
        self.startm(None, spinning=True)

    # Ms and Ps ---------------------------------------------------------------------------------
    def startm(self, p, spinning):
        """Run an M on p (or on any idle P): an idle M if there is one, else a new thread."""
        new = None
        with self.lock:
            if p is None:
                p = self.pidle.pop() if self.pidle else None
            capped = not self.midle and len(self.allm) >= self.max_ms
            if p is None or self.exiting or capped:
                if p is not None:
                    self.pidle.append(p)
                    self.mcap_hits += capped
                if spinning:
                    self.nmspinning -= 1
                return
            if self.midle:
                m = self.midle.pop()
                m.idle = False
            else:
                m = new = M(len(self.allm))
                self.allm.append(m)
            m.spinning = spinning
            m.nextp = p
        if new is not None:
            self._threads.append(self._start_thread(self.mstart, "M%d" % new.id, (new,)))
        else:
            m.park.set()

    def stopm(self, m):
        """No P for this M: park on the idle list until startm gives it one."""
        with self.lock:
            if self.exiting:
                return False
            m.park.clear()
            m.idle = True
            self.midle.append(m)
        m.park.wait()
        with self.lock:
            if self.exiting:
                return False
            self.acquirep(m, m.nextp)
            m.nextp = None
        return True

    def acquirep(self, m, p):
        """Caller holds self.lock."""
        m.p, p.m, p.status = p, m, P_RUNNING

    def releasep(self, m):
        """Caller holds self.lock."""
        p = m.p
        m.p, p.m, p.status = None, None, P_IDLE
        return p

    def handoffp(self, p):
        """A P taken from an M in a system call: run it on another M if there is work for it
        (or if nobody at all is looking for work), else leave it idle."""
        if p.has_work() or self.runq:
            self.startm(p, spinning=False)
            return
        with self.lock:
            if self.nmspinning + len(self.pidle) == 0 and not self.exiting:
                self.nmspinning += 1
                spin = True
            else:
                self.pidle.append(p)
                spin = False
        if spin:
            self.startm(p, spinning=True)

    # An M's life ---------------------------------------------------------------------------
    def mstart(self, m):
        m.tid = threading.get_native_id()
        self.tls.m = m
        try:
            with self.lock:
                self.acquirep(m, m.nextp)
                m.nextp = None
            self.schedule(m)
        except BaseException as exc:  # a bug in the runtime: stop everything, say why
            self.crash = exc
            self.exit()
        finally:
            m.cpu_s = time.thread_time()
            m.exited = True

    def schedule(self, m):
        """The M's loop: find a runnable G, run it until it stops running, again."""
        while not self.exiting:
            if m.p is None and not self.stopm(m):
                return
            g, inherit = self.findrunnable(m)
            if g is not None:
                self.execute(m, g, inherit)

    def execute(self, m, g, inherit):
        """Run g on m until it ends, parks, yields its P or loses it in a system call."""
        p = m.p
        if not inherit:
            p.schedtick += 1
        g.status, g.m, m.curg = RUNNING, m, g
        while True:
            value, throw = g.sendval, g.throwval
            g.sendval = g.throwval = None
            try:
                op = g.coro.throw(throw) if throw is not None else g.coro.send(value)
            except StopIteration:
                self.goexit(m, g)
                return
            except Exception as exc:  # a G that raised: record it and end it (Go would panic)
                g.error = exc
                self.goexit(m, g)
                return
            if op is None:  # a yield point
                if self.exiting:  # main returned: like Go, the rest are abandoned
                    return
                if g.preempt:
                    g.preempt = False
                    self.gopreempt(m, g)
                    return
                continue
            if op is GOSCHED:
                self.gopreempt(m, g, requested=False)
                return
            if type(op) is Syscall:
                if not self.do_syscall(m, g, op):
                    return  # g went to the global queue; this M has no P and will stop
                continue
            if type(op) is Park:
                m.curg = None
                if op.waitq.try_park(g):
                    return  # g belongs to the wait queue now: never touch it again
                m.curg = g
                continue
            g.throwval = TypeError("a G may yield None, syscall(...), gosched() or wg.wait(); "
                                   "got %r" % (op,))

    def gopreempt(self, m, g, requested=True):
        """g leaves the P (asked by sysmon, or runtime.Gosched): to the global queue."""
        g.status, g.m, m.curg = RUNNABLE, None, None
        with self.lock:
            if requested:
                self.preemptions += 1
            self.runq.append(g)
        self.wakep()

    def goexit(self, m, g):
        g.status, g.m, m.curg = DEAD, None, None
        with self.lock:
            if self.allgs.pop(g.goid, None) is None:
                raise RuntimeError("G%d ended twice" % g.goid)
            self.gs_done += g is not self.main_g
        if g is self.main_g:  # like Go: the program ends when main returns (see run)
            self.main_done.set()

    # System calls --------------------------------------------------------------------------
    def do_syscall(self, m, g, op):
        """entersyscall; the call itself (the thread blocks, the GIL is released); exitsyscall.
        Returns False when the G could not get a P back and was queued globally."""
        self.entersyscall(m, g)
        try:
            g.sendval = op.fn(*op.args)
        except Exception as exc:
            g.throwval = exc
        return self.exitsyscall(m, g)

    def entersyscall(self, m, g):
        """Keep the P in syscall state (not idle): sysmon may take it while we are away."""
        with self.lock:
            p = m.p
            g.status = SYSCALL
            m.oldp, m.p, p.m = p, None, None
            p.status = P_SYSCALL

    def exitsyscall(self, m, g):
        with self.lock:
            oldp, m.oldp = m.oldp, None
            if oldp.status == P_SYSCALL:  # fast path: nobody took our P
                self.acquirep(m, oldp)
                oldp.syscalltick += 1
            elif self.pidle:  # it was handed off, but another P is idle
                self.acquirep(m, self.pidle.pop())
            else:  # no P for us: the G waits in the global queue, this M stops
                g.status, g.m, m.curg = RUNNABLE, None, None
                self.runq.append(g)
                return False
            g.status = RUNNING
            return True

    # sysmon ---------------------------------------------------------------------------------
    def sysmon(self):
        """Wake now and then, without a P: preempt long runners, retake Ps from syscalls."""
        delay, idle = SYSMON_MIN_S, 0
        while not self.exiting:
            time.sleep(delay)
            if self.retake(time.monotonic()):
                delay, idle = SYSMON_MIN_S, 0
            else:
                idle += 1
                if idle > 50:
                    delay = min(delay * 2, SYSMON_MAX_S)

    def retake(self, now):
        """One sysmon pass over the Ps; returns how many were taken from system calls."""
        taken = 0
        for p in self.allp:
            if p.status == P_RUNNING:
                if p.seen_schedtick != p.schedtick:  # a new G since last look
                    p.seen_schedtick, p.seen_schedwhen = p.schedtick, now
                elif now - p.seen_schedwhen >= FORCE_PREEMPT_S:
                    self.preemptone(p)
            elif p.status == P_SYSCALL:
                if p.seen_syscalltick != p.syscalltick:  # a new syscall: give it a sysmon tick
                    p.seen_syscalltick, p.seen_syscallwhen = p.syscalltick, now
                    continue
                # Leave the P alone if nothing waits for it and others can pick up new work,
                # for a while (a short syscall usually comes back to its own P).
                if (not p.has_work() and not self.runq and self.nmspinning + len(self.pidle) > 0
                        and now - p.seen_syscallwhen < SYSCALL_RETAKE_S):
                    continue
                with self.lock:
                    if p.status != P_SYSCALL or p.syscalltick != p.seen_syscalltick:
                        continue
                    p.status = P_IDLE
                    p.syscalltick += 1
                    self.handoffs += 1
                taken += 1
                self.handoffp(p)
        return taken

    def preemptone(self, p):
        m = p.m
        g = m.curg if m is not None else None
        if g is not None and not g.preempt:
            g.preempt = True
            with self.lock:
                self.preempt_requests += 1

    # Running a program -----------------------------------------------------------------------
    def run(self, fn, *args, trace=None, trace_every=0.1):
        """Run fn(*args) as the main G on P0 until it returns; call trace(schedtrace())
        every `trace_every` seconds from the calling thread (which is not an M)."""
        self.main_g = g = G(next(self.goidgen), _as_generator(fn, args))
        self.allgs[g.goid] = g
        self.allp[0].runnext = g
        self.pidle = list(reversed(self.allp[1:]))
        self.startm(self.allp[0], spinning=False)
        self._threads.append(self._start_thread(self.sysmon, "sysmon", ()))
        while not self.main_done.wait(trace_every):
            if trace is not None:
                trace(self.schedtrace())
        if trace is not None:  # the state as main returned: queues drained, Ms idle
            trace(self.schedtrace())
        self.shutdown()
        if self.crash is not None:
            raise RuntimeError("the M:N runtime crashed: %r" % (self.crash,)) from self.crash
        return g

    def exit(self):
        with self.lock:
            self.exiting = True
            idle, self.midle = self.midle, []
        for m in idle:
            m.park.set()
        self.main_done.set()

    def shutdown(self, timeout=5.0):
        """Wait for every M (and sysmon) to leave; a G stuck in a syscall may hold one up."""
        self.exit()
        deadline = time.monotonic() + timeout
        for thread in list(self._threads):
            thread.join(max(0.0, deadline - time.monotonic()))

    # The scheduler's own view (GODEBUG=schedtrace=...,scheddetail=1) -------------------------
    def schedtrace(self):
        with self.lock:
            ps = [{"id": p.id, "status": p.status, "runq": len(p.runq),
                   "runnext": p.runnext is not None, "m": p.m.id if p.m else -1,
                   "schedtick": p.schedtick, "syscalltick": p.syscalltick} for p in self.allp]
            ms = [{"id": m.id, "p": m.p.id if m.p else -1,
                   "g": m.curg.goid if m.curg else -1, "state": _m_state(m), "tid": m.tid}
                  for m in self.allm]
            counts = collections.Counter(g.status for g in self.allgs.values())
            snapshot = {
                "gomaxprocs": self.gomaxprocs, "idle_ps": len(self.pidle),
                "threads": sum(1 for m in self.allm if not m.exited),
                "spinning_threads": sum(1 for m in self.allm if m.spinning and not m.exited),
                "idle_threads": len(self.midle),
                "global_runq": len(self.runq), "ps": ps, "ms": ms,
                "gs": {RUNNABLE: counts[RUNNABLE], RUNNING: counts[RUNNING],
                       SYSCALL: counts[SYSCALL], WAITING: counts[WAITING]},
                "gs_created": self.gs_created, "gs_done": self.gs_done,
                "steals": self.steals, "stolen_gs": self.stolen_gs, "handoffs": self.handoffs,
                "preemptions": self.preemptions, "mcap_hits": self.mcap_hits,
            }
        return snapshot


def _m_state(m):
    if m.exited:
        return "exited"
    if m.curg is not None:
        return "syscall" if m.curg.status == SYSCALL else "running"
    if m.spinning:
        return "spinning"
    if m.idle:
        return "idle"
    return "scheduling"
