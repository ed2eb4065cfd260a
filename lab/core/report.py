"""`conlab report`: a Markdown handout of this machine's latest figures, experiment by
experiment, beside what the article claims, with the disagreements called out.

Every number comes from run history: for each experiment and interpreter, the newest run
that `usable_for_report` accepts (finished, measured on this machine with the
experiment's defaults, not contended by other programs, never imported). The
article's claims are summarised in our own words and always labelled as the article's;
where a result can be checked against a claim automatically, the check uses the figures
just read, never a stored answer.
"""

from __future__ import annotations

import os
import shlex
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional

from lab.core import article, catalog
from lab.core import history
from lab.core.formatting import flatten
from lab.core.machine import machine

ARTICLE = article.TITLE
MAX_FIGURES = 30  # rows per experiment table in the handout


# Key figures ---------------------------------------------------------------------------
# For experiments whose result shape we know, the figures a reader wants first; any other
# experiment gets its numeric leaves in order.
CURATED = {
    "gil-cpu": ("modes.sequential.wall_s", "modes.threads.wall_s", "modes.processes.wall_s",
                "speedup.threads", "speedup.processes", "tasks", "gil_enabled"),
    "race": ("variants.naive.lost", "variants.call.lost", "variants.sleep0.lost",
             "variants.len.lost", "variants.locked.lost", "variants.local.lost",
             "variants.naive.expected", "threads", "gil_enabled"),
}


def result_of(record: dict) -> dict:
    result = record.get("result")
    return result if isinstance(result, dict) else {}


def key_figures(record: dict, limit: int = MAX_FIGURES) -> list[tuple[str, Any]]:
    leaves = dict((k, v) for k, v in flatten(result_of(record))
                  if k != "explanation" and _is_figure(v))
    if record.get("experiment") == "decision":
        figures = _decision_figures(result_of(record))
        if figures:
            return figures[:limit]
    curated = [k for k in CURATED.get(record.get("experiment", ""), ()) if k in leaves]
    keys = curated or list(leaves)
    return [(k, leaves[k]) for k in keys[:limit]]


def _decision_figures(result: dict) -> list[tuple[str, Any]]:
    """Per workload row: the winners, the article's pick, then jobs/s of each model."""
    figures: list[tuple[str, Any]] = []
    for row in result.get("rows") or []:
        if not isinstance(row, dict):
            continue
        rid = row.get("id", "?")
        figures.append(("%s: winner" % rid, " / ".join(row.get("winners") or []) or "none"))
        figures.append(("%s: article's pick" % rid, "%s (%s)" % (
            row.get("article_pick"), "agrees" if row.get("agrees") else "DISAGREES")))
        for model, figs in (row.get("models") or {}).items():
            if isinstance(figs, dict):
                figures.append(("%s: %s jobs/s" % (rid, model), figs.get("jobs_per_s")))
    return figures


def _is_figure(value: Any) -> bool:
    if isinstance(value, (bool, int, float)):
        return True
    return isinstance(value, str) and len(value) <= 40


def headline(record: dict, width: int = 40) -> str:
    """One short line of a run's main figures (history listings)."""
    result = result_of(record)
    experiment = record.get("experiment")
    if experiment == "race" and isinstance(result.get("variants"), dict):
        parts = ["%s lost %s" % (name, _short(v.get("lost")))
                 for name, v in result["variants"].items() if isinstance(v, dict)]
    elif experiment == "gil-cpu" and isinstance(result.get("speedup"), dict):
        parts = ["%s %.2fx" % (k, v) for k, v in result["speedup"].items()
                 if isinstance(v, (int, float))]
    elif experiment == "decision" and isinstance(result.get("rows"), list):
        won = ["%s%s" % (SHORT_MODEL.get((r.get("winners") or ["?"])[0], "?"),
                         "" if r.get("agrees", True) else "≠")
               for r in result["rows"] if isinstance(r, dict)]
        parts = [" ".join(won)]  # the winner of each row, in the table's order
    else:
        parts = ["%s %s" % (k.rsplit(".", 1)[-1], _short(v)) for k, v in key_figures(record, 4)]
    text = ", ".join(parts)
    return text if len(text) <= width else text[: width - 1] + "…"


