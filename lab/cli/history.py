"""`conlab history | compare | export | import | report`: the run history from a shell.

Exit codes as elsewhere: 0 fine, 1 history unusable (the reason is printed; also a run
asked for by id whose stored record is damaged), 2 refused input (an unknown run id, a
file that is not an export or holds an unsound record).

Text from records is printed through `visible` (control characters as escapes): an
imported record must not drive the terminal. `--json` output is escaped by JSON itself.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from lab.core import history
from lab.core.formatting import Table, compare_table, format_compare
from lab.core.safe_text import visible, visible_record

from lab.cli.common import EXIT_FAILED, EXIT_OK, EXIT_REFUSED
COMMANDS = ("history", "compare", "export", "import", "report")


def add_commands(sub: Any) -> None:
    """Register the subcommands on `conlab`'s subparsers."""
    hist = sub.add_parser("history", help="the runs kept on this machine (newest first)")
    hist.add_argument("--json", action="store_true", help="print a JSON list")
    hist.add_argument("--limit", type=_positive, default=30, metavar="N",
                      help="show the newest N runs (default 30)")
    hist.add_argument("--experiment", metavar="NAME", help="only runs of this experiment")
    hist_sub = hist.add_subparsers(dest="history_command", parser_class=type(hist))
    show = hist_sub.add_parser("show", help="one run in full")
    show.add_argument("id", type=_positive, help="the run's id (see `conlab history`)")
    show.add_argument("--json", dest="show_json", action="store_true",
                      help="print the stored record as JSON")
    show.add_argument("--timeline", action="store_true",
                      help="print the run's recorded timeline (with --json: as JSON)")

    compare = sub.add_parser("compare", help="two or more runs side by side")
    compare.add_argument("ids", type=_positive, nargs="+", metavar="ID")
    compare.add_argument("--json", action="store_true")

    export = sub.add_parser("export", help="write runs to a JSON file (all runs if no ID)")
    export.add_argument("ids", type=_positive, nargs="*", metavar="ID")
    export.add_argument("-o", "--output", required=True, metavar="FILE.json")
    export.add_argument("--experiment", metavar="NAME", help="only runs of this experiment")

    imp = sub.add_parser("import", help="add the runs of an exported JSON file")
    imp.add_argument("file", metavar="FILE.json")

    report = sub.add_parser("report", help="a Markdown handout of this machine's figures")
    report.add_argument("-o", "--output", default="conlab-report", metavar="DIR",
                        help="folder for report.md and screenshots (default ./conlab-report)")
    report.add_argument("--no-svg", action="store_true", help="skip the screenshots")
    report.add_argument("--run-missing", action="store_true",
                        help="first run, one after another and with their defaults, the "
                             "experiments this machine has no usable run of")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("expected a positive whole number, got %r" % text)
    if value < 1:
        raise argparse.ArgumentTypeError("expected a positive whole number, got %r" % text)
    return value


def dispatch(args: argparse.Namespace) -> int:
    handler = {"history": cmd_history, "compare": cmd_compare, "export": cmd_export,
               "import": cmd_import, "report": cmd_report}[args.command]
    try:
        return handler(args)
    except history.DamagedRun as exc:
        print("conlab: %s" % exc, file=sys.stderr)
        return EXIT_FAILED
    except history.HistoryError as exc:
        print("conlab: history unavailable: %s" % exc, file=sys.stderr)
        return EXIT_FAILED
    except KeyError as exc:
        if not isinstance(exc.args[0], int):
            raise  # a defect in the lab, not an unknown id: do not disguise it
        print("conlab: no run with id %s in %s (see `conlab history`)"
              % (exc.args[0], history.db_path()), file=sys.stderr)
        return EXIT_REFUSED


# history -------------------------------------------------------------------------------
def cmd_history(args: argparse.Namespace) -> int:
    if getattr(args, "history_command", None) == "show":
        return cmd_show(args)
    if args.experiment:
        refused = _unknown_experiment(args.experiment)
        if refused:
            return refused
    entries, damaged = history.load(args.limit, args.experiment)
    if damaged:
        print("conlab: %s" % history.damaged_note(damaged), file=sys.stderr)
    runs = [{k: v for k, v in e.items() if k != "record"} for e in entries]
    if args.json:
        print(json.dumps(runs, indent=1))
        return EXIT_OK
    if not runs:
        print("no runs kept yet (%s); try `conlab run race`" % history.db_path())
        return EXIT_OK
    print("history: %s" % history.where())
    from lab.cli.show import print_table_or_text

    print_table_or_text(lambda: [listing_table(runs, entries)],
                        lambda: format_listing(runs, entries))
    return EXIT_OK


