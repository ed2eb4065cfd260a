"""The run record: what `conlab run --json` prints and what history keeps."""

from __future__ import annotations

from typing import Any

from lab.core.machine import machine
from lab.core.record_check import RECORD_VERSION
from lab.core.runner import PreparedRun
from lab.core.sampler import PSUTIL_GAUGES, SCHEDSTAT_GAUGES
from lab.core.state import RunState


def build_record(prepared: PreparedRun, state: RunState) -> dict[str, Any]:
    interp = prepared.interpreter
    hello_python = (state.hello or {}).get("python", {})
    host = machine()
    return {
        "record_version": RECORD_VERSION,
        "experiment": state.experiment,
        "params": state.params,
        "status": state.status,
        "error": state.error,
        "interpreter": {
            "executable": hello_python.get("executable", interp.executable),
            "version": hello_python.get("version", interp.version_text),
            "implementation": hello_python.get("implementation", interp.implementation),
            "gil_enabled": hello_python.get("gil_enabled", interp.gil_enabled),
            # A free-threaded build may still run with its GIL on (PYTHON_GIL=1): both kept.
            "free_threaded": hello_python.get("free_threaded", interp.free_threaded),
        },
        "machine": {
            "cpus": host.cpus,
            "usable_cpus": host.usable_cpus,
            "hypervisor": host.hypervisor,
            "cpu_model": host.cpu_model,
            "kernel": host.kernel,
        },
        "duration_s": round(state.duration_s, 4),
        # Other runs of the lab that ran at some moment during this one (their CPU use is
        # in these figures); empty for a run alone, and always for `conlab run`.
        "overlapped_by": list(state.overlapped_by),
        "sampler": {
            "source": state.sampler_source,
            "interval_s": prepared.request.sample_interval_s,
            "samples": state.samples,
            "gauges": [g.__dict__ for g in _gauges(state)],
        },
        "threads": state.thread_records(),
        "threads_omitted": len(state.omitted_threads),
        "result": state.result,
    }


def _gauges(state: RunState):
    return PSUTIL_GAUGES if state.sampler_source == "psutil" else SCHEDSTAT_GAUGES


def with_timeline(record: dict[str, Any], state: RunState) -> dict[str, Any]:
    """The record as history keeps it: with the run's compacted timeline, for replay."""
    if state.timeline is None or not state.timeline.items:
        return record
    from lab.core import timeline

    return dict(record, timeline=timeline.to_json(state.timeline))


def save_run_record(record: dict[str, Any]) -> None:
    """Keep a finished run in history (TUI and CLI alike); saving never fails a run."""
    try:
        from lab.core import history
    except ImportError:  # history not built into this copy of the lab
        return
    history.save_quietly(record)
