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
document). Inputs are streamed, never loaded whole. The document index of a line is its
0-based line number in its file (blank ``.jsonl`` lines and skipped bad lines keep their
number), the stream key is the file name without its extensions; so the output does not depend
on ``workers`` or on the batch size. Outputs are written under a temporary name and renamed
when complete: a failed run leaves no output behind.
"""

from __future__ import annotations

import gzip
import json
import multiprocessing as mp
import os
import sys
import time
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterable, Iterator, Literal, Mapping, Sequence

import numpy as np

from .errors import FileError, InputError
from .runner import _Progress, write_json
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
_GOLDEN = 0x9E3779B97F4A7C15


class TextError(FileError):
    """A text input is malformed: bad JSON, a missing field, a truncated compressed file."""


# -- the draws of csrc/link_fast.h, in Python --------------------------------------------------


def draw(base: int, domain: int, doc: int, cand: int) -> int:
    """``lf_draw``: the 64-bit draw of (stream base, domain, document index, candidate index)."""
    h = mix64(base ^ ((domain * _GOLDEN) & MASK64))
    h = mix64((h + doc) & MASK64)
    return mix64((h + cand) & MASK64)


def draws(base: int, domain: int, doc: int, count: int) -> np.ndarray:
    """``draw(base, domain, doc, c)`` for c in range(count), as uint64, computed in numpy: one
    call per document instead of three Python mix64 per candidate."""
    h = mix64((mix64(base ^ ((domain * _GOLDEN) & MASK64)) + doc) & MASK64)
    z = np.arange(count, dtype=np.uint64) + np.uint64(h)  # wraps modulo 2**64, as the C does
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
    """Maximal runs of word characters."""
    return len((word_shape(text) if shape is None else shape).split())


# -- the substituter --------------------------------------------------------------------------


@dataclass
class Substitution:
    start: int  # in the output text, code points
    end: int
    source: str
    translation: str
    language: str

    def to_dict(self) -> dict:
        return {"start": self.start, "end": self.end, "source": self.source,
                "translation": self.translation, "language": self.language}


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
        if not len(self._automaton) or not text:
            return []
        if shape is None:
            shape = word_shape(text)
        n = len(text)
        best: dict[int, tuple[int, int]] = {}  # start -> (end, key), the longest valid match there
        strict, fusing = self.token_boundaries, self._fusing
        for last, (length, spaced, bare) in self._automaton.iter(text):
            end = last + 1
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
            if got is None or got[0] < end:
                best[start] = (end, key)
        out, position = [], 0
        for start in sorted(best):
            if start >= position:
                end, key = best[start]
                out.append((start, end, key))
                position = end
        return out

    def apply(self, text: str, doc_index: int = 0, stats: Stats | None = None) -> TextResult:
        """Rewrite one document; ``doc_index`` is its index in its stream (file)."""
        if not isinstance(text, str):
            raise InputError(f"text must be a str, got {type(text).__name__}")
        if isinstance(doc_index, bool) or not isinstance(doc_index, (int, np.integer)) or doc_index < 0:
            raise InputError(f"doc_index must be a non-negative integer, got {doc_index!r}")
        doc = int(doc_index)
        languages = self.vocab.languages
        if stats is None:
            stats = Stats(languages, substitutions={l: 0 for l in languages})
        shape = word_shape(text)
        matches = self.matches(text, shape)
        words = count_words(text, shape)
        stats.documents += 1
        stats.words += words
        stats.candidates += len(matches)
        stats.tokens_in += len(text)
        base = self._base
        pieces, subs, position, out_length = [], [], 0, 0
        if bernoulli(draw(base, DOMAIN_DOCUMENT, doc, 0), self._portion_threshold):
            stats.eligible_documents += 1
            stats.eligible_candidates += len(matches)
            threshold = self._ratio_threshold
            if self.ratio_basis == "words" and matches:
                p = self.ratio * words / len(matches)
                threshold = ALWAYS if p >= 1.0 else int(p * 9007199254740992.0)
            doc_lang = -1
            if self.lang_scope == "document":
                doc_lang = pick(draw(base, DOMAIN_DOC_LANG, doc, 0), self._doc_weights)
            replaced = np.flatnonzero((draws(base, DOMAIN_REPLACE, doc, len(matches)) >> np.uint64(11))
                                      < np.uint64(min(threshold, ALWAYS))).tolist() if matches else []
            if replaced:
                translate_draws = draws(base, DOMAIN_TRANSLATE, doc, replaced[-1] + 1).tolist()
                if doc_lang < 0:
                    lang_draws = draws(base, DOMAIN_LANG, doc, replaced[-1] + 1).tolist()
            for m in replaced:
                start, end, key = matches[m]
                mask = int(self._lang_mask[key])
                if doc_lang >= 0:
                    if not mask & (1 << doc_lang):
                        continue
                    lang = doc_lang
                else:
                    available = [(l, w) for l, w in enumerate(self._weights) if w and mask & (1 << l)]
                    lang = pick(lang_draws[m], available)
                options = self._options(key, lang)
                chosen = options[below(translate_draws[m], len(options))]
                pieces.append(text[position:start])
                out_length += start - position
                subs.append(Substitution(out_length, out_length + len(chosen), text[start:end], chosen, languages[lang]))
                pieces.append(chosen)
                out_length += len(chosen)
                position = end
                stats.substitutions[languages[lang]] += 1
        if not subs:
            stats.tokens_out += len(text)
            return TextResult(text, [], stats)
        pieces.append(text[position:])
        out = "".join(pieces)
        stats.tokens_out += len(out)
        return TextResult(out, subs, stats)

    def apply_batch(self, texts: Iterable[str], first_doc: int = 0) -> tuple[list[TextResult], Stats]:
        """Rewrite documents ``first_doc``, ``first_doc + 1``, ...; returns the results and their
        summed statistics (each result's ``stats`` is that sum too)."""
        stats = Stats(self.vocab.languages, substitutions={l: 0 for l in self.vocab.languages})
        results = [self.apply(text, first_doc + i, stats) for i, text in enumerate(texts)]
        return results, stats


# -- files --------------------------------------------------------------------------------------

COMPRESSIONS = (".gz", ".zst")
FORMATS = (".jsonl", ".txt")


def split_name(path) -> tuple[str, str, str]:
    """(stem, format, compression) of a text file name: ``a.jsonl.zst`` -> (a, .jsonl, .zst)."""
    name = Path(path).name
    compression = next((c for c in COMPRESSIONS if name.endswith(c)), "")
    rest = name[: len(name) - len(compression)]
    fmt = next((f for f in FORMATS if rest.endswith(f)), None)
    if fmt is None:
        raise TextError(path, "unknown text format: expected .jsonl, .jsonl.gz, .jsonl.zst, .txt, .txt.gz or .txt.zst")
    return rest[: len(rest) - len(fmt)], fmt, compression


def _zstd_chunks(path: str, f) -> Iterator[bytes]:
    import zstandard

    dctx = zstandard.ZstdDecompressor()
    dobj = dctx.decompressobj()
    pending = False  # inside a frame
    while True:
        data = f.read(1 << 20)
        if not data:
            break
        while data:
            pending = True
            try:
                out = dobj.decompress(data)
            except zstandard.ZstdError as exc:
                raise TextError(path, f"not a valid zstd stream: {exc}") from None
            if out:
                yield out
            if dobj.eof:
                pending = False
                data = dobj.unused_data
                dobj = dctx.decompressobj()
            else:
                data = b""
    if pending:
        raise TextError(path, "truncated zstd stream (the file ends inside a frame)")


def iter_lines(path) -> Iterator[tuple[int, bytes]]:
    """(1-based line number, line without its line break) of a text file, streamed."""
    path = str(path)
    _, _, compression = split_name(path)
    try:
        f = open(path, "rb")
    except OSError as exc:
        raise TextError(path, f"cannot read: {exc.strerror or exc}") from None
    with f:
        if compression == ".zst":
            chunks = _zstd_chunks(path, f)
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
        number, rest = 0, b""
        for chunk in chunks:
            lines = (rest + chunk).split(b"\n")
            rest = lines.pop()
            for line in lines:
                number += 1
                yield number, line[:-1] if line.endswith(b"\r") else line
        if rest:
            yield number + 1, rest[:-1] if rest.endswith(b"\r") else rest


class _Writer:
    """Writes lines to ``path`` through a temporary file; ``commit`` renames, ``abort`` removes."""

    def __init__(self, path: Path):
        self.path = Path(path)
        _, _, compression = split_name(self.path)
        self.tmp = self.path.with_name(f".{self.path.name}.tmp-{os.getpid()}")
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


def _worker_init(vocab_path: str, options: dict) -> None:
    _WORKER.clear()
    _WORKER["vocab"] = Vocab.load(vocab_path)
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
    for number, raw in lines:
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            problem = f"not UTF-8: {exc.reason} at byte {exc.start}"
            if on_error == "fail":
                raise TextError(path, problem, number) from None
            errors.append((number, problem))
            continue
        if fmt == ".txt":
            result = sub.apply(line, number - 1, stats)
            out.append(result.text.encode("utf-8") + b"\n")
            continue
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError(f"expected a JSON object, got {type(record).__name__}")
        except ValueError as exc:
            problem = f"malformed JSON: {exc}"
            if on_error == "fail":
                raise TextError(path, problem, number) from None
            errors.append((number, problem))
            continue
        text = record.get(field)
        if not isinstance(text, str):
            problem = f"no text field {field!r}" if field not in record else f"field {field!r} is not a string"
            if on_error == "fail":
                raise TextError(path, problem, number)
            errors.append((number, problem))
            continue
        result = sub.apply(text, number - 1, stats)
        record[field] = result.text
        if subs_field:
            record[subs_field] = [s.to_dict() for s in result.substitutions]
        out.append(json.dumps(record, ensure_ascii=False).encode("utf-8") + b"\n")
    return b"".join(out), stats, errors


def _chunks(path: str, lines_per_chunk: int, chars_per_chunk: int) -> Iterator[list[tuple[int, bytes]]]:
    chunk, size = [], 0
    for number, line in iter_lines(path):
        chunk.append((number, line))
        size += len(line)
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
    progress: bool | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, dict]:
    """Rewrite text files (see the module docstring); returns {output path: record}.

    ``output``: a file for a single input (its extension picks format and compression, which
    must be the input's format), or a directory where each input keeps its name. Each output
    also gets ``OUTPUT.link.json`` with the options and statistics. ``stream_key`` defaults to
    each file's name without extensions. ``progress``: None = a bar (characters, with
    throughput) when stderr is a terminal.
    """
    say = log or (lambda message: None)
    bar = _Progress(None, progress, unit="chr")
    if log is not None and bar.bar is not None:  # print above the bar, not into it
        say = lambda message: bar.bar.write(message, file=sys.stderr)  # noqa: E731
    if on_error not in ("skip", "fail"):
        raise InputError(f"on_error must be 'skip' or 'fail', got {on_error!r}")
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
            vocab_path = temporary_vocab.name if temporary_vocab else str(vocab.path)
            pool = mp.get_context("spawn").Pool(workers, initializer=_worker_init, initargs=(vocab_path, options))
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
                         for chunk in _chunks(str(source), lines_per_chunk, 4 << 20))
                done = (pool.imap(_process_chunk, tasks) if pool is not None else map(_process_chunk, tasks))
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
            write_json(Path(f"{target}.link.json"), record, error=TextError)
            results[str(target)] = record
            say(f"{source} -> {target}: {stats.documents:,} documents, {stats.total_substitutions:,} substitutions"
                + (f", {len(skipped):,} bad lines skipped" if skipped else ""))
    except BaseException:
        if pool is not None:
            pool.terminate()
            pool = None
        raise
    finally:
        bar.close()
        if pool is not None:
            pool.close()
            pool.join()
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
