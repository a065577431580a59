"""Bilingual dictionaries (English source -> one target language), loaded and cleaned.

Two input formats are read; :func:`load_lexicon` picks one from the path:

* **FreeDict dictd databases**, as Debian's ``dict-freedict-eng-*`` packages install them:
  ``X.index`` (lines ``headword<TAB>offset<TAB>length``, offset and length as base64 numbers
  in the dictd alphabet ``A-Za-z0-9+/``, most significant digit first) and ``X.dict.dz``
  (dictzip, which gzip reads) or an uncompressed ``X.dict``. The path may name either file
  or the common prefix ``X``. An entry reads::

      cat /kˈat/
      Katze <fem> [zool.]
            "long-hair cat"  - Langhaarkatze
         Synonym: {feline}

  or, with numbered senses, ``echo /ekou/``, ``1. écho, répercussion``, ``2. résonner``.
  The headword is the first line up to the pronunciation (or up to `` (`` / `` <``). The
  translations are the second line and the numbered lines right after it, split on
  top-level commas, with the dictd markup ``<...>``, ``[...]`` and ``{...}`` removed. An
  index line is used only if its key is the entry's own headword: the eng-deu index also
  files "computed axial tomography (CAT)" under ``cat``.

* **MUSE-style word pairs** (anything else): one pair a line, ``source<TAB>translation``,
  or ``source translation`` split at the first run of whitespace when there is no tab (the
  source is then one word). Several lines per source are allowed and merged in file order.
  UTF-8; blank lines and lines starting with ``#`` are skipped. ``.gz`` and ``.zst`` files
  are decompressed while reading.

A FreeDict dictionary may also be named ``freedict:CODE`` (``freedict:deu``): see
:func:`resolve_dictionary`.

Both formats then go through the same cleaning (:class:`CleaningOptions`). Every dropped
pair is counted in :attr:`Lexicon.report` under ``dropped_<reason>``, one key per reason in
:data:`DROP_REASONS`, so that ``pairs_read == pairs_kept + sum of those``. The report also
has ``dropped_headword_mismatch``: dictd index lines skipped because their key is not the
entry's headword (not pairs, so not in that sum).
"""

from __future__ import annotations

import base64
import gc
import gzip
import os
import re
import struct
import unicodedata
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, cast

from .errors import DictionaryError
from .io import refuse_special_file, zstd_chunks

__all__ = [
    "CleaningOptions",
    "Lexicon",
    "load_lexicon",
    "load_stopwords",
    "resolve_dictionary",
    "DROP_REASONS",
    "FREEDICT_LANGUAGES",
]

# The English->X FreeDict dictionaries Debian ships, as dict-freedict-eng-CODE, all read by
# the dictd reader below (tests/test_freedict_all.py checks each one).
FREEDICT_LANGUAGES: tuple[str, ...] = (
    "afr",
    "ara",
    "bul",
    "ces",
    "cym",
    "dan",
    "deu",
    "ell",
    "fin",
    "fra",
    "gle",
    "hin",
    "hrv",
    "hun",
    "ind",
    "ita",
    "jpn",
    "lat",
    "lit",
    "nld",
    "nor",
    "pol",
    "por",
    "rom",
    "rus",
    "spa",
    "srp",
    "swe",
    "swh",
    "tur",
)
FREEDICT_PREFIX = "freedict:"
# Where Debian's packages install them; $LINK_FAST_FREEDICT_DIR is searched first.
FREEDICT_SYSTEM_DIR = "/usr/share/dictd"
_FREEDICT_CODE = re.compile(r"[a-z]{3}")

# Pair-level reasons, in the order the checks run; each counts (source, translation) pairs.
# The first four apply to the source and then to each translation ("source_chars" to the
# source alone), the rest to one or the other.
DROP_REASONS: tuple[str, ...] = (
    "too_long",  # more than max_entry_chars characters
    "control_chars",  # a C0 or C1 control character (NUL, ...) or a bidirectional control
    "source_chars",  # source has a character other than a letter, combining mark, ' ’ - or space
    "no_letters",  # no letter or digit at all: only punctuation, as "-" or "—"
    # dictionary notation: a slash alternative ("welche/r/s"), an affix or combining form
    # ("boom-", "-ism"), a clitic or elided form ("'t", "l'"), a tilde or bar
    "notation",
    "skip_word",
    "source_length",
    "source_words",
    "definition",  # a sentence or explanation, not a translation: a translation line with a long piece
    "identity",
    "digits",
    "brackets",
    "abbreviations",
    "translation_words",
    "duplicate",  # the same translation again for the same source
    "denied",  # listed in a deny list (link_fast.deny), dropped before the limit below
    # an English function word's dictionary translations, replaced by a reviewed table
    # (link_fast.function_words)
    "function_word",
    "glued",  # words run together ("LaHaya", "porlaizquierda"): link_fast.wordlist
    "max_translations",
)
# dictd only, and counted in index lines rather than pairs (see the module docstring).
_HEADWORD_MISMATCH = "headword_mismatch"
# dictd, dictionaries made from Ergane only: entries of multi-word headwords cut to their first
# word, counted in index lines (see _truncated_entries).
_TRUNCATED_HEADWORD = "truncated_headword"

