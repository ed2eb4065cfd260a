"""Start the local delay server (`_delay_server`) as a child of the experiment, learn its
port, and stop it with the run. The server asks the kernel to kill it if we die first."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import urllib.request

from ._proto import ENV_CPU_CLOCKS, ENV_EVENT_FD

START_TIMEOUT_S = 20.0
STOP_GRACE_S = 2.0
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class ServerError(RuntimeError):
    pass


class DelayServer:
    """`with DelayServer(out) as server: server.url("/delay/1")`."""

    host = "127.0.0.1"

    def __init__(self, out=None):
        self.out = out
        self.process = None
        self.port = None

    @property
    def pid(self):
        return self.process.pid if self.process else None

    def url(self, path):
        return "http://%s:%d%s" % (self.host, self.port, path)

    def __enter__(self):
        env = dict(os.environ)
        env.pop(ENV_EVENT_FD, None)  # the server does not speak the lab protocol
        env.pop(ENV_CPU_CLOCKS, None)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "workloads._delay_server", "--parent-pid", str(os.getpid())],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, env=env,
        )
        try:
            self.port = self._read_port()
        except BaseException:
            self.stop()
            raise
        if self.out is not None:
            # Reported on the server's behalf, so the lab lists and samples it.
            self.out.emit("process", pid=self.process.pid, native_id=self.process.pid,
                          name="delay-server", role="server", ppid=os.getpid())
            self.out.emit("server", host=self.host, port=self.port, pid=self.process.pid)
        return self

    def _read_port(self):
        stream = self.process.stdout
        ready, _, _ = select.select([stream], [], [], START_TIMEOUT_S)
        line = stream.readline().decode("ascii", "replace") if ready else ""
        if not line.startswith("PORT "):
            raise ServerError("the delay server did not start (said %r)" % line.strip())
        return int(line.split()[1])

    def stats(self, reset=False):
        try:
            with _OPENER.open(self.url("/stats" + ("?reset=1" if reset else "")), timeout=5) as r:
                return json.loads(r.read())
        except OSError:
            return {}

    def stop(self):
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if self.out is not None:
            self.out.emit("process_exit", pid=process.pid, native_id=process.pid,
                          name="delay-server", role="server")

    def __exit__(self, *exc):
        self.stop()
        if self.process is not None and self.process.stdout is not None:
            self.process.stdout.close()
        return False
