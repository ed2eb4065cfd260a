"""Real Go beside the Python M:N runtime: find `go`, build the shipped program once, run it
with the scheduler's trace on, and turn that trace into the lab's events.

The build needs no network: one file, standard library only, GOPROXY=off, GOTOOLCHAIN=local,
CGO_ENABLED=0 (no C compiler either), into a cache directory keyed by the source and the
Go version. The Go process is our child and dies with us (PR_SET_PDEATHSIG, set between
fork and exec: a Go program cannot do it for itself before its runtime starts threads).
Standard library only, Python 3.9+.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile

from ._proto import die_with_parent

SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "goroutines.go")
HOW_TO_GET = ("install a Go toolchain: `apt-get install golang-go` on Debian/Ubuntu, "
              "`dnf install golang` on Fedora, or https://go.dev/dl")
BUILD_TIMEOUT_S = 300


class GoError(RuntimeError):
    """Go is missing or the build failed; the message says what to do."""


def find_go():
    """Path of the `go` command, or None. CONLAB_GO overrides the search ("none": no Go)."""
    chosen = os.environ.get("CONLAB_GO")
    if chosen is not None:
        return chosen if chosen not in ("", "none") and os.access(chosen, os.X_OK) else None
    found = shutil.which("go")
    if found:
        return found
    for candidate in ("/usr/local/go/bin/go", "/usr/lib/go/bin/go"):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def cache_root():
    """$XDG_CACHE_HOME/conlab (~/.cache/conlab); a private temp folder if that is not writable."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    root = os.path.join(base, "conlab")
    try:
        os.makedirs(root, exist_ok=True)
        if os.access(root, os.W_OK):
            return root
    except OSError:
        pass
    root = os.path.join(tempfile.gettempdir(), "conlab-cache-%d" % os.getuid())
    os.makedirs(root, mode=0o700, exist_ok=True)
    return root


def _go_env(root):
    env = dict(os.environ)
    env.update({
        "GOPATH": os.path.join(root, "go-path"),
        "GOCACHE": os.path.join(root, "go-build-cache"),
        "GOTOOLCHAIN": "local",  # never download a newer toolchain
        "GOPROXY": "off",  # never fetch a module
        "GOFLAGS": "",
        "GOWORK": "off",
        "CGO_ENABLED": "0",  # no C compiler needed
    })
    env.pop("GODEBUG", None)
    return env


def go_version(go):
    done = subprocess.run([go, "version"], capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)
    return done.stdout.strip() or done.stderr.strip()


