"""Interpreters a child can run under: the lab's own, older CPythons, free-threaded builds, PyPy."""

from __future__ import annotations

import glob
import json
import os
import shutil
import sys
from dataclasses import asdict, dataclass, replace
from functools import lru_cache

import workloads
from lab.core.ask import AskError, CannotStart, ask

MIN_VERSION = (3, 9)
SUPPORTED = ("cpython", "pypy")
PROBED_MODULES = ("aiohttp", "uvloop")

_PROBE = r"""
import sys, json, importlib.util, sysconfig
gil = getattr(sys, "_is_gil_enabled", None)
print(json.dumps({
    "executable": sys.executable,
    "version": list(sys.version_info[:3]),
    "implementation": sys.implementation.name,
    "gil_enabled": bool(gil()) if gil else True,
    "free_threaded": bool(sysconfig.get_config_var("Py_GIL_DISABLED")),
    "modules": {m: importlib.util.find_spec(m) is not None for m in %r},
}))
""" % (PROBED_MODULES,)


class InterpreterError(ValueError):
    """One line saying why the --python given cannot run the lab's children (or why it
    could not be checked, e.g. no process can be started)."""


class NoProcess(InterpreterError):
    """No process could be started to check it (the user's process limit, memory)."""


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


PROBE_TIMEOUT_S = 10.0
ENV_PROBE_TIMEOUT = "CONLAB_PROBE_TIMEOUT_S"  # tests shorten the wait for a hanging --python


def probe_timeout_s() -> float:
    try:
        value = float(os.environ.get(ENV_PROBE_TIMEOUT, PROBE_TIMEOUT_S))
    except ValueError:
        return PROBE_TIMEOUT_S
    return value if 0 < value <= 600 else PROBE_TIMEOUT_S


def shown(text: str, limit: int = 120) -> str:
    """A path or answer as one printable line: control characters escaped, length cut."""
    visible = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return visible if len(visible) <= limit else visible[:limit] + "..."


@lru_cache(maxsize=32)
def _probe_cached(path: str, mtime: float) -> Interpreter:
    name = "--python %s" % shown(path)
    try:
        answer = ask([path, "-c", _PROBE], probe_timeout_s(), env=_isolated_env())
    except CannotStart as exc:
        raise NoProcess(str(exc)) from None
    except AskError as exc:
        raise InterpreterError("%s %s (asked for its version)" % (name, exc)) from None
    if answer.returncode != 0:
        raise InterpreterError("%s is not a Python 3.9+ interpreter (it failed to "
                               "run a version check, exit code %s)" % (name, answer.returncode))
    try:
        lines = answer.stdout.decode("utf-8").strip().splitlines()
        facts = json.loads(lines[-1])
    except (ValueError, IndexError, RecursionError):
        raise InterpreterError("%s did not answer the version check with one line of JSON"
                               % name) from None
    return _from_facts(path, facts, name)


def _from_facts(path: str, facts: object, name: str) -> Interpreter:
    """The probe's answer checked field by field: a wrong shape is refused, never trusted."""
    def bad(field: str, wanted: str) -> InterpreterError:
        return InterpreterError("%s answered the version check with a bad %s (wanted %s)"
                                % (name, field, wanted))

    if not isinstance(facts, dict):
        raise bad("answer", "a JSON object")
    executable = facts.get("executable")
    if not (isinstance(executable, str) and 0 < len(executable) <= 4096
            and executable.isprintable()):
        raise bad("executable", "a path")
    version = facts.get("version")
    if not (isinstance(version, list) and len(version) == 3
            and all(type(n) is int and 0 <= n < 1000 for n in version)):
        raise bad("version", "three small whole numbers")
    implementation = facts.get("implementation")
    if not (isinstance(implementation, str) and 0 < len(implementation) <= 32
            and implementation.isidentifier()):
        raise bad("implementation", "a name such as cpython")
    for flag in ("gil_enabled", "free_threaded"):
        if not isinstance(facts.get(flag), bool):
            raise bad(flag, "true or false")
    modules = facts.get("modules")
    if not (isinstance(modules, dict) and set(modules) == set(PROBED_MODULES)
            and all(isinstance(ok, bool) for ok in modules.values())):
        raise bad("modules", "true or false for %s" % " and ".join(PROBED_MODULES))
    return Interpreter(
        path=path, executable=executable, version=tuple(version),
        implementation=implementation, gil_enabled=facts["gil_enabled"],
        free_threaded=facts["free_threaded"], modules=tuple(sorted(modules.items())),
    )


def probe(path: str) -> Interpreter:
    """Check that `path` can run a child; raises InterpreterError with a one-line reason."""
    if not path:
        raise InterpreterError("--python must be the path or name of an interpreter "
                               "(got an empty string)")
    resolved = shutil.which(path) or path
    if not os.path.isfile(resolved) or not os.access(resolved, os.X_OK):
        raise InterpreterError("--python %s does not exist or is not executable" % shown(path))
    # Probe the path as given: a venv's python is a symlink to its base interpreter, and
    # running the link's target would lose the venv (and its aiohttp/uvloop).
    interp = _probe_cached(os.path.abspath(resolved), os.path.getmtime(resolved))
    interp = replace(interp, path=resolved)
    if interp.implementation not in SUPPORTED or interp.version < MIN_VERSION:
        raise InterpreterError(
            "--python %s is %s %s; the lab needs CPython or PyPy 3.9 or newer"
            % (shown(path), interp.implementation, interp.version_text))
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
    candidates += glob.glob(os.path.join(free_threaded_cache(), "bin", "python3*"))
    seen, found = set(), []
    # Among names of one file, the most specific wins (python3.13t before python3).
    for path in [sys.executable] + sorted(candidates, key=lambda p: (-len(p), p)):
        name = os.path.basename(path)
        if name.endswith(("-config", ".py")) or "-" in name or not os.access(path, os.X_OK):
            continue
        if "/shims/" in path:
            continue
        try:
            info = os.stat(path)
        except OSError:
            continue
        # One file under several names: symlinks share a real path, hard links
        # (a free-threaded build installs python3.13 and python3.13t so) an inode.
        same = {os.path.realpath(path), (info.st_dev, info.st_ino)}
        if same & seen:
            continue
        seen |= same
        try:
            found.append(probe(path))
        except NoProcess:
            raise  # not this interpreter's fault: every other probe would fail the same way
        except InterpreterError:
            continue
    return sorted(found, key=lambda i: (i.version, i.free_threaded), reverse=True)


def free_threaded_cache() -> str:
    """Where `.ci/free-threaded-python` builds a free-threaded CPython (CONLAB_FT_PREFIX)."""
    return os.environ.get("CONLAB_FT_PREFIX") or os.path.expanduser("~/.cache/conlab/python3.13t")


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
