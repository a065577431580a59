"""Which translation is drawn: the weight of each of a word's translations.

Each mode gives a translation a score; within one key's translations in one language, the
highest scored gets ``WEIGHT_SCALE`` and the others their score relative to it, at least 1,
and ``max_translations`` keeps the highest scored.

- ``uniform``: every translation the same (the first ones kept, in the dictionary's order).
- ``frequency``: how common the translation is in its language (``wordfreq``), so that the
  model sees the common word for a thing more often than a rare one.
- ``sense`` (the default): that frequency, shared among the English words the dictionary
  gives the translation for, five times for a cognate of the English word, a hundredth for
  each word past the first. eng-deu gives ``Stand`` for "class", but also for "state",
  "stand", "position", "level" and more, so a fifth of its frequency counts for "class";
  ``Klasse`` is spelled like "class" (``Funktion`` like "function"; Cyrillic is read in Latin
  letters). A phrase is far rarer than its words, and word-for-word substitution wants a word.
  docs/QUALITY.md has what each mode measures.

A language wordfreq lacks falls back to uniform weights, and the compile report says so.
"""

from __future__ import annotations

import dataclasses
import unicodedata
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from .errors import LinkFastError
from .languages import language_code
from .lexicon import Lexicon

TRANSLATION_WEIGHTS = ("sense", "frequency", "uniform")
_PHRASE_PENALTY = 0.01  # per word past the first (sense)
_COGNATE_BONUS = 5.0  # (sense)
_COGNATE_SIMILARITY = 0.7  # spelled alike: class/Klasse 0.83, function/Funktion 0.88, type/taper 0.6
_CYRILLIC_LATIN = str.maketrans(
    {
        **dict(zip("абвгдезийклмнопрстуфхыэ", "abvgdezijklmnoprstufhye")),
        "ж": "zh",
        "ц": "ts",
        "ч": "ch",
        "ш": "sh",
        "щ": "sch",
        "ю": "yu",
        "я": "ya",
        "ё": "e",
        "ъ": "",
        "ь": "",
    }
)
_SEGMENTED = frozenset({"ja", "ko", "zh"})
WEIGHT_SCALE = 65535  # the most frequent translation's weight; weights stay far below 2^32 in sum
# Language codes (link_fast.languages) that wordfreq spells otherwise: it keeps Norwegian
# Bokmål as nb and Serbian, Croatian and Bosnian as one sh.
_ALIASES = {"no": "nb", "sr": "sh", "hr": "sh", "bs": "sh"}


def _wordfreq():
    try:
        import wordfreq
    except ImportError:
        raise LinkFastError(
            "translation weights by frequency need wordfreq: pip install 'link_fast[frequency]'"
        ) from None
    return wordfreq


def wordfreq_language(lang: str) -> str | None:
    """wordfreq's code for a vocabulary language name (``de``, ``deu``, ``nor``...), or None."""
    available = _wordfreq().available_languages()
    code = language_code(lang)
    code = _ALIASES.get(code or "", code)
    return code if code in available else None


def frequency_lookup(code: str) -> Callable[[str], float]:
    """A function from a translation's text to its frequency in language ``code`` (0 if unseen):
    one dictionary lookup for a plain word, wordfreq's own tokenization for anything else."""
    wordfreq = _wordfreq()
    table = wordfreq.get_frequency_dict(code)
    # wordfreq cuts these languages' text into words with MeCab or jieba, which it does not
    # install: a translation not in the word list counts as unseen
    whole_words_only = code in _SEGMENTED

    def frequency(text: str) -> float:
        word = unicodedata.normalize("NFC", text.strip()).casefold()
        found = table.get(word)
        if found is not None:
            return float(found)
        if whole_words_only:
            return 0.0
        return float(wordfreq.word_frequency(text.strip(), code))

    return frequency