SHORT_MODEL = {"sequential": "seq", "threads": "thr", "processes": "proc", "asyncio": "aio",
               "asyncio+pool": "a+pl"}


def _short(value: Any) -> str:
    if isinstance(value, float) and abs(value) >= 1000:
        value = int(round(value))
    elif isinstance(value, float):
        return "%.3g" % value
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10000:
        return "{:,}".format(value).replace(",", " ")
    return str(value)


# The article's claims, in our words, with checks against this machine's figures -------
Check = Callable[[dict], Optional[list]]  # record -> disagreements ([] agrees, None: can't tell


@dataclass(frozen=True)
class Claim:
    says: str
    check: Check | None = None


def _check_gil_cpu(record: dict) -> list | None:
    result = result_of(record)
    speedup = result.get("speedup") or {}
    threads, processes = speedup.get("threads"), speedup.get("processes")
    if threads is None and processes is None:
        return None
    cpus = result.get("cpus") or (record.get("machine") or {}).get("usable_cpus") or 1
    tasks = result.get("tasks") or 0
    sequential = ((result.get("modes") or {}).get("sequential") or {}).get("wall_s")
    if isinstance(sequential, (int, float)) and sequential < 0.25:
        return ["the run was too short to compare (%.3f s sequential): starting threads and "
                "processes costs milliseconds, which swamps work this small; raise `work`"
                % sequential]
    found = []
    if isinstance(threads, (int, float)) and threads > 1.15:
        found.append("threads ran %.2fx the sequential speed, not slower: %s" % (
            threads, "this interpreter has no GIL" if not result.get("gil_enabled", True)
            else "something let the threads overlap"))
    if isinstance(processes, (int, float)) and tasks >= 2:
        expected = min(tasks, cpus)
        if expected >= 2 and processes < 0.75 * expected:
            found.append("processes reached only %.2fx with %d CPUs usable: other load on the "
                         "machine (or a busy hypervisor) took CPU time" % (processes, cpus))
        elif expected < 2:
            found.append("processes reached %.2fx: with %d usable CPU there is no second core "
                         "to run on, so the article's near-2x cannot happen here"
                         % (processes, cpus))
    return found


def _check_race(record: dict) -> list | None:
    naive = ((result_of(record).get("variants") or {}).get("naive")) or {}
    if "lost" not in naive or not naive.get("expected"):
        return None
    share = naive["lost"] / float(naive["expected"])
    interp = record.get("interpreter") or {}
    version = str(interp.get("version", "?"))
    if share >= 0.01:
        return []
    lost = "naive `counter += 1` lost %s of %s (%.2f%%) on Python %s, not most of them" % (
        _short(naive["lost"]), _short(naive["expected"]), 100 * share, version)
    if _version_tuple(version) >= (3, 10) and interp.get("implementation") == "cpython":
        why = ("from 3.10 CPython hands the GIL over only at calls and backward jumps, and `+=` "
               "has neither between its read and its write (the `call` and `sleep0` variants "
               "still lose)")
    else:
        why = ("this version may switch between any two bytecodes, but a switch is only "
               "requested every switch interval (5 ms by default), so a short run may see none "
               "land inside a read-add-write: raise `increments` or lower "
               "`switch_interval_ms`")
    return ["%s: %s" % (lost, why)]


def _version_tuple(text: str) -> tuple:
    try:
        return tuple(int(p) for p in text.split(".")[:3])
    except ValueError:
        return (0,)


def _check_decision(record: dict) -> list | None:
    rows = result_of(record).get("rows")
    if not isinstance(rows, list):
        return None
    found = []
    for row in rows:
        if isinstance(row, dict) and row.get("article_pick") and not row.get("agrees", True):
            found.append("%s: the article picks %s, this machine's winner was %s" % (
                row.get("label", row.get("id")), row["article_pick"],
                " / ".join(row.get("winners") or ["?"])))
    return found


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) \
        else None


def _check_loop_freeze(record: dict) -> list | None:
    result = result_of(record)
    if result.get("fix") != "none" or result.get("block") != "cpu":
        return None  # the article only shows the unfixed, computing coroutine
    block, worst = _num(result.get("block_ms")), _num((result.get("lag_ms") or {}).get("max"))
    if block is None or worst is None or not result.get("blocks", 1):
        return None
    if worst < 0.8 * block:
        return ["the worst tick was only %.0f ms late for %.0f ms blocks: the loop was not "
                "held for the whole computation" % (worst, block)]
    return []


