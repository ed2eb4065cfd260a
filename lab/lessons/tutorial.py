"""The lessons: the article's path as predict → run → compare → explain. No Textual here.

Each lesson explains one idea in a few lines, asks the learner to predict what the machine
will do (multiple choice), names the experiment and small parameters that answer the
question, and has a judge: a function that reads the finished run's record and returns
which choice(s) the measurement supports and an explanation built from the numbers just
measured. Where this machine disagrees with the article, the judge says so and says why.

The judge reads a *record-like* dict (`result`, `threads`, `interpreter`), so the same
function serves `conlab run --json` records and the TUI's RunState (`record_of_state`).
Texts may contain `{cpus}`, `{many}`... filled from `facts()` for the machine at hand.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from lab.core.formatting import count_of
from workloads import times

# Outcomes ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What the run says: the choice(s) it supports and why, with its numbers.

    `answers`, `agrees` and `note` come from the same figures through one judge, and
    `agrees` is whether the answers include the article's own choice (see `agreement`),
    so the tick/cross and the "agrees with the article" line cannot contradict each other.
    """

    answers: tuple[int, ...]  # indexes into the lesson's choices (a tie: several)
    text: str  # the explanation, using the figures just measured
    agrees: bool | None = None  # with the article's claim (None: nothing to compare)
    note: str = ""  # why this machine agrees or disagrees with the article
    busy: str = ""  # other programs took the CPUs during the run: how much, in words
    figure: str = ""  # the mechanism figure the grade rests on, in words
    cannot: str = ""  # why this run grades no prediction at all (a busy machine)
    unshowable: tuple[int, ...] = ()  # choices this machine cannot show (1 CPU: no 2x)
    why_unshowable: str = ""

    def graded(self, predicted: int | None) -> bool:
        """Can this run say whether `predicted` was right?"""
        return predicted is not None and not self.cannot and predicted not in self.unshowable

    def right(self, predicted: int | None) -> bool:
        return self.graded(predicted) and predicted in self.answers


def grade(outcome: Outcome, predicted: int | None) -> str:
    """The mark beside the measured answer: ✓, ✗, or ? with the reason no grade is given."""
    if outcome.cannot:
        return "? " + outcome.cannot
    if predicted in outcome.unshowable:
        return "? not graded: " + outcome.why_unshowable
    return "✓ as you predicted" if outcome.right(predicted) else "✗ not what you predicted"


def agreement(answers: tuple[int, ...], ctx: dict) -> bool:
    """Does the measured answer include the article's choice? (ctx["article"], set by
    Lesson.judge from the lesson's `article_choices`)."""
    return bool(set(answers) & set(ctx["article"]))


class Unreadable(Exception):
    """The run ended without the figures the lesson reads (failed, stopped, old record)."""


@dataclass(frozen=True)
class Plan:
    """One way to answer a lesson: an experiment, its small parameters, and its judge."""

    experiment: str
    params: dict[str, Any] | Callable[[dict], dict[str, Any]]
    judge: Callable[[dict, dict], Outcome]

    def params_for(self, ctx: dict) -> dict[str, Any]:
        return dict(self.params(ctx) if callable(self.params) else self.params)


@dataclass(frozen=True)
class SchedulerStep:
    """After the live run: "now be the scheduler" on one of interleave's programs."""

    program: str
    text: str  # what to try, in a few lines; the goal itself comes from the child


@dataclass(frozen=True)
class Lesson:
    id: str
    title: str
    explain: str  # a few lines in plain words; `{cpus}` etc. filled from facts()
    question: str
    choices: tuple[str, ...]
    article: str  # the article's claim, in our words (shown labelled "the article says")
    plans: tuple[Plan, ...] = field(default=())
    article_choices: tuple[int, ...] = ()  # the choice(s) the article's claim amounts to
    scheduler: SchedulerStep | None = None  # a step after the run: make it happen by hand

    def text(self, template: str, ctx: dict) -> str:
        return " ".join(template.split()).format(**ctx)

    def choice_texts(self, ctx: dict) -> list[str]:
        return [self.text(c, ctx) for c in self.choices]

    def plan(self, available: list[str] | None = None) -> Plan | None:
        """The first plan whose experiment this lab has (None: not available yet)."""
        names = available if available is not None else experiment_names()
        for plan in self.plans:
            if plan.experiment in names:
                return plan
        return None

    def available_plans(self, available: list[str] | None = None) -> list[Plan]:
        names = available if available is not None else experiment_names()
        return [p for p in self.plans if p.experiment in names]

    def judge(self, plan: Plan, record: dict, ctx: dict) -> Outcome:
        """The plan's judge; a record it cannot read raises Unreadable with the reason."""
        if record.get("status") not in (None, "done"):
            raise Unreadable("the run ended %s%s" % (
                record.get("status"), ": %s" % record["error"] if record.get("error") else ""))
        if not isinstance(record.get("result"), dict):
            raise Unreadable("the run left no result")
        try:
            return plan.judge(record, dict(ctx, article=self.article_choices))
        except (KeyError, TypeError, ValueError, IndexError, ZeroDivisionError) as exc:
            raise Unreadable("the result lacks a figure this lesson reads (%s: %s)"
                             % (type(exc).__name__, exc)) from None


def verdict(outcome: Outcome) -> str:
    """This machine against the article, in words: what the answer screen says."""
    if outcome.agrees is None:
        return ("This machine cannot compare with the article. %s" % outcome.note
                if outcome.note else "")
    return "%s %s" % ("This machine agrees with the article." if outcome.agrees else
                      "This machine DISAGREES with the article.", outcome.note)


def experiment_names() -> list[str]:
    import workloads

    return workloads.experiment_names()


def facts(cpus: int | None = None, rate: float | None = None) -> dict[str, Any]:
    """The machine figures lesson texts and parameters are phrased in.

    `rate` is this machine's speed at the CPU-bound lessons' loop (iterations per
    CPU-second, measured once per process by `loop_rate`): their runs are sized from it.
    """
    if cpus is None:
        from lab.core.machine import machine

        cpus = machine().usable_cpus
    many = min(64, max(2, 2 * cpus))
    return {"cpus": cpus, "many": many, "ps": cpus,
            "cores": "1 CPU" if cpus == 1 else "%d CPUs" % cpus,
            "rate": rate if rate is not None else loop_rate()}


def loop_rate() -> float:
    """This machine's speed at gil-cpu's loop (iterations per CPU-second), measured once
    per process; slow motion sizes runs from the same figure."""
    from lab.core.slow import loop_rate as measured

    return measured()