def _unknown_experiment(name: str) -> int:
    from lab.core import catalog

    if name == "watch":  # `conlab watch` and `conlab attach` records (lab.core.watch_record)
        return 0

    try:
        catalog.get(name)
    except catalog.UnknownExperiment as exc:
        print("conlab: %s" % exc, file=sys.stderr)
        return EXIT_REFUSED
    return 0


def format_listing(runs: list[dict], entries: list[dict], width: int = 79) -> str:
    from lab.core.formatting import short_python
    from lab.core.report import headline

    several_hosts = len({r["host"] for r in runs}) > 1 or any(r["imported"] for r in runs)
    head = "%4s  %-11s  %-11s %-7s %-12s %6s  " % ("id", "saved", "experiment", "status",
                                                 "python", "time")
    if several_hosts:
        head += "%-10s " % "host"
    room = max(10, width - len(head))
    lines = [head + "figures"]
    runs, entries = visible_record(runs), visible_record(entries)
    for run, entry in zip(runs, entries):
        interp = (entry.get("record") or {}).get("interpreter") or {}
        python = short_python(run["python"], run["gil_enabled"],
                              interp.get("free_threaded") if isinstance(interp, dict) else None)
        line = "%4d  %-11s  %-11s %-7s %-12s %5.1fs  " % (
            run["id"], time.strftime("%m-%d %H:%M", time.localtime(run["saved_at"])),
            run["experiment"][:11], run["status"][:7], python[:12], run["duration_s"] or 0.0)
        if several_hosts:
            line += "%-10s " % (("*" if run["imported"] else "") + run["host"])[:10]
        lines.append(line + headline(entry["record"], room))
    if several_hosts:
        lines.append("(* imported from another machine)")
    return "\n".join(lines)


def listing_table(runs: list[dict], entries: list[dict]) -> Table:
    """The same listing as a table block, for a colour terminal."""
    from lab.core.report import headline

    several_hosts = len({r["host"] for r in runs}) > 1 or any(r["imported"] for r in runs)
    runs, entries = visible_record(runs), visible_record(entries)
    rows = []
    for run, entry in zip(runs, entries):
        python = run["python"].replace("cpython ", "") + (
            " nogil" if run["gil_enabled"] is False else "")
        rows.append([str(run["id"]), time.strftime("%m-%d %H:%M", time.localtime(run["saved_at"])),
                     run["experiment"][:11], run["status"][:7], python[:12],
                     "%.1f s" % (run["duration_s"] or 0.0)]
                    + ([("*" if run["imported"] else "") + run["host"][:10]] if several_hosts else [])
                    + [headline(entry["record"], 10 if several_hosts else 18)])
    return Table("", ["id", "saved", "experiment", "status", "python", "time"]
                 + (["host"] if several_hosts else []) + ["figures"], rows, turn=False)


def cmd_show(args: argparse.Namespace) -> int:

    entry = history.get_run(args.id)
    if getattr(args, "timeline", False):
        return _show_timeline(entry, args.show_json)
    if args.show_json:
        print(json.dumps(entry, indent=1))
        return EXIT_OK
    entry = visible_record(entry, keep_newlines=True)
    print("run %d, saved %s on %s%s" % (
        entry["id"], time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(entry["saved_at"])),
        entry["host"], " (imported)" if entry["imported"] else ""))
    from lab.core.report import repeat_command

    print("repeat: %s" % repeat_command(entry["record"]))
    from lab.cli.show import print_record

    print_record(entry["record"])
    return EXIT_OK


def _show_timeline(entry: dict, as_json: bool) -> int:
    """The run's timeline: a few lines per second of the run, or the stored JSON."""
    from lab.core import timeline

    recording, problem = history.get_timeline(entry["id"])
    if recording is None:
        print("conlab: %s" % (problem or "run %d has no timeline (saved by an older lab)"
                              % entry["id"]), file=sys.stderr)
        return EXIT_FAILED
    if as_json:
        print(json.dumps(timeline.to_json(recording), separators=(",", ":")))
        return EXIT_OK
    print("run %d: %s" % (entry["id"], visible(entry["experiment"])))
    for line in timeline.describe(recording):
        print(visible(line))
    return EXIT_OK