def _check_ctx_switch(record: dict) -> list | None:
    methods = result_of(record).get("methods")
    if not isinstance(methods, dict):
        return None
    found = []
    for key, m in methods.items():
        if not isinstance(m, dict) or m.get("method") != "oneway":
            continue
        per_msg, switches = _num(m.get("us_per_msg")), _num(m.get("switches_per_msg"))
        if per_msg is not None and switches is not None and switches < 0.5:
            found.append("the article's one-way pipe (%s) made %.2f switches per message: the "
                         "reader found several bytes waiting and went on without switching, so "
                         "its %.1f µs per message is not the cost of a switch (the ping-pong "
                         "methods force one per message)" % (key, switches, per_msg))
    return found


def _check_deadlock(record: dict) -> list | None:
    result = result_of(record)
    fix = result.get("fix")
    if fix == "none" and "deadlocked" in result:
        return [] if result["deadlocked"] else [
            "the opposite-order run did not deadlock this time: both threads got through "
            "before their lock holds overlapped"]
    if fix == "ordered" and "completed" in result:
        return [] if result["completed"] else ["the ordered run did not complete"]
    return None


def _check_goroutines(record: dict) -> list | None:
    result = result_of(record)
    if result.get("runtime") != "go":
        return None
    size = _num(result.get("bytes_per_g"))
    if size is None:
        return None
    if size > 16 * 1024:
        return ["each goroutine cost %.0f KB here, more than the article's few kilobytes"
                % (size / 1024)]
    return []


def _check_io_bound(record: dict) -> list | None:
    result = result_of(record)
    threads = (result.get("modes") or {}).get("threads") or {}
    wall, ideal = _num(threads.get("wall_s")), _num(threads.get("ideal_s"))
    if wall is None or ideal is None or ideal <= 0:
        return None
    if wall > 2 * ideal:
        return ["threads took %.2f s where overlapping the waits would take %.2f s"
                % (wall, ideal)]
    return []


def _check_convoy(record: dict) -> list | None:
    slowdown = _num(result_of(record).get("slowdown_p50"))
    if slowdown is None:
        return None
    if slowdown > 2:
        return ["with one CPU-bound thread beside it, the I/O thread's median latency grew "
                "%.1fx: a thread waking from I/O must win the GIL back, and the computing "
                "thread keeps it for up to a switch interval" % slowdown]
    return []


def _check_scale(record: dict) -> list | None:
    threads = (result_of(record).get("units") or {}).get("threads") or {}
    reserved, resident = _num(threads.get("stack_reserved_bytes")), \
        _num(threads.get("rss_bytes_per_unit"))
    if reserved is None or resident is None:
        return None
    if resident < reserved / 8:
        return ["each thread reserved %.1f MB of stack but only %.0f KB was resident: the "
                "article's hundreds of gigabytes are address space, not memory in use"
                % (reserved / 2 ** 20, max(resident, 0) / 1024)]
    return []


