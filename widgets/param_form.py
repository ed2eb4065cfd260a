"""A form driven by an experiment's parameter specs (`workloads._spec.Param`).

Every field is parsed with the very same `Param.parse` the CLI uses, so the form and
`conlab run -p` can never disagree. A bad value is shown right under its field with the
allowed range (the ParamError's own message) and nothing starts.
"""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Input, Label, Select, Static

from lab.core.catalog import Param, ParamError


def _text(param: Param, value: Any) -> str:
    if param.kind == "bool":
        return "true" if value else "false"
    if param.kind == "int" and isinstance(value, int):
        return str(value)
    return str(value)


FOCUS_MARK = "▶"  # before the focused field's name: focus read without colour


class ParamForm(Vertical):
    """One row per parameter: name, field, help with the allowed values, inline error.

    The focused field's row is marked `▶` with its name in bold (16 colours and NO_COLOR
    read it), and the help line below the form follows it.
    """

    DEFAULT_CSS = """
    ParamForm {
        height: auto;
    }
    ParamForm .row {
        height: 1;
    }
    ParamForm .mark {
        width: 2;
    }
    ParamForm .name {
        width: 19;
    }
    ParamForm .row.-focused .name {
        text-style: bold;
    }
    ParamForm Input, ParamForm Select {
        width: 1fr;
    }
    ParamForm #hint {
        color: $text-muted;
        margin-top: 1;
        height: auto;
    }
    ParamForm .error {
        display: none;
        text-style: bold;
        color: $error;
        padding-left: 2;
    }
    ParamForm .error.-shown {
        display: block;
    }
    """

    class Changed(Message):
        """A field changed (the command line follows it); only the newest matters."""

        def __init__(self, form: "ParamForm") -> None:
            super().__init__()
            self.form = form

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, ParamForm.Changed)

    class Submitted(Message):
        """Enter pressed in a field: the user wants to run."""

    def __init__(self, params: tuple[Param, ...], values: dict[str, Any] | None = None,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.params = params
        self.values = dict(values or {})

    def compose(self) -> ComposeResult:
        # Every name gets its whole width and a space before its field.
        name_w = max([len(p.name) + 1 for p in self.params] + [19])
        for param in self.params:
            value = self.values.get(param.name, param.default)
            with Horizontal(classes="row", id="row-" + param.name):
                yield Label(" ", classes="mark")
                label = Label(param.name, classes="name")
                label.styles.width = name_w
                yield label
                yield self._field(param, value)
            yield Static("", classes="error", id="error-" + param.name)
        # The focused field's help and allowed values: one line, not one per field.
        yield Static(self.hint(self.params[0]) if self.params else "", id="hint")

    @staticmethod
    def hint(param: Param) -> str:
        return "%s: %s; %s" % (param.name, param.help, param.allowed())

    def _field(self, param: Param, value: Any):
        field_id = "field-" + param.name
        if param.kind in ("choice", "bool"):
            choices = param.choices if param.kind == "choice" else ("true", "false")
            return Select([(c, c) for c in choices], value=_text(param, value),
                          allow_blank=False, compact=True, id=field_id)
        return Input(_text(param, value), compact=True, id=field_id, select_on_focus=False)

    # Reading ---------------------------------------------------------------------------
    def raw(self) -> dict[str, str]:
        """The fields as typed, before parsing."""
        values = {}
        for param in self.params:
            field = self.query_one("#field-" + param.name)
            values[param.name] = str(field.value)
        return values

    def parse(self) -> tuple[dict[str, Any], dict[str, str]]:
        """(typed values, errors by parameter name) - shows nothing."""
        values, errors = {}, {}
        for param in self.params:
            text = self.raw()[param.name]
            try:
                values[param.name] = param.parse(text)
            except ParamError as exc:
                errors[param.name] = str(exc)
        return values, errors

    def read(self) -> dict[str, Any] | None:
        """Typed values, or None with every bad field's message shown beside it."""
        values, errors = self.parse()
        self.clear_errors()
        for name, message in errors.items():
            self.show_error(name, message)
        return None if errors else values

    def changed_from_defaults(self) -> list[str] | None:
        """`name=value` for each field that differs from its default (None if one is bad)."""
        values, errors = self.parse()
        if errors:
            return None
        return ["%s=%s" % (p.name, _text(p, values[p.name])) for p in self.params
                if values[p.name] != p.default]

    # Errors ----------------------------------------------------------------------------
    def show_error(self, name: str, message: str) -> None:
        try:
            error = self.query_one("#error-" + name, Static)
        except Exception:
            return
        error.update("✗ " + message)
        error.add_class("-shown")

    def clear_errors(self) -> None:
        for error in self.query(".error"):
            error.update("")
            error.remove_class("-shown")

    @property
    def errors_shown(self) -> list[str]:
        return [e.id.removeprefix("error-") for e in self.query(".error.-shown") if e.id]

    # Events ----------------------------------------------------------------------------
    def param_of(self, widget) -> Param | None:
        """The parameter whose field holds `widget` (a Select's parts included)."""
        names = {"field-" + p.name: p for p in self.params}
        node = widget
        while node is not None and node is not self:
            if node.id in names:
                return names[node.id]
            node = node.parent
        return None

    @property
    def focused_param(self) -> str | None:
        marked = [r.id.removeprefix("row-") for r in self.query(".row.-focused") if r.id]
        return marked[0] if marked else None

    def _mark(self, param: Param | None) -> None:
        for row in self.query(".row"):
            focused = param is not None and row.id == "row-" + param.name
            row.set_class(focused, "-focused")
            row.query_one(".mark", Label).update(FOCUS_MARK if focused else " ")

    def on_descendant_focus(self, event) -> None:
        param = self.param_of(event.widget)
        if param is not None:
            self._mark(param)
            self.query_one("#hint", Static).update(self.hint(param))

    def on_descendant_blur(self, event) -> None:
        # Focus left the form (or moves to another field, which marks itself next).
        if self.param_of(self.screen.focused) is None:
            self._mark(None)

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.post_message(self.Changed(self))

    def on_select_changed(self, event: Select.Changed) -> None:
        event.stop()
        self.post_message(self.Changed(self))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.post_message(self.Submitted())
