"""Build the benchmark data once and cache it: ``python benches/prepare.py [FIXTURES_DIR]``.

From the real material of ``scripts/fetch_fixtures.sh`` (default ``.fixtures``, or
``$LINK_FAST_FIXTURES``), into ``FIXTURES_DIR/bench/``:

- ``eng-deu.tekken.lfv``: FreeDict eng-deu compiled for Mistral's Tekken (the large case:
  313k source words, 1.84M token-id keys); its compile time is in the file's header.
- ``pydoc.tekken.{bin,idx}``: every reST source of the Debian python3.11-doc package, one
  document per file, tokenized with Tekken (2.8M tokens) into a Megatron shard.

A part already there is kept: delete it to rebuild. The benches (``pytest benches``) and
``link-fast bench --vocab ... --shard ...`` read these.
"""

from __future__ import annotations

import importlib.resources
import os
import sys
import time
from pathlib import Path

import numpy as np


def fixtures_dir(argv: list[str] | None = None) -> Path:
    argv = sys.argv[1:] if argv is None else argv
    return Path(argv[0] if argv else os.environ.get("LINK_FAST_FIXTURES", ".fixtures")).resolve()


def tekken_path() -> Path:
    return Path(str(importlib.resources.files("mistral_common") / "data" / "tekken_240911.json"))


def prepare(root: Path) -> dict[str, Path]:
    from link_fast.compiler import compile_vocab
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
    if not paths["vocab"].exists():
        started = time.perf_counter()
        compile_vocab(tokenizer, {"de": dictionary}).save(paths["vocab"])
        print(f"compiled {paths['vocab']} in {time.perf_counter() - started:.1f} s", file=sys.stderr)
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
