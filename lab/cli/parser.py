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
from lab.core.record import flatten
from lab.core.runner import Refused, Run, RunRequest, prepare
from workloads._spec import ParamError

EXIT_OK, EXIT_FAILED, EXIT_REFUSED = 0, 1, 2
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

    doctor = sub.add_parser("doctor", help="what this machine offers the lab")
    doctor.add_argument("--json", action="store_true")
    learn = sub.add_parser("learn", help="the lessons (TUI): predict, run, compare")
    learn.add_argument("lesson", nargs="?", help="open this lesson first, e.g. race")
    from lab.cli import history as history_cli

    history_cli.add_commands(sub)
    from lab.cli import extra as extra_cli

    extra_cli.add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        return dispatch(build_parser().parse_args(argv))
    except BrokenPipeError:  # `conlab run ... | head`: the reader left, nothing to say
        sys.stderr.close()
        return EXIT_OK


def dispatch(args: argparse.Namespace) -> int:
    if args.command == "list":
        return cmd_list(args)
    if args.command == "run":
        return cmd_run(args)
    if args.command == "learn":
        from lab.lessons.tutorial import cmd_learn

        return cmd_learn(args)
    if args.command == "doctor":
        from lab.cli.doctor import cmd_doctor

        return cmd_doctor(args)
    from lab.cli import history as history_cli

    if args.command in history_cli.COMMANDS:
        return history_cli.dispatch(args)
    from lab.cli import extra as extra_cli

    if args.command in extra_cli.COMMANDS:
        return extra_cli.dispatch(args)
    return cmd_tui(args)


def refuse(message: str) -> int:
    print("conlab: %s" % message, file=sys.stderr)
    return EXIT_REFUSED


# list ----------------------------------------------------------------------------------
def cmd_list(args: argparse.Namespace) -> int:
    experiments = catalog.all_experiments()
    if args.json:
        print(json.dumps([e.to_json() for e in experiments], indent=1))
        return EXIT_OK
    for exp in experiments:
        needs = "  (needs %s)" % ", ".join(exp.requires) if exp.requires else ""
        print("%-12s %s%s" % (exp.name, exp.title, needs))
        for p in exp.params:
            print("    -p %s=%-10s %s; %s" % (p.name, _show(p.default), p.help, p.allowed()))
    return EXIT_OK


def _show(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


# run -----------------------------------------------------------------------------------
def cmd_run(args: argparse.Namespace) -> int:
    try:
        experiment = catalog.get(args.experiment)
        given = experiment.parse_assignments(args.param)
        prepared = prepare(RunRequest(experiment.name, given, python=args.run_python or args.python,
                                      timeout_s=args.timeout))
    except catalog.UnknownExperiment as exc:
        return refuse(str(exc))
    except (ParamError, Refused) as exc:
        return refuse(str(exc))

    from lab.core.record import build_record, save_run_record

    signals: list[int] = []
    try:
        state = asyncio.run(_run_until_done(Run(prepared), signals))
    except KeyboardInterrupt:  # before the run's own handlers were in place: nothing started
        return EXIT_INTERRUPTED
    record = build_record(prepared, state)
    save_run_record(record)
    if args.json:
        print(json.dumps(record, indent=1))
    else:
        print(format_record(record))
    if signal.SIGINT in signals:
        print("conlab: interrupted: %s" % ("the run was stopped, its record saved"
                                           if state.status == "stopped" else state.status),
              file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_OK if state.status == "done" else EXIT_FAILED


async def _run_until_done(run: Run, signals: list[int]):
    """Run to the end; SIGTERM/SIGHUP/Ctrl-C stop the child (its record says `stopped`)
    before we leave. The signals received are appended to `signals`."""
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


def format_record(record: dict) -> str:
    interp = record["interpreter"]
    lines = [
        "%s: %s in %.2f s  (%s %s, GIL %s, %d CPUs%s)" % (
            record["experiment"], record["status"], record["duration_s"],
            interp["implementation"], interp["version"],
            "on" if interp["gil_enabled"] else "off", record["machine"]["usable_cpus"],
            ", VM" if record["machine"]["hypervisor"] else ""),
    ]
    if record.get("error"):
        lines.append("error: %s" % record["error"])
    result = record.get("result") or {}
    explanation = result.get("explanation") if isinstance(result, dict) else None
    rows = [(k, v) for k, v in flatten(result, max_items=10) if k != "explanation"]
    if rows:
        width = min(48, max(len(k) for k, _ in rows))
        lines.append("")
        lines += ["  %-*s  %s" % (width, k, _fmt(v)) for k, v in rows]
    if explanation:
        lines += ["", _wrap(explanation)]
    threads = record.get("threads") or []
    if threads:
        lines += ["", "  %-16s %8s %8s %9s %9s %9s" % ("thread", "tid", "cpu s", "wait s",
                                                       "vol", "invol")]
        for t in threads[:40]:
            lines.append("  %-16s %8d %8.3f %9s %9s %9s" % (
                t["name"][:16], t["native_id"], t["cpu_s"], _fmt(t["run_delay_s"]),
                _fmt(t["voluntary"]), _fmt(t["involuntary"])))
        if len(threads) > 40:
            lines.append("  ... %d more threads (see --json)" % (len(threads) - 40))
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return "%.4g" % value
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10000:
        return "{:,}".format(value).replace(",", " ")
    return str(value)


def _wrap(text: str, width: int = 78) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width))


# tui -----------------------------------------------------------------------------------
def cmd_tui(args: argparse.Namespace) -> int:
    if not 0.5 <= args.refresh_hz <= 20:
        return refuse("--refresh-hz must be a number from 0.5 to 20 (got %s)" % args.refresh_hz)
    if args.python:
        from lab.core.interpreters import InterpreterError, probe

        try:
            probe(args.python)
        except InterpreterError as exc:
            return refuse(str(exc))
    try:
        from lab.tui.app import run_app
    except ImportError as exc:  # pragma: no cover - the app ships with the package
        return refuse("the TUI is not available: %s" % exc)
    return run_app(args)


if __name__ == "__main__":
    sys.exit(main())
