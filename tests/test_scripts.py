"""What a user's own scripts run into: worker processes started from a script without the
``if __name__ == "__main__":`` guard (each spawned worker imports the script again), a script
read from standard input, and a working folder that holds a clone of this repository, whose
source folder ``link_fast/`` must never be imported in place of the installed package."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import link_fast
from link_fast.bench import python_child

GUARD = 'put the code that starts them under `if __name__ == "__main__":`'
APPLY = 'link_fast.apply_shards("demo.lfv", ["tokenized/"], "linked/", link_fast.Sampling(ratio=0.3), workers=2)'
TEXT = 'substitute_files("demo.lfv", ["fables.jsonl"], "linked_text/", ratio=0.3, workers=2, lines_per_chunk=2)'


@pytest.fixture(scope="module")
def folder(tmp_path_factory, tekken) -> Path:
    """A user's working folder: the demo vocabulary, the fables as a shard and as JSONL."""
    from link_fast.compiler import compile_vocab
    from link_fast.demo import DEMO_LANGUAGES, demo_documents
    from link_fast.shards import ShardWriter

    root = tmp_path_factory.mktemp("user")
    compile_vocab(tekken, DEMO_LANGUAGES).save(root / "demo.lfv")
    documents = demo_documents()
    encoded = [np.asarray(tekken.encode(d), dtype=np.int32) for d in documents]
    offsets = np.cumsum([0] + [len(e) for e in encoded])
    (root / "tokenized").mkdir()
    with ShardWriter(root / "tokenized" / "00000_tokens", np.int32) as writer:
        writer.write(np.concatenate(encoded), offsets)
    (root / "fables.jsonl").write_text("".join(json.dumps({"text": d}) + "\n" for d in documents), encoding="utf-8")
    return root


def run_script(folder: Path, name: str, source: str, stdin: bool = False) -> tuple[subprocess.CompletedProcess, float]:
    """``python NAME`` (or ``python - < NAME``) in ``folder``: the result and the seconds taken."""
    (folder / name).write_text(textwrap.dedent(source), encoding="utf-8")
    started = time.monotonic()
    if stdin:
        with open(folder / name, encoding="utf-8") as f:
            done = subprocess.run(
                [sys.executable, "-"], stdin=f, cwd=folder, capture_output=True, text=True, timeout=120
            )
    else:
        done = subprocess.run([sys.executable, name], cwd=folder, capture_output=True, text=True, timeout=120)
    return done, time.monotonic() - started


def the_error(done: subprocess.CompletedProcess) -> str:
    """The one error a failed script shows: its traceback's last line; there is one traceback."""
    assert done.returncode == 1, done.stderr
    assert done.stderr.count("Traceback") == 1, done.stderr  # the script's own, none from the workers
    assert "worker process died" not in done.stderr and "--resume" not in done.stderr, done.stderr
    return done.stderr.strip().splitlines()[-1]


def test_apply_from_an_unguarded_script_says_to_add_the_guard(folder):
    done, seconds = run_script(folder, "unguarded_apply.py", f"import link_fast\n\n{APPLY}\n")
    assert the_error(done) == (
        f"link_fast.pool.WorkersCannotStart: {folder / 'unguarded_apply.py'}: each worker process runs this "
        f"script again as it starts, and its top level starts workers: {GUARD}"
    )
    assert seconds < 60
    assert not (folder / "linked").exists()  # a failed run leaves nothing


def test_text_mode_from_an_unguarded_script_says_to_add_the_guard(folder):
    pytest.importorskip("ahocorasick")
    done, _ = run_script(folder, "unguarded_text.py", f"from link_fast.text import substitute_files\n\n{TEXT}\n")
    assert the_error(done).endswith(GUARD)
    assert not (folder / "linked_text").exists() or not any((folder / "linked_text").iterdir())


def test_the_same_script_with_the_guard_runs(folder):
    source = f'import link_fast\n\nif __name__ == "__main__":\n    records = {APPLY}\n    print(len(records))\n'
    done, _ = run_script(folder, "guarded_apply.py", source)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "1"
    assert (folder / "linked" / "00000_tokens.link.json").is_file()


def test_a_script_read_from_standard_input_is_refused_before_any_worker_starts(folder):
    apply = APPLY.replace("linked/", "linked_stdin/")
    source = f'import link_fast\n\nif __name__ == "__main__":\n    print("started")\n    {apply}\n'
    done, _ = run_script(folder, "from_stdin.py", source, stdin=True)
    assert the_error(done) == (
        "link_fast.pool.WorkersCannotStart: <stdin>: worker processes start by running the main script "
        "again, and this one is not a file (read from standard input?): save it as a file, or use one worker"
    )
    assert done.stdout.count("started") == 1
    assert not (folder / "linked_stdin").exists()


def test_bench_children_import_the_installed_package_not_a_folder_named_link_fast(tmp_path):
    """``link-fast bench`` times the compiler in a ``python -c`` child, which would put its
    working folder first on sys.path: from a clone, the source tree (no compiled extensions)."""
    fake = tmp_path / "link_fast"
    fake.mkdir()
    (fake / "__init__.py").write_text('raise ImportError("the folder in the working directory was imported")\n')
    probe = "import link_fast, sys; print(link_fast.__file__); print(sys.argv[1:])"
    done = subprocess.run(python_child(probe, "a", "b"), cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    imported, args = done.stdout.splitlines()
    assert Path(imported).resolve() == Path(link_fast.__file__).resolve()  # the package these tests import
    assert args == "['a', 'b']"
    env = {name: value for name, value in os.environ.items() if name != "PYTHONSAFEPATH"}
    unsafe = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=60, env=env
    )
    assert "the folder in the working directory was imported" in unsafe.stderr  # what python -c alone does
