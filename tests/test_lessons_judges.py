"""The lessons' judges on synthetic records: GIL and free-threaded builds, 1 to 16 CPUs,
quiet and busy machines, every band edge. The tick/cross, the "agrees with the article"
sentence and the figure they rest on never contradict each other, for every prediction.

Pure functions, no child process: the real runs are in test_lessons_real.py.
"""

from __future__ import annotations

import itertools

import pytest

from lab.lessons import tutorial as L

CPU_LESSONS = ("parallel", "gil-cpu", "processes")


def interp(gil: bool = True, free: bool = False, version: str = "3.12.3") -> dict:
    return {"version": version, "implementation": "cpython", "gil_enabled": gil,
            "free_threaded": free}


def gil_cpu_record(thr_cores: float = 1.0, thr_wall: float = 1.0, proc_cores: float = 2.0,
                   proc_wall: float = 1.9, cpus: int = 2, tasks: int = 2, gil: bool = True,
                   free: bool = False, busy: bool | None = False, new: bool = True,
                   verdict: dict | None = None, seq_s: float = 3.0) -> dict:
    """A gil-cpu record: `*_wall` are speedups against one after another (seq_s)."""
    def mode(wall_s, cores):
        figures = {"wall_s": wall_s, "cpu_s": cores * wall_s, "cpu_efficiency": cores}
        if new:
            figures.update(cores_used=cores, busy=busy)
        return figures

    result = {
        "modes": {"sequential": mode(seq_s, 1.0), "threads": mode(seq_s / thr_wall, thr_cores),
                  "processes": mode(seq_s / proc_wall, proc_cores)},
        "speedup": {"threads": thr_wall, "processes": proc_wall},
        "tasks": tasks, "cpus": cpus, "gil_enabled": gil, "switch_interval_s": 0.005,
    }
    if new and busy is not None:
        result["load"] = {"other_cpu_share": 0.35 if busy else 0.01, "steal_share": 0.0,
                          "busy": busy, "usable_cpus": cpus, "threshold": 0.1}
    if verdict is not None:
        result["verdict"] = verdict
    threads = [{"name": "proc-%d" % (i + 1), "role": "worker", "cpu_s": 1.0,
                "run_delay_s": 0.5, "voluntary": 3, "involuntary": 400} for i in range(tasks)]
    return {"status": "done", "result": result, "threads": threads,
            "interpreter": interp(gil, free)}


def judged(lesson_id: str, record: dict, cpus: int = 2):
    lesson = L.get(lesson_id)
    ctx = L.facts(cpus=cpus, rate=1e7)
    plan = lesson.plans[0]
    return lesson, lesson.judge(plan, record, ctx)


def check_consistent(lesson: L.Lesson, outcome: L.Outcome) -> None:
    """The properties every answer screen relies on, for every prediction."""
    sentence = L.verdict(outcome)
    assert outcome.figure, "every grade names its figure"
    if outcome.cannot:
        assert outcome.answers == () and outcome.agrees is None and sentence == ""
        for p in range(len(lesson.choices)):
            mark = L.grade(outcome, p)
            assert mark.startswith("? ") and "✓" not in mark and "✗" not in mark
            assert not outcome.graded(p) and not outcome.right(p)
        return
    if outcome.agrees is None:
        assert "agrees" not in sentence and "DISAGREES" not in sentence
    else:
        assert outcome.agrees == bool(set(outcome.answers) & set(lesson.article_choices))
        assert sentence.startswith("This machine agrees with the article." if outcome.agrees
                                   else "This machine DISAGREES with the article.")
    for p in range(len(lesson.choices)):
        mark = L.grade(outcome, p)
        if not outcome.graded(p):
            assert mark.startswith("? not graded")
            continue
        assert mark == ("✓ as you predicted" if p in outcome.answers
                        else "✗ not what you predicted")
        if p in lesson.article_choices:  # predicting (part of) the article's answer
            if mark.startswith("✓"):
                assert outcome.agrees is True, (p, mark, sentence)
            if outcome.agrees is False or len(lesson.article_choices) == 1:
                assert mark.startswith("✓") == (outcome.agrees is True), (p, mark, sentence)


