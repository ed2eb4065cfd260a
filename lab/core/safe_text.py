"""Text from run records made safe to print on a terminal.

A record may come from another machine (`conlab import`): its strings can hold terminal
escapes (`\\x1b[2J` clears the screen, `\\x1b]0;…\\x07` retitles the window), bidi
overrides or lone surrogates (which cannot even be encoded to UTF-8). Every text output
of records goes through `visible`, which shows such characters as Python-style escapes.
"""

from __future__ import annotations

from typing import Any


def _escape(char: str) -> str:
    code = ord(char)
    if code <= 0xFF:
        return "\\x%02x" % code
    if code <= 0xFFFF:
        return "\\u%04x" % code
    return "\\U%08x" % code


def visible(text: Any, keep_newlines: bool = False) -> str:
    """`text` with every non-printable character (controls, escapes, format characters,
    surrogates) written as an escape; newlines kept only when asked (multi-line blocks)."""
    text = str(text)
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() or (keep_newlines and char == "\n")
                   else _escape(char) for char in text)


def visible_record(value: Any, keep_newlines: bool = False) -> Any:
    """A copy of a record (any JSON value) whose strings and keys all pass `visible`."""
    if isinstance(value, str):
        return visible(value, keep_newlines)
    if isinstance(value, dict):
        return {visible(k): visible_record(v, keep_newlines) for k, v in value.items()}
    if isinstance(value, list):
        return [visible_record(v, keep_newlines) for v in value]
    return value
