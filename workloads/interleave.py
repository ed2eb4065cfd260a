"""interleave: be the scheduler. Threads of a tiny program advance one instruction at a time,
in an order the run chooses (a given schedule, or every schedule with few preemptions)."""

from __future__ import annotations

import dis
import sys
import threading
import time

from ._spec import Param, ParamError

NAME = "interleave"
TITLE = "Be the scheduler: step threads instruction by instruction, search every schedule"
LESSON = """\
A live run shows that updates get lost but not which interleaving lost them. Here a
controller lets exactly one thread move at a time: every thread stops before each
bytecode instruction (or each line) of a tiny program, and a schedule such as
1,1,2,2,2,1 says who moves next. `counter += 1` is a load, an add and a store: let
both threads load before either stores and one increment is gone, by hand, on any
interpreter. Locks here report when a thread would block, so a deadlock (every thread
waiting for a lock another one holds) is seen and ended. Exploring tries every
schedule with at most K preemptions (switching away from a thread that could go on)
and counts the ones that end wrong; the fixed programs have none. Since only one
thread runs at a time by construction, the same schedule gives the same result on
every CPython from 3.9 to 3.13, with a GIL or without one. Beside the search, the
same program runs freely many times: whether this interpreter's own scheduler ever
picks a losing interleaving is a different question from whether one exists.
In the TUI, b on this screen takes the scheduler's seat: keys 1-4 move a thread one step.
"""
REQUIRES = ()
TIMEOUT_S = 120
LESSON_CODE = (
    "counter_body",
    "counter_locked_body",
    "check_then_act_body",
    "two_locks_body",
    "two_locks_ordered_body",
)
CPU_BOUND = False  # one thread moves at a time; the figures are counts, not times

PROGRAMS = ("counter", "counter-locked", "check-then-act", "two-locks", "two-locks-ordered")
TRACE_CAP = 500  # steps of the last schedule kept in the result
STEP_CAP = 5_000  # steps of one schedule before it is called runaway
WAIT_S = 10.0  # a step that takes longer than this is a bug in the controller, not a result
SCHEDULE_CHARS = 2_000

PARAMS = (
    Param.choice("program", "counter", PROGRAMS, "the program the threads run"),
    Param.int("threads", 2, 2, 4, "threads running the program"),
    Param.choice("step", "instruction", ("instruction", "line"),
                 "how far one step goes: to the next bytecode instruction, or the next line"),
    Param.text("schedule", "", r"|[1-4]([ ,]+[1-4])*", SCHEDULE_CHARS,
               "thread numbers separated by commas (e.g. 1,1,2,2,1) or empty",
               "the threads to step, in order; afterwards the rest runs round-robin"),
    Param.bool("explore", False, "try every schedule with at most `preemptions` preemptions"),
    Param.int("preemptions", 1, 0, 3, "explore: most preemptions per schedule (K)"),
    Param.float("explore_s", 20.0, 0.1, 100.0, "explore: time limit of the search"),
    Param.int("free_iterations", 100_000, 0, 1_000_000,
              "explore: then each thread runs the program this many times freely, no controller "
              "(0: not at all)"),
    Param.bool("interactive", False, "wait for step commands from the lab (be the scheduler)"),
)
FREE_S = 5.0  # the free-running part stops after this long, whatever its iterations
FREE_WAIT_S = 0.5  # a free-running lock wait this long is taken as a deadlock


def tasks_needed(params):
    """Main thread and the program's threads (one schedule at a time)."""
    return "threads", 1 + params["threads"]


def parse_schedule(text):
    return [int(part) for part in text.replace(",", " ").split()]


def check_limits(params, timeout_s):
    """What can be told before running: every thread number exists, the search fits."""
    for number in parse_schedule(params["schedule"]):
        if number > params["threads"]:
            raise ParamError("schedule", "parameter 'schedule' names thread %d, but there are "
                             "only %d threads (thread numbers from 1 to %d)"
                             % (number, params["threads"], params["threads"]))
    if params["explore"] and params["schedule"]:
        raise ParamError("schedule", "parameter 'schedule' replays one schedule; it cannot be "
                         "given with explore=true")
    if params["interactive"] and (params["explore"] or params["schedule"]):
        raise ParamError("interactive", "parameter 'interactive' takes its steps from the lab; "
                         "it cannot be given with explore=true or a schedule")
    if params["explore"] and params["explore_s"] > timeout_s / 2:
        raise ParamError("explore_s", "parameter 'explore_s' must be at most half the run's "
                         "%g s limit (got %g)" % (timeout_s, params["explore_s"]))