# compare -------------------------------------------------------------------------------
def cmd_compare(args: argparse.Namespace) -> int:
    if len(args.ids) < 2:
        print("conlab: compare needs at least two run ids (see `conlab history`)",
              file=sys.stderr)
        return EXIT_REFUSED
    entries = history.get_runs(args.ids)
    if args.json:
        print(json.dumps([{"label": label, "values": values}
                          for label, values in history.compare(entries)],
                         indent=1, default=str))
        return EXIT_OK
    entries = visible_record(entries)
    from lab.cli.show import print_table_or_text

    rows = history.compare(entries)
    print_table_or_text(lambda: [compare_table(rows)], lambda: format_compare(rows))
    experiments = {e["experiment"] for e in entries}
    if len(experiments) > 1:
        print("\nnote: these are runs of different experiments (%s); only shared rows line up"
              % ", ".join(sorted(experiments)))
    return EXIT_OK


# export / import -----------------------------------------------------------------------
def cmd_export(args: argparse.Namespace) -> int:
    if args.ids and args.experiment:
        print("conlab: give run ids or --experiment, not both", file=sys.stderr)
        return EXIT_REFUSED
    if args.experiment:
        refused = _unknown_experiment(args.experiment)
        if refused:
            return refused
    skipped: list = []
    try:
        count = history.export_runs(args.ids or None, args.output,
                                    experiment=args.experiment, skipped=skipped)
    except OSError as exc:
        print("conlab: cannot write %s: %s" % (visible(args.output), exc.strerror or exc),
              file=sys.stderr)
        return EXIT_REFUSED
    if skipped:
        print("conlab: %s" % history.damaged_note(skipped), file=sys.stderr)
    print("exported %d run%s to %s" % (count, "" if count == 1 else "s", visible(args.output)))
    return EXIT_OK


def cmd_import(args: argparse.Namespace) -> int:
    try:
        added, present = history.import_runs(args.file)
    except history.ImportRefused as exc:
        print("conlab: %s" % exc, file=sys.stderr)
        return EXIT_REFUSED
    print("imported %d run%s from %s%s" % (
        added, "" if added == 1 else "s", visible(args.file),
        " (%d already in history)" % present if present else ""))
    return EXIT_OK


# report --------------------------------------------------------------------------------
def cmd_report(args: argparse.Namespace) -> int:
    from lab.core.report import missing_experiments, select_runs, write_report

    if args.run_missing:
        interrupted = run_missing(missing_experiments(select_runs()))
        if interrupted:
            return interrupted
    pictures = None
    if not args.no_svg:
        try:
            from lab.tui.pictures import render_svgs as pictures
        except ImportError as exc:  # the handout stands without its pictures
            print("conlab: report: no screenshots (%s)" % exc, file=sys.stderr)
    try:
        path = write_report(args.output, pictures)
    except OSError as exc:
        print("conlab: cannot write the report in %s: %s" % (args.output, exc.strerror or exc),
              file=sys.stderr)
        return EXIT_REFUSED
    print("wrote %s" % path)
    return EXIT_OK


def run_missing(names: list[str]) -> int:
    """Run each experiment headless with its defaults, in turn (never two at once: they
    would contend for the CPUs), saving each record; 0, or 130 after a Ctrl-C."""
    import asyncio

    from lab.core.interp_compare import run_all
    from lab.core.record import build_record, save_run_record, with_timeline
    from lab.core.report import contention
    from lab.core.runner import Refused, RunRequest, prepare

    for number, name in enumerate(names, 1):
        try:
            prepared = prepare(RunRequest(name))
        except Refused as exc:
            print("conlab: report: %s not run: %s" % (name, exc), file=sys.stderr)
            continue
        print("running %s with its defaults (%d of %d)…" % (name, number, len(names)),
              file=sys.stderr, flush=True)
        try:
            state = asyncio.run(run_all([prepared]))[0]  # SIGTERM/SIGHUP stop the child
        except KeyboardInterrupt:  # the child was stopped on the way out
            print("conlab: report: interrupted during %s" % name, file=sys.stderr)
            return 130
        record = build_record(prepared, state)
        save_run_record(with_timeline(record, state))
        busy = contention(record)
        if state.status != "done":
            print("conlab: report: %s %s: %s" % (name, state.status, visible(
                str(state.error or ""))), file=sys.stderr)
            if state.status == "stopped":
                return 130
        elif busy:
            print("conlab: report: %s was %s: not used" % (name, busy), file=sys.stderr)
    return 0
