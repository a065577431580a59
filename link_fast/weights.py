"""Which translation is drawn: the weight of each of a word's translations.

``uniform`` gives every translation weight 1. ``frequency`` weights each by how common it is in
its language, from ``wordfreq`` (an optional extra), so that the model sees the common word for a
thing more often than a rare sense: within one key's translations in one language, the most
frequent gets ``WEIGHT_SCALE`` and the others their frequency relative to it, at least 1. A
language wordfreq lacks falls back to uniform weights, and the compile report says so.
"""

from __future__ import annotations

import dataclasses
import unicodedata
from collections.abc import Callable, Sequence

import numpy as np

from .errors import LinkFastError
from .lexicon import Lexicon

TRANSLATION_WEIGHTS = ("frequency", "uniform")
_SEGMENTED = frozenset({"ja", "ko", "zh"})
WEIGHT_SCALE = 65535  # the most frequent translation's weight; weights stay far below 2^32 in sum
# Vocabulary language names whose wordfreq language langcodes does not give: wordfreq keeps
# Norwegian Bokmål as nb and Serbian, Croatian and Bosnian as one sh; FreeDict calls Romanian rom.
_ALIASES = {"no": "nb", "nor": "nb", "sr": "sh", "srp": "sh", "hr": "sh", "hrv": "sh", "bs": "sh", "rom": "ro"}


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
    wordfreq = _wordfreq()
    available = wordfreq.available_languages()
    code = _ALIASES.get(lang.lower())
    if code is None:
        try:
            import langcodes

            code = langcodes.Language.get(lang).language
        except Exception:  # langcodes' own errors for names it cannot parse
            code = None
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


def most_frequent_first(translations: Sequence[str], frequency: Callable[[str], float]) -> list[str]:
    """``translations`` from the most to the least frequent; equal ones keep their order."""
    scored = [(-frequency(t), i, t) for i, t in enumerate(translations)]
    return [t for _, _, t in sorted(scored)]


def keep_most_frequent(lexicon: Lexicon, frequency: Callable[[str], float], limit: int) -> Lexicon:
    """``lexicon`` with each source's translations ordered most frequent first and cut to
    ``limit`` (0: no limit); the translations cut are counted as ``dropped_max_translations``."""
    entries, cut = {}, 0
    for source, translations in lexicon.entries.items():
        ordered = most_frequent_first(translations, frequency)
        if limit and len(ordered) > limit:
            cut += len(ordered) - limit
            ordered = ordered[:limit]
        entries[source] = ordered
    report = dict(lexicon.report)
    report["dropped_max_translations"] = report.get("dropped_max_translations", 0) + cut
    report["pairs_kept"] = report.get("pairs_kept", 0) - cut
    return dataclasses.replace(lexicon, entries=entries, report=report)


def entry_weights(
    mode: str, languages: Sequence[str], key_trans_start: np.ndarray, key_trans: np.ndarray, trans_texts: Sequence[str]
) -> tuple[np.ndarray | None, dict[str, str]]:
    """The weight of each ``key_trans`` entry under ``mode`` (None for uniform), and per
    language how its weights were made. Entries of key k in language l lie in range k*L + l."""
    if mode == "uniform":
        return None, dict.fromkeys(languages, "uniform")
    codes = {lang: wordfreq_language(lang) for lang in languages}
    n_languages = len(languages)
    sizes = np.diff(key_trans_start)
    entry_lang = np.repeat(np.arange(len(sizes)) % n_languages, sizes)
    frequencies = np.zeros(len(key_trans), dtype=np.float64)
    for index, lang in enumerate(languages):
        code = codes[lang]
        if code is None:
            continue
        mine = np.flatnonzero(entry_lang == index)
        distinct, inverse = np.unique(key_trans[mine], return_inverse=True)
        frequency = frequency_lookup(code)
        per_text = np.array([frequency(trans_texts[t]) for t in distinct.tolist()], dtype=np.float64)
        frequencies[mine] = per_text[inverse]
    how = {
        lang: f"frequency (wordfreq {code})" if code else "uniform (wordfreq lacks it)" for lang, code in codes.items()
    }
    return range_weights(frequencies, key_trans_start), how