def build(go=None):
    """Path of the compiled program, building it the first time (a few seconds)."""
    go = go or find_go()
    if go is None:
        raise GoError("runtime=go needs the `go` command, which is not on PATH: " + HOW_TO_GET)
    with open(SOURCE, "rb") as f:
        source = f.read()
    version = go_version(go)
    key = hashlib.sha256(source + b"\0" + version.encode()).hexdigest()[:16]
    root = cache_root()
    folder = os.path.join(root, "go-" + key)
    binary = os.path.join(folder, "goroutines")
    if os.access(binary, os.X_OK):
        return binary
    os.makedirs(folder, exist_ok=True)
    work = tempfile.mkdtemp(prefix="build-", dir=folder)
    try:
        main = os.path.join(work, "main.go")
        with open(main, "wb") as f:
            f.write(source)
        output = os.path.join(work, "goroutines")
        try:
            done = subprocess.run([go, "build", "-trimpath", "-o", output, "main.go"], cwd=work,
                                  env=_go_env(root), capture_output=True, text=True,
                                  timeout=BUILD_TIMEOUT_S, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise GoError("go build took more than %d s" % BUILD_TIMEOUT_S) from None
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
            raise GoError("go build failed (%s): %s" % (version, " | ".join(tail)))
        os.replace(output, binary)  # atomic: two runs building at once both succeed
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return binary


def start(binary, args, schedtrace_ms=100, detail=True):
    """Start the Go program (from the caller's thread, which must outlive it).

    stdout: the program's JSON lines; stderr: the scheduler trace."""
    env = dict(os.environ)
    env.pop("GOMAXPROCS", None)
    if schedtrace_ms:
        env["GODEBUG"] = "schedtrace=%d%s" % (schedtrace_ms, ",scheddetail=1" if detail else "")
    else:
        env.pop("GODEBUG", None)
    parent = os.getpid()
    return subprocess.Popen(
        [binary] + [str(a) for a in args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, env=env, preexec_fn=lambda: die_with_parent(parent),
        bufsize=1, universal_newlines=True,
    )


# Reading GODEBUG=schedtrace=N,scheddetail=1 ---------------------------------------------------
#
# SCHED 203ms: gomaxprocs=2 idleprocs=0 threads=11 spinningthreads=0 idlethreads=5 runqueue=134 ...
#   P0: status=2 schedtick=313 syscalltick=19 m=-1 runqsize=93 gfreecnt=31 timerslen=1
#   M6: p=-1 curg=82 mallocing=0 ... spinning=false blocked=false lockedg=-1
#   G82: status=3() m=6 lockedm=-1
# Without scheddetail the header ends with the per-P queue lengths: "runqueue=0 [3 0]".

_FIELD = re.compile(r"(\w+)=(\S*)")
_HEAD = re.compile(r"^SCHED (\d+)ms:(.*)$")
_ROW = re.compile(r"^\s+([PMG])(\d+): (.*)$")
_GSTATUS = re.compile(r"status=(\d+)\(([^)]*)\)")
P_STATUS = {0: "idle", 1: "running", 2: "syscall", 3: "gcstop", 4: "dead"}
G_STATUS = {0: "idle", 1: "runnable", 2: "running", 3: "syscall", 4: "waiting", 6: "dead",
            8: "copystack", 9: "preempted"}
# Goroutines of the runtime itself, not the program's: left out of the G counts.
_RUNTIME_WAITS = ("GC ", "force gc", "finalizer wait", "GC sweep", "GC scavenge")


def _ints(text):
    fields = {}
    for key, value in _FIELD.findall(text):
        try:
            fields[key] = int(value)
        except ValueError:
            fields[key] = value
    return fields


class SchedTrace:
    """Feed it stderr lines; it returns one snapshot per SCHED block, in the shape of
    `_mn_runtime.Runtime.schedtrace()` (what Go cannot tell us is None)."""

    def __init__(self):
        self.block = None
        self.handoff_goids = set()
        self.handoffs = 0

    def feed(self, line):
        """A finished snapshot when `line` starts the next one, else None."""
        line = line.rstrip("\n")
        head = _HEAD.match(line)
        if head:
            done = self.finish()
            self.block = {"t_ms": int(head.group(1)), "head": _ints(head.group(2)),
                          "queues": re.findall(r"\[([\d ]+)\]", head.group(2)),
                          "P": [], "M": [], "G": []}
            return done
        row = _ROW.match(line)
        if row and self.block is not None:
            kind, ident, rest = row.groups()
            fields = _ints(rest)
            fields["id"] = int(ident)
            if kind == "G":
                status = _GSTATUS.search(rest)
                if status:
                    fields["status"], fields["wait"] = int(status.group(1)), status.group(2)
            self.block[kind].append(fields)
        return None

    def finish(self):
        """The snapshot being read, completed (call at end of stream too)."""
        block, self.block = self.block, None
        if block is None:
            return None
        head = block["head"]
        gomaxprocs = head.get("gomaxprocs", 0)
        if block["P"]:
            ps = [{"id": p["id"], "status": P_STATUS.get(p.get("status"), str(p.get("status"))),
                   "runq": p.get("runqsize", 0), "runnext": None, "m": p.get("m", -1),
                   "schedtick": p.get("schedtick"), "syscalltick": p.get("syscalltick")}
                  for p in sorted(block["P"], key=lambda p: p["id"])]
        else:
            sizes = block["queues"][0].split() if block["queues"] else []
            ps = [{"id": i, "status": None, "runq": int(n), "runnext": None, "m": None,
                   "schedtick": None, "syscalltick": None} for i, n in enumerate(sizes)]
        gstatus = {g["id"]: g.get("status") for g in block["G"]}
        ms = []
        for m in sorted(block["M"], key=lambda m: m["id"]):
            curg = m.get("curg", -1)
            if curg != -1:
                state = "syscall" if gstatus.get(curg) == 3 else "running"
            elif m.get("spinning") == "true":
                state = "spinning"
            elif m.get("blocked") == "true":
                state = "idle"
            else:
                state = "other"  # sysmon, or between Gs
            ms.append({"id": m["id"], "p": m.get("p", -1), "g": curg, "state": state,
                       "tid": None})
        counts = {"runnable": 0, "running": 0, "syscall": 0, "waiting": 0}
        for g in block["G"]:
            name = G_STATUS.get(g.get("status"), "other")
            if name == "waiting" and g.get("wait", "").startswith(_RUNTIME_WAITS):
                continue
            if name in counts:
                counts[name] += 1
        detail = bool(block["M"])
        if detail:
            self._count_handoffs(ms, ps)
        return {
            "t_ms": block["t_ms"], "gomaxprocs": gomaxprocs, "idle_ps": head.get("idleprocs"),
            "threads": head.get("threads"), "spinning_threads": head.get("spinningthreads"),
            "idle_threads": head.get("idlethreads"), "global_runq": head.get("runqueue", 0),
            "ps": ps, "ms": ms if detail else None, "gs": counts if detail else None,
            "steals": None, "stolen_gs": None, "preemptions": None,
            "handoffs": self.handoffs if detail else None, "detail": detail,
        }

    def _count_handoffs(self, ms, ps):
        """Go does not count hand-offs; estimate them. A P left by an M in a syscall stays
        reserved (status syscall) until sysmon retakes it, so when more Ms sit in syscalls
        than Ps are reserved, the difference lost their P. Count newly seen goroutines up
        to that difference: a lower estimate, sampled once per trace interval."""
        in_syscall = [m["g"] for m in ms if m["state"] == "syscall"]
        reserved = sum(1 for p in ps if p["status"] == "syscall")
        lost = len(in_syscall) - reserved
        if lost <= 0:
            return
        new = [g for g in in_syscall if g not in self.handoff_goids]
        self.handoffs += min(lost, len(new))
        self.handoff_goids.update(new)
