"""How results read, in the CLI and the TUI alike: one place for flattening records into
rows and for turning their values into text. No Textual, no Rich."""

from __future__ import annotations

import textwrap
from typing import Any


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


def format_record(record: dict) -> str:
    interp = record["interpreter"]
    lines = [
        "%s: %s in %.2f s  (%s %s, GIL %s, %d CPUs%s)" % (
            record["experiment"], record["status"], record["duration_s"],
            interp["implementation"], interp["version"],
            "on" if interp["gil_enabled"] else "off", record["machine"]["usable_cpus"],
            ", VM" if record["machine"]["hypervisor"] else ""),
    ]
    if record.get("error"):
        lines.append("error: %s" % record["error"])
    result = record.get("result") or {}
    explanation = result.get("explanation") if isinstance(result, dict) else None
    rows = [(k, v) for k, v in flatten(result, max_items=10) if k != "explanation"]
    if rows:
        width = min(48, max(len(k) for k, _ in rows))
        lines.append("")
        lines += ["  %-*s  %s" % (width, k, fmt_value(v)) for k, v in rows]
    if explanation:
        lines += ["", wrap(explanation)]
    threads = record.get("threads") or []
    if threads:
        lines += ["", "  %-16s %8s %8s %9s %9s %9s" % ("thread", "tid", "cpu s", "wait s",
                                                       "vol", "invol")]
        for t in threads[:40]:
            lines.append("  %-16s %8d %8.3f %9s %9s %9s" % (
                t["name"][:16], t["native_id"], t["cpu_s"], fmt_value(t["run_delay_s"]),
                fmt_value(t["voluntary"]), fmt_value(t["involuntary"])))
        if len(threads) > 40:
            lines.append("  ... %d more threads (see --json)" % (len(threads) - 40))
    return "\n".join(lines)


def fmt_value(value: Any) -> str:
    """One value of a result as people read it (None is '-')."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return "%.4g" % value
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10000:
        return "{:,}".format(value).replace(",", " ")
    return str(value)


def wrap(text: str, width: int = 78) -> str:
    return "\n".join(textwrap.wrap(text, width))


def format_compare(rows: list[tuple[str, list[Any]]], width: int = 79) -> str:
    """Label column, then one column per run; rows whose values differ are marked `*`."""
    cells = [[fmt_value(v) for v in values] for _label, values in rows]
    runs = len(rows[0][1])
    col = max(8, max(len(c) for row in cells for c in row))
    col = min(col, max(8, (width - 24) // runs - 2))
    label_width = max(10, min(max(len(label) for label, _ in rows) + 2,
                              width - runs * (col + 2)))
    lines = []
    for (label, values), row in zip(rows, cells):
        differs = len({repr(v) for v in values}) > 1 and label != "run"
        mark = "*" if differs else " "
        shown = label if len(label) <= label_width - 2 else "…" + label[-(label_width - 3):]
        lines.append("%s %-*s%s" % (mark, label_width - 2, shown,
                                    "".join("  %*s" % (col, clip(c, col)) for c in row)))
        if label == "duration_s":
            lines.append("")
    lines.append("")
    lines.append("* the runs differ on this row")
    return "\n".join(lines)


def clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