_SHOWN_CHARS = 60
_UNJUDGED = object()


@dataclass(frozen=True)
class CleaningOptions:
    """What to drop while loading a dictionary. A limit of 0 means "no limit"."""

    drop_identity: bool = True  # translation equals the source, casefolded
    max_translation_words: int = 3
    drop_digits: bool = True  # also super- and subscript digits, as in "omega²-Test"
    drop_brackets: bool = True  # any of ()[]{}<>
    # Any '.', as in "etw.", "z.B.", and the ellipsis of fragments such as "Bauch…".
    drop_abbreviations: bool = True
    # slash alternatives, affix and combining forms, clitics: see DROP_REASONS
    drop_notation: bool = True
    # NFKC (ligatures, compatibility forms), U+2010/U+2011 as '-', no stress marks on Cyrillic
    # vowels: spelled as writers of the language type them
    normalize: bool = True
    # translations whose words were run together ("LaHaya"): link_fast.wordlist
    drop_glued: bool = True
    max_translations: int = 3  # per source, the first ones in file order
    skip_words: frozenset[str] = frozenset()  # source words, compared casefolded
    min_source_length: int = 2  # in characters
    max_source_words: int = 3
    # Sources and translations longer than this (in characters) go: the longest that FreeDict
    # eng-deu keeps are 61 and 91, a source of a million characters is garbage.
    max_entry_chars: int = 200


@dataclass
class Lexicon:
    """One cleaned dictionary.

    ``entries`` maps each source word or phrase, spelled as in the dictionary (with its
    whitespace collapsed), to its unique translations in file order. ``report`` holds
    ``lines`` (of the pair file, or of the dictd index), ``pairs_read``, ``pairs_kept``,
    ``sources``, ``phrases`` (kept sources with a space), ``normalized`` (translations
    respelled by :func:`normalize_spelling`) and the ``dropped_<reason>`` counts.
    """

    lang: str
    path: str
    entries: dict[str, list[str]]
    report: dict[str, int] = field(default_factory=dict)
    # sources compiled without their all-capital form (link_fast.function_words)
    no_upper: frozenset[str] = frozenset()

    def __len__(self) -> int:
        return len(self.entries)


def resolve_dictionary(path) -> Path:
    """The file a dictionary argument names: a path as it is, or a FreeDict name.

    ``"freedict:deu"`` is Debian's dict-freedict-eng-deu: ``freedict-eng-deu.index`` in
    ``$LINK_FAST_FREEDICT_DIR`` (when set) or in ``/usr/share/dictd``. When it is in neither,
    the :class:`~link_fast.errors.DictionaryError` says the command that installs it.
    """
    text = os.fspath(path)
    if not isinstance(text, str) or not text.startswith(FREEDICT_PREFIX):
        return Path(path)
    code = text[len(FREEDICT_PREFIX) :]
    known = " ".join(FREEDICT_LANGUAGES)
    if not _FREEDICT_CODE.fullmatch(code):
        raise DictionaryError(text, f"not a FreeDict name: expected freedict:CODE, CODE one of {known}")
    directories = [d for d in (os.environ.get("LINK_FAST_FREEDICT_DIR", ""), FREEDICT_SYSTEM_DIR) if d]
    for directory in directories:
        index = Path(directory) / f"freedict-eng-{code}.index"
        if index.is_file():
            return index
    where = " nor ".join(directories)
    if code not in FREEDICT_LANGUAGES:
        raise DictionaryError(text, f"no FreeDict English->{code} dictionary in {where} (known: {known})")
    raise DictionaryError(
        text, f"not installed (no freedict-eng-{code}.index in {where}): sudo apt-get install dict-freedict-eng-{code}"
    )


def load_lexicon(path, lang: str, options: CleaningOptions = CleaningOptions()) -> Lexicon:
    """Load and clean a dictionary in either supported format (see the module docstring).

    ``path`` may also be a FreeDict name, ``"freedict:deu"`` (see :func:`resolve_dictionary`).
    Raises :class:`~link_fast.errors.DictionaryError` for a missing, unreadable or malformed
    file, and for one that yields no pair at all after cleaning.
    """
    path = resolve_dictionary(path)
    dictd = _dictd_files(path)
    shown_path = dictd[0] if dictd is not None else path
    stats = {"lines": 0, _HEADWORD_MISMATCH: 0}
    cleaner = _Cleaner(options)
    # Loading allocates a million small objects and frees none of them: the cyclic
    # collector would rescan them over and over for nothing (a third of the eng-deu time).
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        if dictd is not None:
            cleaner.run(_dictd_entries(dictd[0], dictd[1], stats))
        else:
            cleaner.run(_pair_entries(path, stats))
    finally:
        if gc_was_enabled:
            gc.enable()
    report = cleaner.report(stats)
    if not cleaner.entries:
        dropped = ", ".join(
            f"{key[len('dropped_') :]} {n}" for key, n in report.items() if key.startswith("dropped_") and n
        )
        raise DictionaryError(
            shown_path, f"no usable word pairs ({report['pairs_read']} read; dropped: {dropped or 'none'})"
        )
    return Lexicon(lang=lang, path=str(shown_path), entries=cleaner.entries, report=report)