# How long a lesson's run lasts: each mode long enough to be stable and to watch.
MODE_S = 3.0  # the one-after-another mode of a CPU-bound lesson, in seconds
FASTEST_MODE_S = 1.0  # no mode shorter than this if the total allows
RUN_MOST_S = 15.0  # a lesson's whole run at most, roughly


def sized_work(ctx: dict, tasks: int, lanes: int, modes: int = 3) -> int:
    """Iterations per task so that one task after another lasts about MODE_S, the
    parallel modes (`lanes` at once) at least FASTEST_MODE_S, the whole run at most
    about RUN_MOST_S (`modes` modes, two of them at one core's pace)."""
    one_after = max(MODE_S, FASTEST_MODE_S * lanes)
    slow = 1 if modes == 1 else 2  # sequential, and threads under a GIL
    one_after = min(one_after, RUN_MOST_S / (slow + 1.0 / lanes))
    return max(1_000, int(ctx["rate"] * one_after / tasks))


def processes_only_work(ctx: dict, tasks: int) -> int:
    """Iterations per task for a processes-only run lasting about MODE_S."""
    lanes = min(tasks, ctx["cpus"])
    return max(1_000, int(ctx["rate"] * MODE_S * lanes / tasks))


def record_of_state(state) -> dict[str, Any]:
    """The parts of a finished RunState a judge reads, shaped like a run record."""
    python = (state.hello or {}).get("python", {})
    return {
        "experiment": state.experiment, "params": state.params, "status": state.status,
        "error": state.error, "result": state.result, "threads": state.thread_records(),
        "interpreter": {"version": python.get("version", ""),
                        "implementation": python.get("implementation", "cpython"),
                        "gil_enabled": python.get("gil_enabled", True),
                        "free_threaded": python.get("free_threaded_build", False)},
    }


# Figures -------------------------------------------------------------------------------
def num(n: float) -> str:
    """12 345 678: digits grouped by spaces, as the lab's views write them."""
    return "{:,}".format(int(round(n))).replace(",", " ")


def ms(seconds: float) -> str:
    return "%.0f ms" % (seconds * 1000)


def secs(seconds: float) -> str:
    return "%.2f s" % seconds


def us(micro: float) -> str:
    return "%.1f µs" % micro if micro < 100 else "%.0f µs" % micro


def version_of(record: dict) -> tuple[int, int]:
    text = (record.get("interpreter") or {}).get("version") or "0.0"
    parts = text.split(".")
    try:
        return int(parts[0]), int(parts[1])
    except (ValueError, IndexError):
        return 0, 0


def python_name(record: dict) -> str:
    interp = record.get("interpreter") or {}
    impl = interp.get("implementation") or "cpython"
    name = "CPython" if impl == "cpython" else impl
    return "%s %s" % (name, interp.get("version") or "?")


MODES_ALL = ("sequential", "threads", "processes")


def gil_on(record: dict) -> bool:
    interp = record.get("interpreter") or {}
    flag = interp.get("gil_enabled")
    if flag is None:
        flag = (record.get("result") or {}).get("gil_enabled", True)
    return bool(flag)


def band(value: float, edges: tuple[float, ...], slack: float = 0.04) -> tuple[int, ...]:
    """Which band `value` falls in, with `edges` descending (band 0 is >= edges[0]).

    Within `slack` (relative) of an edge both neighbours count: the measurement cannot
    tell them apart, so a prediction of either is accepted.
    """
    found = len(edges)
    for index, edge in enumerate(edges):
        if value >= edge:
            found = index
            break
    answers = {found}
    for index, edge in enumerate(edges):
        if abs(value - edge) <= slack * edge:
            answers.update((index, index + 1))
    return tuple(sorted(answers))


def share_words(share: float) -> str:
    """A share as a percentage that never rounds a non-zero loss to 0.0%."""
    if share == 0 or share >= 0.001:
        return "%.1f%%" % (share * 100)
    return "%.2g%%" % (share * 100)


def workers(record: dict, prefix: str = "") -> list[dict]:
    return [t for t in record.get("threads") or []
            if t.get("role") == "worker" and t.get("name", "").startswith(prefix)]


def total(rows: list[dict], key: str) -> float:
    return sum(r.get(key) or 0 for r in rows)


def free_threaded(record: dict) -> bool:
    """A build without a GIL (even if PYTHON_GIL=1 switched one on: see gil_on)."""
    interp = record.get("interpreter") or {}
    for flag in (interp.get("free_threaded"), interp.get("free_threaded_build"),
                 (record.get("result") or {}).get("free_threaded")):
        if flag is not None:
            return bool(flag)
    return False


def mode_cores(result: dict, mode: str) -> float:
    """Cores a mode's workers used: their CPU-seconds per wall-second. Records without the
    figure give the run's process tree's CPU-seconds per wall-second in that mode."""
    figures = result["modes"][mode]
    used = figures.get("cores_used")
    return float(used if used is not None else figures["cpu_efficiency"])


# The mechanism's bands: cores used.
ONE_CORE = 1.15  # at most this: one core's worth (what threads get under a GIL)
ALL_LANES = 0.8  # at least this share of min(tasks, CPUs) (and above ONE_CORE): side by side
NO_CHANGE = (0.9, 1.1)  # wall-clock ratios this close to 1 are "no change"


def cores_reading(cores: float, lanes: int) -> str:
    """"one" core's worth, "all" the lanes min(tasks, CPUs), or "some" in between."""
    if lanes < 2 or cores <= ONE_CORE:
        return "one"
    if cores >= ALL_LANES * lanes:
        return "all"
    return "some"


def speed_answers(reading: str, wall: float) -> tuple[int, ...]:
    """SPEEDUP choices (twice / somewhat faster / same / slower) for two CPU-bound tasks,
    from the cores they used; the wall-clock ratio only picks within "one core"."""
    if reading == "all":
        return (0,) if wall >= 1.6 else (0, 1)
    if reading == "some":
        return (1,)
    low, high = NO_CHANGE
    if wall < low:
        return (3,)
    return (2, 3) if wall <= high else (2,)


def band_words(wall: float) -> str:
    """Said when a ratio lies within the no-change band: both neighbours fit."""
    low, high = NO_CHANGE
    if not low <= wall <= high:
        return ""
    return (" %.2fx lies within %.2f-%.2fx of no change, so \"about the same\" and "
            "\"slower\" both fit." % (wall, low, high))


