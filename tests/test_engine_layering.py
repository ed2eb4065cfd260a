"""The workloads package stays standard-library only and Python 3.9 compatible."""

from __future__ import annotations

import subprocess
import sys

import pytest

import workloads
from tests.helpers import ROOT, interpreter

FORBIDDEN = ("textual", "psutil", "lab", "widgets", "rich")


def workload_modules() -> list[str]:
    names = ["workloads", "workloads.__main__"]
    for path in sorted((ROOT / "workloads").glob("*.py")):
        if path.stem != "__init__" and path.stem != "__main__":
            names.append("workloads." + path.stem)
    return names


@pytest.mark.parametrize("module", workload_modules())
def test_importing_a_workload_pulls_in_no_ui_or_lab(module):
    probe = (
        "import importlib, sys\n"
        "importlib.import_module(%r)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in %r)\n"
        "print(','.join(bad))\n" % (module, FORBIDDEN)
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "", "%s imported %s" % (module, done.stdout.strip())


def test_every_workload_module_compiles_under_python_3_9():
    py39 = interpreter("3.9")
    if py39 is None:
        pytest.skip("no CPython 3.9 on this machine (pyenv)")
    files = [str(p) for p in (ROOT / "workloads").rglob("*.py")]
    check = ("import ast, sys\n"
             "for f in sys.argv[1:]:\n"
             "    ast.parse(open(f).read(), f, feature_version=(3, 9))\n"
             "    compile(open(f).read(), f, 'exec')\n")
    done = subprocess.run([py39, "-c", check, *files], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_every_experiment_declares_its_spec():
    for name in workloads.experiment_names():
        module = workloads.load(name)
        assert module.NAME == name
        assert module.TITLE and module.PARAMS is not None and callable(module.run)
        for param in module.PARAMS:
            assert param.check(param.default) == param.default, (name, param.name)
