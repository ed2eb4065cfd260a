"""The lab's own stand-in for httpbin.org: an aiohttp server on 127.0.0.1 (never another
address), on a free port, with `/delay/{seconds}`, `/bytes/{n}` and `/stats`.

Started by an experiment as its own child process:

    python -m workloads._delay_server --parent-pid PID

It prints one line, `PORT <n>`, once it listens, and serves until SIGTERM, or until its
parent dies (the kernel kills it: PR_SET_PDEATHSIG). aiohttp is imported here only.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import sys

from ._proto import die_with_parent, name_this_thread

HOST = "127.0.0.1"  # loopback only: the lab never listens on a reachable address
MAX_DELAY_S = 60.0
MAX_BYTES = 16 * 1024 * 1024
BACKLOG = 4096


class Counters:
    def __init__(self):
        self.in_flight = 0
        self.max_in_flight = 0
        self.served = 0

    def reset(self):
        self.max_in_flight = self.in_flight
        self.served = 0


def make_app(counters):
    from aiohttp import web

    async def delay(request):
        try:
            seconds = min(max(float(request.match_info["seconds"]), 0.0), MAX_DELAY_S)
        except ValueError:
            raise web.HTTPBadRequest(text="delay must be a number of seconds")
        counters.in_flight += 1
        counters.max_in_flight = max(counters.max_in_flight, counters.in_flight)
        try:
            await asyncio.sleep(seconds)  # the "slow upstream": waiting costs no CPU
        finally:
            counters.in_flight -= 1
            counters.served += 1
        return web.json_response({"delay": seconds})

    async def payload(request):
        try:
            size = min(max(int(request.match_info["n"]), 0), MAX_BYTES)
        except ValueError:
            raise web.HTTPBadRequest(text="n must be a number of bytes")
        counters.served += 1
        return web.Response(body=b"x" * size, content_type="application/octet-stream")

    async def stats(request):
        body = {"in_flight": counters.in_flight, "max_in_flight": counters.max_in_flight,
                "served": counters.served, "pid": os.getpid()}
        if request.query.get("reset"):
            counters.reset()
        return web.json_response(body)

    app = web.Application()
    app.router.add_get("/delay/{seconds}", delay)
    app.router.add_get("/bytes/{n}", payload)
    app.router.add_get("/stats", stats)
    return app


def listening_socket():
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, 0))  # port 0: the kernel picks a free one
    sock.listen(BACKLOG)
    return sock


async def serve(report):
    from aiohttp import web

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    sock = listening_socket()
    runner = web.AppRunner(make_app(Counters()), access_log=None)
    await runner.setup()
    await web.SockSite(runner, sock, backlog=BACKLOG).start()
    report(sock.getsockname()[1])
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m workloads._delay_server")
    parser.add_argument("--parent-pid", type=int, default=None)
    args = parser.parse_args(argv)
    die_with_parent(args.parent_pid)  # first thing: never outlive the experiment
    name_this_thread("delay-server")

    def report(port):
        sys.stdout.write("PORT %d\n" % port)
        sys.stdout.flush()

    asyncio.run(serve(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
