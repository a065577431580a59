"""Text mode: LINK substitutions on raw text documents (DESIGN.md §2.7), and ``link-fast text``.

``TextSubstituter`` applies the semantics of DESIGN.md §3 to text instead of token ids. It is
built from a compiled ``Vocab`` alone: the surface text of every key (``vocab.key_text``,
``" cat"`` for a spaced form, ``"cat"`` for a bare one) becomes, without its leading space, a
pattern of a ``pyahocorasick`` automaton, and the translations' texts (leading space removed
too) are what gets written. So text mode finds the same words, in the same case variants and
phrases, as token mode with that vocabulary.

- **Words.** A word character is a letter, number or combining mark (``unicodedata`` category
  L*, N*, M*), as for tokens. A match ``[i, j)`` is valid only if ``text[i-1]`` (when ``i > 0``)
  and ``text[j]`` (when ``j < len(text)``) are not word characters. Words, for
  ``ratio_basis="words"`` and the statistics, are maximal runs of word characters.
- **Which key.** A match preceded by a space (U+0020) uses the spaced key's translations,
  anywhere else (document start, newline, punctuation) the bare key's, as the tokenizer would
  have seen the word. When that form was not compiled (dropped as not context-free), the
  other one is used: text mode substitutes every whole dictionary word it sees.
- **Matching** is leftmost-longest and non-overlapping over the *valid* matches (a longer match
  failing a boundary falls back to a shorter valid one at the same start); candidates are
  numbered 0, 1, 2, ... per document.
- **Sampling** uses the counter-based draws of csrc/link_fast.h (``draw``, ``below``, ``pick``
  below are their Python twins) with the same domains, thresholds and integer language weights
  as ``Substituter``: with the same seed, stream key and document index, text mode takes the
  same decisions for the same candidate numbers as token mode.
- **Statistics** are a ``Stats`` whose ``tokens_in``/``tokens_out`` count *characters*.

Differences from token mode come only from tokenization: a tokenizer that fuses punctuation
with the next word (Tekken: ``(word``, ``-word``, ``/word``) has no bare form there, so token
mode skips words that text mode substitutes, and every later candidate number shifts.

Files (``substitute_files``, ``link-fast text``): ``.jsonl``, ``.jsonl.gz``, ``.jsonl.zst``
(one JSON object a line, the text in ``field``; every other field is kept unchanged) and
``.txt`` / ``.txt.gz`` / ``.txt.zst`` (one document per line; the line break is not part of the
document). Inputs are streamed, never loaded whole. A bad line (not UTF-8, malformed or too
deeply nested JSON, not an object, no string in ``field``, a lone surrogate in it, longer than
``max_line_bytes``, which is checked as the line streams past) fails the file with one
``PATH:LINE: problem`` error, or is skipped and counted (``on_error="skip"``). A long line takes
a few times its size in memory (see ``TextSubstituter.apply``). The document index of a line is
its 0-based line number in its file (blank ``.jsonl`` lines and skipped bad lines keep their
number), the stream key is the file name without its extensions; so the output does not depend
on ``workers`` or on the batch size. Outputs are written under a temporary name and renamed
when complete: a failed run leaves no output behind.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import time
import unicodedata
from array import array
from collections import deque
from dataclasses import dataclass
from functools import lru_cache
from json.encoder import encode_basestring as _json_string
from pathlib import Path
from typing import Callable, Iterable, Iterator, Literal, Mapping, NamedTuple, Sequence

import numpy as np

from .errors import FileError, InputError
from .io import temporary_path, write_json, zstd_chunks
from .pool import Pool, WorkerDied
from .progress import Progress
from .substituter import (
    ALWAYS,
    MASK64,
    Stats,
    checked_config,
    config_of,
    integer_weights,
    mix64,
    probability_threshold,
    stream_base,
)
from .vocab import Vocab

DOMAIN_DOCUMENT, DOMAIN_DOC_LANG, DOMAIN_REPLACE, DOMAIN_LANG, DOMAIN_TRANSLATE = 1, 2, 3, 4, 5
_CANDIDATE_BLOCK = 1 << 16  # candidates drawn at once in a long document (bounds the draw arrays)
_SETTLE_AT = 4096  # unsettled match starts held while matching before the settled ones are taken
_LONG_TEXT = 1 << 20  # characters: a longer document is written out a piece at a time (_process_chunk)
_AUTOMATON_WINDOW = 1 << 20  # characters of a long text given to the automaton at once
_EMIT_CHARS = 1 << 18  # characters of output text made into one str at a time (TextSubstituter._rewrite)
_GOLDEN = 0x9E3779B97F4A7C15


class TextError(FileError):
    """A text input is malformed: bad JSON, a missing field, a truncated compressed file."""


# -- the draws of csrc/link_fast.h, in Python --------------------------------------------------


def draw(base: int, domain: int, doc: int, cand: int) -> int:
    """``lf_draw``: the 64-bit draw of (stream base, domain, document index, candidate index)."""
    h = mix64(base ^ ((domain * _GOLDEN) & MASK64))
    h = mix64((h + doc) & MASK64)
    return mix64((h + cand) & MASK64)


def draws(base: int, domain: int, doc: int, count: int, first: int = 0) -> np.ndarray:
    """``draw(base, domain, doc, c)`` for c in range(first, first + count), as uint64, computed
    in numpy: one call per document instead of three Python mix64 per candidate."""
    return draws_at(base, domain, doc, np.arange(first, first + count, dtype=np.uint64))


def draws_at(base: int, domain: int, doc: int, candidates: np.ndarray) -> np.ndarray:
    """``draw(base, domain, doc, c)`` for each c of ``candidates`` (an integer array), as uint64."""
    h = mix64((mix64(base ^ ((domain * _GOLDEN) & MASK64)) + doc) & MASK64)
    z = candidates.astype(np.uint64) + np.uint64(h)  # wraps modulo 2**64, as the C does
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def bernoulli(h: int, threshold: int) -> bool:
    """``lf_bernoulli``: true with probability threshold / 2**53."""
    return (h >> 11) < threshold


def below(h: int, n: int) -> int:
    """``lf_below``: a uniform integer in [0, n) by multiply-shift."""
    return ((h >> 32) * n) >> 32


def pick(h: int, weights: Sequence[tuple[int, int]]) -> int:
    """The kernel's ``pick_language``: one of ``weights`` ((language index, integer weight > 0)
    in language order) with probability proportional to its weight."""
    r = below(h, sum(w for _, w in weights))
    for lang, w in weights:
        if r < w:
            return lang
        r -= w
    raise ValueError("pick needs at least one positive weight")


# -- words ------------------------------------------------------------------------------------


@lru_cache(maxsize=65536)
def is_word_char(ch: str) -> bool:
    """Letter, number or combining mark (as ``link_fast.tokenizer._is_word_char``)."""
    return unicodedata.category(ch)[0] in "LNM"


class _WordOrSpace(dict):
    """A ``str.translate`` table: word characters to "a", everything else to " ", filled as
    characters are met (dict lookups in C, one Python call per new character)."""

    def __missing__(self, codepoint: int) -> str:
        mapped = self[codepoint] = "a" if is_word_char(chr(codepoint)) else " "
        return mapped


_WORD_OR_SPACE = _WordOrSpace()


def word_shape(text: str) -> str:
    """``text`` with each word character as "a" and every other as " ". Made in C (one Python
    call per character never seen before): 60x faster than a regex over the Unicode word ranges."""
    return text.translate(_WORD_OR_SPACE)


def count_words(text: str, shape: str | None = None) -> int:
    """Maximal runs of word characters (counted, not split out: no object per word)."""
    shape = word_shape(text) if shape is None else shape
    return shape.count(" a") + shape.startswith("a")


# -- the substituter --------------------------------------------------------------------------


@dataclass(slots=True)  # a long document has millions: no __dict__ each
class Substitution:
    start: int  # in the output text, code points
    end: int
    source: str
    translation: str
    language: str

    def to_dict(self) -> dict:
        return {"start": self.start, "end": self.end, "source": self.source,
                "translation": self.translation, "language": self.language}


def _settle(best: dict, bound: int, position: int, starts: array, ends: array, keys: array) -> int:
    """Take the starts of ``best`` below ``bound`` out of it and append, in text order, those
    that do not overlap the matches taken before (which end at ``position``) to the arrays:
    leftmost-longest selection, a part of the text at a time. Returns the new ``position``."""
    for start in sorted([s for s in best if s < bound]):
        end, key = best.pop(start)
        if start >= position:
            starts.append(start)
            ends.append(end)
            keys.append(key)
            position = end
    return position


@dataclass
class TextResult:
    text: str
    substitutions: list[Substitution]
    stats: Stats


class TextSubstituter:
    """LINK substitutions on text with one compiled vocabulary and fixed options.

    Options as ``Substituter``; ``apply(text, doc_index)`` rewrites one document,
    ``apply_batch(texts, first_doc)`` several (document ``first_doc + i``). Building the
    automaton takes a few seconds for a vocabulary of a million keys.

    ``tokenizer`` (optional, the one the vocabulary was compiled for) switches to token mode's
    boundaries, for output that re-tokenizes like token mode's: a word is only matched in the
    form the tokenizer would produce there (spaced after a space, bare elsewhere; no fallback
    to the other form), and a bare form is not matched right after text of a token the
    tokenizer fuses with a following word (Tekken: ``(``, ``-``, ``/``, quotes, ...). Without it,
    every whole dictionary word is a candidate.
    """

    def __init__(
        self,
        vocab: Vocab,
        *,
        ratio: float = 0.3,
        portion: float = 1.0,
        seed: int = 0,
        languages: Mapping[str, float] | None = None,
        ratio_basis: Literal["candidates", "words"] = "candidates",
        lang_scope: Literal["word", "document"] = "word",
        stream_key: str = "",
        tokenizer=None,
    ):
        import ahocorasick

        config = checked_config(vocab.languages, ratio=ratio, portion=portion, seed=seed, languages=languages,
                                ratio_basis=ratio_basis, lang_scope=lang_scope, stream_key=stream_key)
        self.vocab = vocab
        self.ratio, self.portion, self.seed = config["ratio"], config["portion"], config["seed"]
        self.ratio_basis, self.lang_scope = config["ratio_basis"], config["lang_scope"]
        self.stream_key, self.languages = config["stream_key"], config["languages"]
        self._weights = integer_weights(vocab.languages, self.languages)  # as Substituter's
        self._selected = sum(1 << vocab.languages.index(lang) for lang in self.languages)
        self._doc_weights = [(l, w) for l, w in enumerate(self._weights) if w]
        self._base = stream_base(seed, self.stream_key)
        self._portion_threshold = probability_threshold(self.portion)
        self._ratio_threshold = probability_threshold(self.ratio)
        self._lang_mask = np.asarray(vocab.tables["key_lang_mask"])
        self._translations: dict[tuple[int, int], list[str]] = {}
        # With the vocabulary's tokenizer: token mode's boundaries (see the class docstring).
        self.token_boundaries = tokenizer is not None
        self._fusing: tuple[str, ...] = ()
        if tokenizer is not None:
            vocab.check_tokenizer(tokenizer.fingerprint, getattr(tokenizer, "name", "the tokenizer"))
            from .tokenizer import FLAG_FUSES_RIGHT

            fusing = np.flatnonzero(np.asarray(vocab.tables["flags"]) & FLAG_FUSES_RIGHT).tolist()
            texts = {tokenizer.token_bytes(t).decode("utf-8", "replace") for t in fusing}
            self._fusing = tuple(sorted(t for t in texts if t and t != " "))
            self._tokenizer = tokenizer
            self._fusing_ids = frozenset(fusing)

        # pattern text -> [spaced key, bare key] (-1 where that form is not a key in play)
        in_play = np.flatnonzero(self._lang_mask & np.uint32(self._selected)).tolist()
        blob = bytes(np.asarray(vocab.tables["key_text"]))
        offsets = np.asarray(vocab.tables["key_text_offsets"]).tolist()
        forms: dict[str, list[int]] = {}
        for key in in_play:
            text = blob[offsets[key] : offsets[key + 1]].decode("utf-8")
            spaced = text.startswith(" ")
            if spaced:
                text = text[1:]
            if not text:
                continue
            slot = forms.get(text)
            if slot is None:
                slot = forms[text] = [-1, -1]
            slot[0 if spaced else 1] = key
        automaton = ahocorasick.Automaton()
        for text, (spaced, bare) in forms.items():
            automaton.add_word(text, (len(text), spaced, bare))
        if len(automaton):
            automaton.make_automaton()
        self._automaton = automaton
        self.patterns = len(forms)
        self._longest = max(map(len, forms), default=0)  # pattern length, in code points

    def _separate(self, text: str, start: int, end: int) -> bool:
        """Token boundaries: does the tokenizer start a token at ``start`` (before the word at
        [start, end)), after a token that does not fuse? Decided by encoding a few characters of
        context (from the last space or newline before it), the pre-tokenizer's reach (Tekken: ``x(word`` fuses, `` (word`` does not)."""
        # from the last whitespace before the word (pre-tokenizers cut there), at most 32 chars
        left = max(0, start - 32)
        cut = max(text.rfind(" ", left, start - 1), text.rfind("\n", left, start - 1))
        left = cut if cut >= 0 else left
        prefix = text[left:start].encode("utf-8")
        position = 0
        for t in self._tokenizer.encode(text[left:end]):
            position += len(self._tokenizer.token_bytes(t))
            if position == len(prefix):
                return t not in self._fusing_ids
            if position > len(prefix):
                return False
        return False

    def config(self) -> dict:
        return config_of(self)

    def _options(self, key: int, lang: int) -> list[str]:
        got = self._translations.get((key, lang))
        if got is None:
            got = [t[1:] if t.startswith(" ") else t for _, t in self.vocab.translations(key, lang)]
            self._translations[(key, lang)] = got
        return got

    def matches(self, text: str, shape: str | None = None) -> list[tuple[int, int, int]]:
        """Leftmost-longest non-overlapping valid matches: (start, end, key), in text order.
        ``shape``: ``word_shape(text)``, when the caller has it already."""
        return list(zip(*self._find(text, word_shape(text) if shape is None else shape)))

    def _find(self, text: str, shape: str) -> tuple[array, array, array]:
        """``matches`` as three arrays, (starts, ends, keys): 12 bytes a match where a list of
        tuples costs about 130, and 10-40x the text's size on a long document. ``best`` holds
        only the starts not yet settled, and the automaton reads a long text a window at a
        time (it copies its input at 4 bytes a character), so the rest stays small whatever
        the length of the text."""
        offsets = "i" if len(text) < 1 << 31 else "q"
        starts, ends, keys = array(offsets), array(offsets), array("i")
        if not len(self._automaton) or not text:
            return starts, ends, keys
        n, longest = len(text), self._longest
        best: dict[int, tuple[int, int]] = {}  # start -> (end, key), the longest valid match there
        settle_at, position = _SETTLE_AT, 0  # settle when best has that many starts; end of the last taken
        strict, fusing = self.token_boundaries, self._fusing
        # Windows [offset, stop) overlap by longest - 1 characters: an occurrence that ends past
        # the previous window's stop lies whole in the next one, those that end before are
        # already seen. (Not iter().set(next window), which corrupts memory in pyahocorasick
        # 2.3 when windows differ in string kind.)
        size = max(_AUTOMATON_WINDOW, 2 * longest)
        offset, stop, seen = 0, min(n, size), 0
        while True:
            for last, (length, spaced, bare) in self._automaton.iter(text if stop == n and not offset
                                                                     else text[offset:stop]):
                end = offset + last + 1
                if end <= seen:
                    continue
                start = end - length
                # the automaton reports every occurrence, most of them inside words: out first
                if (end < n and shape[end] == "a") or (start > 0 and shape[start - 1] == "a"):
                    continue
                if start > 0:
                    if text[start - 1] == " ":
                        key = spaced if spaced >= 0 or strict else bare
                    elif strict and fusing and text.endswith(fusing, 0, start) and not self._separate(text, start, end):
                        continue
                    else:
                        key = bare if bare >= 0 or strict else spaced
                else:
                    key = bare if bare >= 0 or strict else spaced
                if key < 0:
                    continue
                got = best.get(start)
                if got is None:
                    best[start] = (end, key)
                    if len(best) >= settle_at:
                        # Occurrences come by increasing end, so every later one starts at or after
                        # end - longest: the starts before that are settled.
                        position = _settle(best, end - longest, position, starts, ends, keys)
                        settle_at = max(_SETTLE_AT, 2 * len(best))
                elif got[0] < end:
                    best[start] = (end, key)
            if stop == n:
                break
            offset, seen = stop - longest + 1, stop
            stop = min(n, offset + size)
        _settle(best, n + 1, position, starts, ends, keys)
        return starts, ends, keys

    def apply(self, text: str, doc_index: int = 0, stats: Stats | None = None, *,
              substitutions: bool = True) -> TextResult:
        """Rewrite one document; ``doc_index`` is its index in its stream (file).
        ``substitutions=False``: leave ``TextResult.substitutions`` empty (no object per
        substitution: less memory on a long document).

        Memory is a few times the text's: the matches in arrays, the output built and joined a
        block of candidates at a time (no list of per-match objects unless asked)."""
        if not isinstance(text, str):
            raise InputError(f"text must be a str, got {type(text).__name__}")
        if isinstance(doc_index, bool) or not isinstance(doc_index, (int, np.integer)) or doc_index < 0:
            raise InputError(f"doc_index must be a non-negative integer, got {doc_index!r}")
        if stats is None:
            stats = Stats(self.vocab.languages, substitutions={l: 0 for l in self.vocab.languages})
        chunks: list[str] = []
        subs = self._rewrite(text, int(doc_index), stats, substitutions, chunks.append)
        if subs is None:
            return TextResult(text, [], stats)
        return TextResult("".join(chunks), subs, stats)

    def _rewrite(self, text: str, doc: int, stats: Stats, substitutions: bool,
                 emit: Callable[[str], None]) -> list[Substitution] | None:
        """``apply``'s work: the output text goes to ``emit``, in consecutive pieces (one for a
        short document), never whole unless the caller joins them. Returns the substitutions
        (empty unless ``substitutions``), or None when nothing changed: then ``emit`` was not
        called and the output is ``text`` itself."""
        languages = self.vocab.languages
        shape = word_shape(text)
        starts, ends, keys = self._find(text, shape)
        words = count_words(text, shape)
        del shape
        n_matches = len(starts)
        stats.documents += 1
        stats.words += words
        stats.candidates += n_matches
        stats.tokens_in += len(text)
        base = self._base
        # The output: pieces, joined and emitted every _EMIT_CHARS or so (not a str per piece
        # for the whole text, nor the whole output at once); a long stretch of the input
        # without a substitution goes out in slices of that size.
        pieces, subs, position, out_length, changed, held = [], [], 0, 0, 0, 0

        def stretch(pieces: list[str], begin: int, stop: int) -> list[str]:
            if pieces:
                emit("".join(pieces))
            for cut in range(begin, stop, _EMIT_CHARS):
                emit(text[cut : min(stop, cut + _EMIT_CHARS)])
            return []

        if bernoulli(draw(base, DOMAIN_DOCUMENT, doc, 0), self._portion_threshold):
            stats.eligible_documents += 1
            stats.eligible_candidates += n_matches
            threshold = self._ratio_threshold
            if self.ratio_basis == "words" and n_matches:
                p = self.ratio * words / n_matches
                threshold = ALWAYS if p >= 1.0 else int(p * 9007199254740992.0)
            below_threshold = np.uint64(min(threshold, ALWAYS))
            doc_lang = -1
            if self.lang_scope == "document":
                doc_lang = pick(draw(base, DOMAIN_DOC_LANG, doc, 0), self._doc_weights)
            for first in range(0, n_matches, _CANDIDATE_BLOCK):  # draws a block at a time
                count = min(_CANDIDATE_BLOCK, n_matches - first)
                replaced = np.flatnonzero((draws(base, DOMAIN_REPLACE, doc, count, first) >> np.uint64(11))
                                          < below_threshold) + first
                if not len(replaced):
                    continue
                translate_draws = draws_at(base, DOMAIN_TRANSLATE, doc, replaced).tolist()
                if doc_lang < 0:
                    lang_draws = draws_at(base, DOMAIN_LANG, doc, replaced).tolist()
                for i, m in enumerate(replaced.tolist()):
                    start, end, key = starts[m], ends[m], keys[m]
                    mask = int(self._lang_mask[key])
                    if doc_lang >= 0:
                        if not mask & (1 << doc_lang):
                            continue
                        lang = doc_lang
                    else:
                        available = [(l, w) for l, w in enumerate(self._weights) if w and mask & (1 << l)]
                        lang = pick(lang_draws[i], available)
                    options = self._options(key, lang)
                    chosen = options[below(translate_draws[i], len(options))]
                    if start - position > _EMIT_CHARS:
                        pieces = stretch(pieces, position, start)
                        held = 0
                    else:
                        pieces.append(text[position:start])
                        held += start - position
                    out_length += start - position
                    if substitutions:
                        subs.append(Substitution(out_length, out_length + len(chosen), text[start:end], chosen,
                                                 languages[lang]))
                    pieces.append(chosen)
                    held += len(chosen)
                    out_length += len(chosen)
                    position = end
                    changed += 1
                    stats.substitutions[languages[lang]] += 1
                    if held >= _EMIT_CHARS:
                        emit("".join(pieces))
                        pieces, held = [], 0
        if not changed:
            stats.tokens_out += len(text)
            return None
        if len(text) - position > _EMIT_CHARS:
            stretch(pieces, position, len(text))
        else:
            pieces.append(text[position:])
            emit("".join(pieces))
        stats.tokens_out += out_length + len(text) - position
        return subs

    def apply_batch(self, texts: Iterable[str], first_doc: int = 0) -> tuple[list[TextResult], Stats]:
        """Rewrite documents ``first_doc``, ``first_doc + 1``, ...; returns the results and their
        summed statistics (each result's ``stats`` is that sum too)."""
        stats = Stats(self.vocab.languages, substitutions={l: 0 for l in self.vocab.languages})
        results = [self.apply(text, first_doc + i, stats) for i, text in enumerate(texts)]
        return results, stats


# -- files --------------------------------------------------------------------------------------

COMPRESSIONS = (".gz", ".zst")
FORMATS = (".jsonl", ".txt")
# A line (document) longer than this is an error, or skipped: far above real documents (a whole
# book is a few MB), low enough that rewriting one stays under about 640 MB per worker (a line
# costs about 5x its size in memory, up to 10x for text that Python holds at 4 bytes a
# character, i.e. with an emoji; more with substitutions_field).
DEFAULT_MAX_LINE_BYTES = 64 << 20


def split_name(path) -> tuple[str, str, str]:
    """(stem, format, compression) of a text file name: ``a.jsonl.zst`` -> (a, .jsonl, .zst)."""
    name = Path(path).name
    compression = next((c for c in COMPRESSIONS if name.endswith(c)), "")
    rest = name[: len(name) - len(compression)]
    fmt = next((f for f in FORMATS if rest.endswith(f)), None)
    if fmt is None:
        raise TextError(path, "unknown text format: expected .jsonl, .jsonl.gz, .jsonl.zst, .txt, .txt.gz or .txt.zst")
    return rest[: len(rest) - len(fmt)], fmt, compression


_SURROGATE = re.compile("[\ud800-\udfff]")


class LongLine(NamedTuple):
    """What ``iter_lines`` gives, in place of its bytes, for a line over ``max_line_bytes``."""

    size: int  # bytes, without the line break
    limit: int

    @property
    def problem(self) -> str:
        return f"line of {self.size} bytes exceeds --max-line-bytes {self.limit}"


def _take_joined(parts: list[bytes]) -> bytes:
    """The parts joined, the list emptied: the caller then holds no reference to the line."""
    data = b"".join(parts)
    parts.clear()
    return data


def _without_cr(line: bytes) -> bytes:
    return line[:-1] if line.endswith(b"\r") else line


def iter_lines(path, max_line_bytes: int | None = None) -> Iterator[tuple[int, bytes | LongLine]]:
    """(1-based line number, line without its line break) of a text file, streamed.

    A line of more than ``max_line_bytes`` bytes (None or 0: no limit) comes as a ``LongLine``
    instead: its bytes are counted as they stream past and dropped, never held."""
    path = str(path)
    limit = max_line_bytes or 0
    _, _, compression = split_name(path)
    try:
        f = open(path, "rb")
    except OSError as exc:
        raise TextError(path, f"cannot read: {exc.strerror or exc}") from None
    with f:
        if compression == ".zst":
            chunks = zstd_chunks(f, lambda problem: TextError(path, problem))
        elif compression == ".gz":
            def gz_chunks(g=gzip.GzipFile(fileobj=f)):
                try:
                    while chunk := g.read(1 << 20):
                        yield chunk
                except (EOFError, gzip.BadGzipFile, OSError) as exc:
                    raise TextError(path, f"damaged or truncated gzip file: {exc}") from None
            chunks = gz_chunks()
        else:
            chunks = iter(lambda: f.read(1 << 20), b"")
        # The line that goes on past the chunk read so far is kept as a list of pieces (joined
        # once, when it ends: no copy of it per chunk) and only while it is within the limit.
        number, pending, held = 0, [], 0  # held: bytes of the unfinished line so far
        for chunk in chunks:
            lines = chunk.split(b"\n")
            tail = lines.pop()
            for line in lines:
                number += 1
                if held:  # the end of a line begun in an earlier chunk
                    size, held = held + len(line), 0
                    if limit and size > limit:
                        pending = []
                        yield number, LongLine(size, limit)
                        continue
                    pending.append(line)
                    line = None
                    yield number, _without_cr(_take_joined(pending))  # no reference kept here
                    continue
                elif limit and len(line) > limit:
                    yield number, LongLine(len(line), limit)
                    continue
                yield number, line[:-1] if line.endswith(b"\r") else line
            if tail:
                held += len(tail)
                if limit and held > limit:
                    pending = []  # still counted, no longer kept
                else:
                    pending.append(tail)
        if held:
            number += 1
            if limit and held > limit:
                yield number, LongLine(held, limit)
            else:
                yield number, _without_cr(_take_joined(pending))


class _Writer:
    """Writes lines to ``path`` through a temporary file; ``commit`` renames, ``abort`` removes."""

    def __init__(self, path: Path):
        self.path = Path(path)
        _, _, compression = split_name(self.path)
        self.tmp = temporary_path(self.path)
        self.raw = open(self.tmp, "wb")
        if compression == ".zst":
            import zstandard

            self.f = zstandard.ZstdCompressor(level=3).stream_writer(self.raw, closefd=False)
        elif compression == ".gz":
            self.f = gzip.GzipFile(fileobj=self.raw, mode="wb", mtime=0)
        else:
            self.f = None
        self.out = self.f if self.f is not None else self.raw
        self.buffer: list[bytes] = []
        self.size = 0

    def write(self, line: bytes) -> None:
        self.buffer.append(line)
        self.size += len(line)
        if self.size > 1 << 20:
            self.flush()

    def flush(self) -> None:
        self.out.write(b"".join(self.buffer))
        self.buffer, self.size = [], 0

    def commit(self) -> None:
        self.flush()
        if self.f is not None:
            self.f.close()
        self.raw.close()
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        try:
            self.raw.close()
        finally:
            self.tmp.unlink(missing_ok=True)


# worker side: one TextSubstituter per process, built once
_WORKER: dict = {}


def _worker_init(vocab_path: str, identity, options: dict) -> None:
    """``identity``: the vocabulary file's as the parent checked it (``Vocab.load``), or None."""
    _WORKER.clear()
    _WORKER["vocab"] = Vocab.load(vocab_path, validated=identity)
    _WORKER["options"] = options
    _WORKER["subs"] = {}


def _substituter_for(stream_key: str) -> TextSubstituter:
    subs = _WORKER["subs"]
    if stream_key not in subs:
        if subs:  # a new file: rebuild only the stream-dependent parts
            any_sub = next(iter(subs.values()))
            sub = object.__new__(TextSubstituter)
            sub.__dict__.update(any_sub.__dict__)
            sub.stream_key = stream_key
            sub._base = stream_base(sub.seed, stream_key)
            subs.clear()
            subs[stream_key] = sub
        else:
            options = dict(_WORKER["options"])
            if options.get("tokenizer") is not None:
                from .tokenizer import load_tokenizer

                options["tokenizer"] = load_tokenizer(options["tokenizer"])
            subs[stream_key] = TextSubstituter(_WORKER["vocab"], **options, stream_key=stream_key)
    return subs[stream_key]


def _process_chunk(task: tuple) -> tuple:
    """Rewrite one chunk of lines. Returns (output bytes, stats, errors [(line, problem)])."""
    path, stream_key, fmt, field, subs_field, on_error, lines = task
    sub = _substituter_for(stream_key)
    languages = sub.vocab.languages
    stats = Stats(languages, substitutions={l: 0 for l in languages})
    out, errors = [], []

    def bad(number: int, problem: str) -> None:
        if on_error == "fail":
            raise TextError(path, problem, number) from None
        errors.append((number, problem))

    for index, (number, raw) in enumerate(lines):
        if isinstance(raw, LongLine):
            bad(number, raw.problem)
            continue
        lines[index] = (number, b"")  # no second copy of a long line held while it is rewritten
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            bad(number, f"not UTF-8: {exc.reason} at byte {exc.start}")
            continue
        finally:
            raw = None
        if fmt == ".txt":
            if len(line) >= _LONG_TEXT:  # encoded a piece at a time, never whole as a str
                if sub._rewrite(line, number - 1, stats, False, lambda piece: out.append(_utf8(piece))) is None:
                    out.extend(_pieces(line, _utf8))
                out.append(b"\n")
            else:
                out.append(sub.apply(line, number - 1, stats, substitutions=False).text.encode("utf-8") + b"\n")
            line = None
            continue
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            bad(number, f"malformed JSON: {exc}")
            continue
        except RecursionError:  # json recurses once per level of nesting
            bad(number, "malformed JSON: nested too deeply (over the recursion limit)")
            continue
        finally:
            line = None
        if not isinstance(record, dict):
            bad(number, f"malformed JSON: expected a JSON object, got {type(record).__name__}")
            continue
        text = record.get(field)
        if not isinstance(text, str):
            bad(number, f"no text field {field!r}" if field not in record else f"field {field!r} is not a string")
            continue
        # json reads "\ud800" as a lone surrogate, which no UTF-8 output can hold: not text.
        surrogate = None if text.isascii() else _SURROGATE.search(text)
        if surrogate is not None:
            bad(number, f"field {field!r} holds a lone surrogate U+{ord(surrogate.group()):04X} (not valid Unicode)")
            continue
        if len(text) >= _LONG_TEXT:
            try:
                out.extend(_rewrite_long_record(sub, record, text, number - 1, stats, field, subs_field))
                out.append(b"\n")
            except RecursionError:
                bad(number, "JSON nested too deeply to write back (over the recursion limit)")
            text = record = None
            continue
        result = sub.apply(text, number - 1, stats, substitutions=bool(subs_field))
        record[field], text = result.text, None
        if subs_field:
            record[subs_field] = [s.to_dict() for s in result.substitutions]
        result = None
        try:
            data = json.dumps(record, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            # a lone surrogate elsewhere (a key, another field): kept, escaped as it came
            data = json.dumps(record).encode("ascii")
        except RecursionError:
            bad(number, "JSON nested too deeply to write back (over the recursion limit)")
            continue
        record = None
        out.append(data + b"\n")
    return b"".join(out), stats, errors


def _pieces(text: str, convert: Callable[[str], bytes], size: int = 1 << 20) -> Iterator[bytes]:
    """``convert`` of consecutive slices of ``text``: no whole-text temporary."""
    for start in range(0, len(text), size):
        yield convert(text[start : start + size])


def _utf8(piece: str) -> bytes:
    return piece.encode("utf-8")


def _json_body(piece: str) -> bytes:
    """The UTF-8 bytes of ``piece`` as inside a JSON string, escaped as json.dumps(ensure_ascii=False)
    escapes it. Escaping is character by character, so the pieces of a text can go one by one."""
    return _json_string(piece)[1:-1].encode("utf-8")


def _rewrite_long_record(sub: TextSubstituter, record: dict, text: str, doc: int, stats: Stats,
                         field: str, subs_field: str | None) -> list[bytes]:
    """``json.dumps(record, ensure_ascii=False)`` after the substitutions, as UTF-8 bytes in
    parts, for a record whose text is long: the output text is escaped and encoded a piece at a
    time as ``_rewrite`` makes it, so neither it nor the JSON line is ever one str (up to 4 bytes
    a character each). The same bytes as the short path. ``text`` is the caller's last reference
    to the input text besides ``record[field]``, which is dropped here."""
    record[field] = None  # keeps the field's place; the text goes when the caller lets it go
    if subs_field:
        record[subs_field] = None
    body: list[bytes] = []
    subs = sub._rewrite(text, doc, stats, bool(subs_field), lambda piece: body.append(_json_body(piece)))
    if subs is None:
        body.extend(_pieces(text, _json_body))
        subs = []
    parts = [b"{"]
    try:
        for i, (key, value) in enumerate(record.items()):
            parts.append(b", " if i else b"")
            parts.append(json.dumps(key, ensure_ascii=False).encode("utf-8") + b": ")
            if subs_field and key == subs_field:
                parts.append(b"[")
                for start in range(0, len(subs), 4096):
                    block = ", ".join(json.dumps(s.to_dict(), ensure_ascii=False) for s in subs[start : start + 4096])
                    parts.append((", " + block if start else block).encode("utf-8"))
                parts.append(b"]")
            elif key == field:
                parts.append(b'"')
                parts.extend(body)
                parts.append(b'"')
            else:
                parts.append(json.dumps(value, ensure_ascii=False).encode("utf-8"))
    except UnicodeEncodeError:
        # a lone surrogate in another key or value: as the short path, the whole line escaped
        record[field] = json.loads(b'"' + b"".join(body) + b'"')
        if subs_field:
            record[subs_field] = [s.to_dict() for s in subs]
        return [json.dumps(record).encode("ascii")]
    parts.append(b"}")
    return parts


def _dispatch(pool, path, tasks: Iterator[tuple], workers: int) -> Iterator[tuple]:
    """``_process_chunk`` of each task, in order: here without a pool, else in the pool with at
    most 2 x ``workers`` chunks in flight, so memory stays bounded whatever the file's size.
    A worker that dies fails the file, naming the lines it held."""
    if pool is None:
        yield from map(_process_chunk, tasks)
        return
    window: deque = deque()  # (task number, first line, last line, future)
    number = 0
    while True:
        try:
            while len(window) < 2 * workers:
                task = next(tasks, None)
                if task is None:
                    break
                lines = task[-1]
                window.append((number, lines[0][0], lines[-1][0], pool.submit(number, _process_chunk, task)))
                number += 1
            if not window:
                return
            result = pool.result(window[0][3])
        except WorkerDied as died:  # the pool is stopped already
            held = [w for w in window if w[0] == died.task] or list(window)[:1]
            where = f" while rewriting lines {held[0][1]}..{held[0][2]}" if held else ""
            raise TextError(path, f"a worker process died ({died.how}){where}") from None
        window.popleft()
        yield result


def _chunks(path: str, lines_per_chunk: int, chars_per_chunk: int,
            max_line_bytes: int | None = None) -> Iterator[list[tuple[int, bytes | LongLine]]]:
    chunk, size = [], 0
    for item in iter_lines(path, max_line_bytes):
        chunk.append(item)
        size += 0 if isinstance(item[1], LongLine) else len(item[1])
        item = None  # _process_chunk frees a long line once decoded: hold no reference here
        if len(chunk) >= lines_per_chunk or size >= chars_per_chunk:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk


def output_path_for(input_path, output, n_inputs: int) -> Path:
    """``output`` itself for one input when it has a text file extension, else output/NAME."""
    output = Path(output)
    if n_inputs == 1 and not output.is_dir():
        try:
            split_name(output)
            return output
        except TextError:
            pass
    return output / Path(input_path).name


def substitute_files(
    vocab: Vocab | str | os.PathLike,
    inputs: Sequence[str | os.PathLike],
    output: str | os.PathLike,
    *,
    ratio: float = 0.3,
    portion: float = 1.0,
    seed: int = 0,
    languages: Mapping[str, float] | None = None,
    ratio_basis: Literal["candidates", "words"] = "candidates",
    lang_scope: Literal["word", "document"] = "word",
    stream_key: str | None = None,
    field: str = "text",
    substitutions_field: str | None = None,
    on_error: Literal["skip", "fail"] = "fail",
    workers: int = 1,
    tokenizer: str | os.PathLike | None = None,
    lines_per_chunk: int = 1000,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    progress: bool | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, dict]:
    """Rewrite text files (see the module docstring); returns {output path: record}.

    ``output``: a file for a single input (its extension picks format and compression, which
    must be the input's format), or a directory where each input keeps its name. Each output
    also gets ``OUTPUT.link.json`` with the options and statistics. ``stream_key`` defaults to
    each file's name without extensions. ``progress``: None = a bar (characters, with
    throughput) when stderr is a terminal. ``max_line_bytes``: a longer line (0: no limit) is
    an error, or a skipped bad line with ``on_error="skip"``; it is never read whole.
    """
    say = log or (lambda message: None)
    bar = Progress(None, progress, unit="chr")
    if log is not None and bar.bar is not None:  # print above the bar, not into it
        say = bar.write
    if on_error not in ("skip", "fail"):
        raise InputError(f"on_error must be 'skip' or 'fail', got {on_error!r}")
    if not isinstance(max_line_bytes, int) or isinstance(max_line_bytes, bool) or max_line_bytes < 0:
        raise InputError(f"max_line_bytes must be a non-negative integer (0: no limit), got {max_line_bytes!r}")
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise InputError(f"workers must be a positive integer, got {workers!r}")
    if not inputs:
        raise InputError("no input files")
    for path in inputs:
        split_name(path)
        if not Path(path).is_file():
            raise TextError(path, "no such file")
    targets = [output_path_for(p, output, len(inputs)) for p in inputs]
    if len(set(targets)) != len(targets):
        raise InputError("two inputs have the same name, their outputs would collide")
    for source, target in zip(inputs, targets):
        if split_name(source)[1] != split_name(target)[1]:
            raise InputError(f"{target}: the output must have the input's format ({split_name(source)[1]})")
        if Path(source).resolve() == target.resolve():
            raise InputError(f"{target}: the output would overwrite its input")
    try:
        (targets[0].parent if targets[0] == Path(output) else Path(output)).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TextError(output, f"cannot create the output directory: {exc.strerror or exc}") from None
    if not isinstance(vocab, Vocab):
        vocab = Vocab.load(vocab)
    options = dict(ratio=ratio, portion=portion, seed=seed, languages=languages,
                   ratio_basis=ratio_basis, lang_scope=lang_scope)
    if tokenizer is not None:
        options["tokenizer"] = str(tokenizer)
    temporary_vocab = None
    pool = None
    results: dict[str, dict] = {}
    try:
        if workers == 1:
            _WORKER.clear()
            _WORKER.update(vocab=vocab, options=options, subs={})
            # validates the options before any file is opened
            _substituter_for(stream_key if stream_key is not None else split_name(inputs[0])[0])
        else:
            _checked_config(vocab, options)
            if vocab.path is None:
                import tempfile

                temporary_vocab = tempfile.NamedTemporaryFile(prefix="link_fast-", suffix=".lfv", delete=False)
                temporary_vocab.close()
                vocab.save(temporary_vocab.name)
            vocab_path, identity = (temporary_vocab.name, None) if temporary_vocab else (str(vocab.path), vocab.identity)
            pool = Pool(workers, initializer=_worker_init, initargs=(vocab_path, identity, options))
        for source, target in zip(inputs, targets):
            stem, fmt, _ = split_name(source)
            key = stem if stream_key is None else stream_key
            started = time.perf_counter()
            writer = _Writer(target)
            stats = Stats(vocab.languages, substitutions={l: 0 for l in vocab.languages})
            skipped: list[tuple[int, str]] = []
            bytes_in = 0
            try:
                tasks = ((str(source), key, fmt, field, substitutions_field, on_error, chunk)
                         for chunk in _chunks(str(source), lines_per_chunk, 4 << 20, max_line_bytes))
                done = _dispatch(pool, source, tasks, workers)
                for data, chunk_stats, errors in done:
                    writer.write(data)
                    stats = stats + chunk_stats
                    bar.update(chunk_stats.tokens_in, Path(source).name)
                    for number, problem in errors:
                        if len(skipped) < 10:
                            say(f"{source}:{number}: {problem} (skipped)")
                        skipped.append((number, problem))
                writer.commit()
            except BaseException:
                writer.abort()
                raise
            bytes_in = Path(source).stat().st_size
            record = {
                "config": dict(_checked_config(vocab, options, key), tokenizer=options.get("tokenizer")),
                "vocab": {"fingerprint": vocab.fingerprint, "languages": list(vocab.languages), "keys": vocab.n_keys},
                "input": str(source), "output": str(target), "field": field,
                "stats": _text_stats(stats), "skipped_lines": len(skipped),
                "skipped": [{"line": n, "problem": p} for n, p in skipped[:100]],
                "input_bytes": bytes_in, "seconds": round(time.perf_counter() - started, 3),
            }
            write_json(Path(f"{target}.link.json"), record, TextError)
            results[str(target)] = record
            say(f"{source} -> {target}: {stats.documents:,} documents, {stats.total_substitutions:,} substitutions"
                + (f", {len(skipped):,} bad lines skipped" if skipped else ""))
    except BaseException:
        if pool is not None:
            pool.stop()  # kills the workers and waits for them
            pool = None
        raise
    finally:
        bar.close()
        if pool is not None:
            pool.close()
        if temporary_vocab is not None:
            Path(temporary_vocab.name).unlink(missing_ok=True)
        if workers == 1:
            _WORKER.clear()
    return results


def _checked_config(vocab: Vocab, options: dict, stream_key: str = "") -> dict:
    """The options checked as TextSubstituter checks them, without building an automaton."""
    return checked_config(vocab.languages, ratio=options["ratio"], portion=options["portion"], seed=options["seed"],
                          languages=options["languages"], ratio_basis=options["ratio_basis"],
                          lang_scope=options["lang_scope"], stream_key=stream_key)


def _text_stats(stats: Stats) -> dict:
    d = stats.to_dict()
    d["chars_in"] = d.pop("tokens_in")
    d["chars_out"] = d.pop("tokens_out")
    return d
