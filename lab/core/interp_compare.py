"""One experiment under several interpreters: which ones qualify, which to offer first,
and running them all (in turn or at once). The command is lab/cli/interpreters.py.

No Textual here. Interpreters are probed (a subprocess each, no experiment started);
every run is a real child of the lab, as with `conlab run`.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass
from typing import Any

from lab.core import catalog
from lab.core.interpreters import Interpreter

MAX_SIDE_BY_SIDE = 4  # panes on one screen; also the CLI's cap (2 CPUs are shared by all)


@dataclass(frozen=True)
class Offer:
    """An interpreter found on this machine, and why it cannot run this experiment."""

    interpreter: Interpreter
    missing: tuple[str, ...] = ()

    @property
    def usable(self) -> bool:
        return not self.missing

    @property
    def reason(self) -> str:
        return "needs %s" % " and ".join(self.missing) if self.missing else ""


def offers(experiment: catalog.Experiment, params: dict[str, Any],
           found: list[Interpreter]) -> list[Offer]:
    """Every interpreter found, each with what it lacks for these parameter values."""
    needed = experiment.requires_for(params)
    return [Offer(i, tuple(m for m in needed if not i.has(m))) for i in found]


def describe(interp: Interpreter) -> str:
    """`3.9.18`, `3.13.0 free-threaded`, `pypy 3.10.14`: short enough for a pane title."""
    impl = "" if interp.implementation == "cpython" else interp.implementation + " "
    text = impl + interp.version_text
    if interp.free_threaded:
        text += " free-threaded" if not interp.gil_enabled else " free-threaded (GIL on)"
    return text


def default_choice(usable: list[Interpreter], own: str = sys.executable) -> list[str]:
    """What to show first: the oldest, the lab's own, the newest, and a free-threaded build
    (the builds where a race or the GIL behave differently), without repeats."""
    if not usable:
        return []
    by_version = sorted(usable, key=lambda i: (i.version, i.free_threaded))
    with_gil = [i for i in by_version if not i.free_threaded] or by_version
    mine = [i for i in usable if os.path.realpath(i.path) == os.path.realpath(own)]
    picks = [with_gil[0]] + mine[:1] + [with_gil[-1]]
    picks += [i for i in by_version if i.free_threaded][-1:]
    chosen: list[str] = []
    versions = set()
    for interp in picks:
        key = (interp.version[:2], interp.free_threaded)
        if interp.path in chosen or key in versions:
            continue
        chosen.append(interp.path)
        versions.add(key)
    return chosen[:MAX_SIDE_BY_SIDE]


def entry(record: dict[str, Any], run_id: Any = None, label: str | None = None,
          saved_at: float | None = None) -> dict[str, Any]:
    """A record wrapped like a history entry, so `history.compare` can line it up."""
    return {"id": "-" if run_id is None else run_id, "label": label,
            "saved_at": saved_at or time.time(), "host": socket.gethostname() or "?",
            "imported": False, "record": record}


def keep(record: dict[str, Any]) -> int | None:
    """Save to history (as every run is); the id, or None if history is unavailable."""
    try:
        from lab.core import history
    except ImportError:
        return None
    return history.save_quietly(record)


async def run_all(prepared: list, at_once: bool = False) -> list:
    """Run each prepared run (in turn, or together); SIGTERM/SIGHUP stop them all."""
    from lab.core.runner import Run

    runs = [Run(p) for p in prepared]
    stopping = False

    def stop_all() -> None:
        nonlocal stopping
        stopping = True
        for run in runs:
            asyncio.ensure_future(run.stop("stopped"))

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, stop_all)

    async def one(run):
        await run.start()
        if stopping:  # the signal came while this child was being started
            await run.stop("stopped")
        return await run.wait()

    try:
        if at_once:
            states = list(await asyncio.gather(*(one(r) for r in runs)))
            note_overlaps(states, ["%s under %s" % (p.experiment.name, describe(p.interpreter))
                                   for p in prepared])
            return states
        states = []
        for run in runs:
            if stopping:  # a stop before this run's turn: it never starts
                run.state.status, run.state.error = "stopped", "stopped before it started"
                states.append(run.state)
                continue
            states.append(await one(run))
        return states
    except asyncio.CancelledError:
        for run in runs:
            if run.state.pid:
                await run.stop("stopped")
                await run.wait()
        raise


def note_overlaps(states: list, labels: list[str]) -> None:
    """Each state's `overlapped_by`: the runs whose child ran at some moment during its own."""
    for state, label in zip(states, labels):
        for other, other_label in zip(states, labels):
            if other is state or not (state.started_at and other.started_at):
                continue
            if (state.started_at < (other.ended_at or float("inf"))
                    and other.started_at < (state.ended_at or float("inf"))
                    and other_label not in state.overlapped_by):
                state.overlapped_by.append(other_label)
