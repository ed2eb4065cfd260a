"""interleave, interactive: the parent is the scheduler. Commands come in on the command
pipe (one JSON line each); after each one the child sends one `step_state` event, or a
`command_refused` with a one-line reason. EOF on the pipe ends the session.

Every step is one instruction of one thread (a line step is several of them, up to the
next instruction that starts a line), so the session can switch units at any time and
undo is exact: replay the schedule minus its last step from a fresh state.
"""

from __future__ import annotations

import dis
import inspect
import linecache
import sys

from . import interleave as lab
from ._proto import CommandRefused, command_lines, parse_command

COMMANDS = {"step": ("thread",), "undo": (), "reset": (), "unit": ("unit",), "quit": ()}
UNITS = ("instruction", "line")
LOADS = ("LOAD_GLOBAL", "LOAD_NAME")
STORES = ("STORE_GLOBAL", "STORE_NAME", "STORE_SUBSCR", "STORE_ATTR")  # not STORE_FAST: local
LOADED_FROM = ("instrumented reads: when a thread's step runs a load of a shared name, the "
               "controller notes that name's value (only one thread moves, so it is the value "
               "read); a store instruction or a step that changes the shared state ends them")


def shared_names(program):
    return ("table", "created") if program == "check-then-act" else ("counter",)


def goal(program, threads):
    """The goal's text and a test of whether a state reached it."""
    some = "both threads" if threads == 2 else "the threads"
    lost = ("end with counter = 1 after two increments" if threads == 2 else
            "end with counter below %d after %d increments" % (threads, threads))
    if program == "counter":
        return lost, lambda s: s["outcome"] is not None and s["shared"]["counter"] < threads
    if program == "counter-locked":
        return ("try to break it: you can't (a lock guards counter += 1; %s)" % lost,
                lambda s: s["outcome"] is not None and s["shared"]["counter"] < threads)
    if program == "check-then-act":
        return ("make two threads both create the key",
                lambda s: len(s["shared"]["created"]) > 1)
    if program == "two-locks":
        return "get %s stuck" % some, lambda s: s["deadlock"] is not None
    return ("try to break it: you can't (one lock order; get %s stuck)" % some,
            lambda s: s["deadlock"] is not None)


class Refusal(Exception):
    pass


