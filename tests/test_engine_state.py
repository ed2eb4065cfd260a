"""RunState stays bounded whatever the child sends."""

from __future__ import annotations

from lab.core.sampler import MAX_THREADS_PER_PROCESS, Sample, ThreadSample, first_threads
from lab.core.state import EVENT_BUFFER, MAX_THREAD_VIEWS, RunState


def fresh() -> RunState:
    return RunState(experiment="x", params={}, python="python")


def test_thousands_of_threads_are_counted_not_kept():
    state = fresh()
    for tid in range(1, 3001):
        state.apply_event({"ev": "thread", "pid": 1, "native_id": tid, "name": "t%d" % tid})
        state.apply_event({"ev": "thread_exit", "pid": 1, "native_id": tid, "name": "t%d" % tid,
                           "cpu_s": 0.001})
    assert len(state.threads) == MAX_THREAD_VIEWS
    assert len(state.omitted_threads) == 3000 - MAX_THREAD_VIEWS
    assert len(state.thread_records()) == MAX_THREAD_VIEWS


def test_experiment_events_are_a_bounded_window_with_a_cursor():
    state = fresh()
    for i in range(EVENT_BUFFER + 100):
        state.apply_event({"ev": "tick", "i": i})
    seq, events = state.events_since(0)
    assert seq == EVENT_BUFFER + 100 and len(events) == EVENT_BUFFER
    assert events[-1]["i"] == EVENT_BUFFER + 99
    state.apply_event({"ev": "tick", "i": -1})
    seq2, newer = state.events_since(seq)
    assert seq2 == seq + 1 and newer == [{"ev": "tick", "i": -1}]
    assert state.last["tick"]["i"] == -1


def test_sample_rates_come_from_consecutive_samples():
    state = fresh()

    def sample(ts, cpu, delay, vol):
        return Sample(ts=ts, threads={7: ThreadSample(1, 7, "w", cpu, delay, vol, 0)})

    state.apply_sample(sample(10.0, 1.0, 0.5, 100))
    state.apply_sample(sample(10.5, 1.25, 0.6, 150))
    view = state.threads[7]
    assert abs(view.cpu_share - 0.5) < 1e-9
    assert abs(view.wait_share - 0.2) < 1e-9
    assert abs(view.voluntary_rate - 100) < 1e-9
    state.apply_sample(Sample(ts=11.0))  # the thread is gone
    assert not view.alive and view.cpu_share == 0


def test_the_sampler_reads_only_the_first_threads_of_a_huge_process():
    tids = [str(t) for t in range(5000, 0, -1)]
    chosen = first_threads(tids)
    assert len(chosen) == MAX_THREADS_PER_PROCESS and chosen[0] == "1"
    assert first_threads(["3", "1"]) == ["3", "1"]
