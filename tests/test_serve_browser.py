"""`conlab serve` for real: the server on a free 127.0.0.1 port, the page in headless
Chromium (driven over the DevTools protocol), the dashboard's own text read from the
terminal stream the page receives, a key press that starts a real run, and nothing left
behind once the server is stopped.

Chromium gets no outbound network: every host name except 127.0.0.1 resolves to nothing,
and the page itself loads only from the lab's server.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import shutil
import signal
import subprocess
import sys

import pytest

from tests.helpers import ROOT, alive, new_tag, wait_for, wait_until, workload_processes
from tests.serve_clients import free_port
from tests.serve_clients import sessions as lab_sessions

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium here (Debian: apt-get "
                                                         "install chromium)")
try:
    import textual_serve  # noqa: F401
except ImportError:  # pragma: no cover
    pytestmark = pytest.mark.skip(reason="textual-serve is not installed")

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--disable-extensions", "--mute-audio",
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
    "--window-size=1100,700",
]
ESCAPE = re.compile(r"\x1b(\[[0-9;?<>=]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[()][0-9A-Za-z]|.)")


class DevTools:
    """The smallest DevTools-protocol client: commands, and events kept as they come."""

    def __init__(self, ws) -> None:
        self.ws = ws
        self.next_id = 0
        self.pending: dict[int, asyncio.Future] = {}
        self.events: list[dict] = []
        self.reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        async for message in self.ws:
            data = json.loads(message.data)
            if "id" in data and data["id"] in self.pending:
                self.pending.pop(data["id"]).set_result(data)
            else:
                self.events.append(data)

    async def send(self, method: str, session: str | None = None, **params) -> dict:
        self.next_id += 1
        future = asyncio.get_running_loop().create_future()
        self.pending[self.next_id] = future
        message = {"id": self.next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        await self.ws.send_str(json.dumps(message))
        reply = await asyncio.wait_for(future, 20)
        assert "error" not in reply, reply
        return reply.get("result", {})

    def terminal_text(self) -> str:
        """Everything the app wrote to the page's terminal so far, escapes removed."""
        chunks = []
        for event in self.events:
            if event.get("method") != "Network.webSocketFrameReceived":
                continue
            response = event["params"]["response"]
            payload = response.get("payloadData", "")
            if response.get("opcode") == 2:  # binary: the terminal's bytes
                payload = base64.b64decode(payload).decode("utf-8", "replace")
            chunks.append(payload)
        return ESCAPE.sub("", "".join(chunks))

    def requested_urls(self) -> list[str]:
        return [e["params"]["request"]["url"] for e in self.events
                if e.get("method") == "Network.requestWillBeSent"]


