"""What the live dashboard costs: first frame, the UI's own CPU, bytes to the terminal.

The lab runs in an 80x24 pseudo-terminal (what an SSH session gives it) with every pane
busy, next to htop refreshing at a similar rate on the same machine at the same time:

    python benchmarks/tui_live.py [--window 10]

Figures: the UI process's own CPU (utime+stime from /proc, children excluded) as a share
of one core, and the bytes it wrote to the terminal per second, over the window.
Goals (issue 3): UI CPU no more than htop's (~2-3 % of a core), at most 8 KB/s,
first frame within 0.8 s.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from tui_driver import ROOT, PtyProcess, app_command

sys.path.insert(0, str(ROOT))

GOAL_FIRST_FRAME_S = 0.8
GOAL_BYTES_PER_S = 8 * 1024


def first_frame(repeats: int) -> tuple[float, float]:
    """Seconds from `python -m lab` to the dashboard drawn, and to its first live frame."""
    layout, live = [], []
    for _ in range(repeats):
        term = PtyProcess([sys.executable, "-m", "lab"])
        layout.append(term.wait_for(b"Threads & the GIL", 30))
        live.append(term.wait_for(b"idle", 30))
        term.stop()
    return statistics.median(layout), statistics.median(live)


def measure(processes: dict[str, PtyProcess], window: float) -> dict[str, tuple[float, float]]:
    before = {name: (p.cpu_seconds(), p.bytes) for name, p in processes.items()}
    start = time.monotonic()
    time.sleep(window)
    elapsed = time.monotonic() - start
    figures = {}
    for name, p in processes.items():
        cpu0, bytes0 = before[name]
        figures[name] = ((p.cpu_seconds() - cpu0) / elapsed, (p.bytes - bytes0) / elapsed)
    return figures


def live(window: float, *lab_args: str, panes: str = "long") -> dict[str, tuple[float, float]]:
    """The lab with every pane running, beside htop at 5 Hz and 3.3 Hz."""
    lab = PtyProcess(app_command("--panes", panes, "--autorun", *lab_args))
    try:
        lab.wait_for(b"RUNNING", 30)
        htops = {"htop -d 2 (5 Hz)": PtyProcess(["htop", "-d", "2"]),
                 "htop -d 3 (3.3 Hz)": PtyProcess(["htop", "-d", "3"])}
        try:
            time.sleep(2.0)  # past start-up: steady state only
            return measure({"lab": lab, **htops}, window)
        finally:
            for h in htops.values():
                h.stop(b"q")
    finally:
        lab.stop()


def idle(window: float) -> tuple[float, float]:
    lab = PtyProcess(app_command("--panes", "default"))
    try:
        lab.wait_for(b"idle", 30)
        time.sleep(1.0)
        return measure({"lab": lab}, window)["lab"]
    finally:
        lab.stop()


def engine_only(window: float, panes: str = "long") -> float:
    """The same four runs under the runner alone (no UI): the sampler's and reader's cost."""
    import asyncio
    import os

    from tui_driver import pane_sets

    from lab.tui.live import RunController

    async def measure_engine() -> float:
        controller = RunController(save_records=False)
        tasks = []
        for index, spec in enumerate(pane_sets()[panes]):
            if spec.experiment.startswith("-"):
                continue  # an idle pane
            key = "pane-%d" % index
            prepared = controller.prepare(key, spec.experiment, spec.params)
            tasks.append(asyncio.ensure_future(controller.run(key, prepared)))
        await asyncio.sleep(3.0)
        before, start = os.times(), time.monotonic()
        await asyncio.sleep(window)
        after, end = os.times(), time.monotonic()
        await controller.shutdown()
        await asyncio.gather(*tasks, return_exceptions=True)
        return ((after.user + after.system) - (before.user + before.system)) / (end - start)

    return asyncio.run(measure_engine())


def show(label: str, cpu: float, rate: float) -> None:
    print("  %-34s cpu %5.1f %% of a core   %7.0f B/s" % (label, cpu * 100, rate))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    layout, frame = first_frame(args.repeats)
    print("first frame (median of %d): layout %.3f s, first live frame %.3f s  (goal %.1f s)"
          % (args.repeats, layout, frame, GOAL_FIRST_FRAME_S))

    print("live dashboard, every pane running, 80x24, %.0f s window:" % args.window)
    figures = live(args.window)
    for name, (cpu, rate) in figures.items():
        show(name if name != "lab" else "lab at 4 Hz", cpu, rate)

    print("live dashboard, --low-bandwidth (1 Hz, ANSI colours, no strips):")
    low = live(args.window, "--low-bandwidth")
    show("lab --low-bandwidth", *low["lab"])

    engine = engine_only(args.window)
    print("the same runs without any UI (runner + kernel sampler only):")
    print("  %-34s cpu %5.1f %% of a core" % ("engine alone", engine * 100))

    print("without the event-loop pane (the lab's own views only):")
    mine = live(args.window, panes="long-no-loop")
    show("lab at 4 Hz, 3 panes running", *mine["lab"])
    engine3 = engine_only(args.window, "long-no-loop")
    print("  %-34s cpu %5.1f %% of a core" % ("engine alone, same 3 runs", engine3 * 100))
    print("  %-34s cpu %5.1f %% of a core" % ("drawing (lab minus engine)",
                                             max(0.0, mine["lab"][0] - engine3) * 100))

    cpu, rate = idle(args.window)
    print("idle dashboard (nothing running):")
    show("lab idle", cpu, rate)

    lab_cpu, lab_rate = figures["lab"]
    htop_cpu = min(figures["htop -d 2 (5 Hz)"][0], figures["htop -d 3 (3.3 Hz)"][0])
    print("verdict: first frame %s, bytes %s, lab cpu %s htop's (drawing alone, lab minus "
          "engine: %.1f %%)"
          % ("ok" if frame <= GOAL_FIRST_FRAME_S else "OVER",
             "ok" if lab_rate <= GOAL_BYTES_PER_S else "OVER",
             "<=" if lab_cpu <= htop_cpu else ">", max(0.0, lab_cpu - engine) * 100))
    return 0


if __name__ == "__main__":
    sys.exit(main())
