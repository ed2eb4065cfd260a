"""`conlab watch -- CMD` and `conlab attach PID`: headless, a live line a second on stderr
and the diagnosis at the end; with --json, one record on stdout (kept in history).

Exit status: 2 refused (one line, nothing started), 130 interrupted, else 0 - the
program's own status is in the record. With --until-exit, watch exits with the program's
status instead (128+N if a signal N ended it), like `time CMD`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from typing import Any

from lab.cli.common import EXIT_OK, refuse
from lab.core.formatting import count_of
from lab.core.runner import Refused

EXIT_INTERRUPTED = 130
LIVE_EVERY_S = 1.0
WIDTH = 80  # an SSH terminal
COMMANDS = ("watch", "attach")


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("expected seconds from 0.5 to 86400, got %r" % text)
    if not 0.5 <= value <= 86400:
        raise argparse.ArgumentTypeError("expected seconds from 0.5 to 86400, got %r" % text)
    return value


def _pid(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("PID must be a positive whole number, got %r" % text)
    if value < 1:
        raise argparse.ArgumentTypeError("PID must be a positive whole number, got %r" % text)
    return value


def add_commands(sub: Any) -> None:
    watch = sub.add_parser(
        "watch", help="run a command and watch its threads, with a diagnosis",
        usage="conlab watch [--json] [--duration S] [--until-exit] [--timeout S] "
              "[--no-probe] [--log F] [--passthrough] -- CMD [ARGS...]",
        description="Run CMD as the lab's child (own process group, killed with the lab, "
                    "nothing left behind) and watch every thread. Exit status: 0, or "
                    "the program's with --until-exit; 2 refused; 130 interrupted.")
    watch.add_argument("--json", action="store_true", help="print one record at the end")
    watch.add_argument("--duration", type=_seconds, metavar="S",
                       help="watch S seconds, then stop the program (default: until it exits)")
    watch.add_argument("--until-exit", action="store_true",
                       help="never stop the program: watch until it exits (ignores "
                            "--duration) and exit with its status")
    watch.add_argument("--timeout", type=_seconds, metavar="S",
                       help="stop the program after S seconds (a watchdog; default none)")
    watch.add_argument("--no-probe", action="store_true",
                       help="run a Python program untouched (no probe on its path)")
    watch.add_argument("--log", metavar="F", help="the program's stdout and stderr go here "
                       "(default: a file under ~/.local/state/conlab/watch)")
    watch.add_argument("--passthrough", action="store_true",
                       help="let the program's output through (to stderr with --json)")
    watch.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- CMD ...")
    attach = sub.add_parser("attach", help="watch a running process (read-only, /proc)")
    attach.add_argument("pid", type=_pid)
    attach.add_argument("--json", action="store_true", help="print one record at the end")
    attach.add_argument("--duration", type=_seconds, metavar="S",
                        help="watch S seconds (default: until the process ends)")


def dispatch(args: argparse.Namespace) -> int:
    from lab.core.watch import Watch

    try:
        if args.command == "attach":
            watch = Watch.attach(args.pid)
        else:
            argv = list(args.argv)
            if argv and argv[0] == "--":
                argv = argv[1:]
            passthrough: Any = ("stderr" if args.json else True) if args.passthrough else False
            watch = Watch.command(argv, probe=not args.no_probe, timeout=args.timeout,
                                  log_path=args.log, passthrough=passthrough)
    except Refused as exc:
        return refuse(str(exc))
    signals: list[int] = []
    until_exit = getattr(args, "until_exit", False)
    try:
        asyncio.run(_watch(watch, None if until_exit else args.duration, args.json, signals))
    except Refused as exc:
        return refuse(str(exc))
    record = watch.to_record()
    from lab.core.record import save_run_record

    save_run_record(record)
    if args.json:
        print(json.dumps(record, indent=1))
    else:
        _print_end(record)
    if signals:
        return EXIT_INTERRUPTED
    if until_exit and watch.exit_status is not None:
        code = watch.exit_status
        return code if code >= 0 else 128 - code
    return EXIT_OK


async def _watch(watch: Any, duration: float | None, quiet: bool, signals: list[int]) -> None:
    loop = asyncio.get_running_loop()

    def stop(sig: int) -> None:
        signals.append(sig)
        asyncio.ensure_future(watch.stop("interrupted"))

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, stop, sig)
    await watch.start()
    helpers = []
    if duration is not None:
        helpers.append(asyncio.ensure_future(_stop_after(watch, duration)))
    if not quiet:
        helpers.append(asyncio.ensure_future(_live(watch)))
    try:
        await watch.wait()
    finally:
        for task in helpers:
            task.cancel()
        await asyncio.gather(*helpers, return_exceptions=True)


async def _stop_after(watch: Any, seconds: float) -> None:
    await asyncio.sleep(seconds)
    await watch.stop("duration")


async def _live(watch: Any) -> None:
    seen: set = set()
    while True:
        await asyncio.sleep(LIVE_EVERY_S)
        print(live_line(watch, seen), file=sys.stderr, flush=True)


def live_line(watch: Any, seen: set) -> str:
    """One compact line for the last few seconds: cores, threads (new, ended), waits,
    switches, memory, and the first diagnosis."""
    state = watch.state
    figures = watch.figures(LIVE_EVERY_S * 2)
    threads = figures["threads"]
    wall = max(figures["wall_s"], 1e-9)
    delay = sum(t["run_delay_s"] or 0.0 for t in threads)
    cpu = 0.0
    for pid, facts in figures["processes"].items():  # the process clock counts ended threads
        cpu += max(sum(t["cpu_s"] for t in threads if t["pid"] == pid),
                   facts.get("process_cpu_s") or 0.0)
    alive = {tid for tid, v in state.threads.items() if v.alive}
    new, ended = len(alive - seen), len({t for t in seen if t not in alive})
    seen.clear()
    seen.update(alive)
    procs = [p for p in state.processes.values() if p.alive]
    found = watch.diagnose()
    return "%4.0fs %5.2f cores %dp %dt(+%d-%d) cpu-wait %d%% sw %d/%d/s %dMB | %s" % (
        state.duration_s, cpu / wall, len(procs), len(alive), new, ended,
        round(100 * delay / (cpu + delay)) if cpu + delay > 0 else 0,
        sum(t["voluntary"] for t in threads) / wall,
        sum(t["involuntary"] for t in threads) / wall,
        sum(p.rss_bytes for p in procs) >> 20, found[0]["kind"] if found else "-")


def _print_end(record: dict) -> None:
    """The end of a watch in 80 columns: each process's figures, then the diagnosis."""
    print(_wrap("%s: %s, %.1fs" % (record["params"]["command"], record["ended"],
                                    record["duration_s"]), "    "))
    print("  pid     name        cores thr cpu-wait off-cpu  vol/s  inv/s    rss")
    for row in record["processes"]:
        if not row["alive"] and row["cores"] < 0.005:
            continue  # a helper that came and went (a shell, a version shim)
        print("  %-7d %-10s %6.2f %3d %8s %7s %6.0f %6.0f %4d MB" % (
            row["pid"], row["name"][:10], row["cores"], row["threads"],
            _pct(row["run_delay_share"]), _pct(row["off_cpu_share"]),
            row["voluntary_per_s"], row["involuntary_per_s"], row["rss_bytes"] >> 20))
    print("diagnosis:")
    for item in record["diagnosis"] or [{"process": "-", "says": "nothing to say (no samples)",
                                         "lesson": None}]:
        print(_wrap("  %s: %s%s" % (item["process"], item["says"],
                                    " (see `conlab run %s`)" % item["lesson"]
                                    if item["lesson"] else ""), "      "))
    load = record["result"]["load"]
    if load.get("other_cpu_share") is not None:
        print(_wrap("load: other programs took %s of the %s meanwhile%s" % (
            _pct(load["other_cpu_share"]), count_of(load["usable_cpus"], "usable CPU"),
            " (busy: the figures are shared)" if load["busy"] else ""), "    "))
    print(_wrap("probe: %s" % record["result"]["probe"]["status"], "    "))
    if record["result"].get("log"):
        print("program output: %s" % record["result"]["log"])


def _wrap(text: str, indent: str) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, WIDTH, subsequent_indent=indent,
                                   break_on_hyphens=False, break_long_words=False))


def _pct(share: Any) -> str:
    return "-" if share is None else "%d%%" % round(100 * share)