CLAIMS: dict[str, Claim] = {
    "gil-cpu": Claim(
        "Two threads doing pure-Python arithmetic finish a little later than doing the same "
        "two jobs one after the other (its figures: about 2.4 s sequential, 2.5 s threaded), "
        "because only one thread may run bytecode at a time and they pay to pass the lock; "
        "two processes finish in about half the time (about 1.3 s), one core each.",
        _check_gil_cpu),
    "race": Claim(
        "Four threads each adding one a million times to a shared counter end far below "
        "four million (its run: about 1.25 million, so roughly seven in ten updates lost), "
        "because `+=` is a load, an add and a store and the GIL may change hands between "
        "them.", _check_race),
    "io-bound": Claim(
        "Two one-second network waits take about 2 s one after the other and about 1 s in "
        "two threads, since a thread blocked in a socket call has let go of the GIL; asyncio "
        "overlaps many such waits on a single thread.", _check_io_bound),
    "loop-freeze": Claim(
        "A coroutine that computes without awaiting holds the only thread of the event loop: "
        "a timer meant to fire every half second does not fire until the computation ends "
        "(its run: the first tick came after about 2.4 s).", _check_loop_freeze),
    "epoll": Claim(
        "An event loop is one thread around epoll_wait: one system call watches thousands of "
        "sockets and returns the ones that are ready, instead of one blocked thread per "
        "connection."),
    "deadlock": Claim(
        "Two threads that take the same two locks in opposite orders can each hold one and "
        "wait forever for the other; taking locks in one agreed order makes this impossible.",
        _check_deadlock),
    "ctx-switch": Claim(
        "A thread context switch costs a few microseconds on current Linux (its measure: "
        "one thread writes a byte to a pipe, another reads it, 100 000 times, about 4.9 µs "
        "per message, read as the cost of one switch), more once the caches it spoils are "
        "counted.", _check_ctx_switch),
    "goroutines": Claim(
        "Goroutines start with stacks of a few kilobytes and are switched by Go's own "
        "scheduler, so 100 000 of them finish in milliseconds, where 100 000 OS threads would "
        "reserve hundreds of gigabytes of stack address space.", _check_goroutines),
    "convoy": Claim(
        "Threads suit I/O-bound programs: a thread blocked in a socket call has released the "
        "GIL, so the others run meanwhile.", _check_convoy),
    "scale": Claim(
        "An OS thread gets a stack of about 8 MB by default, so 100 000 threads would need "
        "about 800 GB, while a goroutine starts with 2 to 8 KB.", _check_scale),
    "decision": Claim(
        "Its decision table for Python: CPU-bound parallel work → multiprocessing; I/O with "
        "many connections → asyncio; simple I/O → threading; mixed CPU and I/O → a process "
        "pool fed by asyncio (\"depends on the ratio\").", _check_decision),
}


# Which runs the handout may quote --------------------------------------------------------
def this_machine() -> dict:
    """The machine block a record made here now would carry (lab.core.record)."""
    host = machine()
    return {"cpus": host.cpus, "usable_cpus": host.usable_cpus, "hypervisor": host.hypervisor,
            "cpu_model": host.cpu_model, "kernel": host.kernel}


def why_not_for_report(entry: dict) -> str | None:
    """None when the handout may quote this run; otherwise why not, in a few words."""
    record = entry.get("record") or {}
    if entry.get("imported"):
        return "imported"
    if entry.get("status") != "done":
        return str(entry.get("status"))
    if entry.get("host") != history.host_name():
        return "measured on %s" % entry.get("host")
    block = record.get("machine") or {}
    if any(block.get(key) != value for key, value in this_machine().items()):
        return "measured with other CPUs or kernel"  # e.g. under taskset, or before an upgrade
    try:
        defaults = catalog.get(str(record.get("experiment"))).defaults()
    except catalog.UnknownExperiment:
        return "no longer in the catalogue"
    if (record.get("params") or {}) != defaults:
        return "other parameters"
    return contention(record)


def contention(record: dict) -> str | None:
    """Why a run's figures were contended by other programs, if they were: the result's
    `load` block (other programs' CPU share) or gil-cpu's per-mode flags."""
    result = result_of(record)
    load = result.get("load")
    if isinstance(load, dict) and load.get("busy"):
        share = _num(load.get("other_cpu_share"))
        return "contended (other programs took %s of the CPUs)" % (
            "%.0f%%" % (100 * share) if share is not None else "a share")
    flagged = result.get("contended")
    if flagged:
        return "contended (%s)" % (", ".join(map(str, flagged)) if isinstance(flagged, list)
                                   else "flagged by the run")
    return None


def usable_for_report(entry: dict) -> bool:
    """May the handout quote this history entry? (why_not_for_report says why not.)"""
    return why_not_for_report(entry) is None


@dataclass
class Selection:
    chosen: dict  # experiment -> entries (one per interpreter), as latest_per_interpreter
    passed_over: dict  # experiment -> [(entry, reason)] of newer runs left out, newest first


