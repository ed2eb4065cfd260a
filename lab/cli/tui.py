"""`conlab` with no command: the Textual dashboard (or a screen named by `args.start`)."""

from __future__ import annotations

import argparse

from lab.cli.common import refuse


def cmd_tui(args: argparse.Namespace) -> int:
    if not 0.5 <= args.refresh_hz <= 20:
        return refuse("--refresh-hz must be a number from 0.5 to 20 (got %s)" % args.refresh_hz)
    try:
        from lab.tui.app import run_app
    except ImportError as exc:  # pragma: no cover - the app ships with the package
        return refuse("the TUI is not available: %s" % exc)
    return run_app(args)
