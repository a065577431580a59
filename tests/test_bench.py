"""link-fast bench: the report's shape on a small run, and the baselines' own semantics."""

import json
import subprocess
import sys

import numpy as np
import pytest

from link_fast.training import bench as training_bench

pytest.importorskip("mistral_common")


def test_bench_cli_reports_rates_ratios_and_memory(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "link_fast",
            "bench",
            "--min-tokens",
            "20000",
            "--apply-tokens",
            "80000",
            "--repeat",
            "1",
            "--workers",
            "1,2",
            "--json",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    rows = {r["name"]: r for r in report["rows"]}
    for name in (
        "numpy copy",
        "kernel",
        "python id loop",
        "text pipeline",
        "text mode",
        "write + fsync",
        "apply 1w",
        "apply 2w",
    ):
        assert rows[name]["mtok_s"] > 0, name
    for row in rows.values():  # a rate is its tokens over its seconds
        assert row["mtok_s"] == pytest.approx(row["tokens"] / row["seconds"] / 1e6), row["name"]
    assert rows["kernel"]["tokens"] >= 20000
    for name, ratio in report["ratios"].items():  # a ratio is the quotient of the two rates it names
        top, bottom = name.split(" / ")
        assert ratio == pytest.approx(rows[top]["mtok_s"] / rows[bottom]["mtok_s"]), name
    # the point of the kernel, with a margin that no load on the machine erases
    assert report["ratios"]["kernel / python id loop"] > 2
    # A large-shard rate is the difference of a 80k- and a 20k-token run: present unless noise
    # made it meaningless, and then over the difference of the two sizes.
    for w in (1, 2):
        if f"apply {w}w large" in rows:
            assert rows[f"apply {w}w large"]["tokens"] == rows[f"apply {w}w"]["tokens"] * 3 // 4
    assert {"kernel / python id loop", "kernel / text pipeline", "kernel / numpy copy", "apply 1w / kernel"} <= {
        name.replace(" large", "") for name in report["ratios"]
    }
    assert abs(report["substituted_share"] - 0.3) < 0.05
    if training_bench.available():  # LINK in the data loader against megatron-core's own read
        for name in ("GPTDataset read", "GPTDataset read + default_collate", "LinkGPTDataset, batched"):
            assert rows[name]["tokens"] % 4096 == 0 and rows[name]["tokens"] > 0, name
        assert "LinkGPTDataset, batched / GPTDataset read + default_collate" in report["ratios"]
    assert report["memory_mb"]["apply 2w worker peak_rss"] > 0
    assert report["compile_seconds"] > 0
    assert not list(tmp_path.iterdir())  # temporaries are gone


def test_bench_rejects_bad_workers():
    proc = subprocess.run(
        [sys.executable, "-m", "link_fast", "bench", "--workers", "0"], capture_output=True, text=True
    )
    assert proc.returncode == 2 and "worker counts" in proc.stderr


def test_baselines_leave_text_alone_at_ratio_zero_and_substitute_at_one():
    from link_fast.bench import corpus_from_texts, id_table, python_id_loop, text_pipeline, word_table
    from link_fast.compiler import compile_vocab
    from link_fast.demo import DEMO_LANGUAGES, demo_documents, demo_tokenizer_path
    from link_fast.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(demo_tokenizer_path())
    vocab = compile_vocab(tokenizer, DEMO_LANGUAGES)
    corpus = corpus_from_texts("fables", demo_documents()[:5], tokenizer)
    ids, flags = id_table(vocab, corpus), np.asarray(vocab.tables["flags"])
    original = corpus.tokens.tolist()
    assert python_id_loop(corpus, ids, flags, 0.0) == original
    assert python_id_loop(corpus, ids, flags, 1.0) != original
    words = word_table(vocab)
    assert text_pipeline(corpus, tokenizer, words, 0.0) == [
        tokenizer.encode(tokenizer.decode(corpus.tokens[a:b].tolist()))
        for a, b in zip(corpus.offsets[:-1], corpus.offsets[1:])
    ]
    changed = text_pipeline(corpus, tokenizer, words, 1.0)
    assert "Fuchs" in tokenizer.decode(sum(changed, [])) or "renard" in tokenizer.decode(sum(changed, []))


def test_bench_compares_the_kernel_with_another_vocabulary(tmp_path, tekken):
    from link_fast.compiler import compile_vocab
    from link_fast.demo import DEMO_LANGUAGES

    compile_vocab(tekken, {"de": DEMO_LANGUAGES["de"]}, progress=False).save(tmp_path / "de.lfv")
    compile_vocab(tekken, DEMO_LANGUAGES, progress=False).save(tmp_path / "de-fr.lfv")
    command = [sys.executable, "-m", "link_fast", "bench", "--vocab", str(tmp_path / "de.lfv")]
    command += ["--compare-vocab", str(tmp_path / "de-fr.lfv"), "--tokenizer", "tekken", "--json"]
    command += ["--min-tokens", "20000", "--apply-tokens", "40000", "--repeat", "1"]
    proc = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    rows = {r["name"]: r for r in report["rows"]}
    assert rows["kernel, 2 languages"]["tokens"] == rows["kernel"]["tokens"]
    ratio = report["ratios"]["kernel, 2 languages / kernel"]
    assert ratio == pytest.approx(rows["kernel, 2 languages"]["mtok_s"] / rows["kernel"]["mtok_s"])
