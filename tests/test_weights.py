"""Translation weights: stored in the vocabulary, honoured by the kernel's draws."""

from __future__ import annotations

import numpy as np
import pytest

from link_fast import Substituter, Vocab
from link_fast.errors import VocabError
from link_fast.tokenizer import FLAG_END_WORD, FLAG_HAS_WORD, FLAG_WS_START
from link_fast.vocab import Entry, cumulated_weights
from link_fast.weights import WEIGHT_SCALE, range_weights

WORD = FLAG_WS_START | FLAG_HAS_WORD | FLAG_END_WORD
# Chi-square critical value for 3 degrees of freedom at p = 0.001: a correct kernel fails once in
# a thousand seeds, and the seed is fixed.
CHI2_3DF_999 = 16.27


def weighted_vocab(weights: list[int]) -> Vocab:
    """Token 1 is a word with one translation per weight: token 10 + i, drawn with weights[i]."""
    flags = np.full(20, WORD, dtype=np.uint8)
    translations = [((10 + i,), f"t{i}", w) for i, w in enumerate(weights)]
    return Vocab.from_entries(flags, [Entry((1,), "w", {0: translations})], ["de"])


def draw_counts(vocab: Vocab, n_words: int, seed: int = 0) -> np.ndarray:
    tokens = np.ones(n_words, dtype=np.uint16)
    offsets = np.arange(0, n_words + 1, 1000, dtype=np.int64)
    result = Substituter(vocab, ratio=1.0, seed=seed).apply(tokens, offsets)
    return np.bincount(result.tokens.astype(np.int64) - 10, minlength=len(vocab.translations(0, 0)))


def test_cumulated_weights_restart_in_every_key_language_range() -> None:
    starts = np.array([0, 2, 2, 5])
    assert cumulated_weights(starts, np.array([3, 1, 2, 2, 7]), 5).tolist() == [3, 4, 2, 4, 11]
    assert cumulated_weights(starts, None, 5).tolist() == [1, 2, 1, 2, 3]
    with pytest.raises(ValueError, match=">= 1"):
        cumulated_weights(starts, np.array([3, 0, 2, 2, 7]), 5)
    with pytest.raises(ValueError, match="2\\^32"):
        cumulated_weights(np.array([0, 2]), np.array([2**31, 2**31]), 2)


def test_the_kernel_draws_translations_in_proportion_to_their_weights() -> None:
    weights = [1, 2, 3, 10]
    counts = draw_counts(weighted_vocab(weights), 160_000)
    expected = counts.sum() * np.array(weights) / sum(weights)
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < CHI2_3DF_999, (counts.tolist(), expected.tolist())


def test_equal_weights_draw_exactly_as_uniform_ones() -> None:
    """Weights are relative: all 5s and all 1s give the same bytes."""
    ones = Substituter(weighted_vocab([1, 1, 1]), ratio=1.0, seed=3)
    fives = Substituter(weighted_vocab([5, 5, 5]), ratio=1.0, seed=3)
    tokens, offsets = np.ones(3000, dtype=np.uint16), np.array([0, 1000, 3000], dtype=np.int64)
    a, b = ones.apply(tokens, offsets), fives.apply(tokens, offsets)
    assert np.array_equal(a.tokens, b.tokens)


def test_a_translation_of_weight_one_beside_a_heavy_one_is_rare_but_possible() -> None:
    counts = draw_counts(weighted_vocab([1, WEIGHT_SCALE]), 2_000_000)
    # expected 2e6 / 65536 = 30.5 draws; the bounds are Poisson's at about one in a million
    assert 8 <= counts[0] <= 62, counts


def test_weights_survive_save_and_load(tmp_path) -> None:
    vocab = weighted_vocab([4, 1, 9])
    vocab.save(tmp_path / "w.lfv")
    loaded = Vocab.load(tmp_path / "w.lfv")
    assert loaded.translation_weights(0, 0) == [4, 1, 9]
    assert np.array_equal(draw_counts(vocab, 5000), draw_counts(loaded, 5000))


def test_weights_that_do_not_rise_are_refused_on_load(tmp_path) -> None:
    vocab = weighted_vocab([4, 1, 9])
    vocab.tables["key_trans_cum"] = np.array([4, 4, 14], dtype=np.uint32)
    vocab.save(tmp_path / "bad.lfv")
    with pytest.raises(VocabError, match="key_trans_cum"):
        Vocab.load(tmp_path / "bad.lfv")


