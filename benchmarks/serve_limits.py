"""The attack on `conlab serve` from issue 10, repeated: what a hostile page or client can
make the server start, and what is left once the server is killed.

    python benchmarks/serve_limits.py                      # defaults below
    python benchmarks/serve_limits.py --foreign 20 --extra 4 --max-sessions 2

Phases, each on the same server (127.0.0.1, a free port):
  foreign  N websockets with Origin http://evil.example.com: sessions started
  huge     one session at ?width=100000&height=100000, then a live resize to the same:
           the size the session was given and its peak RSS (killed past --rss-limit)
  cap      max-sessions + M same-origin sessions: how many started, how many refused
  kill     every accepted session (500x200, the largest size allowed: a busy loop)
           presses `a` (runs every pane), then kill -9 of the
           server: `-m lab` / `-m workloads` processes left at +1 s and +3 s
Peak RSS is the sum over the server's sessions and workloads, sampled every 0.1 s.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402

from tests.helpers import new_tag  # noqa: E402
from tests.serve_clients import (kill_all, leftovers, open_session, press, read_until,  # noqa: E402
                                 sessions, start_server, tagged)

HUGE = 100_000
MiB = 1024 * 1024


class Peak:
    """Samples the RSS of every tagged process in the background."""

    def __init__(self, tag: str, limit: int):
        self.tag, self.limit, self.peak, self.session_peak = tag, limit, 0, 0
        self.over_limit = False

    async def watch(self) -> None:
        while True:
            total = 0
            for proc in leftovers(self.tag):
                try:
                    rss = proc.memory_info().rss
                except psutil.Error:
                    continue
                total += rss
                self.session_peak = max(self.session_peak, rss)
                if rss > self.limit:  # never let the benchmark itself harm the host
                    self.over_limit = True
                    proc.kill()
            self.peak = max(self.peak, total)
            await asyncio.sleep(0.1)


async def refused_or_open(http, port, **kw):
    """(ws, None) for a session that opened, (None, reason) for one refused."""
    import aiohttp

    try:
        ws = await open_session(http, port, **kw)
    except aiohttp.WSServerHandshakeError as exc:
        return None, "HTTP %d" % exc.status
    try:
        first = await ws.receive(timeout=30)
    except asyncio.TimeoutError:
        return ws, None
    if first.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
        return None, "closed: %s" % (first.extra or ws.close_code)
    return ws, None


async def wait_gone(tag: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while leftovers(tag) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)


async def attack(args) -> dict:
    import aiohttp

    tag = new_tag()
    data = Path(tempfile.mkdtemp(prefix="serve-limits-"))
    extra = ["--max-sessions", str(args.max_sessions)] if args.max_sessions else []
    server, port = start_server(tag, data, *extra)
    peak = Peak(tag, args.rss_limit * MiB)
    watcher = asyncio.ensure_future(peak.watch())
    figures: dict = {}
    try:
        async with aiohttp.ClientSession() as http:
            # foreign origin
            opened = [await refused_or_open(http, port, origin="http://evil.example.com")
                      for _ in range(args.foreign)]
            started = 0
            for _ in range(30):  # sessions start while the sockets are open
                started = max(started, len(sessions(tag)))
                await asyncio.sleep(0.1)
            figures["foreign: sessions started"] = "%d of %d" % (started, args.foreign)
            for ws, _ in opened:
                if ws is not None:
                    await ws.close()
            await wait_gone(tag)

            # huge size, then a live resize to the same
            ws, why = (await refused_or_open(http, port, width=HUGE, height=HUGE)
                       if args.huge_s > 0 else (None, "skipped"))
            if ws is None:
                figures["huge: session"] = "refused (%s)" % why
            else:
                found = sessions(tag)
                env = found[0].environ() if found else {}
                figures["huge: size given"] = "%sx%s" % (env.get("COLUMNS"), env.get("ROWS"))
                await ws.send_json(["resize", {"width": HUGE, "height": HUGE}])
                await read_until(ws, lambda b: False, args.huge_s)
                figures["huge: peak session RSS"] = "%.0f MiB%s" % (
                    peak.session_peak / MiB, " (killed at the limit)" if peak.over_limit else "")
                await ws.close()
            await wait_gone(tag)

            # sessions past the cap, then busy sessions and kill -9
            total = args.max_sessions_expected + args.extra
            opened = [await refused_or_open(http, port, width=args.width, height=args.height)
                      for _ in range(total)]
            live = [ws for ws, _ in opened if ws is not None]
            reasons = sorted({why for _, why in opened if why})
            figures["cap: sessions started"] = "%d of %d (refused %d: %s)" % (
                len(sessions(tag)), total, total - len(live), "; ".join(reasons) or "-")
            for ws in live:
                await read_until(ws, lambda b: b"r run" in b, 30)  # the dashboard is drawn
                await press(ws, "a")
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and len(tagged(tag, "workloads")) < 2 * len(live):
                await asyncio.sleep(0.1)
            await asyncio.sleep(args.busy_s)
            figures["kill: busy sessions"] = len(sessions(tag))
            figures["kill: workloads running"] = "%d (%d processes in all)" % (
                len(tagged(tag, "workloads")), len(leftovers(tag)))
            figures["peak RSS (sessions + workloads)"] = "%.0f MiB" % (peak.peak / MiB)
            watcher.cancel()
            server.send_signal(signal.SIGKILL)
            killed = time.monotonic()
            gone = {}  # when the last of each kind went
            marks = [1.0, 3.0, 10.0]
            while marks or len(gone) < 3:
                now = time.monotonic() - killed
                kinds = {"lab": tagged(tag, "lab"), "workloads": tagged(tag, "workloads")}
                kinds["all"] = leftovers(tag)
                for kind, procs in kinds.items():
                    if not procs and kind not in gone:
                        gone[kind] = now
                if marks and now >= marks[0]:
                    left = kinds["all"]
                    figures["survivors at +%.0f s" % marks.pop(0)] = "%d %s" % (
                        len(left), _names(left))
                if now > 30:
                    break
                await asyncio.sleep(0.05)
            figures["last session gone after"] = _when(gone.get("lab"))
            figures["last workload gone after"] = _when(gone.get("workloads"))
            figures["last process gone after"] = _when(gone.get("all"))
            for ws in live:
                await ws.close()
    finally:
        watcher.cancel()
        if server.poll() is None:
            server.kill()
        server.wait()
        kill_all(tag)
    return figures


def _names(procs) -> str:
    counts: dict = {}
    for proc in procs:
        try:
            cmd = proc.cmdline()
            name = cmd[cmd.index("-m") + 1] if "-m" in cmd else proc.name()
        except (psutil.Error, IndexError):
            name = "?"
        counts[name] = counts.get(name, 0) + 1
    return "(%s)" % ", ".join("%d %s" % (n, k) for k, n in sorted(counts.items())) if counts else ""


def _when(seconds) -> str:
    return "over 30 s" if seconds is None else "%.1f s" % seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--foreign", type=int, default=10, help="foreign-origin websockets")
    parser.add_argument("--extra", type=int, default=3, help="sessions past the cap")
    parser.add_argument("--max-sessions", type=int, default=None,
                        help="pass --max-sessions to the server (default: its own default)")
    parser.add_argument("--huge-s", type=float, default=8.0, help="seconds to watch the huge session")
    parser.add_argument("--width", type=int, default=500, help="busy sessions' terminal width")
    parser.add_argument("--height", type=int, default=200, help="busy sessions' terminal height")
    parser.add_argument("--busy-s", type=float, default=2.0, help="seconds busy before kill -9")
    parser.add_argument("--rss-limit", type=int, default=1500, help="MiB; a session past it is killed")
    args = parser.parse_args()
    import os

    args.max_sessions_expected = args.max_sessions or len(os.sched_getaffinity(0))
    figures = asyncio.run(attack(args))
    width = max(len(k) for k in figures)
    for key, value in figures.items():
        print("%-*s  %s" % (width, key, value))
    return 0


if __name__ == "__main__":
    sys.exit(main())