class Session:
    def __init__(self, program, threads, unit):
        self.program, self.threads, self.unit = program, threads, unit
        self.body = lab.BODIES[program]
        self.code = self.body.__code__
        self.controller = None
        self.steps = []  # (thread, unit) per command, what undo replays
        self.goal_text, self.reached = goal(program, threads)
        self._fresh()

    # Running -----------------------------------------------------------------------
    def _fresh(self):
        if self.controller is not None:
            self.controller.finish()
        self.controller = lab.Controller(self.program, self.threads, by_line=False)
        self.controller.start()
        self.loaded = {n: [] for n in range(1, self.threads + 1)}
        self.loaded_names = {n: [] for n in range(1, self.threads + 1)}
        self.deadlock = None
        self.steps = []

    def _shared(self):
        return {name: _plain(getattr(lab, name)) for name in shared_names(self.program)}

    def _instruction(self, number):
        thread = self.controller.threads[number - 1]
        if thread.frame is None or thread.state == "done":
            return None
        return _listing(self.code)[1].get(thread.frame.f_lasti)

    def _one(self, number):
        """One instruction of one thread, noting what it read and whether it stored."""
        instruction = self._instruction(number)
        before = self._shared()
        self.controller.step(number)
        after = self._shared()
        stored = after != before or (instruction is not None and instruction.opname in STORES)
        if stored or self.controller.threads[number - 1].state == "done":
            self.loaded[number], self.loaded_names[number] = [], []
        elif (instruction is not None and instruction.opname in LOADS
              and instruction.argval in after):
            self.loaded[number].append(repr(getattr(lab, instruction.argval)))
            self.loaded_names[number].append(instruction.argval)

    def _advance(self, number, unit):
        self._one(number)
        if unit == "line":
            starts = _listing(self.code)[2]
            thread = self.controller.threads[number - 1]
            for _ in range(lab.STEP_CAP):
                if thread.state != "ready" or thread.frame.f_lasti in starts:
                    break
                self._one(number)
        if self.controller.unfinished() and not self.controller.runnable():
            self.deadlock = {"cycle": self.controller.cycle()}
        self.steps.append((number, unit))

    def replay(self, steps):
        self._fresh()
        for number, unit in steps:
            self._advance(number, unit)

    def close(self):
        if self.controller is not None:
            self.controller.finish()
            self.controller = None

    # Commands ----------------------------------------------------------------------
    def handle(self, command):
        cmd = command["cmd"]
        if cmd == "step":
            self.step(command["thread"])
        elif cmd == "undo":
            if not self.steps:
                raise Refusal("nothing to undo: no step taken yet")
            self.replay(self.steps[:-1])
        elif cmd == "reset":
            self._fresh()
        elif cmd == "unit":
            if command["unit"] not in UNITS:
                raise Refusal("unit must be instruction or line (got %r)" % (command["unit"],))
            self.unit = command["unit"]

    def step(self, number):
        if isinstance(number, bool) or not isinstance(number, int) or \
                not 1 <= number <= self.threads:
            raise Refusal("thread %s does not exist (threads 1 to %d)"
                          % (_clip(number), self.threads))
        if self.deadlock:
            raise Refusal("the threads are deadlocked: none can move (undo or reset)")
        thread = self.controller.threads[number - 1]
        if thread.state == "done":
            raise Refusal("thread %d has finished" % number)
        if number not in self.controller.runnable():
            raise Refusal("thread %d is blocked: it wants lock %s, held by thread %s"
                          % (number, thread.wants.name, thread.wants.holder))
        if len(self.steps) >= lab.STEP_CAP:
            raise Refusal("the schedule has reached its %d steps" % lab.STEP_CAP)
        self._advance(number, self.unit)

    # What the parent sees ----------------------------------------------------------
    def program_facts(self):
        try:
            lines, first = inspect.getsourcelines(self.body)
        except OSError:  # installed without its .py files: the bytecode still steps
            lines, first = [], self.code.co_firstlineno
        listing = [{"offset": i.offset, "opname": i.opname, "argrepr": i.argrepr,
                    "line": line, "starts_line": i.offset in _listing(self.code)[2]}
                   for i, line in _listing(self.code)[0]]
        return {"program": self.program, "threads": self.threads, "unit": self.unit,
                "source": [line.rstrip("\n") for line in lines], "first_line": first,
                "functions": {self.body.__name__: {"first_line": first,
                                                   "last_line": first + max(len(lines), 1) - 1}},
                "bytecode": {str(n): listing for n in range(1, self.threads + 1)},
                "goal": self.goal_text, "mechanism": _mechanism(),
                "mechanism_detail": lab.mechanism(False), "loaded_from": LOADED_FROM,
                "python": "%d.%d.%d" % sys.version_info[:3], "gil_enabled": lab._gil_enabled()}

    def state(self):
        controller = self.controller
        locks = {lock.name: lock.holder for lock in (lab.lock_a, lab.lock_b)}
        threads = []
        for t in controller.threads:
            entry = {"id": t.number, "status": "finished", "line": None, "source": None,
                     "next": None, "loaded": list(self.loaded[t.number]),
                     "loaded_names": list(self.loaded_names[t.number]),
                     "holds": sorted(n for n, holder in locks.items() if holder == t.number),
                     "wants": None, "blocked_by": None}
            if t.state != "done":
                held = t.wants.holder if t.wants is not None else None
                entry["status"] = "blocked" if held not in (None, t.number) else "ready"
                entry["wants"] = t.wants.name if t.wants is not None else None
                entry["blocked_by"] = held if held != t.number else None
                if t.frame is not None:
                    line = t.frame.f_lineno
                    entry["line"] = line
                    entry["source"] = linecache.getline(self.code.co_filename, line).strip()
                    found = self._instruction(t.number)
                    entry["next"] = {"offset": t.frame.f_lasti,
                                     "opname": found.opname if found else None,
                                     "argrepr": found.argrepr if found else None}
            threads.append(entry)
        state = {"program": self.program, "unit": self.unit,
                 "schedule": [n for n, _ in self.steps],
                 "schedule_text": " ".join(str(n) for n, _ in self.steps),
                 "threads": threads, "shared": self._shared(), "locks": locks,
                 "deadlock": self.deadlock, "mechanism": _mechanism(),
                 "loaded_from": "instrumented reads"}  # not the frame's value stack
        state["outcome"] = self._outcome(state)
        state["goal"] = {"text": self.goal_text, "reached": bool(self.reached(state))}
        return state

    def _outcome(self, state):
        if self.deadlock:
            waits = ", ".join("thread %d wants %s held by %s" % (c["thread"], c["wants"],
                                                                c["held_by"])
                              for c in self.deadlock["cycle"])
            return {"kind": "deadlock", "text": "deadlock: " + waits}
        if self.controller.unfinished():
            return None
        shared = state["shared"]
        if self.program == "check-then-act":
            made = len(shared["created"])
            return ({"kind": "double-creation", "text": "%d threads created the key" % made}
                    if made > 1 else {"kind": "ok", "text": "one thread created the key"})
        lost = self.threads - shared["counter"]
        if lost:
            return {"kind": "lost-update", "text": "counter = %d after %d increments: %d "
                    "update%s lost" % (shared["counter"], self.threads, lost,
                                       "" if lost == 1 else "s")}
        return {"kind": "ok", "text": "counter = %d after %d increments" % (
            shared["counter"], self.threads)}


