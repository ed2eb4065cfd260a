"""Counts in sentences: "once", "twice", "3 times", never "1 times"."""

from __future__ import annotations


def times(n, shown=None):
    """How often something happened; `shown` is n already formatted (e.g. "12 345")."""
    if n == 1:
        return "once"
    if n == 2:
        return "twice"
    return "%s times" % (shown if shown is not None else n)


def grouped(n):
    """12 345: an integer's digits in threes, with plain spaces (the lab's one style)."""
    if isinstance(n, float):
        n = int(round(n))
    return "{:,}".format(n).replace(",", " ")
