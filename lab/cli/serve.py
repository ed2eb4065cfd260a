"""`conlab serve`: the lab in a web browser, through textual-serve.

Each browser session gets its own `python -m lab` (the very same TUI, drawn by
textual-serve's terminal in the page), so every run it starts is a child of that lab
and dies with it. The server listens on 127.0.0.1 unless told otherwise; another
address needs `--allow-remote` and prints a warning: there is no password, and whoever
reaches the page can start experiments on this machine.

Nothing outlives the server: the server stops every session when it stops (SIGTERM
first, so each lab stops its runs cleanly) and sweeps any descendant left. If the server
is killed outright, the kernel SIGKILLs each session (PR_SET_PDEATHSIG, set before the
lab starts) and each of its workloads in turn (they ask for the same when they start):
a SIGTERM there would need the session's own loop, which a loaded machine can starve
for seconds, and a Textual shutdown can block writing to the dead server's pipe.

Limits, whoever connects: at most --max-sessions sessions at once (default: the CPUs
this process may use); a session past it is refused with a reason the page shows and
nothing is started. Websockets are same-origin only (see check_origin). The terminal is
at most MAX_WIDTH x MAX_HEIGHT cells, at the start and on every resize.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import os
import signal
import socket
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

from lab.cli.common import EXIT_OK, refuse

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
SESSION_STOP_S = 6.0  # a session's lab gets this long to stop its runs before SIGKILL
MAX_SESSIONS_LIMIT = 64  # the most --max-sessions accepts (each session is ~45 MiB + its runs)
MAX_WIDTH, MAX_HEIGHT = 500, 200  # terminal cells; far past any screen, far below 3 GB
TEMPLATES = Path(__file__).resolve().parent / "serve_templates"


def add_command(sub) -> None:
    serve = sub.add_parser("serve", help="the lab in a web browser (textual-serve), on "
                                         "127.0.0.1 unless --allow-remote")
    serve.add_argument("--host", default=DEFAULT_HOST,
                       help="address to listen on (default 127.0.0.1: this machine only)")
    serve.add_argument("--port", type=_port, default=DEFAULT_PORT,
                       help="port (default %d; 0 picks a free one)" % DEFAULT_PORT)
    serve.add_argument("--allow-remote", action="store_true",
                       help="allow a --host other machines can reach (no password: anyone "
                            "who reaches the page can run experiments here)")
    serve.add_argument("--public-url", metavar="URL",
                       help="the address browsers use, if not http://HOST:PORT (a proxy)")
    serve.add_argument("--max-sessions", type=_max_sessions, default=None, metavar="N",
                       help="browser sessions at once, 1 to %d (default: the CPUs this "
                            "process may use, here %d); more are refused"
                            % (MAX_SESSIONS_LIMIT, usable_cpus()))


def usable_cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _max_sessions(text: str) -> int:
    problem = "--max-sessions must be a whole number from 1 to %d" % MAX_SESSIONS_LIMIT
    if not (text.isascii() and text.isdigit()) or len(text) > 6:
        raise argparse.ArgumentTypeError("%s, got %r" % (problem, text[:20]))
    value = int(text)
    if not 1 <= value <= MAX_SESSIONS_LIMIT:
        raise argparse.ArgumentTypeError("%s, got %d" % (problem, value))
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("--port must be a whole number from 0 to 65535, "
                                         "got %r" % text) from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError("--port must be a whole number from 0 to 65535, "
                                         "got %d" % value)
    return value


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def served_command(args: argparse.Namespace) -> list[str]:
    """The command each browser session runs: the lab's own TUI."""
    words = [sys.executable, "-m", "lab"]
    if getattr(args, "python", None):
        words += ["--python", args.python]
    if getattr(args, "refresh_hz", None):
        words += ["--refresh-hz", str(args.refresh_hz)]
    if getattr(args, "low_bandwidth", False):
        words.append("--low-bandwidth")
    return words


def clamp_size(width, height) -> tuple[int, int] | None:
    """A terminal size the server will pass on: whole cells, 1..MAX; None if not numbers."""
    try:
        width, height = int(width), int(height)
    except (TypeError, ValueError, OverflowError):
        return None
    return min(max(width, 1), MAX_WIDTH), min(max(height, 1), MAX_HEIGHT)


def check_host(host: str | None, allowed: set[str] | None) -> str | None:
    """None if this server answers to that Host header, else why not."""
    host = (host or "").lower()
    if allowed is not None and host not in allowed:
        return "Host %r is not this server's (%s)" % (host[:80], ", ".join(sorted(allowed)))
    return None


