"""LINK at training time against a plain GPTDataset read (docs/PERFORMANCE.md).

``python benches/bench_training.py [FIXTURES_DIR]`` or ``pytest benches/bench_training.py``:
the pydoc shard of prepare.py with an end-of-document id (Tekken's ``</s>``) after every
document, in a megatron-core GPTDataset of 4096-token samples, FreeDict eng-deu for Tekken,
ratio 0.3. Rows, each the best of several alternating rounds over the same samples:
link-fast bench's training rows (link_fast.training.bench: the plain read, LinkGPTDataset
per sample and batched), and the transform and the kernel alone on the same ids.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from prepare import fixtures_dir, prepare  # noqa: E402

RATIO = 0.3


def measure(vocab, ds, rounds: int = 5) -> dict:
    """Seconds per sample of each way of reading the same samples (best round of each):
    link-fast bench's training rows, and the transform and the kernel alone."""
    from link_fast import Substituter
    from link_fast.training import SampleTransform
    from link_fast.training.bench import BATCH, SEQ, best_seconds, eod_id, readers

    n = len(ds)
    transform = SampleTransform(vocab, eod_id=eod_id(vocab), ratio=RATIO)
    texts = np.stack([np.concatenate([ds[i]["tokens"].numpy(), ds[i]["labels"].numpy()[-1:]]) for i in range(n)])
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

    runs = dict(readers(vocab, ds, RATIO))
    runs["transform alone (kernel + pieces)"] = transform_only
    runs["kernel, one call per sample"] = kernel_per_sample
    runs["kernel, one call for all samples"] = kernel_one_call
    best = best_seconds(runs, rounds)
    tokens = n * SEQ
    rows: dict = {name: {"M_tokens_per_s": tokens / s / 1e6, "us_per_sample": s / n * 1e6} for name, s in best.items()}
    rows["ratios"] = {
        "per sample / plain read (time)": best["LinkGPTDataset, per sample"] / best["GPTDataset read"],
        "batched / plain read + collate (time)": best["LinkGPTDataset, batched"]
        / best["GPTDataset read + default_collate"],
        "kernel one call for all / plain read (time)": best["kernel, one call for all samples"]
        / best["GPTDataset read"],
    }
    rows["samples"] = n
    return rows


def run(root: Path) -> dict:
    from link_fast.bench import corpus_from_shard
    from link_fast.tokenizer import load_tokenizer
    from link_fast.training.bench import eod_id, gpt_dataset
    from link_fast.vocab import Vocab

    paths = prepare(root)
    vocab = Vocab.load(paths["vocab"], tokenizer=load_tokenizer(paths["tokenizer"]))
    corpus = corpus_from_shard(str(paths["shard"]))
    with tempfile.TemporaryDirectory() as tmp:
        ds = gpt_dataset(corpus.tokens, corpus.offsets, eod_id(vocab), vocab.vocab_size, Path(tmp))
        return measure(vocab, ds)


def test_bench_training():
    """A single untimed run through pytest: the figures are printed."""
    rows = run(fixtures_dir([]))
    print(rows)
    assert rows["samples"] > 0


if __name__ == "__main__":
    import json

    print(json.dumps(run(fixtures_dir()), indent=2))
