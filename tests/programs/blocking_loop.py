"""An asyncio app with a bug: its handler calls time.sleep(0.3) once a second, which
freezes the whole event loop for 0.3 s each time (conlab watch names this line)."""

import asyncio
import time


async def handle(request):
    time.sleep(0.3)  # blocks the loop: should be `await asyncio.sleep(0.3)`
    return request


async def main(seconds):
    end = time.monotonic() + seconds
    request = 0
    while time.monotonic() < end:
        request += 1
        await handle(request)
        await asyncio.sleep(0.7)


if __name__ == "__main__":
    import sys

    asyncio.run(main(float(sys.argv[1]) if len(sys.argv) > 1 else 60.0))
