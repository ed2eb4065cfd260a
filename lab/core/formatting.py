"""How results read, in the CLI and the TUI alike: one place for flattening records into
rows and for turning their values into text. No Textual, no Rich."""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass, field
from typing import Any, Union


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


def format_record(record: dict, width: int = 80) -> str:
    """A finished run as plain text for pipes, logs and `NO_COLOR` terminals: the same
    blocks the CLI draws with Rich on a colour terminal (lab.cli.show)."""
    return render_plain(record_blocks(record), width)


# Blocks: what a result says, in reading order, before anything draws it. ---------------
@dataclass
class Para:
    """A paragraph; `kind` is one of title, verdict, note, warn, error, text."""

    text: str
    kind: str = "text"


@dataclass
class Table:
    """Rows under named columns; the first column labels the row. `marked` rows stand out
    (compare: the runs differ there). `turn` allows drawing it transposed when the
    columns outnumber the rows and would not fit."""

    title: str
    columns: list[str]
    rows: list[list[str]]
    marked: list[bool] = field(default_factory=list)
    turn: bool = True
    note: str = ""
    pairs: bool = False  # name / value: values read left-aligned


Block = Union[Para, Table]
SKIP_KEYS = ("explanation", "verdict", "load", "json_only")  # said in prose, not in a table
MAX_ROWS = 24  # rows of one table; the rest is in --json
CELL = 26  # widest cell before it is clipped
LIST_CELL = 16


def record_blocks(record: dict) -> list[Block]:
    """Title, error, verdict and the figure it rests on, the machine's load, the result's
    tables, the explanation, then the threads."""
    interp = record.get("interpreter") or {}
    host = record.get("machine") or {}
    cpus = host.get("usable_cpus")
    blocks: list[Block] = [Para("%s: %s in %.2f s  (%s %s, GIL %s, %s%s)" % (
        record.get("experiment", "?"), record.get("status", "?"), record.get("duration_s") or 0,
        interp.get("implementation", "?"), interp.get("version", "?"),
        "on" if interp.get("gil_enabled") else "off",
        count_of(cpus, "CPU") if isinstance(cpus, int) else "? CPUs",
        ", VM" if host.get("hypervisor") else ""), "title")]
    if record.get("error"):
        blocks.append(Para("error: %s" % record["error"], "error"))
    result = record.get("result") if isinstance(record.get("result"), dict) else {}
    blocks += verdict_blocks(result)
    result, left_out = without_json_only(result)
    blocks += result_tables(result)
    if left_out:
        blocks.append(Para("in --json only: %s" % ", ".join(left_out), "note"))
    if isinstance(result.get("explanation"), str) and result["explanation"]:
        blocks.append(Para(result["explanation"]))
    if record.get("threads"):
        blocks.append(threads_table(record["threads"]))
    return blocks


def without_json_only(result: dict) -> tuple[dict, list[str]]:
    """The result without the dotted paths it lists in `json_only` (detail too long for
    text, e.g. every thread at every step), and the paths left out."""
    paths = result.get("json_only")
    if not isinstance(paths, list):
        return result, []
    trimmed, left_out = dict(result), []
    for path in paths:
        keys = str(path).split(".")
        parent = trimmed
        for key in keys[:-1]:
            if not isinstance(parent.get(key), dict):
                parent = None
                break
            parent[key] = dict(parent[key])  # copy on the way down: the record stays whole
            parent = parent[key]
        if parent is not None and keys[-1] in parent:
            del parent[keys[-1]]
            left_out.append(str(path))
    return trimmed, left_out


def verdict_blocks(result: dict) -> list[Para]:
    out: list[Para] = []
    verdict = result.get("verdict")
    if isinstance(verdict, dict) and verdict.get("says"):
        out.append(Para("verdict: %s" % verdict["says"], "verdict"))
        if verdict.get("figure"):
            out.append(Para("rests on %s = %s" % (verdict["figure"],
                                                  fmt_value(verdict.get("value"))), "note"))
        if verdict.get("can_tell") is False:
            out.append(Para("cannot tell on this run%s" % (
                ": %s" % verdict["why"] if verdict.get("why") else ""), "warn"))
    load = result.get("load")
    if isinstance(load, dict) and isinstance(load.get("other_cpu_share"), (int, float)):
        usable = load.get("usable_cpus")
        text = "load: other programs took %s%% of the %s" % (
            fmt_value(round(load["other_cpu_share"] * 100, 1)),
            count_of(usable, "usable CPU") if isinstance(usable, int) else "usable CPUs")
        if load.get("steal_share"):
            text += ", the hypervisor stole %s%%" % fmt_value(round(load["steal_share"] * 100, 1))
        if load.get("busy"):
            text += " (busy: more than %s%%, the figures may be inflated)" % fmt_value(
                round((load.get("threshold") or 0) * 100))
        out.append(Para(text, "warn" if load.get("busy") else "note"))
    return out


