"""CPU-bound runs take turns in the TUI, with real children: the dashboard's `a`, the
side-by-side screen's `r` (and its at-once toggle), `x` and quitting mid-queue.

Each run's start and end come from the controller's states (monotonic clocks taken when
the child was started and when its group was reaped), so "never overlapped" is exact."""

from __future__ import annotations

import sys

import pytest

from lab.core import catalog
from lab.core.record import build_record
from lab.tui.app import LabApp
from lab.tui.live import RunController
from lab.tui.screens.dashboard import PANES, DashboardScreen, PaneSpec
from lab.tui.screens.side_by_side import SideBySideScreen
from tests.helpers import alive, new_tag, until, workload_processes
from tests.test_tui_pilot import status

pytestmark = pytest.mark.slow

# The dashboard's own experiments, sized to take about a second each.
SMALL = {"gil-cpu": {"work": 300_000, "tasks": 2, "modes": "all"},
         "loop-freeze": {"duration_s": 0.6, "block_ms": 50, "blocks": 1},
         "race": {"threads": 2, "increments": 20_000, "variant": "naive"},
         "goroutines": {"gs": 60, "work_ms": 1.0}}
# A first run long enough to be stopped while the others wait.
LONG = PaneSpec("Threads & the GIL", "gil-cpu", {"work": 400_000_000, "tasks": 1,
                                                   "modes": "sequential"})


def small_panes() -> tuple[PaneSpec, ...]:
    return tuple(PaneSpec(p.title, p.experiment, SMALL[p.experiment]) for p in PANES)


def lab(panes, monkeypatch, tmp_path) -> LabApp:
    monkeypatch.setenv("CONLAB_TEST_TAG", new_tag())  # children inherit it: we find ours
    monkeypatch.setenv("CONLAB_SPAWN_LOG", str(tmp_path / "spawned"))
    app = LabApp(controller=RunController(save_records=False), live_gauge=False)
    app.get_default_screen = lambda: DashboardScreen(panes)
    return app


def spawned(tmp_path) -> list[str]:
    log = tmp_path / "spawned"
    return log.read_text().splitlines() if log.exists() else []


def assert_one_at_a_time(states) -> None:
    spans = sorted((s.started_at, s.ended_at, s.experiment) for s in states)
    for (_, end, first), (start, _, then) in zip(spans, spans[1:]):
        assert start >= end, "%s started %.3f s before %s ended" % (then, end - start, first)


def test_every_dashboard_pane_is_cpu_bound():
    """The premise of `a` running them one after another."""
    assert all(catalog.get(p.experiment).cpu_bound for p in PANES)
    assert not catalog.get("deadlock").cpu_bound and not catalog.get("io-bound").cpu_bound


async def test_a_runs_the_cpu_bound_panes_one_after_another_and_each_finishes_alone(
        monkeypatch, tmp_path):
    app = lab(small_panes(), monkeypatch, tmp_path)
    most_at_once = 0

    def finished() -> bool:
        nonlocal most_at_once
        most_at_once = max(most_at_once, len(app.controller.active_keys()))
        return not app.controller.running_keys()

    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("a")
        await until(pilot, lambda: len(app.controller.states) == 4, what="four panes")
        await until(pilot, finished, timeout=120, what="every pane to finish")
        keys = ["pane-%d" % i for i in range(4)]
        states = [app.controller.state(k) for k in keys]
        assert [s.status for s in states] == ["done"] * 4, [s.error for s in states]
        records = [build_record(app.controller.prepared[k], s) for k, s in zip(keys, states)]
        app.frame()
        await pilot.pause()
        texts = [status(app, k) for k in keys]
    assert most_at_once == 1
    assert_one_at_a_time(states)
    assert [r["overlapped_by"] for r in records] == [[]] * 4
    assert not any("measured while" in text for text in texts)
    assert len(spawned(tmp_path)) == 4


