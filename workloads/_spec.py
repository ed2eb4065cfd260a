"""Typed experiment parameters, shared by the child and the lab.

Standard library only and Python 3.9 compatible: the lab validates with this
code before starting anything, and the child validates again with the very
same rules, so the two can never disagree about what is allowed.
"""

from __future__ import annotations

import math
import re

# What a person may type: ASCII digits only (int() would also take "٤" and "1_0"), an
# optional sign, and for numbers a decimal point and an exponent. Integers may group
# thousands with "_", as the ranges in refusals and forms are written (100_000).
INT_TEXT = re.compile(r"[+-]?([0-9]+|[0-9]{1,3}(_[0-9]{3})+)\Z")
FLOAT_TEXT = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?\Z")
SHOWN_CHARS = 20  # of a refused value, echoed in the refusal


def cut(value, width=SHOWN_CHARS):
    """A value as a refusal shows it: its repr, at most `width` characters and an ellipsis."""
    try:
        text = value if isinstance(value, str) else repr(value)
    except ValueError:  # an integer too long to print
        return "an integer of about %d digits" % int(value.bit_length() * 0.30103)
    if len(text) > width:
        text = text[:width] + "\u2026"
    return repr(text) if isinstance(value, str) else text


class ParamError(ValueError):
    """A parameter value that is refused; the message names the parameter and its range."""

    def __init__(self, name, message):
        super().__init__(message)
        self.name = name


class Param:
    """One typed parameter: int, float, choice or bool, with a default and bounds."""

    KINDS = ("int", "float", "choice", "bool", "text")

    def __init__(self, name, kind, default, help, minimum=None, maximum=None, choices=None,
                 pattern=None, described=None):
        if kind not in self.KINDS:
            raise ValueError("unknown parameter kind %r" % kind)
        self.name = name
        self.kind = kind
        self.default = default
        self.help = help
        self.minimum = minimum
        self.maximum = maximum
        self.choices = tuple(choices) if choices else None
        self.pattern = re.compile(pattern) if pattern else None
        self.described = described

    # Constructors that read like the catalogue -------------------------------------------
    @classmethod
    def int(cls, name, default, minimum, maximum, help):
        return cls(name, "int", default, help, minimum, maximum)

    @classmethod
    def float(cls, name, default, minimum, maximum, help):
        return cls(name, "float", default, help, minimum, maximum)

    @classmethod
    def choice(cls, name, default, choices, help):
        return cls(name, "choice", default, help, choices=choices)

    @classmethod
    def bool(cls, name, default, help):
        return cls(name, "bool", default, help)

    @classmethod
    def text(cls, name, default, pattern, max_chars, described, help):
        """A short string matching `pattern` (a full match), at most `max_chars` long."""
        return cls(name, "text", default, help, 0, max_chars, pattern=pattern, described=described)

    # Description ------------------------------------------------------------------------
    def allowed(self):
        """The allowed values, in words: used in every refusal."""
        if self.kind == "int":
            return "an integer from %s to %s" % (_num(self.minimum), _num(self.maximum))
        if self.kind == "float":
            return "a number from %s to %s" % (_num(self.minimum), _num(self.maximum))
        if self.kind == "choice":
            return "one of " + ", ".join(self.choices)
        if self.kind == "text":
            return "%s, at most %d characters" % (self.described, self.maximum)
        return "true or false"

    def to_json(self):
        return {
            "name": self.name,
            "kind": self.kind,
            "default": self.default,
            "min": self.minimum,
            "max": self.maximum,
            "choices": list(self.choices) if self.choices else None,
            "help": self.help,
            "allowed": self.allowed(),
        }

    # Conversion -------------------------------------------------------------------------
    def _refuse(self, value):
        return ParamError(
            self.name, "parameter %r must be %s (got %s)" % (self.name, self.allowed(), cut(value))
        )

    def parse(self, text):
        """Convert a value typed by a person (CLI `-p name=value`, a form field)."""
        text = str(text).strip()
        if self.kind == "int":
            try:
                if not INT_TEXT.match(text):
                    raise ValueError(text)
                value = int(text.replace("_", ""))
            except ValueError:  # also past Python's limit on digits converted
                raise self._refuse(text) from None
        elif self.kind == "float":
            if not FLOAT_TEXT.match(text):
                raise self._refuse(text)
            value = float(text)
        elif self.kind == "bool":
            lowered = text.lower()
            if lowered in ("1", "true", "yes", "on"):
                value = True
            elif lowered in ("0", "false", "no", "off"):
                value = False
            else:
                raise self._refuse(text)
        else:
            value = text
        return self.check(value)

    def check(self, value):
        """Validate an already typed value (JSON); returns it, or raises ParamError."""
        if self.kind == "int":
            if isinstance(value, bool) or not isinstance(value, int):
                if isinstance(value, float) and value.is_integer():
                    value = int(value)
                else:
                    raise self._refuse(value)
        elif self.kind == "float":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise self._refuse(value)
            value = float(value)
            if math.isnan(value) or math.isinf(value):
                raise self._refuse(value)
        elif self.kind == "bool":
            if not isinstance(value, bool):
                raise self._refuse(value)
            return value
        elif self.kind == "text":
            if (not isinstance(value, str) or len(value) > self.maximum
                    or not self.pattern.fullmatch(value)):
                raise self._refuse(value)
            return value
        else:
            if value not in self.choices:
                raise self._refuse(value)
            return value
        if self.minimum is not None and value < self.minimum:
            raise self._refuse(value)
        if self.maximum is not None and value > self.maximum:
            raise self._refuse(value)
        return value


def _num(value):
    if isinstance(value, int) and abs(value) >= 10000:
        return "{:_}".format(value)
    return str(value)


def resolve(params_spec, given):
    """Apply defaults and validate every given value; unknown names are refused."""
    by_name = dict((p.name, p) for p in params_spec)
    for name in given:
        if name not in by_name:
            known = ", ".join(sorted(by_name)) or "none"
            raise ParamError(name, "unknown parameter %r (known: %s)" % (name, known))
    resolved = {}
    for param in params_spec:
        if param.name in given:
            resolved[param.name] = param.check(given[param.name])
        else:
            resolved[param.name] = param.default
    return resolved