_LISTINGS = {}


def _listing(code):
    """(instructions with their line, {offset: instruction}, offsets that start a line)."""
    if code not in _LISTINGS:
        rows, starts, line = [], set(), None
        for i in dis.get_instructions(code):
            starts_line = i.starts_line
            if isinstance(starts_line, bool):  # 3.13: a flag, the number is line_number
                here = i.line_number if starts_line else None
            else:
                here = starts_line
            if here is not None:
                starts.add(i.offset)
                line = here
            positions = getattr(i, "positions", None)
            rows.append((i, positions.lineno if positions and positions.lineno else line))
        _LISTINGS[code] = (rows, {i.offset: i for i, _ in rows}, starts)
    return _LISTINGS[code]


def _mechanism():
    return "sys.monitoring" if lab.MONITORING is not None else "settrace"


def _plain(value):
    return dict(value) if isinstance(value, dict) else list(value) if isinstance(
        value, list) else value


def _clip(value, width=20):
    text = repr(value)
    return text if len(text) <= width else text[:width] + "..."


def run(params, out):
    """Serve commands until quit or EOF; the result sums up the session."""
    session = Session(params["program"], params["threads"], params["step"])
    commands = 0
    try:
        out.emit("step_program", **session.program_facts())
        out.emit("step_state", **session.state())
        for line in command_lines():
            ident = None
            try:
                command = parse_command(line, COMMANDS)
                ident = command.get("id")
                if command["cmd"] == "quit":
                    break
                commands += 1
                session.handle(command)
            except CommandRefused as refused:
                out.emit("command_refused", cmd=refused.cmd, reason=str(refused),
                         id=refused.ident)
                continue
            except Refusal as refused:
                out.emit("command_refused", cmd=command["cmd"], reason=str(refused), id=ident)
                continue
            fields = session.state()
            if ident is not None:
                fields["id"] = ident
            out.emit("step_state", **fields)
        final = session.state()
    finally:
        session.close()
    return {"interactive": True, "commands": commands, "schedule": final["schedule_text"],
            "outcome": final["outcome"], "goal": final["goal"], "shared": final["shared"]}
