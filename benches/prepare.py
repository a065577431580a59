"""Build the benchmark data once and cache it: ``python benches/prepare.py [FIXTURES_DIR]``.

From the real material of ``scripts/fetch_fixtures.sh`` (default ``.fixtures``, or
``$LINK_FAST_FIXTURES``), into ``FIXTURES_DIR/bench/``:

- ``eng-deu.tekken.lfv``: FreeDict eng-deu compiled for Mistral's Tekken (the large case:
  313k source words, 1.84M token-id keys);
- ``eng-8.tekken.lfv``: eight FreeDict languages (deu fra spa ita por nld hun ces) in one
  vocabulary, for ``link-fast bench --compare-vocab``;
- ``eng-28.tekken.lfv``: 28 FreeDict languages, every one but Greek and Swahili (the set
  issue 18 measured, before those two were read), for the many-languages row;
- ``pydoc.tekken.{bin,idx}``: every reST source of the Debian python3.11-doc package, one
  document per file, tokenized with Tekken (2.8M tokens) into a Megatron shard.

A part already there is kept (a vocabulary of an older format is compiled again): delete it
to rebuild. The benches (``pytest benches``) and
``link-fast bench --vocab ... --shard ...`` read these.
"""

from __future__ import annotations

import importlib.resources
import os
import sys
import time
from pathlib import Path

import numpy as np

from link_fast.lexicon import FREEDICT_LANGUAGES


def fixtures_dir(argv: list[str] | None = None) -> Path:
    argv = sys.argv[1:] if argv is None else argv
    return Path(argv[0] if argv else os.environ.get("LINK_FAST_FIXTURES", ".fixtures")).resolve()


def tekken_path() -> Path:
    return Path(str(importlib.resources.files("mistral_common") / "data" / "tekken_240911.json"))


# The paper-sized case: eight FreeDict languages in one vocabulary (`link-fast bench --compare-vocab`).
EIGHT_LANGUAGES = {
    "de": "deu",
    "fr": "fra",
    "es": "spa",
    "it": "ita",
    "pt": "por",
    "nl": "nld",
    "hu": "hun",
    "cs": "ces",
}


# The many-languages case: every FreeDict dictionary but ell and swh, named by their codes.
MANY_LANGUAGES = tuple(code for code in FREEDICT_LANGUAGES if code not in ("ell", "swh"))


def _compile_once(tokenizer, dictionaries: dict, path: Path) -> None:
    """Compile ``dictionaries`` into ``path`` unless a vocabulary this link_fast reads is there."""
    from link_fast.compiler import compile_vocab
    from link_fast.errors import VocabError
    from link_fast.vocab import Vocab

    if path.exists():
        try:
            Vocab.load(path)
            return
        except VocabError as e:  # an older format, say: compile again
            print(f"{e}: compiling it again", file=sys.stderr)
    started = time.perf_counter()
    compile_vocab(tokenizer, dictionaries).save(path)
    print(f"compiled {path} in {time.perf_counter() - started:.1f} s", file=sys.stderr)


def prepare(root: Path) -> dict[str, Path]:
    from link_fast.shards import ShardWriter
    from link_fast.tokenizer import load_tokenizer

    out = root / "bench"
    out.mkdir(parents=True, exist_ok=True)
    paths = {"vocab": out / "eng-deu.tekken.lfv", "shard": out / "pydoc.tekken", "tokenizer": tekken_path()}
    dictionary = root / "freedict" / "freedict-eng-deu.index"
    pydoc = root / "text" / "pydoc"
    for needed in (dictionary, pydoc):
        if not needed.exists():
            raise SystemExit(f"{needed} is missing: run scripts/fetch_fixtures.sh {root}")
    tokenizer = load_tokenizer(paths["tokenizer"])
    _compile_once(tokenizer, {"de": dictionary}, paths["vocab"])
    eight = {lang: root / "freedict" / f"freedict-eng-{code}.index" for lang, code in EIGHT_LANGUAGES.items()}
    if all(path.exists() for path in eight.values()):
        paths["vocab8"] = out / "eng-8.tekken.lfv"
        _compile_once(tokenizer, eight, paths["vocab8"])
    many = {code: root / "freedict" / f"freedict-eng-{code}.index" for code in MANY_LANGUAGES}
    if all(path.exists() for path in many.values()):
        paths["vocab28"] = out / "eng-28.tekken.lfv"
        _compile_once(tokenizer, many, paths["vocab28"])
    if not Path(f"{paths['shard']}.idx").exists():
        texts = [p.read_text(encoding="utf-8", errors="replace") for p in sorted(pydoc.rglob("*.rst.txt"))]
        encoded = [np.asarray(ids, dtype=np.int32) for ids in tokenizer.encode_batch(texts)]
        offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
        np.cumsum([len(e) for e in encoded], out=offsets[1:])
        with ShardWriter(paths["shard"], np.int32) as writer:
            writer.write(np.concatenate(encoded), offsets)
        print(f"wrote {paths['shard']} ({offsets[-1]:,} tokens, {len(texts)} documents)", file=sys.stderr)
    return paths


if __name__ == "__main__":
    for name, path in prepare(fixtures_dir()).items():
        print(f"{name:<10} {path}")
