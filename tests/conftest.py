"""Shared fixtures, including the real material of the acceptance tests (tests/test_real_data.py).

Real data (GPL dictionaries, the Python docs' reST sources) is never committed: fetch it with
``scripts/fetch_fixtures.sh [DIR]`` (default ``.fixtures`` in the repository); point
``LINK_FAST_FIXTURES`` at another ``DIR`` if you fetched it elsewhere. The layout is::

    DIR/freedict/freedict-eng-*.{index,dict.dz}   (all 30; deu and fra for most tests)
    DIR/text/pydoc/**.rst.txt

Without the data, every test that needs it is skipped, unless ``LINK_FAST_REQUIRE_FIXTURES=1``
(set by ``.ci/run``), which makes missing data an error: CI never skips the real-data tests.

Compiling FreeDict eng-deu for a tokenizer takes one to two minutes, so the real vocabularies
are compiled once per session, both at once in two child processes (``_real_vocab_files``).
``LINK_FAST_VOCAB_CACHE=DIR`` (off by default, for local iteration only) keeps the compiled
files in DIR, keyed by a hash of the dictionaries, the tokenizer and link_fast's sources.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import os
import pickle
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent

FREEDICT = {"de": "freedict-eng-deu", "fr": "freedict-eng-fra"}
# Which dictionaries each real vocabulary is compiled from.
REAL_VOCABS = {"tekken": ("de", "fr"), "sp_v1": ("de",)}
TOKENIZER_FILES = {"tekken": "tekken_240911.json", "sp_v1": "tokenizer.model.v1"}
N_DOCUMENTS = 400


# Fixtures that read the fetched material: a test using any of them is marked real_data.
REAL_DATA_FIXTURES = {
    "fixtures_dir",
    "freedict_dir",
    "real_lexicons",
    "pydoc_documents",
    "tekken_vocab_path",
    "tekken_vocab",
    "sp_v1_vocab",
}


def pytest_collection_modifyitems(items):
    for item in items:
        if REAL_DATA_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.real_data)


# ---------------------------------------------------------------------------------------------
# Real material


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    value = os.environ.get("LINK_FAST_FIXTURES")
    path = Path(value) if value else TESTS.parent / ".fixtures"
    if not path.is_dir():
        message = f"real data not fetched: run scripts/fetch_fixtures.sh {path}"
        if os.environ.get("LINK_FAST_REQUIRE_FIXTURES", "") not in ("", "0"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def freedict_dir(fixtures_dir) -> Path:
    path = fixtures_dir / "freedict"
    missing = [
        f"{name}.{ext}"
        for name in FREEDICT.values()
        for ext in ("index", "dict.dz")
        if not (path / f"{name}.{ext}").is_file()
    ]
    if missing:
        pytest.fail(f"{path} lacks {', '.join(missing)}: run scripts/fetch_fixtures.sh {fixtures_dir}")
    return path


def mistral_data() -> Path:
    mistral_common = pytest.importorskip("mistral_common")
    del mistral_common
    return Path(str(importlib.resources.files("mistral_common") / "data"))


@pytest.fixture(scope="session")
def tekken():
    from link_fast.tokenizer import load_tokenizer

    return load_tokenizer(mistral_data() / TOKENIZER_FILES["tekken"])


@pytest.fixture(scope="session")
def sp_v1():
    from link_fast.tokenizer import load_tokenizer

    return load_tokenizer(mistral_data() / TOKENIZER_FILES["sp_v1"])


@pytest.fixture(scope="session")
def real_lexicons(freedict_dir) -> dict:
    """{lang: Lexicon} of FreeDict eng-deu and eng-fra, as a compile with the default options
    keeps them (function words from their tables, best translations): the pairs the real-data
    vocabularies hold."""
    from link_fast.compiler import curate
    from link_fast.lexicon import CleaningOptions, load_lexicon

    whole = CleaningOptions(max_translations=0)
    return {
        lang: curate(load_lexicon(freedict_dir / f"{name}.index", lang, whole), lang) for lang, name in FREEDICT.items()
    }


# -- English documents ------------------------------------------------------------------------

_TABLE_OR_RULE = re.compile(r"==|--|~~|\*\*\*|\^\^|\+\+")


def is_prose(paragraph: str) -> bool:
    """An ordinary prose paragraph of the reST sources: no code block, table, heading, directive
    or list, more than 200 characters, at least 85% letters and spaces."""
    if len(paragraph) <= 200:
        return False
    for line in paragraph.split("\n"):
        if line[:1].isspace() or line.startswith(("..", "* ", "- ", "+ ", "#", ">>>", ":")):
            return False
    if "::" in paragraph or "|" in paragraph or _TABLE_OR_RULE.search(paragraph):
        return False
    letters = sum(ch.isalpha() or ch == " " for ch in paragraph)
    return letters >= 0.85 * len(paragraph)


def pydoc_documents_from(root: Path, n_documents: int = N_DOCUMENTS, min_chars: int = 2000) -> list[str]:
    """Prose paragraphs of every ``.rst.txt`` under root (sorted by path), grouped in order into
    documents of at least ``min_chars`` characters (2-4k), then ``n_documents`` of them taken
    evenly spread over the whole documentation. Deterministic."""
    paragraphs = []
    for path in sorted(root.rglob("*.rst.txt")):
        text = path.read_text(encoding="utf-8").replace("\r\n", "\n")
        for paragraph in re.split(r"\n[ \t]*\n", text):
            paragraph = paragraph.strip("\n")
            if is_prose(paragraph):
                paragraphs.append(paragraph)
    documents, current, size = [], [], 0
    for paragraph in paragraphs:
        current.append(paragraph)
        size += len(paragraph) + 2
        if size >= min_chars:
            documents.append("\n\n".join(current))
            current, size = [], 0
    if len(documents) < n_documents:
        raise RuntimeError(f"{root}: only {len(documents)} documents of prose, {n_documents} wanted")
    step = len(documents) / n_documents
    return [documents[int(k * step)] for k in range(n_documents)]


@pytest.fixture(scope="session")
def pydoc_documents(fixtures_dir) -> list[str]:
    root = fixtures_dir / "text" / "pydoc"
    if not root.is_dir():
        pytest.fail(f"{root} is missing: run scripts/fetch_fixtures.sh {fixtures_dir}")
    return pydoc_documents_from(root)


# -- compiled vocabularies --------------------------------------------------------------------

_COMPILE_CHILD = """
import pickle, sys
from link_fast.compiler import compile_vocab
from link_fast.tokenizer import load_tokenizer
tokenizer, lexicons, out = sys.argv[1:4]
with open(lexicons, "rb") as f:
    lexicons = pickle.load(f)