def untold(record: dict, modes: tuple[str, ...], figure: str = "") -> str:
    """Why this run cannot grade a prediction (other programs took the CPUs, or the
    experiment's own verdict on `figure` says it cannot tell), or ""."""
    result = record["result"]
    judged = result.get("verdict")
    if isinstance(judged, dict) and judged.get("figure") == figure \
            and judged.get("can_tell") is False:
        why = judged.get("why") or judged.get("says") or ""
        if "busy" in (judged.get("says") or "") or (result.get("load") or {}).get("busy"):
            return "can't tell on a machine this busy (%s); r runs it again." % why
        return "can't tell from this run (%s); r runs it again." % why
    figures = [result["modes"][m] for m in modes if m in result.get("modes", {})]
    flags = [f.get("busy") for f in figures if f.get("busy") is not None]
    load = result.get("load")
    if flags:
        busy = any(flags)
    elif isinstance(load, dict) and load.get("busy") is not None:
        busy = bool(load["busy"])
    else:
        return busy_machine(record, modes)
    if not busy:
        return ""
    share = (load or {}).get("other_cpu_share")
    took = "other programs took %d%% of the CPUs" % round(100 * share) if share is not None \
        else "other programs took the CPUs"
    return "can't tell on a machine this busy (%s); r runs it again." % took


def busy_machine(record: dict, modes: tuple[str, ...] = MODES_ALL) -> str:
    """Older records (no load block): did a mode get less CPU than it could use?

    Each mode's CPU-seconds per wall-second is set against what it could use: one core for
    one-after-another (and for threads under a GIL), min(tasks, cores) otherwise.
    """
    result = record["result"]
    cpus = result.get("cpus") or 1
    lanes = float(min(result.get("tasks", 1), cpus))
    could = {"sequential": 1.0, "processes": lanes,
             "threads": 1.0 if gil_on(record) else lanes}
    short = ["%s %.2f of %g" % (mode, result["modes"][mode]["cpu_efficiency"], could[mode])
             for mode in modes if mode in result["modes"]
             and result["modes"][mode].get("cpu_efficiency") is not None
             and result["modes"][mode]["cpu_efficiency"] < 0.8 * could[mode]]
    if not short:
        return ""
    return ("can't tell on a machine this busy (cores used: %s, less than the run could "
            "use); r runs it again." % ", ".join(short))


def cpu_per_work(result: dict, mode: str) -> float | None:
    value = result["modes"][mode].get("cpu_ns_per_iteration")
    return float(value) if value else None


def not_graded(figure: str, text: str, why: str) -> Outcome:
    """A run that cannot grade any prediction: the figure, and why, and nothing else."""
    return Outcome((), text, None, "", figure=figure, cannot=why)


def interpreter_words(record: dict) -> str:
    """`CPython 3.12.3` plus what kind of build it is, from the child's own report."""
    name = python_name(record)
    if free_threaded(record):
        return name + (" (free-threaded, its GIL switched on)" if gil_on(record)
                       else " (free-threaded, no GIL)")
    return name if gil_on(record) else name + " (no GIL)"


# 1. Concurrency vs parallelism ---------------------------------------------------------
def judge_parallel(record: dict, ctx: dict) -> Outcome:
    result = record["result"]
    modes, tasks, cpus = result["modes"], result["tasks"], result.get("cpus") or ctx["cpus"]
    seq, proc = modes["sequential"]["wall_s"], modes["processes"]["wall_s"]
    wall = result["speedup"]["processes"]
    lanes = min(tasks, cpus)
    cores = mode_cores(result, "processes")
    figure = "processes used %.2f cores of %s, %.2fx" % (cores, ctx["cores"], wall)
    procs = workers(record, "proc-")
    text = ("One task after another took %s; %d processes at once took %s: %.2fx. "
            "Together they used %.2f cores (CPU-seconds per wall-second) of %s: at most "
            "one task per core ran at any instant (parallelism), the others took turns "
            "(concurrency). The kernel's books: the workers spent %s on a CPU and %s ready "
            "to run but queued for one (run_delay)."
            % (secs(seq), tasks, secs(proc), wall, cores, ctx["cores"] if cpus == ctx["cpus"]
               else "%d CPUs" % cpus, secs(total(procs, "cpu_s")),
               secs(total(procs, "run_delay_s"))))
    why = untold(record, ("sequential", "processes"))
    if why:
        return not_graded(figure, text, why)
    reading = cores_reading(cores, lanes)
    low, high = NO_CHANGE
    if reading == "one":  # 1 CPU (or held to one): "one per core" is "the same" there
        if wall < low:
            answers: tuple[int, ...] = (3,)
        elif lanes < 2:
            answers = (1, 2)
        else:
            answers = (2, 3) if wall <= high else (2,)
    else:
        answers = (0, 1) if lanes >= ALL_LANES * tasks else (1,)
    agrees = agreement(answers, ctx)
    if agrees and lanes < 2:
        note = ("%.2f cores on 1 usable CPU: the %d processes took turns on it, so they "
                "finished in about the same time as one after another.%s"
                % (cores, tasks, band_words(wall)))
    elif agrees:
        note = ("No more than one task per core: %.2f cores used of %d, %.2fx."
                % (cores, cpus, wall))
    elif reading == "one":
        note = ("The processes used only %.2f cores of %d on a quiet machine: something "
                "(a CPU quota, pinning) held them to one core.%s" % (cores, cpus,
                                                                    band_words(wall)))
    else:
        note = ("Slower than one after another (%.2fx) although they used %.2f cores: "
                "starting and switching the processes cost more than it gained."
                % (wall, cores))
    return Outcome(answers, text, agrees, note, figure=figure)


# 2. OS threads and switch counters -----------------------------------------------------
def judge_switches(record: dict, ctx: dict) -> Outcome:
    procs = workers(record, "proc-")
    if not procs:
        raise KeyError("worker processes")
    cpus = (record.get("result") or {}).get("cpus") or ctx["cpus"]
    vol, inv = total(procs, "voluntary"), total(procs, "involuntary")
    wait = total(procs, "run_delay_s") / len(procs)
    figure = "involuntary %s, voluntary %s" % (num(inv), num(vol))
    crowded = len(procs) > cpus
    text = ("The %d busy processes on %d CPU%s were switched out %s involuntarily and %s "
            "voluntarily. Each spent %s on average runnable but waiting in the run queue "
            "(run_delay). Code that only computes never chooses to wait, so its switches "
            "are the scheduler's doing: %s"
            % (len(procs), cpus, "" if cpus == 1 else "s", times(inv, num(inv)),
               times(vol, num(vol)), secs(wait),
               "with more runnable tasks than cores, the involuntary count climbs."
               if crowded else "here each could have a core of its own, so few switches "
               "were needed."))
    why = untold(record, ("processes",))
    if why:
        return not_graded(figure, text, why)
    if vol + inv < 2 * len(procs):
        answers: tuple[int, ...] = (2,)
    elif inv >= 2 * vol:
        answers = (1,)
    elif vol >= 2 * inv:
        answers = (0,)
    else:
        answers = (0, 1)
    agrees = agreement(answers, ctx)
    if answers == (1,):
        note = "Involuntary switches dominate (%s), as it says for tasks competing for " \
            "CPUs." % figure
    elif agrees:
        note = ("Both counters climbed about as much (%s): the preemptions are there, "
                "beside waits on the lab's own pipes." % figure)
    elif answers == (2,):
        note = ("Hardly any switches (%s): %d processes on %s did not have to "
                "compete." % (figure, len(procs), count_of(cpus, "CPU")))
    else:
        note = ("Voluntary switches dominated here (%s): the workers blocked on "
                "something, perhaps memory or the lab's own pipes." % figure)
    return Outcome(answers, text, agrees, note, figure=figure)


