"""``TextSubstituter``: LINK's sampling (docs/DESIGN.md §5) on the matches of a text, and the
rewritten text.

The draws are those of ``link_fast.draws`` (the Python twins of csrc/link_fast.h) with the same
domains, thresholds and integer language weights as ``Substituter``: with the same seed, stream
key and document index, text mode takes the same decisions for the same candidate numbers as
token mode. Statistics count characters (``Stats(unit="characters")``).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from json.encoder import encode_basestring as _json_string
from typing import Any, cast

import numpy as np

from ..draws import (
    ALWAYS,
    DOMAIN_DOC_LANG,
    DOMAIN_DOCUMENT,
    DOMAIN_LANG,
    DOMAIN_REPLACE,
    DOMAIN_TRANSLATE,
    bernoulli,
    draw,
    draws,
    draws_at,
    integer_weights,
    pick,
    probability_threshold,
    stream_base,
)
from ..errors import InputError
from ..sampling import Sampling
from ..substituter import Stats
from ..vocab import Vocab
from .matcher import Matcher
from .native import IndexInfo, NativeText
from .words import count_words, word_shape

# Tunables of the long-document path (tests shrink them to run it on short texts).
CANDIDATE_BLOCK = 1 << 16  # candidates drawn at once in a long document (bounds the draw arrays)
EMIT_CHARS = 1 << 18  # characters of output text made into one str at a time (TextSubstituter.rewrite)


def json_string_body(piece: str) -> bytes:
    """The UTF-8 bytes of ``piece`` as inside a JSON string, escaped as
    ``json.dumps(ensure_ascii=False)`` escapes it. Escaping is character by character, so the
    pieces of a text can go one by one."""
    return _json_string(piece)[1:-1].encode("utf-8")


@dataclass(slots=True)  # a long document has millions: no __dict__ each
class Substitution:
    start: int  # in the output text, code points
    end: int
    source: str
    translation: str
    language: str

    def to_dict(self) -> dict:
        return {
            "start": self.start,
            "end": self.end,
            "source": self.source,
            "translation": self.translation,
            "language": self.language,
        }


@dataclass
class TextResult:
    text: str
    substitutions: list[Substitution]
    stats: Stats


class TextSubstituter:
    """LINK substitutions on text with one compiled vocabulary and fixed sampling.

    ``sampling``, or its options as keywords (``Sampling``'s fields); ``stream_key`` None means
    ``""``. ``apply(text, doc_index)`` rewrites one document, ``apply_batch(texts, first_doc)``
    several (document ``first_doc + i``).

    ``native`` (default): matching, draws and output in native code (link_fast/_text.pyx) over
    a character trie of every key, built once per vocabulary (about 10 s for a million keys)
    and, with ``cache``, kept next to the vocabulary file as ``VOCAB.lfv.textcache`` (loaded in
    a fraction of a second afterwards; see ``link_fast.text.native``). ``native=False``: the
    Python reference path (pyahocorasick and a Python loop over its hits), identical output.

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
        sampling: Sampling | None = None,
        *,
        tokenizer=None,
        native: bool = True,
        cache: bool = True,
        **options: Any,
    ):
        self.vocab = vocab
        self.sampling = Sampling.from_options(sampling, **options).for_languages(vocab.languages)
        languages = cast(Mapping[str, float], self.sampling.languages)  # for_languages spells it out
        self._weights = integer_weights(vocab.languages, languages)  # as Substituter's
        self._doc_weights = [(l, w) for l, w in enumerate(self._weights) if w]
        self._base = stream_base(self.sampling.seed, cast(str, self.sampling.stream_key))
        self._portion_threshold = probability_threshold(self.sampling.portion)
        self._ratio_threshold = probability_threshold(self.sampling.ratio)
        self._lang_mask = np.asarray(vocab.tables["key_lang_mask"])
        self._translation_cache: dict[tuple[int, int], list[str]] = {}
        self._weight_cache: dict[tuple[int, int], list[tuple[int, int]]] = {}
        selected = sum(1 << vocab.languages.index(lang) for lang in languages)
        self._native: NativeText | None = None
        self._matcher: Matcher | None = None
        if native:
            self._native = NativeText(vocab, self.sampling, self._weights, tokenizer, cache=cache)
        else:
            in_play = np.flatnonzero(self._lang_mask & np.uint32(selected)).tolist()
            self._matcher = Matcher(vocab, in_play, tokenizer)

    @property
    def index_info(self) -> IndexInfo | None:
        """How the native index was had (built, loaded from the cache, ...) and in how long."""
        return None if self._native is None else self._native.info

    @property
    def token_boundaries(self) -> bool:
        """Whether matches follow the tokenizer's boundaries (built with ``tokenizer``)."""
        if self._native is not None:
            return self._native.strict
        return cast(Matcher, self._matcher).token_boundaries

    @property
    def patterns(self) -> int:
        """Patterns in the automaton (all the vocabulary's, for the native index)."""
        if self._native is not None:
            return self._native.index.n_terms
        return cast(Matcher, self._matcher).patterns

    def config(self) -> dict:
        """The options that determine the output (for statistics files)."""
        return self.sampling.to_dict()

    def for_stream(self, stream_key: str) -> TextSubstituter:
        """This substituter for another stream (file): shares the automaton, which does not
        depend on the stream."""
        other = copy.copy(self)
        other.sampling = self.sampling.replace(stream_key=stream_key)
        other._base = stream_base(other.sampling.seed, stream_key)
        return other

    def translations(self, key: int, lang: int) -> list[str]:
        """The texts written for ``key`` in language index ``lang`` (leading space removed)."""
        got = self._translation_cache.get((key, lang))
        if got is None:
            got = [t[1:] if t.startswith(" ") else t for _, t in self.vocab.translations(key, lang)]
            self._translation_cache[(key, lang)] = got
        return got

    def translation_weights(self, key: int, lang: int) -> list[tuple[int, int]]:
        """(index, weight) of each of ``translations(key, lang)``, for ``pick``."""
        got = self._weight_cache.get((key, lang))
        if got is None:
            got = list(enumerate(self.vocab.translation_weights(key, lang)))
            self._weight_cache[(key, lang)] = got
        return got

    def matches(self, text: str, shape: str | None = None) -> list[tuple[int, int, int]]:
        """Leftmost-longest non-overlapping valid matches: (start, end, key), in text order.
        ``shape``: ``word_shape(text)``, when the caller has it already."""
        if self._native is not None:
            _, starts, ends, keys = self._native.sampler.scan_text(text, self._native.drop(text))
            return list(zip(starts.tolist(), ends.tolist(), keys.tolist(), strict=True))
        matcher = cast(Matcher, self._matcher)
        return list(zip(*matcher.find(text, word_shape(text) if shape is None else shape), strict=True))

    def apply(
        self, text: str, doc_index: int = 0, stats: Stats | None = None, *, substitutions: bool = True
    ) -> TextResult:
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
            stats = Stats.zero(self.vocab.languages, unit="characters")
        chunks: list[str] = []
        subs = self.rewrite(text, int(doc_index), stats, substitutions, chunks.append)
        if subs is None:
            return TextResult(text, [], stats)
        return TextResult("".join(chunks), subs, stats)

    def apply_batch(self, texts: Iterable[str], first_doc: int = 0) -> tuple[list[TextResult], Stats]:
        """Rewrite documents ``first_doc``, ``first_doc + 1``, ...; returns the results and their
        summed statistics (each result's ``stats`` is that sum too)."""
        stats = Stats.zero(self.vocab.languages, unit="characters")
        results = [self.apply(text, first_doc + i, stats) for i, text in enumerate(texts)]
        return results, stats

    def rewrite(
        self, text: str, doc: int, stats: Stats, substitutions: bool, emit: Callable[[str], None]
    ) -> list[Substitution] | None:
        """``apply``'s work, streamed: the output text goes to ``emit`` in consecutive pieces
        (one for a short document), never whole unless the caller joins them. Counts into
        ``stats``. Returns the substitutions (empty unless ``substitutions``), or None when
        nothing changed: then ``emit`` was not called and the output is ``text`` itself."""
        if self._native is not None:
            return self._native.rewrite(text, doc, self._base, stats, substitutions, emit, EMIT_CHARS)
        languages = self.vocab.languages
        shape = word_shape(text)
        starts, ends, keys = cast(Matcher, self._matcher).find(text, shape)
        words = count_words(text, shape)
        del shape
        stats.documents += 1
        stats.words += words
        stats.candidates += len(starts)
        stats.size_in += len(text)
        output = _Output(text, emit)
        subs: list[Substitution] = []
        if bernoulli(draw(self._base, DOMAIN_DOCUMENT, doc, 0), self._portion_threshold):
            stats.eligible_documents += 1
            stats.eligible_candidates += len(starts)
            for m, lang, chosen in self._replacements(doc, keys, words):
                start, end = starts[m], ends[m]
                at = output.replace(start, end, chosen)
                if substitutions:
                    subs.append(Substitution(at, at + len(chosen), text[start:end], chosen, languages[lang]))
                stats.substitutions[languages[lang]] += 1
        if not output.changed:
            stats.size_out += len(text)
            return None
        stats.size_out += output.finish()
        return subs

    def rewrite_json(
        self, text: str, doc: int, stats: Stats, substitutions: bool, emit: Callable[[bytes], None]
    ) -> list[Substitution] | None:
        """``rewrite``, with the output going to ``emit`` as the UTF-8 bytes of a JSON string's
        body (between the quotes, escaped as ``json.dumps(ensure_ascii=False)`` escapes it):
        what ``.jsonl`` outputs are made of. The native path writes them directly, without the
        output str."""
        if self._native is not None:
            return self._native.rewrite(text, doc, self._base, stats, substitutions, emit, EMIT_CHARS, as_json=True)
        return self.rewrite(text, doc, stats, substitutions, lambda piece: emit(json_string_body(piece)))

    def _replacements(self, doc: int, keys, words: int) -> Iterator[tuple[int, int, str]]:
        """(candidate, language index, translation) of each candidate replaced in eligible
        document ``doc``, in order; draws are made a block of candidates at a time."""
        n_matches, base = len(keys), self._base
        below_threshold = np.uint64(min(self._replace_threshold(words, n_matches), ALWAYS))
        doc_lang = -1
        if self.sampling.lang_scope == "document":
            doc_lang = pick(draw(base, DOMAIN_DOC_LANG, doc, 0), self._doc_weights)
        for first in range(0, n_matches, CANDIDATE_BLOCK):
            count = min(CANDIDATE_BLOCK, n_matches - first)
            replaced = (
                np.flatnonzero((draws(base, DOMAIN_REPLACE, doc, count, first) >> np.uint64(11)) < below_threshold)
                + first
            )
            if not len(replaced):
                continue
            translate_draws = draws_at(base, DOMAIN_TRANSLATE, doc, replaced).tolist()
            if doc_lang < 0:
                lang_draws = draws_at(base, DOMAIN_LANG, doc, replaced).tolist()
            for i, m in enumerate(replaced.tolist()):
                key = keys[m]
                mask = int(self._lang_mask[key])
                if doc_lang >= 0:
                    if not mask & (1 << doc_lang):
                        continue
                    lang = doc_lang
                else:
                    lang = pick(lang_draws[i], [(l, w) for l, w in enumerate(self._weights) if w and mask & (1 << l)])
                options, weights = self.translations(key, lang), self.translation_weights(key, lang)
                yield m, lang, options[pick(translate_draws[i], weights)]

    def _replace_threshold(self, words: int, n_matches: int) -> int:
        """The Bernoulli threshold of one candidate's replacement (``ratio_basis``, §5)."""
        if self.sampling.ratio_basis == "words" and n_matches:
            return probability_threshold(self.sampling.ratio * words / n_matches)
        return self._ratio_threshold


