"""io-bound and its local delay server: wall times by model, loopback only, nothing left."""

from __future__ import annotations

import asyncio
import importlib.util
import resource
import socket
import subprocess
import sys
import time

import psutil
import pytest

from tests.helpers import (ROOT, alive, conlab, interpreter, plain_lines, run_json, skip_if_busy,
                           wait_for)
from workloads import _loops
from workloads._serverproc import DelayServer

HAVE_AIOHTTP = importlib.util.find_spec("aiohttp") is not None
HAVE_UVLOOP = importlib.util.find_spec("uvloop") is not None
pytestmark = pytest.mark.skipif(not HAVE_AIOHTTP, reason="aiohttp is not installed")
LOOPS = ["asyncio", pytest.param("uvloop", marks=pytest.mark.skipif(
    not HAVE_UVLOOP, reason="uvloop is not installed"))]


@pytest.fixture(scope="module")
def io_record():
    return run_json("io-bound", "requests=5", "delay=0.4")


@pytest.mark.timing
def test_threads_and_asyncio_take_about_one_delay_sequential_about_n(io_record):
    skip_if_busy(io_record)
    modes = io_record["result"]["modes"]
    n, delay = 5, 0.4
    assert n * delay <= modes["sequential"]["wall_s"] < n * delay + 1.0
    for mode in ("threads", "asyncio"):
        assert delay <= modes[mode]["wall_s"] < delay + 0.5, (mode, modes[mode])
        assert modes[mode]["server_max_in_flight"] == n  # all waited at the same time
    assert modes["sequential"]["server_max_in_flight"] == 1


def test_waiting_costs_little_cpu_and_threads_show_up(io_record):
    modes = io_record["result"]["modes"]
    assert modes["threads"]["peak_threads"] >= 5 + 1
    assert modes["asyncio"]["peak_threads"] <= 3  # main, sampler (and nothing per request)
    for mode in ("threads", "asyncio"):
        assert modes[mode]["cpu_s"] < 0.5 * modes[mode]["wall_s"]


def test_the_server_listened_on_loopback_and_is_gone_after_the_run(io_record):
    server = io_record["result"]["server"]
    assert server["host"] == "127.0.0.1"
    assert not alive([server["pid"]])
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server["port"]), timeout=1).close()
    assert any(t["name"] == "delay-server" for t in io_record["threads"])


def non_loopback_addresses():
    found = []
    for addresses in psutil.net_if_addrs().values():
        for a in addresses:
            if a.family == socket.AF_INET and not a.address.startswith("127."):
                found.append(a.address)
    return found


def test_the_server_is_reachable_on_127_0_0_1_only():
    with DelayServer() as server:
        listening = [c for c in psutil.Process(server.pid).net_connections(kind="inet")
                     if c.status == psutil.CONN_LISTEN]
        assert listening and all(c.laddr.ip == "127.0.0.1" for c in listening)
        socket.create_connection(("127.0.0.1", server.port), timeout=2).close()
        for address in non_loopback_addresses():
            with pytest.raises(OSError):
                socket.create_connection((address, server.port), timeout=1).close()
        pid = server.pid
    assert not alive([pid])


PARENT = """
import sys, time
from workloads._serverproc import DelayServer
server = DelayServer().__enter__()
print(server.pid, flush=True)
time.sleep(60)
"""


def test_the_server_dies_with_its_parent_even_on_kill_9():
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE,
                              stdin=subprocess.DEVNULL, cwd=ROOT, text=True)
    try:
        server_pid = int(parent.stdout.readline())
        assert alive([server_pid])
        parent.kill()
        parent.wait()
        wait_for(lambda: not alive([server_pid]), 5, "the server to die with its parent")
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


@pytest.mark.parametrize("loop_name", LOOPS)
def test_delay_endpoint_answers_after_the_delay_on_both_loops(loop_name):
    async def fetch_twice(url):
        import aiohttp

        async def one(session):
            async with session.get(url) as response:
                return await response.json()

        async with aiohttp.ClientSession() as session:
            started = time.perf_counter()
            bodies = await asyncio.gather(one(session), one(session))
            return bodies, time.perf_counter() - started

    with DelayServer() as server:
        bodies, took = _loops.run_on(loop_name, lambda: fetch_twice(server.url("/delay/0.3")))
        stats = server.stats()
    assert bodies == [{"delay": 0.3}, {"delay": 0.3}]
    assert 0.3 <= took < 1.5
    assert stats["max_in_flight"] == 2 and stats["served"] == 2


async def test_bytes_endpoint_on_the_test_loop():
    """pytest-asyncio's own loop, plain asyncio (this process may also host Textual tests)."""
    import aiohttp

    with DelayServer() as server:
        async with aiohttp.ClientSession() as session:
            async with session.get(server.url("/bytes/1000")) as response:
                body = await response.read()
    assert body == b"x" * 1000


def test_requests_past_the_open_file_limit_are_refused_before_anything_starts():
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)

    def low_limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))

    done = subprocess.run([sys.executable, "-m", "lab", "run", "io-bound", "-p", "requests=500",
                           "-p", "modes=asyncio"], capture_output=True, text=True, cwd=ROOT,
                          stdin=subprocess.DEVNULL, preexec_fn=low_limit, timeout=60)
    assert done.returncode == 2
    assert "'requests'" in done.stderr and "RLIMIT_NOFILE is 256" in done.stderr


def test_sequential_runs_that_would_take_minutes_are_refused():
    done = conlab("run", "io-bound", "-p", "requests=1000", "-p", "delay=1")
    assert done.returncode == 2 and "sequential" in done.stderr


PY39 = interpreter("3.9")


@pytest.mark.skipif(PY39 is None, reason="no CPython 3.9 under pyenv")
def test_an_interpreter_without_aiohttp_is_refused_cleanly():
    has = subprocess.run([PY39, "-c", "import aiohttp"], capture_output=True).returncode == 0
    if has:
        pytest.skip("this 3.9 has aiohttp")
    done = conlab("run", "io-bound", "--python", PY39)
    assert done.returncode == 2
    assert "aiohttp" in done.stderr


async def test_io_view_fits_a_pane_and_names_every_mode():
    from lab.core.runner import RunRequest, run_experiment
    from widgets.io_bound_view import VIEW

    state = await run_experiment(RunRequest("io-bound", {"requests": 3, "delay": 0.1}))
    view = VIEW(compact=True)
    view.draw(state)
    lines = plain_lines(view.render_width(38))
    assert len(lines) <= 9 and all(len(line) <= 38 for line in lines)
    text = "\n".join(lines)
    for mode in ("sequential", "threads", "asyncio"):
        assert mode in text