def range_weights(frequencies: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Integer weights >= 1 from ``frequencies``, relative to the highest of each range
    ``[starts[i], starts[i + 1])``; a range where nothing was seen gets weight 1 throughout."""
    frequencies = np.asarray(frequencies, dtype=np.float64)
    weights = np.ones(len(frequencies), dtype=np.int64)
    sizes = np.diff(starts)
    if not len(frequencies):
        return weights
    firsts = np.asarray(starts[:-1])[sizes > 0]
    top = np.repeat(np.maximum.reduceat(frequencies, firsts), sizes[sizes > 0])
    seen = top > 0
    scaled = np.rint(WEIGHT_SCALE * frequencies[seen] / top[seen]).astype(np.int64)
    weights[seen] = np.maximum(scaled, 1)
    return weights


Score = Callable[[str, str], float]  # (source, translation) -> score


def best_first(source: str, translations: Sequence[str], score: Score) -> list[str]:
    """``translations`` of ``source`` from the best to the worst scored; ties keep their order."""
    scored = [(-score(source, t), i, t) for i, t in enumerate(translations)]
    return [t for _, _, t in sorted(scored)]


def keep_best(lexicon: Lexicon, score: Score | None, limit: int) -> Lexicon:
    """``lexicon`` with each source's translations ordered best scored first (None: as they
    are) and cut to ``limit`` (0: no limit); those cut are counted as ``dropped_max_translations``."""
    entries, cut = {}, 0
    for source, translations in lexicon.entries.items():
        ordered = best_first(source, translations, score) if score is not None else list(translations)
        if limit and len(ordered) > limit:
            cut += len(ordered) - limit
            ordered = ordered[:limit]
        entries[source] = ordered
    report = dict(lexicon.report)
    report["dropped_max_translations"] = report.get("dropped_max_translations", 0) + cut
    report["pairs_kept"] = report.get("pairs_kept", 0) - cut
    return dataclasses.replace(lexicon, entries=entries, report=report)


def _folded(text: str) -> str:
    return unicodedata.normalize("NFC", text.strip()).casefold()


def sense_scores(lexicon: Lexicon, code: str) -> Score:
    """The ``sense`` score of a (source, translation) pair (module docstring), from ``lexicon``
    read whole: the translation's frequency in language ``code``, shared among the source
    words it translates, five times for a cognate of the source, a hundredth for each word
    past its first."""
    frequency = frequency_lookup(code)
    sources: dict[str, set[str]] = {}
    for source, translations in lexicon.entries.items():
        folded = source.casefold()
        for translation in translations:
            sources.setdefault(_folded(translation), set()).add(folded)
    shared = {translation: len(words) for translation, words in sources.items()}
    del sources
    cognate = _cognate_test(code)

    known: dict[tuple[str, str], float] = {}  # a pair is scored for each of its case forms

    def score(source: str, translation: str) -> float:
        key = (source.casefold(), _folded(translation))
        value = known.get(key)
        if value is None:
            words = key[1].count(" ") + 1
            value = frequency(key[1]) * _PHRASE_PENALTY ** (words - 1) / shared.get(key[1], 1)
            value = known[key] = value * _COGNATE_BONUS if cognate(*key) else value
        return value

    return score


def _skeleton(text: str) -> str:
    """``text`` casefolded in ASCII letters: no accents, Cyrillic in Latin letters, and c as k,
    ph as f, as cognates spell them across languages (class/Klasse, phase/Phase/fase)."""
    text = unicodedata.normalize("NFD", text.casefold()).translate(_CYRILLIC_LATIN)
    letters = "".join(ch for ch in text if "a" <= ch <= "z")
    return letters.replace("ph", "f").replace("c", "k")


def _similarity(a: str, b: str) -> float:
    """1 - the Levenshtein distance of two skeletons / the longer length."""
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return 1.0 - previous[-1] / max(len(a), len(b))


def _cognate_test(code: str) -> Callable[[str, str], bool]:
    """Whether a translation is a cognate of its English source: spelled alike, Cyrillic read
    in Latin letters. Japanese katakana loanwords are not favoured: as often as not the native
    word is the usual one (``mother``: 母, not ママ; ``key``: 鍵, not キー)."""

    def cognate(source: str, translation: str) -> bool:
        if " " in source or " " in translation:
            return False
        a, b = _skeleton(source), _skeleton(translation)
        # cognates begin alike; most pairs are told apart here, before the edit distance
        if not a or not b or a[0] != b[0] or abs(len(a) - len(b)) > 0.5 * max(len(a), len(b)):
            return False
        return _similarity(a, b) >= _COGNATE_SIMILARITY

    return cognate


def translation_score(mode: str, lexicon: Lexicon, lang: str) -> Score | None:
    """How ``mode`` scores ``lexicon``'s translations (``lang``: its vocabulary language), or
    None where every translation scores the same (uniform, or a language wordfreq lacks)."""
    if mode == "uniform":
        return None
    code = wordfreq_language(lang)
    if code is None:
        return None
    if mode == "sense":
        return sense_scores(lexicon, code)
    frequency = frequency_lookup(code)
    return lambda source, translation: frequency(translation)


def entry_weights(
    mode: str,
    languages: Sequence[str],
    key_trans_start: np.ndarray,
    key_trans: np.ndarray,
    key_texts: Sequence[str],
    trans_texts: Sequence[str],
    scores: Mapping[str, Score | None],
) -> tuple[np.ndarray | None, dict[str, str]]:
    """The weight of each ``key_trans`` entry under ``mode`` (None for uniform), from each
    language's score (:func:`translation_score`) of the key's text and the translation's, and
    per language how its weights were made. Entries of key k in language l lie in range k*L + l."""
    if mode == "uniform":
        return None, dict.fromkeys(languages, "uniform")
    n_languages = len(languages)
    sizes = np.diff(key_trans_start)
    entry_range = np.repeat(np.arange(len(sizes)), sizes)
    entry_lang = entry_range % n_languages
    n_texts = len(trans_texts)
    # a key's forms ("class", " Class", "CLASS") score as one source, its translations' alike
    source_id: dict[str, int] = {}
    key_source = np.array([source_id.setdefault(text.strip().casefold(), len(source_id)) for text in key_texts])
    source_texts = list(source_id)
    values = np.zeros(len(key_trans), dtype=np.float64)
    for index, lang in enumerate(languages):
        score = scores.get(lang)
        if score is None:
            continue
        mine = np.flatnonzero(entry_lang == index)
        pairs = key_source[entry_range[mine] // n_languages] * n_texts + key_trans[mine]
        distinct, inverse = np.unique(pairs, return_inverse=True)
        per_pair = np.array(
            [score(source_texts[p // n_texts], trans_texts[p % n_texts].strip()) for p in distinct.tolist()],
            dtype=np.float64,
        )
        values[mine] = per_pair[inverse]
    how = {
        lang: f"{mode} (wordfreq {wordfreq_language(lang)})" if scores.get(lang) else "uniform (wordfreq lacks it)"
        for lang in languages
    }
    return range_weights(values, key_trans_start), how
