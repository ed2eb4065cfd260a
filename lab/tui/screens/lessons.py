"""The Lessons screen (the path, with progress marks) and one lesson's screen.

A lesson is three steps on one screen, each fitting 80x24 and driven by keys alone:
  predict  the explanation, the question and its choices (1-N, or arrows and enter)
  run      the experiment live, in the same view its experiment screen uses
  answer   the measured answer beside the prediction, the explanation with the numbers
           just measured, and the article's claim with this machine's verdict on it.
Everything says its state in words or glyphs (✓ ✗ ▶ …), never by colour alone.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from lab.lessons import tutorial as L
from lab.core import article
from lab.core.progress import Progress
from lab.tui.screens.experiment import TALL
from lab.tui.views import view_class
from widgets.lab_footer import LabFooter
from widgets.pane import Pane

MARKS = {
    "right": ("✓", "predicted right"),
    "surprised": ("≠", "surprised"),
    "predicted": ("…", "predicted, not run"),
    "new": ("·", "new"),
}
UNAVAILABLE = ("–", "not available yet")

LIST_KEYS = "↑↓ move  ⏎ open  esc back  q quit"
PREDICT_KEYS = "1-%d or ↑↓ ⏎ predict  esc lessons  q quit"  # the question's own range
RUN_KEYS = "x stop  esc lessons  q quit"
ANSWER_KEYS = "n next  r again  v %s  esc lessons  q quit"  # what v shows next
SCHEDULER_KEYS = "n next  r again  v %s  b be the scheduler  esc lessons  q quit"


def open_lessons(app, lesson_id: str | None = None) -> None:
    """Show the Lessons screen (the one already open if any), then one lesson if named."""
    for screen in reversed(app.screen_stack):
        if isinstance(screen, LessonsScreen):
            while app.screen is not screen:
                app.pop_screen()
            break
    else:
        screen = LessonsScreen()
        app.push_screen(screen)
    if lesson_id:
        app.push_screen(LessonScreen(lesson_id, progress=screen.progress))


def status_of(lesson: L.Lesson, progress: Progress, names: list[str]) -> tuple[str, str]:
    if lesson.plan(names) is None:
        return UNAVAILABLE
    return MARKS[progress.status(lesson.id)]


# The path ------------------------------------------------------------------------------
class LessonsScreen(Screen):
    """Every lesson, one line each, with its mark in a glyph and a word."""

    BINDINGS = [Binding("escape", "back", "back")]
    DEFAULT_CSS = """
    LessonsScreen #topbar {
        height: 1;
        padding: 0 1;
        background: $panel;
        text-style: bold;
    }
    LessonsScreen OptionList {
        height: auto;
        max-height: 1fr;
        border: none;
        padding: 0 1;
    }
    LessonsScreen .note {
        height: auto;
        padding: 0 2;
    }
    """

    def __init__(self, progress: Progress | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.progress = progress or Progress()

    def compose(self) -> ComposeResult:
        yield Static(id="topbar")
        yield Static("The path follows " + article.named(), id="article", classes="note")
        yield OptionList(id="path")
        yield Static(id="legend", classes="note")
        yield Static(id="problem", classes="note")
        yield LabFooter(LIST_KEYS)

    def on_mount(self) -> None:
        self.refresh_list()
        self.query_one(OptionList).focus()

    def on_screen_resume(self) -> None:
        self.refresh_list()

    def refresh_list(self) -> None:
        names = L.experiment_names()
        path = self.query_one(OptionList)
        keep = path.highlighted or 0
        options = []
        for index, lesson in enumerate(L.LESSONS):
            glyph, word = status_of(lesson, self.progress, names)
            options.append(Option("%2d %s %-38s %s" % (index + 1, glyph, lesson.title, word),
                                  id=lesson.id))
        path.set_options(options)
        path.highlighted = min(keep, len(options) - 1)
        self.query_one("#topbar", Static).update(
            "Lessons · %d of %d done · predict, run, compare"
            % (self.progress.done_count(), len(L.LESSONS)))
        self.query_one("#legend", Static).update(
            "✓ predicted right  ≠ surprised  … not run  · new  – not available yet")
        self.query_one("#problem", Static).update(
            "! %s (progress kept for this session only)" % self.progress.problem
            if self.progress.problem else "")

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.app.push_screen(LessonScreen(event.option.id, progress=self.progress))

    def action_back(self) -> None:
        if len(self.app.screen_stack) > 1:
            self.app.pop_screen()


# One lesson ----------------------------------------------------------------------------
class LessonScreen(Screen):
    """predict → run → answer for one lesson (see the module's docstring)."""

    BINDINGS = [
        Binding("1", "choose(0)", "choice 1", show=False),
        Binding("2", "choose(1)", "choice 2", show=False),
        Binding("3", "choose(2)", "choice 3", show=False),
        Binding("4", "choose(3)", "choice 4", show=False),
        Binding("up", "move(-1)", "previous choice", show=False),
        Binding("down", "move(1)", "next choice", show=False),
        Binding("enter", "confirm", "predict", show=False),
        Binding("x", "stop", "stop"),
        Binding("r", "again", "run again"),
        Binding("n", "next", "next lesson"),
        Binding("v", "toggle_view", "run / answer"),
        Binding("b", "scheduler", "be the scheduler", show=False),
        Binding("m", "slow_motion", "slow motion", show=False),
        Binding("escape", "back", "lessons"),
    ]
    AUTO_FOCUS = None  # keys go to the screen's bindings, never to a scrolling container
    DEFAULT_CSS = """
    LessonScreen #topbar {
        height: 1;
        padding: 0 1;
        background: $panel;
        text-style: bold;
    }
    LessonScreen #body {
        height: 1fr;
        padding: 0 1;
    }
    LessonScreen #body > Static {
        height: auto;
    }
    LessonScreen #question, LessonScreen #verdict {
        text-style: bold;
        margin-top: 1;
    }
    LessonScreen #choices, LessonScreen #answer, LessonScreen #article,
    LessonScreen #scheduler {
        margin-top: 1;
    }
    LessonScreen #status {
        margin-top: 1;
    }
    LessonScreen #run {
        height: 1fr;
        display: none;
    }
    LessonScreen #run > Static {
        height: auto;
        padding: 0 1;
    }
    LessonScreen #run > Pane {
        height: 1fr;
    }
    /* From TALL rows the answer sits above the finished run's picture. */
    LessonScreen.-both #body {
        height: auto;
        max-height: 50%;
    }
    """

    def __init__(self, lesson_id: str, progress: Progress | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.lesson = L.get(lesson_id)
        self.index = L.ids().index(lesson_id)
        self.progress = progress or Progress()
        self.ctx = L.facts()
        self.choices = self.lesson.choice_texts(self.ctx)
        self.key = "lesson:" + lesson_id
        self.step = "predict"  # predict, run, answer
        self.highlight = 0
        self.prediction: int | None = None
        self.plan: L.Plan | None = None
        self.outcome: L.Outcome | None = None
        self.failure: str | None = None  # the run could not be read: why
        self._before = None  # the slot's state before our run: not ours to judge
        self.run_only = False  # answer step: v shows the finished run alone
        self._state = None

    # Layout ----------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Static("Lesson %d of %d · %s" % (self.index + 1, len(L.LESSONS),
                                               self.lesson.title), id="topbar")
        with VerticalScroll(id="body", can_focus=False):
            yield Static(self.lesson.text(self.lesson.explain, self.ctx), id="explain")
            yield Static(id="question")
            yield Static(id="choices")
            yield Static(id="verdict")
            yield Static(id="answer")
            yield Static(id="article")
            yield Static(id="scheduler")
            yield Static(id="status")
        with Vertical(id="run"):
            yield Static(id="predicted")
        yield LabFooter(PREDICT_KEYS % len(self.choices), id="footer")

    def on_mount(self) -> None:
        self.show_predict()

    def on_unmount(self) -> None:
        # However the lesson is left (esc, l, n, the palette), its run goes with it.
        if self.app.controller.is_running(self.key):
            self.app.stop_runs([self.key])

    # Steps -----------------------------------------------------------------------------
    def _set(self, widget_id: str, content="", visible: bool = True) -> None:
        widget = self.query_one("#" + widget_id, Static)
        widget.update(content)
        widget.display = visible

    def _keys(self, keys: str) -> None:
        self.query_one("#footer", LabFooter).set_keys(keys)

    def show_predict(self) -> None:
        self.step = "predict"
        self.remove_class("-both")
        self.query_one("#body").display = True
        self.query_one("#run").display = False
        self._set("explain", self.lesson.text(self.lesson.explain, self.ctx))
        question = self.lesson.text(self.lesson.question, self.ctx)
        self._set("question", question if question.endswith("?") else question + ":")
        self._draw_choices()
        for hidden in ("verdict", "answer", "article", "scheduler"):
            self._set(hidden, visible=False)
        plan = self.lesson.plan()
        if plan is None:
            needs = ", ".join(p.experiment for p in self.lesson.plans)
            self._set("status", Text.assemble(
                ("NOT AVAILABLE YET", "bold reverse"),
                " this lesson needs the %s experiment, which this lab does not have yet. "
                "You can still make your prediction." % needs))
        else:
            self._set("status", "Predict first: 1-%d, or ↑↓ and ⏎. The run starts at once.%s"
                      % (len(self.choices), self._last_time()))
        self._keys(PREDICT_KEYS % len(self.choices))

    def _last_time(self) -> str:
        """`Last time: you said 2, it measured 3 (surprised).` from the saved progress."""
        entry = self.progress.entry(self.lesson.id)
        if "measured" not in entry:
            return ""
        measured = " or ".join(str(a + 1) for a in entry.get("measured") or []) or "-"
        return "\nLast time: you said %s, it measured %s (%s)." % (
            (entry.get("predicted") or 0) + 1 if "predicted" in entry else "-", measured,
            MARKS[self.progress.status(self.lesson.id)][1])

    def _draw_choices(self) -> None:
        text = Text()
        for index, choice in enumerate(self.choices):
            chosen = index == self.highlight
            line = "%s %d  %s" % ("▶" if chosen else " ", index + 1, choice)
            text.append(line, style="reverse" if chosen else "")
            if index < len(self.choices) - 1:
                text.append("\n")
        self._set("choices", text)

    def show_run(self) -> None:
        self.step = "run"
        self.remove_class("-both")
        for pane in self.query("#run > Pane"):
            if pane.view is not None:
                pane.view.explains = True  # the answer that made it a repeat is gone
        self.query_one("#body").display = False
        self.query_one("#run").display = True
        self._set("predicted", Text.assemble(
            ("You predicted: ", "bold"), "%d  %s" % (self.prediction + 1,
                                                     self.choices[self.prediction]),
            "\n", self.lesson.text(self.lesson.question, self.ctx)))
        self._keys(RUN_KEYS)

    def show_answer(self) -> None:
        self.step = "answer"
        self.run_only = False
        self._arrange_answer()
        for hidden in ("explain", "question", "choices"):
            self._set(hidden, visible=False)  # 80x24: the answer needs the room
        predicted = Text.assemble(("You predicted  ", "bold"), self._choice(self.prediction))
        outcome = self.outcome
        if outcome is None:
            self._set("verdict", Text.assemble(predicted, "\n", ("No answer: ", "bold"),
                                               self.failure or "the run gave none"))
            self._set("answer", "r runs it again.")
            self._set("article", visible=False)
        else:
            measured = " / ".join(self._choice(a) for a in outcome.answers) or "-"
            if outcome.figure:
                measured += "  (%s)" % outcome.figure
            self._set("verdict", Text.assemble(predicted, "\n", ("Measured       ", "bold"),
                                               measured, "\n",
                                               (L.grade(outcome, self.prediction), "bold"),
                                               " · ", self._run_line()))
            self._set("answer", outcome.text)
            self._set("article", self._article(outcome))
        if self.lesson.scheduler is not None:
            self._set("scheduler", Text.assemble(
                ("▶ Now be the scheduler", "bold"),
                " (b): make it happen by hand, one step at a time, on the %s program."
                % self.lesson.scheduler.program))
        busy = outcome is not None and outcome.busy
        self._set("status", Text.assemble(("! ", "bold"), (outcome.busy, "bold"))
                  if busy else "", visible=bool(busy))

    def _tall(self, height: int | None = None) -> bool:
        return (height or self.app.size.height) >= TALL

    def _arrange_answer(self, height: int | None = None) -> None:
        """Tall screens show the answer above the finished run's picture (the pane that
        drew it live, still holding its last frame); at 80x24 `v` swaps the two."""
        both = self._tall(height) and self.plan is not None and not self.run_only
        self.set_class(both, "-both")
        self.query_one("#body").display = not self.run_only
        self.query_one("#run").display = both or self.run_only
        self.query_one("#predicted").display = not both  # the verdict says it already
        for pane in self.query("#run > Pane"):
            if pane.view is not None:  # under the answer, the view's own text is a repeat
                pane.view.explains = not both
        self.call_after_refresh(self._refit_picture)
        if self.plan is None:
            shows = "the run"  # nothing to show: v does nothing
        elif self.run_only:
            shows = "the answer"
        else:
            shows = "run only" if both else "the run"
        keys = SCHEDULER_KEYS if self.lesson.scheduler is not None else ANSWER_KEYS
        self._keys(keys % shows)

    def _refit_picture(self) -> None:
        """A full view fits the rows its box had when it drew; the box has just changed
        (the answer took half of it, or gave it back), so it draws again for the new box."""
        for pane in self.query("#run > Pane"):
            repaint = getattr(pane.view, "repaint", None)
            if repaint is not None:
                repaint(force=True)
            elif pane.view is not None:
                pane.view.refresh(layout=True)

    def on_resize(self, event) -> None:
        if self.step == "answer":
            self._arrange_answer(event.size.height)  # app.size lags the event

    def _choice(self, index: int | None) -> str:
        if index is None or not 0 <= index < len(self.choices):
            return "-"
        return "%d %s" % (index + 1, self.choices[index])

    def _article(self, outcome: L.Outcome) -> Text:
        text = Text.assemble(("The article says: ", "bold"), self.lesson.article)
        verdict = L.verdict(outcome)
        if verdict:
            head, _, rest = verdict.partition(". ")
            text.append("\n")
            text.append(head + ".", style="bold")
            text.append(" " + rest)
        return text

    def _run_line(self) -> str:
        """`gil-cpu on 3.11.7, 0.9 s · v: the run`: what was measured, and how to see it."""
        state = self._state
        if state is None or self.plan is None:
            return ""
        python = ((state.hello or {}).get("python") or {}).get("version", "")
        return "%s%s, %.1f s%s" % (self.plan.experiment, " on " + python if python else "",
                                   state.duration_s, "" if self._tall() else " · v: the run")

    # Runs ------------------------------------------------------------------------------
    def start(self) -> bool:
        """Start the first plan this lab can run; on refusal, try the next one."""
        app = self.app
        controller = app.controller
        refusals = []
        for plan in self.lesson.available_plans():
            self._before = controller.state(self.key)
            if app.start_run(self.key, plan.experiment, plan.params_for(self.ctx)):
                self.plan = plan
                self._mount_pane(plan)
                self.outcome, self.failure, self._state = None, None, None
                self.show_run()
                return True
            refusals.append("%s: %s" % (plan.experiment,
                                        controller.refusals.get(self.key, "refused")))
        if not refusals:
            self._set("status", Text.assemble(("NOT AVAILABLE YET", "bold reverse"),
                                              " no experiment for this lesson in this lab."))
        else:
            self._set("status", Text.assemble(("REFUSED", "bold reverse"), " " +
                                              "; ".join(refusals)))
        return False

    def _mount_pane(self, plan: L.Plan) -> None:
        """The experiment's live view in a pane (kept for a second run of the same one)."""
        pane_id = "live-" + plan.experiment
        for old in self.query("#run > Pane"):
            if old.id != pane_id:
                old.remove()
        if self.query("#" + pane_id):
            return
        compact = not self._tall()
        view = view_class(plan.experiment)(compact=compact)
        self.query_one("#run").mount(Pane("Live · %s" % plan.experiment, plan.experiment,
                                          view=view, id=pane_id))

    def refresh_live(self) -> None:
        """One frame: draw the run; when it ends, judge it and show the answer."""
        if self.plan is None:
            return
        runs = self.query("#run")
        if not runs:  # the screen is being taken down
            return
        controller = self.app.controller
        state = controller.state(self.key)
        if state is self._before:
            state = None  # our run's worker has not started yet
        if runs.first().display:  # hidden panes cost nothing
            for pane in self.query("#run > Pane"):
                pane.show(state, controller.refusals.get(self.key), idle_hint="starting…")
        if self.step != "run" or state is None or state.running:
            return
        self._state = state
        self.judge(state)
        self.show_answer()

    def judge(self, state) -> None:
        try:
            self.outcome = self.lesson.judge(self.plan, L.record_of_state(state), self.ctx)
            self.failure = None
        except L.Unreadable as exc:
            self.outcome, self.failure = None, str(exc)
            return
        if not self.outcome.graded(self.prediction):
            return  # not a grade: the lesson stays "predicted, not run"
        python = ((state.hello or {}).get("python") or {}).get("version", "")
        self.progress.measured(self.lesson.id, self.prediction, self.outcome.answers, python)

    # Actions ---------------------------------------------------------------------------
    def action_choose(self, index: int) -> None:
        if self.step != "predict" or index >= len(self.choices):
            return
        self.highlight = index
        self._draw_choices()
        self.action_confirm()

    def action_move(self, delta: int) -> None:
        if self.step != "predict":
            return
        self.highlight = (self.highlight + delta) % len(self.choices)
        self._draw_choices()

    def action_confirm(self) -> None:
        if self.step != "predict":
            return
        self.prediction = self.highlight
        self.progress.predicted(self.lesson.id, self.prediction)
        self.start()

    def action_slow_motion(self) -> None:
        """Runs long enough to watch (lab/core/slow.py), for this lab's next runs."""
        controller = self.app.controller
        controller.slow = not controller.slow
        self.notify("slow motion %s" % (
            "on: the next runs last several seconds per mode, measuring the same thing"
            " (m: off)" if controller.slow else "off"))

    def action_stop(self) -> None:
        if self.step == "run":
            self.app.stop_runs([self.key])

    def action_again(self) -> None:
        if self.step == "answer" and self.prediction is not None:
            self.start()

    def action_toggle_view(self) -> None:
        if self.step != "answer" or self.plan is None:
            return
        self.run_only = not self.run_only
        self._arrange_answer()

    def action_scheduler(self) -> None:
        """After the run: "now be the scheduler" on the lesson's program, with its goal."""
        step = self.lesson.scheduler
        if self.step != "answer" or step is None:
            return
        self.app.action_scheduler(step.program, 2, " ".join(step.text.split()))

    def action_next(self) -> None:
        if self.step != "answer":
            return
        ids = L.ids()
        if self.index + 1 < len(ids):
            self.app.switch_screen(LessonScreen(ids[self.index + 1], progress=self.progress))
        else:
            self.action_back()

    def action_back(self) -> None:
        self.app.stop_runs([self.key])
        self.app.pop_screen()
