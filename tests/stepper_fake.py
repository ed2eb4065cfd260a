"""A stand-in for lab.core.stepper.StepperSession (same API, same state schema), in process:
`counter += 1` as load, add, store, run by N make-believe threads. The screen's tests drive
it without a child; `calls` records what the screen asked for."""

from __future__ import annotations

LISTING = [
    {"offset": 0, "opname": "LOAD_GLOBAL", "argrepr": "counter", "line": 86},
    {"offset": 2, "opname": "LOAD_CONST", "argrepr": "1", "line": 86},
    {"offset": 4, "opname": "BINARY_OP", "argrepr": "+=", "line": 86},
    {"offset": 6, "opname": "STORE_GLOBAL", "argrepr": "counter", "line": 86},
    {"offset": 8, "opname": "RETURN_CONST", "argrepr": "None", "line": 86},
]


class FakeStepperSession:
    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.closed = False
        self.started = False
        self.state: dict | None = None
        self.program: dict | None = None
        self.refused: str | None = None
        self.pid = None

    # The API ---------------------------------------------------------------------------
    async def start(self, program: str, threads: int = 2, unit: str = "instruction",
                    python: str | None = None) -> dict:
        self.calls.append(("start", program, threads, unit))
        self.name, self.threads, self.unit = program, threads, unit
        self.started = True
        self.program = {"ev": "step_program", "program": program,
                        "source": ["counter += 1"], "functions": {},
                        "bytecode": {str(n): list(LISTING) for n in range(1, threads + 1)}}
        return self._replay([])

    async def step(self, thread: int) -> dict:
        self.calls.append(("step", thread))
        pcs = self._pcs
        if not 1 <= thread <= self.threads:
            return self._refuse("thread %d does not exist (threads 1 to %d)"
                                % (thread, self.threads))
        if pcs[thread - 1] >= len(LISTING):
            return self._refuse("thread %d has finished" % thread)
        return self._replay(self.schedule + [thread])

    async def undo(self) -> dict:
        self.calls.append(("undo",))
        if not self.schedule:
            return self._refuse("nothing to undo")
        return self._replay(self.schedule[:-1])

    async def reset(self) -> dict:
        self.calls.append(("reset",))
        return self._replay([])

    async def set_unit(self, unit: str) -> dict:
        self.calls.append(("unit", unit))
        self.unit = unit
        return self._replay([])

    async def close(self) -> None:
        self.calls.append(("close",))
        self.closed = True

    # The make-believe interpreter ------------------------------------------------------
    def _refuse(self, reason: str) -> dict:
        self.refused = reason
        return self.state

    def _replay(self, schedule: list[int]) -> dict:
        self.refused = None
        self.counter = 0
        self.schedule = []
        self._pcs = [0] * self.threads
        self._loaded: list[list] = [[] for _ in range(self.threads)]
        for thread in schedule:
            self._advance(thread)
        self.state = self._snapshot()
        return self.state

    def _advance(self, thread: int) -> None:
        self.schedule.append(thread)
        i = thread - 1
        while True:
            op = LISTING[self._pcs[i]]["opname"]
            loaded = self._loaded[i]
            if op == "LOAD_GLOBAL":
                loaded[:] = [self.counter]
            elif op == "LOAD_CONST":
                loaded.append(1)
            elif op == "BINARY_OP":
                loaded[:] = [loaded[0] + loaded[1]]
            elif op == "STORE_GLOBAL":
                self.counter = loaded.pop()
            self._pcs[i] += 1
            if self.unit == "instruction" or self._pcs[i] >= len(LISTING):
                return

    def _snapshot(self) -> dict:
        threads = []
        for i, pc in enumerate(self._pcs):
            done = pc >= len(LISTING)
            threads.append({"id": i + 1, "status": "finished" if done else "ready",
                            "line": None if done else 86, "source": "counter += 1",
                            "next": None if done else dict(LISTING[pc]),
                            "loaded": [repr(v) for v in self._loaded[i]],
                            "holds": [], "wants": None, "blocked_by": None})
        finished = all(t["status"] == "finished" for t in threads)
        outcome = None
        if finished:
            lost = self.counter != self.threads
            outcome = {"kind": "lost-update" if lost else "ok",
                       "text": "counter = %d after %d increments" % (self.counter, self.threads)}
        return {"ev": "step_state", "program": self.name, "unit": self.unit,
                "schedule": list(self.schedule),
                "schedule_text": " ".join(str(n) for n in self.schedule),
                "threads": threads, "shared": {"counter": self.counter},
                "locks": {"A": None, "B": None}, "outcome": outcome,
                "goal": {"text": "end with counter = 1 after two increments",
                         "reached": finished and self.counter == 1},
                "deadlock": None, "mechanism": "fake"}