class _Output:
    """A document's output text, made from the input and the translations: pieces joined and
    emitted every ``EMIT_CHARS`` or so (not a str per piece for the whole text, nor the whole
    output at once); a long stretch of the input without a substitution goes out in slices of
    that size."""

    def __init__(self, text: str, emit: Callable[[str], None]):
        self.text, self.emit = text, emit
        self.pieces: list[str] = []
        self.held = 0  # characters in pieces
        self.position = 0  # in the input: where the text not yet written starts
        self.length = 0  # characters of output so far
        self.changed = 0  # substitutions

    def replace(self, start: int, end: int, translation: str) -> int:
        """Write the input up to ``start``, then ``translation`` in place of [start, end).
        Returns where the translation starts in the output."""
        gap = start - self.position
        if gap > EMIT_CHARS:
            self._stretch(self.position, start)
        else:
            self.pieces.append(self.text[self.position : start])
            self.held += gap
        at = self.length + gap
        self.pieces.append(translation)
        self.held += len(translation)
        self.length = at + len(translation)
        self.position = end
        self.changed += 1
        if self.held >= EMIT_CHARS:
            self.emit("".join(self.pieces))
            self.pieces, self.held = [], 0
        return at

    def finish(self) -> int:
        """Write the rest of the input; returns the output's length."""
        text, position = self.text, self.position
        if len(text) - position > EMIT_CHARS:
            self._stretch(position, len(text))
        else:
            self.pieces.append(text[position:])
            self.emit("".join(self.pieces))
        return self.length + len(text) - position

    def _stretch(self, begin: int, stop: int) -> None:
        """What is held, then the input's [begin, stop) in slices."""
        if self.pieces:
            self.emit("".join(self.pieces))
        for cut in range(begin, stop, EMIT_CHARS):
            self.emit(self.text[cut : min(stop, cut + EMIT_CHARS)])
        self.pieces, self.held = [], 0