compile_vocab(load_tokenizer(tokenizer), lexicons).save(out)
"""


def _cache_key(name: str, langs, freedict_dir: Path) -> str:
    """What a compiled vocabulary depends on: tokenizer file, dictionaries, link_fast's code."""
    h = hashlib.sha256(f"{name} {TOKENIZER_FILES[name]} {langs}".encode())
    package = Path(__import__("link_fast").__file__).parent
    data = [path for path in package.glob("data/**/*") if path.is_file()]  # deny lists and tables in subfolders
    for path in sorted([*package.glob("*.py"), *package.glob("*.pyx"), *package.glob("*.pxd"), *data]):
        h.update(str(path.relative_to(package)).encode() + path.read_bytes())
    for lang in langs:
        for ext in ("index", "dict.dz"):
            h.update((freedict_dir / f"{FREEDICT[lang]}.{ext}").read_bytes())
    return h.hexdigest()[:16]


@pytest.fixture(scope="session")
def _real_vocab_files(real_lexicons, freedict_dir, tmp_path_factory):
    """{name: saved vocabulary file} for every entry of REAL_VOCABS, compiled in parallel."""
    out_dir = tmp_path_factory.mktemp("real_vocabs")
    cache = os.environ.get("LINK_FAST_VOCAB_CACHE")
    files, jobs = {}, {}
    started = time.perf_counter()
    for name, langs in REAL_VOCABS.items():
        target = out_dir / f"{name}.lfv"
        files[name] = target
        cached = Path(cache) / f"{name}-{_cache_key(name, langs, freedict_dir)}.lfv" if cache else None
        if cached is not None and cached.is_file():
            target.symlink_to(cached)
            continue
        lexicons = out_dir / f"{name}.lexicons.pickle"
        with open(lexicons, "wb") as f:
            pickle.dump({lang: real_lexicons[lang] for lang in langs}, f, protocol=pickle.HIGHEST_PROTOCOL)
        command = [
            sys.executable,
            "-c",
            _COMPILE_CHILD,
            str(mistral_data() / TOKENIZER_FILES[name]),
            str(lexicons),
            str(target),
        ]
        log = open(out_dir / f"{name}.log", "w+")
        jobs[name] = (subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT), log, lexicons, cached)
    for name, (process, log, lexicons, cached) in jobs.items():
        rc = process.wait()
        log.seek(0)
        output = log.read()
        log.close()
        lexicons.unlink()
        if rc != 0:
            pytest.fail(f"compiling the {name} vocabulary failed (exit {rc}):\n{output[-4000:]}")
        if cached is not None:
            cached.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(files[name], cached)
    if jobs:
        print(f"\ncompiled {', '.join(jobs)} vocabularies in {time.perf_counter() - started:.0f} s")
    yield files
    # ~300 MB each, and pytest keeps the last three sessions' temporary directories.
    for path in files.values():
        path.unlink(missing_ok=True)


@pytest.fixture(scope="session")
def tekken_vocab_path(_real_vocab_files) -> Path:
    """The saved Tekken vocabulary (FreeDict eng-deu + eng-fra): do not modify it."""
    return _real_vocab_files["tekken"]


@pytest.fixture(scope="session")
def tekken_vocab(tekken_vocab_path, tekken):
    """Tekken (131,072 ids) x FreeDict eng-deu + eng-fra, languages ("de", "fr")."""
    from link_fast.vocab import Vocab

    return Vocab.load(tekken_vocab_path, tokenizer=tekken)


@pytest.fixture(scope="session")
def sp_v1_vocab(_real_vocab_files, sp_v1):
    """SentencePiece tokenizer.model.v1 (32,000 ids) x FreeDict eng-deu, language ("de",)."""
    from link_fast.vocab import Vocab

    return Vocab.load(_real_vocab_files["sp_v1"], tokenizer=sp_v1)