def check_origin(origin: str | None, host: str | None, allowed_hosts: set[str] | None,
                 public_url: str) -> str | None:
    """None if a websocket may open, else why not (one line).

    A page on another site may open a websocket to 127.0.0.1 (browsers allow it and send
    the page's Origin), so the Origin must be this server's own: http(s)://Host, the
    --public-url behind a proxy, or on 127.0.0.1 any of this server's names (a page
    opened at localhost talks to the 127.0.0.1 of --public-url). A missing Origin is refused too: every browser sends one,
    and a script that leaves it out could as easily send the right one, so allowing it
    would only add a second rule. On 127.0.0.1 the Host must also be one of this
    server's names, which stops a DNS-rebinding page (evil.example resolving to
    127.0.0.1, where its Origin and Host would agree).
    """
    problem = check_host(host, allowed_hosts)
    if problem:
        return problem
    host = (host or "").lower()
    if not origin:
        return "no Origin header: only the lab's own page may open a session"
    origin = origin.lower().rstrip("/")
    own = {"http://" + host, "https://" + host, public_url.lower().rstrip("/")}
    public = urlsplit(public_url)
    own.add("%s://%s" % (public.scheme, public.netloc.lower()))
    for name in allowed_hosts or ():
        own |= {"http://" + name, "https://" + name}
    if origin not in own:
        return "Origin %r is not this server's: only the lab's own page may open a session" % (
            origin[:80])
    return None


def allowed_hosts(host: str, port: int, public_url: str) -> set[str] | None:
    """The Host headers a loopback server answers to; None (any) if served remotely."""
    if not is_loopback(host):
        return None
    names = {"127.0.0.1", "localhost", "[::1]", host.lower()}
    if ":" in host:
        names.add("[%s]" % host.lower())
    found = {"%s:%d" % (name, port) for name in names}
    if port == 80:
        found |= names
    public = urlsplit(public_url)
    if public.netloc:
        found.add(public.netloc.lower())
    return found


