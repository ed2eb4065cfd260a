"""`conlab run` talks: progress on a terminal while it runs (gone at the end), results as
tables that fit 80 columns, and nothing but the record on a pipe or with --json."""

from __future__ import annotations

import io
import json
import os
import shlex
import shutil
import subprocess
import sys
import time

import pytest

from lab.core.formatting import flatten, fmt_value, format_record
from lab.core.run_status import Tracker
from lab.core.state import RunState
from tests.helpers import ROOT, conlab

ESC = "\x1b"


def _record(result: dict, threads: int = 3) -> dict:
    return {"experiment": "x", "status": "done", "duration_s": 1.5, "error": None,
            "interpreter": {"implementation": "cpython", "version": "3.11", "gil_enabled": True},
            "machine": {"usable_cpus": 2, "hypervisor": None}, "result": result,
            "threads": [{"name": "worker-%d" % i, "native_id": 1000 + i, "cpu_s": 0.25,
                         "run_delay_s": 0.01, "voluntary": 12345, "involuntary": 3}
                        for i in range(threads)]}


SHAPES = {
    "modes": {"modes": {m: {"wall_s": 1.23456, "cpu_s": 0.5, "cpu_efficiency": 0.4,
                            "cores_used": 1.02, "waited_for_cpu_s": 0.001, "busy": False,
                            "split": {"on_cpu": 0.9, "off_cpu": 0.1},
                            "wall_s_rounds": [1.2, 1.3, 1.4], "rss_bytes": 123456789,
                            "switches_per_message": 2.0, "page_faults": 40000,
                            "workers": [{"task": 0, "span_s": 1.0}]}
                        for m in ("sequential", "threads", "processes", "asyncio")},
              "speedup": {"threads": 1.0, "processes": 1.9}, "tasks": 4,
              "verdict": {"says": "threads do not add CPU here", "figure":
                          "modes.threads.cores_used", "value": 1.02, "can_tell": True},
              "load": {"other_cpu_share": 0.04, "steal_share": 0.0, "busy": False,
                       "usable_cpus": 2, "threshold": 0.1},
              "explanation": "word " * 80},
    "rows": {"rows": [{"id": "r%d" % i, "label": "a row with a long label %d" % i,
                       "models": {m: {"jobs": 12345, "jobs_per_s": 1234.5, "busy": True}
                                  for m in ("sequential", "threads", "processes", "asyncio",
                                            "asyncio+pool")},
                       "verdict": {"says": "asyncio won", "figure": "rows.%d.x" % i,
                                   "value": 3.0, "can_tell": False, "why": "busy"}}
                      for i in range(4)]},
    "siblings": {"lag_ms": {"p50": 1.1, "p99": 5.3, "max": 254.4, "n": 251},
                 "lag_ms_quiet": {"p50": 1.1, "p99": 3.8, "max": 5.3, "n": 241},
                 "loop_class": "asyncio.unix_events._UnixSelectorEventLoop " * 3},
}


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_result_tables_fit_80_columns_and_keep_the_figures(shape):
    text = format_record(_record(SHAPES[shape]))
    wide = [line for line in text.splitlines() if len(line) > 80]
    assert not wide, "\n".join(wide)
    assert ESC not in text
    # Every number of the result is in the table, as fmt_value writes it.
    for key, value in flatten(SHAPES[shape]):
        if isinstance(value, (int, float)) and not isinstance(value, bool) \
                and "workers" not in key and "rounds" not in key and not key.startswith("load."):
            assert fmt_value(value) in text, (key, value)


def test_the_verdict_and_the_figure_come_first_and_the_threads_last():
    text = format_record(_record(SHAPES["modes"]))
    lines = text.splitlines()
    assert lines[1:4] == ["", "verdict: threads do not add CPU here",
                          "rests on modes.threads.cores_used = 1.02"], lines[:5]
    assert text.index("load: other programs took 4% of the 2 usable CPUs") < text.index("\nmodes\n")
    assert text.index("word word") < text.index("threads\n  thread")
    assert "12 345" in text  # grouped digits
    assert "wall (s)" in text  # the unit named once, in the heading


def test_a_dict_of_dicts_is_a_table_with_one_row_per_key():
    text = format_record(_record({"variants": {v: {"expected": 40000, "lost": n}
                                               for v, n in (("naive", 0), ("sleep0", 20000))}},
                                 threads=0))
    header = next(line for line in text.splitlines() if "expected" in line)
    assert header.split() == ["expected", "lost"]
    assert [line.split() for line in text.splitlines() if line.strip().startswith(
        ("naive", "sleep0"))] == [["naive", "40", "000", "0"], ["sleep0", "40", "000", "20", "000"]]


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("env, coloured", [({}, True), ({"NO_COLOR": "1"}, False),
                                          ({"TERM": "dumb"}, False)])