# The cases the issue saw -------------------------------------------------------------------
def test_gil_cpu_slower_predicted_measured_097_is_a_tick_and_agrees_and_says_why():
    lesson, outcome = judged("gil-cpu", gil_cpu_record(thr_cores=1.0, thr_wall=0.97))
    slower, same = 3, 2
    assert L.grade(outcome, slower) == "✓ as you predicted"
    assert L.grade(outcome, same) == "✓ as you predicted"
    assert L.verdict(outcome).startswith("This machine agrees with the article.")
    assert "1.00 cores" in outcome.note and "both fit" in outcome.note
    assert "0.97x" in outcome.note
    check_consistent(lesson, outcome)


def test_parallel_prediction_one_per_core_never_gets_a_cross_beside_agrees():
    for cores in (1.0, 1.9):
        record = gil_cpu_record(proc_cores=cores, proc_wall=0.98, tasks=4)
        lesson, outcome = judged("parallel", record)
        check_consistent(lesson, outcome)
        one_per_core = 1
        if outcome.right(one_per_core):
            assert outcome.agrees is True
        else:
            assert outcome.agrees is False and "DISAGREES" in L.verdict(outcome)


def test_processes_on_a_busy_machine_is_not_graded_but_says_so_with_the_figure():
    record = gil_cpu_record(proc_cores=1.1, proc_wall=0.93, busy=True)
    lesson, outcome = judged("processes", record)
    assert outcome.cannot.startswith("can't tell on a machine this busy")
    assert "35%" in outcome.cannot and "r runs it again" in outcome.cannot
    assert "1.10 cores" in outcome.figure and "0.93x" in outcome.figure
    check_consistent(lesson, outcome)


def test_processes_on_one_cpu_says_it_cannot_show_2x_instead_of_a_cross():
    record = gil_cpu_record(proc_cores=1.0, proc_wall=0.97, cpus=1)
    lesson, outcome = judged("processes", record, cpus=1)
    twice = 0
    assert L.grade(outcome, twice).startswith("? not graded: 1 usable CPU")
    assert "DISAGREES" not in L.verdict(outcome) and "1 CPU" in outcome.note
    assert L.grade(outcome, 2) == "✓ as you predicted"  # "about the same" can be graded
    check_consistent(lesson, outcome)


# Every band edge, build and machine ------------------------------------------------------------
EDGES_CORES = (0.5, 1.0, 1.15, 1.16, 1.3, 1.59, 1.6, 1.9, 2.0)
EDGES_WALL = (0.7, 0.89, 0.9, 0.95, 1.0, 1.1, 1.11, 1.3, 1.59, 1.6, 1.9)
MACHINES = [dict(cpus=c, gil=g, free=f) for c in (1, 2, 16)
            for g, f in ((True, False), (False, True), (True, True))]


@pytest.mark.parametrize("lesson_id", CPU_LESSONS)
@pytest.mark.parametrize("machine", MACHINES,
                         ids=["%(cpus)dcpu-gil%(gil)d-ft%(free)d" % m for m in MACHINES])
@pytest.mark.parametrize("new", [True, False], ids=["load-block", "old-record"])
def test_tick_agrees_and_figure_never_contradict(lesson_id, machine, new):
    cpus = machine["cpus"]
    for cores, wall in itertools.product(EDGES_CORES, EDGES_WALL):
        cores = min(cores, float(cpus))  # no run uses more cores than the machine has
        tasks = 2 * cpus if lesson_id == "parallel" else 2
        record = gil_cpu_record(thr_cores=cores, thr_wall=wall, proc_cores=cores,
                                proc_wall=wall, cpus=cpus, tasks=tasks, gil=machine["gil"],
                                free=machine["free"], new=new)
        lesson, outcome = judged(lesson_id, record, cpus)
        check_consistent(lesson, outcome)
        if not outcome.cannot:
            assert "%.2f cores" % cores in outcome.figure
            assert "%.2f" % cores in outcome.note or outcome.agrees is None, outcome.note


