"""scale: caps from the machine's limits refuse before anything starts; a small run weighs
threads, processes and tasks; the memory watch stops a spawn loop before the reserve."""

from __future__ import annotations

import json
import subprocess
import sys
import threading

import pytest

import lab.cli.parser
from lab.core.runner import Refused, RunRequest, prepare
from tests.helpers import ROOT, interpreter, run_json
from workloads import _limits, scale

COUNT_MAX = 1_000_000  # the parameter's own range


def capped_kind():
    """A kind whose machine cap is below the parameter's maximum, and that cap."""
    for kind in ("threads", "processes"):
        cap = _limits.tightest(kind, scale.default_stack_bytes())
        if cap is not None and cap.units + 1000 < COUNT_MAX:
            return kind, cap
    pytest.skip("this machine's caps are above the parameter range")


def test_a_count_past_the_cap_is_refused_with_the_number_and_the_limit():
    kind, cap = capped_kind()
    over = cap.units + 1000  # clear of small drifts in tasks in use / MemAvailable
    with pytest.raises(Refused) as refused:
        prepare(RunRequest("scale", {"count": over, "kinds": kind}))
    message = str(refused.value)
    assert "'count'" in message and kind in message and cap.limit in message
    assert _limits._num(over) in message


def test_the_cli_refuses_with_exit_2_and_starts_nothing(monkeypatch, capsys):
    kind, cap = capped_kind()

    def no_run(*args, **kwargs):
        raise AssertionError("a run was constructed for a refused request")

    monkeypatch.setattr(lab.cli.parser, "Run", no_run)
    code = lab.cli.parser.main(["run", "scale", "-p", "count=%d" % (cap.units + 1000), "-p",
                         "kinds=" + kind])
    assert code == 2
    assert cap.limit in capsys.readouterr().err


def test_the_child_refuses_too_and_spawns_nothing():
    """The child checks the same caps itself: exit 2, one error event, no spawn phase."""
    kind, cap = capped_kind()
    done = subprocess.run(
        [sys.executable, "-m", "workloads", "scale", "--params",
         json.dumps({"count": cap.units + 1000, "kinds": kind})],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL, cwd=ROOT)
    assert done.returncode == 2
    events = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    assert [e["ev"] for e in events] == ["error"]
    assert events[0]["kind"] == "params" and cap.limit in events[0]["message"]


@pytest.fixture(scope="module")
def small_run():
    return run_json("scale", "count=200")


def test_each_kind_is_spawned_and_weighed(small_run):
    units = small_run["result"]["units"]
    assert set(units) == {"threads", "processes", "tasks"}
    for kind, fig in units.items():
        assert fig["count"] == 200, kind
        assert fig["spawn_us_per_unit"] > 0, kind
        assert fig["stopped_early"] is None, kind


def test_a_thread_reserves_far_more_stack_than_it_makes_resident(small_run):
    threads = small_run["result"]["units"]["threads"]
    assert threads["stack_reserved_bytes"] >= 64 * 1024
    assert 0 < threads["rss_bytes_per_unit"] < threads["stack_reserved_bytes"] / 8
    extrapolated = small_run["result"]["extrapolated"]
    assert extrapolated["stack_reserved_bytes"] > 10 * extrapolated["resident_bytes"]


def test_a_process_costs_its_private_pages_not_the_rss_top_shows(small_run):
    processes = small_run["result"]["units"]["processes"]
    assert 0 < processes["rss_bytes_per_unit"] < processes["rss_each_as_top_shows"]


class Recorder:
    def __init__(self):
        self.events = []
        self.lock = threading.Lock()

    def emit(self, ev, **fields):
        with self.lock:
            self.events.append(dict(fields, ev=ev))

    def latest(self, ev, key="", interval=0.1, **fields):
        self.emit(ev, **fields)


@pytest.mark.parametrize("kind", ["threads", "tasks"])
def test_the_memory_watch_stops_spawning_under_the_reserve(monkeypatch, kind):
    """With a reserve larger than the machine, the first check stops the loop cleanly."""
    monkeypatch.setattr(_limits, "memory_reserve", lambda info=None: 1 << 62)
    figures = scale.SPAWNERS[kind](scale.CHECK_EVERY[kind] * 3, Recorder())
    assert figures["count"] == scale.CHECK_EVERY[kind]
    assert "MemAvailable" in figures["stopped_early"]


def test_runs_on_python_39():
    py39 = interpreter("3.9")
    if py39 is None:
        pytest.skip("no CPython 3.9 on this machine (pyenv)")
    record = run_json("scale", "count=100", python=py39)
    assert record["interpreter"]["version"].startswith("3.9")
    assert {k: v["count"] for k, v in record["result"]["units"].items()} == {
        "threads": 100, "processes": 100, "tasks": 100}


@pytest.mark.parametrize("kind", ["threads", "tasks", "processes"])
def test_page_tables_are_this_runs_own_and_never_negative(monkeypatch, kind):
    """Other programs freeing page tables meanwhile (the machine-wide PageTables falls by
    1 MiB a read) must not show up as a negative cost per unit."""
    real = _limits.meminfo
    reads = [0]

    def shrinking(*args, **kwargs):
        info = dict(real(*args, **kwargs))
        reads[0] += 1
        info["PageTables"] = max(0, (1 << 30) - reads[0] * (1 << 20))
        return info

    monkeypatch.setattr(_limits, "meminfo", shrinking)
    figures = scale.SPAWNERS[kind](8, Recorder())
    assert figures["count"] == 8
    tables = figures["page_table_bytes_per_unit"]
    if tables is None:
        pytest.skip("no VmPTE in /proc/PID/status here")
    assert tables >= 0
    if kind == "processes":  # a child has page tables of its own
        assert tables > 0


def test_the_scale_threads_are_named_for_what_they_are(small_run):
    names = [t["name"] for t in small_run["threads"]]
    # The run's own main thread, and at most a unit or two caught by a sample in the
    # microseconds between its fork and its rename: never the hundreds of "main" rows.
    assert names.count("main") <= 3, names[:10]
    assert names.count("unit") >= len(names) - 3, names[:10]


def test_the_cli_table_folds_the_spawned_units_into_one_row(small_run):
    from lab.core.formatting import format_record

    table = format_record(small_run).split("  thread ", 1)[1].splitlines()
    assert len(table) <= 4, table  # header, main, "unit ×N"
    assert any(line.split()[:2][-1].startswith("×") for line in table[1:]), table
