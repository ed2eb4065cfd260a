"""`conlab serve` against a hostile client (issue 10, item 6), with aiohttp's websocket
client instead of a browser: a cap on sessions, same-origin websockets only, terminal
sizes clamped, and nothing left within 3 s of a kill -9 of the server with busy sessions.
Every server listens on 127.0.0.1; every process it started is found by a tag that all
its descendants inherit, and killed after the test whatever happened."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
import time

import pytest

from lab.cli.serve import MAX_HEIGHT, MAX_WIDTH, clamp_size
from tests.helpers import ROOT, new_tag, wait_until
from tests.serve_clients import (free_port, leftovers, open_session, press, read_until,
                                 same_origin, sessions, start_server, stop_server, tagged)

try:
    import aiohttp
    import textual_serve  # noqa: F401
except ImportError:  # pragma: no cover
    pytestmark = pytest.mark.skip(reason="textual-serve (and aiohttp) are not installed")

MOVE = re.compile(rb"\x1b\[(\d+);(\d+)H")  # cursor moves: the rows the app draws on


@pytest.fixture
def serve(tmp_path):
    """Starts `conlab serve EXTRA` on a free port; yields (port, tag) per call."""
    started = []

    def start(*extra: str):
        tag = new_tag()
        proc, port = start_server(tag, tmp_path / ("data-%d" % len(started)), *extra)
        started.append((proc, tag))
        return port, tag, proc

    yield start
    for proc, tag in started:
        stop_server(proc, tag)


async def first_frame(ws) -> bytes:
    """The session's first drawing (it is up), or what came before it closed."""
    return await read_until(ws, lambda b: b"r run" in b, 60)


@pytest.mark.parametrize("value", ["0", "65", "-1", "two", "1.5", "\u0664",
                                   pytest.param("9" * 5000, id="5000-digits")])
def test_a_bad_max_sessions_is_refused_with_its_range(value):
    done = subprocess.run([sys.executable, "-m", "lab", "serve", "--port", str(free_port()),
                           "--max-sessions", value], capture_output=True, text=True,
                          cwd=ROOT, timeout=60, stdin=subprocess.DEVNULL)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert "--max-sessions must be a whole number from 1 to 64" in lines[-1]
    assert len(lines[-1]) < 200  # a huge value is not echoed whole
    assert "serving" not in done.stdout


def test_the_origin_rule_on_loopback():
    from lab.cli.serve import allowed_hosts, check_origin

    hosts = allowed_hosts("127.0.0.1", 8000, "http://127.0.0.1:8000")
    ok = [("http://127.0.0.1:8000", "127.0.0.1:8000"),
          ("http://localhost:8000", "127.0.0.1:8000")]  # the page opened at localhost
    bad = [("http://evil.example.com", "127.0.0.1:8000"), (None, "127.0.0.1:8000"),
           ("null", "127.0.0.1:8000"), ("http://127.0.0.1:8001", "127.0.0.1:8000"),
           ("http://evil.example.com:8000", "evil.example.com:8000")]
    for origin, host in ok:
        assert check_origin(origin, host, hosts, "http://127.0.0.1:8000") is None
    for origin, host in bad:
        assert check_origin(origin, host, hosts, "http://127.0.0.1:8000"), (origin, host)


def test_sizes_are_clamped_and_bad_ones_ignored():
    assert clamp_size(100_000, 100_000) == (MAX_WIDTH, MAX_HEIGHT)
    assert clamp_size(-5, 0) == (1, 1)
    assert clamp_size("120", 40) == (120, 40)
    assert clamp_size(None, 40) is None and clamp_size("wide", 40) is None
    assert clamp_size(float("inf"), 1) is None