@pytest.mark.parametrize("lesson_id", CPU_LESSONS)
def test_a_busy_run_is_never_graded(lesson_id):
    for busy_record in (gil_cpu_record(busy=True),
                        gil_cpu_record(thr_cores=0.5, proc_cores=0.9, new=False),
                        gil_cpu_record(verdict={"figure": "modes.threads.cores_used",
                                                "value": 0.6, "can_tell": False,
                                                "says": "can't tell on a machine this busy",
                                                "why": "other programs took 40% of the usable "
                                                       "CPUs in every threads round"})):
        if lesson_id != "gil-cpu" and "verdict" in busy_record["result"]:
            continue  # that verdict names the threads' figure, which only gil-cpu reads
        lesson, outcome = judged(lesson_id, busy_record)
        assert outcome.cannot.startswith("can't tell on a machine this busy"), outcome
        check_consistent(lesson, outcome)


def test_the_per_mode_flag_of_a_quiet_round_wins_over_a_busy_run():
    """gil-cpu's figures come from the rounds other programs left alone: gradeable."""
    record = gil_cpu_record(busy=False)
    record["result"]["load"]["busy"] = True
    lesson, outcome = judged("gil-cpu", record)
    assert not outcome.cannot
    check_consistent(lesson, outcome)


# Texts follow the build ------------------------------------------------------------------------
def test_gil_cpu_free_threaded_says_no_gil_and_disagrees_with_two_cores():
    record = gil_cpu_record(thr_cores=1.95, thr_wall=1.9, gil=False, free=True)
    lesson, outcome = judged("gil-cpu", record)
    assert outcome.answers == (0,) and outcome.agrees is False
    assert "no GIL" in outcome.text and "only the thread holding the GIL" not in outcome.text
    assert "1.95 cores" in outcome.note


def test_gil_cpu_free_threaded_with_its_gil_switched_on_says_so():
    record = gil_cpu_record(thr_cores=1.0, thr_wall=1.0, gil=True, free=True)
    _lesson, outcome = judged("gil-cpu", record)
    assert "GIL switched on" in outcome.text and outcome.agrees is True


def test_gil_cpu_on_one_cpu_blames_the_cpu_not_the_gil_on_a_free_threaded_build():
    record = gil_cpu_record(thr_cores=1.0, thr_wall=1.0, cpus=1, gil=False, free=True)
    _lesson, outcome = judged("gil-cpu", record, cpus=1)
    assert "1 usable CPU" in outcome.note and "GIL let" not in outcome.note


def test_gil_cpu_faster_wall_on_one_core_names_the_cpu_time_per_iteration():
    record = gil_cpu_record(thr_cores=1.0, thr_wall=1.22)
    record["result"]["modes"]["threads"]["cpu_ns_per_iteration"] = 29.6
    record["result"]["modes"]["sequential"]["cpu_ns_per_iteration"] = 36.2
    lesson, outcome = judged("gil-cpu", record)
    assert outcome.answers == (2,) and outcome.agrees is False
    assert "29.6 ns" in outcome.note and "1.00 cores" in outcome.note
    check_consistent(lesson, outcome)


def test_processes_text_names_its_own_gil_only_where_there_is_one():
    _l, with_gil = judged("processes", gil_cpu_record())
    _l, without = judged("processes", gil_cpu_record(gil=False, free=True))
    assert "its own GIL" in with_gil.text
    assert "its own GIL" not in without.text and "no GIL" in without.text


def race_record(lost: int, gil: bool, free: bool, cpus: int = 2) -> dict:
    expected = 1_200_000
    variants = {"naive": {"lost": lost, "expected": expected, "actual": expected - lost},
                "sleep0": {"lost": 5000, "expected": expected, "actual": expected - 5000}}
    return {"status": "done", "result": {"variants": variants, "cpus": cpus},
            "threads": [], "interpreter": interp(gil, free, "3.13.5")}


def test_race_without_a_gil_says_the_threads_ran_at_once_not_switched_out():
    _l, outcome = judged("race", race_record(600_000, gil=False, free=True))
    assert "switched out" not in outcome.text and "same time on 2 CPUs" in outcome.text
    _l, outcome = judged("race", race_record(600_000, gil=True, free=False))
    assert "switched out" in outcome.text