def load_stopwords(name_or_path: str = "en") -> frozenset[str]:
    """A skip list of source words, casefolded, for ``CleaningOptions.skip_words``.

    ``"en"`` is the bundled English list (``link_fast/data/stopwords_en.txt``); anything else
    is a path to a UTF-8 file with one word a line, ``#`` starting a comment.
    """
    path = Path(__file__).parent / "data" / "stopwords_en.txt" if name_or_path == "en" else Path(name_or_path)
    return frozenset(line.casefold() for _, line in word_list_lines(path))


def word_list_lines(path: Path) -> list[tuple[int, str]]:
    """(line number, text) of a UTF-8 list file's lines, stripped, without the blank ones and
    the comments (from ``#``); an unreadable file is a ``DictionaryError`` naming it."""
    refuse_special_file(path, lambda problem: DictionaryError(path, problem))
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DictionaryError(path, "no such file") from None
    except UnicodeDecodeError as exc:
        raise DictionaryError(path, f"not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise DictionaryError(path, f"cannot read: {exc.strerror or exc}") from None
    lines = ((number, line.split("#", 1)[0].strip()) for number, line in enumerate(text.splitlines(), 1))
    return [(number, line) for number, line in lines if line]


# ---------------------------------------------------------------------------------------------
# Cleaning

_BRACKETS = frozenset("()[]{}<>")
_SOURCE_PUNCT = frozenset("'’- ")
_ASCII_SOURCE = re.compile(r"[A-Za-z'\- ]*")
_ASCII_NON_SOURCE = re.compile(r"[^A-Za-z'\- \x80-\U0010ffff]")
_DIGITS = r"\d\u00b2\u00b3\u00b9\u2070-\u2079\u2080-\u2089"
_DIGIT = re.compile(f"[{_DIGITS}]")


# C0 and C1 controls (NUL included; tabs and line breaks are gone with the collapsed
# whitespace) and the bidirectional controls: ALM, LRM, RLM, LRE..RLO, LRI..PDI.
CONTROL_CHARS = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_ALNUM = re.compile(r"[^\W_]")  # a letter or a digit (str.isalnum)
# Dictionary notation in a translation (DROP_REASONS "notation"): a slash anywhere, a tilde
# or bar, or a hyphen or apostrophe at either end.
_NOTATION = re.compile(r"[/~|]|^['’\-]|['’\-]$")
_HYPHENS = str.maketrans({"\u2010": "-", "\u2011": "-"})
# A stress mark (combining acute) on a Cyrillic letter: learners' dictionaries print them (on
# vowels, and by mistake on consonants), Russian, Bulgarian or Ukrainian text does not.
# Macedonian ѓ and ќ are letters of their own, precomposed by NFKC first: untouched.
_CYRILLIC_STRESS = re.compile("(?<=[\u0400-\u04ff])\u0301")


def normalize_spelling(text: str) -> str:
    """``text`` as writers of its language type it: NFKC (the ``ĳ`` ligature becomes ``ij``),
    U+2010 and U+2011 hyphens as ``-``, no stress marks on Cyrillic letters."""
    if text.isascii():
        return text
    text = unicodedata.normalize("NFKC", text).translate(_HYPHENS)
    if "\u0301" in text:
        text = _CYRILLIC_STRESS.sub("", text)
    if "  " in text or text[:1] == " " or text[-1:] == " ":  # NFKC spells U+00B4 as space + U+0301
        text = " ".join(text.split())
    return text


def _is_source(text: str) -> bool:
    """Only letters, combining marks, apostrophes, hyphens and spaces."""
    if _ASCII_SOURCE.fullmatch(text):
        return True
    if _ASCII_NON_SOURCE.search(text):
        return False
    return all(ch in _SOURCE_PUNCT or unicodedata.category(ch)[0] in "LM" for ch in text)


class _Cleaner:
    """Applies CleaningOptions to (source, translations) items and counts what it drops.

    Sources and translations arrive with their whitespace already collapsed.
    """

    def __init__(self, options: CleaningOptions):
        self.options = options
        self.skip = frozenset(word.casefold() for word in options.skip_words)
        self.entries: dict[str, list[str]] = {}
        self.counts: dict[str, int] = dict.fromkeys(DROP_REASONS, 0)
        self.pairs_read = 0
        self.normalized = 0  # translations respelled by normalize_spelling
        # A source is judged once, however many lines or entries it comes in.
        self._source_verdict: dict[str, str | None] = {}
        # The character filters share one search, so that a clean translation costs one
        # scan; which filter fired is worked out only for the few that match.
        bad = ""
        if options.drop_digits:
            bad += _DIGITS
        if options.drop_brackets:
            bad += r"()\[\]{}<>"
        if options.drop_abbreviations:
            bad += ".\u2026"
        self._bad_chars = re.compile(f"[{bad}]").search if bad else None

    def _judge_source(self, source: str) -> str | None:
        opts = self.options
        if not source:
            return "source_length"
        if opts.max_entry_chars and len(source) > opts.max_entry_chars:
            return "too_long"
        if CONTROL_CHARS.search(source):
            return "control_chars"
        if not _is_source(source):
            return "source_chars"
        if not _ALNUM.search(source):
            return "no_letters"
        if opts.drop_notation and _NOTATION.search(source):
            return "notation"
        if source.casefold() in self.skip:
            return "skip_word"
        if len(source) < opts.min_source_length:
            return "source_length"
        if opts.max_source_words and source.count(" ") + 1 > opts.max_source_words:
            return "source_words"
        return None

    def _char_reason(self, translation: str) -> str:
        opts = self.options
        if opts.drop_digits and _DIGIT.search(translation):
            return "digits"
        if opts.drop_brackets and not _BRACKETS.isdisjoint(translation):
            return "brackets"
        return "abbreviations"

    def run(self, items: Iterable[tuple[str, list[str]]]) -> None:
        # One flat loop over every pair with the options in locals: eng-deu has 770k pairs.
        opts = self.options
        drop_identity = opts.drop_identity
        max_words = opts.max_translation_words
        limit = opts.max_translations
        max_chars = opts.max_entry_chars
        control = CONTROL_CHARS.search
        alnum = _ALNUM.search
        bad_chars = self._bad_chars
        entries = self.entries
        counts = self.counts
        verdicts = self._source_verdict
        normalize = opts.normalize
        notation = _NOTATION.search if opts.drop_notation else None
        for source, translations in items:
            self.pairs_read += len(translations)
            if normalize and not source.isascii():
                source = normalize_spelling(source)
            verdict = verdicts.get(source, _UNJUDGED)
            if verdict is _UNJUDGED:
                verdict = verdicts[source] = self._judge_source(source)
            if verdict is not None:
                counts[cast(str, verdict)] += len(translations)
                continue
            folded = source.casefold()
            kept = entries.get(source)
            for translation in translations:
                if "~" in translation:
                    translation = _TILDE_SPACE.sub(" ", translation)
                if normalize and not translation.isascii():
                    spelled = normalize_spelling(translation)
                    if spelled != translation:
                        self.normalized += 1
                        translation = spelled
                if max_chars and len(translation) > max_chars:
                    reason = "too_long"
                # isprintable() and a first letter are the fast ways out of these two scans
                elif not translation.isprintable() and control(translation):
                    reason = "control_chars"
                elif not translation[:1].isalnum() and not alnum(translation):
                    reason = "no_letters"
                elif notation is not None and notation(translation):
                    reason = "notation"
                elif "," in translation:  # the dictd reader keeps a definition's line whole
                    reason = "definition"
                elif drop_identity and translation.casefold() == folded:
                    reason = "identity"
                elif bad_chars is not None and bad_chars(translation):
                    reason = self._char_reason(translation)
                elif max_words and translation.count(" ") >= max_words:
                    reason = "translation_words"
                elif kept is None:
                    kept = entries[source] = [translation]
                    continue
                # A linear search: kept lists are short (max_translations, 5 by default).
                elif translation in kept:
                    reason = "duplicate"
                elif limit and len(kept) >= limit:
                    reason = "max_translations"
                else:
                    kept.append(translation)
                    continue
                counts[reason] += 1

    def report(self, stats: dict[str, int]) -> dict[str, int]:
        report = {
            "lines": stats["lines"],
            "pairs_read": self.pairs_read,
            "pairs_kept": sum(len(kept) for kept in self.entries.values()),
            "sources": len(self.entries),
            "phrases": sum(1 for source in self.entries if " " in source),
            "normalized": self.normalized,
        }
        for reason, n in self.counts.items():
            report[f"dropped_{reason}"] = n
        report[f"dropped_{_HEADWORD_MISMATCH}"] = stats[_HEADWORD_MISMATCH]
        report[f"dropped_{_TRUNCATED_HEADWORD}"] = stats.get(_TRUNCATED_HEADWORD, 0)
        return report


# ---------------------------------------------------------------------------------------------
# MUSE-style pairs


def _shorten(line: str) -> str:
    if len(line) > _SHOWN_CHARS:
        line = line[:_SHOWN_CHARS] + "…"
    return repr(line)


def _open_binary(path: Path) -> BinaryIO:
    refuse_special_file(path, lambda problem: DictionaryError(path, problem))
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise DictionaryError(path, "no such file") from None
    except IsADirectoryError:
        raise DictionaryError(path, "is a directory, not a dictionary file") from None
    except OSError as exc:
        raise DictionaryError(path, f"cannot read: {exc.strerror or exc}") from None


def _chunks_to_lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    pending = b""
    for chunk in chunks:
        pending += chunk
        *lines, pending = pending.split(b"\n")
        yield from lines
    if pending:
        yield pending


def _raw_lines(path: Path, raw: BinaryIO) -> Iterator[bytes]:
    name = path.name.lower()
    if name.endswith(".zst"):
        yield from _chunks_to_lines(zstd_chunks(raw, lambda problem: DictionaryError(path, problem)))
        return
    stream: BinaryIO | gzip.GzipFile = gzip.GzipFile(fileobj=raw, mode="rb") if name.endswith(".gz") else raw
    try:
        yield from stream
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise DictionaryError(path, f"corrupt or truncated gzip data ({exc})") from None
    except OSError as exc:
        raise DictionaryError(path, f"cannot read: {exc.strerror or exc}") from None


def _split_pair(line: str) -> tuple[str, str] | None:
    """(source, translation) with collapsed whitespace, or None when a side is missing."""
    if "\t" in line:
        source, translation = line.split("\t", 1)
    else:
        parts = line.split(None, 1)
        if len(parts) != 2:
            return None
        source, translation = parts
    source, translation = " ".join(source.split()), " ".join(translation.split())
    if not source or not translation:
        return None
    return source, translation


def _pair_entries(path: Path, stats: dict[str, int]) -> Iterator[tuple[str, list[str]]]:
    with _open_binary(path) as raw:
        for number, data in enumerate(_raw_lines(path, raw), start=1):
            stats["lines"] = number
            try:
                line = data.decode("utf-8")
            except UnicodeDecodeError as exc:
                shown = _shorten(data.decode("utf-8", errors="replace").rstrip("\r\n"))
                raise DictionaryError(
                    path, f"line is not valid UTF-8 (byte {exc.start}): {shown}", line=number
                ) from None
            if number == 1:
                line = line.removeprefix("\ufeff")
            stripped = line.strip()
            if not stripped or stripped.startswith("#"):
                continue
            pair = _split_pair(stripped)
            if pair is None:
                raise DictionaryError(path, f"line has no translation: {_shorten(stripped)}", line=number)
            yield pair[0], [pair[1]]


# ---------------------------------------------------------------------------------------------
# FreeDict dictd databases

_METADATA_KEYS = ("00database", "00-database")
# At most 10 base64 digits (60 bits): _b64_numbers relies on it.
_INDEX_LINE = re.compile(r"([^\t\n]*)\t([A-Za-z0-9+/]{1,10})\t([A-Za-z0-9+/]{1,10})\r?\n")
# The first line, then the first non-blank line after it: several dictionaries (eng-ell,
# eng-swh) put a blank line between the two. Every group may be empty, so it matches at the
# start of any entry. No NULs: they join entries.
_ENTRY_HEAD = re.compile(rb"([^\n\x00]*)\n?(?:[ \t]*\n)*([^\n\x00]*)")
# The numbered sense lines of the rest of the entry, wherever they are: the WikDict-made
# dictionaries (eng-fin, eng-bul, ...) follow each sense with an English gloss line, eng-lit
# with "See also:" lines and blank lines, eng-hin with quoted examples.
# eng-pol groups its senses by part of speech under Roman numerals: "I.  <N>  ulica",
# "II.  <Adj> 1.  uliczny", " 2.  ...".
_SENSE_LINE = re.compile(rb"^[ \t]*(?:[0-9]+|[IVX]+)\.(?:[ \t][^\n\x00]*)?$", re.MULTILINE)
_SENSE_NUMBER = re.compile(r"^\s*(?:[IVX]+\.\s+(?:<[^<>]*>\s*)?)?(?:\d+\.(?:\s+|$))?")
# A label in parentheses opening a translation line, as eng-tur's "(zool.) memeli": domain
# markup, like the [zool.] of other dictionaries. Only labels with a full stop, which no
# translation has, so that "(allein) im Haus" is still dropped for its brackets.
_LEADING_LABEL = re.compile(r"^(?:\([^()\n]*\.\)[ \t]*,?[ \t]*)+", re.MULTILINE)
# A sense number left at the end of a translation line: "pisang 2.", "1. tava 2." in the
# WikDict dictionaries (eng-ind, eng-fin, ...), where the gloss of the sense comes next and
# the next sense lost its translation ("able to be done", then " 3."). Only "2.": other
# numbers there are dates, as in eng-hun's "június 14." (then dropped for its digits).
_TRAILING_SENSE_NUMBER = re.compile(r"[ \t]+2\.$", re.MULTILINE)
# The full stop that ends a translation line, as in eng-tur's "1. füme balık.": after a word
# of four letters or more, so that abbreviations ("etw.", "Abk.") still end in theirs.
_FINAL_PERIOD = re.compile(r"(?<=[^\W\d_]{4})\.$", re.MULTILINE)
_STOP_PREFIXES = ('"', "Synonym", "see:", "See also:", "Note:", "Antonym")
# The pronunciation after a headword: " /.../", " //...//" (WikDict) or " /[...]/", ending
# the line or followed by a space, so that "centre / center /sˈɛntə/" keeps its inner slash.
_HEAD_PRONUNCIATION = re.compile(r" (?://[^/]*//|/[^/]*/)(?= |$)")
# ding2tei writes a term's abbreviation and its pronunciation right after the term's
# grammar or domain markup: "Abkürzung <fem>Abk.,  /ˈabk/", "Abteilung <fem> [adm.] Abt.,
# /ˈabt/". Both go, the markup that ends the term stays.
_ABBREVIATION_TAIL = re.compile(r"([>\]])[^,<>\[\]{}\n]*,[^\S\n]+/[^/\n]*/")
_PRONUNCIATION = re.compile(r",[^\S\n]+/[^/\n]*/")
# Over entries joined by NULs (and lines by newlines), so neither may be crossed.
_MARKUP = re.compile(r"<[^<>\n\x00]*>|\[[^\[\]\n\x00]*\]|\{[^{}\n\x00]*\}")
_ODD_SPACE = re.compile(r"[^\S \n]")  # whitespace other than the space and the newline
_SPACE_RUN = re.compile(r"  +")
_NOT_INDEXED = re.compile(r"[^\w\s]|_")
_OPENING = "([{<"
_CLOSING = ")]}>"


def _dictd_files(path: Path) -> tuple[Path, Path] | None:
    """(index, data) when path names a dictd database, else None."""
    name = path.name
    if name.endswith(".index"):
        prefix = name[: -len(".index")]
    elif name.endswith(".dict.dz"):
        prefix = name[: -len(".dict.dz")]
    elif name.endswith(".dict"):
        prefix = name[: -len(".dict")]
    elif not path.is_file() and path.with_name(name + ".index").is_file():
        prefix = name
    else:
        return None
    index = path.with_name(prefix + ".index")
    if not index.is_file():
        raise DictionaryError(index, "no such file (the index of a dictd database)")
    for data in (path.with_name(prefix + ".dict.dz"), path.with_name(prefix + ".dict")):
        if data.is_file():
            return index, data
    raise DictionaryError(path.with_name(prefix + ".dict.dz"), "no such file (nor an uncompressed .dict)")


def _b64_numbers(texts: list[str]) -> list[int]:
    """Decode dictd base64 numbers, all in one go.

    The dictd alphabet is that of standard base64, so a number left-padded with 'A' (zero)
    to 16 digits is 12 bytes of standard base64: a big-endian 32-bit and 64-bit pair, the
    first always zero since _INDEX_LINE allows at most 10 digits.
    """
    packed = base64.b64decode("".join([text.rjust(16, "A") for text in texts]))
    return [low for _, low in struct.iter_unpack(">IQ", packed)]


def _index_rows(index_path: Path, text: str) -> list[tuple[str, str, str]]:
    """(key, offset, length) of each index line, offset and length still in base64."""
    if text and not text.endswith("\n"):
        text += "\n"
    rows = _INDEX_LINE.findall(text)
    if len(rows) == text.count("\n"):
        return rows
    # Some line did not match: find it, or accept it if it is only whitespace.
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        match = _INDEX_LINE.fullmatch(line + "\n")
        if match is None:
            raise DictionaryError(
                index_path,
                f"not an index line 'headword<TAB>base64 offset<TAB>base64 length': {_shorten(line)}",
                line=number,
            )
        rows.append(match.groups())
    return rows


def _index_line_number(text: str, row: tuple[str, str, str]) -> int | None:
    """Where a row came from, for an error message."""
    wanted = "\t".join(row)
    for number, line in enumerate(text.splitlines(), start=1):
        if line.rstrip("\r") == wanted:
            return number
    return None


def _index_form(text: str) -> str:
    """A headword as dictfmt files it in the index: lowercase, only letters, digits, spaces."""
    return " ".join(_NOT_INDEXED.sub("", text.lower()).split())


def _headword(first_line: str) -> str:
    """The first line up to the pronunciation, else up to " (" or " <"."""
    match = _HEAD_PRONUNCIATION.search(first_line)
    if match is not None:
        return first_line[: match.start()]
    cut = len(first_line)
    for marker in (" (", " <"):
        at = first_line.find(marker)
        if at != -1:
            cut = min(cut, at)
    return first_line[:cut]


def _split_top_level(text: str) -> list[str]:
    """Split on the commas that are outside any bracket."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch in _OPENING:
            depth += 1
        elif ch in _CLOSING:
            depth = max(0, depth - 1)
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def _translation_text(text: str) -> str:
    """From an entry's translation lines (its first body line, then its numbered lines), the
    translations without their sense numbers and pronunciations; "" when there are none.

    A first body line that is a cross-reference, a note or an example ("Synonym: ...",
    '"long-hair cat" - ...') is no translation; the numbered lines after it still are.
    """
    if "\n" not in text:
        stripped = text.lstrip()
        if not stripped or stripped.startswith(_STOP_PREFIXES):
            return ""
        if stripped[0].isdigit() or stripped[0] in "IVX":
            text = _SENSE_NUMBER.sub("", text, count=1)
    else:
        lines = text.split("\n")
        if lines[0].lstrip().startswith(_STOP_PREFIXES):
            lines[0] = ""
        text = "\n".join([_SENSE_NUMBER.sub("", line, count=1) for line in lines])
    # Cheap tests first: most eng-deu lines have a '.' ("etw.") and need none of these.
    if text.endswith(".") or ".\n" in text:
        if " 2." in text:
            text = _TRAILING_SENSE_NUMBER.sub("", text)
        text = _FINAL_PERIOD.sub("", text)
    if ".)" in text:
        text = _LEADING_LABEL.sub("", text)
    if "/" in text:
        text = _ABBREVIATION_TAIL.sub(r"\1", text)
        text = _PRONUNCIATION.sub("", text)
    return text


def _all_translations(texts: list[str]) -> list[list[str]]:
    """The translations of each entry, from its _translation_text.

    Markup and whitespace are cleaned in one pass over all entries joined by NULs: per-entry
    calls cost seconds on the 460k entries of eng-deu.
    """
    text = "\x00".join(texts)
    # Markup goes before the split, so that the comma in "<v, trans>" splits nothing.
    text = _MARKUP.sub(" ", text)
    if _ODD_SPACE.search(text):
        text = _ODD_SPACE.sub(" ", text)
    text = _SPACE_RUN.sub(" ", text)
    for spaced, bare in ((", ", ","), (" ,", ","), ("\n ", "\n"), (" \n", "\n"), ("\x00 ", "\x00"), (" \x00", "\x00")):
        text = text.replace(spaced, bare)
    result = []
    text = text.strip(" ")
    for entry in text.split("\x00"):
        if "(" in entry:
            items = [item.strip(" ") for line in entry.split("\n") for item in _split_top_level(line)]
        else:
            items = entry.replace("\n", ",").split(",")
        if "" in items:
            items = [item for item in items if item]
        if any(item.count(" ") >= _DEFINITION_WORDS - 1 for item in items):
            items = _definitions_whole(entry)
        result.append(items)
    return result


# A piece of a translation line with this many words is a sentence, not a translation: its
# line is a definition, and the commas in it do not separate synonyms (eng-por's "Linux":
# "Sistema operacional ... a partir de 1991, e que, desde então, vem se evoluindo ...").
_DEFINITION_WORDS = 6
_TILDE_SPACE = re.compile(r"(?<=\S)~(?=\S)")  # eng-hin writes the spaces of a phrase as tildes


def _is_definition(pieces: list[str]) -> bool:
    """Whether the comma-separated pieces of a translation line are a sentence: two pieces of
    _DEFINITION_WORDS words or more, or one that opens the line with a capital. eng-tur's
    explanatory lines ("hem suda hem karada yaşayabilir, iki yaşayışlı") hold one long
    lowercase piece beside real translations: those are split as usual."""
    long = [piece for piece in pieces if piece.count(" ") >= _DEFINITION_WORDS - 1]
    return len(long) >= 2 or (len(long) == 1 and long[0] is pieces[0] and pieces[0][:1].isupper())


def _definitions_whole(entry: str) -> list[str]:
    """An entry's translation lines, those with a definition kept whole (commas and all, so
    that the cleaning drops them as ``definition``), the others split into synonyms."""
    items = []
    for line in entry.split("\n"):
        pieces = [piece.strip(" ") for piece in _split_top_level(line)]
        if _is_definition(pieces):
            items.append(line.strip(" "))
        else:
            items.extend(piece for piece in pieces if piece)
    return items


def _read_bytes(path: Path, what: str) -> bytes:
    refuse_special_file(path, lambda problem: DictionaryError(path, problem))
    try:
        if path.name.endswith(".dz"):
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise DictionaryError(path, f"corrupt or truncated {what} ({exc})") from None
    except OSError as exc:
        raise DictionaryError(path, f"cannot read: {exc.strerror or exc}") from None


def _dictd_entries(index_path: Path, data_path: Path, stats: dict[str, int]) -> Iterator[tuple[str, list[str]]]:
    data = _read_bytes(data_path, "dictzip data")
    try:
        index_text = _read_bytes(index_path, "index").decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DictionaryError(index_path, f"not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
    rows = _index_rows(index_path, index_text)
    stats["lines"] = len(rows)
    offsets = _b64_numbers([row[1] for row in rows])
    # Lengths repeat, offsets do not.
    length_texts = list({row[2] for row in rows})
    length_of = dict(zip(length_texts, _b64_numbers(length_texts)))
    lengths = [length_of[row[2]] for row in rows]
    size = len(data)
    head_match = _ENTRY_HEAD.match
    sense_lines = _SENSE_LINE.findall

    # First pass, over distinct entries: cut out their first lines, still as bytes.
    entry_of: dict[int, int] = {}  # offset -> entry number
    firsts: list[bytes] = []
    rests: list[bytes] = []
    for row, offset, length in zip(rows, offsets, lengths):
        if offset in entry_of:
            continue
        end = offset + length
        if end > size:
            raise DictionaryError(
                index_path,
                f"entry at offset {offset}+{length} lies past the end of {data_path.name} ({size} bytes)",
                line=_index_line_number(index_text, row),
            )
        head = cast(re.Match, head_match(data, offset, end))  # every part is optional: it always matches
        first, rest = head.groups()
        if head.end() < end:
            senses = sense_lines(data, head.end(), end)
            if senses:
                rest = b"\n".join([rest, *senses])
        entry_of[offset] = len(firsts)
        firsts.append(first)
        rests.append(rest)
    # Decoded all at once, rather than an entry at a time: seconds less on eng-deu.
    starts = list(entry_of)
    first_lines = _decode_joined(firsts, b"\n", starts, data_path).split("\n")
    translation_parts = _decode_joined(rests, b"\x00", starts, data_path).split("\x00")

    # Second pass, over index lines: an entry is used once, under the first key that is
    # its own headword.
    used: set[int] = set()
    mismatched = 0
    kept: list[tuple[str, int]] = []  # (key, entry)
    for row, offset in zip(rows, offsets):
        key = row[0]
        entry = entry_of[offset]
        if entry in used or key.startswith(_METADATA_KEYS):
            continue
        headword = " ".join(_headword(first_lines[entry]).split())
        # dictfmt files a headword lowercased and stripped of punctuation ("Bob's your
        # uncle" under "bobs your uncle"): compare in that form, not by casefolding alone.
        if headword.lower() != key and _index_form(headword) != _index_form(key):
            mismatched += 1
            continue
        used.add(entry)
        kept.append((key, entry))
    stats[_HEADWORD_MISMATCH] = mismatched
    if _made_from_ergane(data, rows, offsets, lengths):
        truncated = _truncated_entries(kept, first_lines)
        stats[_TRUNCATED_HEADWORD] = len(truncated)
        kept = [item for item in kept if item[1] not in truncated]
    kept_headwords = [" ".join(_headword(first_lines[entry]).split()) for _, entry in kept]
    entry_texts = [_translation_text(translation_parts[entry]) for _, entry in kept]
    yield from zip(kept_headwords, _all_translations(entry_texts))


def _made_from_ergane(data: bytes, rows, offsets: list[int], lengths: list[int]) -> bool:
    """Whether the dictionary's metadata entries say it was generated from Ergane."""
    for row, offset, length in zip(rows, offsets, lengths):
        if row[0].startswith(_METADATA_KEYS) and b"ergane" in data[offset : offset + length].lower():
            return True
    return False


