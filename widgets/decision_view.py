"""Live view for decision: jobs per second of each model for each workload row, filled in
as each model finishes, the winners marked `*` and each row marked against the article's
pick (`✓` agrees, `≠` disagrees, `?` can't tell: other programs took the CPUs). Glyphs carry the meaning; bold only repeats it.

Compact (a dashboard pane, ~38x9): one line per row, short model names, a legend.
Full: the article's pick beside each row, the ceiling for the mix, and the explanation.
"""

from __future__ import annotations

import textwrap

from rich.text import Text

from lab.core.state import RunState
from widgets.threads_view import LinesView, fit, fmt_rate

MODELS = ("sequential", "threads", "processes", "asyncio", "asyncio+pool")
SHORT = {"sequential": "seq", "threads": "thr", "processes": "proc", "asyncio": "aio",
         "asyncio+pool": "a+pl"}


NARROW_CELL = 5  # a figure of at most 4 cells and its `*`


def short_rate(value: float) -> str:
    """At most 4 cells: 987, 1.2k, 12k, 123k, 1.2M."""
    if value < 10_000:
        return fmt_rate(value)
    if value < 999_500:
        return "%dk" % round(value / 1000)
    return "%.1fM" % (value / 1e6) if value < 9.95e6 else "%dM" % round(value / 1e6)