@pytest.mark.parametrize("lost", [0, 100, 12_000, 600_000])
@pytest.mark.parametrize("gil,free", [(True, False), (False, True)])
def test_race_tick_and_agrees_never_contradict(lost, gil, free):
    lesson, outcome = judged("race", race_record(lost, gil, free))
    check_consistent(lesson, outcome)


def switch_record(vol: int, inv: int, procs: int = 4, busy: bool = False) -> dict:
    record = gil_cpu_record(tasks=procs, busy=busy)
    for t in record["threads"]:
        t["voluntary"], t["involuntary"] = vol, inv
    return record


@pytest.mark.parametrize("vol,inv", [(0, 0), (1, 0), (3, 400), (400, 3), (100, 150),
                                     (100, 200), (200, 100)])
def test_switch_counter_tick_and_agrees_never_contradict(vol, inv):
    lesson, outcome = judged("threads", switch_record(vol, inv))
    check_consistent(lesson, outcome)


def test_switch_counters_when_each_process_has_its_own_core_say_so():
    record = switch_record(1, 1, procs=4)
    record["result"]["cpus"] = 16
    _l, outcome = judged("threads", record, cpus=16)
    assert "core of its own" in outcome.text


def test_waiting_work_near_the_15x_edge_agrees_with_its_answers():
    lesson = L.get("gil-io")
    for ratio in (0.79, 0.8, 1.44, 1.46, 1.5, 1.56, 5.9, 6.0, 6.3, 9.5):
        thr = 1.0 / ratio
        record = {"status": "done", "threads": [], "interpreter": interp(),
                  "result": {"requests": 10, "delay_s": 0.1,
                             "modes": {"sequential": {"wall_s": 1.0},
                                       "threads": {"wall_s": thr, "cpu_s": 0.01}}}}
        outcome = lesson.judge(lesson.plans[0], record, L.facts(cpus=2, rate=1e7))
        check_consistent(lesson, outcome)


def test_switch_cost_near_the_10us_edge_agrees_with_its_answers():
    lesson = L.get("switch-cost")
    for per in (0.97, 1.0, 1.03, 5.0, 9.7, 10.0, 10.3, 99.0, 104.0):
        methods = {"a": {"method": "processes", "us_per_msg": per, "switches_per_msg": 1.0},
                   "b": {"method": "threads", "us_per_msg": per}}
        record = {"status": "done", "threads": [], "interpreter": interp(),
                  "result": {"methods": methods}}
        outcome = lesson.judge(lesson.plans[0], record, L.facts(cpus=2, rate=1e7))
        check_consistent(lesson, outcome)


# Run sizes ------------------------------------------------------------------------------------
@pytest.mark.parametrize("cpus", [1, 2, 4, 16, 64])
@pytest.mark.parametrize("rate", [5e6, 3e7, 2e8])
def test_cpu_lessons_last_seconds_per_mode_scaled_to_the_machines_speed(cpus, rate):
    """Each CPU-bound lesson's one-after-another mode lasts seconds at the measured rate,
    and the whole run stays within about 15 s, on any machine."""
    ctx = L.facts(cpus=cpus, rate=rate)
    for lesson_id in CPU_LESSONS + ("threads",):
        params = L.get(lesson_id).plans[0].params_for(ctx)
        tasks = params["tasks"]
        lanes = min(tasks, cpus)
        one_after = tasks * params["work"] / rate
        parallel = one_after / lanes
        if params["modes"] == "processes":
            assert 2.0 <= parallel <= 5.0, (lesson_id, parallel)
            continue
        whole = 2 * one_after + parallel  # sequential, threads under a GIL, processes
        assert 2.0 <= one_after and whole <= 16.0, (lesson_id, one_after, whole)
        if lanes <= 8:
            assert parallel >= 0.9, (lesson_id, parallel)


def test_the_loop_rate_is_measured_here_and_positive():
    rate = L.loop_rate()
    assert 1e5 < rate < 1e10
    assert L.facts(cpus=2)["rate"] == rate  # measured once per process