def test_no_color_and_dumb_terminals_get_no_escapes(monkeypatch, env, coloured):
    from lab.cli.show import print_record

    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    out = FakeTerminal()
    print_record(_record(SHAPES["modes"]), out)
    assert (ESC in out.getvalue()) is coloured
    assert "threads do not add CPU here" in out.getvalue()


def test_the_status_follows_the_experiment_events():
    state = RunState("gil-cpu", {"modes": "all", "repeat": 2}, "python")
    tracker = Tracker(state, {"modes": ("all", "sequential", "threads", "processes")})
    state.status = "running"
    assert tracker.status().doing == "starting"
    state.apply_event({"ev": "phase", "mode": "sequential", "state": "start", "tasks": 2})
    state.apply_event({"ev": "progress", "task": 0, "done": 0.5})
    status = tracker.status()
    assert (status.doing, status.step, status.total) == ("sequential", 1, 6)
    assert status.fraction == pytest.approx(0.25 / 6)
    state.apply_event({"ev": "phase", "mode": "sequential", "state": "end"})
    state.apply_event({"ev": "phase", "mode": "threads", "state": "start", "tasks": 2})
    assert tracker.status().line().startswith("gil-cpu · threads (2 of 6) · 17% · ")


def test_the_status_of_a_table_of_rows_counts_rows():
    state = RunState("decision", {"workload": "table"}, "python")
    tracker = Tracker(state, {"workload": ("table", "dial")})
    state.status = "running"
    state.apply_event({"ev": "row", "state": "start", "index": 2, "rows": 4, "id": "io-few"})
    state.apply_event({"ev": "model", "row": "io-few", "model": "asyncio", "state": "start"})
    status = tracker.status()
    assert (status.doing, status.step, status.total, status.fraction) == (
        "row io-few · asyncio", 3, 4, 0.5)


def test_json_is_exactly_one_object_and_a_pipe_carries_no_escapes():
    done = conlab("run", "race", "-p", "increments=1000", "-p", "variant=call", "--json",
                  env={"TERM": "xterm-256color"})
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)  # the whole of stdout, nothing before or after
    assert isinstance(record, dict) and record["experiment"] == "race"
    assert done.stdout == json.dumps(record, indent=1) + "\n"
    piped = conlab("run", "race", "-p", "increments=1000", "-p", "variant=call",
                   env={"TERM": "xterm-256color"})
    assert piped.returncode == 0, piped.stderr
    assert ESC not in piped.stdout and ESC not in piped.stderr
    assert piped.stdout.startswith("race: done in")
    assert all(len(line) <= 80 for line in piped.stdout.splitlines())


def _tmux(socket: str, *args: str) -> str:
    done = subprocess.run(["tmux", "-L", socket, "-f", "/dev/null", *args], capture_output=True,
                          text=True, stdin=subprocess.DEVNULL, timeout=10)
    return done.stdout


def _screen(socket: str) -> str:
    return _tmux(socket, "capture-pane", "-p", "-t", "lab")


@pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux for a real terminal")
def test_progress_shows_on_a_terminal_while_it_runs_and_is_gone_at_the_end(tmp_path):
    """stderr on a terminal (tmux renders it, as a user would see it), stdout to a file."""
    socket = "conlab-show-%d" % os.getpid()
    out = tmp_path / "out.txt"
    env = " ".join("%s=%s" % (k, shlex.quote(os.environ[k])) for k in ("CONLAB_DATA_DIR",)
                   if k in os.environ)
    command = ("cd %s && env TERM=xterm-256color %s %s -m lab run gil-cpu -p work=3000000 "
               "-p repeat=4 > %s; echo FINISHED $?; sleep 60" % (
                   shlex.quote(str(ROOT)), env, shlex.quote(sys.executable),
                   shlex.quote(str(out))))
    _tmux(socket, "new-session", "-d", "-s", "lab", "-x", "80", "-y", "24", command)
    try:
        seen, deadline = set(), time.monotonic() + 120
        while time.monotonic() < deadline and "FINISHED" not in _screen(socket):
            screen = _screen(socket)
            for line in screen.splitlines():
                if "gil-cpu" in line and " of 12)" in line:
                    seen.add(line.split("gil-cpu", 1)[1].split("(")[0].strip())
            time.sleep(0.05)
        final = _screen(socket)
        assert "FINISHED 0" in final, final
        assert seen & {"sequential", "threads", "processes"}, seen
        assert "gil-cpu" not in final and "of 12)" not in final, final  # erased
        text = out.read_text()
        assert text.startswith("gil-cpu: done in") and ESC not in text
    finally:
        _tmux(socket, "kill-server")