def label(key: str) -> str:
    """A result key as a column heading, its unit in brackets: `wall_s` -> `wall (s)`."""
    for suffix, unit in UNITS:
        if key.endswith(suffix) and len(key) > len(suffix):
            return "%s (%s)" % (key[: -len(suffix)].replace("_", " "), unit)
    return key.replace("_", " ")


UNITS = (("_per_s", "/s"), ("_ms", "ms"), ("_us", "µs"), ("_ns", "ns"), ("_s", "s"),
         ("_bytes", "B"), ("_kb", "KiB"), ("_percent", "%"))


def _scalar(value: Any) -> bool:
    return not isinstance(value, (dict, list)) or (
        isinstance(value, list) and all(not isinstance(v, (dict, list)) for v in value))


def _cells(item: dict, prefix: str = "") -> list[tuple[str, Any]]:
    """The scalar figures of one row, nested plain dicts folded in as `split.on_cpu`;
    lists of records (per-worker detail) stay in --json."""
    out = []
    for key, value in item.items():
        name = prefix + str(key)
        if key == "verdict" and not prefix:
            continue  # said as a sentence under the table
        if _scalar(value):
            out.append((name, value))
        elif isinstance(value, dict) and all(_scalar(v) for v in value.values()):
            out += _cells(value, name + ".")
    return out


def _row_name(index: int, item: dict) -> str:
    for key in ("id", "name", "label", "model", "mode"):
        if isinstance(item.get(key), str):
            return item[key]
    return str(index + 1)


def items_table(title: str, items: dict[str, dict]) -> Table:
    """Dicts with (mostly) the same keys: one row per item, one column per figure."""
    rows = {name: dict(_cells(item)) for name, item in items.items()}
    columns: list[str] = []
    for cells in rows.values():
        columns += [k for k in cells if k not in columns]
    names = list(rows)[:MAX_ROWS]
    table = Table(title, [""] + [label(c) for c in columns],
                  [[clip(str(n), CELL)] + [_cell(rows[n].get(c)) for c in columns]
                   for n in names])
    if len(rows) > MAX_ROWS:
        table.note = "... %d more rows (see --json)" % (len(rows) - MAX_ROWS)
    return table


def _cell(value: Any) -> str:
    # A list in a table cell (the rounds of a mode) is detail: its start, the rest in --json.
    return clip(fmt_value(value), LIST_CELL if isinstance(value, list) else CELL)


def result_tables(result: dict, title: str = "") -> list[Block]:
    """The result's shape made into tables: a dict of dicts or a list of dicts is a table
    with one row per item; sibling plain dicts with the same keys share one table; the
    loose figures left make a two-column table of their own, first."""
    loose: list[list[str]] = []
    tables: list[Block] = []
    plain: dict[str, dict] = {}
    for key, value in result.items():
        if key in SKIP_KEYS and not title:
            continue
        path = "%s · %s" % (title, key) if title else str(key)
        if key == "verdict" and isinstance(value, dict) and value.get("says"):
            tables += [Para("%s: %s" % (title, p.text), p.kind) if p.kind == "verdict" else p
                       for p in verdict_blocks({"verdict": value})]
            continue
        if _scalar(value):
            loose.append([label(str(key)), clip(fmt_value(value), 50)])
        elif isinstance(value, dict) and value and all(isinstance(v, dict) for v in value.values()):
            tables += _items_blocks(path, value)
        elif isinstance(value, dict):
            if all(_scalar(v) for v in value.values()):
                plain[path] = value
            else:
                tables += result_tables(value, path)
        elif isinstance(value, list) and all(isinstance(v, dict) for v in value):
            tables += _items_blocks(path, {_row_name(i, v): v for i, v in enumerate(value)})
    by_keys: dict[tuple, list[str]] = {}
    for path, value in plain.items():
        by_keys.setdefault(tuple(value), []).append(path)
    shared = []
    for keys, paths in by_keys.items():
        if len(paths) > 1 and keys:
            shared.append(items_table(title, {p.rsplit(" · ", 1)[-1]: plain[p] for p in paths}))
        else:
            for path in paths:
                name = path.rsplit(" · ", 1)[-1]
                loose += [[label("%s.%s" % (name, k)), clip(fmt_value(v), 50)]
                          for k, v in plain[path].items()]
    head = [Table(title, ["", ""], loose, turn=False, pairs=True)] if loose else []
    return head + shared + tables


def _items_blocks(path: str, items: dict[str, dict]) -> list[Block]:
    """One table of the items' own figures, then what each item nests (its own tables,
    its verdict) under its name."""
    table = items_table(path, items)
    out: list[Block] = [table] if len(table.columns) > 1 else []
    for name, item in list(items.items())[:MAX_ROWS]:
        rest = {k: v for k, v in item.items() if k == "verdict" or not (_scalar(v) or _is_plain(v))}
        if rest:
            out += result_tables(rest, "%s · %s" % (path, name))
    return out


