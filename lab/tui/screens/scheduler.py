"""Be the scheduler: the learner picks which thread moves next, one instruction (or line) at
a time, in a real child (lab/core/stepper.py), until the program's goal is reached.

Every command runs in an async worker on the app's loop (the child is forked from the
loop's thread, and the UI never waits on it); the worker posts a typed message with the
new state. Commands go one at a time, in the order the keys were pressed. The session is
adopted by the app's RunController, so quitting (q, SIGTERM, SIGHUP) closes it with the
runs; leaving the screen closes it at once.
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Static

from lab.core.runner import Refused
from widgets.lab_footer import LabFooter
from widgets.scheduler_view import SchedulerView

PROGRAMS = ("counter", "counter-locked", "check-then-act", "two-locks", "two-locks-ordered")
THREADS = (2, 3, 4)
UNITS = ("instruction", "line")
KEYS = "1-%d step  u undo  r reset  l line/instr  p program  t threads  esc back"


def real_session() -> Any:
    from lab.core.stepper import StepperSession

    return StepperSession()


class SchedulerScreen(Screen):
    BINDINGS = [
        Binding("1", "step(1)", "step thread 1", show=False),
        Binding("2", "step(2)", "step thread 2", show=False),
        Binding("3", "step(3)", "step thread 3", show=False),
        Binding("4", "step(4)", "step thread 4", show=False),
        Binding("u", "undo", "undo"),
        Binding("r", "reset", "reset"),
        Binding("l", "toggle_unit", "line / instruction"),
        Binding("p", "next_program", "program"),
        Binding("t", "next_threads", "threads"),
        Binding("escape", "back", "back"),
    ]
    AUTO_FOCUS = None  # the keys belong to the screen
    DEFAULT_CSS = """
    SchedulerScreen #topbar {
        height: 1;
        padding: 0 1;
        background: $panel;
        text-style: bold;
    }
    SchedulerScreen #note {
        height: auto;
        max-height: 4;
        padding: 0 1;
    }
    SchedulerScreen SchedulerView {
        margin: 0 1;
    }
    SchedulerScreen #said {
        height: 1;
        padding: 0 1;
        text-style: bold;
    }
    """

    class Started(Message):
        def __init__(self, session: Any, program: dict | None, state: dict | None) -> None:
            super().__init__()
            self.session, self.program, self.state = session, program, state

    class Stepped(Message):
        def __init__(self, session: Any, state: dict | None, refused: str | None) -> None:
            super().__init__()
            self.session, self.state, self.refused = session, state, refused

    class Failed(Message):
        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    def __init__(self, program: str = "counter", threads: int = 2, unit: str = "instruction",
                 note: str | None = None, session_factory: Callable[[], Any] | None = None,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.program_name = program if program in PROGRAMS else PROGRAMS[0]
        self.threads = threads if threads in THREADS else 2
        self.unit = unit if unit in UNITS else UNITS[0]
        self.note = note  # what the lesson asks for, above the columns
        self.session_factory = session_factory or real_session
        self.session: Any = None
        self.left = False  # the screen is gone: nothing more starts
        self._lock = asyncio.Lock()  # one command at a time, in key order

    # Layout ----------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Static(id="topbar")
        yield Static(self.note or "", id="note")
        yield SchedulerView(id="view")
        yield Static("", id="said")
        yield LabFooter(KEYS % self.threads, gauge=False, id="footer")

    def on_mount(self) -> None:
        self.query_one("#note").display = bool(self.note)
        self._topbar()
        self._send(self._start)

    def on_unmount(self) -> None:
        self.left = True
        self._send(self._close)

    @property
    def view(self) -> SchedulerView:
        return self.query_one(SchedulerView)

    def _topbar(self, mechanism: str | None = None) -> None:
        text = "Be the scheduler · %s, %d threads · by %s" % (
            self.program_name, self.threads, self.unit)
        if mechanism:
            text += " · " + mechanism
        self.query_one("#topbar", Static).update(text)

    def say(self, text: str = "") -> None:
        """The one line under the columns: a refusal, a failure, or nothing."""
        self.query_one("#said", Static).update(Text(text))

    # Commands: each in a worker on the app's loop, one at a time -------------------------
    def _send(self, command: Callable, *args: Any) -> None:
        # The app's worker, not the screen's: a close queued on leaving still runs.
        self.app.run_worker(self._serial(command, *args), group="stepper",
                            exit_on_error=False)

    async def _serial(self, command: Callable, *args: Any) -> None:
        async with self._lock:
            try:
                await command(*args)
            except Refused as exc:  # a value out of range: nothing started
                self._post(self.Failed("✗ refused: %s" % exc))
            except Exception as exc:  # one line on screen, never a traceback
                self._post(self.Failed("✗ the stepper failed: %s" % (
                    exc if isinstance(exc, RuntimeError) else "%s: %s" % (type(exc).__name__,
                                                                          exc))))

    def _post(self, message: Message) -> None:
        if not self.left:
            self.post_message(message)

    async def _start(self) -> None:
        await self._close()
        if self.left:
            return
        session = self.session_factory()
        if not self.app.controller.adopt_session(session):
            return  # the lab is quitting
        self.session = session
        try:
            await session.start(self.program_name, threads=self.threads, unit=self.unit,
                                python=self.app.controller.python)
        except Exception:
            await self._close()
            raise
        self._post(self.Started(session, session.program, session.state))
        if session.refused:
            self._post(self.Stepped(session, session.state, session.refused))

    async def _close(self) -> None:
        session, self.session = self.session, None
        if session is None:
            return
        try:
            await session.close()
        finally:
            self.app.controller.release_session(session)

    async def _command(self, name: str, *args: Any) -> None:
        session = self.session
        if session is None:
            return
        state = await getattr(session, name)(*args)
        self._post(self.Stepped(session, state if state is not None else session.state,
                                session.refused))

    # Messages --------------------------------------------------------------------------
    def on_scheduler_screen_started(self, message: Started) -> None:
        if message.session is not self.session:
            return
        self.view.program = message.program
        self.view.state = message.state
        self._topbar((message.state or {}).get("mechanism"))
        self.say("")

    def on_scheduler_screen_stepped(self, message: Stepped) -> None:
        if message.session is not self.session:
            return
        if message.state is not None:
            self.view.state = message.state
            if message.state.get("unit") in UNITS:  # the child's word, if it refused l
                self.unit = message.state["unit"]
            self._topbar(message.state.get("mechanism"))
        self.say("✗ refused: %s" % message.refused if message.refused else "")

    def on_scheduler_screen_failed(self, message: Failed) -> None:
        self.say(message.text)

    # Actions ---------------------------------------------------------------------------
    def action_step(self, thread: int) -> None:
        if thread > self.threads:
            self.say("✗ refused: there is no thread %d (threads 1 to %d; t changes the count)"
                     % (thread, self.threads))
            return
        self._send(self._command, "step", thread)

    def action_undo(self) -> None:
        self._send(self._command, "undo")

    def action_reset(self) -> None:
        self._send(self._command, "reset")

    def action_toggle_unit(self) -> None:
        self.unit = UNITS[(UNITS.index(self.unit) + 1) % len(UNITS)]
        self._topbar((self.view.state or {}).get("mechanism"))
        self._send(self._command, "set_unit", self.unit)

    def action_next_program(self) -> None:
        self.program_name = PROGRAMS[(PROGRAMS.index(self.program_name) + 1) % len(PROGRAMS)]
        self._restart()

    def action_next_threads(self) -> None:
        self.threads = THREADS[(THREADS.index(self.threads) + 1) % len(THREADS)]
        self._restart()

    def _restart(self) -> None:
        self.view.state = None
        self.view.program = None
        self.query_one("#footer", LabFooter).set_keys(KEYS % self.threads)
        self._topbar()
        self.say("")
        self._send(self._start)

    def action_back(self) -> None:
        self.app.pop_screen()


def open_scheduler(app, program: str = "counter", threads: int = 2, note: str | None = None,
                   session_factory: Callable[[], Any] | None = None) -> SchedulerScreen:
    screen = SchedulerScreen(program, threads, note=note, session_factory=session_factory)
    app.push_screen(screen)
    return screen
