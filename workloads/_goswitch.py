"""The goroutine rung of the cost ladder: a Go program ping-pongs two goroutines on one P.

Built once with the M:N experiment's offline Go settings (no network, no cgo) into the
lab's cache, keyed by source and Go version. Where there is no `go`, the rung is reported
as unavailable with how to get it, never as an error. Standard library only.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile

from . import _go
from ._proto import die_with_parent

SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_goswitch.go")


def build():
    """Path of the compiled program; raises _go.GoError without Go or on a failed build."""
    go = _go.find_go()
    if go is None:
        raise _go.GoError("no `go` command: " + _go.HOW_TO_GET)
    with open(SOURCE, "rb") as f:
        source = f.read()
    version = _go.go_version(go)
    key = hashlib.sha256(source + b"\0" + version.encode()).hexdigest()[:16]
    root = _go.cache_root()
    folder = os.path.join(root, "goswitch-" + key)
    binary = os.path.join(folder, "goswitch")
    if os.access(binary, os.X_OK):
        return binary
    os.makedirs(folder, exist_ok=True)
    work = tempfile.mkdtemp(prefix="build-", dir=folder)
    try:
        with open(os.path.join(work, "main.go"), "wb") as f:
            f.write(source)
        try:
            done = subprocess.run([go, "build", "-trimpath", "-o", "goswitch", "main.go"],
                                  cwd=work, env=_go._go_env(root), capture_output=True,
                                  text=True, timeout=_go.BUILD_TIMEOUT_S,
                                  stdin=subprocess.DEVNULL, preexec_fn=die_with_parent)
        except subprocess.TimeoutExpired:
            raise _go.GoError("go build took more than %d s" % _go.BUILD_TIMEOUT_S) from None
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            raise _go.GoError("go build failed (%s): %s" % (version, " | ".join(tail)))
        os.replace(os.path.join(work, "goswitch"), binary)  # atomic against a parallel build
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return binary


def goroutine_switch_ns(round_trips):
    """Nanoseconds per goroutine switch, and the Go version that measured it."""
    binary = build()
    env = dict(os.environ)
    env.pop("GOMAXPROCS", None)
    env.pop("GODEBUG", None)
    done = subprocess.run([binary, "-n", str(round_trips)], capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL, env=env,
                          preexec_fn=die_with_parent)
    if done.returncode != 0:
        raise _go.GoError("the Go ping-pong failed: %s" % done.stderr.strip()[-200:])
    figure = json.loads(done.stdout.strip().splitlines()[-1])
    return figure["ns_per_switch"], figure.get("go", "")