# 3. The GIL with CPU-bound threads -----------------------------------------------------
def judge_gil_cpu(record: dict, ctx: dict) -> Outcome:
    result = record["result"]
    modes, cpus = result["modes"], result.get("cpus") or ctx["cpus"]
    tasks = result.get("tasks", 2)
    seq, thr = modes["sequential"]["wall_s"], modes["threads"]["wall_s"]
    wall = result["speedup"]["threads"]
    lanes = min(tasks, cpus)
    cores = mode_cores(result, "threads")
    figure = "threads used %.2f cores, %.2fx" % (cores, wall)
    gil = gil_on(record)
    text = ("One loop after the other: %s. %d threads: %s, so %.2fx. Together the "
            "threads used %.2f cores (CPU-seconds per wall-second), with %d CPU%s usable. "
            % (secs(seq), tasks, secs(thr), wall, cores, cpus, "" if cpus == 1 else "s"))
    if gil:
        text += ("On %s only the thread holding the GIL runs Python; the other sleeps "
                 "until it is handed over, every switch interval (%s)."
                 % (interpreter_words(record), ms(result.get("switch_interval_s", 0.005))))
    else:
        text += ("%s has no GIL: threads can run side by side, on up to min(tasks, CPUs) "
                 "= %d core%s." % (interpreter_words(record), lanes, "" if lanes == 1 else "s"))
    if lanes < 2:
        text += " With 1 usable CPU threads cannot run side by side, GIL or not."
    why = untold(record, ("sequential", "threads"), "modes.threads.cores_used")
    if why:
        return not_graded(figure, text, why)
    reading = cores_reading(cores, lanes)
    answers = speed_answers(reading, wall)
    agrees = agreement(answers, ctx)
    held = ("the GIL let one thread run at a time" if gil else
            "1 usable CPU" if lanes < 2 else
            "something (a CPU quota, pinning) held this GIL-free build to one core")
    if reading == "one" and agrees:
        note = "No gain: the threads used %.2f cores, one core's worth (%s).%s" % (
            cores, held, band_words(wall))
    elif reading == "one":
        costs = cpu_per_work(result, "threads"), cpu_per_work(result, "sequential")
        if None not in costs:
            cause = ("the same work took %.1f ns of CPU per iteration in threads against "
                     "%.1f one after another (clock boost, caches)" % costs)
        else:
            cause = "the one-after-another run was slower for another reason"
        note = ("Not slower here (%.2fx), yet the threads used only %.2f cores (%s), so "
                "no parallel gain either: %s." % (wall, cores, held, cause))
    elif reading == "all":
        note = ("The threads ran side by side on %.2f cores (%.2fx): %s." % (
            cores, wall, "this build has no GIL" if not gil else
            "more than the GIL allows for pure bytecode, so something else ran in them"))
    else:
        note = ("The threads used %.2f cores: more than one core's worth, less than %d "
                "(%.2fx)." % (cores, lanes, wall))
    return Outcome(answers, text, agrees, note, figure=figure)


# 4. The GIL with waiting work ----------------------------------------------------------
def judge_io_threads(record: dict, ctx: dict) -> Outcome:
    result = record["result"]
    modes, n, delay = result["modes"], result["requests"], result["delay_s"]
    seq, thr = modes["sequential"]["wall_s"], modes["threads"]["wall_s"]
    ratio = seq / thr
    cpu = modes["threads"].get("cpu_s", 0.0)
    text = ("One after another: %s for %d requests of %s each. In %d threads: %s, "
            "%.1fx faster, close to a single delay. The threads used %s of CPU: a thread "
            "waiting in recv() has let go of the GIL, so the waits overlap freely."
            % (secs(seq), n, secs(delay), n, secs(thr), ratio, ms(cpu)))
    return _waiting_outcome(ratio, n, text, ctx)


def judge_dial_threads(record: dict, ctx: dict) -> Outcome:
    row = record["result"]["rows"][0]
    models = row["models"]
    seq, thr = models["sequential"]["jobs_per_s"], models["threads"]["jobs_per_s"]
    ratio = thr / seq
    n = row["concurrency"]
    text = ("Jobs that only wait: one at a time, %.1f jobs/s; %d threads, %.1f jobs/s "
            "(%.1fx). A thread blocked waiting has released the GIL, so the waits overlap."
            % (seq, n, thr, ratio))
    return _waiting_outcome(ratio, n, text, ctx)


def _waiting_outcome(ratio: float, n: int, text: str, ctx: dict) -> Outcome:
    answers = band(ratio, (0.6 * n, 1.5, 0.8))  # ~n x / ~2x / same / slower
    agrees = agreement(answers, ctx)
    note = ("Threads help with waiting work: %.1fx here." % ratio if agrees else
            "Threads did not overlap their waits here (%.1fx)." % ratio)
    return Outcome(answers, text, agrees, note, figure="%.1fx" % ratio)


