"""`conlab compare-interpreters | serve | show-code`: registered on `conlab`'s parser like history_cli."""

from __future__ import annotations

import argparse
from typing import Any

COMMANDS = ("compare-interpreters", "serve", "show-code")


def add_commands(sub: Any) -> None:
    from lab.cli import code, interpreters, serve

    interpreters.add_command(sub)
    serve.add_command(sub)
    code.add_command(sub)


def dispatch(args: argparse.Namespace) -> int:
    if args.command == "show-code":
        from lab.cli.code import cmd_show_code

        return cmd_show_code(args)
    if args.command == "serve":
        from lab.cli.serve import cmd_serve

        return cmd_serve(args)
    from lab.cli.interpreters import cmd_compare_interpreters

    return cmd_compare_interpreters(args)