# The programs. Each thread calls the body with its number (1-based). ----------------------

counter = 0
table = {}
created = []
lock_a = lock_b = None  # SteppedLocks, made per schedule


def counter_body(me):
    global counter
    counter += 1


def counter_locked_body(me):
    global counter
    with lock_a:
        counter += 1


def check_then_act_body(me):
    if "key" not in table:
        table["key"] = me
        created.append(me)


def two_locks_body(me):
    global counter
    first, second = (lock_a, lock_b) if me % 2 else (lock_b, lock_a)
    with first:
        with second:
            counter += 1


def two_locks_ordered_body(me):
    global counter
    with lock_a:
        with lock_b:
            counter += 1


BODIES = {"counter": counter_body, "counter-locked": counter_locked_body,
          "check-then-act": check_then_act_body, "two-locks": two_locks_body,
          "two-locks-ordered": two_locks_ordered_body}


def reset(controller):
    global counter, table, created, lock_a, lock_b
    counter = 0
    table = {}
    created = []
    lock_a = SteppedLock("A", controller)
    lock_b = SteppedLock("B", controller)


def shared_state(program):
    state = {"locks": {lock.name: lock.describe() for lock in (lock_a, lock_b)}}
    if program == "check-then-act":
        state.update(table=dict(table), created=list(created))
    else:
        state["counter"] = counter
    return state


def outcome(program, threads, deadlock):
    """What went wrong at the end of one schedule, or None."""
    if deadlock:
        return "deadlock"
    if program == "check-then-act":
        return "double creation" if len(created) > 1 else None
    return "lost update" if counter != threads else None


# The controller. ------------------------------------------------------------------------


class Abort(BaseException):
    """Unwinds a program thread when its schedule is over (after a deadlock)."""


class Thread:
    def __init__(self, number):
        self.number = number
        self.state = "starting"  # starting, ready, running, blocked, done
        self.frame = None
        self.wants = None  # the SteppedLock it is blocked on


class SteppedLock:
    """A lock that tells the controller when taking it would block, instead of blocking."""

    def __init__(self, name, controller):
        self.name = name
        self.controller = controller
        self.holder = None
        self._lock = threading.Lock()

    def acquire(self):
        me = self.controller.me()
        while not self._lock.acquire(False):
            self.controller.blocked(me, self)
        self.holder = me.number

    def release(self):
        self.holder = None
        self._lock.release()

    __enter__ = acquire

    def __exit__(self, *exc):
        self.release()

    def describe(self):
        return {"held_by": self.holder,
                "wanted_by": [t.number for t in self.controller.threads if t.wants is self]}


