"""History with timelines: the store's size for 1 000 runs, listing time, replay opening time.

    .venv/bin/python benchmarks/history_store.py [--runs 1000] [--keep DIR]

Budgets (issue 13): 1 000 runs with timelines stay under 200 MB; `conlab history` lists
in under 0.3 s; replay of a 60 s run opens within 0.5 s.

The runs' records come from one real short gil-cpu run; their timelines are that run's
own plus synthetic ones shaped like real runs of 5 to 60 s (samples at 4 Hz of 7 threads
in 3 processes, per-task progress at 10 Hz, mode changes, thread starts and exits) and,
for one run in four, the GIL view's segment batches (4 a second of 100 segments each),
which push a 60 s timeline to its 1 MB bound. Nothing here touches the user's store.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from lab.core import history, timeline  # noqa: E402
from lab.core.record import build_record, with_timeline  # noqa: E402
from lab.core.runner import Run, RunRequest, prepare  # noqa: E402
from lab.core.sampler import ProcessSample, Sample, ThreadSample  # noqa: E402
from lab.core.state import RunState  # noqa: E402

MODES = ("sequential", "threads", "processes")


def synthetic(seconds: float, gil: bool, seed: int) -> RunState:
    """A RunState fed like a real gil-cpu run of `seconds` (its recording is the point)."""
    rng = random.Random(seed)
    state = RunState(experiment="gil-cpu", params={"work": 10_000_000}, python=sys.executable)
    state.started_at = start = 1000.0
    rec = state.timeline
    rec.origin = start
    cpu = {tid: 0.0 for tid in range(100, 107)}
    rec.add(timeline.EVENT, {"v": 1, "ev": "hello", "ts": start, "pid": 100,
                             "experiment": "gil-cpu", "python": {"version": "3.11.7"}}, start)
    step, t, last_mode = 0.025, 0.0, -1
    while t < seconds:
        now = start + t
        mode = min(2, int(t / seconds * 3))
        if mode != last_mode:
            rec.add(timeline.EVENT, {"v": 1, "ev": "phase", "ts": now, "pid": 100,
                                     "mode": MODES[mode], "state": "start", "tasks": 4}, now)
            for tid in range(101, 105):
                rec.add(timeline.EVENT, {"v": 1, "ev": "thread", "ts": now, "pid": 100,
                                         "native_id": tid + 10 * mode, "name": "cpu-%d" % tid,
                                         "role": "worker"}, now)
            last_mode = mode
        for task in range(4):  # progress at 10 Hz per task
            if round(t / step) % 4 == task:
                rec.add(timeline.EVENT, {"v": 1, "ev": "progress", "ts": now, "pid": 100,
                                         "task": task, "done": round(t / seconds, 3)}, now)
        if round(t / step) % 10 == 0:  # a sample at 4 Hz
            sample = Sample(ts=now)
            for tid in cpu:
                cpu[tid] += rng.random() * 0.25
                sample.threads[tid] = ThreadSample(100 + (tid > 104), tid, "cpu-%d" % tid,
                                                   cpu[tid], cpu[tid] * 0.1, int(t * 300), 3)
            for pid in (100, 105, 106):
                sample.processes[pid] = ProcessSample(pid, 99, "python3", 30_000_000, 7, 9)
            state.apply_sample(sample)
        if gil and round(t / step) % 10 == 5:  # 4 batches a second
            base = int(t * 1e9)
            segments = [[101 + i % 4, base + i * 2_500_000, base + i * 2_500_000 + 2_000_000,
                         ("run", "cpu", "gil")[i % 3]] for i in range(100)]
            rec.add(timeline.EVENT, {"v": 1, "ev": "gil_segments", "ts": now, "pid": 100,
                                     "segments": segments}, now)
        t += step
    end = start + seconds
    rec.add(timeline.EVENT, {"v": 1, "ev": "result", "ts": end, "pid": 100,
                             "result": {"cores_used": 1.0}}, end)
    state.status, state.ended_at = "done", end
    rec.close(state)
    return state


def real_run() -> tuple:
    prepared = prepare(RunRequest("gil-cpu", {"work": 2_000_000}))
    return prepared, asyncio.run(Run(prepared).run())


async def tui_open() -> float:
    """Seconds from `p` on the newest run in the history screen to its replay drawn."""
    from lab.tui.app import LabApp
    from lab.tui.live import RunController
    from lab.tui.screens.experiment import ExperimentScreen
    from lab.tui.screens.history import HistoryScreen
    from widgets.pane import Pane
    from widgets.run_strip import RunStrip

    app = LabApp(controller=RunController(save_records=False), live_gauge=False,
                 machine_line="bench")
    async with app.run_test(size=(80, 24)) as pilot:
        app.push_screen(HistoryScreen())
        while not (isinstance(app.screen, HistoryScreen) and app.screen.loaded):
            await pilot.pause(0.01)
        began = time.perf_counter()
        await pilot.press("p")

        def drawn() -> bool:
            screen = app.screen
            if not isinstance(screen, ExperimentScreen) or not screen.query(RunStrip):
                return False
            strip = screen.query_one(RunStrip)
            return (strip.player is not None and strip.player.state is not None and
                    screen.query_one("#live", Pane).view._drawn_state_id
                    == id(strip.player.state))

        while not drawn():
            await pilot.pause(0.005)
        return time.perf_counter() - began


def store_size(folder: str) -> int:
    return sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--keep", metavar="DIR", help="build the store here and keep it")
    args = parser.parse_args()
    folder = args.keep or tempfile.mkdtemp(prefix="conlab-history-bench-")
    os.makedirs(folder, exist_ok=True)
    os.environ["CONLAB_DATA_DIR"] = folder

    prepared, live = real_run()
    record = build_record(prepared, live)
    print("real gil-cpu run: %.2f s, timeline %d bytes of JSON" % (
        live.duration_s, len(json.dumps(timeline.to_json(live.timeline), separators=(",", ":")))))

    started = time.perf_counter()
    templates = [with_timeline(record, live)]
    for seconds, gil in ((5, False), (15, False), (30, False), (60, False), (15, True),
                         (60, True)):
        state = synthetic(seconds, gil, seconds)
        templates.append(with_timeline(dict(record, duration_s=seconds), state))
        size = len(json.dumps(templates[-1]["timeline"], separators=(",", ":")))
        print("synthetic %2d s run%s: %5d items live, timeline %7d bytes of JSON%s" % (
            seconds, " with GIL segments" if gil else "", len(state.timeline.items), size,
            " (thinned %d)" % templates[-1]["timeline"]["thinned"]
            if templates[-1]["timeline"]["thinned"] else ""))
        assert size <= timeline.MAX_JSON_BYTES
    # One run in four carries the GIL segments; the rest a plain timeline, 5 to 60 s.
    mix = [templates[i] for i in (0, 1, 2, 3, 4, 5, 2, 3)] + [templates[6], templates[4]]
    for i in range(args.runs):
        history.save(mix[i % len(mix)])
    print("saved %d runs in %.1f s" % (args.runs, time.perf_counter() - started))
    with history.connect() as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    size = store_size(folder)
    print("store: %.1f MB for %d runs with timelines (budget 200 MB)" % (size / 1e6, args.runs))

    env = dict(os.environ, CONLAB_DATA_DIR=folder)
    walls = []
    for _ in range(5):
        began = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "lab", "history"], capture_output=True,
                              env=env, cwd=ROOT, stdin=subprocess.DEVNULL)
        walls.append(time.perf_counter() - began)
        assert done.returncode == 0, done.stderr
    inside = []
    for _ in range(5):
        began = time.perf_counter()
        history.load(30)
        inside.append(time.perf_counter() - began)
    print("`conlab history`: %.3f s best of 5 (whole process, start-up included; "
          "budget 0.3 s); reading the 30 runs it lists: %.3f s" % (min(walls), min(inside)))

    longest = max(history.list_runs(None), key=lambda r: (r["duration_s"] or 0, r["id"]))
    heaviest = [r for r in history.list_runs(20) if r["duration_s"] == 60]
    for run in heaviest[:2]:
        began = time.perf_counter()
        recording, problem = history.get_timeline(run["id"])
        assert problem is None
        like = timeline.like_record(history.get_run(run["id"])["record"])
        player = timeline.Player(recording, like)
        player.seek(0.0)
        timeline.thread_shares(recording, 64)
        opened = time.perf_counter() - began
        began = time.perf_counter()
        end = player.seek(recording.duration_s)
        to_end = time.perf_counter() - began
        began = time.perf_counter()
        timeline.state_at(recording, recording.duration_s / 2, like)
        mid = time.perf_counter() - began
        print("replay of run %d (%.0f s, %d items): opens in %.3f s (budget 0.5 s); "
              "to its end %.3f s; a fresh state at mid-run %.3f s; %d samples" % (
                  run["id"], recording.duration_s, len(recording.items), opened, to_end, mid,
                  end.samples))
    del longest
    print("replay opened from the history screen (p), to the first frame drawn: %.3f s "
          "(budget 0.5 s)" % asyncio.run(tui_open()))
    if not args.keep:
        import shutil

        shutil.rmtree(folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