@pytest.fixture
def server(tmp_path):
    """`conlab serve` on a free port; yields (url, tag, process); stopped with SIGTERM."""
    tag = new_tag()
    port = free_port()
    env = {**os.environ, "CONLAB_TEST_TAG": tag, "CONLAB_DATA_DIR": str(tmp_path / "data")}
    proc = subprocess.Popen([sys.executable, "-m", "lab", "serve", "--port", str(port)],
                            cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = proc.stdout.readline()
        assert "serving the lab on http://127.0.0.1:%d" % port in line, line
        yield "http://127.0.0.1:%d/" % port, tag, proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.fixture
def chromium(tmp_path):
    """Headless Chromium with DevTools on a port it picks; killed (whole group) after."""
    profile = tmp_path / "profile"
    proc = subprocess.Popen([CHROMIUM, *CHROMIUM_FLAGS, "--user-data-dir=%s" % profile,
                             "--remote-debugging-port=0", "about:blank"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        active = profile / "DevToolsActivePort"
        wait_for(lambda: active.exists() and len(active.read_text().split()) >= 2, 30,
                 "chromium's DevTools port")
        port, path = active.read_text().split()[:2]
        yield "ws://127.0.0.1:%s%s" % (port, path)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()


@pytest.mark.slow
@pytest.mark.parametrize("stop", ["SIGTERM", "SIGKILL"])
async def test_the_dashboard_renders_in_chromium_and_stopping_the_server_leaves_nothing(
        server, chromium, stop):
    import aiohttp

    url, tag, proc = server
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(chromium, max_msg_size=0) as ws:
            tools = DevTools(ws)
            target = await tools.send("Target.createTarget", url="about:blank")
            session = (await tools.send("Target.attachToTarget", targetId=target["targetId"],
                                        flatten=True))["sessionId"]
            await tools.send("Network.enable", session)
            await tools.send("Page.enable", session)
            await tools.send("Page.navigate", session, url=url)

            # One browser session = one `python -m lab` child of the server.
            sessions = await wait_until(lambda: lab_sessions(tag), 30, "a `python -m lab` session")
            assert len(sessions) == 1
            assert sessions[0].ppid() == proc.pid
            # The dashboard, as the page's terminal received it.
            for text in ("conlab ·", "Threads & the GIL", "Race", "r run"):
                await wait_until(lambda: text in tools.terminal_text(), 30,
                            "%r on the page's terminal" % text)
            title = await tools.send("Runtime.evaluate", session, expression="document.title")
            assert title["result"]["value"] == "conlab"
            body = await tools.send("Runtime.evaluate", session,
                                    expression="document.body.className")
            assert "-first-byte" in body["result"]["value"]  # xterm.js drew the app's bytes
            # Keys typed in the page reach the lab: `r` runs the focused pane for real.
            await tools.send("Runtime.evaluate", session, expression=(
                "document.querySelector('.xterm-helper-textarea').focus()"))
            await tools.send("Input.insertText", session, text="r")
            workers = await wait_until(lambda: workload_processes(tag), 30,
                                  "a `-m workloads` child started from the browser")
            assert "gil-cpu" in workers[0].cmdline()
            # Nothing left the machine: every request went to the lab's own server.
            origin = url.rstrip("/")
            outside = [u for u in tools.requested_urls()
                       if not u.startswith(origin) and not u.startswith("about:")]
            assert outside == []
            tools.reader.cancel()

    session_pids = [p.pid for p in sessions] + [w.pid for w in workers]
    proc.send_signal(getattr(signal, stop))
    code = proc.wait(timeout=30)
    if stop == "SIGTERM":  # stopped cleanly: every session stopped before it exits
        assert code == 0, proc.stdout.read()
        assert alive(session_pids) == []
    else:  # killed outright: the kernel kills each session, and its runs in turn
        assert code == -signal.SIGKILL
        wait_for(lambda: not alive(session_pids), 20, "the sessions to follow the server")
    assert lab_sessions(tag) == [] and workload_processes(tag) == []


def test_a_reachable_host_is_refused_without_allow_remote():
    done = subprocess.run([sys.executable, "-m", "lab", "serve", "--host", "0.0.0.0",
                           "--port", str(free_port())], capture_output=True, text=True,
                          cwd=ROOT, timeout=60, stdin=subprocess.DEVNULL)
    assert done.returncode == 2
    assert "--allow-remote" in done.stderr and "no password" in done.stderr


def test_allow_remote_warns_before_serving():
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "lab", "serve", "--host", "0.0.0.0",
                             "--port", str(port), "--allow-remote"], cwd=ROOT,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        first = proc.stdout.readline()
        assert "WARNING" in first and "0.0.0.0:%d" % port in first and "no password" in first
        assert "serving the lab" in proc.stdout.readline()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0


@pytest.mark.slow
async def test_the_page_says_why_a_session_past_the_cap_was_refused(chromium, tmp_path):
    """With --max-sessions 1 and one session open, the page shows the server's reason."""
    import aiohttp

    from tests.serve_clients import open_session, read_until, start_server, stop_server

    tag = new_tag()
    proc, port = start_server(tag, tmp_path / "data", "--max-sessions", "1")
    try:
        async with aiohttp.ClientSession() as http:
            first = await open_session(http, port)
            assert b"r run" in await read_until(first, lambda b: b"r run" in b, 60)
            async with http.ws_connect(chromium, max_msg_size=0) as ws:
                tools = DevTools(ws)
                target = await tools.send("Target.createTarget", url="about:blank")
                session = (await tools.send("Target.attachToTarget", flatten=True,
                                            targetId=target["targetId"]))["sessionId"]
                await tools.send("Page.enable", session)
                await tools.send("Page.navigate", session, url="http://127.0.0.1:%d/" % port)
                shown = {"text": ""}

                async def ended_text() -> str:
                    reply = await tools.send("Runtime.evaluate", session, expression=(
                        "(document.body && document.body.classList.contains('-closed'))"
                        " ? document.getElementById('ended-text').textContent : ''"))
                    return reply["result"].get("value", "")

                async def pause() -> None:
                    await asyncio.sleep(0.05)
                    shown["text"] = await ended_text()

                await wait_until(lambda: "in use" in shown["text"], 30,
                                 "the refusal on the page", pause=pause)
                assert "--max-sessions 1" in shown["text"]
                tools.reader.cancel()
            assert len(lab_sessions(tag)) == 1  # the page's session was never started
            await first.close()
    finally:
        stop_server(proc, tag)
