"""Translations whose words were run together, found with the language's word list (wordfreq).

Some dictionaries lost the spaces of their multi-word translations: FreeDict eng-spa has
``LaHaya`` (La Haya), ``porlaizquierda`` (por la izquierda), ``tenerque`` (tener que). A
translation is **glued** when it is one word that no word list of its language knows, and
either changes from a lowercase to an uppercase letter inside (``LaHaya``), or splits into
known words of which one is among the language's commonest short words (``por``, ``la``,
``que``, ``de``): those are what a phrase is built with. In languages that write compounds
as one word (German ``Aufbauarbeit``) only the case step counts; languages written without
spaces (Japanese, Chinese, Thai) are not checked.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from functools import cache

from .lexicon import Lexicon

__all__ = ["glued_check", "drop_glued"]

_UNSPACED = frozenset({"ja", "zh", "th", "lo", "km", "my", "bo"})
# Languages that write compounds as one word (``Aufbauarbeit``: auf + bau + arbeit): a word
# list cannot tell a phrase run together from a compound there, so only the case step counts.
_COMPOUNDING = frozenset({"de", "nl", "sv", "da", "nb", "no", "nn", "fi", "hu", "is", "et", "af", "fy", "lb"})
_KNOWN_ZIPF = 4.0  # each part of a glued word is a common word: ten times in a million words
_GLUE_ZIPF = 5.5  # and one part is among its commonest words: 300 times in a million...
_GLUE_CHARS = 3  # ...and short, as articles, prepositions and conjunctions are
_LETTER_ZIPF = 6.5  # a one-letter word that may begin a run: Spanish "a" (7.3), "y"


def _zipf(frequency: float) -> float:
    return math.log10(frequency * 1e9) if frequency > 0 else 0.0


def glued_check(code: str) -> Callable[[str], bool] | None:
    """A test for glued translations in wordfreq language ``code`` (None for a language
    written without spaces)."""
    if code in _UNSPACED:
        return None
    from .weights import _wordfreq

    wordfreq = _wordfreq()
    table = wordfreq.get_frequency_dict(code)

    @cache
    def zipf(word: str) -> float:
        return _zipf(table.get(word, 0.0))

    def glued(translation: str) -> bool:
        if " " in translation or "-" in translation or "'" in translation:
            return False
        if _has_case_step(translation):  # wordfreq knows some run together: "AveMaria"
            return True
        # wordfreq's own lookup: it spells the word as its list does (œ, ț, ...)
        if table.get(translation.casefold(), 0.0) > 0 or wordfreq.word_frequency(translation, code) > 0:
            return False
        return code not in _COMPOUNDING and _splits_into_phrase(translation.casefold(), zipf)

    return glued


def _has_case_step(word: str) -> bool:
    """A lowercase letter followed by an uppercase one, but for names in Mc and Mac."""
    return any(
        a.islower() and b.isupper() and not word[: i + 1].endswith(("Mc", "Mac"))
        for i, (a, b) in enumerate(zip(word, word[1:]))
    )


def _splits_into_phrase(word: str, zipf: Callable[[str], float]) -> bool:
    """Whether ``word`` is a run of words: common words of three letters or more, and short
    grammatical ones (``a``, ``la``, ``que``; a single letter only inside, or first when it is
    a word as common as Spanish ``a``), at least one of them short."""
    n = len(word)
    # reach[i]: the kinds of part (1: long, 2: short) some split of word[:i] used
    reach: list[set[int]] = [set() for _ in range(n + 1)]
    reach[0].add(0)
    for i in range(n):
        if not reach[i]:
            continue
        for j in range(i + 1, n + 1):
            if j - i == n:
                break  # the whole word is not a split
            kind = _part_kind(word[i:j], zipf, inside=i > 0 and j < n)
            if kind:
                reach[j].update(used | kind for used in reach[i])
    return any(kinds & 2 for kinds in reach[n])


def _part_kind(part: str, zipf: Callable[[str], float], inside: bool) -> int:
    """1 for a common word of three letters or more, 2 for a short grammatical word, else 0."""
    score = zipf(part)
    if len(part) <= _GLUE_CHARS and score >= _GLUE_ZIPF and (len(part) > 1 or inside or score >= _LETTER_ZIPF):
        return 2
    if len(part) >= 3 and score >= _KNOWN_ZIPF:
        return 1
    return 0


def drop_glued(lexicon: Lexicon, glued: Callable[[str], bool]) -> Lexicon:
    """``lexicon`` without its glued translations, counted as ``dropped_glued``; a source left
    with none goes."""
    entries, dropped = {}, 0
    for source, translations in lexicon.entries.items():
        kept = [t for t in translations if not glued(t)]
        dropped += len(translations) - len(kept)
        if kept:
            entries[source] = kept
    report = dict(lexicon.report)
    report["dropped_glued"] = report.get("dropped_glued", 0) + dropped
    report["pairs_kept"] = report.get("pairs_kept", 0) - dropped
    report["sources"] = len(entries)
    report["phrases"] = sum(1 for source in entries if " " in source)
    return dataclasses.replace(lexicon, entries=entries, report=report)
