"""`conlab`: the TUI by default; `list`, `run`, `doctor` for scripts and SSH sessions.

Exit codes: 0 fine, 1 the run failed, 2 refused input (nothing was started), 130 Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from typing import Any

from lab.core import catalog
from lab.core.runner import Refused, Run, RunRequest, prepare
from lab.core.catalog import ParamError

from lab.cli.common import EXIT_FAILED, EXIT_OK, EXIT_REFUSED, refuse
from lab.cli.tui import cmd_tui
EXIT_INTERRUPTED = 130  # Ctrl-C, as shells report it


class Parser(argparse.ArgumentParser):
    """argparse, but usage errors say one line and exit 2 like every other refusal."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_REFUSED, "conlab: %s\n" % message)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="conlab", description=__doc__.splitlines()[0])
    parser.add_argument("--python", help="interpreter for the children (default: this one)")
    parser.add_argument("--refresh-hz", type=float, default=4.0,
                        help="screen refreshes per second (0.5 to 20, default 4)")
    parser.add_argument("--low-bandwidth", action="store_true",
                        help="for slow links: 1 Hz refresh, fewer rows, no history strips")
    parser.add_argument("--no-mouse", action="store_true", help="do not capture the mouse")
    parser.add_argument("--slow", action="store_true",
                        help="slow motion: every run sized to last several seconds per mode "
                             "(same figures, longer runs)")
    sub = parser.add_subparsers(dest="command", parser_class=Parser)

    listing = sub.add_parser("list", help="the experiments and their parameters")
    listing.add_argument("--json", action="store_true")

    run = sub.add_parser("run", help="run one experiment headless and print its record")
    run.add_argument("experiment")
    run.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE",
                     help="a parameter (repeatable); see `conlab list`")
    run.add_argument("--python", dest="run_python", metavar="PATH",
                     help="interpreter for the child (default: this one)")
    run.add_argument("--timeout", type=float, default=None, metavar="S",
                     help="stop the run after S seconds (default: the experiment's own)")
    run.add_argument("--json", action="store_true", help="print exactly one JSON object")
    run.add_argument("--slow", dest="run_slow", action="store_true",
                     help="slow motion: the experiment's size grown so each mode lasts "
                          "several seconds (what is measured is unchanged)")
    run.add_argument("-q", "--quiet", action="store_true",
                     help="no progress on the terminal while the run goes")
    run.add_argument("--code", action="store_true",
                     help="then the lesson's code, with the lines this run blamed")

    doctor = sub.add_parser("doctor", help="what this machine offers the lab")
    doctor.add_argument("--json", action="store_true")
    from lab.lessons.tutorial import lessons_epilog

    learn = sub.add_parser("learn", help="the lessons (TUI): predict, run, compare",
                           epilog=lessons_epilog(),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    learn.add_argument("lesson", nargs="?", help="open this lesson first (ids below)")
    learn.add_argument("--slow", dest="learn_slow", action="store_true",
                       help="slow motion: each lesson's runs last several seconds per mode")
    from lab.cli import history as history_cli

    history_cli.add_commands(sub)
    from lab.cli import extra as extra_cli

    extra_cli.add_commands(sub)
    from lab.cli import watch as watch_cli

    watch_cli.add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        return dispatch(build_parser().parse_args(argv))
    except BrokenPipeError:  # `conlab run ... | head`: the reader left, nothing to say
        sys.stderr.close()
        return EXIT_OK


def dispatch(args: argparse.Namespace) -> int:
    if args.python is not None and args.command in (None, "learn", "serve"):
        # The TUI and every served session run their children under it: check it once here.
        from lab.core.interpreters import InterpreterError, probe

        try:
            probe(args.python)
        except InterpreterError as exc:
            return refuse(str(exc))
    if args.command == "list":
        return cmd_list(args)
    if args.command == "run":
        return cmd_run(args)
    if args.command == "learn":
        from lab.cli.learn import cmd_learn

        return cmd_learn(args)
    if args.command == "doctor":
        from lab.cli.doctor import cmd_doctor

        return cmd_doctor(args)
    from lab.cli import history as history_cli

    if args.command in history_cli.COMMANDS:
        return history_cli.dispatch(args)
    from lab.cli import watch as watch_cli

    if args.command in watch_cli.COMMANDS:
        return watch_cli.dispatch(args)
    from lab.cli import extra as extra_cli

    if args.command in extra_cli.COMMANDS:
        return extra_cli.dispatch(args)
    return cmd_tui(args)


# list ----------------------------------------------------------------------------------
def cmd_list(args: argparse.Namespace) -> int:
    experiments = catalog.all_experiments()
    if args.json:
        print(json.dumps([e.to_json() for e in experiments], indent=1))
        return EXIT_OK
    from lab.cli.show import print_listing

    print_listing(list_lines(experiments))
    return EXIT_OK


LIST_WIDTH = 80  # an SSH terminal
LIST_MAX_COLUMN = 34  # where descriptions start, at most; longer settings get their own line


def list_lines(experiments: list[catalog.Experiment], width: int = LIST_WIDTH) -> list[str]:
    """The catalogue as `conlab list` prints it: every description in one column,
    wrapped to `width`."""
    import textwrap

    settings = [["    -p %s=%s" % (p.name, _show(p.default)) for p in e.params] for e in experiments]
    longest = max((len(s) for group in settings for s in group), default=0)
    column = min(longest + 2, LIST_MAX_COLUMN)
    name_width = max(len(e.name) for e in experiments) + 2 if experiments else 0
    lines = []
    for exp, group in zip(experiments, settings):
        needs = "  (needs %s)" % ", ".join(exp.requires) if exp.requires else ""
        title = textwrap.wrap(exp.title + needs, width - name_width, break_on_hyphens=False) or [""]
        lines.append(exp.name.ljust(name_width) + title[0])
        lines.extend(" " * name_width + more for more in title[1:])
        for setting, p in zip(group, exp.params):
            text = textwrap.wrap("%s; %s" % (p.help, p.allowed()), width - column,
                                 break_on_hyphens=False)
            if len(setting) + 2 > column:
                lines.append(setting)
            else:
                first = text.pop(0) if text else ""
                lines.append((setting.ljust(column) + first).rstrip())
            lines.extend(" " * column + more for more in text)
    return lines


def _show(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


# run -----------------------------------------------------------------------------------
def cmd_run(args: argparse.Namespace) -> int:
    try:
        experiment = catalog.get(args.experiment)
        given = experiment.parse_assignments(args.param)
        python = args.python if args.run_python is None else args.run_python
        prepared = prepare(RunRequest(experiment.name, given, python=python,
                                      timeout_s=args.timeout,
                                      slow=args.slow or args.run_slow))
    except catalog.UnknownExperiment as exc:
        return refuse(str(exc))
    except (ParamError, Refused) as exc:
        return refuse(str(exc))

    from lab.core.record import build_record, save_run_record, with_timeline

    from lab.cli.show import LiveProgress, print_record, wants_progress

    signals: list[int] = []
    run = Run(prepared)
    progress = None
    if wants_progress(args.json, args.quiet):
        progress = LiveProgress(run.state, {p.name: p.choices for p in experiment.params
                                            if p.choices})
    try:
        state = asyncio.run(_run_until_done(run, signals, progress))
    except KeyboardInterrupt:  # before the run's own handlers were in place: nothing started
        return EXIT_INTERRUPTED
    record = build_record(prepared, state)
    save_run_record(with_timeline(record, state))
    code = _code_listing(record) if args.code else None
    if args.json:
        print(json.dumps(dict(record, code=code) if code else record, indent=1))
    else:
        print_record(record)
        if code:
            from lab.core.source import listing_lines

            print("\n" + "\n".join(listing_lines(code)))
    if signal.SIGINT in signals:
        print("conlab: interrupted: %s" % ("the run was stopped, its record saved"
                                           if state.status == "stopped" else state.status),
              file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_OK if state.status == "done" else EXIT_FAILED


def _code_listing(record: dict[str, Any]) -> dict[str, Any]:
    from lab.cli.code import python_of
    from lab.core import source

    return source.listing(record["experiment"], record.get("result"), python=python_of(record))


async def _run_until_done(run: Run, signals: list[int], progress=None):
    """Run to the end; SIGTERM/SIGHUP/Ctrl-C stop the child (its record says `stopped`)
    before we leave. The signals received are appended to `signals`. `progress`
    (lab.cli.show.LiveProgress) is shown on stderr meanwhile and erased at the end."""
    if progress is None:
        return await _run_signalled(run, signals)
    with progress:
        follow = asyncio.ensure_future(_follow(run, progress))
        try:
            return await _run_signalled(run, signals)
        finally:
            follow.cancel()


async def _follow(run: Run, progress) -> None:
    while True:
        progress.update()
        await asyncio.sleep(0.2)


async def _run_signalled(run: Run, signals: list[int]):
    loop = asyncio.get_running_loop()

    def stop(sig: int) -> None:
        signals.append(sig)
        asyncio.ensure_future(run.stop("stopped"))

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, stop, sig)
    await run.start()
    try:
        return await run.wait()
    except asyncio.CancelledError:
        await run.stop("stopped")
        await run.wait()
        raise


if __name__ == "__main__":
    sys.exit(main())