def select_runs(path: str | None = None) -> Selection:
    """For each experiment and interpreter, the newest run usable for the report."""
    chosen: dict[tuple, dict] = {}
    passed: dict[str, list] = {}
    for entry in history.load(None, path=path).entries:  # newest first, readable
        key = (entry["experiment"], entry["python"], entry["gil_enabled"])
        if key in chosen:
            continue
        reason = why_not_for_report(entry)
        if reason is None:
            chosen[key] = entry
        else:
            passed.setdefault(entry["experiment"], []).append((entry, reason))
    by_experiment: dict[str, list] = {}
    for (experiment, _python, _gil), entry in sorted(chosen.items(), key=lambda kv: (
            kv[0][0], kv[0][1], str(kv[0][2]))):
        by_experiment.setdefault(experiment, []).append(entry)
    return Selection(by_experiment, passed)


def missing_experiments(selection: Selection) -> list[str]:
    """Catalogue experiments with no run the handout may quote."""
    return [e.name for e in catalog.all_experiments() if e.name not in selection.chosen]


# Building the handout ------------------------------------------------------------------
def run_label(entry: dict) -> str:
    """Where a figure came from: the run's id, date and interpreter."""
    return "run %d, %s, %s" % (entry["id"], time.strftime(
        "%Y-%m-%d", time.localtime(entry["saved_at"])), python_label(entry))


def python_label(entry: dict) -> str:
    interp = entry["record"].get("interpreter") or {}
    gil = "" if interp.get("gil_enabled", True) else " (no GIL)"
    return "%s %s%s" % (interp.get("implementation", "?"), interp.get("version", "?"), gil)


def version_key(entry: dict) -> tuple:
    return _version_tuple(str((entry["record"].get("interpreter") or {}).get("version", "0")))


def repeat_command(record: dict) -> str:
    """The `conlab run` line that repeats a run (parameters that differ from defaults)."""
    name = record.get("experiment", "?")
    params = record.get("params") or {}
    if name == "watch" and isinstance(params.get("command"), str):  # lab.core.watch_record
        if params.get("mode") == "attach":
            return "conlab attach %s" % record.get("attached_pid", "PID")
        return "conlab watch -- %s" % params["command"]
    words = ["conlab", "run", name]
    try:
        defaults = catalog.get(name).defaults()
    except catalog.UnknownExperiment:
        defaults = {}
    for key, value in (record.get("params") or {}).items():
        if defaults.get(key, object()) != value:
            text = str(value).lower() if isinstance(value, bool) else str(value)
            words += ["-p", "%s=%s" % (key, text)]
    executable = (record.get("interpreter") or {}).get("executable")
    if executable and os.path.realpath(executable) != os.path.realpath(sys.executable):
        words += ["--python", executable]
    return " ".join(shlex.quote(w) for w in words)


def _cell(value: Any) -> str:
    if value is None:
        return "–"
    return _short(value).replace("|", "\\|")


def experiment_section(name: str, title: str, entries: list[dict]) -> list[str]:
    entries = sorted(entries, key=version_key)
    lines = ["## %s — %s" % (name, title), ""]
    per_run = [dict(key_figures(e["record"])) for e in entries]
    keys: list[str] = []
    for figures in per_run:
        keys += [k for k in figures if k not in keys]
    headers = [run_label(e) for e in entries]
    lines.append("| measured here | " + " | ".join(headers) + " |")
    lines.append("|---|" + "---:|" * len(entries))
    for key in keys[:MAX_FIGURES]:
        lines.append("| %s | %s |" % (key, " | ".join(_cell(f.get(key)) for f in per_run)))
    lines.append("")
    lines.append("Repeat: " + "; ".join("`%s`" % repeat_command(e["record"]) for e in entries))
    lines.append("")
    claim = CLAIMS.get(name)
    if claim is not None:
        lines += ["**The article says** (our summary): " + claim.says, ""]
    for entry in entries:
        explanation = result_of(entry["record"]).get("explanation")
        if explanation and "\n" in explanation:  # one point per line (decision: per row)
            lines += ["**This machine, %s:**" % run_label(entry), ""]
            lines += ["- " + part for part in explanation.split("\n") if part.strip()]
            lines.append("")
        elif explanation:
            lines += ["**This machine, %s:** %s" % (run_label(entry), explanation), ""]
    if claim is None:
        return lines
    if claim.check is None:
        lines += ["_No automatic comparison for this experiment: set the figures above "
                  "beside the article's claim._", ""]
        return lines
    disagreements, unchecked = [], []
    for entry in entries:
        found = claim.check(entry["record"])
        if found is None:
            unchecked.append(python_label(entry))
        for item in found or ():
            disagreements.append("%s: %s" % (run_label(entry), item))
    if disagreements:
        lines.append("**Where this machine disagrees with the article:**")
        lines += ["- " + item for item in disagreements]
    elif not unchecked:
        lines.append("**Agrees with the article** on the figures above.")
    if unchecked:
        lines.append("_Could not check automatically for %s (unfamiliar result shape)._"
                     % ", ".join(unchecked))
    lines.append("")
    return lines


