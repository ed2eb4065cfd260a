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

from dataclasses import dataclass, field
from typing import Any, Callable

from workloads import times

# Outcomes ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What the run says: the choice(s) it supports and why, with its numbers."""

    answers: tuple[int, ...]  # indexes into the lesson's choices (a tie: several)
    text: str  # the explanation, using the figures just measured
    agrees: bool | None = None  # with the article's claim (None: nothing to compare)
    note: str = ""  # why this machine agrees or disagrees with the article
    busy: str = ""  # other programs took the CPUs during the run: how much, in words

    def right(self, predicted: int | None) -> bool:
        return predicted is not None and predicted in self.answers


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
class Lesson:
    id: str
    title: str
    explain: str  # a few lines in plain words; `{cpus}` etc. filled from facts()
    question: str
    choices: tuple[str, ...]
    article: str  # the article's claim, in our words (shown labelled "the article says")
    plans: tuple[Plan, ...] = field(default=())

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
            return plan.judge(record, ctx)
        except (KeyError, TypeError, ValueError, IndexError, ZeroDivisionError) as exc:
            raise Unreadable("the result lacks a figure this lesson reads (%s: %s)"
                             % (type(exc).__name__, exc)) from None


def verdict(outcome: Outcome) -> str:
    """This machine against the article, in words: what the answer screen says."""
    if outcome.agrees is None:
        return ""
    return "%s %s" % ("This machine agrees with the article." if outcome.agrees else
                      "This machine DISAGREES with the article.", outcome.note)


def experiment_names() -> list[str]:
    import workloads

    return workloads.experiment_names()


def facts(cpus: int | None = None) -> dict[str, Any]:
    """The machine figures lesson texts and parameters are phrased in."""
    if cpus is None:
        from lab.core.machine import machine

        cpus = machine().usable_cpus
    many = min(64, max(2, 2 * cpus))
    return {"cpus": cpus, "many": many, "ps": cpus,
            "cores": "1 CPU" if cpus == 1 else "%d CPUs" % cpus}


