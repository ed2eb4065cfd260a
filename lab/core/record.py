"""The run record: what `conlab run --json` prints and what history keeps."""

from __future__ import annotations

from typing import Any

from lab.core.machine import machine
from lab.core.runner import PreparedRun
from lab.core.sampler import PSUTIL_GAUGES, SCHEDSTAT_GAUGES
from lab.core.state import RunState

RECORD_VERSION = 1


def flatten(value: Any, prefix: str = "", max_items: int | None = None):
    """Leaves of a nested result as ("modes.threads.wall_s", 1.2); lists of records are
    walked item by item (the first `max_items`), lists of numbers stay whole."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from flatten(item, "%s.%s" % (prefix, key) if prefix else str(key), max_items)
    elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        for index, item in enumerate(value[:max_items]):
            yield from flatten(item, "%s[%d]" % (prefix, index), max_items)
    else:
        yield prefix, value


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
        },
        "machine": {
            "cpus": host.cpus,
            "usable_cpus": host.usable_cpus,
            "hypervisor": host.hypervisor,
            "cpu_model": host.cpu_model,
            "kernel": host.kernel,
        },
        "duration_s": round(state.duration_s, 4),
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


def save_run_record(record: dict[str, Any]) -> None:
    """Keep a finished run in history (TUI and CLI alike); saving never fails a run."""
    try:
        from lab.core import history
    except ImportError:  # history not built into this copy of the lab
        return
    history.save_quietly(record)
