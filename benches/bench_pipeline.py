"""End to end: compile of the large dictionary, and link-fast apply file to file."""

import os

import pytest
from conftest import RATIO


def test_compile_eng_deu(benchmark, bench_paths, tokenizer):
    from link_fast.compiler import compile_vocab

    dictionary = bench_paths["vocab"].parent.parent / "freedict" / "freedict-eng-deu.index"
    vocab = benchmark.pedantic(compile_vocab, args=(tokenizer, {"de": dictionary}), rounds=1, iterations=1)
    benchmark.extra_info["keys"] = vocab.n_keys


@pytest.mark.parametrize("workers", sorted({1, 2, os.cpu_count() or 1}))
def test_apply(benchmark, bench_paths, corpus, tmp_path, workers, record_rate):
    from link_fast.runner import apply_shards

    def apply_once():
        apply_shards(
            bench_paths["vocab"], [str(bench_paths["shard"])], tmp_path, ratio=RATIO, workers=workers, progress=False
        )
        for path in tmp_path.iterdir():
            path.unlink()

    apply_once()  # warm the page cache
    benchmark.pedantic(apply_once, rounds=3, iterations=1)
    record_rate(benchmark, corpus.n_tokens)
