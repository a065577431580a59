"""How cibuildwheel tests the wheels (docs/RELEASING.md): the quick subset selects by the markers
pytest declares, runs the clone's tests against the installed wheel, and runs the demo. That
every file of link_fast/data is package data is tested in test_deny.py."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+; the wheels are also tested on 3.10

PYPROJECT = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text(encoding="utf-8"))


def test_wheel_tests_select_declared_markers_from_outside_the_clone():
    command = PYPROJECT["tool"]["cibuildwheel"]["test-command"]
    words = shlex.split(command)
    expression = words[words.index("-m") + 1]
    declared = {m.split(":")[0] for m in PYPROJECT["tool"]["pytest"]["ini_options"]["markers"]}
    assert set(re.findall(r"\b(?!not\b|and\b|or\b)\w+", expression)) == declared == {"slow", "real_data"}
    assert "{project}/tests" in words  # cibuildwheel runs it in a folder of its own: the wheel is imported
    assert "link-fast demo" in command