class Controller:
    """Runs the program's threads one step at a time."""

    def __init__(self, program, threads, by_line):
        self.program = program
        self.by_line = by_line
        self.cond = threading.Condition()
        self.threads = [Thread(n) for n in range(1, threads + 1)]
        self.aborted = False
        body = BODIES[program]
        self.codes = {body.__code__}
        self.local = threading.local()
        reset(self)
        if MONITORING is not None:
            self._watch()
        self.workers = [threading.Thread(target=self._thread_main, args=(t, body),
                                         name="interleave-%d" % t.number, daemon=True)
                        for t in self.threads]

    # In the program's threads --------------------------------------------------------
    def me(self):
        return self.local.thread

    def _thread_main(self, thread, body):
        self.local.thread = thread
        if MONITORING is None:
            sys.settrace(self._trace_call)
        try:
            body(thread.number)
        except Abort:
            pass
        finally:
            if MONITORING is None:
                sys.settrace(None)
            with self.cond:
                thread.state = "done"
                thread.frame = None
                thread.wants = None
                self.cond.notify_all()

    # sys.settrace (3.9-3.11): a local trace function on the program's frames only.
    def _trace_call(self, frame, event, arg):
        if frame.f_code not in self.codes:
            return None
        if not self.by_line:
            frame.f_trace_opcodes = True
            frame.f_trace_lines = False
        return self._trace_step

    def _trace_step(self, frame, event, arg):
        if self.aborted:
            return None  # the schedule is over: let the thread unwind (and release) freely
        if event == ("line" if self.by_line else "opcode"):
            self._pause(self.local.thread, frame, "ready")
        return self._trace_step

    # sys.monitoring (3.12+): events switched on for the program's code objects only.
    # (3.12's settrace may miss opcode events in a frame already running when they are
    # switched on; monitoring is set on the code before any thread starts.)
    def _watch(self):
        events = MONITORING.events
        wanted = events.LINE if self.by_line else events.INSTRUCTION
        MONITORING.register_callback(TOOL_ID, events.LINE, self._monitored)
        MONITORING.register_callback(TOOL_ID, events.INSTRUCTION, self._monitored)
        for code in self.codes:
            MONITORING.set_local_events(TOOL_ID, code, wanted)

    def _monitored(self, code, where):
        thread = getattr(self.local, "thread", None)
        if thread is None or self.aborted:
            return None
        self._pause(thread, sys._getframe(1), "ready")
        return None

    def _pause(self, thread, frame, state):
        with self.cond:
            thread.state = state
            thread.frame = frame
            self.cond.notify_all()
            while thread.state != "running" and not self.aborted:
                self.cond.wait()
            if self.aborted:
                raise Abort

    def blocked(self, thread, lock):
        thread.wants = lock
        self._pause(thread, thread.frame, "blocked")
        thread.wants = None

    # In the controlling thread ---------------------------------------------------------
    def start(self):
        for worker in self.workers:
            worker.start()
        self._settle(self.threads)

    def _settle(self, threads):
        deadline = time.monotonic() + WAIT_S
        with self.cond:
            while any(t.state in ("starting", "running") for t in threads):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RuntimeError("a program thread did not reach its next stop")
                self.cond.wait(left)

    def runnable(self):
        """Numbers of the threads that can take a step now."""
        return [t.number for t in self.threads
                if t.state == "ready" or (t.state == "blocked" and t.wants.holder is None)]

    def unfinished(self):
        return [t for t in self.threads if t.state != "done"]

    def step(self, number):
        thread = self.threads[number - 1]
        with self.cond:
            thread.state = "running"
            self.cond.notify_all()
        self._settle([thread])

    def cycle(self):
        """The wait-for cycle when every unfinished thread waits: thread -> lock -> holder."""
        return [{"thread": t.number, "wants": t.wants.name, "held_by": t.wants.holder}
                for t in self.unfinished()]

    def finish(self):
        """End every thread still waiting (after a deadlock) and wait for them all."""
        with self.cond:
            self.aborted = True
            self.cond.notify_all()
        for worker in self.workers:
            worker.join(WAIT_S)
        return all(not worker.is_alive() for worker in self.workers)

    def snapshot(self):
        """Every thread's state and next instruction, and the shared state."""
        threads = []
        for t in self.threads:
            entry = {"thread": t.number, "state": t.state}
            if t.wants is not None:
                entry["wants"] = t.wants.name
            if t.frame is not None and t.state != "done":
                entry.update(next_instruction(t.frame))
            threads.append(entry)
        return {"threads": threads, "shared": shared_state(self.program)}


_INSTRUCTIONS = {}


def next_instruction(frame):
    code = frame.f_code
    if code not in _INSTRUCTIONS:
        _INSTRUCTIONS[code] = {i.offset: i for i in dis.get_instructions(code)}
    found = _INSTRUCTIONS[code].get(frame.f_lasti)
    where = {"offset": frame.f_lasti, "line": frame.f_lineno}
    if found is not None:
        where.update(opname=found.opname, argrepr=found.argrepr)
    return where


# One schedule. ---------------------------------------------------------------------------