@pytest.mark.slow
async def test_a_session_past_the_cap_is_refused_with_a_reason_and_starts_nothing(serve):
    port, tag, _ = serve("--max-sessions", "1")
    async with aiohttp.ClientSession() as http:
        first = await open_session(http, port)
        assert b"r run" in await first_frame(first)
        assert len(sessions(tag)) == 1

        second = await open_session(http, port)
        message = await second.receive(timeout=30)
        assert message.type == aiohttp.WSMsgType.CLOSE, message
        assert second.close_code == aiohttp.WSCloseCode.TRY_AGAIN_LATER
        assert "--max-sessions 1" in message.extra and "in use" in message.extra
        # Had a process been started for it, it would be running by now.
        assert len(sessions(tag)) == 1

        # The slot comes back once the first session's process is gone.
        await first.close()
        await wait_until(lambda: not sessions(tag), 30, "the first session to end")
        deadline = time.monotonic() + 30
        while True:  # the server counts the slot free a moment after the process ends
            third = await open_session(http, port)
            drawn = await first_frame(third)
            await third.close()
            if b"r run" in drawn or time.monotonic() > deadline:
                break
            assert third.close_code == aiohttp.WSCloseCode.TRY_AGAIN_LATER
            await asyncio.sleep(0.1)
        assert b"r run" in drawn


@pytest.mark.slow
@pytest.mark.parametrize("origin, host", [
    ("http://evil.example.com", None),       # another site's page
    (None, None),                            # no Origin at all
    ("null", None),                          # a sandboxed or file:// page
    ("http://127.0.0.1:1", None),            # this host, another port
    ("http://evil.example.com:{port}", "evil.example.com:{port}"),  # DNS rebinding
])
async def test_a_foreign_origin_is_refused_and_starts_nothing(serve, origin, host):
    port, tag, proc = serve()
    async with aiohttp.ClientSession() as http:
        headers = {}
        if origin is not None:
            headers["Origin"] = origin.format(port=port)
        if host is not None:
            headers["Host"] = host.format(port=port)
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            ws = await http.ws_connect("ws://127.0.0.1:%d/ws" % port, headers=headers)
            await first_frame(ws)  # the old server: a session, drawn
        assert refused.value.status == 403
        assert sessions(tag) == []
        # The page's own origin still gets a session.
        ws = await open_session(http, port, origin=same_origin(port))
        assert b"r run" in await first_frame(ws)
        await ws.close()


@pytest.mark.slow
async def test_a_huge_terminal_is_clamped_at_the_start_and_on_resize(serve):
    port, tag, _ = serve()
    async with aiohttp.ClientSession() as http:
        ws = await open_session(http, port, width=800, height=300)
        drawn = await first_frame(ws)
        assert b"r run" in drawn
        environ = sessions(tag)[0].environ()
        assert (environ["COLUMNS"], environ["ROWS"]) == (str(MAX_WIDTH), str(MAX_HEIGHT))
        assert max(int(row) for row, _ in MOVE.findall(drawn)) <= MAX_HEIGHT

        # A live resize past the limit: the app redraws at the clamped size.
        await ws.send_json(["resize", {"width": 900, "height": 400}])
        await ws.send_json(["resize", {"width": 120, "height": 40}])
        await ws.send_json(["resize", {"width": 900, "height": 400}])
        redrawn = await read_until(ws, lambda b: b"\x1b[%d;1H" % MAX_HEIGHT in b
                                   or b"\x1b[%d;1H" % (MAX_HEIGHT + 1) in b, 60)
        rows = [int(row) for row, _ in MOVE.findall(redrawn)]
        assert rows and max(rows) == MAX_HEIGHT
        await ws.close()


@pytest.mark.slow
@pytest.mark.timing
async def test_nothing_outlives_a_kill_9_of_the_server_with_busy_sessions(serve):
    """Each session runs every pane (`a`) at the largest size allowed, so its loop is
    busy drawing while its workloads compete for the CPUs; then the server is killed."""
    port, tag, proc = serve("--max-sessions", "2")
    async with aiohttp.ClientSession() as http:
        live = [await open_session(http, port, width=MAX_WIDTH, height=MAX_HEIGHT)
                for _ in range(2)]
        for ws in live:
            assert b"r run" in await first_frame(ws)
            await press(ws, "a")
        await wait_until(lambda: len(tagged(tag, "workloads")) >= 4, 60,
                         "every session's runs to start")
        assert len(sessions(tag)) == 2
        proc.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        proc.wait()
        await wait_until(lambda: not leftovers(tag), 3.0,
                         "every session and workload to go within 3 s of the kill")
        assert time.monotonic() - killed < 3.5
        for ws in live:
            await ws.close()
