"""What every command shares: exit codes and the one-line refusal."""

from __future__ import annotations

import asyncio
import signal
import sys

EXIT_OK, EXIT_FAILED, EXIT_REFUSED = 0, 1, 2
EXIT_INTERRUPTED = 130  # Ctrl-C, as shells report it


def refuse(message: str) -> int:
    """Say what was wrong in one line on stderr; nothing was started."""
    print("conlab: %s" % message, file=sys.stderr)
    return EXIT_REFUSED


async def run_until_done(run, signals: list[int]):
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