def record_of_state(state) -> dict[str, Any]:
    """The parts of a finished RunState a judge reads, shaped like a run record."""
    python = (state.hello or {}).get("python", {})
    return {
        "experiment": state.experiment, "params": state.params, "status": state.status,
        "error": state.error, "result": state.result, "threads": state.thread_records(),
        "interpreter": {"version": python.get("version", ""),
                        "implementation": python.get("implementation", "cpython"),
                        "gil_enabled": python.get("gil_enabled", True)},
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


def workers(record: dict, prefix: str = "") -> list[dict]:
    return [t for t in record.get("threads") or []
            if t.get("role") == "worker" and t.get("name", "").startswith(prefix)]


def total(rows: list[dict], key: str) -> float:
    return sum(r.get(key) or 0 for r in rows)


def busy_machine(record: dict) -> str:
    """Did other programs take CPU time the run's modes could have used? In words, or "".

    Wall-clock comparisons only mean something when each mode got the cores it could use;
    on a shared machine they often do not, and the lesson must say so rather than teach
    the noise. Each mode's CPU efficiency (CPU-seconds per wall-second) is set against
    what it could use: one core for one-after-another (and for threads under a GIL),
    min(tasks, cores) for processes.
    """
    result = record["result"]
    modes, cpus = result["modes"], result.get("cpus") or 1
    tasks = result.get("tasks", 1)
    could = {"sequential": 1.0, "processes": float(min(tasks, cpus)),
             "threads": 1.0 if gil_on(record) else float(min(tasks, cpus))}
    short = []
    for mode in ("sequential", "threads", "processes"):
        if mode in modes and modes[mode].get("cpu_efficiency") is not None:
            got = modes[mode]["cpu_efficiency"]
            if got < 0.8 * could[mode]:
                short.append("%s %.2f of %g" % (mode, got, could[mode]))
    if not short:
        return ""
    return ("Busy machine: other programs took CPU time (cores used: %s); wall times "
            "are noisy, r runs it again." % ", ".join(short))


# 1. Concurrency vs parallelism ---------------------------------------------------------
def judge_parallel(record: dict, ctx: dict) -> Outcome:
    result = record["result"]
    modes, tasks, cpus = result["modes"], result["tasks"], result.get("cpus") or ctx["cpus"]
    seq, proc = modes["sequential"]["wall_s"], modes["processes"]["wall_s"]
    speedup = result["speedup"]["processes"]
    # bands: all at once / one per core / the same / slower
    if speedup >= 0.8 * tasks:
        answers: tuple[int, ...] = (0,)
    elif cpus > 1 and speedup >= 1.25:
        answers = (1,)
    elif speedup >= 0.8:
        answers = (1, 2) if cpus == 1 else (2,)
    else:
        answers = (3,)
    procs = workers(record, "proc-")
    cpu, wait = total(procs, "cpu_s"), total(procs, "run_delay_s")
    text = ("One task after another took %s; %d processes at once took %s: %.2fx. "
            "With %s, at most %d of them ran at any instant (parallelism) and the others "
            "took turns on the same cores (concurrency). The kernel's books agree: the "
            "workers spent %s on a CPU and %s ready to run but queued for one (run_delay)."
            % (secs(seq), tasks, secs(proc), speedup, ctx["cores"], cpus, secs(cpu),
               secs(wait)))
    agrees = speedup <= cpus * 1.2
    note = ("No speed-up beyond the number of cores: %.2fx with %d cores." % (speedup, cpus)
            if agrees else "More than one task per core seemed to run at once (%.2fx on %d "
            "cores): another load on the machine probably slowed the sequential run."
            % (speedup, cpus))
    return Outcome(answers, text, agrees, note, busy_machine(record))


# 2. OS threads and switch counters -----------------------------------------------------
def judge_switches(record: dict, ctx: dict) -> Outcome:
    procs = workers(record, "proc-")
    if not procs:
        raise KeyError("worker processes")
    vol, inv = total(procs, "voluntary"), total(procs, "involuntary")
    wait = total(procs, "run_delay_s") / len(procs)
    if vol + inv < 2 * len(procs):
        answers: tuple[int, ...] = (2,)
    elif inv >= 2 * vol:
        answers = (1,)
    elif vol >= 2 * inv:
        answers = (0,)
    else:
        answers = (0, 1)
    text = ("The %d busy processes were switched out %s involuntarily and %s "
            "voluntarily. Each spent %s on average runnable but waiting in the run queue "
            "(run_delay) while another held a core. Code that only computes never "
            "chooses to wait, so its switches are the scheduler's doing: a climbing "
            "involuntary count means more runnable tasks than cores."
            % (len(procs), times(inv, num(inv)), times(vol, num(vol)), secs(wait)))
    agrees = inv > vol
    note = ("Involuntary switches dominate, as it says for tasks competing for CPUs."
            if agrees else "Voluntary switches dominated here (%s vs %s): the workers "
            "blocked on something, perhaps memory or the lab's own pipes." % (num(vol),
                                                                             num(inv)))
    return Outcome(answers, text, agrees, note)


# 3. The GIL with CPU-bound threads -----------------------------------------------------
def judge_gil_cpu(record: dict, ctx: dict) -> Outcome:
    result = record["result"]
    modes, cpus = result["modes"], result.get("cpus") or ctx["cpus"]
    seq, thr = modes["sequential"]["wall_s"], modes["threads"]["wall_s"]
    speedup = result["speedup"]["threads"]
    answers = band(speedup, (1.6, 1.1, 0.9))  # twice / faster / same / slower
    cores = total(workers(record, "cpu-"), "cpu_s") / thr if thr else 0.0
    text = ("One loop after the other: %s. Two threads: %s, so %.2fx. Together the "
            "threads used %.2f of a core, with %d CPU%s free. "
            % (secs(seq), secs(thr), speedup, cores, cpus, "" if cpus == 1 else "s"))
    if gil_on(record):
        text += ("On %s only the thread holding the GIL runs Python; the other waits, "
                 "asking for the lock every switch interval (%s)."
                 % (python_name(record), ms(result.get("switch_interval_s", 0.005))))
        if speedup < 0.9:
            agrees, note = True, "Slower here too: %.2fx." % speedup
        elif speedup < 1.0:
            agrees, note = True, ("Slower here too, but only by %.0f%% (%.2fx): no gain."
                                  % ((1 - speedup) * 100, speedup))
        elif speedup < 1.1:
            agrees, note = False, (
                "About even here (%.2fx), not slower: the GIL changes hands once per "
                "switch interval, so taking turns cost little. No gain either." % speedup)
        else:
            agrees, note = False, (
                "Faster here (%.2fx), yet the threads used only %.2f of a core: the "
                "one-after-another run was slowed by something else (it got %.2f of its "
                "core), not sped up by parallel threads." % (
                    speedup, cores, modes["sequential"].get("cpu_efficiency", 0.0)))
    else:
        text += "%s has no GIL: the threads ran side by side." % python_name(record)
        agrees, note = False, ("No GIL in this build (free-threaded): CPU-bound threads "
                               "gave %.2fx." % speedup)
    return Outcome(answers, text, agrees, note, busy_machine(record))


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
    return _waiting_outcome(ratio, n, text)


def judge_dial_threads(record: dict, ctx: dict) -> Outcome:
    row = record["result"]["rows"][0]
    models = row["models"]
    seq, thr = models["sequential"]["jobs_per_s"], models["threads"]["jobs_per_s"]
    ratio = thr / seq
    n = row["concurrency"]
    text = ("Jobs that only wait: one at a time, %.1f jobs/s; %d threads, %.1f jobs/s "
            "(%.1fx). A thread blocked waiting has released the GIL, so the waits overlap."
            % (seq, n, thr, ratio))
    return _waiting_outcome(ratio, n, text)


def _waiting_outcome(ratio: float, n: int, text: str) -> Outcome:
    answers = band(ratio, (0.6 * n, 1.5, 0.8))  # ~n x / ~2x / same / slower
    agrees = ratio >= 1.5
    note = ("Threads help with waiting work: %.1fx here." % ratio if agrees else
            "Threads did not overlap their waits here (%.1fx)." % ratio)
    return Outcome(answers, text, agrees, note)


# 5. Processes --------------------------------------------------------------------------
def judge_processes(record: dict, ctx: dict) -> Outcome:
    result = record["result"]
    modes, cpus = result["modes"], result.get("cpus") or ctx["cpus"]
    seq, proc = modes["sequential"]["wall_s"], modes["processes"]["wall_s"]
    speedup = result["speedup"]["processes"]
    threads = result["speedup"].get("threads")
    answers = band(speedup, (1.6, 1.1, 0.9))
    procs = workers(record, "proc-")
    text = ("One after the other: %s. Two processes: %s, %.2fx. Each process has its own "
            "interpreter and its own GIL; the two workers ran %s of CPU between them. "
            % (secs(seq), secs(proc), speedup, secs(total(procs, "cpu_s"))))
    if threads is not None:
        text += "Two threads on the same work: %.2fx. " % threads
    if cpus == 1:
        agrees, note = False, ("This machine lets the lab use one CPU: processes can only "
                               "take turns there (%.2fx)." % speedup)
    elif speedup >= 1.6:
        agrees, note = True, "Close to 2x here too: %.2fx." % speedup
    elif busy_machine(record):
        agrees, note = False, ("Only %.2fx here: other programs held the cores (see the "
                               "busy line)." % speedup)
    else:
        agrees, note = False, ("Only %.2fx with %d CPUs on a quiet machine: the workers "
                               "used %s of CPU against %s one after another."
                               % (speedup, cpus, secs(total(procs, "cpu_s")),
                                  secs(modes["sequential"].get("cpu_s", 0.0))))
    return Outcome(answers, text, agrees, note, busy_machine(record))


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
    agrees = extra <= 0
    note = ("One thread carried every waiting request." if agrees else
            "asyncio used %d more thread(s) than one request did." % extra)
    return Outcome(answers, text, agrees, note)


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
    agrees = threads <= 1
    note = ("One thread carried %s connections." % num(n) if agrees else
            "asyncio used %d threads for %s connections." % (threads, num(n)))
    return Outcome(answers, text, agrees, note)


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
    agrees = gap >= 150
    note = ("No tick while the loop computed." if agrees else
            "Ticks slipped in during the block (longest gap %.0f ms)." % gap)
    return Outcome(answers, text, agrees, note)


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
    agrees = bool(r.get("threads_exceeded_ps", busy > ps))
    note = ("Blocked Gs did not stall their P: the runtime moved the P to another thread."
            if agrees else "No hand-off was needed this time (%d busy Ms, %d Ps)." % (busy, ps))
    return Outcome(answers, text, agrees, note)


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
    agrees = 1.0 <= per <= 10.0
    note = ("Within its 1-10 µs range: %s." % us(per) if agrees else
            "Outside its 1-10 µs range: %s here." % us(per))
    if oneway is not None:
        text += ("The one-way pipe method timed %s per byte with only %.3f switches per "
                 "byte: the writer filled the pipe and the reader drained it in batches."
                 % (us(oneway["us_per_msg"]), oneway["switches_per_msg"]))
        if oneway["switches_per_msg"] < 0.5:
            note += (" But its one-way pipe timing measures system calls, not switches: "
                     "%.3f switches per byte here." % oneway["switches_per_msg"])
    return Outcome(answers, text, agrees, note)


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
    text = "naive `counter += 1`: %s of %s, lost %s (%.1f%%) on %s. " % (
        num(naive["actual"]), num(expected), num(lost), share * 100, name)
    proof = ", ".join("%s lost %s" % (v, num(variants[v]["lost"]))
                      for v in ("call", "sleep0", "locked") if v in variants)
    if lost:
        text += ("A thread was switched out between reading the counter and writing it "
                 "back, and another's increments were overwritten. ")
        agrees, note = True, ("Updates are lost: %s of them here (%.1f%%)." % (num(lost),
                                                                             share * 100))
    elif not gil_on(record):
        text += "No loss this time, though nothing prevents one without a GIL. "
        agrees, note = False, "Nothing lost this time, even without a GIL."
    elif version >= (3, 10):
        text += ("From 3.10 a thread offers the GIL only at calls and backward jumps, and "
                 "`counter += 1` has neither between its read and its write. ")
        agrees, note = False, (
            "On %s the naive counter lost nothing. The race is still real, it only needs "
            "a switch point between read and write (see call, sleep0). Under CPython 3.9 "
            "the naive counter loses updates: `conlab --python PATH-TO-3.9 learn race`."
            % name)
    else:
        text += "No switch happened to fall inside a read-add-write this time. "
        agrees, note = False, "Nothing lost this time on %s; run it again." % name
    if proof:
        text += "The same race with a switch point inside: %s." % proof
    return Outcome(answers, text, agrees, note)


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
    agrees = bool(r["deadlocked"])
    note = ("It hung: the lab had to end it." if agrees else
            "It did not hang this time; the danger remains.")
    return Outcome(answers, text, agrees, note)


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
    agrees = bool(row.get("agrees"))
    pick = row.get("article_pick", "process pool + asyncio")
    note = ("%s won here too." % pick if agrees else
            "The article's pick for this mix (%s) did not win on this machine with %s."
            % (pick, ctx["cores"]))
    return Outcome(answers, text, agrees, note)


# The path ------------------------------------------------------------------------------
SPEEDUP = ("about twice as fast", "somewhat faster", "about the same speed", "slower")

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
        (Plan("gil-cpu", lambda c: {"work": 6_000_000 // c["many"], "tasks": c["many"],
                                    "modes": "all"},
              judge_parallel),),
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
        (Plan("gil-cpu", lambda c: {"work": 12_000_000 // c["many"], "tasks": c["many"],
                                    "modes": "processes"}, judge_switches),),
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
        (Plan("gil-cpu", {"work": 3_000_000, "tasks": 2, "modes": "all"}, judge_gil_cpu),),
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
        (Plan("gil-cpu", {"work": 4_000_000, "tasks": 2, "modes": "all"}, judge_processes),),
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
