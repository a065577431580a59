"""The README's shell and Python blocks, run in order in an empty folder, as a newcomer would.

Blocks are read from README.md itself, so the manual cannot rot. What needs the network is
replaced by its offline equivalent before the run: a block marked ``<!-- readme-test: network -->``
is skipped and the files it would fetch are made here (a tokenizer.json trained on the fetched
Python documentation in place of the Hub model's, those documents as the corpus, the fetched
FreeDict files in place of Debian's packages). ``pip install A && B`` runs ``B`` only: the test
runs in the environment the suite was installed into. ``<!-- readme-test: skip -->`` marks the
blocks that must not run here (the test command itself).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from trained_tokenizer import train_byte_level

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCK = re.compile(r"(?:<!-- readme-test: (?P<mark>[\w-]+)[^>]*-->\n)?```(?P<lang>bash|python)\n(?P<code>.*?)```", re.S)
PIP_PREFIX = re.compile(r"^pip install [^&\n]*(&&\s*)?", re.M)
MARKS = {None, "network", "skip"}

pytestmark = pytest.mark.slow


def readme_blocks() -> list[tuple[str | None, str, str]]:
    """(mark, language, code) of each fenced bash or python block, in the README's order."""
    blocks = [(m["mark"], m["lang"], m["code"]) for m in BLOCK.finditer(README.read_text(encoding="utf-8"))]
    unknown = {mark for mark, _, _ in blocks} - MARKS
    if unknown:
        raise ValueError(f"README.md: unknown readme-test marks {sorted(unknown)}")
    return blocks


def runnable(code: str) -> str:
    """The block without its pip installs (the suite's environment has them)."""
    return PIP_PREFIX.sub("", code).strip()


def offline_stand_ins(work: Path, pydoc: list[str], freedict_dir: Path) -> dict[str, str]:
    """Make what the network blocks fetch; the environment variables the run needs."""
    (work / "smollm2").mkdir()
    train_byte_level(work / "smollm2" / "tokenizer.json", pydoc, 8000)
    (work / "corpus").mkdir()
    with open(work / "corpus" / "fineweb-edu.jsonl", "w", encoding="utf-8") as f:
        for text in pydoc[:300]:
            f.write(json.dumps({"text": text}) + "\n")
    bin_dir = str(Path(sys.executable).parent)
    return {
        **os.environ,
        "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
        "LINK_FAST_FREEDICT_DIR": str(freedict_dir),
        "HF_HUB_OFFLINE": "1",
        "NO_COLOR": "1",
    }


def test_readme_marks_are_known_and_the_network_blocks_are_few() -> None:
    blocks = readme_blocks()
    assert sum(mark is None for mark, _, _ in blocks) >= 7
    assert sum(mark == "network" for mark, _, _ in blocks) <= 2


def test_readme_blocks_run_in_order(tmp_path: Path, freedict_dir: Path, pydoc_documents) -> None:
    env = offline_stand_ins(tmp_path, list(pydoc_documents), freedict_dir)
    for number, (mark, lang, code) in enumerate(readme_blocks(), 1):
        code = runnable(code)
        if mark is not None or not code:
            continue
        cmd = ["bash", "-euo", "pipefail", "-c", code] if lang == "bash" else [sys.executable, "-c", code]
        done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, (
            f"README block {number} ({lang}) failed with status {done.returncode}:\n{code}\n"
            f"--- stdout\n{done.stdout[-3000:]}\n--- stderr\n{done.stderr[-3000:]}"
        )