# 5. Processes --------------------------------------------------------------------------
def judge_processes(record: dict, ctx: dict) -> Outcome:
    result = record["result"]
    modes, cpus = result["modes"], result.get("cpus") or ctx["cpus"]
    tasks = result.get("tasks", 2)
    seq, proc = modes["sequential"]["wall_s"], modes["processes"]["wall_s"]
    wall = result["speedup"]["processes"]
    threads = result["speedup"].get("threads")
    lanes = min(tasks, cpus)
    cores = mode_cores(result, "processes")
    figure = "processes used %.2f cores, %.2fx" % (cores, wall)
    own = ("its own interpreter and its own GIL" if gil_on(record) else
           "its own interpreter (this build has no GIL to share anyway)")
    text = ("One after the other: %s. %d processes: %s, %.2fx. Each process has %s; "
            "together they used %.2f cores (CPU-seconds per wall-second) of %d usable. "
            % (secs(seq), tasks, secs(proc), wall, own, cores, cpus))
    if threads is not None:
        text += "%d threads on the same work: %.2fx. " % (tasks, threads)
    why = untold(record, ("sequential", "processes"))
    if why:
        return not_graded(figure, text, why)
    reading = cores_reading(cores, lanes)
    answers = speed_answers(reading, wall)
    if lanes < 2:  # the article's 2x needs two CPUs: not a prediction this machine can test
        return Outcome(
            answers, text, None,
            "It lets the lab use 1 CPU, so two processes can only take turns on it "
            "(%.2f cores, %.2fx): the article's 2x needs two." % (cores, wall),
            figure=figure, unshowable=(0, 1),
            why_unshowable="1 usable CPU cannot show processes running side by side")
    agrees = agreement(answers, ctx)
    if agrees:
        note = "Side by side here too: %.2f cores used, %.2fx." % (cores, wall)
    elif reading == "one":
        note = ("The processes used only %.2f cores of %d on a quiet machine: something "
                "(a CPU quota, pinning) held them to one core.%s"
                % (cores, cpus, band_words(wall)))
    else:
        note = ("Only part of the way: %.2f cores of %d, %.2fx." % (cores, lanes, wall))
    return Outcome(answers, text, agrees, note, figure=figure)


# 6. The event loop and epoll -----------------------------------------------------------
def judge_loop_threads(record: dict, ctx: dict) -> Outcome:
    result = record["result"]
    modes, n = result["modes"], result["requests"]
    base, loop = modes["sequential"]["peak_threads"], modes["asyncio"]["peak_threads"]
    thr = modes["threads"]["peak_threads"]
    extra = loop - base
    if extra <= 0:
        answers: tuple[int, ...] = (2,)
    elif extra >= 0.8 * n:
        answers = (0,)
    else:
        answers = (1,)
    a = modes["asyncio"]
    text = ("asyncio had %d requests waiting at once on %d OS thread%s: as many as one "
            "request at a time needed (%d, the lab's helper included). The threads mode "
            "needed %d. All %d waits ended in %s: the loop sat in one epoll_wait until a "
            "reply arrived. A waiting task cost about %.0f kB; a waiting thread about "
            "%.0f kB resident plus a reserved stack."
            % (a.get("peak_in_flight", n), loop, "" if loop == 1 else "s", base, thr, n,
               secs(a["wall_s"]), a.get("rss_per_waiter_kb", 0.0),
               modes["threads"].get("rss_per_waiter_kb", 0.0)))
    agrees = agreement(answers, ctx)
    note = ("One thread carried every waiting request." if agrees else
            "asyncio used %d more thread(s) than one request did." % extra)
    return Outcome(answers, text, agrees, note, figure="%d OS thread%s" % (loop, "" if loop == 1 else "s"))


def judge_epoll_threads(record: dict, ctx: dict) -> Outcome:
    r = record["result"]
    loop = r["loops"]["asyncio"]
    n, threads = loop["connections"], loop["peak_threads"]
    if threads <= 1:
        answers: tuple[int, ...] = (2,)
    elif threads >= 0.8 * n:
        answers = (0,)
    else:
        answers = (1,)
    text = ("asyncio kept %s connections (%s file descriptors open) talking on %d OS "
            "thread%s: %s requests/s. It called epoll_wait %.0f times a second, and each "
            "call returned %.0f ready sockets on average; %.0f%% of the time the thread sat "
            "blocked in it. A connection cost about %.1f kB of memory."
            % (num(n), num(loop["peak_fds"]), threads, "" if threads == 1 else "s",
               num(loop["requests_per_s"]), loop["waits_per_s"], loop["ready_per_wait"],
               loop.get("blocked_share", 0.0) * 100,
               loop.get("rss_per_connection_bytes", 0) / 1024.0))
    agrees = agreement(answers, ctx)
    note = ("One thread carried %s connections." % num(n) if agrees else
            "asyncio used %d threads for %s connections." % (threads, num(n)))
    return Outcome(answers, text, agrees, note,
                   figure="%d OS thread%s" % (threads, "" if threads == 1 else "s"))


# 7. Blocking the loop ------------------------------------------------------------------
def judge_freeze(record: dict, ctx: dict) -> Outcome:
    result = record["result"]
    period = result["period_ms"]
    lag = result["lag_ms"]
    gap = lag["max"] + period
    answers = band(gap, (150.0, 50.0), slack=0.0)  # ~200 / ~100 / ~10 (edges ascending)
    answers = tuple(2 - a for a in answers)  # choices are listed 10 ms first
    spans = result.get("frozen_spans") or []
    text = ("The ticker missed %d ticks; the longest gap between two ticks was %.0f ms "
            "(one tick %.0f ms late). " % (result.get("missed_ticks", 0), gap, lag["max"]))
    if spans and spans[0].get("blamed"):
        text += ("The lab's watchdog caught the loop's only thread on %s (%s) while the "
                 "ticks were overdue. " % (spans[0]["blamed"], spans[0].get("code", "")))
    quiet = result.get("lag_ms_quiet") or {}
    if quiet.get("p50") is not None:
        text += "Outside the block a tick was %.1f ms late at the median. " % quiet["p50"]
    text += "Fix: move the work off the loop (fix=process_pool on the experiment screen)."
    agrees = agreement(answers, ctx)
    note = ("No tick while the loop computed." if agrees else
            "Ticks slipped in during the block (longest gap %.0f ms)." % gap)
    return Outcome(answers, text, agrees, note, figure="longest gap %.0f ms" % gap)


# 8. M:N --------------------------------------------------------------------------------
def judge_mn(record: dict, ctx: dict) -> Outcome:
    r = record["result"]
    gs, ps, busy = r["gs"], r["ps"], r["max_busy_ms"]
    if busy >= 0.8 * gs:
        answers: tuple[int, ...] = (2,)
    elif busy > ps:
        answers = (1,)
    else:
        answers = (0,)
    text = ("%d of %d Gs blocked in a real nanosleep. Up to %d Ms were busy at once with "
            "only %d Ps: %s a blocked M handed its P to another M (%s), so the other "
            "Gs kept running. Idle Ps stole %s. A G cost %.1f µs to spawn and %d "
            "bytes in this Python runtime%s."
            % (r.get("blocking_gs", 0), gs, busy, ps, times(r.get("handoffs", 0)),
               r.get("handoffs_source", "counted"), times(r.get("steals", 0)),
               r.get("spawn_us_per_g", 0.0), r.get("bytes_per_g", 0),
               "" if r.get("runtime") == "python" else " (Go)"))
    agrees = agreement(answers, ctx)
    if agrees:
        note = ("Blocked Gs did not stall their P: %d Ms busy with %d Ps." % (busy, ps))
    elif answers == (2,):
        note = "Nearly one M per G (%d busy Ms for %d Gs): not cheap goroutines." % (busy, gs)
    else:
        note = "No hand-off was needed this time (%d busy Ms, %d Ps)." % (busy, ps)
    return Outcome(answers, text, agrees, note, figure="%d Ms busy, %d Ps" % (busy, ps))