def _bindable(host: str, port: int) -> tuple[int, str | None]:
    """(port, None) if we can listen there (port 0: a free one is picked), else the reason."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
            return probe.getsockname()[1], None
    except OSError as exc:
        return port, "cannot listen on %s port %d: %s" % (host, port, exc.strerror or exc)


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        import textual_serve.server  # noqa: F401
    except ImportError:
        return refuse("conlab serve needs the textual-serve package "
                       "(pip install textual-serve)")
    if not is_loopback(args.host):
        if not args.allow_remote:
            return refuse("--host %s can be reached from other machines; the lab has no "
                           "password, so add --allow-remote if that is what you want "
                           "(default: 127.0.0.1)" % args.host)
        print("conlab: WARNING: serving the lab on %s:%d. There is no password: anyone who "
              "can reach this address can start experiments (processes, threads, load) on "
              "this machine. Stop with Ctrl+C." % (args.host, args.port), file=sys.stderr)
    port, problem = _bindable(args.host, args.port)
    if problem:
        return refuse(problem)
    server = make_server(args, port)
    try:
        server.serve()
    finally:
        stop_descendants()  # whatever happened above, no session outlives the server
    return EXIT_OK


def make_server(args: argparse.Namespace, port: int):
    from aiohttp import WSCloseCode, web
    from textual_serve.app_service import AppService
    from textual_serve.server import Server, log, to_int
    from workloads import die_with_parent

    server_pid = os.getpid()

    class LabSession(AppService):
        """One browser session: the lab under a death signal, sizes clamped."""

        async def _open_app_process(self, width: int = 80, height: int = 24):
            self._process = process = await asyncio.create_subprocess_exec(
                *self.command,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=self._build_environment(width=width, height=height),
                preexec_fn=lambda: die_with_parent(server_pid),
            )
            self._stdin = process.stdin
            return process

        async def start(self, width: int, height: int) -> None:
            width, height = clamp_size(width, height) or (80, 24)
            await super().start(width, height)

        async def set_terminal_size(self, width, height) -> None:
            size = clamp_size(width, height)
            if size is not None:
                await super().set_terminal_size(*size)

        async def stop(self) -> None:
            """Ask the lab to quit; SIGKILL it if it has not within SESSION_STOP_S (its
            workloads follow it). Returns once the process is gone."""
            process = self._process
            if self._task is not None:
                await self._download_manager.cancel_app_downloads(
                    app_service_id=self.app_service_id)
                await self.send_meta({"type": "quit"})
                try:
                    await asyncio.wait_for(asyncio.shield(self._task), SESSION_STOP_S)
                except asyncio.TimeoutError:
                    pass
            if process is not None and process.returncode is None:
                try:
                    await asyncio.wait_for(process.wait(), 1.0)
                except asyncio.TimeoutError:
                    process.kill()
                    await process.wait()
            if self._task is not None:
                await self._task
                self._task = None

    class LabServer(Server):
        """textual-serve's server: a short shutdown that stops every session, a cap on
        sessions, same-origin websockets, clamped sizes."""

        max_sessions = args.max_sessions or usable_cpus()
        sessions = 0
        hosts: set[str] | None = None

        async def on_startup(self, app) -> None:
            pass  # textual-serve's banner; ours is announce(), once listening

        def announce(self) -> None:
            print("conlab: serving the lab on %s (at most %d session%s at once; Ctrl+C "
                  "stops it and every session)" % (self.public_url, self.max_sessions,
                                                   "" if self.max_sessions == 1 else "s"),
                  flush=True)

        async def on_shutdown(self, app) -> None:
            await stop_sessions()

        def refusal(self, request) -> str | None:
            return check_origin(request.headers.get("Origin"), request.headers.get("Host"),
                                self.hosts, self.public_url)

        async def handle_index(self, request):
            problem = check_host(request.headers.get("Host"), self.hosts)
            if problem:
                raise web.HTTPForbidden(text="conlab: %s\n" % problem)
            return await super().handle_index(request)

        async def handle_websocket(self, request):
            problem = self.refusal(request)
            if problem:
                log.warning("refused a websocket: %s", problem)
                raise web.HTTPForbidden(text="conlab: %s\n" % problem)
            websocket = web.WebSocketResponse(heartbeat=15)
            if self.sessions >= self.max_sessions:
                # Said in the close reason, which the page shows (at most 123 bytes).
                reason = ("all %d sessions are in use (--max-sessions %d): close one, then "
                          "reload" % (self.max_sessions, self.max_sessions))
                await websocket.prepare(request)
                await websocket.close(code=WSCloseCode.TRY_AGAIN_LATER,
                                      message=reason.encode()[:123])
                return websocket
            self.sessions += 1  # counted until its process is gone
            try:
                return await self._serve_session(request, websocket)
            finally:
                self.sessions -= 1

        async def _serve_session(self, request, websocket):
            width = to_int(request.query.get("width", "80"), 80)
            height = to_int(request.query.get("height", "24"), 24)
            session = None
            try:
                await websocket.prepare(request)
                session = LabSession(self.command, write_bytes=websocket.send_bytes,
                                     write_str=websocket.send_str, close=websocket.close,
                                     download_manager=self.download_manager,
                                     debug=self.debug)
                await session.start(width, height)
                await self._process_messages(websocket, session)
            except asyncio.CancelledError:
                await websocket.close()
            except Exception as error:
                log.exception(error)
            finally:
                if session is not None:
                    await asyncio.shield(session.stop())
            return websocket

        def serve(self, debug: bool = False) -> None:
            self.debug = debug
            self.initialize_logging()
            asyncio.run(self._serve())

        async def _serve(self) -> None:
            """Listen, then say so (on_startup would speak before the socket listens),
            until a signal; then stop every session (on_shutdown)."""
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                loop.add_signal_handler(sig, stop.set)
            runner = web.AppRunner(await self._make_app(), handle_signals=False,
                                   shutdown_timeout=SESSION_STOP_S + 2)
            await runner.setup()
            try:
                await web.TCPSite(runner, self.host, self.port).start()
                self.announce()
                await stop.wait()
            finally:
                await runner.cleanup()

    host = args.host
    url_host = "[%s]" % host if ":" in host else host
    public_url = args.public_url or "http://%s:%d" % (url_host, port)
    server = LabServer(served_command(args), host=host, port=port, title="conlab",
                       public_url=public_url, templates_path=str(TEMPLATES))
    server.hosts = allowed_hosts(host, port, public_url)
    return server


async def stop_sessions() -> None:
    """SIGTERM each session's lab (it stops its runs and quits), then SIGKILL stragglers."""
    import psutil

    sessions = psutil.Process().children(recursive=False)
    for proc in sessions:
        try:
            proc.send_signal(signal.SIGTERM)
        except psutil.Error:
            continue
    deadline = time.monotonic() + SESSION_STOP_S
    while time.monotonic() < deadline and any(_alive(p) for p in sessions):
        await asyncio.sleep(0.05)
    # asyncio reaps the sessions it started; here we only make sure nothing is left.
    stop_descendants(reap=False)


def stop_descendants(reap: bool = True) -> None:
    """Last resort: SIGKILL every process below this one (and reap them, once the
    server's loop, which reaps its own children, is gone)."""
    import psutil

    try:
        left = [p for p in psutil.Process().children(recursive=True) if _alive(p)]
    except psutil.Error:
        return
    for proc in left:
        try:
            proc.kill()
        except psutil.Error:
            pass
    if reap:
        psutil.wait_procs(left, timeout=3)
        while True:
            try:
                if os.waitpid(-1, os.WNOHANG)[0] == 0:
                    break
            except ChildProcessError:
                break


def _alive(proc) -> bool:
    import psutil

    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
