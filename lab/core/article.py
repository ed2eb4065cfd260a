"""The article the lab is built around, named once for help, lessons, report and README.

The subject is our own one-sentence summary; the lab never quotes the article's text.
"""

from __future__ import annotations

TITLE = "Concurrency: Threads, the GIL, and the Event Loop"
SUBJECT = ("how the Linux kernel schedules threads, what CPython's global interpreter lock "
           "really serialises, how asyncio serves many sockets from one thread, and how Go "
           "spreads goroutines over a few threads, each with what it costs measured")


def named() -> str:
    """`the article "TITLE": SUBJECT.` in one line (callers wrap it)."""
    return 'the article "%s": %s.' % (TITLE, SUBJECT)
