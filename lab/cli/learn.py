"""`conlab learn [LESSON]`: the TUI opened on the lessons."""

from __future__ import annotations

import argparse

from lab.cli.common import refuse
from lab.cli.tui import cmd_tui
from lab.lessons.tutorial import ids


def cmd_learn(args: argparse.Namespace) -> int:
    """Open the TUI straight on the Lessons screen (or on one lesson)."""
    lesson = getattr(args, "lesson", None)
    if lesson and lesson not in ids():
        return refuse("unknown lesson %r (known: %s)" % (lesson, ", ".join(ids())))
    args.start = "lessons:%s" % lesson if lesson else "lessons"
    return cmd_tui(args)