def build_markdown(latest: dict[str, list[dict]] | Selection, svgs: list[str] | None = None,
                   svg_base: str = "") -> str:
    passed_over = latest.passed_over if isinstance(latest, Selection) else {}
    latest = latest.chosen if isinstance(latest, Selection) else latest
    host = machine()
    now = time.strftime("%Y-%m-%d %H:%M")
    interpreters = sorted({python_label(e) for runs in latest.values() for e in runs})
    lines = [
        "# conlab handout — %s" % now,
        "",
        "Measured on this machine: %s, %d logical CPUs (%d usable by the lab)%s, Linux %s."
        % (host.cpu_model or "unknown CPU", host.cpus, host.usable_cpus,
           ", a virtual machine" if host.hypervisor else "", host.kernel),
        "Interpreters: %s." % (", ".join(interpreters) if interpreters else "none yet"),
        "",
        "Every figure below was measured by conlab on this machine (%s) and read from its "
        "run history: for each experiment and interpreter, the newest finished run with the "
        "experiment's default parameters that other programs did not contend; each table "
        "names its runs (id, date, interpreter). Runs with other parameters, contended runs, "
        "imported runs and runs from another machine sharing the history are left out. "
        "Paragraphs marked **The article says** summarise, in our own words, claims from the "
        "article \"%s\" (%s); they are there to be checked, not trusted."
        % (history.host_name(), ARTICLE, article.SUBJECT),
        "",
    ]
    missing = []
    for experiment in catalog.all_experiments():
        entries = latest.get(experiment.name)
        if entries:
            lines += experiment_section(experiment.name, experiment.title, entries)
        else:
            missing.append(experiment.name)
    for name in sorted(set(latest) - {e.name for e in catalog.all_experiments()}):
        lines += experiment_section(name, "(no longer in this lab's catalogue)", latest[name])
    if missing:
        lines += ["## Not measured here with the defaults yet", "",
                  "Run these (or `conlab report --run-missing`) and make the report again:", ""]
        for name in missing:
            line = "- %s: `conlab run %s`" % (name, name)
            skipped = passed_over.get(name)
            if skipped:
                line += " (left out: %s)" % "; ".join(
                    "run %d %s" % (entry["id"], reason) for entry, reason in skipped[:3])
                line += " …" if len(skipped) > 3 else ""
            lines.append(line)
        lines.append("")
    if svgs:
        lines += ["## Screens", ""]
        for path in svgs:
            rel = os.path.relpath(path, svg_base) if svg_base else path
            lines.append("![%s](%s)" % (os.path.splitext(os.path.basename(path))[0], rel))
        lines.append("")
    return "\n".join(lines)


def state_from_record(record: dict):
    """A finished RunState carrying what a record keeps (no events: those are not kept)."""
    from lab.core.state import RunState

    interp = record.get("interpreter") or {}
    state = RunState(record.get("experiment", "?"), dict(record.get("params") or {}),
                     interp.get("executable", ""))
    state.status = record.get("status", "done")
    state.result = result_of(record) or None
    state.error = record.get("error")
    state.hello = {"python": interp}
    state.version = 1
    return state


Pictures = Callable[[str], list]  # directory -> paths of the SVGs it wrote there


def write_report(directory: str, pictures: Optional[Pictures] = None) -> str:
    """Write `report.md` into `directory`, with the SVGs `pictures(directory)` draws there
    (the TUI's lab.tui.pictures.render_svgs; none without it); returns the file's path."""
    os.makedirs(directory, exist_ok=True)
    svgs = pictures(directory) if pictures else []
    latest = select_runs()  # after the screenshots: their runs count too
    path = os.path.join(directory, "report.md")
    with open(path, "w", encoding="utf-8") as f:
        f.write(build_markdown(latest, svgs, svg_base=directory))
    return path
