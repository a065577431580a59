"""The manual's shell and Python blocks (README.md, then docs/*.md), each saved as a script and
run as a newcomer would (``bash block.sh``, ``python block.py``), in order, in a new folder.

Blocks are read from the manual itself, so it cannot rot. The docs' blocks run after the
README's, in the same folder, on the files its first real run made (its vocabulary, shards and
corpus). What needs the network is replaced by its offline equivalent before the run: a block
marked ``<!-- readme-test: network -->`` is skipped and the files it would fetch are made here
(a tokenizer.json trained on the fetched Python documentation in place of the Hub model's,
those documents as the corpus, the fetched FreeDict files in place of Debian's packages).
``pip install A && B`` runs ``B`` only: the test runs in the environment the suite was installed
into. ``<!-- readme-test: skip (why) -->`` marks the blocks that must not run here (installs, the
test command itself, a cluster's). A Python script that starts worker processes without the
``if __name__ == "__main__":`` guard fails here as it would for a user (spawned and forkserver
workers import the script); each Python block must also survive being pasted into the
interactive prompt, where a blank line ends an indented block.
"""

from __future__ import annotations

import code as interactive
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from trained_tokenizer import train_byte_level

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
MANUAL = [README, *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"(?:<!-- readme-test: (?P<mark>[\w-]+)[^>]*-->\n)?```(?P<lang>bash|python)\n(?P<code>.*?)```", re.S)
PIP_PREFIX = re.compile(r"^pip install [^&\n]*(&&\s*)?", re.M)
MARKS = {None, "network", "skip"}
# What the manual's blocks import beyond the test extra (the oracle extra brings them)
BLOCK_PACKAGES = ("datatrove", "datasets", "torch", "megatron.core", "mistral_common")

pytestmark = pytest.mark.slow


def blocks(path: Path) -> list[tuple[str | None, str, str]]:
    """(mark, language, code) of each fenced bash or python block of ``path``, in order."""
    found = [(m["mark"], m["lang"], m["code"]) for m in BLOCK.finditer(path.read_text(encoding="utf-8"))]
    unknown = {mark for mark, _, _ in found} - MARKS
    if unknown:
        raise ValueError(f"{path.name}: unknown readme-test marks {sorted(unknown)}")
    return found


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


def as_script(work: Path, name: str, lang: str, code: str) -> list[str]:
    """Save the block in the working folder, as a user saves an example; the command running it."""
    if lang == "bash":
        path = work / f"{name}.sh"
        path.write_text(code + "\n", encoding="utf-8")
        return ["bash", "-euo", "pipefail", path.name]
    path = work / f"{name}.py"
    path.write_text(code + "\n", encoding="utf-8")
    return [sys.executable, path.name]


class Prompt(interactive.InteractiveConsole):
    """Python's interactive prompt, compiling what is pasted line by line without running it."""

    def __init__(self) -> None:
        super().__init__()
        self.errors: list[str] = []

    def runcode(self, code) -> None:  # noqa: ARG002 - compiled is enough
        pass

    def showsyntaxerror(self, filename=None, **kwargs) -> None:  # noqa: ARG002
        self.errors.append(str(sys.exc_info()[1]))


def paste_errors(code: str) -> list[str]:
    prompt = Prompt()
    for line in code.splitlines():
        prompt.push(line)
    prompt.push("")  # the Enter after the paste
    return prompt.errors


def test_marks_are_known_and_the_network_blocks_are_few() -> None:
    every = {path.name: blocks(path) for path in MANUAL}
    assert sum(mark is None for mark, _, _ in every["README.md"]) >= 7
    assert sum(mark == "network" for found in every.values() for mark, _, _ in found) <= 2
    assert sum(mark is None for name, found in every.items() if name != "README.md" for mark, _, _ in found) >= 8


def test_the_first_real_run_leaves_the_clone() -> None:
    """After a non-editable install, the clone's link_fast/ folder would hide the installed
    package (it has no compiled extensions): the first run moves to a folder of its own."""
    install = next(code for mark, _, code in blocks(README) if "pip install '.[hf,datatrove]'" in code)
    assert re.search(r"^mkdir (\.\./\S+) && cd \1$", install, re.M), install


@pytest.mark.parametrize("path", MANUAL, ids=lambda path: path.name)
def test_python_blocks_survive_pasting(path: Path) -> None:
    for number, (_, lang, code) in enumerate(blocks(path), 1):
        if lang == "python":
            assert not paste_errors(code), f"{path.name} block {number}, pasted: {paste_errors(code)}\n{code}"


def test_pasting_is_checked() -> None:
    assert paste_errors("for i in range(2):\n    pass\nprint(i)")  # a dedent right after a block
    assert paste_errors("if True:\n    a = 1\n\n    b = 2")  # a blank line inside a block
    assert not paste_errors('if __name__ == "__main__":\n    for i in range(2):\n        pass\n    print(i)')


def test_manual_blocks_run_as_scripts_in_order(tmp_path: Path, freedict_dir: Path, pydoc_documents) -> None:
    for package in BLOCK_PACKAGES:
        pytest.importorskip(package)
    work = tmp_path / "link-run"
    work.mkdir()
    env = offline_stand_ins(work, list(pydoc_documents), freedict_dir)
    for path in MANUAL:
        for number, (mark, lang, code) in enumerate(blocks(path), 1):
            code = runnable(code)
            if mark is not None or not code:
                continue
            cmd = as_script(work, f"{path.stem.lower()}_{number:02d}", lang, code)
            done = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=900)
            assert done.returncode == 0, (
                f"{path.name} block {number} ({lang}, run as {' '.join(cmd)}) failed with status "
                f"{done.returncode}:\n{code}\n--- stdout\n{done.stdout[-3000:]}\n--- stderr\n{done.stderr[-3000:]}"
            )
