"""The result record of a finished run as a two-column table (name, measured value)."""

from __future__ import annotations

from typing import Any, Iterator

from textual.widgets import DataTable

from widgets.threads_view import fmt_int

SKIP = {"explanation"}
MAX_ROWS = 200


def flatten(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """`{"modes": {"threads": {"wall_s": 1.2}}}` -> ("modes.threads.wall_s", 1.2)."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not prefix and key in SKIP:
                continue
            yield from flatten(item, "%s.%s" % (prefix, key) if prefix else str(key))
    elif isinstance(value, list) and value and isinstance(value[0], dict):
        for index, item in enumerate(value[:20]):
            yield from flatten(item, "%s[%d]" % (prefix, index))
    else:
        yield prefix, value


def show_value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return "%.4g" % value
    if isinstance(value, int):
        return fmt_int(value)
    if isinstance(value, list):
        text = ", ".join(show_value(v) for v in value[:12])
        return text + (" …" if len(value) > 12 else "")
    return str(value)


class ResultTable(DataTable):
    """Call `show(result)` when a run ends; `show(None)` clears it."""

    DEFAULT_CSS = """
    ResultTable {
        height: auto;
        max-height: 24;
    }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(cursor_type="row", zebra_stripes=False, show_cursor=False, **kwargs)
        self._shown: Any = object()
        self.add_columns("result", "value")  # here, not on mount: show() may come first

    def show(self, result: dict | None) -> None:
        if result is self._shown:
            return
        self._shown = result
        rows = []
        if isinstance(result, dict):
            rows = [(name, show_value(value)) for name, value in list(flatten(result))[:MAX_ROWS]]
        # Columns sized from the rows we have, not left to auto-size later: the table
        # looks the same on the first frame as on every one after.
        key_w = max([len(k) for k, _ in rows] + [len("result")])
        value_w = max([len(v) for _, v in rows] + [len("value")])
        self.clear(columns=True)
        self.add_column("result", width=key_w)
        self.add_column("value", width=value_w)
        for name, value in rows:
            self.add_row(name, value)
