"""The rooms of lab/ and their layers: workloads -> lab.core -> widgets / lab.lessons ->
lab.tui -> lab.cli. The contracts live in pyproject.toml and are checked by import-linter."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT

PACKAGES = ("lab", "widgets")


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    # import-linter reads [tool.importlinter] from pyproject.toml in the working directory
    # and builds the graph from the packages importable there.
    code = "import sys; from importlinter.cli import lint_imports; sys.exit(lint_imports())"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=root, timeout=240)


def test_the_import_contracts_hold():
    pytest.importorskip("importlinter", reason="import-linter is in the test extras")
    done = lint_imports(ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "broken" not in done.stdout.lower().replace("0 broken", "")


def test_a_cycle_breaks_the_contracts(tmp_path):
    """The check can fail: a copy of the tree with one lazy import upward is refused."""
    pytest.importorskip("importlinter", reason="import-linter is in the test extras")
    for name in ("lab", "widgets", "workloads"):
        for path in (ROOT / name).rglob("*.py"):
            target = tmp_path / path.relative_to(ROOT)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(path.read_text())
    (tmp_path / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text())
    catalog = tmp_path / "lab" / "core" / "catalog.py"
    catalog.write_text(catalog.read_text()
                       + "\n\ndef _upward():\n    from lab.tui import app  # noqa: F401\n")
    done = subprocess.run(
        [sys.executable, "-c",
         "import sys; sys.path.insert(0, %r); from importlinter.cli import lint_imports; "
         "sys.exit(lint_imports())" % str(tmp_path)],
        capture_output=True, text=True, cwd=tmp_path, timeout=240)
    assert done.returncode != 0
    assert "lab.core.catalog -> lab.tui.app" in done.stdout


def core_modules() -> list[str]:
    names = []
    for room in ("core", "lessons"):
        for path in sorted((ROOT / "lab" / room).glob("*.py")):
            names.append("lab.%s%s" % (room, "" if path.stem == "__init__" else "." + path.stem))
    return names


def test_the_headless_core_loads_no_textual_or_rich():
    probe = ("import importlib, sys\n"
             "for name in %r: importlib.import_module(name)\n"
             "print(','.join(sorted(m for m in sys.modules "
             "if m.split('.')[0] in ('textual', 'rich', 'widgets', 'textual_serve'))))\n"
             % (core_modules(),))
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""


def private_reaches() -> list[str]:
    """`from other_module import _name`: one module using another's private name."""
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(), str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    parts = node.module.split(".")
                    if any(p.startswith("_") and p != "__future__" for p in parts):
                        found.append("%s: from %s" % (path.relative_to(ROOT), node.module))
                    for alias in node.names:
                        if alias.name.startswith("_") and node.module != "__future__":
                            found.append("%s: %s.%s" % (path.relative_to(ROOT), node.module,
                                                        alias.name))
    return found


def test_no_module_reaches_into_another_modules_private_names():
    assert private_reaches() == []