class DecisionView(LinesView):
    EXPERIMENTS = ("decision",)
    FROM_RECORD = True  # a finished run draws fully from its result (report screenshots)

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.reset()

    def reset(self) -> None:
        super().reset()
        self.rows: dict[str, dict] = {}  # id -> label, cpu_percent, models {name: jobs/s}, ...
        self.order: list[str] = []
        self.running: tuple[str, str] | None = None  # (row id, model) measuring now

    # Events -------------------------------------------------------------------------------
    def fold(self, events: list[dict], state: RunState) -> None:
        for event in events:
            kind, phase = event.get("ev"), event.get("state")
            if kind == "row" and phase == "start":
                rid = event.get("id", "?")
                if rid not in self.order:
                    self.order.append(rid)
                self.rows[rid] = {key: event.get(key) for key in (
                    "label", "cpu_percent", "concurrency", "article_pick", "article_models")}
                self.rows[rid]["models"] = {}
            elif kind == "row" and phase == "end":
                row = self.rows.setdefault(event.get("id", "?"), {"models": {}})
                row.update(winners=event.get("winners") or [], agrees=event.get("agrees"),
                           can_tell=event.get("can_tell", True),
                           ideal=event.get("ideal_jobs_per_s"))
            elif kind == "model" and phase == "start":
                self.running = (event.get("row", "?"), event.get("model", "?"))
            elif kind == "model" and phase == "end":
                row = self.rows.setdefault(event.get("row", "?"), {"models": {}})
                row["models"][event.get("model", "?")] = float(event.get("jobs_per_s", 0.0))
                self.running = None
        result = state.result if isinstance(state.result, dict) else {}
        if isinstance(result.get("rows"), list):  # the final record is the authority
            self._take_result(result["rows"])

    def _take_result(self, rows: list) -> None:
        for row in rows:
            if not isinstance(row, dict):
                continue
            rid = row.get("id", "?")
            if rid not in self.order:
                self.order.append(rid)
            self.rows[rid] = {
                "label": row.get("label"), "cpu_percent": row.get("cpu_percent"),
                "concurrency": row.get("concurrency"), "article_pick": row.get("article_pick"),
                "article_models": row.get("article_models"),
                "models": {m: float(v.get("jobs_per_s", 0.0))
                           for m, v in (row.get("models") or {}).items()},
                "winners": row.get("winners") or [], "agrees": row.get("agrees"),
                "can_tell": (row.get("verdict") or {}).get("can_tell", True),
                "ideal": row.get("ideal_jobs_per_s"),
            }
        self.running = None

    # Drawing ------------------------------------------------------------------------------
    def lines(self, state: RunState, width: int, rows: int) -> list[Text]:
        if self.compact or width < 60:
            # Five 5-cell models and the ✓/≠ mark: 34 columns hold it with 8 for the label.
            label_w = max(4, min(8, width - len(MODELS) * NARROW_CELL - 1))
            out = self.table(state, width, label_w=label_w, cell_w=NARROW_CELL)
            return out[:rows]
        out = self.table(state, width, label_w=12, cell_w=7, article=True)
        room = rows - len(out) - 1
        result = state.result if isinstance(state.result, dict) else {}
        explanations = str(result.get("explanation") or "").split("\n")  # one line per row
        if any(explanations) and room > 1 and self.explains:
            out.append(Text(""))
            for sentence in filter(None, explanations):
                wrapped = textwrap.wrap(sentence, max(20, width))
                if len(wrapped) > room:
                    break
                out += [Text(line, style="bold" if "DISAGREES" in sentence else "")
                        for line in wrapped]
                room -= len(wrapped)
        return out

    def table(self, state: RunState, width: int, label_w: int, cell_w: int,
              article: bool = False) -> list[Text]:
        head = Text("mix".ljust(label_w), style="bold")
        for model in MODELS:
            head.append(SHORT[model].rjust(cell_w - 1) + " ", style="bold")
        if article:
            head.append(" article", style="bold")
        out = [head]
        if not self.order:
            out.append(Text("waiting for the first row…" if state.running else "no rows",
                            style="dim"))
        for rid in self.order:  # the article's pick is last: it gives way first
            out.append(fit(self.row_line(rid, label_w, cell_w, article), width))
        out.append(self.status_line(state, width))
        out.append(Text("jobs/s · * won · ✓/≠/? vs article"[:width], style="dim"))
        return out

    def row_line(self, rid: str, label_w: int, cell_w: int, article: bool) -> Text:
        row = self.rows.get(rid, {})
        line = Text(rid[:label_w].ljust(label_w))
        winners = row.get("winners") or []
        for model in MODELS:
            value = row.get("models", {}).get(model)
            if value is None:
                mark = "…" if self.running == (rid, model) else "·"
                line.append(mark.rjust(cell_w - 1) + " ", style="dim")
                continue
            won = model in winners
            figure = fmt_rate(value) if cell_w > NARROW_CELL else short_rate(value)
            if len(figure) > cell_w - 1:  # a figure larger than this run's column allows
                figure = short_rate(value)
            line.append(figure.rjust(cell_w - 1) + ("*" if won else " "),
                        style="bold" if won else "")
        verdict = {True: "✓", False: "≠"}.get(row.get("agrees"), " ")
        if row.get("can_tell") is False:  # measured while other programs took the CPUs
            verdict = "?"
        if article:
            line.append(" %s %s" % (verdict, row.get("article_pick") or ""),
                        style="bold" if verdict == "≠" else "")
        else:
            line.append(verdict, style="bold" if verdict == "≠" else "")
        return line

    def status_line(self, state: RunState, width: int) -> Text:
        if self.running is not None:
            rid, model = self.running
            row = self.rows.get(rid, {})
            text = "▶ %s: %s (%s%% cpu, %s in flight)" % (
                rid, model, row.get("cpu_percent", "?"), row.get("concurrency", "?"))
        elif state.error:
            text = "✗ " + state.error
        elif state.running:
            text = "▶ starting…"
        else:
            done = [r for r in self.rows.values() if r.get("agrees") is not None]
            unsure = sum(1 for r in done if r.get("can_tell") is False)
            differ = sum(1 for r in done if r.get("agrees") is False) - unsure
            text = "✓ %d rows: %d agree, %d ≠ article" % (len(done), len(done) - differ - unsure,
                                                         differ)
            if unsure:
                text += ", %d ? busy" % unsure
        return Text(text[:width])


VIEW = DecisionView
