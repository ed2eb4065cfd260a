"""The result record of a finished run as a two-column table (name, measured value)."""

from __future__ import annotations

from typing import Any, Iterator

from textual.widgets import DataTable

from lab.core.formatting import flatten, fmt_value, without_json_only

SKIP = {"explanation", "bytecode", "json_only"}  # prose, and race's listings (the code panel shows them)
MAX_ROWS = 200


def result_rows(result: Any) -> Iterator[tuple[str, Any]]:
    """The result's leaves, without the top-level prose (shown on its own)."""
    if isinstance(result, dict):
        result, _ = without_json_only(result)  # e.g. interleave's every-step trace
    for key, value in flatten(result, max_items=20):
        if key.split(".", 1)[0].split("[", 1)[0] not in SKIP:
            yield key, value


def show_value(value: Any) -> str:
    return fmt_value(value)


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
            rows = [(name, show_value(value)) for name, value in list(result_rows(result))[:MAX_ROWS]]
        # Columns sized from the rows we have, not left to auto-size later: the table
        # looks the same on the first frame as on every one after.
        key_w = max([len(k) for k, _ in rows] + [len("result")])
        value_w = max([len(v) for _, v in rows] + [len("value")])
        self.clear(columns=True)
        self.add_column("result", width=key_w)
        self.add_column("value", width=value_w)
        for name, value in rows:
            self.add_row(name, value)
