"""Shared data of the benches: real material only (see prepare.py), built once and cached.

Run with ``pytest benches`` (they are outside the default test run). Each bench reports its
rate in ``extra_info["M_tokens_per_s"]``; ``link-fast bench`` prints the same measurements as
ratios to the baselines.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from prepare import fixtures_dir, prepare  # noqa: E402

RATIO = 0.3


@pytest.fixture(scope="session")
def bench_paths() -> dict[str, Path]:
    return prepare(fixtures_dir([]))


@pytest.fixture(scope="session")
def tokenizer(bench_paths):
    from link_fast.tokenizer import load_tokenizer

    return load_tokenizer(bench_paths["tokenizer"])


@pytest.fixture(scope="session")
def vocab(bench_paths, tokenizer):
    from link_fast.vocab import Vocab

    return Vocab.load(bench_paths["vocab"], tokenizer=tokenizer)


@pytest.fixture(scope="session")
def corpus(bench_paths, tokenizer):
    from link_fast.bench import corpus_from_shard

    return corpus_from_shard(str(bench_paths["shard"]), tokenizer)


@pytest.fixture(scope="session")
def sample(corpus):
    from link_fast.bench import SAMPLE_TOKENS

    return corpus.head(SAMPLE_TOKENS)


def rate(benchmark, n_tokens: int) -> None:
    """Record M tokens/s of the fastest round, for comparing benches of different sizes."""
    benchmark.extra_info["tokens"] = int(n_tokens)
    if benchmark.stats is None:  # --benchmark-disable: each bench ran once, untimed
        return
    benchmark.extra_info["M_tokens_per_s"] = round(n_tokens / benchmark.stats.stats.min / 1e6, 3)


@pytest.fixture
def record_rate():
    return rate
