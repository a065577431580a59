"""Languages compose: applying a subset S of a vocabulary's languages gives, byte for byte, what a
vocabulary compiled from the dictionaries of S alone, in the same order, gives (same tokenizer,
seed and options; the order matters because a word's language is drawn in vocabulary order).

The one place languages could interfere is the compiler: when two sources produce the same
surface form (``os`` in UPPER and the abbreviation ``OS``), the source spelled that way wins
within a language, never across languages. Matching already considers only keys translated in
a language in play, so a phrase of another language never blocks a word.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from link_fast import Substituter, Vocab
from link_fast.compiler import compile_vocab
from link_fast.lexicon import Lexicon, load_lexicon

# Sources that collide across case variants and across languages, single words and phrases.
SOURCES = ["os", "OS", "us", "US", "the", "The", "cat", "Cat", "cat food", "the cat", "rule"]
TRANSLATIONS = ["Katze", "uns", "operační systém", "osa", "der", "die", "chat", "gato", "regla", "Regel", "von", "de"]
WORDS = ["os", "OS", "us", "US", "the", "The", "cat", "Cat", "food", "rule", "THE", "CAT", "Os", "Us"]
GLUE = [" ", " ", " ", "\n", ", ", ". ", "\n\n", " ("]


def apply(vocab: Vocab, docs: list[list[int]], languages: dict[str, float], seed: int):
    tokens = np.array([t for d in docs for t in d], dtype=np.uint32)
    offsets = np.concatenate(([0], np.cumsum([len(d) for d in docs]))).astype(np.int64)
    result = Substituter(vocab, ratio=0.6, portion=1.0, seed=seed, languages=languages, stream_key="k").apply(
        tokens, offsets
    )
    stats = result.stats.to_dict()
    return result.tokens.tobytes(), stats["candidates"], {lang: stats["substitutions"][lang] for lang in languages}


def assert_composable(tokenizer, lexicons: dict[str, Lexicon], subset: tuple[str, ...], docs, seed: int) -> None:
    union = compile_vocab(tokenizer, lexicons, progress=False, workers=1)
    alone = compile_vocab(tokenizer, {lang: lexicons[lang] for lang in subset}, progress=False, workers=1)
    weights = dict.fromkeys(subset, 1.0)
    assert apply(union, docs, weights, seed) == apply(alone, docs, weights, seed)


lexicon_entries = st.dictionaries(
    st.sampled_from(SOURCES),
    st.lists(st.sampled_from(TRANSLATIONS), min_size=1, max_size=3, unique=True),
    min_size=4,  # large enough that two languages' sources often collide
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(lexicon_entries, min_size=2, max_size=3),
    st.data(),
    st.lists(st.lists(st.tuples(st.sampled_from(WORDS), st.sampled_from(GLUE)), max_size=25), min_size=1, max_size=4),
    st.integers(0, 2**32),
)
def test_a_subset_of_languages_is_the_vocabulary_of_that_subset(tekken, entries, data, texts, seed):
    names = [f"l{i}" for i in range(len(entries))]
    lexicons = {name: Lexicon(name, name, dict(e)) for name, e in zip(names, entries)}
    # the subset's dictionaries in the union's order: languages are drawn in vocabulary order
    # a proper subset: the whole set would compare a compile with itself
    chosen = data.draw(st.sets(st.sampled_from(names), min_size=1, max_size=len(names) - 1), label="subset")
    subset = tuple(name for name in names if name in chosen)
    docs = [tekken.encode("".join(w + g for w, g in text)) for text in texts]
    assert_composable(tekken, lexicons, subset, docs, seed)


def test_a_form_claimed_in_two_languages_keeps_both_translations(tekken):
    """German ``os`` makes the form ``OS`` in UPPER; Czech spells ``OS`` itself. Each language
    keeps its own claim: a German-only run replaces ``OS`` by German's translation."""
    lexicons = {"de": Lexicon("de", "de", {"os": ["Mund"]}), "cs": Lexicon("cs", "cs", {"OS": ["operační systém"]})}
    vocab = compile_vocab(tekken, lexicons, progress=False, workers=1)
    key = next(k for k in range(vocab.n_keys) if vocab.key_text(k) == " OS")
    assert [t for _, t in vocab.translations(key, 0)] == [" MUND"]
    assert [t for _, t in vocab.translations(key, 1)] == [" operační systém"]
    docs = [tekken.encode("word OS word")]
    assert_composable(tekken, lexicons, ("de",), docs, 0)


# Eight FreeDict dictionaries small enough to compile in seconds.
REAL_LANGUAGES = {
    "fr": "fra",
    "pt": "por",
    "it": "ita",
    "nl": "nld",
    "sv": "swe",
    "es": "spa",
    "la": "lat",
    "da": "dan",
}


@pytest.mark.slow
def test_eight_freedict_languages_compose_on_real_text(tekken, freedict_dir, pydoc_documents):
    lexicons = {
        lang: load_lexicon(freedict_dir / f"freedict-eng-{code}.index", lang) for lang, code in REAL_LANGUAGES.items()
    }
    docs = [tekken.encode(text) for text in pydoc_documents[:150]]
    union = compile_vocab(tekken, lexicons, progress=False)
    subsets = [(lang,) for lang in REAL_LANGUAGES] + list(
        itertools.islice(itertools.combinations(REAL_LANGUAGES, 3), 3)
    )
    for subset in subsets:
        alone = compile_vocab(tekken, {lang: lexicons[lang] for lang in subset}, progress=False)
        weights = dict.fromkeys(subset, 1.0)
        got, expected = apply(union, docs, weights, 7), apply(alone, docs, weights, 7)
        assert got == expected, subset
        assert sum(got[2].values()) > 100, subset
