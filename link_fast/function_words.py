"""English function words, translated from reviewed tables instead of the dictionaries.

Articles, pronouns, prepositions, conjunctions, auxiliaries: a fifth of English running text
and, with dictionary entries, half of all substitutions, most of them wrong (FreeDict
eng-fra's first sense of "the" is "to the", eng-ita's "and" is "eccetera"). The words are
listed in ``data/function_words/en.txt``; ``data/function_words/<code>.tsv`` gives, for one
language, each word's translations, or ``-`` where no single word renders it in most of its
uses (``that``, ``as``, ``up``): such a word is never substituted.

``--function-words`` (``CleaningOptions`` does not hold it: it is not a cleaning of the
dictionary but a replacement of part of it) chooses, per compile:

- ``table`` (default): the shipped table of the language where there is one, for the
  function words the dictionary has; for a language without one, function words are not
  substituted at all;
- ``dictionary``: the dictionary's own entries, as any other word;
- ``skip``: never substituted;
- a path: a table of the same layout, for every language of the compile.

A table's words are compiled in lower and Title case only: an all-capital ``US``, ``IT``,
``OR`` or ``AND`` is an acronym or a keyword, not the function word.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from .errors import DictionaryError, InputError
from .languages import language_code
from .lexicon import Lexicon, word_list_lines

__all__ = ["FUNCTION_WORD_MODES", "english_function_words", "load_table", "table_for", "replace_function_words"]

FUNCTION_WORD_MODES = ("table", "dictionary", "skip")
_DATA = Path(__file__).parent / "data" / "function_words"
_NONE = "-"

Table = dict[str, list[str]]  # English function word -> its translations ([] : never substituted)


def english_function_words() -> frozenset[str]:
    """The English function words the tables translate (``data/function_words/en.txt``)."""
    return frozenset(line for _, line in word_list_lines(_DATA / "en.txt"))


def load_table(path: str | os.PathLike) -> Table:
    """A function-word table: ``word<TAB>t1|t2`` or ``word<TAB>-`` a line, a row for every word
    of :func:`english_function_words` and no other. A bad line is a one-line error naming it."""
    path = Path(path)
    words = english_function_words()
    table: Table = {}
    for number, line in word_list_lines(path):
        fields = line.split("\t")
        if len(fields) != 2 or not fields[1].strip():
            raise DictionaryError(path, "expected 'word<TAB>translations' or 'word<TAB>-'", line=number)
        word, translations = fields[0].strip(), fields[1].strip()
        if word not in words:
            raise DictionaryError(path, f"{word!r} is not one of the English function words of en.txt", line=number)
        if word in table:
            raise DictionaryError(path, f"{word!r} has a row already", line=number)
        items = [] if translations == _NONE else [t.strip() for t in translations.split("|")]
        if any(not t or not t.isprintable() for t in items):
            raise DictionaryError(path, f"an empty or unprintable translation of {word!r}", line=number)
        table[word] = items
    missing = sorted(words - set(table))
    if missing:
        raise DictionaryError(path, f"no row for {len(missing)} function words: {', '.join(missing[:5])}")
    return table


def table_for(lang: str, mode: str) -> Table | None:
    """The table a vocabulary language gets under ``mode`` (see the module docstring): None
    keeps the dictionary's entries; an empty table removes every function word."""
    if mode == "dictionary":
        return None
    if mode == "skip":
        return {}
    if mode == "table":
        code = language_code(lang)
        shipped = _DATA / f"{code}.tsv"
        return load_table(shipped) if code and shipped.is_file() else {}
    if mode in FUNCTION_WORD_MODES:
        raise InputError(f"function-word mode {mode!r} is not handled")
    return load_table(mode)


def replace_function_words(lexicon: Lexicon, table: Table | None) -> Lexicon:
    """``lexicon`` with its entries for the English function words replaced by ``table``'s
    (None: unchanged): a function word the dictionary has gets the table's translations, or
    none; one it lacks stays out. A phrase made of function words only goes: its words are
    translated one by one. The dictionary's pairs dropped are counted as
    ``dropped_function_word``, the table's pairs added as ``function_word_pairs``."""
    if table is None:
        return lexicon
    words = english_function_words()
    entries, dropped, present = {}, 0, set()
    for source, translations in lexicon.entries.items():
        folded = source.casefold()
        # "US" and "IT" are abbreviations, not "us" and "it"; a phrase of function words only
        # ("to the", "it is") is translated word by word from the table
        if source in (folded, folded.capitalize()) and all(word in words for word in folded.split()):
            dropped += len(translations)
            present.add(folded)
        else:
            entries[source] = translations
    added = 0
    for word, translations in table.items():
        if translations and word in present:
            entries[word] = list(translations)
            added += len(translations)
    report = dict(lexicon.report)
    report["dropped_function_word"] = report.get("dropped_function_word", 0) + dropped
    report["function_word_pairs"] = added
    report["pairs_kept"] = report.get("pairs_kept", 0) - dropped + added
    report["sources"] = len(entries)
    return dataclasses.replace(lexicon, entries=entries, report=report, no_upper=lexicon.no_upper | set(table))