class ScheduleError(Exception):
    pass


def run_schedule(program, threads, by_line, given, continuation, out=None, keep_trace=False):
    """Run one schedule: the `given` steps, then `continuation` ("round-robin" or "stay":
    keep the running thread while it can). Returns the run's facts."""
    controller = Controller(program, threads, by_line)
    steps, choices, trace = [], [], []
    deadlock = at_deadlock = None
    try:
        controller.start()
        if keep_trace:
            trace.append(dict(step=0, **controller.snapshot()))
        previous = None
        while controller.unfinished():
            runnable = controller.runnable()
            if not runnable:
                deadlock = controller.cycle()
                at_deadlock = shared_state(program)  # who holds what, before unwinding
                break
            if len(steps) >= STEP_CAP:
                raise ScheduleError("the schedule passed %d steps" % STEP_CAP)
            index = len(steps)
            if index < len(given):
                chosen = given[index]
                if chosen not in runnable:
                    state = controller.threads[chosen - 1].state
                    raise ScheduleError(
                        "parameter 'schedule' step %d names thread %d, which has %s "
                        "(runnable then: %s)" % (index + 1, chosen,
                                                 "finished" if state == "done" else "blocked",
                                                 ", ".join(map(str, runnable))))
            elif continuation == "stay" and previous in runnable:
                chosen = previous
            elif continuation == "stay":
                chosen = runnable[0]
            else:
                later = [n for n in runnable if previous is None or n > previous]
                chosen = (later or runnable)[0]
            choices.append((chosen, runnable, previous in runnable))
            controller.step(chosen)
            steps.append(chosen)
            previous = chosen
            if keep_trace:
                record = dict(step=len(steps), thread=chosen, **controller.snapshot())
                if len(trace) < TRACE_CAP:
                    trace.append(record)
                if out is not None:
                    out.latest("step", **record)
    finally:
        clean = controller.finish()
    wrong = outcome(program, threads, deadlock)
    facts = {"schedule": steps, "outcome": wrong or "correct", "wrong": wrong is not None,
             "shared": at_deadlock or shared_state(program), "threads_ended": clean, "choices": choices}
    if deadlock:
        facts["deadlock_cycle"] = deadlock
    if keep_trace:
        facts["trace"] = trace
        facts["trace_steps"] = len(steps)
    return facts


def schedule_text(steps):
    return ",".join(map(str, steps))


def preemptions_in(choices):
    return sum(1 for i, (chosen, _, could_stay) in enumerate(choices)
               if i and could_stay and chosen != choices[i - 1][0])


# Exploring. -----------------------------------------------------------------------------


def explore(program, threads, by_line, bound, limit_s, out):
    """Depth-first over schedules with at most `bound` preemptions: run a prefix, let the
    rest run without preemption, then branch at every later step to every other thread."""
    started = time.monotonic()
    pending = [[]]
    tried, failing, by_outcome, shortest, last, stuck = 0, 0, {}, None, None, 0
    finished = True
    while pending:
        if time.monotonic() - started > limit_s:
            finished = False
            break
        prefix = pending.pop()
        facts = run_schedule(program, threads, by_line, prefix, "stay")
        last = prefix
        tried += 1
        stuck += 0 if facts["threads_ended"] else 1
        if facts["wrong"]:
            failing += 1
            by_outcome[facts["outcome"]] = by_outcome.get(facts["outcome"], 0) + 1
            if shortest is None or len(facts["schedule"]) < len(shortest["schedule"]):
                shortest = {"schedule": schedule_text(facts["schedule"]),
                            "steps": len(facts["schedule"]), "outcome": facts["outcome"],
                            "preemptions": preemptions_in(facts["choices"])}
        choices = facts["choices"]
        for index in range(len(choices) - 1, len(prefix) - 1, -1):
            chosen, runnable, could_stay = choices[index]
            used = preemptions_in(choices[:index])
            for other in reversed(runnable):
                if other == chosen:
                    continue
                # The default kept the previous thread whenever it could, so choosing
                # another one here is a preemption exactly when that thread could go on.
                cost = 1 if could_stay else 0
                if used + cost <= bound:
                    pending.append([c[0] for c in choices[:index]] + [other])
        out.latest("explore", tried=tried, failing=failing, pending=len(pending),
                   elapsed_s=round(time.monotonic() - started, 3))
    elapsed = time.monotonic() - started
    report = {"preemptions": bound, "tried": tried, "failing": failing,
              "by_outcome": by_outcome, "shortest_failing": shortest,
              "finished": finished, "left_untried": len(pending),
              "schedules_with_threads_left": stuck, "elapsed_s": round(elapsed, 3),
              "schedules_per_s": round(tried / elapsed, 1) if elapsed > 0 else None,
              "time_limit_s": limit_s}
    out.latest("explore", final=True, tried=tried, failing=failing, pending=len(pending),
               elapsed_s=round(elapsed, 3))
    return report, last


