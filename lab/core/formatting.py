"""How results read, in the CLI and the TUI alike: one place for flattening records into
rows and for turning their values into text. No Textual, no Rich."""

from __future__ import annotations

import math
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
        rows = grouped_threads(threads)
        for t in rows[:40]:
            lines.append("  %-16s %8s %8.3f %9s %9s %9s" % (
                t["name"][:16], t["native_id"] or "-", t["cpu_s"], secs(t["run_delay_s"]),
                fmt_value(t["voluntary"]), fmt_value(t["involuntary"])))
        if len(rows) > 40:
            lines.append("  ... %d more threads (see --json)" % (len(rows) - 40))
    return "\n".join(lines)


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
        return fmt_float(value)
    if isinstance(value, list):
        text = ", ".join(fmt_value(v) for v in value[:12])
        return text + (" …" if len(value) > 12 else "")
    return str(value)


def fmt_float(value: float) -> str:
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


def secs(value: Any) -> str:
    return "%.3f" % value if isinstance(value, (int, float)) else "-"


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


def short_python(python: str, gil_enabled: Any, free_threaded: Any = None) -> str:
    """A history row's interpreter in at most 12 columns: `3.12.1`, `3.13.5t` (a
    free-threaded build, GIL off), `3.13.5t+GIL` (that build with its GIL forced on).
    Older records lack `free_threaded`: a GIL that was off still marks the build."""
    text = str(python).replace("cpython ", "")
    if free_threaded is None:
        free_threaded = gil_enabled is False
    if free_threaded:
        text += "t+GIL" if gil_enabled else "t"
    return text
