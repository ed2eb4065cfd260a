"""Interpreters a child can run under: the lab's own, older CPythons, free-threaded builds, PyPy."""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass, replace
from functools import lru_cache

import workloads

MIN_VERSION = (3, 9)
SUPPORTED = ("cpython", "pypy")

_PROBE = r"""
import sys, json, importlib.util, sysconfig
gil = getattr(sys, "_is_gil_enabled", None)
print(json.dumps({
    "executable": sys.executable,
    "version": list(sys.version_info[:3]),
    "implementation": sys.implementation.name,
    "gil_enabled": bool(gil()) if gil else True,
    "free_threaded": bool(sysconfig.get_config_var("Py_GIL_DISABLED")),
    "modules": {m: importlib.util.find_spec(m) is not None for m in ("aiohttp", "uvloop")},
}))
"""


class InterpreterError(ValueError):
    """The --python given cannot run the lab's children."""


@dataclass(frozen=True)
class Interpreter:
    path: str
    executable: str
    version: tuple[int, int, int]
    implementation: str
    gil_enabled: bool
    free_threaded: bool
    modules: tuple[tuple[str, bool], ...]

    @property
    def version_text(self) -> str:
        return ".".join(map(str, self.version))

    @property
    def label(self) -> str:
        tag = "t" if self.free_threaded else ""
        impl = "" if self.implementation == "cpython" else self.implementation + " "
        return "%s%d.%d%s" % (impl, self.version[0], self.version[1], tag)

    def has(self, module: str) -> bool:
        return dict(self.modules).get(module, False)

    def to_json(self) -> dict:
        data = asdict(self)
        data["version"] = self.version_text
        data["modules"] = dict(self.modules)
        return data


def _isolated_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env.pop("PYTHONHOME", None)
    return env


@lru_cache(maxsize=32)
def _probe_cached(path: str, mtime: float) -> Interpreter:
    try:
        done = subprocess.run([path, "-c", _PROBE], capture_output=True, text=True, timeout=10,
                              stdin=subprocess.DEVNULL, env=_isolated_env())
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise InterpreterError("--python %s cannot be run: %s" % (path, exc)) from None
    if done.returncode != 0:
        raise InterpreterError("--python %s is not a Python 3.9+ interpreter (it failed to "
                               "run a version check)" % path)
    try:
        facts = json.loads(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise InterpreterError("--python %s did not answer the version check" % path) from None
    return Interpreter(
        path=path, executable=facts["executable"], version=tuple(facts["version"]),
        implementation=facts["implementation"], gil_enabled=facts["gil_enabled"],
        free_threaded=facts["free_threaded"], modules=tuple(sorted(facts["modules"].items())),
    )


def probe(path: str) -> Interpreter:
    """Check that `path` can run a child; raises InterpreterError with a one-line reason."""
    resolved = shutil.which(path) or path
    if not os.path.isfile(resolved) or not os.access(resolved, os.X_OK):
        raise InterpreterError("--python %s does not exist or is not executable" % path)
    # Probe the path as given: a venv's python is a symlink to its base interpreter, and
    # running the link's target would lose the venv (and its aiohttp/uvloop).
    interp = _probe_cached(os.path.abspath(resolved), os.path.getmtime(resolved))
    interp = replace(interp, path=resolved)
    if interp.implementation not in SUPPORTED or interp.version < MIN_VERSION:
        raise InterpreterError(
            "--python %s is %s %s; the lab needs CPython or PyPy 3.9 or newer"
            % (path, interp.implementation, interp.version_text))
    return interp


def current() -> Interpreter:
    return probe(sys.executable)


def find_interpreters() -> list[Interpreter]:
    """Interpreters on PATH and under pyenv, newest first, one per real executable."""
    candidates = []
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        candidates += glob.glob(os.path.join(directory, "python3*"))
        candidates += glob.glob(os.path.join(directory, "pypy3*"))
    root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    candidates += glob.glob(os.path.join(root, "versions", "*", "bin", "python3*"))
    candidates += glob.glob(os.path.join(root, "versions", "*", "bin", "pypy3*"))
    seen, found = set(), []
    for path in [sys.executable] + sorted(candidates):
        name = os.path.basename(path)
        if name.endswith(("-config", ".py")) or "-" in name or not os.access(path, os.X_OK):
            continue
        real = os.path.realpath(path)
        if real in seen or "/shims/" in path:
            continue
        seen.add(real)
        try:
            found.append(probe(path))
        except InterpreterError:
            continue
    return sorted(found, key=lambda i: (i.version, i.free_threaded), reverse=True)


def workloads_path() -> str:
    """A directory to put on the child's PYTHONPATH that holds `workloads` and nothing else
    that another interpreter could trip over (an installed lab lives in site-packages, full
    of compiled modules built for this interpreter only)."""
    package = os.path.dirname(os.path.abspath(workloads.__file__))
    parent = os.path.dirname(package)
    if os.path.basename(parent) not in ("site-packages", "dist-packages"):
        return parent
    cache = os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")),
                         "conlab", "pythonpath-%d" % os.getuid())
    link = os.path.join(cache, "workloads")
    try:
        os.makedirs(cache, exist_ok=True)
        if os.path.realpath(link) != package:
            if os.path.islink(link):
                os.unlink(link)
            os.symlink(package, link)
        return cache
    except OSError:
        return parent