def mechanism(by_line):
    if MONITORING is not None:
        return ("sys.monitoring %s events, switched on for the program's own code only"
                % ("LINE" if by_line else "INSTRUCTION"))
    return ("sys.settrace with %s events, only in the program's own code"
            % ("line" if by_line else "opcode (frame.f_trace_opcodes = True)"))


def _monitoring_tool():
    """sys.monitoring (3.12+) and a free tool id for it, or (None, None)."""
    monitoring = getattr(sys, "monitoring", None)
    if monitoring is None:
        return None, None
    for tool in (monitoring.DEBUGGER_ID, 3, 4):
        if monitoring.get_tool(tool) == "conlab interleave":
            return monitoring, tool  # a second run in the same process
        try:
            monitoring.use_tool_id(tool, "conlab interleave")
        except ValueError:
            continue
        return monitoring, tool
    return None, None


MONITORING = TOOL_ID = None


def run(params, out):
    global MONITORING, TOOL_ID
    MONITORING, TOOL_ID = _monitoring_tool()
    if params["interactive"]:
        from . import _stepping

        return _stepping.run(params, out)
    program, threads = params["program"], params["threads"]
    by_line = params["step"] == "line"
    result = {"program": program, "threads": threads, "step": params["step"],
              "mechanism": mechanism(by_line), "gil_enabled": _gil_enabled()}
    given = parse_schedule(params["schedule"])
    if params["explore"]:
        report, last = explore(program, threads, by_line, params["preemptions"],
                               params["explore_s"], out)
        result["explore"] = report
        # The trace shown is the shortest failing schedule's, else the last one tried.
        shown = report["shortest_failing"]
        given = parse_schedule(shown["schedule"]) if shown else (last or [])
        result["trace_of"] = "the shortest failing schedule" if shown else "the last schedule tried"
        continuation = "stay"
    else:
        continuation = "round-robin"
    try:
        facts = run_schedule(program, threads, by_line, given, continuation, out, keep_trace=True)
    except ScheduleError as error:
        # Only running shows a thread has finished or is blocked: refused like a bad value.
        out.flush()
        out.emit("error", kind="params", message=str(error))
        raise SystemExit(2)
    facts.pop("choices")
    if len(facts["schedule"]) > len(given):
        facts["continued"] = ("the schedule had %d steps; the other %d ran %s"
                              % (len(given), len(facts["schedule"]) - len(given),
                                 "round-robin, one step each" if continuation == "round-robin"
                                 else "without preemption"))
    facts["schedule"] = schedule_text(facts["schedule"])
    facts["expected"] = 1 if program == "check-then-act" else threads
    facts["steps"] = short_trace(facts["trace"])
    result["run"] = facts
    result["json_only"] = ["run.trace"]  # every thread at every step: the text shows `steps`
    if params["explore"] and params["free_iterations"]:
        _unwatch(program)
        result["free_running"] = free_run(program, threads, params["free_iterations"])
    result["verdict"] = verdict(result)
    return result