def test_range_weights_are_relative_to_the_most_frequent_of_each_range() -> None:
    frequencies = np.array([1e-5, 2e-5, 0.0, 0.0, 0.0, 3e-9])
    weights = range_weights(frequencies, np.array([0, 3, 5, 6]))
    assert weights.tolist() == [WEIGHT_SCALE // 2 + 1, WEIGHT_SCALE, 1, 1, 1, WEIGHT_SCALE]


# -- compiled by frequency ----------------------------------------------------------------------


def _pairs(tmp_path, lines: list[str], name: str = "en-fr.txt"):
    path = tmp_path / name
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def _weights_of(vocab: Vocab, key_text: str, lang: str) -> dict[str, int]:
    key = next(k for k in range(vocab.n_keys) if vocab.key_text(k) == key_text)
    l = vocab.languages.index(lang)
    return {t: w for (_, t), w in zip(vocab.translations(key, l), vocab.translation_weights(key, l))}


def test_frequency_weights_follow_word_frequency_and_keep_the_most_frequent(tmp_path, tekken) -> None:
    pytest.importorskip("wordfreq")
    from link_fast.compiler import compile_vocab
    from link_fast.lexicon import CleaningOptions

    # file order puts the rare words first: uniform keeps them, frequency keeps the common one
    pairs = _pairs(tmp_path, ["house demeure", "house logis", "house maison", "cat matou", "cat chat"])
    cleaning = CleaningOptions(max_translations=2)
    uniform = compile_vocab(tekken, {"fr": pairs}, cleaning=cleaning, progress=False, translation_weights="uniform")
    weighted = compile_vocab(tekken, {"fr": pairs}, cleaning=cleaning, progress=False, translation_weights="frequency")
    assert set(_weights_of(uniform, " house", "fr")) == {" demeure", " logis"}
    assert _weights_of(uniform, " house", "fr") == {" demeure": 1, " logis": 1}
    house = _weights_of(weighted, " house", "fr")
    assert set(house) == {" maison", " demeure"} and house[" maison"] == WEIGHT_SCALE
    assert 1 <= house[" demeure"] < WEIGHT_SCALE // 4
    cat = _weights_of(weighted, " Cat", "fr")  # every case form weighs as the dictionary word
    assert cat[" Chat"] == WEIGHT_SCALE and cat[" Matou"] < cat[" Chat"]
    assert weighted.meta["options"]["translation_weights"] == "frequency"
    assert weighted.meta["report"]["languages"]["fr"]["translation_weights"] == "frequency (wordfreq fr)"
    assert weighted.meta["report"]["lexicons"]["fr"]["dropped_max_translations"] == 1


def test_a_language_wordfreq_lacks_stays_uniform_and_says_so(tmp_path, tekken) -> None:
    pytest.importorskip("wordfreq")
    from link_fast.compiler import compile_vocab

    pairs = _pairs(tmp_path, ["house domus", "house aedes"], "en-la.txt")
    vocab = compile_vocab(tekken, {"la": pairs}, progress=False, translation_weights="frequency")
    assert set(_weights_of(vocab, " house", "la").values()) == {1}
    assert vocab.meta["report"]["languages"]["la"]["translation_weights"] == "uniform (wordfreq lacks it)"


def test_frequency_compiles_are_byte_identical(tmp_path, tekken) -> None:
    pytest.importorskip("wordfreq")
    from link_fast.compiler import compile_vocab

    pairs = _pairs(tmp_path, ["house maison", "house demeure", "time temps", "time fois", "time heure"])
    for n, workers in enumerate((1, 2)):
        vocab = compile_vocab(tekken, {"fr": pairs}, progress=False, translation_weights="frequency", workers=workers)
        vocab.save(tmp_path / f"{n}.lfv")
    assert (tmp_path / "0.lfv").read_bytes() == (tmp_path / "1.lfv").read_bytes()


def test_unknown_translation_weights_are_refused(tekken) -> None:
    from link_fast.compiler import compile_vocab
    from link_fast.errors import InputError

    with pytest.raises(InputError, match="translation_weights"):
        compile_vocab(tekken, {"fr": "x"}, translation_weights="zipf")


def test_a_format_2_vocabulary_is_refused_with_a_recompile_line(tmp_path) -> None:
    import struct

    vocab = weighted_vocab([1, 2])
    vocab.save(tmp_path / "v.lfv")
    raw = bytearray((tmp_path / "v.lfv").read_bytes())
    raw[8:12] = struct.pack("<I", 2)
    (tmp_path / "old.lfv").write_bytes(bytes(raw))
    with pytest.raises(VocabError, match="format version 2.*recompile"):
        Vocab.load(tmp_path / "old.lfv")


def test_sense_weights_favour_the_translation_specific_to_the_word(tmp_path, tekken) -> None:
    from link_fast.compiler import compile_vocab

    # Stand is common German, but stands for many English words; Klasse is a cognate of class
    lines = ["class\tStand", "class\tStunde", "class\tKlasse", "state\tStand", "stand\tStand", "level\tStand"]
    lines += ["hour\tStunde", "lesson\tStunde", "bird\tVogel", "bird\tMieze", "for example\tzum Beispiel"]
    lines += ["for example\tetwa"]
    pairs = _pairs(tmp_path, lines, "en-de.txt")
    vocab = compile_vocab(tekken, {"de": pairs}, progress=False)  # sense: the default
    frequency = compile_vocab(tekken, {"de": pairs}, progress=False, translation_weights="frequency")
    assert vocab.meta["options"]["translation_weights"] == "sense"
    sense_class = _weights_of(vocab, " class", "de")
    assert max(sense_class, key=sense_class.get) == " Klasse"
    assert _weights_of(frequency, " class", "de")[" Stand"] == WEIGHT_SCALE  # frequency alone: the common word
    bird = _weights_of(vocab, " bird", "de")
    assert bird[" Vogel"] == WEIGHT_SCALE and bird[" Mieze"] < WEIGHT_SCALE // 10
    example = _weights_of(vocab, " for example", "de")  # a phrase weighs a hundredth a word
    assert example[" etwa"] == WEIGHT_SCALE and example[" zum Beispiel"] < WEIGHT_SCALE // 10


def test_sense_scores_are_pure_functions_of_the_pair() -> None:
    from link_fast.lexicon import Lexicon
    from link_fast.weights import sense_scores

    lexicon = Lexicon("de", "x", {"class": ["Klasse", "Stand"], "state": ["Stand", "Zustand"]})
    score = sense_scores(lexicon, "de")
    assert score("class", "Klasse") == score("CLASS", "KLASSE") == score("Class", " Klasse ")
    assert score("class", "Klasse") > 0 and score("state", "Stand") == score("class", "Stand")
