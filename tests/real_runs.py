"""Real shards and outputs for the inspect and report tests: documents of the Python
documentation tokenized with a real tokenizer, written as Megatron shards, rewritten by
``apply_shards`` with a real FreeDict vocabulary (conftest.py), with and without a mask."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from link_fast import apply_shards
from link_fast.shards import ShardWriter


def write_shard(prefix: Path, tokenizer, documents: list[str]) -> None:
    """``documents`` tokenized as one Megatron shard (uint16 when the ids fit, else int32)."""
    encoded = tokenizer.encode_batch(documents)
    dtype = np.dtype(np.uint16) if tokenizer.vocab_size <= 1 << 16 else np.dtype(np.int32)
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum([len(e) for e in encoded], out=offsets[1:])
    tokens = np.concatenate([np.asarray(e, dtype=dtype) for e in encoded])
    prefix.parent.mkdir(parents=True, exist_ok=True)
    with ShardWriter(prefix, dtype) as writer:
        writer.write(tokens, offsets)


def make_run(root: Path, tokenizer, vocab_path, documents: list[str], shards: int, mask: bool, **sampling) -> Path:
    """``shards`` input shards of the documents (split evenly) rewritten into ``root/out``."""
    per_shard = len(documents) // shards
    for s in range(shards):
        write_shard(root / "in" / f"shard_{s}", tokenizer, documents[s * per_shard : (s + 1) * per_shard])
    options = {"ratio": 0.3, "seed": 7, **sampling}
    apply_shards(vocab_path, [root / "in"], root / "out", mask=mask, progress=False, **options)
    return root / "out"
