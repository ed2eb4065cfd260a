"""The run record: what `conlab run --json` prints and what history keeps."""

from __future__ import annotations

import math
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


def grouped_threads(threads: list[dict], alike: int = 4) -> list[dict]:
    """Thread records with every name held by `alike` or more threads folded into one row
    ("unit ×500": summed figures, no tid), so hundreds of spawned units read as one line."""
    counts: dict[str, int] = {}
    for t in threads:
        counts[t.get("name", "?")] = counts.get(t.get("name", "?"), 0) + 1
    out: list[dict] = []
    groups: dict[str, dict] = {}
    for t in threads:
        name = t.get("name", "?")
        if counts[name] < alike:
            out.append(t)
            continue
        group = groups.get(name)
        if group is None:
            group = groups[name] = {"name": "%s ×%d" % (name, counts[name]), "native_id": None,
                                    "cpu_s": 0.0, "run_delay_s": 0.0, "voluntary": 0,
                                    "involuntary": 0}
            out.append(group)
        for key in ("cpu_s", "run_delay_s", "voluntary", "involuntary"):
            if isinstance(t.get(key), (int, float)):
                group[key] += t[key]
    return out


def fmt_int(value: int | float | None) -> str:
    """12 345 678: digits grouped by threes with plain spaces (the README's style)."""
    if value is None:
        return "-"
    return "{:,}".format(int(value)).replace(",", " ")


def fmt_value(value: Any) -> str:
    """One measured value as people read it: grouped integers, about four significant
    digits, no exponent for ordinary magnitudes (every table, CLI and TUI, uses this)."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return fmt_int(value)
    if isinstance(value, float):
        return _fmt_float(value)
    if isinstance(value, list):
        text = ", ".join(fmt_value(v) for v in value[:12])
        return text + (" …" if len(value) > 12 else "")
    return str(value)


def _fmt_float(value: float) -> str:
    if not math.isfinite(value):
        return str(value)
    size = abs(value)
    if size >= 1e15 or (0 < size < 1e-6):
        return "%.3g" % value  # beyond ordinary magnitudes an exponent is the readable form
    if round(size, max(0, 3 - math.floor(math.log10(size or 1)))) >= 1000:
        return fmt_int(round(value))
    if size == 0:
        return "0"
    decimals = max(0, 3 - math.floor(math.log10(size)))  # four significant digits
    text = "%.*f" % (decimals, value)
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


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