# 9. The cost of a switch ---------------------------------------------------------------
def _method(result: dict, method: str) -> dict:
    for row in result["methods"].values():
        if row.get("method") == method:
            return row
    raise KeyError(method)


def judge_switch_cost(record: dict, ctx: dict) -> Outcome:
    result = record["result"]
    proc, thr = _method(result, "processes"), _method(result, "threads")
    per = proc["us_per_msg"] / max(proc["switches_per_msg"], 0.01)
    answers = band(per, (100.0, 10.0, 1.0))
    answers = tuple(3 - a for a in answers)  # choices run from cheap to dear
    server_ms = 10_000 * 2 * per / 1000.0
    text = ("Two processes on one core: %s per hand-off, at %.2f switches per message. "
            "Two threads: %s. At that price a server doing 10 000 requests/s with two "
            "switches each would spend %.0f ms of every CPU-second switching. "
            % (us(per), proc["switches_per_msg"], us(thr["us_per_msg"]), server_ms))
    try:
        oneway = _method(result, "oneway")
    except KeyError:
        oneway = None
    agrees = agreement(answers, ctx)
    note = ("Within its 1-10 µs range: %s." % us(per) if agrees else
            "Outside its 1-10 µs range: %s here." % us(per))
    if oneway is not None:
        text += ("The one-way pipe method timed %s per byte with only %.3f switches per "
                 "byte: the writer filled the pipe and the reader drained it in batches."
                 % (us(oneway["us_per_msg"]), oneway["switches_per_msg"]))
        if oneway["switches_per_msg"] < 0.5:
            note += (" But its one-way pipe timing measures system calls, not switches: "
                     "%.3f switches per byte here." % oneway["switches_per_msg"])
    return Outcome(answers, text, agrees, note, figure="%s per hand-off" % us(per))


# 10. Races -----------------------------------------------------------------------------
def judge_race(record: dict, ctx: dict) -> Outcome:
    result = record["result"]
    variants = result["variants"]
    naive = variants["naive"]
    lost, expected = naive["lost"], naive["expected"]
    share = lost / expected if expected else 0.0
    if lost == 0:
        answers: tuple[int, ...] = (0,)
    elif share < 0.01:
        answers = (1,)
    else:
        answers = (2,)
    version, name = version_of(record), python_name(record)
    text = "naive `counter += 1`: %s of %s, lost %s (%s) on %s. " % (
        num(naive["actual"]), num(expected), num(lost), share_words(share), name)
    proof = ", ".join("%s lost %s" % (v, num(variants[v]["lost"]))
                      for v in ("call", "sleep0", "locked") if v in variants)
    agrees = agreement(answers, ctx)  # the article: updates are lost (choices 2 and 3)
    cpus = result.get("cpus") or ctx["cpus"]
    if lost and not gil_on(record) and cpus > 1:
        text += ("Without a GIL the threads ran at the same time on %d CPUs: two read the "
                 "same value and both wrote back that value plus one, so one increment "
                 "was lost each time. " % cpus)
        note = "Updates are lost: %s of them here (%s)." % (num(lost), share_words(share))
    elif lost:
        text += ("A thread was switched out between reading the counter and writing it "
                 "back, and another's increments were overwritten. ")
        note = "Updates are lost: %s of them here (%s)." % (num(lost), share_words(share))
    elif not gil_on(record):
        text += "No loss this time, though nothing prevents one without a GIL. "
        note = "Nothing lost this time, even without a GIL."
    elif version >= (3, 10):
        text += ("From 3.10 a thread offers the GIL only at calls and backward jumps, and "
                 "`counter += 1` has neither between its read and its write. ")
        note = (
            "On %s the naive counter lost nothing. The race is still real, it only needs "
            "a switch point between read and write (see call, sleep0). Under CPython 3.9 "
            "the naive counter loses updates: `conlab --python PATH-TO-3.9 learn race`."
            % name)
    else:
        text += "No switch happened to fall inside a read-add-write this time. "
        note = "Nothing lost this time on %s; run it again." % name
    if proof:
        text += "The same race with a switch point inside: %s." % proof
    return Outcome(answers, text, agrees, note, figure="lost %s of %s" % (num(lost),
                                                                          num(expected)))


# 11. Deadlocks -------------------------------------------------------------------------
def judge_deadlock(record: dict, ctx: dict) -> Outcome:
    r = record["result"]
    if r["deadlocked"]:
        answers: tuple[int, ...] = (2,)
        links = " -> ".join("%s (holds %s, wants %s)" % (c["thread"], ", ".join(c["holds"]),
                                                          c["waits_for"]) for c in r["cycle"])
        text = ("Deadlock %.0f ms in: %s -> back to the start. Python raised nothing: a "
                "plain lock waits forever. The lab's watchdog found the cycle in the "
                "wait-for graph %.0f ms after it closed and ended the run. Taking the "
                "locks in one agreed order (fix=ordered) makes the cycle impossible."
                % (r.get("detected_at_ms", 0.0), links, r.get("detected_after_ms", 0.0)))
    else:
        answers = (0,)
        text = ("Both threads completed (%s): the timing let one finish its two locks "
                "before the other took its first. The cycle was possible, not certain."
                % ", ".join("%s %d rounds" % kv for kv in (r.get("rounds") or {}).items()))
    agrees = agreement(answers, ctx)
    note = ("It hung: the lab had to end it." if agrees else
            "It did not hang this time; the danger remains.")
    return Outcome(answers, text, agrees, note,
                   figure=("deadlocked after %.0f ms" % r.get("detected_at_ms", 0.0)
                           if r["deadlocked"] else "both finished: %d threads" % len(
                               r.get("rounds") or {})))


# 12. Choosing a model ------------------------------------------------------------------
CHOICE_MODELS = ("threads", "processes", "asyncio", "asyncio+pool")