async def test_a_run_that_needs_no_cpu_runs_beside_the_queue_and_both_say_so(
        monkeypatch, tmp_path):
    panes = (LONG, PaneSpec("Deadlock", "deadlock", {"fix": "ordered"}))
    app = lab(panes, monkeypatch, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("a")
        await until(pilot, lambda: app.controller.state("pane-1") is not None
                    and app.controller.state("pane-1").status == "done", timeout=60,
                    what="deadlock to finish beside gil-cpu")
        cpu = app.controller.state("pane-0")
        assert cpu.status == "running"  # deadlock did not wait for it
        assert app.controller.state("pane-1").overlapped_by == ["gil-cpu"]
        assert cpu.overlapped_by == ["deadlock"]
        app.frame()
        await pilot.pause()
        assert "measured while gil-cpu ran" in status(app, "pane-1").replace("\n", " ")
        await pilot.press("q")
        await until(pilot, lambda: not app.is_running, timeout=30, what="the app to exit")
    assert workload_processes(monkeypatch_tag()) == []


def monkeypatch_tag() -> str:
    import os

    return os.environ["CONLAB_TEST_TAG"]


@pytest.mark.parametrize("how", ["x", "q"])
async def test_stopping_mid_queue_stops_the_run_starts_no_other_and_leaves_no_child(
        how, monkeypatch, tmp_path):
    panes = (LONG,) + small_panes()[1:]
    app = lab(panes, monkeypatch, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("a")
        await until(pilot, lambda: "RUNNING" in status(app, "pane-0"), timeout=30,
                    what="the first run")
        pid = app.controller.state("pane-0").pid
        assert app.controller.waiting_keys() == ["pane-1", "pane-2", "pane-3"]
        await until(pilot, lambda: "WAITING for its turn (3 of 3)" in status(app, "pane-3"),
                    what="the last to say it waits")
        await pilot.press(how)
        if how == "x":
            await until(pilot, lambda: not app.controller.running_keys(), timeout=30,
                        what="every run to stop")
            assert app.controller.state("pane-0").status == "stopped"
            assert all(app.controller.state("pane-%d" % i) is None for i in (1, 2, 3))
            app.frame()
            await pilot.pause()
            assert "STOPPED" in status(app, "pane-0")
            assert "idle" in status(app, "pane-3")
            await pilot.press("q")
        await until(pilot, lambda: not app.is_running, timeout=30, what="the app to exit")
    assert alive([pid]) == []
    assert workload_processes(monkeypatch_tag()) == []
    assert len(spawned(tmp_path)) == 1  # the queue started nothing more


# Interpreters side by side ------------------------------------------------------------
def two_interpreters():
    from lab.core.interpreters import find_interpreters, probe

    own = probe(sys.executable)
    others = [i for i in find_interpreters() if i.path != own.path]
    if not others:
        pytest.skip("only one interpreter on this machine")
    return [own, others[0]]


@pytest.mark.parametrize("at_once", [False, True], ids=["in-turn", "at-once"])
async def test_side_by_side_runs_interpreters_in_turn_unless_told_at_once(
        at_once, monkeypatch, tmp_path):
    found = two_interpreters()
    app = lab(small_panes(), monkeypatch, tmp_path)
    params = {"threads": 2, "increments": 200_000, "variant": "naive"}
    async with app.run_test(size=(80, 24)) as pilot:
        app.push_screen(SideBySideScreen("race", params, finder=lambda: found))
        await until(pilot, lambda: isinstance(app.screen, SideBySideScreen)
                    and app.screen.found is not None and app.screen.panes, what="panes")
        screen = app.screen
        if at_once:
            await pilot.press("t")
        await pilot.press("r")
        await until(pilot, lambda: len(app.controller.states) == 2, what="two runs")
        await until(pilot, lambda: not app.controller.running_keys(), timeout=120,
                    what="both runs to finish")
        states = [app.controller.state(k) for k in screen.keys]
        assert [s.status for s in states] == ["done", "done"], [s.error for s in states]
        labels = [app.controller.label(app.controller.prepared[k]) for k in screen.keys]
        app.frame()
        await pilot.pause()
        summary = str(screen.query_one("#summary").render())
    if at_once:
        assert states[0].overlapped_by == [labels[1]]
        assert states[1].overlapped_by == [labels[0]]
        assert "measured while other runs shared the CPUs" in summary
    else:
        assert_one_at_a_time(states)
        assert [s.overlapped_by for s in states] == [[], []]
        assert "measured while" not in summary
    assert workload_processes(monkeypatch_tag()) == []


# Headless ------------------------------------------------------------------------------
def test_a_headless_run_records_that_nothing_overlapped_it(tmp_path):
    from tests.helpers import run_json

    record = run_json("race", "threads=2", "increments=1000", "variant=naive")
    assert record["status"] == "done"
    assert record["overlapped_by"] == []


@pytest.mark.parametrize("at_once", [False, True], ids=["in-turn", "at-once"])
def test_compare_interpreters_records_name_the_runs_they_shared_the_cpus_with(
        at_once, tmp_path):
    import json

    from lab.core.interp_compare import describe
    from tests.helpers import conlab

    own, other = two_interpreters()
    done = conlab("compare-interpreters", "race", "--python", own.path, "--python", other.path,
                  "-p", "variant=naive", "-p", "increments=200000", "--json",
                  *(["--at-once"] if at_once else []),
                  env={"CONLAB_DATA_DIR": str(tmp_path)}, timeout=120)
    assert done.returncode == 0, done.stderr
    first, second = json.loads(done.stdout)["records"]
    if at_once:
        assert first["overlapped_by"] == ["race under %s" % describe(other)]
        assert second["overlapped_by"] == ["race under %s" % describe(own)]
    else:
        assert first["overlapped_by"] == second["overlapped_by"] == []
