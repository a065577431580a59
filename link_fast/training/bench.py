"""LINK at training time against a plain megatron-core ``GPTDataset`` read of the same
samples (``link-fast bench``'s training rows, ``benches/bench_training.py``).

A corpus's documents, each ended by an end-of-document id, are written as a shard and read
as a ``GPTDataset`` of fixed-length samples; every way of reading them reads the same
samples, and each figure is the best of several rounds in which the ways alternate, so that
a busy moment of the machine hits each of them. Needs torch and megatron-core.
"""

from __future__ import annotations

import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..vocab import Vocab

SEQ = 4096  # tokens per sample, the length
BATCH = 8  # samples per batch of the batched wrapper


class _Tokenizer:
    """What GPTDatasetConfig reads of a tokenizer: its size, its end-of-document id, a name."""

    def __init__(self, vocab_size: int, eod: int):
        self.vocab_size, self.eod = vocab_size, eod
        self.unique_identifiers = {"class": "link_fast.training.bench", "vocab_size": vocab_size}


def available() -> bool:
    """Whether torch and megatron-core can be imported."""
    try:
        import megatron.core.datasets.gpt_dataset  # noqa: F401
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def eod_id(vocab: Vocab) -> int:
    """An id that stands for the end of a document: the vocabulary's first special token
    other than 0, the wrappers' default padding (any special id would do: none is matched,
    each is a boundary)."""
    from ..tokenizer import FLAG_SPECIAL

    special = np.flatnonzero(np.asarray(vocab.tables["flags"]) & FLAG_SPECIAL)
    special = special[special != 0]
    return int(special[0]) if len(special) else 0


def gpt_dataset(tokens: np.ndarray, offsets: np.ndarray, eod: int, vocab_size: int, tmp: Path, seq: int = SEQ):
    """The documents ``tokens[offsets[d]:offsets[d + 1]]``, each followed by ``eod``, as a
    GPTDataset of ``seq``-token samples whose files live in ``tmp``."""
    from megatron.core.datasets.gpt_dataset import GPTDataset, GPTDatasetConfig
    from megatron.core.datasets.indexed_dataset import IndexedDataset
    from megatron.core.datasets.utils import Split

    from ..shards import ShardWriter

    lengths = np.diff(offsets) + 1
    out_offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=out_offsets[1:])
    out = np.empty(int(out_offsets[-1]), dtype=np.int32)
    ends = np.zeros(len(out), dtype=bool)
    ends[out_offsets[1:] - 1] = True
    out[~ends] = tokens[offsets[0] : offsets[-1]]
    out[ends] = eod
    prefix = tmp / "documents_eod"
    with ShardWriter(prefix, np.int32) as writer:
        writer.write(out, out_offsets)
    config = GPTDatasetConfig(
        random_seed=1,
        sequence_length=seq,
        tokenizer=_Tokenizer(vocab_size, eod),
        reset_position_ids=False,
        reset_attention_mask=False,
        eod_mask_loss=False,
        create_attention_mask=False,
        path_to_cache=str(tmp / "cache"),
    )
    low = IndexedDataset(str(prefix))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # megatron-core's notes on its own configuration
        return GPTDataset(low, str(prefix), np.arange(len(low), dtype=np.int32), None, Split.train, config)


def readers(vocab: Vocab, ds: Any, ratio: float, seed: int = 0) -> dict[str, Callable[[], object]]:
    """Each way of reading all of ``ds``'s samples, by name: plain, and through the wrappers."""
    import torch

    from .torch_data import LinkGPTDataset

    n = len(ds)
    per_sample = LinkGPTDataset(ds, vocab, ratio=ratio, seed=seed)
    batched = LinkGPTDataset(ds, vocab, ratio=ratio, seed=seed, batched=True)
    batches = [list(range(start, min(n, start + BATCH))) for start in range(0, n, BATCH)]

    def plain() -> None:
        for i in range(n):
            ds[i]

    def plain_collated() -> None:
        for batch in batches:
            torch.utils.data.default_collate([ds[i] for i in batch])

    def wrapped() -> None:
        for i in range(n):
            per_sample[i]

    def wrapped_batched() -> None:
        for batch in batches:
            batched.collate_fn([batched[i] for i in batch])

    return {
        "GPTDataset read": plain,
        "GPTDataset read + default_collate": plain_collated,
        "LinkGPTDataset, per sample": wrapped,
        "LinkGPTDataset, batched": wrapped_batched,
    }


def best_seconds(runs: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    """The fastest round of each run, the runs alternating within each round."""
    best = {name: float("inf") for name in runs}
    for _ in range(max(1, rounds)):
        for name, fn in runs.items():
            started = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - started)
    return best


def training_seconds(
    vocab: Vocab, tokens: np.ndarray, offsets: np.ndarray, *, ratio: float, seed: int = 0, rounds: int = 3
) -> tuple[dict[str, float], int]:
    """(seconds of each of ``readers`` over every sample, samples) for a corpus's documents."""
    with tempfile.TemporaryDirectory(prefix="link_fast_trainbench_") as tmp:
        ds = gpt_dataset(tokens, offsets, eod_id(vocab), vocab.vocab_size, Path(tmp))
        return best_seconds(readers(vocab, ds, ratio, seed), rounds), len(ds)