def _is_plain(value: Any) -> bool:
    return isinstance(value, dict) and all(_scalar(v) for v in value.values())


def threads_table(threads: list[dict], limit: int = 40) -> Table:
    rows = grouped_threads(threads)
    table = Table("threads", ["thread", "tid", "cpu s", "wait s", "vol", "invol"],
                  [[t["name"][:20], str(t["native_id"] or "-"), secs(t["cpu_s"]),
                    secs(t["run_delay_s"]), fmt_value(t["voluntary"]),
                    fmt_value(t["involuntary"])] for t in rows[:limit]], turn=False)
    if len(rows) > limit:
        table.note = "... %d more threads (see --json)" % (len(rows) - limit)
    return table


# Fitting and plain drawing. -------------------------------------------------------------
def fit(table: Table, width: int = 80) -> list[Table]:
    """The table as drawn within `width` columns: transposed when it has more columns
    than rows and would not fit, then split into column groups (the label repeated)."""
    if table.pairs:
        room = max(10, width - 6 - column_widths(table.columns, table.rows)[0])
        return [Table(table.title, table.columns, [[r[0], clip(r[1], room)] for r in table.rows],
                      turn=False, note=table.note, pairs=True)]
    if _width(table.columns, table.rows) > width and table.turn and \
            len(table.columns) - 1 > len(table.rows):
        columns = [""] + [row[0] for row in table.rows]
        rows = [[table.columns[c]] + [row[c] for row in table.rows]
                for c in range(1, len(table.columns))]
        table = Table(table.title, columns, rows, turn=False, note=table.note)
    if _width(table.columns, table.rows) <= width or len(table.columns) <= 2:
        return [table]
    parts, start = [], 1
    while start < len(table.columns):
        end = start + 1
        while end < len(table.columns) and _width(
                [table.columns[0]] + table.columns[start:end + 1],
                [[r[0]] + r[start:end + 1] for r in table.rows]) <= width:
            end += 1
        parts.append(Table(table.title if not parts else "", [table.columns[0]] +
                           table.columns[start:end], [[r[0]] + r[start:end] for r in table.rows],
                           list(table.marked), turn=False))
        start = end
    parts[-1].note = table.note
    return parts


def column_widths(columns: list[str], rows: list[list[str]]) -> list[int]:
    return [max([len(columns[i])] + [len(r[i]) for r in rows if i < len(r)])
            for i in range(len(columns))]


def _width(columns: list[str], rows: list[list[str]]) -> int:
    return 2 + sum(w + 2 for w in column_widths(columns, rows))


def render_plain(blocks: list[Block], width: int = 80) -> str:
    lines: list[str] = []
    for block in blocks:
        if isinstance(block, Para):
            if block.kind != "title" or lines:
                if block.kind not in ("note", "warn") or not lines or lines[-1] == "":
                    lines.append("") if lines and lines[-1] != "" else None
            for part in block.text.split("\n"):  # a multi-line text (a traceback) keeps its lines
                lines += textwrap.wrap(part, width - 2) or [""]
            continue
        for part in fit(block, width):
            lines += ["", *table_lines(part)]
    return "\n".join(lines).strip("\n")


def table_lines(table: Table) -> list[str]:
    widths = column_widths(table.columns, table.rows)
    out = [table.title] if table.title else []

    def line(cells: list[str], mark: bool = False) -> str:
        text = [cells[0].ljust(widths[0])] + [
            c.ljust(w) if table.pairs else c.rjust(w) for c, w in zip(cells[1:], widths[1:])]
        return ("* " if mark else "  ") + "  ".join(text).rstrip()

    if any(table.columns[1:]) or table.columns[0]:
        out.append(line(table.columns))
    for index, row in enumerate(table.rows):
        out.append(line(row, index < len(table.marked) and table.marked[index]))
    if table.note:
        out.append("  " + table.note)
    return out


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


def compare_table(rows: list[tuple[str, list[Any]]], title: str = "",
                  width: int = 80) -> Table:
    """The runs side by side as a table block (what format_compare writes as text): one
    column per run, rows where the runs differ marked."""
    count = len(rows[0][1]) if rows else 0
    cell = max(8, (width - 34) // max(1, count) - 2)
    cells = [[clip(label, 30)] + [clip(fmt_value(v), cell) for v in values]
             for label, values in rows if label != "run"]
    runs = next((values for label, values in rows if label == "run"), None)
    heads = ["run %s" % fmt_value(r) for r in runs] if runs else ["" for _ in range(count)]
    marked = [len({repr(v) for v in values}) > 1 for label, values in rows if label != "run"]
    return Table(title, [""] + heads, cells, marked, turn=False,
                 note="highlighted: the runs differ on this row")


def count_of(number: int, noun: str) -> str:
    """`1 CPU`, `2 CPUs`: a count with its noun in the right number."""
    return "%s %s%s" % (fmt_int(number), noun, "" if number == 1 else "s")


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
