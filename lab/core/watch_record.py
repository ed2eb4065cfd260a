"""The record of a watch: `conlab run`'s shape (experiment "watch"), so history lists it,
`conlab compare` lines it up and lab.core.record_check accepts it."""

from __future__ import annotations

import os
import re
from typing import Any

from lab.core import diagnose as diagnosis
from lab.core.machine import machine
from lab.core.record_check import RECORD_VERSION
from lab.core.sampler import PSUTIL_GAUGES, SCHEDSTAT_GAUGES


def build_watch_record(watch: Any) -> dict[str, Any]:
    state = watch.state
    figures = watch.figures()
    load = watch.load()
    found = diagnosis.diagnose_figures(figures, watch.probe, load)
    processes = _processes(figures)
    root = next((p for p in processes if p["pid"] == state.pid), None)
    host = machine()
    top = found[0] if found else None
    result = {
        # The headline figures first: history's listing shows the first few.
        "kind": top["kind"] if top else "none",
        "cores": root["cores"] if root else 0.0,
        "processes": len(processes),
        "threads_seen": len(state.threads),
        "exit_status": watch.exit_status,
        "ended": watch.ended,
        "verdict": {"says": top["says"] if top else "nothing to diagnose (no samples)",
                    "figure": "kind", "value": top["kind"] if top else None},
        "explanation": "\n".join("%s: %s%s" % (d["process"], d["says"],
                                               " (see `%s`)" % d["lesson"] if d["lesson"] else "")
                                 for d in found),
        "load": load,
        "probe": {"status": watch.probe.status, "events": watch.probe.events},
        "log": watch.log_path,
    }
    return {
        "record_version": RECORD_VERSION,
        "experiment": "watch",
        "params": dict(state.params),
        "status": state.status,
        "error": state.error,
        "interpreter": _interpreter(watch, processes),
        "machine": {"cpus": host.cpus, "usable_cpus": host.usable_cpus,
                    "hypervisor": host.hypervisor, "cpu_model": host.cpu_model,
                    "kernel": host.kernel},
        "duration_s": round(state.duration_s, 4),
        "overlapped_by": [],
        "sampler": {"source": state.sampler_source, "interval_s": 0.25,
                    "samples": state.samples,
                    "gauges": [g.__dict__ for g in (PSUTIL_GAUGES if state.sampler_source ==
                                                    "psutil" else SCHEDSTAT_GAUGES)]},
        "threads": state.thread_records(),
        "threads_omitted": len(state.omitted_threads),
        "result": result,
        "command": list(watch.argv) if watch.mode == "command" else None,
        "attached_pid": watch.target_pid,
        "exit_status": watch.exit_status,
        "ended": watch.ended,
        "processes": processes,
        "diagnosis": found,
        "thresholds": dict(diagnosis.THRESHOLDS),  # what each kind of diagnosis needs
    }


def _processes(figures: dict) -> list[dict[str, Any]]:
    by_pid: dict[int, list] = {}
    for thread in figures["threads"]:
        by_pid.setdefault(thread["pid"], []).append(thread)
    rows = []
    for pid, facts in sorted(figures["processes"].items()):
        row = {k: v for k, v in facts.items() if k != "python"}
        row["python"] = facts.get("python")
        row.update(diagnosis.process_figures(by_pid.get(pid, []), figures["wall_s"],
                                             facts.get("process_cpu_s")))
        rows.append(row)
    return rows


def _interpreter(watch: Any, processes: list[dict]) -> dict[str, Any]:
    """The root process's Python (probe, else its build), or `native` for other programs."""
    root = next((p for p in processes if p["pid"] == watch.state.pid), None)
    python = (root or {}).get("python")
    hello = watch.probe.hello.get(watch.state.pid) or {}
    if hello:
        version = re.match(r"\d+\.\d+(\.\d+)?", str(hello.get("version", "")))
        return {"executable": watch.python,
                "version": version.group(0) if version else "unknown",
                "implementation": str(hello.get("implementation") or "cpython"),
                "gil_enabled": hello.get("gil_enabled"),
                "free_threaded": hello.get("free_threaded")}
    if python and python.get("version"):
        return {"executable": python.get("executable"), "version": python["version"],
                "implementation": python.get("implementation", "cpython"),
                "gil_enabled": python.get("gil_enabled"),
                "free_threaded": python.get("free_threaded")}
    exe = watch.argv[0] if watch.argv else None
    return {"executable": exe and os.path.basename(exe), "version": "unknown",
            "implementation": "python" if python else "native",
            "gil_enabled": None, "free_threaded": None}