def judge_choice(record: dict, ctx: dict) -> Outcome:
    row = record["result"]["rows"][0]
    models, winners = row["models"], row["winners"]
    answers = tuple(CHOICE_MODELS.index(w) for w in winners if w in CHOICE_MODELS)
    rates = ", ".join("%s %.1f" % (m, models[m]["jobs_per_s"]) for m in CHOICE_MODELS
                      if m in models)
    text = ("Jobs per second: %s (one at a time %.1f; at best %.0f). Won: %s. "
            "CPU milliseconds per job show the overheads: %s."
            % (rates, models["sequential"]["jobs_per_s"], row.get("ideal_jobs_per_s", 0.0),
               " and ".join(winners) or "nobody",
               ", ".join("%s %.1f" % (m, models[m]["cpu_ms_per_job"]) for m in CHOICE_MODELS
                         if m in models)))
    judged = row.get("verdict")
    if isinstance(judged, dict) and judged.get("can_tell") is False:
        why = judged.get("why") or judged.get("says") or "the machine was busy"
        return not_graded(rates, text, "can't tell from this run (%s); r runs it again." % why)
    agrees = agreement(answers, ctx)
    pick = row.get("article_pick", "process pool + asyncio")
    note = ("%s won here too." % pick if agrees else
            "The article's pick for this mix (%s) did not win on this machine with %s."
            % (pick, ctx["cores"]))
    return Outcome(answers, text, agrees, note, figure="jobs/s: " + rates)


# The path ------------------------------------------------------------------------------
SPEEDUP = ("about twice as fast", "somewhat faster", "about the same speed", "slower")


def two_tasks_every_mode(judge) -> Plan:
    """gil-cpu with two tasks in every mode, sized to this machine's speed."""
    return Plan("gil-cpu", lambda c: {"work": sized_work(c, 2, min(2, c["cpus"])), "tasks": 2,
                                      "modes": "all"}, judge)

