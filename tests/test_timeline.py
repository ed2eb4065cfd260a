"""A run's recorded timeline: it rebuilds the run's RunState at any moment, stays within
its bound, travels through the history (compact, at most 1 MB) and prints from the CLI;
old and damaged timelines never stop a run from opening. Slow motion grows only sizes."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from types import SimpleNamespace

import pytest

from lab.cli.parser import main
from lab.core import catalog, history, timeline
from lab.core.record import build_record, with_timeline
from lab.core.runner import Refused, Run, RunRequest, prepare
from lab.core.sampler import Sample, ThreadSample
from lab.core.state import RunState


@pytest.fixture(scope="module")
def real_run():
    """A real short gil-cpu run (all three modes), sampled often: (prepared, final state)."""
    prepared = prepare(RunRequest("gil-cpu", {"work": 400_000, "tasks": 2},
                                  sample_interval_s=0.02))
    state = asyncio.run(Run(prepared).run())
    assert state.status == "done", state.error
    return prepared, state


@pytest.fixture
def store(tmp_path, monkeypatch) -> str:
    monkeypatch.setenv("CONLAB_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr(history, "_problem", None)
    return str(tmp_path / "data")


def cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def figures(state: RunState) -> dict:
    """Each thread as the views show it (CPU seconds to the microsecond JSON keeps)."""
    return {tid: (t.name, t.role, pytest.approx(t.cpu_s, abs=2e-6), t.voluntary, t.alive,
                  t.final) for tid, t in state.threads.items()}


# Replay ------------------------------------------------------------------------------------
def test_replay_rebuilds_the_live_state_and_less_of_it_mid_run(real_run):
    _prepared, live = real_run
    recording = live.timeline
    assert recording.status == "done" and recording.duration_s > 0
    end = timeline.state_at(recording, recording.duration_s, live)
    assert end is not live
    assert end.threads == live.threads
    assert end.result == live.result and end.status == "done"
    assert end.samples == live.samples and end.events_seen == live.events_seen

    mid = timeline.state_at(recording, recording.duration_s / 2, live)
    assert mid.samples < live.samples
    assert mid.result is None and mid.running
    names = [name for _at, name in timeline.modes(recording)]  # more rounds if busy
    assert names[:3] == ["sequential", "threads", "processes"]


def test_a_player_moving_forward_keeps_its_state_and_back_rebuilds(real_run):
    _prepared, live = real_run
    player = timeline.Player(live.timeline, live)
    early = player.seek(0.1)
    assert player.seek(live.timeline.duration_s) is early  # same state, folded further
    assert early.result == live.result
    assert player.seek(0.05) is not early  # back in time: rebuilt from the start


def _flood(recording: timeline.Recording, count: int) -> None:
    recording.add(timeline.EVENT, {"ev": "hello", "pid": 1}, now=100.0)
    recording.add(timeline.EVENT, {"ev": "phase", "mode": "threads", "state": "start"},
                  now=100.0)
    for i in range(count):
        at = 100.0 + i * 0.001
        recording.add(timeline.EVENT, {"ev": "progress", "task": i % 4, "done": i}, now=at)
        if i % 50 == 0:
            recording.add(timeline.SAMPLE, Sample(ts=at, threads={
                7: ThreadSample(1, 7, "cpu-1", i * 1e-3, 0.0, i, 0)}), now=at)
        if i == count // 2:
            recording.add(timeline.EVENT, {"ev": "error", "message": "midway"}, now=at)
    recording.add(timeline.EVENT, {"ev": "result", "result": {"n": count}}, now=at)


def test_a_flood_of_events_stays_within_the_bound_and_keeps_what_matters():
    recording = timeline.Recording(max_items=2_000)
    _flood(recording, 60_000)
    assert len(recording.items) <= 2_000
    assert recording.thinned > 0
    kinds = [item[2].get("ev") for item in recording.items if item[1] == timeline.EVENT]
    assert kinds.count("hello") == 1 and kinds.count("result") == 1
    assert kinds.count("error") == 1 and "phase" in kinds
    # Thinned evenly: the newest progress of each task is kept across the whole run.
    offsets = [recording.offset(i) for i in recording.items]
    assert offsets[0] == 0.0 and offsets[-1] == pytest.approx(59.999, abs=0.01)
    assert {i[2]["task"] for i in recording.items if i[2].__class__ is dict
            and i[2].get("ev") == "progress"} == {0, 1, 2, 3}
    assert sum(1 for i in recording.items if i[1] == timeline.SAMPLE) > 10
    like = SimpleNamespace(experiment="gil-cpu", params={}, python="python")
    end = timeline.state_at(recording, recording.duration_s, like)
    assert end.result == {"n": 60_000} and end.error == "midway"
    assert end.threads[7].cpu_s == pytest.approx(59.95)


def test_the_json_timeline_is_at_most_a_megabyte_and_round_trips(real_run):
    _prepared, live = real_run
    document = timeline.to_json(live.timeline)
    back = timeline.from_json(json.loads(json.dumps(document)))
    end = timeline.state_at(back, back.duration_s, live)
    assert figures(end) == figures(live) and end.result == live.result

    big = timeline.Recording()  # full-size: 20 000 items of bulky events
    for i in range(30_000):
        big.add(timeline.EVENT, {"ev": "row", "id": i % 7, "text": "x" * 200}, now=1.0 + i / 500)
    text = json.dumps(timeline.to_json(big), separators=(",", ":"))
    assert len(text) <= timeline.MAX_JSON_BYTES
    assert timeline.from_json(json.loads(text)).items


# History ------------------------------------------------------------------------------------
def test_history_keeps_the_timeline_apart_and_replays_it(real_run, store, capsys, monkeypatch):
    prepared, live = real_run
    record = build_record(prepared, live)
    run_id = history.save(with_timeline(record, live))
    assert history.get_run(run_id)["record"] == json.loads(json.dumps(record))
    recording, problem = history.get_timeline(run_id)
    assert problem is None
    end = timeline.state_at(recording, recording.duration_s, live)
    assert figures(end) == figures(live) and end.result == live.result

    code, out, err = cli(capsys, "history", "show", str(run_id), "--timeline")
    assert code == 0, err
    assert "timeline:" in out and "sequential" in out and "threads" in out
    assert "ended: done" in out
    code, out, _err = cli(capsys, "history", "show", str(run_id), "--timeline", "--json")
    assert code == 0 and json.loads(out)["items"]

    # Exported and imported elsewhere, the timeline goes along.
    code, _out, err = cli(capsys, "export", str(run_id), "-o", str(store) + "/out.json")
    assert code == 0, err
    moved = json.load(open(str(store) + "/out.json"))["runs"][0]
    assert moved["record"] == json.loads(json.dumps(record)) and moved["timeline"]["items"]
    monkeypatch.setenv("CONLAB_DATA_DIR", str(store) + "/elsewhere")
    code, _out, err = cli(capsys, "import", str(store) + "/out.json")
    assert code == 0, err
    recording, problem = history.get_timeline(history.list_runs()[0]["id"])
    assert problem is None and recording.status == "done"


def test_a_record_without_a_timeline_still_opens(real_run, store, capsys):
    prepared, live = real_run
    run_id = history.save(build_record(prepared, live))  # as an older lab kept it
    assert history.get_run(run_id)["record"]["experiment"] == "gil-cpu"
    assert history.get_timeline(run_id) == (None, None)
    code, out, err = cli(capsys, "history", "show", str(run_id), "--timeline")
    assert code == 1 and "no timeline" in err and len(err.strip().splitlines()) == 1
    # A store from before timelines (no table at all) reads the same.
    with sqlite3.connect(history.db_path()) as conn:
        conn.execute("DROP TABLE timelines")
    assert history.get_timeline(run_id) == (None, None)
    assert cli(capsys, "history", "show", str(run_id))[0] == 0


@pytest.mark.parametrize("damage", [
    "{\"v\": 1, \"names\": {}, \"duration_s\": 1, \"items\": [[0.1, 2, 3]]}",
    "{\"v\": 1, \"names\": {}, \"duration_s\": 1, \"items\": [[0.5, {\"ev\": \"a\"}], [0.1",
    "{\"v\": 9}",
    b"x\x9c not zlib",
])
def test_a_damaged_timeline_is_skipped_in_one_line(real_run, store, capsys, damage):
    prepared, live = real_run
    run_id = history.save(with_timeline(build_record(prepared, live), live))
    with sqlite3.connect(history.db_path()) as conn:
        conn.execute("UPDATE timelines SET timeline = ? WHERE run_id = ?", (damage, run_id))
    recording, problem = history.get_timeline(run_id)
    assert recording is None and "damaged" in problem and "\n" not in problem
    code, out, err = cli(capsys, "history", "show", str(run_id), "--timeline")
    assert code == 1 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert cli(capsys, "history", "show", str(run_id))[0] == 0  # the run itself opens


# Slow motion ----------------------------------------------------------------------------------
def test_slow_motion_grows_only_the_size_within_its_range():
    from lab.core.slow import slowed

    gil = catalog.get("gil-cpu")
    slow = slowed(gil, {"tasks": 4, "switch_interval_ms": 1.0}, rate=20_000_000)
    assert slow["work"] == 20_000_000  # 4 s of the loop for 4 tasks one after another
    assert slow["tasks"] == 4 and slow["switch_interval_ms"] == 1.0
    assert slowed(gil, {"work": 400_000_000}, rate=1e9)["work"] == 500_000_000  # its maximum
    assert slowed(gil, {"work": 90_000_000}, rate=1_000)["work"] == 90_000_000  # never shrunk
    convoy = catalog.get("convoy")
    assert slowed(convoy, {"requests": 300})["requests"] == 1500
    assert slowed(catalog.get("scale"), {"count": 10}) == {"count": 10}  # no size to grow

    prepared = prepare(RunRequest("gil-cpu", {"work": 1000}, slow=True))
    assert prepared.params["work"] > 1000
    with pytest.raises(Refused, match="'work' must be an integer"):
        prepare(RunRequest("gil-cpu", {"work": "lots"}, slow=True))
