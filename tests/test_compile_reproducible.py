"""The same inputs and options compile to a byte-identical vocabulary, whatever the number of
worker processes and the encoding chunks; and to the vocabulary the compiler produced before
its lean rewrite (issue 13, part 2), pinned as a digest of the tables."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

import link_fast.compiler as compiler
from link_fast.compiler import compile_vocab
from link_fast.lexicon import CleaningOptions, Lexicon

DATA = Path(compiler.__file__).parent / "data"

# The demo dictionaries compiled for Tekken by the compiler as it was before the rewrite
# (commit 27da48c): every table but the flags and joiner flags (which token_flags and
# token_joiners compute, not the compiler) and the per-language report. Format 3 added the
# translation weights (key_trans_cum, and the report's translation_weights): they are left out
# of the digest and checked apart.
PINNED_DEMO_DIGEST = "8203dacb07e8cdf45cda5878f76f6c6f7a3709abe481a336aafb8d9733cba0da"


def demo_lexicon(lang: str) -> Lexicon:
    """The bundled demo dictionary, read here (not by the lexicon reader, whose cleaning may
    change): source<TAB>translation lines, translations in file order without repeats."""
    entries: dict[str, list[str]] = {}
    path = DATA / f"demo_en_{lang}.txt"
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            source, translation = line.split("\t")
            translations = entries.setdefault(source, [])
            if translation not in translations:
                translations.append(translation)
    return Lexicon(lang, str(path), entries)


def tables_digest(vocab) -> str:
    h = hashlib.sha256()
    for name in sorted(vocab.tables):
        if name not in ("flags", "joiner_flags", "key_trans_cum"):
            h.update(name.encode())
            h.update(np.ascontiguousarray(vocab.tables[name]).tobytes())
    report = {
        lang: {k: v for k, v in counts.items() if k != "translation_weights"}
        for lang, counts in vocab.meta["report"]["languages"].items()
    }
    h.update(json.dumps(report, sort_keys=True).encode())
    return h.hexdigest()


def head(lexicon: Lexicon, n: int) -> Lexicon:
    return Lexicon(lexicon.lang, lexicon.path, dict(list(lexicon.entries.items())[:n]), dict(lexicon.report))


# What the previous compiler did with lexicons given as objects: nothing curated, file order.
AS_GIVEN = {
    "cleaning": CleaningOptions(max_translations=0, drop_glued=False),
    "translation_weights": "uniform",
    "function_words": "dictionary",
    "default_deny": False,
}


def test_the_demo_vocabulary_is_the_one_the_previous_compiler_made(tekken):
    vocab = compile_vocab(tekken, {"de": demo_lexicon("de"), "fr": demo_lexicon("fr")}, progress=False, **AS_GIVEN)
    assert vocab.n_keys == 534
    assert tables_digest(vocab) == PINNED_DEMO_DIGEST
    starts = vocab.tables["key_trans_start"]  # uniform weights: 1, 2, 3, ... in every range
    expected = np.concatenate([np.arange(1, n + 1) for n in np.diff(starts)])
    assert np.array_equal(vocab.tables["key_trans_cum"], expected)


def test_worker_counts_and_chunks_do_not_change_the_bytes(tmp_path, tekken, real_lexicons, monkeypatch):
    lexicons = {"de": head(real_lexicons["de"], 6000), "fr": head(real_lexicons["fr"], 3000)}
    serial = compile_vocab(tekken, lexicons, workers=1, progress=False).save(tmp_path / "serial.lfv")
    # the forked encoders, many small chunks out of order of completion
    monkeypatch.setattr(compiler, "PARALLEL_MIN_FORMS", 1)
    monkeypatch.setattr(compiler, "ENCODE_CHUNK", 1000)
    forked = compile_vocab(tekken, lexicons, workers=2, progress=False).save(tmp_path / "forked.lfv")
    again = compile_vocab(tekken, lexicons, workers=3, progress=False).save(tmp_path / "again.lfv")
    assert serial.read_bytes() == forked.read_bytes() == again.read_bytes()
    assert compile_vocab(tekken, lexicons, workers=1, progress=False).n_keys > 10_000


def test_a_hash_collision_falls_back_to_exact_keys(tmp_path, tekken, real_lexicons, monkeypatch):
    lexicons = {"de": head(real_lexicons["de"], 3000)}
    expected = compile_vocab(tekken, lexicons, progress=False).save(tmp_path / "expected.lfv").read_bytes()
    # powers of zero: a sequence's hash depends on its length only, so nearly all collide
    monkeypatch.setattr(compiler, "_HASH_POWERS", np.zeros(64, dtype=np.uint64))
    collided = compile_vocab(tekken, lexicons, progress=False).save(tmp_path / "collided.lfv").read_bytes()
    assert collided == expected


def test_the_saved_file_holds_no_compile_time(tekken):
    vocab = compile_vocab(tekken, {"de": demo_lexicon("de")}, progress=False)
    assert "seconds" not in vocab.meta["report"]


@pytest.mark.slow
def test_freedict_compiles_to_the_same_bytes_in_one_process(tmp_path, tekken, real_lexicons, tekken_vocab_path):
    """The session's FreeDict eng-deu + eng-fra vocabulary (compiled with the default worker
    processes in another process) again, serially: the same file."""
    lexicons = {lang: real_lexicons[lang] for lang in ("de", "fr")}  # as conftest's REAL_VOCABS
    path = compile_vocab(tekken, lexicons, workers=1, progress=False).save(tmp_path / "serial.lfv")
    assert path.read_bytes() == Path(tekken_vocab_path).read_bytes()