_STRESS_MARKS = str.maketrans("", "", "ˈˌ")


def _truncated_entries(kept: list[tuple[str, int]], first_lines: list[str]) -> set[int]:
    """The entries of an Ergane-made dictionary whose headword was cut to its first word.

    Those dictionaries (eng-spa, -ita, -swe, ...) file "The Hague", "of ill repute", "apple
    juice" as entries headed "the", "of", "apple": several entries under one key, only one
    of them the word itself. It is the one with the shortest pronunciation: the others'
    transcribe the whole phrase (eng-spa: ``apple /æpl/`` and ``apple /æpldʒuːs/``); where
    the pronunciations tie, one made from the cut headword (with stress marks, ``/ˈapəl/``)
    loses to Ergane's own, and then the first entry wins (eng-ita, whose pronunciations were
    all made again from the cut headwords), a lowercase headword before a capitalised one
    ("the" before "The" of "The Hague").
    """
    by_key: dict[str, list[tuple[int, int, int, int, int, int]]] = {}
    for order, (key, entry) in enumerate(kept):
        match = _HEAD_PRONUNCIATION.search(first_lines[entry])
        spoken = match.group().strip(" /") if match is not None else ""
        stressed = int("ˈ" in spoken or "ˌ" in spoken)
        capitalized = int(first_lines[entry][:1].isupper())  # "The" (Hague) under "the"
        # a combining form ("water‐" beside "water") is never the word itself
        affix = int(_headword(first_lines[entry]).rstrip()[-1:] in "-‐")
        rank = (affix, len(spoken.translate(_STRESS_MARKS)), stressed, capitalized, order, entry)
        by_key.setdefault(key, []).append(rank)
    truncated: set[int] = set()
    for ranks in by_key.values():
        if len(ranks) > 1:
            ranks.sort()
            truncated.update(rank[-1] for rank in ranks[1:])
    return truncated


def _decode_joined(parts: list[bytes], separator: bytes, starts: list[int], data_path: Path) -> str:
    """parts, joined and decoded; an error names the entry at fault."""
    try:
        return separator.join(parts).decode("utf-8")
    except UnicodeDecodeError:
        for part, start in zip(parts, starts):
            try:
                part.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DictionaryError(data_path, f"entry at offset {start} is not valid UTF-8 ({exc.reason})") from None
        raise DictionaryError(data_path, "not valid UTF-8") from None
