"""Making an event loop by name: the standard asyncio loop or uvloop (imported lazily,
so every experiment module still imports on an interpreter without uvloop)."""

from __future__ import annotations

import asyncio

LOOPS = ("asyncio", "uvloop")


def new_loop(name):
    if name == "uvloop":
        import uvloop  # optional: declared in REQUIRES_FOR, checked before the run

        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def loop_description(name):
    """What actually ran: the loop class and, for uvloop, its version."""
    if name == "uvloop":
        import uvloop

        return "uvloop.Loop %s" % getattr(uvloop, "__version__", "?")
    loop = asyncio.new_event_loop()
    try:
        selector = getattr(loop, "_selector", None)
        kind = type(selector).__name__ if selector is not None else ""
        return ("%s.%s %s" % (type(loop).__module__, type(loop).__name__, kind)).strip()
    finally:
        loop.close()


def run_on(name, coroutine_factory):
    """Run `coroutine_factory()` to completion on a fresh loop of that kind (3.9-safe:
    asyncio.run() only takes a loop factory from 3.12)."""
    loop = new_loop(name)
    try:
        asyncio.set_event_loop(loop)
        result = loop.run_until_complete(coroutine_factory())
        loop.run_until_complete(loop.shutdown_asyncgens())
        shutdown = getattr(loop, "shutdown_default_executor", None)
        if shutdown is not None:
            loop.run_until_complete(shutdown())
        return result
    finally:
        asyncio.set_event_loop(None)
        loop.close()