def short_trace(trace):
    """One row per step: who moved, the instruction it ran, and the shared state after."""
    rows, before = [], {t["thread"]: t for t in trace[0]["threads"]} if trace else {}
    for record in trace[1:]:
        ran = before.get(record["thread"], {})
        shared = {k: v for k, v in record["shared"].items() if k != "locks"}
        held = ["%s:%s" % (name, lock["held_by"]) for name, lock in record["shared"]["locks"].items()
                if lock["held_by"] is not None]
        rows.append({"thread": record["thread"],  # the row's number is the step
                     "ran": ("%s %s" % (ran.get("opname", "?"), ran.get("argrepr", ""))).strip(),
                     "line": ran.get("line"),
                     "shared": " ".join("%s=%s" % kv for kv in shared.items()),
                     "locks held": " ".join(held) or "-"})
        before = {t["thread"]: t for t in record["threads"]}
    return rows


# Free-running: the same program, no controller, on this interpreter. -----------------


class Stuck(Exception):
    pass


class FreeLock:
    """A real lock; a wait past FREE_WAIT_S is taken as a deadlock and unwinds the thread."""

    def __init__(self, name):
        self.name = name
        self._lock = threading.Lock()

    def __enter__(self):
        if not self._lock.acquire(timeout=FREE_WAIT_S):
            raise Stuck(self.name)

    def __exit__(self, *exc):
        self._lock.release()


def _unwatch(program):
    """Switch the controller's monitoring off the program's code (free running is plain)."""
    if MONITORING is not None:
        MONITORING.set_local_events(TOOL_ID, BODIES[program].__code__, 0)


def free_run(program, threads, iterations):
    """Every thread calls the program `iterations` times at once (capped at FREE_S): how
    many increments this interpreter lost, and whether the locks deadlocked."""
    global counter, lock_a, lock_b
    if program == "check-then-act":
        return {"measured": False, "why": "the key is created once; a free run shows no count"}
    counter = 0
    lock_a, lock_b = FreeLock("A"), FreeLock("B")
    body = BODIES[program]
    made = [0] * threads
    stop = threading.Event()
    start = threading.Barrier(threads)
    deadline = time.monotonic() + FREE_S

    def work(index):
        start.wait()
        done = 0
        try:
            while done < iterations:
                body(index + 1)
                done += 1
                if not done % 512 and (stop.is_set() or time.monotonic() > deadline):
                    break
        except Stuck:
            stop.set()
        made[index] = done

    began = time.monotonic()
    workers = [threading.Thread(target=work, args=(i,), name="free-%d" % (i + 1), daemon=True)
               for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    increments = sum(made)
    return {"measured": True, "threads": threads, "iterations_each": iterations,
            "increments": increments, "counter": counter, "lost": increments - counter,
            "deadlocked": stop.is_set(), "stopped_early": increments < threads * iterations,
            "elapsed_s": round(time.monotonic() - began, 3), "gil_enabled": _gil_enabled()}


def _gil_enabled():
    check = getattr(sys, "_is_gil_enabled", None)
    return bool(check()) if check is not None else True


def verdict(result):
    report = result.get("explore")
    if report:
        scope = "%d schedules with at most %d preemption%s%s" % (
            report["tried"], report["preemptions"], "" if report["preemptions"] == 1 else "s",
            "" if report["finished"] else " (stopped at the time limit)")
        says = ("the program goes wrong in %d of %s" % (report["failing"], scope)
                if report["failing"] else "no schedule went wrong among %s" % scope)
        free = result.get("free_running") or {}
        if free.get("measured"):
            says += "; free-running here (GIL %s) %s" % (
                "on" if free["gil_enabled"] else "off",
                "deadlocked after %s increments" % free["increments"] if free["deadlocked"]
                else "lost %d of %d updates" % (free["lost"], free["increments"]))
        return {"says": says, "figure": "explore.failing", "value": report["failing"],
                "expected": {"gil": "the same", "free_threaded": "the same"}, "can_tell": True}
    facts = result["run"]
    says = "schedule %s ends %s" % (_short(facts["schedule"]),
                                    "correctly" if not facts["wrong"] else "in a " + facts["outcome"])
    return {"says": says, "figure": "run.outcome", "value": facts["outcome"],
            "expected": {"gil": "the same", "free_threaded": "the same"}, "can_tell": True}


def _short(text, width=40):
    return text if len(text) <= width else text[:width] + "\u2026"
