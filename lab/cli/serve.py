"""`conlab serve`: the lab in a web browser, through textual-serve.

Each browser session gets its own `python -m lab` (the very same TUI, drawn by
textual-serve's terminal in the page), so every run it starts is a child of that lab
and dies with it. The server listens on 127.0.0.1 unless told otherwise; another
address needs `--allow-remote` and prints a warning: there is no password, and whoever
reaches the page can start experiments on this machine.

Nothing outlives the server: each session's lab asks the kernel for SIGTERM when the
server dies (setpriv --pdeathsig), the server stops every session when it stops
(SIGTERM first, so each lab stops its runs cleanly), and sweeps any descendant left.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import os
import shlex
import shutil
import signal
import socket
import sys
import time
from pathlib import Path

EXIT_OK, EXIT_FAILED, EXIT_REFUSED = 0, 1, 2
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
SESSION_STOP_S = 6.0  # a session's lab gets this long to stop its runs before SIGKILL
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


def served_command(args: argparse.Namespace) -> str:
    """The shell line textual-serve runs per browser session: `python -m lab`, tied to
    the server's life by the kernel where setpriv exists."""
    words = [sys.executable, "-m", "lab"]
    if getattr(args, "python", None):
        words += ["--python", args.python]
    if getattr(args, "refresh_hz", None):
        words += ["--refresh-hz", str(args.refresh_hz)]
    if getattr(args, "low_bandwidth", False):
        words.append("--low-bandwidth")
    setpriv = shutil.which("setpriv")
    if setpriv:
        words = [setpriv, "--pdeathsig", "TERM", "--"] + words
    return "exec " + " ".join(shlex.quote(w) for w in words)


def _refuse(message: str) -> int:
    print("conlab: %s" % message, file=sys.stderr)
    return EXIT_REFUSED


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
        return _refuse("conlab serve needs the textual-serve package "
                       "(pip install textual-serve)")
    if not is_loopback(args.host):
        if not args.allow_remote:
            return _refuse("--host %s can be reached from other machines; the lab has no "
                           "password, so add --allow-remote if that is what you want "
                           "(default: 127.0.0.1)" % args.host)
        print("conlab: WARNING: serving the lab on %s:%d. There is no password: anyone who "
              "can reach this address can start experiments (processes, threads, load) on "
              "this machine. Stop with Ctrl+C." % (args.host, args.port), file=sys.stderr)
    port, problem = _bindable(args.host, args.port)
    if problem:
        return _refuse(problem)
    server = make_server(args, port)
    try:
        server.serve()
    finally:
        stop_descendants()  # whatever happened above, no session outlives the server
    return EXIT_OK


def make_server(args: argparse.Namespace, port: int):
    from textual_serve.server import Server

    class LabServer(Server):
        """textual-serve's server, with a short shutdown that stops every session."""

        async def on_startup(self, app) -> None:
            print("conlab: serving the lab on %s (Ctrl+C stops it and every session)"
                  % self.public_url, flush=True)

        async def on_shutdown(self, app) -> None:
            await stop_sessions()

        def serve(self, debug: bool = False) -> None:
            from aiohttp import web

            self.debug = debug
            self.initialize_logging()
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                loop.add_signal_handler(sig, self.request_exit)
            web.run_app(self._make_app(), host=self.host, port=self.port,
                        handle_signals=False, loop=loop, print=None,
                        shutdown_timeout=SESSION_STOP_S + 2)

    host = args.host
    url_host = "[%s]" % host if ":" in host else host
    public_url = args.public_url or "http://%s:%d" % (url_host, port)
    return LabServer(served_command(args), host=host, port=port, title="conlab",
                     public_url=public_url, templates_path=str(TEMPLATES))


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