LESSONS: tuple[Lesson, ...] = (
    Lesson(
        "parallel", "Concurrency vs parallelism",
        """Concurrency: several tasks are under way at once. Parallelism: several are
        executing at the same instant. One core gives only concurrency - the kernel slices
        its time between tasks. More cores give parallelism, but never more than one task
        per core. The lab may use {cores} here. It starts {many} processes that only
        compute, and times them against the same work done one task after another.""",
        "{many} busy processes on {cores}: compared with one after another, they finish",
        ("about {many}x sooner: all at once", "about {cpus}x sooner: one per core",
         "in about the same time", "later: switching costs more"),
        "a core runs one instruction stream at a time; more tasks than cores take turns.",
        (Plan("gil-cpu", lambda c: {"work": sized_work(c, c["many"], min(c["many"], c["cpus"])),
                                    "tasks": c["many"], "modes": "all"},
              judge_parallel),),
        article_choices=(1,),
    ),
    Lesson(
        "threads", "OS threads and switch counters",
        """To the Linux scheduler every thread (and every single-threaded process) is a
        task. Each time a task leaves the CPU the kernel counts why: a voluntary switch
        when it chose to wait (a lock, a pipe, a sleep), an involuntary one when its slice
        was up and another task was waiting. /proc shows both counters per thread, and
        schedstat shows run_delay: time spent ready to run but queued.""",
        "{many} processes that only compute share {cores}. Which switch counter climbs?",
        ("voluntary: they keep choosing to wait", "involuntary: the scheduler preempts them",
         "neither: busy tasks are left alone"),
        "many involuntary switches mean tasks fight over CPUs; many voluntary ones mean "
        "they wait for I/O.",
        (Plan("gil-cpu", lambda c: {"work": processes_only_work(c, c["many"]),
                                    "tasks": c["many"], "modes": "processes"},
              judge_switches),),
        article_choices=(1,),
    ),
    Lesson(
        "gil-cpu", "The GIL with CPU-bound work",
        """CPython runs bytecode only while holding the global interpreter lock, the GIL.
        Two threads that only compute take turns: one runs, the other waits for the lock,
        and after a switch interval (5 ms by default) the waiter asks for it. Both are
        real OS threads, free to use separate cores, yet only one makes progress at a
        time. A free-threaded build (3.13t) has no GIL.""",
        "Two threads each run the same CPU-bound loop. Against the two loops run one after "
        "the other, the threads are",
        SPEEDUP,
        "two threads on CPU-bound work are slower than one, not merely equal.",
        (two_tasks_every_mode(judge_gil_cpu),),
        article_choices=(3,),
    ),
    Lesson(
        "gil-io", "The GIL with waiting work",
        """A thread that waits - for a socket, a file, a timer - does it inside a C call
        that lets go of the GIL first. While it sleeps in the kernel, other threads run
        Python. So for work that is mostly waiting, threads overlap their waits and the
        GIL hardly matters. The lab runs its own delay server on 127.0.0.1; every request
        waits 0.1 s for its reply. No internet needed.""",
        "Ten waiting jobs in ten threads, against one after another, get done",
        ("about 10x sooner", "about 2x sooner", "about as fast: the GIL serialises them",
         "slower"),
        "threads do help waiting work, because each releases the GIL while it waits.",
        (Plan("io-bound", {"requests": 10, "delay": 0.1, "modes": "all"}, judge_io_threads),
         Plan("decision", {"workload": "dial", "cpu_percent": 0, "concurrency": 10,
                           "seconds": 0.4, "job_ms": 100.0}, judge_dial_threads)),
        article_choices=(0, 1),
    ),
    Lesson(
        "processes", "Processes: one GIL each",
        """A process has its own interpreter, its own memory and its own GIL. CPU-bound
        work split over processes runs in parallel, one process per core, for the price
        of starting them and of pickling whatever they exchange. The lab forks two worker
        processes and times them against the same work done one task after another, on
        {cores}.""",
        "Two processes each run the same CPU-bound loop. Against one after the other, they "
        "are",
        SPEEDUP,
        "two processes give nearly 2x, each with its own GIL on its own core.",
        (two_tasks_every_mode(judge_processes),),
        article_choices=(0,),
    ),
    Lesson(
        "event-loop", "The event loop and epoll",
        """An event loop is one thread in a loop: ask the kernel which sockets are ready -
        one epoll_wait call watches them all - then run the code that was waiting on them.
        A coroutine awaiting a reply is an entry in epoll's interest list, not a thread.
        asyncio's default loop on Linux is exactly that: a selector over epoll. The lab
        keeps many connections busy from one asyncio loop and counts the OS threads, the
        open sockets and the epoll_wait calls.""",
        "Many connections wait at once on one asyncio loop. How many OS threads carry "
        "them?",
        ("one thread per connection", "a small pool of a few threads",
         "one thread: the loop"),
        "one thread and one epoll instance can carry thousands of waiting connections.",
        (Plan("epoll", {"connections": 1000, "duration_s": 0.3, "loop": "asyncio"},
              judge_epoll_threads),
         Plan("io-bound", {"requests": 10, "delay": 0.1, "modes": "all"}, judge_loop_threads)),
        article_choices=(2,),
    ),
    Lesson(
        "blocking", "Blocking the loop",
        """The loop switches tasks only at an await. A coroutine that computes for a long
        time without awaiting keeps the loop's only thread, so every other task - timers,
        replies, heartbeats - waits until it is done. The lab runs a ticker that wants a
        tick every 10 ms beside a coroutine that computes for 200 ms once, with no await
        inside, and a watchdog that names the line the loop is stuck on.""",
        "While the 200 ms computation runs, the longest gap between two ticks is about",
        ("10 ms: the loop slips ticks in between", "100 ms", "200 ms: no tick until it ends"),
        "a timer meant to fire every half second stops firing until the blocking call "
        "returns.",
        (Plan("loop-freeze", {"block": "cpu", "block_ms": 200, "blocks": 1,
                              "duration_s": 0.8, "period_ms": 10.0}, judge_freeze),),
        article_choices=(2,),
    ),
    Lesson(
        "mn", "M:N: goroutines",
        """Go runs many goroutines (Gs) on a few OS threads (Ms); a G needs a P, a
        scheduling slot, to run, and there are GOMAXPROCS Ps. When a G blocks in a system
        call its M is stuck in the kernel, so the runtime hands that P to another M and
        the other Gs carry on. The lab has a small M:N runtime in Python that keeps the
        same rules: G, M, P, run queues, stealing, hand-off.""",
        "200 Gs on {ps} Ps; a fifth block 50 ms in a system call. How many Ms are busy at "
        "once, at most?",
        ("{ps}: one per P; a blocked G keeps its thread", "more than {ps}: blocked Ms hand "
         "their P on", "about 200: one thread per goroutine"),
        "a goroutine in a blocking call is moved off so the others keep running, and "
        "goroutines are cheap enough to have millions.",
        (Plan("goroutines", {"mode": "schedule", "runtime": "python", "gs": 200, "ps": 0,
                             "work_ms": 1.0, "block_fraction": 0.2, "block_ms": 50.0},
              judge_mn),),
        article_choices=(1,),
    ),
    Lesson(
        "switch-cost", "The cost of a context switch",
        """A context switch saves one task's registers and loads another's; the kernel
        does it every time a thread blocks and another runs. The direct cost is
        microseconds, the indirect one (cold caches) more. The lab bounces a byte between
        two tasks through two pipes, both on one core, so every message forces exactly one
        switch; it also times the article's one-way pipe method.""",
        "Two processes on one core pass a byte back and forth. One hand-off costs about",
        ("under 1 µs", "1 to 10 µs", "10 to 100 µs", "over 100 µs"),
        "a switch takes about 5 µs, timed by writing bytes one way through a pipe.",
        (Plan("ctx-switch", {"method": "all", "placement": "same-core", "messages": 5000,
                             "perf": False, "ladder": False}, judge_switch_cost),),
        article_choices=(1,),
    ),
    Lesson(
        "race", "Races: lost updates",
        """`counter += 1` is three steps: read the counter, add one, write it back. If a
        thread switch falls between the read and the write, two threads write the same
        value and one increment is lost. The GIL protects the interpreter's own data, not
        your read-add-write. Four threads each add one to a shared counter 300 000 times;
        then the lab repeats it with a switch point inside the read-add-write.""",
        "Four threads each run `counter += 1` 300 000 times. The final count is",
        ("exactly 1 200 000", "short by under 1%", "short by more than 1%"),
        "updates are lost, because the GIL can change hands between any two bytecodes.",
        (Plan("race", {"variant": "all", "increments": 300_000, "threads": 4}, judge_race),),
        article_choices=(1, 2),
        scheduler=SchedulerStep(
            "counter",
            """Now be the scheduler: you pick which thread moves next, one instruction at a
            time. Let thread 1 load the counter, run thread 2 to its end, then let thread 1
            store. One thread moves at a time, so this schedule loses an update on every
            CPython from 3.9 to 3.13, with a GIL or without."""),
    ),
    Lesson(
        "deadlock", "Deadlocks",
        """A deadlock is a cycle of waiting: thread 1 holds lock A and wants B, thread 2
        holds B and wants A. Neither can move, and nothing in Python notices - a plain
        lock waits forever. The lab's locks report who holds what and who waits for whom
        (the wait-for graph); a watchdog looks for a cycle and ends the run when it finds
        one.""",
        "Two threads take locks A and B in opposite order, each holding its first for "
        "50 ms. What happens?",
        ("both finish, a little slower", "one finishes, then the other",
         "neither finishes: deadlock", "Python raises an error"),
        "a program like this hangs forever.",
        (Plan("deadlock", {"threads": 2, "fix": "none", "hold_ms": 50.0, "rounds": 10},
              judge_deadlock),),
        article_choices=(2,),
        scheduler=SchedulerStep(
            "two-locks",
            """Now be the scheduler: thread 1 takes A then B, thread 2 takes B then A. Let
            each take its first lock before either takes its second, and both block on a
            lock the other holds. p switches to the fixed program (one lock order), where
            no schedule gets stuck."""),
    ),
    Lesson(
        "choosing", "Choosing a model",
        """No model wins everywhere. Computing wants cores (processes); waiting wants cheap
        waiters (threads, asyncio); a mix wants both. The lab runs one job mix - half
        computing, half waiting, 8 jobs in flight - under threads, processes, asyncio, and
        asyncio feeding a process pool, a fraction of a second each, and counts the jobs
        done per second on {cores}.""",
        "Half computing, half waiting, 8 jobs in flight. Which model gets the most done?",
        ("threads", "processes", "asyncio", "asyncio + a process pool"),
        "mixed CPU and I/O work is best served by a process pool driven by asyncio.",
        (Plan("decision", {"workload": "dial", "cpu_percent": 50, "concurrency": 8,
                           "seconds": 0.4}, judge_choice),),
        article_choices=(3,),
    ),
)


def get(lesson_id: str) -> Lesson:
    for lesson in LESSONS:
        if lesson.id == lesson_id:
            return lesson
    raise KeyError(lesson_id)


def ids() -> list[str]:
    return [lesson.id for lesson in LESSONS]


def lessons_epilog() -> str:
    """The lesson ids with their titles, in path order: what `conlab learn --help` lists."""
    width = max(len(lesson.id) for lesson in LESSONS)
    lines = ["lessons, in order (conlab learn ID opens one):"]
    lines += ["  %-*s  %s" % (width, lesson.id, lesson.title) for lesson in LESSONS]
    return "\n".join(lines)
