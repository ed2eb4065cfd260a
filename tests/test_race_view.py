"""The race view: words, not ticks, for finished variants; each variant's real count;
never more counted than expected while a variant runs."""

from __future__ import annotations

import pytest

from lab.core.runner import RunRequest, run_experiment
from lab.core.state import RunState
from tests.helpers import plain_lines as plain
from widgets.race_view import RaceView

PARAMS = {"threads": 4, "increments": 200_000, "variant": "all", "switch_interval_ms": 5.0}


@pytest.fixture(autouse=True)
def no_app(monkeypatch):
    """Drawn outside an app: the view asks the app about bandwidth; say full."""
    monkeypatch.setattr(RaceView, "low_bandwidth", False)


def finished_state() -> RunState:
    """A synthetic run: naive lost 60 000, sleep0 did its capped 20 000 a thread, locked none."""
    state = RunState("race", PARAMS, "python3")
    state.apply_event({"ev": "hello", "python": {"gil_enabled": True}})
    events = []
    for variant, per_thread, lost in (("naive", 200_000, 60_000), ("sleep0", 20_000, 3),
                                      ("locked", 200_000, 0)):
        expected = 4 * per_thread
        events += [
            {"ev": "phase", "variant": variant, "state": "start", "threads": 4,
             "increments": per_thread},
            {"ev": "counter", "variant": variant, "expected": expected // 2,
             "actual": expected // 2 - lost // 2, "lost": lost // 2},
            {"ev": "phase", "variant": variant, "state": "end", "expected": expected,
             "actual": expected - lost, "lost": lost},
        ]
    for event in events:
        state.apply_event(event)
    state.status = "done"
    return state


def drawn(state: RunState, width: int, rows: int = 12, compact: bool = False) -> list[str]:
    view = RaceView(compact=compact)
    view.fold(view.new_events(state), state)
    return plain(view.lines(state, width, rows))


def test_a_finished_variant_is_not_ticked_and_says_what_it_lost():
    for width, compact in ((38, True), (80, False)):
        lines = drawn(finished_state(), width, compact=compact)
        text = "\n".join(lines)
        assert "✓" not in text, text
        naive = next(l for l in lines if "naive" in l)
        assert "60 000" in naive, naive
        locked = next(l for l in lines if "locked" in l)
        assert "none" in locked, locked
        assert all(len(l) <= width for l in lines), lines
        assert "expected" in lines[0], lines


def test_the_footer_gives_each_variants_real_count():
    lines = drawn(finished_state(), 80)
    footer = "\n".join(lines[-2:])
    assert "200 000 each" in footer and "sleep0 × 20 000" in footer, footer
    narrow = drawn(finished_state(), 38, compact=True)
    assert any("sleep0 × 20 000" in l for l in narrow), narrow
    assert all(len(l) <= 38 for l in narrow), narrow


def test_sleep0_count_is_known_before_it_starts():
    state = RunState("race", PARAMS, "python3")
    state.status = "running"
    lines = drawn(state, 80)
    assert any("sleep0 × 20 000" in l for l in lines), lines


async def test_a_running_variant_never_counts_more_than_expected(tmp_path, monkeypatch):
    """Real threads, sampled mid-chunk: the counter event must hold actual <= expected."""
    monkeypatch.setenv("CONLAB_DATA_DIR", str(tmp_path))
    state = await run_experiment(RunRequest(
        "race", {"threads": 4, "increments": 400_000, "variant": "locked"}))
    assert state.status == "done", state.error
    counters = [e for e in state.events if e["ev"] == "counter" and not e.get("final")]
    assert counters, "no progress event during the run (the machine was too fast?)"
    for event in counters:
        assert event["actual"] <= event["expected"], event
        assert event.get("lost", 0) == 0, event  # locked never loses, even mid-run


def test_big_counts_stay_inside_the_dashboard_pane():
    params = dict(PARAMS, threads=64, increments=1_000_000)
    state = RunState("race", params, "python3")
    state.apply_event({"ev": "phase", "variant": "naive", "state": "start", "increments": 1_000_000})
    state.apply_event({"ev": "phase", "variant": "naive", "state": "end", "expected": 64_000_000,
                       "actual": 63_000_000})
    for width in (38, 60, 80):
        lines = drawn(state, width, compact=width == 38)
        assert all(len(l) <= width for l in lines), (width, lines)
        assert "63" in lines[1] and "000" in lines[1], lines
