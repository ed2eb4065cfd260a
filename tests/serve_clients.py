"""`conlab serve` driven without a browser: the server on a free 127.0.0.1 port, sessions
opened with aiohttp's websocket client (any Origin, any size), and the processes a
server started found by the tag every descendant inherits. Shared by tests/test_serve_*.py
and benchmarks/serve_limits.py.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(tag: str, data_dir: Path, *extra: str) -> tuple[subprocess.Popen, int]:
    """`python -m lab serve` on a free port of 127.0.0.1, once it says it is serving."""
    port = free_port()
    env = {**os.environ, "CONLAB_TEST_TAG": tag, "CONLAB_DATA_DIR": str(data_dir)}
    proc = subprocess.Popen([sys.executable, "-m", "lab", "serve", "--port", str(port), *extra],
                            cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    line = proc.stdout.readline()
    if "serving the lab on" not in line:
        proc.kill()
        proc.wait()
        raise AssertionError("the server did not start: %r" % line)
    return proc, port


def tagged(tag: str, module: str | None = None) -> list[psutil.Process]:
    """Live processes carrying our tag (every descendant of the server inherits it), the
    server itself left out; with `module`, only `python -m MODULE`."""
    found = []
    me = os.getpid()
    for proc in psutil.process_iter(["cmdline", "status"]):
        try:
            cmd = proc.info["cmdline"] or []
            if proc.pid == me or proc.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            if "serve" in cmd and "lab" in cmd:
                continue
            if module is not None and ("-m" not in cmd or cmd[cmd.index("-m") + 1] != module):
                continue
            if proc.environ().get("CONLAB_TEST_TAG") == tag:
                found.append(proc)
        except (psutil.Error, IndexError):
            continue
    return found


def sessions(tag: str) -> list[psutil.Process]:
    return tagged(tag, "lab")


def leftovers(tag: str) -> list[psutil.Process]:
    """Every process of this tag still running: sessions, workloads, their helpers."""
    return tagged(tag)


def kill_all(tag: str) -> None:
    """Clean-up after a test or a benchmark whatever the code under test did."""
    for proc in leftovers(tag):
        try:
            proc.kill()
        except psutil.Error:
            pass


def stop_server(proc: subprocess.Popen, tag: str) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    deadline = time.monotonic() + 15
    while leftovers(tag) and time.monotonic() < deadline:
        time.sleep(0.1)
    kill_all(tag)


def ws_url(port: int, width: int | None = None, height: int | None = None) -> str:
    url = "ws://127.0.0.1:%d/ws" % port
    if width is not None:
        url += "?width=%d&height=%d" % (width, height)
    return url


def same_origin(port: int) -> str:
    return "http://127.0.0.1:%d" % port


async def open_session(http, port: int, origin: str | None = "", width=None, height=None):
    """A websocket to the server; origin "" means the page's own origin, None sends none.
    Returns the connection, or raises aiohttp.WSServerHandshakeError if refused."""
    headers = {}
    if origin == "":
        origin = same_origin(port)
    if origin is not None:
        headers["Origin"] = origin
    return await http.ws_connect(ws_url(port, width, height), headers=headers,
                                 max_msg_size=0, autoping=True)


async def read_until(ws, condition, timeout: float) -> bytes:
    """Collect the terminal bytes a session sends until condition(bytes) holds (or the
    socket closes, or the deadline passes); returns what came."""
    import aiohttp

    received = bytearray()
    deadline = time.monotonic() + timeout
    while not condition(bytes(received)):
        left = deadline - time.monotonic()
        if left <= 0:
            break
        try:
            message = await ws.receive(timeout=left)
        except asyncio.TimeoutError:
            break
        if message.type == aiohttp.WSMsgType.BINARY:
            received += message.data
        elif message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED,
                              aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.ERROR):
            break
    return bytes(received)


async def press(ws, keys: str) -> None:
    await ws.send_json(["stdin", keys])
