"""ctx-switch in real children: switch counts tell ping-pong from batching, placement
matters, the ladder orders itself, perf runs beside it, 3.9 works without uvloop."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.helpers import ROOT, interpreter, run_json, skip_if_busy, usable_cpus
from workloads import _perfbench

SMALL = ("messages=4000", "perf=false", "ladder=false")


@pytest.fixture(scope="module")
def every_method():
    """All three methods at every placement this machine has, small."""
    return run_json("ctx-switch", *SMALL)["result"]


def test_ping_pong_makes_about_one_switch_per_message(every_method):
    ping_pong = {k: v for k, v in every_method["methods"].items() if not k.startswith("oneway/")}
    assert ping_pong, every_method["methods"].keys()
    for key, fig in ping_pong.items():
        assert 0.8 <= fig["switches_per_msg"] <= 1.3, (key, fig)
        assert fig["reading"] == "switching"
        assert fig["us_per_roundtrip"] == pytest.approx(2 * fig["us_per_msg"])


def test_the_one_way_pipe_batches_far_below_one_switch_per_message(every_method):
    oneway = {k: v for k, v in every_method["methods"].items() if k.startswith("oneway/")}
    assert oneway
    for key, fig in oneway.items():
        assert fig["switches_per_msg"] < 0.5, (key, fig)
        assert fig["reading"] == "batching"  # labelled, so nobody reads it as a switch cost
        assert fig["us_per_roundtrip"] is None


def test_every_placement_runs_or_says_why_not(every_method):
    placements = {key.split("/")[1] for key in every_method["methods"]}
    if usable_cpus() >= 2:
        assert placements == {"same-core", "cross-core", "unpinned"}
        assert every_method["skipped"] == {}
    else:
        assert "cross-core" in every_method["skipped"]


@pytest.mark.timing
def test_same_core_round_trip_is_cheaper_than_cross_core():
    if usable_cpus() < 2:  # cross-core is refused before the run on one CPU
        pytest.skip("one usable CPU: there is no other core to cross to")
    record = run_json("ctx-switch", "method=processes", "messages=6000", "perf=false",
                      "ladder=false")
    skip_if_busy(record)
    result = record["result"]
    same = result["methods"]["processes/same-core"]["us_per_roundtrip"]
    cross = result["methods"]["processes/cross-core"]["us_per_roundtrip"]
    assert same < cross, "same core %.2f us, cross core %.2f us" % (same, cross)


def test_cross_core_is_refused_before_anything_starts_when_one_cpu_is_usable():
    """Run the CLI confined to one CPU: the refusal names the parameter, exit 2."""
    first = min(os.sched_getaffinity(0))
    done = subprocess.run(
        [sys.executable, "-m", "lab", "run", "ctx-switch", "-p", "placement=cross-core"],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL, cwd=ROOT,
        preexec_fn=lambda: os.sched_setaffinity(0, {first}))
    assert done.returncode == 2, done.stderr
    assert "placement" in done.stderr and "2 CPUs" in done.stderr
    assert done.stdout == ""


@pytest.mark.timing
def test_the_ladder_climbs_from_generator_to_kernel_switches():
    record = run_json("ctx-switch", "method=threads", "placement=same-core", "messages=4000",
                      "perf=false")
    skip_if_busy(record)
    result = record["result"]
    ladder = result["ladder"]
    generator = ladder["generator resume"]
    asyncio_switch = ladder["asyncio task switch"]
    thread = ladder["thread ping-pong same core"]
    assert generator < asyncio_switch and generator < thread
    assert list(ladder.values()) == sorted(v for v in ladder.values() if v is not None) + \
        [None] * sum(v is None for v in ladder.values())
    server = result["server"]
    expected = server["requests_per_s"] * server["switches_per_request"] * thread / 1e6
    assert server["cpu_ms_per_s"]["thread ping-pong same core"] == pytest.approx(expected)


def test_perf_bench_runs_beside_the_lab_with_the_same_placement():
    path, why = _perfbench.check_perf()
    if path is None:
        pytest.skip(why)
    result = run_json("ctx-switch", "method=processes", "placement=same-core",
                      "messages=2000", "ladder=false")["result"]
    run = result["perf"]["runs"]["processes/same-core"]
    assert run["us_per_roundtrip"] > 0
    assert run["command"].startswith("taskset -c ")
    assert "perf bench (C)" in result["explanation"]


def test_runs_on_python_39_and_reports_uvloop_as_unavailable_not_an_error():
    py39 = interpreter("3.9")
    if py39 is None:
        pytest.skip("no CPython 3.9 on this machine (pyenv)")
    record = run_json("ctx-switch", "method=threads", "placement=unpinned", "messages=2000",
                      "perf=false", python=py39)
    assert record["interpreter"]["version"].startswith("3.9")
    result = record["result"]
    assert 0.8 <= result["methods"]["threads/unpinned"]["switches_per_msg"] <= 1.3
    done = subprocess.run([py39, "-c", "import uvloop"], capture_output=True)
    if done.returncode == 0:
        assert result["ladder"]["uvloop task switch"] > 0
    else:
        assert result["ladder"]["uvloop task switch"] is None
        assert "uvloop" in result["ladder_notes"]["uvloop task switch"]


@pytest.mark.timing
def test_the_goroutine_rung_is_measured_with_go_and_unavailable_without_it():
    from tests.helpers import conlab
    from workloads import _go

    args = ("run", "ctx-switch", "-p", "method=threads", "-p", "placement=same-core",
            "-p", "messages=1000", "-p", "perf=false", "--json")
    without = conlab(*args, env={"CONLAB_GO": "none"}, timeout=120)
    assert without.returncode == 0, without.stderr
    result = json.loads(without.stdout)["result"]
    assert result["ladder"]["goroutine switch"] is None
    assert "go" in result["ladder_notes"]["goroutine switch"]
    if _go.find_go() is None:
        pytest.skip("no `go` here: only the unavailable case can be checked")
    record = run_json("ctx-switch", "method=threads", "placement=same-core", "messages=1000",
                      "perf=false", timeout=400)
    skip_if_busy(record)
    result = record["result"]
    goroutine = result["ladder"]["goroutine switch"]
    assert goroutine is not None and 0 < goroutine < result["ladder"]["thread ping-pong same core"]
