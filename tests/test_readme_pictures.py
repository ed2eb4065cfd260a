"""The README shows the lab: its two pictures are in the repository, linked from the
README's opening, and the script that takes them runs (quick mode, real runs)."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.helpers import ROOT

PICTURES = ("benchmarks/pictures/dashboard-mid-run.svg", "benchmarks/pictures/finished-run.svg")


def test_the_readme_opens_with_the_pictures_and_they_are_in_the_repository():
    readme = (ROOT / "README.md").read_text()
    opening = readme.split("\n## ", 1)[0]
    for path in PICTURES:
        assert "(%s)" % path in opening, path
        svg = (ROOT / path).read_text()
        assert svg.lstrip().startswith("<svg") and "conlab" in svg, path


def test_the_screenshot_script_runs(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "screenshots.py"),
                           "--quick", "-o", str(tmp_path)], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, cwd=ROOT, timeout=600,
                          env=dict(os.environ))
    assert done.returncode == 0, done.stderr[-2000:]
    for name in ("dashboard-mid-run.svg", "finished-run.svg"):
        svg = (tmp_path / name).read_text()
        assert svg.lstrip().startswith("<svg"), name
    assert "decision" in (tmp_path / "finished-run.svg").read_text()
