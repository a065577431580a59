"""The kernel against the three baselines, on the same documents (pydoc x eng-deu, Tekken)."""

from conftest import RATIO


def test_kernel(benchmark, vocab, corpus, record_rate):
    from link_fast.substituter import Substituter

    substituter = Substituter(vocab, ratio=RATIO)
    benchmark(substituter.apply, corpus.tokens, corpus.offsets)
    record_rate(benchmark, corpus.n_tokens)


def test_numpy_copy(benchmark, corpus, record_rate):
    benchmark(corpus.tokens.copy)
    record_rate(benchmark, corpus.n_tokens)


def test_python_id_loop(benchmark, vocab, sample, record_rate):
    import numpy as np

    from link_fast.bench import id_table, python_id_loop

    table, flags = id_table(vocab, sample), np.asarray(vocab.tables["flags"])
    benchmark.pedantic(python_id_loop, args=(sample, table, flags, RATIO), rounds=1, iterations=1)
    record_rate(benchmark, sample.n_tokens)


def test_text_pipeline(benchmark, vocab, sample, tokenizer, record_rate):
    from link_fast.bench import text_pipeline, word_table

    table = word_table(vocab)
    benchmark.pedantic(text_pipeline, args=(sample, tokenizer, table, RATIO), rounds=1, iterations=1)
    record_rate(benchmark, sample.n_tokens)


def test_text_mode(benchmark, vocab, sample, tokenizer, record_rate):
    from link_fast.text import TextSubstituter

    texter = TextSubstituter(vocab, ratio=RATIO, tokenizer=tokenizer)
    benchmark.pedantic(texter.apply_batch, args=(sample.texts,), rounds=1, iterations=1)
    record_rate(benchmark, sample.n_tokens)
