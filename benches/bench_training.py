"""LINK at training time against a plain GPTDataset read (docs/PERFORMANCE.md).

``python benches/bench_training.py [FIXTURES_DIR]`` or ``pytest benches/bench_training.py``:
the pydoc shard of prepare.py with an end-of-document id after every document, in a
megatron-core GPTDataset of 4096-token samples, FreeDict eng-deu for Tekken, ratio 0.3.
Rows, each the best of several alternating rounds over the same samples: the plain
GPTDataset read; LinkGPTDataset per sample; LinkGPTDataset batched (its collate_fn on
batches of 8); and the transform alone on the same ids (the kernel plus the piece handling).
"""

from __future__ import annotations

import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from prepare import fixtures_dir, prepare  # noqa: E402

SEQ = 4096
RATIO = 0.3
EOD = 2  # Tekken's </s>
BATCH = 8


class _Tokenizer:
    def __init__(self, vocab_size: int, eod: int):
        self.vocab_size, self.eod = vocab_size, eod
        self.unique_identifiers = {"class": "bench", "vocab_size": vocab_size}


def gpt_dataset(shard: Path, tmp: Path):
    """The bench shard's documents, each ended by EOD, as a GPTDataset of SEQ-token samples."""
    from megatron.core.datasets.gpt_dataset import GPTDataset, GPTDatasetConfig
    from megatron.core.datasets.indexed_dataset import IndexedDataset
    from megatron.core.datasets.utils import Split

    from link_fast.bench import corpus_from_shard
    from link_fast.shards import ShardWriter

    corpus = corpus_from_shard(str(shard))
    tokens, offsets = corpus.tokens, corpus.offsets
    lengths = np.diff(offsets) + 1
    out_offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=out_offsets[1:])
    out = np.empty(int(out_offsets[-1]), dtype=np.int32)
    keep = np.ones(len(out), dtype=bool)
    keep[out_offsets[1:] - 1] = False
    out[keep] = tokens[offsets[0] : offsets[-1]]
    out[~keep] = EOD
    prefix = tmp / "pydoc_eod"
    with ShardWriter(prefix, np.int32) as writer:
        writer.write(out, out_offsets)
    config = GPTDatasetConfig(
        random_seed=1,
        sequence_length=SEQ,
        tokenizer=_Tokenizer(131072, EOD),
        reset_position_ids=False,
        reset_attention_mask=False,
        eod_mask_loss=False,
        create_attention_mask=False,
        path_to_cache=str(tmp / "cache"),
    )
    low = IndexedDataset(str(prefix))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return GPTDataset(low, str(prefix), np.arange(len(low), dtype=np.int32), None, Split.train, config)


def measure(vocab, ds, rounds: int = 5) -> dict:
    """Seconds per sample of each way of reading the same samples (best round of each)."""
    import torch

    from link_fast.training import LinkGPTDataset, SampleTransform

    n = len(ds)
    link = LinkGPTDataset(ds, vocab, ratio=RATIO)
    batched = LinkGPTDataset(ds, vocab, ratio=RATIO, batched=True)
    transform = SampleTransform(vocab, eod_id=EOD, ratio=RATIO)
    texts = np.stack([np.concatenate([ds[i]["tokens"].numpy(), ds[i]["labels"].numpy()[-1:]]) for i in range(n)])

    def plain():
        for i in range(n):
            ds[i]

    def per_sample():
        for i in range(n):
            link[i]

    def collated():
        for start in range(0, n, BATCH):
            batched.collate_fn([batched[i] for i in range(start, min(n, start + BATCH))])

    def plain_collated():
        for start in range(0, n, BATCH):
            torch.utils.data.default_collate([ds[i] for i in range(start, min(n, start + BATCH))])

    from link_fast import Substituter

    substituter = Substituter(vocab, ratio=RATIO)
    work = texts.astype(np.int32)
    whole = np.arange(0, work.size + 1, work.shape[1], dtype=np.int64)
    one_piece = np.array([0, work.shape[1]], dtype=np.int64)

    def kernel_per_sample():
        for i in range(n):
            substituter.apply(work[i], one_piece, first_doc=i)

    def kernel_one_call():
        substituter.apply(work.reshape(-1), whole)

    def transform_only():
        for start in range(0, n, BATCH):
            transform.apply_batch(texts[start : start + BATCH], list(range(start, min(n, start + BATCH))))

    runs = {
        "plain GPTDataset read": plain,
        "LinkGPTDataset, per sample": per_sample,
        "plain read + default_collate": plain_collated,
        "LinkGPTDataset, batched collate_fn": collated,
        "transform alone (kernel + pieces)": transform_only,
        "kernel, one call per sample": kernel_per_sample,
        "kernel, one call for all samples": kernel_one_call,
    }
    best = {name: float("inf") for name in runs}
    for _ in range(rounds):  # alternate, so that a busy moment of the machine hits every row
        for name, fn in runs.items():
            started = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - started)
    tokens = n * SEQ
    rows = {name: {"M_tokens_per_s": tokens / s / 1e6, "us_per_sample": s / n * 1e6} for name, s in best.items()}
    rows["ratios"] = {
        "per sample / plain read (time)": best["LinkGPTDataset, per sample"] / best["plain GPTDataset read"],
        "batched / plain read + collate (time)": best["LinkGPTDataset, batched collate_fn"]
        / best["plain read + default_collate"],
        "kernel one call for all / plain read (time)": best["kernel, one call for all samples"]
        / best["plain GPTDataset read"],
    }
    rows["samples"] = n
    return rows


def run(root: Path) -> dict:
    from link_fast.tokenizer import load_tokenizer
    from link_fast.vocab import Vocab

    paths = prepare(root)
    vocab = Vocab.load(paths["vocab"], tokenizer=load_tokenizer(paths["tokenizer"]))
    with tempfile.TemporaryDirectory() as tmp:
        return measure(vocab, gpt_dataset(paths["shard"], Path(tmp)))


def test_bench_training():
    """A single untimed run through pytest: the figures are printed."""
    rows = run(fixtures_dir([]))
    print(rows)
    assert rows["samples"] > 0


if __name__ == "__main__":
    import json

    print(json.dumps(run(fixtures_dir()), indent=2))
